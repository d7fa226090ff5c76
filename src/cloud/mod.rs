//! Cloud side: clients for EDAS, SAE and AppStack, request signing and credentials.
//! Nothing in here knows about Kubernetes.

pub mod model;
pub mod sign;
