//! The `run` subcommand: ChangeOrderWatch → ChangeOrder.

pub mod args;
pub mod budget;
pub mod plan;

pub use args::RunArgs;
