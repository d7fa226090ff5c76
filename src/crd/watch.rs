use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::crd::Phase;
use changeorder_cloud::model::Provider;

/// What to poll: one application of one release system.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changeorder.io",
    version = "v1alpha1",
    kind = "ChangeOrderWatch",
    doc = "ChangeOrderWatch polls one application's change orders in Alibaba Cloud EDAS, SAE or \
           Yunxiao AppStack and keeps one ChangeOrder per cloud order in this namespace. Its \
           status says whether polling works (Ready, Stalled, Reconciling) and how the newest \
           order is going (status.latestOrder, LatestOrderSucceeded, LatestOrderAwaitingInput).",
    namespaced,
    status = "ChangeOrderWatchStatus",
    shortname = "cow",
    category = "alibabacloud",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Latest Order","type":"string","jsonPath":".status.latestOrder.changeOrderId"}"#,
    printcolumn = r#"{"name":"Latest Phase","type":"string","jsonPath":".status.latestOrder.phase"}"#,
    printcolumn = r#"{"name":"In Flight","type":"integer","jsonPath":".status.orders.inFlight"}"#,
    printcolumn = r#"{"name":"Last Poll","type":"date","jsonPath":".status.lastPollTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"App ID","type":"string","priority":1,"jsonPath":".spec.appId"}"#,
    printcolumn = r#"{"name":"App Name","type":"string","priority":1,"jsonPath":".spec.appName"}"#,
    printcolumn = r#"{"name":"Orders","type":"integer","priority":1,"jsonPath":".status.orders.total"}"#,
    printcolumn = r#"{"name":"Latest Reason","type":"string","priority":1,"jsonPath":".status.latestOrder.reason"}"#,
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
#[x_kube(validation = kube::core::Rule::new("self.provider == 'sae' || !has(self.namespaceId)")
    .message("spec.namespaceId applies only to provider sae")
    .field_path(".namespaceId"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.interval) || duration(self.interval) >= duration('5s')")
    .message("spec.interval must be at least 5s")
    .field_path(".interval"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.inFlightInterval) || duration(self.inFlightInterval) >= duration('2s')")
    .message("spec.inFlightInterval must be at least 2s")
    .field_path(".inFlightInterval"))]
#[x_kube(validation = kube::core::Rule::new("[has(self.credentialsSecretRef), has(self.serviceAccountRef), has(self.credentials)].filter(x, x).size() == 1")
    .message("exactly one credential source: set one of spec.credentialsSecretRef, spec.serviceAccountRef and spec.credentials")
    .field_path(".credentialsSecretRef")
    .reason(kube::core::Reason::FieldValueInvalid))]
#[x_kube(validation = kube::core::Rule::new("self.provider != 'appstack' || has(self.credentialsSecretRef)")
    .message("provider appstack authenticates with a personal access token: use spec.credentialsSecretRef (spec.serviceAccountRef and spec.credentials apply to edas and sae)")
    .field_path(".credentialsSecretRef")
    .reason(kube::core::Reason::FieldValueRequired))]
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

    /// SAE namespace of the app (e.g. `cn-hangzhou:prod`). With it, the watches of one namespace
    /// that use the same credentials find new orders with one shared `ListNamespaceChangeOrders`
    /// per interval instead of a list per app. sae only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub namespace_id: Option<String>,

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
    /// optional securityToken for edas/sae; token for appstack). One of credentialsSecretRef,
    /// serviceAccountRef and credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,

    /// Keyless (RRSA): a ServiceAccount in this namespace whose token the operator exchanges at
    /// STS (AssumeRoleWithOIDC) for temporary credentials of a RAM role. edas and sae only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_ref: Option<ServiceAccountRef>,

    /// Other credential sources; today only `source: OperatorIdentity`, the operator's own
    /// identity, which the cluster admin allows per namespace. edas and sae only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsSource>,

    /// How often to list the app's orders, which finds new ones; with no order in flight, how
    /// often to poll (Go duration, default 1m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub interval: Option<String>,

    /// How often to poll while any order is in flight (Go duration, default 15s). Between two
    /// lists such a poll describes only the orders in flight, one call each; on an account
    /// whose call budget cannot serve every watch this often, the budget sets the pace.
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

    /// Which ChangeOrderActions the operator may carry out on this watch's orders (it must also
    /// run with --enable-actions). Unset allows none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<WatchActions>,
}

/// The per-watch opt-in for acting on orders from Kubernetes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchActions {
    /// Actions allowed on this watch's orders: Confirm, Abort, AbortAndRollback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub allowed: Vec<crate::crd::ActionKind>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of a Secret in the watch's namespace (a DNS subdomain, as Kubernetes names Secrets).
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::crd::DNS_SUBDOMAIN))]
    pub name: String,
}

/// A ServiceAccount whose identity a watch uses (RRSA). The RAM role and OIDC provider come
/// from these fields or, when unset, from the ServiceAccount's annotations
/// `changeorder.io/role-arn` and `changeorder.io/oidc-provider-arn`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountRef {
    /// Name of a ServiceAccount in the watch's namespace (a DNS subdomain).
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::crd::DNS_SUBDOMAIN))]
    pub name: String,
    /// Must be the watch's own namespace when set: a watch may never use another namespace's
    /// ServiceAccount. (Kept in the schema so such a reference is refused, not silently dropped.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = crate::crd::DNS_LABEL))]
    pub namespace: Option<String>,
    /// RAM role to assume, e.g. `acs:ram::1234567890123456:role/changeorder-reader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^acs:ram::[^\s]+:role/[^\s]+$")
    )]
    pub role_arn: Option<String>,
    /// The cluster's OIDC provider in RAM, e.g. `acs:ram::1234567890123456:oidc-provider/ack-rrsa-c123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^acs:ram::[^\s]+:oidc-provider/[^\s]+$")
    )]
    pub oidc_provider_arn: Option<String>,
}

/// A credential source that is neither a Secret nor a ServiceAccount of the watch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSource {
    /// The source: OperatorIdentity (the only one today).
    pub source: CredentialSourceKind,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum CredentialSourceKind {
    /// The operator's own identity, in the official default-chain order: the
    /// `ALIBABA_CLOUD_ACCESS_KEY_*` variables, the RRSA variables of its pod, the node's ECS RAM
    /// role. Usable only in namespaces the admin lists (`--operator-identity-namespaces`).
    OperatorIdentity,
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

impl ChangeOrderWatchSpec {
    /// The fields that say what to poll, as the cloud layer reads them.
    pub fn target_spec(&self) -> changeorder_cloud::target::TargetSpec {
        use changeorder_cloud::sign::Scheme;
        changeorder_cloud::target::TargetSpec {
            provider: self.provider,
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            app_id: self.app_id.clone(),
            organization_id: self.organization_id.clone(),
            app_name: self.app_name.clone(),
            env_names: self.env_names.clone(),
            states: self
                .states
                .as_ref()
                .map(|states| states.iter().map(|s| s.as_str().to_string()).collect()),
            signature: self.signature_version.map(|v| match v {
                SignatureVersion::V3 => Scheme::V3,
                SignatureVersion::Roa => Scheme::Roa,
            }),
            time_zone: self.time_zone.clone(),
        }
    }

    /// What to poll, validated; the error names the field.
    pub fn target(&self) -> Result<changeorder_cloud::Target, changeorder_cloud::target::TargetError> {
        changeorder_cloud::Target::from_spec(&self.target_spec())
    }
}

/// How EDAS and SAE requests are signed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// ACS3-HMAC-SHA256, the current Alibaba Cloud scheme.
    #[default]
    V3,
    /// The older ROA scheme (HMAC-SHA1), for gateways that only accept it.
    Roa,
}

/// AppStack order states usable as a filter (`spec.states`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AppStackState {
    /// Created, not started.
    Init,
    /// Preparing to run.
    Preparing,
    /// Running.
    Running,
    /// Being stopped.
    Stopping,
    /// Being paused.
    Suspending,
    /// Paused until a person resumes it.
    Suspended,
    /// Finished successfully.
    Success,
    /// Finished with a failure.
    Failed,
    /// Cancelled.
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

/// What the operator last saw: whether polling works, and how the newest order is going.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderWatchStatus {
    /// The `metadata.generation` of the spec the last reconcile acted on. Lower than
    /// `metadata.generation` while a spec change has not been acted on yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions, one per type. `Ready`: the last poll worked (reason `Polled`) or why
    /// it did not. `Stalled`: polling cannot succeed until a person fixes something (reason
    /// InvalidCredentials, InvalidSpec, AppNotFound, Forbidden or EndpointNotAllowed).
    /// `Reconciling`: no poll has finished yet, or a transient failure (Throttled,
    /// ProviderError) is being retried. `LatestOrderSucceeded`: True when the newest
    /// order succeeded, False when it failed or was cancelled, Unknown while it is in flight or
    /// there is none. `LatestOrderAwaitingInput`: the newest order waits for a person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// When the cloud was last polled, successfully or not. Refreshed only with another change
    /// or once per status heartbeat (`--status-heartbeat`), so quiet polls write nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll_time: Option<Time>,
    /// When a poll last succeeded (same refresh rule as lastPollTime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// The value of the `changeorder.io/reconcile-requested-at` annotation last acted on; equal
    /// to the annotation once the requested poll has happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// This watch's ChangeOrders by phase, as of the last successful poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<OrderCounts>,
    /// The newest of this watch's ChangeOrders: the one with the latest `spec.createTime`, ties
    /// broken by the greater `spec.changeOrderId`. A newer order replaces it as soon as it is
    /// seen, even while this one still runs. Absent while the watch has no ChangeOrder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_order: Option<LatestOrder>,
    /// Progress of the history backfill: the finished orders first seen finished (written from
    /// the list, without batches) that are described once each, newest first, from call budget
    /// no other poll needs. Informational: a backfill in progress does not change `Ready`.
    /// Absent until the backfill first runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryProgress>,
    /// Set while the account's call budget (`--calls-per-minute`) cannot list every watch that
    /// shares it at its interval: how often this watch lists instead, e.g. `7m30s`. Every watch
    /// of the account is slowed alike; orders in flight keep their share. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paced_interval: Option<String>,
}

/// How far the history backfill is (see `status.history`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryProgress {
    /// Finished orders of this watch whose details are stored (`status.detailed` on the
    /// ChangeOrder).
    pub described: u32,
    /// Finished orders still to describe (those retention keeps, and not gone from the cloud).
    pub remaining: u32,
}

/// A summary of one ChangeOrder, enough for a pipeline to follow it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatestOrder {
    /// Name of the ChangeOrder object in this namespace.
    pub name: String,
    /// The cloud's id of the order (EDAS/SAE ChangeOrderId, AppStack sn).
    pub change_order_id: String,
    /// The order's phase (see the ChangeOrder's status.phase). Absent until the order has a
    /// status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The reason of the phase, e.g. ManualBatchConfirmation or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the cloud created the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<Time>,
    /// When the order finished; set only for finished (Succeeded, Failed, Cancelled) orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// The order's message (the cloud's own words when it has any, e.g. why it failed), cut to
    /// 256 characters; the ChangeOrder has the whole text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Counts of this watch's ChangeOrders by phase.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderCounts {
    /// All ChangeOrders of the watch.
    pub total: u32,
    /// Orders not yet finished (any phase but Succeeded, Failed and Cancelled).
    pub in_flight: u32,
    /// Orders in phase Pending.
    pub pending: u32,
    /// Orders in phase Running.
    pub running: u32,
    /// Orders in phase AwaitingConfirmation.
    pub awaiting_confirmation: u32,
    /// Orders in phase AwaitingApproval.
    pub awaiting_approval: u32,
    /// Orders in phase Paused.
    pub paused: u32,
    /// Orders in phase Succeeded.
    pub succeeded: u32,
    /// Orders in phase Failed.
    pub failed: u32,
    /// Orders in phase Cancelled.
    pub cancelled: u32,
    /// Orders in phase Unknown.
    pub unknown: u32,
}
