//! Yunxiao AppStack (central edition): `ListChangeOrderVersions` (every page) and
//! `GetChangeOrder`. Auth is the `x-yunxiao-token` header; no signing.
//!
//! The list is of *versions*; each version carries `changeOrderSummarys[]`, which become the
//! orders (deduplicated by `sn`). `GetChangeOrder` returns the order with `jobs[]`, one per
//! environment, which become the batches.

use reqwest::{Method, Url};
use serde_json::Value;

use super::common::{self, batch_errors, first_unfinished, meaningful};
use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind};
use super::http::{ApiCall, Transport};
use super::json;
use super::model::{Batch, CloudOrder, Provider, RawStatus};
use super::sign::{Scheme, percent_encode};
use super::time::parse_time;
use jiff::tz::Offset;

pub const OP_LIST: &str = "ListChangeOrderVersions";
pub const OP_DESCRIBE: &str = "GetChangeOrder";

/// Keys holding error text inside a job, its stages and tasks (the shape is unconfirmed).
const ERROR_KEYS: &[&str] = &["errorMessage", "errorMsg", "failReason", "errorDescription"];
/// Progress text of a job, its stages and tasks, shown when there is no error.
const INFO_KEYS: &[&str] = &["message"];

/// `/oapi/v1/appstack/organizations/{org}/apps/{app}` with both parts encoded as one segment.
fn app_path(org: &str, app: &str) -> String {
    format!(
        "/oapi/v1/appstack/organizations/{}/apps/{}",
        percent_encode(org),
        percent_encode(app)
    )
}

/// One list page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub orders: Vec<CloudOrder>,
    pub records: usize,
    pub current: Option<i64>,
    pub pages: Option<i64>,
    pub page_size: Option<i64>,
    pub total: Option<i64>,
}

pub(crate) struct ListParams<'a> {
    pub org: &'a str,
    pub app: &'a str,
    pub env_names: &'a [String],
    pub states: &'a [String],
}

pub(crate) async fn list(
    tr: &Transport,
    base: &Url,
    p: &ListParams<'_>,
    creds: &Credentials,
    zone: Offset,
) -> Result<Vec<CloudOrder>, CloudError> {
    let cfg = tr.config();
    let page_size = cfg.appstack_page_size.max(1);
    let mut out: Vec<CloudOrder> = Vec::new();
    let mut current: u32 = 1;
    loop {
        if current > cfg.max_pages {
            tracing::warn!(
                app = p.app,
                max_pages = cfg.max_pages,
                "AppStack ListChangeOrderVersions: page limit reached, older orders not read"
            );
            break;
        }
        let mut query: Vec<(String, String)> = Vec::new();
        if !p.env_names.is_empty() {
            query.push(("envNames".into(), p.env_names.join(",")));
        }
        if !p.states.is_empty() {
            query.push(("states".into(), p.states.join(",")));
        }
        query.push(("pageSize".into(), page_size.to_string()));
        query.push(("current".into(), current.to_string()));
        let call = ApiCall {
            provider: Provider::Appstack,
            operation: OP_LIST,
            version: "",
            method: Method::GET,
            path: format!("{}/changeOrders/versions", app_path(p.org, p.app)),
            query,
            not_found: ErrorKind::AppNotFound,
        };
        let v = tr.call(base, &call, creds, Scheme::V3).await?;
        let mut page = parse_list_page(&v, zone)?;
        let before = out.len();
        merge_page(&mut out, std::mem::take(&mut page.orders));
        if is_last_page(
            &page,
            i64::from(current),
            i64::from(page_size),
            out.len() - before,
        ) {
            break;
        }
        current += 1;
    }
    Ok(out)
}

/// Add a page's orders, keeping the first occurrence of each `sn` but filling in what it
/// lacked from later ones.
fn merge_page(out: &mut Vec<CloudOrder>, orders: Vec<CloudOrder>) {
    for o in orders {
        match out.iter_mut().find(|x| x.id == o.id) {
            Some(existing) => {
                for env in o.env_names {
                    if !existing.env_names.contains(&env) {
                        existing.env_names.push(env);
                    }
                }
            }
            None => out.push(o),
        }
    }
}

/// Paging ends on a page with no records, at `current >= pages`, at `current * pageSize >=
/// total`, on a short page when neither is known, or when a page brought nothing new.
pub fn is_last_page(page: &Page, requested: i64, requested_size: i64, new_orders: usize) -> bool {
    if page.records == 0 || new_orders == 0 {
        return true;
    }
    let current = page.current.unwrap_or(requested).max(requested);
    if let Some(pages) = page.pages {
        return current >= pages;
    }
    let size = page.page_size.filter(|s| *s > 0).unwrap_or(requested_size);
    match page.total {
        Some(total) => current.saturating_mul(size) >= total,
        None => i64::try_from(page.records).unwrap_or(i64::MAX) < size,
    }
}

/// One `ListChangeOrderVersions` reply.
pub fn parse_list_page(v: &Value, zone: Offset) -> Result<Page, CloudError> {
    if !v.is_object() || json::field(v, &["records"]).is_some_and(|r| !r.is_array()) {
        return Err(CloudError::bad_reply(format!(
            "{OP_LIST} reply has no records array"
        )));
    }
    let records = json::list(v, &["records"]);
    let mut orders: Vec<CloudOrder> = Vec::new();
    for rec in &records {
        let creator = json::string(rec, &["creator", "creatorId"]);
        let created = json::field(rec, &["gmtCreate"]).and_then(|t| parse_time(t, zone));
        let envs: Vec<String> = json::list(rec, &["envs"])
            .into_iter()
            .filter_map(|e| json::string(e, &["name", "envName"]))
            .collect();
        for s in json::list(rec, &["changeOrderSummarys", "changeOrderSummaries"]) {
            let Some(sn) = json::string(s, &["sn"]) else {
                tracing::debug!("AppStack change order summary without sn skipped");
                continue;
            };
            let mut o = CloudOrder::new(Provider::Appstack, sn, text_status(s));
            o.order_type = json::string(s, &["type"]);
            o.description = json::string(s, &["name", "description"]);
            o.creator = json::string(s, &["creator"]).or_else(|| creator.clone());
            // The summary has no time of its own; the version's creation is when it was made.
            o.create_time = json::field(s, &["gmtCreate", "startedAt"])
                .and_then(|t| parse_time(t, zone))
                .or(created);
            o.finish_time = json::field(s, &["endedAt"]).and_then(|t| parse_time(t, zone));
            o.env_names = envs.clone();
            orders.push(o);
        }
    }
    let mut unique: Vec<CloudOrder> = Vec::new();
    merge_page(&mut unique, orders);
    Ok(Page {
        orders: unique,
        records: records.len(),
        current: json::int(v, &["current"]),
        pages: json::int(v, &["pages"]),
        page_size: json::int(v, &["pageSize"]),
        total: json::int(v, &["total"]),
    })
}

fn text_status(obj: &Value) -> RawStatus {
    match json::string(obj, &["state", "status"]) {
        Some(s) => RawStatus::Text(s),
        None => RawStatus::Missing,
    }
}

pub(crate) async fn describe(
    tr: &Transport,
    base: &Url,
    org: &str,
    app: &str,
    sn: &str,
    creds: &Credentials,
    zone: Offset,
) -> Result<CloudOrder, CloudError> {
    let call = ApiCall {
        provider: Provider::Appstack,
        operation: OP_DESCRIBE,
        version: "",
        method: Method::GET,
        path: format!("{}/changeOrders/{}", app_path(org, app), percent_encode(sn)),
        query: Vec::new(),
        not_found: ErrorKind::OrderNotFound,
    };
    let v = tr.call(base, &call, creds, Scheme::V3).await?;
    parse_detail(&v, sn, zone)
}

/// A `GetChangeOrder` reply. Accepts the order at the top level or wrapped in `data`/`result`.
pub fn parse_detail(v: &Value, sn: &str, zone: Offset) -> Result<CloudOrder, CloudError> {
    let order = [v]
        .into_iter()
        .chain(json::field(v, &["data", "result", "changeOrder"]))
        .find(|o| o.is_object() && (json::field(o, &["state", "sn", "jobs"]).is_some()))
        .ok_or_else(|| CloudError::bad_reply(format!("{OP_DESCRIBE} reply for {sn} has no change order")))?;
    let id = json::string(order, &["sn"]).unwrap_or_else(|| sn.to_string());
    let mut o = CloudOrder::new(Provider::Appstack, id, text_status(order));
    o.detailed = true;
    o.order_type = json::string(order, &["type"]);
    o.description = json::string(order, &["description"]).or_else(|| json::string(order, &["name"]));
    o.creator = json::string(order, &["creator", "creatorId"]);
    o.create_time = json::field(order, &["gmtCreate", "startedAt"]).and_then(|t| parse_time(t, zone));
    o.finish_time =
        json::field(order, &["endedAt", "gmtEnd", "finishedAt"]).and_then(|t| parse_time(t, zone));
    let jobs = json::list(order, &["jobs"]);
    o.batches = jobs.iter().map(|j| parse_job(j, zone)).collect();
    o.env_names = o
        .batches
        .iter()
        .map(|b| b.name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    o.env_names.dedup();
    if !o.batches.is_empty() {
        o.batch_count = u32::try_from(o.batches.len()).ok();
    }
    let terminal = matches!(&o.status, RawStatus::Text(s) if matches!(s.to_ascii_uppercase().as_str(), "SUCCESS" | "FAILED" | "CANCELED"));
    o.current_batch =
        if terminal && !matches!(&o.status, RawStatus::Text(s) if s.eq_ignore_ascii_case("FAILED")) {
            None
        } else {
            first_unfinished(&o.batches, |s| s.eq_ignore_ascii_case("SUCCESS"))
        };
    o.message = json::string(order, &["errorMessage"])
        .or_else(|| jobs.iter().find_map(|j| batch_errors(j, ERROR_KEYS)))
        .or_else(|| meaningful(json::string(order, &["message"])))
        .or_else(|| common::progress_message(&o, terminal));
    Ok(o)
}

fn parse_job(j: &Value, zone: Offset) -> Batch {
    let env = json::field(j, &["env"]).filter(|e| e.is_object());
    Batch {
        id: json::string(j, &["sn"]),
        name: json::string(j, &["envName"])
            .or_else(|| env.and_then(|e| json::string(e, &["name", "displayName"])))
            .or_else(|| json::string(j, &["name", "displayName"]))
            .unwrap_or_default(),
        state: json::string(j, &["state", "status"]).unwrap_or_default(),
        start_time: json::field(j, &["startedAt", "gmtCreate", "startTime"])
            .and_then(|t| parse_time(t, zone)),
        end_time: json::field(j, &["endedAt", "endTime", "finishedAt"]).and_then(|t| parse_time(t, zone)),
        message: batch_errors(j, ERROR_KEYS).or_else(|| batch_errors(j, INFO_KEYS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::default_offset;
    use serde_json::json;

    fn seed_page() -> Value {
        json!({
            "total": 88, "current": 1, "pageSize": 1, "pages": 88,
            "records": [{
                "version": "20250717115350-021",
                "appOrchestration": {"storageType": "BUILTIN", "app": {"name": "huaihu-k8s-test"}, "placeholderList": [{"name": "x"}]},
                "artifacts": {"k8s-test": {"image.backend": "nginx"}},
                "changeOrderSummarys": [{"sn": "25d37df408584f13a85ba03a4caf7f5b", "name": "20250717115349-部署", "state": "SUCCESS", "type": "Deploy"}],
                "creator": "5e706d5503283833284f41c1",
                "gmtCreate": "2025-07-17T03:53:55.000+00:00",
                "envs": [{"name": "k8s-test", "displayName": "k8s-test", "deployGroupName": "yufa-ceshi", "labelList": []}]
            }]
        })
    }

    #[test]
    fn seed_list() {
        let p = parse_list_page(&seed_page(), default_offset()).unwrap();
        assert_eq!(p.records, 1);
        assert_eq!(p.pages, Some(88));
        let o = &p.orders[0];
        assert_eq!(o.id, "25d37df408584f13a85ba03a4caf7f5b");
        assert_eq!(o.status, RawStatus::Text("SUCCESS".into()));
        assert_eq!(o.order_type.as_deref(), Some("Deploy"));
        assert_eq!(o.description.as_deref(), Some("20250717115349-部署"));
        assert_eq!(o.creator.as_deref(), Some("5e706d5503283833284f41c1"));
        assert_eq!(o.create_time, Some("2025-07-17T03:53:55Z".parse().unwrap()));
        assert_eq!(o.env_names, vec!["k8s-test"]);
        assert!(!is_last_page(&p, 1, 1, 1));
    }

    #[test]
    fn list_dedupes_and_tolerates_odd_records() {
        let v = json!({"records": [
            {"changeOrderSummarys": [{"sn": "a", "state": "RUNNING"}, {"sn": "b"}], "envs": [{"name": "dev"}]},
            {"changeOrderSummarys": [{"sn": "a", "state": "RUNNING"}, {"name": "no sn"}], "envs": [{"name": "prod"}]},
            {"changeOrderSummarys": null},
            {},
        ]});
        let p = parse_list_page(&v, default_offset()).unwrap();
        assert_eq!(p.orders.len(), 2);
        assert_eq!(p.orders[0].env_names, vec!["dev", "prod"]);
        assert_eq!(p.orders[1].status, RawStatus::Missing);
        assert_eq!(p.records, 4);
        assert!(parse_list_page(&json!({"records": "x"}), default_offset()).is_err());
        assert_eq!(parse_list_page(&json!({}), default_offset()).unwrap().records, 0);
    }

    #[test]
    fn last_page_rules() {
        let p = |records, current, pages, total| Page {
            orders: vec![],
            records,
            current,
            pages,
            page_size: Some(10),
            total,
        };
        assert!(is_last_page(&p(0, Some(1), Some(5), None), 1, 10, 0));
        assert!(is_last_page(&p(10, Some(5), Some(5), None), 5, 10, 10));
        assert!(!is_last_page(&p(10, Some(4), Some(5), None), 4, 10, 10));
        assert!(is_last_page(&p(10, Some(2), None, Some(20)), 2, 10, 10));
        assert!(!is_last_page(&p(10, Some(1), None, Some(20)), 1, 10, 10));
        assert!(
            is_last_page(&p(10, Some(1), Some(5), None), 1, 10, 0),
            "nothing new"
        );
        assert!(is_last_page(
            &Page {
                records: 3,
                ..Page::default()
            },
            1,
            10,
            3
        ));
    }

    #[test]
    fn detail_jobs() {
        let v = json!({
            "sn": "66c0", "name": "20241008171130-部署", "state": "FAILED", "type": "Deploy", "creator": "u1",
            "description": "正常发布日常需求", "gmtCreate": "2024-10-08T09:11:38Z", "startedAt": "2024-10-08T09:11:40Z",
            "endedAt": "2024-10-08T09:20:00Z", "version": "v1",
            "jobs": [
                {"sn": "j1", "envName": "dev", "state": "SUCCESS", "startedAt": "2024-10-08T09:11:40Z", "endedAt": "2024-10-08T09:15:00Z"},
                {"sn": "j2", "envName": "prod", "state": "FAILED", "stages": [{"name": "deploy", "state": "FAILED",
                    "tasks": [{"name": "apply", "state": "FAILED", "errorMessage": "ImagePullBackOff"}]}]}
            ]
        });
        let o = parse_detail(&v, "66c0", default_offset()).unwrap();
        assert!(o.detailed);
        assert_eq!(o.status, RawStatus::Text("FAILED".into()));
        assert_eq!(o.description.as_deref(), Some("正常发布日常需求"));
        assert_eq!(o.finish_time, Some("2024-10-08T09:20:00Z".parse().unwrap()));
        assert_eq!(o.batches.len(), 2);
        assert_eq!(o.batch_count, Some(2));
        assert_eq!(o.env_names, vec!["dev", "prod"]);
        assert_eq!(
            o.batches[0].end_time,
            Some("2024-10-08T09:15:00Z".parse().unwrap())
        );
        assert_eq!(o.batches[1].message.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(o.message.as_deref(), Some("ImagePullBackOff"));
        assert_eq!(o.current_batch, Some(2));

        let wrapped = json!({"data": {"sn": "x", "state": "RUNNING", "jobs": [{"env": {"name": "test"}, "state": "RUNNING"}]}});
        let o = parse_detail(&wrapped, "x", default_offset()).unwrap();
        assert_eq!(o.batches[0].name, "test");
        assert_eq!(o.current_batch, Some(1));
        let done = json!({"sn": "x", "state": "SUCCESS", "jobs": [{"envName": "a", "state": "SUCCESS"}]});
        assert_eq!(
            parse_detail(&done, "x", default_offset()).unwrap().current_batch,
            None
        );
        assert_eq!(
            parse_detail(&json!({"foo": 1}), "x", default_offset())
                .unwrap_err()
                .kind,
            ErrorKind::BadReply
        );
    }

    #[test]
    fn path_encoding() {
        assert_eq!(
            app_path("org 1", "my/app"),
            "/oapi/v1/appstack/organizations/org%201/apps/my%2Fapp"
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(v in crate::json::arb_json()) {
            if let Ok(p) = parse_list_page(&v, default_offset()) {
                let _ = is_last_page(&p, 1, 10, p.orders.len());
            }
            let _ = parse_detail(&v, "x", default_offset());
            let _ = parse_list_page(&json!({"records": [v.clone()]}), default_offset());
            let _ = parse_detail(&json!({"sn": "s", "jobs": [v]}), "x", default_offset());
        }
    }
}
