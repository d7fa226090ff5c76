#![forbid(unsafe_code)]
//! `changeorder-sim`: the cloud simulator as a program of its own, with the flags and scenario
//! files `changeorder-operator simulate` took before the simulator left the operator's binary.

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "changeorder-sim",
    version,
    about = "Serve the bundled EDAS/SAE/AppStack cloud simulator (for demos, tests and benchmarks; never for production)"
)]
struct Cli {
    #[command(flatten)]
    args: changeorder_sim::SimulateArgs,
}

fn main() -> std::process::ExitCode {
    changeorder_sim::run_cli(Cli::parse().args)
}
