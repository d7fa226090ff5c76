//! Yunxiao AppStack: `ListChangeOrderVersions` (paged records of versions), `GetChangeOrder`
//! (jobs per environment with stages and tasks) and `ListChangeOrdersByOrigin`, on both the
//! central edition's paths and the region edition's (no organization segment).

use serde_json::{Value, json};

use super::reply::{Handled, Reply, appstack_error};
use super::routes::{Op, Params};
use super::scenario::StatusValue;
use super::state::{env_names, stage_states};
use super::world::{View, World, fake_uuid};

const DEFAULT_PAGE_SIZE: u64 = 10;

pub fn handle(w: &World, op: &Op, p: &Params) -> Handled {
    match op {
        Op::AppstackVersions { org, app } => versions(w, org.as_deref(), app, p),
        Op::AppstackGet { org, app, sn } => get(w, org.as_deref(), app, sn),
        Op::AppstackByOrigin { org } => by_origin(w, org.as_deref(), p),
        _ => Handled::new(None, appstack_error(404, "NotFound", "no such operation")),
    }
}

fn app_not_found(org: Option<&str>, app: &str) -> Reply {
    let msg = match org {
        Some(o) => format!("application {app} not found in organization {o}"),
        None => format!("application {app} not found"),
    };
    appstack_error(404, "NotFound", &msg)
}

fn bad_request(msg: String) -> Reply {
    appstack_error(400, "BadRequest", &msg)
}

fn versions(w: &World, org: Option<&str>, app: &str, p: &Params) -> Handled {
    let Some((ai, _)) = w.app_by_name(org, app) else {
        return Handled::new(None, app_not_found(org, app));
    };
    let current = match p.positive("current") {
        Ok(c) => c.unwrap_or(1),
        Err(e) => return Handled::new(Some(ai), bad_request(e)),
    };
    let size = match p.positive("pageSize") {
        Ok(s) => s.unwrap_or(DEFAULT_PAGE_SIZE),
        Err(e) => return Handled::new(Some(ai), bad_request(e)),
    };
    let envs = p.list("envNames");
    let states = p.list("states");
    let creators = p.list("creators");
    let records: Vec<Value> = w
        .views_of(ai)
        .iter()
        .filter(|v| envs.is_empty() || env_names(&v.order).iter().any(|e| envs.contains(e)))
        .filter(|v| {
            states.is_empty()
                || states
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&v.snap.status.to_string()))
        })
        .filter(|v| creators.is_empty() || creators.iter().any(|c| c == creator(v)))
        .map(|v| record(w, v))
        .collect();
    let total = records.len() as u64;
    let pages = total.div_ceil(size);
    let skip = (current - 1).saturating_mul(size).min(total) as usize;
    let page: Vec<Value> = records.into_iter().skip(skip).take(size as usize).collect();
    Handled::new(
        Some(ai),
        Reply::ok(json!({
            "total": total,
            "current": current,
            "pageSize": size,
            "pages": pages,
            "records": page,
        })),
    )
}

fn get(w: &World, org: Option<&str>, app: &str, sn: &str) -> Handled {
    let Some((ai, _)) = w.app_by_name(org, app) else {
        return Handled::new(None, app_not_found(org, app));
    };
    match w.views_of(ai).iter().find(|v| v.order.id == sn) {
        Some(v) => Handled::new(Some(ai), Reply::ok(order(w, v))),
        None => Handled::new(
            Some(ai),
            appstack_error(
                404,
                "NotFound",
                &format!("change order {sn} not found in application {app}"),
            ),
        ),
    }
}

fn by_origin(w: &World, org: Option<&str>, p: &Params) -> Handled {
    let Some(origin_type) = p.get("originType") else {
        return Handled::new(None, bad_request("originType is required".into()));
    };
    let Some(origin_id) = p.get("originId") else {
        return Handled::new(None, bad_request("originId is required".into()));
    };
    if let Some(o) = org
        && !w.knows_org(o)
    {
        return Handled::new(
            None,
            appstack_error(404, "NotFound", &format!("organization {o} not found")),
        );
    }
    let app_name = p.get("appName");
    let env_name = p.get("envName");
    let mut views: Vec<View<'_>> = w
        .scenario
        .apps
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            a.provider == changeorder_cloud::model::Provider::Appstack
                && org.is_none_or(|o| a.organization_id.as_deref() == Some(o))
                && app_name.is_none_or(|n| a.app_name.as_deref() == Some(n))
        })
        .flat_map(|(i, _)| w.views_of(i))
        .filter(|v| {
            v.order
                .origin
                .as_ref()
                .is_some_and(|o| o.origin_type.eq_ignore_ascii_case(origin_type) && o.id == origin_id)
        })
        .filter(|v| env_name.is_none_or(|e| env_names(&v.order).iter().any(|n| n == e)))
        .collect();
    views.sort_by_key(|v| std::cmp::Reverse(v.snap.created));
    let orders: Vec<Value> = views.iter().map(|v| order(w, v)).collect();
    Handled::new(None, Reply::ok(Value::Array(orders)))
}

fn creator<'v>(v: &'v View<'_>) -> &'v str {
    v.order.creator.as_deref().unwrap_or("5e706d5503283833284f41c1")
}

fn order_type<'v>(v: &'v View<'_>) -> &'v str {
    v.order.order_type.as_deref().unwrap_or("Deploy")
}

/// The version label: the creation time in the organisation's local time plus a counter.
fn version(w: &World, v: &View<'_>) -> String {
    match &v.order.version {
        Some(ver) => ver.clone(),
        None => {
            let local = w.wall(v.snap.created).to_zoned(w.offset.to_time_zone());
            format!("{}-{:03}", local.strftime("%Y%m%d%H%M%S"), v.order_index + 1)
        }
    }
}

fn name(w: &World, v: &View<'_>) -> String {
    match &v.order.name {
        Some(n) => n.clone(),
        None => {
            let local = w.wall(v.snap.created).to_zoned(w.offset.to_time_zone());
            format!("{}-{}", local.strftime("%Y%m%d%H%M%S"), order_type(v))
        }
    }
}

fn opt_iso(w: &World, t: Option<jiff::SignedDuration>) -> Value {
    t.map_or(Value::Null, |t| json!(w.iso(t)))
}

fn state_json(s: &StatusValue) -> Value {
    json!(s.to_string())
}

/// One record of `ListChangeOrderVersions`: a version with its order summary.
fn record(w: &World, v: &View<'_>) -> Value {
    let app = v.app.app_name.as_deref().unwrap_or_default();
    let envs: Vec<Value> = env_names(&v.order)
        .iter()
        .map(|e| json!({ "name": e, "displayName": e, "deployGroupName": format!("{e}-group"), "labelList": [] }))
        .collect();
    let artifacts: serde_json::Map<String, Value> = env_names(&v.order)
        .iter()
        .map(|e| {
            (
                e.clone(),
                json!({ "image.backend": format!("registry.example.com/{app}:{}", version(w, v)) }),
            )
        })
        .collect();
    json!({
        "version": version(w, v),
        "appOrchestration": {
            "storageType": "BUILTIN",
            "format": "MANIFEST",
            "name": app,
            "sn": format!("{app}@KUBERNETES"),
            "type": "AppBuiltInOrchestration",
            "suitableResourceTypes": ["KUBERNETES"],
            "labelPolicy": "NONE",
            "labelList": [],
            "placeholderList": [],
            "componentList": [],
            "groupNameMap": {},
        },
        "artifacts": artifacts,
        "changeOrderSummarys": [{
            "sn": v.order.id,
            "name": name(w, v),
            "state": state_json(&v.snap.status),
            "type": order_type(v),
        }],
        "creator": creator(v),
        "gmtCreate": w.iso(v.snap.created),
        "envs": envs,
    })
}

/// `GetChangeOrder` and `ListChangeOrdersByOrigin` items: the order with one job per environment.
fn order(w: &World, v: &View<'_>) -> Value {
    let envs = env_names(&v.order);
    let jobs: Vec<Value> = v
        .snap
        .batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let job_sn = v.batch_id(i);
            let is_current = i + 1 == v.snap.current_batch as usize;
            let stages: Vec<Value> = ["Prepare", "Deploy"]
                .iter()
                .zip(stage_states(&b.state).iter())
                .enumerate()
                .map(|(k, (stage, state))| {
                    let waiting = matches!(state, StatusValue::Text(t) if t == "INIT");
                    let done = matches!(state, StatusValue::Text(t) if t == "SUCCESS" || t == "FAILED" || t == "CANCELED");
                    let started = if waiting { None } else { b.start };
                    let ended = if !done {
                        None
                    } else if k == 0 {
                        b.end.or(b.start)
                    } else {
                        b.end
                    };
                    let sn = fake_uuid(&format!("{job_sn}/stage/{k}"));
                    json!({
                        "sn": sn,
                        "name": stage,
                        "state": state_json(state),
                        "startedAt": opt_iso(w, started),
                        "endedAt": opt_iso(w, ended),
                        "tasks": [{
                            "sn": fake_uuid(&format!("{sn}/task")),
                            "name": stage,
                            "state": state_json(state),
                            "message": if is_current && k == 1 { v.snap.message.clone() } else { None },
                            "startedAt": opt_iso(w, started),
                            "endedAt": opt_iso(w, ended),
                        }],
                    })
                })
                .collect();
            json!({
                "sn": job_sn,
                "jobSn": job_sn,
                "envName": envs.get(i).cloned().unwrap_or_default(),
                "state": state_json(&b.state),
                "action": order_type(v),
                "operator": creator(v),
                "message": if is_current { v.snap.message.clone() } else { None },
                "gmtCreate": w.iso(v.snap.created),
                "startedAt": opt_iso(w, b.start),
                "endedAt": opt_iso(w, b.end),
                "stages": stages,
            })
        })
        .collect();
    json!({
        "sn": v.order.id,
        "name": name(w, v),
        "state": state_json(&v.snap.status),
        "type": order_type(v),
        "version": version(w, v),
        "creator": creator(v),
        "description": v.order.description,
        "gmtCreate": w.iso(v.snap.created),
        "gmtModified": w.iso(v.snap.updated),
        "startedAt": opt_iso(w, v.snap.started),
        "endedAt": opt_iso(w, v.snap.finished),
        "jobs": jobs,
    })
}
