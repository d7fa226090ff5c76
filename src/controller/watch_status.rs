//! The status a ChangeOrderWatch should have after a reconcile. Pure: the rule that a quiet poll
//! writes nothing lives here, and so do the kstatus conditions and the latest order.
//!
//! Conditions of a watch, always in this order:
//! - `Ready`: the last poll worked (`Polled`), or why it did not.
//! - `Stalled`: True when polling cannot succeed until a person acts (see [`is_stalled`]); kstatus
//!   and Flux then report the watch as Failed instead of waiting for a timeout.
//! - `Reconciling`: True while no poll has finished yet, and while a transient failure is being
//!   retried, so kstatus reads the watch as InProgress rather than Current.
//! - `LatestOrderSucceeded`: True / False / Unknown for the newest order succeeded / failed or was
//!   cancelled / is in flight or absent, so `kubectl wait --for=condition=LatestOrderSucceeded`
//!   and `--for=condition=LatestOrderSucceeded=False` each end on one outcome only.
//! - `LatestOrderAwaitingInput`: the newest order waits for a person.

use std::borrow::Borrow;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::conditions::{condition, find, tri};
use crate::crd::{ChangeOrder, ChangeOrderWatchStatus, LatestOrder, OrderCounts, Phase};
use changeorder_cloud::error::ErrorKind;

/// Condition types of a watch.
pub mod condition_type {
    pub const READY: &str = "Ready";
    pub const STALLED: &str = "Stalled";
    pub const RECONCILING: &str = "Reconciling";
    pub const LATEST_ORDER_SUCCEEDED: &str = "LatestOrderSucceeded";
    pub const LATEST_ORDER_AWAITING_INPUT: &str = "LatestOrderAwaitingInput";
}

/// Reasons of a watch's `Ready`, `Stalled` and `Reconciling` conditions (the contract names the
/// first five).
pub mod reason {
    pub const POLLED: &str = "Polled";
    pub const INVALID_CREDENTIALS: &str = "InvalidCredentials";
    pub const THROTTLED: &str = "Throttled";
    pub const APP_NOT_FOUND: &str = "AppNotFound";
    pub const PROVIDER_ERROR: &str = "ProviderError";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const SUSPENDED: &str = "Suspended";
    /// The poll went through, but some orders could not be written (the message names one).
    pub const ORDER_WRITE_FAILED: &str = "OrderWriteFailed";
    /// The credentials work but may not read this application (RAM policy, AppStack membership).
    pub const FORBIDDEN: &str = "Forbidden";
    /// `spec.endpoint` is outside the operator's endpoint policy; no call was made.
    pub const ENDPOINT_NOT_ALLOWED: &str = "EndpointNotAllowed";
    /// `spec.serviceAccountRef` names a ServiceAccount that does not exist in the watch's namespace.
    pub const SERVICE_ACCOUNT_NOT_FOUND: &str = "ServiceAccountNotFound";
    /// The watch asks for an identity it may not use: another namespace's ServiceAccount, or
    /// the operator's own identity outside the namespaces the admin allows.
    pub const IDENTITY_NOT_ALLOWED: &str = "IdentityNotAllowed";
    /// No poll has finished since the watch was created.
    pub const AWAITING_FIRST_POLL: &str = "AwaitingFirstPoll";
    /// `LatestOrder*` conditions of a watch that has no ChangeOrder.
    pub const NO_ORDERS: &str = "NoOrders";
    /// `LatestOrder*` conditions of an order whose status has not been written yet.
    pub const ORDER_PENDING: &str = "OrderStatusPending";
}

/// Every reason a watch's `Ready` condition may carry, so it can be a metric label.
const READY_REASONS: [&str; 13] = [
    reason::POLLED,
    reason::INVALID_CREDENTIALS,
    reason::THROTTLED,
    reason::APP_NOT_FOUND,
    reason::PROVIDER_ERROR,
    reason::INVALID_SPEC,
    reason::SUSPENDED,
    reason::ORDER_WRITE_FAILED,
    reason::FORBIDDEN,
    reason::ENDPOINT_NOT_ALLOWED,
    reason::SERVICE_ACCOUNT_NOT_FOUND,
    reason::IDENTITY_NOT_ALLOWED,
    reason::AWAITING_FIRST_POLL,
];

/// A Ready reason as a metric label: one of the known reasons, `AwaitingFirstPoll` when there is
/// no Ready condition yet, and `Other` for anything else (an object written by another version),
/// so the label's values stay a closed set.
pub fn reason_label(ready_reason: Option<&str>) -> &'static str {
    match ready_reason {
        None => reason::AWAITING_FIRST_POLL,
        Some(r) => READY_REASONS
            .iter()
            .find(|k| **k == r)
            .copied()
            .unwrap_or("Other"),
    }
}

/// Ready reasons after which polling cannot succeed until a person changes something (the
/// Secret, the spec, the application, the RAM policy or the operator's endpoint policy).
const STALLED_REASONS: [&str; 7] = [
    reason::INVALID_CREDENTIALS,
    reason::SERVICE_ACCOUNT_NOT_FOUND,
    reason::IDENTITY_NOT_ALLOWED,
    reason::INVALID_SPEC,
    reason::APP_NOT_FOUND,
    reason::FORBIDDEN,
    reason::ENDPOINT_NOT_ALLOWED,
];

/// Whether a Ready reason means the watch is stuck until a person acts.
pub fn is_stalled(ready_reason: &str) -> bool {
    STALLED_REASONS.contains(&ready_reason)
}

/// The Ready reason for a failed cloud call. The reconciler may use it so every kind has exactly
/// one reason; `Forbidden` is separate from `ProviderError` because only a person can fix it.
pub fn failure_reason(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Throttled => reason::THROTTLED,
        ErrorKind::InvalidCredentials | ErrorKind::SignatureMismatch => reason::INVALID_CREDENTIALS,
        ErrorKind::AppNotFound => reason::APP_NOT_FOUND,
        ErrorKind::Forbidden => reason::FORBIDDEN,
        ErrorKind::OrderNotFound
        | ErrorKind::BadRequest
        | ErrorKind::ServerError
        | ErrorKind::Transport
        | ErrorKind::BadReply
        | ErrorKind::TooLarge
        | ErrorKind::ClockSkew => reason::PROVIDER_ERROR,
    }
}

/// What happened in this reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A poll succeeded; counts are of the orders kept after it.
    Polled(OrderCounts),
    /// A poll failed (or could not start: credentials). A message of the form `Code: detail`,
    /// as cloud errors print, is identified by its code: see [`failure_identity`].
    Failed {
        reason: &'static str,
        message: String,
    },
    /// A poll went through but some orders could not be written; counts are of the others.
    WriteFailed {
        counts: OrderCounts,
        message: String,
    },
    Suspended,
    InvalidSpec(String),
    /// `spec.endpoint` is outside the operator's endpoint policy; the message names the endpoint
    /// and the policy. No call was made.
    EndpointNotAllowed(String),
    /// No poll was due; only bookkeeping (generation, refresh, latest order) may change.
    NotPolled,
}

pub fn counts(phases: impl IntoIterator<Item = Phase>) -> OrderCounts {
    let mut c = OrderCounts::default();
    for p in phases {
        c.total += 1;
        if p.is_in_flight() {
            c.in_flight += 1;
        }
        *match p {
            Phase::Pending => &mut c.pending,
            Phase::Running => &mut c.running,
            Phase::AwaitingConfirmation => &mut c.awaiting_confirmation,
            Phase::AwaitingApproval => &mut c.awaiting_approval,
            Phase::Paused => &mut c.paused,
            Phase::Succeeded => &mut c.succeeded,
            Phase::Failed => &mut c.failed,
            Phase::Cancelled => &mut c.cancelled,
            Phase::Unknown => &mut c.unknown,
        } += 1;
    }
    c
}

/// Longest order message carried into the watch's `LatestOrder*` conditions. The ChangeOrder
/// has the whole text; the watch only needs enough to say what happened.
const LATEST_MESSAGE_CHARS: usize = 256;

/// The newest ChangeOrder: greatest `spec.createTime`, ties (and orders without a time, which
/// count as oldest) broken by the greater `spec.changeOrderId`. Objects being deleted are
/// skipped: retention is removing them, so they are no longer the watch's orders.
///
/// "Newest" is by creation, not by activity: when a newer order appears while an older one is
/// still running, the newer one becomes the latest at once and the older one no longer affects
/// the watch's `LatestOrder*` conditions (it keeps its own ChangeOrder and conditions).
pub fn latest_order<O: Borrow<ChangeOrder>>(orders: &[O]) -> Option<LatestOrder> {
    let newest = orders
        .iter()
        .map(Borrow::borrow)
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .max_by(|a, b| {
            let key = |o: &ChangeOrder| {
                (
                    o.spec.create_time.as_ref().map(|t| t.0),
                    o.spec.change_order_id.clone(),
                )
            };
            key(a).cmp(&key(b))
        })?;
    let status = newest.status.as_ref();
    let phase = status.and_then(|s| s.phase);
    Some(LatestOrder {
        name: newest.metadata.name.clone().unwrap_or_default(),
        change_order_id: newest.spec.change_order_id.clone(),
        phase,
        reason: status.and_then(|s| s.reason.clone()),
        create_time: newest.spec.create_time.clone(),
        finish_time: status
            .and_then(|s| s.finish_time.clone())
            .filter(|_| phase.is_some_and(Phase::is_terminal)),
        message: status
            .and_then(|s| find(&s.conditions, "Ready"))
            .map(|c| cut(c.message.trim(), LATEST_MESSAGE_CHARS))
            .filter(|m| !m.is_empty()),
    })
}

fn cut(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

pub struct Input<'a> {
    pub previous: Option<&'a ChangeOrderWatchStatus>,
    pub generation: Option<i64>,
    pub outcome: Outcome,
    /// Reconcile-request annotation value handled by this reconcile, if any.
    pub handled_request: Option<String>,
    pub now: Timestamp,
    pub heartbeat: Duration,
    /// After a poll: the watch's interval and how often the budget lets it list (see
    /// `status.pacedInterval`). `None` keeps what the status says.
    pub pacing: Option<(Duration, Duration)>,
}

/// `status.pacedInterval` for a watch of `interval` that the budget lets list every
/// `list_every`: set only when that is more than a twentieth longer (the budget's own margin
/// is not news), rounded to 10 s so that small changes in the fleet do not rewrite the status.
pub fn paced_interval(interval: Duration, list_every: Duration) -> Option<String> {
    if list_every <= interval.mul_f64(1.05) {
        return None;
    }
    let secs = (list_every.as_secs_f64() / 10.0).round() as u64 * 10;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    Some(out)
}

/// The desired status, keeping `status.latestOrder` as it was. Prefer [`desired_with_orders`]
/// whenever the watch's ChangeOrders are at hand.
pub fn desired(input: Input<'_>) -> ChangeOrderWatchStatus {
    let kept = input.previous.and_then(|p| p.latest_order.clone());
    build(input, kept)
}

/// The desired status, with `status.latestOrder` and the `LatestOrder*` conditions computed from
/// `orders`: the watch's ChangeOrders as they stand after this reconcile (the ones just written,
/// the cached ones otherwise, without the ones just pruned).
pub fn desired_with_orders<O: Borrow<ChangeOrder>>(input: Input<'_>, orders: &[O]) -> ChangeOrderWatchStatus {
    let latest = latest_order(orders);
    build(input, latest)
}

/// The desired status with a latest order already computed (see [`latest_order`]); `None`
/// keeps the previous one.
pub fn desired_with_latest(input: Input<'_>, latest: Option<Option<LatestOrder>>) -> ChangeOrderWatchStatus {
    match latest {
        Some(latest) => build(input, latest),
        None => desired(input),
    }
}

/// `Ready`'s status, reason and message as this reconcile decides them, or `None` to keep what
/// the previous status says.
fn poll_state(outcome: &Outcome) -> Option<(&'static str, &'static str, String)> {
    Some(match outcome {
        Outcome::Polled(c) => (
            "True",
            reason::POLLED,
            format!("polled: {} orders, {} in flight", c.total, c.in_flight),
        ),
        Outcome::Failed { reason, message } => ("False", *reason, message.clone()),
        Outcome::WriteFailed { message, .. } => ("False", reason::ORDER_WRITE_FAILED, message.clone()),
        Outcome::Suspended => (
            "False",
            reason::SUSPENDED,
            "polling is suspended (spec.suspend)".into(),
        ),
        Outcome::InvalidSpec(m) => ("False", reason::INVALID_SPEC, m.clone()),
        Outcome::EndpointNotAllowed(m) => ("False", reason::ENDPOINT_NOT_ALLOWED, m.clone()),
        Outcome::NotPolled => return None,
    })
}

/// What identifies a failure for the rule "rewrite the condition only when the failure changes":
/// the code of a `Code: detail (RequestId ...)` message (how cloud errors print), otherwise the
/// whole message. Without it every failed poll would write the watch, because each reply has a
/// new RequestId.
pub fn failure_identity(message: &str) -> &str {
    match message.split_once(": ") {
        Some((code, _)) if !code.is_empty() && !code.contains(char::is_whitespace) => code,
        _ => message,
    }
}

fn build(input: Input<'_>, latest: Option<LatestOrder>) -> ChangeOrderWatchStatus {
    let prev = input.previous.cloned().unwrap_or_default();
    let now = input.now;
    let generation = input.generation;
    let polled = matches!(
        input.outcome,
        Outcome::Polled(_) | Outcome::Failed { .. } | Outcome::WriteFailed { .. }
    );
    let succeeded = matches!(input.outcome, Outcome::Polled(_));
    let mut next = prev.clone();
    next.observed_generation = generation;
    if let Some(handled) = input.handled_request {
        next.last_handled_reconcile_at = Some(handled);
    }
    if let Some((interval, list_every)) = input.pacing {
        next.paced_interval = paced_interval(interval, list_every);
    }

    let previous_ready = find(&prev.conditions, condition_type::READY);
    let (status, ready_reason, message) = match poll_state(&input.outcome) {
        Some((status, reason, mut message)) => {
            // Same failed poll as last time (status, reason and code): keep the stored message,
            // so the write is skipped although this reply carried a new RequestId. Only poll
            // failures: an invalid spec's message changes only with the spec, and must follow it.
            if let Some(p) = previous_ready
                && matches!(input.outcome, Outcome::Failed { .. })
                && p.status == status
                && p.reason == reason
                && failure_identity(&p.message) == failure_identity(&message)
            {
                message = p.message.clone();
            }
            (status.to_string(), reason.to_string(), message)
        }
        None => match previous_ready {
            Some(p) => (p.status.clone(), p.reason.clone(), p.message.clone()),
            None => (
                "Unknown".to_string(),
                reason::AWAITING_FIRST_POLL.to_string(),
                "waiting for the first poll".to_string(),
            ),
        },
    };
    let stalled = status == "False" && is_stalled(&ready_reason);
    // Still working towards Ready: before the first poll, and while a transient failure is
    // retried. Suspended and stalled watches are not being worked on.
    let reconciling =
        status == "Unknown" || (status == "False" && !stalled && ready_reason != reason::SUSPENDED);
    let mut specs: Vec<(&str, String, String, String)> = vec![
        (
            condition_type::READY,
            status.clone(),
            ready_reason.clone(),
            message.clone(),
        ),
        (
            condition_type::STALLED,
            tri(stalled).to_string(),
            ready_reason.clone(),
            message.clone(),
        ),
        (
            condition_type::RECONCILING,
            tri(reconciling).to_string(),
            ready_reason,
            message,
        ),
    ];
    specs.extend(latest_order_conditions(latest.as_ref()));
    next.conditions = specs
        .into_iter()
        .map(|(type_, status, reason, message)| {
            condition(
                type_,
                &status,
                &reason,
                message,
                generation,
                &prev.conditions,
                now,
            )
        })
        .collect();
    next.latest_order = latest;

    if let Outcome::Polled(c) | Outcome::WriteFailed { counts: c, .. } = &input.outcome {
        next.orders = Some(c.clone());
    }
    // Poll timestamps are refreshed only with another change or once per heartbeat, so that a
    // poll that finds nothing new writes nothing.
    let stale = |t: &Option<Time>| {
        t.as_ref()
            .is_none_or(|t| now.duration_since(t.0).unsigned_abs() >= input.heartbeat)
    };
    let other_change = next != prev;
    if polled && (other_change || stale(&prev.last_poll_time)) {
        next.last_poll_time = Some(Time(now));
    }
    if succeeded && (other_change || stale(&prev.last_success_time)) {
        next.last_success_time = Some(Time(now));
    }
    next
}

/// `LatestOrderSucceeded` and `LatestOrderAwaitingInput` for the newest order.
fn latest_order_conditions(latest: Option<&LatestOrder>) -> [(&'static str, String, String, String); 2] {
    let Some(order) = latest else {
        let message = "this watch has no ChangeOrder yet".to_string();
        return [
            (
                condition_type::LATEST_ORDER_SUCCEEDED,
                "Unknown".into(),
                reason::NO_ORDERS.into(),
                message.clone(),
            ),
            (
                condition_type::LATEST_ORDER_AWAITING_INPUT,
                "False".into(),
                reason::NO_ORDERS.into(),
                message,
            ),
        ];
    };
    let reason = order
        .reason
        .clone()
        .filter(|r| is_condition_reason(r))
        .or_else(|| order.phase.map(|p| p.as_str().to_string()))
        .unwrap_or_else(|| reason::ORDER_PENDING.to_string());
    let phase = order.phase.map_or("no status yet", Phase::as_str);
    let mut message = format!(
        "ChangeOrder {} (change order {}): {phase}",
        order.name, order.change_order_id
    );
    if let Some(m) = &order.message {
        message.push_str(": ");
        message.push_str(m);
    }
    let succeeded = match order.phase {
        Some(Phase::Succeeded) => "True",
        Some(Phase::Failed | Phase::Cancelled) => "False",
        _ => "Unknown",
    };
    let awaiting = order.phase.is_some_and(Phase::awaits_input);
    [
        (
            condition_type::LATEST_ORDER_SUCCEEDED,
            succeeded.into(),
            reason.clone(),
            message.clone(),
        ),
        (
            condition_type::LATEST_ORDER_AWAITING_INPUT,
            tri(awaiting).into(),
            reason,
            message,
        ),
    ]
}

/// The API server rejects condition reasons outside `[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?`;
/// an order's reason comes from our own table, but a check here keeps a bad one from failing
/// the watch's whole status write.
fn is_condition_reason(r: &str) -> bool {
    let mut chars = r.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && r.len() <= 1024
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ',' | ':'))
        && !r.ends_with([',', ':'])
}

/// The condition of `type_` in a watch status, for callers that read it (tests, the plugin).
pub fn condition_of<'a>(status: &'a ChangeOrderWatchStatus, type_: &str) -> Option<&'a Condition> {
    find(&status.conditions, type_)
}

#[cfg(test)]
mod tests;
