//! One reconcile of a ChangeOrderWatch: decide whether a poll is due, poll, plan, apply, report.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tokio::time::Instant;

use crate::cloud::client::Target;
use crate::cloud::common::merge;
use crate::cloud::credentials::Credentials;
use crate::cloud::error::{CloudError, ErrorKind};
use crate::cloud::model::CloudOrder;
use crate::controller::args::parse_duration;
use crate::controller::context::{Context, Error, Memory};
use crate::controller::plan::{self, Retention};
use crate::controller::report::{self, publish_phase_event, record_phase_metrics, update_gauges};
use crate::controller::schedule::{self, Decision, Facts};
use crate::controller::watch_status::{self, Outcome, reason};
use crate::crd::{ChangeOrder, ChangeOrderWatch, Phase, RECONCILE_REQUEST_ANNOTATION, labels};
use crate::mapping::{self, label_value};

pub const FIELD_MANAGER: &str = "changeorder-operator";

/// Describes of one poll run at most this many at a time (each call still takes from the budget).
const DESCRIBE_CONCURRENCY: usize = 4;

pub async fn reconcile(watch: Arc<ChangeOrderWatch>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_watch(&watch, &ctx).await;
    let label = match &result {
        Ok(_) => "ok",
        Err(e) => e.name(),
    };
    ctx.metrics.reconciled(label, started.elapsed());
    result
}

pub fn error_policy(_watch: Arc<ChangeOrderWatch>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %error, "reconcile failed");
    // API-server trouble: retry soon, but not hot.
    Action::requeue(schedule::jitter(
        Duration::from_secs(5).min(ctx.settings.max_error_backoff),
        rand::random(),
    ))
}

fn watch_duration(value: Option<&str>, default: Duration) -> Duration {
    // The schema already enforces the format; a value it let through but we cannot read falls
    // back to the default rather than stopping the watch.
    value.and_then(|v| parse_duration(v).ok()).unwrap_or(default)
}

async fn reconcile_watch(watch: &ChangeOrderWatch, ctx: &Context) -> Result<Action, Error> {
    let ns = watch.namespace().ok_or(Error::NoNamespace)?;
    let uid = watch.uid().ok_or(Error::NoUid)?;
    if watch.meta().deletion_timestamp.is_some() {
        ctx.forget(&uid);
        return Ok(Action::await_change());
    }
    // Decisions below read the caches: before their first full list they would show orders
    // and Secrets as missing (and so rewrite statuses or report a Secret as absent).
    if ctx.is_stopping() {
        return Ok(Action::await_change());
    }
    ctx.caches_synced().await;
    let now = Timestamp::now();
    let generation = watch.metadata.generation;
    let status = watch.status.as_ref();
    let request = watch.annotations().get(RECONCILE_REQUEST_ANNOTATION).cloned();
    let refresh_requested = request.is_some()
        && request.as_deref() != status.and_then(|s| s.last_handled_reconcile_at.as_deref());

    let target = match Target::from_spec(&watch.spec) {
        Ok(t) => t,
        Err(message) => {
            write_watch_status(watch, ctx, Outcome::InvalidSpec(message), request, now).await?;
            return Ok(Action::await_change());
        }
    };
    if watch.spec.suspend == Some(true) {
        write_watch_status(watch, ctx, Outcome::Suspended, request, now).await?;
        return Ok(Action::await_change());
    }

    let secret_name = &watch.spec.credentials_secret_ref.name;
    let secret_version = ctx
        .secrets
        .get(&ObjectRef::new(secret_name).within(&ns))
        .map(|s| s.metadata.resource_version.clone().unwrap_or_default());
    let mut memory = ctx.memory(&uid);
    let existing_objects = orders_of(ctx, &ns, &watch.name_any());
    let in_flight = existing_objects.iter().any(|o| {
        o.status
            .as_ref()
            .and_then(|s| s.phase)
            .is_none_or(|p| !p.is_terminal())
    });
    let interval = watch_duration(watch.spec.interval.as_deref(), ctx.settings.default_interval);
    let fast = watch_duration(
        watch.spec.in_flight_interval.as_deref(),
        ctx.settings.default_in_flight_interval,
    );
    let normal = if in_flight { fast.min(interval) } else { interval };
    let period = if memory.failures > 0 {
        let backoff = schedule::error_backoff(
            memory.failures,
            fast.min(interval),
            ctx.settings.max_error_backoff,
        );
        backoff.max(memory.retry_after.unwrap_or_default())
    } else {
        normal
    };
    let since_last_poll = match memory.last_poll {
        Some(t) => t.elapsed(),
        None => {
            let recorded = status
                .and_then(|s| s.last_poll_time.as_ref())
                .map(|t| now.duration_since(t.0).unsigned_abs());
            let assumed = schedule::assumed_since_last_poll(recorded, period, rand::random());
            memory.last_poll = Some(Instant::now().checked_sub(assumed).unwrap_or_else(Instant::now));
            ctx.remember(&uid, memory.clone());
            assumed
        }
    };
    let facts = Facts {
        generation_changed: status.and_then(|s| s.observed_generation) != generation,
        refresh_requested,
        secret_changed: memory
            .secret_version
            .as_ref()
            .is_some_and(|v| *v != secret_version),
        credentials_rejected: memory.credentials_rejected,
        since_last_poll,
        period,
    };
    let decision = schedule::decide(&facts);
    tracing::debug!(watch = %watch.name_any(), namespace = %ns, ?decision, "scheduled");
    match decision {
        Decision::AwaitChange => return Ok(Action::await_change()),
        Decision::Wait(d) => return Ok(Action::requeue(d)),
        Decision::PollNow => {}
    }

    memory.last_poll = Some(Instant::now());
    memory.secret_version = Some(secret_version.clone());
    let outcome = match poll(
        watch,
        ctx,
        &ns,
        &target,
        secret_version,
        &mut memory,
        &existing_objects,
        now,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(e) => {
            ctx.remember(&uid, memory);
            return Err(e);
        }
    };
    let next = match &outcome {
        Outcome::Polled(counts) => {
            memory.failures = 0;
            memory.credentials_rejected = false;
            memory.retry_after = None;
            if counts.in_flight > 0 {
                fast.min(interval)
            } else {
                interval
            }
        }
        _ => {
            memory.failures = memory.failures.saturating_add(1);
            let backoff = schedule::error_backoff(
                memory.failures,
                fast.min(interval),
                ctx.settings.max_error_backoff,
            );
            backoff.max(memory.retry_after.unwrap_or_default())
        }
    };
    ctx.metrics.poll(
        target.provider,
        match &outcome {
            Outcome::Polled(_) => "ok",
            Outcome::Failed { reason, .. } => reason,
            _ => "other",
        },
    );
    let rejected = memory.credentials_rejected;
    tracing::debug!(watch = %watch.name_any(), namespace = %ns, ?outcome, "polled");
    ctx.remember(&uid, memory);
    write_watch_status(watch, ctx, outcome, request, now).await?;
    update_gauges(ctx);
    if rejected {
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(schedule::jitter(next, rand::random())))
}

/// ChangeOrders of one watch, from the cache.
fn orders_of(ctx: &Context, ns: &str, watch_name: &str) -> Vec<Arc<ChangeOrder>> {
    let label = label_value(watch_name);
    ctx.orders
        .state()
        .into_iter()
        .filter(|o| o.metadata.namespace.as_deref() == Some(ns))
        .filter(|o| o.labels().get(labels::WATCH) == Some(&label))
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn poll(
    watch: &ChangeOrderWatch,
    ctx: &Context,
    ns: &str,
    target: &Target,
    secret_version: Option<String>,
    memory: &mut Memory,
    existing_objects: &[Arc<ChangeOrder>],
    now: Timestamp,
) -> Result<Outcome, Error> {
    // Only this poll's outcome decides whether the credentials are rejected.
    memory.credentials_rejected = false;
    let secret_name = &watch.spec.credentials_secret_ref.name;
    let credentials = match credentials(ctx, ns, secret_name, target.provider, secret_version, memory).await?
    {
        Ok(c) => c,
        Err(message) => {
            memory.credentials_rejected = true;
            return Ok(Outcome::Failed {
                reason: reason::INVALID_CREDENTIALS,
                message,
            });
        }
    };
    let listed = match ctx.cloud.list(target, &credentials).await {
        Ok(l) => l,
        Err(e) => return Ok(failure(e, memory)),
    };
    let existing = plan::existing_by_id(existing_objects);
    let wanted = plan::to_describe(&listed, &existing);
    // On shutdown the remaining describes are skipped: what the list says is written instead.
    let described: Vec<(String, Result<CloudOrder, CloudError>)> = futures::stream::iter(wanted)
        .take_while(|_| futures::future::ready(!ctx.is_stopping()))
        .map(|id| {
            let credentials = &credentials;
            async move {
                let r = ctx.cloud.describe(target, credentials, &id).await;
                (id, r)
            }
        })
        .buffer_unordered(DESCRIBE_CONCURRENCY)
        .collect()
        .await;

    let mut orders: BTreeMap<String, CloudOrder> = listed.into_iter().map(|o| (o.id.clone(), o)).collect();
    let mut describe_error = None;
    for (id, result) in described {
        match result {
            Ok(detail) => {
                // The list (or, for an order that fell off it, the stored object) fills what the
                // detail reply lacks, such as EDAS's FinishTime.
                let base = orders
                    .get(&id)
                    .cloned()
                    .or_else(|| existing.get(id.as_str()).map(|o| plan::as_listed(o)));
                let merged = match base {
                    Some(listed) => merge(&listed, detail),
                    None => detail,
                };
                orders.insert(id, merged);
            }
            // Gone from the cloud: what the list (or the stored object) says stands.
            Err(e) if e.kind() == ErrorKind::OrderNotFound => {}
            Err(e) => {
                tracing::debug!(order = %id, error = %e, "describe failed, keeping listed data");
                describe_error.get_or_insert(e);
            }
        }
    }
    let orders: Vec<CloudOrder> = orders.into_values().collect();

    let retention = Retention {
        max_finished: watch
            .spec
            .retention
            .as_ref()
            .and_then(|r| r.max_finished)
            .unwrap_or(ctx.settings.default_max_finished) as usize,
        max_age: watch
            .spec
            .retention
            .as_ref()
            .and_then(|r| r.max_age.as_deref())
            .and_then(|a| parse_duration(a).ok()),
    };
    let planned = plan::plan(watch, &target.app, &orders, &existing, &retention, now);
    let mut phases: HashMap<String, Phase> = existing
        .iter()
        .filter_map(|(id, o)| {
            o.status
                .as_ref()
                .and_then(|s| s.phase)
                .map(|p| (id.to_string(), p))
        })
        .collect();
    for desired in planned.desired {
        let stored = existing.get(desired.spec.change_order_id.as_str()).copied();
        if let Some(p) = desired.status.as_ref().and_then(|s| s.phase) {
            phases.insert(desired.spec.change_order_id.clone(), p);
        }
        apply_order(ctx, ns, desired, stored, now).await?;
    }
    let api: Api<ChangeOrder> = Api::namespaced(ctx.client.clone(), ns);
    for name in &planned.prune {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => tracing::info!(changeorder = %name, "pruned by retention"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        phases
            .retain(|id, _| existing.get(id.as_str()).and_then(|o| o.metadata.name.as_deref()) != Some(name));
    }
    if let Some(e) = describe_error {
        return Ok(failure(e, memory));
    }
    Ok(Outcome::Polled(watch_status::counts(phases.into_values())))
}

fn failure(e: CloudError, memory: &mut Memory) -> Outcome {
    let reason = match e.kind() {
        ErrorKind::Throttled => reason::THROTTLED,
        ErrorKind::InvalidCredentials | ErrorKind::SignatureMismatch => {
            memory.credentials_rejected = true;
            reason::INVALID_CREDENTIALS
        }
        ErrorKind::AppNotFound => reason::APP_NOT_FOUND,
        _ => reason::PROVIDER_ERROR,
    };
    memory.retry_after = e.retry_after();
    Outcome::Failed {
        reason,
        message: e.to_string(),
    }
}

/// Credentials from the watch's Secret; the inner error is for the user (names the Secret or
/// key, never a value), the outer one is an API failure worth retrying.
async fn credentials(
    ctx: &Context,
    ns: &str,
    name: &str,
    provider: crate::cloud::model::Provider,
    version: Option<String>,
    memory: &mut Memory,
) -> Result<Result<Credentials, String>, Error> {
    let Some(version) = version else {
        return Ok(Err(format!(
            "Secret {ns}/{name} (spec.credentialsSecretRef.name) not found"
        )));
    };
    if let Some((cached_version, creds)) = &memory.credentials
        && *cached_version == version
    {
        return Ok(Ok(creds.clone()));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = match api.get_opt(name).await? {
        Some(s) => s,
        None => {
            return Ok(Err(format!(
                "Secret {ns}/{name} (spec.credentialsSecretRef.name) not found"
            )));
        }
    };
    let map: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    match Credentials::from_bytes_map(provider, &map) {
        Ok(c) => {
            memory.credentials = Some((version, c.clone()));
            Ok(Ok(c))
        }
        Err(e) => Ok(Err(format!("Secret {ns}/{name}: {e}"))),
    }
}

/// Write one ChangeOrder if (and only if) it differs from the cached copy; publish its phase
/// transitions as Events and metrics.
async fn apply_order(
    ctx: &Context,
    ns: &str,
    mut desired: ChangeOrder,
    stored: Option<&ChangeOrder>,
    now: Timestamp,
) -> Result<(), Error> {
    let api: Api<ChangeOrder> = Api::namespaced(ctx.client.clone(), ns);
    let name = desired.name_any();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut status = desired.status.take().unwrap_or_default();
    let mut written = stored.cloned();
    if plan::needs_spec_write(&desired, stored) {
        written = Some(api.patch(&name, &params, &Patch::Apply(&desired)).await?);
    }
    let generation = written.as_ref().and_then(|o| o.metadata.generation);
    mapping::observe_generation(&mut status, generation);
    desired.status = Some(status.clone());
    if plan::needs_status_write(&desired, stored) {
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

/// Write the watch's status when it differs from the stored one; publish an Event when the
/// Ready reason changes (not on every poll).
async fn write_watch_status(
    watch: &ChangeOrderWatch,
    ctx: &Context,
    outcome: Outcome,
    request: Option<String>,
    now: Timestamp,
) -> Result<(), Error> {
    let previous = watch.status.as_ref();
    let desired = watch_status::desired(watch_status::Input {
        previous,
        generation: watch.metadata.generation,
        outcome,
        handled_request: request,
        now,
        heartbeat: ctx.settings.status_heartbeat,
    });
    if previous == Some(&desired) {
        return Ok(());
    }
    let ns = watch.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": ChangeOrderWatch::api_version(&()),
        "kind": ChangeOrderWatch::kind(&()),
        "status": desired,
    });
    api.patch_status(
        &watch.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;

    report::watch_ready_changed(ctx, watch, previous, &desired).await;
    Ok(())
}
