use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A push endpoint: a CI step or an EventBridge HTTP target calls it when a release starts, so the
/// named watches poll now instead of at their next interval.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changeorder.io",
    version = "v1alpha1",
    kind = "ChangeOrderReceiver",
    doc = "ChangeOrderReceiver lets a CI step or an Alibaba Cloud EventBridge HTTP target tell the \
           operator to look now: a POST to status.url on the operator's receiver port, \
           authenticated with the token in the referenced Secret (as a bearer token or an \
           HMAC-SHA256 signature), makes the selected ChangeOrderWatches in this namespace poll \
           within seconds, within their call budget.",
    namespaced,
    status = "ChangeOrderReceiverStatus",
    shortname = "cor",
    // Not category `changeorder`: kubectl expands a category before it matches a singular
    // name, so `kubectl get changeorder/NAME` would look for receivers.
    category = "alibabacloud",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Last Push","type":"date","jsonPath":".status.lastPushTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[x_kube(validation = kube::core::Rule::new("has(self.watches) || has(self.watchSelector)")
    .message("spec.watches or spec.watchSelector is required")
    .field_path(".watches")
    .reason(kube::core::Reason::FieldValueRequired))]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderReceiverSpec {
    /// Names of the ChangeOrderWatches in this namespace a push wakes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub watches: Option<Vec<ReceiverWatchName>>,
    /// ChangeOrderWatches in this namespace whose labels all match these a push wakes too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_selector: Option<ReceiverSelector>,
    /// The Secret (in this namespace) whose key `token` holds the shared token.
    pub secret_ref: ReceiverSecretRef,
}

/// A ChangeOrderWatch name (a DNS subdomain).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct ReceiverWatchName(
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::crd::DNS_SUBDOMAIN))] pub String,
);

/// Equality-based label selector (`matchLabels`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSelector {
    /// Every label listed must be present with this value. Empty selects nothing (never all).
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// Reference to the token Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct ReceiverSecretRef {
    /// Name of the Secret in this namespace; its key `token` holds the token.
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::crd::DNS_SUBDOMAIN))]
    pub name: String,
}

/// Key of the token in the receiver's Secret.
pub const RECEIVER_TOKEN_KEY: &str = "token";

/// Where the receiver is served and whether it can accept pushes. Written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderReceiverStatus {
    /// Path to POST to on the operator's receiver port: `/hook/<id>`, the id derived from the
    /// object's uid so that it is stable and cannot be guessed from the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When the last authenticated push asked the watches to poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_time: Option<Time>,
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: True when the token Secret is usable; False with reason SecretNotFound,
    /// TokenMissing or ReceiverDisabled (the operator serves no receiver port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// The path a receiver is served at: a hash of its uid, so it is stable across restarts and
/// replicas yet tells nothing about (and cannot be derived from) the object's name.
pub fn receiver_path(uid: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("changeorder.io/receiver/{uid}").as_bytes());
    format!("/hook/{}", hex::encode(&digest[..20]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_stable_and_depends_on_the_uid_only() {
        let a = receiver_path("0b7f4a4e-1111-2222-3333-444455556666");
        assert_eq!(a, receiver_path("0b7f4a4e-1111-2222-3333-444455556666"));
        assert_ne!(a, receiver_path("0b7f4a4e-1111-2222-3333-444455556667"));
        assert!(a.starts_with("/hook/") && a.len() == "/hook/".len() + 40, "{a}");
    }
}
