//! ChangeOrderActions: confirm the next batch of an order, abort it, or abort and roll back, at
//! most once per request.
//!
//! Off unless enabled twice: the operator's `--enable-actions` and the order's watch listing the
//! action in `spec.actions.allowed`. A refusal is a `Failed` status whose reason names the
//! switch (`ActionsDisabled`, `ActionNotAllowed`).
//!
//! At most once: the request's status is moved to `Executing` (with a random attempt id and the
//! order as read just before) with an optimistic-concurrency write *before* the cloud call. A
//! request found in `Executing` is never sent again; its outcome is read back from the order.
//! Crash points:
//! 1. before `Executing` is stored: nothing was sent; the request is still `Pending` and is
//!    evaluated afresh (guards checked against a new read of the order).
//! 2. after `Executing` is stored, before or during the call (the request may or may not have
//!    reached the cloud): on restart the order is read; if it shows the effect (the batch moved
//!    on, the order is terminated) the request is `Succeeded`, otherwise `Failed` with reason
//!    `OutcomeUnknown` and a message to check the console. Nothing is re-sent.
//! 3. after the cloud answered, before the outcome is stored: as 2 (the read shows the effect).
//! 4. after the outcome is stored, before the Event and the poll request: the Event is lost and
//!    the ChangeOrder shows the new state at the watch's next regular poll.
//!
//! The claim's own reply may be lost (the API server stored it, or not, and the connection
//! failed): nothing was sent, and this process knows it. A request it then finds `Executing`
//! with that attempt is recorded `Failed`, reason `NotSent`, and never sent (see `unsent`); one
//! still `Pending` is evaluated afresh (a late claim and a new one carry the same
//! resourceVersion precondition, so only one is ever stored).
//!
//! The cloud's answer is a [`WriteOutcome`](changeorder_cloud::actions::WriteOutcome). A call
//! that ends without a verdict (timeout, dropped connection, 5xx, `SignatureNonceUsed`, ...) is
//! settled the same way as 2, at once; so is a refusal of the API's own (its word is checked
//! against the order). Throttling is retried inside the call (under the shared call budget); a
//! call still throttled was refused before acting, so the request goes back to `Pending`.
//!
//! Retention: finished requests get an ownerReference to their ChangeOrder (deleted with it)
//! and are deleted `--action-ttl` after `status.completionTime`.

mod claim;
mod finish;
mod guard;
mod prepare;
mod retention;
mod send;
mod settle;
mod unsent;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::controller::context::Settings;
use crate::controller::identity::Identities;
use crate::controller::{Runtime, scoped};
use crate::crd::{ActionKind, ActionPhase, ChangeOrderAction};
use changeorder_cloud::client::CloudClient;

pub use crate::controller::context::ActionSettings;
pub use guard::{guard, observe};
pub use prepare::{allowed_by_watch, supported};
pub use settle::{settle, settle_rejected, took_effect};
pub use unsent::not_sent_verdict;

/// Status reasons, one word each.
pub mod reason {
    pub const ACTIONS_DISABLED: &str = "ActionsDisabled";
    pub const ACTION_NOT_ALLOWED: &str = "ActionNotAllowed";
    pub const ORDER_NOT_FOUND: &str = "OrderNotFound";
    pub const WATCH_NOT_FOUND: &str = "WatchNotFound";
    pub const UNSUPPORTED: &str = "Unsupported";
    pub const INVALID_WATCH: &str = "InvalidWatch";
    pub const INVALID_CREDENTIALS: &str = "InvalidCredentials";
    pub const GUARD_FAILED: &str = "GuardFailed";
    pub const FORBIDDEN: &str = "Forbidden";
    pub const REJECTED: &str = "Rejected";
    pub const OUTCOME_UNKNOWN: &str = "OutcomeUnknown";
    pub const THROTTLED: &str = "Throttled";
    pub const EXECUTING: &str = "Executing";
    pub const NOT_SENT: &str = "NotSent";
}

const FIELD_MANAGER: &str = "changeorder-operator";
/// Wait before reading the cloud again after a transient failure of a read.
const READ_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("ChangeOrderAction has no namespace")]
    NoNamespace,
}

struct Ctx {
    client: Client,
    cloud: CloudClient,
    metrics: crate::controller::metrics::Metrics,
    settings: Settings,
    recorder: crate::controller::events::Events,
    /// Keyless credentials of the watches acted on: the process's one cache, shared with the
    /// watch controllers.
    identities: Arc<Identities>,
    /// Claims whose reply was lost: stored perhaps, never sent.
    unsent: unsent::Unsent,
}

/// The ChangeOrderAction controller of one scope (a namespace or the cluster).
pub fn controller(
    client: Client,
    rt: &Runtime,
    ns: Option<String>,
    identities: Arc<Identities>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cloud: rt.cloud.clone(),
        metrics: rt.metrics.clone(),
        settings: rt.settings.clone(),
        identities,
        unsent: unsent::Unsent::default(),
        recorder: crate::controller::events::Events::new(client.clone(), rt.identity.clone()),
    });
    let api = scoped::<ChangeOrderAction>(client, ns.as_deref());
    let run = super::lean_controller(api, watcher::Config::default())
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "action controller event");
            }
            futures::future::ready(())
        });
    Box::pin(run)
}

fn error_policy(_a: Arc<ChangeOrderAction>, error: &ActionError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %error, "ChangeOrderAction reconcile failed");
    Action::requeue(Duration::from_secs(3))
}

async fn reconcile(action: Arc<ChangeOrderAction>, ctx: Arc<Ctx>) -> Result<Action, ActionError> {
    let ns = action.namespace().ok_or(ActionError::NoNamespace)?;
    if action.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let status = action.status.clone().unwrap_or_default();
    match status.phase {
        Some(p) if p.is_finished() => retention::retain(&action, &status, &ctx, &ns).await,
        // Claimed by this process, whose reply was lost: it knows nothing was sent.
        Some(ActionPhase::Executing) if ctx.unsent.claimed_unsent(&status) => {
            unsent::record_not_sent(&action, &status, &ctx, &ns).await
        }
        Some(ActionPhase::Executing) => settle::settle_interrupted(&action, &status, &ctx, &ns).await,
        _ => send::execute(&action, &ctx, &ns).await,
    }
}

/// A decided outcome, before it is written.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub phase: ActionPhase,
    pub reason: &'static str,
    pub message: String,
}

impl Verdict {
    fn failed(reason: &'static str, message: impl Into<String>) -> Verdict {
        Verdict {
            phase: ActionPhase::Failed,
            reason,
            message: message.into(),
        }
    }

    fn succeeded(kind: ActionKind, message: impl Into<String>) -> Verdict {
        Verdict {
            phase: ActionPhase::Succeeded,
            reason: success_reason(kind),
            message: message.into(),
        }
    }
}

pub fn success_reason(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Confirm => "Confirmed",
        ActionKind::Abort => "Aborted",
        ActionKind::AbortAndRollback => "AbortedAndRolledBack",
    }
}

#[cfg(test)]
mod tests;
