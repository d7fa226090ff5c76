//! The release path through a real registry (`tests/tools/registry.sh`: CNCF Distribution, HTTPS
//! with its own CA, htpasswd auth): `tests/tools/release.sh --registry` pushes the image and the
//! chart, signs both with cosign and attaches an SBOM and a provenance statement; `cosign verify`
//! and `cosign verify-attestation` pass on what it pushed and fail once the image or the chart
//! under the released tag is replaced, even when the attacker copies the genuine signatures too.

use crate::chart_support::{helm, root, text};
use crate::support;

use std::process::{Command, Output};

use serde_json::Value;
use support::registry::{Release, TestRegistry};

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{cmd:?}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(!out.status.success(), "{cmd:?} succeeded:\n{}", text(&out));
    text(&out)
}

fn verify(registry: &TestRegistry, release: &Release, what: &str) -> Output {
    registry
        .tool("cosign")
        .arg("verify")
        .args(TestRegistry::offline_verify(&release.public_key))
        .arg(what)
        .output()
        .expect("cosign verify")
}

fn verify_attestation(registry: &TestRegistry, release: &Release, kind: &str, what: &str) -> Output {
    registry
        .tool("cosign")
        .args(["verify-attestation", "--type", kind])
        .args(TestRegistry::offline_verify(&release.public_key))
        .arg(what)
        .output()
        .expect("cosign verify-attestation")
}

/// The in-toto statements `cosign verify-attestation` printed (one JSON envelope per line).
fn statements(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|envelope| {
            use base64::Engine as _;
            let payload = envelope["payload"].as_str().expect("a DSSE payload");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .expect("base64 payload");
            serde_json::from_slice(&bytes).expect("an in-toto statement")
        })
        .collect()
}

fn http(registry: &TestRegistry) -> reqwest::Client {
    let ca = std::fs::read(&registry.ca_file).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap()
}

async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn registry_serves_tls_and_refuses_anonymous_and_wrong_credentials() {
    let registry = tokio::task::spawn_blocking(TestRegistry::shared).await.unwrap();
    let url = format!("https://{}/v2/_catalog", registry.host);
    let client = http(registry);
    assert_eq!(status(client.get(&url)).await, 401, "anonymous");
    let wrong = client
        .get(&url)
        .basic_auth(&registry.username, Some("not-the-password"));
    assert_eq!(status(wrong).await, 401, "wrong password");
    let right = client
        .get(&url)
        .basic_auth(&registry.username, Some(registry.password()));
    assert_eq!(status(right).await, 200);
    // Without its CA, the certificate is not trusted.
    let untrusting = reqwest::Client::new();
    assert!(
        untrusting.get(&url).send().await.is_err(),
        "the registry's CA is its own"
    );

    // The tools see the same: crane without credentials is refused, with them it lists.
    let denied = refused(registry.anonymous("crane").args(["catalog", &registry.host]));
    assert!(denied.contains("UNAUTHORIZED"), "{denied}");
    ok(registry.tool("crane").args(["catalog", &registry.host]));
}

/// release.sh names what is missing before it builds anything, and a wrong login fails the push.
#[test]
fn release_refuses_missing_or_wrong_credentials() {
    let registry = TestRegistry::shared();
    let out_dir = tempfile::tempdir().unwrap();
    let release = |env: &[(&str, &str)]| {
        let mut cmd = Command::new("bash");
        cmd.arg(root().join("tests/tools/release.sh"))
            .args([
                "--binary",
                env!("CARGO_BIN_EXE_changeorder-operator"),
                "--registry",
            ])
            .arg(&registry.host)
            .arg("--out")
            .arg(out_dir.path())
            .env("REGISTRY_CA_FILE", &registry.ca_file)
            .env_remove("REGISTRY_USERNAME")
            .env_remove("REGISTRY_PASSWORD")
            .env_remove("COSIGN_KEY")
            .envs(env.iter().copied());
        refused(&mut cmd)
    };
    let why = release(&[("COSIGN_KEY", "k")]);
    assert!(why.contains("REGISTRY_USERNAME and REGISTRY_PASSWORD"), "{why}");
    let why = release(&[("REGISTRY_USERNAME", "u"), ("REGISTRY_PASSWORD", "p")]);
    assert!(why.contains("needs COSIGN_KEY"), "{why}");
    let key_dir = tempfile::tempdir().unwrap();
    ok(registry
        .tool("cosign")
        .current_dir(key_dir.path())
        .arg("generate-key-pair"));
    let key = key_dir.path().join("cosign.key").display().to_string();
    let why = release(&[
        ("REGISTRY_USERNAME", &registry.username),
        ("REGISTRY_PASSWORD", "not-the-password"),
        ("COSIGN_KEY", &key),
        ("COSIGN_PASSWORD", ""),
    ]);
    assert!(
        why.contains("are REGISTRY_USERNAME and REGISTRY_PASSWORD right?"),
        "{why}"
    );
    assert!(
        why.contains("401 Unauthorized"),
        "the registry's refusal is shown: {why}"
    );
    assert!(
        !why.contains("not-the-password"),
        "the password is never printed: {why}"
    );
}

/// `--listen` serves on another address, with a certificate for it.
#[tokio::test]
async fn registry_listens_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r");
    let registry = tokio::task::spawn_blocking(move || TestRegistry::start(&path, "127.0.0.2"))
        .await
        .unwrap()
        .unwrap();
    assert!(registry.host.starts_with("127.0.0.2:"), "{}", registry.host);
    let url = format!("https://{}/v2/", registry.host);
    let req = http(&registry)
        .get(&url)
        .basic_auth(&registry.username, Some(registry.password()));
    assert_eq!(status(req).await, 200);
}

#[test]
fn release_pushes_signs_and_attests_image_and_chart() {
    let Some(helm) = helm() else { return };
    let registry = TestRegistry::shared();
    let release = registry.release();
    eprintln!(
        "figure: release.sh --registry (image, chart, signatures, SBOM, provenance): {:.1}s",
        release.secs
    );
    assert_eq!(release.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        release.image_repo,
        format!("{}/changeorder-operator", registry.host)
    );
    assert_eq!(
        release.chart_repo,
        format!("{}/charts/changeorder-operator", registry.host)
    );

    // The tags resolve to the recorded digests.
    let digest = |r: &str| ok(registry.tool("crane").args(["digest", r])).trim().to_string();
    assert_eq!(
        digest(&format!("{}:{}", release.image_repo, release.version)),
        release.image_digest
    );
    assert_eq!(
        digest(&format!("{}:{}", release.chart_repo, release.version)),
        release.chart_digest
    );

    // The chart in the registry runs exactly the pushed image, by digest; pulling it needs the login.
    let oci = format!("oci://{}", release.chart_repo);
    let values =
        ok(registry
            .helm(Command::new(&helm))
            .args(["show", "values", &oci, "--version", &release.version]));
    let values: serde_yaml::Value = serde_yaml::from_str(&values).unwrap();
    assert_eq!(
        values["image"]["repository"].as_str(),
        Some(release.image_repo.as_str())
    );
    assert_eq!(
        values["image"]["digest"].as_str(),
        Some(release.image_digest.as_str())
    );
    let anon_dir = tempfile::tempdir().unwrap();
    let denied = refused(
        Command::new(&helm)
            .env("HELM_REGISTRY_CONFIG", anon_dir.path().join("config.json"))
            .env("SSL_CERT_FILE", registry.ca_bundle())
            .args(["show", "chart", &oci, "--version", &release.version]),
    );
    let denied = denied.to_lowercase();
    assert!(
        ["unauthorized", "401", "credential not found"]
            .iter()
            .any(|w| denied.contains(w)),
        "{denied}"
    );

    // Signatures: both artifacts, by digest and through the tag.
    for what in [
        release.image(),
        release.chart(),
        format!("{}:{}", release.image_repo, release.version),
        format!("{}:{}", release.chart_repo, release.version),
    ] {
        let out = verify(registry, release, &what);
        assert!(out.status.success(), "cosign verify {what}:\n{}", text(&out));
    }
    let out = verify(registry, release, &release.image());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let payload: Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no signed payload printed: {stdout}"));
    assert_eq!(
        payload[0]["critical"]["image"]["docker-manifest-digest"].as_str(),
        Some(release.image_digest.as_str())
    );

    // Another key's public half does not verify them.
    let other = tempfile::tempdir().unwrap();
    ok(registry
        .tool("cosign")
        .current_dir(other.path())
        .arg("generate-key-pair"));
    let wrong_key = registry
        .tool("cosign")
        .arg("verify")
        .args(TestRegistry::offline_verify(&other.path().join("cosign.pub")))
        .arg(release.image())
        .output()
        .unwrap();
    assert!(
        !wrong_key.status.success(),
        "verified with another key:\n{}",
        text(&wrong_key)
    );

    // The SBOM names the operator's crates; the provenance names this commit and both digests.
    let commit = ok(Command::new("git")
        .arg("-C")
        .arg(root())
        .args(["rev-parse", "HEAD"]));
    let sbom = verify_attestation(registry, release, "cyclonedx", &release.image());
    assert!(sbom.status.success(), "{}", text(&sbom));
    let st = &statements(&sbom)[0];
    assert_eq!(
        st["subject"][0]["digest"]["sha256"]
            .as_str()
            .map(|d| format!("sha256:{d}")),
        Some(release.image_digest.clone())
    );
    let components: Vec<&str> = st["predicate"]["components"]
        .as_array()
        .expect("SBOM components")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for krate in ["kube", "tokio", "changeorder-cloud", "rustls"] {
        assert!(
            components.contains(&krate),
            "{krate} not in the SBOM: {components:?}"
        );
    }
    assert!(
        !components.contains(&"changeorder-sim"),
        "the simulator is not in the image"
    );
    for what in [release.image(), release.chart()] {
        let out = verify_attestation(registry, release, "slsaprovenance1", &what);
        assert!(out.status.success(), "{what}: {}", text(&out));
        let st = &statements(&out)[0];
        let p = &st["predicate"];
        assert_eq!(
            p["buildDefinition"]["externalParameters"]["source"]["digest"]["gitCommit"].as_str(),
            Some(commit.trim())
        );
        let products: Vec<String> = p["runDetails"]["byproducts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| format!("{}@sha256:{}", str(&b["name"]), str(&b["digest"]["sha256"])))
            .collect();
        assert_eq!(products, vec![release.image(), release.chart()]);
    }
}

/// cosign's words for "nothing signed this digest": none stored for it, or only signatures and
/// attestations over another digest.
fn signature_refusal(why: &str) -> bool {
    ["no signatures found", "no matching", "does not match any digest"]
        .iter()
        .any(|w| why.contains(w))
}

fn str(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// An image or chart replaced under the released tag fails verification, also when the genuine
/// signatures and attestations are copied onto the replacement.
#[test]
fn replaced_image_or_chart_fails_verification() {
    let Some(helm) = helm() else { return };
    let registry = TestRegistry::shared();
    let release = registry.release();
    let tag = &release.version;
    let copy_of = |repo: &str| repo.replacen(&registry.host, &format!("{}/tamper", registry.host), 1);
    let image_repo = copy_of(&release.image_repo);
    let chart_repo = copy_of(&release.chart_repo);
    // A copy with its signatures and attestations (cosign keeps them under the tag
    // sha256-DIGEST), so the release itself stays as pushed.
    let sig_tag = |repo: &str, digest: &str| format!("{repo}:{}", digest.replace(':', "-"));
    for (src, dst, digest) in [
        (&release.image_repo, &image_repo, &release.image_digest),
        (&release.chart_repo, &chart_repo, &release.chart_digest),
    ] {
        ok(registry
            .tool("crane")
            .args(["copy", &format!("{src}:{tag}"), &format!("{dst}:{tag}")]));
        ok(registry
            .tool("crane")
            .args(["copy", &sig_tag(src, digest), &sig_tag(dst, digest)]));
        // Before the change, the copy verifies: the failures below are the change's doing.
        let out = verify(registry, release, &format!("{dst}:{tag}"));
        assert!(
            out.status.success(),
            "the copy of {src} verifies:\n{}",
            text(&out)
        );
    }

    // The image: a changed config (one more label) pushed under the same tag.
    let image_tag = format!("{image_repo}:{tag}");
    let new_image = ok(registry.tool("crane").args([
        "mutate",
        &image_tag,
        "--label",
        "tampered=yes",
        "--tag",
        &image_tag,
    ]))
    .trim()
    .to_string();
    let new_digest = new_image.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap();
    assert_ne!(new_digest, release.image_digest);

    // The chart: the same version repackaged with another image and pushed over the tag.
    let work = tempfile::tempdir().unwrap();
    let oci = format!("oci://{chart_repo}");
    ok(registry
        .helm(Command::new(&helm))
        .args(["pull", &oci, "--version", tag, "--untar", "--untardir"])
        .arg(work.path()));
    let values = work.path().join("changeorder-operator/values.yaml");
    let text_v = std::fs::read_to_string(&values).unwrap();
    std::fs::write(&values, text_v.replace(&release.image_digest, &new_digest)).unwrap();
    ok(Command::new(&helm)
        .args(["package"])
        .arg(work.path().join("changeorder-operator"))
        .arg("--destination")
        .arg(work.path()));
    let pkg = work.path().join(format!("changeorder-operator-{tag}.tgz"));
    let parent = chart_repo.trim_end_matches("/changeorder-operator");
    ok(registry
        .helm(Command::new(&helm))
        .arg("push")
        .arg(&pkg)
        .arg(format!("oci://{parent}")));
    let new_chart = ok(registry
        .tool("crane")
        .args(["digest", &format!("{chart_repo}:{tag}")]));
    let new_chart = new_chart.trim().to_string();
    assert_ne!(new_chart, release.chart_digest);

    // Each refusal must be for the signature, not for anything else (a typo, a network error).
    let fails = |what: &str| {
        let out = verify(registry, release, what);
        let why = text(&out);
        assert!(
            !out.status.success(),
            "cosign verify passed on the changed {what}:\n{why}"
        );
        eprintln!("cosign verify {what}: {}", why.trim());
        assert!(signature_refusal(&why), "{why}");
        let out = verify_attestation(registry, release, "slsaprovenance1", what);
        let why = text(&out);
        assert!(
            !out.status.success(),
            "cosign verify-attestation passed on the changed {what}:\n{why}"
        );
        eprintln!("cosign verify-attestation {what}: {}", why.trim());
        assert!(signature_refusal(&why), "{why}");
    };
    for (repo, old, new) in [
        (&image_repo, &release.image_digest, &new_digest),
        (&chart_repo, &release.chart_digest, &new_chart),
    ] {
        fails(&format!("{repo}:{tag}"));
        fails(&format!("{repo}@{new}"));
        // The attacker copies the genuine signatures and attestations onto the replacement:
        // they name the old digest, so verification still fails.
        ok(registry
            .tool("crane")
            .args(["copy", &sig_tag(repo, old), &sig_tag(repo, new)]));
        fails(&format!("{repo}:{tag}"));
    }
    // The release itself is untouched and still verifies.
    let out = verify(registry, release, &format!("{}:{tag}", release.image_repo));
    assert!(out.status.success(), "{}", text(&out));
}
