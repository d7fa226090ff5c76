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
