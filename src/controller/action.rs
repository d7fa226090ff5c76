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
//! A call that ends without a verdict (timeout, dropped connection, 5xx) is settled the same
//! way as 2, at once. Throttling is retried inside the call (under the shared call budget);
//! a call still throttled was refused before acting, so the request goes back to `Pending`.
//!
//! Retention: finished requests get an ownerReference to their ChangeOrder (deleted with it)
//! and are deleted `--action-ttl` after `status.completionTime`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::controller::context::Settings;
use crate::controller::identity::{Identities, IdentityError, Source};
use crate::controller::spec::WatchConfig;
use crate::controller::{Runtime, scoped};
use crate::crd::{
    ActionKind, ActionPhase, ChangeOrder, ChangeOrderAction, ChangeOrderActionStatus, ChangeOrderWatch,
    ObservedOrder, Phase, RECONCILE_REQUEST_ANNOTATION,
};
use crate::mapping;
use changeorder_cloud::actions::{Write, outcome_unknown};
use changeorder_cloud::client::{CloudClient, Target};
use changeorder_cloud::credentials::{Credentials, check_secret_type};
use changeorder_cloud::error::{CloudError, ErrorKind};
use changeorder_cloud::model::{CloudOrder, Provider};

/// The operator-level switch and retention of finished requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionSettings {
    /// `--enable-actions`: without it every request is refused.
    pub enabled: bool,
    /// Finished requests are deleted this long after they finished.
    pub ttl: Duration,
}

impl Default for ActionSettings {
    fn default() -> Self {
        ActionSettings {
            enabled: false,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

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
    recorder: Recorder,
    /// Keyless credentials of the watches acted on (its own cache: actions are rare).
    identities: Identities,
}

/// The ChangeOrderAction controller of one scope (a namespace or the cluster).
pub fn controller(
    client: Client,
    rt: &Runtime,
    ns: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cloud: rt.cloud.clone(),
        metrics: rt.metrics.clone(),
        settings: rt.settings.clone(),
        identities: Identities::new(rt.settings.keyless.clone()),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "changeorder-operator".into(),
                instance: Some(rt.identity.clone()),
            },
        ),
    });
    let api = scoped::<ChangeOrderAction>(client, ns.as_deref());
    let run = Controller::new(api, watcher::Config::default())
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
        Some(p) if p.is_finished() => retain(&action, &status, &ctx, &ns).await,
        Some(ActionPhase::Executing) => settle_interrupted(&action, &status, &ctx, &ns).await,
        _ => execute(&action, &ctx, &ns).await,
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

/// What a request acts on, once every switch and reference checked out.
struct Prepared {
    order: ChangeOrder,
    watch_name: String,
    target: Target,
    credentials: Credentials,
}

/// Check the switches and references (no cloud call yet).
async fn prepare(
    action: &ChangeOrderAction,
    ctx: &Ctx,
    ns: &str,
) -> Result<Result<Prepared, Verdict>, ActionError> {
    let kind = action.spec.action;
    if !ctx.settings.actions.enabled {
        return Ok(Err(Verdict::failed(
            reason::ACTIONS_DISABLED,
            "actions are disabled in the operator: it must run with --enable-actions \
             (Helm value actions.enabled=true); nothing was sent",
        )));
    }
    let orders: Api<ChangeOrder> = Api::namespaced(ctx.client.clone(), ns);
    let Some(order) = orders.get_opt(&action.spec.change_order).await? else {
        return Ok(Err(Verdict::failed(
            reason::ORDER_NOT_FOUND,
            format!("ChangeOrder {ns}/{} not found", action.spec.change_order),
        )));
    };
    let Some(watch_name) = owning_watch(&order) else {
        return Ok(Err(Verdict::failed(
            reason::WATCH_NOT_FOUND,
            format!("ChangeOrder {} has no owning ChangeOrderWatch", order.name_any()),
        )));
    };
    let watches: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), ns);
    let Some(watch) = watches.get_opt(&watch_name).await? else {
        return Ok(Err(Verdict::failed(
            reason::WATCH_NOT_FOUND,
            format!("ChangeOrderWatch {ns}/{watch_name} not found"),
        )));
    };
    if let Err(v) = allowed_by_watch(&watch, kind) {
        return Ok(Err(v));
    }
    if let Err(v) = supported(order.spec.provider, kind) {
        return Ok(Err(v));
    }
    let config = match WatchConfig::from_spec(&watch.spec, &ctx.settings) {
        Ok(c) => c,
        Err(m) => return Ok(Err(Verdict::failed(reason::INVALID_WATCH, m))),
    };
    let endpoint_ok = config
        .target
        .base_url()
        .map_err(|m| format!("spec.endpoint: {m}"))
        .and_then(|u| {
            ctx.settings
                .allowed_endpoints
                .check_url(&u)
                .map_err(|e| e.to_string())
        });
    if let Err(m) = endpoint_ok {
        return Ok(Err(Verdict::failed(reason::INVALID_WATCH, m)));
    }
    let credentials = match read_credentials(ctx, ns, &config).await? {
        Ok(c) => c,
        Err(m) => return Ok(Err(Verdict::failed(reason::INVALID_CREDENTIALS, m))),
    };
    Ok(Ok(Prepared {
        order,
        watch_name,
        target: config.target,
        credentials,
    }))
}

/// The per-watch opt-in.
pub fn allowed_by_watch(watch: &ChangeOrderWatch, kind: ActionKind) -> Result<(), Verdict> {
    let allowed = watch
        .spec
        .actions
        .as_ref()
        .is_some_and(|a| a.allowed.contains(&kind));
    if allowed {
        return Ok(());
    }
    Err(Verdict::failed(
        reason::ACTION_NOT_ALLOWED,
        format!(
            "ChangeOrderWatch {} does not allow {kind}: list it in spec.actions.allowed; nothing was sent",
            watch.name_any()
        ),
    ))
}

/// What each provider can do (AppStack has no public API for these; EDAS cannot roll back).
pub fn supported(provider: Provider, kind: ActionKind) -> Result<(), Verdict> {
    match (provider, kind) {
        (Provider::Appstack, _) => Err(Verdict::failed(
            reason::UNSUPPORTED,
            "AppStack change orders cannot be acted on: Yunxiao publishes no API for it",
        )),
        (Provider::Edas, ActionKind::AbortAndRollback) => Err(Verdict::failed(
            reason::UNSUPPORTED,
            "EDAS has no abort-and-rollback API: use Abort, then roll back in the console",
        )),
        _ => Ok(()),
    }
}

fn owning_watch(order: &ChangeOrder) -> Option<String> {
    order
        .owner_references()
        .iter()
        .find(|r| r.kind == "ChangeOrderWatch" && r.controller == Some(true))
        .map(|r| r.name.clone())
}

/// The watch's credentials from its Secret. Errors name the Secret, never a value.
async fn read_credentials(
    ctx: &Ctx,
    ns: &str,
    config: &WatchConfig,
) -> Result<Result<Credentials, String>, ActionError> {
    let provider = config.target.provider;
    let name = match &config.source {
        Source::Secret(name) => name,
        Source::ServiceAccount(r) => {
            let policy = &ctx.settings.allowed_endpoints;
            return keyless(
                ctx.identities
                    .service_account(&ctx.client, ns, r, Some(policy), &ctx.metrics)
                    .await,
            );
        }
        Source::OperatorIdentity => {
            return keyless(ctx.identities.operator(ns, &ctx.settings.allowed_endpoints).await);
        }
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(secret) = api.get_opt(name).await? else {
        return Ok(Err(format!(
            "Secret {ns}/{name} (spec.credentialsSecretRef.name of the watch) not found"
        )));
    };
    if let Err(e) = check_secret_type(secret.type_.as_deref()) {
        return Ok(Err(format!("Secret {ns}/{name}: {e}")));
    }
    let map: BTreeMap<String, Vec<u8>> = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    Ok(Credentials::from_bytes_map(provider, &map).map_err(|e| format!("Secret {ns}/{name}: {e}")))
}

/// A keyless source's answer: an API-server failure is the reconcile's; the rest (named
/// causes, never a token) refuse the request.
fn keyless(r: Result<Credentials, IdentityError>) -> Result<Result<Credentials, String>, ActionError> {
    match r {
        Ok(c) => Ok(Ok(c)),
        Err(IdentityError::Kube(e)) => Err(ActionError::Kube(e)),
        Err(e) => Ok(Err(e.to_string())),
    }
}

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

/// Whether a write whose reply never came took effect, judged from the order before and now:
/// `Some(true)` it did, `Some(false)` not (yet), `None` the order changed another way.
pub fn took_effect(kind: ActionKind, before: &ObservedOrder, now: &CloudOrder) -> Option<bool> {
    let (phase, _) = mapping::classify(now.provider, &now.status);
    match kind {
        ActionKind::Confirm => {
            let unchanged =
                now.status.to_string() == before.provider_status && now.current_batch == before.current_batch;
            Some(!unchanged)
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

async fn execute(action: &ChangeOrderAction, ctx: &Ctx, ns: &str) -> Result<Action, ActionError> {
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
    let mut claimed = action.clone();
    claimed.metadata.managed_fields = None;
    claimed.status = Some(ChangeOrderActionStatus {
        phase: Some(ActionPhase::Executing),
        reason: Some(reason::EXECUTING.into()),
        message: Some(format!("sending {kind} for order {id}")),
        change_order_id: Some(id.clone()),
        attempt_id: Some(format!("{:016x}", rand::random::<u64>())),
        observed_before: Some(before.clone()),
        start_time: Some(mapping::whole_seconds(Timestamp::now())),
        ..Default::default()
    });
    let attempt = Expect::Attempt(claimed.status.as_ref().and_then(|s| s.attempt_id.clone()));
    let api: Api<ChangeOrderAction> = Api::namespaced(ctx.client.clone(), ns);
    // `replace` carries the cached resourceVersion: if anything changed the request since it
    // was read (another replica claimed it, the cache was stale), the claim fails and nothing
    // is sent.
    let claimed = match api
        .replace_status(&action.name_any(), &PostParams::default(), &claimed)
        .await
    {
        Ok(c) => c,
        Err(kube::Error::Api(s)) if s.code == 409 => return Ok(Action::requeue(Duration::from_secs(1))),
        Err(e) => return Err(e.into()),
    };
    let action = &claimed;
    tracing::info!(namespace = ns, action = %action.name_any(), order = %id, %kind, "sending change-order action");

    let result = ctx
        .cloud
        .act(&prepared.target, &prepared.credentials, &id, &write)
        .await;
    let verdict = match result {
        Ok(written) => {
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
        Err(e) if e.kind == ErrorKind::Throttled => {
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
        Err(e) if outcome_unknown(&e) => {
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
        Err(e) => refused(&e),
    };
    finish(action, &attempt, ctx, ns, verdict, Some(&prepared), None, None).await
}

/// A cloud error that means the write was refused, as a verdict.
fn refused(e: &CloudError) -> Verdict {
    match e.kind {
        ErrorKind::Forbidden | ErrorKind::InvalidCredentials | ErrorKind::SignatureMismatch => {
            Verdict::failed(
                reason::FORBIDDEN,
                format!(
                    "the cloud refused the call: {e}. The keys in the watch's Secret may be read-only: \
                 writes need the RAM actions sae:ConfirmPipelineBatch, sae:AbortChangeOrder, \
                 sae:AbortAndRollbackChangeOrder or edas:ManageApplication. Not retried"
                ),
            )
        }
        _ => Verdict::failed(reason::REJECTED, format!("the cloud rejected the call: {e}")),
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

/// A request found `Executing`: the process that sent it stopped before recording the outcome.
async fn settle_interrupted(
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
        Err(m) => {
            let v = Verdict::failed(
                reason::OUTCOME_UNKNOWN,
                format!(
                    "{why}, and the order cannot be read now ({m}); it was not sent again: check the order in the console"
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

/// Like [`prepare`] without the switches: only what reading the order needs.
async fn prepare_for_reading(
    action: &ChangeOrderAction,
    ctx: &Ctx,
    ns: &str,
) -> Result<Result<Prepared, String>, ActionError> {
    let orders: Api<ChangeOrder> = Api::namespaced(ctx.client.clone(), ns);
    let Some(order) = orders.get_opt(&action.spec.change_order).await? else {
        return Ok(Err(format!("ChangeOrder {} not found", action.spec.change_order)));
    };
    let Some(watch_name) = owning_watch(&order) else {
        return Ok(Err("the ChangeOrder has no owning watch".into()));
    };
    let watches: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), ns);
    let Some(watch) = watches.get_opt(&watch_name).await? else {
        return Ok(Err(format!("ChangeOrderWatch {watch_name} not found")));
    };
    let config = match WatchConfig::from_spec(&watch.spec, &ctx.settings) {
        Ok(c) => c,
        Err(m) => return Ok(Err(m)),
    };
    let credentials = match read_credentials(ctx, ns, &config).await? {
        Ok(c) => c,
        Err(m) => return Ok(Err(m)),
    };
    Ok(Ok(Prepared {
        order,
        watch_name,
        target: config.target,
        credentials,
    }))
}

/// Which state a status write may replace: a request nobody claimed yet, or one claimed by this
/// attempt. Every write carries the resourceVersion it was decided on, so a decision made on a
/// stale cache can never overwrite a newer outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Expect {
    Unclaimed,
    Attempt(Option<String>),
}

impl Expect {
    fn allows(&self, status: Option<&ChangeOrderActionStatus>) -> bool {
        let phase = status.and_then(|s| s.phase);
        match self {
            Expect::Unclaimed => matches!(phase, None | Some(ActionPhase::Pending)),
            Expect::Attempt(id) => {
                phase == Some(ActionPhase::Executing)
                    && status.and_then(|s| s.attempt_id.as_ref()) == id.as_ref()
            }
        }
    }
}

/// Whether a status write happened or lost to a newer state of the request.
#[derive(Debug, PartialEq, Eq)]
enum Wrote {
    Done,
    Superseded,
}

/// Write a status (merge patch with a resourceVersion precondition). On a conflict (a user
/// changed labels, say) the request is read again and the write retried while it is still in
/// the expected state.
#[allow(clippy::too_many_arguments)]
async fn write_status(
    ctx: &Ctx,
    ns: &str,
    action: &ChangeOrderAction,
    expect: &Expect,
    v: &Verdict,
    order_id: Option<String>,
    request_id: Option<String>,
    rollback: Option<String>,
) -> Result<Wrote, ActionError> {
    let api: Api<ChangeOrderAction> = Api::namespaced(ctx.client.clone(), ns);
    let mut current = action.clone();
    for _ in 0..3 {
        if !expect.allows(current.status.as_ref()) {
            return Ok(Wrote::Superseded);
        }
        let previous = current.status.clone().unwrap_or_default();
        let now = mapping::whole_seconds(Timestamp::now());
        let status = ChangeOrderActionStatus {
            phase: Some(v.phase),
            reason: Some(v.reason.to_string()),
            message: Some(mapping::cut(&v.message, 2048)),
            change_order_id: order_id.clone().or(previous.change_order_id),
            attempt_id: previous.attempt_id,
            observed_before: previous.observed_before,
            request_id: request_id.clone().or(previous.request_id),
            rollback_change_order_id: rollback.clone().or(previous.rollback_change_order_id),
            start_time: previous.start_time,
            completion_time: v.phase.is_finished().then_some(now.clone()),
            conditions: vec![succeeded_condition(v, current.metadata.generation, now)],
        };
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": current.resource_version()},
            "status": status,
        });
        match api
            .patch_status(
                &current.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => return Ok(Wrote::Done),
            Err(kube::Error::Api(s)) if s.code == 409 => match api.get_opt(&current.name_any()).await? {
                Some(fresh) => current = fresh,
                None => return Ok(Wrote::Superseded),
            },
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Wrote::Superseded),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Wrote::Superseded)
}

/// The `Succeeded` condition for a verdict.
fn succeeded_condition(
    v: &Verdict,
    generation: Option<i64>,
    now: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Condition {
    Condition {
        type_: "Succeeded".into(),
        status: match v.phase {
            ActionPhase::Succeeded => "True",
            ActionPhase::Failed => "False",
            _ => "Unknown",
        }
        .into(),
        reason: v.reason.into(),
        message: mapping::cut(&v.message, 1024),
        last_transition_time: now,
        observed_generation: generation,
    }
}

/// Record the outcome, then tell people (an Event on the ChangeOrder) and ask the watch to poll
/// at once so the order's new state shows without waiting an interval.
#[allow(clippy::too_many_arguments)]
async fn finish(
    action: &ChangeOrderAction,
    expect: &Expect,
    ctx: &Ctx,
    ns: &str,
    v: Verdict,
    prepared: Option<&Prepared>,
    request_id: Option<String>,
    rollback: Option<String>,
) -> Result<Action, ActionError> {
    let order_id = prepared.map(|p| p.order.spec.change_order_id.clone());
    let wrote = write_status(ctx, ns, action, expect, &v, order_id, request_id, rollback).await?;
    if wrote == Wrote::Superseded {
        // Decided on a state that is no longer current: look at the request again.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if v.phase.is_finished() {
        ctx.metrics.action_finished(action.spec.action.as_str(), v.reason);
    }
    tracing::info!(
        namespace = ns,
        action = %action.name_any(),
        phase = ?v.phase,
        reason = v.reason,
        "change-order action finished"
    );
    match prepared {
        Some(p) => publish(ctx, action, &p.order.object_ref(&()), &v).await,
        // Refused before the order was found: the Event goes on the request itself.
        None => publish(ctx, action, &action.object_ref(&()), &v).await,
    }
    if let Some(p) = prepared {
        own(ctx, ns, action, &p.order).await;
        if v.phase == ActionPhase::Succeeded {
            request_poll(ctx, ns, &p.watch_name, action).await;
        }
    }
    Ok(Action::requeue(ctx.settings.actions.ttl))
}

async fn publish(
    ctx: &Ctx,
    action: &ChangeOrderAction,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    v: &Verdict,
) {
    let event = Event {
        type_: if v.phase == ActionPhase::Succeeded {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: format!(
            "{}{}",
            action.spec.action,
            if v.phase == ActionPhase::Succeeded {
                "Succeeded"
            } else {
                "Failed"
            }
        ),
        note: Some(mapping::cut(
            &format!(
                "ChangeOrderAction {}: {}: {}",
                action.name_any(),
                v.reason,
                v.message
            ),
            1024,
        )),
        action: action.spec.action.to_string(),
        secondary: Some(action.object_ref(&())),
    };
    if let Err(e) = ctx.recorder.publish(&event, regarding).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

/// Tie the request's lifetime to its order (garbage-collected with it).
async fn own(ctx: &Ctx, ns: &str, action: &ChangeOrderAction, order: &ChangeOrder) {
    let Some(uid) = order.uid() else { return };
    if action.owner_references().iter().any(|r| r.uid == uid) {
        return;
    }
    let owner = OwnerReference {
        api_version: ChangeOrder::api_version(&()).into_owned(),
        kind: ChangeOrder::kind(&()).into_owned(),
        name: order.name_any(),
        uid,
        controller: None,
        block_owner_deletion: None,
    };
    let mut refs = action.owner_references().to_vec();
    refs.push(owner);
    let api: Api<ChangeOrderAction> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({"metadata": {"ownerReferences": refs}});
    if let Err(e) = api
        .patch(&action.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(error = %e, "cannot set the owner of a ChangeOrderAction");
    }
}

/// The watch's reconcile-request annotation, set to a new value, makes it poll at once.
async fn request_poll(ctx: &Ctx, ns: &str, watch: &str, action: &ChangeOrderAction) {
    let value = format!("{}/{}", Timestamp::now(), action.name_any());
    let api: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: value}}});
    if let Err(e) = api
        .patch(watch, &PatchParams::apply(FIELD_MANAGER), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(error = %e, "cannot request a poll after an action");
    }
}

/// Finished requests live `--action-ttl` after completion.
async fn retain(
    action: &ChangeOrderAction,
    status: &ChangeOrderActionStatus,
    ctx: &Ctx,
    ns: &str,
) -> Result<Action, ActionError> {
    let ttl = ctx.settings.actions.ttl;
    let age = status
        .completion_time
        .as_ref()
        .map(|t| Timestamp::now().duration_since(t.0).unsigned_abs())
        .unwrap_or_default();
    if age < ttl {
        return Ok(Action::requeue(ttl - age + Duration::from_secs(1)));
    }
    let api: Api<ChangeOrderAction> = Api::namespaced(ctx.client.clone(), ns);
    match api.delete(&action.name_any(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use changeorder_cloud::model::{Batch, RawStatus};

    fn order(status: i64, batch: u32) -> CloudOrder {
        let mut o = CloudOrder::new(Provider::Sae, "o", RawStatus::Code(status));
        o.current_batch = Some(batch);
        o.batches = (1..=3)
            .map(|i| Batch {
                id: Some(format!("p{i}")),
                ..Default::default()
            })
            .collect();
        o
    }

    #[test]
    fn confirm_needs_an_order_awaiting_confirmation_at_the_expected_batch() {
        assert_eq!(
            guard(ActionKind::Confirm, Some(2), &order(8, 2)),
            Ok(Write::Confirm {
                pipeline_id: "p2".into(),
                confirm: true
            })
        );
        let stale = guard(ActionKind::Confirm, Some(2), &order(8, 3)).expect_err("stale");
        assert_eq!(stale.reason, reason::GUARD_FAILED);
        assert!(stale.message.contains("batch 2"), "{}", stale.message);
        let running = guard(ActionKind::Confirm, None, &order(1, 2)).expect_err("running");
        assert!(running.message.contains("Running"), "{}", running.message);
        let mut nameless = order(8, 2);
        nameless.batches.clear();
        assert_eq!(
            guard(ActionKind::Confirm, None, &nameless).map_err(|v| v.reason),
            Err(reason::REJECTED)
        );
    }

    #[test]
    fn abort_needs_an_order_in_flight() {
        assert_eq!(guard(ActionKind::Abort, None, &order(1, 1)), Ok(Write::Abort));
        assert_eq!(
            guard(ActionKind::AbortAndRollback, None, &order(8, 2)),
            Ok(Write::AbortAndRollback)
        );
        for done in [2, 3, 6] {
            assert_eq!(
                guard(ActionKind::Abort, None, &order(done, 1)).map_err(|v| v.reason),
                Err(reason::GUARD_FAILED)
            );
        }
    }

    #[test]
    fn an_interrupted_call_is_settled_from_the_order_never_resent() {
        let before = observe(&order(8, 2));
        assert_eq!(before.pipeline_id.as_deref(), Some("p2"));
        let moved = settle(ActionKind::Confirm, &before, &order(1, 2), "x");
        assert_eq!((moved.phase, moved.reason), (ActionPhase::Succeeded, "Confirmed"));
        let next = settle(ActionKind::Confirm, &before, &order(8, 3), "x");
        assert_eq!(next.phase, ActionPhase::Succeeded);
        let same = settle(ActionKind::Confirm, &before, &order(8, 2), "x");
        assert_eq!(
            (same.phase, same.reason),
            (ActionPhase::Failed, reason::OUTCOME_UNKNOWN)
        );
        assert!(same.message.contains("console"), "{}", same.message);
        let running = observe(&order(1, 1));
        assert_eq!(
            settle(ActionKind::Abort, &running, &order(6, 1), "x").phase,
            ActionPhase::Succeeded
        );
        assert_eq!(
            settle(ActionKind::Abort, &running, &order(2, 1), "x").reason,
            reason::OUTCOME_UNKNOWN
        );
        assert_eq!(
            settle(ActionKind::Abort, &running, &order(1, 1), "x").reason,
            reason::OUTCOME_UNKNOWN
        );
    }

    #[test]
    fn a_status_write_replaces_only_the_state_it_was_decided_on() {
        let st = |phase, attempt: Option<&str>| ChangeOrderActionStatus {
            phase: Some(phase),
            attempt_id: attempt.map(str::to_string),
            ..Default::default()
        };
        assert!(Expect::Unclaimed.allows(None));
        assert!(Expect::Unclaimed.allows(Some(&st(ActionPhase::Pending, None))));
        assert!(!Expect::Unclaimed.allows(Some(&st(ActionPhase::Executing, Some("a")))));
        assert!(!Expect::Unclaimed.allows(Some(&st(ActionPhase::Succeeded, None))));
        let mine = Expect::Attempt(Some("a".into()));
        assert!(mine.allows(Some(&st(ActionPhase::Executing, Some("a")))));
        assert!(
            !mine.allows(Some(&st(ActionPhase::Executing, Some("b")))),
            "another attempt"
        );
        assert!(
            !mine.allows(Some(&st(ActionPhase::Succeeded, Some("a")))),
            "already settled"
        );
    }

    #[test]
    fn switches_and_providers() {
        let watch: ChangeOrderWatch = serde_json::from_value(serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch",
            "metadata": {"name": "w"},
            "spec": {"provider": "sae", "appId": "a", "region": "r", "credentialsSecretRef": {"name": "s"},
                     "actions": {"allowed": ["Confirm"]}}
        }))
        .expect("watch");
        assert!(allowed_by_watch(&watch, ActionKind::Confirm).is_ok());
        let no = allowed_by_watch(&watch, ActionKind::Abort).expect_err("not allowed");
        assert_eq!(no.reason, reason::ACTION_NOT_ALLOWED);
        assert!(no.message.contains("spec.actions.allowed"));
        assert!(supported(Provider::Appstack, ActionKind::Confirm).is_err());
        assert!(supported(Provider::Edas, ActionKind::AbortAndRollback).is_err());
        assert!(supported(Provider::Edas, ActionKind::Abort).is_ok());
    }
}
