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
        shared: false,
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

/// A finished order written from the list, created at `created`.
fn finished_history(id: &str, created: &str) -> ChangeOrder {
    let mut o = order(id, 2, Some(created));
    o.create_time = Some(ts(created));
    stored_from(&o, "2026-01-01T01:00:00Z")
}

#[test]
fn the_backfill_owes_finished_history_newest_first_within_retention() {
    let old = finished_history("old", "2026-01-01T00:00:00Z");
    let mid = finished_history("mid", "2026-01-02T00:00:00Z");
    let new = finished_history("new", "2026-01-03T00:00:00Z");
    let done = stored_from(&detailed("done", 2, "ok"), "2026-01-01T01:00:00Z");
    let running = stored("running", 1, None);
    let objects = [&old, &mid, &new, &done, &running];
    let existing: Existing<'_> = objects
        .iter()
        .map(|o| (o.spec.change_order_id.as_str(), *o))
        .collect();
    let now = ts("2026-02-01T00:00:00Z");
    // Neither the detailed order nor the running one is owed; newest first.
    assert_eq!(
        backfill(&existing, &policy(10), now),
        vec!["new", "mid"].into_iter().chain(["old"]).collect::<Vec<_>>()
    );
    // Retention keeps three finished orders: `old` ties with `done` and loses on the id. The
    // one it prunes is not described.
    let kept = backfill(&existing, &policy(3), now);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!kept.contains(&"old".to_string()), "{kept:?}");
    assert_eq!(
        super::history(&existing, &policy(10), now),
        crate::crd::HistoryProgress {
            described: 1,
            remaining: 3
        }
    );
}

#[test]
fn a_backfill_describe_writes_the_batches_once_and_a_bad_answer_is_a_miss() {
    let old = finished_history("old", "2026-01-01T00:00:00Z");
    let existing: Existing<'_> = [("old", &old)].into_iter().collect();
    let fetched = |d: Detail| Fetched {
        listed: Vec::new(),
        from_cloud: false,
        shared: false,
        details: [("old".to_string(), d)].into_iter().collect(),
    };
    let input = |f: &'_ Fetched, misses: &'_ HashMap<String, u32>| -> Plan {
        plan(Input {
            watch: &watch(),
            app: &AppRef::Id("app".into()),
            fetched: f,
            existing: &existing,
            superseded: Vec::new(),
            retention: &policy(10),
            misses,
            now: ts("2026-02-01T00:00:00Z"),
        })
    };
    let none = HashMap::new();
    let answer = fetched(Detail::Found(Box::new(detailed("old", 2, "all done"))));
    let p = input(&answer, &none);
    let s = status(&p, "old");
    assert_eq!(s.detailed, Some(true));
    assert_eq!(s.batches.len(), 2);
    assert_eq!(s.phase, Some(Phase::Succeeded));
    // No condition flipped: each keeps the time the list's write gave it, also those a
    // compact cached copy no longer holds.
    let mut compact = old.clone();
    crate::controller::cache::compact_final(&mut compact);
    let compact_existing: Existing<'_> = [("old", &compact)].into_iter().collect();
    let p2 = plan(Input {
        watch: &watch(),
        app: &AppRef::Id("app".into()),
        fetched: &answer,
        existing: &compact_existing,
        superseded: Vec::new(),
        retention: &policy(10),
        misses: &none,
        now: ts("2026-02-01T00:00:00Z"),
    });
    let times: Vec<Timestamp> = status(&p2, "old")
        .conditions
        .iter()
        .map(|c| c.last_transition_time.0)
        .collect();
    assert_eq!(times.len(), 5);
    assert!(
        times.iter().all(|t| *t == ts("2026-01-01T01:00:00Z")),
        "{times:?}"
    );
    // Once detailed, never owed again (and never written again by a poll).
    let mut written = p.desired[0].clone();
    written.metadata.generation = Some(1);
    let after: Existing<'_> = [("old", &written)].into_iter().collect();
    assert!(backfill(&after, &policy(10), ts("2026-02-01T00:00:00Z")).is_empty());
    assert_eq!(judge(None, None, Some(&written), 0), Verdict::Keep);
    // A describe saying the finished order runs again is not believed, and counts as a miss,
    // as does "not found": the backfill asks a bounded number of times.
    for bad in [
        Detail::Found(Box::new(detailed("old", 1, "running?"))),
        Detail::NotFound,
    ] {
        let p = input(&fetched(bad), &none);
        assert!(p.desired.is_empty());
        assert_eq!(p.misses.get("old"), Some(&1));
    }
}
