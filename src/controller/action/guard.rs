//! The guards: what the order must look like, on a fresh read, for a request to be sent.

use super::{Verdict, reason};
use crate::crd::{ActionKind, ObservedOrder, Phase};
use crate::mapping;
use changeorder_cloud::actions::Write;
use changeorder_cloud::model::CloudOrder;

/// The order now, for the guards and for the record in `observedBefore`.
pub fn observe(order: &CloudOrder) -> ObservedOrder {
    let pipeline_id = order
        .current_batch
        .and_then(|b| usize::try_from(b).ok())
        .and_then(|b| order.batches.get(b.checked_sub(1)?))
        .and_then(|b| b.id.clone());
    ObservedOrder {
        provider_status: order.status.to_string(),
        current_batch: order.current_batch,
        pipeline_id,
    }
}

/// The guards, on a fresh read of the order: confirm only an order awaiting confirmation (at
/// the expected batch, when given); abort only one in flight. Returns the write to send.
pub fn guard(kind: ActionKind, expected_batch: Option<u32>, order: &CloudOrder) -> Result<Write, Verdict> {
    let (phase, _) = mapping::classify(order.provider, &order.status);
    let seen = match order.current_batch {
        Some(b) => format!("{phase} at batch {b}"),
        None => phase.to_string(),
    };
    match kind {
        ActionKind::Confirm => {
            if phase != Phase::AwaitingConfirmation {
                return Err(Verdict::failed(
                    reason::GUARD_FAILED,
                    format!("the order is {seen}, not AwaitingConfirmation; nothing was sent"),
                ));
            }
            if let Some(n) = expected_batch
                && order.current_batch != Some(n)
            {
                return Err(Verdict::failed(
                    reason::GUARD_FAILED,
                    format!(
                        "stale request: it expects the order to wait at batch {n}, but it is {seen}; nothing was sent"
                    ),
                ));
            }
            match observe(order).pipeline_id {
                Some(pipeline_id) => Ok(Write::Confirm {
                    pipeline_id,
                    confirm: true,
                }),
                None => Err(Verdict::failed(
                    reason::REJECTED,
                    "the cloud did not name the waiting batch (PipelineId); nothing was sent",
                )),
            }
        }
        ActionKind::Abort | ActionKind::AbortAndRollback => {
            if !phase.is_in_flight() {
                return Err(Verdict::failed(
                    reason::GUARD_FAILED,
                    format!("the order is {seen}, not in flight; nothing was sent"),
                ));
            }
            Ok(if kind == ActionKind::Abort {
                Write::Abort
            } else {
                Write::AbortAndRollback
            })
        }
    }
}
