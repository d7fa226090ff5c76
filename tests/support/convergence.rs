//! Convergence checks shared by the fault tests: what the cloud says, read the way the operator
//! reads it, compared with the objects in the cluster; and the operator binary started for them.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use changeorder_cloud::client::{CloudClient, merge};
use changeorder_cloud::credentials::Credentials;
use changeorder_cloud::http::ClientConfig;
use changeorder_operator::controller::fetch::{Detail, Listing, fetch};
use changeorder_operator::crd::{ChangeOrder, ChangeOrderWatch};
use changeorder_operator::mapping;
use changeorder_sim::{self as sim, RunningSim};

use super::cluster::{TestCluster, TestNamespace};
use super::operator::*;
use super::process::*;

/// What the operator must show for one order once it has caught up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    phase: String,
    reason: String,
    current_batch: Option<u32>,
    /// (name, state) of each batch; checked only for orders the operator saw in flight (history
    /// first seen finished is written from the list alone, by design).
    batches: Vec<(String, String)>,
}

pub fn shown(status: &changeorder_operator::crd::ChangeOrderStatus) -> Shown {
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
pub async fn cloud_truth(sim: &RunningSim, watch: &ChangeOrderWatch) -> BTreeMap<String, Shown> {
    let target = watch.spec.target().expect("valid spec");
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
            Listing::Cloud,
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
pub fn differences(
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
pub fn faults_injected(sim: &RunningSim) -> u64 {
    sim.stats()
        .products
        .values()
        .flat_map(|actions| actions.values())
        .flat_map(|a| a.outcomes.iter())
        .filter(|(outcome, _)| outcome.as_str() != "OK")
        .map(|(_, n)| *n)
        .sum()
}

pub fn operator_args(ns: &TestNamespace, admin_port: u16, extra: &[&str]) -> Vec<String> {
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

pub fn start_operator(name: &str, dir: &Path, args: &[String]) -> Proc {
    start_operator_on(TestCluster::get(), name, dir, args)
}

/// [`start_operator`] against `cluster` (e.g. an isolated one).
pub fn start_operator_on(cluster: &TestCluster, name: &str, dir: &Path, args: &[String]) -> Proc {
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let env = vec![
        ("KUBECONFIG".to_string(), kubeconfig),
        ("RUST_LOG".to_string(), "info".to_string()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::spawn(name, dir, &env, &args)
}

/// An SAE app whose orders move through batches, confirmation and an end, plus history.
pub fn moving_scenario(
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

pub async fn sae_watch(ns: &TestNamespace, name: &str, sim: &RunningSim, app: &str) -> ChangeOrderWatch {
    access_key_secret(ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(
        ns,
        name,
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": app,
            "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await
}

pub async fn wait_converged(
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
