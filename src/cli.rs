//! Command-line entry point: one binary, one subcommand per job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "changeorder-operator",
    version,
    about = "EDAS, SAE and AppStack change orders as Kubernetes resources"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller (in a cluster, or against a kubeconfig). Boxed: its flags outweigh the
    /// other commands' many times over.
    Run(Box<crate::controller::RunArgs>),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// Poll the cloud once for a ChangeOrderWatch and print the ChangeOrders it would write.
    Probe(crate::probe::ProbeArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => crate::controller::run::main(*args),
        Command::Probe(args) => crate::probe::main(args),
        Command::Crds => match crate::crd::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot render CRDs: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
