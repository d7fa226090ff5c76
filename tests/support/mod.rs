//! Helpers shared by the integration tests; each test file includes them with `mod support;`.
// Every test binary compiles all helpers but uses only some of them.
#![allow(dead_code)]

pub mod cluster;
pub mod convergence;
pub mod logs;
pub mod node;
pub mod operator;
pub mod process;
pub mod registry;
pub mod stub;
