//! History backfill against the real API server and the simulator: orders already finished at a
//! watch's first list get their batches from one describe each, newest first, from call budget
//! no poll needs; in-flight work on the same account goes first; a restart describes nothing
//! again; nothing is written at rest once the backfill is done. Its own cluster, so the API
//! server's write counters are this file's alone.

use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use changeorder_operator::crd::{ChangeOrder, ChangeOrderWatch, HistoryProgress};
use support::cluster::{TestCluster, TestNamespace, eventually};
use support::operator::*;

/// Finished orders of app `hist`, newest first: `h01` an hour old, `h02` two hours, ...
const HISTORY: usize = 8;

fn history_ids(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i:02}")).collect()
}

/// `n` finished SAE orders (two batches each) of `app`, an hour apart, newest first.
fn history_yaml(app: &str, prefix: &str, n: usize) -> String {
    let mut y = format!("  - provider: sae\n    appId: {app}\n    changeOrders:\n");
    for (i, id) in history_ids(prefix, n).iter().enumerate() {
        y.push_str(&format!(
            "      - {{ id: {id}, createdAt: -{}h, status: 2, batchCount: 2 }}\n",
            i + 1
        ));
    }
    y
}

fn detailed(o: &ChangeOrder) -> bool {
    o.status
        .as_ref()
        .is_some_and(|s| s.detailed == Some(true) && !s.batches.is_empty())
}

async fn watch_history(ns: &TestNamespace, name: &str) -> Option<HistoryProgress> {
    let w: ChangeOrderWatch = ns.api::<ChangeOrderWatch>().get(name).await.ok()?;
    w.status?.history
}

/// Write requests (POST, PUT, PATCH, DELETE) on our kinds and Events, from the API server's
/// own `/metrics` (as `quiet.rs` counts them).
async fn write_requests(client: &kube::Client) -> u64 {
    let req = http::Request::get("/metrics").body(Vec::new()).expect("request");
    let text = client.request_text(req).await.expect("apiserver /metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| {
            ["changeorders", "changeorderwatches", "events"]
                .iter()
                .any(|r| l.contains(&format!("resource=\"{r}\"")))
        })
        .filter(|l| {
            ["POST", "PUT", "PATCH", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn describes_of(sim: &changeorder_sim::RunningSim, ids: &[String]) -> BTreeMap<String, u64> {
    let described = sim.stats().described;
    ids.iter()
        .map(|id| (id.clone(), described.get(id).copied().unwrap_or(0)))
        .collect()
}

/// A watch whose app has only finished history: every order gets its batches, described
/// newest first, each exactly once, also across an operator restart; `status.history` counts
/// up to all described while `Ready` stays `Polled`; at rest nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_history_is_described_newest_first_once_each() {
    let ns = namespace_in(TestCluster::isolated("backfill"), "hist").await;
    let sim = start_sim(&format!("apps:\n{}", history_yaml("hist", "h", HISTORY))).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    // 20 calls a minute: a burst of 2, so the budget spares one describe at a time and the
    // order of the describes is the backfill's own.
    let op = Operator::start_with_budget(ns.client(), ns.name(), fast_settings(), 20).await;
    create_watch(
        &ns,
        "hist",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "hist",
            "interval": "30s", "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    let ids = history_ids("h", HISTORY);
    eventually(
        "the history written from the list",
        Duration::from_secs(30),
        || async { (orders(&ns).await.len() == HISTORY).then_some(()) },
    )
    .await;
    // Midway, the watch is Ready and shows the backfill's progress.
    eventually(
        "backfill progress on the watch",
        Duration::from_secs(40),
        || async {
            let h = watch_history(&ns, "hist").await?;
            (h.described >= 1 && h.remaining >= 1 && h.described + h.remaining == HISTORY as u32)
                .then_some(())
        },
    )
    .await;
    wait_watch_ready(&ns, "hist", "True", "Polled").await;
    eventually(
        "every finished order described",
        Duration::from_secs(90),
        || async {
            let all = orders(&ns).await;
            (all.len() == HISTORY && all.iter().all(detailed)).then_some(())
        },
    )
    .await;
    eventually("status.history says done", Duration::from_secs(20), || async {
        let h = watch_history(&ns, "hist").await?;
        (h == HistoryProgress {
            described: HISTORY as u32,
            remaining: 0,
        })
        .then_some(())
    })
    .await;
    let o = order(&ns, "h01").await.expect("h01");
    let batches = &o.status.as_ref().expect("status").batches;
    assert_eq!(batches.len(), 2, "h01's two batches: {batches:?}");
    assert_eq!(sim.stats().first_described, ids, "described newest first");
    assert!(
        describes_of(&sim, &ids).values().all(|n| *n == 1),
        "each finished order described once: {:?}",
        describes_of(&sim, &ids)
    );

    // At rest: no write request at all.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let client = ns.client();
    let before = write_requests(&client).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let writes = write_requests(&client).await - before;
    assert_eq!(writes, 0, "{writes} write requests at rest after the backfill");

    // A new process knows from the objects that nothing is owed.
    op.stop().await;
    let lists = sim.calls("sae", "ListChangeOrders");
    let op = Operator::start_with_budget(ns.client(), ns.name(), fast_settings(), 20).await;
    // Its first poll is spread over one interval (30 s).
    eventually(
        "the restarted operator polls",
        Duration::from_secs(45),
        || async { (sim.calls("sae", "ListChangeOrders") > lists).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        describes_of(&sim, &ids).values().all(|n| *n == 1),
        "no order described again after a restart: {:?}",
        describes_of(&sim, &ids)
    );
    op.stop().await;
}

/// On an account whose budget is tight, a watch with a long history backfills while another
/// watch of the same credentials has an order in flight: that order's change is seen at the
/// in-flight pace, not after the history, and the history completes once the account is idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_yields_to_in_flight_work() {
    let ns = namespace("yield").await;
    const LONG: usize = 20;
    // `live` runs until 25 s after the simulator starts, then succeeds.
    let yaml = format!(
        "apps:\n{}  - provider: sae\n    appId: busy\n    changeOrders:\n      - id: live\n        createdAt: -1m\n        status: 1\n        batchCount: 2\n        currentBatch: 1\n        timeline:\n        - {{after: 25s, status: 2, currentBatch: 2}}\n",
        history_yaml("long", "p", LONG)
    );
    let sim = start_sim(&yaml).await;
    let sim_started = Instant::now();
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let op = Operator::start_with_budget(ns.client(), ns.name(), fast_settings(), 20).await;
    create_watch(
        &ns,
        "busy",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "busy",
            "interval": "30s", "inFlightInterval": "3s", "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    create_watch(
        &ns,
        "long",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "long",
            "interval": "30s", "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    let long_ids = history_ids("p", LONG);
    let succeeded = |o: &ChangeOrder| phase(o).as_deref() == Some("Succeeded");
    eventually("live seen succeeded", Duration::from_secs(60), || async {
        order(&ns, "live").await.filter(succeeded).map(|_| ())
    })
    .await;
    let seen_after = sim_started.elapsed();
    let backfilled = describes_of(&sim, &long_ids).values().filter(|n| **n > 0).count();
    eprintln!(
        "in-flight change at 25 s seen at {:.1} s; {backfilled} of {LONG} history orders described by then",
        seen_after.as_secs_f64()
    );
    // The in-flight pace is 3 s, the account's round a few seconds at 20 calls a minute: the
    // change is seen well before the history (20 describes at this budget) could be done.
    assert!(
        seen_after < Duration::from_secs(25 + 12),
        "the in-flight change waited {seen_after:?} behind the backfill"
    );
    assert!(
        backfilled < LONG,
        "the history was not done yet when live changed"
    );
    eventually(
        "the history completes once the account is idle",
        Duration::from_secs(150),
        || async {
            let all = orders(&ns).await;
            let long: Vec<&ChangeOrder> = all
                .iter()
                .filter(|o| o.spec.change_order_id.starts_with('p'))
                .collect();
            (long.len() == LONG && long.iter().all(|o| detailed(o))).then_some(())
        },
    )
    .await;
    let counts = describes_of(&sim, &long_ids);
    assert!(counts.values().all(|n| *n == 1), "each once: {counts:?}");
    op.stop().await;
}

/// A history small enough to be described in one step (a generous budget) still shows on the
/// watch as done; a watch whose only order was followed in flight never gets `status.history`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_described_in_one_step_is_recorded() {
    let ns = namespace_in(TestCluster::isolated("backfill"), "one-step").await;
    let yaml = format!(
        "apps:\n{}  - provider: sae\n    appId: live\n    changeOrders:\n      - {{ id: live-1, createdAt: -1m, status: 1, batchCount: 1, timeline: [{{after: 3s, status: 2}}] }}\n",
        history_yaml("small", "s", 3)
    );
    let sim = start_sim(&yaml).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    for app in ["small", "live"] {
        create_watch(
            &ns,
            app,
            serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": app,
                "interval": "30s", "inFlightInterval": "2s", "credentialsSecretRef": {"name": "cloud"}}),
        )
        .await;
    }
    eventually(
        "the small history recorded as done",
        Duration::from_secs(40),
        || async {
            let h = watch_history(&ns, "small").await?;
            (h == HistoryProgress {
                described: 3,
                remaining: 0,
            })
            .then_some(())
        },
    )
    .await;
    eventually("the live order finished", Duration::from_secs(30), || async {
        let o = order(&ns, "live-1").await?;
        (phase(&o).as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        watch_history(&ns, "live").await,
        None,
        "a watch with no history to describe shows none"
    );
    op.stop().await;
}
