use super::*;
use changeorder_cloud::sign::*;

const VECTOR_PAYLOAD: &str = "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23";

fn vector_request<'a>(
    method: &'a str,
    query: &'a [(String, String)],
    headers: &'a [(String, String)],
) -> V3Request<'a> {
    V3Request {
        method,
        path: "",
        query,
        headers,
        signed_headers: None,
        payload_hash: VECTOR_PAYLOAD,
    }
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn input(scheme: Scheme, token: Option<&'static str>) -> SignInput<'static> {
    SignInput {
        scheme,
        method: "POST",
        host: "edas.cn-hangzhou.aliyuncs.com",
        path: "/pop/v5/changeorder/change_order_list",
        query: Box::leak(Box::new(pairs(&[("AppId", "app 1")]))),
        body: b"",
        content_type: None,
        action: "ListRecentChangeOrder",
        version: "2017-08-01",
        access_key_id: "AKID",
        access_key_secret: "s3cr3t",
        security_token: token,
        now: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        nonce: "nonce-1",
    }
}

fn get<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    header_value(h, name)
}

#[test]
fn v3_server_recomputes_with_names_from_authorization() {
    let query = pairs(&[("test", "ok"), ("empty", "")]);
    let headers = pairs(&[
        ("x-acs-test", "http"),
        ("X-ACS-TEST", "https"),
        ("user-agent", "not signed"),
    ]);
    let auth =
        parse_v3_authorization("ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,Signature=abc")
            .unwrap();
    assert_eq!(auth.access_key_id, "acesskey");
    assert_eq!(auth.signed_headers, vec!["x-acs-test".to_string()]);
    let mut req = vector_request("GET", &query, &headers);
    req.signed_headers = Some(&auth.signed_headers);
    let sig = v3_sign(&req, "secret");
    assert_eq!(
        sig.signature,
        "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
    );
    assert!(sig.string_to_sign.starts_with("ACS3-HMAC-SHA256\n"));
}

#[test]
fn parse_v3_authorization_rejects_incomplete() {
    for bad in [
        "",
        "ACS3-HMAC-SHA256",
        "ACS3-HMAC-SHA256Credential=a,SignedHeaders=b,Signature=c",
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=b",
        "ACS3-HMAC-SHA256 Credential=,SignedHeaders=b,Signature=c",
        "acs a:b",
    ] {
        assert!(parse_v3_authorization(bad).is_none(), "{bad:?}");
    }
    let ok = parse_v3_authorization(
        "ACS3-HMAC-SHA256 Credential=id, SignedHeaders=host;X-Acs-Date , Signature=ff",
    )
    .unwrap();
    assert_eq!(ok.signed_headers, vec!["host", "x-acs-date"]);
}

#[test]
fn roa_authorization_round_trip() {
    let a = roa_authorization("LTAI123", "abc/def+==");
    assert_eq!(a, "acs LTAI123:abc/def+==");
    assert_eq!(
        parse_roa_authorization(&a),
        Some(("LTAI123".to_string(), "abc/def+==".to_string()))
    );
    assert!(parse_roa_authorization("acs :x").is_none());
    assert!(parse_roa_authorization("ACS3-HMAC-SHA256 x").is_none());
}

#[test]
fn sign_request_v3_verifies_server_side() {
    let signed = sign_request(&input(Scheme::V3, Some("sts-token")));
    let h = &signed.headers;
    assert_eq!(get(h, "x-acs-date"), Some("2023-11-14T22:13:20Z"));
    assert_eq!(get(h, "x-acs-content-sha256"), Some(EMPTY_PAYLOAD_SHA256));
    assert_eq!(get(h, "x-acs-security-token"), Some("sts-token"));
    assert!(get(h, "content-type").is_none());
    let auth = parse_v3_authorization(get(h, "authorization").unwrap()).unwrap();
    assert_eq!(auth.access_key_id, "AKID");
    assert!(auth.signed_headers.contains(&"x-acs-security-token".to_string()));
    assert!(auth.signed_headers.contains(&"host".to_string()));
    // Server: recompute from what it received (decoded query, all headers).
    let received = parse_query("AppId=app%201");
    let server = v3_sign(
        &V3Request {
            method: "POST",
            path: "/pop/v5/changeorder/change_order_list",
            query: &received,
            headers: h,
            signed_headers: Some(&auth.signed_headers),
            payload_hash: get(h, "x-acs-content-sha256").unwrap(),
        },
        "s3cr3t",
    );
    assert!(constant_time_eq(&server.signature, &auth.signature));
    assert_eq!(server.canonical_request, signed.string_to_sign);
    let wrong = v3_sign(
        &V3Request {
            method: "POST",
            path: "/pop/v5/changeorder/change_order_list",
            query: &received,
            headers: h,
            signed_headers: Some(&auth.signed_headers),
            payload_hash: EMPTY_PAYLOAD_SHA256,
        },
        "other",
    );
    assert!(!constant_time_eq(&wrong.signature, &auth.signature));
}

#[test]
fn sign_request_v3_with_body_signs_content_type() {
    let mut i = input(Scheme::V3, None);
    i.body = b"{}";
    i.content_type = Some("application/json");
    let signed = sign_request(&i);
    assert_eq!(
        get(&signed.headers, "x-acs-content-sha256"),
        Some(sha256_hex(b"{}").as_str())
    );
    assert!(get(&signed.headers, "x-acs-security-token").is_none());
    let auth = parse_v3_authorization(get(&signed.headers, "authorization").unwrap()).unwrap();
    assert_eq!(
        auth.signed_headers,
        vec![
            "content-type",
            "host",
            "x-acs-action",
            "x-acs-content-sha256",
            "x-acs-date",
            "x-acs-signature-nonce",
            "x-acs-version"
        ]
    );
}

#[test]
fn sign_request_roa_verifies_server_side() {
    let signed = sign_request(&input(Scheme::Roa, Some("tok")));
    let h = &signed.headers;
    assert_eq!(get(h, "date"), Some("Tue, 14 Nov 2023 22:13:20 GMT"));
    assert_eq!(get(h, "x-acs-security-token"), Some("tok"));
    assert!(get(h, "content-md5").is_none());
    let (id, sig) = parse_roa_authorization(get(h, "authorization").unwrap()).unwrap();
    assert_eq!(id, "AKID");
    let received = parse_query("AppId=app%201");
    // The Authorization header itself is not an x-acs-* header, so passing every received
    // header is fine.
    let sts = roa_string_to_sign("POST", "/pop/v5/changeorder/change_order_list", &received, h);
    assert_eq!(sts, signed.string_to_sign);
    assert!(sts.ends_with("/pop/v5/changeorder/change_order_list?AppId=app 1"));
    assert!(constant_time_eq(&roa_signature(&sts, "s3cr3t"), &sig));
}

#[test]
fn constant_time_eq_table() {
    assert!(constant_time_eq("", ""));
    assert!(constant_time_eq("abc", "abc"));
    assert!(!constant_time_eq("abc", "abd"));
    assert!(!constant_time_eq("abc", "ab"));
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(s in ".*") {
        let _ = parse_v3_authorization(&s);
        let _ = parse_roa_authorization(&s);
    }
}
