//! The fault suite: the operator binary as a real process against the local control plane and
//! the simulator, while the cloud fails on purpose, the process is killed with SIGKILL, and
//! the cloud sends orders too large or oddly named. Each test ends by checking the promise:
//! every order the cloud has exists exactly once, with the status the cloud last reported.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use changeorder_operator::cloud::Target;
use changeorder_operator::cloud::client::{CloudClient, merge};
use changeorder_operator::cloud::credentials::Credentials;
use changeorder_operator::cloud::http::ClientConfig;
use changeorder_operator::controller::fetch::{Detail, fetch};
use changeorder_operator::crd::{ChangeOrder, ChangeOrderWatch};
use changeorder_operator::mapping;
use changeorder_operator::sim::{self, RunningSim};
use support::cluster::{TestNamespace, eventually};
use support::operator::*;
use support::process::*;

/// What the operator must show for one order once it has caught up.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Shown {
    phase: String,
    reason: String,
    current_batch: Option<u32>,
    /// (name, state) of each batch; checked only for orders the operator saw in flight (history
    /// first seen finished is written from the list alone, by design).
    batches: Vec<(String, String)>,
}

fn shown(status: &changeorder_operator::crd::ChangeOrderStatus) -> Shown {
    Shown {
        phase: status.phase.map(|p| p.to_string()).unwrap_or_default(),
        reason: status.reason.clone().unwrap_or_default(),
        current_batch: status.current_batch,
        batches: status
            .batches
            .iter()
            .map(|b| (b.name.clone(), b.state.clone()))
            .collect(),
    }
}

/// What the cloud says now, read the way the operator reads it (list, describe every order,
/// merge), retried until one read has no failure (the faults may still be firing).
async fn cloud_truth(sim: &RunningSim, watch: &ChangeOrderWatch) -> BTreeMap<String, Shown> {
    let target = Target::from_spec(&watch.spec).expect("valid spec");
    let keys = BTreeMap::from([
        (
            "accessKeyId".to_string(),
            sim::DEFAULT_ACCESS_KEY_ID.as_bytes().to_vec(),
        ),
        (
            "accessKeySecret".to_string(),
            sim::DEFAULT_ACCESS_KEY_SECRET.as_bytes().to_vec(),
        ),
    ]);
    let creds = Credentials::from_bytes_map(target.provider, &keys).expect("credentials");
    let client = CloudClient::try_new(ClientConfig::default()).expect("client");
    let _ = sim.url();
    for _ in 0..50 {
        let Ok(fetched) = fetch(
            &client,
            &target,
            &creds,
            |l| l.iter().map(|o| o.id.clone()).collect(),
            &|| false,
        )
        .await
        else {
            continue;
        };
        if fetched.first_failure().is_some() {
            continue;
        }
        let now = jiff::Timestamp::now();
        return fetched
            .listed
            .iter()
            .map(|o| {
                let merged = match fetched.details.get(&o.id) {
                    Some(Detail::Found(d)) => merge(o, (**d).clone()),
                    _ => o.clone(),
                };
                let status = mapping::desired_status(&merged, None, None, now);
                (o.id.clone(), shown(&status))
            })
            .collect();
    }
    panic!("the simulator kept failing the test's own reads");
}

/// Compare the cluster with the cloud: every order once, nothing extra, the same status.
fn differences(
    objects: &[ChangeOrder],
    truth: &BTreeMap<String, Shown>,
    moving: &BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut by_id: BTreeMap<&str, Vec<&ChangeOrder>> = BTreeMap::new();
    for o in objects {
        by_id.entry(o.spec.change_order_id.as_str()).or_default().push(o);
    }
    for (id, want) in truth {
        match by_id.get(id.as_str()).map(Vec::as_slice) {
            None | Some([]) => out.push(format!("{id}: missing")),
            Some([one]) => {
                let Some(status) = one.status.as_ref() else {
                    out.push(format!("{id}: no status"));
                    continue;
                };
                let mut got = shown(status);
                let mut want = want.clone();
                if !moving.contains(id) {
                    got.batches.clear();
                    want.batches.clear();
                    got.current_batch = None;
                    want.current_batch = None;
                }
                if got != want {
                    out.push(format!("{id}: shows {got:?}, cloud says {want:?}"));
                }
            }
            Some(many) => out.push(format!("{id}: {} objects", many.len())),
        }
    }
    for id in by_id.keys() {
        if !truth.contains_key(*id) {
            out.push(format!("{id}: exists but the cloud has no such order"));
        }
    }
    out
}

/// Faults the simulator injected so far: every answer that was not `OK`.
fn faults_injected(sim: &RunningSim) -> u64 {
    sim.stats()
        .products
        .values()
        .flat_map(|actions| actions.values())
        .flat_map(|a| a.outcomes.iter())
        .filter(|(outcome, _)| outcome.as_str() != "OK")
        .map(|(_, n)| *n)
        .sum()
}

fn operator_args(ns: &TestNamespace, admin_port: u16, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--namespaces",
        ns.name(),
        "--admin-listen",
        &format!("127.0.0.1:{admin_port}"),
        "--default-interval",
        "3s",
        "--default-in-flight-interval",
        "2s",
        "--max-error-backoff",
        "4s",
        "--cloud-timeout",
        "2s",
        "--calls-per-minute",
        "100000",
        "--default-max-finished",
        "1000",
        "--allowed-endpoints",
        "http://127.0.0.1:*",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn start_operator(name: &str, dir: &Path, args: &[String]) -> Proc {
    let kubeconfig = support::cluster::TestCluster::get()
        .kubeconfig()
        .display()
        .to_string();
    let env = vec![
        ("KUBECONFIG".to_string(), kubeconfig),
        ("RUST_LOG".to_string(), "info".to_string()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn(name, dir, &env, &args)
}

/// An SAE app whose orders move through batches, confirmation and an end, plus history.
fn moving_scenario(
    prefix: &str,
    base: u64,
    moving: usize,
    history: usize,
    faults: &str,
) -> (String, BTreeSet<String>) {
    let mut orders = String::new();
    let mut ids = BTreeSet::new();
    for i in 0..moving {
        let id = format!("{prefix}-move-{i}");
        let end = if i % 3 == 0 { 3 } else { 2 };
        let t = base + (i as u64 % 5);
        orders.push_str(&format!(
            "      - id: {id}\n        createdAt: {c}s\n        batchCount: 3\n        batchType: manual\n        status: 1\n        currentBatch: 1\n        timeline:\n          - {{ after: {a}s, status: 8, currentBatch: 2, message: \"confirm batch 2\" }}\n          - {{ after: {b}s, status: 1, currentBatch: 2, message: \"deploying batch 2\" }}\n          - {{ after: {d}s, status: 1, currentBatch: 3 }}\n          - {{ after: {e}s, status: {end}, currentBatch: 3, message: \"finished {i}\" }}\n",
            c = i % 4,
            a = t + 8,
            b = t + 20,
            d = t + 32,
            e = t + 44,
        ));
        ids.insert(id);
    }
    for i in 0..history {
        orders.push_str(&format!(
            "      - id: {prefix}-hist-{i}\n        createdAt: -{m}m\n        batchCount: 2\n        status: {s}\n",
            m = 10 + i,
            s = if i % 4 == 0 { 3 } else { 2 }
        ));
    }
    let yaml = format!(
        "timeZone: \"+08:00\"\nseed: 7\n{faults}apps:\n  - provider: sae\n    appId: {prefix}-app\n    changeOrders:\n{orders}"
    );
    (yaml, ids)
}

async fn sae_watch(ns: &TestNamespace, name: &str, sim: &RunningSim, app: &str) -> ChangeOrderWatch {
    access_key_secret(ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(
        ns,
        name,
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": app,
            "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await
}

async fn wait_converged(
    ns: &TestNamespace,
    sim: &RunningSim,
    watch: &ChangeOrderWatch,
    moving: &BTreeSet<String>,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let mut last = Vec::new();
    while started.elapsed() < within {
        let truth = cloud_truth(sim, watch).await;
        let objects = orders(ns).await;
        last = differences(&objects, &truth, moving);
        if last.is_empty() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("not converged after {within:?}: {last:#?}");
}

/// Throttling, 5xx, timeouts and malformed JSON on about 30 % of all calls (list and describe
/// alike) while orders move; after the faults stop, everything converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_faults_lose_nothing_and_converge_after() {
    let ns = namespace("faults-cloud").await;
    let faults = "faults:\n  - { kind: throttling, rate: 0.1, limit: 40, duration: 1s }\n  - { kind: internalError, rate: 0.08, limit: 30 }\n  - { kind: serviceUnavailable, rate: 0.05, limit: 20 }\n  - { kind: malformedJson, rate: 0.05, limit: 20 }\n  - { kind: latency, rate: 0.03, limit: 10, duration: 3s }\n";
    let (yaml, moving) = moving_scenario("fc", 4, 8, 6, faults);
    let sim = start_sim(&yaml).await;
    let watch = sae_watch(&ns, "faulty", &sim, "fc-app").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _op = start_operator("operator", dir.path(), &operator_args(&ns, port, &[]));

    // Let the timelines run out (the last step is at 52 s) under faults.
    tokio::time::sleep(Duration::from_secs(56)).await;
    let injected = faults_injected(&sim);
    let calls = sim.stats().total;
    let took = wait_converged(&ns, &sim, &watch, &moving, Duration::from_secs(60)).await;
    eprintln!(
        "fault suite (cloud): {injected} faults in {calls} calls ({:.0} %); converged {:.1} s after the timelines ended",
        100.0 * injected as f64 / calls.max(1) as f64,
        took.as_secs_f64()
    );
    assert!(
        injected >= 20,
        "only {injected} faults in {calls} calls: the suite tests little"
    );
}

/// kill -9 at random moments during a cold sync of a few hundred orders and while they change,
/// 20 times, restarting each time: no duplicates, nothing lost, all converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    let ns = namespace("faults-kill").await;
    let (yaml, moving) = moving_scenario("fk", 15, 20, 280, "");
    let sim = start_sim(&yaml).await;
    let watch = sae_watch(&ns, "killed", &sim, "fk-app").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let args = operator_args(&ns, free_port(), &[]);
    let mut kills = 0;
    let started = Instant::now();
    while kills < 20 {
        let mut op = start_operator(&format!("operator-{kills}"), dir.path(), &args);
        let wait = Duration::from_millis(300 + rand::random::<u64>() % 1700);
        tokio::time::sleep(wait).await;
        op.child.kill().expect("SIGKILL");
        let _ = op.child.wait();
        kills += 1;
    }
    let killing = started.elapsed();
    let synced_before = orders(&ns).await.len();
    // One last run that is not killed, while the orders finish (last step at 63 s).
    let _op = start_operator("operator-final", dir.path(), &args);
    tokio::time::sleep(Duration::from_secs(66).saturating_sub(started.elapsed())).await;
    let took = wait_converged(&ns, &sim, &watch, &moving, Duration::from_secs(90)).await;
    eprintln!(
        "fault suite (SIGKILL): {kills} kills in {:.1} s ({synced_before} of 300 objects written by then); \
         converged {:.1} s after the timelines ended",
        killing.as_secs_f64(),
        took.as_secs_f64()
    );
}

/// An order with a 2 MiB message, ids that used to make invalid or colliding names, and an id
/// too long to be one sit beside normal orders: the normal ones sync, the odd ones get valid
/// distinct names, the impossible one is reported on the watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_and_oddly_named_orders_do_not_stop_the_others() {
    let ns = namespace("faults-odd").await;
    let huge = "x".repeat(2 << 20);
    let long_id = "y".repeat(mapping::MAX_ORDER_ID_LEN + 10);
    let mut yaml = String::from(
        "timeZone: \"+08:00\"\napps:\n  - provider: sae\n    appId: odd-app\n    changeOrders:\n",
    );
    for (id, status) in [
        ("normal-1", 2),
        ("normal-2", 1),
        ("ABC", 2),
        ("abc", 2),
        ("a_.b", 2),
        ("v1..2", 2),
    ] {
        yaml.push_str(&format!(
            "      - {{ id: \"{id}\", status: {status}, batchCount: 1 }}\n"
        ));
    }
    yaml.push_str(&format!(
        "      - {{ id: \"huge\", status: 1, batchCount: 1, message: \"{huge}\" }}\n"
    ));
    yaml.push_str(&format!(
        "      - {{ id: \"{long_id}\", status: 2, batchCount: 1 }}\n"
    ));
    let sim = start_sim(&yaml).await;
    let watch = sae_watch(&ns, "odd", &sim, "odd-app").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _op = start_operator("operator", dir.path(), &operator_args(&ns, free_port(), &[]));

    let want: BTreeSet<&str> = ["normal-1", "normal-2", "ABC", "abc", "a_.b", "v1..2", "huge"].into();
    let objects = eventually("every writable order synced", Duration::from_secs(60), || async {
        let all = orders(&ns).await;
        let ids: BTreeSet<&str> = all
            .iter()
            .map(|o| o.spec.change_order_id.as_str())
            .collect::<BTreeSet<_>>();
        (want.iter().all(|w| ids.contains(w)) && all.iter().all(|o| o.status.is_some()))
            .then_some(all.clone())
    })
    .await;
    assert_eq!(
        objects.len(),
        want.len(),
        "one object per order, the long id refused"
    );
    let names: BTreeSet<String> = objects.iter().filter_map(|o| o.metadata.name.clone()).collect();
    assert_eq!(names.len(), objects.len(), "distinct names: {names:?}");
    let huge_obj = objects
        .iter()
        .find(|o| o.spec.change_order_id == "huge")
        .expect("huge order");
    let message = huge_obj
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .expect("Ready");
    assert!(
        message.len() <= mapping::MAX_TEXT_LEN && message.ends_with('…'),
        "{}",
        message.len()
    );

    // The refused one is reported: the watch's condition and an Event, without stopping polls.
    let w = eventually(
        "the watch reports the refused order",
        Duration::from_secs(30),
        || async {
            let w = ns.api::<ChangeOrderWatch>().get("odd").await.ok()?;
            let ready = w
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (ready.status == "False"
                && ready.reason == "OrderWriteFailed"
                && ready.message.contains("over the limit"))
            .then_some(w)
        },
    )
    .await;
    assert_eq!(
        w.status.as_ref().and_then(|s| s.orders.as_ref()).map(|c| c.total),
        Some(7)
    );
    eventually(
        "an Event names the refused order",
        Duration::from_secs(30),
        || async {
            event_reasons(&ns, "odd")
                .contains("OrderWriteFailed")
                .then_some(())
        },
    )
    .await;
    let _ = watch;
}
