//! The cloud layer knows no Kubernetes: its normal dependency tree must not pull in kube, any
//! kube-* crate or k8s-openapi, not even indirectly (a dev-dependency would not ship, so only
//! normal edges are checked).

use std::process::Command;

#[test]
fn no_kubernetes_crates_in_the_dependency_tree() {
    // `cargo test` sets CARGO for the test process; the compile-time value covers running the
    // test binary by hand.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "changeorder-cloud",
            "-e",
            "normal",
            "--prefix",
            "none",
            // Everything is already in Cargo.lock and the local cache; never touch the network.
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Guards against passing on an empty or unrelated listing.
    assert!(
        stdout.lines().any(|l| l.starts_with("changeorder-cloud ")),
        "cargo tree did not list changeorder-cloud itself:\n{stdout}"
    );
    let kubernetes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("kube") || l.starts_with("k8s-openapi"))
        .collect();
    assert!(
        kubernetes.is_empty(),
        "changeorder-cloud must not depend on Kubernetes crates, found: {kubernetes:?}"
    );
}
