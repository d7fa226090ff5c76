//! Where a change order stands, read from the provider's own status value: the one table every
//! layer shares (the clients decide when an order is finished with it, the operator turns it into
//! phases and conditions, the simulator's tests check their scenarios against it).

use serde::{Deserialize, Serialize};

use crate::model::{Provider, RawStatus};

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

/// Phase and condition reason for a provider's raw status value.
pub fn classify(provider: Provider, status: &RawStatus) -> (Phase, &'static str) {
    use Phase::*;
    match (provider, status) {
        (Provider::Edas | Provider::Sae, RawStatus::Code(code)) => match (provider, code) {
            (_, 0) => (Pending, "Preparing"),
            (_, 1) => (Running, "Executing"),
            (_, 2) => (Succeeded, "Succeeded"),
            (_, 3) => (Failed, "Failed"),
            (_, 6) => (Cancelled, "Terminated"),
            (Provider::Edas, 7) => (Failed, "PartiallySucceeded"),
            (_, 8) => (AwaitingConfirmation, "ManualBatchConfirmation"),
            (_, 9) => (Running, "WaitingForNextBatch"),
            (_, 10) => (Failed, "SystemError"),
            (Provider::Sae, 11) => (AwaitingApproval, "PendingApproval"),
            (Provider::Sae, 12) => (Pending, "Approved"),
            _ => (Unknown, "UnknownStatus"),
        },
        (Provider::Appstack, RawStatus::Text(state)) => match state.trim().to_ascii_uppercase().as_str() {
            "INIT" => (Pending, "Init"),
            "PREPARING" => (Pending, "Preparing"),
            "RUNNING" => (Running, "Running"),
            "STOPPING" => (Running, "Stopping"),
            "SUSPENDING" => (Running, "Suspending"),
            "SUSPENDED" => (Paused, "Suspended"),
            "SUCCESS" => (Succeeded, "Succeeded"),
            "FAILED" => (Failed, "Failed"),
            "CANCELED" => (Cancelled, "Canceled"),
            _ => (Unknown, "UnknownStatus"),
        },
        _ => (Unknown, "UnknownStatus"),
    }
}
