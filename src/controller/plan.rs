//! Pure planning of one poll: which orders to describe, which objects to write, which to prune.
//! No I/O here, so the rules that keep the operator quiet are table-tested.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;

use crate::cloud::model::{AppRef, CloudOrder, RawStatus};
use crate::crd::{ChangeOrder, ChangeOrderWatch, Phase};
use crate::mapping::{classify, desired_object};

/// Existing ChangeOrders of one watch, by cloud order id.
pub type Existing<'a> = HashMap<&'a str, &'a ChangeOrder>;

pub fn existing_by_id(objects: &[std::sync::Arc<ChangeOrder>]) -> Existing<'_> {
    objects
        .iter()
        .map(|o| (o.spec.change_order_id.as_str(), o.as_ref()))
        .collect()
}

fn stored_phase(obj: &ChangeOrder) -> Option<Phase> {
    obj.status.as_ref().and_then(|s| s.phase)
}

fn is_stored_terminal(obj: &ChangeOrder) -> bool {
    stored_phase(obj).is_some_and(Phase::is_terminal)
}

/// Orders needing a describe call: those the list shows in flight, those we last saw in flight
/// (so their final state and batches are captured, even once they drop off the list). Never an
/// order already stored as finished, and never history first seen finished (the list has what
/// the object shows, and describing a long history would burn the call budget).
pub fn to_describe(listed: &[CloudOrder], existing: &Existing<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for order in listed {
        if !seen.insert(order.id.as_str()) {
            continue;
        }
        let want = match existing.get(order.id.as_str()) {
            Some(obj) => !is_stored_terminal(obj),
            None => !classify(order.provider, &order.status).0.is_terminal(),
        };
        if want {
            out.push(order.id.clone());
        }
    }
    let mut dropped: Vec<&str> = existing
        .iter()
        .filter(|(id, obj)| !seen.contains(**id) && !is_stored_terminal(obj))
        .map(|(id, _)| *id)
        .collect();
    dropped.sort_unstable();
    out.extend(dropped.into_iter().map(str::to_string));
    out
}

/// What a stored object says about its order, in the list's terms: the base a describe is
/// merged into when the order no longer appears in the list.
pub fn as_listed(obj: &ChangeOrder) -> CloudOrder {
    let status = obj.status.as_ref();
    let raw = match status.and_then(|s| s.provider_status.as_deref()) {
        Some(v) => match v.parse::<i64>() {
            Ok(code) if obj.spec.provider != crate::cloud::model::Provider::Appstack => RawStatus::Code(code),
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

/// Retention of finished orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_finished: usize,
    pub max_age: Option<Duration>,
}

struct Candidate<'a> {
    id: &'a str,
    terminal: bool,
    /// When it finished (or, lacking that, was created): the newest are kept first.
    at: Option<Timestamp>,
}

/// Ids of finished orders that retention keeps. Orders in flight are always kept.
fn retained<'a>(candidates: &[Candidate<'a>], policy: &Retention, now: Timestamp) -> HashSet<&'a str> {
    let mut finished: Vec<&Candidate<'a>> = candidates.iter().filter(|c| c.terminal).collect();
    // Newest first; unknown times last; id as a tie-breaker so the choice is stable.
    finished.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(b.id)));
    let young_enough = |c: &Candidate<'_>| match (policy.max_age, c.at) {
        (Some(max), Some(at)) => now.duration_since(at).unsigned_abs() <= max || at > now,
        _ => true,
    };
    let mut keep: HashSet<&'a str> = candidates.iter().filter(|c| !c.terminal).map(|c| c.id).collect();
    keep.extend(
        finished
            .into_iter()
            .filter(|c| young_enough(c))
            .take(policy.max_finished)
            .map(|c| c.id),
    );
    keep
}

/// What one poll should do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Desired objects for orders to keep (whether they differ from the stored ones is
    /// decided by `needs_spec_write` / `needs_status_write`).
    pub desired: Vec<ChangeOrder>,
    /// Names of stored objects that retention removes.
    pub prune: Vec<String>,
}

/// Build the plan from the cloud's orders (list merged with describes) and the stored objects.
pub fn plan(
    watch: &ChangeOrderWatch,
    app: &AppRef,
    cloud: &[CloudOrder],
    existing: &Existing<'_>,
    policy: &Retention,
    now: Timestamp,
) -> Plan {
    let mut by_id: HashMap<&str, &CloudOrder> = HashMap::new();
    for order in cloud {
        by_id.entry(order.id.as_str()).or_insert(order);
    }
    let mut candidates: Vec<Candidate<'_>> = by_id
        .values()
        .map(|o| {
            let terminal = match existing.get(o.id.as_str()) {
                // A stored finished order is never re-read, so its stored phase is the truth.
                Some(obj) if is_stored_terminal(obj) => true,
                _ => classify(o.provider, &o.status).0.is_terminal(),
            };
            Candidate {
                id: o.id.as_str(),
                terminal,
                at: o.finish_time.or(o.create_time),
            }
        })
        .collect();
    for (id, obj) in existing {
        if !by_id.contains_key(id) {
            let at = obj
                .status
                .as_ref()
                .and_then(|s| s.finish_time.as_ref())
                .or(obj.spec.create_time.as_ref());
            candidates.push(Candidate {
                id,
                terminal: is_stored_terminal(obj),
                at: at.map(|t| t.0),
            });
        }
    }
    let keep = retained(&candidates, policy, now);

    let mut desired = Vec::new();
    let mut ids: Vec<&&str> = by_id.keys().collect();
    ids.sort_unstable();
    for id in ids {
        if !keep.contains(*id) {
            continue;
        }
        let previous = existing.get(*id);
        // A stored finished order stays exactly as stored: nothing the list says can change it.
        if previous.is_some_and(|p| is_stored_terminal(p)) {
            continue;
        }
        let order = by_id[*id];
        desired.push(desired_object(watch, app, order, previous.copied(), now));
    }
    let mut prune: Vec<String> = existing
        .iter()
        .filter(|(id, _)| !keep.contains(**id))
        .filter_map(|(_, obj)| obj.metadata.name.clone())
        .collect();
    prune.sort_unstable();
    Plan { desired, prune }
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
    use crate::cloud::model::{Provider, RawStatus};
    use crate::crd::ChangeOrderWatchSpec;

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

    fn stored(id: &str, status: i64, finished: Option<&str>) -> ChangeOrder {
        let app = AppRef::Id("app".into());
        desired_object(
            &watch(),
            &app,
            &order(id, status, finished),
            None,
            ts("2026-01-01T00:00:00Z"),
        )
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
        assert_eq!(
            to_describe(&listed, &existing),
            vec!["running", "new-running", "fell-off"]
        );
        // Nothing stored, nothing in flight: no describe at all.
        assert!(to_describe(&[order("a", 2, None), order("b", 6, None)], &Existing::new()).is_empty());
    }

    #[test]
    fn retention_keeps_newest_finished_and_all_in_flight() {
        let now = ts("2026-01-10T00:00:00Z");
        let cloud = vec![
            order("old", 2, Some("2026-01-01T00:00:00Z")),
            order("mid", 3, Some("2026-01-05T00:00:00Z")),
            order("new", 2, Some("2026-01-09T00:00:00Z")),
            order("live", 1, None),
        ];
        let policy = Retention {
            max_finished: 2,
            max_age: None,
        };
        let p = plan(
            &watch(),
            &AppRef::Id("app".into()),
            &cloud,
            &Existing::new(),
            &policy,
            now,
        );
        let ids: Vec<&str> = p
            .desired
            .iter()
            .map(|o| o.spec.change_order_id.as_str())
            .collect();
        assert_eq!(ids, vec!["live", "mid", "new"]);

        // Age limit: only finished in the last 3 days; stored "old" is pruned, not re-created.
        let old = stored("old", 2, Some("2026-01-01T00:00:00Z"));
        let existing: Existing<'_> = [("old", &old)].into_iter().collect();
        let policy = Retention {
            max_finished: 10,
            max_age: Some(Duration::from_secs(3 * 86400)),
        };
        let p = plan(
            &watch(),
            &AppRef::Id("app".into()),
            &cloud,
            &existing,
            &policy,
            now,
        );
        let ids: Vec<&str> = p
            .desired
            .iter()
            .map(|o| o.spec.change_order_id.as_str())
            .collect();
        assert_eq!(ids, vec!["live", "new"]);
        assert_eq!(p.prune, vec![old.metadata.name.clone().expect("name")]);
    }

    #[test]
    fn stored_finished_orders_are_left_alone_and_unchanged_orders_need_no_write() {
        let now = ts("2026-01-10T00:00:00Z");
        let done = stored("done", 2, Some("2026-01-09T00:00:00Z"));
        let running = stored("running", 1, None);
        let existing: Existing<'_> = [("done", &done), ("running", &running)].into_iter().collect();
        // The list now claims something else for the finished order: ignored.
        let cloud = vec![order("done", 1, None), order("running", 1, None)];
        let policy = Retention {
            max_finished: 10,
            max_age: None,
        };
        let p = plan(
            &watch(),
            &AppRef::Id("app".into()),
            &cloud,
            &existing,
            &policy,
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

        let moved = vec![order("running", 8, None)];
        let p = plan(
            &watch(),
            &AppRef::Id("app".into()),
            &moved,
            &existing,
            &policy,
            now,
        );
        assert!(needs_status_write(&p.desired[0], Some(&running)));
        assert!(!needs_spec_write(&p.desired[0], Some(&running)));
        assert!(needs_spec_write(&p.desired[0], None));
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
}
