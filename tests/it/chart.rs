//! The Helm chart against a real kube-apiserver (tests/tools/cluster.sh): the rendered manifests
//! pass server-side validation, the pod passes the `restricted` Pod Security Standard, the RBAC
//! grants the operator exactly what it needs, and the examples and the CI wait script work.
//! Install, upgrade and uninstall are in tests/it/chart_lifecycle.rs (they need a cluster whose CRDs
//! Helm owns).
//!
//! ServiceMonitor and PrometheusRule need the Prometheus Operator's CRDs, which this cluster does
//! not have; those two kinds are checked as rendered YAML in tests/it/chart_render.rs and left out of
//! the server-side dry run here.

use crate::chart_support;
use crate::support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chart_support::{chart_dir, objects, profile, root, text};
use serde_yaml::Value;
use support::cluster::{TestCluster, TestNamespace};

/// The CRDs from crds/, applied once per cluster (not through Helm: several tests install the
/// chart at once, and only one release could own them).
fn crds_installed(cluster: &'static TestCluster) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let crds = root().join("crds/changeorder.io_crds.yaml");
        let out = cluster
            .kubectl()
            .args(["apply", "--server-side", "-f"])
            .arg(&crds)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let out = cluster
            .kubectl()
            .args(["wait", "--for=condition=Established", "--timeout=60s", "-f"])
            .arg(&crds)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    });
}

/// `helm template` with the cluster's helm, in namespace `ns`.
fn template(ns: &TestNamespace, release: &str, args: &[&str]) -> String {
    let out = ns
        .helm()
        .args(["template", release])
        .arg(chart_dir())
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "helm template {args:?}:\n{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd` with `input` on stdin; (success, stdout, stderr).
fn pipe(mut cmd: Command, input: &str) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn to_yaml_stream(objs: &[Value]) -> String {
    objs.iter()
        .map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap()))
        .collect()
}

/// `helm template | kubectl apply --dry-run=server`: the API server validates every object
/// (schemas, RBAC references, CRD structure) without keeping any.
fn assert_server_accepts(ns: &TestNamespace, release: &str, args: &[&str]) -> Vec<Value> {
    let objs: Vec<Value> = objects(&template(ns, release, args))
        .into_iter()
        .filter(|o| {
            !matches!(
                o["kind"].as_str(),
                Some("ServiceMonitor") | Some("PrometheusRule")
            )
        })
        .collect();
    // No --namespace: the Roles go to other namespaces, and every object names its own.
    // Server-side apply, as Helm 4 does; other tests may have applied the CRDs already.
    let mut cmd = ns.cluster().kubectl();
    cmd.args([
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        "-",
    ]);
    let (ok, stdout, stderr) = pipe(cmd, &to_yaml_stream(&objs));
    assert!(ok, "server rejected the chart rendered with {args:?}:\n{stderr}");
    assert!(!stderr.contains("Warning"), "{args:?}: {stderr}");
    let applied = stdout.lines().filter(|l| l.contains("(server dry run)")).count();
    assert_eq!(applied, objs.len(), "{args:?}: every object accepted:\n{stdout}");
    objs
}

#[tokio::test]
async fn rendered_chart_passes_server_side_validation() {
    let cluster = TestCluster::get();
    let ns = cluster.namespace("chart-dry-run").await;
    let served_a = cluster.namespace("chart-served-a").await;
    let served_b = cluster.namespace("chart-served-b").await;

    assert_server_accepts(&ns, "dry-default", &[]);
    let namespaces = format!("watchNamespaces={{{},{}}}", served_a.name(), served_b.name());
    let objs = assert_server_accepts(&ns, "dry-ns", &["--set", &namespaces]);
    // One Role per served namespace, plus the leader-election Role (election is on by default).
    assert_eq!(objs.iter().filter(|o| o["kind"] == "Role").count(), 3);
    assert_server_accepts(&ns, "dry-ha", &["-f", &profile("ha")]);
    let objs = assert_server_accepts(
        &ns,
        "dry-full",
        &[
            "-f",
            &profile("full"),
            "--set",
            &format!("watchNamespaces={{{}}}", served_a.name()),
        ],
    );
    for kind in ["NetworkPolicy", "PodDisruptionBudget", "Deployment", "Service"] {
        assert!(objs.iter().any(|o| o["kind"] == kind), "{kind} was checked");
    }
    // The longest release name Helm takes, with the values added for issue 22: names cut to 63
    // characters, labels merged, the default spread of replicas.
    let long = format!("dry-long-{}", "x".repeat(44));
    assert_eq!(long.len(), 53);
    assert_server_accepts(
        &ns,
        &long,
        &[
            "--set",
            "replicaCount=2,commonLabels.team=payments,extraArgs={--log-format=plain}",
            "--set",
            "keyless.enabled=true,actions.enabled=true,rbac.readCRDs=true,grafanaDashboard.enabled=true",
            "--set-string",
            "grafanaDashboard.labels.grafana_dashboard=1",
        ],
    );
}

/// A Pod with the Deployment's template, as the ReplicaSet controller would create it.
fn pod_from_template(deployment: &Value) -> Value {
    let template = &deployment["spec"]["template"];
    let mut pod: Value =
        serde_yaml::from_str("apiVersion: v1\nkind: Pod\nmetadata: {name: operator}").unwrap();
    pod["metadata"]["labels"] = template["metadata"]["labels"].clone();
    pod["spec"] = template["spec"].clone();
    pod
}

fn restricted_namespace(ns: &TestNamespace) {
    // enforce rejects a violating Pod; warn makes the API server say why, for workloads too.
    let out = ns
        .kubectl()
        .args(["label", "namespace", ns.name()])
        .args([
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// (accepted, stderr) of `kubectl apply --dry-run=server` for the Deployment and its Pod.
fn apply_workload(ns: &TestNamespace, args: &[&str]) -> (bool, String) {
    let objs = objects(&template(ns, "psa", args));
    let deployment = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let stream = to_yaml_stream(&[deployment.clone(), pod_from_template(deployment)]);
    let mut cmd = ns.kubectl();
    cmd.args(["apply", "--dry-run=server", "-f", "-"]);
    let (ok, _, stderr) = pipe(cmd, &stream);
    (ok, stderr)
}

#[tokio::test]
async fn pod_is_admitted_under_the_restricted_pod_security_standard_without_warnings() {
    let ns = TestCluster::get().namespace("chart-psa").await;
    restricted_namespace(&ns);
    // The ServiceAccount admission plugin wants the Pod's ServiceAccount to exist.
    let out = ns
        .kubectl()
        .args(["create", "serviceaccount", "psa-changeorder-operator"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    for args in [&[][..], &["-f", &profile("full")][..]] {
        let (ok, stderr) = apply_workload(&ns, args);
        assert!(ok, "{args:?}: rejected under restricted:\n{stderr}");
        assert!(!stderr.contains("Warning"), "{args:?}: {stderr}");
    }

    // The same check on a weakened pod: proves Pod Security admission is really judging it.
    let (ok, stderr) = apply_workload(&ns, &["--set", "securityContext.allowPrivilegeEscalation=true"]);
    assert!(!ok, "a pod allowing privilege escalation must be refused");
    assert!(stderr.contains("allowPrivilegeEscalation"), "{stderr}");
}

/// Installs the chart (CRDs excluded: the cluster has them already) and returns the operator's
/// ServiceAccount as a user name for `--as`.
fn install(ns: &TestNamespace, release: &str, args: &[&str]) -> String {
    let out = ns
        .helm()
        .args(["install", release])
        .arg(chart_dir())
        .args(["--set", "crds.install=false"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "helm install {release}:\n{}", text(&out));
    format!(
        "system:serviceaccount:{}:{release}-changeorder-operator",
        ns.name()
    )
}

/// `kubectl auth can-i` for `user`: Some(true/false), panicking on any other failure.
fn can_i(cluster: &TestCluster, user: &str, namespace: Option<&str>, args: &[&str]) -> bool {
    let mut cmd = cluster.kubectl();
    cmd.args(["auth", "can-i"]).args(args).arg(format!("--as={user}"));
    match namespace {
        Some(n) => cmd.args(["--namespace", n]),
        None => cmd.arg("--all-namespaces"),
    };
    let out = cmd.output().unwrap();
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        _ => panic!("kubectl auth can-i {args:?}: {}", text(&out)),
    }
}

/// What the operator must be able to do in a namespace it serves.
const SERVED: &[&[&str]] = &[
    &["get", "changeorderwatches.changeorder.io"],
    &["list", "changeorderwatches.changeorder.io"],
    &["watch", "changeorderwatches.changeorder.io"],
    &[
        "patch",
        "changeorderwatches.changeorder.io",
        "--subresource=status",
    ],
    &["get", "changeorders.changeorder.io"],
    &["list", "changeorders.changeorder.io"],
    &["watch", "changeorders.changeorder.io"],
    &["create", "changeorders.changeorder.io"],
    &["patch", "changeorders.changeorder.io"],
    &["delete", "changeorders.changeorder.io"],
    &["patch", "changeorders.changeorder.io", "--subresource=status"],
    &["update", "changeorders.changeorder.io", "--subresource=status"],
    &["get", "changeorderactions.changeorder.io"],
    &["watch", "changeorderactions.changeorder.io"],
    &["delete", "changeorderactions.changeorder.io"],
    &[
        "update",
        "changeorderactions.changeorder.io",
        "--subresource=status",
    ],
    &["get", "secrets"],
    &["list", "secrets"],
    &["watch", "secrets"],
    &["create", "events.events.k8s.io"],
    &["patch", "events.events.k8s.io"],
];

/// What it must not do anywhere: it only reads watches and Secrets, writes with server-side apply
/// (never update), and records Events through events.k8s.io only.
const NEVER: &[&[&str]] = &[
    &["create", "changeorderwatches.changeorder.io"],
    &["update", "changeorderwatches.changeorder.io"],
    &["delete", "changeorderwatches.changeorder.io"],
    &[
        "update",
        "changeorderwatches.changeorder.io",
        "--subresource=status",
    ],
    &["update", "changeorders.changeorder.io"],
    // Requests come from people; the operator only carries them out.
    &["create", "changeorderactions.changeorder.io"],
    &["create", "secrets"],
    &["update", "secrets"],
    &["delete", "secrets"],
    &["get", "configmaps"],
    &["create", "pods"],
    &["create", "events"],
    &["patch", "events"],
    &["delete", "events"],
    &["delete", "events.events.k8s.io"],
];

fn assert_grants(cluster: &TestCluster, user: &str, ns: Option<&str>, list: &[&[&str]], want: bool) {
    let wrong: Vec<String> = list
        .iter()
        .filter(|args| can_i(cluster, user, ns, args) != want)
        .map(|args| args.join(" "))
        .collect();
    assert!(
        wrong.is_empty(),
        "{user} in {}: expected {} for: {wrong:?}",
        ns.unwrap_or("all namespaces"),
        if want { "allowed" } else { "denied" }
    );
}

#[tokio::test]
async fn namespaced_rbac_grants_only_the_served_namespaces() {
    let cluster = TestCluster::get();
    crds_installed(cluster);
    let ns = cluster.namespace("chart-rbac-ns").await;
    let served = cluster.namespace("chart-rbac-served").await;
    let other = cluster.namespace("chart-rbac-other").await;
    let user = install(
        &ns,
        "rbac-ns",
        &[
            "--set",
            &format!("watchNamespaces={{{}}}", served.name()),
            "--set",
            "replicaCount=2,rbac.readCRDs=true",
        ],
    );

    assert_grants(cluster, &user, Some(served.name()), SERVED, true);
    assert_grants(cluster, &user, Some(served.name()), NEVER, false);
    // Outside watchNamespaces: nothing, in particular no Secret.
    assert_grants(cluster, &user, Some(other.name()), SERVED, false);
    assert_grants(cluster, &user, Some(ns.name()), SERVED, false);
    assert!(!can_i(cluster, &user, None, &["list", "secrets"]));
    assert!(!can_i(
        cluster,
        &user,
        None,
        &["list", "changeorderwatches.changeorder.io"]
    ));

    // The Lease: create, then only its own, in the release namespace only.
    let lease = "leases.coordination.k8s.io";
    let own = format!("{lease}/rbac-ns-changeorder-operator");
    assert!(can_i(cluster, &user, Some(ns.name()), &["create", lease]));
    for verb in ["get", "update"] {
        assert!(
            can_i(cluster, &user, Some(ns.name()), &[verb, &own]),
            "{verb} own Lease"
        );
        assert!(
            !can_i(
                cluster,
                &user,
                Some(ns.name()),
                &[verb, &format!("{lease}/kube-scheduler")]
            ),
            "{verb} another Lease"
        );
    }
    assert!(!can_i(cluster, &user, Some(served.name()), &["create", lease]));
    assert!(!can_i(cluster, &user, Some(ns.name()), &["delete", &own]));
    // Leader election replaces the Lease; it never patches it.
    assert!(!can_i(cluster, &user, Some(ns.name()), &["patch", &own]));

    // rbac.readCRDs: get on its own two CRDs, nothing else cluster-scoped.
    let crd = "customresourcedefinitions.apiextensions.k8s.io";
    for name in ["changeorderwatches.changeorder.io", "changeorders.changeorder.io"] {
        assert!(can_i(cluster, &user, None, &["get", &format!("{crd}/{name}")]));
    }
    assert!(!can_i(cluster, &user, None, &["list", crd]));
    assert!(!can_i(
        cluster,
        &user,
        None,
        &["get", &format!("{crd}/other.example.com")]
    ));
    assert!(!can_i(cluster, &user, None, &["list", "namespaces"]));
}

#[tokio::test]
async fn cluster_wide_rbac_serves_every_namespace_but_leases_only_at_home() {
    let cluster = TestCluster::get();
    crds_installed(cluster);
    let ns = cluster.namespace("chart-rbac-cluster").await;
    let elsewhere = cluster.namespace("chart-rbac-elsewhere").await;
    let user = install(&ns, "rbac-cl", &["--set", "leaderElection.enabled=true"]);

    assert_grants(cluster, &user, Some(elsewhere.name()), SERVED, true);
    assert_grants(cluster, &user, Some(elsewhere.name()), NEVER, false);
    assert!(can_i(cluster, &user, None, &["list", "secrets"]));
    assert!(can_i(
        cluster,
        &user,
        Some(ns.name()),
        &["create", "leases.coordination.k8s.io"]
    ));
    assert!(!can_i(
        cluster,
        &user,
        Some(elsewhere.name()),
        &["create", "leases.coordination.k8s.io"]
    ));
    // Without rbac.readCRDs, no access to the CRDs.
    let crd = "customresourcedefinitions.apiextensions.k8s.io/changeorders.changeorder.io";
    assert!(!can_i(cluster, &user, None, &["get", crd]));
}

/// The view/edit aggregation: people with the built-in roles get the new kinds (filled in by the
/// controller-manager's ClusterRole aggregation controller).
#[tokio::test]
async fn built_in_edit_and_view_roles_cover_watches_and_orders() {
    let cluster = TestCluster::get();
    crds_installed(cluster);
    let ns = cluster.namespace("chart-rbac-users").await;
    install(&ns, "rbac-users", &[]);
    for (user, role) in [("alice", "edit"), ("victor", "view")] {
        let out = ns
            .kubectl()
            .args(["create", "rolebinding", &format!("{user}-{role}")])
            .arg(format!("--clusterrole={role}"))
            .arg(format!("--user={user}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let cases: &[(&str, &[&str], bool)] = &[
        ("alice", &["create", "changeorderwatches.changeorder.io"], true),
        ("alice", &["delete", "changeorders.changeorder.io"], true),
        ("alice", &["create", "changeorders.changeorder.io"], false),
        (
            "alice",
            &["patch", "changeorders.changeorder.io", "--subresource=status"],
            false,
        ),
        ("victor", &["list", "changeorders.changeorder.io"], true),
        ("victor", &["get", "changeorderwatches.changeorder.io"], true),
        ("victor", &["create", "changeorderwatches.changeorder.io"], false),
    ];
    loop {
        let wrong: Vec<_> = cases
            .iter()
            .filter(|(u, args, want)| can_i(cluster, u, Some(ns.name()), args) != *want)
            .collect();
        if wrong.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "after 60s still wrong: {wrong:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test]
async fn provider_examples_are_valid_watches_and_secrets() {
    let cluster = TestCluster::get();
    crds_installed(cluster);
    let ns = cluster.namespace("chart-examples").await;
    for provider in ["edas", "sae", "appstack"] {
        let out = ns
            .kubectl()
            .args(["apply", "-f"])
            .arg(root().join("examples").join(provider))
            .output()
            .unwrap();
        assert!(out.status.success(), "examples/{provider}: {}", text(&out));
    }
    let out = ns
        .kubectl()
        .args(["get", "changeorderwatches", "-o", "yaml"])
        .output()
        .unwrap();
    let list: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    let mut names: Vec<&str> = list["items"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|w| w["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["demo-appstack", "demo-edas", "demo-sae"]);
    // Each watch names a Secret that the same example created, with the keys its provider needs.
    for w in list["items"].as_sequence().unwrap() {
        let secret = w["spec"]["credentialsSecretRef"]["name"].as_str().unwrap();
        let out = ns
            .kubectl()
            .args(["get", "secret", secret, "-o", "jsonpath={.data}"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let data = String::from_utf8_lossy(&out.stdout).into_owned();
        let keys: &[&str] = match w["spec"]["provider"].as_str().unwrap() {
            "appstack" => &["token"],
            _ => &["accessKeyId", "accessKeySecret"],
        };
        for k in keys {
            assert!(data.contains(&format!("\"{k}\"")), "{secret} has {k}: {data}");
        }
    }
}

/// A ChangeOrder as the operator writes it, for the CI script to find.
fn create_order(ns: &TestNamespace, name: &str, id: &str) {
    let manifest = format!(
        "apiVersion: changeorder.io/v1alpha1\nkind: ChangeOrder\nmetadata:\n  name: {name}\n  labels:\n    \
         changeorder.io/watch: demo-edas\n    changeorder.io/provider: edas\nspec:\n  provider: edas\n  \
         changeOrderId: {id}\n  appId: demo-edas-app\n"
    );
    let mut cmd = ns.kubectl();
    cmd.args(["apply", "-f", "-"]);
    let (ok, _, stderr) = pipe(cmd, &manifest);
    assert!(ok, "{stderr}");
}

/// Writes the status the operator would write for a finished order.
fn finish_order(ns: &TestNamespace, name: &str, phase: &str, ready: bool, message: &str) {
    let t = "2026-01-02T03:04:05Z";
    let cond = |type_: &str, status: bool, reason: &str, msg: &str| {
        serde_json::json!({
            "type": type_, "status": if status { "True" } else { "False" }, "reason": reason,
            "message": msg, "lastTransitionTime": t, "observedGeneration": 1
        })
    };
    let reason = if ready { "Succeeded" } else { "Failed" };
    let patch = serde_json::json!({"status": {
        "phase": phase, "reason": reason, "observedGeneration": 1,
        "conditions": [
            cond("Ready", ready, reason, if ready { message } else { "" }),
            cond("Reconciling", false, reason, ""),
            cond("Stalled", !ready, reason, if ready { "" } else { message }),
            cond("AwaitingInput", false, reason, ""),
        ]
    }});
    let out = ns
        .kubectl()
        .args([
            "patch",
            "changeorder",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
        ])
        .arg(patch.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

/// The CI script with the cluster's kubectl first on PATH.
fn wait_script(ns: &TestNamespace, id: &str, timeout: &str) -> std::process::Child {
    let path = format!(
        "{}:{}",
        ns.cluster().bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .arg(root().join("examples/ci/wait-for-change-order.sh"))
        .args(["-n", ns.name(), "-w", "demo-edas", "-i", id, "-t", timeout])
        .env("PATH", path)
        .env("KUBECONFIG", ns.cluster().kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: std::process::Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), text(&out))
}

#[tokio::test]
async fn ci_wait_script_passes_on_ready_and_fails_on_stalled() {
    let cluster = TestCluster::get();
    crds_installed(cluster);
    let ns = cluster.namespace("chart-ci-wait").await;

    // Succeeds: the order exists and then turns Ready.
    create_order(&ns, "demo-edas-ok-1", "OK-1");
    let child = wait_script(&ns, "OK-1", "90s");
    std::thread::sleep(Duration::from_secs(2));
    finish_order(&ns, "demo-edas-ok-1", "Succeeded", true, "Deployed 2 batches");
    let (code, out) = finished(child);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("succeeded: Deployed 2 batches"), "{out}");

    // Fails: the order appears only after the script started, then stalls.
    let child = wait_script(&ns, "BAD-2", "90s");
    std::thread::sleep(Duration::from_secs(2));
    create_order(&ns, "demo-edas-bad-2", "BAD-2");
    std::thread::sleep(Duration::from_secs(6));
    finish_order(
        &ns,
        "demo-edas-bad-2",
        "Failed",
        false,
        "Health check failed on batch 2",
    );
    let (code, out) = finished(child);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Failed") && out.contains("Health check failed on batch 2"),
        "{out}"
    );

    // Times out: the order never finishes.
    create_order(&ns, "demo-edas-slow-3", "SLOW-3");
    let (code, out) = finished(wait_script(&ns, "SLOW-3", "3s"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("not finished within 3s"), "{out}");
}
