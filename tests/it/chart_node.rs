//! The Helm chart on a real node, installed the way users install a released operator: the
//! release (tests/tools/release.sh: the image, and the chart pinning it by digest, signed) is in
//! a real registry with its own CA and a login (tests/tools/registry.sh), the node's containerd
//! trusts and logs in to it, and `helm install NAME oci://.../changeorder-operator --version X`
//! pulls the chart, then the kubelet pulls the image: nothing is preloaded. Then what a cluster
//! admin would check afterwards.
//! Pods here are real: kubelet runs the readiness probe against `/ready`, mounts the
//! ServiceAccount token, and containerd applies the security context; the operator reaches the
//! API server through the `kubernetes` Service with in-cluster configuration. The simulator runs
//! in the test's process on the host, on the node's bridge address (the image holds the operator
//! only), so all traffic stays between the test's pods and the host.
//!
//! Its own cluster and node (`TestNode::get()`). Figures (node start, install to Ready, leader
//! hand-over) are printed; see them with `cargo test --test it chart_node -- --nocapture`.

use crate::chart_support;
use crate::support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use changeorder_operator::crd::{ChangeOrder, ChangeOrderWatch};
use chart_support::{chart_dir, text};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::{Value, json};
use support::cluster::{TestNamespace, eventually};
use support::node::TestNode;
use support::registry::TestRegistry;

const RELEASE: &str = "changeorder-operator";
const CRDS: [&str; 2] = ["changeorderwatches.changeorder.io", "changeorders.changeorder.io"];

fn ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}:\n{}", text(&out));
    text(&out)
}

fn apply(ns: &TestNamespace, manifest: &Value) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(manifest).unwrap()).unwrap();
    let mut cmd = ns.kubectl();
    cmd.args(["apply", "-f"]).arg(file.path());
    ok(cmd);
}

/// The host's address on the node's pod bridge (the subnet's first address, `10.200.N.1`).
fn node_gateway(pod_subnet: &str) -> std::net::IpAddr {
    let network: std::net::Ipv4Addr = pod_subnet
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("pod subnet {pod_subnet:?}"));
    std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from(network) + 1))
}

async fn ready_pods(pods: &Api<Pod>) -> Vec<Pod> {
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}"));
    pods.list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap()
}

/// Records a measurement and prints it at once, so a later failure still shows it.
fn figure(figures: &mut Vec<String>, text: String) {
    eprintln!("figure: {text}");
    figures.push(text);
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(RELEASE)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// `changeorder_leader` as each pod reports it on /metrics (pods that do not answer count as 0).
async fn leaders(http: &reqwest::Client, pods: &[Pod]) -> BTreeSet<String> {
    // All pods at once, so one sample is one moment (a terminating pod may be slow to answer).
    let scrapes = pods.iter().map(|p| async move {
        let url = format!("http://{}:8081/metrics", pod_ip(p));
        let body = http.get(&url).send().await.ok()?.text().await.ok()?;
        body.lines()
            .any(|l| l.trim() == "changeorder_leader 1")
            .then(|| name(p))
    });
    futures::future::join_all(scrapes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Every running operator pod (Ready or not, terminating included): what could be leading.
async fn running_pods(pods: &Api<Pod>) -> Vec<Pod> {
    let lp = ListParams::default().labels(&format!("app.kubernetes.io/instance={RELEASE}"));
    pods.list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect()
}

/// Requests a poll of the watch now and waits until the operator has handled it: proof that
/// whoever leads is polling the simulator.
async fn poll_now(watches: &Api<ChangeOrderWatch>, watch: &str, token: &str, timeout: Duration) {
    let patch = json!({"metadata": {"annotations": {"changeorder.io/reconcile-requested-at": token}}});
    watches
        .patch(
            watch,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    eventually(
        &format!("the watch to handle reconcile request {token}"),
        timeout,
        || async {
            let w = watches.get(watch).await.ok()?;
            let handled = serde_json::to_value(&w.status).ok()?["lastHandledReconcileAt"].clone();
            (handled == token).then_some(())
        },
    )
    .await;
}

/// The host's view of a container: the process's uid and whether its root mount is read-only.
fn container_facts(node: &TestNode, pod: &str) -> (String, bool) {
    let out = ok({
        let mut c = node.ctr();
        c.args([
            "containers",
            "ls",
            "-q",
            &format!("labels.\"io.kubernetes.pod.name\"=={pod}"),
        ]);
        c
    });
    let ids: Vec<&str> = out.split_whitespace().collect();
    for id in ids {
        let info: Value = serde_json::from_str(&ok({
            let mut c = node.ctr();
            c.args(["containers", "info", id]);
            c
        }))
        .unwrap();
        if info["Labels"]["io.kubernetes.container.name"] != "operator" {
            continue;
        }
        let readonly = info["Spec"]["root"]["readonly"] == true;
        let tasks = ok({
            let mut c = node.ctr();
            c.args(["tasks", "ls"]);
            c
        });
        let pid = tasks
            .lines()
            .find(|l| l.starts_with(id))
            .and_then(|l| l.split_whitespace().nth(1))
            .expect("the operator container's task");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .unwrap()
            .trim()
            .to_string();
        return (uid, readonly);
    }
    panic!("no operator container for pod {pod}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chart_on_a_real_node() {
    if let Err(why) = TestNode::available() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let node = TestNode::get();
    let cluster = node.cluster();
    let mut figures = vec![format!("node up (Ready): {:.1}s", node.start_secs)];
    let registry = TestRegistry::shared();
    let release = registry.release();
    figure(
        &mut figures,
        format!("release.sh --registry (push, sign, attest): {:.1}s", release.secs),
    );
    // Nothing preloaded: the node holds no operator image before the install.
    let images = |node: &TestNode| {
        ok({
            let mut c = node.ctr();
            c.args(["images", "ls", "-q"]);
            c
        })
    };
    assert!(
        !images(node).contains("changeorder-operator"),
        "the node already has an operator image:\n{}",
        images(node)
    );
    let oci = format!("oci://{}", release.chart_repo);

    let ns = cluster.namespace("chart-node").await;
    let users = cluster.namespace("chart-node-users").await;
    // Pods in the release namespace must pass the `restricted` Pod Security level.
    ok({
        let mut c = cluster.kubectl();
        c.args(["label", "namespace", ns.name()])
            .args(["pod-security.kubernetes.io/enforce=restricted"])
            .args(["pod-security.kubernetes.io/enforce-version=latest"]);
        c
    });
    // Enforcement is on: a pod that is not restricted is refused.
    let refused = ns
        .kubectl()
        .args([
            "run",
            "privileged",
            "--image=changeorder-operator:x",
            "--dry-run=server",
        ])
        .args(["--overrides", r#"{"spec":{"hostNetwork":true}}"#])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "restricted is enforced: {}",
        text(&refused)
    );
    assert!(
        text(&refused).contains("violates PodSecurity"),
        "{}",
        text(&refused)
    );

    // The simulator runs on the host, in this process, listening on the node's bridge address,
    // which pods reach: the operator's image holds the operator only.
    let gateway = node_gateway(&node.pod_subnet);
    let mut sim_config =
        changeorder_sim::SimConfig::new(changeorder_sim::Scenario::demo().expect("demo scenario"));
    sim_config.listen = std::net::SocketAddr::new(gateway, 0);
    let sim = changeorder_sim::start(sim_config)
        .await
        .expect("simulator starts");
    let sim_url = sim.url();
    let pods: Api<Pod> = ns.api();

    // helm install, two replicas (leader election), waiting for Ready pods as a user would. The
    // test hook gets a watch on the simulator to poll, with credentials in the release namespace.
    let credentials = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "edas-credentials"},
        "stringData": {"accessKeyId": "demo-key-id", "accessKeySecret": "demo-key-secret"}
    });
    apply(&ns, &credentials);
    let mut set = vec![
        "replicaCount=2".to_string(),
        "test.probe.watch.provider=edas".to_string(),
        format!("test.probe.watch.endpoint={sim_url}"),
        "test.probe.watch.appId=demo-edas-app".to_string(),
        "test.probe.watch.credentialsSecretRef.name=edas-credentials".to_string(),
    ];
    // Branches with the endpoint policy need the simulator's address allowed.
    let values = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    if values.contains("\nallowedEndpoints:") {
        set.push(format!("allowedEndpoints[0]={sim_url}"));
    }
    let started = Instant::now();
    ok({
        let mut c = registry.helm(ns.helm());
        c.args([
            "install",
            RELEASE,
            &oci,
            "--version",
            &release.version,
            "--wait",
            "--timeout",
            "4m",
            "--set",
            &set.join(","),
        ]);
        c
    });
    let install_secs = started.elapsed().as_secs_f64();
    figure(
        &mut figures,
        format!("helm install --wait (2 replicas Ready): {install_secs:.1}s"),
    );
    let ready = ready_pods(&pods).await;
    assert_eq!(ready.len(), 2, "two Ready operator pods");
    // The kubelet pulled the released image from the registry, by its digest.
    for p in &ready {
        let c = p
            .spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .find(|c| c.name == "operator")
            .unwrap();
        assert_eq!(c.image.as_deref(), Some(release.image().as_str()));
        let status = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .unwrap();
        let pulled = status.iter().find(|s| s.name == "operator").unwrap();
        assert!(
            pulled.image_id.ends_with(&release.image_digest),
            "image ID {} is not the released digest {}",
            pulled.image_id,
            release.image_digest
        );
    }
    assert!(
        images(node).contains(&release.image_digest),
        "containerd holds the pulled image:\n{}",
        images(node)
    );

    // What the pods are: the chart's ServiceAccount, the /ready probe, restricted, read-only.
    let sa = RELEASE.to_string();
    for p in &ready {
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some(sa.as_str()));
        assert_eq!(spec.node_name.as_deref(), Some(node.name.as_str()));
        let c = spec.containers.iter().find(|c| c.name == "operator").unwrap();
        let probe = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(probe.path.as_deref(), Some("/ready"));
        let (uid, readonly) = container_facts(node, &name(p));
        assert!(
            uid.split_whitespace().all(|u| u == "65532"),
            "the process runs as 65532: {uid}"
        );
        assert!(readonly, "the root filesystem is mounted read-only");
        // The kubelet agrees: /ready answers 200 on the pod's address.
        let r = reqwest::get(format!("http://{}:8081/ready", pod_ip(p)))
            .await
            .unwrap();
        assert!(r.status().is_success(), "/ready of {}: {}", name(p), r.status());
    }
    // The ServiceAccount's rights: the operator's resources, not the cluster.
    let can = |verb: &str, what: &str| {
        let out = cluster
            .kubectl()
            .args(["auth", "can-i", verb, what])
            .arg(format!("--as=system:serviceaccount:{}:{sa}", ns.name()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "yes"
    };
    assert!(can("list", "changeorderwatches.changeorder.io"));
    assert!(can("create", "changeorders.changeorder.io"));
    assert!(!can("create", "pods"));
    assert!(!can("delete", "namespaces"));

    // A user's watch against the simulator pod: the operator inside syncs it.
    let watch_spec = json!({
        "provider": "edas",
        "endpoint": sim_url,
        "appId": "demo-edas-app",
        "credentialsSecretRef": {"name": "edas-credentials"},
        "interval": "5s",
        "inFlightInterval": "2s"
    });
    apply(&users, &credentials);
    apply(
        &users,
        &json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch",
            "metadata": {"name": "demo-edas"}, "spec": watch_spec
        }),
    );
    let watches: Api<ChangeOrderWatch> = users.api();
    let orders: Api<ChangeOrder> = users.api();
    let synced = Instant::now();
    eventually(
        "ChangeOrders from the simulator",
        Duration::from_secs(90),
        || async {
            let n = orders.list(&ListParams::default()).await.ok()?.items.len();
            (n > 0).then_some(())
        },
    )
    .await;
    figure(
        &mut figures,
        format!(
            "watch created → first ChangeOrder: {:.1}s",
            synced.elapsed().as_secs_f64()
        ),
    );
    poll_now(&watches, "demo-edas", "before-handover", Duration::from_secs(60)).await;

    // Deleting the leader pod hands the Lease to the standby, and polling goes on.
    let leases: Api<Lease> = ns.api();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let leader_identity = eventually("a Lease holder", Duration::from_secs(60), || holder(&leases)).await;
    let leader = ready
        .iter()
        .find(|p| leader_identity.starts_with(&name(p)))
        .unwrap_or_else(|| panic!("the holder {leader_identity} is one of the pods"));
    let leader_name = name(leader);
    // The holder sets its metric right after taking the Lease.
    let expected = BTreeSet::from([leader_name.clone()]);
    eventually(
        "the holder, and only it, to report leading",
        Duration::from_secs(10),
        || async { (leaders(&http, &ready).await == expected).then_some(()) },
    )
    .await;
    let deleted = Instant::now();
    ok({
        let mut c = ns.kubectl();
        c.args(["delete", "pod", &leader_name, "--wait=false"]);
        c
    });
    // Whoever stands by when the Lease is released may take it: the old standby or the pod
    // replacing the deleted one.
    let new_holder = eventually(
        "another pod to take the Lease",
        Duration::from_secs(60),
        || async { holder(&leases).await.filter(|h| !h.starts_with(&leader_name)) },
    )
    .await;
    let handover = deleted.elapsed().as_secs_f64();
    let by = if ready.iter().any(|p| new_holder.starts_with(&name(p))) {
        "the standby"
    } else {
        "the replacement pod"
    };
    figure(
        &mut figures,
        format!("leader pod deleted → Lease held by {by}: {handover:.1}s"),
    );
    // The kubelet may report the replacement Running a moment after its process took the Lease.
    eventually(
        &format!("the holder {new_holder} to be a running pod"),
        Duration::from_secs(30),
        || async {
            let running = running_pods(&pods).await;
            running
                .iter()
                .any(|p| new_holder.starts_with(&name(p)) && name(p) != leader_name)
                .then_some(())
        },
    )
    .await;
    poll_now(&watches, "demo-edas", "after-handover", Duration::from_secs(60)).await;

    // helm upgrade with a changed value rolls the pods; at no sampled moment do two pods lead.
    let upgrade = {
        let mut c = registry.helm(ns.helm());
        c.args([
            "upgrade",
            RELEASE,
            &oci,
            "--version",
            &release.version,
            "--reuse-values",
            "--wait",
            "--timeout",
            "4m",
        ])
        .args(["--set", "operator.concurrency=4"]);
        c
    };
    let old_pods: BTreeSet<String> = ready_pods(&pods).await.iter().map(name).collect();
    let mut child = tokio::process::Command::from(upgrade).spawn().unwrap();
    let mut max_leaders = 0;
    let mut samples = 0;
    let status = loop {
        let running = running_pods(&pods).await;
        let now = leaders(&http, &running).await;
        assert!(
            now.len() <= 1,
            "two pods lead at once during the upgrade: {now:?}"
        );
        max_leaders = max_leaders.max(now.len());
        samples += 1;
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "helm upgrade failed");
    let new_pods: BTreeSet<String> = ready_pods(&pods).await.iter().map(name).collect();
    assert_eq!(new_pods.len(), 2);
    assert!(
        new_pods.is_disjoint(&old_pods),
        "every pod was replaced: {old_pods:?} → {new_pods:?}"
    );
    figure(
        &mut figures,
        format!("helm upgrade: {samples} samples of every pod's /metrics, never two leaders"),
    );
    poll_now(&watches, "demo-edas", "after-upgrade", Duration::from_secs(90)).await;

    // helm test: the hook pod runs the image and polls the simulator once.
    let test_out = ok({
        let mut c = ns.helm();
        c.args(["test", RELEASE, "--timeout", "2m", "--logs"]);
        c
    });
    assert!(test_out.contains("Succeeded"), "{test_out}");

    // helm uninstall: the CRDs and the user's objects stay.
    let before = orders.list(&ListParams::default()).await.unwrap().items.len();
    ok({
        let mut c = ns.helm();
        c.args(["uninstall", RELEASE, "--wait", "--timeout", "2m"]);
        c
    });
    for crd in CRDS {
        ok({
            let mut c = cluster.kubectl();
            c.args(["get", "crd", crd]);
            c
        });
    }
    assert!(
        watches.get("demo-edas").await.is_ok(),
        "the user's watch survives"
    );
    assert_eq!(
        orders.list(&ListParams::default()).await.unwrap().items.len(),
        before
    );
    eventually("the operator pods to go", Duration::from_secs(60), || async {
        running_pods(&pods).await.is_empty().then_some(())
    })
    .await;

    eprintln!("figures:\n  {}", figures.join("\n  "));
}
