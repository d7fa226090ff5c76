//! Orders moving over (scaled) time, orders appearing later, and the call counters.

use crate::sim_support;

use std::time::Duration;

use changeorder_sim::StatsSnapshot;
use serde_json::Value;
use sim_support::{Call, TOKEN, appstack, client, from_yaml};

/// 25x: steps 20s apart happen 0.8s apart in real time, room enough for a busy CI machine
/// (0.4s was not, with the other integration tests running in the same process).
const PROGRESS: &str = "timeScale: 25
apps:
- provider: edas
  appId: e
  changeOrders:
  - id: rollout
    createdAt: 0s
    batchCount: 2
    batchType: manual
    status: 0
    timeline:
    - {after: 20s, status: 1, currentBatch: 1}
    - {after: 40s, status: 8, currentBatch: 2}
    - {after: 60s, status: 1}
    - {after: 80s, status: 2}
  - id: newcomer
    createdAt: 50s
    status: 1
- provider: sae
  appId: s
  changeOrders:
  - id: approval
    createdAt: 0s
    status: 11
    timeline:
    - {after: 20s, status: 12}
    - {after: 40s, status: 1, subStatus: 1, message: trouble}
- provider: appstack
  organizationId: o
  appName: a
  changeOrders:
  - id: deploy
    createdAt: 0s
    envNames: [dev, prod]
    status: RUNNING
    timeline:
    - {after: 30s, currentBatch: 2}
    - {after: 60s, status: SUCCESS}
";

async fn edas_status(sim: &changeorder_sim::RunningSim, id: &str) -> Value {
    Call::edas_info(id).send(sim).await.json["changeOrderInfo"]["Status"].clone()
}

#[tokio::test]
async fn orders_progress_with_time_scale() {
    let sim = from_yaml(PROGRESS).await;
    let mut seen = Vec::new();
    // Poll until the order finishes (3.2s of real time), collecting distinct statuses.
    for _ in 0..600 {
        let s = edas_status(&sim, "rollout").await;
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        if s == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert_eq!(
        seen,
        [
            Value::from(0),
            Value::from(1),
            Value::from(8),
            Value::from(1),
            Value::from(2)
        ]
    );
    let info = Call::edas_info("rollout").send(&sim).await;
    let pipes = &info.json["changeOrderInfo"]["PipelineInfoList"]["PipelineInfo"];
    let start1: i64 = pipes[0]["StartTime"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("start 1");
    let start2: i64 = pipes[1]["StartTime"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("start 2");
    assert!(start2 > start1, "batch 2 started after batch 1");
    let list = Call::edas_list("e").send(&sim).await;
    let items = list.json["ChangeOrderList"]["ChangeOrder"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), 2, "the newcomer appeared");
    assert_eq!(items[0]["ChangeOrderId"], "newcomer");
    assert!(
        items
            .iter()
            .any(|o| o["ChangeOrderId"] == "rollout" && o["FinishTime"].is_string())
    );

    let sae = Call::sae("DescribeChangeOrder", &[("ChangeOrderId", "approval")])
        .send(&sim)
        .await;
    assert_eq!(
        (
            sae.json["Data"]["Status"].clone(),
            sae.json["Data"]["SubStatus"].clone()
        ),
        (Value::from(1), Value::from(1))
    );
    assert_eq!(sae.json["Data"]["ErrorMessage"], "trouble");
    let a = appstack(
        &sim,
        "/oapi/v1/appstack/organizations/o/apps/a/changeOrders/deploy",
        Some(TOKEN),
    )
    .await;
    assert_eq!(a.json["state"], "SUCCESS");
    assert!(a.json["jobs"][1]["startedAt"].is_string());
}

#[tokio::test]
async fn stats_endpoint_counts_calls_and_resets() {
    let sim = from_yaml(PROGRESS).await;
    Call::edas_list("e").send(&sim).await;
    Call::edas_info("rollout").send(&sim).await;
    Call::edas_info("rollout").send(&sim).await;
    Call::sae("ListChangeOrders", &[("AppId", "s")]).send(&sim).await;
    appstack(
        &sim,
        "/oapi/v1/appstack/organizations/o/apps/a/changeOrders/versions",
        Some(TOKEN),
    )
    .await;
    let mut bad = Call::edas_list("e");
    bad.secret = "nope".into();
    bad.send(&sim).await;

    let s = sim.stats();
    assert_eq!(s.calls("edas", "ListRecentChangeOrder"), 2);
    assert_eq!(s.calls("edas", "GetChangeOrderInfo"), 2);
    assert_eq!(s.product_calls("edas"), 4);
    assert_eq!(s.calls("sae", "ListChangeOrders"), 1);
    assert_eq!(s.calls("appstack", "ListChangeOrderVersions"), 1);
    assert_eq!(
        s.outcome("edas", "ListRecentChangeOrder", "SignatureDoesNotMatch"),
        1
    );
    assert_eq!(s.total, 6);

    let http: StatsSnapshot = client()
        .get(format!("{}/__sim/stats", sim.url()))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(http, s);
    let r = client()
        .delete(format!("{}/__sim/stats", sim.url()))
        .send()
        .await
        .expect("reset");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(sim.stats().total, 0);
    let yaml = client()
        .get(format!("{}/__sim/scenario", sim.url()))
        .send()
        .await
        .expect("scenario");
    let text = yaml.text().await.expect("text");
    assert!(text.contains("timeScale: 25"), "{text}");
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let sim = from_yaml(PROGRESS).await;
    let url = sim.url();
    sim.shutdown().await.expect("clean shutdown");
    assert!(client().get(format!("{url}/__sim/stats")).send().await.is_err());
}
