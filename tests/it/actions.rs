//! ChangeOrderActions on the real control plane with the simulator: a confirmed batch moves on
//! and shows at once, refusals name the switch that is off and send nothing, read-only keys
//! fail once, and a request interrupted by SIGKILL is never sent twice.

use crate::support;

mod once;

use std::time::Duration;

use changeorder_cloud::actions::{Write, WriteOutcome};
use changeorder_cloud::client::{CloudClient, Target};
use changeorder_cloud::credentials::Credentials;
use changeorder_cloud::error::ErrorKind;
use changeorder_cloud::http::{ClientConfig, RetryPolicy};
use changeorder_cloud::model::RawStatus;
use changeorder_operator::controller::Settings;
use changeorder_operator::controller::action::ActionSettings;
use changeorder_operator::crd::{ActionPhase, ChangeOrder, ChangeOrderAction, ChangeOrderWatchSpec};
use changeorder_sim as sim;
use kube::ResourceExt;
use kube::api::PostParams;
use support::cluster::{TestNamespace, eventually};
use support::convergence::{operator_args, start_operator};
use support::operator::*;
use support::process::free_port;

const APP: &str = "act-app";
const WAITING: &str = "rel-1";

/// One SAE app: an order waiting for confirmation of batch 2 of 3, and a finished one.
fn scenario(extra: &str) -> String {
    format!(
        "{extra}apps:\n  - provider: sae\n    appId: {APP}\n    changeOrders:\n      - id: {WAITING}\n        createdAt: -1m\n        batchCount: 3\n        batchType: manual\n        status: 8\n        currentBatch: 2\n        message: confirm batch 2\n      - id: done-1\n        createdAt: -1h\n        status: 2\n  - provider: sae\n    appId: closed-app\n    changeOrders:\n      - id: closed-1\n        createdAt: -1m\n        batchCount: 2\n        batchType: manual\n        status: 8\n        currentBatch: 2\n"
    )
}

fn enabled(ttl: Duration) -> Settings {
    Settings {
        actions: ActionSettings { enabled: true, ttl },
        ..fast_settings()
    }
}

/// A watch whose in-flight interval is long, so only the poll an action requests can show
/// the order's new state quickly.
async fn slow_watch(ns: &TestNamespace, name: &str, sim: &sim::RunningSim, app: &str, allowed: &[&str]) {
    let mut spec = serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": app,
        "credentialsSecretRef": {"name": "cloud"}, "interval": "2m", "inFlightInterval": "60s"});
    if !allowed.is_empty() {
        spec["actions"] = serde_json::json!({ "allowed": allowed });
    }
    create_watch(ns, name, spec).await;
}

/// The ChangeOrder of a cloud order, once the watch has written it.
async fn order_named(ns: &TestNamespace, id: &str) -> ChangeOrder {
    eventually(&format!("ChangeOrder {id}"), Duration::from_secs(30), || async {
        order(ns, id).await.filter(|o| phase(o).is_some())
    })
    .await
}

async fn create_action(
    ns: &TestNamespace,
    name: &str,
    order: &str,
    action: &str,
    expected_batch: Option<u32>,
) {
    let mut spec = serde_json::json!({"changeOrder": order, "action": action});
    if let Some(b) = expected_batch {
        spec["expectedBatch"] = serde_json::json!(b);
    }
    let obj: ChangeOrderAction = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderAction",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("action manifest");
    ns.api::<ChangeOrderAction>()
        .create(&PostParams::default(), &obj)
        .await
        .expect("create action");
}

/// The request once finished: (phase, reason, message).
async fn outcome(ns: &TestNamespace, name: &str, within: Duration) -> (ActionPhase, String, String) {
    let api = ns.api::<ChangeOrderAction>();
    eventually(&format!("ChangeOrderAction {name} finished"), within, || async {
        let a = api.get(name).await.ok()?;
        let s = a.status?;
        let phase = s.phase.filter(|p| p.is_finished())?;
        Some((phase, s.reason.unwrap_or_default(), s.message.unwrap_or_default()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_batch_moves_on_and_shows_at_once() {
    let ns = namespace("act-confirm").await;
    let sim = start_sim(&scenario("")).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "rel", &sim, APP, &["Confirm"]).await;
    let op = Operator::start(ns.client(), ns.name(), enabled(Duration::from_secs(4))).await;
    let co = order_named(&ns, WAITING).await;
    assert_eq!(phase(&co).as_deref(), Some("AwaitingConfirmation"));
    let current = co.status.as_ref().and_then(|s| s.current_batch);
    assert_eq!(current, Some(2));

    create_action(&ns, "go", &co.name_any(), "Confirm", Some(2)).await;
    let (p, reason, message) = outcome(&ns, "go", Duration::from_secs(30)).await;
    assert_eq!(
        (p, reason.as_str()),
        (ActionPhase::Succeeded, "Confirmed"),
        "{message}"
    );
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 1);
    let metrics = op.metrics.encode();
    assert!(
        metrics.contains(r#"changeorder_actions_total{action="Confirm",result="Confirmed"} 1"#),
        "{metrics}"
    );
    // The watch polls every 60 s while the order is in flight; the action's poll request shows
    // the running batch well within that.
    let shown = eventually(
        "the ChangeOrder shows the confirmed batch running",
        Duration::from_secs(15),
        || async {
            let o = order(&ns, WAITING).await?;
            (phase(&o).as_deref() == Some("Running")).then_some(o)
        },
    )
    .await;
    assert_eq!(shown.status.as_ref().and_then(|s| s.current_batch), Some(2));
    let events = event_reasons(&ns, &co.name_any());
    assert!(events.contains("ConfirmSucceeded"), "events: {events}");
    let action = ns.api::<ChangeOrderAction>().get("go").await.expect("action");
    assert!(
        action.owner_references().iter().any(|r| r.name == co.name_any()),
        "owned by its ChangeOrder"
    );
    // Retention: deleted once the TTL (4 s here) has passed.
    eventually(
        "the finished action is deleted after its TTL",
        Duration::from_secs(30),
        || async {
            ns.api::<ChangeOrderAction>()
                .get_opt("go")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 1, "never sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_switch_or_guard_and_send_nothing() {
    let ns = namespace("act-refuse").await;
    let sim = start_sim(&scenario("")).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "open", &sim, APP, &["Confirm", "Abort"]).await;
    slow_watch(&ns, "closed", &sim, "closed-app", &[]).await;
    let _op = Operator::start(ns.client(), ns.name(), enabled(Duration::from_secs(3600))).await;
    let waiting = order_named(&ns, WAITING).await.name_any();
    let done = order_named(&ns, "done-1").await.name_any();
    let closed = order_named(&ns, "closed-1").await.name_any();

    create_action(&ns, "not-allowed", &closed, "Confirm", None).await;
    create_action(&ns, "stale", &waiting, "Confirm", Some(1)).await;
    create_action(&ns, "finished", &done, "Abort", None).await;
    create_action(&ns, "rollback-not-allowed", &waiting, "AbortAndRollback", None).await;
    create_action(&ns, "no-order", "nope", "Abort", None).await;

    let (p, reason, message) = outcome(&ns, "not-allowed", Duration::from_secs(30)).await;
    assert_eq!((p, reason.as_str()), (ActionPhase::Failed, "ActionNotAllowed"));
    assert!(
        message.contains("spec.actions.allowed") && message.contains("closed"),
        "{message}"
    );
    let (p, reason, message) = outcome(&ns, "stale", Duration::from_secs(30)).await;
    assert_eq!((p, reason.as_str()), (ActionPhase::Failed, "GuardFailed"));
    assert!(
        message.contains("stale") && message.contains("batch 1"),
        "{message}"
    );
    let (_, reason, message) = outcome(&ns, "finished", Duration::from_secs(30)).await;
    assert_eq!(reason, "GuardFailed", "{message}");
    let (_, reason, message) = outcome(&ns, "rollback-not-allowed", Duration::from_secs(30)).await;
    assert_eq!(reason, "ActionNotAllowed", "{message}");
    let (_, reason, _) = outcome(&ns, "no-order", Duration::from_secs(30)).await;
    assert_eq!(reason, "OrderNotFound");

    for action in [
        "ConfirmPipelineBatch",
        "AbortChangeOrder",
        "AbortAndRollbackChangeOrder",
    ] {
        assert_eq!(sim.calls("sae", action), 0, "{action} was never sent");
    }
    let still = order(&ns, WAITING).await.expect("order");
    assert_eq!(phase(&still).as_deref(), Some("AwaitingConfirmation"));

    // The schema: a batch guard only on Confirm, and a request cannot be changed once made.
    let api = ns.api::<ChangeOrderAction>();
    let bad: ChangeOrderAction = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderAction",
        "metadata": {"name": "abort-with-batch"},
        "spec": {"changeOrder": waiting, "action": "Abort", "expectedBatch": 2},
    }))
    .expect("manifest");
    let e = api
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("refused by the schema");
    assert!(
        e.to_string()
            .contains("expectedBatch applies only to action Confirm"),
        "{e}"
    );
    let patch = serde_json::json!({"spec": {"expectedBatch": 2}});
    let e = api
        .patch(
            "stale",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect_err("immutable");
    assert!(e.to_string().contains("immutable"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_switch_off_refuses_every_request() {
    let ns = namespace("act-off").await;
    let sim = start_sim(&scenario("")).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "open", &sim, APP, &["Confirm"]).await;
    let _op = Operator::start(ns.client(), ns.name(), fast_settings()).await;
    let waiting = order_named(&ns, WAITING).await.name_any();
    create_action(&ns, "go", &waiting, "Confirm", Some(2)).await;
    let (p, reason, message) = outcome(&ns, "go", Duration::from_secs(30)).await;
    assert_eq!((p, reason.as_str()), (ActionPhase::Failed, "ActionsDisabled"));
    assert!(message.contains("--enable-actions"), "{message}");
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_keys_fail_once_with_a_clear_message() {
    let ns = namespace("act-readonly").await;
    let sim = start_sim(&scenario(&format!(
        "readOnlyAccessKeys: [{}]\n",
        sim::DEFAULT_ACCESS_KEY_ID
    )))
    .await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "open", &sim, APP, &["Confirm", "Abort"]).await;
    let _op = Operator::start(ns.client(), ns.name(), enabled(Duration::from_secs(3600))).await;
    let waiting = order_named(&ns, WAITING).await.name_any();
    create_action(&ns, "go", &waiting, "Confirm", None).await;
    let (p, reason, message) = outcome(&ns, "go", Duration::from_secs(30)).await;
    assert_eq!(
        (p, reason.as_str()),
        (ActionPhase::Failed, "Forbidden"),
        "{message}"
    );
    assert!(
        message.contains("Forbidden.RAM") && message.contains("read-only"),
        "{message}"
    );
    assert!(
        !message.contains(sim::DEFAULT_ACCESS_KEY_SECRET),
        "no secret in the status"
    );
    // Not retried, not now and not later.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 1);
    assert_eq!(
        sim.stats()
            .outcome("sae", "ConfirmPipelineBatch", "Forbidden.RAM"),
        1
    );
    let events = event_reasons(&ns, &waiting);
    assert!(events.contains("ConfirmFailed"), "events: {events}");
}

/// The operator process is killed with SIGKILL while the cloud holds the reply to its confirm
/// call (the simulator has made the write, the reply is late). The restarted operator finds
/// the request `Executing`, reads the order instead of sending again, and settles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_runs_once_across_sigkill_and_restart() {
    let ns = namespace("act-kill").await;
    let faults = "faults:\n  - { kind: latency, actions: [ConfirmPipelineBatch], duration: 20s }\n";
    let sim = start_sim(&scenario(faults)).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "rel", &sim, APP, &["Confirm"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = operator_args(&ns, free_port(), &["--enable-actions"]);
    // Longer than the late reply, so only the kill interrupts the call.
    if let Some(i) = args.iter().position(|a| a == "--cloud-timeout") {
        args[i + 1] = "60s".into();
    }
    let mut first = start_operator("first", dir.path(), &args);
    let waiting = order_named(&ns, WAITING).await.name_any();
    create_action(&ns, "go", &waiting, "Confirm", Some(2)).await;

    eventually(
        "the confirm call reaches the cloud",
        Duration::from_secs(30),
        || async { (sim.calls("sae", "ConfirmPipelineBatch") == 1).then_some(()) },
    )
    .await;
    let api = ns.api::<ChangeOrderAction>();
    let during = api.get("go").await.expect("action");
    let status = during.status.clone().unwrap_or_default();
    assert_eq!(
        status.phase,
        Some(ActionPhase::Executing),
        "intent recorded before the call"
    );
    assert!(status.attempt_id.is_some() && status.observed_before.is_some());
    first.child.kill().expect("SIGKILL");
    let _ = first.child.wait();

    let args2 = operator_args(&ns, free_port(), &["--enable-actions"]);
    let _second = start_operator("second", dir.path(), &args2);
    let (p, reason, message) = outcome(&ns, "go", Duration::from_secs(60)).await;
    assert_eq!(
        (p, reason.as_str()),
        (ActionPhase::Succeeded, "Confirmed"),
        "{message}"
    );
    assert!(message.contains("not sent again"), "{message}");
    // Give a wrongly re-sending operator time to do it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        sim.calls("sae", "ConfirmPipelineBatch"),
        1,
        "exactly one write call"
    );
    let after = api.get("go").await.expect("action").status.unwrap_or_default();
    assert_eq!(after.attempt_id, status.attempt_id, "the same attempt, settled");
}

/// `examples/ci/confirm-after-check.sh`, run for real: it waits for the release to await
/// confirmation, runs the check, and confirms (check passes) or aborts (check fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_example_confirms_after_its_check_or_aborts() {
    let ns = namespace("act-pipeline").await;
    let sim = start_sim(&scenario("")).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "rel", &sim, APP, &["Confirm", "Abort"]).await;
    slow_watch(&ns, "other", &sim, "closed-app", &["Confirm", "Abort"]).await;
    let _op = Operator::start(ns.client(), ns.name(), enabled(Duration::from_secs(3600))).await;
    let run = |watch: &str, check: &str| {
        let cluster = ns.cluster();
        let path = format!(
            "{}:{}",
            cluster.bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/ci/confirm-after-check.sh"
            ))
            .args([ns.name(), watch, check])
            .env("PATH", path)
            .env("KUBECONFIG", cluster.kubeconfig())
            .output()
            .expect("run the example")
    };
    let ok = tokio::task::block_in_place(|| run("rel", "true"));
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("waits for confirmation of batch 2"),
        "{}",
        text(&ok)
    );
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 1);

    let failed = tokio::task::block_in_place(|| run("other", "false"));
    assert!(!failed.status.success(), "{}", text(&failed));
    assert!(text(&failed).contains("aborting"), "{}", text(&failed));
    assert_eq!(sim.calls("sae", "AbortChangeOrder"), 1);
    eventually(
        "the aborted order shows Cancelled",
        Duration::from_secs(15),
        || async {
            let o = order(&ns, "closed-1").await?;
            (phase(&o).as_deref() == Some("Cancelled")).then_some(())
        },
    )
    .await;
}

// The simulator's write APIs over real HTTP, through the operator's own client (signed with V3
// and ROA, checked like the reads).

/// EDAS and SAE apps with an order waiting at batch 2, one running, one finished.
const WRITES: &str = "apps:\n  - provider: sae\n    appId: s\n    changeOrders:\n      - { id: s-wait, createdAt: -1m, batchCount: 3, batchType: manual, status: 8, currentBatch: 2 }\n      - { id: s-run, createdAt: -2m, batchCount: 2, status: 1, currentBatch: 1 }\n      - { id: s-done, createdAt: -1h, status: 2 }\n  - provider: edas\n    appId: e\n    changeOrders:\n      - { id: e-wait, createdAt: -1m, batchCount: 2, batchType: manual, status: 8, currentBatch: 2 }\n      - { id: e-run, createdAt: -2m, status: 1 }\n";

fn target(provider: &str, app: &str, sim: &sim::RunningSim, scheme: &str) -> Target {
    let spec: ChangeOrderWatchSpec = serde_json::from_value(serde_json::json!({
        "provider": provider, "appId": app, "endpoint": sim.url(),
        "credentialsSecretRef": {"name": "x"}, "signatureVersion": scheme,
    }))
    .expect("spec");
    spec.target().expect("target")
}

fn keys(secret: &str) -> Credentials {
    Credentials::AccessKey {
        access_key_id: sim::DEFAULT_ACCESS_KEY_ID.into(),
        access_key_secret: secret.into(),
        security_token: None,
    }
}

fn client(attempts: u32) -> CloudClient {
    CloudClient::try_new(ClientConfig {
        retry: RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_wait: Duration::from_secs(2),
        },
        ..ClientConfig::default()
    })
    .expect("client")
}

/// (status, current batch) as the cloud reports them now.
async fn state(c: &CloudClient, t: &Target, id: &str) -> (RawStatus, Option<u32>) {
    let o = c
        .describe(t, &keys(sim::DEFAULT_ACCESS_KEY_SECRET), id)
        .await
        .expect("describe");
    (o.status, o.current_batch)
}

async fn waiting_pipeline(c: &CloudClient, t: &Target, id: &str) -> Write {
    let o = c
        .describe(t, &keys(sim::DEFAULT_ACCESS_KEY_SECRET), id)
        .await
        .expect("describe");
    let b = usize::try_from(o.current_batch.expect("current batch")).expect("batch");
    Write::Confirm {
        pipeline_id: o.batches[b - 1].id.clone().expect("PipelineId"),
        confirm: true,
    }
}

#[tokio::test]
async fn sim_writes_move_orders_signed_either_way_and_refuse_wrong_states() {
    for scheme in ["v3", "roa"] {
        let sim = start_sim(WRITES).await;
        let c = client(1);
        let creds = keys(sim::DEFAULT_ACCESS_KEY_SECRET);
        for (provider, app, id) in [("sae", "s", "s-wait"), ("edas", "e", "e-wait")] {
            let t = target(provider, app, &sim, scheme);
            let confirm = waiting_pipeline(&c, &t, id).await;
            let w = c
                .act(&t, &creds, id, &confirm)
                .await
                .into_result()
                .expect("confirm");
            assert!(w.request_id.is_some(), "{scheme} {provider}");
            assert_eq!(
                state(&c, &t, id).await,
                (RawStatus::Code(1), Some(2)),
                "{scheme} {provider}: batch 2 runs"
            );
            let again = c
                .act(&t, &creds, id, &confirm)
                .await
                .into_result()
                .expect_err("not waiting any more");
            assert_eq!(again.kind, ErrorKind::BadRequest);
            assert_eq!(
                again.code.as_deref(),
                Some("Pipeline.Can.Not.Start.Next.Batch"),
                "{again}"
            );
        }
        let sae = target("sae", "s", &sim, scheme);
        let done = c
            .act(&sae, &creds, "s-done", &Write::Abort)
            .await
            .into_result()
            .expect_err("finished");
        assert_eq!(done.code.as_deref(), Some("ChangeOrder.Can.Not.Abort"));
        let w = c
            .act(&sae, &creds, "s-run", &Write::AbortAndRollback)
            .await
            .into_result()
            .expect("abort and rollback");
        let rollback = w.new_order_id.expect("the rollback order");
        assert_eq!(state(&c, &sae, "s-run").await.0, RawStatus::Code(6));
        let listed = c.list(&sae, &creds).await.expect("list");
        let r = listed
            .iter()
            .find(|o| o.id == rollback)
            .expect("rollback order listed");
        assert_eq!(r.type_code.as_deref(), Some("CoRollback"));
        assert_eq!(r.status, RawStatus::Code(1));
        let edas = target("edas", "e", &sim, scheme);
        c.act(&edas, &creds, "e-run", &Write::Abort)
            .await
            .into_result()
            .expect("edas abort");
        assert_eq!(state(&c, &edas, "e-run").await.0, RawStatus::Code(6));
        // A bad signature changes nothing.
        let bad = c
            .act(&edas, &keys("wrong-secret"), "e-wait", &Write::Abort)
            .await
            .into_result()
            .expect_err("bad signature");
        assert_eq!(bad.kind, ErrorKind::SignatureMismatch);
        assert_eq!(state(&c, &edas, "e-wait").await.0, RawStatus::Code(1));
        // EDAS abort-and-rollback, signed either way: terminated, and a rollback order runs.
        let w = c
            .act(&edas, &creds, "e-wait", &Write::AbortAndRollback)
            .await
            .into_result()
            .expect("edas abort and rollback");
        let rollback = w.new_order_id.expect("the rollback order");
        assert_eq!(state(&c, &edas, "e-wait").await.0, RawStatus::Code(6));
        let listed = c.list(&edas, &creds).await.expect("list");
        let r = listed
            .iter()
            .find(|o| o.id == rollback)
            .expect("rollback order listed");
        assert_eq!(r.status, RawStatus::Code(1));
        assert_eq!(sim.calls("edas", "AbortAndRollbackChangeOrder"), 1);
        // Confirm=false ends an order waiting for confirmation.
        let sim2 = start_sim(WRITES).await;
        let t = target("sae", "s", &sim2, scheme);
        let Write::Confirm { pipeline_id, .. } = waiting_pipeline(&c, &t, "s-wait").await else {
            unreachable!("a confirm")
        };
        let end = Write::Confirm {
            pipeline_id,
            confirm: false,
        };
        c.act(&t, &creds, "s-wait", &end)
            .await
            .into_result()
            .expect("confirm=false");
        assert_eq!(state(&c, &t, "s-wait").await.0, RawStatus::Code(6));
    }
}

#[tokio::test]
async fn sim_read_only_keys_may_read_but_not_write() {
    let sim = start_sim(&format!(
        "readOnlyAccessKeys: [{}]\n{WRITES}",
        sim::DEFAULT_ACCESS_KEY_ID
    ))
    .await;
    let c = client(3);
    let t = target("sae", "s", &sim, "v3");
    let confirm = waiting_pipeline(&c, &t, "s-wait").await;
    let e = c
        .act(&t, &keys(sim::DEFAULT_ACCESS_KEY_SECRET), "s-wait", &confirm)
        .await
        .into_result()
        .expect_err("read-only");
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (ErrorKind::Forbidden, Some("Forbidden.RAM"))
    );
    assert_eq!(e.http_status, Some(403));
    assert_eq!(
        sim.calls("sae", "ConfirmPipelineBatch"),
        1,
        "a refusal is not retried"
    );
    assert_eq!(state(&c, &t, "s-wait").await, (RawStatus::Code(8), Some(2)));
}

#[tokio::test]
async fn sim_a_throttled_write_is_retried_a_failed_one_is_not() {
    let faults = "faults:\n  - { kind: throttling, actions: [ConfirmPipelineBatch], limit: 1, duration: 100ms }\n  - { kind: internalError, actions: [AbortChangeOrder], limit: 1 }\n";
    let sim = start_sim(&format!("{faults}{WRITES}")).await;
    let c = client(3);
    let creds = keys(sim::DEFAULT_ACCESS_KEY_SECRET);
    let t = target("sae", "s", &sim, "v3");
    let confirm = waiting_pipeline(&c, &t, "s-wait").await;
    c.act(&t, &creds, "s-wait", &confirm)
        .await
        .into_result()
        .expect("confirmed after a throttle");
    let stats = sim.stats();
    assert_eq!(stats.outcome("sae", "ConfirmPipelineBatch", "Throttling.User"), 1);
    assert_eq!(stats.outcome("sae", "ConfirmPipelineBatch", "OK"), 1);
    assert_eq!(
        state(&c, &t, "s-wait").await,
        (RawStatus::Code(1), Some(2)),
        "moved once"
    );
    // A 5xx leaves the outcome open: never sent again by the client.
    let outcome = c.act(&t, &creds, "s-run", &Write::Abort).await;
    let WriteOutcome::Unknown(e) = outcome else {
        panic!("a 5xx leaves the outcome unknown: {outcome:?}")
    };
    assert_eq!(e.kind, ErrorKind::ServerError);
    assert_eq!(sim.calls("sae", "AbortChangeOrder"), 1);
    assert_eq!(
        state(&c, &t, "s-run").await.0,
        RawStatus::Code(1),
        "the failed call did not act"
    );
}

/// `kubectl changeorder confirm|abort --wait`: exit 0 when the action took effect, 1 when it
/// was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_confirms_and_reports_a_refusal() {
    let ns = namespace("act-plugin").await;
    let sim = start_sim(&scenario("")).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "rel", &sim, APP, &["Confirm", "Abort"]).await;
    let _op = Operator::start(ns.client(), ns.name(), enabled(Duration::from_secs(3600))).await;
    let waiting = order_named(&ns, WAITING).await.name_any();
    let done = order_named(&ns, "done-1").await.name_any();
    let plugin = |args: &[&str]| {
        std::process::Command::new(crate::support::process::workspace_bin("kubectl-changeorder"))
            .env("KUBECONFIG", ns.cluster().kubeconfig())
            .args(["-n", ns.name()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run kubectl-changeorder")
    };
    let out = tokio::task::block_in_place(|| plugin(&["confirm", &waiting, "--wait", "--timeout", "30s"]));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("if it waits at batch 2") && text.contains("Confirmed"),
        "{text}"
    );
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 1);
    let out = tokio::task::block_in_place(|| plugin(&["abort", &done, "--wait", "--timeout", "30s"]));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("GuardFailed"), "{text}");
    let out = tokio::task::block_in_place(|| plugin(&["confirm", "no-such-order"]));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(sim.calls("sae", "AbortChangeOrder"), 0);
}

/// A write whose reply never comes (the client times out) is not sent again: the operator
/// reads the order to learn whether it took effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_times_out_is_settled_by_reading_not_resent() {
    let ns = namespace("act-timeout").await;
    let faults = "faults:\n  - { kind: latency, actions: [ConfirmPipelineBatch], duration: 6s }\n";
    let sim = start_sim(&scenario(faults)).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "rel", &sim, APP, &["Confirm"]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // --cloud-timeout is 2s: the confirm call times out while the simulator holds the reply.
    let _op = start_operator(
        "operator",
        dir.path(),
        &operator_args(&ns, free_port(), &["--enable-actions"]),
    );
    let waiting = order_named(&ns, WAITING).await.name_any();
    create_action(&ns, "go", &waiting, "Confirm", Some(2)).await;
    let (p, reason, message) = outcome(&ns, "go", Duration::from_secs(60)).await;
    assert_eq!(
        (p, reason.as_str()),
        (ActionPhase::Succeeded, "Confirmed"),
        "{message}"
    );
    assert!(
        message.contains("without a verdict") && message.contains("not sent again"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        sim.calls("sae", "ConfirmPipelineBatch"),
        1,
        "exactly one write call"
    );
}
