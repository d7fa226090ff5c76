//! The controller against a real kube-apiserver (+ etcd, + the garbage collector) and the
//! bundled simulator over HTTP: what `kubectl` users and GitOps tools see.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use changeorder_operator::crd::{ChangeOrderWatch, RECONCILE_REQUEST_ANNOTATION};
use changeorder_sim::Scenario;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use support::cluster::eventually;
use support::operator::*;

const SETTLE: Duration = Duration::from_secs(60);

fn edas_watch(endpoint: &str, app: &str) -> serde_json::Value {
    serde_json::json!({
        "provider": "edas", "endpoint": endpoint, "appId": app,
        "credentialsSecretRef": {"name": "cloud"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_contract_row_reaches_a_change_order() {
    let ns = namespace("rows").await;
    let sim = start_sim_with(Scenario::demo().expect("demo scenario")).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_secret(&ns, "token", &[("token", changeorder_sim::DEFAULT_YUNXIAO_TOKEN)]).await;
    let url = sim.url();
    create_watch(&ns, "edas", edas_watch(&url, "demo-edas-app")).await;
    create_watch(&ns, "edas-single", edas_watch(&url, "demo-edas-single")).await;
    create_watch(&ns, "sae", serde_json::json!({
        "provider": "sae", "endpoint": url, "appId": "demo-sae-app", "credentialsSecretRef": {"name": "cloud"},
    }))
    .await;
    create_watch(
        &ns,
        "appstack",
        serde_json::json!({
            "provider": "appstack", "endpoint": url, "organizationId": "demo-org", "appName": "demo-app",
            "credentialsSecretRef": {"name": "token"},
        }),
    )
    .await;
    let _op = Operator::start(ns.client(), ns.name(), fast_settings()).await;

    let rows = DEMO_ROWS;
    let all = eventually("every demo order as a ChangeOrder", SETTLE, || async {
        let all = orders(&ns).await;
        let found: BTreeMap<String, _> = all
            .iter()
            .map(|o| (o.spec.change_order_id.clone(), o.clone()))
            .collect();
        rows.iter()
            .all(|(id, _, _)| found.get(*id).is_some_and(|o| o.status.is_some()))
            .then_some(found)
    })
    .await;
    for (id, phase_want, reason_want) in rows {
        let o = &all[id];
        assert_contract_row(o, phase_want, reason_want);
        let observed = o.status.as_ref().map(|s| {
            s.conditions
                .iter()
                .all(|c| c.observed_generation == o.metadata.generation)
        });
        assert_eq!(
            observed,
            Some(true),
            "{id}: conditions observe the current generation"
        );
        let labels = o.metadata.labels.clone().unwrap_or_default();
        assert!(labels.contains_key("changeorder.io/watch") && labels.contains_key("changeorder.io/app"));
        let owner = o.metadata.owner_references.as_ref().map(|r| r[0].kind.as_str());
        assert_eq!(owner, Some("ChangeOrderWatch"));
    }
    assert_eq!(
        all["demo-sae-unknown"]
            .status
            .as_ref()
            .and_then(|s| s.provider_status.as_deref()),
        Some("99")
    );
    assert_eq!(
        all["as-unknown"]
            .status
            .as_ref()
            .and_then(|s| s.provider_status.as_deref()),
        Some("ROLLBACKING")
    );

    // Label selection works as documented.
    let out = ns
        .kubectl()
        .args([
            "get",
            "changeorders",
            "-l",
            "changeorder.io/provider=sae",
            "-o",
            "name",
        ])
        .output()
        .expect("kubectl");
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.lines().count() >= 12 && names.lines().all(|l| l.contains("sae")),
        "{names}"
    );

    // Watches report a successful poll with counts.
    let watch = ns.api::<ChangeOrderWatch>().get("sae").await.expect("watch");
    assert_eq!(watch_ready(&watch), Some(("True".into(), "Polled".into())));
    let counts = watch.status.and_then(|s| s.orders).expect("counts");
    assert!(
        counts.total >= 12 && counts.awaiting_approval >= 1 && counts.failed >= 2,
        "{counts:?}"
    );
}

const PROGRESS: &str = r#"
timeScale: 1
apps:
  - provider: edas
    appId: app-progress
    changeOrders:
      - id: co-progress
        type: CoDeploy
        createdAt: 5s
        batchCount: 3
        batchType: manual
        status: 0
        timeline:
          - { after: 10s, status: 1, currentBatch: 1 }
          - { after: 15s, status: 8, currentBatch: 2, message: "confirm batch 2" }
          - { after: 20s, status: 1, currentBatch: 2 }
          - { after: 25s, status: 2, currentBatch: 3 }
      - id: co-doomed
        createdAt: 0s
        status: 1
        timeline:
          - { after: 5s, status: 3, message: "health check failed" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_moves_through_its_phases_and_kubectl_follows() {
    let ns = namespace("progress").await;
    let sim = start_sim(PROGRESS).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(&ns, "app", edas_watch(&sim.url(), "app-progress")).await;

    // Record every phase the object goes through, as a watching user would see it.
    let api = ns.api::<changeorder_operator::crd::ChangeOrder>();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let recorder = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
            while let Some(Ok(o)) = stream.next().await {
                if o.spec.change_order_id == "co-progress"
                    && let Some(p) = phase(&o)
                    && let Ok(mut seen) = seen.lock()
                    && seen.last() != Some(&p)
                {
                    seen.push(p);
                }
            }
        })
    };
    let _op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let name = eventually("co-progress exists", SETTLE, || async {
        order(&ns, "co-progress").await
    })
    .await;
    let name = name.metadata.name.expect("name");

    // kubectl wait returns once the order succeeds ...
    let out = ns
        .kubectl()
        .args([
            "wait",
            "--for=condition=Ready",
            "--timeout=60s",
            &format!("changeorder/{name}"),
        ])
        .output()
        .expect("kubectl wait");
    assert!(
        out.status.success(),
        "kubectl wait Ready: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen_phases = eventually(
        "the watcher saw the last phase",
        Duration::from_secs(10),
        || async {
            let s = seen.lock().map(|s| s.clone()).unwrap_or_default();
            (s.last().map(String::as_str) == Some("Succeeded")).then_some(s)
        },
    )
    .await;
    recorder.abort();
    assert_eq!(
        seen_phases,
        [
            "Pending",
            "Running",
            "AwaitingConfirmation",
            "Running",
            "Succeeded"
        ],
        "phases observed in order"
    );
    let done = order(&ns, "co-progress").await.expect("order");
    assert_eq!(
        condition(&done, "Ready"),
        Some(("True".into(), "Succeeded".into()))
    );
    assert_eq!(
        condition(&done, "Reconciling").map(|c| c.0).as_deref(),
        Some("False")
    );
    assert_eq!(done.status.as_ref().and_then(|s| s.current_batch), Some(3));

    // ... and --for=condition=Stalled once one fails; Ready never comes for it.
    let doomed = order(&ns, "co-doomed")
        .await
        .expect("doomed")
        .metadata
        .name
        .expect("name");
    let out = ns
        .kubectl()
        .args([
            "wait",
            "--for=condition=Stalled",
            "--timeout=60s",
            &format!("changeorder/{doomed}"),
        ])
        .output()
        .expect("kubectl wait");
    assert!(
        out.status.success(),
        "kubectl wait Stalled: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ns
        .kubectl()
        .args([
            "wait",
            "--for=condition=Ready",
            "--timeout=2s",
            &format!("changeorder/{doomed}"),
        ])
        .output()
        .expect("kubectl wait");
    assert!(!out.status.success(), "a failed order never becomes Ready");

    // The printer columns, as `kubectl get changeorders` shows them.
    let out = ns
        .kubectl()
        .args(["get", "changeorders"])
        .output()
        .expect("kubectl get");
    let table = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "PROVIDER", "ORDER", "ID", "TYPE", "PHASE", "BATCH", "BATCHES", "CREATED"
        ],
        "{table}"
    );
    let row = table.lines().find(|l| l.contains("co-progress")).expect("row");
    assert!(
        row.contains("edas") && row.contains("Succeeded") && row.contains("Deploy"),
        "{row}"
    );
    let out = ns
        .kubectl()
        .args(["get", "alibabacloud"])
        .output()
        .expect("kubectl get category");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("changeorderwatch") && listed.contains("changeorder.changeorder.io"),
        "{listed}"
    );

    // Phase transitions were announced as Events on the order.
    let reasons = event_reasons(&ns, &name);
    assert!(
        reasons.contains("ManualBatchConfirmation") && reasons.contains("Succeeded"),
        "{reasons}"
    );
}

const SETTLED: &str = r#"
apps:
  - provider: sae
    appId: app-settled
    changeOrders:
      - { id: s-1, createdAt: -3h, status: 2 }
      - { id: s-2, createdAt: -2h, status: 3, message: "image pull failed" }
      - { id: s-3, createdAt: -1h, status: 6 }
      - id: s-4
        createdAt: 0s
        status: 1
        timeline:
          # In flight long enough for the first poll to see it running, which on a loaded
          # machine (the other tests run alongside) can come seconds after the simulator starts.
          - { after: 8s, status: 2 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_orders_cause_no_writes_and_no_describes() {
    let ns = namespace("quiet").await;
    let sim = start_sim(SETTLED).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(
        &ns,
        "app",
        serde_json::json!({
            "provider": "sae", "endpoint": sim.url(), "appId": "app-settled",
            "credentialsSecretRef": {"name": "cloud"},
        }),
    )
    .await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    eventually("all four orders finished", SETTLE, || async {
        let all = orders(&ns).await;
        (all.len() == 4
            && all
                .iter()
                .all(|o| phase(o).is_some_and(|p| p == "Succeeded" || p == "Failed" || p == "Cancelled")))
        .then_some(())
    })
    .await;
    // The in-flight order was described while running; history first seen finished never was.
    assert!(op.calls.count("DescribeChangeOrder") >= 1);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let before = versions(&ns).await;
    let lists_before = op.calls.count("ListChangeOrders");
    let describes_before = op.calls.count("DescribeChangeOrder");
    tokio::time::sleep(Duration::from_secs(9)).await;
    let polls = op.calls.count("ListChangeOrders") - lists_before;
    assert!(polls >= 3, "the watch kept polling every 2s ({polls} polls)");
    assert_eq!(
        op.calls.count("DescribeChangeOrder"),
        describes_before,
        "no describe of a finished order"
    );
    assert_eq!(
        versions(&ns).await,
        before,
        "{polls} polls of settled orders wrote nothing"
    );
    eprintln!("steady state: {polls} polls, 0 writes, 0 describes, 1 list call per poll");
}

const DISCOVERY: &str = r#"
apps:
  - provider: sae
    appId: app-discovery
    changeOrders:
      - { id: d-running, createdAt: -1m, status: 1, batchCount: 3, currentBatch: 1,
          timeline: [ { after: 10s, status: 1, currentBatch: 2 } ] }
      - { id: d-done, createdAt: -2h, status: 2 }
      - { id: d-later, createdAt: 12s, status: 1 }
      # Its one batch is done at 4 s, the order only at 14 s: the list's FinishTime says 14 s,
      # while a describe alone (no FinishTime in it) dates the end by the batch, 4 s.
      - { id: d-ends, createdAt: -1m, status: 1, batchCount: 1,
          timeline: [ { after: 4s, batchStates: [2] }, { after: 14s, status: 2 } ] }
"#;

/// While an order is in flight, the polls between two lists only describe it: the account's
/// calls go to what changes, and new orders are still found at the watch's interval. An order
/// such a poll finds finished is written with the list's view of it too, as a listing poll
/// writes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_between_lists_describe_only_the_orders_in_flight() {
    let ns = namespace("discovery").await;
    let sim = start_sim(DISCOVERY).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(
        &ns,
        "app",
        serde_json::json!({
            "provider": "sae", "endpoint": sim.url(), "appId": "app-discovery",
            "credentialsSecretRef": {"name": "cloud"},
            "interval": "20s",
        }),
    )
    .await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    eventually("the running order is written", SETTLE, || async {
        order(&ns, "d-running")
            .await?
            .status?
            .current_batch
            .filter(|b| *b == 1)
    })
    .await;
    let (lists, describes) = (
        op.calls.count("ListChangeOrders"),
        op.calls.count("DescribeChangeOrder"),
    );
    // The cloud moves the order to batch 2 about 10 s in: a describe-only poll shows it.
    eventually("batch 2 shown", SETTLE, || async {
        order(&ns, "d-running")
            .await?
            .status?
            .current_batch
            .filter(|b| *b == 2)
    })
    .await;
    // The order that appears 12 s in is found by a list, within an interval or so.
    eventually("the new order is discovered", Duration::from_secs(40), || async {
        order(&ns, "d-later").await
    })
    .await;
    // d-ends finished at 14 s, between the lists at about 0 and 18 s: its finish time is the
    // list's, not its batch's end.
    let ends = eventually("d-ends finished", SETTLE, || async {
        let o = order(&ns, "d-ends").await?;
        (phase(&o).as_deref() == Some("Succeeded")).then_some(o)
    })
    .await;
    let status = ends.status.expect("status");
    let finished = status.finish_time.expect("finish time").0;
    let batch_end = status.batches[0].end_time.as_ref().expect("batch end").0;
    let gap = finished.duration_since(batch_end).as_secs();
    assert!(
        (8..=12).contains(&gap),
        "finish time {finished} is the list's, 10 s after the batch's end {batch_end}"
    );
    let lists = op.calls.count("ListChangeOrders") - lists;
    let describes = op.calls.count("DescribeChangeOrder") - describes;
    eprintln!("in flight: {lists} lists, {describes} describes");
    assert!(lists >= 1, "discovery went on ({lists} lists)");
    // A poll of the orders in flight every second (the operator's in-flight default here), a
    // list every 20 s: several describes a list.
    // Listing on every poll would make the two counts equal.
    assert!(describes >= 3 * lists, "{describes} describes for {lists} lists");
    // The finished order was never described.
    let done = order(&ns, "d-done").await.expect("d-done");
    assert_eq!(phase(&done).as_deref(), Some("Succeeded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_retried_slowly_and_recovers() {
    let ns = namespace("creds").await;
    let sim = start_sim(SETTLED).await;
    access_key_secret(&ns, "cloud", "not-the-secret").await;
    create_watch(
        &ns,
        "app",
        serde_json::json!({
            "provider": "sae", "endpoint": sim.url(), "appId": "app-settled",
            "credentialsSecretRef": {"name": "cloud"},
        }),
    )
    .await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let watches = ns.api::<ChangeOrderWatch>();
    let w = eventually("InvalidCredentials", SETTLE, || async {
        let w = watches.get("app").await.ok()?;
        (watch_ready(&w)? == ("False".to_string(), "InvalidCredentials".to_string())).then_some(w)
    })
    .await;
    let message = w
        .status
        .and_then(|s| s.conditions.into_iter().next())
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("SignatureDoesNotMatch"), "{message}");
    assert!(
        !message.contains("not-the-secret"),
        "the secret never appears in status"
    );
    // No hot loop, but no giving up either: one retry per max error backoff (4 s here), so a
    // key fixed on the cloud side (or a proxy's passing 401) recovers without a Secret change.
    let calls = op.calls.total();
    tokio::time::sleep(Duration::from_secs(9)).await;
    let retries = op.calls.total() - calls;
    assert!(
        (1..=3).contains(&retries),
        "{retries} calls in 9 s with a 4 s max error backoff"
    );
    assert!(orders(&ns).await.is_empty());

    // Fix the Secret: the watch polls again and recovers without a restart.
    let patch =
        serde_json::json!({"stringData": {"accessKeySecret": changeorder_sim::DEFAULT_ACCESS_KEY_SECRET}});
    ns.api::<Secret>()
        .patch("cloud", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch secret");
    eventually("Ready again", SETTLE, || async {
        let w = watches.get("app").await.ok()?;
        (watch_ready(&w)?.0 == "True").then_some(())
    })
    .await;
    eventually("orders appear", SETTLE, || async {
        (orders(&ns).await.len() == 4).then_some(())
    })
    .await;

    // A missing Secret is reported by name too.
    create_watch(
        &ns,
        "nosecret",
        serde_json::json!({
            "provider": "sae", "endpoint": sim.url(), "appId": "app-settled",
            "credentialsSecretRef": {"name": "missing"},
        }),
    )
    .await;
    eventually("missing Secret reported", SETTLE, || async {
        let w = watches.get("nosecret").await.ok()?;
        let c = w.status?.conditions.into_iter().next()?;
        (c.reason == "InvalidCredentials" && c.message.contains("missing")).then_some(())
    })
    .await;
}

const THROTTLED: &str = r#"
faults:
  - { kind: throttling, limit: 6, duration: 100ms }
apps:
  - provider: edas
    appId: app-throttled
    changeOrders:
      - { id: t-1, createdAt: -1h, status: 2 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_reported_then_recovers() {
    let ns = namespace("throttle").await;
    let sim = start_sim(THROTTLED).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(&ns, "app", edas_watch(&sim.url(), "app-throttled")).await;
    let _op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    wait_watch_ready(&ns, "app", "False", "Throttled").await;
    wait_watch_ready(&ns, "app", "True", "Polled").await;
    assert!(order(&ns, "t-1").await.is_some());
    // The failure and the recovery were announced once each, not on every poll.
    let reasons = event_reasons(&ns, "app");
    let count = |r: &str| reasons.split_whitespace().filter(|x| *x == r).count();
    assert_eq!((count("Throttled"), count("Polled")), (1, 1), "{reasons}");
}

const MANY: &str = r#"
apps:
  - provider: edas
    appId: app-many
    changeOrders:
      - { id: m-1, createdAt: -6h, status: 2 }
      - { id: m-2, createdAt: -5h, status: 2 }
      - { id: m-3, createdAt: -4h, status: 3 }
      - { id: m-4, createdAt: -3h, status: 2 }
      - { id: m-5, createdAt: -2h, status: 6 }
      - { id: m-6, createdAt: -1m, status: 1 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_and_deleting_a_watch_removes_its_orders() {
    let ns = namespace("retention").await;
    let sim = start_sim(MANY).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let mut spec = edas_watch(&sim.url(), "app-many");
    spec["retention"] = serde_json::json!({"maxFinished": 2});
    create_watch(&ns, "app", spec).await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let ids = |all: Vec<changeorder_operator::crd::ChangeOrder>| {
        let mut v: Vec<String> = all.into_iter().map(|o| o.spec.change_order_id).collect();
        v.sort();
        v
    };
    eventually("newest two finished plus the running one", SETTLE, || async {
        (ids(orders(&ns).await) == ["m-4", "m-5", "m-6"]).then_some(())
    })
    .await;
    // Loosen retention: older orders come back, because the cloud still lists them.
    let patch = serde_json::json!({"spec": {"retention": {"maxFinished": 3}}});
    ns.api::<ChangeOrderWatch>()
        .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    eventually("three finished kept, and counted", SETTLE, || async {
        let w = ns.api::<ChangeOrderWatch>().get("app").await.ok()?;
        let counted = w.status.as_ref()?.orders.as_ref()?.total == 4
            && w.status.as_ref()?.observed_generation == w.metadata.generation;
        (counted && ids(orders(&ns).await) == ["m-3", "m-4", "m-5", "m-6"]).then_some(())
    })
    .await;
    let stable = versions(&ns).await;
    let w0 = ns.api::<ChangeOrderWatch>().get("app").await.expect("watch");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let w1 = ns.api::<ChangeOrderWatch>().get("app").await.expect("watch");
    assert_eq!(
        versions(&ns).await,
        stable,
        "pruned orders are not re-created and re-pruned\n{:?}\n{:?}",
        w0.status,
        w1.status
    );

    // A manual refresh is recorded in status.
    let patch = serde_json::json!({"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: "now-1"}}});
    let watches = ns.api::<ChangeOrderWatch>();
    watches
        .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
    eventually("refresh handled", SETTLE, || async {
        let w = watches.get("app").await.ok()?;
        (w.status?.last_handled_reconcile_at.as_deref() == Some("now-1")).then_some(())
    })
    .await;

    watches
        .delete("app", &DeleteParams::foreground())
        .await
        .expect("delete watch");
    eventually("orders garbage-collected with their watch", SETTLE, || async {
        orders(&ns).await.is_empty().then_some(())
    })
    .await;
    drop(op);
}

const RESTART: &str = r#"
timeScale: 1
apps:
  - provider: appstack
    organizationId: org
    appName: restart
    changeOrders:
      - { id: r-1, createdAt: -2h, status: SUCCESS }
      - { id: r-2, createdAt: -1h, status: FAILED }
      - id: r-3
        createdAt: 0s
        status: RUNNING
        timeline:
          - { after: 6s, status: SUCCESS }
      - { id: r-4, createdAt: 3s, status: INIT }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_sync_loses_and_duplicates_nothing() {
    let ns = namespace("restart").await;
    let sim = start_sim(RESTART).await;
    create_secret(&ns, "token", &[("token", changeorder_sim::DEFAULT_YUNXIAO_TOKEN)]).await;
    create_watch(
        &ns,
        "app",
        serde_json::json!({
            "provider": "appstack", "endpoint": sim.url(), "organizationId": "org", "appName": "restart",
            "credentialsSecretRef": {"name": "token"},
        }),
    )
    .await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    eventually("first orders", SETTLE, || async {
        (!orders(&ns).await.is_empty()).then_some(())
    })
    .await;
    op.stop().await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let all = eventually("all four, r-3 finished", SETTLE, || async {
        let all = orders(&ns).await;
        (all.len() == 4 && order(&ns, "r-3").await.and_then(|o| phase(&o)).as_deref() == Some("Succeeded"))
            .then_some(all)
    })
    .await;
    let mut ids: Vec<String> = all.iter().map(|o| o.spec.change_order_id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["r-1", "r-2", "r-3", "r-4"]);
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_with_the_field_named() {
    let ns = namespace("invalid").await;
    // (spec, words the API server's refusal must contain)
    let cases = [
        (
            r#"{"provider": "edas", "region": "cn-hangzhou", "credentialsSecretRef": {"name": "c"}}"#,
            "spec.appId is required when spec.provider is edas or sae",
        ),
        (
            r#"{"provider": "appstack", "organizationId": "o", "credentialsSecretRef": {"name": "c"}}"#,
            "spec.organizationId and spec.appName are required",
        ),
        (
            r#"{"provider": "sae", "appId": "a", "credentialsSecretRef": {"name": "c"}}"#,
            "spec.region or spec.endpoint",
        ),
        (
            r#"{"provider": "gcp", "appId": "a", "region": "x", "credentialsSecretRef": {"name": "c"}}"#,
            "spec.provider",
        ),
        (
            r#"{"provider": "edas", "appId": "a", "region": "x", "interval": "1s", "credentialsSecretRef": {"name": "c"}}"#,
            "spec.interval must be at least 5s",
        ),
        (
            r#"{"provider": "edas", "appId": "a", "region": "x", "interval": "soon", "credentialsSecretRef": {"name": "c"}}"#,
            "spec.interval",
        ),
        (
            r#"{"provider": "edas", "appId": "a", "endpoint": "ftp://x", "credentialsSecretRef": {"name": "c"}}"#,
            "spec.endpoint",
        ),
        (
            r#"{"provider": "appstack", "organizationId": "o", "appName": "a", "states": ["DONE"], "credentialsSecretRef": {"name": "c"}}"#,
            "spec.states[0]",
        ),
        (
            r#"{"provider": "edas", "appId": "a", "region": "x"}"#,
            "spec.credentialsSecretRef",
        ),
    ];
    for (i, (spec, want)) in cases.iter().enumerate() {
        let manifest = format!(
            r#"{{"apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch", "metadata": {{"name": "bad-{i}"}}, "spec": {spec}}}"#
        );
        let mut child = ns
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(manifest.as_bytes())
            .expect("write manifest");
        let out = child.wait_with_output().expect("kubectl apply");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} accepted: {spec}");
        assert!(stderr.contains(want), "case {i}: {want:?} not in {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_watch_makes_no_calls_until_resumed() {
    let ns = namespace("suspend").await;
    let sim = start_sim(SETTLED).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(
        &ns,
        "app",
        serde_json::json!({
            "provider": "sae", "endpoint": sim.url(), "appId": "app-settled", "suspend": true,
            "credentialsSecretRef": {"name": "cloud"},
        }),
    )
    .await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let watches = ns.api::<ChangeOrderWatch>();
    wait_watch_ready(&ns, "app", "False", "Suspended").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(op.calls.total(), 0, "no cloud call while suspended");
    let patch = serde_json::json!({"spec": {"suspend": false}});
    watches
        .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("resume");
    eventually("polled after resuming", SETTLE, || async {
        (orders(&ns).await.len() == 4).then_some(())
    })
    .await;
}

const BUSY: &str = r#"
apps:
  - provider: sae
    appId: busy-1
    changeOrders:
      - { id: b1-1, createdAt: -1m, status: 1 }
      - { id: b1-2, createdAt: -2m, status: 8 }
  - provider: sae
    appId: busy-2
    changeOrders:
      - { id: b2-1, createdAt: -1m, status: 1 }
      - { id: b2-2, createdAt: -2m, status: 11 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_sharing_an_account_share_its_call_budget() {
    let ns = namespace("budget").await;
    let sim = start_sim(BUSY).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    for app in ["busy-1", "busy-2"] {
        create_watch(&ns, app, serde_json::json!({
            "provider": "sae", "endpoint": sim.url(), "appId": app, "credentialsSecretRef": {"name": "cloud"},
        }))
        .await;
    }
    // 60 calls a minute for the account: a burst of 6, then one a second, whatever the watches
    // would like (each wants 3 calls a second: list + 2 describes, every second).
    let op = Operator::start_with_budget(ns.client(), ns.name(), fast_settings(), 60).await;
    eventually("both watches polled", SETTLE, || async {
        (orders(&ns).await.len() == 4).then_some(())
    })
    .await;
    let before = op.calls.total();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let calls = op.calls.total() - before;
    assert!(
        (6..=12).contains(&calls),
        "{calls} calls in 10 s with a budget of one a second"
    );
    eprintln!("shared budget: {calls} calls in 10 s for two busy watches (budget 60/min)");
}

/// Ten busy watches on one account whose budget is spent, and one watch on another account:
/// waiting for budget used to happen inside the reconcile, so the busy watches held every
/// reconcile slot and the other account's watch fell behind its interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_account_does_not_stall_another_accounts_watch() {
    let ns = namespace("budget-fair").await;
    let mut busy = String::from("apps:\n");
    for i in 0..10 {
        busy.push_str(&format!(
            "  - provider: sae\n    appId: busy-{i}\n    changeOrders:\n      - {{ id: b{i}-1, createdAt: -1m, status: 1 }}\n      - {{ id: b{i}-2, createdAt: -2m, status: 8 }}\n"
        ));
    }
    let busy_sim = start_sim(&busy).await;
    let other_sim = start_sim(SETTLED).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    for i in 0..10 {
        create_watch(
            &ns,
            &format!("busy-{i}"),
            serde_json::json!({
                "provider": "sae", "endpoint": busy_sim.url(), "appId": format!("busy-{i}"),
                "credentialsSecretRef": {"name": "cloud"},
            }),
        )
        .await;
    }
    create_watch(
        &ns,
        "other",
        serde_json::json!({
            "provider": "sae", "endpoint": other_sim.url(), "appId": "app-settled",
            "credentialsSecretRef": {"name": "cloud"},
        }),
    )
    .await;
    // 60 calls a minute per account and endpoint (burst 6, then one a second); the busy account
    // wants ~30 a second, the other one a list every 2 s.
    let _op = Operator::start_with_budget(ns.client(), ns.name(), fast_settings(), 60).await;
    eventually("the other watch polled", SETTLE, || async {
        (other_sim.calls("sae", "ListChangeOrders") > 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let before = other_sim.calls("sae", "ListChangeOrders");
    let busy_before = busy_sim.stats().total;
    tokio::time::sleep(Duration::from_secs(16)).await;
    let polls = other_sim.calls("sae", "ListChangeOrders") - before;
    let busy_calls = busy_sim.stats().total - busy_before;
    eprintln!(
        "budget isolation: the other account's watch polled {polls} times in 16 s (interval 2 s) \
         while ten watches shared {busy_calls} calls of a 60/min budget"
    );
    // 8 at best; under load (CI runs the suite in parallel) a poll itself takes a while, but a
    // watch stuck behind the busy ones would poll once or twice.
    assert!(polls >= 4, "{polls} polls in 16 s at a 2 s interval");
    // The bucket refills at one a second and holds at most a burst of 6: when the busy pollers
    // are slow to come back (a loaded machine), the window can open on a refilled bucket, plus
    // one call granted just before the window that reaches the simulator inside it.
    assert!(
        busy_calls <= 16 + 6 + 1,
        "the busy account kept to its budget: {busy_calls} calls"
    );
}

/// A watch whose endpoint is outside the operator's policy gets `EndpointNotAllowed` and not a
/// single call: no signed request, token or budget goes to a server the operator does not trust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_outside_the_policy_gets_no_call() {
    let ns = namespace("policy").await;
    let sim = start_sim(SETTLED).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    // The same simulator, named so the policy (http://127.0.0.1:*) does not match it.
    let elsewhere = sim.url().replace("127.0.0.1", "localhost");
    create_watch(
        &ns,
        "elsewhere",
        serde_json::json!({
            "provider": "sae", "endpoint": elsewhere, "appId": "app-settled",
            "credentialsSecretRef": {"name": "cloud"},
        }),
    )
    .await;
    let _op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let watches = ns.api::<ChangeOrderWatch>();
    let w = eventually("EndpointNotAllowed", SETTLE, || async {
        let w = watches.get("elsewhere").await.ok()?;
        (watch_ready(&w)? == ("False".to_string(), "EndpointNotAllowed".to_string())).then_some(w)
    })
    .await;
    let ready = w
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .cloned();
    assert!(
        ready.is_some_and(|c| c.message.contains("localhost")),
        "the message names the endpoint"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sim.stats().total, 0, "no call reached the endpoint");
    assert!(orders(&ns).await.is_empty());
}

const MIXED: &str = r#"
apps:
  - provider: edas
    appId: good
    changeOrders:
      - { id: g-1, createdAt: -1h, status: 2 }
  - provider: edas
    appId: broken
    faults:
      - { kind: malformedJson, rate: 1.0 }
    changeOrders:
      - { id: x-1, createdAt: -1h, status: 2 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_watch_never_stops_the_others() {
    let ns = namespace("mixed").await;
    let sim = start_sim(MIXED).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(&ns, "good", edas_watch(&sim.url(), "good")).await;
    create_watch(&ns, "broken", edas_watch(&sim.url(), "broken")).await;
    create_watch(&ns, "gone", edas_watch(&sim.url(), "no-such-app")).await;
    let _op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let watches = ns.api::<ChangeOrderWatch>();
    let reason_of = |name: &'static str| {
        let watches = watches.clone();
        async move {
            let w = watches.get(name).await.ok()?;
            let c = w.status?.conditions.into_iter().next()?;
            Some((c.status, c.reason, c.message))
        }
    };
    eventually("each watch reports its own state", SETTLE, || async {
        let good = reason_of("good").await?;
        let broken = reason_of("broken").await?;
        let gone = reason_of("gone").await?;
        (good.1 == "Polled" && broken.1 == "ProviderError" && gone.1 == "AppNotFound").then_some(())
    })
    .await;
    let (_, _, broken) = reason_of("broken").await.expect("broken");
    assert!(
        broken.contains("JSON") || broken.contains("json"),
        "the cause is named: {broken}"
    );
    let (_, _, gone) = reason_of("gone").await.expect("gone");
    assert!(gone.contains("InvalidAppId.NotFound"), "{gone}");
    assert!(
        order(&ns, "g-1").await.is_some(),
        "the good watch's order is there"
    );
    assert!(
        order(&ns, "x-1").await.is_none(),
        "nothing invented from a malformed reply"
    );
}

/// 40 EDAS watches on one account whose lists at their 10 s interval (4 a second) are twice
/// what its budget (120 a minute) serves: each says so in `status.pacedInterval`, all alike, and
/// the account's calls stay within the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_large_fleet_says_it_is_paced() {
    let ns = namespace("paced").await;
    let mut yaml = String::from("apps:\n");
    for i in 0..40 {
        yaml.push_str(&format!(
            "  - provider: edas\n    appId: fleet-{i}\n    changeOrders:\n      - {{ id: f{i}-1, createdAt: -1h, status: 2 }}\n"
        ));
    }
    let sim = start_sim(&yaml).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    for i in 0..40 {
        create_watch(
            &ns,
            &format!("fleet-{i}"),
            serde_json::json!({
                "provider": "edas", "endpoint": sim.url(), "appId": format!("fleet-{i}"),
                "interval": "10s", "credentialsSecretRef": {"name": "cloud"},
            }),
        )
        .await;
    }
    let op = Operator::start_with_budget(ns.client(), ns.name(), fast_settings(), 120).await;
    let api: kube::Api<ChangeOrderWatch> = kube::Api::namespaced(ns.client(), ns.name());
    // 4 lists a second against 0.95 × 2 planned: every watch lists about every 21 s.
    let paced = eventually("every watch paced alike", Duration::from_secs(120), || async {
        let watches = api.list(&Default::default()).await.ok()?;
        let got: std::collections::BTreeSet<Option<String>> = watches
            .items
            .iter()
            .map(|w| w.status.as_ref().and_then(|s| s.paced_interval.clone()))
            .collect();
        (watches.items.len() == 40 && got.len() == 1).then(|| got.into_iter().next().flatten())?
    })
    .await;
    assert_eq!(paced, "20s");
    let before = op.calls.total();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let calls = op.calls.total() - before;
    eprintln!("paced fleet: {calls} calls in 20 s (budget 2 a second), pacedInterval {paced}");
    assert!(
        calls <= 2 * 20 + 12,
        "{calls} calls in 20 s with a budget of 2 a second"
    );
    assert!(
        calls >= 20,
        "only {calls} calls in 20 s: the fleet is starved, not paced"
    );
}
