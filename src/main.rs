#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    changeorder_operator::cli::main()
}
