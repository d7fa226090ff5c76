//! EDAS over real HTTP: both operations, both signing schemes, shapes, wrappers, errors.

use crate::sim_support;

use changeorder_cloud::sign::Scheme;
use serde_json::Value;
use sim_support::{Call, demo, from_yaml, ids};

fn zoneless(s: &Value) -> bool {
    let s = s.as_str().unwrap_or("");
    s.len() == 19 && s.as_bytes()[10] == b' ' && s.as_bytes()[4] == b'-' && s.as_bytes()[13] == b':'
}

#[tokio::test]
async fn list_recent_change_order_in_both_schemes() {
    let sim = demo().await;
    for scheme in [Scheme::V3, Scheme::Roa] {
        let r = Call::edas_list("demo-edas-app").scheme(scheme).send(&sim).await;
        assert_eq!(r.status, 200, "{scheme:?}: {}", r.text);
        assert_eq!(r.json["Code"], 200, "integer Code");
        assert_eq!(r.json["Message"], "success");
        assert!(r.json["RequestId"].is_string());
        let orders = &r.json["ChangeOrderList"]["ChangeOrder"];
        let got = ids(orders, "ChangeOrderId");
        // The order created 30s after start is not there yet.
        assert!(!got.contains(&"demo-edas-late".to_string()));
        assert_eq!(got.len(), 11, "{got:?}");
        assert_eq!(got[0], "demo-edas-rollout", "newest first");
        let ok = orders
            .as_array()
            .and_then(|a| a.iter().find(|o| o["ChangeOrderId"] == "demo-edas-succeeded"))
            .expect("succeeded order");
        for field in [
            "AppId",
            "BatchCount",
            "BatchType",
            "ChangeOrderDescription",
            "ChangeOrderId",
            "CoType",
            "CoTypeCode",
            "CreateTime",
            "CreateUserId",
            "FinishTime",
            "GroupId",
            "Source",
            "Status",
            "UserId",
        ] {
            assert!(ok.get(field).is_some(), "{field} missing in {ok}");
        }
        assert_eq!(ok["Status"], 2);
        assert_eq!(ok["BatchType"], "Automatic");
        assert_eq!(ok["CoTypeCode"], "CoDeploy");
        assert_eq!(ok["CoType"], "Deploy Application");
        assert!(zoneless(&ok["CreateTime"]) && zoneless(&ok["FinishTime"]), "{ok}");
        // Statuses as the scenario says, including one no table knows.
        let status = |id: &str| {
            orders
                .as_array()
                .and_then(|a| a.iter().find(|o| o["ChangeOrderId"] == id))
                .map(|o| o["Status"].clone())
        };
        assert_eq!(status("demo-edas-unknown"), Some(Value::from(42)));
        assert_eq!(status("demo-edas-awaiting-confirmation"), Some(Value::from(8)));
        assert_eq!(status("demo-edas-partially-succeeded"), Some(Value::from(7)));
    }
    assert_eq!(sim.calls("edas", "ListRecentChangeOrder"), 2);
}

#[tokio::test]
async fn get_change_order_info_shape() {
    let sim = demo().await;
    let r = Call::edas_info("demo-edas-awaiting-confirmation")
        .send(&sim)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let info = &r.json["changeOrderInfo"];
    assert!(r.json.get("ChangeOrderInfo").is_none(), "lower-case c");
    for field in [
        "Status",
        "ChangeOrderId",
        "BatchType",
        "CoType",
        "CreateTime",
        "ChangeOrderDescription",
        "BatchCount",
        "CreateUserId",
        "SupportRollback",
        "Desc",
        "Targets",
        "TrafficControl",
        "PipelineInfoList",
    ] {
        assert!(info.get(field).is_some(), "{field} missing");
    }
    assert_eq!(info["Status"], 8);
    assert_eq!(info["BatchType"], "Manual");
    let pipes = info["PipelineInfoList"]["PipelineInfo"]
        .as_array()
        .expect("pipelines");
    assert_eq!(pipes.len(), 3);
    let states: Vec<&Value> = pipes.iter().map(|p| &p["PipelineStatus"]).collect();
    assert_eq!(states, [&Value::from(2), &Value::from(8), &Value::from(0)]);
    // Epoch-millisecond strings for times; none for a batch that has not started.
    let start = pipes[0]["StartTime"].as_str().expect("string time");
    assert!(
        start.len() == 13 && start.bytes().all(|b| b.is_ascii_digit()),
        "{start}"
    );
    assert!(pipes[2].get("StartTime").is_none());
    let stage = &pipes[0]["StageList"]["StageInfoDTO"][0];
    assert!(stage["StageId"].is_string() && stage["Status"] == 2);
    let task = &pipes[1]["StageDetailList"]["StageDetailDTO"][1]["TaskList"]["TaskInfoDTO"][0];
    assert!(task["TaskStatus"].is_string(), "TaskStatus is a string: {task}");
    assert_eq!(task["TaskMessage"], "Batch 1 done; confirm to release batch 2");
    assert_eq!(info["Targets"]["Items"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn failed_task_carries_error() {
    let sim = demo().await;
    let r = Call::edas_info("demo-edas-failed").roa().send(&sim).await;
    let pipes = &r.json["changeOrderInfo"]["PipelineInfoList"]["PipelineInfo"];
    assert_eq!(pipes[0]["PipelineStatus"], 3);
    assert_eq!(pipes[1]["PipelineStatus"], 0);
    let task = &pipes[0]["StageDetailList"]["StageDetailDTO"][1]["TaskList"]["TaskInfoDTO"][0];
    assert_eq!(
        task["TaskErrorMessage"],
        "Application failed to start: port 8080 already in use"
    );
    assert_eq!(task["TaskErrorCode"], "DeployFailed");
}

#[tokio::test]
async fn single_object_wrappers() {
    let sim = demo().await;
    let r = Call::edas_list("demo-edas-single").send(&sim).await;
    let one = &r.json["ChangeOrderList"]["ChangeOrder"];
    assert!(one.is_object(), "single object, not array: {one}");
    assert_eq!(one["ChangeOrderId"], "demo-edas-single-succeeded");
    let r = Call::edas_info("demo-edas-single-succeeded").send(&sim).await;
    let pipe = &r.json["changeOrderInfo"]["PipelineInfoList"]["PipelineInfo"];
    assert!(pipe.is_object(), "{pipe}");
    assert!(
        pipe["StageList"]["StageInfoDTO"].is_array(),
        "two stages stay an array"
    );
    assert!(pipe["StageDetailList"]["StageDetailDTO"][0]["TaskList"]["TaskInfoDTO"].is_object());

    // An app with no orders: the wrapper is left out.
    let empty = from_yaml("apps:\n- provider: edas\n  appId: empty\n  edasWrappers: singleObject\n").await;
    let r = Call::edas_list("empty").send(&empty).await;
    assert_eq!(r.status, 200);
    assert!(r.json.get("ChangeOrderList").is_none(), "{}", r.text);
    let sim2 = from_yaml("apps:\n- provider: edas\n  appId: empty\n").await;
    let r = Call::edas_list("empty").send(&sim2).await;
    assert_eq!(r.json["ChangeOrderList"]["ChangeOrder"], Value::Array(vec![]));
}

#[tokio::test]
async fn errors() {
    let sim = demo().await;
    let r = Call::edas_list("no-such-app").send(&sim).await;
    assert_eq!((r.status, r.code()), (404, "InvalidAppId.NotFound".to_string()));
    for field in ["RequestId", "HostId", "Code", "Message", "Recommend"] {
        assert!(r.json.get(field).is_some(), "{field} in error body {}", r.text);
    }
    let r = Call::edas_info("no-such-order").send(&sim).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "InvalidChangeOrder.NotFound".to_string())
    );
    // An order that exists only later is not found yet either.
    let r = Call::edas_info("demo-edas-late").send(&sim).await;
    assert_eq!(r.code(), "InvalidChangeOrder.NotFound");
    let mut c = Call::edas_list("x");
    c.query.clear();
    let r = c.send(&sim).await;
    assert_eq!((r.status, r.code()), (400, "MissingAppId".to_string()));
    // An SAE order is not an EDAS order.
    let r = Call::edas_info("demo-sae-failed").send(&sim).await;
    assert_eq!(r.code(), "InvalidChangeOrder.NotFound");
    let s = sim.stats();
    assert_eq!(
        s.outcome("edas", "GetChangeOrderInfo", "InvalidChangeOrder.NotFound"),
        3
    );
}
