use super::*;

fn err(p: Provider, status: u16, body: &str) -> CloudError {
    classify_reply(p, status, body.as_bytes(), ErrorKind::AppNotFound).unwrap_err()
}

#[test]
fn pop_errors_table() {
    use ErrorKind::*;
    let cases: &[(u16, &str, ErrorKind, Option<&str>)] = &[
        (
            400,
            r#"{"RequestId":"R1","HostId":"h","Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#,
            Throttled,
            Some("Throttling.User"),
        ),
        (
            503,
            r#"{"RequestId":"R","Code":"ServiceUnavailable","Message":"busy"}"#,
            ServerError,
            Some("ServiceUnavailable"),
        ),
        (
            500,
            r#"{"RequestId":"R","Code":"InternalError","Message":"oops"}"#,
            ServerError,
            Some("InternalError"),
        ),
        (
            404,
            r#"{"RequestId":"R","Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found."}"#,
            InvalidCredentials,
            Some("InvalidAccessKeyId.NotFound"),
        ),
        (
            400,
            r#"{"RequestId":"R","Code":"SignatureDoesNotMatch","Message":"The request signature does not conform to Aliyun standards. server string to sign is:ACS3-HMAC-SHA256\nabc"}"#,
            SignatureMismatch,
            Some("SignatureDoesNotMatch"),
        ),
        (
            400,
            r#"{"RequestId":"R","Code":"InvalidTimeStamp.Expired","Message":"Specified time stamp or date value is expired."}"#,
            ClockSkew,
            Some("InvalidTimeStamp.Expired"),
        ),
        (
            403,
            r#"{"RequestId":"R","Code":"Forbidden.RAM","Message":"User not authorized"}"#,
            Forbidden,
            Some("Forbidden.RAM"),
        ),
        (
            404,
            r#"{"RequestId":"R","Code":"InvalidAppId.NotFound","Message":"The specified AppId does not exist."}"#,
            AppNotFound,
            Some("InvalidAppId.NotFound"),
        ),
        (
            400,
            r#"{"RequestId":"R","Code":"InvalidChangeOrder.NotFound","Message":"gone"}"#,
            OrderNotFound,
            Some("InvalidChangeOrder.NotFound"),
        ),
        // SAE business failure inside 200.
        (
            200,
            r#"{"RequestId":"R","Success":false,"ErrorCode":"InvalidAppId.NotFound","Code":"404","Message":"The specified AppId does not exist."}"#,
            AppNotFound,
            Some("InvalidAppId.NotFound"),
        ),
        (
            200,
            r#"{"RequestId":"R","Success":false,"Code":"500","Message":"x"}"#,
            ServerError,
            None,
        ),
        (
            200,
            r#"{"RequestId":"R","Success":false,"Message":"x"}"#,
            BadRequest,
            None,
        ),
        // EDAS integer Code != 200 inside 200.
        (
            200,
            r#"{"RequestId":"R","Code":500,"Message":"system error"}"#,
            ServerError,
            None,
        ),
        (
            200,
            r#"{"RequestId":"R","Code":403,"Message":"no permission"}"#,
            Forbidden,
            None,
        ),
        (
            200,
            r#"{"RequestId":"R","Code":404,"Message":"app not found"}"#,
            AppNotFound,
            None,
        ),
        (
            200,
            r#"{"RequestId":"R","Code":"Throttling","Message":"slow down"}"#,
            Throttled,
            Some("Throttling"),
        ),
        // Non-JSON error bodies.
        (502, "<html>Bad Gateway</html>", ServerError, None),
        (429, "", Throttled, None),
        (401, "nope", InvalidCredentials, None),
    ];
    for (status, body, kind, code) in cases {
        for p in [Provider::Edas, Provider::Sae] {
            let e = err(p, *status, body);
            assert_eq!(e.kind, *kind, "{status} {body}");
            assert_eq!(e.code.as_deref(), *code, "{status} {body}");
            assert_eq!(e.http_status, Some(*status));
            assert!(!e.to_string().contains('\n'));
        }
    }
    let e = err(
        Provider::Edas,
        200,
        r#"{"RequestId":"R9","Code":500,"Message":"system error"}"#,
    );
    assert_eq!(
        e.to_string(),
        "ServerError: system error (Code 500) (RequestId R9, HTTP 200)"
    );
    let e = err(
        Provider::Sae,
        404,
        r#"{"RequestId":"R2","Code":"InvalidAppId.NotFound","Message":"The specified AppId does not exist."}"#,
    );
    assert_eq!(
        e.to_string(),
        "InvalidAppId.NotFound: The specified AppId does not exist. (RequestId R2, HTTP 404)"
    );
}

#[test]
fn pop_success_table() {
    for body in [
        r#"{"RequestId":"R","Code":200,"Message":"success","ChangeOrderList":{}}"#,
        r#"{"RequestId":"R","Code":"200","Success":true,"Data":{}}"#,
        r#"{"RequestId":"R","Success":true,"Data":{}}"#,
        r#"{"Data":{}}"#,
        r#"{"Code":"OK"}"#,
    ] {
        assert!(
            classify_reply(Provider::Sae, 200, body.as_bytes(), ErrorKind::AppNotFound).is_ok(),
            "{body}"
        );
    }
}

#[test]
fn bad_replies() {
    let e = err(Provider::Edas, 200, "{not json");
    assert_eq!(e.kind, ErrorKind::BadReply);
    assert_eq!(e.raw.as_deref(), Some("{not json"));
    assert_eq!(err(Provider::Sae, 200, "[1,2]").kind, ErrorKind::BadReply);
    assert_eq!(err(Provider::Appstack, 200, "").kind, ErrorKind::BadReply);
    assert_eq!(err(Provider::Appstack, 200, "null").kind, ErrorKind::BadReply);
}

#[test]
fn appstack_errors_table() {
    use ErrorKind::*;
    let cases: &[(u16, &str, ErrorKind, Option<&str>, &str)] = &[
        (
            401,
            r#"{"errorCode":"InvalidTokenError","errorMessage":"token is invalid"}"#,
            InvalidCredentials,
            Some("InvalidTokenError"),
            "token is invalid",
        ),
        (
            401,
            r#"{"errorCode":"ExpiredTokenError","errorDescription":"expired"}"#,
            InvalidCredentials,
            Some("ExpiredTokenError"),
            "expired",
        ),
        (
            401,
            r#"{"message":"Unauthorized"}"#,
            InvalidCredentials,
            None,
            "Unauthorized",
        ),
        (
            403,
            r#"{"errorCode":"ForbiddenOperation","errorMessage":"no"}"#,
            Forbidden,
            Some("ForbiddenOperation"),
            "no",
        ),
        (
            404,
            r#"{"errorCode":"NotFound","errorMessage":"app x not found"}"#,
            AppNotFound,
            Some("NotFound"),
            "app x not found",
        ),
        (
            429,
            r#"{"errorCode":"TooManyRequests","errorMessage":"slow"}"#,
            Throttled,
            Some("TooManyRequests"),
            "slow",
        ),
        (
            500,
            "Internal Server Error",
            ServerError,
            None,
            "Internal Server Error",
        ),
        (
            400,
            r#"{"errorCode":"BadRequest","errorMessage":"bad states"}"#,
            BadRequest,
            Some("BadRequest"),
            "bad states",
        ),
        (
            200,
            r#"{"success":false,"errorCode":"InvalidTokenError","errorMessage":"bad"}"#,
            InvalidCredentials,
            Some("InvalidTokenError"),
            "bad",
        ),
    ];
    for (status, body, kind, code, msg) in cases {
        let e = err(Provider::Appstack, *status, body);
        assert_eq!(e.kind, *kind, "{body}");
        assert_eq!(e.code.as_deref(), *code, "{body}");
        assert_eq!(e.message, *msg, "{body}");
    }
    let e = err(
        Provider::Appstack,
        401,
        r#"{"errorCode":"InvalidTokenError","errorMessage":"token is invalid"}"#,
    );
    assert_eq!(e.to_string(), "InvalidTokenError: token is invalid (HTTP 401)");
    assert!(
        classify_reply(
            Provider::Appstack,
            200,
            br#"{"records":[]}"#,
            ErrorKind::AppNotFound
        )
        .is_ok()
    );
}

proptest::proptest! {
    #[test]
    fn classify_reply_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256), status in 100u16..600) {
        for p in Provider::ALL {
            let _ = classify_reply(p, status, &body, ErrorKind::OrderNotFound);
        }
    }

    #[test]
    fn classify_reply_json_never_panics(
        code in proptest::option::of(".{0,20}"),
        num in proptest::option::of(proptest::num::i64::ANY),
        success in proptest::option::of(proptest::bool::ANY),
        status in 100u16..600,
    ) {
        let v = serde_json::json!({"Code": code, "ErrorCode": num, "Success": success, "success": success,
                                   "errorCode": code, "status": num, "Message": code});
        let body = serde_json::to_vec(&v).unwrap_or_default();
        for p in Provider::ALL {
            let _ = classify_reply(p, status, &body, ErrorKind::AppNotFound);
        }
    }
}
