//! The `run` subcommand: ChangeOrderWatch → ChangeOrder.

pub mod args;
pub mod plan;

pub use args::RunArgs;
