//! Issue 21, part 5, against a real kube-apiserver: names of Secrets, ServiceAccounts and
//! ChangeOrders in specs are refused at admission unless they are Kubernetes names.

use crate::support;

use changeorder_operator::crd::{ChangeOrderAction, ChangeOrderWatch};
use kube::api::PostParams;
use support::operator::namespace;

fn watch(name: &str, spec: serde_json::Value) -> ChangeOrderWatch {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("watch")
}

const BAD_NAMES: &[&str] = &[
    "..", "../other", "a/b", "Creds", "creds.", ".creds", "a..b", "-creds", "creds-", "cr eds", "creds_1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_in_specs_are_refused_at_admission() {
    let ns = namespace("bad-names").await;
    let watches = ns.api::<ChangeOrderWatch>();
    let long = format!("{}.b", "a".repeat(252));
    let mut bad: Vec<&str> = BAD_NAMES.to_vec();
    bad.push(&long);
    for (i, name) in bad.iter().enumerate() {
        for (field, spec) in [
            (
                "credentialsSecretRef.name",
                serde_json::json!({"provider": "sae", "region": "cn-hangzhou", "appId": "a",
                                   "credentialsSecretRef": {"name": name}}),
            ),
            (
                "serviceAccountRef.name",
                serde_json::json!({"provider": "sae", "region": "cn-hangzhou", "appId": "a",
                                   "serviceAccountRef": {"name": name}}),
            ),
        ] {
            let e = watches
                .create(&PostParams::default(), &watch(&format!("w-{i}"), spec))
                .await
                .expect_err(&format!("spec.{field} {name:?} was accepted"));
            let text = e.to_string();
            assert!(
                text.contains(&format!("spec.{field}")),
                "{field} {name:?}: the error names the field: {text}"
            );
        }
        let action: ChangeOrderAction = serde_json::from_value(serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderAction",
            "metadata": {"name": format!("a-{i}")},
            "spec": {"changeOrder": name, "action": "Confirm"},
        }))
        .expect("action");
        let e = ns
            .api::<ChangeOrderAction>()
            .create(&PostParams::default(), &action)
            .await
            .expect_err(&format!("spec.changeOrder {name:?} was accepted"));
        assert!(e.to_string().contains("spec.changeOrder"), "{name:?}: {e}");
    }
    // A namespace that is not a DNS label, even the watch's own spelled oddly.
    let e = watches
        .create(
            &PostParams::default(),
            &watch(
                "w-ns",
                serde_json::json!({"provider": "sae", "region": "cn-hangzhou", "appId": "a",
                                   "serviceAccountRef": {"name": "sa", "namespace": "a.b"}}),
            ),
        )
        .await
        .expect_err("a dotted namespace was accepted");
    assert!(e.to_string().contains("serviceAccountRef.namespace"), "{e}");
    // Real names still pass.
    for (i, name) in ["creds", "a.b-c", "x1", &"a".repeat(253)].iter().enumerate() {
        watches
            .create(
                &PostParams::default(),
                &watch(
                    &format!("ok-{i}"),
                    serde_json::json!({"provider": "sae", "region": "cn-hangzhou", "appId": "a",
                                       "credentialsSecretRef": {"name": name}}),
                ),
            )
            .await
            .unwrap_or_else(|e| panic!("{name:?} refused: {e}"));
    }
}

/// Whatever codes the cloud (or a server posing as it) answers with, the call metric's `result`
/// label stays within `ok` and the fixed error kinds: no string from a reply becomes a label.
#[tokio::test]
async fn cloud_error_codes_never_become_metric_labels() {
    use changeorder_cloud::model::{AppRef, Provider};
    use changeorder_cloud::sign::Scheme;
    use changeorder_cloud::time::default_offset;
    use changeorder_cloud::{
        CallOutcome, ClientConfig, CloudClient, Credentials, ErrorKind, RetryPolicy, Target,
    };
    use changeorder_operator::controller::metrics::Metrics;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use support::stub::{Resp, start};

    let n = Arc::new(AtomicUsize::new(0));
    let counter = n.clone();
    let stub = start(move |_req| {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        let status = [400, 403, 404, 409, 418, 500, 503][i % 7];
        Resp::pop_error(status, &format!("Tenant.Chosen-{i}.{}", "x".repeat(i % 50)), "no")
    })
    .await;
    let metrics = Metrics::new();
    let observed = metrics.clone();
    let client = CloudClient::try_new(ClientConfig {
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        observer: Some(Arc::new(move |o: &CallOutcome<'_>| {
            observed.cloud_call(o.provider, o.operation, o.result);
        })),
        ..ClientConfig::default()
    })
    .expect("client");
    let creds = Credentials::AccessKey {
        access_key_id: "LTAI-id".into(),
        access_key_secret: "secret".into(),
        security_token: None,
    };
    for i in 0..40 {
        let provider = [Provider::Edas, Provider::Sae][i % 2];
        let target = Target {
            provider,
            endpoint: Some(stub.url()),
            region: None,
            app: AppRef::Id("app".into()),
            env_names: Vec::new(),
            states: Vec::new(),
            signature: Scheme::V3,
            zone: default_offset(),
        };
        let _ = client.list(&target, &creds).await;
    }
    assert!(n.load(Ordering::SeqCst) >= 40, "the stub was called");
    let allowed: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).chain(["ok"]).collect();
    let text = metrics.encode();
    let results: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("changeorder_cloud_calls_total{"))
        .filter_map(|l| l.split("result=\"").nth(1)?.split('"').next())
        .collect();
    assert!(!results.is_empty(), "{text}");
    for r in &results {
        assert!(allowed.contains(r), "result label {r:?} is not a fixed kind");
    }
    assert!(!text.contains("Tenant.Chosen"), "{text}");
}
