//! One reconcile of a ChangeOrderWatch, in steps: validate the spec, decide whether a poll is
//! due, poll (credentials → fetch → plan → apply), write the watch's status.

use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use tokio::time::Instant;

pub use crate::controller::apply::FIELD_MANAGER;
use crate::controller::apply::{self, Applied};
use crate::controller::backfill;
use crate::controller::context::{Context, Error, Memory};
use crate::controller::fetch;
use crate::controller::identity::{IdentityError, Source};
use crate::controller::namespace_lists;
use crate::controller::plan;
use crate::controller::report;
use crate::controller::schedule::{self, Decision, Facts, Pace, Standing};
use crate::controller::spec::WatchConfig;
use crate::controller::watch_status::{self, Outcome, reason};
use crate::crd::{ChangeOrder, ChangeOrderWatch, LatestOrder, RECONCILE_REQUEST_ANNOTATION};
use crate::mapping::label_value;
use changeorder_cloud::account::refuses_key;
use changeorder_cloud::credentials::{Credentials, check_secret_type};
use changeorder_cloud::error::{CloudError, ErrorKind};
use changeorder_cloud::http::{Claim, Demand};
use changeorder_cloud::model::Provider;

pub async fn reconcile(watch: Arc<ChangeOrderWatch>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = guarded(reconcile_watch(&watch, &ctx)).await;
    let label = match &result {
        Ok(_) => "ok",
        Err(e) => e.name(),
    };
    ctx.metrics.reconciled(label, started.elapsed());
    result
}

/// Run a reconcile so that a panic in it (a bug) fails this watch's reconcile instead of
/// ending the process and every other watch with it.
async fn guarded<F>(fut: F) -> Result<Action, Error>
where
    F: std::future::Future<Output = Result<Action, Error>>,
{
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic payload".to_string());
            Err(Error::Panicked(message))
        }
    }
}

pub fn error_policy(_watch: Arc<ChangeOrderWatch>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %error, "reconcile failed");
    // API-server trouble (or a bug): retry soon, but not hot.
    Action::requeue(schedule::jitter(
        Duration::from_secs(5).min(ctx.settings.max_error_backoff),
        rand::random(),
    ))
}

async fn reconcile_watch(watch: &ChangeOrderWatch, ctx: &Context) -> Result<Action, Error> {
    let ns = watch.namespace().ok_or(Error::NoNamespace)?;
    let uid = watch.uid().ok_or(Error::NoUid)?;
    if watch.meta().deletion_timestamp.is_some() {
        ctx.forget(&uid);
        return Ok(Action::await_change());
    }
    if ctx.is_stopping() {
        return Ok(Action::await_change());
    }
    // Decisions below read the caches: before their first full list they would show orders
    // and Secrets as missing (and so rewrite statuses or report a Secret as absent).
    ctx.caches_synced().await;
    let now = Timestamp::now();
    let request = watch.annotations().get(RECONCILE_REQUEST_ANNOTATION).cloned();

    let config = match WatchConfig::from_spec(&watch.spec, &ctx.settings) {
        Ok(c) => c,
        Err(e) => {
            write_watch_status(
                watch,
                ctx,
                Outcome::InvalidSpec(e.to_string()),
                None,
                request,
                now,
                None,
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    if watch.spec.suspend == Some(true) {
        write_watch_status(watch, ctx, Outcome::Suspended, None, request, now, None).await?;
        return Ok(Action::await_change());
    }
    // Checked before anything is read or sent: a tenant's endpoint outside the operator's policy
    // gets no signed request, token or call budget. A policy change needs a restart, a spec
    // change reconciles again.
    if let Err(e) = config.check_endpoint(&ctx.settings.allowed_endpoints) {
        write_watch_status(
            watch,
            ctx,
            Outcome::EndpointNotAllowed(e.to_string()),
            None,
            request,
            now,
            None,
        )
        .await?;
        return Ok(Action::await_change());
    }

    let mut memory = ctx.memory(&uid);
    let objects = orders_of(ctx, &ns, &watch.name_any());
    let pace = Pace {
        interval: config.interval,
        fast: config.fast_interval(),
        max_error_backoff: ctx.settings.max_error_backoff,
    };
    let in_flight = objects.iter().any(|o| !plan::is_settled(o));
    let secret_version = secret_version(ctx, &ns, watch);
    let period = pace.period(standing(&memory, in_flight));
    let forced = match due(
        watch,
        &mut memory,
        period,
        &secret_version,
        request.as_deref(),
        now,
    ) {
        (Decision::Wait(d), _) => {
            // Between polls, an idle watch spends what the account's budget spares on its
            // history (`backfill`).
            let back = if in_flight || memory.failures > 0 || memory.credentials_rejected {
                None
            } else {
                let w = backfill::Watch {
                    watch,
                    ns: &ns,
                    config: &config,
                    objects: &objects,
                };
                backfill_step(ctx, &w, secret_version, &mut memory, now).await?
            };
            ctx.remember(&uid, memory);
            return Ok(Action::requeue(back.map_or(d, |b| b.min(d))));
        }
        (Decision::PollNow, forced) => forced,
    };
    let discover = schedule::lists(&schedule::ListFacts {
        in_flight,
        forced,
        failures: memory.failures,
        since_last_list: memory.last_list.map(|t| t.elapsed()),
        interval: config.interval.max(memory.list_every),
    });

    let previous_poll = memory.last_poll.replace(Instant::now());
    let previous_secret = memory.secret_version.replace(secret_version.clone());
    let polled = Poll {
        watch,
        uid: &uid,
        ctx,
        ns: &ns,
        config: &config,
        objects: &objects,
        discover,
        forced,
        now,
    }
    .run(secret_version, &mut memory)
    .await;
    let (outcome, latest) = match polled {
        Ok(Polled::Done(outcome, latest)) => (outcome, *latest),
        Ok(Polled::Deferred(wait)) => {
            // The account's budget is spent: come back when it allows a poll rather than wait
            // for it here, holding one of the reconcile slots every other watch needs.
            memory.last_poll = previous_poll;
            memory.secret_version = previous_secret;
            ctx.remember(&uid, memory);
            return Ok(Action::requeue(wait));
        }
        Err(e) => {
            ctx.remember(&uid, memory);
            return Err(e);
        }
    };
    // Orders that cannot be written do not make the cloud a failure: the poll pace stays.
    let ok = matches!(outcome, Outcome::Polled(_) | Outcome::WriteFailed { .. });
    memory.failures = if ok { 0 } else { memory.failures.saturating_add(1) };
    if ok {
        memory.retry_after = None;
    }
    ctx.metrics.poll(
        config.target.provider,
        match &outcome {
            Outcome::Polled(_) => "ok",
            Outcome::Failed { reason, .. } => reason,
            Outcome::WriteFailed { .. } => reason::ORDER_WRITE_FAILED,
            _ => "other",
        },
    );
    let in_flight = match &outcome {
        Outcome::Polled(c) | Outcome::WriteFailed { counts: c, .. } => c.in_flight > 0,
        _ => in_flight,
    };
    let next = pace.period(standing(&memory, in_flight));
    let pacing = ok.then_some((config.interval, memory.list_every));
    tracing::debug!(watch = %watch.name_any(), namespace = %ns, ?outcome, "polled");
    ctx.remember(&uid, memory);
    write_watch_status(watch, ctx, outcome, latest, request, now, pacing).await?;
    let next = if in_flight {
        schedule::jitter_in_flight(next, rand::random())
    } else {
        schedule::jitter(next, rand::random())
    };
    // An idle watch comes back soon for its history (the orders this poll wrote are not in
    // the cache yet, so the next reconcile decides whether any is owed).
    let next = if ok && !in_flight {
        next.min(backfill::PAUSE)
    } else {
        next
    };
    Ok(Action::requeue(next))
}

/// A backfill step, when the watch owes history a describe: `None` when nothing is owed or
/// the credentials cannot be had now (the next poll reports why).
async fn backfill_step(
    ctx: &Context,
    w: &backfill::Watch<'_>,
    secret_version: Option<String>,
    memory: &mut Memory,
    now: Timestamp,
) -> Result<Option<Duration>, Error> {
    if !backfill::pending(w, memory, now) {
        // Nothing owed: no credentials needed, only the progress brought up to date.
        backfill::record(ctx, w, now).await?;
        return Ok(None);
    }
    let credentials = match credentials(ctx, w.ns, w.config, secret_version, memory).await {
        Ok(c) => c,
        Err(PollError::Kube(e)) => return Err(e.into()),
        Err(_) => return Ok(None),
    };
    ctx.cloud.identify(&credentials).await;
    Ok(backfill::step(ctx, w, &credentials, memory, now).await?)
}

fn standing(memory: &Memory, in_flight: bool) -> Standing {
    Standing {
        in_flight,
        failures: memory.failures,
        retry_after: memory.retry_after,
        credentials_rejected: memory.credentials_rejected,
        round: memory.round,
        list_every: memory.list_every,
    }
}

/// resourceVersion of the watch's Secret in the cache (`None`: absent).
fn secret_version(ctx: &Context, ns: &str, watch: &ChangeOrderWatch) -> Option<String> {
    let secret = watch.spec.credentials_secret_ref.as_ref()?;
    ctx.secrets
        .get(&ObjectRef::new(&secret.name).within(ns))
        .map(|s| s.metadata.resource_version.clone().unwrap_or_default())
}

/// Whether a poll is due now, and whether it is forced (the spec, a refresh request or the
/// Secret changed) rather than due by time. A process that has not polled this watch yet
/// assumes the last poll was when the status says (spread over one period, so a restart does
/// not poll all at once).
fn due(
    watch: &ChangeOrderWatch,
    memory: &mut Memory,
    period: Duration,
    secret_version: &Option<String>,
    request: Option<&str>,
    now: Timestamp,
) -> (Decision, bool) {
    let status = watch.status.as_ref();
    let since_last_poll = match memory.last_poll {
        Some(t) => t.elapsed(),
        None => {
            let recorded = status
                .and_then(|s| s.last_poll_time.as_ref())
                .map(|t| now.duration_since(t.0).unsigned_abs());
            let assumed = schedule::assumed_since_last_poll(recorded, period, rand::random());
            memory.last_poll = Some(Instant::now().checked_sub(assumed).unwrap_or_else(Instant::now));
            assumed
        }
    };
    let facts = Facts {
        generation_changed: status.and_then(|s| s.observed_generation) != watch.metadata.generation,
        refresh_requested: request.is_some()
            && request != status.and_then(|s| s.last_handled_reconcile_at.as_deref()),
        secret_changed: memory
            .secret_version
            .as_ref()
            .is_some_and(|v| v != secret_version),
        since_last_poll,
        period,
    };
    let decision = schedule::decide(&facts);
    tracing::debug!(watch = %watch.name_any(), ?decision, "scheduled");
    (decision, facts.forced())
}

/// ChangeOrders of one watch, from the cache.
fn orders_of(ctx: &Context, ns: &str, watch_name: &str) -> Vec<Arc<ChangeOrder>> {
    ctx.orders.of_watch(ns, &label_value(watch_name))
}

/// What a poll came to.
enum Polled {
    /// The outcome, and the watch's newest order after the poll (`None`: not known, keep).
    Done(Outcome, Box<Option<Option<LatestOrder>>>),
    /// Not started: the call budget or a rate limit allows it only after this long.
    Deferred(Duration),
}

/// Why a poll did not complete, as the watch reports it.
#[derive(Debug, thiserror::Error)]
enum PollError {
    /// Not a failure: the account's budget is spent for now.
    #[error("call budget spent for {0:?}")]
    Deferred(Duration),
    /// The Secret is missing or unusable; the message names it, never a value.
    #[error("{0}")]
    Credentials(String),
    /// A keyless identity the watch cannot use, with the Ready reason saying why.
    #[error("{message}")]
    Identity { reason: &'static str, message: String },
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The API server failed: the reconcile is retried.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// One poll of one watch: what it reads and where it writes.
struct Poll<'a> {
    watch: &'a ChangeOrderWatch,
    uid: &'a str,
    ctx: &'a Context,
    ns: &'a str,
    config: &'a WatchConfig,
    /// The watch's ChangeOrders, from the cache.
    objects: &'a [Arc<ChangeOrder>],
    /// List the app's orders (discovery); otherwise describe only the orders in flight.
    discover: bool,
    /// Asked for now (spec, Secret or a reconcile request): an older shared list will not do.
    forced: bool,
    now: Timestamp,
}

impl Poll<'_> {
    /// Credentials → fetch → plan → apply. Cloud and credential failures become the watch's
    /// outcome; an API-server failure is the reconcile's error.
    async fn run(&self, secret_version: Option<String>, memory: &mut Memory) -> Result<Polled, Error> {
        let rejected_before = std::mem::take(&mut memory.credentials_rejected);
        let mut latest = None;
        let outcome = match self.steps(secret_version, memory).await {
            Ok((fetched, applied, newest)) => {
                count_write_failures(self.ctx, self.config, &applied);
                latest = Some(newest);
                match fetched.first_failure() {
                    // The orders were written as far as known; the watch still reports it.
                    Some(e) => failure(e, memory, self.keyless()),
                    None => polled(&applied),
                }
            }
            Err(PollError::Deferred(wait)) => {
                memory.credentials_rejected = rejected_before;
                return Ok(Polled::Deferred(wait));
            }
            Err(PollError::Kube(e)) => return Err(e.into()),
            Err(PollError::Credentials(message)) => {
                memory.credentials_rejected = true;
                Outcome::Failed {
                    reason: reason::INVALID_CREDENTIALS,
                    message,
                }
            }
            Err(PollError::Identity { reason, message }) => {
                memory.credentials_rejected = true;
                Outcome::Failed { reason, message }
            }
            Err(PollError::Cloud(e)) => failure(&e, memory, self.keyless()),
        };
        Ok(Polled::Done(outcome, Box::new(latest)))
    }

    /// How this poll finds new orders: the SAE namespace's shared list when the watch names
    /// its namespace and has listed recently (`namespace_lists::serves`), its own list
    /// otherwise.
    fn discovery<'a>(
        &'a self,
        credentials: &'a Credentials,
        memory: &Memory,
        own: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> fetch::Listing<'a> {
        let target = &self.config.target;
        let (Some(namespace), changeorder_cloud::model::AppRef::Id(app)) =
            (self.watch.spec.namespace_id.as_deref(), &target.app)
        else {
            return fetch::Listing::Cloud;
        };
        let since_list = memory.last_list.map(|t| t.elapsed());
        if target.provider != Provider::Sae || !namespace_lists::serves(self.config.interval, since_list) {
            return fetch::Listing::Cloud;
        }
        let now = Instant::now();
        let fresh_after = if self.forced {
            now
        } else {
            now.checked_sub(self.config.interval / 2).unwrap_or(now)
        };
        fetch::Listing::Namespace(
            &self.ctx.namespace_lists,
            namespace_lists::Request {
                target,
                credentials,
                namespace,
                app,
                own,
                fresh_after,
            },
        )
    }

    /// Whether the watch's credentials come from its ServiceAccount (exchanged keys).
    fn keyless(&self) -> bool {
        matches!(self.config.source, Source::ServiceAccount(_))
    }

    /// Keyless keys the cloud refuses are dropped, to be exchanged again at the next poll.
    fn refused(&self, e: &CloudError, credentials: &Credentials) {
        if matches!(self.config.source, Source::ServiceAccount(_)) && refuses_key(e) {
            self.ctx.identities.refused(credentials);
        }
    }

    async fn steps(
        &self,
        secret_version: Option<String>,
        memory: &mut Memory,
    ) -> Result<(fetch::Fetched, Applied, Option<LatestOrder>), PollError> {
        let (ctx, watch) = (self.ctx, self.watch);
        let credentials = credentials(ctx, self.ns, self.config, secret_version, memory).await?;
        // Whose budget these credentials spend (their account), learned once per credential.
        ctx.cloud.identify(&credentials).await;
        let existing = plan::existing_by_id(self.objects, &watch.name_any());
        let in_flight = self.objects.iter().filter(|o| !plan::is_settled(o)).count();
        let misses = &memory.describe_misses;
        // Between discovery lists, the orders still open stand in for the list; a poll that
        // would describe nothing lists instead.
        let known = plan::known_open(&existing);
        let describes = plan::to_describe(&known, &existing, misses).len();
        let own = |id: &str| existing.contains_key(id);
        let (listing, calls) = if self.discover || describes == 0 {
            (
                self.discovery(&credentials, memory, &own),
                in_flight.saturating_add(1),
            )
        } else {
            (fetch::Listing::Known(known), describes)
        };
        // Start only when the account's budget allows every call of the poll.
        let claim = Claim {
            poller: self.uid,
            in_flight: in_flight > 0,
        };
        let calls = u32::try_from(calls).unwrap_or(u32::MAX);
        if let Some(wait) = ctx
            .cloud
            .wait_before(&self.config.target, &credentials, calls, &claim)
        {
            return Err(PollError::Deferred(wait));
        }
        let started = Instant::now();
        let fetched = fetch::fetch(
            &ctx.cloud,
            &self.config.target,
            &credentials,
            listing,
            |listed| plan::to_describe(listed, &existing, misses),
            &|| ctx.is_stopping(),
        )
        .await
        .inspect_err(|e| self.refused(e, &credentials))?;
        if let Some(e) = fetched.first_failure() {
            self.refused(e, &credentials);
        }
        if fetched.from_cloud {
            memory.last_list = Some(started);
            memory.lists_shared = fetched.shared;
        }
        let planned = plan::plan(plan::Input {
            watch,
            app: &self.config.target.app,
            fetched: &fetched,
            existing: &existing,
            superseded: plan::superseded(self.objects, &existing),
            retention: &self.config.retention,
            misses,
            now: self.now,
        });
        memory.describe_misses = planned.misses.clone();
        let latest = newest_after(&planned, &existing);
        let applied = apply::apply(ctx, self.ns, planned, &existing, self.now).await?;
        // What the next polls will cost decides how often the account's budget lets each
        // watch with orders in flight poll (see `Budget::round`).
        let in_flight = watch_status::counts(applied.phases.values().copied()).in_flight;
        let demand = Demand {
            poller: self.uid,
            describes: in_flight,
            interval: if memory.lists_shared {
                Duration::ZERO
            } else {
                self.config.interval
            },
        };
        let pacing = ctx.cloud.pace(&self.config.target, &credentials, &demand);
        memory.round = pacing.round;
        memory.list_every = pacing.list_every;
        Ok((fetched, applied, latest))
    }
}

/// The watch's newest order once the plan is applied: the objects written, the stored ones
/// otherwise, without the pruned ones (the cache lags behind the writes just made).
fn newest_after(planned: &plan::Plan, existing: &plan::Existing<'_>) -> Option<LatestOrder> {
    let pruned: HashSet<&str> = planned.prune.iter().map(String::as_str).collect();
    let written: HashSet<&str> = planned
        .desired
        .iter()
        .map(|o| o.spec.change_order_id.as_str())
        .collect();
    let mut after: Vec<&ChangeOrder> = planned.desired.iter().collect();
    after.extend(existing.values().copied().filter(|o| {
        !written.contains(o.spec.change_order_id.as_str())
            && o.metadata.name.as_deref().is_none_or(|n| !pruned.contains(n))
    }));
    watch_status::latest_order(&after)
}

fn polled(applied: &Applied) -> Outcome {
    let counts = watch_status::counts(applied.phases.values().copied());
    if applied.failures.is_empty() {
        return Outcome::Polled(counts);
    }
    let first = &applied.failures[0];
    Outcome::WriteFailed {
        counts,
        message: format!(
            "{} of the orders could not be written (the others were): order {}: {}",
            applied.failures.len(),
            first.order_id,
            first.message
        ),
    }
}

/// Every order that could not be written is counted. The watch's Ready condition names the
/// first, and its Event comes with the condition's change (not on every poll).
fn count_write_failures(ctx: &Context, config: &WatchConfig, applied: &Applied) {
    for f in &applied.failures {
        ctx.metrics.order_write_failed(config.target.provider, f.cause);
    }
}

/// A failed poll as the watch reports it. Refused credentials of a Secret wait for the Secret
/// to change; refused keyless keys were dropped (see [`Poll::refused`]) and the next poll, at
/// the error backoff, exchanges again.
fn failure(e: &CloudError, memory: &mut Memory, keyless: bool) -> Outcome {
    let reason = watch_status::failure_reason(e.kind());
    if !(keyless && refuses_key(e))
        && matches!(
            e.kind(),
            ErrorKind::InvalidCredentials | ErrorKind::SignatureMismatch
        )
    {
        memory.credentials_rejected = true;
    }
    memory.retry_after = e.retry_after();
    Outcome::Failed {
        reason,
        message: e.to_string(),
    }
}

/// Credentials from the watch's one source: its Secret, its ServiceAccount (RRSA) or the
/// operator's own identity.
async fn credentials(
    ctx: &Context,
    ns: &str,
    config: &WatchConfig,
    version: Option<String>,
    memory: &mut Memory,
) -> Result<Credentials, PollError> {
    let keyless = match &config.source {
        Source::Secret(name) => return secret_credentials(ctx, ns, name, config, version, memory).await,
        Source::ServiceAccount(r) => {
            ctx.identities
                .service_account(&ctx.client, ns, r, &ctx.metrics)
                .await
        }
        Source::OperatorIdentity => ctx.identities.operator(ns).await,
    };
    keyless.map_err(|e| match e {
        IdentityError::Cloud(e) => PollError::Cloud(e),
        IdentityError::Kube(e) => PollError::Kube(e),
        IdentityError::ServiceAccountNotFound(message) => PollError::Identity {
            reason: reason::SERVICE_ACCOUNT_NOT_FOUND,
            message,
        },
        IdentityError::NotAllowed(message) => PollError::Identity {
            reason: reason::IDENTITY_NOT_ALLOWED,
            message,
        },
        IdentityError::Invalid(message) => PollError::Credentials(message),
    })
}

/// Credentials from the watch's Secret, cached by the Secret's resourceVersion and the
/// provider. Errors name the Secret or key, never a value.
async fn secret_credentials(
    ctx: &Context,
    ns: &str,
    name: &str,
    config: &WatchConfig,
    version: Option<String>,
    memory: &mut Memory,
) -> Result<Credentials, PollError> {
    let provider = config.target.provider;
    let not_found = || {
        PollError::Credentials(format!(
            "Secret {ns}/{name} (spec.credentialsSecretRef.name) not found"
        ))
    };
    let version = version.ok_or_else(not_found)?;
    if let Some((cached_version, cached_provider, creds)) = &memory.credentials
        && *cached_version == version
        && *cached_provider == provider
    {
        return Ok(creds.clone());
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = api.get_opt(name).await?.ok_or_else(not_found)?;
    check_secret_type(secret.type_.as_deref())
        .map_err(|e| PollError::Credentials(format!("Secret {ns}/{name}: {e}")))?;
    let map: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let creds = Credentials::from_bytes_map(provider, &map)
        .map_err(|e| PollError::Credentials(format!("Secret {ns}/{name}: {e}")))?;
    memory.credentials = Some((version, provider, creds.clone()));
    Ok(creds)
}

/// Write the watch's status when it differs from the stored one; publish an Event when the
/// Ready reason changes (not on every poll).
async fn write_watch_status(
    watch: &ChangeOrderWatch,
    ctx: &Context,
    outcome: Outcome,
    latest: Option<Option<LatestOrder>>,
    request: Option<String>,
    now: Timestamp,
    pacing: Option<(Duration, Duration)>,
) -> Result<(), Error> {
    let previous = watch.status.as_ref();
    let input = watch_status::Input {
        previous,
        generation: watch.metadata.generation,
        outcome,
        handled_request: request,
        now,
        heartbeat: ctx.settings.status_heartbeat,
        pacing,
    };
    let desired = watch_status::desired_with_latest(input, latest);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_reconcile_is_an_error_not_the_end_of_the_process() {
        let err = guarded(async {
            let tz = "+08:3é";
            // What the time-zone parser once did on non-ASCII input.
            let (_, _) = tz.split_at(6);
            Ok(Action::await_change())
        })
        .await
        .expect_err("panic is caught");
        assert_eq!(err.name(), "Panicked");
        assert!(err.to_string().contains("char boundary"), "{err}");
        assert!(guarded(async { Ok(Action::await_change()) }).await.is_ok());
    }
}
