//! The `run` subcommand: ChangeOrderWatch → ChangeOrder.

pub mod args;
pub mod leader;
pub mod metrics;

pub use args::RunArgs;
