use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::cloud::model::Provider;

/// What to poll: one application of one release system.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changeorder.io",
    version = "v1alpha1",
    kind = "ChangeOrderWatch",
    namespaced,
    status = "ChangeOrderWatchStatus",
    shortname = "cow",
    category = "alibabacloud",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"App ID","type":"string","jsonPath":".spec.appId"}"#,
    printcolumn = r#"{"name":"App Name","type":"string","jsonPath":".spec.appName"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Orders","type":"integer","jsonPath":".status.orders.total"}"#,
    printcolumn = r#"{"name":"In Flight","type":"integer","jsonPath":".status.orders.inFlight"}"#,
    printcolumn = r#"{"name":"Last Poll","type":"date","jsonPath":".status.lastPollTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[x_kube(validation = kube::core::Rule::new("self.provider == 'appstack' || has(self.appId)")
    .message("spec.appId is required when spec.provider is edas or sae")
    .field_path(".appId")
    .reason(kube::core::Reason::FieldValueRequired))]
#[x_kube(validation = kube::core::Rule::new("self.provider != 'appstack' || (has(self.organizationId) && has(self.appName))")
    .message("spec.organizationId and spec.appName are required when spec.provider is appstack")
    .field_path(".appName")
    .reason(kube::core::Reason::FieldValueRequired))]
#[x_kube(validation = kube::core::Rule::new("self.provider == 'appstack' || has(self.region) || has(self.endpoint)")
    .message("spec.region or spec.endpoint is required when spec.provider is edas or sae")
    .field_path(".region")
    .reason(kube::core::Reason::FieldValueRequired))]
#[x_kube(validation = kube::core::Rule::new("self.provider == 'appstack' || (!has(self.envNames) && !has(self.states) && !has(self.organizationId) && !has(self.appName))")
    .message("spec.organizationId, spec.appName, spec.envNames and spec.states apply only to provider appstack")
    .field_path(".provider"))]
#[x_kube(validation = kube::core::Rule::new("self.provider != 'appstack' || !has(self.appId)")
    .message("spec.appId does not apply to provider appstack: use spec.organizationId and spec.appName")
    .field_path(".appId"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.interval) || duration(self.interval) >= duration('5s')")
    .message("spec.interval must be at least 5s")
    .field_path(".interval"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.inFlightInterval) || duration(self.inFlightInterval) >= duration('2s')")
    .message("spec.inFlightInterval must be at least 2s")
    .field_path(".inFlightInterval"))]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderWatchSpec {
    /// The release system: edas, sae or appstack.
    pub provider: Provider,

    /// Alibaba Cloud region, e.g. cn-hangzhou. Picks the public endpoint when `endpoint` is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,

    /// Explicit endpoint URL (private endpoints, proxies, the simulator). http is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"))]
    pub endpoint: Option<String>,

    /// EDAS or SAE application id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub app_id: Option<String>,

    /// AppStack organization id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub organization_id: Option<String>,

    /// AppStack application name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub app_name: Option<String>,

    /// AppStack: only orders touching these environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub env_names: Option<Vec<String>>,

    /// AppStack: only orders in these states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub states: Option<Vec<AppStackState>>,

    /// Secret in this namespace holding the credentials (accessKeyId, accessKeySecret and
    /// optional securityToken for edas/sae; token for appstack).
    pub credentials_secret_ref: SecretRef,

    /// How often to poll when no order is in flight (Go duration, default 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub interval: Option<String>,

    /// How often to poll while any order is in flight (Go duration, default 15s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub in_flight_interval: Option<String>,

    /// What to keep of finished orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,

    /// Stop polling (existing ChangeOrders are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// EDAS/SAE request signing scheme: v3 (ACS3-HMAC-SHA256, default) or roa (HMAC-SHA1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_version: Option<SignatureVersion>,

    /// UTC offset of the zone-less times EDAS and SAE report (default +08:00).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[+-]([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub time_zone: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of a Secret in the watch's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, KubeSchema)]
#[x_kube(validation = kube::core::Rule::new("!has(self.maxAge) || duration(self.maxAge) >= duration('1m')")
    .message("spec.retention.maxAge must be at least 1m (0s would delete every finished order at once)")
    .field_path(".maxAge"))]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep at most this many finished orders (newest first). Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_finished: Option<u32>,
    /// Delete finished orders older than this (Go duration; unset keeps them regardless of age).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub max_age: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    #[default]
    V3,
    Roa,
}

/// AppStack order states usable as a filter.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AppStackState {
    Init,
    Preparing,
    Running,
    Stopping,
    Suspending,
    Suspended,
    Success,
    Failed,
    Canceled,
}

impl AppStackState {
    pub fn as_str(self) -> &'static str {
        match self {
            AppStackState::Init => "INIT",
            AppStackState::Preparing => "PREPARING",
            AppStackState::Running => "RUNNING",
            AppStackState::Stopping => "STOPPING",
            AppStackState::Suspending => "SUSPENDING",
            AppStackState::Suspended => "SUSPENDED",
            AppStackState::Success => "SUCCESS",
            AppStackState::Failed => "FAILED",
            AppStackState::Canceled => "CANCELED",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderWatchStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` says whether the last poll worked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// The value of the reconcile-request annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<OrderCounts>,
}

/// Counts of this watch's ChangeOrders by phase.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCounts {
    pub total: u32,
    pub in_flight: u32,
    pub pending: u32,
    pub running: u32,
    pub awaiting_confirmation: u32,
    pub awaiting_approval: u32,
    pub paused: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub unknown: u32,
}
