//! Custom resource types. The YAML under `crds/` is generated from these (`changeorder-operator crds`).

mod action;
mod order;
mod receiver;
mod watch;
mod watchset;

pub use action::*;
pub use order::*;
pub use receiver::*;
pub use watch::*;
pub use watchset::*;

use kube::CustomResourceExt;

pub const GROUP: &str = "changeorder.io";
pub const VERSION: &str = "v1alpha1";
pub const CATEGORY: &str = "alibabacloud";

/// A Kubernetes object name of the kinds specs refer to (Secret, ServiceAccount, ChangeOrder):
/// RFC 1123 subdomain, max 253 (the length is a separate schema rule). In the schema so `..`,
/// `/` or capitals are refused at admission, not found out at run time.
pub const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A namespace name: RFC 1123 label, max 63.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Label keys put on every ChangeOrder so `kubectl get changeorders -l ...` can select them.
pub mod labels {
    pub const WATCH: &str = "changeorder.io/watch";
    pub const PROVIDER: &str = "changeorder.io/provider";
    pub const APP: &str = "changeorder.io/app";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
}

/// Annotation a user sets (to any new value) to ask for an immediate poll, as Flux does.
pub const RECONCILE_REQUEST_ANNOTATION: &str = "changeorder.io/reconcile-requested-at";

/// All CRDs as one multi-document YAML stream, in a stable order.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in [
        ChangeOrderWatch::crd(),
        ChangeOrder::crd(),
        ChangeOrderAction::crd(),
        ChangeOrderReceiver::crd(),
        ChangeOrderWatchSet::crd(),
    ] {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
