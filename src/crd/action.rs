use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A request to act on one change order: confirm its next batch, abort it, or abort and roll
/// back. A separate kind (and so a separate RBAC resource) keeps reading orders and acting on
/// them apart.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "changeorder.io",
    version = "v1alpha1",
    kind = "ChangeOrderAction",
    doc = "ChangeOrderAction asks the operator to act once on one ChangeOrder in this \
           namespace: Confirm its next batch, Abort it, or AbortAndRollback. Off unless the \
           operator runs with --enable-actions and the order's ChangeOrderWatch lists the action \
           in spec.actions.allowed. The operator executes each request at most once and records \
           the outcome in status.phase (Succeeded or Failed), with the cloud's words.",
    namespaced,
    status = "ChangeOrderActionStatus",
    shortname = "coa",
    category = "alibabacloud",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Order","type":"string","jsonPath":".spec.changeOrder"}"#,
    printcolumn = r#"{"name":"Action","type":"string","jsonPath":".spec.action"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.message"}"#
)]
// A request is executed once; changing it afterwards would make its status lie.
#[x_kube(validation = kube::core::Rule::new("self == oldSelf")
    .message("spec is immutable: create a new ChangeOrderAction instead"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.expectedBatch) || self.action == 'Confirm'")
    .message("spec.expectedBatch applies only to action Confirm")
    .field_path(".expectedBatch"))]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderActionSpec {
    /// Name of the ChangeOrder object (in this namespace) to act on (a DNS subdomain).
    #[schemars(length(min = 1, max = 253), regex(pattern = crate::crd::DNS_SUBDOMAIN))]
    pub change_order: String,
    /// Confirm (start the next batch), Abort (terminate the order) or AbortAndRollback
    /// (terminate it and roll the app back; EDAS and SAE).
    pub action: ActionKind,
    /// Confirm only: act only if the order waits for confirmation at this (1-based) batch, as
    /// `status.currentBatch` of the ChangeOrder shows it. A request made for batch 2 is refused
    /// once the order has moved on, so it cannot confirm a later batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub expected_batch: Option<u32>,
}

/// What to do to the order.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, schemars::JsonSchema)]
pub enum ActionKind {
    /// Start the next batch of an order waiting for manual confirmation.
    Confirm,
    /// Terminate an order in flight.
    Abort,
    /// Terminate an order in flight and roll the application back (EDAS, SAE).
    AbortAndRollback,
}

impl ActionKind {
    pub const ALL: [ActionKind; 3] = [
        ActionKind::Confirm,
        ActionKind::Abort,
        ActionKind::AbortAndRollback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Confirm => "Confirm",
            ActionKind::Abort => "Abort",
            ActionKind::AbortAndRollback => "AbortAndRollback",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a request stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ActionPhase {
    /// Accepted, not acted on yet (guards are checked next).
    Pending,
    /// The operator is calling the cloud (recorded before the call, so a restart never sends
    /// it again: it reads the order instead to learn the outcome).
    Executing,
    /// The cloud accepted the action.
    Succeeded,
    /// Refused (a switch is off, a guard did not hold) or rejected by the cloud, or the
    /// outcome could not be known; `reason` and `message` say which.
    Failed,
}

impl ActionPhase {
    pub fn is_finished(self) -> bool {
        matches!(self, ActionPhase::Succeeded | ActionPhase::Failed)
    }
}

/// The outcome of the request. Written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOrderActionStatus {
    /// Pending, Executing, Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ActionPhase>,
    /// Why, in one word: Confirmed, Aborted, AbortedAndRolledBack, ActionsDisabled,
    /// ActionNotAllowed, GuardFailed, OrderNotFound, Unsupported, Forbidden, Rejected,
    /// OutcomeUnknown, NotSent, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened, in the cloud's own words where it said any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The cloud's id of the order acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_order_id: Option<String>,
    /// Random id of the one attempt, written before the cloud call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_id: Option<String>,
    /// The order as read just before the call: its provider status and current batch. A
    /// restart compares the order with this to learn whether the call took effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_before: Option<ObservedOrder>,
    /// The cloud's RequestId of the write call, for support tickets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// AbortAndRollback: the id of the rollback order the cloud started, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_change_order_id: Option<String>,
    /// When the cloud call started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the request finished (Succeeded or Failed). Finished requests are deleted
    /// `--action-ttl` after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// One condition, `Succeeded`: True when the action took effect, False when it failed or was
    /// refused, Unknown until then (`kubectl wait --for=condition=Succeeded`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// An order's state at one moment, as far as an action cares.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedOrder {
    /// The provider's status value (e.g. `8`).
    pub provider_status: String,
    /// 1-based batch the order was at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_batch: Option<u32>,
    /// The cloud's id of the batch waiting for confirmation (EDAS/SAE PipelineId).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
}
