//! EDAS 2017-08-01: `ListRecentChangeOrder` and `GetChangeOrderInfo`, with EDAS's XML-style
//! wrappers (`ChangeOrderList: {ChangeOrder: [...]}`) and integer `Code`.

use serde_json::{Map, Value, json};

use super::reply::{Handled, Reply, gateway_error, request_id};
use super::routes::{Op, Params};
use super::scenario::{EdasWrappers, StatusValue};
use super::state::stage_states;
use super::world::{View, World, fake_user_id, fake_uuid};
use changeorder_cloud::model::Provider;

pub fn handle(w: &World, op: &Op, p: &Params, host: &str) -> Handled {
    match op {
        Op::EdasListRecent => list_recent(w, p, host),
        _ => info(w, p, host),
    }
}

fn missing(param: &str, host: &str) -> Reply {
    gateway_error(
        Provider::Edas,
        400,
        &format!("Missing{param}"),
        &format!("{param} is mandatory for this action."),
        host,
    )
}

fn list_recent(w: &World, p: &Params, host: &str) -> Handled {
    let Some(app_id) = p.get("AppId") else {
        return Handled::new(None, missing("AppId", host));
    };
    let Some((ai, app)) = w.app_by_id(Provider::Edas, app_id) else {
        return Handled::new(
            None,
            gateway_error(
                Provider::Edas,
                404,
                "InvalidAppId.NotFound",
                "The specified AppId does not exist.",
                host,
            ),
        );
    };
    let style = app.edas_wrappers.unwrap_or(w.scenario.edas_wrappers);
    let items: Vec<Value> = w.views_of(ai).iter().map(|v| list_item(w, v)).collect();
    let mut body = envelope();
    if let Some(list) = wrap(style, "ChangeOrder", items) {
        body.insert("ChangeOrderList".into(), list);
    }
    Handled::new(Some(ai), Reply::ok(Value::Object(body)))
}

fn info(w: &World, p: &Params, host: &str) -> Handled {
    let Some(id) = p.get("ChangeOrderId") else {
        return Handled::new(None, missing("ChangeOrderId", host));
    };
    let Some(v) = w.order(Provider::Edas, id) else {
        return Handled::new(
            w.app_of_order(Provider::Edas, id),
            gateway_error(
                Provider::Edas,
                400,
                "InvalidChangeOrder.NotFound",
                "The current change order does not exist.",
                host,
            ),
        );
    };
    let style = v.app.edas_wrappers.unwrap_or(w.scenario.edas_wrappers);
    let pipelines: Vec<Value> = (0..v.snap.batches.len())
        .map(|i| pipeline(w, &v, i, style))
        .collect();
    let targets: Vec<Value> = (1..=v.snap.batches.len())
        .map(|i| json!(format!("{}-instance-{i}", short(&v.order.id))))
        .collect();
    let mut order = Map::new();
    order.insert("Status".into(), status_json(&v.snap.status));
    order.insert("ChangeOrderId".into(), json!(v.order.id));
    order.insert("BatchType".into(), json!(batch_type(&v)));
    order.insert("CoType".into(), json!(v.type_text()));
    order.insert("CreateTime".into(), json!(w.zoneless(v.snap.created)));
    order.insert("ChangeOrderDescription".into(), json!(v.description()));
    order.insert("BatchCount".into(), json!(v.snap.batches.len()));
    order.insert("CreateUserId".into(), json!(v.creator()));
    order.insert("SupportRollback".into(), json!(v.snap.finished.is_some()));
    order.insert("Desc".into(), json!(v.description()));
    order.insert("Targets".into(), json!({ "Items": targets }));
    order.insert(
        "TrafficControl".into(),
        json!({ "Routes": "", "Rules": "", "Tips": "" }),
    );
    if let Some(list) = wrap(style, "PipelineInfo", pipelines) {
        order.insert("PipelineInfoList".into(), list);
    }
    let mut body = envelope();
    body.insert("changeOrderInfo".into(), Value::Object(order));
    Handled::new(Some(v.app_index), Reply::ok(Value::Object(body)))
}

fn envelope() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("Code".into(), json!(200));
    m.insert("Message".into(), json!("success"));
    m.insert("RequestId".into(), json!(request_id()));
    m
}

/// An XML-style wrapper `{key: [...]}`, or per the knob a bare object / nothing.
fn wrap(style: EdasWrappers, key: &str, mut items: Vec<Value>) -> Option<Value> {
    match (style, items.len()) {
        (EdasWrappers::SingleObject, 0) => None,
        (EdasWrappers::SingleObject, 1) => items.pop().map(|only| json!({ key: only })),
        _ => Some(json!({ key: items })),
    }
}

fn status_json(s: &StatusValue) -> Value {
    match s {
        StatusValue::Code(c) => json!(c),
        StatusValue::Text(t) => json!(t),
    }
}

fn batch_type(v: &View<'_>) -> &'static str {
    if v.manual() { "Manual" } else { "Automatic" }
}

/// A readable stem of an id for derived names.
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn list_item(w: &World, v: &View<'_>) -> Value {
    let mut m = Map::new();
    m.insert("AppId".into(), json!(v.app.app_id));
    m.insert("BatchCount".into(), json!(v.snap.batches.len()));
    m.insert("BatchType".into(), json!(batch_type(v)));
    m.insert("ChangeOrderDescription".into(), json!(v.description()));
    m.insert("ChangeOrderId".into(), json!(v.order.id));
    m.insert("CoType".into(), json!(v.type_text()));
    m.insert("CoTypeCode".into(), json!(v.type_code()));
    m.insert("CreateTime".into(), json!(w.zoneless(v.snap.created)));
    m.insert("CreateUserId".into(), json!(v.creator()));
    if let Some(f) = v.snap.finished {
        m.insert("FinishTime".into(), json!(w.zoneless(f)));
    }
    m.insert(
        "GroupId".into(),
        json!(fake_uuid(&format!("edas/{}/group", v.app.label()))),
    );
    m.insert(
        "Source".into(),
        json!(v.order.source.as_deref().unwrap_or("console")),
    );
    m.insert("Status".into(), status_json(&v.snap.status));
    m.insert("UserId".into(), json!(fake_user_id(v.creator())));
    Value::Object(m)
}

fn pipeline(w: &World, v: &View<'_>, i: usize, style: EdasWrappers) -> Value {
    let Some(b) = v.snap.batches.get(i) else {
        return Value::Null;
    };
    let pid = v.batch_id(i);
    let is_current = i + 1 == v.snap.current_batch as usize;
    let message = if is_current { v.snap.message.clone() } else { None };
    let names = ["Prepare Instances", "Deploy and Verify"];
    let states = stage_states(&b.state);
    let mut stages = Vec::new();
    let mut details = Vec::new();
    for (k, (name, state)) in names.iter().zip(states.iter()).enumerate() {
        let sid = fake_uuid(&format!("{pid}/stage/{k}"));
        let failed = matches!(state, StatusValue::Code(3 | 10));
        stages.push(json!({
            "StageId": sid,
            "StageName": name,
            "Status": status_json(state),
            "StageResultDTO": {
                "ServiceStage": { "StageId": sid, "StageName": name, "Status": status_json(state), "Message": "" },
                "InstanceDTOList": { "InstanceDTO": [] },
            },
        }));
        // The last stage's task carries the batch's message (an error when it failed).
        let task_message = if k == names.len() - 1 {
            message.clone()
        } else {
            None
        };
        let tasks = vec![json!({
            "TaskId": fake_uuid(&format!("{sid}/task")),
            "TaskName": name,
            "TaskStatus": state.to_string(),
            "TaskMessage": task_message.clone().unwrap_or_default(),
            "TaskErrorCode": if failed { "DeployFailed" } else { "" },
            "TaskErrorMessage": if failed { task_message.unwrap_or_default() } else { String::new() },
            "TaskErrorIgnorance": 0,
            "RetryType": 0,
            "ShowManualIgnorance": false,
        })];
        let mut detail = Map::new();
        detail.insert("StageId".into(), json!(sid));
        detail.insert("StageName".into(), json!(name));
        detail.insert("StageStatus".into(), status_json(state));
        if let Some(t) = wrap(style, "TaskInfoDTO", tasks) {
            detail.insert("TaskList".into(), t);
        }
        details.push(Value::Object(detail));
    }
    let mut m = Map::new();
    m.insert("PipelineId".into(), json!(pid));
    m.insert("PipelineName".into(), json!(format!("Batch {} Change", i + 1)));
    m.insert("PipelineStatus".into(), status_json(&b.state));
    // EDAS sends pipeline times as epoch-millisecond strings.
    if let Some(s) = b.start {
        m.insert("StartTime".into(), json!(w.epoch_ms(s).to_string()));
    }
    if let Some(u) = b.update.or(b.start) {
        m.insert("UpdateTime".into(), json!(w.epoch_ms(u).to_string()));
    }
    if let Some(s) = wrap(style, "StageInfoDTO", stages) {
        m.insert("StageList".into(), s);
    }
    if let Some(d) = wrap(style, "StageDetailDTO", details) {
        m.insert("StageDetailList".into(), d);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers() {
        let one = vec![json!({"a": 1})];
        assert_eq!(
            wrap(EdasWrappers::Array, "X", one.clone()),
            Some(json!({"X": [{"a": 1}]}))
        );
        assert_eq!(
            wrap(EdasWrappers::SingleObject, "X", one),
            Some(json!({"X": {"a": 1}}))
        );
        assert_eq!(wrap(EdasWrappers::SingleObject, "X", vec![]), None);
        assert_eq!(wrap(EdasWrappers::Array, "X", vec![]), Some(json!({"X": []})));
    }
}
