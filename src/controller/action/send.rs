//! Sending the write: a fresh read of the order, the guards, the claim, the call, and the verdict
//! on its answer.

use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::claim::{Expect, claim, write_status};
use super::finish::finish;
use super::guard::{guard, observe};
use super::prepare::prepare;
use super::settle::{settle, settle_rejected};
use super::{ActionError, Ctx, READ_RETRY, Verdict, reason};
use crate::crd::{ActionKind, ActionPhase, ChangeOrderAction};
use changeorder_cloud::actions::WriteOutcome;
use changeorder_cloud::error::{CloudError, ErrorKind};

pub(super) async fn execute(action: &ChangeOrderAction, ctx: &Ctx, ns: &str) -> Result<Action, ActionError> {
    let kind = action.spec.action;
    let prepared = match prepare(action, ctx, ns).await? {
        Ok(p) => p,
        Err(v) => return finish(action, &Expect::Unclaimed, ctx, ns, v, None, None, None).await,
    };
    let id = prepared.order.spec.change_order_id.clone();
    // A fresh read: the ChangeOrder may be one poll behind.
    let fresh = match ctx
        .cloud
        .describe(&prepared.target, &prepared.credentials, &id)
        .await
    {
        Ok(o) => o,
        Err(e) if e.is_retryable() => return Ok(Action::requeue(e.retry_after().unwrap_or(READ_RETRY))),
        Err(e) => {
            let v = Verdict::failed(
                cloud_reason(&e),
                format!("cannot read the order before acting: {e}; nothing was sent"),
            );
            return finish(
                action,
                &Expect::Unclaimed,
                ctx,
                ns,
                v,
                Some(&prepared),
                None,
                None,
            )
            .await;
        }
    };
    let write = match guard(kind, action.spec.expected_batch, &fresh) {
        Ok(w) => w,
        Err(v) => {
            return finish(
                action,
                &Expect::Unclaimed,
                ctx,
                ns,
                v,
                Some(&prepared),
                None,
                None,
            )
            .await;
        }
    };
    let before = observe(&fresh);

    // Record the intent before calling: from here on the request is never sent again.
    let Some((claimed, attempt)) = claim(action, ctx, ns, &id, &before).await? else {
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let action = &claimed;
    tracing::info!(namespace = ns, action = %action.name_any(), order = %id, %kind, "sending change-order action");

    let outcome = ctx
        .cloud
        .act(&prepared.target, &prepared.credentials, &id, &write)
        .await;
    if let WriteOutcome::RefusedBeforeActing(e) | WriteOutcome::Rejected(e) | WriteOutcome::Unknown(e) =
        &outcome
        && changeorder_cloud::account::refuses_key(e)
    {
        // Keyless keys the cloud refuses are exchanged again next time.
        ctx.identities.refused(&prepared.credentials);
    }
    let verdict = match outcome {
        WriteOutcome::Accepted(written) => {
            let message = match (kind, written.message) {
                (_, Some(m)) => m,
                (ActionKind::Confirm, None) => format!(
                    "batch {} of order {id} confirmed",
                    before.current_batch.map_or("?".to_string(), |b| b.to_string())
                ),
                (ActionKind::Abort, None) => format!("order {id} aborted"),
                (ActionKind::AbortAndRollback, None) => {
                    format!("order {id} aborted; the app is being rolled back")
                }
            };
            let rollback = written
                .new_order_id
                .filter(|n| *n != id && kind == ActionKind::AbortAndRollback);
            return finish(
                action,
                &attempt,
                ctx,
                ns,
                Verdict::succeeded(kind, message),
                Some(&prepared),
                written.request_id,
                rollback,
            )
            .await;
        }
        WriteOutcome::RefusedBeforeActing(e) if e.kind == ErrorKind::Throttled => {
            // Refused before acting: safe to try again later, guards and all.
            let wait = e.retry_after().unwrap_or(Duration::from_secs(10));
            let pending = Verdict {
                phase: ActionPhase::Pending,
                reason: reason::THROTTLED,
                message: format!("the cloud throttled the call and did not act: {e}; trying again"),
            };
            // Back to Pending releases the claim. The status change wakes the controller at
            // once, but its first step, the read of the order, waits on the same rate-limit
            // gate, so the cloud's wait is kept.
            write_status(ctx, ns, action, &attempt, &pending, None, None, None).await?;
            return Ok(Action::requeue(wait));
        }
        WriteOutcome::RefusedBeforeActing(e) => refused(&e),
        WriteOutcome::Rejected(e) => {
            let answer = e.to_string();
            match ctx
                .cloud
                .describe(&prepared.target, &prepared.credentials, &id)
                .await
            {
                Ok(now) => settle_rejected(kind, &before, &now, &answer),
                Err(_) => Verdict::failed(
                    reason::REJECTED,
                    format!("the cloud rejected the call: {answer}. Not sent again"),
                ),
            }
        }
        WriteOutcome::Unknown(e) => {
            let why = format!("the call ended without a verdict ({e})");
            match ctx
                .cloud
                .describe(&prepared.target, &prepared.credentials, &id)
                .await
            {
                Ok(now) => settle(kind, &before, &now, &why),
                Err(read) => Verdict::failed(
                    reason::OUTCOME_UNKNOWN,
                    format!(
                        "{why}, and reading the order failed ({read}); it was not sent again: check the order in the console"
                    ),
                ),
            }
        }
    };
    finish(action, &attempt, ctx, ns, verdict, Some(&prepared), None, None).await
}

/// A write refused before the cloud acted, as a verdict.
fn refused(e: &CloudError) -> Verdict {
    match e.kind {
        ErrorKind::Forbidden | ErrorKind::InvalidCredentials => Verdict::failed(
            reason::FORBIDDEN,
            format!(
                "the cloud refused the call: {e}. The keys in the watch's Secret may be read-only: \
                 writes need the RAM actions sae:ConfirmPipelineBatch, sae:AbortChangeOrder, \
                 sae:AbortAndRollbackChangeOrder or edas:ManageApplication. Not retried"
            ),
        ),
        _ => Verdict::failed(
            reason::REJECTED,
            format!("the call was refused before the cloud acted: {e}. Not retried"),
        ),
    }
}

fn cloud_reason(e: &CloudError) -> &'static str {
    match e.kind {
        ErrorKind::Forbidden | ErrorKind::InvalidCredentials | ErrorKind::SignatureMismatch => {
            reason::FORBIDDEN
        }
        ErrorKind::OrderNotFound => reason::ORDER_NOT_FOUND,
        _ => reason::REJECTED,
    }
}
