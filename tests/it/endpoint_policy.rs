//! Issue 21, part 1, against a real kube-apiserver: under the operator's default endpoint
//! policy a watch cannot point the operator at a host a tenant owns, and the operator's own STS
//! endpoint is the administrator's, outside the watches' policy.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use changeorder_cloud::policy::EndpointPolicy;
use changeorder_operator::controller::Settings;
use changeorder_operator::crd::ChangeOrderWatch;
use support::operator::*;

/// A TCP listener that counts the connections it accepts (and closes them at once).
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (port, accepted)
}

/// Every watch here is refused by the default policy: Function Compute triggers and OSS
/// buckets named like a product (hosts customers own under aliyuncs.com), a region that turns
/// the default host into a bucket's, path prefixes, plain http and IP literals (a local
/// listener proves no connection is opened for those).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policy_refuses_hosts_tenants_own() {
    let ns = namespace("tenant-hosts").await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let (port, accepted) = counting_listener().await;
    let watches = [
        (
            "oss-bucket",
            serde_json::json!({"provider": "sae", "endpoint": "https://sae.oss-cn-hangzhou.aliyuncs.com"}),
        ),
        (
            "oss-bucket-edas",
            serde_json::json!({"provider": "edas", "endpoint": "https://edas.oss-cn-shanghai.aliyuncs.com/"}),
        ),
        (
            "fc-trigger",
            serde_json::json!({"provider": "edas", "endpoint": "https://1234567890123456.cn-hangzhou.fc.aliyuncs.com/2016-08-15/proxy/s/f/"}),
        ),
        (
            "oss-region",
            serde_json::json!({"provider": "sae", "region": "oss-cn-hangzhou"}),
        ),
        (
            "path-prefix",
            serde_json::json!({"provider": "sae", "endpoint": "https://sae.cn-hangzhou.aliyuncs.com/tenant/path"}),
        ),
        (
            "suffix",
            serde_json::json!({"provider": "sae", "endpoint": "https://sae.cn-hangzhou.aliyuncs.com.evil.example"}),
        ),
        (
            "local-http",
            serde_json::json!({"provider": "sae", "endpoint": format!("http://127.0.0.1:{port}")}),
        ),
        (
            "local-https",
            serde_json::json!({"provider": "edas", "endpoint": format!("https://127.0.0.1:{port}")}),
        ),
    ];
    for (name, spec) in &watches {
        let mut spec = spec.clone();
        spec["appId"] = "app".into();
        spec["credentialsSecretRef"] = serde_json::json!({"name": "cloud"});
        create_watch(&ns, name, spec).await;
    }
    let settings = Settings {
        allowed_endpoints: EndpointPolicy::default(),
        ..fast_settings()
    };
    let op = Operator::start(ns.client(), ns.name(), settings).await;
    for (name, _) in &watches {
        wait_watch_ready(&ns, name, "False", "EndpointNotAllowed").await;
    }
    let w: ChangeOrderWatch = ns.api().get("oss-bucket").await.expect("watch");
    let message = w
        .status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains("sae.oss-cn-hangzhou.aliyuncs.com") && message.contains("--allowed-endpoints"),
        "the message names the endpoint and the flag: {message}"
    );
    // Several poll intervals (2 s) and error backoffs (up to 4 s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "no connection was opened");
    assert_eq!(op.calls.total(), 0, "no cloud call was attempted");
    assert!(orders(&ns).await.is_empty());
}

/// The STS endpoint is an operator setting: a keyless watch works when the watches' policy
/// admits its endpoint but not the STS host, and the policy need not be widened for STS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sts_endpoint_is_not_the_watches_policy() {
    support::logs::init();
    let ns = namespace("sts-outside").await;
    let sim = crate::keyless::keyless_sim(None, false).await;
    crate::keyless::service_account(&ns, "poller", true).await;
    create_watch(
        &ns,
        "edas",
        crate::keyless::sa_watch(&sim, "kl-edas", serde_json::json!({"name": "poller"})),
    )
    .await;
    let mut settings = crate::keyless::keyless_settings(&sim, Duration::from_secs(60));
    // The same simulator as STS under a name the watches' policy (http://127.0.0.1:*) refuses.
    settings.keyless.sts_endpoint = sim.url().replace("127.0.0.1", "localhost");
    let _op = Operator::start(ns.client(), ns.name(), settings).await;
    wait_watch_ready(&ns, "edas", "True", "Polled").await;
    assert!(sim.calls("sts", "AssumeRoleWithOIDC") >= 1);
}
