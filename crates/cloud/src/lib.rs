#![forbid(unsafe_code)]
//! Cloud side: clients for EDAS, SAE and AppStack, request signing and credentials.
//! Nothing in here knows about Kubernetes.
//!
//! Entry point: [`client::CloudClient`] with a [`target::Target`] and
//! [`credentials::Credentials`]; see the `client` module docs.

pub mod account;
pub mod actions;
pub mod appstack;
pub mod chain;
pub mod client;
pub mod common;
pub mod credentials;
pub mod discover;
pub mod edas;
pub mod error;
pub mod http;
pub mod imds;
pub mod json;
pub mod model;
pub mod policy;
pub mod sae;
pub mod sign;
pub mod status;
pub mod sts;
pub mod target;
pub mod time;

pub use client::CloudClient;
pub use credentials::Credentials;
pub use error::{CloudError, ErrorKind};
pub use http::{CallObserver, CallOutcome, ClientConfig, RetryPolicy};
pub use target::Target;
