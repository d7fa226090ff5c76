//! SAE watches that name their namespace (`spec.namespaceId`) find new orders through one
//! shared `ListNamespaceChangeOrders`, against the real API server and the simulator: the
//! ChangeOrders are the same as per-app polling gives on the same scenario; at rest a namespace
//! of many apps costs the calls of a namespace of few; a failing namespace list falls back to
//! per-app lists without losing an order.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use changeorder_operator::crd::ChangeOrder;
use serde_json::Value;
use support::cluster::{TestNamespace, eventually};
use support::operator::*;

const NS: &str = "cn-hangzhou:fleet";

/// App `app` of the fleet namespace: history finished hours ago, an order in flight that
/// succeeds at 20 s, one that appears at 12 s and succeeds at 30 s, and one that appears at
/// 16 s already finished.
fn app_yaml(app: &str) -> String {
    format!(
        "  - provider: sae
    appId: {app}
    namespaceId: \"{NS}\"
    changeOrders:
      - {{ id: {app}-h2, createdAt: -3h, status: 2, batchCount: 2 }}
      - {{ id: {app}-h1, createdAt: -2h, status: 3, batchCount: 2 }}
      - id: {app}-live
        createdAt: -1m
        status: 1
        batchCount: 2
        currentBatch: 1
        timeline:
        - {{after: 20s, status: 2, currentBatch: 2}}
      - id: {app}-new
        createdAt: 12s
        status: 1
        batchCount: 2
        currentBatch: 1
        timeline:
        - {{after: 30s, status: 2, currentBatch: 2}}
      - {{ id: {app}-done, createdAt: 16s, status: 2, batchCount: 1 }}
"
    )
}

/// An app of the namespace nobody watches, with a new order of its own.
const UNWATCHED: &str = "  - provider: sae
    appId: quiet
    namespaceId: \"cn-hangzhou:fleet\"
    changeOrders:
      - { id: quiet-new, createdAt: 12s, status: 2, batchCount: 1 }
";

fn watch_spec(sim: &changeorder_sim::RunningSim, app: &str, shared: bool) -> Value {
    let mut spec = serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": app,
        "interval": "5s", "inFlightInterval": "2s", "credentialsSecretRef": {"name": "cloud"}});
    if shared {
        spec["namespaceId"] = Value::from(NS);
    }
    spec
}

fn final_and_detailed(o: &ChangeOrder) -> bool {
    let s = o.status.as_ref();
    s.and_then(|s| s.phase).is_some_and(|p| p.is_terminal()) && s.and_then(|s| s.detailed) == Some(true)
}

/// Drop what depends on when the operator looked, not on what the cloud said.
fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("lastTransitionTime");
            m.remove("observedGeneration");
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// Each order's spec and status, by order id.
async fn shown(ns: &TestNamespace) -> BTreeMap<String, (Value, Value)> {
    orders(ns)
        .await
        .into_iter()
        .map(|o| {
            let mut spec = serde_json::to_value(&o.spec).expect("spec");
            let mut status = serde_json::to_value(&o.status).expect("status");
            strip_times(&mut spec);
            strip_times(&mut status);
            (o.spec.change_order_id.clone(), (spec, status))
        })
        .collect()
}

async fn converged(ns: &TestNamespace, want: usize) {
    eventually(
        &format!("{want} orders final and described in {}", ns.name()),
        Duration::from_secs(120),
        || async {
            let all = orders(ns).await;
            (all.len() == want && all.iter().all(final_and_detailed)).then_some(())
        },
    )
    .await;
}

/// The same scenario polled per app in one namespace and through the namespace list in
/// another gives the same ChangeOrders (spec and status), with fewer list calls; the
/// unwatched app's order appears in neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_polling_gives_the_same_orders_as_per_app_polling() {
    let apps = ["n1", "n2", "n3"];
    let yaml = format!(
        "apps:\n{}{UNWATCHED}",
        apps.iter().map(|a| app_yaml(a)).collect::<String>()
    );
    let sim = start_sim(&yaml).await;
    let per_app = namespace("nsl-app").await;
    let shared = namespace("nsl-ns").await;
    for ns in [&per_app, &shared] {
        access_key_secret(ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    }
    let op_app = Operator::start(per_app.client(), per_app.name(), fast_settings()).await;
    let op_ns = Operator::start(shared.client(), shared.name(), fast_settings()).await;
    for app in apps {
        create_watch(&per_app, app, watch_spec(&sim, app, false)).await;
        create_watch(&shared, app, watch_spec(&sim, app, true)).await;
    }
    let want = apps.len() * 5;
    converged(&per_app, want).await;
    converged(&shared, want).await;

    let a = shown(&per_app).await;
    let b = shown(&shared).await;
    assert_eq!(a.len(), want, "{:?}", a.keys());
    assert!(
        !b.contains_key("quiet-new"),
        "an unwatched app's order was written"
    );
    for (id, (spec, status)) in &a {
        let (spec_b, status_b) = b
            .get(id)
            .unwrap_or_else(|| panic!("{id} missing with the namespace list"));
        assert_eq!(spec, spec_b, "{id}: spec differs");
        assert_eq!(status, status_b, "{id}: status differs");
    }
    let lists = |op: &Operator| {
        (
            op.calls.count("ListChangeOrders"),
            op.calls.count("ListNamespaceChangeOrders"),
        )
    };
    let (app_lists, app_ns_lists) = lists(&op_app);
    let (ns_app_lists, ns_lists) = lists(&op_ns);
    eprintln!(
        "per app: {app_lists} ListChangeOrders; namespace: {ns_app_lists} ListChangeOrders + {ns_lists} ListNamespaceChangeOrders"
    );
    assert_eq!(app_ns_lists, 0);
    assert!(ns_lists > 0, "the namespace list was never used");
    assert!(
        ns_app_lists + ns_lists < app_lists,
        "no fewer list calls through the namespace list"
    );
    op_app.stop().await;
    op_ns.stop().await;
}

/// `apps` apps of two finished orders each, all in one namespace.
fn resting_yaml(prefix: &str, apps: usize) -> String {
    let mut y = String::from("apps:\n");
    for i in 0..apps {
        y.push_str(&format!(
            "  - provider: sae\n    appId: {prefix}{i}\n    namespaceId: \"{NS}\"\n    changeOrders:\n      - {{ id: {prefix}{i}-a, createdAt: -3h, status: 2, batchCount: 1 }}\n      - {{ id: {prefix}{i}-b, createdAt: -2h, status: 2, batchCount: 1 }}\n"
        ));
    }
    y
}

/// Once synced, a namespace of 24 watched apps costs no more list calls than one of 2: at most
/// two namespace lists per interval, and no per-app list at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_rest_a_namespace_costs_the_same_whatever_its_size() {
    let mut runs = Vec::new();
    for (prefix, apps) in [("s", 2usize), ("l", 24)] {
        let sim = start_sim(&resting_yaml(prefix, apps)).await;
        let ns = namespace(&format!("nsl-rest-{prefix}")).await;
        access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
        let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
        for i in 0..apps {
            let app = format!("{prefix}{i}");
            let mut spec = watch_spec(&sim, &app, true);
            spec["interval"] = Value::from("6s");
            create_watch(&ns, &app, spec).await;
        }
        runs.push((apps, sim, ns, op));
    }
    for (apps, _, ns, _) in &runs {
        converged(ns, apps * 2).await;
    }
    // Two intervals for every watch to have listed per app once and then joined the list.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let counts = |op: &Operator| {
        (
            op.calls.count("ListChangeOrders"),
            op.calls.count("ListNamespaceChangeOrders"),
            op.calls.count("DescribeChangeOrder"),
        )
    };
    let before: Vec<_> = runs.iter().map(|(_, _, _, op)| counts(op)).collect();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut rest = Vec::new();
    for ((apps, _, _, op), b) in runs.iter().zip(before) {
        let a = counts(op);
        let d = (a.0 - b.0, a.1 - b.1, a.2 - b.2);
        eprintln!(
            "{apps} apps at rest for 30 s: {} ListChangeOrders, {} ListNamespaceChangeOrders, {} describes",
            d.0, d.1, d.2
        );
        assert_eq!(d.0, 0, "{apps} apps: per-app lists at rest");
        assert_eq!(d.2, 0, "{apps} apps: describes at rest");
        assert!(d.1 >= 2, "{apps} apps: the namespace was not listed at rest");
        rest.push(d.1);
    }
    // Per-app polling would list 24 apps × 5 times here. A shared list younger than half the
    // interval is reused, so whatever the number of apps a namespace is listed at most twice
    // per 6 s interval (watches spread over the interval may ask for a second one): the same
    // bound for 2 apps as for 24.
    let bound = 2 * 30 / 6 + 1;
    for (apps, lists) in [(2, rest[0]), (24, rest[1])] {
        assert!(
            lists <= bound,
            "{apps} apps cost {lists} namespace lists in 30 s (at most {bound})"
        );
    }
    for (_, _, _, op) in runs {
        op.stop().await;
    }
}

/// A namespace list the cloud keeps failing: the watch lists per app, finds its new order
/// and stays Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_namespace_list_falls_back_to_per_app_lists() {
    let yaml = format!(
        "faults:\n- kind: serviceUnavailable\n  actions: [ListNamespaceChangeOrders]\napps:\n{}",
        app_yaml("f1")
    );
    let sim = start_sim(&yaml).await;
    let ns = namespace("nsl-fail").await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    create_watch(&ns, "f1", watch_spec(&sim, "f1", true)).await;
    converged(&ns, 5).await;
    wait_watch_ready(&ns, "f1", "True", "Polled").await;
    assert!(op.calls.count("ListNamespaceChangeOrders") >= 1, "never tried");
    let o = order(&ns, "f1-new").await.expect("the new order, found per app");
    assert_eq!(phase(&o).as_deref(), Some("Succeeded"));
    op.stop().await;
}
