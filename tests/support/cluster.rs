//! A real Kubernetes control plane for integration tests.
//!
//! One cluster (etcd, kube-apiserver, kube-controller-manager; no nodes) is
//! started per test binary by `tests/tools/cluster.sh`, the first time a test
//! asks for it, and shared by all its tests. Every test gets its own namespace
//! and its own client:
//!
//! ```ignore
//! mod support;
//! use support::cluster::TestCluster;
//!
//! #[tokio::test]
//! async fn something() {
//!     let ns = TestCluster::get().namespace("something").await;
//!     let cms: kube::Api<ConfigMap> = ns.api();
//!     // ... and for the real CLIs: ns.kubectl(), ns.helm()
//! }
//! ```
//!
//! A test that would disturb the others (stopping the API server, counting all
//! of its requests, CRDs owned by Helm, a node that runs pods) takes a cluster
//! of its own with `TestCluster::isolated("name")`, in the same process.
//!
//! Clients are built per test because a `kube::Client` belongs to the tokio
//! runtime it was made in, and each `#[tokio::test]` has its own runtime.
//!
//! Cleanup: the namespace is deleted when the `TestNamespace` is dropped;
//! the servers are stopped by cluster.sh's watchdog once the test process
//! exits (statics are never dropped, so nothing in-process could do it).
//! With `CHANGEORDER_TEST_KEEP_CLUSTER=1` there is no watchdog: the cluster
//! stays up for inspection, to be stopped with `cluster.sh down DIR`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

const CLUSTER_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/cluster.sh");

/// The per-test-binary control plane.
#[derive(Debug)]
pub struct TestCluster {
    dir: PathBuf,
    kubeconfig: PathBuf,
    bin_dir: PathBuf,
    apiserver_url: String,
    /// The committed CRDs applied (see `operator::install_crds`), once per cluster.
    crds: Once,
}

type Cell = OnceLock<Result<TestCluster, String>>;

static CLUSTER: Cell = OnceLock::new();
static ISOLATED: Mutex<BTreeMap<String, &'static Cell>> = Mutex::new(BTreeMap::new());

impl TestCluster {
    /// The cluster of this test binary, started on first use (blocking: a few
    /// seconds, or as long as a cold build of the binaries takes). Panics
    /// with cluster.sh's output if it cannot start; later callers get the
    /// same error without a second attempt.
    pub fn get() -> &'static TestCluster {
        match CLUSTER.get_or_init(Self::start) {
            Ok(cluster) => cluster,
            Err(e) => panic!("test cluster unavailable: {e}"),
        }
    }

    /// A cluster of its own for tests that would disturb the shared one, one per `name`
    /// (tests passing the same name share it), started on first use like [`Self::get`].
    pub fn isolated(name: &str) -> &'static TestCluster {
        let cell: &'static Cell = {
            let mut all = ISOLATED.lock().unwrap_or_else(|e| e.into_inner());
            // Leaked: like the shared cluster, it lives as long as the process. The lock is
            // released before starting, so clusters of different names start concurrently.
            all.entry(name.to_string())
                .or_insert_with(|| Box::leak(Box::new(OnceLock::new())))
        };
        match cell.get_or_init(Self::start) {
            Ok(cluster) => cluster,
            Err(e) => panic!("test cluster {name:?} unavailable: {e}"),
        }
    }

    /// Runs `install` once for this cluster; concurrent callers wait for the first.
    pub fn once_for_crds(&self, install: impl FnOnce()) {
        self.crds.call_once(install);
    }

    fn start() -> Result<TestCluster, String> {
        let dir = tempfile::Builder::new()
            .prefix("changeorder-cluster-")
            .tempdir()
            .map_err(|e| format!("creating the cluster directory: {e}"))?
            // Removed by `cluster.sh down`, which the watchdog runs.
            .keep();
        let keep = std::env::var_os("CHANGEORDER_TEST_KEEP_CLUSTER").is_some_and(|v| v == "1");
        let started = Instant::now();
        let mut up = Command::new("bash");
        up.arg(CLUSTER_SH).arg("up").arg(&dir);
        if !keep {
            up.arg("--owner-pid").arg(std::process::id().to_string());
        }
        let out = up
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {CLUSTER_SH}: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "`cluster.sh up {}` failed ({}):\n{stderr}",
                dir.display(),
                out.status
            ));
        }
        let env = parse_env(&String::from_utf8_lossy(&out.stdout));
        let var = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| format!("cluster.sh up printed no {name}; stderr:\n{stderr}"))
        };
        let cluster = TestCluster {
            kubeconfig: var("KUBECONFIG")?.into(),
            bin_dir: var("CONTROLPLANE_BIN_DIR")?.into(),
            apiserver_url: var("KUBE_APISERVER_URL")?,
            dir,
            crds: Once::new(),
        };
        eprintln!(
            "test cluster at {} up in {:.1}s (data in {}{})",
            cluster.apiserver_url,
            started.elapsed().as_secs_f64(),
            cluster.dir.display(),
            if keep {
                "; kept after the tests: stop it with tests/tools/cluster.sh down DIR"
            } else {
                ""
            }
        );
        Ok(cluster)
    }

    /// Admin (system:masters) kubeconfig with embedded certificates.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Directory with kubectl, helm, kube-apiserver, kube-controller-manager, etcd.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The cluster's data directory (logs under `logs/`, certificates under `pki/`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `https://127.0.0.1:PORT`.
    pub fn apiserver_url(&self) -> &str {
        &self.apiserver_url
    }

    /// The kube client configuration for the admin user.
    pub async fn config(&self) -> Config {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("reading the test kubeconfig");
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("loading the test kubeconfig")
    }

    /// A new admin client, bound to the calling test's runtime.
    pub async fn client(&self) -> Client {
        Client::try_from(self.config().await).expect("building the test client")
    }

    /// `kubectl` with KUBECONFIG set to the admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.env("KUBECONFIG", &self.kubeconfig).stdin(Stdio::null());
        cmd
    }

    /// `helm` with KUBECONFIG set, and its cache, config and data kept in the
    /// cluster directory instead of the user's home.
    pub fn helm(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("helm"));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"))
            .stdin(Stdio::null());
        cmd
    }

    /// Creates a namespace with a unique name starting with `prefix`, and a
    /// client for it. Dropping the result deletes the namespace, and prints
    /// the servers' log tails if the test is failing.
    pub async fn namespace(&'static self, prefix: &str) -> TestNamespace {
        let name = unique_name(prefix);
        let client = self.client().await;
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("changeorder.test/namespace".to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}\n{}", self.log_tails(20)));
        TestNamespace {
            cluster: self,
            name,
            client,
        }
    }

    /// The last `lines` lines of every server log, for failure reports.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut report = String::new();
        let logs = self.dir.join("logs");
        let mut files: Vec<_> = std::fs::read_dir(&logs)
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let _ = writeln!(report, "----- {} (last {lines} lines) -----", file.display());
            for line in &all[all.len().saturating_sub(lines)..] {
                let _ = writeln!(report, "{line}");
            }
        }
        report
    }
}

/// A namespace for one test; see [`TestCluster::namespace`].
pub struct TestNamespace {
    cluster: &'static TestCluster,
    name: String,
    client: Client,
}

impl TestNamespace {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Admin client (its default namespace is not this one: use [`Self::api`]).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// A namespaced API in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    pub fn cluster(&self) -> &'static TestCluster {
        self.cluster
    }

    /// `kubectl --namespace NAME`.
    pub fn kubectl(&self) -> Command {
        let mut cmd = self.cluster.kubectl();
        cmd.arg("--namespace").arg(&self.name);
        cmd
    }

    /// `helm --namespace NAME`.
    pub fn helm(&self) -> Command {
        let mut cmd = self.cluster.helm();
        cmd.arg("--namespace").arg(&self.name);
        cmd
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The harness shows captured stderr only for failing tests.
            eprintln!(
                "test failed in namespace {}; cluster in {}\n{}",
                self.name,
                self.cluster.dir.display(),
                self.cluster.log_tails(40)
            );
        }
        // kubectl rather than the client: Drop cannot await, and the test's
        // runtime may already be shutting down. --wait=false: the namespace
        // controller finishes in the background.
        let _ = self
            .cluster
            .kubectl()
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `prefix-<pid>-<n>`, cut to a valid DNS label.
fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let suffix = format!("-{}-{n}", std::process::id());
    let mut base: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(63 - suffix.len());
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "test" } else { base };
    format!("{base}{suffix}")
}

/// Parses cluster.sh's `export NAME='value'` lines.
fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}
