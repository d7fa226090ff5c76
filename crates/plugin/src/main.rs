#![forbid(unsafe_code)]
//! The kubectl plugin: `kubectl changeorder status | wait | refresh` (see `plugin`).

fn main() -> std::process::ExitCode {
    changeorder_plugin::main()
}
