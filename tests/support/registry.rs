//! A real OCI registry (`tests/tools/registry.sh`: CNCF Distribution over HTTPS with its own CA
//! and htpasswd auth), and the release that `tests/tools/release.sh --registry` pushes to it.
//!
//! One registry per test process ([`TestRegistry::shared`]), stopped by registry.sh's watchdog
//! when the process exits (statics are never dropped); the node (`support::node`) is configured
//! to trust and log in to it. [`TestRegistry::release`] runs release.sh once per process; tests
//! that change what the registry holds copy the release elsewhere first (`cosign copy`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

const REGISTRY_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/registry.sh");
const RELEASE_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/release.sh");
const RELEASE_BINS_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/release-bins.sh");

#[derive(Debug)]
pub struct TestRegistry {
    dir: PathBuf,
    /// `127.0.0.1:PORT`
    pub host: String,
    pub ca_file: PathBuf,
    pub username: String,
    password_file: PathBuf,
    bins: PathBuf,
    release: OnceLock<Result<Release, String>>,
}

/// What release.sh pushed (its release.json), and where its files are.
#[derive(Debug, Clone)]
pub struct Release {
    pub out: PathBuf,
    pub version: String,
    pub image_repo: String,
    pub image_digest: String,
    pub chart_repo: String,
    pub chart_digest: String,
    pub public_key: PathBuf,
    /// Seconds release.sh took (binaries already built).
    pub secs: f64,
}

impl Release {
    pub fn image(&self) -> String {
        format!("{}@{}", self.image_repo, self.image_digest)
    }
    pub fn chart(&self) -> String {
        format!("{}@{}", self.chart_repo, self.chart_digest)
    }
}

/// The signing key's password in the tests (the release workflow's is a secret).
const KEY_PASSWORD: &str = "key-password-for-tests";

static SHARED: OnceLock<Result<TestRegistry, String>> = OnceLock::new();

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn export(stdout: &str, name: &str) -> Result<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('\'').to_string())
        .ok_or_else(|| format!("registry.sh printed no {name}"))
}

impl TestRegistry {
    /// The process's registry, started on first use on 127.0.0.1.
    pub fn shared() -> &'static TestRegistry {
        match SHARED.get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("changeorder-registry-")
                .tempdir()
                .map_err(|e| e.to_string())?
                .keep();
            Self::start(&dir, "127.0.0.1")
        }) {
            Ok(r) => r,
            Err(e) => panic!("test registry unavailable: {e}"),
        }
    }

    /// A registry with its state under `dir` (created; removed by `registry.sh down`, with the
    /// client configuration and the release kept in it), listening on `listen`.
    pub fn start(dir: &Path, listen: &str) -> Result<TestRegistry, String> {
        let bins = run(Command::new("bash").arg(RELEASE_BINS_SH))?;
        let bins = PathBuf::from(bins.lines().last().unwrap_or_default());
        let stdout = run(Command::new("bash")
            .arg(REGISTRY_SH)
            .arg("up")
            .arg(dir)
            .args(["--listen", listen, "--owner-pid"])
            .arg(std::process::id().to_string()))?;
        let registry = TestRegistry {
            dir: dir.to_path_buf(),
            host: export(&stdout, "REGISTRY_HOST")?,
            ca_file: export(&stdout, "REGISTRY_CA_FILE")?.into(),
            username: export(&stdout, "REGISTRY_USERNAME")?,
            password_file: export(&stdout, "REGISTRY_PASSWORD_FILE")?.into(),
            bins,
            release: OnceLock::new(),
        };
        // A client configuration logged in to the registry (crane, cosign and helm read it),
        // and one that is not, for the refusals.
        std::fs::create_dir_all(registry.client_dir().join("anonymous")).map_err(|e| e.to_string())?;
        let mut bundle = std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default();
        bundle.extend(std::fs::read(&registry.ca_file).map_err(|e| e.to_string())?);
        std::fs::write(registry.client_dir().join("ca.pem"), bundle).map_err(|e| e.to_string())?;
        let mut login = registry.tool("crane");
        login
            .args(["auth", "login", &registry.host, "--password-stdin", "--username"])
            .arg(&registry.username)
            .stdin(Stdio::from(
                std::fs::File::open(&registry.password_file).map_err(|e| e.to_string())?,
            ));
        let out = login.output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "crane auth login: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(registry)
    }

    /// The registry.sh directory (`node.sh up --registry` reads its env).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn client_dir(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// The registry password (tests hand it to tools on stdin or in the environment only).
    pub fn password(&self) -> String {
        std::fs::read_to_string(&self.password_file)
            .expect("the registry's password file")
            .trim()
            .to_string()
    }

    /// The CA bundle (system roots plus the registry's CA) the Go tools are given.
    pub fn ca_bundle(&self) -> PathBuf {
        self.client_dir().join("ca.pem")
    }

    /// The logged-in client configuration (a docker config.json, which helm reads too).
    pub fn docker_config(&self) -> PathBuf {
        self.client_dir().join("docker")
    }

    /// `crane`, `cosign` (release-bins.sh) logged in and trusting the registry's CA.
    pub fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bins.join(name));
        cmd.env("DOCKER_CONFIG", self.docker_config())
            .env("SSL_CERT_FILE", self.ca_bundle())
            .env("COSIGN_PASSWORD", "")
            .stdin(Stdio::null());
        cmd
    }

    /// The same tool with no credentials at all.
    pub fn anonymous(&self, name: &str) -> Command {
        let mut cmd = self.tool(name);
        cmd.env("DOCKER_CONFIG", self.client_dir().join("anonymous"));
        cmd
    }

    /// `helm` (the cluster's, for its kubeconfig) logged in to this registry.
    pub fn helm(&self, mut helm: Command) -> Command {
        helm.env("HELM_REGISTRY_CONFIG", self.docker_config().join("config.json"))
            .env("SSL_CERT_FILE", self.ca_bundle());
        helm
    }

    /// `cosign verify`-style arguments for a key signature without a transparency log.
    pub fn offline_verify(key: &Path) -> Vec<String> {
        vec![
            "--key".into(),
            key.display().to_string(),
            "--insecure-ignore-tlog=true".into(),
        ]
    }

    /// The release of this test build, pushed to this registry by release.sh (once per process).
    pub fn release(&self) -> &Release {
        match self.release.get_or_init(|| self.run_release()) {
            Ok(r) => r,
            Err(e) => panic!("release.sh --registry failed: {e}"),
        }
    }

    fn run_release(&self) -> Result<Release, String> {
        let out = self.dir.join("release");
        // The signing key pair, made the way the README says (cosign generate-key-pair).
        let keys = self.dir.join("keys");
        std::fs::create_dir_all(&keys).map_err(|e| e.to_string())?;
        run(self
            .tool("cosign")
            .current_dir(&keys)
            .env("COSIGN_PASSWORD", KEY_PASSWORD)
            .arg("generate-key-pair"))?;
        let private_key = std::fs::read_to_string(keys.join("cosign.key")).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg(RELEASE_SH)
            .args(["--binary", env!("CARGO_BIN_EXE_changeorder-operator")])
            .arg("--out")
            .arg(&out)
            .args(["--registry", &self.host])
            .env("REGISTRY_USERNAME", &self.username)
            .env("REGISTRY_PASSWORD", self.password())
            .env("REGISTRY_CA_FILE", &self.ca_file)
            // As release.yml passes the project's key: its text in a variable, with a password.
            .env("COSIGN_KEY", "env://COSIGN_PRIVATE_KEY")
            .env("COSIGN_PRIVATE_KEY", &private_key)
            .env("COSIGN_PASSWORD", KEY_PASSWORD);
        let output = cmd.stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        eprint!("{stderr}");
        if !output.status.success() {
            return Err(format!("exit {}:\n{stderr}", output.status));
        }
        for (secret, what) in [
            (self.password(), "the registry password"),
            (KEY_PASSWORD.to_string(), "the key's password"),
            (
                private_key.lines().nth(1).unwrap_or("-").to_string(),
                "the private key",
            ),
        ] {
            if stderr.contains(&secret) {
                return Err(format!("release.sh printed {what}"));
            }
        }
        let json: Value =
            serde_json::from_slice(&std::fs::read(out.join("release.json")).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Ok(Release {
            version: s(&json["version"]),
            image_repo: s(&json["image"]["repository"]),
            image_digest: s(&json["image"]["digest"]),
            chart_repo: s(&json["chart"]["repository"]),
            chart_digest: s(&json["chart"]["digest"]),
            public_key: out.join(s(&json["publicKey"])),
            out,
            secs: started.elapsed().as_secs_f64(),
        })
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(REGISTRY_SH)
            .arg("down")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output();
    }
}
