//! `probe` against `simulate`'s built-in demo, as a user troubleshooting a watch runs them:
//! every order of every provider, with phases and conditions exactly per the contract.

use crate::support;

use std::collections::BTreeMap;
use std::process::Command;

use changeorder_operator::crd::ChangeOrder;
use changeorder_sim::{self as sim, Scenario};
use support::operator::{DEMO_ROWS, assert_contract_row, start_sim_with};

fn probe(dir: &std::path::Path, spec: &str) -> Vec<ChangeOrder> {
    let watch = dir.join("watch.yaml");
    std::fs::write(
        &watch,
        format!("apiVersion: changeorder.io/v1alpha1\nkind: ChangeOrderWatch\nmetadata: {{name: w, namespace: demo}}\nspec:\n{spec}  credentialsSecretRef: {{name: creds}}\n"),
    )
    .expect("write watch");
    let creds = dir.join("creds.yaml");
    std::fs::write(
        &creds,
        format!(
            "accessKeyId: {}\naccessKeySecret: {}\ntoken: {}\n",
            sim::DEFAULT_ACCESS_KEY_ID,
            sim::DEFAULT_ACCESS_KEY_SECRET,
            sim::DEFAULT_YUNXIAO_TOKEN
        ),
    )
    .expect("write credentials");
    let out = Command::new(env!("CARGO_BIN_EXE_changeorder-operator"))
        .args(["probe", "-f"])
        .arg(&watch)
        .arg("--credentials")
        .arg(&creds)
        .env_clear()
        .output()
        .expect("run probe");
    assert!(
        out.status.success(),
        "probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::Deserializer::from_slice(&out.stdout)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a ChangeOrder document"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_prints_every_demo_order_per_the_contract() {
    let sim = start_sim_with(Scenario::demo().expect("demo")).await;
    let url = sim.url();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all: BTreeMap<String, ChangeOrder> = BTreeMap::new();
    for spec in [
        format!("  provider: edas\n  endpoint: {url}\n  appId: demo-edas-app\n"),
        format!("  provider: edas\n  endpoint: {url}\n  appId: demo-edas-single\n"),
        format!("  provider: sae\n  endpoint: {url}\n  appId: demo-sae-app\n"),
        format!("  provider: appstack\n  endpoint: {url}\n  organizationId: demo-org\n  appName: demo-app\n"),
    ] {
        let orders = tokio::task::spawn_blocking({
            let dir = dir.path().to_path_buf();
            move || probe(&dir, &spec)
        })
        .await
        .expect("probe thread");
        assert!(!orders.is_empty());
        for o in orders {
            assert_eq!(o.metadata.namespace.as_deref(), Some("demo"));
            assert!(
                o.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key("changeorder.io/watch"))
            );
            all.insert(o.spec.change_order_id.clone(), o);
        }
    }
    for (id, phase, reason) in DEMO_ROWS {
        let o = all
            .get(id)
            .unwrap_or_else(|| panic!("{id} missing from probe's output"));
        assert_contract_row(o, phase, reason);
    }
}
