//! EDAS (2017-08-01): `ListRecentChangeOrder` and `GetChangeOrderInfo`.
//!
//! EDAS wraps arrays XML-style (`ChangeOrderList: {ChangeOrder: [...]}`); a wrapper may hold an
//! array, a single object, or be missing when empty. All of these are accepted.

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

pub const VERSION: &str = "2017-08-01";
pub const OP_LIST: &str = "ListRecentChangeOrder";
pub const OP_DESCRIBE: &str = "GetChangeOrderInfo";
pub const PATH_LIST: &str = "/pop/v5/changeorder/change_order_list";
pub const PATH_DESCRIBE: &str = "/pop/v5/changeorder/change_order_info";

/// Task error keys searched anywhere inside a pipeline (stage details hold task lists).
const TASK_ERROR_KEYS: &[&str] = &["TaskErrorMessage", "ErrorMessage"];
/// Progress text of tasks, shown when there is no error.
const TASK_INFO_KEYS: &[&str] = &["TaskMessage"];

pub(crate) async fn list(
    tr: &Transport,
    base: &Url,
    app_id: &str,
    creds: &Credentials,
    scheme: Scheme,
    zone: Offset,
) -> Result<Vec<CloudOrder>, CloudError> {
    let call = ApiCall {
        provider: Provider::Edas,
        operation: OP_LIST,
        version: VERSION,
        method: Method::POST,
        path: PATH_LIST.into(),
        query: vec![("AppId".into(), app_id.into())],
        not_found: ErrorKind::AppNotFound,
    };
    let v = tr.call(base, &call, creds, scheme).await?;
    Ok(parse_list(&v, zone))
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
        provider: Provider::Edas,
        operation: OP_DESCRIBE,
        version: VERSION,
        method: Method::POST,
        path: PATH_DESCRIBE.into(),
        query: vec![("ChangeOrderId".into(), id.into())],
        not_found: ErrorKind::OrderNotFound,
    };
    let v = tr.call(base, &call, creds, scheme).await?;
    parse_detail(&v, id, zone)
}

/// Orders of a `ListRecentChangeOrder` reply. Items without a `ChangeOrderId` are skipped.
pub fn parse_list(v: &Value, zone: Offset) -> Vec<CloudOrder> {
    let mut out: Vec<CloudOrder> = Vec::new();
    for item in json::wrapped_list(v, &["ChangeOrderList"], &["ChangeOrder"]) {
        let Some(order) = parse_order(item, None, zone) else {
            tracing::debug!("EDAS list item without ChangeOrderId skipped");
            continue;
        };
        if !out.iter().any(|o| o.id == order.id) {
            out.push(order);
        }
    }
    out
}

/// Fields list items and `changeOrderInfo` share.
fn parse_order(item: &Value, fallback_id: Option<&str>, zone: Offset) -> Option<CloudOrder> {
    let id = json::string(item, &["ChangeOrderId"]).or_else(|| fallback_id.map(str::to_string))?;
    let mut o = CloudOrder::new(Provider::Edas, id, numeric_status(item, &["Status"]));
    o.order_type = json::string(item, &["CoType"]);
    o.type_code = json::string(item, &["CoTypeCode"]);
    o.description = json::string(item, &["ChangeOrderDescription", "Desc", "Description"]);
    o.creator = json::string(item, &["CreateUserId", "UserId"]);
    o.create_time = json::field(item, &["CreateTime"]).and_then(|t| parse_time(t, zone));
    o.finish_time = json::field(item, &["FinishTime"]).and_then(|t| parse_time(t, zone));
    o.batch_count = count(item, &["BatchCount"]);
    o.batch_type = common::batch_type(item);
    Some(o)
}

/// A `GetChangeOrderInfo` reply. `id` is the requested order, used when the reply omits it.
pub fn parse_detail(v: &Value, id: &str, zone: Offset) -> Result<CloudOrder, CloudError> {
    let info = json::field(v, &["changeOrderInfo", "ChangeOrderInfo"])
        .filter(|i| i.is_object())
        .ok_or_else(|| {
            CloudError::bad_reply(format!("{OP_DESCRIBE} reply for {id} has no changeOrderInfo"))
        })?;
    let mut o = parse_order(info, Some(id), zone).unwrap_or_else(|| {
        // Unreachable: the fallback id is always given. Kept total to avoid a panic path.
        CloudOrder::new(Provider::Edas, id, numeric_status(info, &["Status"]))
    });
    o.detailed = true;
    let pipelines = json::wrapped_list(info, &["PipelineInfoList"], &["PipelineInfo"]);
    o.batches = pipelines.iter().map(|p| parse_pipeline(p, zone)).collect();
    if o.batch_count.is_none() && !o.batches.is_empty() {
        o.batch_count = u32::try_from(o.batches.len()).ok();
    }
    o.current_batch = first_unfinished(&o.batches, |s| s.trim() == "2");
    o.message = pipelines
        .iter()
        .find_map(|p| batch_errors(p, TASK_ERROR_KEYS))
        .or_else(|| meaningful(json::string(info, &["ErrorMessage"])))
        .or_else(|| common::progress_message(&o, common::order_finished(&o)));
    common::derive_pop_finish_time(&mut o);
    Ok(o)
}

const PIPELINE_KEYS: common::PipelineKeys = common::PipelineKeys {
    status: &["PipelineStatus", "Status"],
    errors: TASK_ERROR_KEYS,
    info: TASK_INFO_KEYS,
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

    fn item(id: &str, status: i64) -> Value {
        json!({"Status": status, "BatchCount": 1, "FinishTime": "2019-11-13 14:24:02", "CreateTime": "2019-11-13 14:23:46",
               "BatchType": "Automatic", "CoType": "Application Scale Out", "CoTypeCode": "CoScaleOut",
               "AppId": "app", "ChangeOrderId": id, "GroupId": "g", "CreateUserId": "edas_test1@aliyun-test.com",
               "ChangeOrderDescription": "desc", "Source": "pop", "UserId": "1432536"})
    }

    #[test]
    fn list_wrapper_shapes() {
        let z = default_offset();
        let seed = json!({"ChangeOrderList": {"ChangeOrder": item("1074f3e2", 2)}, "Message": "success", "Code": 200});
        let orders = parse_list(&seed, z);
        assert_eq!(orders.len(), 1);
        let o = &orders[0];
        assert_eq!(o.id, "1074f3e2");
        assert_eq!(o.status, RawStatus::Code(2));
        assert_eq!(o.order_type.as_deref(), Some("Application Scale Out"));
        assert_eq!(o.type_code.as_deref(), Some("CoScaleOut"));
        assert_eq!(o.creator.as_deref(), Some("edas_test1@aliyun-test.com"));
        assert_eq!(o.description.as_deref(), Some("desc"));
        assert_eq!(o.create_time, Some("2019-11-13T06:23:46Z".parse().unwrap()));
        assert_eq!(o.finish_time, Some("2019-11-13T06:24:02Z".parse().unwrap()));
        assert_eq!(o.batch_count, Some(1));
        assert_eq!(o.batch_type.as_deref(), Some("Automatic"));
        assert!(!o.detailed);

        let arr = json!({"ChangeOrderList": {"ChangeOrder": [item("a", 1), item("b", 8), item("a", 1)]}, "Code": 200});
        assert_eq!(
            parse_list(&arr, z)
                .iter()
                .map(|o| o.id.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        for empty in [
            json!({"Code": 200}),
            json!({"ChangeOrderList": {}}),
            json!({"ChangeOrderList": {"ChangeOrder": []}}),
            json!({"ChangeOrderList": null}),
        ] {
            assert!(parse_list(&empty, z).is_empty(), "{empty}");
        }
        let plain = json!({"ChangeOrderList": [item("p", 0)]});
        assert_eq!(parse_list(&plain, z).len(), 1);
        let no_id = json!({"ChangeOrderList": {"ChangeOrder": [{"Status": 1}, item("ok", 1)]}});
        assert_eq!(parse_list(&no_id, z).len(), 1);
        let no_status = json!({"ChangeOrderList": {"ChangeOrder": {"ChangeOrderId": "x"}}});
        assert_eq!(parse_list(&no_status, z)[0].status, RawStatus::Missing);
    }

    fn pipeline(id: &str, status: i64, err: Option<&str>) -> Value {
        let tasks = match err {
            Some(m) => {
                json!({"TaskInfoDTO": [{"TaskStatus": "3", "TaskErrorCode": "E1", "TaskErrorMessage": m}]})
            }
            None => json!({"TaskInfoDTO": {"TaskStatus": "2"}}),
        };
        json!({"PipelineId": id, "PipelineName": format!("Batch {id}"), "PipelineStatus": status,
               "StartTime": "1562831689704", "UpdateTime": "1562847178007",
               "StageList": {"StageInfoDTO": [{"StageId": "s", "Status": status}]},
               "StageDetailList": {"StageDetailDTO": {"StageId": "s", "TaskList": tasks}}})
    }

    #[test]
    fn detail_with_pipelines() {
        let z = default_offset();
        let v = json!({"Code": 200, "RequestId": "r", "changeOrderInfo": {
            "Status": 3, "ChangeOrderId": "co1", "BatchType": "Manual", "CoType": "Deploy", "CreateTime": "2020-01-01 08:00:00",
            "ChangeOrderDescription": "d", "BatchCount": 3, "CreateUserId": "u", "SupportRollback": true, "Desc": "other",
            "Targets": {"Items": ["i1"]}, "TrafficControl": {"Routes": "x"},
            "PipelineInfoList": {"PipelineInfo": [pipeline("p1", 2, None), pipeline("p2", 3, Some("health check failed")), pipeline("p3", 0, None)]}
        }});
        let o = parse_detail(&v, "co1", z).unwrap();
        assert!(o.detailed);
        assert_eq!(o.status, RawStatus::Code(3));
        assert_eq!(o.batch_type.as_deref(), Some("Manual"));
        assert_eq!(o.create_time, Some("2020-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(o.batches.len(), 3);
        assert_eq!(o.batches[0].state, "2");
        assert_eq!(o.batches[0].name, "Batch p1");
        assert_eq!(o.batches[0].id.as_deref(), Some("p1"));
        assert_eq!(
            o.batches[0].start_time,
            Some("2019-07-11T07:54:49.704Z".parse().unwrap())
        );
        assert_eq!(
            o.batches[0].end_time,
            Some("2019-07-11T12:12:58.007Z".parse().unwrap())
        );
        assert_eq!(o.batches[2].end_time, None);
        assert_eq!(o.batches[1].message.as_deref(), Some("health check failed"));
        assert_eq!(o.message.as_deref(), Some("health check failed"));
        assert_eq!(o.current_batch, Some(2));
        // No FinishTime in the detail: the last finished batch's update stands in.
        assert_eq!(o.finish_time, Some("2019-07-11T12:12:58.007Z".parse().unwrap()));
    }

    #[test]
    fn detail_single_pipeline_and_status_7() {
        let v = json!({"changeOrderInfo": {"Status": 7, "PipelineInfoList": {"PipelineInfo": pipeline("only", 7, None)}}});
        let o = parse_detail(&v, "given", default_offset()).unwrap();
        assert_eq!(o.id, "given");
        assert_eq!(o.status, RawStatus::Code(7));
        assert_eq!(o.batches.len(), 1);
        assert_eq!(o.batch_count, Some(1));
        assert_eq!(o.batches[0].state, "7");
        let v = json!({"changeOrderInfo": {"Status": 2, "ChangeOrderId": "x", "PipelineInfoList": {"PipelineInfo": [pipeline("a", 2, None)]}}});
        let o = parse_detail(&v, "x", default_offset()).unwrap();
        assert_eq!(o.current_batch, None);
        let v = json!({"changeOrderInfo": {"ChangeOrderId": "x", "PipelineInfoList": {"PipelineInfo": {"PipelineStatus": "weird"}}}});
        let o = parse_detail(&v, "x", default_offset()).unwrap();
        assert_eq!(o.status, RawStatus::Missing);
        assert_eq!(o.batches[0].state, "weird");
    }

    #[test]
    fn progress_message_only_while_running() {
        let running = |status: i64| {
            json!({"changeOrderInfo": {"Status": status, "PipelineInfoList": {"PipelineInfo": [
                pipeline("a", 2, None),
                {"PipelineId": "b", "PipelineStatus": 1, "StageDetailList": {"StageDetailDTO": {"TaskList": {"TaskInfoDTO": {"TaskMessage": "Deploying batch 2", "TaskErrorMessage": ""}}}}}
            ]}}})
        };
        let o = parse_detail(&running(1), "x", default_offset()).unwrap();
        assert_eq!(o.current_batch, Some(2));
        assert_eq!(o.batches[1].message.as_deref(), Some("Deploying batch 2"));
        assert_eq!(o.message.as_deref(), Some("Deploying batch 2"));
        let o = parse_detail(&running(6), "x", default_offset()).unwrap();
        assert_eq!(o.message, None);
    }

    #[test]
    fn detail_without_info_is_bad_reply() {
        let e = parse_detail(&json!({"Code": 200}), "x", default_offset()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadReply);
        let e = parse_detail(&json!({"changeOrderInfo": "str"}), "x", default_offset()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::BadReply);
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(v in crate::json::arb_json()) {
            let _ = parse_list(&v, default_offset());
            let _ = parse_detail(&v, "x", default_offset());
            let wrapped = json!({"changeOrderInfo": v.clone(), "ChangeOrderList": {"ChangeOrder": v}});
            let _ = parse_list(&wrapped, default_offset());
            let _ = parse_detail(&wrapped, "x", default_offset());
        }
    }
}
