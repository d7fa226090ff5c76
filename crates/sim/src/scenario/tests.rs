use super::*;

fn err(yaml: &str) -> String {
    match Scenario::from_yaml(yaml) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn demo_parses() {
    let s = Scenario::demo().expect("demo");
    assert!(!s.apps.is_empty());
}

#[test]
fn minimal_scenario() {
    let s = Scenario::from_yaml("apps:\n- provider: edas\n  appId: a\n  changeOrders:\n  - id: o1\n")
        .expect("parse");
    assert_eq!(s.apps[0].change_orders[0].id, "o1");
    assert_eq!(s.time_zone, "+08:00");
    assert_eq!(s.time_scale, 1.0);
}

#[test]
fn errors_name_the_field() {
    let e = err(
        "apps:\n- provider: edas\n  appId: a\n  changeOrders:\n  - id: o1\n    timeline:\n    - after: soon\n",
    );
    assert!(e.contains("apps[0].changeOrders[0].timeline[0].after"), "{e}");
    let e = err("apps:\n- provider: nope\n  appId: a\n");
    assert!(e.contains("apps[0].provider"), "{e}");
    let e = err("apps:\n- provider: edas\n  appId: a\n  changeOrders:\n  - id: o1\n    stauts: 1\n");
    assert!(e.contains("stauts"), "{e}");
    let e = err("apps:\n- provider: appstack\n  organizationId: o\n");
    assert!(e.contains("apps[0].appName"), "{e}");
    let e = err("apps:\n- provider: sae\n  changeOrders: []\n");
    assert!(e.contains("apps[0].appId"), "{e}");
    let e = err(
        "apps:\n- provider: appstack\n  organizationId: o\n  appName: a\n  changeOrders:\n  - id: x\n    status: 2\n",
    );
    assert!(e.contains("apps[0].changeOrders[0].status"), "{e}");
    let e = err("apps:\n- provider: sae\n  appId: a\n  changeOrders:\n  - id: x\n    status: RUNNING\n");
    assert!(e.contains("apps[0].changeOrders[0].status"), "{e}");
    let e = err(
        "apps:\n- provider: sae\n  appId: a\n  changeOrders:\n  - id: x\n    batchCount: 2\n    currentBatch: 3\n",
    );
    assert!(e.contains("currentBatch"), "{e}");
    let e = err("faults:\n- kind: throttling\n  rate: 2\napps: []\n");
    assert!(e.contains("faults[0].rate"), "{e}");
    let e = err("faults:\n- kind: throttling\n  actions: [ListChangeOrder]\napps: []\n");
    assert!(e.contains("faults[0].actions[0]"), "{e}");
    let e = err("timeZone: Mars\napps: []\n");
    assert!(e.contains("timeZone"), "{e}");
    let e = err("apps:\n- provider: edas\n  appId: a\n  changeOrders:\n  - id: o1\n  - id: o1\n");
    assert!(e.contains("changeOrders[1].id"), "{e}");
    let e = err(
        "apps:\n- provider: edas\n  appId: a\n  changeOrders:\n  - id: o1\n    timeline:\n    - after: 20s\n    - after: 10s\n",
    );
    assert!(e.contains("timeline[1].after"), "{e}");
    let e = err("apps: 3\n");
    assert!(e.contains("apps"), "{e}");
}

#[test]
fn durations() {
    for (text, secs) in [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("-2h", -7200.0),
        ("500ms", 0.5),
        ("7", 7.0),
    ] {
        let d: Offset2 = text.parse().expect(text);
        assert_eq!(d.0.as_secs_f64(), secs, "{text}");
    }
    assert!("soon".parse::<Offset2>().is_err());
}

#[test]
fn offsets() {
    assert_eq!(parse_offset("+08:00").map(|o| o.seconds()), Some(8 * 3600));
    assert_eq!(
        parse_offset("-05:30").map(|o| o.seconds()),
        Some(-(5 * 3600 + 1800))
    );
    assert_eq!(parse_offset("Z").map(|o| o.seconds()), Some(0));
    assert!(parse_offset("8").is_none());
}

/// The simulator reads `timeZone` with the operator's parser (issue 7, defect 7: that one
/// split `+0é0` inside `é`); a non-ASCII zone is a field error, not a panic.
#[test]
fn non_ascii_time_zone_is_an_error() {
    let e = err("timeZone: \"+0é0\"\napps: []\n");
    assert!(e.contains("timeZone"), "{e}");
}

/// A fault duration of millions of hours overflowed the simulator's latency sum and its
/// `Reset` header arithmetic; it is now a field error.
#[test]
fn fault_duration_is_bounded() {
    let e = err("faults:\n- kind: latency\n  duration: 1000000h\napps: []\n");
    assert!(e.contains("faults[0].duration"), "{e}");
    Scenario::from_yaml("faults:\n- kind: latency\n  duration: 24h\napps: []\n").expect("a day is fine");
}

/// Unbounded batch counts and offsets from a scenario file used to exhaust memory
/// (`batchCount: 4294967295` builds that many batches per request) or overflow the batch
/// time arithmetic (`createdAt` near the largest duration).
#[test]
fn batches_and_offsets_are_bounded() {
    let order = |extra: &str| {
        format!("timeScale: 1e300\napps:\n- provider: edas\n  appId: a\n  changeOrders:\n  - id: o\n{extra}")
    };
    let e = err(&order("    batchCount: 4294967295\n"));
    assert!(e.contains("changeOrders[0].batchCount"), "{e}");
    for far in ["9000000000000000000", "-9223372036854775808"] {
        let e = err(&order(&format!("    createdAt: {far}\n")));
        assert!(e.contains("changeOrders[0].createdAt"), "{e}");
    }
    let e = err(&order("    timeline:\n    - after: 9000000000000000000\n"));
    assert!(e.contains("timeline[0].after"), "{e}");
    let e = err(&format!(
        "apps:\n- provider: appstack\n  organizationId: o\n  appName: a\n  changeOrders:\n  - id: x\n    envNames: [{}]\n",
        (0..=MAX_BATCHES)
            .map(|i| format!("e{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    assert!(e.contains("changeOrders[0].envNames"), "{e}");
    Scenario::from_yaml(&order("    batchCount: 100\n    createdAt: -876000h\n")).expect("at the limits");
}

#[test]
fn round_trip() {
    let demo = Scenario::demo().expect("demo");
    let text = demo.to_yaml().expect("yaml");
    let back = Scenario::from_yaml(&text).expect("reparse");
    assert_eq!(demo, back);
}
