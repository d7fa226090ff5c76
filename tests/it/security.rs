//! Issue 8 against a real kube-apiserver: what the operator keeps of Secrets, and specs the API
//! server refuses.

use crate::support;

use std::io::Write as _;
use std::process::Stdio;
use std::time::Duration;

use changeorder_operator::controller::secret_metadata_reflector;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef};
use support::cluster::TestNamespace;
use support::operator::namespace;

const VALUE: &str = "s3cr3t-access-key-value";

fn kubectl_apply(ns: &TestNamespace, manifest: &str) -> std::process::Output {
    let mut child = ns
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest.as_bytes())
        .expect("write manifest");
    child.wait_with_output().expect("kubectl apply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_cache_keeps_no_annotation_label_or_managed_field() {
    let ns = namespace("secret-cache").await;
    // Client-side `kubectl apply` copies the whole Secret, data included, into the
    // last-applied-configuration annotation.
    let manifest = format!(
        r#"{{"apiVersion": "v1", "kind": "Secret", "metadata": {{"name": "creds", "labels": {{"team": "a"}}}}, "type": "Opaque", "stringData": {{"accessKeyId": "LTAI-id", "accessKeySecret": "{VALUE}"}}}}"#
    );
    let out = kubectl_apply(&ns, &manifest);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The metadata the API server sends does carry the value (so the test means something).
    let meta = ns
        .api::<Secret>()
        .get_metadata("creds")
        .await
        .expect("Secret metadata");
    let annotations = meta.metadata.annotations.clone().unwrap_or_default();
    assert!(
        annotations
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_some_and(|a| a.contains(VALUE)),
        "kubectl apply did not record the data: {annotations:?}"
    );
    assert!(meta.metadata.managed_fields.is_some());

    let (store, writer) = reflector::store::<PartialObjectMeta<Secret>>();
    let api: Api<PartialObjectMeta<Secret>> = ns.api();
    let events =
        tokio::spawn(secret_metadata_reflector(api, writer).for_each(|_| futures::future::ready(())));
    tokio::time::timeout(Duration::from_secs(30), store.wait_until_ready())
        .await
        .expect("the cache syncs")
        .expect("store ready");
    let cached = store
        .get(&ObjectRef::new("creds").within(ns.name()))
        .expect("the Secret is cached");
    assert_eq!(cached.metadata.annotations, None);
    assert_eq!(cached.metadata.labels, None);
    assert_eq!(cached.metadata.managed_fields, None);
    assert_eq!(cached.metadata.name.as_deref(), Some("creds"));
    assert!(
        cached.metadata.resource_version.is_some(),
        "the version is what the controller needs"
    );
    let everything = format!("{:?}", store.state());
    assert!(!everything.contains(VALUE), "the cache holds the secret value");
    events.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_max_age_zero_is_refused_naming_the_field() {
    let ns = namespace("max-age").await;
    let watch = |max_age: &str| {
        format!(
            r#"{{"apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch", "metadata": {{"name": "w-{}"}}, "spec": {{"provider": "edas", "appId": "a", "region": "cn-hangzhou", "credentialsSecretRef": {{"name": "c"}}, "retention": {{"maxAge": "{max_age}"}}}}}}"#,
            max_age.replace('.', "-")
        )
    };
    for bad in ["0s", "30s", "59.9s"] {
        let out = kubectl_apply(&ns, &watch(bad));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "maxAge {bad} accepted");
        assert!(
            stderr.contains("spec.retention.maxAge must be at least 1m"),
            "{bad}: {stderr}"
        );
    }
    for good in ["1m", "720h"] {
        let out = kubectl_apply(&ns, &watch(good));
        assert!(
            out.status.success(),
            "maxAge {good}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_binary_refuses_zero_and_tiny_durations_naming_the_flag() {
    for (flag, value) in [
        ("--default-interval", "0"),
        ("--max-error-backoff", "0"),
        ("--lease-duration", "1s"),
        ("--allowed-endpoints", "evil.example.com"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_changeorder-operator"))
            .args(["run", flag, value])
            .env_clear()
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} accepted");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
    // The environment variables go through the same checks.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_changeorder-operator"))
        .arg("run")
        .env_clear()
        .env("CHANGEORDER_DEFAULT_INTERVAL", "0s")
        .output()
        .expect("run the binary");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--default-interval"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
