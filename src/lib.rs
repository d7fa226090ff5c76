#![forbid(unsafe_code)]
//! changeorder-operator: EDAS, SAE and Yunxiao AppStack change orders as Kubernetes resources.

pub mod admin;
pub mod cli;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod mapping;
pub mod probe;
pub mod telemetry;
pub mod time;
