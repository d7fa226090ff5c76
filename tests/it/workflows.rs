//! The GitHub workflows cannot run here, so they are linted (actionlint, built by
//! tests/tools/lint-bins.sh) and held to calling the scripts the tests run: ci.yml runs .ci/run,
//! release.yml runs tests/tools/release.sh, which is run here too.

use std::path::Path;
use std::process::Command;

use crate::chart_support::{controlplane_bin, lint_bin, root, run, text};

/// actionlint with results that do not depend on what else is installed: shellcheck and
/// pyflakes, which it runs when it finds them, are left out.
fn actionlint(bin: &Path, dir: &Path, files: &[&str]) -> std::process::Output {
    run(Command::new(bin)
        .current_dir(dir)
        .args(["-no-color", "-shellcheck=", "-pyflakes="])
        .args(files))
}

#[test]
fn workflows_pass_actionlint() {
    let Some(bin) = lint_bin("actionlint") else { return };
    let dir = root().join(".github/workflows");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect(".github/workflows")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert_eq!(files, ["ci.yml", "release.yml"]);
    let out = actionlint(&bin, &dir, &["ci.yml", "release.yml"]);
    assert!(out.status.success(), "actionlint findings:\n{}", text(&out));

    // The linter finds what it should: a broken copy fails.
    let tmp = tempfile::tempdir().expect("temp dir");
    let broken = std::fs::read_to_string(dir.join("ci.yml"))
        .expect("ci.yml")
        .replace("${{ github.ref }}", "${{ github.reff }}")
        .replace(
            "runs-on: ubuntu-24.04",
            "runs-on: ubuntu-24.04\n    timeout-minutes: soon",
        );
    std::fs::write(tmp.path().join("ci.yml"), broken).expect("write");
    let out = actionlint(&bin, tmp.path(), &["ci.yml"]);
    assert!(!out.status.success(), "a broken workflow passed:\n{}", text(&out));
    let findings = text(&out);
    assert!(findings.contains("reff"), "{findings}");
}

#[test]
fn workflows_run_the_tested_scripts() {
    let read = |f: &str| std::fs::read_to_string(root().join(".github/workflows").join(f)).expect(f);
    assert!(read("ci.yml").contains("bash .ci/run"));
    let release = read("release.yml");
    assert!(
        release.contains(
            "tests/tools/release.sh --tag \"$GITHUB_REF_NAME\" --out dist --registry \"$REGISTRY\""
        )
    );
    // Secrets reach release.sh through the environment only, never its arguments.
    for var in ["REGISTRY_PASSWORD:", "COSIGN_PRIVATE_KEY:", "COSIGN_PASSWORD:"] {
        assert!(release.contains(var), "{var}");
    }
    // Pushing needs packages: write; nothing else (no keyless signing, so no id-token).
    let release: serde_yaml::Value = serde_yaml::from_str(&release).expect("release.yml parses");
    assert_eq!(
        release["permissions"],
        serde_yaml::from_str::<serde_yaml::Value>("{contents: read, packages: write}").unwrap()
    );
    for (name, job) in release["jobs"].as_mapping().expect("jobs") {
        assert!(
            job.get("permissions").is_none(),
            "job {name:?} asks for permissions"
        );
    }
}

/// release.sh as the release workflow runs it, with the test build's binary instead of a
/// release build (the image itself is tested in image.rs): the image and chart come out, a
/// wrong tag is refused, and it says plainly what it does not do.
#[test]
fn release_script_builds_image_and_chart_and_says_what_is_missing() {
    if controlplane_bin("helm").is_none() {
        crate::chart_support::missing_tool("helm");
        return;
    }
    let out_dir = tempfile::tempdir().expect("temp dir");
    let binary = env!("CARGO_BIN_EXE_changeorder-operator");
    let version = env!("CARGO_PKG_VERSION");
    let script = root().join("tests/tools/release.sh");
    let out = run(Command::new(&script)
        .args(["--binary", binary, "--tag", &format!("v{version}")])
        .arg("--out")
        .arg(out_dir.path()));
    let log = text(&out);
    assert!(out.status.success(), "release.sh failed:\n{log}");
    for f in [
        format!("changeorder-operator-{version}.oci.tar"),
        format!("changeorder-operator-{version}.tgz"),
        "SHA256SUMS".to_string(),
    ] {
        assert!(out_dir.path().join(&f).is_file(), "{f} missing:\n{log}");
    }
    assert!(
        log.contains("NOT DONE") && log.contains("nothing was signed"),
        "{log}"
    );

    let out = run(Command::new(&script)
        .args(["--binary", binary, "--tag", "v0.0.0-not-this"])
        .arg("--out")
        .arg(out_dir.path()));
    assert!(!out.status.success(), "a wrong tag was released:\n{}", text(&out));
}
