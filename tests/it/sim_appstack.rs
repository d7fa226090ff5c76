//! AppStack over real HTTP: token, versions paging and filters, one order, by origin, both
//! editions' paths, errors.

use crate::sim_support;

use serde_json::Value;
use sim_support::{TOKEN, appstack, demo};

const BASE: &str = "/oapi/v1/appstack/organizations/demo-org/apps/demo-app/changeOrders";

fn sns(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["changeOrderSummarys"][0]["sn"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn token_is_required() {
    let sim = demo().await;
    let r = appstack(&sim, &format!("{BASE}/versions"), None).await;
    assert_eq!((r.status, r.code()), (401, "Unauthorized".to_string()));
    let r = appstack(&sim, &format!("{BASE}/versions"), Some("wrong")).await;
    assert_eq!((r.status, r.code()), (401, "InvalidTokenError".to_string()));
    assert!(r.json["errorMessage"].is_string());
    assert_eq!(
        sim.stats()
            .outcome("appstack", "ListChangeOrderVersions", "InvalidTokenError"),
        1
    );
}

#[tokio::test]
async fn versions_page_and_shape() {
    let sim = demo().await;
    let r = appstack(&sim, &format!("{BASE}/versions"), Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json["total"].clone(), r.json["current"].clone()),
        (Value::from(11), Value::from(1))
    );
    assert_eq!(
        (r.json["pageSize"].clone(), r.json["pages"].clone()),
        (Value::from(10), Value::from(2))
    );
    assert_eq!(sns(&r.json).len(), 10);
    assert_eq!(sns(&r.json)[0], "as-rollout", "newest first");
    let rec = &r.json["records"][0];
    for field in [
        "version",
        "appOrchestration",
        "artifacts",
        "changeOrderSummarys",
        "creator",
        "gmtCreate",
        "envs",
    ] {
        assert!(rec.get(field).is_some(), "{field}");
    }
    let summary = &rec["changeOrderSummarys"][0];
    assert_eq!(
        (summary["state"].clone(), summary["type"].clone()),
        (Value::from("INIT"), Value::from("Deploy"))
    );
    assert!(summary["name"].is_string());
    let created = rec["gmtCreate"].as_str().unwrap_or("");
    assert!(
        created.ends_with("+00:00") && created.contains('T') && created.contains('.'),
        "{created}"
    );
    assert_eq!(rec["envs"][1]["name"], "prod");

    let r = appstack(
        &sim,
        &format!("{BASE}/versions?current=2&pageSize=10"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(sns(&r.json), ["as-unknown"]);
    let r = appstack(&sim, &format!("{BASE}/versions?current=0"), Some(TOKEN)).await;
    assert_eq!((r.status, r.code()), (400, "BadRequest".to_string()));
}

#[tokio::test]
async fn versions_filters() {
    let sim = demo().await;
    let r = appstack(
        &sim,
        &format!("{BASE}/versions?states=SUCCESS,FAILED,CANCELED&pageSize=50"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(sns(&r.json), ["as-success", "as-failed", "as-canceled"]);
    let r = appstack(
        &sim,
        &format!("{BASE}/versions?envNames=test&pageSize=50"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(sns(&r.json), ["as-running", "as-stopping", "as-canceled"]);
    let r = appstack(
        &sim,
        &format!("{BASE}/versions?envNames=prod&states=SUSPENDED"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(sns(&r.json), ["as-suspended"]);
    let r = appstack(&sim, &format!("{BASE}/versions?creators=dave"), Some(TOKEN)).await;
    assert_eq!(sns(&r.json), ["as-rollout"]);
}

#[tokio::test]
async fn get_change_order() {
    let sim = demo().await;
    let r = appstack(&sim, &format!("{BASE}/as-suspended"), Some(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let o = &r.json;
    assert_eq!(o["sn"], "as-suspended");
    assert_eq!(o["state"], "SUSPENDED");
    let jobs = o["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        (jobs[0]["envName"].clone(), jobs[0]["state"].clone()),
        (Value::from("dev"), Value::from("SUCCESS"))
    );
    assert_eq!(
        (jobs[1]["envName"].clone(), jobs[1]["state"].clone()),
        (Value::from("prod"), Value::from("SUSPENDED"))
    );
    assert_eq!(jobs[1]["message"], "Paused before production");
    assert!(jobs[0]["stages"][0]["tasks"].is_array());
    assert!(o["endedAt"].is_null());
    let r = appstack(&sim, &format!("{BASE}/as-failed"), Some(TOKEN)).await;
    assert!(r.json["endedAt"].as_str().is_some_and(|t| t.ends_with("+00:00")));
    let r = appstack(&sim, &format!("{BASE}/nope"), Some(TOKEN)).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn region_edition_paths_and_unknowns() {
    let sim = demo().await;
    let r = appstack(
        &sim,
        "/oapi/v1/appstack/apps/demo-app/changeOrders/versions",
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.json["total"], 11);
    let r = appstack(
        &sim,
        "/oapi/v1/appstack/apps/demo-app/changeOrders/as-running",
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.json["state"], "RUNNING");
    let r = appstack(
        &sim,
        "/oapi/v1/appstack/organizations/other-org/apps/demo-app/changeOrders/versions",
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = appstack(
        &sim,
        "/oapi/v1/appstack/organizations/demo-org/apps/nope/changeOrders/versions",
        Some(TOKEN),
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "NotFound".to_string()));
}

#[tokio::test]
async fn by_origin() {
    let sim = demo().await;
    let path = "/oapi/v1/appstack/organizations/demo-org/changeOrders:byOrigin";
    let r = appstack(
        &sim,
        &format!("{path}?originType=FLOW&originId=demo-pipeline-run-7"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sim_support::ids(&r.json, "sn"), ["as-rollout"]);
    let r = appstack(
        &sim,
        &format!("{path}?originType=FLOW&originId=demo-pipeline-run-6&appName=demo-app&envName=prod"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(sim_support::ids(&r.json, "sn"), ["as-success"]);
    let r = appstack(
        &sim,
        &format!("{path}?originType=FLOW&originId=demo-pipeline-run-6&envName=test"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(r.json, Value::Array(vec![]));
    let r = appstack(&sim, &format!("{path}?originType=FLOW"), Some(TOKEN)).await;
    assert_eq!((r.status, r.code()), (400, "BadRequest".to_string()));
    let r = appstack(
        &sim,
        "/oapi/v1/appstack/changeOrders:byOrigin?originType=FLOW&originId=demo-pipeline-run-7",
        Some(TOKEN),
    )
    .await;
    assert_eq!(sim_support::ids(&r.json, "sn"), ["as-rollout"]);
    assert_eq!(sim.calls("appstack", "ListChangeOrdersByOrigin"), 5);
}
