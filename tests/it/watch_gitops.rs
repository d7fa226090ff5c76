//! The GitOps handle on a real kube-apiserver: what pipelines, Flux and `kubectl` see of a
//! ChangeOrderWatch (kstatus conditions, the latest order, printer columns) and of ChangeOrders
//! (found by their cloud id with a field selector).

use crate::support;

use std::process::Output;
use std::time::Duration;

use changeorder_operator::controller::watch_status::{self, Input, Outcome};
use changeorder_operator::crd::{ChangeOrder, ChangeOrderWatch, Phase, RECONCILE_REQUEST_ANNOTATION};
use jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use support::cluster::TestNamespace;
use support::operator::*;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kubectl(ns: &TestNamespace, args: &[&str]) -> Output {
    ns.kubectl().args(args).output().expect("run kubectl")
}

fn edas_watch(endpoint: &str, app: &str) -> serde_json::Value {
    serde_json::json!({
        "provider": "edas", "endpoint": endpoint, "appId": app,
        "credentialsSecretRef": {"name": "cloud"},
    })
}

/// A ChangeOrder as the operator would write it, created directly so the test decides its phase.
async fn put_order(
    ns: &TestNamespace,
    name: &str,
    id: &str,
    created: &str,
    phase: Phase,
    reason: &str,
) -> ChangeOrder {
    let api = ns.api::<ChangeOrder>();
    let obj: ChangeOrder = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1",
        "kind": "ChangeOrder",
        "metadata": {"name": name},
        "spec": {"provider": "edas", "changeOrderId": id, "appId": "app", "createTime": created},
    }))
    .expect("order manifest");
    if api.get_opt(name).await.expect("get order").is_none() {
        api.create(&PostParams::default(), &obj)
            .await
            .expect("create order");
    }
    let status = serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1",
        "kind": "ChangeOrder",
        "status": {
            "phase": phase,
            "reason": reason,
            "conditions": [{
                "type": "Ready",
                "status": if phase == Phase::Succeeded { "True" } else { "False" },
                "reason": reason,
                "message": format!("order {id} is {phase}"),
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }],
        },
    });
    api.patch_status(name, &PatchParams::apply("test").force(), &Patch::Apply(&status))
        .await
        .expect("order status")
}

/// Writes the watch status the operator would write for these orders after a good poll.
async fn write_watch_status(ns: &TestNamespace, name: &str) -> ChangeOrderWatch {
    let watches = ns.api::<ChangeOrderWatch>();
    let watch = watches.get(name).await.expect("get watch");
    let orders = ns
        .api::<ChangeOrder>()
        .list(&ListParams::default())
        .await
        .expect("list orders")
        .items;
    let phases = orders.iter().filter_map(|o| o.status.as_ref()?.phase);
    let status = watch_status::desired_with_orders(
        Input {
            previous: watch.status.as_ref(),
            generation: watch.metadata.generation,
            outcome: Outcome::Polled(watch_status::counts(phases)),
            handled_request: None,
            now: Timestamp::now(),
            heartbeat: Duration::from_secs(600),
            pacing: None,
        },
        &orders,
    );
    let patch = serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1",
        "kind": "ChangeOrderWatch",
        "status": status,
    });
    watches
        .patch_status(
            name,
            &PatchParams::apply("changeorder-operator").force(),
            &Patch::Apply(&patch),
        )
        .await
        .expect("watch status accepted by the API server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_orders_are_found_by_their_cloud_id() {
    let ns = namespace("selectable").await;
    put_order(
        &ns,
        "w-aaa",
        "aaa",
        "2026-01-01T01:00:00Z",
        Phase::Running,
        "Executing",
    )
    .await;
    put_order(
        &ns,
        "w-bbb",
        "bbb",
        "2026-01-01T02:00:00Z",
        Phase::Failed,
        "Failed",
    )
    .await;
    let out = kubectl(
        &ns,
        &[
            "get",
            "co",
            "--field-selector",
            "spec.changeOrderId=bbb",
            "-o",
            "name",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "changeorder.changeorder.io/w-bbb"
    );
    // The same selector through the API, as a client library would use it.
    let found = ns
        .api::<ChangeOrder>()
        .list(&ListParams::default().fields("spec.changeOrderId=aaa"))
        .await
        .expect("list by field");
    let names: Vec<String> = found.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["w-aaa"]);
    // A field that is not selectable is refused, so the test above proves the CRD's declaration.
    let out = kubectl(&ns, &["get", "co", "--field-selector", "spec.appId=app"]);
    assert!(
        !out.status.success(),
        "spec.appId is not selectable: {}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_waits_on_the_watch_for_its_latest_order() {
    let ns = namespace("latest").await;
    create_watch(&ns, "orders-api", edas_watch("http://127.0.0.1:9", "app")).await;
    put_order(
        &ns,
        "orders-api-old",
        "old",
        "2026-01-01T01:00:00Z",
        Phase::Succeeded,
        "Succeeded",
    )
    .await;
    put_order(
        &ns,
        "orders-api-new",
        "new",
        "2026-01-01T02:00:00Z",
        Phase::Running,
        "Executing",
    )
    .await;
    let watch = write_watch_status(&ns, "orders-api").await;
    let latest = watch
        .status
        .as_ref()
        .and_then(|s| s.latest_order.clone())
        .expect("latestOrder stored");
    assert_eq!(
        (latest.name.as_str(), latest.phase),
        ("orders-api-new", Some(Phase::Running))
    );

    // The printer columns show the latest order.
    let out = kubectl(&ns, &["get", "cow", "orders-api"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.contains("LATEST ORDER") && header.contains("LATEST PHASE"),
        "{table}"
    );
    let row = table.lines().nth(1).unwrap_or_default();
    assert!(row.contains(" new ") && row.contains("Running"), "{table}");

    // An older order that succeeded does not satisfy the wait while the newest one runs.
    let out = kubectl(
        &ns,
        &[
            "wait",
            "--for=condition=LatestOrderSucceeded",
            "cow/orders-api",
            "--timeout=2s",
        ],
    );
    assert!(
        !out.status.success(),
        "must not return while the newest order runs: {}",
        text(&out)
    );
    let out = kubectl(
        &ns,
        &[
            "wait",
            "--for=condition=LatestOrderSucceeded=Unknown",
            "cow/orders-api",
            "--timeout=5s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // The newest order succeeds: the wait returns.
    let waiter = ns
        .kubectl()
        .args([
            "wait",
            "--for=condition=LatestOrderSucceeded",
            "cow/orders-api",
            "--timeout=60s",
        ])
        .spawn()
        .expect("kubectl wait");
    put_order(
        &ns,
        "orders-api-new",
        "new",
        "2026-01-01T02:00:00Z",
        Phase::Succeeded,
        "Succeeded",
    )
    .await;
    write_watch_status(&ns, "orders-api").await;
    let done = tokio::task::spawn_blocking(move || waiter.wait_with_output())
        .await
        .expect("join")
        .expect("kubectl wait output");
    assert!(done.status.success(), "{}", text(&done));

    // A still newer order that fails: waiting for False returns, with the order named.
    put_order(
        &ns,
        "orders-api-next",
        "next",
        "2026-01-01T03:00:00Z",
        Phase::Failed,
        "Failed",
    )
    .await;
    let watch = write_watch_status(&ns, "orders-api").await;
    let out = kubectl(
        &ns,
        &[
            "wait",
            "--for=condition=LatestOrderSucceeded=False",
            "cow/orders-api",
            "--timeout=5s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let c = watch_status::condition_of(watch.status.as_ref().expect("status"), "LatestOrderSucceeded")
        .expect("condition");
    assert!(
        c.message.contains("orders-api-next") && c.message.contains("order next is Failed"),
        "{}",
        c.message
    );
    let out = kubectl(
        &ns,
        &[
            "wait",
            "--for=jsonpath={.status.latestOrder.changeOrderId}=next",
            "cow/orders-api",
            "--timeout=5s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

/// The conditions list is a map keyed by type on the server: another writer's condition is
/// merged beside the operator's, and two conditions of one type are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_merge_by_type_on_the_server() {
    let ns = namespace("listmap").await;
    create_watch(&ns, "w", edas_watch("http://127.0.0.1:9", "app")).await;
    write_watch_status(&ns, "w").await;
    let watches = ns.api::<ChangeOrderWatch>();
    let other = serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1",
        "kind": "ChangeOrderWatch",
        "status": {"conditions": [{
            "type": "ExampleGate", "status": "True", "reason": "Checked", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]},
    });
    let merged = watches
        .patch_status("w", &PatchParams::apply("another-tool"), &Patch::Apply(&other))
        .await
        .expect("apply by another manager");
    let types: Vec<String> = merged
        .status
        .expect("status")
        .conditions
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert!(types.contains(&"ExampleGate".to_string()), "{types:?}");
    assert!(
        types.contains(&"Ready".to_string()) && types.contains(&"LatestOrderSucceeded".to_string()),
        "{types:?}"
    );
    let dup = r#"{"status":{"conditions":[
        {"type":"Ready","status":"True","reason":"A","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"},
        {"type":"Ready","status":"False","reason":"B","message":"","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}"#;
    let out = kubectl(
        &ns,
        &[
            "patch",
            "cow",
            "w",
            "--subresource=status",
            "--type=merge",
            "-p",
            dup,
        ],
    );
    assert!(!out.status.success(), "duplicate condition types must be refused");
    assert!(text(&out).contains("Duplicate value"), "{}", text(&out));
}

const APPS: &str = r#"
apps:
  - provider: sae
    appId: good
    changeOrders:
      - { id: g-1, createdAt: -2h, status: 2 }
      - { id: g-2, createdAt: -1h, status: 3 }
"#;

/// With the operator running: a watch that cannot poll without a person reads as Stalled (so
/// `kubectl wait` and Flux fail fast), a repeated failure is not rewritten on every poll, and a
/// good watch reports its newest order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_reports_stalled_watches_once_and_the_latest_order() {
    let ns = namespace("kstatus").await;
    let sim = start_sim(APPS).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    // Different providers, so the calls of each watch can be counted apart.
    let mut sae = edas_watch(&sim.url(), "good");
    sae["provider"] = "sae".into();
    create_watch(&ns, "good", sae).await;
    create_watch(&ns, "gone", edas_watch(&sim.url(), "no-such-app")).await;
    let op = Operator::start(ns.client(), ns.name(), fast_settings()).await;

    let out = kubectl(
        &ns,
        &["wait", "--for=condition=Stalled", "cow/gone", "--timeout=60s"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = kubectl(
        &ns,
        &[
            "wait",
            "--for=condition=Reconciling=False",
            "cow/good",
            "--timeout=60s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let watches = ns.api::<ChangeOrderWatch>();
    let gone = watches.get("gone").await.expect("gone");
    let status = gone.status.clone().expect("status");
    let stalled = watch_status::condition_of(&status, "Stalled").expect("Stalled");
    assert_eq!(stalled.reason, "AppNotFound");
    assert!(
        stalled.message.contains("InvalidAppId.NotFound"),
        "{}",
        stalled.message
    );
    assert_eq!(status.observed_generation, gone.meta().generation);
    // kstatus, as Flux and Helm 4 compute it from the stored objects.
    let good_obj = watches.get("good").await.expect("good");
    let verdicts = kstatus(&[
        serde_json::to_value(&gone).expect("json"),
        serde_json::to_value(&good_obj).expect("json"),
    ]);
    assert_eq!(verdicts, ["Failed", "Current"]);

    // Each failed poll gets a new RequestId; the watch is not rewritten for it. The error
    // backoff is at most 4 s here, so 10 s hold at least two more failed polls.
    let version = gone.resource_version();
    let list_calls = op.calls.count(changeorder_cloud::edas::OP_LIST);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        op.calls.count(changeorder_cloud::edas::OP_LIST) >= list_calls + 2,
        "the failing watch kept polling"
    );
    let again = watches.get("gone").await.expect("gone");
    assert_eq!(again.resource_version(), version, "no write for the same failure");

    // The good watch is Current for kstatus and carries the latest-order conditions.
    let good = watches.get("good").await.expect("good").status.expect("status");
    assert_eq!(
        watch_status::condition_of(&good, "Stalled").map(|c| c.status.as_str()),
        Some("False")
    );
    let latest = watch_status::condition_of(&good, "LatestOrderSucceeded").expect("LatestOrderSucceeded");
    // The newest order, g-2, is the latest and it failed.
    let l = good.latest_order.as_ref().expect("status.latestOrder");
    assert_eq!(l.change_order_id, "g-2");
    assert_eq!(latest.status, "False");

    // The plugin: a refresh the operator handles, and a wait on a stalled watch that fails at
    // once instead of running into its timeout.
    let out = plugin(&ns, &["refresh", "good", "--wait", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let annotated = watches.get("good").await.expect("good");
    let value = annotated.annotations().get(RECONCILE_REQUEST_ANNOTATION).cloned();
    assert!(value.is_some());
    assert_eq!(annotated.status.and_then(|s| s.last_handled_reconcile_at), value);
    let started = std::time::Instant::now();
    let out = plugin(&ns, &["wait", "--latest", "gone", "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("AppNotFound"), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "no timeout needed to know"
    );
    op.stop().await;
}

/// kstatus from fluxcd/cli-utils (tests/tools/go/kstatus), built once per test binary.
fn kstatus_tool() -> &'static std::path::Path {
    static TOOL: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    TOOL.get_or_init(|| go_tool("kstatus"))
}

/// kstatus's verdict ("Current", "InProgress", "Failed", ...) for each object.
fn kstatus(objects: &[serde_json::Value]) -> Vec<String> {
    use std::io::Write;
    let mut child = std::process::Command::new(kstatus_tool())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run kstatus");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for o in objects {
            writeln!(stdin, "{o}").expect("write object");
        }
    }
    let out = child.wait_with_output().expect("kstatus output");
    assert!(out.status.success(), "kstatus: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

/// What Flux and Helm 4 make of a watch after each outcome, computed by the real kstatus
/// library: a watch that cannot poll without a person is Failed, a watch still trying (or
/// suspended) is InProgress, a watch whose last poll worked is Current.
#[test]
fn kstatus_reads_the_watch_conditions_as_intended() {
    use changeorder_operator::controller::watch_status::reason;
    let failed = |reason: &'static str, message: &str| Outcome::Failed {
        reason,
        message: message.into(),
    };
    let cases: Vec<(Outcome, i64, &str)> = vec![
        (Outcome::NotPolled, 1, "InProgress"),
        (
            Outcome::Polled(watch_status::counts([Phase::Failed])),
            1,
            "Current",
        ),
        (Outcome::Polled(watch_status::counts([])), 2, "InProgress"),
        (
            failed(reason::INVALID_CREDENTIALS, "InvalidAccessKeyId.NotFound: no"),
            1,
            "Failed",
        ),
        (
            failed(reason::APP_NOT_FOUND, "InvalidAppId.NotFound: no"),
            1,
            "Failed",
        ),
        (failed(reason::FORBIDDEN, "Forbidden.RAM: no"), 1, "Failed"),
        (Outcome::InvalidSpec("spec.interval: bad".into()), 1, "Failed"),
        (
            Outcome::EndpointNotAllowed("http://x is not allowed".into()),
            1,
            "Failed",
        ),
        (
            failed(reason::THROTTLED, "Throttling.User: slow down"),
            1,
            "InProgress",
        ),
        (
            failed(reason::PROVIDER_ERROR, "ServiceUnavailable: later"),
            1,
            "InProgress",
        ),
        // Ready=False (suspended by a person): kstatus keeps waiting.
        (Outcome::Suspended, 1, "InProgress"),
    ];
    let objects: Vec<serde_json::Value> = cases
        .iter()
        .map(|(outcome, generation, _)| {
            // The status is written for generation 1; generation 2 is a spec not yet observed.
            let status = watch_status::desired(Input {
                previous: None,
                generation: Some(1),
                outcome: outcome.clone(),
                handled_request: None,
                now: Timestamp::now(),
                heartbeat: Duration::from_secs(600),
                pacing: None,
            });
            serde_json::json!({
                "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch",
                "metadata": {"name": "w", "namespace": "ns", "generation": generation},
                "status": status,
            })
        })
        .collect();
    let got = kstatus(&objects);
    for ((outcome, generation, want), got) in cases.iter().zip(&got) {
        assert_eq!(got, want, "{outcome:?} at generation {generation}");
    }
    assert_eq!(got.len(), cases.len());
}

/// Builds a Go tool from tests/tools/go/NAME (module cache of the control-plane build).
fn go_tool(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tools/go")
        .join(name);
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-tools");
    std::fs::create_dir_all(&out_dir).expect("tool dir");
    let bin = out_dir.join(name);
    let out = std::process::Command::new("go")
        .args(["build", "-mod=readonly", "-trimpath", "-buildvcs=false", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(&dir)
        .env("GOWORK", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("go build (Go is needed for the control plane too)");
    assert!(out.status.success(), "building {name}: {}", text(&out));
    bin
}

/// The Flux example's healthCheckExprs, evaluated with cel-go against watches in each state:
/// the gate opens only on the newest order's success, fails on its failure or a stalled watch,
/// and ignores results from before the requested poll.
#[test]
fn flux_health_check_expressions_gate_on_the_newest_order() {
    use std::io::Write;
    let ks: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/flux/kustomization.yaml"),
        )
        .expect("flux example"),
    )
    .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
    .collect();
    let exprs = ks
        .iter()
        .find_map(|k| k["spec"]["healthCheckExprs"].as_sequence().map(|s| s[0].clone()))
        .expect("healthCheckExprs");
    let expr = |k: &str| exprs[k].as_str().unwrap_or_default().to_string();

    let order = |id: &str, phase: Phase| -> ChangeOrder {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrder",
            "metadata": {"name": format!("w-{id}")},
            "spec": {"provider": "edas", "changeOrderId": id, "createTime": "2026-01-01T00:00:00Z"},
            "status": {"phase": phase, "reason": phase.as_str()},
        }))
        .expect("order")
    };
    // A watch whose annotation asks for poll `asked` and whose status handled `handled`.
    let watch = |asked: Option<&str>, handled: Option<&str>, outcome: Outcome, orders: &[ChangeOrder]| {
        let status = watch_status::desired_with_orders(
            Input {
                previous: None,
                generation: Some(1),
                outcome,
                handled_request: handled.map(String::from),
                now: Timestamp::now(),
                heartbeat: Duration::from_secs(600),
                pacing: None,
            },
            orders,
        );
        let mut meta = serde_json::json!({"name": "w", "generation": 1});
        if let Some(a) = asked {
            meta["annotations"] = serde_json::json!({ RECONCILE_REQUEST_ANNOTATION: a });
        }
        serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch",
            "metadata": meta, "spec": {"provider": "edas"}, "status": status,
        })
    };
    let polled = || Outcome::Polled(watch_status::counts([]));
    let stalled = || Outcome::Failed {
        reason: watch_status::reason::INVALID_CREDENTIALS,
        message: "InvalidAccessKeyId.NotFound: no".into(),
    };
    let ok = [order("1", Phase::Succeeded)];
    let failed = [order("1", Phase::Failed)];
    let running = [order("1", Phase::Running)];
    let waiting = [order("1", Phase::AwaitingConfirmation)];
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "no status yet",
            serde_json::json!({"apiVersion": "changeorder.io/v1alpha1",
            "kind": "ChangeOrderWatch", "metadata": {"name": "w"}, "spec": {}}),
            "InProgress",
        ),
        (
            "newest order succeeded",
            watch(None, None, polled(), &ok),
            "Current",
        ),
        (
            "newest order failed",
            watch(None, None, polled(), &failed),
            "Failed",
        ),
        (
            "newest order running",
            watch(None, None, polled(), &running),
            "InProgress",
        ),
        (
            "newest order waits for a person",
            watch(None, None, polled(), &waiting),
            "InProgress",
        ),
        ("no order at all", watch(None, None, polled(), &[]), "InProgress"),
        (
            "the watch cannot poll",
            watch(None, None, stalled(), &ok),
            "Failed",
        ),
        (
            "success from before the requested poll",
            watch(Some("v2"), Some("v1"), polled(), &ok),
            "InProgress",
        ),
        (
            "success after the requested poll",
            watch(Some("v2"), Some("v2"), polled(), &ok),
            "Current",
        ),
    ];
    let input = serde_json::json!({
        "exprs": {"inProgress": expr("inProgress"), "failed": expr("failed"), "current": expr("current")},
        "objects": cases.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
    });
    let mut child = std::process::Command::new(go_tool("fluxcel"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run fluxcel");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("fluxcel output");
    assert!(out.status.success(), "{}", text(&out));
    let verdicts: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(verdicts.len(), cases.len(), "{}", text(&out));
    for ((label, _, want), got) in cases.iter().zip(&verdicts) {
        assert_eq!(got, want, "{label}");
    }
}

/// `kubectl-changeorder` run directly, against the test cluster.
fn plugin(ns: &TestNamespace, args: &[&str]) -> Output {
    std::process::Command::new(crate::support::process::workspace_bin("kubectl-changeorder"))
        .env("KUBECONFIG", ns.cluster().kubeconfig())
        .arg("--namespace")
        .arg(ns.name())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run kubectl-changeorder")
}

/// The plugin's exit codes (0 succeeded, 1 failed, 2 timeout, 3 error) and its status table,
/// run by kubectl itself through plugin discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubectl_plugin_reports_and_waits() {
    let ns = namespace("plugin").await;
    create_watch(&ns, "orders-api", edas_watch("http://127.0.0.1:9", "app")).await;
    put_order(
        &ns,
        "orders-api-ok",
        "ok",
        "2026-01-01T01:00:00Z",
        Phase::Succeeded,
        "Succeeded",
    )
    .await;
    put_order(
        &ns,
        "orders-api-bad",
        "bad",
        "2026-01-01T02:00:00Z",
        Phase::Failed,
        "Failed",
    )
    .await;
    put_order(
        &ns,
        "orders-api-run",
        "run",
        "2026-01-01T03:00:00Z",
        Phase::Running,
        "Executing",
    )
    .await;
    write_watch_status(&ns, "orders-api").await;

    // kubectl finds the plugin on PATH.
    let bin_dir = crate::support::process::workspace_bin("kubectl-changeorder")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // kubectl looks a plugin up by the words before the first flag, so `-n` comes after it.
    let out = ns
        .cluster()
        .kubectl()
        .env("PATH", path)
        .args(["changeorder", "-n", ns.name(), "status"])
        .output()
        .expect("kubectl changeorder");
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(table.starts_with("WATCH "), "{table}");
    let row = table.lines().nth(1).unwrap_or_default();
    for cell in [
        "orders-api",
        "edas",
        "True",
        "Polled",
        "run",
        "Running",
        "Executing",
    ] {
        assert!(
            row.split_whitespace().any(|c| c == cell),
            "{cell} missing:\n{table}"
        );
    }

    let code = |args: &[&str]| plugin(&ns, args).status.code();
    assert_eq!(code(&["wait", "orders-api-ok", "--timeout", "10s"]), Some(0));
    assert_eq!(code(&["wait", "orders-api-bad", "--timeout", "10s"]), Some(1));
    assert_eq!(code(&["wait", "orders-api-run", "--timeout", "2s"]), Some(2));
    assert_eq!(
        code(&["wait", "--latest", "orders-api", "--timeout", "2s"]),
        Some(2)
    );
    assert_eq!(
        code(&["wait", "--latest", "no-such-watch", "--timeout", "2s"]),
        Some(3)
    );

    // The newest order finishes while the plugin waits on the watch.
    let waiter = std::process::Command::new(crate::support::process::workspace_bin("kubectl-changeorder"))
        .env("KUBECONFIG", ns.cluster().kubeconfig())
        .args([
            "-n",
            ns.name(),
            "wait",
            "--latest",
            "orders-api",
            "--timeout",
            "60s",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("plugin wait");
    tokio::time::sleep(Duration::from_secs(1)).await;
    put_order(
        &ns,
        "orders-api-run",
        "run",
        "2026-01-01T03:00:00Z",
        Phase::Succeeded,
        "Succeeded",
    )
    .await;
    write_watch_status(&ns, "orders-api").await;
    let done = tokio::task::spawn_blocking(move || waiter.wait_with_output())
        .await
        .expect("join")
        .expect("plugin output");
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    assert!(String::from_utf8_lossy(&done.stdout).contains("orders-api-run"));

    // refresh sets the annotation; without an operator, --wait times out with exit 2.
    let out = plugin(&ns, &["refresh", "orders-api", "--wait", "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let w = ns
        .api::<ChangeOrderWatch>()
        .get("orders-api")
        .await
        .expect("watch");
    assert!(w.annotations().contains_key(RECONCILE_REQUEST_ANNOTATION));
}

/// `kubectl explain` explains: the kinds and their fields carry the Rust doc comments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_explains() {
    let ns = namespace("explain").await;
    for (path, words) in [
        ("changeorderwatch", "polls one application's change orders"),
        ("changeorder", "mirrors one Alibaba Cloud"),
        (
            "changeorderwatch.status.latestOrder",
            "newest of this watch's ChangeOrders",
        ),
        (
            "changeorderwatch.spec.inFlightInterval",
            "while any order is in flight",
        ),
        ("changeorder.spec.changeOrderId", "field-selector"),
    ] {
        let out = kubectl(&ns, &["explain", path]);
        assert!(out.status.success(), "{path}: {}", text(&out));
        let doc = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(doc.contains(words), "{path}: {doc}");
        assert!(!doc.contains("Auto-generated"), "{path}: {doc}");
    }
}
