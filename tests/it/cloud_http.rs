//! The cloud clients over real HTTP on 127.0.0.1, against a stub server that verifies signatures
//! exactly as the gateway does (with the same `cloud::sign` functions) and plays each reply and
//! failure the clients must handle.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use changeorder_cloud::model::{AppRef, Provider, RawStatus};
use changeorder_cloud::sign::Scheme;
use changeorder_cloud::time::default_offset;
use changeorder_cloud::{
    CallOutcome, ClientConfig, CloudClient, CloudError, Credentials, ErrorKind, RetryPolicy, Target,
};
use serde_json::{Value, json};
use support::stub::{Req, Resp, Stub, start, verify};

const AK: &str = "LTAI5tTestKeyId";
const SECRET: &str = "TestSecretValue42";

fn ak() -> Credentials {
    Credentials::AccessKey {
        access_key_id: AK.into(),
        access_key_secret: SECRET.into(),
        security_token: None,
    }
}

fn fast_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_wait: Duration::from_secs(2),
        },
        ..ClientConfig::default()
    }
}

fn target(provider: Provider, stub: &Stub) -> Target {
    let app = match provider {
        Provider::Appstack => AppRef::Named {
            organization_id: "org-1".into(),
            app_name: "web app".into(),
        },
        _ => AppRef::Id("app-1".into()),
    };
    Target {
        provider,
        endpoint: Some(stub.url()),
        region: None,
        app,
        env_names: Vec::new(),
        states: Vec::new(),
        signature: Scheme::V3,
        zone: default_offset(),
    }
}

/// A gateway: verify the signature, then answer with `ok`.
fn gateway(
    ok: impl Fn(&Req) -> Resp + Send + Sync + 'static,
) -> impl Fn(&Req) -> Resp + Send + Sync + 'static {
    move |req: &Req| match verify(req, AK, SECRET) {
        Ok(()) => ok(req),
        Err(sts) if sts.starts_with("unknown AccessKey") => Resp::pop_error(
            404,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        ),
        Err(sts) => Resp::pop_error(
            400,
            "SignatureDoesNotMatch",
            &format!("Specified signature does not match our calculation. server string to sign is:{sts}"),
        ),
    }
}

fn edas_item(id: &str, status: i64) -> Value {
    json!({"ChangeOrderId": id, "Status": status, "CreateTime": "2024-05-01 10:00:00", "FinishTime": "2024-05-01 10:05:00",
           "CoType": "Deploy Application", "CoTypeCode": "CoDeploy", "BatchCount": 2, "BatchType": "Manual",
           "CreateUserId": "alice", "ChangeOrderDescription": "v1.2"})
}

fn edas_routes(req: &Req) -> Resp {
    match (req.method.as_str(), req.path.as_str(), req.header("x-acs-action")) {
        ("POST", "/pop/v5/changeorder/change_order_list", Some("ListRecentChangeOrder")) => {
            assert_eq!(req.header("x-acs-version"), Some("2017-08-01"));
            assert_eq!(req.param("AppId"), Some("app-1"));
            Resp::json(
                200,
                json!({"Code": 200, "Message": "success", "RequestId": "R",
                       "ChangeOrderList": {"ChangeOrder": [edas_item("co-1", 1), edas_item("co-2", 2)]}}),
            )
        }
        ("POST", "/pop/v5/changeorder/change_order_info", Some("GetChangeOrderInfo")) => {
            let id = req.param("ChangeOrderId").unwrap_or_default().to_string();
            Resp::json(
                200,
                json!({"Code": 200, "RequestId": "R", "changeOrderInfo": {
                "ChangeOrderId": id, "Status": 1, "BatchType": "Manual", "BatchCount": 2, "CoType": "Deploy Application",
                "PipelineInfoList": {"PipelineInfo": [
                    {"PipelineId": "p1", "PipelineName": "Batch 1", "PipelineStatus": 2, "StartTime": "1714528800000", "UpdateTime": "1714528860000"},
                    {"PipelineId": "p2", "PipelineName": "Batch 2", "PipelineStatus": 1, "StartTime": "1714528860000",
                     "StageDetailList": {"StageDetailDTO": {"TaskList": {"TaskInfoDTO": {"TaskMessage": "Deploying batch 2"}}}}}
                ]}}}),
            )
        }
        _ => Resp::pop_error(404, "InvalidAction.NotFound", "no such action"),
    }
}

#[tokio::test]
async fn edas_list_and_describe_with_v3_and_roa() {
    let stub = start(gateway(edas_routes)).await;
    let client = CloudClient::new(fast_config());
    for scheme in [Scheme::V3, Scheme::Roa] {
        let mut t = target(Provider::Edas, &stub);
        t.signature = scheme;
        let orders = client.list(&t, &ak()).await.unwrap();
        assert_eq!(orders.len(), 2, "{scheme:?}");
        assert_eq!(orders[0].id, "co-1");
        assert_eq!(orders[0].status, RawStatus::Code(1));
        assert_eq!(
            orders[0].finish_time,
            Some("2024-05-01T02:05:00Z".parse().unwrap())
        );
        assert_eq!(orders[0].batch_type.as_deref(), Some("Manual"));
        let d = client.describe(&t, &ak(), "co-1").await.unwrap();
        assert!(d.detailed);
        assert_eq!(d.batches.len(), 2);
        assert_eq!(d.current_batch, Some(2));
        assert_eq!(d.message.as_deref(), Some("Deploying batch 2"));
        let merged = changeorder_cloud::client::merge(&orders[0], d);
        assert_eq!(merged.creator.as_deref(), Some("alice"));
    }
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 4);
    assert!(
        reqs[0]
            .header("authorization")
            .unwrap()
            .starts_with("ACS3-HMAC-SHA256 Credential=LTAI5tTestKeyId,")
    );
    assert!(
        reqs[2]
            .header("authorization")
            .unwrap()
            .starts_with("acs LTAI5tTestKeyId:")
    );
    // Nonces are unique per request.
    let nonces: std::collections::HashSet<&str> = reqs
        .iter()
        .filter_map(|r| r.header("x-acs-signature-nonce"))
        .collect();
    assert_eq!(nonces.len(), 4);
}

#[tokio::test]
async fn sts_token_is_sent_and_signed() {
    let stub = start(move |req: &Req| {
        if req.header("x-acs-security-token") != Some("sts-token-value") {
            return Resp::pop_error(400, "InvalidSecurityToken.Missing", "token missing");
        }
        gateway(edas_routes)(req)
    })
    .await;
    let client = CloudClient::new(fast_config());
    let creds = Credentials::AccessKey {
        access_key_id: AK.into(),
        access_key_secret: SECRET.into(),
        security_token: Some("sts-token-value".into()),
    };
    for scheme in [Scheme::V3, Scheme::Roa] {
        let mut t = target(Provider::Edas, &stub);
        t.signature = scheme;
        assert_eq!(client.list(&t, &creds).await.unwrap().len(), 2);
    }
    let auth = stub.requests()[0].header("authorization").unwrap().to_string();
    assert!(auth.contains("x-acs-security-token"), "{auth}");
}

#[tokio::test]
async fn wrong_secret_is_signature_mismatch_without_retry_or_secret_leak() {
    let stub = start(gateway(edas_routes)).await;
    let client = CloudClient::new(fast_config());
    let creds = Credentials::AccessKey {
        access_key_id: AK.into(),
        access_key_secret: "WrongSecret99".into(),
        security_token: Some("StsTokenEchoed".into()),
    };
    for scheme in [Scheme::V3, Scheme::Roa] {
        let mut t = target(Provider::Edas, &stub);
        t.signature = scheme;
        let e = client.list(&t, &creds).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SignatureMismatch);
        assert_eq!(e.code.as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(e.request_id.as_deref(), Some("REQ-1"));
        assert_eq!(e.http_status, Some(400));
        assert!(!e.is_retryable());
        let line = e.to_string();
        assert!(
            line.starts_with("SignatureDoesNotMatch: Specified signature does not match"),
            "{line}"
        );
        assert!(line.ends_with("(RequestId REQ-1, HTTP 400)"), "{line}");
        assert!(!line.contains('\n'));
        // The ROA string to sign echoed by the server holds the STS token: redacted.
        assert!(!line.contains("StsTokenEchoed"), "{line}");
        assert!(!line.contains("WrongSecret99"), "{line}");
    }
    assert_eq!(stub.count(), 2, "signature errors are not retried");
}

#[tokio::test]
async fn unknown_access_key_is_invalid_credentials() {
    let stub = start(gateway(edas_routes)).await;
    let creds = Credentials::AccessKey {
        access_key_id: "LTAIunknown".into(),
        access_key_secret: SECRET.into(),
        security_token: None,
    };
    let e = CloudClient::new(fast_config())
        .list(&target(Provider::Sae, &stub), &creds)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(e.code.as_deref(), Some("InvalidAccessKeyId.NotFound"));
}

fn sae_page(req: &Req, total: usize) -> Resp {
    let page: usize = req.param("CurrentPage").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: usize = req.param("PageSize").and_then(|p| p.parse().ok()).unwrap_or(10);
    let items: Vec<Value> = (((page - 1) * size)..(page * size).min(total))
        .map(|i| json!({"ChangeOrderId": format!("sae-{i}"), "Status": 2, "BatchType": "auto", "CreateTime": "2024-01-01 00:00:00"}))
        .collect();
    Resp::json(
        200,
        json!({"RequestId": "R", "Code": "200", "Success": true,
               "Data": {"CurrentPage": page, "PageSize": size, "TotalSize": total, "ChangeOrderList": items}}),
    )
}

#[tokio::test]
async fn sae_reads_every_page() {
    let stub = start(gateway(|req: &Req| {
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/pop/v1/sam/changeorder/ListChangeOrders");
        assert_eq!(req.header("x-acs-action"), Some("ListChangeOrders"));
        assert_eq!(req.header("x-acs-version"), Some("2019-05-06"));
        sae_page(req, 5)
    }))
    .await;
    let client = CloudClient::new(ClientConfig {
        sae_page_size: 2,
        ..fast_config()
    });
    let orders = client.list(&target(Provider::Sae, &stub), &ak()).await.unwrap();
    assert_eq!(
        orders.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["sae-0", "sae-1", "sae-2", "sae-3", "sae-4"]
    );
    assert_eq!(orders[0].batch_type.as_deref(), Some("Automatic"));
    let pages: Vec<String> = stub
        .requests()
        .iter()
        .map(|r| r.param("CurrentPage").unwrap().to_string())
        .collect();
    assert_eq!(pages, ["1", "2", "3"]);
}

#[tokio::test]
async fn sae_paging_stops_on_empty_page_and_never_ending_servers() {
    // TotalSize claims more than there is: the empty page ends it.
    let stub = start(gateway(|req: &Req| {
        let mut r = sae_page(req, 3);
        let mut v: Value = serde_json::from_slice(&r.body).unwrap();
        v["Data"]["TotalSize"] = json!(1000);
        r.body = serde_json::to_vec(&v).unwrap();
        r
    }))
    .await;
    let client = CloudClient::new(ClientConfig {
        sae_page_size: 2,
        ..fast_config()
    });
    assert_eq!(
        client
            .list(&target(Provider::Sae, &stub), &ak())
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(stub.count(), 3);

    // Fresh ids on every page, forever: max_pages ends it.
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let endless = start(gateway(move |_req: &Req| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        Resp::json(
            200,
            json!({"Success": true, "Data": {"TotalSize": 1_000_000, "ChangeOrderList": [{"ChangeOrderId": format!("e-{n}"), "Status": 1}]}}),
        )
    }))
    .await;
    let client = CloudClient::new(ClientConfig {
        sae_page_size: 1,
        max_pages: 4,
        ..fast_config()
    });
    assert_eq!(
        client
            .list(&target(Provider::Sae, &endless), &ak())
            .await
            .unwrap()
            .len(),
        4
    );
    assert_eq!(endless.count(), 4);

    // A server ignoring CurrentPage repeats page 1: the second page brings nothing new.
    let repeat = start(gateway(|_req: &Req| {
        Resp::json(
            200,
            json!({"Success": true, "Data": {"CurrentPage": 1, "PageSize": 1, "TotalSize": 50, "ChangeOrderList": [{"ChangeOrderId": "same", "Status": 1}]}}),
        )
    }))
    .await;
    assert_eq!(
        client
            .list(&target(Provider::Sae, &repeat), &ak())
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(repeat.count(), 2);
}

#[tokio::test]
async fn sae_describe() {
    let stub = start(gateway(|req: &Req| {
        assert_eq!(req.path, "/pop/v1/sam/changeorder/DescribeChangeOrder");
        assert_eq!(req.param("ChangeOrderId"), Some("co 1/ü"));
        Resp::json(
            200,
            json!({"RequestId": "R", "Code": "200", "Success": true, "Data": {
                "ChangeOrderId": "co 1/ü", "Status": 1, "SubStatus": 1, "ErrorMessage": "manual rollback needed",
                "CurrentPipelineId": "b", "BatchType": "manual",
                "Pipelines": [{"PipelineId": "a", "Status": 2, "StartTime": 1714528800000_i64, "UpdateTime": 1714528860000_i64},
                              {"PipelineId": "b", "Status": 1, "StartTime": 1714528860000_i64}]}}),
        )
    }))
    .await;
    let o = CloudClient::new(fast_config())
        .describe(&target(Provider::Sae, &stub), &ak(), "co 1/ü")
        .await
        .unwrap();
    assert_eq!(o.sub_status, Some(1));
    assert_eq!(o.current_batch, Some(2));
    assert_eq!(o.message.as_deref(), Some("manual rollback needed"));
    assert_eq!(
        o.batches[0].end_time,
        Some("2024-05-01T02:01:00Z".parse().unwrap())
    );
    // Encoded on the wire with RFC 3986 rules.
    assert_eq!(stub.requests()[0].raw_query, "ChangeOrderId=co%201%2F%C3%BC");
}

#[tokio::test]
async fn business_failures_inside_200() {
    let sae = start(gateway(|_req: &Req| {
        Resp::json(
            200,
            json!({"RequestId": "R7", "Success": false, "Code": "404", "ErrorCode": "InvalidAppId.NotFound",
                   "Message": "The specified AppId does not exist."}),
        )
    }))
    .await;
    let e = CloudClient::new(fast_config())
        .list(&target(Provider::Sae, &sae), &ak())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AppNotFound);
    assert_eq!(
        e.to_string(),
        "InvalidAppId.NotFound: The specified AppId does not exist. (RequestId R7, HTTP 200)"
    );

    let edas = start(gateway(|_req: &Req| {
        Resp::json(
            200,
            json!({"RequestId": "R8", "Code": 500, "Message": "system busy"}),
        )
    }))
    .await;
    let e = CloudClient::new(fast_config())
        .list(&target(Provider::Edas, &edas), &ak())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServerError);
    assert!(
        e.to_string().starts_with("ServerError: system busy (Code 500)"),
        "{e}"
    );
    assert_eq!(edas.count(), 3, "a server error is retried");
}

#[tokio::test]
async fn error_classes_over_http() {
    let cases: Vec<(Resp, ErrorKind, usize)> = vec![
        (
            Resp::pop_error(
                404,
                "InvalidAppId.NotFound",
                "The specified AppId does not exist.",
            ),
            ErrorKind::AppNotFound,
            1,
        ),
        (
            Resp::pop_error(
                403,
                "Forbidden.RAM",
                "User not authorized to operate on the specified resource.",
            ),
            ErrorKind::Forbidden,
            1,
        ),
        (
            Resp::pop_error(
                400,
                "InvalidTimeStamp.Expired",
                "Specified time stamp or date value is expired.",
            ),
            ErrorKind::ClockSkew,
            1,
        ),
        (
            Resp::pop_error(400, "InvalidParameter", "bad"),
            ErrorKind::BadRequest,
            1,
        ),
        (
            Resp::pop_error(503, "ServiceUnavailable", "busy"),
            ErrorKind::ServerError,
            3,
        ),
        (
            Resp::text(502, "<html>bad gateway</html>"),
            ErrorKind::ServerError,
            3,
        ),
        (
            Resp::text(200, "{\"Code\": 200, \"ChangeOrderList\": "),
            ErrorKind::BadReply,
            1,
        ),
        (Resp::text(200, "<xml/>"), ErrorKind::BadReply, 1),
    ];
    for (resp, kind, calls) in cases {
        let r = resp.clone();
        let stub = start(gateway(move |_req: &Req| r.clone())).await;
        let e = CloudClient::new(fast_config())
            .list(&target(Provider::Edas, &stub), &ak())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{:?}", String::from_utf8_lossy(&resp.body));
        assert_eq!(stub.count(), calls, "{kind}");
    }
    let stub = start(gateway(edas_routes)).await;
    let e = CloudClient::new(fast_config())
        .describe(&target(Provider::Edas, &stub), &ak(), "  ")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRequest);
}

#[tokio::test]
async fn describe_of_a_vanished_order_is_order_not_found() {
    let stub = start(gateway(|_req: &Req| {
        Resp::pop_error(
            400,
            "InvalidChangeOrder.NotFound",
            "The current change order does not exist.",
        )
    }))
    .await;
    let e = CloudClient::new(fast_config())
        .describe(&target(Provider::Sae, &stub), &ak(), "gone")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OrderNotFound);
}

#[tokio::test]
async fn oversized_replies_are_cut() {
    let big = json!({"Code": 200, "ChangeOrderList": {"ChangeOrder": [], "Pad": "x".repeat(200_000)}});
    for chunked in [false, true] {
        let mut r = Resp::json(200, big.clone());
        if chunked {
            r = r.chunked();
        }
        let stub = start(gateway(move |_req: &Req| r.clone())).await;
        let e = CloudClient::new(ClientConfig {
            max_reply_bytes: 64 * 1024,
            ..fast_config()
        })
        .list(&target(Provider::Edas, &stub), &ak())
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TooLarge, "chunked={chunked}");
        assert!(e.to_string().contains("65536-byte limit"), "{e}");
        assert_eq!(stub.count(), 1);
    }
}

#[tokio::test]
async fn throttling_then_success_honours_time_left() {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let stub = start(gateway(move |req: &Req| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Resp::pop_error(
                400,
                "Throttling.User",
                "Request was denied due to user flow control.",
            )
            .header("x-ratelimit-user-api", "Limit:60,Remain:0,TimeLeft:300,Reset:0")
        } else {
            edas_routes(req)
        }
    }))
    .await;
    let started = Instant::now();
    let orders = CloudClient::new(fast_config())
        .list(&target(Provider::Edas, &stub), &ak())
        .await
        .unwrap();
    assert_eq!(orders.len(), 2);
    assert_eq!(stub.count(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn long_throttle_is_returned_with_retry_after() {
    let stub = start(gateway(|_req: &Req| {
        Resp::pop_error(
            400,
            "Throttling.Api",
            "Request was denied due to api flow control.",
        )
        .header("x-ratelimit-user", "Limit:60,Remain:0,TimeLeft:45000")
    }))
    .await;
    let client = CloudClient::new(fast_config());
    let e = client
        .list(&target(Provider::Edas, &stub), &ak())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(e.retry_after(), Some(Duration::from_millis(45_000)));
    assert_eq!(stub.count(), 1, "no retry when the wait exceeds max_wait");
    // The next call on the same account waits for the gate; too long, so it fails fast.
    let e = client
        .list(&target(Provider::Edas, &stub), &ak())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert!(e.retry_after().is_some_and(|d| d > Duration::from_secs(40)));
    assert_eq!(stub.count(), 1, "the gate stops the call before it is sent");
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transport_errors() {
    let stub = start(gateway(|req: &Req| {
        edas_routes(req).delayed(Duration::from_millis(1500))
    }))
    .await;
    let client = CloudClient::new(ClientConfig {
        read_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(300),
        retry: RetryPolicy {
            max_attempts: 2,
            ..fast_config().retry
        },
        ..fast_config()
    });
    let e = client
        .list(&target(Provider::Edas, &stub), &ak())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert!(e.to_string().contains("timed out"), "{e}");
    assert_eq!(stub.count(), 2);

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut t = target(Provider::Edas, &stub);
    t.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let e = client.list(&t, &ak()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert!(
        e.to_string()
            .starts_with(&format!("Transport: cannot connect to 127.0.0.1:{port}")),
        "{e}"
    );
}

#[tokio::test]
async fn endpoint_path_prefix_is_kept_and_signed() {
    let stub = start(gateway(|req: &Req| {
        assert!(req.path.starts_with("/proxy/edas/pop/v5/"), "{}", req.path);
        let mut r = req.clone();
        r.path = r.path.trim_start_matches("/proxy/edas").to_string();
        edas_routes(&r)
    }))
    .await;
    let mut t = target(Provider::Edas, &stub);
    t.endpoint = Some(format!("{}/proxy/edas/", stub.url()));
    assert_eq!(
        CloudClient::new(fast_config())
            .list(&t, &ak())
            .await
            .unwrap()
            .len(),
        2
    );
}

fn appstack_routes(req: &Req) -> Resp {
    if req.header("x-yunxiao-token") != Some("pt-secret-token") {
        return Resp::json(
            401,
            json!({"errorCode": "InvalidTokenError", "errorMessage": "the personal access token is invalid"}),
        );
    }
    if req.header("authorization").is_some() {
        return Resp::json(
            400,
            json!({"errorCode": "BadRequest", "errorMessage": "unexpected Authorization"}),
        );
    }
    let base = "/oapi/v1/appstack/organizations/org-1/apps/web app/changeOrders";
    if req.path == format!("{base}/versions") {
        let current: i64 = req.param("current").and_then(|c| c.parse().ok()).unwrap_or(1);
        let records: Vec<Value> = match current {
            1 => vec![
                json!({"version": "v3", "creator": "u1", "gmtCreate": "2025-07-17T03:53:55.000+00:00", "envs": [{"name": "dev"}],
                       "changeOrderSummarys": [{"sn": "sn-3", "name": "deploy 3", "state": "RUNNING", "type": "Deploy"}]}),
                json!({"version": "v2", "creator": "u1", "gmtCreate": "2025-07-16T03:53:55.000+00:00", "envs": [{"name": "dev"}],
                       "changeOrderSummarys": [{"sn": "sn-2", "name": "deploy 2", "state": "SUCCESS", "type": "Deploy"}]}),
            ],
            2 => vec![
                json!({"version": "v1", "creator": "u2", "gmtCreate": "2025-07-15T03:53:55.000+00:00", "envs": [{"name": "prod"}],
                             "changeOrderSummarys": [{"sn": "sn-1", "name": "deploy 1", "state": "FAILED", "type": "Deploy"},
                                                     {"sn": "sn-2", "name": "deploy 2", "state": "SUCCESS", "type": "Deploy"}]}),
            ],
            _ => vec![],
        };
        return Resp::json(
            200,
            json!({"total": 3, "current": current, "pageSize": 2, "pages": 2, "records": records}),
        );
    }
    if let Some(sn) = req.path.strip_prefix(&format!("{base}/")) {
        if sn != "sn-3" {
            return Resp::json(
                404,
                json!({"errorCode": "NotFound", "errorMessage": format!("change order {sn} not found")}),
            );
        }
        return Resp::json(
            200,
            json!({"sn": "sn-3", "name": "deploy 3", "state": "RUNNING", "type": "Deploy", "creator": "u1",
                   "gmtCreate": "2025-07-17T03:53:55Z", "startedAt": "2025-07-17T03:54:00Z",
                   "jobs": [{"sn": "j1", "envName": "dev", "state": "SUCCESS", "startedAt": "2025-07-17T03:54:00Z", "endedAt": "2025-07-17T03:58:00Z"},
                            {"sn": "j2", "envName": "prod", "state": "RUNNING", "message": "Rolling update 2/4", "startedAt": "2025-07-17T03:58:00Z"}]}),
        );
    }
    Resp::json(
        404,
        json!({"errorCode": "NotFound", "errorMessage": "application not found"}),
    )
}

#[tokio::test]
async fn appstack_pages_filters_and_detail() {
    let stub = start(appstack_routes).await;
    let client = CloudClient::new(ClientConfig {
        appstack_page_size: 2,
        ..fast_config()
    });
    let mut t = target(Provider::Appstack, &stub);
    t.env_names = vec!["dev".into(), "prod".into()];
    t.states = vec!["RUNNING".into(), "FAILED".into()];
    let token = Credentials::Token("pt-secret-token".into());
    let orders = client.list(&t, &token).await.unwrap();
    assert_eq!(
        orders.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["sn-3", "sn-2", "sn-1"]
    );
    assert_eq!(
        orders[1].env_names,
        ["dev", "prod"],
        "sn-2 listed under two versions"
    );
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].param("envNames"), Some("dev,prod"));
    assert_eq!(reqs[0].param("states"), Some("RUNNING,FAILED"));
    assert_eq!(reqs[0].param("pageSize"), Some("2"));
    assert_eq!(reqs[1].param("current"), Some("2"));

    let d = client.describe(&t, &token, "sn-3").await.unwrap();
    assert_eq!(d.batches.len(), 2);
    assert_eq!(d.env_names, ["dev", "prod"]);
    assert_eq!(d.current_batch, Some(2));
    assert_eq!(d.message.as_deref(), Some("Rolling update 2/4"));
    assert_eq!(
        d.batches[0].end_time,
        Some("2025-07-17T03:58:00Z".parse().unwrap())
    );

    let e = client.describe(&t, &token, "sn-9").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OrderNotFound);

    let e = client
        .list(&t, &Credentials::Token("wrong".into()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(
        e.to_string(),
        "InvalidTokenError: the personal access token is invalid (HTTP 401)"
    );

    let mut other = t.clone();
    other.app = AppRef::Named {
        organization_id: "org-1".into(),
        app_name: "missing".into(),
    };
    let e = client.list(&other, &token).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AppNotFound);

    // Credentials of the wrong kind are refused before any call.
    let before = stub.count();
    let e = client.list(&t, &ak()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(stub.count(), before);
}

#[tokio::test]
async fn appstack_errors_keep_raw_text() {
    let stub = start(|_req: &Req| Resp::text(500, "upstream exploded")).await;
    let e = CloudClient::new(fast_config())
        .list(
            &target(Provider::Appstack, &stub),
            &Credentials::Token("t".into()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServerError);
    assert_eq!(e.message, "upstream exploded");
    let stub = start(|_req: &Req| {
        Resp::json(
            429,
            json!({"errorCode": "TooManyRequests", "errorDescription": "slow down"}),
        )
    })
    .await;
    let e = CloudClient::new(fast_config())
        .list(
            &target(Provider::Appstack, &stub),
            &Credentials::Token("t".into()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Throttled);
    assert_eq!(e.message, "slow down");
    assert_eq!(stub.count(), 3);
}

#[tokio::test]
async fn observer_sees_every_attempt() {
    type Seen = Vec<(Provider, &'static str, &'static str, u32)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s = seen.clone();
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let stub = start(gateway(move |req: &Req| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Resp::pop_error(500, "InternalError", "oops")
        } else {
            edas_routes(req)
        }
    }))
    .await;
    let client = CloudClient::new(ClientConfig {
        observer: Some(Arc::new(move |o: &CallOutcome<'_>| {
            s.lock()
                .unwrap()
                .push((o.provider, o.operation, o.result, o.attempt));
        })),
        ..fast_config()
    });
    let t = target(Provider::Edas, &stub);
    client.list(&t, &ak()).await.unwrap();
    client.describe(&t, &ak(), "co-1").await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (Provider::Edas, "ListRecentChangeOrder", "ServerError", 1),
            (Provider::Edas, "ListRecentChangeOrder", "ok", 2),
            (Provider::Edas, "GetChangeOrderInfo", "ok", 1),
        ]
    );
}

#[tokio::test]
async fn clones_share_one_client() {
    let stub = start(gateway(edas_routes)).await;
    let client = CloudClient::new(fast_config());
    let t = target(Provider::Edas, &stub);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            let t = t.clone();
            tokio::spawn(async move { c.list(&t, &ak()).await })
        })
        .collect();
    for task in tasks {
        let r: Result<_, CloudError> = task.await.unwrap();
        assert_eq!(r.unwrap().len(), 2);
    }
}
