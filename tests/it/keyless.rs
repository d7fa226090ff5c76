//! Issue 10, keyless credentials, against a real kube-apiserver: the operator mints
//! ServiceAccount tokens with the TokenRequest API and exchanges them at the simulator's STS,
//! which verifies them against the API server's own `/openid/v1/jwks`; the operator's own
//! identity through the simulated ECS metadata service; and the failures each named.
//!
//! All tests of this binary log into one buffer (debug level), which the leak test searches
//! for every issued secret and for any JWT.

use crate::support;

use std::io::Write as _;
use std::time::{Duration, Instant};

use changeorder_cloud::chain::ChainConfig;
use changeorder_cloud::credentials::Credentials;
use changeorder_cloud::imds::ImdsConfig;
use changeorder_operator::controller::Settings;
use changeorder_operator::controller::identity::KeylessSettings;
use changeorder_operator::crd::ChangeOrderWatch;
use changeorder_operator::probe::{ProbeArgs, run as probe};
use changeorder_sim::imds::EcsRoleConfig;
use changeorder_sim::sts::{Jwks, OidcRole, RRSA_AUDIENCE, StsConfig};
use changeorder_sim::{self as sim, RunningSim, Scenario, SimConfig};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{DeleteParams, PostParams};
use support::cluster::{TestCluster, TestNamespace, eventually};
use support::operator::*;

const ROLE: &str = "acs:ram::1234567890123456:role/changeorder-reader";
const PROVIDER: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-test";
/// A role whose trust policy admits one subject that no test uses: STS refuses everyone else.
const NARROW_ROLE: &str = "acs:ram::1234567890123456:role/narrow";

const SCENARIO: &str = r#"
timeZone: "+08:00"
apps:
  - provider: edas
    appId: kl-edas
    changeOrders:
      - { id: kl-1, createdAt: -5m, status: 2 }
      - { id: kl-2, createdAt: -9m, status: 2 }
  - provider: sae
    appId: kl-sae
    changeOrders:
      - { id: kl-sae-1, createdAt: -5m, status: 2 }
"#;

// ---- log capture ----

fn log_text() -> String {
    support::logs::init().text()
}

// ---- the simulator's side of RRSA ----

/// The API server's service-account issuer and keys, as an OIDC provider in RAM would hold them.
fn issuer_and_jwks(cluster: &TestCluster) -> (String, Jwks) {
    let raw = |path: &str| {
        let out = cluster
            .kubectl()
            .args(["get", "--raw", path])
            .output()
            .expect("kubectl get --raw");
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let discovery: serde_json::Value =
        serde_json::from_str(&raw("/.well-known/openid-configuration")).expect("discovery JSON");
    let issuer = discovery["issuer"].as_str().expect("issuer").to_string();
    let jwks = Jwks::parse(&raw("/openid/v1/jwks")).expect("JWKS");
    (issuer, jwks)
}

pub(crate) async fn keyless_sim(max_duration: Option<Duration>, ecs: bool) -> RunningSim {
    keyless_sim_with(SCENARIO, max_duration, ecs).await
}

async fn keyless_sim_with(scenario: &str, max_duration: Option<Duration>, ecs: bool) -> RunningSim {
    let cluster = TestCluster::get();
    let (issuer, jwks) = issuer_and_jwks(cluster);
    let mut config = SimConfig::new(Scenario::from_yaml(scenario).expect("scenario"));
    config.sts = Some(StsConfig {
        jwks,
        issuer,
        audience: RRSA_AUDIENCE.into(),
        roles: vec![
            OidcRole {
                role_arn: ROLE.into(),
                oidc_provider_arn: PROVIDER.into(),
                subjects: vec![],
            },
            OidcRole {
                role_arn: NARROW_ROLE.into(),
                oidc_provider_arn: PROVIDER.into(),
                subjects: vec!["system:serviceaccount:elsewhere:someone".into()],
            },
        ],
        max_duration,
        refuse_all: false,
    });
    if ecs {
        config.ecs_role = Some(EcsRoleConfig {
            role_name: "node-role".into(),
            duration: Duration::from_secs(3600),
        });
    }
    sim::start(config).await.expect("simulator starts")
}

pub(crate) fn keyless_settings(sim: &RunningSim, margin: Duration) -> Settings {
    Settings {
        keyless: KeylessSettings {
            sts_endpoint: sim.url(),
            refresh_margin: margin,
            ..KeylessSettings::default()
        },
        ..fast_settings()
    }
}

pub(crate) async fn service_account(ns: &TestNamespace, name: &str, annotated: bool) {
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.into());
    if annotated {
        sa.metadata.annotations = Some(
            [
                ("changeorder.io/role-arn".to_string(), ROLE.to_string()),
                (
                    "changeorder.io/oidc-provider-arn".to_string(),
                    PROVIDER.to_string(),
                ),
            ]
            .into(),
        );
    }
    ns.api::<ServiceAccount>()
        .create(&PostParams::default(), &sa)
        .await
        .expect("create ServiceAccount");
}

pub(crate) fn sa_watch(sim: &RunningSim, app: &str, sa: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"provider": "edas", "endpoint": sim.url(), "appId": app, "serviceAccountRef": sa})
}

async fn ready_message(ns: &TestNamespace, name: &str) -> String {
    let w: ChangeOrderWatch = ns.api().get(name).await.expect("watch");
    w.status
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default()
}

/// A counter of the operator's metrics, summed over the series matching all `parts`.
fn metric(op: &Operator, name: &str, parts: &[&str]) -> u64 {
    op.metrics
        .encode()
        .lines()
        .filter(|l| l.starts_with(name) && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

// ---- tests ----

/// A ServiceAccount (role from its annotations) syncs orders; with credentials that live 12 s
/// and an 8 s refresh margin, the operator exchanges again every few seconds and no poll fails —
/// without the refresh, every poll after the 12th second would get InvalidSecurityToken.Expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_watch_syncs_and_refreshes_before_expiry() {
    support::logs::init();
    let ns = namespace("kl-sync").await;
    let sim = keyless_sim(Some(Duration::from_secs(12)), false).await;
    service_account(&ns, "poller", true).await;
    create_watch(
        &ns,
        "edas",
        sa_watch(&sim, "kl-edas", serde_json::json!({"name": "poller"})),
    )
    .await;
    let op = Operator::start(
        ns.client(),
        ns.name(),
        keyless_settings(&sim, Duration::from_secs(8)),
    )
    .await;
    wait_watch_ready(&ns, "edas", "True", "Polled").await;
    eventually("both orders mirrored", Duration::from_secs(30), || async {
        (orders(&ns).await.len() == 2).then_some(())
    })
    .await;

    let started = Instant::now();
    let sts_before = sim.calls("sts", "AssumeRoleWithOIDC");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let exchanges = sim.calls("sts", "AssumeRoleWithOIDC") - sts_before;
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!("{exchanges} STS exchanges in {elapsed:.0}s (lifetime 12s, margin 8s)");
    // One every 4-6 s (refresh at >= 4 s of age, on the 2 s poll grid).
    assert!(
        (4..=10).contains(&exchanges),
        "{exchanges} exchanges in {elapsed:.0}s"
    );
    let stats = sim.stats();
    assert_eq!(
        stats.outcome("edas", "ListRecentChangeOrder", "InvalidSecurityToken.Expired"),
        0,
        "a poll used expired credentials"
    );
    let failed = metric(&op, "changeorder_polls_total", &[])
        - metric(&op, "changeorder_polls_total", &["result=\"ok\""]);
    assert_eq!(failed, 0, "{}", op.metrics.encode());
    assert!(metric(&op, "changeorder_polls_total", &["result=\"ok\""]) >= 10);
    let tokens = metric(
        &op,
        "changeorder_identity_calls_total",
        &["step=\"token_request\"", "result=\"ok\""],
    );
    let assumed = metric(
        &op,
        "changeorder_identity_calls_total",
        &["step=\"sts\"", "result=\"ok\""],
    );
    assert_eq!(tokens, assumed, "one fresh token per exchange");
    assert_eq!(assumed, sim.calls("sts", "AssumeRoleWithOIDC"));
    let w: ChangeOrderWatch = ns.api().get("edas").await.expect("watch");
    assert_eq!(watch_ready(&w), Some(("True".into(), "Polled".into())));
}

/// At the real lifetime (3600 s) one identity costs one TokenRequest and one STS call, however
/// many polls and watches use it: two watches, ~20 polls, one exchange.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exchange_serves_every_poll_of_an_identity() {
    support::logs::init();
    let ns = namespace("kl-count").await;
    let sim = keyless_sim(None, false).await;
    service_account(&ns, "poller", false).await;
    let by_fields = serde_json::json!({"name": "poller", "roleArn": ROLE, "oidcProviderArn": PROVIDER});
    create_watch(&ns, "edas", sa_watch(&sim, "kl-edas", by_fields.clone())).await;
    let mut sae = sa_watch(&sim, "kl-sae", by_fields);
    sae["provider"] = "sae".into();
    create_watch(&ns, "sae", sae).await;
    let op = Operator::start(
        ns.client(),
        ns.name(),
        keyless_settings(&sim, Duration::from_secs(180)),
    )
    .await;
    wait_watch_ready(&ns, "edas", "True", "Polled").await;
    wait_watch_ready(&ns, "sae", "True", "Polled").await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    let polls = metric(&op, "changeorder_polls_total", &["result=\"ok\""]);
    assert!(polls >= 8, "{polls} polls");
    assert_eq!(sim.calls("sts", "AssumeRoleWithOIDC"), 1);
    assert_eq!(
        metric(
            &op,
            "changeorder_identity_calls_total",
            &["step=\"token_request\""]
        ),
        1
    );
    eprintln!("{polls} polls, 1 TokenRequest, 1 STS call");
}

/// Each way keyless can fail gives Ready=False with a reason and a message naming the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_failures_name_their_cause() {
    support::logs::init();
    let ns = namespace("kl-fail").await;
    let other = namespace("kl-other").await;
    let sim = keyless_sim(None, false).await;
    service_account(&ns, "poller", true).await;
    service_account(&other, "theirs", true).await;
    let wrong_role = "acs:ram::1234567890123456:role/not-a-role";
    create_watch(
        &ns,
        "wrong-role",
        sa_watch(
            &sim,
            "kl-edas",
            serde_json::json!({"name": "poller", "roleArn": wrong_role}),
        ),
    )
    .await;
    create_watch(
        &ns,
        "refused",
        sa_watch(
            &sim,
            "kl-edas",
            serde_json::json!({"name": "poller", "roleArn": NARROW_ROLE}),
        ),
    )
    .await;
    create_watch(
        &ns,
        "cross-ns",
        sa_watch(
            &sim,
            "kl-edas",
            serde_json::json!({"name": "theirs", "namespace": other.name()}),
        ),
    )
    .await;
    create_watch(
        &ns,
        "not-here",
        sa_watch(&sim, "kl-edas", serde_json::json!({"name": "theirs"})),
    )
    .await;
    create_watch(
        &ns,
        "to-delete",
        sa_watch(&sim, "kl-edas", serde_json::json!({"name": "poller"})),
    )
    .await;
    let _op = Operator::start(
        ns.client(),
        ns.name(),
        keyless_settings(&sim, Duration::from_secs(180)),
    )
    .await;

    wait_watch_ready(&ns, "wrong-role", "False", "InvalidCredentials").await;
    let m = ready_message(&ns, "wrong-role").await;
    assert!(m.contains("EntityNotExist.Role") && m.contains(wrong_role), "{m}");

    wait_watch_ready(&ns, "refused", "False", "InvalidCredentials").await;
    let m = ready_message(&ns, "refused").await;
    assert!(
        m.contains("AuthenticationFail.NoPermission") && m.contains(NARROW_ROLE),
        "{m}"
    );

    wait_watch_ready(&ns, "cross-ns", "False", "IdentityNotAllowed").await;
    let m = ready_message(&ns, "cross-ns").await;
    assert!(
        m.contains(&format!("{}/theirs", other.name())) && m.contains("own namespace"),
        "{m}"
    );

    wait_watch_ready(&ns, "not-here", "False", "ServiceAccountNotFound").await;
    let m = ready_message(&ns, "not-here").await;
    assert!(m.contains(&format!("ServiceAccount {}/theirs", ns.name())), "{m}");

    wait_watch_ready(&ns, "to-delete", "True", "Polled").await;
    ns.api::<ServiceAccount>()
        .delete("poller", &DeleteParams::default())
        .await
        .expect("delete ServiceAccount");
    wait_watch_ready(&ns, "to-delete", "False", "ServiceAccountNotFound").await;
    let w: ChangeOrderWatch = ns.api().get("to-delete").await.expect("watch");
    let stalled = w
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == "Stalled")
        .map(|c| c.status.clone());
    assert_eq!(stalled.as_deref(), Some("True"));
    // STS never saw the cross-namespace or missing ServiceAccount: no token was minted for them.
    let stats = sim.stats();
    assert_eq!(
        stats.outcome("sts", "AssumeRoleWithOIDC", "OK"),
        1,
        "only to-delete's exchange worked"
    );
}

/// The operator's own identity (here the node's ECS RAM role through the metadata service) works
/// only in the namespaces the admin lists; a watch elsewhere is refused before any call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_identity_only_in_allowed_namespaces() {
    support::logs::init();
    let allowed = namespace("kl-op-allowed").await;
    let refused = namespace("kl-op-refused").await;
    let sim = keyless_sim(None, true).await;
    let settings = Settings {
        keyless: KeylessSettings {
            operator_identity: ChainConfig::Ecs(ImdsConfig {
                endpoint: sim.url(),
                role_name: None,
            }),
            operator_identity_namespaces: vec![allowed.name().to_string()],
            ..KeylessSettings::default()
        },
        ..fast_settings()
    };
    let spec = serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "kl-sae",
        "credentials": {"source": "OperatorIdentity"}});
    create_watch(&allowed, "sae", spec.clone()).await;
    create_watch(&refused, "sae", spec).await;
    let _a = Operator::start(allowed.client(), allowed.name(), settings.clone()).await;
    let _r = Operator::start(refused.client(), refused.name(), settings).await;
    wait_watch_ready(&allowed, "sae", "True", "Polled").await;
    wait_watch_ready(&refused, "sae", "False", "IdentityNotAllowed").await;
    let m = ready_message(&refused, "sae").await;
    assert!(
        m.contains(refused.name()) && m.contains("--operator-identity-namespaces"),
        "{m}"
    );
    eventually("the order mirrored", Duration::from_secs(30), || async {
        (orders(&allowed).await.len() == 1).then_some(())
    })
    .await;
    assert!(orders(&refused).await.is_empty());
    let stats = sim.stats();
    assert_eq!(stats.calls("ecs-metadata", "Token"), 1, "credentials are cached");
    assert_eq!(stats.calls("ecs-metadata", "Credentials"), 1);
}

/// The CRD refuses a watch with two credential sources or none, naming the fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crd_wants_exactly_one_credential_source() {
    let ns = namespace("kl-crd").await;
    for spec in [
        r#"{"provider": "sae", "region": "cn-hangzhou", "appId": "a", "credentialsSecretRef": {"name": "s"}, "serviceAccountRef": {"name": "sa"}}"#,
        r#"{"provider": "sae", "region": "cn-hangzhou", "appId": "a"}"#,
        r#"{"provider": "sae", "region": "cn-hangzhou", "appId": "a", "serviceAccountRef": {"name": "sa"}, "credentials": {"source": "OperatorIdentity"}}"#,
    ] {
        let manifest = format!(
            r#"{{"apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch", "metadata": {{"name": "w"}}, "spec": {spec}}}"#
        );
        let mut child = ns
            .kubectl()
            .args(["create", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(manifest.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("kubectl create");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{spec} was accepted");
        assert!(
            err.contains("exactly one credential source") && err.contains("spec.serviceAccountRef"),
            "{spec}: {err}"
        );
    }
}

/// `probe` reads the same sources: a ServiceAccount (token minted with the user's kubeconfig),
/// the ECS RAM role, and the AccessKey variables for OperatorIdentity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_uses_the_same_sources() {
    support::logs::init();
    let ns = namespace("kl-probe").await;
    let sim = keyless_sim(None, true).await;
    service_account(&ns, "poller", true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, spec: serde_json::Value| {
        let path = dir.path().join(name);
        let doc = serde_json::json!({"apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch",
            "metadata": {"name": "w", "namespace": ns.name()}, "spec": spec});
        std::fs::write(&path, doc.to_string()).expect("write watch");
        path
    };
    let args = |file: std::path::PathBuf| ProbeArgs {
        file,
        credentials: None,
        max_describe: 5,
        list_only: false,
        timeout: 10,
        kubeconfig: Some(TestCluster::get().kubeconfig().to_path_buf()),
        namespace: None,
        sts_endpoint: Some(sim.url()),
        ecs_metadata_endpoint: sim.url(),
    };
    let sa = write(
        "sa.json",
        sa_watch(&sim, "kl-edas", serde_json::json!({"name": "poller"})),
    );
    let out = probe(&args(sa), |_| None)
        .await
        .expect("probe with a ServiceAccount");
    assert!(out.contains("kl-1") && out.contains("kl-2"), "{out}");
    assert_eq!(sim.calls("sts", "AssumeRoleWithOIDC"), 1);

    let missing = write(
        "missing.json",
        sa_watch(&sim, "kl-edas", serde_json::json!({"name": "nobody"})),
    );
    let e = probe(&args(missing), |_| None).await.unwrap_err().to_string();
    assert!(
        e.contains("ServiceAccount") && e.contains("nobody") && e.contains("not found"),
        "{e}"
    );

    let own = write(
        "own.json",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "kl-sae",
            "credentials": {"source": "OperatorIdentity"}}),
    );
    let out = probe(&args(own.clone()), |_| None)
        .await
        .expect("probe with the ECS RAM role");
    assert!(out.contains("kl-sae-1"), "{out}");
    assert_eq!(sim.stats().calls("ecs-metadata", "Credentials"), 1);
    let ak = |k: &str| match k {
        "ALIBABA_CLOUD_ACCESS_KEY_ID" => Some(sim::DEFAULT_ACCESS_KEY_ID.to_string()),
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET" => Some(sim::DEFAULT_ACCESS_KEY_SECRET.to_string()),
        _ => None,
    };
    let out = probe(&args(own.clone()), ak)
        .await
        .expect("probe with the AccessKey variables");
    assert!(out.contains("kl-sae-1"), "{out}");
    assert_eq!(
        sim.stats().calls("ecs-metadata", "Credentials"),
        1,
        "the AccessKey comes first in the chain"
    );
    let bad = |k: &str| match k {
        "ALIBABA_CLOUD_ACCESS_KEY_ID" => Some(sim::DEFAULT_ACCESS_KEY_ID.to_string()),
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET" => Some("wrong-secret-value".to_string()),
        _ => None,
    };
    let e = probe(&args(own), bad).await.unwrap_err().to_string();
    assert!(
        e.contains("SignatureDoesNotMatch") && !e.contains("wrong-secret-value"),
        "{e}"
    );
}

/// Neither an issued STS/ECS secret or security token nor a ServiceAccount token (a JWT) appears
/// in the operator's logs (debug level), the Events or the watch's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_sts_secret_in_logs_events_or_status() {
    support::logs::init();
    let ns = namespace("kl-leak").await;
    let sim = keyless_sim(Some(Duration::from_secs(12)), false).await;
    service_account(&ns, "poller", true).await;
    create_watch(
        &ns,
        "good",
        sa_watch(&sim, "kl-edas", serde_json::json!({"name": "poller"})),
    )
    .await;
    create_watch(
        &ns,
        "bad",
        sa_watch(
            &sim,
            "kl-edas",
            serde_json::json!({"name": "poller", "roleArn": NARROW_ROLE}),
        ),
    )
    .await;
    let _op = Operator::start(
        ns.client(),
        ns.name(),
        keyless_settings(&sim, Duration::from_secs(8)),
    )
    .await;
    wait_watch_ready(&ns, "good", "True", "Polled").await;
    wait_watch_ready(&ns, "bad", "False", "InvalidCredentials").await;
    // Long enough for refreshes (and their log lines).
    tokio::time::sleep(Duration::from_secs(8)).await;

    let issued = sim.issued_credentials();
    assert!(issued.len() >= 2, "refreshes happened: {}", issued.len());
    let mut secrets: Vec<String> = Vec::new();
    for c in &issued {
        secrets.push(c.access_key_secret.clone());
        secrets.extend(c.security_token.clone());
    }
    let events = {
        let out = ns
            .kubectl()
            .args(["get", "events", "-o", "json"])
            .output()
            .expect("kubectl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        events.contains("InvalidCredentials"),
        "the failure made an Event: {events}"
    );
    let status = {
        let out = ns
            .kubectl()
            .args(["get", "changeorderwatches", "-o", "json"])
            .output()
            .expect("kubectl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let logs = log_text();
    assert!(
        logs.contains("exchanged a ServiceAccount token"),
        "the logs were captured"
    );
    for (place, text) in [("logs", &logs), ("events", &events), ("status", &status)] {
        for s in &secrets {
            assert!(
                !text.contains(s.as_str()),
                "an issued secret or security token is in the {place}"
            );
        }
        // Every JWT starts with the base64 of `{"`.
        assert!(!text.contains("eyJ"), "a token (JWT) is in the {place}");
    }
}

/// The RRSA example is a ServiceAccount and a watch the API server accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rrsa_example_is_accepted() {
    let ns = namespace("kl-example").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rrsa");
    let out = ns
        .kubectl()
        .args(["apply", "--dry-run=server", "-f", dir])
        .output()
        .expect("kubectl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("serviceaccount/changeorder-poller") && text.contains("demo-sae-keyless"),
        "{text}"
    );
}

/// The operator's own identity in the chain's order, each source in an allowed namespace: its
/// pod's RRSA variables (a projected token file, exchanged at STS) and the AccessKey variables
/// (which come first when both are set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_identity_from_rrsa_variables_and_access_key_variables() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    support::logs::init();
    let rrsa_ns = namespace("kl-op-rrsa").await;
    let ak_ns = namespace("kl-op-ak").await;
    let sim = keyless_sim(None, false).await;
    // The token the kubelet would project into the operator's pod.
    service_account(&rrsa_ns, "operator", false).await;
    let minted = rrsa_ns
        .api::<ServiceAccount>()
        .create_token_request(
            "operator",
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![RRSA_AUDIENCE.into()],
                    expiration_seconds: Some(600),
                    bound_object_ref: None,
                },
                ..TokenRequest::default()
            },
        )
        .await
        .expect("TokenRequest");
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, minted.status.expect("token").token).expect("write token");
    let token_path = token_file.display().to_string();
    let sim_url = sim.url();
    let rrsa_env = |k: &str| match k {
        "ALIBABA_CLOUD_ROLE_ARN" => Some(ROLE.to_string()),
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN" => Some(PROVIDER.to_string()),
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE" => Some(token_path.clone()),
        "ALIBABA_CLOUD_STS_ENDPOINT" => Some(sim_url.clone()),
        _ => None,
    };
    let ak_env = |k: &str| match k {
        "ALIBABA_CLOUD_ACCESS_KEY_ID" => Some(sim::DEFAULT_ACCESS_KEY_ID.to_string()),
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET" => Some(sim::DEFAULT_ACCESS_KEY_SECRET.to_string()),
        other => rrsa_env(other),
    };
    let settings = |env: &dyn Fn(&str) -> Option<String>, ns: &TestNamespace| Settings {
        keyless: KeylessSettings {
            operator_identity: ChainConfig::from_env_with(env, None, "http://127.0.0.1:9"),
            operator_identity_namespaces: vec![ns.name().to_string()],
            ..KeylessSettings::default()
        },
        ..fast_settings()
    };
    let rrsa_settings = settings(&rrsa_env, &rrsa_ns);
    assert!(matches!(
        rrsa_settings.keyless.operator_identity,
        ChainConfig::Rrsa(_)
    ));
    let ak_settings = settings(&ak_env, &ak_ns);
    assert!(matches!(
        ak_settings.keyless.operator_identity,
        ChainConfig::AccessKey(_)
    ));
    let spec = serde_json::json!({"provider": "edas", "endpoint": sim.url(), "appId": "kl-edas",
        "credentials": {"source": "OperatorIdentity"}});
    create_watch(&rrsa_ns, "edas", spec.clone()).await;
    create_watch(&ak_ns, "edas", spec).await;
    let _r = Operator::start(rrsa_ns.client(), rrsa_ns.name(), rrsa_settings).await;
    wait_watch_ready(&rrsa_ns, "edas", "True", "Polled").await;
    assert_eq!(
        sim.calls("sts", "AssumeRoleWithOIDC"),
        1,
        "the pod's token was exchanged"
    );
    let _a = Operator::start(ak_ns.client(), ak_ns.name(), ak_settings).await;
    wait_watch_ready(&ak_ns, "edas", "True", "Polled").await;
    assert_eq!(
        sim.calls("sts", "AssumeRoleWithOIDC"),
        1,
        "the AccessKey needs no exchange"
    );
}

/// The simulator's side, end to end over HTTP: a real ServiceAccount token is exchanged at its
/// STS; the credentials work with their security token only, and stop working, with the
/// documented `InvalidSecurityToken.Expired`, once they expire. A token for another audience or
/// a tampered one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_sts_verifies_tokens_and_its_credentials_expire() {
    use changeorder_cloud::sts::{AssumeRequest, StsClient};
    use changeorder_cloud::{ClientConfig, CloudClient, ErrorKind, Target};
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let ns = namespace("kl-sim-sts").await;
    let sim = keyless_sim(Some(Duration::from_secs(3)), false).await;
    service_account(&ns, "poller", false).await;
    let mint = |audience: &str| {
        let api = ns.api::<ServiceAccount>();
        let audience = audience.to_string();
        async move {
            let r = api
                .create_token_request(
                    "poller",
                    &PostParams::default(),
                    &TokenRequest {
                        spec: TokenRequestSpec {
                            audiences: vec![audience],
                            expiration_seconds: Some(600),
                            bound_object_ref: None,
                        },
                        ..TokenRequest::default()
                    },
                )
                .await
                .expect("TokenRequest");
            r.status.expect("token").token
        }
    };
    let sts = StsClient::new(&sim.url(), &ClientConfig::default()).expect("STS client");
    let req = AssumeRequest {
        role_arn: ROLE,
        oidc_provider_arn: PROVIDER,
        role_session_name: "test",
        duration_seconds: 3600,
    };
    let token = mint(RRSA_AUDIENCE).await;
    // RS256, as on ACK: the test cluster signs with an RSA key.
    let header = token.split('.').next().unwrap_or_default();
    let header = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).expect("b64"),
    )
    .expect("utf8");
    assert!(header.contains("RS256"), "{header}");

    let wrong_audience = mint("https://kubernetes.default.svc").await;
    let e = sts.assume_role_with_oidc(req, &wrong_audience).await.unwrap_err();
    assert_eq!(
        e.code.as_deref(),
        Some("AuthenticationFail.OIDCToken.AudienceNotMatch")
    );
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let e = sts.assume_role_with_oidc(req, &tampered).await.unwrap_err();
    assert_eq!(e.code.as_deref(), Some("AuthenticationFail.OIDCToken.Invalid"));
    assert!(!e.to_string().contains(&token[..40]), "{e}");

    let (creds, expires) = sts.assume_role_with_oidc(req, &token).await.expect("exchange");
    assert!(expires > jiff::Timestamp::now(), "{expires}");
    let target: Target = Target::from_spec(
        &serde_json::from_value(
            serde_json::json!({"provider": "edas", "endpoint": sim.url(), "appId": "kl-edas",
            "serviceAccountRef": {"name": "poller"}}),
        )
        .expect("spec"),
    )
    .expect("target");
    let cloud = CloudClient::try_new(ClientConfig::default()).expect("client");
    assert_eq!(
        cloud
            .list(&target, &creds)
            .await
            .expect("list with STS credentials")
            .len(),
        2
    );
    let Credentials::AccessKey {
        access_key_id,
        access_key_secret,
        ..
    } = creds.clone()
    else {
        panic!("not an AccessKey")
    };
    let without_token = Credentials::AccessKey {
        access_key_id,
        access_key_secret,
        security_token: None,
    };
    let e = cloud.list(&target, &without_token).await.unwrap_err();
    assert_eq!(
        e.code.as_deref(),
        Some("InvalidSecurityToken.MismatchWithAccessKey")
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let e = cloud.list(&target, &creds).await.unwrap_err();
    assert_eq!(e.code.as_deref(), Some("InvalidSecurityToken.Expired"));
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials);
}

/// The chart's RBAC is enough, and no more than needed: without `keyless.enabled` a keyless
/// watch is refused with a message naming the value; with it (and `watchNamespaces`), the
/// operator, as its own ServiceAccount through impersonation, mints tokens and polls in the
/// served namespace, and may not mint tokens anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_keyless_rbac_is_enough_and_scoped() {
    support::logs::init();
    let served = namespace("kl-rbac").await;
    let release = namespace("kl-rbac-rel").await;
    let cluster = TestCluster::get();
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/changeorder-operator");
    let template = |set: &str, only: &[&str]| {
        let mut cmd = cluster.helm();
        cmd.args([
            "template",
            "co",
            chart,
            "--namespace",
            release.name(),
            "--set",
            set,
        ]);
        for t in only {
            cmd.args(["--show-only", t]);
        }
        let out = cmd.output().expect("helm template");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let apply = |manifest: &[u8]| {
        let mut child = cluster
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(manifest)
            .expect("write");
        let out = child.wait_with_output().expect("kubectl apply");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let base = format!(
        "watchNamespaces={{{}}},leaderElection.enabled=false,rbac.aggregateToDefaultRoles=false",
        served.name()
    );
    // First the operator's RBAC without keyless.
    apply(&template(
        &base,
        &["templates/serviceaccount.yaml", "templates/rbac.yaml"],
    ));

    let user = format!("system:serviceaccount:{}:co-changeorder-operator", release.name());
    let can = |ns: &str, verb: &str, resource: &str| {
        let mut cmd = cluster.kubectl();
        match resource.split_once('/') {
            Some((r, sub)) => cmd.args(["auth", "can-i", verb, r, "--subresource", sub]),
            None => cmd.args(["auth", "can-i", verb, resource]),
        };
        let out = cmd
            .args(["-n", ns, "--as", &user])
            .output()
            .expect("kubectl auth can-i");
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    assert!(
        !can(served.name(), "create", "serviceaccounts/token"),
        "not without keyless.enabled"
    );

    let sim = keyless_sim(None, false).await;
    service_account(&served, "poller", true).await;
    create_watch(
        &served,
        "edas",
        sa_watch(&sim, "kl-edas", serde_json::json!({"name": "poller"})),
    )
    .await;
    let mut config = cluster.config().await;
    config.auth_info.impersonate = Some(user.clone());
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{}", release.name()),
        "system:authenticated".into(),
    ]);
    let as_operator = kube::Client::try_from(config).expect("client");
    let _op = Operator::start(
        as_operator,
        served.name(),
        keyless_settings(&sim, Duration::from_secs(180)),
    )
    .await;
    wait_watch_ready(&served, "edas", "False", "IdentityNotAllowed").await;
    let m = ready_message(&served, "edas").await;
    assert!(m.contains("keyless.enabled"), "{m}");
    assert_eq!(sim.calls("sts", "AssumeRoleWithOIDC"), 0);

    // Then with it: scoped to the served namespace, and the watch recovers on its next retry.
    apply(&template(
        &format!("{base},keyless.enabled=true"),
        &["templates/rbac-keyless.yaml"],
    ));
    assert!(can(served.name(), "create", "serviceaccounts/token"));
    assert!(can(served.name(), "get", "serviceaccounts"));
    assert!(
        !can(release.name(), "create", "serviceaccounts/token"),
        "only in served namespaces"
    );
    assert!(!can("kube-system", "create", "serviceaccounts/token"));
    assert!(!can(served.name(), "list", "serviceaccounts"), "get only");
    wait_watch_ready(&served, "edas", "True", "Polled").await;
    assert_eq!(sim.calls("sts", "AssumeRoleWithOIDC"), 1);
}

/// The cloud refuses exchanged keys before the expiry STS gave (the role's sessions revoked):
/// the refused keys are dropped and the next poll, within the watch's error backoff, exchanges
/// the ServiceAccount token again. Before, the keys were kept until the refresh margin (an
/// hour here) and the watch failed all that time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_cloud_refuses_are_exchanged_again() {
    support::logs::init();
    let ns = namespace("kl-revoked").await;
    let sim = keyless_sim(None, false).await;
    service_account(&ns, "poller", true).await;
    create_watch(
        &ns,
        "edas",
        sa_watch(&sim, "kl-edas", serde_json::json!({"name": "poller"})),
    )
    .await;
    let op = Operator::start(
        ns.client(),
        ns.name(),
        keyless_settings(&sim, Duration::from_secs(180)),
    )
    .await;
    wait_watch_ready(&ns, "edas", "True", "Polled").await;
    let before = sim.calls("sts", "AssumeRoleWithOIDC");
    assert_eq!(before, 1);
    assert!(sim.revoke_issued_credentials() >= 1);
    let revoked_at = jiff::Timestamp::now();
    let started = std::time::Instant::now();
    // Recovered: a poll after the revocation succeeded, with keys exchanged anew.
    eventually(
        "a successful poll with new keys",
        Duration::from_secs(30),
        || async {
            let w: ChangeOrderWatch = ns.api().get("edas").await.ok()?;
            let polled = w.status.as_ref()?.last_poll_time.as_ref()?.0;
            let ready = watch_ready(&w)?;
            (sim.calls("sts", "AssumeRoleWithOIDC") > before
                && polled > revoked_at
                && ready == ("True".to_string(), "Polled".to_string()))
                .then_some(())
        },
    )
    .await;
    let took = started.elapsed();
    assert!(
        metric(&op, "changeorder_polls_total", &["InvalidCredentials"]) >= 1,
        "the revoked keys were refused once"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let exchanges = sim.calls("sts", "AssumeRoleWithOIDC") - before;
    eprintln!("recovered {took:?} after the revocation with {exchanges} exchange(s)");
    assert_eq!(exchanges, 1, "one exchange replaces the refused keys");
    // Within the watch's error backoff (max 4 s here) plus a poll.
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// Keys the cloud refuses every time (it honours none of STS's lifetime): each poll exchanges
/// at most once and the watch backs off; never a loop of exchanges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_refused_again_back_off_instead_of_looping() {
    support::logs::init();
    let ns = namespace("kl-refused").await;
    let sim = keyless_sim(None, false).await;
    sim.honour_issued_credentials_for(Some(Duration::ZERO));
    service_account(&ns, "poller", true).await;
    create_watch(
        &ns,
        "edas",
        sa_watch(&sim, "kl-edas", serde_json::json!({"name": "poller"})),
    )
    .await;
    let _op = Operator::start(
        ns.client(),
        ns.name(),
        keyless_settings(&sim, Duration::from_secs(180)),
    )
    .await;
    wait_watch_ready(&ns, "edas", "False", "InvalidCredentials").await;
    tokio::time::sleep(Duration::from_secs(14)).await;
    let exchanges = sim.calls("sts", "AssumeRoleWithOIDC");
    eprintln!("{exchanges} exchanges in ~14 s of refused keys");
    // Backoff 1, 2, 4, 4, 4... s: about six polls, each one exchange.
    assert!((2..=9).contains(&exchanges), "{exchanges} exchanges");
}

/// One credential provider for the process: the watch's poll and an action on its order, both
/// through the same ServiceAccount, share one exchange (the action controller once had a cache
/// of its own, and exchanged again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_and_an_action_share_one_exchange() {
    use changeorder_operator::controller::action::ActionSettings;
    use changeorder_operator::crd::{ActionPhase, ChangeOrderAction};
    use kube::ResourceExt;
    support::logs::init();
    let ns = namespace("kl-shared").await;
    let scenario = "apps:\n  - provider: sae\n    appId: kl-act\n    changeOrders:\n      - { id: kl-wait, createdAt: -1m, batchCount: 3, batchType: manual, status: 8, currentBatch: 2 }\n";
    let sim = keyless_sim_with(scenario, None, false).await;
    service_account(&ns, "poller", true).await;
    let mut spec = sa_watch(&sim, "kl-act", serde_json::json!({"name": "poller"}));
    spec["provider"] = "sae".into();
    spec["interval"] = "2m".into();
    spec["inFlightInterval"] = "60s".into();
    spec["actions"] = serde_json::json!({"allowed": ["Confirm"]});
    create_watch(&ns, "rel", spec).await;
    let settings = Settings {
        actions: ActionSettings {
            enabled: true,
            ttl: Duration::from_secs(600),
        },
        ..keyless_settings(&sim, Duration::from_secs(180))
    };
    let _op = Operator::start(ns.client(), ns.name(), settings).await;
    let co = eventually("the waiting order", Duration::from_secs(30), || async {
        order(&ns, "kl-wait")
            .await
            .filter(|o| phase(o).as_deref() == Some("AwaitingConfirmation"))
    })
    .await;
    let action: ChangeOrderAction = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderAction",
        "metadata": {"name": "go"},
        "spec": {"changeOrder": co.name_any(), "action": "Confirm", "expectedBatch": 2},
    }))
    .expect("action manifest");
    ns.api::<ChangeOrderAction>()
        .create(&PostParams::default(), &action)
        .await
        .expect("create action");
    let done = eventually("the action finished", Duration::from_secs(30), || async {
        let a: ChangeOrderAction = ns.api().get("go").await.ok()?;
        let s = a.status?;
        s.phase.filter(|p| p.is_finished()).map(|p| (p, s.message))
    })
    .await;
    assert_eq!(done.0, ActionPhase::Succeeded, "{:?}", done.1);
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 1);
    assert_eq!(
        sim.calls("sts", "AssumeRoleWithOIDC"),
        1,
        "the poll and the action shared one exchange"
    );
}
