//! What the controller tells people: Events on phase transitions and watch errors, and the
//! metrics derived from orders.

use std::time::Duration;

use jiff::Timestamp;
use kube::Resource;
use kube::runtime::events::{Event, EventType};

use crate::conditions;
use crate::controller::context::Context;
use crate::controller::metrics::WatchState;
use crate::controller::watch_status;
use crate::crd::{ChangeOrder, ChangeOrderWatch, ChangeOrderWatchStatus, Phase};
use crate::mapping;

/// Publish an Event when a watch's Ready condition changes status or reason (not on every
/// poll); a first successful poll is not news.
pub async fn watch_ready_changed(
    ctx: &Context,
    watch: &ChangeOrderWatch,
    previous: Option<&ChangeOrderWatchStatus>,
    desired: &ChangeOrderWatchStatus,
) {
    let old = previous.and_then(|s| conditions::find(&s.conditions, "Ready"));
    let new = conditions::find(&desired.conditions, "Ready");
    if let Some(new) = new
        && old.map(|c| (&c.status, &c.reason)) != Some((&new.status, &new.reason))
        && (new.status != "True" || old.is_some())
    {
        let event = Event {
            type_: if new.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: new.reason.clone(),
            note: Some(truncate(new.message.clone(), 1024)),
            action: "Poll".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &watch.object_ref(&())).await {
            tracing::warn!(error = %e, "cannot publish event");
        }
    }
}

pub async fn publish_phase_event(
    ctx: &Context,
    obj: &ChangeOrder,
    before: Option<Phase>,
    after: Phase,
    status: &crate::crd::ChangeOrderStatus,
) {
    let message = conditions::find(&status.conditions, mapping::CONDITION_READY)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let note = match before {
        Some(b) => format!("{b} → {after}: {message}"),
        None => format!("observed as {after}: {message}"),
    };
    let type_ = if matches!(after, Phase::Failed | Phase::Cancelled | Phase::Unknown) {
        EventType::Warning
    } else {
        EventType::Normal
    };
    let event = Event {
        type_,
        reason: status.reason.clone().unwrap_or_else(|| after.to_string()),
        note: Some(truncate(note, 1024)),
        action: "Poll".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

pub fn record_phase_metrics(
    ctx: &Context,
    obj: &ChangeOrder,
    stored: Option<&ChangeOrder>,
    after: Phase,
    now: Timestamp,
) {
    let provider = obj.spec.provider;
    if after.is_terminal()
        && let Some(created) = &obj.spec.create_time
    {
        let finished = obj
            .status
            .as_ref()
            .and_then(|s| s.finish_time.as_ref())
            .map(|t| t.0)
            .unwrap_or(now);
        if let Ok(d) = Duration::try_from(finished.duration_since(created.0)) {
            ctx.metrics.order_finished(provider, after, d);
        }
    }
    // Leaving a phase that waited for a person: record how long it waited.
    let waited_since = stored
        .and_then(|s| s.status.as_ref())
        .filter(|s| s.phase.is_some_and(Phase::awaits_input) && !after.awaits_input())
        .and_then(|s| conditions::find(&s.conditions, mapping::CONDITION_AWAITING_INPUT))
        .map(|c| c.last_transition_time.0);
    if let Some(since) = waited_since
        && let Ok(d) = Duration::try_from(now.duration_since(since))
    {
        ctx.metrics.awaited_input(provider, d);
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Orders by phase, watches by readiness and each watch's own gauges, from the caches; forget
/// deleted watches (their memory and their per-watch series).
pub fn update_gauges(ctx: &Context) {
    let counts = ctx.orders.phase_counts();
    let awaiting = ctx.orders.awaiting_input_since();
    let (mut ready, mut not_ready) = (0, 0);
    let mut live = std::collections::HashSet::new();
    let mut states = Vec::new();
    for w in ctx.watches.state() {
        if let Some(uid) = &w.metadata.uid {
            live.insert(uid.clone());
        }
        let ready_condition = w
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, "Ready"));
        let is_ready = ready_condition.is_some_and(|c| c.status == "True");
        if is_ready {
            ready += 1
        } else {
            not_ready += 1
        }
        let namespace = w.metadata.namespace.clone().unwrap_or_default();
        let name = w.metadata.name.clone().unwrap_or_default();
        // Orders carry the watch's name as a label value (shortened when it is not one).
        let awaiting_input_since = awaiting
            .get(&(namespace.clone(), mapping::label_value(&name)))
            .copied();
        states.push(WatchState {
            namespace,
            name,
            ready: is_ready,
            ready_reason: watch_status::reason_label(ready_condition.map(|c| c.reason.as_str())),
            awaiting_input_since,
            latest_phase: w
                .status
                .as_ref()
                .and_then(|s| s.latest_order.as_ref())
                .and_then(|o| o.phase),
        });
    }
    ctx.metrics.set_watches(ready, not_ready);
    ctx.metrics.set_watch_states(ctx.scope.as_deref(), &states);
    ctx.forget_all_but(&live);
    let all: Vec<(Phase, u64)> = Phase::ALL
        .iter()
        .map(|p| (*p, counts.get(p).copied().unwrap_or(0)))
        .collect();
    ctx.metrics.set_orders_by_phase(&all);
}
