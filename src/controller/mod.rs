//! The `run` subcommand: ChangeOrderWatch → ChangeOrder.

pub mod args;

pub use args::RunArgs;
