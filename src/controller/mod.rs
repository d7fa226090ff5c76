//! The `run` subcommand: ChangeOrderWatch → ChangeOrder.

pub mod args;
pub mod budget;
pub mod plan;
pub mod schedule;
pub mod watch_status;

pub use args::RunArgs;
