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

/// Stored finished (not gone) without the details only a describe gives: what the history
/// backfill describes, once.
pub fn owes_detail(obj: &ChangeOrder) -> bool {
    is_stored_terminal(obj)
        && !is_stored_gone(obj)
        && obj.metadata.deletion_timestamp.is_none()
        && obj.status.as_ref().and_then(|s| s.detailed) != Some(true)
}

/// The orders the history backfill still owes a describe, newest first (creation time, then
/// id), leaving out those retention removes now: describing an order about to be pruned
/// would spend calls on nothing.
pub fn backfill(existing: &Existing<'_>, retention: &Retention, now: Timestamp) -> Vec<String> {
    let candidates: Vec<Candidate<'_>> = existing
        .iter()
        .map(|(id, obj)| stored_candidate(id, obj, retention, now))
        .collect();
    let keep = retained(&candidates, retention, now);
    let mut owed: Vec<&ChangeOrder> = existing
        .iter()
        .filter(|(id, obj)| keep.contains(**id) && owes_detail(obj))
        .map(|(_, obj)| *obj)
        .collect();
    owed.sort_by(|a, b| {
        let at = |o: &ChangeOrder| o.spec.create_time.as_ref().map(|t| t.0);
        at(b)
            .cmp(&at(a))
            .then_with(|| b.spec.change_order_id.cmp(&a.spec.change_order_id))
    });
    owed.into_iter().map(|o| o.spec.change_order_id.clone()).collect()
}

/// The backfill's progress: finished orders stored with their details, and those still owed.
pub fn history(
    existing: &Existing<'_>,
    retention: &Retention,
    now: Timestamp,
) -> crate::crd::HistoryProgress {
    let described = existing
        .values()
        .filter(|o| is_stored_terminal(o) && o.status.as_ref().and_then(|s| s.detailed) == Some(true))
        .count();
    let remaining = backfill(existing, retention, now).len();
    crate::crd::HistoryProgress {
        described: u32::try_from(described).unwrap_or(u32::MAX),
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
    }
}

/// A backfilled order's conditions did not flip: the ones the cache's compact form does not
/// hold keep the time the order settled (when the list wrote them all at once), not now.
fn keep_settled_times(obj: &mut ChangeOrder, stored: &ChangeOrder) {
    let Some(since) = settled_since(stored) else {
        return;
    };
    let held: HashSet<&str> = stored
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().map(|c| c.type_.as_str()))
        .collect();
    for c in obj.status.iter_mut().flat_map(|s| s.conditions.iter_mut()) {
        if !held.contains(c.type_.as_str()) {
            c.last_transition_time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(since);
        }
    }
}

fn stored_candidate<'a>(
    id: &'a str,
    obj: &ChangeOrder,
    retention: &Retention,
    now: Timestamp,
) -> Candidate<'a> {
    Candidate {
        id,
        settled: is_settled(obj),
        protected: recently_settled(obj, retention, now),
        at: obj
            .status
            .as_ref()
            .and_then(|s| s.finish_time.as_ref())
            .or(obj.spec.create_time.as_ref())
            .map(|t| t.0),
    }
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
        // The history backfill's describe of an order stored finished without its details.
        (l, Some(Detail::Found(d)), Some(obj))
            if owes_detail(obj) && classify(d.provider, &d.status).0.is_terminal() =>
        {
            let base = l.cloned().unwrap_or_else(|| describe_base(obj));
            Verdict::Write(Box::new(merge(&base, (**d).clone())))
        }
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
        // The backfill wants an order's final details; any other answer is a miss, so an
        // order the cloud cannot describe is asked `MAX_DESCRIBE_TRIES` times, not forever.
        let owed = existing.get(id).is_some_and(|o| owes_detail(o));
        let useful = match detail {
            Some(Detail::Found(d)) => {
                let phase = classify(d.provider, &d.status).0;
                phase != Phase::Unknown && (!owed || phase.is_terminal())
            }
            Some(Detail::NotFound) => !owed,
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
                (Verdict::Keep, Some(obj)) => stored_candidate(id, obj, retention, now),
                // Kept but not stored cannot happen (ids come from the list or the store).
                (Verdict::Keep, None) => return None,
            })
        })
        .collect();
    let keep = retained(&candidates, retention, now);

    let mut desired = Vec::new();
    for (id, verdict) in &verdicts {
        if let (true, Verdict::Write(order)) = (keep.contains(id), verdict) {
            let stored = existing.get(id).copied();
            let mut obj = desired_object(watch, app, order, stored, now);
            if let Some(stored) = stored.filter(|s| owes_detail(s)) {
                keep_settled_times(&mut obj, stored);
            }
            desired.push(obj);
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
mod tests;
