//! The chart's Grafana dashboard against a running operator (in-process, on a real API server,
//! polling the bundled simulator): every metric its queries use is one the operator exports, and
//! the per-watch gauges it is built on follow a watch from its first poll to its deletion.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use changeorder_operator::crd::ChangeOrderWatch;
use kube::api::DeleteParams;
use support::cluster::eventually;
use support::operator::*;

const SETTLE: Duration = Duration::from_secs(60);

/// One order that waits for a batch confirmation, runs and succeeds within seconds, so the
/// histograms of finished and awaited orders have samples too.
const SCENARIO: &str = r#"
timeScale: 1
apps:
  - provider: edas
    appId: app-dash
    changeOrders:
      - id: co-dash
        type: CoDeploy
        createdAt: 0s
        batchCount: 2
        batchType: manual
        status: 8
        currentBatch: 1
        timeline:
          - { after: 10s, status: 1, currentBatch: 2 }
          - { after: 14s, status: 2, currentBatch: 2 }
"#;

pub(crate) fn dashboard() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/changeorder-operator/dashboards/changeorder-operator.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard file")).expect("JSON")
}

/// Every PromQL text of the dashboard: panel targets' `expr` and template variables' queries
/// (a string, or an object with `query`), wherever they are nested.
pub(crate) fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    ("query", serde_json::Value::String(s)) if s.contains('(') => out.push(s.clone()),
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

/// Metric names in a PromQL text: the operator's names all start with its prefix, and no
/// PromQL function or label does.
pub(crate) fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = promql;
    while let Some(i) = rest.find("changeorder_") {
        let preceded_by_word = rest[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !preceded_by_word {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Whether `name` is a sample of the exposition. (A metric family without samples is not
/// listed at all, so a panel on, say, write failures would stay empty in a healthy run and is
/// left out of the dashboard; the scenario makes every metric the dashboard uses have samples.)
fn exported(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
    })
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_uses_an_exported_metric_and_watch_series_follow_the_watch() {
    let ns = namespace("dash").await;
    let sim = start_sim(SCENARIO).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let spec = |secret: &str| {
        serde_json::json!({
            "provider": "edas", "endpoint": sim.url(), "appId": "app-dash",
            "credentialsSecretRef": {"name": secret},
        })
    };
    create_watch(&ns, "app", spec("cloud")).await;
    // A watch whose Secret does not exist: never Ready, so the gauge's 0 is seen too.
    create_watch(&ns, "no-secret", spec("absent")).await;
    // A set whose SAE namespace has no apps yet: its apps gauge is 0, and no watch is made.
    let set: changeorder_operator::crd::ChangeOrderWatchSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatchSet",
        "metadata": {"name": "fleet"},
        "spec": {"provider": "sae", "endpoint": sim.url(), "credentialsSecretRef": {"name": "cloud"},
                 "generator": {"sae": {"namespaceId": "cn-hangzhou:empty"}}},
    }))
    .expect("set");
    ns.api::<changeorder_operator::crd::ChangeOrderWatchSet>()
        .create(&Default::default(), &set)
        .await
        .expect("create set");
    let settings = changeorder_operator::controller::Settings {
        watch_sets: true,
        ..fast_settings()
    };
    let op = Operator::start(ns.client(), ns.name(), settings).await;
    let n = ns.name().to_string();
    let ready = |name: &str| format!(r#"changeorder_watch_ready{{namespace="{n}",name="{name}"}}"#);
    let phase = |p: &str| {
        format!(r#"changeorder_watch_latest_order_phase{{namespace="{n}",name="app",phase="{p}"}}"#)
    };

    // The order succeeds after waiting for a person: the per-watch gauges show it.
    let text = eventually("latest order Succeeded in the gauges", SETTLE, || async {
        let text = op.metrics.encode();
        (value(&text, &phase("Succeeded")) == Some(1.0)
            && text.contains("changeorder_awaiting_input_seconds_count{")
            && text.contains("changeorder_watchset_apps{"))
        .then_some(text)
    })
    .await;
    assert_eq!(value(&text, &ready("app")), Some(1.0), "{text}");
    assert_eq!(value(&text, &ready("no-secret")), Some(0.0), "{text}");
    assert_eq!(value(&text, &phase("Running")), Some(0.0), "{text}");
    // The alerts' series: one Ready reason per watch, and no "waiting since" once none waits.
    let reasons = |name: &str| -> Vec<&str> {
        let prefix = format!(r#"changeorder_watch_ready_reason{{namespace="{n}",name="{name}",reason=""#);
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .collect()
    };
    assert_eq!(reasons("app"), [r#"Polled"} 1"#], "{text}");
    let missing_secret = reasons("no-secret");
    assert!(
        missing_secret.len() == 1 && !missing_secret[0].starts_with("Polled"),
        "{text}"
    );
    assert!(
        !text.contains("changeorder_watch_awaiting_input_since_seconds{"),
        "{text}"
    );
    assert!(
        !text.contains(r#"name="no-secret",phase="#),
        "a watch without orders has no phase series\n{text}"
    );
    let build = format!(
        r#"changeorder_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(value(&text, &build), Some(1.0), "{text}");
    // The gauge agrees with what kubectl shows in status.latestOrder.
    let watch = ns.api::<ChangeOrderWatch>().get("app").await.expect("watch");
    let latest = watch.status.and_then(|s| s.latest_order).expect("latestOrder");
    assert_eq!(latest.phase.map(|p| p.as_str()), Some("Succeeded"));

    // Every metric of every dashboard query is exported.
    let mut all = Vec::new();
    queries(&dashboard(), &mut all);
    assert!(all.len() >= 15, "dashboard queries found: {all:?}");
    let names: BTreeSet<String> = all.iter().flat_map(|q| metric_names(q)).collect();
    for must in ["changeorder_watch_ready", "changeorder_watch_latest_order_phase"] {
        assert!(names.contains(must), "the dashboard shows {must}");
    }
    let missing: Vec<&String> = names.iter().filter(|m| !exported(&text, m)).collect();
    assert!(
        missing.is_empty(),
        "dashboard queries use metrics /metrics does not have: {missing:?}\n{text}"
    );
    // Every query names at least one metric (a typo in the prefix would otherwise pass).
    for q in &all {
        assert!(
            !metric_names(q).is_empty(),
            "query without an operator metric: {q}"
        );
    }

    // Deleting a watch removes its series; the other watch's stay.
    ns.api::<ChangeOrderWatch>()
        .delete("app", &DeleteParams::default())
        .await
        .expect("delete watch");
    let text = eventually("the deleted watch's series gone", SETTLE, || async {
        let text = op.metrics.encode();
        (!text.contains(r#"name="app""#)).then_some(text)
    })
    .await;
    assert_eq!(value(&text, &ready("no-secret")), Some(0.0), "{text}");
    op.stop().await;
}

#[test]
fn metric_names_are_found_in_promql() {
    let q = r#"histogram_quantile(0.95, sum by (le) (rate(changeorder_reconcile_duration_seconds_bucket[5m]))) / changeorder_leader{x="changeorder_y"}"#;
    let names: Vec<String> = metric_names(q).into_iter().collect();
    // A label value that looks like a name is counted too: a false alarm is preferable to a miss.
    assert_eq!(
        names,
        [
            "changeorder_leader",
            "changeorder_reconcile_duration_seconds_bucket",
            "changeorder_y"
        ]
    );
}
