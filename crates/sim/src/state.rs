//! What an order looks like at a moment: the scenario's timeline replayed up to "now". Pure
//! functions of (order, elapsed scenario time), so every request sees a consistent picture and
//! tests need no sleeping beyond the time scale.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp, tz::Offset};

use super::scenario::{Order, StateChange, StatusValue, TimeSpec};
use changeorder_cloud::model::Provider;

/// Scenario time: wall time at start plus real elapsed time multiplied by the time scale.
#[derive(Clone, Debug)]
pub struct Clock {
    start_wall: Timestamp,
    start: Instant,
    scale: f64,
}

impl Clock {
    pub fn new(scale: f64) -> Clock {
        Clock {
            start_wall: Timestamp::now(),
            start: Instant::now(),
            scale,
        }
    }

    /// Scenario time since start.
    pub fn elapsed(&self) -> SignedDuration {
        let real = self.start.elapsed().as_secs_f64() * self.scale;
        SignedDuration::try_from_secs_f64(real).unwrap_or(SignedDuration::MAX)
    }

    /// Wall time of a scenario offset. Offsets are scaled like the timeline so that event times
    /// never lie in the future of the wall clock.
    pub fn wall(&self, offset: SignedDuration) -> Timestamp {
        let real = SignedDuration::try_from_secs_f64(offset.as_secs_f64() / self.scale)
            .unwrap_or(SignedDuration::ZERO);
        self.start_wall.checked_add(real).unwrap_or(self.start_wall)
    }

    /// Scenario offset of a wall time (inverse of [`Clock::wall`]).
    pub fn offset_of(&self, ts: Timestamp) -> SignedDuration {
        let real = ts.duration_since(self.start_wall);
        SignedDuration::try_from_secs_f64(real.as_secs_f64() * self.scale).unwrap_or(real)
    }
}

/// Synthetic spacing of batches for an order that is already done when it first appears.
const HISTORIC_BATCH_SPAN: SignedDuration = SignedDuration::from_secs(30);

/// Default spacing of creation times for orders without `createdAt`.
const DEFAULT_CREATION_GAP: SignedDuration = SignedDuration::from_mins(10);

/// One batch at a moment.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchSnap {
    pub state: StatusValue,
    pub start: Option<SignedDuration>,
    pub update: Option<SignedDuration>,
    pub end: Option<SignedDuration>,
}

/// One order at a moment; times are scenario offsets (see [`Clock::wall`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub status: StatusValue,
    pub sub_status: i64,
    /// 1-based.
    pub current_batch: u32,
    pub message: Option<String>,
    pub created: SignedDuration,
    pub started: Option<SignedDuration>,
    pub finished: Option<SignedDuration>,
    pub updated: SignedDuration,
    pub batches: Vec<BatchSnap>,
}

/// Number of batches: EDAS/SAE `batchCount`, AppStack one per environment.
pub fn batch_count(provider: Provider, order: &Order) -> u32 {
    match provider {
        Provider::Edas | Provider::Sae => order.batch_count.unwrap_or(1).max(1),
        Provider::Appstack => order.env_names.len().max(1) as u32,
    }
}

/// AppStack environments, with a stand-in when the scenario names none.
pub fn env_names(order: &Order) -> Vec<String> {
    if order.env_names.is_empty() {
        vec!["default".to_string()]
    } else {
        order.env_names.clone()
    }
}

/// Creation offset; `index` is the order's position in its app, for the default spacing.
pub fn created_offset(order: &Order, index: usize, clock: &Clock) -> SignedDuration {
    match order.created_at {
        Some(TimeSpec::Relative(d)) => d,
        Some(TimeSpec::Absolute(ts)) => clock.offset_of(ts),
        None => -DEFAULT_CREATION_GAP * (index as i32 + 1),
    }
}

fn default_status(provider: Provider) -> StatusValue {
    match provider {
        Provider::Edas | Provider::Sae => StatusValue::Code(2),
        Provider::Appstack => StatusValue::Text("SUCCESS".into()),
    }
}

fn succeeded(provider: Provider) -> StatusValue {
    default_status(provider)
}

fn not_started(provider: Provider) -> StatusValue {
    match provider {
        Provider::Edas | Provider::Sae => StatusValue::Code(0),
        Provider::Appstack => StatusValue::Text("INIT".into()),
    }
}

/// Whether a status ends the order (or batch) for good.
pub fn is_terminal(provider: Provider, s: &StatusValue) -> bool {
    match (provider, s) {
        (Provider::Edas, StatusValue::Code(c)) => matches!(c, 2 | 3 | 6 | 7 | 10),
        (Provider::Sae, StatusValue::Code(c)) => matches!(c, 2 | 3 | 6 | 10),
        (Provider::Appstack, StatusValue::Text(t)) => matches!(t.as_str(), "SUCCESS" | "FAILED" | "CANCELED"),
        _ => false,
    }
}

/// Whether a status means work has not begun (so no start time yet).
fn is_waiting(provider: Provider, s: &StatusValue) -> bool {
    match (provider, s) {
        (Provider::Edas | Provider::Sae, StatusValue::Code(c)) => matches!(c, 0 | 8 | 9 | 11 | 12),
        (Provider::Appstack, StatusValue::Text(t)) => matches!(t.as_str(), "INIT" | "PREPARING"),
        _ => false,
    }
}

/// Batch states derived from the order's status and current batch: earlier batches done,
/// the current one carries the order's status, later ones not started.
fn derived_batch_state(provider: Provider, status: &StatusValue, current: u32, i: u32) -> StatusValue {
    let done = succeeded(provider);
    if *status == done || i < current {
        return done;
    }
    if i > current {
        return not_started(provider);
    }
    match status {
        // "Partially succeeded" is an order-level verdict; the batch itself failed.
        StatusValue::Code(7) if provider == Provider::Edas => StatusValue::Code(3),
        other => other.clone(),
    }
}

struct Current {
    status: StatusValue,
    sub_status: i64,
    current_batch: u32,
    message: Option<String>,
    batch_states: Vec<StatusValue>,
}

impl Current {
    fn apply(&mut self, c: &StateChange) {
        if let Some(s) = &c.status {
            self.status = s.clone();
        }
        if let Some(s) = c.sub_status {
            self.sub_status = s;
        }
        if let Some(b) = c.current_batch {
            self.current_batch = b;
        }
        if let Some(m) = &c.message {
            self.message = Some(m.clone());
        }
        if let Some(b) = &c.batch_states {
            self.batch_states = b.clone();
        }
    }

    fn batch_state(&self, provider: Provider, i: u32) -> StatusValue {
        match self.batch_states.get(i as usize - 1) {
            Some(s) => s.clone(),
            None => derived_batch_state(provider, &self.status, self.current_batch, i),
        }
    }
}

/// The order as of scenario time `now`, or `None` before it is created.
pub fn snapshot(
    provider: Provider,
    order: &Order,
    created: SignedDuration,
    now: SignedDuration,
) -> Option<Snapshot> {
    if created > now {
        return None;
    }
    let n = batch_count(provider, order);
    let mut cur = Current {
        status: default_status(provider),
        sub_status: 0,
        current_batch: 1,
        message: None,
        batch_states: Vec::new(),
    };
    let mut snap = Snapshot {
        status: cur.status.clone(),
        sub_status: 0,
        current_batch: 1,
        message: None,
        created,
        started: None,
        finished: None,
        updated: created,
        batches: (0..n)
            .map(|_| BatchSnap {
                state: not_started(provider),
                start: None,
                update: None,
                end: None,
            })
            .collect(),
    };

    // The initial state: an order that is already under way or done when it appears gets
    // plausible batch times spread after its creation (but never after simulator start).
    cur.apply(&order.initial());
    let ceiling = created.max(SignedDuration::ZERO);
    let spread = |k: u32| (created + HISTORIC_BATCH_SPAN * k as i32).min(ceiling);
    for i in 1..=n {
        let state = cur.batch_state(provider, i);
        let b = &mut snap.batches[i as usize - 1];
        if !is_waiting(provider, &state) {
            b.start = Some(spread(i - 1));
            b.update = b.start;
        }
        if is_terminal(provider, &state) {
            b.end = Some(spread(i));
            b.update = b.end;
        }
        b.state = state;
    }
    if !is_waiting(provider, &cur.status) {
        snap.started = Some(created);
    }
    if is_terminal(provider, &cur.status) {
        snap.finished = Some(spread(n));
        snap.updated = spread(n);
    }

    for step in &order.timeline {
        let at = step.after.0.max(created);
        if at > now {
            break;
        }
        let before = cur.status.clone();
        cur.apply(&step.change());
        snap.updated = at;
        for i in 1..=n {
            let state = cur.batch_state(provider, i);
            let b = &mut snap.batches[i as usize - 1];
            if state != b.state {
                b.update = Some(at);
            }
            if !is_waiting(provider, &state) && b.start.is_none() {
                b.start = Some(at);
            }
            if is_terminal(provider, &state) {
                b.end.get_or_insert(at);
            } else {
                b.end = None;
            }
            b.state = state;
        }
        if !is_waiting(provider, &cur.status) && snap.started.is_none() {
            snap.started = Some(at);
        }
        if is_terminal(provider, &cur.status) {
            if !is_terminal(provider, &before) || snap.finished.is_none() {
                snap.finished = Some(at);
            }
        } else {
            snap.finished = None;
        }
    }
    snap.status = cur.status;
    snap.sub_status = cur.sub_status;
    snap.current_batch = cur.current_batch;
    snap.message = cur.message;
    Some(snap)
}

/// Every batch runs two stages (prepare, then deploy), one task each; their states follow the
/// batch's: the first is done once the batch runs, the second carries the batch's own state.
pub fn stage_states(batch: &StatusValue) -> [StatusValue; 2] {
    use StatusValue::{Code, Text};
    match batch {
        Code(0 | 8 | 9 | 11 | 12) => [Code(0), Code(0)],
        Code(1) => [Code(2), Code(1)],
        Code(7) => [Code(2), Code(3)],
        Code(c @ (2 | 3 | 6 | 10)) => [Code(2), Code(*c)],
        Text(t) => match t.as_str() {
            "INIT" => [Text("INIT".into()), Text("INIT".into())],
            "PREPARING" => [Text("RUNNING".into()), Text("INIT".into())],
            "SUCCESS" => [Text("SUCCESS".into()), Text("SUCCESS".into())],
            _ => [Text("SUCCESS".into()), batch.clone()],
        },
        other => [other.clone(), other.clone()],
    }
}

/// `YYYY-MM-DD HH:MM:SS` in the scenario's zone, as EDAS and SAE write creation times.
pub fn zoneless(ts: Timestamp, offset: Offset) -> String {
    ts.to_zoned(offset.to_time_zone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// ISO-8601 with milliseconds and offset, as AppStack writes times.
pub fn iso(ts: Timestamp) -> String {
    ts.to_zoned(Offset::UTC.to_time_zone())
        .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
        .to_string()
}

pub fn epoch_ms(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn order(yaml: &str) -> (Provider, Order) {
        let s = Scenario::from_yaml(yaml).expect("scenario");
        let app = &s.apps[0];
        (app.provider, app.change_orders[0].clone())
    }

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    const PROGRESSING: &str = "apps:
- provider: edas
  appId: a
  changeOrders:
  - id: o
    createdAt: 0s
    batchCount: 3
    status: 0
    timeline:
    - {after: 10s, status: 1, currentBatch: 1}
    - {after: 20s, status: 8, currentBatch: 2, message: confirm}
    - {after: 30s, status: 1}
    - {after: 40s, status: 1, currentBatch: 3}
    - {after: 50s, status: 2}
";

    #[test]
    fn timeline_replays() {
        let (p, o) = order(PROGRESSING);
        assert!(snapshot(p, &o, secs(5), secs(0)).is_none(), "not yet created");
        let s = snapshot(p, &o, secs(0), secs(5)).expect("snap");
        assert_eq!(s.status, StatusValue::Code(0));
        assert_eq!(s.started, None);
        assert!(
            s.batches
                .iter()
                .all(|b| b.state == StatusValue::Code(0) && b.start.is_none())
        );

        let s = snapshot(p, &o, secs(0), secs(25)).expect("snap");
        assert_eq!(s.status, StatusValue::Code(8));
        assert_eq!(s.current_batch, 2);
        assert_eq!(s.message.as_deref(), Some("confirm"));
        let states: Vec<_> = s.batches.iter().map(|b| b.state.clone()).collect();
        assert_eq!(
            states,
            [StatusValue::Code(2), StatusValue::Code(8), StatusValue::Code(0)]
        );
        assert_eq!(s.batches[0].start, Some(secs(10)));
        assert_eq!(s.batches[0].end, Some(secs(20)));
        assert_eq!(
            s.batches[1].start, None,
            "waiting for confirmation is not started"
        );
        assert_eq!(s.started, Some(secs(10)));
        assert_eq!(s.finished, None);

        let s = snapshot(p, &o, secs(0), secs(60)).expect("snap");
        assert_eq!(s.status, StatusValue::Code(2));
        assert!(s.batches.iter().all(|b| b.state == StatusValue::Code(2)));
        assert_eq!(s.batches[1].start, Some(secs(30)));
        assert_eq!(s.batches[2].start, Some(secs(40)));
        assert_eq!(s.batches[2].end, Some(secs(50)));
        assert_eq!(s.finished, Some(secs(50)));
        assert_eq!(s.updated, secs(50));
    }

    #[test]
    fn historic_orders_get_spread_times() {
        let (p, o) = order(
            "apps:\n- provider: sae\n  appId: a\n  changeOrders:\n  - id: o\n    batchCount: 2\n    status: 3\n    currentBatch: 2\n",
        );
        let s = snapshot(p, &o, secs(-3600), secs(0)).expect("snap");
        assert_eq!(s.batches[0].state, StatusValue::Code(2));
        assert_eq!(s.batches[1].state, StatusValue::Code(3));
        assert_eq!(s.batches[0].start, Some(secs(-3600)));
        assert_eq!(s.batches[1].end, Some(secs(-3540)));
        assert_eq!(s.finished, Some(secs(-3540)));
    }

    #[test]
    fn edas_partial_success_fails_the_batch_and_overrides_win() {
        let (p, o) = order(
            "apps:\n- provider: edas\n  appId: a\n  changeOrders:\n  - id: o\n    batchCount: 2\n    status: 7\n    currentBatch: 2\n",
        );
        let s = snapshot(p, &o, secs(-60), secs(0)).expect("snap");
        assert_eq!(s.batches[1].state, StatusValue::Code(3));
        let (p, o) = order(
            "apps:\n- provider: edas\n  appId: a\n  changeOrders:\n  - id: o\n    batchCount: 2\n    status: 1\n    batchStates: [5, 42]\n",
        );
        let s = snapshot(p, &o, secs(-60), secs(0)).expect("snap");
        assert_eq!(s.batches[1].state, StatusValue::Code(42));
    }

    #[test]
    fn appstack_jobs_follow_envs() {
        let (p, o) = order(
            "apps:\n- provider: appstack\n  organizationId: o\n  appName: a\n  changeOrders:\n  - id: sn\n    envNames: [dev, prod]\n    status: RUNNING\n    currentBatch: 2\n",
        );
        let s = snapshot(p, &o, secs(-60), secs(0)).expect("snap");
        let states: Vec<_> = s.batches.iter().map(|b| b.state.to_string()).collect();
        assert_eq!(states, ["SUCCESS", "RUNNING"]);
        assert_eq!(s.finished, None);
    }

    #[test]
    fn stages_follow_batches() {
        use StatusValue::{Code, Text};
        assert_eq!(stage_states(&Code(1)), [Code(2), Code(1)]);
        assert_eq!(stage_states(&Code(8)), [Code(0), Code(0)]);
        assert_eq!(stage_states(&Code(42)), [Code(42), Code(42)]);
        assert_eq!(
            stage_states(&Text("FAILED".into())),
            [Text("SUCCESS".into()), Text("FAILED".into())]
        );
    }

    #[test]
    fn formats() {
        let ts: Timestamp = "2019-11-13T06:23:46.5Z".parse().expect("ts");
        let cst = changeorder_cloud::time::parse_offset("+08:00").expect("offset");
        assert_eq!(zoneless(ts, cst), "2019-11-13 14:23:46");
        assert_eq!(iso(ts), "2019-11-13T06:23:46.500+00:00");
        assert_eq!(epoch_ms(ts), 1573626226500);
    }
}
