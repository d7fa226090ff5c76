//! The container image: what `tests/tools/image.sh` builds without Docker is what the
//! `Dockerfile` describes, and both match the chart. The two builds share
//! `tests/tools/image-rootfs.sh` (the files) and the Dockerfile's final stage (the config), so
//! these checks pin down the shared parts and everything else that could drift: the cargo
//! command, the entrypoint, the user, the certificates, the version.
//!
//! The archive is built here from the test's (debug) binary: the content rules are the same as
//! for the release binary, and a release build would take minutes.

use crate::chart_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use chart_support::{chart_dir, root};
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_changeorder-operator");
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn build(out: &Path) {
    build_from(out, BINARY);
}

fn build_from(out: &Path, binary: &str) {
    let result = Command::new("bash")
        .arg(root().join("tests/tools/image.sh"))
        .args(["--binary", binary, "--out"])
        .arg(out)
        .output()
        .expect("running image.sh");
    assert!(
        result.status.success(),
        "image.sh failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

fn inspect(archive: &Path) -> Value {
    let out = Command::new("python3")
        .arg(root().join("tests/tools/oci-image.py"))
        .arg("--inspect")
        .arg(archive)
        .output()
        .expect("running oci-image.py --inspect");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sha256(path: &str) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// The Dockerfile's logical lines (continuations joined, comments dropped).
fn dockerfile_lines() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let mut lines = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.starts_with('#') || (cur.is_empty() && line.is_empty()) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(line);
            // One space between words, as the instruction's meaning does not depend on them.
            lines.push(cur.split_whitespace().collect::<Vec<_>>().join(" "));
            cur.clear();
        }
    }
    lines
}

fn file<'a>(image: &'a Value, path: &str) -> Option<&'a Value> {
    image["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
}

fn tmp_archive(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn image_sh_builds_what_the_dockerfile_describes() {
    let dir = tempfile::tempdir().unwrap();
    let archive = tmp_archive(&dir, "a.oci.tar");
    build(&archive);
    let image = inspect(&archive);
    let config = &image["config"];

    // Entrypoint, user, port: the Dockerfile's final stage, and what the chart expects.
    assert_eq!(config["Entrypoint"], serde_json::json!(["/changeorder-operator"]));
    assert_eq!(config["Cmd"], serde_json::json!(["run"]));
    assert_eq!(config["User"], "65532:65532");
    assert!(config["ExposedPorts"]["8081/tcp"].is_object(), "{config}");
    let values: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap()).unwrap();
    assert_eq!(values["securityContext"]["runAsUser"].as_u64(), Some(65532));
    assert_eq!(values["securityContext"]["runAsGroup"].as_u64(), Some(65532));
    assert_eq!(values["adminPort"].as_u64(), Some(8081));

    // OCI labels, the tag from Cargo.toml, and the chart pulling exactly that name by default.
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], VERSION);
    assert_eq!(labels["org.opencontainers.image.title"], "changeorder-operator");
    assert_eq!(
        labels["org.opencontainers.image.licenses"],
        env!("CARGO_PKG_LICENSE")
    );
    assert_eq!(
        labels["org.opencontainers.image.description"],
        env!("CARGO_PKG_DESCRIPTION")
    );
    assert_eq!(
        labels["org.opencontainers.image.revision"]
            .as_str()
            .unwrap()
            .len(),
        40,
        "the commit: {labels}"
    );
    assert!(
        labels["org.opencontainers.image.created"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let repository = values["image"]["repository"].as_str().unwrap();
    assert_eq!(
        image["name"],
        format!("docker.io/library/{repository}:{VERSION}"),
        "image.sh's default name is the chart's default image"
    );
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(chart["appVersion"].as_str(), Some(VERSION));

    // Files: the binary itself, CA certificates, the user, the C runtime the binary loads, and
    // nothing to run commands with.
    let binary = file(&image, "/changeorder-operator").expect("the binary");
    assert_eq!(binary["sha256"], sha256(BINARY));
    assert_eq!(binary["mode"], "0o755");
    let certs = file(&image, "/etc/ssl/certs/ca-certificates.crt").expect("CA certificates");
    assert!(certs["size"].as_u64().unwrap() > 100_000, "{certs}");
    assert!(file(&image, "/etc/passwd").is_some() && file(&image, "/etc/group").is_some());
    let interp = Command::new("sh")
        .arg("-c")
        .arg(format!("ldd {BINARY} | awk '$1 ~ /^\\// {{ print $1 }}'"))
        .output()
        .unwrap();
    let interp = String::from_utf8_lossy(&interp.stdout).trim().to_string();
    if !interp.is_empty() {
        assert!(file(&image, &interp).is_some(), "the dynamic loader {interp}");
        assert!(
            file(&image, "/lib/x86_64-linux-gnu/libc.so.6").is_some()
                || file(&image, "/lib/aarch64-linux-gnu/libc.so.6").is_some(),
            "libc"
        );
    }
    for f in image["files"].as_array().unwrap() {
        let path = f["path"].as_str().unwrap();
        assert_eq!(f["uid"], 0, "{path} is owned by root (the user cannot change it)");
        assert!(
            !path.starts_with("/bin") && !path.starts_with("/usr/bin") && !path.starts_with("/sbin"),
            "no programs besides the operator: {path}"
        );
        let allowed = [
            "/changeorder-operator",
            "/etc",
            "/lib",
            "/usr/lib",
            "/usr/share/doc",
        ];
        assert!(
            allowed
                .iter()
                .any(|a| path == *a || path.starts_with(&format!("{a}/")))
                || path == "/usr"
                || path == "/usr/share"
                || path == "/lib64"
                || path.starts_with("/lib64/"),
            "unexpected file in the image: {path}"
        );
    }

    // The Dockerfile: its final stage is scratch plus the rootfs from the same script and the
    // same cargo command image.sh runs.
    let lines = dockerfile_lines();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    assert_eq!(lines[last_from], "FROM scratch");
    let copies: Vec<_> = lines[last_from..]
        .iter()
        .filter(|l| l.starts_with("COPY "))
        .collect();
    assert_eq!(
        copies,
        ["COPY --from=build /rootfs/ /"],
        "the final stage copies only the rootfs"
    );
    let build_stage = lines[..last_from].join("\n");
    assert!(
        build_stage.contains(
            "cargo build --release --locked -p changeorder-operator --bin changeorder-operator && image-rootfs.sh /rootfs target/release/changeorder-operator"
        ),
        "the Dockerfile builds the binary and its rootfs as image.sh does:\n{build_stage}"
    );
    assert!(build_stage.contains("COPY tests/tools/image-rootfs.sh "));
    let image_sh = std::fs::read_to_string(root().join("tests/tools/image.sh")).unwrap();
    assert!(
        image_sh
            .contains("cargo build --release --locked -p changeorder-operator --bin changeorder-operator")
    );
    assert!(build_stage.contains("COPY crates ./crates"), "{build_stage}");
    assert!(
        lines.iter().any(|l| l == &format!("ARG VERSION={VERSION}")),
        "the Dockerfile's default VERSION is Cargo.toml's"
    );
    // Base images are named in full, so a user can pin them by digest.
    for from in lines.iter().filter(|l| l.starts_with("FROM ")) {
        assert!(
            from == "FROM scratch" || from.starts_with("FROM ${RUST_IMAGE}"),
            "{from}"
        );
    }
    let rust_image = lines
        .iter()
        .find_map(|l| l.strip_prefix("ARG RUST_IMAGE="))
        .unwrap();
    assert!(
        rust_image.starts_with("docker.io/library/rust:") && rust_image.contains("-bookworm"),
        "{rust_image}"
    );
}

/// Two builds give the same bytes. With a small dynamic binary standing in for the operator:
/// determinism is a property of the tools, and packing the 60 MB debug binary twice is slow.
#[test]
fn image_sh_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (tmp_archive(&dir, "a.tar"), tmp_archive(&dir, "b.tar"));
    build_from(&a, "/usr/bin/true");
    build_from(&b, "/usr/bin/true");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

/// The program the image holds is the operator only: no simulator subcommand (the simulator is
/// `changeorder-sim`, a program of its own that never enters the image).
#[test]
fn the_operator_binary_holds_no_simulator() {
    let help = Command::new(BINARY).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for command in ["run", "crds", "probe"] {
        assert!(help.contains(command), "{command}: {help}");
    }
    assert!(!help.contains("simulate"), "{help}");
    let simulate = Command::new(BINARY).arg("simulate").output().unwrap();
    assert!(!simulate.status.success());
    assert!(
        String::from_utf8_lossy(&simulate.stderr).contains("unrecognized subcommand 'simulate'"),
        "{}",
        String::from_utf8_lossy(&simulate.stderr)
    );
}
