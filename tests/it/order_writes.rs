//! How ChangeOrders are written: a new order is created and then given its status (two
//! requests, as client-go writes it: create, then status update), a stored one gets merge
//! patches of what differs. Counted by the API server itself, on a cluster of its own.

use crate::support;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use support::cluster::{TestCluster, eventually};
use support::operator::*;

const SETTLE: Duration = Duration::from_secs(60);

/// Requests the API server served on ChangeOrders, by "VERB resource[/subresource]".
async fn order_requests(client: &kube::Client) -> std::collections::BTreeMap<String, u64> {
    let req = http::Request::get("/metrics").body(Vec::new()).expect("request");
    let text = client.request_text(req).await.expect("apiserver /metrics");
    let label = |line: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        line.split(&key)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    let mut out = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        if label(line, "resource") != "changeorders" {
            continue;
        }
        let verb = label(line, "verb");
        if verb == "WATCH" || verb == "LIST" {
            continue;
        }
        let sub = label(line, "subresource");
        let key = if sub.is_empty() {
            format!("{verb} changeorders")
        } else {
            format!("{verb} changeorders/{sub}")
        };
        let n = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<f64>().ok())
            .unwrap_or(0.0);
        *out.entry(key).or_default() += n as u64;
    }
    out
}

fn minus(
    after: &std::collections::BTreeMap<String, u64>,
    before: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

const TWENTY: &str = r#"
apps:
  - provider: sae
    appId: writes-app
    changeOrders:
      - { id: w-live, createdAt: -1m, status: 1, batchCount: 2, currentBatch: 1 }
      - { id: w-2, createdAt: -2h, status: 2 }
      - { id: w-3, createdAt: -3h, status: 2 }
      - { id: w-4, createdAt: -4h, status: 3 }
      - { id: w-5, createdAt: -5h, status: 2 }
"#;

/// A cold sync costs the API server what client-go's create-then-status costs: one POST and
/// one status PUT per order, no server-side apply (which costs it several times the CPU).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_order_is_one_create_and_one_status_write() {
    let ns = namespace_in(TestCluster::isolated("writes"), "writes").await;
    let sim = start_sim(TWENTY).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let before = order_requests(&ns.client()).await;
    create_watch(
        &ns,
        "app",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "writes-app",
            "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    eventually("five orders with a phase", SETTLE, || async {
        let all = orders(&ns).await;
        (all.len() == 5 && all.iter().all(|o| phase(o).is_some())).then_some(())
    })
    .await;
    // Two polls more: nothing to write.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let spent = minus(&order_requests(&ns.client()).await, &before);
    op.stop().await;
    assert_eq!(
        spent,
        [
            ("POST changeorders".to_string(), 5),
            ("PUT changeorders/status".to_string(), 5)
        ]
        .into_iter()
        .collect(),
        "requests on ChangeOrders during the sync"
    );
}

const MOVING: &str = r#"
apps:
  - provider: sae
    appId: moving-app
    changeOrders:
      - { id: m-1, createdAt: -1m, status: 1, batchCount: 2, currentBatch: 1,
          timeline: [ { after: 12s, status: 2, currentBatch: 2 } ] }
"#;

/// The operator's status is its own: a field it no longer writes (left by an older operator's
/// apply or by a hand edit) is removed with its next write, while labels and annotations that
/// others put on the object stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_removes_stale_status_fields_and_keeps_others_metadata() {
    let ns = namespace("stale").await;
    let sim = start_sim(MOVING).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(
        &ns,
        "app",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "moving-app",
            "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let running = eventually("the order running", SETTLE, || async {
        order(&ns, "m-1")
            .await
            .filter(|o| phase(o).as_deref() == Some("Running"))
    })
    .await;
    op.stop().await;
    let name = running.metadata.name.clone().expect("name");
    let api: Api<changeorder_operator::crd::ChangeOrder> = ns.api();
    // An older operator applied a status field this one never writes for SAE ...
    api.patch_status(
        &name,
        &PatchParams::apply("changeorder-operator").force(),
        &Patch::Apply(serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrder",
            "status": {"providerSubStatus": 99}
        })),
    )
    .await
    .expect("older operator's apply");
    // ... someone edited another in by hand, and a GitOps tool labelled and annotated it.
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"reason": "HandEdited"}})),
    )
    .await
    .expect("hand edit");
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {
            "labels": {"team": "payments"}, "annotations": {"example.com/tracked": "yes"}}})),
    )
    .await
    .expect("label");

    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let done = eventually("the order succeeded", SETTLE, || async {
        order(&ns, "m-1")
            .await
            .filter(|o| phase(o).as_deref() == Some("Succeeded"))
    })
    .await;
    op.stop().await;
    let status = done.status.clone().expect("status");
    assert_ne!(
        status.provider_sub_status,
        Some(99),
        "stale field removed: {status:?}"
    );
    assert_eq!(status.reason.as_deref(), Some("Succeeded"));
    let labels = done.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("payments"));
    assert!(
        labels.contains_key("changeorder.io/watch"),
        "own labels kept: {labels:?}"
    );
    let annotations = done.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("example.com/tracked").map(String::as_str),
        Some("yes")
    );
}
