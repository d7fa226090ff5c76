//! A real node (kubelet + containerd, `tests/tools/node.sh`) joined to a cluster of its own
//! (`TestCluster::isolated("node")`: pods of other tests must not run on it), for tests that
//! run pods. Started on first use; stopped with the cluster (cluster.sh
//! runs `node.sh down` before stopping the servers, also from its watchdog).
//!
//! Its containerd trusts and logs in to the process's registry ([`TestRegistry::shared`],
//! started first), so pods pull the released image from there.
//!
//! It needs root, containerd, runc and the CNI plugins (.ci/run installs them). Without them
//! [`TestNode::available`] says why, and tests skip, except in CI, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use super::cluster::TestCluster;
use super::registry::TestRegistry;

const NODE_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/node.sh");
const IMAGE_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/image.sh");

#[derive(Debug)]
pub struct TestNode {
    pub name: String,
    pub ip: String,
    pub pod_subnet: String,
    containerd_sock: PathBuf,
    cluster: &'static TestCluster,
    /// Seconds from `node.sh up` to a Ready node (binaries already built).
    pub start_secs: f64,
}

static NODE: OnceLock<Result<TestNode, String>> = OnceLock::new();

impl TestNode {
    /// Why a node cannot run here, if it cannot. In CI a missing prerequisite is a failure.
    pub fn available() -> Result<(), String> {
        let missing: Vec<&str> = ["containerd", "runc", "ctr", "gcc", "iptables"]
            .into_iter()
            .filter(|c| !on_path(c))
            .collect();
        let why = if !missing.is_empty() {
            format!("{} not installed (.ci/run installs them)", missing.join(", "))
        } else if !Path::new("/usr/lib/cni/bridge").exists() {
            "containernetworking-plugins not installed".to_string()
        } else if !is_root() {
            "a node needs root".to_string()
        } else {
            return Ok(());
        };
        if std::env::var_os("CI").is_some() {
            panic!("cannot start a node in CI: {why}");
        }
        Err(why)
    }

    /// The node (with its own cluster, [`Self::cluster`]), started on first use.
    pub fn get() -> &'static TestNode {
        match NODE.get_or_init(Self::start) {
            Ok(node) => node,
            Err(e) => panic!("test node unavailable: {e}"),
        }
    }

    fn start() -> Result<TestNode, String> {
        let cluster = TestCluster::isolated("node");
        let registry = TestRegistry::shared();
        let started = Instant::now();
        let out = Command::new("bash")
            .arg(NODE_SH)
            .arg("up")
            .arg(cluster.dir())
            .arg("--registry")
            .arg(registry.dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {NODE_SH}: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!("`node.sh up` failed ({}):\n{stderr}", out.status));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let var = |name: &str| {
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix("export "))
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.trim_matches('\'').to_string())
                .ok_or_else(|| format!("node.sh up printed no {name}; stderr:\n{stderr}"))
        };
        eprint!("{stderr}");
        Ok(TestNode {
            name: var("NODE_NAME")?,
            ip: var("NODE_IP")?,
            pod_subnet: var("NODE_POD_SUBNET")?,
            containerd_sock: var("NODE_CONTAINERD_SOCK")?.into(),
            cluster,
            start_secs: started.elapsed().as_secs_f64(),
        })
    }

    /// `ctr` on the node's containerd, in the namespace the kubelet uses.
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.containerd_sock)
            .args(["--namespace", "k8s.io"])
            .stdin(Stdio::null());
        cmd
    }

    /// Imports an OCI image archive into the node.
    pub fn load(&self, archive: &Path) {
        let out = Command::new("bash")
            .arg(NODE_SH)
            .arg("load")
            .arg(self.cluster.dir())
            .arg(archive)
            .output()
            .expect("running node.sh load");
        assert!(
            out.status.success(),
            "node.sh load {}: {}",
            archive.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The node's cluster.
    pub fn cluster(&self) -> &'static TestCluster {
        self.cluster
    }

    /// The node's logs (kubelet, containerd, scheduler, controllers), for failure reports.
    pub fn log_dir(&self) -> PathBuf {
        self.cluster.dir().join("node/logs")
    }
}

/// The operator image archive: `CHANGEORDER_IMAGE_ARCHIVE` when set (tests/run.sh builds it from
/// the release binary with image.sh), else image.sh packaging this test build's binary into
/// `dir` (same content rules; no release build inside a test run).
pub fn operator_image(dir: &Path) -> PathBuf {
    if let Some(archive) = std::env::var_os("CHANGEORDER_IMAGE_ARCHIVE") {
        return archive.into();
    }
    let out_path = dir.join("changeorder-operator.oci.tar");
    let out = Command::new("bash")
        .arg(IMAGE_SH)
        .args(["--binary", env!("CARGO_BIN_EXE_changeorder-operator"), "--out"])
        .arg(&out_path)
        .output()
        .expect("running image.sh");
    assert!(
        out.status.success(),
        "image.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    out_path
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
