//! Keyless (RRSA) credentials: the OIDC token exchanged at a stub STS over real HTTP.

use crate::support;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use changeorder_cloud::sts::{OidcConfig, OidcProvider};
use changeorder_cloud::{ClientConfig, Credentials, ErrorKind};
use serde_json::json;
use support::stub::{Req, Resp, start};

fn token_file(token: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(token.as_bytes()).unwrap();
    f
}

fn config(endpoint: String, file: &tempfile::NamedTempFile) -> OidcConfig {
    OidcConfig {
        role_arn: "acs:ram::123:role/changeorder".into(),
        oidc_provider_arn: "acs:ram::123:oidc-provider/ack-rrsa".into(),
        token_file: file.path().to_path_buf(),
        sts_endpoint: endpoint,
        role_session_name: "changeorder-operator".into(),
        duration_seconds: 3600,
    }
}

fn form(req: &Req) -> Vec<(String, String)> {
    changeorder_cloud::sign::parse_query(&String::from_utf8_lossy(&req.body))
}

fn sts(expires_in: i64) -> impl Fn(&Req) -> Resp + Send + Sync + 'static {
    let n = Arc::new(AtomicUsize::new(0));
    move |req: &Req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let f = form(req);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("OIDCToken").as_deref() != Some("eyJ.oidc.token") {
            return Resp::pop_error(
                400,
                "AuthenticationFail.OIDCToken.Invalid",
                "the OIDC token eyJ.bad is invalid",
            );
        }
        let expiration = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(expires_in))
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        Resp::json(
            200,
            json!({"RequestId": "R", "Credentials": {"AccessKeyId": format!("STS.id{i}"), "AccessKeySecret": "sec",
                   "SecurityToken": "tok", "Expiration": expiration}}),
        )
    }
}

#[tokio::test]
async fn exchanges_once_and_caches() {
    let stub = start(sts(3600)).await;
    let file = token_file("eyJ.oidc.token\n");
    let p = OidcProvider::new(config(stub.url(), &file), &ClientConfig::default()).unwrap();
    let c = p.credentials().await.unwrap();
    assert_eq!(
        c,
        Credentials::AccessKey {
            access_key_id: "STS.id0".into(),
            access_key_secret: "sec".into(),
            security_token: Some("tok".into()),
        }
    );
    assert_eq!(p.credentials().await.unwrap(), c);
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.param("Action"), Some("AssumeRoleWithOIDC"));
    assert_eq!(r.param("Version"), Some("2015-04-01"));
    assert_eq!(r.param("Format"), Some("JSON"));
    assert!(r.param("Timestamp").is_some_and(|t| t.ends_with('Z')));
    assert!(r.header("authorization").is_none(), "the exchange is unsigned");
    let f = form(r);
    let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "RoleArn",
            "OIDCProviderArn",
            "OIDCToken",
            "RoleSessionName",
            "DurationSeconds"
        ]
    );
    assert_eq!(f[0].1, "acs:ram::123:role/changeorder");
    assert_eq!(f[4].1, "3600");
}

#[tokio::test]
async fn refreshes_when_little_time_remains() {
    let stub = start(sts(120)).await;
    let file = token_file("eyJ.oidc.token");
    let p = OidcProvider::new(config(stub.url(), &file), &ClientConfig::default()).unwrap();
    assert_eq!(p.credentials().await.unwrap().access_key_id(), Some("STS.id0"));
    assert_eq!(p.credentials().await.unwrap().access_key_id(), Some("STS.id1"));
    assert_eq!(stub.count(), 2);
}

#[tokio::test]
async fn rejected_token_is_invalid_credentials_without_the_token() {
    let stub = start(sts(3600)).await;
    let file = token_file("eyJ.bad");
    let p = OidcProvider::new(config(stub.url(), &file), &ClientConfig::default()).unwrap();
    let e = p.credentials().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials);
    assert_eq!(e.code.as_deref(), Some("AuthenticationFail.OIDCToken.Invalid"));
    assert!(!e.to_string().contains("eyJ.bad"), "{e}");

    let missing = config(stub.url(), &file);
    let missing = OidcConfig {
        token_file: "/nonexistent/oidc-token".into(),
        ..missing
    };
    let e = OidcProvider::new(missing, &ClientConfig::default())
        .unwrap()
        .credentials()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials);
    assert!(e.to_string().contains("/nonexistent/oidc-token"), "{e}");
}
