use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use crate::cloud::model::Provider;

/// One cloud change order, as the cloud reports it. Written by the controller only.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[kube(
    group = "changeorder.io",
    version = "v1alpha1",
    kind = "ChangeOrder",
    namespaced,
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
    pub provider: Provider,
    /// EDAS/SAE `ChangeOrderId`, AppStack `sn`.
    pub change_order_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// The order's type as the cloud names it (EDAS/SAE `CoType`, AppStack `type`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    /// EDAS/SAE `CoTypeCode`, e.g. CoDeploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<Time>,
    /// `Automatic` or `Manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_type: Option<String>,
    /// AppStack environments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_names: Vec<String>,
}

/// Where an order stands. See the contract for the mapping from provider values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum Phase {
    Pending,
    Running,
    AwaitingConfirmation,
    AwaitingApproval,
    Paused,
    Succeeded,
    Failed,
    Cancelled,
    Unknown,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::Pending,
        Phase::Running,
        Phase::AwaitingConfirmation,
        Phase::AwaitingApproval,
        Phase::Paused,
        Phase::Succeeded,
        Phase::Failed,
        Phase::Cancelled,
        Phase::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Running => "Running",
            Phase::AwaitingConfirmation => "AwaitingConfirmation",
            Phase::AwaitingApproval => "AwaitingApproval",
            Phase::Paused => "Paused",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Cancelled => "Cancelled",
            Phase::Unknown => "Unknown",
        }
    }

    /// Finished for good: the cloud will not change it again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed | Phase::Cancelled)
    }

    /// Still moving, so worth polling often. `Unknown` is not: a status outside the table
    /// (or an order the cloud no longer has) would otherwise keep a watch on the fast
    /// interval forever; it counts as finished for scheduling and retention.
    pub fn is_in_flight(self) -> bool {
        !self.is_terminal() && self != Phase::Unknown
    }

    /// A person has to act (confirm a batch, approve, resume).
    pub fn awaits_input(self) -> bool {
        matches!(
            self,
            Phase::AwaitingConfirmation | Phase::AwaitingApproval | Phase::Paused
        )
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_count: Option<u32>,
    /// 1-based index of the batch in progress (or the last one when finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_batch: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batches: Vec<BatchStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchStatus {
    pub name: String,
    /// The batch's state as the provider reports it.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
