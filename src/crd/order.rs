use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use changeorder_cloud::model::Provider;

/// One cloud change order, as the cloud reports it. Written by the controller only.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[kube(
    group = "changeorder.io",
    version = "v1alpha1",
    kind = "ChangeOrder",
    doc = "ChangeOrder mirrors one Alibaba Cloud EDAS, SAE or Yunxiao AppStack change order (one \
           release: its batches, the confirmations and approvals it waits for, and how it \
           ended). Written only by the operator, owned by the ChangeOrderWatch that found it. \
           Conditions: Ready (succeeded), Stalled (failed or cancelled), Reconciling (in \
           flight), AwaitingInput (a person must act), Degraded (SAE reports an exception).",
    namespaced,
    // `kubectl get co --field-selector spec.changeOrderId=ID` finds an order by its cloud id
    // without knowing the object's name (the name also carries the watch's name).
    selectable = ".spec.changeOrderId",
    status = "ChangeOrderStatus",
    shortname = "co",
    category = "alibabacloud",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider"}"#,
    printcolumn = r#"{"name":"Order ID","type":"string","jsonPath":".spec.changeOrderId"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Batch","type":"integer","jsonPath":".status.currentBatch"}"#,
    printcolumn = r#"{"name":"Batches","type":"integer","jsonPath":".status.batchCount"}"#,
    printcolumn = r#"{"name":"Created","type":"date","jsonPath":".spec.createTime"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"App","type":"string","priority":1,"jsonPath":".metadata.labels.changeorder\\.io/app"}"#,
    printcolumn = r#"{"name":"Creator","type":"string","priority":1,"jsonPath":".spec.creator"}"#,
    printcolumn = r#"{"name":"Description","type":"string","priority":1,"jsonPath":".spec.description"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderSpec {
    /// The release system that runs the order: edas, sae or appstack.
    pub provider: Provider,
    /// The cloud's id of the order: EDAS/SAE `ChangeOrderId`, AppStack `sn`. Selectable:
    /// `kubectl get co --field-selector spec.changeOrderId=ID`.
    pub change_order_id: String,
    /// EDAS or SAE application id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// AppStack organization id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// AppStack application name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// The order's type as the cloud names it (EDAS/SAE `CoType`, AppStack `type`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    /// EDAS/SAE `CoTypeCode`, e.g. CoDeploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
    /// The order's description as entered in the cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who created the order, as the cloud names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// When the cloud created the order. Orders are ordered by this time (then by id) to find a
    /// watch's latest order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<Time>,
    /// How batches advance: `Automatic` or `Manual` (a person confirms each next batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_type: Option<String>,
    /// AppStack environments the order deploys to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_names: Vec<String>,
}

pub use changeorder_cloud::status::Phase;

/// Where the order stands, as the cloud last reported it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderStatus {
    /// The `metadata.generation` this status was written for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Running, AwaitingConfirmation, AwaitingApproval, Paused, Succeeded, Failed,
    /// Cancelled or Unknown (a provider value outside the known table; see providerStatus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Reason of the phase, as in the `Ready`/`Stalled`/`Reconciling` conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The provider's status value exactly as reported (e.g. `8`, `RUNNING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_status: Option<String>,
    /// SAE `SubStatus`, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_sub_status: Option<i64>,
    /// When the order finished, as the cloud reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    /// How many batches the order has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_count: Option<u32>,
    /// 1-based index of the batch in progress (or the last one when finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_batch: Option<u32>,
    /// The order's batches in order, when the cloud reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<BatchStatus>,
    /// True once the order's details (batches, the cloud's message) have been read with a
    /// describe call and stored. An order already finished when the watch first listed it is
    /// written from the list without them; the history backfill describes it once, from call
    /// budget no other poll needs, and sets this. A finished order with `detailed: true` is
    /// never described again, also after a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detailed: Option<bool>,
    /// kstatus conditions, one per type: Ready (succeeded; Unknown for phase Unknown), Stalled
    /// (failed or cancelled), Reconciling (in flight), AwaitingInput (a person must confirm a
    /// batch, approve or resume), Degraded (SAE SubStatus 1, an exception during execution).
    /// Each reason is the phase's reason; the message is the cloud's own words when it has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// One batch of an order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchStatus {
    /// The batch's name as the provider reports it.
    pub name: String,
    /// The batch's state as the provider reports it.
    pub state: String,
    /// When the batch started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the batch ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// The provider's message for the batch, e.g. why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
