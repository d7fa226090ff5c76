//! Application lists: SAE `ListApplications` (paged; `NamespaceId`, `AppName`, `Tags`) and EDAS
//! `ListApplication` (paged; `LogicalRegionId`, `AppName`, `ClusterId`). Apps with `appearsAt`
//! or `disappearsAt` are listed only while they exist.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::reply::{Handled, Reply, gateway_error, request_id, sae_error, sae_ok};
use super::routes::{Op, Params};
use super::scenario::EdasWrappers;
use super::world::{DEFAULT_SAE_NAMESPACE, World, fake_uuid};
use changeorder_cloud::model::Provider;

const DEFAULT_PAGE_SIZE: u64 = 10;

pub fn handle(w: &World, op: &Op, p: &Params, host: &str) -> Handled {
    let sae = matches!(op, Op::SaeListApps);
    let (provider, ns_param) = if sae {
        (Provider::Sae, "NamespaceId")
    } else {
        (Provider::Edas, "LogicalRegionId")
    };
    let bad = |code: &str, msg: String| -> Handled {
        let reply = if sae {
            sae_error(400, code, &msg)
        } else {
            gateway_error(Provider::Edas, 400, code, &msg, host)
        };
        Handled::new(None, reply)
    };
    let Some(ns) = p.get(ns_param) else {
        return bad(
            "InvalidParameter.NotEmpty",
            format!("You must specify the parameter {ns_param}."),
        );
    };
    let current = match p.positive("CurrentPage") {
        Ok(v) => v.unwrap_or(1),
        Err(m) => return bad("InvalidParameter", m),
    };
    let size = match p.positive("PageSize") {
        Ok(v) => v.unwrap_or(DEFAULT_PAGE_SIZE),
        Err(m) => return bad("InvalidParameter", m),
    };
    let tags: BTreeMap<String, String> = match p.get("Tags") {
        None => BTreeMap::new(),
        Some(raw) => match parse_tags(raw) {
            Some(t) => t,
            None => {
                return bad(
                    "InvalidParameter",
                    format!("Tags is not a JSON list of {{Key, Value}}: {raw}"),
                );
            }
        },
    };
    let name = p.get("AppName");
    let cluster = p.get("ClusterId");
    let items: Vec<Value> = w
        .scenario
        .apps
        .iter()
        .filter(|a| a.provider == provider && w.app_exists(a))
        .filter(|a| a.namespace_id.as_deref().unwrap_or(DEFAULT_SAE_NAMESPACE) == ns)
        // The cloud's AppName is a substring match.
        .filter(|a| name.is_none_or(|n| a.app_name.as_deref().unwrap_or_default().contains(n)))
        .filter(|a| tags.iter().all(|(k, v)| a.tags.get(k) == Some(v)))
        .filter(|a| cluster.is_none_or(|c| c == cluster_of(a.app_id.as_deref().unwrap_or_default())))
        .map(|a| {
            let id = a.app_id.clone().unwrap_or_default();
            let app_name = a.app_name.clone().unwrap_or_else(|| id.clone());
            if sae {
                let tags: Vec<Value> = a
                    .tags
                    .iter()
                    .map(|(k, v)| json!({"Key": k, "Value": v}))
                    .collect();
                json!({"AppId": id, "AppName": app_name, "NamespaceId": ns, "RegionId": region_of(ns),
                       "Tags": tags, "AppDeletingStatus": false})
            } else {
                json!({"AppId": id, "Name": app_name, "NamespaceId": ns, "RegionId": region_of(ns),
                       "ClusterId": cluster_of(&id), "ClusterType": 2, "ApplicationType": "War", "State": 1})
            }
        })
        .collect();
    let total = items.len();
    let skip = ((current - 1).saturating_mul(size)).min(total as u64) as usize;
    let chunk: Vec<Value> = items.into_iter().skip(skip).take(size as usize).collect();
    if sae {
        return Handled::new(
            None,
            sae_ok(
                json!({"Applications": chunk, "CurrentPage": current, "PageSize": size, "TotalSize": total}),
            ),
        );
    }
    let list = match (w.scenario.edas_wrappers, chunk.len()) {
        (EdasWrappers::SingleObject, 0) => None,
        (EdasWrappers::SingleObject, 1) => chunk.into_iter().next().map(|one| json!({"Application": one})),
        _ => Some(json!({"Application": chunk})),
    };
    let mut body = json!({"Code": 200, "Message": "success", "RequestId": request_id(),
                          "CurrentPage": current, "PageSize": size, "TotalSize": total});
    if let (Some(list), Some(m)) = (list, body.as_object_mut()) {
        m.insert("ApplicationList".into(), list);
    }
    Handled::new(None, Reply::ok(body))
}

fn parse_tags(raw: &str) -> Option<BTreeMap<String, String>> {
    let v: Value = serde_json::from_str(raw).ok()?;
    v.as_array()?
        .iter()
        .map(|t| {
            Some((
                t.get("Key")?.as_str()?.to_string(),
                t.get("Value")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// `cn-hangzhou:prod` is in region `cn-hangzhou`.
fn region_of(ns: &str) -> &str {
    ns.split(':').next().unwrap_or(ns)
}

/// A stable made-up cluster id per app.
pub fn cluster_of(app_id: &str) -> String {
    fake_uuid(&format!("cluster/{app_id}"))
}
