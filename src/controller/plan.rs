//! Pure planning of one poll: which orders to describe, what each object should say, which
//! objects to prune. No I/O here, so the rules that keep the operator quiet and keep what is
//! known about every order are table-tested.
//!
//! The rules, in short:
//! - describe only what can still change (in flight, or unknown for a bounded number of tries);
//! - never write less than is stored: when a wanted describe did not answer, the fields only a
//!   describe gives (batches, current batch, the cloud's message) come from the stored object;
//! - an order that just finished is not written finished until a describe of it succeeded (or
//!   the tries ran out), so its final status is written once, complete;
//! - an in-flight order the cloud no longer has becomes `Unknown`/`OrderNotFound`, for good;
//! - retention never removes an order in the poll it finishes, nor before its final status has
//!   stood for `min_keep`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;

use crate::controller::fetch::{Detail, Fetched};
use crate::crd::{ChangeOrder, ChangeOrderWatch, Phase};
use crate::mapping::{self, CONDITION_READY, REASON_ORDER_NOT_FOUND, classify, desired_object, object_name};
use changeorder_cloud::common::merge;
use changeorder_cloud::model::{AppRef, Batch, CloudOrder, RawStatus};

/// Polls in a row an order may go undescribed (failures, skips) or unknown before the operator
/// stops asking and writes what it has.
pub const MAX_DESCRIBE_TRIES: u32 = 5;

/// Existing ChangeOrders of one watch, by cloud order id.
pub type Existing<'a> = HashMap<&'a str, &'a ChangeOrder>;

/// Existing objects by order id. Where two objects hold the same id (an object named by an
/// older naming rule beside its correctly named successor), the correctly named one counts.
pub fn existing_by_id<'a>(objects: &'a [std::sync::Arc<ChangeOrder>], watch_name: &str) -> Existing<'a> {
    let mut out: Existing<'a> = HashMap::with_capacity(objects.len());
    for o in objects {
        let id = o.spec.change_order_id.as_str();
        let well_named = o.metadata.name.as_deref() == Some(object_name(watch_name, id).as_str());
        if well_named || !out.contains_key(id) {
            out.insert(id, o.as_ref());
        }
    }
    out
}

/// Objects named by an older naming rule whose correctly named successor already exists: they
/// hold nothing the successor lacks, and can go.
pub fn superseded(objects: &[std::sync::Arc<ChangeOrder>], existing: &Existing<'_>) -> Vec<String> {
    let mut out: Vec<String> = objects
        .iter()
        .filter(|o| {
            existing
                .get(o.spec.change_order_id.as_str())
                .is_some_and(|kept| kept.metadata.name != o.metadata.name)
        })
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    out.sort_unstable();
    out
}

fn stored_phase(obj: &ChangeOrder) -> Option<Phase> {
    obj.status.as_ref().and_then(|s| s.phase)
}

fn is_stored_terminal(obj: &ChangeOrder) -> bool {
    stored_phase(obj).is_some_and(Phase::is_terminal)
}

/// The cloud said it no longer has this order: nothing will change it again.
fn is_stored_gone(obj: &ChangeOrder) -> bool {
    obj.status.as_ref().and_then(|s| s.reason.as_deref()) == Some(REASON_ORDER_NOT_FOUND)
}

/// Stored finished or gone: never described, judged or written again (only retention and the
/// watch's report read it), which is what lets the cache keep less of it
/// (`cache::compact_final`).
pub fn is_final(obj: &ChangeOrder) -> bool {
    is_stored_terminal(obj) || is_stored_gone(obj)
}

/// Finished, unknown or gone: not in flight, so retention may count it and it does not keep
/// the watch on the fast interval.
pub fn is_settled(obj: &ChangeOrder) -> bool {
    stored_phase(obj).is_some_and(|p| !p.is_in_flight())
}

/// Orders needing a describe call: those the list shows in flight or unknown, those stored in
/// flight (so their final state and batches are captured, even once they drop off the list).
/// Never an order stored as finished or gone, never history first seen finished (the list has
/// what the object shows), and never an order that went `MAX_DESCRIBE_TRIES` polls without a
/// useful answer.
pub fn to_describe(
    listed: &[CloudOrder],
    existing: &Existing<'_>,
    misses: &HashMap<String, u32>,
) -> Vec<String> {
    let tries_left = |id: &str| misses.get(id).copied().unwrap_or(0) < MAX_DESCRIBE_TRIES;
    let mut out = Vec::new();
    let mut seen = HashSet::with_capacity(listed.len());
    for order in listed {
        if !seen.insert(order.id.as_str()) {
            continue;
        }
        let want = match existing.get(order.id.as_str()) {
            Some(obj) => !is_final(obj),
            None => !classify(order.provider, &order.status).0.is_terminal(),
        };
        if want && tries_left(&order.id) {
            out.push(order.id.clone());
        }
    }
    let mut dropped: Vec<&str> = existing
        .iter()
        .filter(|(id, obj)| !seen.contains(**id) && !is_final(obj))
        .map(|(id, _)| *id)
        .filter(|id| tries_left(id))
        .collect();
    dropped.sort_unstable();
    out.extend(dropped.into_iter().map(str::to_string));
    out
}

/// The stored orders that are not final, in the list's terms and by id: what a describe-only
/// poll describes in place of a list (see `fetch::Listing::Known`). No list gives a current
/// batch, so none is carried over: a describe that names none (EDAS's, once every batch is
/// done) must not be filled with the stored, older one.
pub fn known_open(existing: &Existing<'_>) -> Vec<CloudOrder> {
    let mut open: Vec<&ChangeOrder> = existing.values().copied().filter(|o| !is_final(o)).collect();
    open.sort_by(|a, b| a.spec.change_order_id.cmp(&b.spec.change_order_id));
    open.into_iter().map(describe_base).collect()
}

/// What a describe of a stored order is merged into when no list shows the order: the stored
/// object in the list's terms, without the current batch.
fn describe_base(obj: &ChangeOrder) -> CloudOrder {
    CloudOrder {
        current_batch: None,
        ..as_listed(obj)
    }
}

/// What a stored object says about its order, in the list's terms: the base a describe is
/// merged into when the order no longer appears in the list.
pub fn as_listed(obj: &ChangeOrder) -> CloudOrder {
    let status = obj.status.as_ref();
    let raw = match status.and_then(|s| s.provider_status.as_deref()) {
        Some(v) => match v.parse::<i64>() {
            Ok(code) if obj.spec.provider != changeorder_cloud::model::Provider::Appstack => {
                RawStatus::Code(code)
            }
            _ => RawStatus::Text(v.to_string()),
        },
        None => RawStatus::Missing,
    };
    let mut order = CloudOrder::new(obj.spec.provider, obj.spec.change_order_id.clone(), raw);
    order.order_type = obj.spec.order_type.clone();
    order.type_code = obj.spec.type_code.clone();
    order.description = obj.spec.description.clone();
    order.creator = obj.spec.creator.clone();
    order.create_time = obj.spec.create_time.as_ref().map(|t| t.0);
    order.batch_type = obj.spec.batch_type.clone();
    order.env_names = obj.spec.env_names.clone();
    order.finish_time = status.and_then(|s| s.finish_time.as_ref()).map(|t| t.0);
    order.batch_count = status.and_then(|s| s.batch_count);
    order.current_batch = status.and_then(|s| s.current_batch);
    order.sub_status = status.and_then(|s| s.provider_sub_status);
    order
}

/// The list's view of an order with the stored object filling what only a describe gives
/// (batches, current batch, and the cloud's message while the phase is unchanged), so that a
/// missing describe never makes an object say less than it did.
pub fn keep_stored_detail(mut order: CloudOrder, stored: &ChangeOrder) -> CloudOrder {
    let Some(status) = stored.status.as_ref() else {
        return order;
    };
    if order.batches.is_empty() {
        order.batches = status
            .batches
            .iter()
            .map(|b| Batch {
                id: None,
                name: b.name.clone(),
                state: b.state.clone(),
                start_time: b.start_time.as_ref().map(|t| t.0),
                end_time: b.end_time.as_ref().map(|t| t.0),
                message: b.message.clone(),
            })
            .collect();
    }
    order.current_batch = order.current_batch.or(status.current_batch);
    order.batch_count = order.batch_count.or(status.batch_count);
    order.sub_status = order.sub_status.or(status.provider_sub_status);
    let same_phase = status.phase == Some(classify(order.provider, &order.status).0);
    if order.message.is_none() && same_phase {
        order.message = status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY)
            .map(|c| c.message.clone())
            .filter(|m| !m.is_empty());
    }
    order
}

/// Retention of finished orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_finished: usize,
    pub max_age: Option<Duration>,
    /// A final status stands at least this long (the watch's interval) before it may be
    /// pruned, so whoever waits on the order sees it finish rather than vanish.
    pub min_keep: Duration,
}

struct Candidate<'a> {
    id: &'a str,
    settled: bool,
    /// Settled too recently to be pruned.
    protected: bool,
    /// When it finished (or, lacking that, was created): the newest are kept first.
    at: Option<Timestamp>,
}

/// Ids that retention keeps: everything in flight or protected, and the newest settled ones.
fn retained<'a>(candidates: &[Candidate<'a>], policy: &Retention, now: Timestamp) -> HashSet<&'a str> {
    let mut settled: Vec<&Candidate<'a>> = candidates.iter().filter(|c| c.settled).collect();
    // Newest first; unknown times last; id as a tie-breaker so the choice is stable.
    settled.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(b.id)));
    let young_enough = |c: &Candidate<'_>| match (policy.max_age, c.at) {
        (Some(max), Some(at)) => now.duration_since(at).unsigned_abs() <= max || at > now,
        _ => true,
    };
    let mut keep: HashSet<&'a str> = candidates
        .iter()
        .filter(|c| !c.settled || c.protected)
        .map(|c| c.id)
        .collect();
    keep.extend(
        settled
            .into_iter()
            .filter(|c| young_enough(c))
            .take(policy.max_finished)
            .map(|c| c.id),
    );
    keep
}

/// When the stored object last changed a condition: for a settled order, when it settled.
fn settled_since(obj: &ChangeOrder) -> Option<Timestamp> {
    obj.status
        .as_ref()?
        .conditions
        .iter()
        .map(|c| c.last_transition_time.0)
        .max()
}

/// One order's fate in this poll.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Write this view of the order (if it differs from the stored object).
    Write(Box<CloudOrder>),
    /// Leave the stored object as it is this poll (a describe is still owed).
    Keep,
}

/// What the cloud's answers mean for one order, given what is stored and how many polls in a
/// row it has gone without a useful describe. Pure; see the module rules.
pub fn judge(
    listed: Option<&CloudOrder>,
    detail: Option<&Detail>,
    stored: Option<&ChangeOrder>,
    misses: u32,
) -> Verdict {
    let tries_left = misses < MAX_DESCRIBE_TRIES;
    match (listed, detail, stored) {
        // Stored finished (or gone): it stays as it is. It is never described; were a detail
        // at hand anyway, the cache's copy of a final order is compacted and must not be the
        // base of a write.
        (_, _, Some(obj)) if is_final(obj) => Verdict::Keep,
        (Some(l), Some(Detail::Found(d)), _) => Verdict::Write(Box::new(merge(l, (**d).clone()))),
        (None, Some(Detail::Found(d)), Some(obj)) => {
            Verdict::Write(Box::new(merge(&describe_base(obj), (**d).clone())))
        }
        (None, Some(Detail::NotFound), Some(obj)) => {
            let mut order = keep_stored_detail(as_listed(obj), obj);
            order.gone = true;
            Verdict::Write(Box::new(order))
        }
        // Listed, no useful describe (not wanted, failed, skipped, or "not found" racing the
        // list): the list's view, never less than is stored; a just-finished order waits for
        // its describe while tries are left.
        (Some(l), _, Some(obj)) => {
            let finishing = !is_stored_terminal(obj) && classify(l.provider, &l.status).0.is_terminal();
            let describe_owed = detail.is_some_and(|d| !matches!(d, Detail::Found(_)));
            if finishing && describe_owed && tries_left {
                Verdict::Keep
            } else {
                Verdict::Write(Box::new(keep_stored_detail(l.clone(), obj)))
            }
        }
        (Some(l), _, None) => Verdict::Write(Box::new(l.clone())),
        // Fell off the list and the describe did not answer: keep what is stored.
        (None, _, _) => Verdict::Keep,
    }
}

/// What one poll should do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Desired objects for orders to write (whether they differ from the stored ones is
    /// decided by `needs_spec_write` / `needs_status_write`).
    pub desired: Vec<ChangeOrder>,
    /// Names of stored objects to remove: retention, and objects superseded by a renamed one.
    pub prune: Vec<String>,
    /// Orders that cannot be written at all, with the reason (an id too long to be one).
    pub refused: Vec<(String, String)>,
    /// Polls in a row without a useful describe, per order, after this poll.
    pub misses: HashMap<String, u32>,
}

/// The parts of a poll the plan is built from.
pub struct Input<'a> {
    pub watch: &'a ChangeOrderWatch,
    pub app: &'a AppRef,
    pub fetched: &'a Fetched,
    pub existing: &'a Existing<'a>,
    pub superseded: Vec<String>,
    pub retention: &'a Retention,
    pub misses: &'a HashMap<String, u32>,
    pub now: Timestamp,
}

/// Build the plan from the cloud's answers and the stored objects.
pub fn plan(input: Input<'_>) -> Plan {
    let Input {
        watch,
        app,
        fetched,
        existing,
        retention,
        misses,
        now,
        ..
    } = input;
    let listed: HashMap<&str, &CloudOrder> = fetched.listed.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut ids: Vec<&str> = listed.keys().copied().chain(existing.keys().copied()).collect();
    ids.sort_unstable();
    ids.dedup();

    let mut refused = Vec::new();
    let mut next_misses = HashMap::new();
    let mut verdicts: Vec<(&str, Verdict)> = Vec::with_capacity(ids.len());
    for id in ids {
        if id.len() > mapping::MAX_ORDER_ID_LEN {
            refused.push((
                mapping::cut(id, 64),
                format!(
                    "order id is {} bytes long, over the limit of {}",
                    id.len(),
                    mapping::MAX_ORDER_ID_LEN
                ),
            ));
            continue;
        }
        let detail = fetched.details.get(id);
        let seen_misses = misses.get(id).copied().unwrap_or(0);
        let verdict = judge(
            listed.get(id).copied(),
            detail,
            existing.get(id).copied(),
            seen_misses,
        );
        let useful = match detail {
            Some(Detail::Found(d)) => classify(d.provider, &d.status).0 != Phase::Unknown,
            Some(Detail::NotFound) => true,
            Some(Detail::Failed(_) | Detail::Skipped) => false,
            None => true,
        };
        if detail.is_some() && !useful {
            next_misses.insert(id.to_string(), seen_misses.saturating_add(1));
        } else if detail.is_none() && seen_misses > 0 {
            next_misses.insert(id.to_string(), seen_misses);
        }
        verdicts.push((id, verdict));
    }

    let candidates: Vec<Candidate<'_>> = verdicts
        .iter()
        .filter_map(|(id, verdict)| {
            let stored = existing.get(id).copied();
            Some(match (verdict, stored) {
                (Verdict::Write(o), _) => {
                    let settled = o.gone || !classify(o.provider, &o.status).0.is_in_flight();
                    let newly_settled = settled && stored.is_some_and(|s| !is_settled(s));
                    Candidate {
                        id,
                        settled,
                        protected: newly_settled
                            || stored.is_some_and(|s| recently_settled(s, retention, now)),
                        at: o.finish_time.or(o.create_time),
                    }
                }
                (Verdict::Keep, Some(obj)) => Candidate {
                    id,
                    settled: is_settled(obj),
                    protected: recently_settled(obj, retention, now),
                    at: obj
                        .status
                        .as_ref()
                        .and_then(|s| s.finish_time.as_ref())
                        .or(obj.spec.create_time.as_ref())
                        .map(|t| t.0),
                },
                // Kept but not stored cannot happen (ids come from the list or the store).
                (Verdict::Keep, None) => return None,
            })
        })
        .collect();
    let keep = retained(&candidates, retention, now);

    let mut desired = Vec::new();
    for (id, verdict) in &verdicts {
        if let (true, Verdict::Write(order)) = (keep.contains(id), verdict) {
            desired.push(desired_object(watch, app, order, existing.get(id).copied(), now));
        }
    }
    let mut prune: Vec<String> = existing
        .iter()
        .filter(|(id, _)| !keep.contains(**id))
        .filter_map(|(_, obj)| obj.metadata.name.clone())
        .chain(input.superseded)
        .collect();
    prune.sort_unstable();
    prune.dedup();
    Plan {
        desired,
        prune,
        refused,
        misses: next_misses,
    }
}

fn recently_settled(obj: &ChangeOrder, retention: &Retention, now: Timestamp) -> bool {
    is_settled(obj)
        && settled_since(obj).is_some_and(|t| now.duration_since(t).unsigned_abs() < retention.min_keep)
}

/// Metadata and spec differ from what is stored (or nothing is stored).
pub fn needs_spec_write(desired: &ChangeOrder, stored: Option<&ChangeOrder>) -> bool {
    let Some(stored) = stored else { return true };
    let labels_missing = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .any(|(k, v)| stored.metadata.labels.as_ref().and_then(|l| l.get(k)) != Some(v));
    let owners_missing = desired.metadata.owner_references.iter().flatten().any(|r| {
        !stored
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|s| s.uid == r.uid)
    });
    labels_missing || owners_missing || desired.spec != stored.spec
}

/// Status differs from what is stored. `observedGeneration` follows the stored generation.
pub fn needs_status_write(desired: &ChangeOrder, stored: Option<&ChangeOrder>) -> bool {
    stored.is_none_or(|s| s.status != desired.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ChangeOrderWatchSpec;
    use changeorder_cloud::error::CloudError;
    use changeorder_cloud::model::{Provider, RawStatus};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn watch() -> ChangeOrderWatch {
        let spec: ChangeOrderWatchSpec = serde_json::from_value(serde_json::json!({
            "provider": "edas", "region": "cn-hangzhou", "appId": "app",
            "credentialsSecretRef": {"name": "creds"}
        }))
        .expect("spec");
        let mut w = ChangeOrderWatch::new("w", spec);
        w.metadata.namespace = Some("ns".into());
        w.metadata.uid = Some("uid-1".into());
        w
    }

    fn order(id: &str, status: i64, finished: Option<&str>) -> CloudOrder {
        let mut o = CloudOrder::new(Provider::Edas, id, RawStatus::Code(status));
        o.finish_time = finished.map(ts);
        o.create_time = Some(ts("2026-01-01T00:00:00Z"));
        o
    }

    fn detailed(id: &str, status: i64, message: &str) -> CloudOrder {
        let mut o = order(id, status, None);
        o.batch_count = Some(2);
        o.current_batch = Some(2);
        o.message = Some(message.to_string());
        o.batches = vec![
            Batch {
                name: "Batch 1".into(),
                state: "2".into(),
                ..Default::default()
            },
            Batch {
                name: "Batch 2".into(),
                state: status.to_string(),
                message: Some(message.to_string()),
                ..Default::default()
            },
        ];
        o.detailed = true;
        o
    }

    fn stored_from(o: &CloudOrder, at: &str) -> ChangeOrder {
        let app = AppRef::Id("app".into());
        let mut obj = desired_object(&watch(), &app, o, None, ts(at));
        // As the API server returns it after the operator's writes.
        obj.metadata.generation = Some(1);
        if let Some(s) = obj.status.as_mut() {
            mapping::observe_generation(s, Some(1));
        }
        obj
    }

    fn stored(id: &str, status: i64, finished: Option<&str>) -> ChangeOrder {
        stored_from(&order(id, status, finished), "2026-01-01T00:00:00Z")
    }

    fn policy(max_finished: usize) -> Retention {
        Retention {
            max_finished,
            max_age: None,
            min_keep: Duration::from_secs(60),
        }
    }

    fn run(
        listed: Vec<CloudOrder>,
        details: Vec<(&str, Detail)>,
        existing: &Existing<'_>,
        retention: &Retention,
        now: &str,
    ) -> Plan {
        run_with_misses(listed, details, existing, retention, &HashMap::new(), now)
    }

    fn run_with_misses(
        listed: Vec<CloudOrder>,
        details: Vec<(&str, Detail)>,
        existing: &Existing<'_>,
        retention: &Retention,
        misses: &HashMap<String, u32>,
        now: &str,
    ) -> Plan {
        let fetched = Fetched {
            listed,
            from_cloud: true,
            details: details.into_iter().map(|(id, d)| (id.to_string(), d)).collect(),
        };
        plan(Input {
            watch: &watch(),
            app: &AppRef::Id("app".into()),
            fetched: &fetched,
            existing,
            superseded: Vec::new(),
            retention,
            misses,
            now: ts(now),
        })
    }

    fn ids(p: &Plan) -> Vec<&str> {
        p.desired
            .iter()
            .map(|o| o.spec.change_order_id.as_str())
            .collect()
    }

    fn status(p: &Plan, id: &str) -> crate::crd::ChangeOrderStatus {
        p.desired
            .iter()
            .find(|o| o.spec.change_order_id == id)
            .and_then(|o| o.status.clone())
            .expect("desired with status")
    }

    fn ready_message(s: &crate::crd::ChangeOrderStatus) -> &str {
        &s.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .expect("Ready")
            .message
    }

    fn throttled() -> Detail {
        Detail::Failed(
            CloudError::new(
                changeorder_cloud::error::ErrorKind::Throttled,
                "Request was denied due to user flow control.",
            )
            .with_code("Throttling.User"),
        )
    }

    /// Between discovery lists a poll describes only the open orders, with what is stored in
    /// place of the list: it writes what a list-based poll writes, writes nothing for an order
    /// that did not change, and takes a "not found" as unconfirmed (no list says it is gone).
    #[test]
    fn a_describe_only_poll_plans_as_a_listed_one() {
        let at = "2026-01-01T00:00:00Z";
        let done = stored("done", 2, Some("2026-01-01T01:00:00Z"));
        let mut waiting = detailed("moving", 8, "waiting");
        waiting.current_batch = Some(1);
        let moving = stored_from(&waiting, at);
        let still = stored_from(&detailed("still", 1, "running"), at);
        let vanished = stored_from(&detailed("vanished", 1, "running"), at);
        let existing: Existing<'_> = [
            ("done", &done),
            ("moving", &moving),
            ("still", &still),
            ("vanished", &vanished),
        ]
        .into_iter()
        .collect();
        let known = known_open(&existing);
        let known_ids: Vec<&str> = known.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            known_ids,
            ["moving", "still", "vanished"],
            "final orders are not described"
        );
        assert_eq!(
            to_describe(&known, &existing, &HashMap::new()),
            ["moving", "still", "vanished"]
        );
        let now = "2026-01-01T00:05:00Z";
        // Finished: no unfinished batch, so the detail names no current batch (as EDAS's does).
        let mut finished = detailed("moving", 2, "done");
        finished.current_batch = None;
        let details = || {
            vec![
                ("moving", Detail::Found(Box::new(finished.clone()))),
                ("still", Detail::Found(Box::new(detailed("still", 1, "running")))),
                ("vanished", Detail::NotFound),
            ]
        };
        let described = run(known.clone(), details(), &existing, &policy(10), now);
        let listed = vec![
            order("done", 2, None),
            order("moving", 2, None),
            order("still", 1, None),
        ];
        let with_list = run(listed, details(), &existing, &policy(10), now);
        let stored_of = |id: &str| existing.get(id).copied();
        let changed = |p: &Plan| -> Vec<String> {
            p.desired
                .iter()
                .filter(|o| needs_status_write(o, stored_of(&o.spec.change_order_id)))
                .map(|o| o.spec.change_order_id.clone())
                .collect()
        };
        // The finished order is written, complete, by both; the unchanged one by neither.
        assert_eq!(status(&described, "moving"), status(&with_list, "moving"));
        assert_eq!(status(&described, "moving").phase, Some(Phase::Succeeded));
        assert_eq!(
            status(&described, "moving").current_batch,
            Some(2),
            "not the stored batch"
        );
        assert!(
            !changed(&described).contains(&"still".to_string()),
            "{:?}",
            changed(&described)
        );
        // Off the list and not found, it is gone; not found without a list proves nothing yet.
        assert!(changed(&with_list).contains(&"vanished".to_string()));
        assert_eq!(changed(&described), ["moving"]);
        assert!(described.prune.is_empty() && described.misses.is_empty());
    }

    #[test]
    fn describe_only_what_can_still_change() {
        let done = stored("done", 2, Some("2026-01-01T01:00:00Z"));
        let running = stored("running", 1, None);
        let fell_off = stored("fell-off", 8, None);
        let existing: Existing<'_> = [("done", &done), ("running", &running), ("fell-off", &fell_off)]
            .into_iter()
            .collect();
        let listed = vec![
            order("done", 2, None),        // stored finished: never again
            order("running", 2, None),     // finished since last poll: one last describe
            order("new-running", 1, None), // new and in flight
            order("new-history", 3, None), // new but already finished: list is enough
            order("new-running", 1, None), // duplicates in the list are described once
        ];
        let none = HashMap::new();
        assert_eq!(
            to_describe(&listed, &existing, &none),
            vec!["running", "new-running", "fell-off"]
        );
        // Nothing stored, nothing in flight: no describe at all.
        assert!(
            to_describe(
                &[order("a", 2, None), order("b", 6, None)],
                &Existing::new(),
                &none
            )
            .is_empty()
        );
        // Tries run out: an order that went MAX_DESCRIBE_TRIES polls without an answer rests.
        let spent: HashMap<String, u32> = [("running".to_string(), MAX_DESCRIBE_TRIES)].into();
        assert_eq!(
            to_describe(&listed, &existing, &spent),
            vec!["new-running", "fell-off"]
        );
    }

    /// Defect: a throttled describe used to write the list-only view, dropping batches and the
    /// cloud's message; once finished, the order was never described again.
    #[test]
    fn a_failed_describe_never_writes_less_than_is_stored() {
        let now = "2026-01-01T00:10:00Z";
        let before = detailed("co", 8, "batch 2 waits for confirmation");
        let obj = stored_from(&before, "2026-01-01T00:00:00Z");
        let existing: Existing<'_> = [("co", &obj)].into_iter().collect();

        // Still waiting, describe throttled: the stored batches and message stay.
        let p = run(
            vec![order("co", 8, None)],
            vec![("co", throttled())],
            &existing,
            &policy(10),
            now,
        );
        let s = status(&p, "co");
        assert_eq!(s.batches.len(), 2);
        assert_eq!((s.current_batch, s.batch_count), (Some(2), Some(2)));
        assert_eq!(ready_message(&s), "batch 2 waits for confirmation");
        assert!(
            !needs_status_write(&p.desired[0], Some(&obj)),
            "nothing new: no write"
        );
        assert_eq!(p.misses.get("co"), Some(&1));

        // Finished on the list, describe throttled: not written finished yet (held for a
        // complete final status), and described again.
        let p = run(
            vec![order("co", 3, Some("2026-01-01T00:09:00Z"))],
            vec![("co", throttled())],
            &existing,
            &policy(10),
            now,
        );
        assert!(p.desired.is_empty(), "held until a describe succeeds");
        assert!(p.prune.is_empty());
        assert_eq!(
            to_describe(&[order("co", 3, None)], &existing, &p.misses),
            vec!["co"]
        );

        // The next describe succeeds: the final status is complete.
        let p = run(
            vec![order("co", 3, Some("2026-01-01T00:09:00Z"))],
            vec![(
                "co",
                Detail::Found(Box::new(detailed("co", 3, "batch 2 failed: image pull"))),
            )],
            &existing,
            &policy(10),
            now,
        );
        let s = status(&p, "co");
        assert_eq!(s.phase, Some(Phase::Failed));
        assert_eq!(s.batches.len(), 2);
        assert_eq!(ready_message(&s), "batch 2 failed: image pull");
        assert!(s.finish_time.is_some());

        // Tries exhausted: the list's final state is written, with the stored batches kept.
        let spent: HashMap<String, u32> = [("co".to_string(), MAX_DESCRIBE_TRIES)].into();
        let p = run_with_misses(
            vec![order("co", 3, Some("2026-01-01T00:09:00Z"))],
            Vec::new(),
            &existing,
            &policy(10),
            &spent,
            now,
        );
        let s = status(&p, "co");
        assert_eq!((s.phase, s.batches.len()), (Some(Phase::Failed), 2));
    }

    /// Defect: an in-flight order that fell off the list and that the cloud no longer has was
    /// described forever and kept its watch on the fast interval.
    #[test]
    fn an_order_the_cloud_no_longer_has_settles_as_unknown() {
        let obj = stored_from(&detailed("gone", 1, "deploying"), "2026-01-01T00:00:00Z");
        let existing: Existing<'_> = [("gone", &obj)].into_iter().collect();
        let p = run(
            Vec::new(),
            vec![("gone", Detail::NotFound)],
            &existing,
            &policy(10),
            "2026-01-01T00:10:00Z",
        );
        let s = status(&p, "gone");
        assert_eq!(s.phase, Some(Phase::Unknown));
        assert_eq!(s.reason.as_deref(), Some(REASON_ORDER_NOT_FOUND));
        assert_eq!(s.batches.len(), 2, "what was known is kept");
        let cond = |t: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .expect("condition")
                .clone()
        };
        assert_eq!(cond("Reconciling").status, "False");
        assert_eq!(cond("Stalled").status, "True");
        assert!(
            cond("Ready").message.contains("no longer has"),
            "{}",
            cond("Ready").message
        );
        // Once written, it is settled: never described again, not in flight.
        let mut written = obj.clone();
        written.status = Some(s);
        assert!(is_settled(&written));
        let existing: Existing<'_> = [("gone", &written)].into_iter().collect();
        assert!(to_describe(&[], &existing, &HashMap::new()).is_empty());
    }

    #[test]
    fn an_unknown_status_is_described_a_bounded_number_of_times_and_counts_as_settled() {
        let listed = vec![order("odd", 42, None)];
        let mut misses = HashMap::new();
        let obj = stored("odd", 42, None);
        let existing: Existing<'_> = [("odd", &obj)].into_iter().collect();
        assert!(
            is_settled(&obj),
            "Unknown does not keep the watch on the fast interval"
        );
        let mut described = 0;
        for _ in 0..20 {
            let wanted = to_describe(&listed, &existing, &misses);
            if wanted.is_empty() {
                break;
            }
            described += 1;
            misses = run_with_misses(
                listed.clone(),
                vec![("odd", Detail::Found(Box::new(order("odd", 42, None))))],
                &existing,
                &policy(10),
                &misses,
                "2026-01-01T00:10:00Z",
            )
            .misses;
        }
        assert_eq!(described, MAX_DESCRIBE_TRIES);
    }

    #[test]
    fn retention_keeps_newest_finished_and_all_in_flight() {
        let now = "2026-01-10T00:00:00Z";
        let cloud = vec![
            order("old", 2, Some("2026-01-01T00:00:00Z")),
            order("mid", 3, Some("2026-01-05T00:00:00Z")),
            order("new", 2, Some("2026-01-09T00:00:00Z")),
            order("live", 1, None),
        ];
        let p = run(cloud.clone(), Vec::new(), &Existing::new(), &policy(2), now);
        assert_eq!(ids(&p), vec!["live", "mid", "new"]);

        // Age limit: only finished in the last 3 days; stored "old" is pruned, not re-created.
        let old = stored("old", 2, Some("2026-01-01T00:00:00Z"));
        let existing: Existing<'_> = [("old", &old)].into_iter().collect();
        let aged = Retention {
            max_age: Some(Duration::from_secs(3 * 86400)),
            ..policy(10)
        };
        let p = run(cloud, Vec::new(), &existing, &aged, now);
        assert_eq!(ids(&p), vec!["live", "new"]);
        assert_eq!(p.prune, vec![old.metadata.name.clone().expect("name")]);
    }

    /// Defect: retention could delete an order in the poll where it finished, so a
    /// `kubectl wait` saw a deletion instead of the final condition.
    #[test]
    fn a_final_status_stands_for_an_interval_before_retention_removes_it() {
        let young = stored("young", 2, Some("2026-01-09T00:00:00Z"));
        let running = stored_from(&detailed("finishing", 1, "deploying"), "2026-01-01T00:00:00Z");
        let existing: Existing<'_> = [("young", &young), ("finishing", &running)].into_iter().collect();
        // maxFinished 1 and "finishing" is the older of the two: it would be pruned at once.
        let listed = vec![
            order("young", 2, Some("2026-01-09T00:00:00Z")),
            order("finishing", 2, Some("2026-01-02T00:00:00Z")),
        ];
        let found = || {
            vec![(
                "finishing",
                Detail::Found(Box::new(detailed("finishing", 2, "done"))),
            )]
        };
        let p = run(
            listed.clone(),
            found(),
            &existing,
            &policy(1),
            "2026-01-10T00:00:00Z",
        );
        assert_eq!(ids(&p), vec!["finishing"], "written finished, not pruned");
        assert!(p.prune.is_empty());

        // Stored finished a moment ago (its conditions moved at 00:00:00): kept for min_keep.
        let mut finished = running.clone();
        finished.status = Some(status(&p, "finishing"));
        let existing: Existing<'_> = [("young", &young), ("finishing", &finished)]
            .into_iter()
            .collect();
        let p = run(
            listed.clone(),
            Vec::new(),
            &existing,
            &policy(1),
            "2026-01-10T00:00:30Z",
        );
        assert!(p.prune.is_empty(), "{:?}", p.prune);
        // A full interval later it may go.
        let p = run(listed, Vec::new(), &existing, &policy(1), "2026-01-10T00:01:01Z");
        assert_eq!(p.prune, vec![finished.metadata.name.clone().expect("name")]);
    }

    #[test]
    fn stored_finished_orders_are_left_alone_and_unchanged_orders_need_no_write() {
        let now = "2026-01-10T00:00:00Z";
        let done = stored("done", 2, Some("2026-01-09T00:00:00Z"));
        let running = stored("running", 1, None);
        let existing: Existing<'_> = [("done", &done), ("running", &running)].into_iter().collect();
        // The list now claims something else for the finished order: ignored.
        let p = run(
            vec![order("done", 1, None), order("running", 1, None)],
            Vec::new(),
            &existing,
            &policy(10),
            now,
        );
        assert_eq!(p.desired.len(), 1);
        let desired = &p.desired[0];
        assert!(!needs_spec_write(desired, Some(&running)));
        assert!(
            !needs_status_write(desired, Some(&running)),
            "same cloud state: no write"
        );
        assert!(p.prune.is_empty());

        let p = run(
            vec![order("running", 8, None)],
            Vec::new(),
            &existing,
            &policy(10),
            now,
        );
        assert!(needs_status_write(&p.desired[0], Some(&running)));
        assert!(!needs_spec_write(&p.desired[0], Some(&running)));
        assert!(needs_spec_write(&p.desired[0], None));
    }

    /// Cloud times with milliseconds used to differ from the stored (whole-second) value on
    /// every poll, so every in-flight order was PATCHed every time.
    #[test]
    fn sub_second_cloud_times_compare_equal_to_what_the_api_server_stores() {
        let mut o = detailed("ms", 1, "deploying");
        o.create_time = Some(ts("2026-01-01T00:00:00.123Z"));
        o.batches[0].start_time = Some(ts("2026-01-01T00:00:01.999Z"));
        let obj = stored_from(&o, "2026-01-01T00:00:00.5Z");
        // What the API server hands back: the object through JSON.
        let back: ChangeOrder =
            serde_json::from_value(serde_json::to_value(&obj).expect("json")).expect("from json");
        let existing: Existing<'_> = [("ms", &back)].into_iter().collect();
        let p = run(
            vec![o.clone()],
            vec![("ms", Detail::Found(Box::new(o)))],
            &existing,
            &policy(10),
            "2026-01-01T00:05:00.7Z",
        );
        assert!(!needs_spec_write(&p.desired[0], Some(&back)));
        assert!(!needs_status_write(&p.desired[0], Some(&back)));
    }

    #[test]
    fn an_id_too_long_to_be_one_is_refused_and_the_others_go_on() {
        let long = "x".repeat(mapping::MAX_ORDER_ID_LEN + 1);
        let p = run(
            vec![order(&long, 1, None), order("fine", 1, None)],
            Vec::new(),
            &Existing::new(),
            &policy(10),
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(ids(&p), vec!["fine"]);
        assert_eq!(p.refused.len(), 1);
        assert!(p.refused[0].1.contains("over the limit"), "{:?}", p.refused);
    }

    #[test]
    fn objects_named_by_an_older_rule_are_superseded_once_the_new_one_exists() {
        let mut old = stored("ABC", 1, None);
        old.metadata.name = Some("w-abc".into());
        let new = stored("ABC", 1, None);
        assert_ne!(new.metadata.name.as_deref(), Some("w-abc"));
        let only_old = vec![std::sync::Arc::new(old.clone())];
        let existing = existing_by_id(&only_old, "w");
        assert!(
            superseded(&only_old, &existing).is_empty(),
            "kept until its successor exists"
        );
        let both = vec![std::sync::Arc::new(old), std::sync::Arc::new(new.clone())];
        let existing = existing_by_id(&both, "w");
        assert_eq!(
            existing.get("ABC").and_then(|o| o.metadata.name.clone()),
            new.metadata.name
        );
        assert_eq!(superseded(&both, &existing), vec!["w-abc".to_string()]);
    }

    #[test]
    fn a_stored_object_reads_back_as_its_listed_order() {
        let mut listed = order("x", 8, None);
        listed.order_type = Some("Deploy".into());
        listed.batch_count = Some(3);
        listed.current_batch = Some(2);
        let app = AppRef::Id("app".into());
        let obj = desired_object(&watch(), &app, &listed, None, ts("2026-01-01T00:00:00Z"));
        let back = as_listed(&obj);
        assert_eq!(back, listed);
    }

    /// The cache keeps less of a final order (`cache::compact_final`): whatever the cloud says,
    /// a poll plans, prunes and reports exactly as it would from the full object, so nothing
    /// can be written from the compacted copy.
    #[test]
    fn a_final_order_compacted_by_the_cache_plans_and_reports_as_the_full_one() {
        let at = "2026-01-01T00:00:00Z";
        let running = stored_from(&detailed("done", 1, "deploying"), at);
        let existing: Existing<'_> = [("done", &running)].into_iter().collect();
        let finishing = run(
            vec![order("done", 2, Some("2026-01-01T00:05:00Z"))],
            vec![(
                "done",
                Detail::Found(Box::new(detailed("done", 2, "all batches done"))),
            )],
            &existing,
            &policy(10),
            "2026-01-01T00:05:00Z",
        );
        let mut done = running.clone();
        done.status = Some(status(&finishing, "done"));
        let gone_at = "2026-01-01T00:10:00Z";
        let went = run(
            Vec::new(),
            vec![("done", Detail::NotFound)],
            &existing,
            &policy(10),
            gone_at,
        );
        let mut gone = stored_from(&detailed("gone", 1, "deploying"), at);
        gone.status = Some(status(&went, "done"));
        let old = stored("old", 3, Some("2025-12-01T00:00:00Z"));
        let live = stored_from(&detailed("live", 1, "deploying"), at);

        let full = [done, gone, old, live];
        let compacted: Vec<ChangeOrder> = full
            .iter()
            .cloned()
            .map(|mut o| {
                if is_final(&o) {
                    crate::controller::cache::compact_final(&mut o);
                }
                o
            })
            .collect();
        let by_id = |objs: &[ChangeOrder]| -> Vec<(String, ChangeOrder)> {
            objs.iter()
                .map(|o| (o.spec.change_order_id.clone(), o.clone()))
                .collect()
        };
        let (full_objs, compact_objs) = (by_id(&full), by_id(&compacted));
        assert!(
            compact_objs[0]
                .1
                .status
                .as_ref()
                .is_some_and(|s| s.batches.is_empty())
        );
        assert!(
            compact_objs[0].1.metadata.labels.is_none(),
            "the final orders were compacted"
        );
        assert_eq!(
            compact_objs[3].1, full_objs[3].1,
            "an order in flight is kept whole"
        );

        // The cloud now says anything at all about the final orders, in the list and in a
        // describe; at moments before and after retention may prune them.
        let listed = || {
            vec![
                order("done", 1, None),
                order("gone", 2, Some("2026-01-02T00:00:00Z")),
                order("old", 3, Some("2025-12-01T00:00:00Z")),
                order("live", 8, None),
            ]
        };
        let details = || {
            vec![
                ("done", Detail::Found(Box::new(detailed("done", 1, "again")))),
                ("gone", Detail::Found(Box::new(detailed("gone", 1, "back")))),
                ("live", Detail::Found(Box::new(detailed("live", 8, "waiting")))),
            ]
        };
        for now in ["2026-01-01T00:10:30Z", "2026-02-01T00:00:00Z"] {
            for retention in [policy(10), policy(1), policy(0)] {
                let full_existing: Existing<'_> = full_objs.iter().map(|(id, o)| (id.as_str(), o)).collect();
                let compact_existing: Existing<'_> =
                    compact_objs.iter().map(|(id, o)| (id.as_str(), o)).collect();
                for with_details in [false, true] {
                    let d = || if with_details { details() } else { Vec::new() };
                    let a = run(listed(), d(), &full_existing, &retention, now);
                    let b = run(listed(), d(), &compact_existing, &retention, now);
                    assert_eq!(ids(&a), vec!["live"], "only the order in flight is written");
                    assert_eq!(
                        (&a.desired, &a.prune, &a.misses),
                        (&b.desired, &b.prune, &b.misses)
                    );
                }
                assert_eq!(
                    to_describe(&listed(), &full_existing, &HashMap::new()),
                    to_describe(&listed(), &compact_existing, &HashMap::new())
                );
            }
        }
        let latest = |objs: &[ChangeOrder]| crate::controller::watch_status::latest_order(objs);
        assert_eq!(latest(&full), latest(&compacted));
        assert_eq!(latest(&full[..1]), latest(&compacted[..1]));
        assert!(
            latest(&compacted[..1])
                .and_then(|l| l.message)
                .is_some_and(|m| m.contains("all batches done"))
        );
    }
}
