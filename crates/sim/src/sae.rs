//! SAE 2019-05-06: `ListChangeOrders` (paged), `DescribeChangeOrder`,
//! `ListNamespaceChangeOrders` and `DescribePipeline`, in SAE's envelope with plain arrays.

use serde_json::{Map, Value, json};

use super::reply::{Handled, Reply, sae_error, sae_ok};
use super::routes::{Op, Params};
use super::scenario::StatusValue;
use super::state::stage_states;
use super::world::{DEFAULT_SAE_NAMESPACE, View, World, fake_user_id, fake_uuid};
use changeorder_cloud::model::Provider;

const DEFAULT_PAGE_SIZE: u64 = 10;

pub fn handle(w: &World, op: &Op, p: &Params) -> Handled {
    match op {
        Op::SaeList => list(w, p),
        Op::SaeDescribe => describe(w, p),
        Op::SaeNamespaceList => namespace_list(w, p),
        _ => pipeline(w, p),
    }
}

fn missing(param: &str) -> Reply {
    sae_error(
        400,
        "InvalidParameter.NotEmpty",
        &format!("You must specify the parameter {param}."),
    )
}

fn bad(msg: String) -> Reply {
    sae_error(400, "InvalidParameter", &msg)
}

fn status_json(s: &StatusValue) -> Value {
    match s {
        StatusValue::Code(c) => json!(c),
        StatusValue::Text(t) => json!(t),
    }
}

/// Paging and the optional filters shared by both list calls.
struct Page {
    current: u64,
    size: u64,
}

fn page(p: &Params) -> Result<Page, Reply> {
    let current = p.positive("CurrentPage").map_err(bad)?.unwrap_or(1);
    let size = p.positive("PageSize").map_err(bad)?.unwrap_or(DEFAULT_PAGE_SIZE);
    Ok(Page { current, size })
}

fn matches_filters(v: &View<'_>, p: &Params) -> bool {
    let co_type = p.get("CoType").is_none_or(|t| t == v.type_code());
    let status = p.get("CoStatus").is_none_or(|s| s == v.snap.status.to_string());
    let key = p
        .get("Key")
        .is_none_or(|k| v.description().contains(k) || v.order.id.contains(k));
    co_type && status && key
}

fn paged(items: Vec<Value>, pg: &Page) -> Value {
    let total = items.len();
    let skip = ((pg.current - 1).saturating_mul(pg.size)).min(total as u64) as usize;
    let chunk: Vec<Value> = items.into_iter().skip(skip).take(pg.size as usize).collect();
    json!({
        "ChangeOrderList": chunk,
        "CurrentPage": pg.current,
        "PageSize": pg.size,
        "TotalSize": total,
    })
}

fn list(w: &World, p: &Params) -> Handled {
    let Some(app_id) = p.get("AppId") else {
        return Handled::new(None, missing("AppId"));
    };
    let Some((ai, _)) = w.app_by_id(Provider::Sae, app_id) else {
        return Handled::new(
            None,
            sae_error(
                404,
                "InvalidAppId.NotFound",
                "The specified AppId does not exist.",
            ),
        );
    };
    let pg = match page(p) {
        Ok(pg) => pg,
        Err(r) => return Handled::new(Some(ai), r),
    };
    let items: Vec<Value> = w
        .views_of(ai)
        .iter()
        .filter(|v| matches_filters(v, p))
        .map(|v| list_item(w, v, false))
        .collect();
    Handled::new(Some(ai), sae_ok(paged(items, &pg)))
}

fn namespace_list(w: &World, p: &Params) -> Handled {
    let Some(ns) = p.get("NamespaceId") else {
        return Handled::new(None, missing("NamespaceId"));
    };
    let pg = match page(p) {
        Ok(pg) => pg,
        Err(r) => return Handled::new(None, r),
    };
    let mut views: Vec<View<'_>> = w
        .scenario
        .apps
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            a.provider == Provider::Sae && a.namespace_id.as_deref().unwrap_or(DEFAULT_SAE_NAMESPACE) == ns
        })
        .flat_map(|(i, _)| w.views_of(i))
        .filter(|v| matches_filters(v, p))
        .collect();
    views.sort_by_key(|v| std::cmp::Reverse(v.snap.created));
    let items: Vec<Value> = views.iter().map(|v| list_item(w, v, true)).collect();
    Handled::new(None, sae_ok(paged(items, &pg)))
}

/// One list entry. The namespace-wide list names the namespace and, as SAE's does, not the
/// app: only a describe says whose an order is.
fn list_item(w: &World, v: &View<'_>, with_namespace: bool) -> Value {
    let mut m = Map::new();
    if !with_namespace {
        m.insert("AppId".into(), json!(v.app.app_id));
    }
    m.insert("BatchCount".into(), json!(v.snap.batches.len()));
    m.insert("BatchType".into(), json!(batch_type(v)));
    m.insert("ChangeOrderId".into(), json!(v.order.id));
    m.insert("CoType".into(), json!(v.type_text()));
    m.insert("CoTypeCode".into(), json!(v.type_code()));
    m.insert("CreateTime".into(), json!(w.zoneless(v.snap.created)));
    m.insert("CreateUserId".into(), json!(v.creator()));
    m.insert("Description".into(), json!(v.description()));
    if let Some(f) = v.snap.finished {
        m.insert("FinishTime".into(), json!(w.zoneless(f)));
    }
    m.insert(
        "GroupId".into(),
        json!(fake_uuid(&format!("sae/{}/group", v.app.label()))),
    );
    m.insert(
        "Source".into(),
        json!(v.order.source.as_deref().unwrap_or("console")),
    );
    m.insert("Status".into(), status_json(&v.snap.status));
    m.insert("UserId".into(), json!(fake_user_id(v.creator())));
    if with_namespace {
        m.insert(
            "NamespaceId".into(),
            json!(v.app.namespace_id.as_deref().unwrap_or(DEFAULT_SAE_NAMESPACE)),
        );
    }
    Value::Object(m)
}

/// SAE spells the batch mode in lower case in list and describe data.
fn batch_type(v: &View<'_>) -> &'static str {
    if v.manual() { "manual" } else { "auto" }
}

fn order_not_found() -> Reply {
    sae_error(
        400,
        "InvalidChangeOrder.NotFound",
        "The current change order does not exist.",
    )
}

fn describe(w: &World, p: &Params) -> Handled {
    let Some(id) = p.get("ChangeOrderId") else {
        return Handled::new(None, missing("ChangeOrderId"));
    };
    let Some(v) = w.order(Provider::Sae, id) else {
        return Handled::new(w.app_of_order(Provider::Sae, id), order_not_found());
    };
    let current = (v.snap.current_batch as usize).saturating_sub(1);
    let pipelines: Vec<Value> = v
        .snap
        .batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut m = Map::new();
            // In `Pipelines[]` the batch type is an integer: 0 automatic, 1 manual.
            m.insert("BatchType".into(), json!(if v.manual() { 1 } else { 0 }));
            m.insert("ParallelCount".into(), json!(0));
            m.insert("PipelineId".into(), json!(v.batch_id(i)));
            m.insert("PipelineName".into(), json!(format!("Batch {} Change", i + 1)));
            // SAE sends pipeline times as epoch-millisecond integers.
            if let Some(s) = b.start {
                m.insert("StartTime".into(), json!(w.epoch_ms(s)));
            }
            if let Some(u) = b.update.or(b.start) {
                m.insert("UpdateTime".into(), json!(w.epoch_ms(u)));
            }
            m.insert("Status".into(), status_json(&b.state));
            Value::Object(m)
        })
        .collect();
    let ever_approval = v.order.status == Some(StatusValue::Code(11))
        || v.order
            .timeline
            .iter()
            .any(|s| s.status == Some(StatusValue::Code(11)));
    let targets: Vec<String> = (1..=v.snap.batches.len())
        .map(|i| format!("{}-{}", v.app.app_id.as_deref().unwrap_or("app"), i))
        .collect();
    let data = json!({
        "AppId": v.app.app_id,
        "AppName": v.app.app_name.clone().or_else(|| v.app.app_id.clone()),
        "ApprovalId": if ever_approval { fake_uuid(&format!("sae/{}/approval", v.order.id)) } else { String::new() },
        "Auto": !v.manual(),
        "BatchCount": v.snap.batches.len(),
        "BatchType": batch_type(&v),
        "BatchWaitTime": 0,
        "ChangeOrderId": v.order.id,
        "CoType": v.type_text(),
        "CoTypeCode": v.type_code(),
        "CreateTime": w.zoneless(v.snap.created),
        "CurrentPipelineId": v.batch_id(current),
        "Description": v.description(),
        "ErrorMessage": v.snap.message.clone().unwrap_or_default(),
        "Pipelines": pipelines,
        "Status": status_json(&v.snap.status),
        "SubStatus": v.snap.sub_status,
        "SupportRollback": v.snap.finished.is_some(),
        "SupportAbortFreeze": false,
        "CoTargets": targets,
        "ApplicationEnableGreyTagRoute": false,
    });
    Handled::new(Some(v.app_index), sae_ok(data))
}

fn pipeline(w: &World, p: &Params) -> Handled {
    let Some(pid) = p.get("PipelineId") else {
        return Handled::new(None, missing("PipelineId"));
    };
    // Pipeline ids are derived from order ids, so find the batch by trying each order's.
    let found = w
        .scenario
        .apps
        .iter()
        .enumerate()
        .filter(|(_, a)| a.provider == Provider::Sae)
        .flat_map(|(ai, _)| w.views_of(ai))
        .find_map(|v| {
            (0..v.snap.batches.len())
                .find(|i| v.batch_id(*i) == pid)
                .map(|i| (v, i))
        });
    let Some((v, i)) = found else {
        return Handled::new(
            None,
            sae_error(
                400,
                "InvalidPipeline.NotFound",
                "The specified pipeline does not exist.",
            ),
        );
    };
    let Some(b) = v.snap.batches.get(i) else {
        return Handled::new(
            Some(v.app_index),
            sae_error(500, "InternalError", "batch vanished"),
        );
    };
    let is_current = i + 1 == v.snap.current_batch as usize;
    let names = ["Prepare Instances", "Deploy and Verify"];
    let states = stage_states(&b.state);
    let stage_ids: Vec<String> = (0..names.len())
        .map(|k| fake_uuid(&format!("{pid}/stage/{k}")))
        .collect();
    // The current stage: the first not yet finished, else the last.
    let current_stage = states
        .iter()
        .position(|s| !matches!(s, StatusValue::Code(2)))
        .unwrap_or(names.len() - 1);
    let stages: Vec<Value> = names
        .iter()
        .zip(states.iter())
        .zip(stage_ids.iter())
        .enumerate()
        .map(|(k, ((name, state), sid))| {
            let failed = matches!(state, StatusValue::Code(3 | 10));
            let message = if is_current && k == names.len() - 1 {
                v.snap.message.clone()
            } else {
                None
            };
            json!({
                "ExecutorType": 0,
                "StageId": sid,
                "StageName": name,
                "Status": status_json(state),
                "TaskList": [{
                    "ErrorCode": if failed { "DeployFailed" } else { "" },
                    "ErrorIgnore": 0,
                    "ErrorMessage": if failed { message.clone().unwrap_or_default() } else { String::new() },
                    "Message": message.unwrap_or_default(),
                    "ShowManualIgnore": false,
                    "StageId": sid,
                    "Status": status_json(state),
                    "TaskId": fake_uuid(&format!("{sid}/task")),
                    "TaskName": name,
                }],
            })
        })
        .collect();
    let next = if i + 1 < v.snap.batches.len() {
        v.batch_id(i + 1)
    } else {
        String::new()
    };
    let data = json!({
        "CoStatus": v.snap.status.to_string(),
        "CurrentStageId": stage_ids.get(current_stage),
        "NextPipelineId": next,
        "PipelineId": pid,
        "PipelineName": format!("Batch {} Change", i + 1),
        "PipelineStatus": status_json(&b.state),
        "ShowBatch": true,
        "StageList": stages,
    });
    Handled::new(Some(v.app_index), sae_ok(data))
}
