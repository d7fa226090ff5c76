//! "A quiet poll writes nothing", counted the strict way: the API server's own request
//! counters, over several polls of in-flight orders on every provider. Its own cluster, so no
//! other test's writes reach the same counters.

use crate::support;

use std::time::Duration;

use support::cluster::{TestCluster, eventually};
use support::operator::*;

const SETTLE: Duration = Duration::from_secs(60);

const STILL: &str = r#"
timeZone: "+08:00"
apps:
  - provider: edas
    appId: still-edas
    changeOrders:
      - { id: se-1, createdAt: -5m, status: 1, batchCount: 3, currentBatch: 2, message: "deploying batch 2" }
      - { id: se-2, createdAt: -9m, status: 8, batchCount: 2, currentBatch: 1 }
  - provider: sae
    appId: still-sae
    changeOrders:
      - { id: ss-1, createdAt: -5m, status: 1, batchCount: 2, currentBatch: 1 }
      - { id: ss-2, createdAt: -9m, status: 11 }
  - provider: appstack
    organizationId: still-org
    appName: still-app
    changeOrders:
      - { id: "701", createdAt: -5m, status: RUNNING, envNames: [dev, prod], currentBatch: 1 }
"#;

/// Write requests (POST, PUT, PATCH, APPLY, DELETE) the API server served on our kinds and
/// Events, read from its own `/metrics`: a no-op PATCH is still a request. Server-side apply is
/// counted under its own verb, APPLY, not PATCH.
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
            ["POST", "PUT", "PATCH", "APPLY", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// In-flight orders on every provider whose cloud state does not change: after the first sync,
/// several polls send no write request at all (counted by the API server, not by
/// resourceVersions). Cloud times with milliseconds used to make every in-flight order a PATCH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_polls_of_in_flight_orders_send_no_write_request() {
    let ns = namespace_in(TestCluster::isolated("quiet"), "still").await;
    let sim = start_sim(STILL).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_secret(&ns, "token", &[("token", changeorder_sim::DEFAULT_YUNXIAO_TOKEN)]).await;
    create_watch(
        &ns,
        "edas",
        serde_json::json!({"provider": "edas", "endpoint": sim.url(), "appId": "still-edas",
        "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    create_watch(
        &ns,
        "sae",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "still-sae",
        "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    create_watch(
        &ns,
        "appstack",
        serde_json::json!({"provider": "appstack", "endpoint": sim.url(),
        "organizationId": "still-org", "appName": "still-app", "credentialsSecretRef": {"name": "token"}}),
    )
    .await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    eventually("all five orders written", SETTLE, || async {
        let all = orders(&ns).await;
        (all.len() == 5 && all.iter().all(|o| o.status.is_some())).then_some(())
    })
    .await;
    // Let the first polls' status writes and Events settle.
    tokio::time::sleep(Duration::from_secs(4)).await;
    // This cluster has this one test, so the API server's counters are ours alone.
    let client = ns.client();
    let before = write_requests(&client).await;
    let lists_before = op.calls.count("ListChangeOrders") + op.calls.count("ListRecentChangeOrder");
    let versions_before = versions(&ns).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let polls = op.calls.count("ListChangeOrders") + op.calls.count("ListRecentChangeOrder") - lists_before;
    let writes = write_requests(&client).await - before;
    let describes = op.calls.count("DescribeChangeOrder") + op.calls.count("GetChangeOrderInfo");
    eprintln!(
        "quiet in flight: {polls} EDAS/SAE polls in 8 s, {writes} write requests, {describes} describes in all"
    );
    assert!(polls >= 4, "the watches kept polling ({polls})");
    assert_eq!(versions(&ns).await, versions_before);
    assert_eq!(
        writes, 0,
        "{polls} polls of unchanged in-flight orders sent {writes} write requests"
    );
}
