//! The status a ChangeOrderWatch should have after a reconcile. Pure: the rule that a quiet poll
//! writes nothing lives here.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::conditions::{condition, tri};
use crate::crd::{ChangeOrderWatchStatus, OrderCounts, Phase};

/// Ready reasons of a watch (the contract names the first five).
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
}

/// What happened in this reconcile.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A poll succeeded; counts are of the orders kept after it.
    Polled(OrderCounts),
    /// A poll failed (or could not start: credentials).
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
    /// No poll was due; only bookkeeping (generation, refresh) may change.
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

pub struct Input<'a> {
    pub previous: Option<&'a ChangeOrderWatchStatus>,
    pub generation: Option<i64>,
    pub outcome: Outcome,
    /// Reconcile-request annotation value handled by this reconcile, if any.
    pub handled_request: Option<String>,
    pub now: Timestamp,
    pub heartbeat: Duration,
}

pub fn desired(input: Input<'_>) -> ChangeOrderWatchStatus {
    let prev = input.previous.cloned().unwrap_or_default();
    let now = input.now;
    let polled = matches!(
        input.outcome,
        Outcome::Polled(_) | Outcome::Failed { .. } | Outcome::WriteFailed { .. }
    );
    let succeeded = matches!(input.outcome, Outcome::Polled(_));
    let mut next = prev.clone();
    next.observed_generation = input.generation;
    if let Some(handled) = input.handled_request {
        next.last_handled_reconcile_at = Some(handled);
    }
    let ready = match &input.outcome {
        Outcome::Polled(c) => Some((
            true,
            reason::POLLED,
            format!("polled: {} orders, {} in flight", c.total, c.in_flight),
        )),
        Outcome::Failed { reason, message } => Some((false, *reason, message.clone())),
        Outcome::WriteFailed { message, .. } => Some((false, reason::ORDER_WRITE_FAILED, message.clone())),
        Outcome::Suspended => Some((
            false,
            reason::SUSPENDED,
            "polling is suspended (spec.suspend)".into(),
        )),
        Outcome::InvalidSpec(m) => Some((false, reason::INVALID_SPEC, m.clone())),
        Outcome::NotPolled => None,
    };
    if let Some((ok, reason, message)) = ready {
        let cond = condition(
            "Ready",
            tri(ok),
            reason,
            message,
            input.generation,
            &prev.conditions,
            now,
        );
        next.conditions = vec![cond];
    } else {
        for c in &mut next.conditions {
            c.observed_generation = input.generation;
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    const HEARTBEAT: Duration = Duration::from_secs(600);

    fn run(prev: Option<&ChangeOrderWatchStatus>, outcome: Outcome, now: &str) -> ChangeOrderWatchStatus {
        desired(Input {
            previous: prev,
            generation: Some(2),
            outcome,
            handled_request: None,
            now: ts(now),
            heartbeat: HEARTBEAT,
        })
    }

    #[test]
    fn quiet_polls_write_nothing_until_the_heartbeat() {
        let c = counts([Phase::Running, Phase::Succeeded]);
        assert_eq!((c.total, c.in_flight, c.running, c.succeeded), (2, 1, 1, 1));
        let first = run(None, Outcome::Polled(c.clone()), "2026-01-01T00:00:00Z");
        assert_eq!(first.last_poll_time, Some(Time(ts("2026-01-01T00:00:00Z"))));
        assert_eq!(first.conditions[0].reason, "Polled");
        let again = run(Some(&first), Outcome::Polled(c.clone()), "2026-01-01T00:05:00Z");
        assert_eq!(
            again, first,
            "same result within the heartbeat: identical status, no write"
        );
        let later = run(Some(&first), Outcome::Polled(c.clone()), "2026-01-01T00:10:00Z");
        assert_eq!(later.last_poll_time, Some(Time(ts("2026-01-01T00:10:00Z"))));
        // A change in counts stamps the time at once.
        let moved = run(
            Some(&first),
            Outcome::Polled(counts([Phase::Succeeded])),
            "2026-01-01T00:01:00Z",
        );
        assert_eq!(moved.last_poll_time, Some(Time(ts("2026-01-01T00:01:00Z"))));
    }

    #[test]
    fn failures_keep_counts_and_last_success() {
        let first = run(
            None,
            Outcome::Polled(counts([Phase::Running])),
            "2026-01-01T00:00:00Z",
        );
        let failed = run(
            Some(&first),
            Outcome::Failed {
                reason: reason::THROTTLED,
                message: "Throttling.User: slow down".into(),
            },
            "2026-01-01T00:01:00Z",
        );
        let ready = &failed.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Throttled")
        );
        assert_eq!(ready.last_transition_time, Time(ts("2026-01-01T00:01:00Z")));
        assert_eq!(failed.orders, first.orders);
        assert_eq!(failed.last_success_time, first.last_success_time);
        assert_eq!(failed.last_poll_time, Some(Time(ts("2026-01-01T00:01:00Z"))));
        let recovered = run(
            Some(&failed),
            Outcome::Polled(counts([Phase::Running])),
            "2026-01-01T00:02:00Z",
        );
        assert_eq!(recovered.conditions[0].status, "True");
        assert_eq!(
            recovered.last_success_time,
            Some(Time(ts("2026-01-01T00:02:00Z")))
        );
    }

    #[test]
    fn bookkeeping_without_a_poll() {
        let first = run(None, Outcome::Polled(counts([])), "2026-01-01T00:00:00Z");
        let mut input = Input {
            previous: Some(&first),
            generation: Some(3),
            outcome: Outcome::NotPolled,
            handled_request: Some("2026-01-01T00:00:30Z".into()),
            now: ts("2026-01-01T00:00:30Z"),
            heartbeat: HEARTBEAT,
        };
        let next = desired(input);
        assert_eq!(next.observed_generation, Some(3));
        assert_eq!(next.conditions[0].observed_generation, Some(3));
        assert_eq!(
            next.last_handled_reconcile_at.as_deref(),
            Some("2026-01-01T00:00:30Z")
        );
        assert_eq!(
            next.last_poll_time, first.last_poll_time,
            "no poll, no new poll time"
        );
        input = Input {
            previous: Some(&next),
            generation: Some(3),
            outcome: Outcome::Suspended,
            handled_request: None,
            now: ts("2026-01-01T00:01:00Z"),
            heartbeat: HEARTBEAT,
        };
        assert_eq!(desired(input).conditions[0].reason, "Suspended");
    }
}
