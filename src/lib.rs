#![forbid(unsafe_code)]
//! changeorder-operator: EDAS, SAE and Yunxiao AppStack change orders as Kubernetes resources.

pub mod cli;
pub mod cloud;
pub mod crd;
pub mod mapping;
pub mod sim;
