use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::crd::{
    AppStackState, CredentialsSource, Retention, SecretRef, ServiceAccountRef, SignatureVersion, WatchActions,
};
use changeorder_cloud::model::Provider;

/// Label on every ChangeOrderWatch a set generated: the set's name.
pub const WATCH_SET_LABEL: &str = "changeorder.io/watch-set";

/// A fleet in one object: every application a generator finds gets a ChangeOrderWatch.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changeorder.io",
    version = "v1alpha1",
    kind = "ChangeOrderWatchSet",
    doc = "ChangeOrderWatchSet keeps one ChangeOrderWatch per application of an SAE namespace, \
           an EDAS region or a list of AppStack applications: it lists the applications every \
           discoveryInterval, creates a watch (owned by the set, labelled \
           changeorder.io/watch-set) for each new one, updates them when the template changes, \
           and deletes (or, with deletionPolicy Keep, releases) the watches of applications \
           that are gone. A watch of the same name it did not create is never touched: the set \
           reports the conflict.",
    namespaced,
    status = "ChangeOrderWatchSetStatus",
    shortname = "cowset",
    // Not category `changeorder`: kubectl expands a category before it matches a singular
    // name, so `kubectl get changeorder/NAME` would look for sets.
    category = "alibabacloud",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Apps","type":"integer","jsonPath":".status.appsFound"}"#,
    printcolumn = r#"{"name":"Watches Ready","type":"integer","jsonPath":".status.watchesReady"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Last Discovery","type":"date","jsonPath":".status.lastDiscoveryTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Not Ready","type":"integer","priority":1,"jsonPath":".status.watchesNotReady"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[x_kube(validation = kube::core::Rule::new("(self.provider == 'sae') == has(self.generator.sae) && (self.provider == 'edas') == has(self.generator.edas) && (self.provider == 'appstack') == has(self.generator.appstack)")
    .message("spec.generator must set exactly the provider's generator: sae, edas or appstack")
    .field_path(".generator")
    .reason(kube::core::Reason::FieldValueInvalid))]
#[x_kube(validation = kube::core::Rule::new("self.provider == 'appstack' || has(self.region) || has(self.endpoint)")
    .message("spec.region or spec.endpoint is required when spec.provider is edas or sae")
    .field_path(".region")
    .reason(kube::core::Reason::FieldValueRequired))]
#[x_kube(validation = kube::core::Rule::new("[has(self.credentialsSecretRef), has(self.serviceAccountRef), has(self.credentials)].filter(x, x).size() == 1")
    .message("exactly one credential source: set one of spec.credentialsSecretRef, spec.serviceAccountRef and spec.credentials")
    .field_path(".credentialsSecretRef")
    .reason(kube::core::Reason::FieldValueInvalid))]
#[x_kube(validation = kube::core::Rule::new("self.provider != 'appstack' || has(self.credentialsSecretRef)")
    .message("provider appstack authenticates with a personal access token: use spec.credentialsSecretRef (spec.serviceAccountRef and spec.credentials apply to edas and sae)")
    .field_path(".credentialsSecretRef")
    .reason(kube::core::Reason::FieldValueRequired))]
#[x_kube(validation = kube::core::Rule::new("!has(self.discoveryInterval) || duration(self.discoveryInterval) >= duration('5s')")
    .message("spec.discoveryInterval must be at least 5s")
    .field_path(".discoveryInterval"))]
#[x_kube(validation = kube::core::Rule::new("self.provider == 'appstack' || !has(self.template) || (!has(self.template.envNames) && !has(self.template.states))")
    .message("spec.template.envNames and spec.template.states apply only to provider appstack")
    .field_path(".template"))]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderWatchSetSpec {
    /// The release system: edas, sae or appstack. Every generated watch has it.
    pub provider: Provider,

    /// Alibaba Cloud region, e.g. cn-hangzhou: where applications are listed, and the region of
    /// every generated watch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,

    /// Explicit endpoint URL, under the operator's endpoint policy like a watch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub endpoint: Option<String>,

    /// Secret in this namespace with the credentials, as for a watch. One of
    /// credentialsSecretRef, serviceAccountRef and credentials; the generated watches use it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,

    /// Keyless (RRSA): a ServiceAccount in this namespace, as for a watch. edas and sae only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountRef>,

    /// Other credential sources (`source: OperatorIdentity`), as for a watch. edas and sae only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsSource>,

    /// EDAS/SAE request signing scheme: v3 (default) or roa; for the list calls and the watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_version: Option<SignatureVersion>,

    /// Where the applications come from: exactly the generator of spec.provider.
    pub generator: WatchSetGenerator,

    /// How often to list the applications (Go duration, default 5m, at least 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub discovery_interval: Option<String>,

    /// What happens to the watch of an application that is no longer found: Delete (default;
    /// its ChangeOrders go with it) or Keep (the watch is released: owner reference and
    /// changeorder.io/watch-set label removed, so it lives on as a hand-written one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// The fields every generated watch gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<WatchTemplate>,
}

/// Exactly one of these, the one of spec.provider.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchSetGenerator {
    /// Every application of one SAE namespace (SAE ListApplications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sae: Option<SaeGenerator>,
    /// Every application of one EDAS logical region (EDAS ListApplication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edas: Option<EdasGenerator>,
    /// AppStack applications of one organisation, by name (no public application list call is
    /// confirmed, so the list is explicit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appstack: Option<AppstackGenerator>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaeGenerator {
    /// The SAE namespace, e.g. cn-hangzhou or cn-hangzhou:prod.
    #[schemars(length(min = 1, max = 128))]
    pub namespace_id: String,
    /// Only applications whose name matches this glob (`*` any run of characters, `?` one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub app_name_pattern: Option<String>,
    /// Only applications carrying every one of these tags (key: value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 20))]
    pub tags: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdasGenerator {
    /// The EDAS logical region (namespace), e.g. cn-hangzhou or cn-hangzhou:prod.
    #[schemars(length(min = 1, max = 128))]
    pub logical_region_id: String,
    /// Only applications whose name matches this glob (`*` any run of characters, `?` one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub app_name_pattern: Option<String>,
    /// Only applications of this cluster (sent as ClusterId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub cluster_id: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppstackGenerator {
    /// The Yunxiao organisation id.
    #[schemars(length(min = 1, max = 128))]
    pub organization_id: String,
    /// Application names; each gets a watch.
    #[schemars(length(min = 1, max = 1000))]
    pub apps: Vec<AppstackAppName>,
}

/// An AppStack application name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(transparent)]
pub struct AppstackAppName(#[schemars(length(min = 1, max = 128))] pub String);

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the watch (and with it its ChangeOrders).
    #[default]
    Delete,
    /// Keep the watch, released from the set.
    Keep,
}

/// What every generated watch carries besides provider, region, endpoint, credentials and app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchTemplate {
    /// Labels and annotations for the generated watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<WatchTemplateMetadata>,
    /// The watch's spec.interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub interval: Option<String>,
    /// The watch's spec.inFlightInterval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub in_flight_interval: Option<String>,
    /// The watch's spec.retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// The watch's spec.suspend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// The watch's spec.timeZone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[+-]([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub time_zone: Option<String>,
    /// The watch's spec.actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<WatchActions>,
    /// AppStack: the watch's spec.envNames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub env_names: Option<Vec<String>>,
    /// AppStack: the watch's spec.states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub states: Option<Vec<AppStackState>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
pub struct WatchTemplateMetadata {
    /// Labels of every generated watch (changeorder.io/watch-set is always added).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of every generated watch.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What the last discovery found and how the generated watches are doing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderWatchSetStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions. `Ready`: discovery worked and every application has its watch
    /// (reason Discovered), or why not (NameConflict, InvalidCredentials, Throttled,
    /// ProviderError, Forbidden, InvalidSpec, EndpointNotAllowed, ...). `Stalled`: a person
    /// must act (conflicts, refused credentials, invalid spec). `Reconciling`: no discovery has
    /// finished yet, or a transient failure is retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Applications the last successful discovery found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps_found: Option<u32>,
    /// Generated watches whose Ready condition is True.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watches_ready: Option<u32>,
    /// Generated watches whose Ready condition is not True (yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watches_not_ready: Option<u32>,
    /// When the applications were last listed, successfully or not. Refreshed only with another
    /// change or once per status heartbeat (`--status-heartbeat`), so quiet discoveries write
    /// nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_discovery_time: Option<Time>,
    /// Watch names the set wants but that belong to someone else; those are never touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub conflicts: Vec<WatchSetConflict>,
}

/// A generated watch's name already taken by a watch the set does not own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchSetConflict {
    /// The watch name.
    pub name: String,
    /// The application (id, or name for AppStack) that would have had it.
    pub app: String,
}
