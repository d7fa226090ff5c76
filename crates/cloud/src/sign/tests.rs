use super::*;

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

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

#[test]
fn v3_official_vector_darabonba() {
    let query = pairs(&[("test", "ok"), ("empty", "")]);
    let headers = pairs(&[("x-acs-test", "http"), ("x-acs-TEST", "https")]);
    let sig = v3_sign(&vector_request("GET", &query, &headers), "secret");
    assert_eq!(
        sig.canonical_request,
        "GET\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n\
         55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
    );
    assert_eq!(
        sig.signature,
        "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
    );
    assert_eq!(
        v3_authorization("acesskey", &sig),
        "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,\
         Signature=d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
    );
}

#[test]
fn v3_official_vector_go_empty_method() {
    let query = pairs(&[("test", "ok"), ("empty", "")]);
    let headers = pairs(&[("x-acs-test", "http"), ("x-acs-TEST", "https")]);
    let sig = v3_sign(&vector_request("", &query, &headers), "secret");
    assert_eq!(
        sig.signature,
        "4ab59fffe3c5738ff8a2729f90cc04fe18b02a4b15b2102cbaf92f9ff3df2ea3"
    );
}

#[test]
fn roa_official_vector_empty() {
    let sts = roa_string_to_sign("GET", "", &[], &[]);
    assert_eq!(sts, "GET\n\n\n\n\n");
    assert_eq!(roa_signature(&sts, "secret"), "XGXDWA78AEvx/wmfxKoVCq/afWw=");
}

#[test]
fn roa_official_vector_go_sdk() {
    let headers = pairs(&[
        ("Accept", "application/json"),
        ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
        ("Content-Type", "application/octet-stream"),
        ("Date", "mock date"),
        ("x-acs-version", ""),
        ("x-acs-signature-version", "1.0"),
        ("X-Acs-Signature-Method", "HMAC-SHA1"),
        ("x-acs-credentials-provider", "static_ak"),
        ("host", "not part of ROA"),
    ]);
    let sts = roa_string_to_sign("GET", "/users/:user", &[], &headers);
    assert_eq!(
        sts,
        "GET\napplication/json\n1B2M2Y8AsgTpgAmY7PhCfg==\napplication/octet-stream\nmock date\n\
         x-acs-credentials-provider:static_ak\nx-acs-signature-method:HMAC-SHA1\n\
         x-acs-signature-version:1.0\nx-acs-version:\n/users/:user"
    );
    assert_eq!(
        roa_signature(&sts, "accessKeySecret"),
        "PPPSwv0LPoLvg6rGxp7dd4uPESo="
    );
}

#[test]
fn roa_resource_sorts_and_does_not_encode() {
    let q = pairs(&[("b", "x y"), ("a", ""), ("c", "1/2")]);
    assert_eq!(roa_canonical_resource("/p", &q), "/p?a&b=x y&c=1/2");
    assert_eq!(roa_canonical_resource("/p", &[]), "/p");
}

#[test]
fn percent_encoding_table() {
    for (raw, enc) in [
        ("", ""),
        ("abcXYZ019", "abcXYZ019"),
        ("-_.~", "-_.~"),
        (" ", "%20"),
        ("*", "%2A"),
        ("+", "%2B"),
        ("/", "%2F"),
        ("a=b&c", "a%3Db%26c"),
        ("中", "%E4%B8%AD"),
        ("%", "%25"),
    ] {
        assert_eq!(percent_encode(raw), enc, "{raw:?}");
        assert_eq!(percent_decode(enc), raw, "{enc:?}");
    }
    assert_eq!(percent_encode_path("/a b/c*"), "/a%20b/c%2A");
}

#[test]
fn query_parse_and_canonicalise() {
    let q = parse_query("b=2&a=%20x&empty=&bare&&c=a%2Ab");
    assert_eq!(
        q,
        pairs(&[("b", "2"), ("a", " x"), ("empty", ""), ("bare", ""), ("c", "a*b")])
    );
    assert_eq!(v3_canonical_query(&q), "a=%20x&b=2&bare=&c=a%2Ab&empty=");
    assert_eq!(encode_query(&pairs(&[("k", "a b*")])), "k=a%20b%2A");
}

#[test]
fn default_signed_headers() {
    let h = pairs(&[
        ("Host", "x"),
        ("x-acs-date", "d"),
        ("Content-Type", "application/json"),
        ("user-agent", "u"),
        ("X-Acs-Action", "a"),
        ("authorization", "z"),
    ]);
    assert_eq!(
        v3_default_signed_headers(&h),
        vec!["content-type", "host", "x-acs-action", "x-acs-date"]
    );
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
fn sign_request_roa_with_body() {
    let mut i = input(Scheme::Roa, None);
    i.body = b"";
    let no_body = sign_request(&i);
    assert!(get(&no_body.headers, "content-type").is_none());
    i.body = b"x=1";
    i.content_type = Some("application/x-www-form-urlencoded");
    let s = sign_request(&i);
    assert_eq!(get(&s.headers, "content-md5"), Some(content_md5(b"x=1").as_str()));
    assert!(s.string_to_sign.contains("application/x-www-form-urlencoded\n"));
}

#[test]
fn content_md5_of_empty_matches_go_vector_value() {
    assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
}

proptest::proptest! {
    #[test]
    fn encode_decode_round_trip(s in ".*") {
        let enc = percent_encode(&s);
        proptest::prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
        proptest::prop_assert_eq!(percent_decode(&enc), s);
    }

    #[test]
    fn parsers_never_panic(s in ".*") {
        let _ = parse_query(&s);
        let _ = roa_string_to_sign(&s, &s, &[(s.clone(), s.clone())], &[(s.clone(), s.clone())]);
    }
}

/// The RPC example of Alibaba Cloud's signature documentation (ECS DescribeRegions).
#[test]
fn rpc_documented_vector() {
    let params = pairs(&[
        ("AccessKeyId", "testid"),
        ("Action", "DescribeRegions"),
        ("Format", "XML"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", "2016-02-23T12:46:24Z"),
        ("Version", "2014-05-26"),
    ]);
    let sts = rpc_string_to_sign("GET", &params);
    assert_eq!(
        sts,
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
    );
    assert_eq!(rpc_signature(&sts, "testsecret"), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    // The signature itself is never part of what is signed.
    let mut with = params.clone();
    with.push(("Signature".into(), "x".into()));
    assert_eq!(rpc_string_to_sign("get", &with), sts);
}
