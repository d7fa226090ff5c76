use super::*;

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|l| l.starts_with(prefix))
}

fn value(text: &str, series: &str) -> Option<f64> {
    let l = line(text, &format!("{series} "))?;
    l.rsplit(' ').next()?.parse().ok()
}

#[test]
fn names_are_prefixed_and_text_ends_with_eof() {
    let m = Metrics::new();
    m.cloud_call(Provider::Sae, "ListChangeOrders", "ok");
    m.reconciled("ok", Duration::from_millis(30));
    m.poll(Provider::Edas, "Throttled");
    m.order_finished(Provider::Appstack, Phase::Succeeded, Duration::from_secs(90));
    m.awaited_input(Provider::Sae, Duration::from_secs(120));
    let text = m.encode();
    assert!(text.ends_with("# EOF\n"), "{text}");
    for name in [
        "changeorder_cloud_calls_total",
        "changeorder_reconcile_total",
        "changeorder_reconcile_duration_seconds",
        "changeorder_polls_total",
        "changeorder_orders",
        "changeorder_change_order_duration_seconds",
        "changeorder_awaiting_input_seconds",
        "changeorder_watches",
        "changeorder_leader",
        "changeorder_build_info",
    ] {
        assert!(text.contains(&format!("\n{name}")), "{name} missing in\n{text}");
    }
    assert_eq!(
        value(
            &text,
            r#"changeorder_cloud_calls_total{provider="sae",operation="ListChangeOrders",result="ok"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"changeorder_polls_total{provider="edas",result="Throttled"}"#
        ),
        Some(1.0)
    );
    assert!(text.contains("# UNIT changeorder_reconcile_duration_seconds seconds"));
}

#[test]
fn counters_accumulate_per_label_set() {
    let m = Metrics::new();
    for _ in 0..3 {
        m.cloud_call(Provider::Edas, "GetChangeOrderInfo", "ok");
    }
    m.cloud_call(Provider::Edas, "GetChangeOrderInfo", "InvalidCredentials");
    m.reconciled("ok", Duration::from_millis(1));
    m.reconciled("ok", Duration::from_millis(1));
    m.reconciled("KubeError", Duration::from_secs(2));
    let text = m.encode();
    let calls = r#"changeorder_cloud_calls_total{provider="edas",operation="GetChangeOrderInfo""#;
    assert_eq!(value(&text, &format!(r#"{calls},result="ok"}}"#)), Some(3.0));
    assert_eq!(
        value(&text, &format!(r#"{calls},result="InvalidCredentials"}}"#)),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"changeorder_reconcile_total{result="ok"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(&text, r#"changeorder_reconcile_total{result="KubeError"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "changeorder_reconcile_duration_seconds_count"),
        Some(3.0)
    );
    assert_eq!(
        value(
            &text,
            r#"changeorder_reconcile_duration_seconds_bucket{le="0.005"}"#
        ),
        Some(2.0)
    );
}

#[test]
fn orders_by_phase_always_lists_all_nine_and_resets_missing_to_zero() {
    let m = Metrics::new();
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("changeorder_orders{"))
            .count()
    };
    // Present from the start, before the first count.
    assert_eq!(series(&m.encode()), 9);

    m.set_orders_by_phase(&[(Phase::Running, 4), (Phase::Succeeded, 7)]);
    let text = m.encode();
    assert_eq!(series(&text), 9);
    assert_eq!(value(&text, r#"changeorder_orders{phase="Running"}"#), Some(4.0));
    assert_eq!(
        value(&text, r#"changeorder_orders{phase="Succeeded"}"#),
        Some(7.0)
    );
    assert_eq!(value(&text, r#"changeorder_orders{phase="Paused"}"#), Some(0.0));

    // A later count without Running puts it back to zero instead of keeping 4.
    m.set_orders_by_phase(&[(Phase::Succeeded, 11)]);
    let text = m.encode();
    assert_eq!(value(&text, r#"changeorder_orders{phase="Running"}"#), Some(0.0));
    assert_eq!(
        value(&text, r#"changeorder_orders{phase="Succeeded"}"#),
        Some(11.0)
    );
}

#[test]
fn order_duration_buckets_span_30s_to_6h() {
    let m = Metrics::new();
    m.order_finished(Provider::Sae, Phase::Failed, Duration::from_secs(45));
    let text = m.encode();
    let bucket = |le: &str| {
        value(
            &text,
            &format!(
                r#"changeorder_change_order_duration_seconds_bucket{{le="{le}",provider="sae",phase="Failed"}}"#
            ),
        )
    };
    assert_eq!(bucket("30.0"), Some(0.0), "{text}");
    assert_eq!(bucket("60.0"), Some(1.0), "{text}");
    assert_eq!(bucket("21600.0"), Some(1.0), "{text}");
    assert_eq!(bucket("+Inf"), Some(1.0), "{text}");
}

#[test]
fn awaiting_input_and_watches_and_leader() {
    let m = Metrics::new();
    m.awaited_input(Provider::Edas, Duration::from_secs(600));
    m.set_watches(3, 1);
    m.set_leader(true);
    let text = m.encode();
    assert_eq!(
        value(
            &text,
            r#"changeorder_awaiting_input_seconds_count{provider="edas"}"#
        ),
        Some(1.0)
    );
    assert_eq!(value(&text, r#"changeorder_watches{ready="true"}"#), Some(3.0));
    assert_eq!(value(&text, r#"changeorder_watches{ready="false"}"#), Some(1.0));
    assert_eq!(value(&text, "changeorder_leader"), Some(1.0));
}

fn watch(ns: &str, name: &str, ready: bool, phase: Option<Phase>) -> WatchState {
    WatchState {
        namespace: ns.into(),
        name: name.into(),
        ready,
        ready_reason: if ready { "Polled" } else { "ProviderError" },
        latest_phase: phase,
        awaiting_input_since: None,
    }
}

#[test]
fn build_info_carries_the_crate_version() {
    let text = Metrics::new().encode();
    let series = format!(
        r#"changeorder_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&text, &series), Some(1.0), "{text}");
}

#[test]
fn per_watch_gauges_follow_the_watches_and_leave_other_scopes_alone() {
    let m = Metrics::new();
    let ready = |text: &str, ns: &str, name: &str| {
        value(
            text,
            &format!(r#"changeorder_watch_ready{{namespace="{ns}",name="{name}"}}"#),
        )
    };
    let phase = |text: &str, ns: &str, name: &str, p: &str| {
        value(
            text,
            &format!(r#"changeorder_watch_latest_order_phase{{namespace="{ns}",name="{name}",phase="{p}"}}"#),
        )
    };
    m.set_watch_states(Some("a"), &[watch("a", "w1", true, Some(Phase::Running))]);
    m.set_watch_states(Some("b"), &[watch("b", "w2", false, None)]);
    let text = m.encode();
    assert_eq!(ready(&text, "a", "w1"), Some(1.0), "{text}");
    assert_eq!(ready(&text, "b", "w2"), Some(0.0), "{text}");
    assert_eq!(phase(&text, "a", "w1", "Running"), Some(1.0), "{text}");
    assert_eq!(phase(&text, "a", "w1", "Succeeded"), Some(0.0), "{text}");
    assert_eq!(phase(&text, "b", "w2", "Running"), None, "no order, no series");

    // The phase moves; namespace b's update does not touch a's series.
    m.set_watch_states(Some("a"), &[watch("a", "w1", true, Some(Phase::Succeeded))]);
    m.set_watch_states(Some("b"), &[watch("b", "w2", true, None)]);
    let text = m.encode();
    assert_eq!(phase(&text, "a", "w1", "Running"), Some(0.0), "{text}");
    assert_eq!(phase(&text, "a", "w1", "Succeeded"), Some(1.0), "{text}");
    assert_eq!(ready(&text, "b", "w2"), Some(1.0), "{text}");

    // w1 deleted: all its series go, w2's stay.
    m.set_watch_states(Some("a"), &[]);
    let text = m.encode();
    assert!(!text.contains(r#"name="w1""#), "{text}");
    assert_eq!(ready(&text, "b", "w2"), Some(1.0), "{text}");

    // A cluster-wide scope owns every namespace.
    m.set_watch_states(None, &[]);
    assert!(!m.encode().contains("name=\"w2\""));
}

#[test]
fn is_clone_send_sync_and_shared() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Metrics>();
    let m = Metrics::new();
    let c = m.clone();
    c.poll(Provider::Appstack, "ok");
    assert_eq!(
        value(
            &m.encode(),
            r#"changeorder_polls_total{provider="appstack",result="ok"}"#
        ),
        Some(1.0)
    );
}

/// Label keys whose values come from closed sets in the code (`le` is the histogram bucket).
const CLOSED_KEYS: [&str; 10] = [
    "reason",
    "provider",
    "operation",
    "result",
    "action",
    "phase",
    "step",
    "ready",
    "version",
    "le",
];

/// `metric family -> label keys` of every sample line in the OpenMetrics text.
fn label_keys(text: &str) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut out: std::collections::BTreeMap<_, std::collections::BTreeSet<String>> = Default::default();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, rest)) = l.split_once('{') else {
            continue;
        };
        let family = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        let keys = rest
            .split(['{', ','])
            .filter_map(|kv| kv.split_once("=\"").map(|(k, _)| k.trim().to_string()));
        out.entry(family.to_string()).or_default().extend(keys);
    }
    out
}

/// SECURITY.md says which metrics carry names; that must be exactly the metrics with a label
/// outside the closed sets, and those labels are the watch's namespace and name.
#[test]
fn security_md_names_the_metrics_that_carry_names() {
    let m = Metrics::new();
    for kind in changeorder_cloud::ErrorKind::ALL {
        m.cloud_call(Provider::Sae, "ListChangeOrders", kind.as_str());
    }
    m.cloud_call(Provider::Edas, "ListRecentChangeOrder", "ok");
    m.identity_call("sts", "ok");
    m.reconciled("ok", Duration::from_millis(5));
    m.poll(Provider::Sae, "ok");
    m.order_write_failed(Provider::Sae, "Conflict");
    m.action_finished("Confirm", "Succeeded");
    m.order_finished(Provider::Sae, Phase::Succeeded, Duration::from_secs(60));
    m.awaited_input(Provider::Sae, Duration::from_secs(60));
    let mut waiting = watch("team-a", "web", true, Some(Phase::AwaitingApproval));
    waiting.awaiting_input_since = Some(1_700_000_000);
    m.set_watch_states(None, &[waiting]);
    m.set_leader(true);
    m.set_watchset_apps("team-a", "fleet", Some(3));
    let keys = label_keys(&m.encode());
    let named: std::collections::BTreeMap<&String, Vec<&String>> = keys
        .iter()
        .map(|(family, keys)| {
            (
                family,
                keys.iter()
                    .filter(|k| !CLOSED_KEYS.contains(&k.as_str()))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, open)| !open.is_empty())
        .collect();
    assert!(!named.is_empty(), "{keys:?}");
    for (family, open) in &named {
        // A set's series names it `watchset` (its namespace too), a watch's `name`.
        let want: &[&str] = if family.as_str() == "changeorder_watchset_apps" {
            &["namespace", "watchset"]
        } else {
            &["name", "namespace"]
        };
        assert_eq!(open, want, "{family} carries other open labels");
    }
    let security = include_str!("../../../SECURITY.md");
    let paragraph = security
        .split("\n\n")
        .find(|p| p.starts_with("**Metrics.**"))
        .expect("SECURITY.md has a **Metrics.** paragraph");
    let documented: std::collections::BTreeSet<&str> = paragraph
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.starts_with(PREFIX) && !w.contains('{'))
        .collect();
    let actual: std::collections::BTreeSet<&str> = named.keys().map(|f| f.as_str()).collect();
    assert_eq!(documented, actual, "SECURITY.md and the metrics disagree");
}

#[test]
fn reason_and_awaiting_series_follow_the_watch() {
    let m = Metrics::new();
    let reason = |text: &str, r: &str| {
        value(
            text,
            &format!(r#"changeorder_watch_ready_reason{{namespace="a",name="w",reason="{r}"}}"#),
        )
    };
    let since = |text: &str| {
        value(
            text,
            r#"changeorder_watch_awaiting_input_since_seconds{namespace="a",name="w"}"#,
        )
    };
    let mut w = watch("a", "w", false, Some(Phase::AwaitingApproval));
    w.ready_reason = "Throttled";
    w.awaiting_input_since = Some(1_700_000_000);
    m.set_watch_states(Some("a"), std::slice::from_ref(&w));
    let text = m.encode();
    assert_eq!(reason(&text, "Throttled"), Some(1.0), "{text}");
    assert_eq!(since(&text), Some(1_700_000_000.0), "{text}");
    assert!(text.contains("# UNIT changeorder_watch_awaiting_input_since_seconds seconds"));

    // A new reason replaces the old series (one per watch); no order waits: no series.
    w.ready_reason = "InvalidCredentials";
    w.awaiting_input_since = None;
    m.set_watch_states(Some("a"), std::slice::from_ref(&w));
    let text = m.encode();
    assert_eq!(reason(&text, "Throttled"), None, "{text}");
    assert_eq!(reason(&text, "InvalidCredentials"), Some(1.0), "{text}");
    assert_eq!(since(&text), None, "{text}");

    w.awaiting_input_since = Some(1_700_000_100);
    m.set_watch_states(Some("a"), std::slice::from_ref(&w));
    m.set_watch_states(Some("a"), &[]);
    let text = m.encode();
    assert!(
        !text.contains(r#"name="w""#),
        "deleted watch keeps series:\n{text}"
    );
}
