//! SAE over real HTTP: paging, filters, describe, pipelines, namespaces, envelope errors.

use crate::sim_support;

use changeorder_cloud::sign::Scheme;
use serde_json::Value;
use sim_support::{Call, demo, from_yaml, ids};

const ALL_SAE: usize = 14;

#[tokio::test]
async fn list_change_orders_pages_until_total() {
    let sim = demo().await;
    for scheme in [Scheme::V3, Scheme::Roa] {
        let mut seen = Vec::new();
        let mut page = 1;
        loop {
            let p = page.to_string();
            let r = Call::sae(
                "ListChangeOrders",
                &[("AppId", "demo-sae-app"), ("CurrentPage", &p), ("PageSize", "4")],
            )
            .scheme(scheme)
            .send(&sim)
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.json["Success"], true);
            assert_eq!(r.json["Code"], "200", "string Code");
            for field in ["RequestId", "Message", "ErrorCode", "TraceId"] {
                assert!(r.json.get(field).is_some(), "{field}");
            }
            let data = &r.json["Data"];
            assert_eq!(data["CurrentPage"], page);
            assert_eq!(data["PageSize"], 4);
            assert_eq!(data["TotalSize"], ALL_SAE);
            let items = ids(&data["ChangeOrderList"], "ChangeOrderId");
            seen.extend(items.clone());
            if items.is_empty() || page * 4 >= ALL_SAE {
                break;
            }
            page += 1;
        }
        assert_eq!(page, 4);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), ALL_SAE);
    }
    // Past the end: an empty page, same total.
    let r = Call::sae(
        "ListChangeOrders",
        &[("AppId", "demo-sae-app"), ("CurrentPage", "9"), ("PageSize", "4")],
    )
    .send(&sim)
    .await;
    assert_eq!(r.json["Data"]["ChangeOrderList"], Value::Array(vec![]));
    assert_eq!(r.json["Data"]["TotalSize"], ALL_SAE);
    // Default page size is 10.
    let r = Call::sae("ListChangeOrders", &[("AppId", "demo-sae-app")])
        .send(&sim)
        .await;
    assert_eq!(r.json["Data"]["PageSize"], 10);
    assert_eq!(
        r.json["Data"]["ChangeOrderList"].as_array().map(Vec::len),
        Some(10)
    );
    let first = &r.json["Data"]["ChangeOrderList"][0];
    for field in [
        "AppId",
        "BatchCount",
        "BatchType",
        "ChangeOrderId",
        "CoType",
        "CoTypeCode",
        "CreateTime",
        "CreateUserId",
        "Description",
        "GroupId",
        "Source",
        "Status",
        "UserId",
    ] {
        assert!(first.get(field).is_some(), "{field} in {first}");
    }
    assert_eq!(first["BatchType"], "auto", "lower-case in SAE");
}

#[tokio::test]
async fn list_filters() {
    let sim = demo().await;
    let r = Call::sae(
        "ListChangeOrders",
        &[("AppId", "demo-sae-app"), ("CoStatus", "11"), ("PageSize", "50")],
    )
    .send(&sim)
    .await;
    let mut got = ids(&r.json["Data"]["ChangeOrderList"], "ChangeOrderId");
    got.sort();
    assert_eq!(got, ["demo-sae-approval", "demo-sae-pending-approval"]);
    let r = Call::sae(
        "ListChangeOrders",
        &[("AppId", "demo-sae-app"), ("CoType", "CoStop")],
    )
    .send(&sim)
    .await;
    assert_eq!(
        ids(&r.json["Data"]["ChangeOrderList"], "ChangeOrderId"),
        ["demo-sae-terminated"]
    );
    let r = Call::sae(
        "ListChangeOrders",
        &[("AppId", "demo-sae-app"), ("Key", "Release 2.0")],
    )
    .roa()
    .send(&sim)
    .await;
    assert_eq!(
        ids(&r.json["Data"]["ChangeOrderList"], "ChangeOrderId"),
        ["demo-sae-approval"]
    );
}

#[tokio::test]
async fn describe_change_order() {
    let sim = demo().await;
    let r = Call::sae("DescribeChangeOrder", &[("ChangeOrderId", "demo-sae-exception")])
        .send(&sim)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = &r.json["Data"];
    for field in [
        "AppId",
        "AppName",
        "ApprovalId",
        "Auto",
        "BatchCount",
        "BatchType",
        "BatchWaitTime",
        "ChangeOrderId",
        "CoType",
        "CoTypeCode",
        "CreateTime",
        "CurrentPipelineId",
        "Description",
        "ErrorMessage",
        "Pipelines",
        "Status",
        "SubStatus",
        "SupportRollback",
        "SupportAbortFreeze",
        "CoTargets",
    ] {
        assert!(d.get(field).is_some(), "{field} in {d}");
    }
    assert_eq!(
        (d["Status"].clone(), d["SubStatus"].clone()),
        (Value::from(1), Value::from(1))
    );
    let pipes = d["Pipelines"].as_array().expect("plain array");
    assert_eq!(pipes.len(), 2);
    assert!(pipes[0]["StartTime"].is_i64(), "epoch-ms integers: {}", pipes[0]);
    assert!(pipes[0]["BatchType"].is_i64(), "integer BatchType in Pipelines");
    assert_eq!(d["CurrentPipelineId"], pipes[0]["PipelineId"]);
    assert!(d["CoTargets"].is_array());

    let r = Call::sae(
        "DescribeChangeOrder",
        &[("ChangeOrderId", "demo-sae-pending-approval")],
    )
    .roa()
    .send(&sim)
    .await;
    assert_eq!(r.json["Data"]["Status"], 11);
    assert!(!r.json["Data"]["ApprovalId"].as_str().unwrap_or("").is_empty());
}

#[tokio::test]
async fn describe_pipeline_and_namespace_list() {
    let sim = demo().await;
    let r = Call::sae(
        "DescribeChangeOrder",
        &[("ChangeOrderId", "demo-sae-waiting-next-batch")],
    )
    .send(&sim)
    .await;
    let pipes = r.json["Data"]["Pipelines"].clone();
    assert_eq!(
        pipes
            .as_array()
            .map(|p| p.iter().map(|x| x["Status"].clone()).collect::<Vec<_>>()),
        Some(vec![Value::from(2), Value::from(9), Value::from(0)])
    );
    let pid = pipes[1]["PipelineId"].as_str().expect("id").to_string();
    let r = Call::sae("DescribePipeline", &[("PipelineId", &pid)])
        .send(&sim)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = &r.json["Data"];
    assert_eq!(d["PipelineId"], pid.as_str());
    assert_eq!(d["PipelineStatus"], 9);
    assert_eq!(d["NextPipelineId"], pipes[2]["PipelineId"]);
    assert!(d["StageList"][0]["TaskList"].is_array());
    let r = Call::sae("DescribePipeline", &[("PipelineId", "nope")])
        .send(&sim)
        .await;
    assert_eq!(r.json["Success"], false);

    let r = Call::sae(
        "ListNamespaceChangeOrders",
        &[("NamespaceId", "cn-hangzhou:demo"), ("PageSize", "100")],
    )
    .send(&sim)
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["Data"]["TotalSize"], ALL_SAE);
    assert_eq!(
        r.json["Data"]["ChangeOrderList"][0]["NamespaceId"],
        "cn-hangzhou:demo"
    );
    // As SAE's: the namespace list does not say whose an order is; the describe does.
    assert!(r.json["Data"]["ChangeOrderList"][0].get("AppId").is_none());
    let r = Call::sae("ListNamespaceChangeOrders", &[("NamespaceId", "elsewhere")])
        .send(&sim)
        .await;
    assert_eq!(r.json["Data"]["TotalSize"], 0);
    assert_eq!(sim.calls("sae", "ListNamespaceChangeOrders"), 2);
}

#[tokio::test]
async fn envelope_errors() {
    let sim = demo().await;
    let r = Call::sae("ListChangeOrders", &[("AppId", "nope")])
        .send(&sim)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json["Success"], false);
    assert_eq!(r.json["ErrorCode"], "InvalidAppId.NotFound");
    assert_eq!(r.json["Code"], "404");
    assert!(r.json["Message"].is_string() && r.json.get("Data").is_some());
    let r = Call::sae("DescribeChangeOrder", &[("ChangeOrderId", "nope")])
        .send(&sim)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "InvalidChangeOrder.NotFound".to_string())
    );
    let r = Call::sae("DescribeChangeOrder", &[]).send(&sim).await;
    assert_eq!(r.code(), "InvalidParameter.NotEmpty");
    let r = Call::sae(
        "ListChangeOrders",
        &[("AppId", "demo-sae-app"), ("PageSize", "lots")],
    )
    .send(&sim)
    .await;
    assert_eq!((r.status, r.code()), (400, "InvalidParameter".to_string()));
}

#[tokio::test]
async fn namespace_defaults_to_region() {
    let sim = from_yaml("apps:\n- provider: sae\n  appId: a\n  changeOrders:\n  - id: o1\n").await;
    let r = Call::sae("ListNamespaceChangeOrders", &[("NamespaceId", "cn-hangzhou")])
        .send(&sim)
        .await;
    assert_eq!(ids(&r.json["Data"]["ChangeOrderList"], "ChangeOrderId"), ["o1"]);
}
