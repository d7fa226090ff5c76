//! Settling a call whose outcome is unknown (interrupted, or unanswered) by reading the order:
//! never by sending it again.

use kube::runtime::controller::Action;

use super::claim::Expect;
use super::finish::finish;
use super::prepare::prepare_for_reading;
use super::{ActionError, Ctx, READ_RETRY, Verdict, reason};
use crate::crd::{ActionKind, ChangeOrderAction, ChangeOrderActionStatus, ObservedOrder, Phase};
use crate::mapping;
use changeorder_cloud::model::CloudOrder;

/// Whether a write whose reply never came took effect, judged from the order before and now:
/// `Some(true)` it did, `Some(false)` not (yet), `None` the order changed another way.
pub fn took_effect(kind: ActionKind, before: &ObservedOrder, now: &CloudOrder) -> Option<bool> {
    let (phase, _) = mapping::classify(now.provider, &now.status);
    match kind {
        ActionKind::Confirm => {
            let unchanged =
                now.status.to_string() == before.provider_status && now.current_batch == before.current_batch;
            match phase {
                _ if unchanged => Some(false),
                // A confirmation starts a batch; it never terminates the order.
                Phase::Cancelled => None,
                _ => Some(true),
            }
        }
        ActionKind::Abort | ActionKind::AbortAndRollback => match phase {
            Phase::Cancelled => Some(true),
            p if p.is_in_flight() => Some(false),
            _ => None,
        },
    }
}

/// A verdict for an interrupted or unanswered call, from a read of the order.
pub fn settle(kind: ActionKind, before: &ObservedOrder, now: &CloudOrder, why: &str) -> Verdict {
    let (phase, _) = mapping::classify(now.provider, &now.status);
    let seen = match now.current_batch {
        Some(b) => format!("{phase} at batch {b}"),
        None => phase.to_string(),
    };
    match took_effect(kind, before, now) {
        Some(true) => Verdict::succeeded(
            kind,
            format!("{why}; the order is now {seen}, so the {kind} took effect (not sent again)"),
        ),
        Some(false) => Verdict::failed(
            reason::OUTCOME_UNKNOWN,
            format!(
                "{why}; the order is still {seen}, so the {kind} has not taken effect. It was not \
                 sent again: check the order in the console, then create a new ChangeOrderAction if needed"
            ),
        ),
        None => Verdict::failed(
            reason::OUTCOME_UNKNOWN,
            format!(
                "{why}; the order is now {seen}: whether the {kind} did that is unknown. It was not \
                 sent again: check the order in the console"
            ),
        ),
    }
}

/// A verdict for a write the API answered with a refusal of its own, from a read of the order
/// made after it: the refusal is taken at its word unless the order shows the effect (the answer
/// was to a resend of a write the cloud had carried out).
pub fn settle_rejected(kind: ActionKind, before: &ObservedOrder, now: &CloudOrder, answer: &str) -> Verdict {
    match took_effect(kind, before, now) {
        Some(true) => settle(kind, before, now, &format!("the cloud answered {answer}")),
        _ => {
            let (phase, _) = mapping::classify(now.provider, &now.status);
            Verdict::failed(
                reason::REJECTED,
                format!("the cloud rejected the call: {answer}; the order is {phase}. Not sent again"),
            )
        }
    }
}

/// A request found `Executing`: the process that sent it stopped before recording the outcome.
pub(super) async fn settle_interrupted(
    action: &ChangeOrderAction,
    status: &ChangeOrderActionStatus,
    ctx: &Ctx,
    ns: &str,
) -> Result<Action, ActionError> {
    let kind = action.spec.action;
    let attempt = Expect::Attempt(status.attempt_id.clone());
    let why = "the operator stopped while the call was under way";
    let before = status.observed_before.clone().unwrap_or_default();
    // Reading needs the same references; the switches are not asked again (the call was made).
    let prepared = match prepare_for_reading(action, ctx, ns).await? {
        Ok(p) => p,
        Err(e) => {
            let v = Verdict::failed(
                reason::OUTCOME_UNKNOWN,
                format!(
                    "{why}, and the order cannot be read now ({e}); it was not sent again: check the order in the console"
                ),
            );
            return finish(action, &attempt, ctx, ns, v, None, None, None).await;
        }
    };
    let id = status
        .change_order_id
        .clone()
        .unwrap_or_else(|| prepared.order.spec.change_order_id.clone());
    let verdict = match ctx
        .cloud
        .describe(&prepared.target, &prepared.credentials, &id)
        .await
    {
        Ok(now) => settle(kind, &before, &now, why),
        Err(e) if e.is_retryable() => return Ok(Action::requeue(e.retry_after().unwrap_or(READ_RETRY))),
        Err(e) => Verdict::failed(
            reason::OUTCOME_UNKNOWN,
            format!(
                "{why}, and reading the order failed ({e}); it was not sent again: check the order in the console"
            ),
        ),
    };
    finish(action, &attempt, ctx, ns, verdict, Some(&prepared), None, None).await
}
