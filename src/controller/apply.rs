//! Apply a plan: write each ChangeOrder that differs from its stored copy, then prune. One
//! object the API server refuses (too large, invalid) is recorded and skipped; the others are
//! still written. Only a failure of the API server itself ends the poll early.

use std::collections::HashMap;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use crate::controller::context::Context;
use crate::controller::plan::{self, Existing, Plan};
use crate::controller::report::{publish_phase_event, record_phase_metrics};
use crate::crd::{ChangeOrder, Phase};
use crate::mapping;

pub const FIELD_MANAGER: &str = "changeorder-operator";

/// Writes of one poll in flight at once (per watch; watches are reconciled concurrently too).
const WRITE_CONCURRENCY: usize = 4;

/// An order that could not be written this poll.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteFailure {
    pub order_id: String,
    /// Short cause, the metric label: `Refused` (by the operator) or `Rejected` (by the API
    /// server).
    pub cause: &'static str,
    pub message: String,
}

/// What the writes of one poll came to.
#[derive(Debug, Default)]
pub struct Applied {
    /// Phase of every order the watch now has, by id.
    pub phases: HashMap<String, Phase>,
    pub failures: Vec<WriteFailure>,
}

/// Errors that concern one object only: the rest of the poll goes on.
fn is_object_error(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if matches!(s.code, 400 | 404 | 409 | 413 | 422))
}

pub async fn apply(
    ctx: &Context,
    ns: &str,
    plan: Plan,
    existing: &Existing<'_>,
    now: Timestamp,
) -> Result<Applied, kube::Error> {
    let mut applied = Applied {
        phases: existing
            .iter()
            .filter_map(|(id, o)| Some((id.to_string(), o.status.as_ref()?.phase?)))
            .collect(),
        failures: plan
            .refused
            .into_iter()
            .map(|(order_id, message)| WriteFailure {
                order_id,
                cause: "Refused",
                message,
            })
            .collect(),
    };
    // A watch's objects are independent: write several at once, so a cold sync of a watch with
    // many orders is not one round trip after another.
    let writes = futures::stream::iter(plan.desired.into_iter().map(|desired| {
        let id = desired.spec.change_order_id.clone();
        let phase = desired.status.as_ref().and_then(|s| s.phase);
        let stored = existing.get(id.as_str()).copied();
        async move { (id, phase, apply_order(ctx, ns, desired, stored, now).await) }
    }))
    .buffer_unordered(WRITE_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    for (id, phase, result) in writes {
        match result {
            Ok(()) => {
                if let Some(p) = phase {
                    applied.phases.insert(id, p);
                }
            }
            Err(e) if is_object_error(&e) => {
                tracing::warn!(order = %id, error = %e, "cannot write ChangeOrder; going on with the others");
                applied.failures.push(WriteFailure {
                    order_id: mapping::cut(&id, 64),
                    cause: "Rejected",
                    message: mapping::cut(&e.to_string(), 512),
                });
            }
            Err(e) => return Err(e),
        }
    }
    let api: Api<ChangeOrder> = Api::namespaced(ctx.client.clone(), ns);
    for name in &plan.prune {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(changeorder = %name, "pruned"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
        applied
            .phases
            .retain(|id, _| existing.get(id.as_str()).and_then(|o| o.metadata.name.as_deref()) != Some(name));
    }
    Ok(applied)
}

/// Write one ChangeOrder if (and only if) it differs from the cached copy: spec first, then
/// status (a crash in between leaves an object without status, which the next poll completes).
/// Publish its phase transitions as Events and metrics.
async fn apply_order(
    ctx: &Context,
    ns: &str,
    mut desired: ChangeOrder,
    stored: Option<&ChangeOrder>,
    now: Timestamp,
) -> Result<(), kube::Error> {
    let api: Api<ChangeOrder> = Api::namespaced(ctx.client.clone(), ns);
    let name = desired.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut status = desired.status.take().unwrap_or_default();
    // A stored object under another name (an older naming rule) is not this object: the
    // correctly named one is created, and the old one pruned once it exists.
    let same_object = stored.filter(|s| s.metadata.name.as_deref() == Some(name.as_str()));
    let mut written = same_object.cloned();
    if plan::needs_spec_write(&desired, same_object) {
        written = Some(api.patch(&name, &params, &Patch::Apply(&desired)).await?);
    }
    let generation = written.as_ref().and_then(|o| o.metadata.generation);
    mapping::observe_generation(&mut status, generation);
    desired.status = Some(status.clone());
    if plan::needs_status_write(&desired, same_object) {
        let patch = serde_json::json!({
            "apiVersion": ChangeOrder::api_version(&()),
            "kind": ChangeOrder::kind(&()),
            "status": status,
        });
        written = Some(api.patch_status(&name, &params, &Patch::Apply(&patch)).await?);
    }
    let before = stored.and_then(|s| s.status.as_ref()).and_then(|s| s.phase);
    let after = status.phase;
    if before != after
        && let (Some(after), Some(obj)) = (after, written.as_ref())
    {
        // History first seen finished is not news; everything else is.
        if before.is_some() || !after.is_terminal() {
            publish_phase_event(ctx, obj, before, after, &status).await;
        }
        record_phase_metrics(ctx, obj, stored, after, now);
    }
    Ok(())
}
