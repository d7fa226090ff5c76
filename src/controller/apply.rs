//! Apply a plan: write each ChangeOrder that differs from its stored copy, then prune. One
//! object the API server refuses (too large, invalid) is recorded and skipped; the others are
//! still written. Only a failure of the API server itself ends the poll early.

use std::collections::HashMap;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, ValidationDirective};
use kube::{Resource, ResourceExt};

use crate::controller::context::Context;
use crate::controller::merge_patch;
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

/// What a write's reply is read for: the object's identity and generation. The rest of the
/// reply (the whole object, managedFields included) is skipped by the parser, not decoded: at a
/// cold sync of thousands of orders that decoding was a large share of the operator's CPU.
#[derive(serde::Deserialize)]
struct Written {
    metadata: WrittenMeta,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WrittenMeta {
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
}

/// What to write: a new object, or a merge patch of an object or of its status.
enum Write<'a> {
    Create(&'a ChangeOrder),
    /// The status of an object just created, at the version the create returned.
    ReplaceStatus(&'a ChangeOrder),
    Patch {
        status: bool,
        patch: &'a serde_json::Value,
    },
}

/// One write, reading back only `Written`.
async fn write(ctx: &Context, ns: &str, name: &str, what: Write<'_>) -> Result<WrittenMeta, kube::Error> {
    let request = kube::core::Request::new(ChangeOrder::url_path(&(), Some(ns)));
    let request = match what {
        Write::Create(object) => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PostParams::default()
            };
            let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
            request.create(&params, body)
        }
        Write::ReplaceStatus(object) => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PostParams::default()
            };
            let body = serde_json::to_vec(object).map_err(kube::Error::SerdeError)?;
            request.replace_subresource("status", name, &params, body)
        }
        Write::Patch { status, patch } => {
            let mut params = PatchParams {
                field_manager: Some(FIELD_MANAGER.to_string()),
                ..PatchParams::default()
            };
            // Every field we send is in the schema (the body is built from the same types as
            // the CRD): the server's unknown- and duplicate-field detection would only cost
            // CPU, and its warnings are not read.
            params.field_validation = Some(ValidationDirective::Ignore);
            let patch = Patch::Merge(patch);
            if status {
                request.patch_subresource("status", name, &params, &patch)
            } else {
                request.patch(name, &params, &patch)
            }
        }
    }
    .map_err(kube::Error::BuildRequest)?;
    Ok(ctx.client.request::<Written>(request).await?.metadata)
}

fn to_json(v: &impl serde::Serialize) -> Result<serde_json::Value, kube::Error> {
    serde_json::to_value(v).map_err(kube::Error::SerdeError)
}

/// The merge patch that brings a stored object's labels, owners and spec to the wanted ones.
/// Labels are only added or changed (others' labels stay); owners, when one is missing, are
/// replaced by the wanted list.
fn spec_patch(
    desired: &ChangeOrder,
    stored: Option<&ChangeOrder>,
) -> Result<Option<serde_json::Value>, kube::Error> {
    let mut patch = serde_json::Map::new();
    let mut meta = serde_json::Map::new();
    let stored_labels = stored.and_then(|s| s.metadata.labels.as_ref());
    let labels: serde_json::Map<String, serde_json::Value> = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, v)| stored_labels.and_then(|l| l.get(*k)) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    if !labels.is_empty() {
        meta.insert("labels".into(), labels.into());
    }
    let owners_missing = desired.metadata.owner_references.iter().flatten().any(|r| {
        !stored
            .and_then(|s| s.metadata.owner_references.as_ref())
            .is_some_and(|o| o.iter().any(|s| s.uid == r.uid))
    });
    if owners_missing {
        meta.insert(
            "ownerReferences".into(),
            to_json(&desired.metadata.owner_references)?,
        );
    }
    if !meta.is_empty() {
        patch.insert("metadata".into(), meta.into());
    }
    let stored_spec = match stored {
        Some(s) => to_json(&s.spec)?,
        None => serde_json::Value::Object(Default::default()),
    };
    if let Some(p) = merge_patch::diff(&stored_spec, &to_json(&desired.spec)?) {
        patch.insert("spec".into(), p);
    }
    Ok((!patch.is_empty()).then_some(serde_json::Value::Object(patch)))
}

/// Merge-patches the status from what is stored (nothing: the whole status) to `status`;
/// `None` when they do not differ.
async fn patch_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    stored: Option<&ChangeOrder>,
    status: &crate::crd::ChangeOrderStatus,
) -> Result<Option<WrittenMeta>, kube::Error> {
    let stored_status = match stored.and_then(|s| s.status.as_ref()) {
        Some(s) => to_json(s)?,
        None => serde_json::Value::Object(Default::default()),
    };
    let Some(diff) = merge_patch::diff(&stored_status, &to_json(status)?) else {
        return Ok(None);
    };
    let patch = serde_json::json!({ "status": diff });
    let meta = write(
        ctx,
        ns,
        name,
        Write::Patch {
            status: true,
            patch: &patch,
        },
    )
    .await?;
    Ok(Some(meta))
}

/// Write one ChangeOrder if (and only if) it differs from the cached copy: the object first,
/// then its status (the status subresource ignores status sent with the object; a crash in
/// between leaves an object without status, which the next poll completes). A new object is
/// created, as client-go would; a stored one gets merge patches of what differs. Publish its
/// phase transitions as Events and metrics.
async fn apply_order(
    ctx: &Context,
    ns: &str,
    mut desired: ChangeOrder,
    stored: Option<&ChangeOrder>,
    now: Timestamp,
) -> Result<(), kube::Error> {
    let name = desired.name_any();
    let mut status = desired.status.take().unwrap_or_default();
    // A stored object under another name (an older naming rule) is not this object: the
    // correctly named one is created, and the old one pruned once it exists.
    let same_object = stored.filter(|s| s.metadata.name.as_deref() == Some(name.as_str()));
    let mut written = None;
    let mut created_version = None;
    let mut generation = same_object.and_then(|o| o.metadata.generation);
    // A final order is cached compact (no labels, owners or most of its spec), so it cannot be
    // compared; and a finished order's object does not change. Only its status is written (a
    // history backfill adds batches).
    let compacted = same_object.is_some_and(plan::is_final);
    if !compacted && plan::needs_spec_write(&desired, same_object) {
        let created = match same_object {
            None => match write(ctx, ns, &name, Write::Create(&desired)).await {
                // There, but not in the cache yet: written as an update of what is unknown.
                Err(kube::Error::Api(e)) if e.code == 409 => None,
                other => Some(other?),
            },
            Some(_) => None,
        };
        created_version = created.as_ref().and_then(|m| m.resource_version.clone());
        let meta = match created {
            Some(meta) => Some(meta),
            None => match spec_patch(&desired, same_object)? {
                Some(patch) => Some(
                    write(
                        ctx,
                        ns,
                        &name,
                        Write::Patch {
                            status: false,
                            patch: &patch,
                        },
                    )
                    .await?,
                ),
                None => None,
            },
        };
        if let Some(meta) = meta {
            generation = meta.generation.or(generation);
            written = Some(meta);
        }
    }
    mapping::observe_generation(&mut status, generation);
    desired.status = Some(status.clone());
    if plan::needs_status_write(&desired, same_object) {
        let meta = match created_version {
            // Just created: the whole status at the version the create returned, as client-go
            // writes it (an update costs the API server less than a patch). Changed since (409):
            // patched as below.
            Some(version) => {
                let mut object = desired.clone();
                object.metadata.resource_version = Some(version);
                match write(ctx, ns, &name, Write::ReplaceStatus(&object)).await {
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        patch_status(ctx, ns, &name, None, &status).await?
                    }
                    other => Some(other?),
                }
            }
            None => patch_status(ctx, ns, &name, same_object, &status).await?,
        };
        if meta.is_some() {
            written = meta;
        }
    }
    let before = stored.and_then(|s| s.status.as_ref()).and_then(|s| s.phase);
    let after = status.phase;
    if before != after
        && let (Some(after), Some(meta)) = (after, written)
    {
        // The object as now stored: what was sent, with the identity the server gave it.
        let mut obj = desired;
        obj.metadata.uid = meta.uid;
        obj.metadata.resource_version = meta.resource_version;
        obj.metadata.generation = meta.generation.or(generation);
        // History first seen finished is not news; everything else is.
        if before.is_some() || !after.is_terminal() {
            publish_phase_event(ctx, &obj, before, after, &status).await;
        }
        record_phase_metrics(ctx, &obj, stored, after, now);
    }
    Ok(())
}
