//! `helm upgrade` from release N to N+1 and `helm rollback` to N, with users' watches, orders and
//! an action in place, on a control plane of its own (so the API server's request counters are
//! this test's alone).
//!
//! Release N is the chart as it is, packaged with `helm package`; release N+1 is the same chart
//! with its version bumped and a ChangeOrderWatch CRD whose schema has one more optional field
//! (`spec.owner`) and one more printer column (`Owner`), as a real release that extends a CRD
//! would. Both are installed from local packages; installing from the OCI registry is the
//! registry test's part.
//!
//! The operator runs as the real binary out of cluster, with the environment the installed
//! Deployment gives it and its ServiceAccount's token. A real node (tests/it/chart_node.rs) would
//! add its own start and an image build, and nothing an upgrade can lose lives in the pod: it is
//! all in the API server. On upgrade and rollback the operator is stopped with SIGTERM and
//! started again, as the Deployment's rollout does (the new pod takes the Lease over).

use crate::chart_support;
use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use changeorder_operator::crd::{ActionPhase, ChangeOrder, ChangeOrderAction, ChangeOrderWatch};
use changeorder_sim as sim;
use chart_support::{chart_dir, text};
use kube::ResourceExt;
use kube::api::PostParams;
use serde_json::Value;
use support::cluster::{TestCluster, TestNamespace, eventually};
use support::operator::*;
use support::process::{Proc, free_port, http_get};

const RELEASE: &str = "co-up";
const WAIT: Duration = Duration::from_secs(60);
const WATCH_CRD: &str = "changeorderwatches.changeorder.io";

/// A SAE app with an order waiting for confirmation of batch 2 of 3 (the action's target) and a
/// finished one; an EDAS app with an order in flight and a finished one. Nothing changes in the
/// cloud unless the action confirms the batch.
const SCENARIO: &str = r#"
apps:
  - provider: sae
    appId: up-sae
    changeOrders:
      - { id: up-wait, createdAt: -2m, batchCount: 3, batchType: manual, status: 8, currentBatch: 2, message: confirm batch 2 }
      - { id: up-sae-done, createdAt: -1h, status: 2 }
  - provider: edas
    appId: up-edas
    changeOrders:
      - { id: up-run, createdAt: -5m, status: 1, batchCount: 3, currentBatch: 2, message: deploying batch 2 }
      - { id: up-edas-done, createdAt: -2h, status: 2 }
  - provider: edas
    appId: up-late
    changeOrders:
      - { id: up-late-1, createdAt: -3m, status: 2 }
"#;

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(out.status.success(), "{cmd:?}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read chart dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy chart file");
        }
    }
}

/// `helm package DIR`: the path of the `.tgz`.
fn package(cluster: &TestCluster, dir: &Path, out: &Path) -> PathBuf {
    let said = ok(cluster.helm().arg("package").arg(dir).arg("-d").arg(out));
    let path = said
        .rsplit("saved it to: ")
        .next()
        .map(|p| PathBuf::from(p.trim()))
        .expect("helm package names its file");
    assert!(path.is_file(), "{said}");
    path
}

/// Release N+1 made from the chart in `dir`: the patch version bumped, and the ChangeOrderWatch
/// CRD template given an optional `spec.owner` and an `Owner` printer column. Returns the new
/// version.
fn make_next_release(dir: &Path) -> String {
    let chart_yaml = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).expect("Chart.yaml");
    let current = text
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .expect("Chart.yaml has a version line")
        .trim()
        .to_string();
    let (head, patch) = current.rsplit_once('.').expect("version X.Y.Z");
    let next = format!("{head}.{}", patch.parse::<u32>().expect("numeric patch") + 1);
    std::fs::write(
        &chart_yaml,
        text.replacen(&format!("version: {current}"), &format!("version: {next}"), 1),
    )
    .expect("write Chart.yaml");

    let crd = dir.join(format!("templates/crds/{WATCH_CRD}.yaml"));
    let text = std::fs::read_to_string(&crd).expect("watch CRD template");
    let columns = "  - additionalPrinterColumns:\n";
    assert_eq!(
        text.matches(columns).count(),
        1,
        "one served version with columns"
    );
    let text = text.replacen(
        columns,
        &format!("{columns}    - jsonPath: .spec.owner\n      name: Owner\n      type: string\n"),
        1,
    );
    let spec_props = "      openAPIV3Schema:\n";
    let at = text.find(spec_props).expect("openAPIV3Schema");
    let props = "\n          spec:\n            description: 'What to poll: one application of one release system.'\n            properties:\n";
    let rel = text[at..]
        .find(props)
        .expect("the spec's properties in the template");
    let insert_at = at + rel + props.len();
    let text = format!(
        "{}              owner:\n                description: Team that owns the watch (release N+1 of the upgrade test).\n                type: string\n{}",
        &text[..insert_at],
        &text[insert_at..]
    );
    std::fs::write(&crd, text).expect("write CRD template");
    next
}

/// The installed Deployment's container environment (plain values), with the downward API
/// fields filled in and the admin server on `admin_port`, and the ServiceAccount's name.
fn deployment_env(ns: &TestNamespace, admin_port: u16) -> (Vec<(String, String)>, String) {
    let deployment: Value = serde_json::from_str(&ok(ns.kubectl().args([
        "get",
        "deployment",
        "-l",
        &format!("app.kubernetes.io/instance={RELEASE}"),
        "-o",
        "json",
    ])))
    .expect("deployment json");
    let pod = &deployment["items"][0]["spec"]["template"]["spec"];
    let sa = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName")
        .to_string();
    let mut env: Vec<(String, String)> = pod["containers"][0]["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .filter(|(k, _)| k != "CHANGEORDER_ADMIN_LISTEN" && k != "CHANGEORDER_RECEIVER_LISTEN")
        .collect();
    env.push(("POD_NAME".into(), format!("{RELEASE}-pod")));
    env.push(("POD_NAMESPACE".into(), ns.name().to_string()));
    env.push((
        "CHANGEORDER_ADMIN_LISTEN".into(),
        format!("127.0.0.1:{admin_port}"),
    ));
    (env, sa)
}

/// The operator as the installed release runs it: its environment, its ServiceAccount's token.
async fn start_operator(ns: &TestNamespace, dir: &Path, name: &str) -> (Proc, u16) {
    let port = free_port();
    let (mut env, sa) = deployment_env(ns, port);
    let token = ok(ns.kubectl().args(["create", "token", &sa, "--duration=1h"]));
    let kubeconfig = dir.join(format!("{name}.kubeconfig"));
    crate::operator_process::token_kubeconfig(ns, &token, &kubeconfig);
    env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    let proc = Proc::spawn(name, dir, &env, &[]);
    eventually("the operator ready", WAIT, || async {
        http_get(port, "/ready").await.filter(|(s, _)| *s == 200)
    })
    .await;
    (proc, port)
}

async fn stop_operator(mut proc: Proc) {
    proc.terminate();
    let code = proc.exit_code(Duration::from_secs(30)).await;
    assert_eq!(code, Some(0), "clean exit on SIGTERM:\n{}", proc.log());
}

/// Sum of the operator's `changeorder_polls_total` series.
async fn polls(port: u16) -> u64 {
    let Some((_, text)) = http_get(port, "/metrics").await else {
        return 0;
    };
    text.lines()
        .filter(|l| l.starts_with("changeorder_polls_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits until the operator has polled at least `n` more times than `from`.
async fn polled(port: u16, from: u64, n: u64) -> u64 {
    eventually(&format!("{n} more polls"), WAIT, || async {
        let now = polls(port).await;
        (now >= from + n).then_some(now)
    })
    .await
}

/// Write requests (POST, PUT, PATCH, APPLY, DELETE) the API server has served, by
/// `resource[/subresource] VERB`, from its own `/metrics`.
async fn writes(client: &kube::Client) -> BTreeMap<String, u64> {
    let req = http::Request::get("/metrics").body(Vec::new()).expect("request");
    let text = client.request_text(req).await.expect("apiserver /metrics");
    let label = |line: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        line.split_once(&key)
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(v, _)| v.to_string())
            .unwrap_or_default()
    };
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("apiserver_request_total{")) {
        let verb = label(line, "verb");
        // APPLY is a server-side apply (Helm 4 applies that way), counted apart from PATCH.
        if !["POST", "PUT", "PATCH", "APPLY", "DELETE"].contains(&verb.as_str()) {
            continue;
        }
        let (resource, sub) = (label(line, "resource"), label(line, "subresource"));
        let key = if sub.is_empty() {
            format!("{resource} {verb}")
        } else {
            format!("{resource}/{sub} {verb}")
        };
        let n = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        *out.entry(key).or_insert(0) += n;
    }
    out
}

/// What changed between two counter snapshots, only the non-zero entries.
fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Writes to one resource and its subresources (`changeorders`, `changeorders/status`).
fn writes_to(d: &BTreeMap<String, u64>, resource: &str) -> u64 {
    d.iter()
        .filter(|(k, _)| k.starts_with(&format!("{resource} ")) || k.starts_with(&format!("{resource}/")))
        .map(|(_, v)| v)
        .sum()
}

fn order_writes(d: &BTreeMap<String, u64>) -> u64 {
    writes_to(d, "changeorders")
}

/// Every ChangeOrder's status as JSON (conditions with their lastTransitionTime included) and
/// its resourceVersion, by order id.
async fn snapshot(ns: &TestNamespace) -> BTreeMap<String, (Value, String)> {
    orders(ns)
        .await
        .into_iter()
        .map(|o: ChangeOrder| {
            (
                o.spec.change_order_id.clone(),
                (
                    serde_json::to_value(&o.status).expect("status json"),
                    o.resource_version().unwrap_or_default(),
                ),
            )
        })
        .collect()
}

fn crd(cluster: &TestCluster) -> Value {
    serde_json::from_str(&ok(cluster
        .kubectl()
        .args(["get", "crd", WATCH_CRD, "-o", "json"])))
    .expect("crd json")
}

fn has_owner(crd: &Value) -> (bool, bool) {
    let version = &crd["spec"]["versions"][0];
    let column = version["additionalPrinterColumns"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["name"] == "Owner" && c["jsonPath"] == ".spec.owner")
    });
    let field =
        version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["owner"]["type"] == "string";
    (field, column)
}

fn chart_version(ns: &TestNamespace) -> String {
    let list: Value = serde_json::from_str(&ok(ns.helm().args(["list", "-o", "json"]))).expect("helm list");
    list[0]["chart"].as_str().expect("chart").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_to_a_release_with_a_new_crd_field_and_roll_back_loses_nothing() {
    let cluster = TestCluster::isolated("chart-upgrade");
    let ns = cluster.namespace("upgrade-op").await;
    let users = cluster.namespace("upgrade-users").await;
    let sim = start_sim(SCENARIO).await;
    let tmp = tempfile::tempdir().expect("tempdir");

    // Release N as it is, release N+1 from a copy.
    let next_dir = tmp.path().join("next/changeorder-operator");
    copy_dir(&chart_dir(), &next_dir);
    let next_version = make_next_release(&next_dir);
    let packages = tmp.path().join("packages");
    let release_n = package(cluster, &chart_dir(), &packages);
    let release_n1 = package(cluster, &next_dir, &packages);

    let values = [
        "--set".to_string(),
        format!("watchNamespaces={{{}}}", users.name()),
        "--set".into(),
        "allowedEndpoints={http://127.0.0.1:*}".into(),
        "--set".into(),
        // Polls every second or two; one credential for every watch, so a budget above the
        // default's 50 calls a minute (else the third watch waits for its turn).
        "operator.defaultInterval=2s,operator.defaultInFlightInterval=1s,operator.callsPerMinute=1000".into(),
        "--set".into(),
        "actions.enabled=true,leaderElection.leaseDuration=3s".into(),
    ];
    ok(ns
        .helm()
        .arg("install")
        .arg(RELEASE)
        .arg(&release_n)
        .args(&values));
    let version_n = chart_version(&ns);
    assert_eq!(
        has_owner(&crd(cluster)),
        (false, false),
        "release N has no owner field"
    );
    ok(cluster.kubectl().args([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "--all",
    ]));

    // A user's watches, orders and an action.
    access_key_secret(&users, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    for (name, provider, app) in [("sae", "sae", "up-sae"), ("edas", "edas", "up-edas")] {
        let mut spec = serde_json::json!({"provider": provider, "endpoint": sim.url(), "appId": app,
            "credentialsSecretRef": {"name": "cloud"}});
        if provider == "sae" {
            spec["actions"] = serde_json::json!({"allowed": ["Confirm"]});
        }
        create_watch(&users, name, spec).await;
    }
    let (op, port) = start_operator(&ns, tmp.path(), "operator-n").await;
    eventually("four orders written", WAIT, || async {
        let all = orders(&users).await;
        (all.len() == 4 && all.iter().all(|o| phase(o).is_some())).then_some(())
    })
    .await;
    let waiting = order(&users, "up-wait").await.expect("up-wait");
    assert_eq!(phase(&waiting).as_deref(), Some("AwaitingConfirmation"));
    let action: ChangeOrderAction = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderAction",
        "metadata": {"name": "confirm-2"},
        "spec": {"changeOrder": waiting.name_any(), "action": "Confirm", "expectedBatch": 2},
    }))
    .expect("action manifest");
    users
        .api::<ChangeOrderAction>()
        .create(&PostParams::default(), &action)
        .await
        .expect("create action");
    let actions = users.api::<ChangeOrderAction>();
    eventually("the action Succeeded", WAIT, || async {
        let a = actions.get("confirm-2").await.ok()?;
        (a.status?.phase? == ActionPhase::Succeeded).then_some(())
    })
    .await;
    // The confirmed batch runs (30 s in the simulator), then the order waits for batch 3: from
    // then on nothing changes in the cloud.
    eventually(
        "the confirmed order waiting for batch 3",
        Duration::from_secs(90),
        || async {
            let o = order(&users, "up-wait").await?;
            let batch = o.status.as_ref()?.current_batch;
            (phase(&o).as_deref() == Some("AwaitingConfirmation") && batch == Some(3)).then_some(())
        },
    )
    .await;
    // Let the action's poll and its Events settle, then take the picture the upgrade must keep.
    let settled = polled(port, polls(port).await, 6).await;
    let before = snapshot(&users).await;
    assert_eq!(before.len(), 4);
    let action_before =
        serde_json::to_value(actions.get("confirm-2").await.expect("action").status).expect("json");
    let client = ns.client();
    let w0 = writes(&client).await;
    // Quiet while nothing changes: the baseline the upgrade is measured against.
    polled(port, settled, 6).await;
    let w_quiet = writes(&client).await;
    assert_eq!(
        order_writes(&delta(&w0, &w_quiet)),
        0,
        "unchanged orders written before the upgrade: {:?}",
        delta(&w0, &w_quiet)
    );

    // The upgrade, as a rollout runs it: the old pod stops, the new release is applied, the new
    // pod starts and polls every watch again.
    stop_operator(op).await;
    ok(ns
        .helm()
        .args(["upgrade", RELEASE])
        .arg(&release_n1)
        .arg("--reuse-values"));
    assert_eq!(chart_version(&ns), format!("changeorder-operator-{next_version}"));
    // Helm never upgrades files under crds/; the chart's CRDs are templates, so this one did.
    assert_eq!(
        has_owner(&crd(cluster)),
        (true, true),
        "release N+1's CRD in the cluster"
    );
    let (op, port) = start_operator(&ns, tmp.path(), "operator-n1").await;
    polled(port, 0, 8).await;
    let w1 = writes(&client).await;
    let upgrade = delta(&w_quiet, &w1);
    eprintln!("write requests from before the upgrade to 8 polls after the restart: {upgrade:?}");
    let after = snapshot(&users).await;
    assert_eq!(
        after, before,
        "every order keeps its status, transition times and version"
    );
    assert_eq!(
        order_writes(&upgrade),
        0,
        "the upgrade and restart rewrote unchanged orders: {upgrade:?}"
    );
    // Nor the watches' or the action's status (the status heartbeat is 10 minutes).
    for resource in ["changeorderwatches", "changeorderactions", "events"] {
        assert_eq!(writes_to(&upgrade, resource), 0, "{resource}: {upgrade:?}");
    }
    let action_after = actions.get("confirm-2").await.expect("action");
    assert_eq!(
        serde_json::to_value(&action_after.status).expect("json"),
        action_before,
        "the action's status is kept"
    );

    // An object that uses the new field, and the new column showing it.
    ok(users.kubectl().args([
        "patch",
        "changeorderwatch",
        "sae",
        "--type=merge",
        "-p",
        r#"{"spec":{"owner":"team-a"}}"#,
    ]));
    let table = ok(users.kubectl().args(["get", "changeorderwatch", "sae"]));
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("OWNER"), "{table}");
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("team-a")),
        "{table}"
    );
    polled(port, polls(port).await, 4).await;

    // Rollback to N with that object in place.
    stop_operator(op).await;
    let w2 = writes(&client).await;
    ok(ns.helm().args(["rollback", RELEASE, "1"]));
    assert_eq!(chart_version(&ns), version_n);
    assert_eq!(
        has_owner(&crd(cluster)),
        (false, false),
        "release N's CRD is back"
    );
    ok(cluster.kubectl().args([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/{WATCH_CRD}"),
    ]));
    // Every object still reads, as the API and as kubectl's table.
    let watches = users.api::<ChangeOrderWatch>();
    let sae = watches
        .get("sae")
        .await
        .expect("the watch written under N+1 still reads");
    let owner_after =
        ok(users
            .kubectl()
            .args(["get", "changeorderwatch", "sae", "-o", "jsonpath={.spec.owner}"]));
    // N's schema does not know the field: the API server prunes it when it reads the object,
    // but nothing has rewritten the object, so it is still stored (see the end of the test).
    assert_eq!(owner_after, "", "spec.owner under N's schema");
    ok(users
        .kubectl()
        .args(["get", "changeorderwatches,changeorders,changeorderactions"]));
    assert!(actions.get("confirm-2").await.is_ok(), "the action still reads");
    let (op, port) = start_operator(&ns, tmp.path(), "operator-rollback").await;
    polled(port, 0, 8).await;
    let rollback = delta(&w2, &writes(&client).await);
    eprintln!("write requests from the rollback to 8 polls after the restart: {rollback:?}");
    assert_eq!(
        snapshot(&users).await,
        before,
        "statuses unchanged by the rollback"
    );
    assert_eq!(order_writes(&rollback), 0, "{rollback:?}");
    for resource in ["changeorderwatches", "changeorderactions", "events"] {
        assert_eq!(writes_to(&rollback, resource), 0, "{resource}: {rollback:?}");
    }
    wait_watch_ready(&users, "sae", "True", "Polled").await;
    assert_eq!(sae.spec.app_id.as_deref(), Some("up-sae"));

    // The operator of release N still syncs: a new watch gets its order.
    create_watch(
        &users,
        "late",
        serde_json::json!({"provider": "edas", "endpoint": sim.url(), "appId": "up-late",
            "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    eventually("the new watch's order after the rollback", WAIT, || async {
        let o = order(&users, "up-late-1").await?;
        (phase(&o).as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    assert!(!op.log().contains("Forbidden"), "{}", op.log());
    stop_operator(op).await;

    // Forward again: the field set under N+1 is back if nothing rewrote the object meanwhile.
    ok(ns
        .helm()
        .args(["upgrade", RELEASE])
        .arg(&release_n1)
        .arg("--reuse-values"));
    assert_eq!(has_owner(&crd(cluster)), (true, true));
    let owner_again =
        ok(users
            .kubectl()
            .args(["get", "changeorderwatch", "sae", "-o", "jsonpath={.spec.owner}"]));
    assert_eq!(
        owner_again, "team-a",
        "the field set under N+1 survived the rollback in storage"
    );
}
