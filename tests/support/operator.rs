//! Pieces shared by the controller tests: CRDs, the simulator, the controller itself (in-process,
//! scoped to the test's namespace), and the objects a user creates.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use changeorder_cloud::client::CloudClient;
use changeorder_cloud::http::{CallOutcome, ClientConfig, RetryPolicy};
use changeorder_cloud::policy::EndpointPolicy;
use changeorder_operator::controller::accounts::Accounts;
use changeorder_operator::controller::budget::Budget;
use changeorder_operator::controller::identity::KeylessSettings;
use changeorder_operator::controller::metrics::Metrics;
use changeorder_operator::controller::{Runtime, Settings, run_controllers};
use changeorder_operator::crd::{ChangeOrder, ChangeOrderWatch};
use changeorder_sim::{self as sim, RunningSim, SimConfig, scenario::Scenario};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::oneshot;

use super::cluster::{TestCluster, TestNamespace};

/// Apply the committed CRDs once per cluster and wait until they are served.
pub fn install_crds(cluster: &TestCluster) {
    cluster.once_for_crds(|| {
        let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
        let out = cluster
            .kubectl()
            .args(["apply", "--server-side", "-f", crds])
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "applying CRDs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = cluster
            .kubectl()
            .args([
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd",
                "--all",
            ])
            .output()
            .expect("kubectl");
        assert!(
            out.status.success(),
            "CRDs not established: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A namespace in the shared cluster, with the CRDs installed.
pub async fn namespace(prefix: &str) -> TestNamespace {
    namespace_in(TestCluster::get(), prefix).await
}

/// A namespace in `cluster` (e.g. an isolated one), with the CRDs installed.
pub async fn namespace_in(cluster: &'static TestCluster, prefix: &str) -> TestNamespace {
    install_crds(cluster);
    cluster.namespace(prefix).await
}

pub async fn start_sim(scenario_yaml: &str) -> RunningSim {
    start_sim_with(Scenario::from_yaml(scenario_yaml).expect("test scenario is valid")).await
}

pub async fn start_sim_with(scenario: Scenario) -> RunningSim {
    sim::start(SimConfig::new(scenario))
        .await
        .expect("simulator starts")
}

/// Calls seen by the test's cloud client, by operation (the simulator counts too; this view
/// is the operator's own).
#[derive(Clone, Default)]
pub struct CallLog(Arc<std::sync::Mutex<Vec<(String, String)>>>);

impl CallLog {
    pub fn count(&self, operation: &str) -> usize {
        self.0
            .lock()
            .map(|l| l.iter().filter(|(op, _)| op == operation).count())
            .unwrap_or(0)
    }
    pub fn total(&self) -> usize {
        self.0.lock().map(|l| l.len()).unwrap_or(0)
    }
}

pub fn fast_settings() -> Settings {
    Settings {
        default_interval: Duration::from_secs(2),
        default_in_flight_interval: Duration::from_secs(1),
        default_max_finished: 50,
        max_error_backoff: Duration::from_secs(4),
        status_heartbeat: Duration::from_secs(600),
        // The simulator listens on 127.0.0.1.
        allowed_endpoints: EndpointPolicy::parse("http://127.0.0.1:*").expect("valid policy"),
        keyless: Default::default(),
        actions: Default::default(),
        watch_sets: false,
    }
}

/// A controller running in this process until dropped or stopped.
pub struct Operator {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub calls: CallLog,
    pub metrics: Metrics,
}

impl Operator {
    pub async fn start(client: Client, ns: &str, settings: Settings) -> Operator {
        Self::start_with_budget(client, ns, settings, 6000).await
    }

    /// With a call budget of `calls_per_minute` per credential, as `run --calls-per-minute`.
    pub async fn start_with_budget(
        client: Client,
        ns: &str,
        settings: Settings,
        calls_per_minute: u32,
    ) -> Operator {
        // RUST_LOG=changeorder_operator=debug shows the controller's view of a failing test.
        super::logs::init();
        let calls = CallLog::default();
        let log = calls.clone();
        let metrics = Metrics::new();
        let observed = metrics.clone();
        let cloud = CloudClient::try_new(ClientConfig {
            retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(200),
                max_wait: Duration::from_secs(2),
            },
            observer: Some(Arc::new(move |o: &CallOutcome<'_>| {
                observed.cloud_call(o.provider, o.operation, o.result);
                if let Ok(mut l) = log.0.lock() {
                    l.push((o.operation.to_string(), o.result.to_string()));
                }
            })),
            // A budget per account when the test gives an STS endpoint (the simulator's);
            // tests never ask the real STS.
            budget: Some(Arc::new(Budget::with_accounts(
                calls_per_minute,
                if settings.keyless.sts_endpoint == KeylessSettings::default().sts_endpoint {
                    Accounts::unasked()
                } else {
                    Accounts::new(&settings.keyless.sts_endpoint, Duration::from_secs(10))
                },
            ))),
            ..ClientConfig::default()
        })
        .expect("cloud client");
        let runtime = Runtime {
            settings,
            cloud,
            metrics: metrics.clone(),
            concurrency: 4,
            namespaces: vec![ns.to_string()],
            identity: "test".into(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (synced_tx, synced_rx) = oneshot::channel::<()>();
        let shutdown = futures::FutureExt::shared(Box::pin(async move {
            let _ = stopped.await;
        })
            as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>);
        let task = tokio::spawn(run_controllers(client, runtime, shutdown, move || {
            let _ = synced_tx.send(());
        }));
        tokio::time::timeout(Duration::from_secs(30), synced_rx)
            .await
            .expect("controller caches sync in time")
            .expect("controller running");
        Operator {
            stop: Some(stop),
            task: Some(task),
            calls,
            metrics,
        }
    }

    /// Graceful shutdown, as on SIGTERM.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

pub async fn create_secret(ns: &TestNamespace, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        string_data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    };
    ns.api::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .expect("create secret");
}

pub async fn access_key_secret(ns: &TestNamespace, name: &str, secret: &str) {
    create_secret(
        ns,
        name,
        &[
            ("accessKeyId", sim::DEFAULT_ACCESS_KEY_ID),
            ("accessKeySecret", secret),
        ],
    )
    .await;
}

/// Create a watch from a spec written as JSON.
pub async fn create_watch(ns: &TestNamespace, name: &str, spec: serde_json::Value) -> ChangeOrderWatch {
    let watch: ChangeOrderWatch = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1",
        "kind": "ChangeOrderWatch",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("watch manifest");
    ns.api::<ChangeOrderWatch>()
        .create(&PostParams::default(), &watch)
        .await
        .expect("create watch")
}

pub async fn orders(ns: &TestNamespace) -> Vec<ChangeOrder> {
    ns.api::<ChangeOrder>()
        .list(&ListParams::default())
        .await
        .expect("list changeorders")
        .items
}

pub async fn order(ns: &TestNamespace, id: &str) -> Option<ChangeOrder> {
    orders(ns)
        .await
        .into_iter()
        .find(|o| o.spec.change_order_id == id)
}

/// Every resourceVersion of the namespace's ChangeOrders and watches: equal snapshots mean
/// nothing was written in between.
pub async fn versions(ns: &TestNamespace) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for o in orders(ns).await {
        out.insert(
            format!("co/{}", o.name_any()),
            o.resource_version().unwrap_or_default(),
        );
    }
    for w in ns
        .api::<ChangeOrderWatch>()
        .list(&ListParams::default())
        .await
        .expect("list watches")
        .items
    {
        out.insert(
            format!("cow/{}", w.name_any()),
            w.resource_version().unwrap_or_default(),
        );
    }
    out
}

pub fn phase(o: &ChangeOrder) -> Option<String> {
    o.status.as_ref().and_then(|s| s.phase).map(|p| p.to_string())
}

pub fn condition(o: &ChangeOrder, type_: &str) -> Option<(String, String)> {
    o.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .map(|c| (c.status.clone(), c.reason.clone()))
}

pub fn watch_ready(w: &ChangeOrderWatch) -> Option<(String, String)> {
    w.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Every row of the contract's status table, as the simulator's built-in demo has it:
/// (order id, phase, reason).
pub const DEMO_ROWS: [(&str, &str, &str); 33] = [
    ("demo-edas-preparing", "Pending", "Preparing"),
    ("demo-edas-running", "Running", "Executing"),
    ("demo-edas-succeeded", "Succeeded", "Succeeded"),
    ("demo-edas-failed", "Failed", "Failed"),
    ("demo-edas-terminated", "Cancelled", "Terminated"),
    ("demo-edas-partially-succeeded", "Failed", "PartiallySucceeded"),
    (
        "demo-edas-awaiting-confirmation",
        "AwaitingConfirmation",
        "ManualBatchConfirmation",
    ),
    ("demo-edas-waiting-next-batch", "Running", "WaitingForNextBatch"),
    ("demo-edas-system-error", "Failed", "SystemError"),
    ("demo-edas-unknown", "Unknown", "UnknownStatus"),
    ("demo-edas-single-succeeded", "Succeeded", "Succeeded"),
    ("demo-sae-preparing", "Pending", "Preparing"),
    ("demo-sae-running", "Running", "Executing"),
    ("demo-sae-exception", "Running", "Executing"),
    ("demo-sae-succeeded", "Succeeded", "Succeeded"),
    ("demo-sae-failed", "Failed", "Failed"),
    ("demo-sae-terminated", "Cancelled", "Terminated"),
    (
        "demo-sae-awaiting-confirmation",
        "AwaitingConfirmation",
        "ManualBatchConfirmation",
    ),
    ("demo-sae-waiting-next-batch", "Running", "WaitingForNextBatch"),
    ("demo-sae-system-error", "Failed", "SystemError"),
    ("demo-sae-pending-approval", "AwaitingApproval", "PendingApproval"),
    ("demo-sae-approved", "Pending", "Approved"),
    ("demo-sae-unknown", "Unknown", "UnknownStatus"),
    ("as-init", "Pending", "Init"),
    ("as-preparing", "Pending", "Preparing"),
    ("as-running", "Running", "Running"),
    ("as-stopping", "Running", "Stopping"),
    ("as-suspending", "Running", "Suspending"),
    ("as-suspended", "Paused", "Suspended"),
    ("as-success", "Succeeded", "Succeeded"),
    ("as-failed", "Failed", "Failed"),
    ("as-canceled", "Cancelled", "Canceled"),
    ("as-unknown", "Unknown", "UnknownStatus"),
];

/// The phase, reason and conditions the contract gives for one row.
pub fn assert_contract_row(o: &ChangeOrder, phase_want: &str, reason_want: &str) {
    let id = &o.spec.change_order_id;
    let status = o.status.as_ref().expect("status");
    assert_eq!(phase(o).as_deref(), Some(phase_want), "{id}");
    assert_eq!(status.reason.as_deref(), Some(reason_want), "{id}");
    let terminal = matches!(phase_want, "Succeeded" | "Failed" | "Cancelled");
    let ready = match phase_want {
        "Succeeded" => "True",
        "Unknown" => "Unknown",
        _ => "False",
    };
    assert_eq!(
        condition(o, "Ready"),
        Some((ready.to_string(), reason_want.to_string())),
        "{id}"
    );
    let reconciling = if terminal { "False" } else { "True" };
    assert_eq!(
        condition(o, "Reconciling").map(|c| c.0).as_deref(),
        Some(reconciling),
        "{id}"
    );
    let stalled = if matches!(phase_want, "Failed" | "Cancelled") {
        "True"
    } else {
        "False"
    };
    assert_eq!(
        condition(o, "Stalled").map(|c| c.0).as_deref(),
        Some(stalled),
        "{id}"
    );
    let awaiting = matches!(phase_want, "AwaitingConfirmation" | "AwaitingApproval" | "Paused");
    assert_eq!(
        condition(o, "AwaitingInput").map(|c| c.0 == "True"),
        Some(awaiting),
        "{id}"
    );
    let degraded = id == "demo-sae-exception";
    assert_eq!(
        condition(o, "Degraded").map(|c| c.0 == "True"),
        Some(degraded),
        "{id}"
    );
    assert!(status.provider_status.is_some(), "{id} keeps the raw value");
    assert!(
        status.conditions.iter().all(|c| !c.message.is_empty()),
        "{id}: every condition says why"
    );
}

/// Wait until a watch's Ready condition has this status and reason.
pub async fn wait_watch_ready(ns: &TestNamespace, name: &str, status: &str, reason: &str) {
    let watches = ns.api::<ChangeOrderWatch>();
    let want = (status.to_string(), reason.to_string());
    super::cluster::eventually(
        &format!("watch {name} Ready={status} {reason}"),
        Duration::from_secs(60),
        || async {
            let w = watches.get(name).await.ok()?;
            (watch_ready(&w)? == want).then_some(())
        },
    )
    .await;
}

/// Reasons of the Events about one object, as `kubectl get events` shows them.
pub fn event_reasons(ns: &TestNamespace, object: &str) -> String {
    let out = ns
        .kubectl()
        .args([
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={object}"),
        ])
        .args(["-o", "jsonpath={.items[*].reason}"])
        .output()
        .expect("kubectl get events");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
