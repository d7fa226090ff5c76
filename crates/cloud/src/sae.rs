//! SAE (2019-05-06): `ListChangeOrders` (every page), `ListNamespaceChangeOrders` (as many pages
//! as the caller needs) and `DescribeChangeOrder`.
//!
//! SAE uses plain arrays, a string `Code` next to `Success`/`ErrorCode`, and integer epoch
//! milliseconds in pipelines. All SAE APIs share one budget of 60 calls per minute per account,
//! so the page size is large and paging stops as soon as the server says it is done.

use jiff::tz::Offset;
use reqwest::{Method, Url};
use serde_json::Value;

use super::common::{self, batch_errors, count, first_unfinished, meaningful, numeric_status};
use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind};
use super::http::{ApiCall, Transport};
use super::json;
use super::model::{Batch, CloudOrder, Provider};
use super::sign::Scheme;
use super::time::parse_time;

pub const VERSION: &str = "2019-05-06";
pub const OP_LIST: &str = "ListChangeOrders";
pub const OP_DESCRIBE: &str = "DescribeChangeOrder";
pub const PATH_LIST: &str = "/pop/v1/sam/changeorder/ListChangeOrders";
pub const PATH_DESCRIBE: &str = "/pop/v1/sam/changeorder/DescribeChangeOrder";
pub const OP_NAMESPACE_LIST: &str = "ListNamespaceChangeOrders";
/// Lower-case `l`, as SAE spells this one path.
pub const PATH_NAMESPACE_LIST: &str = "/pop/v1/sam/changeorder/listNamespaceChangeOrders";

const ERROR_KEYS: &[&str] = &["ErrorMessage", "TaskErrorMessage"];
/// Progress text inside a pipeline's stages and tasks, shown when there is no error.
const INFO_KEYS: &[&str] = &["Message", "TaskMessage"];

/// What one list page said about paging.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub orders: Vec<CloudOrder>,
    /// Items on the page (including ones skipped for having no id).
    pub items: usize,
    pub current_page: Option<i64>,
    pub page_size: Option<i64>,
    pub total_size: Option<i64>,
}

pub(crate) async fn list(
    tr: &Transport,
    base: &Url,
    app_id: &str,
    creds: &Credentials,
    scheme: Scheme,
    zone: Offset,
) -> Result<Vec<CloudOrder>, CloudError> {
    let pages = Pages {
        operation: OP_LIST,
        path: PATH_LIST,
        scope: ("AppId", app_id),
        not_found: ErrorKind::AppNotFound,
    };
    pages.read(tr, base, creds, scheme, zone, &mut |_| true).await
}

/// Every order of an SAE namespace, newest first as far as the cloud sorts them, read page by
/// page until `more` (given the orders of the page just read) says no further page is needed.
/// The entries carry no `AppId`: only a describe tells whose an order is.
pub(crate) async fn list_namespace(
    tr: &Transport,
    base: &Url,
    namespace_id: &str,
    creds: &Credentials,
    scheme: Scheme,
    zone: Offset,
    more: &mut (dyn FnMut(&[CloudOrder]) -> bool + Send),
) -> Result<Vec<CloudOrder>, CloudError> {
    let pages = Pages {
        operation: OP_NAMESPACE_LIST,
        path: PATH_NAMESPACE_LIST,
        scope: ("NamespaceId", namespace_id),
        not_found: ErrorKind::AppNotFound,
    };
    pages.read(tr, base, creds, scheme, zone, more).await
}

/// One of SAE's two paged order lists (per app, per namespace).
struct Pages<'a> {
    operation: &'static str,
    path: &'static str,
    scope: (&'static str, &'a str),
    not_found: ErrorKind,
}

impl Pages<'_> {
    async fn read(
        &self,
        tr: &Transport,
        base: &Url,
        creds: &Credentials,
        scheme: Scheme,
        zone: Offset,
        more: &mut (dyn FnMut(&[CloudOrder]) -> bool + Send),
    ) -> Result<Vec<CloudOrder>, CloudError> {
        let cfg = tr.config();
        let page_size = cfg.sae_page_size.max(1);
        let mut out: Vec<CloudOrder> = Vec::new();
        let mut page_no: u32 = 1;
        loop {
            if page_no > cfg.max_pages {
                tracing::warn!(
                    operation = self.operation,
                    max_pages = cfg.max_pages,
                    "SAE list: page limit reached, older orders not read"
                );
                break;
            }
            let call = ApiCall {
                provider: Provider::Sae,
                operation: self.operation,
                version: VERSION,
                method: Method::GET,
                path: self.path.into(),
                query: vec![
                    (self.scope.0.into(), self.scope.1.into()),
                    ("CurrentPage".into(), page_no.to_string()),
                    ("PageSize".into(), page_size.to_string()),
                ],
                not_found: self.not_found,
            };
            let v = tr.call(base, &call, creds, scheme).await?;
            let mut page = parse_list_page(&v, zone)?;
            let before = out.len();
            for o in std::mem::take(&mut page.orders) {
                if !out.iter().any(|x| x.id == o.id) {
                    out.push(o);
                }
            }
            let new_orders = out.len() - before;
            if is_last_page(&page, i64::from(page_no), i64::from(page_size), new_orders)
                || !more(&out[before..])
            {
                break;
            }
            page_no += 1;
        }
        Ok(out)
    }
}

/// Paging ends on an empty page, when `CurrentPage * PageSize >= TotalSize`, on a short page
/// when the total is unknown, or when a page brought nothing new (a server ignoring
/// `CurrentPage` would otherwise return page 1 forever).
pub fn is_last_page(page: &Page, requested: i64, requested_size: i64, new_orders: usize) -> bool {
    if page.items == 0 || new_orders == 0 {
        return true;
    }
    let current = page.current_page.unwrap_or(requested).max(requested);
    let size = page.page_size.filter(|s| *s > 0).unwrap_or(requested_size);
    match page.total_size {
        Some(total) => current.saturating_mul(size) >= total,
        None => i64::try_from(page.items).unwrap_or(i64::MAX) < size,
    }
}

/// One `ListChangeOrders` reply.
pub fn parse_list_page(v: &Value, zone: Offset) -> Result<Page, CloudError> {
    let data = json::field(v, &["Data"])
        .filter(|d| d.is_object())
        .ok_or_else(|| CloudError::bad_reply(format!("{OP_LIST} reply has no Data object")))?;
    let items = json::list(data, &["ChangeOrderList"]);
    let mut orders = Vec::with_capacity(items.len());
    for item in &items {
        match parse_order(item, None, zone) {
            Some(o) => orders.push(o),
            None => tracing::debug!("SAE list item without ChangeOrderId skipped"),
        }
    }
    Ok(Page {
        orders,
        items: items.len(),
        current_page: json::int(data, &["CurrentPage"]),
        page_size: json::int(data, &["PageSize"]),
        total_size: json::int(data, &["TotalSize"]),
    })
}

fn parse_order(item: &Value, fallback_id: Option<&str>, zone: Offset) -> Option<CloudOrder> {
    let id = json::string(item, &["ChangeOrderId"]).or_else(|| fallback_id.map(str::to_string))?;
    let mut o = CloudOrder::new(Provider::Sae, id, numeric_status(item, &["Status"]));
    o.sub_status = json::int(item, &["SubStatus"]);
    o.app_id = json::string(item, &["AppId"]);
    o.order_type = json::string(item, &["CoType"]);
    o.type_code = json::string(item, &["CoTypeCode"]);
    o.description = json::string(item, &["Description", "ChangeOrderDescription"]);
    o.creator = json::string(item, &["CreateUserId", "UserId"]);
    o.create_time = json::field(item, &["CreateTime"]).and_then(|t| parse_time(t, zone));
    o.finish_time = json::field(item, &["FinishTime"]).and_then(|t| parse_time(t, zone));
    o.batch_count = count(item, &["BatchCount"]);
    o.batch_type = common::batch_type(item);
    Some(o)
}

pub(crate) async fn describe(
    tr: &Transport,
    base: &Url,
    id: &str,
    creds: &Credentials,
    scheme: Scheme,
    zone: Offset,
) -> Result<CloudOrder, CloudError> {
    let call = ApiCall {
        provider: Provider::Sae,
        operation: OP_DESCRIBE,
        version: VERSION,
        method: Method::GET,
        path: PATH_DESCRIBE.into(),
        query: vec![("ChangeOrderId".into(), id.into())],
        not_found: ErrorKind::OrderNotFound,
    };
    let v = tr.call(base, &call, creds, scheme).await?;
    parse_detail(&v, id, zone)
}

/// A `DescribeChangeOrder` reply. `id` is the requested order, used when the reply omits it.
pub fn parse_detail(v: &Value, id: &str, zone: Offset) -> Result<CloudOrder, CloudError> {
    let data = json::field(v, &["Data"])
        .filter(|d| d.is_object())
        .ok_or_else(|| CloudError::bad_reply(format!("{OP_DESCRIBE} reply for {id} has no Data object")))?;
    let mut o = parse_order(data, Some(id), zone)
        .unwrap_or_else(|| CloudOrder::new(Provider::Sae, id, numeric_status(data, &["Status"])));
    o.detailed = true;
    let pipelines = json::list(data, &["Pipelines"]);
    o.batches = pipelines.iter().map(|p| parse_pipeline(p, zone)).collect();
    if o.batch_count.is_none() && !o.batches.is_empty() {
        o.batch_count = u32::try_from(o.batches.len()).ok();
    }
    let current_id = json::string(data, &["CurrentPipelineId"]);
    o.current_batch = current_id
        .and_then(|cur| {
            o.batches
                .iter()
                .position(|b| b.id.as_deref() == Some(cur.as_str()))
        })
        .and_then(|i| u32::try_from(i + 1).ok())
        .or_else(|| first_unfinished(&o.batches, |s| s.trim() == "2"));
    o.message = meaningful(json::string(data, &["ErrorMessage"]))
        .or_else(|| pipelines.iter().find_map(|p| batch_errors(p, ERROR_KEYS)))
        .or_else(|| common::progress_message(&o, common::order_finished(&o)));
    common::derive_pop_finish_time(&mut o);
    Ok(o)
}

const PIPELINE_KEYS: common::PipelineKeys = common::PipelineKeys {
    status: &["Status", "PipelineStatus"],
    errors: ERROR_KEYS,
    info: INFO_KEYS,
};

fn parse_pipeline(p: &Value, zone: Offset) -> Batch {
    common::pop_pipeline(p, zone, &PIPELINE_KEYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RawStatus;
    use crate::time::default_offset;
    use serde_json::json;

    /// The seed's sample reply.
    fn seed() -> Value {
        json!({
          "RequestId" : "91F93257-7A4A-4BD3-9A7E-2F6EAE6D****", "Message" : "success", "TraceId" : "0a98a02315955564772843261e****",
          "Data" : {
            "Status" : 2, "SubStatus" : 0, "ApprovalId" : "67de0b39", "ErrorMessage" : "success", "BatchWaitTime" : 0,
            "CreateTime" : "2020-12-17 21:06:45", "BatchCount" : 1, "CoTypeCode" : "CoRestartInstances", "SupportRollback" : false,
            "ChangeOrderId" : "765fa5c0-9ebb-4bb4-b383-1f885447**", "AppName" : "app-test", "BatchType" : "auto",
            "Description" : "description", "CoType": "Restart multiple instances concurrently.", "Auto" : true,
            "CurrentPipelineId" : "0e4acf82-c9b1-4c1e-ac28-55776338****",
            "Pipelines" : [ { "Status" : 2, "StartTime" : 1562831689704_i64, "UpdateTime" : 1562847178007_i64, "BatchType" : 0,
                              "ParallelCount" : 0, "PipelineName" : "Batch 1 Change", "PipelineId" : "0e4acf82-c9b1-4c1e-ac28-55776338****" } ],
            "AppId" : "bbbbb-3fd370b2", "SupportAbortFreeze": true, "CoTargets": ["i-1"]
          },
          "Code" : "200", "Success" : true
        })
    }

    #[test]
    fn seed_detail() {
        let o = parse_detail(&seed(), "765fa5c0-9ebb-4bb4-b383-1f885447**", default_offset()).unwrap();
        assert!(o.detailed);
        assert_eq!(o.status, RawStatus::Code(2));
        assert_eq!(o.sub_status, Some(0));
        assert_eq!(o.type_code.as_deref(), Some("CoRestartInstances"));
        assert_eq!(
            o.order_type.as_deref(),
            Some("Restart multiple instances concurrently.")
        );
        assert_eq!(o.batch_type.as_deref(), Some("Automatic"));
        assert_eq!(o.description.as_deref(), Some("description"));
        assert_eq!(o.create_time, Some("2020-12-17T13:06:45Z".parse().unwrap()));
        assert_eq!(o.batches.len(), 1);
        let b = &o.batches[0];
        assert_eq!(b.name, "Batch 1 Change");
        assert_eq!(b.state, "2");
        assert_eq!(b.start_time, Some("2019-07-11T07:54:49.704Z".parse().unwrap()));
        assert_eq!(b.end_time, Some("2019-07-11T12:12:58.007Z".parse().unwrap()));
        assert_eq!(o.current_batch, Some(1));
        assert_eq!(o.finish_time, Some("2019-07-11T12:12:58.007Z".parse().unwrap()));
        // "success" is a placeholder, not a message.
        assert_eq!(o.message, None);
    }

    #[test]
    fn detail_substatus_and_error() {
        let v = json!({"Data": {"Status": 1, "SubStatus": 1, "ErrorMessage": "rollback required", "BatchType": "manual",
            "Pipelines": [{"Status": 2, "PipelineId": "a"}, {"Status": 1, "PipelineId": "b", "StartTime": 0}, {"Status": 0, "PipelineId": "c"}]}});
        let o = parse_detail(&v, "id", default_offset()).unwrap();
        assert_eq!(o.id, "id");
        assert_eq!(o.sub_status, Some(1));
        assert_eq!(o.message.as_deref(), Some("rollback required"));
        assert_eq!(o.batch_type.as_deref(), Some("Manual"));
        assert_eq!(o.current_batch, Some(2));
        assert_eq!(o.batch_count, Some(3));
        assert_eq!(o.batches[1].start_time, None);
        assert_eq!(o.batches[1].end_time, None);
        let v = json!({"Data": {"Status": 8, "CurrentPipelineId": "c", "Pipelines": [{"PipelineId": "b"}, {"PipelineId": "c"}]}});
        assert_eq!(
            parse_detail(&v, "id", default_offset()).unwrap().current_batch,
            Some(2)
        );
        let e = parse_detail(&json!({"Success": true}), "id", default_offset()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadReply);
    }

    fn page(ids: &[&str], current: i64, size: i64, total: Option<i64>) -> Value {
        let list: Vec<Value> = ids
            .iter()
            .map(|id| json!({"ChangeOrderId": id, "Status": 2, "BatchType": "manual", "CreateTime": "2021-01-01 00:00:00",
                             "FinishTime": "2021-01-01 00:01:00", "CoType": "Deploy", "CoTypeCode": "CoDeploy",
                             "CreateUserId": "u", "Description": "d", "BatchCount": 2}))
            .collect();
        let mut data = json!({"CurrentPage": current, "PageSize": size, "ChangeOrderList": list});
        if let Some(t) = total {
            data["TotalSize"] = json!(t);
        }
        json!({"Success": true, "Code": "200", "Data": data})
    }

    #[test]
    fn list_page_fields() {
        let p = parse_list_page(&page(&["a", "b"], 1, 2, Some(3)), default_offset()).unwrap();
        assert_eq!(p.items, 2);
        assert_eq!(p.total_size, Some(3));
        let o = &p.orders[0];
        assert_eq!(o.batch_type.as_deref(), Some("Manual"));
        assert_eq!(o.finish_time, Some("2020-12-31T16:01:00Z".parse().unwrap()));
        assert_eq!(o.batch_count, Some(2));
        assert_eq!(o.creator.as_deref(), Some("u"));
        assert!(!o.detailed);
        assert_eq!(
            parse_list_page(&json!({"Data": null}), default_offset())
                .unwrap_err()
                .kind,
            ErrorKind::BadReply
        );
        let empty = parse_list_page(&json!({"Data": {"TotalSize": 0}}), default_offset()).unwrap();
        assert_eq!(empty.items, 0);
    }

    #[test]
    fn last_page_rules() {
        let p = |items, cur, size, total| Page {
            orders: vec![],
            items,
            current_page: cur,
            page_size: size,
            total_size: total,
        };
        assert!(
            is_last_page(&p(0, Some(1), Some(50), Some(100)), 1, 50, 0),
            "empty page"
        );
        assert!(
            is_last_page(&p(50, Some(1), Some(50), Some(100)), 1, 50, 0),
            "nothing new"
        );
        assert!(!is_last_page(&p(50, Some(1), Some(50), Some(100)), 1, 50, 50));
        assert!(is_last_page(&p(50, Some(2), Some(50), Some(100)), 2, 50, 50));
        assert!(
            is_last_page(&p(3, None, None, None), 1, 50, 3),
            "short page, no total"
        );
        assert!(
            !is_last_page(&p(50, None, None, None), 1, 50, 50),
            "full page, no total"
        );
        assert!(!is_last_page(&p(10, Some(1), Some(10), Some(11)), 1, 10, 10));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(v in crate::json::arb_json()) {
            let _ = parse_list_page(&v, default_offset());
            let _ = parse_detail(&v, "x", default_offset());
            let wrapped = json!({"Data": v});
            if let Ok(p) = parse_list_page(&wrapped, default_offset()) {
                let _ = is_last_page(&p, 1, 50, p.orders.len());
            }
            let _ = parse_detail(&wrapped, "x", default_offset());
        }
    }
}
