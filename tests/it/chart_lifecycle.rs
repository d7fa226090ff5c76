//! `helm install`, `helm upgrade` and `helm uninstall` of the chart on a real API server, as a
//! user runs them. Its own cluster: here Helm owns the CRDs, which the other chart tests apply
//! from crds/ instead.

use crate::chart_support;
use crate::support;

use std::process::Command;

use chart_support::{chart_dir, root, text};
use serde_yaml::Value;
use support::cluster::{TestCluster, TestNamespace};

const RELEASE: &str = "changeorder-operator";
const CRDS: [&str; 2] = ["changeorderwatches.changeorder.io", "changeorders.changeorder.io"];

fn ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}:\n{}", text(&out));
    text(&out)
}

fn get(ns: &TestNamespace, what: &[&str]) -> Option<Value> {
    let out = ns
        .kubectl()
        .arg("get")
        .args(what)
        .args(["-o", "yaml"])
        .output()
        .unwrap();
    if !out.status.success() {
        let t = text(&out);
        assert!(t.contains("NotFound"), "{what:?}: {t}");
        return None;
    }
    Some(serde_yaml::from_slice(&out.stdout).unwrap())
}

fn deployment(ns: &TestNamespace) -> Value {
    get(ns, &["deployment", "changeorder-operator"]).expect("the operator Deployment")
}

fn env_of(deployment: &Value, name: &str) -> Option<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))?["value"]
        .as_str()
        .map(str::to_string)
}

fn helm(ns: &TestNamespace, args: &[&str]) -> String {
    let mut cmd = ns.helm();
    cmd.args(args);
    ok(cmd)
}

#[tokio::test]
async fn install_upgrade_uninstall_keeps_crds_and_users_watches() {
    let cluster = TestCluster::isolated("chart-lifecycle");
    let ns = cluster.namespace("chart-lifecycle").await;
    let users = cluster.namespace("chart-lifecycle-users").await;
    let chart = chart_dir().display().to_string();

    // Install with defaults; no --wait: this control plane has no nodes to run the pod.
    helm(&ns, &["install", RELEASE, &chart]);
    let d = deployment(&ns);
    assert_eq!(d["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(env_of(&d, "CHANGEORDER_CONCURRENCY").as_deref(), Some("8"));
    // Leader election is on by default, so an upgrade never runs two operators side by side.
    assert_eq!(env_of(&d, "CHANGEORDER_LEADER_ELECTION").as_deref(), Some("true"));
    for crd in CRDS {
        let c = get(&ns, &["crd", crd]).expect("CRD installed by the chart");
        assert_eq!(
            c["metadata"]["annotations"]["helm.sh/resource-policy"].as_str(),
            Some("keep")
        );
        assert_eq!(
            c["metadata"]["annotations"]["meta.helm.sh/release-name"].as_str(),
            Some(RELEASE)
        );
    }
    ok({
        let mut c = cluster.kubectl();
        c.args(["wait", "--for=condition=Established", "--timeout=60s"])
            .args(CRDS.map(|c| format!("crd/{c}")));
        c
    });

    // A user's watch, from the example.
    ok({
        let mut c = users.kubectl();
        c.args(["apply", "-f"]).arg(root().join("examples/edas"));
        c
    });
    assert!(get(&users, &["changeorderwatch", "demo-edas"]).is_some());

    // Upgrade changing values: the Deployment follows, HA objects appear.
    helm(
        &ns,
        &[
            "upgrade",
            RELEASE,
            &chart,
            "--reuse-values",
            "--set",
            "operator.concurrency=4,replicaCount=2",
        ],
    );
    let d = deployment(&ns);
    assert_eq!(d["spec"]["replicas"].as_u64(), Some(2));
    assert_eq!(env_of(&d, "CHANGEORDER_CONCURRENCY").as_deref(), Some("4"));
    assert_eq!(env_of(&d, "CHANGEORDER_LEADER_ELECTION").as_deref(), Some("true"));
    assert!(get(&ns, &["poddisruptionbudget", "changeorder-operator"]).is_some());
    assert!(get(&ns, &["role", "changeorder-operator-leader-election"]).is_some());
    let history = helm(&ns, &["history", RELEASE, "-o", "yaml"]);
    assert_eq!(
        serde_yaml::from_str::<Value>(&history)
            .unwrap()
            .as_sequence()
            .map(Vec::len),
        Some(2)
    );

    // Back to one replica without election: the HA-only objects go away again.
    helm(
        &ns,
        &[
            "upgrade",
            RELEASE,
            &chart,
            "--reuse-values",
            "--set",
            "replicaCount=1,leaderElection.enabled=false",
        ],
    );
    assert!(get(&ns, &["poddisruptionbudget", "changeorder-operator"]).is_none());
    assert!(get(&ns, &["role", "changeorder-operator-leader-election"]).is_none());
    // Without election, one replica upgrades by Recreate: never two operators at once.
    assert_eq!(
        deployment(&ns)["spec"]["strategy"]["type"].as_str(),
        Some("Recreate")
    );

    // Uninstall: the operator's objects go, the CRDs and the user's watch stay.
    let out = helm(&ns, &["uninstall", RELEASE]);
    assert!(out.contains("kept due to the resource policy"), "{out}");
    assert!(get(&ns, &["deployment", "changeorder-operator"]).is_none());
    assert!(get(&ns, &["serviceaccount", "changeorder-operator"]).is_none());
    assert!(get(&ns, &["clusterrole", "changeorder-operator"]).is_none());
    for crd in CRDS {
        assert!(get(&ns, &["crd", crd]).is_some(), "{crd} kept after uninstall");
    }
    let watch = get(&users, &["changeorderwatch", "demo-edas"]).expect("the watch survives uninstall");
    assert_eq!(watch["spec"]["appId"].as_str(), Some("demo-edas-app"));

    // Installing again under the same name takes the kept CRDs back.
    helm(&ns, &["install", RELEASE, &chart]);
    assert!(get(&users, &["changeorderwatch", "demo-edas"]).is_some());
    helm(&ns, &["uninstall", RELEASE]);
}
