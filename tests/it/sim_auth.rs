//! Gateway authentication over real HTTP, for both schemes: every refusal the cloud gives.

use crate::sim_support;

use changeorder_cloud::sign::Scheme;
use changeorder_sim::{Credential, Scenario};
use jiff::SignedDuration;
use sim_support::{Call, KEY_ID, SECRET, client, demo, sim_with};

const SCHEMES: [Scheme; 2] = [Scheme::V3, Scheme::Roa];

fn describe() -> Call {
    Call::sae("DescribeChangeOrder", &[("ChangeOrderId", "demo-sae-failed")])
}

#[tokio::test]
async fn good_signatures_pass() {
    let sim = demo().await;
    for scheme in SCHEMES {
        let r = describe().scheme(scheme).send(&sim).await;
        assert_eq!(
            (r.status, r.code()),
            (200, "OK".to_string()),
            "{scheme:?}: {}",
            r.text
        );
    }
    let s = sim.stats();
    assert_eq!(s.auth_schemes.get("ACS3-HMAC-SHA256"), Some(&1));
    assert_eq!(s.auth_schemes.get("acs"), Some(&1));
}

#[tokio::test]
async fn wrong_secret_shows_server_string_to_sign() {
    let sim = demo().await;
    for scheme in SCHEMES {
        let mut c = describe().scheme(scheme);
        c.secret = "not-the-secret".into();
        let r = c.send(&sim).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "SignatureDoesNotMatch".to_string()),
            "{scheme:?}"
        );
        let msg = r.json["Message"].as_str().unwrap_or("");
        assert!(msg.contains("server string to sign is:"), "{msg}");
        match scheme {
            Scheme::V3 => assert!(
                msg.contains("ACS3-HMAC-SHA256\n") && msg.contains("ChangeOrderId=demo-sae-failed"),
                "{msg}"
            ),
            Scheme::Roa => assert!(
                msg.contains("/pop/v1/sam/changeorder/DescribeChangeOrder?ChangeOrderId=demo-sae-failed"),
                "{msg}"
            ),
        }
    }
}

#[tokio::test]
async fn tampered_request_fails() {
    let sim = demo().await;
    for scheme in SCHEMES {
        // Signed for one order, sent asking for another.
        let mut c = describe().scheme(scheme);
        c.send_query = Some(vec![("ChangeOrderId".into(), "demo-sae-succeeded".into())]);
        let r = c.send(&sim).await;
        assert_eq!(r.code(), "SignatureDoesNotMatch", "{scheme:?}: {}", r.text);
        // A signed header changed after signing.
        let mut c = describe().scheme(scheme);
        c.extra_headers = vec![("x-acs-signature-nonce".into(), "changed".into())];
        assert_eq!(c.send(&sim).await.code(), "SignatureDoesNotMatch", "{scheme:?}");
    }
}

#[tokio::test]
async fn nonce_reuse_is_refused() {
    let sim = demo().await;
    for scheme in SCHEMES {
        let c = describe().scheme(scheme);
        assert_eq!(c.send(&sim).await.code(), "OK");
        let again = c.send(&sim).await;
        assert_eq!(
            (again.status, again.code()),
            (400, "SignatureNonceUsed".to_string()),
            "{scheme:?}"
        );
    }
}

#[tokio::test]
async fn clock_skew_over_15_minutes_is_refused() {
    let sim = demo().await;
    for scheme in SCHEMES {
        for (offset, want) in [
            (-16i64, "InvalidTimeStamp.Expired"),
            (16, "InvalidTimeStamp.Expired"),
            (-14, "OK"),
            (14, "OK"),
        ] {
            let mut c = describe().scheme(scheme);
            c.now += SignedDuration::from_mins(offset);
            let r = c.send(&sim).await;
            assert_eq!(r.code(), want, "{scheme:?} {offset} min: {}", r.text);
        }
    }
}

#[tokio::test]
async fn unknown_key_and_missing_auth() {
    let sim = demo().await;
    for scheme in SCHEMES {
        let mut c = describe().scheme(scheme);
        c.key_id = "LTAI-unknown".into();
        let r = c.send(&sim).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "InvalidAccessKeyId.NotFound".to_string())
        );
        let mut c = describe().scheme(scheme);
        c.drop_headers = vec!["authorization".into()];
        let r = c.send(&sim).await;
        assert_eq!((r.status, r.code()), (400, "IncompleteSignature".to_string()));
        let mut c = describe().scheme(scheme);
        c.drop_headers = vec!["x-acs-signature-nonce".into()];
        assert_eq!(c.send(&sim).await.code(), "IncompleteSignature");
    }
    let mut c = describe();
    c.extra_headers = vec![("authorization".into(), "Bearer abc".into())];
    assert_eq!(c.send(&sim).await.code(), "IncompleteSignature");
    // Completely unsigned (a plain curl).
    let r = client()
        .get(format!(
            "{}/pop/v1/sam/changeorder/DescribeChangeOrder?ChangeOrderId=x",
            sim.url()
        ))
        .header("x-acs-version", "2019-05-06")
        .header("x-acs-action", "DescribeChangeOrder")
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn action_and_version_must_match_the_path() {
    let sim = demo().await;
    for scheme in SCHEMES {
        let mut c = describe().scheme(scheme);
        c.version = "2017-08-01".into();
        let r = c.send(&sim).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "InvalidVersion".to_string()),
            "{scheme:?}"
        );
        let mut c = describe().scheme(scheme);
        c.action = "ListChangeOrders".into();
        let r = c.send(&sim).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "InvalidAction.NotFound".to_string()),
            "{scheme:?}"
        );
    }
    // Paths and methods the gateway does not know.
    let mut c = Call::edas_list("demo-edas-app");
    c.method = "GET";
    assert_eq!(c.send(&sim).await.code(), "InvalidAction.NotFound");
    let c = Call::new(
        "GET",
        "/pop/v1/sam/changeorder/ListNamespaceChangeOrders",
        "ListNamespaceChangeOrders",
        "2019-05-06",
        &[],
    );
    assert_eq!(
        c.send(&sim).await.code(),
        "InvalidAction.NotFound",
        "the real path has a lower-case l"
    );
    assert_eq!(sim.stats().unrouted, 2);
}

#[tokio::test]
async fn sts_tokens() {
    let scenario = Scenario::demo().expect("demo");
    let sim = sim_with(
        scenario,
        vec![
            Credential::new(KEY_ID, SECRET),
            Credential::sts("STS.temp", "temp-secret", "the-token"),
        ],
    )
    .await;
    for scheme in SCHEMES {
        let mut c = describe().scheme(scheme);
        c.key_id = "STS.temp".into();
        c.secret = "temp-secret".into();
        c.token = Some("the-token".into());
        assert_eq!(c.send(&sim).await.code(), "OK", "{scheme:?}");
        let mut wrong = c.clone();
        wrong.nonce = sim_support::nonce();
        wrong.token = Some("other".into());
        assert_eq!(
            wrong.send(&sim).await.code(),
            "InvalidSecurityToken.MismatchWithAccessKey"
        );
        let mut missing = c.clone();
        missing.nonce = sim_support::nonce();
        missing.token = None;
        assert_eq!(
            missing.send(&sim).await.code(),
            "InvalidSecurityToken.MismatchWithAccessKey"
        );
        // A token on a long-term key is refused too.
        let mut plain = describe().scheme(scheme);
        plain.token = Some("the-token".into());
        assert_eq!(
            plain.send(&sim).await.code(),
            "InvalidSecurityToken.MismatchWithAccessKey"
        );
    }
}

#[tokio::test]
async fn unsigned_x_acs_header_is_incomplete() {
    let sim = demo().await;
    let mut c = describe();
    c.extra_headers = vec![("x-acs-extra".into(), "sneaky".into())];
    let r = c.send(&sim).await;
    assert_eq!(r.code(), "IncompleteSignature", "{}", r.text);
    assert!(r.text.contains("x-acs-extra"));
}

/// STS `GetCallerIdentity` as the real STS answers it: signed (RPC, HMAC-SHA1) with the key
/// asked about, the account from the scenario's `accounts`, every other key in the default
/// account, and a wrong secret next to a real key id refused.
#[tokio::test]
async fn get_caller_identity_names_the_account_of_a_signed_key() {
    use changeorder_cloud::{ClientConfig, Credentials, ErrorKind};
    let scenario = Scenario::from_yaml(
        "accounts:\n  - id: \"2000000000000002\"\n    accessKeys: [key-a, key-b]\napps: []\n",
    )
    .expect("scenario");
    let sim = sim_with(
        scenario,
        vec![
            Credential::new("key-a", "secret-a"),
            Credential::new("key-b", "secret-b"),
            Credential::new(KEY_ID, SECRET),
        ],
    )
    .await;
    let sts = changeorder_cloud::sts::StsClient::new(&sim.url(), &ClientConfig::default()).expect("client");
    let key = |id: &str, secret: &str| Credentials::AccessKey {
        access_key_id: id.into(),
        access_key_secret: secret.into(),
        security_token: None,
    };
    let a = sts
        .get_caller_identity(&key("key-a", "secret-a"))
        .await
        .expect("key-a");
    let b = sts
        .get_caller_identity(&key("key-b", "secret-b"))
        .await
        .expect("key-b");
    assert_eq!(
        (a.account_id.as_str(), b.account_id.as_str()),
        ("2000000000000002", "2000000000000002")
    );
    assert_eq!(a.identity_type, "RAMUser");
    assert!(a.arn.starts_with("acs:ram::2000000000000002:user/"), "{}", a.arn);
    let other = sts
        .get_caller_identity(&key(KEY_ID, SECRET))
        .await
        .expect("default account");
    assert_eq!(other.account_id, changeorder_sim::accounts::DEFAULT_ACCOUNT_ID);
    // Someone else's key id with a wrong secret proves nothing.
    let borrowed = sts
        .get_caller_identity(&key("key-a", "guessed"))
        .await
        .unwrap_err();
    assert_eq!(borrowed.kind, ErrorKind::SignatureMismatch, "{borrowed}");
    assert!(!borrowed.to_string().contains("guessed"), "{borrowed}");
    let unknown = sts.get_caller_identity(&key("nobody", "x")).await.unwrap_err();
    assert_eq!(unknown.kind, ErrorKind::InvalidCredentials, "{unknown}");
    // An STS token on a long-term key is refused as the gateway refuses it.
    let with_token = Credentials::AccessKey {
        access_key_id: "key-a".into(),
        access_key_secret: "secret-a".into(),
        security_token: Some("t".into()),
    };
    assert_eq!(
        sts.get_caller_identity(&with_token)
            .await
            .unwrap_err()
            .code
            .as_deref(),
        Some("InvalidSecurityToken.MismatchWithAccessKey")
    );
    assert_eq!(sim.calls("sts", "GetCallerIdentity"), 6);
}
