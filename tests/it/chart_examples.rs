//! The examples users copy without a cluster at hand: every YAML file parses, and the GitOps
//! snippets point at the kinds and conditions the operator really serves. (The provider examples
//! are validated by the API server in tests/it/chart.rs.)

use std::path::{Path, PathBuf};

use serde_yaml::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            <Value as serde::Deserialize>::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(p);
        }
    }
}

#[test]
fn every_example_yaml_parses() {
    let mut files = Vec::new();
    yaml_files(&examples(), &mut files);
    assert!(files.len() >= 9, "{files:?}");
    for f in files {
        assert!(!docs(&f).is_empty(), "{} is empty", f.display());
    }
}

/// The CRDs' group, version and kinds, from crds/.
fn served_kinds() -> Vec<(String, String)> {
    let crds = docs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/changeorder.io_crds.yaml"));
    crds.iter()
        .map(|c| {
            let spec = &c["spec"];
            (
                format!(
                    "{}/{}",
                    spec["group"].as_str().unwrap(),
                    spec["versions"][0]["name"].as_str().unwrap()
                ),
                spec["names"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn flux_health_check_names_a_served_kind() {
    let kinds = served_kinds();
    let ks = docs(&examples().join("flux/kustomization.yaml"));
    let mut checked = 0;
    for k in &ks {
        assert_eq!(k["apiVersion"].as_str(), Some("kustomize.toolkit.fluxcd.io/v1"));
        for hc in k["spec"]["healthChecks"].as_sequence().into_iter().flatten() {
            let gv = hc["apiVersion"].as_str().unwrap().to_string();
            let kind = hc["kind"].as_str().unwrap().to_string();
            assert!(
                kinds.contains(&(gv.clone(), kind.clone())),
                "{gv} {kind} is not served"
            );
            assert!(hc["name"].is_string() && hc["namespace"].is_string());
            checked += 1;
        }
    }
    assert_eq!(
        checked, 0,
        "no health check names a ChangeOrder: its name is not known in Git"
    );
    assert!(
        ks.iter().any(|k| k["spec"]["wait"].as_bool() == Some(true)),
        "the watches' Kustomization waits for them"
    );
}

/// The Flux gate waits on the watch (a stable name in Git) through CEL health checks that read
/// the conditions and fields the operator really writes.
#[test]
fn flux_gate_waits_on_the_watch_with_conditions_the_operator_writes() {
    use changeorder_operator::controller::watch_status::condition_type;
    let kinds = served_kinds();
    let ks = docs(&examples().join("flux/kustomization.yaml"));
    let exprs: Vec<&serde_yaml::Value> = ks
        .iter()
        .flat_map(|k| k["spec"]["healthCheckExprs"].as_sequence().into_iter().flatten())
        .collect();
    assert_eq!(exprs.len(), 1);
    let e = exprs[0];
    let gv = e["apiVersion"].as_str().unwrap().to_string();
    let kind = e["kind"].as_str().unwrap().to_string();
    assert_eq!(kind, "ChangeOrderWatch");
    assert!(kinds.contains(&(gv, kind)));
    let text = |k: &str| {
        e[k].as_str()
            .unwrap_or_else(|| panic!("{k} expression"))
            .to_string()
    };
    assert!(text("current").contains(&format!("'{}'", condition_type::LATEST_ORDER_SUCCEEDED)));
    assert!(text("failed").contains(&format!("'{}'", condition_type::STALLED)));
    assert!(text("failed").contains(&format!("'{}'", condition_type::LATEST_ORDER_SUCCEEDED)));
    assert!(text("inProgress").contains("lastHandledReconcileAt"));
    assert!(text("inProgress").contains(changeorder_operator::crd::RECONCILE_REQUEST_ANNOTATION));
    // Fields the expressions read exist in the CRD.
    let crd = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds/changeorder.io_crds.yaml"),
    )
    .unwrap();
    assert!(crd.contains("lastHandledReconcileAt:") && crd.contains("latestOrder:"));
}

#[test]
fn ci_pipeline_runs_the_wait_script() {
    let wf = docs(&examples().join("ci/github-actions.yaml"));
    let steps = wf[0]["jobs"]["deploy"]["steps"].as_sequence().unwrap();
    assert!(
        steps.iter().any(|s| s["run"]
            .as_str()
            .is_some_and(|r| r.contains("examples/ci/wait-for-change-order.sh"))),
        "a step runs the wait script"
    );
    assert!(examples().join("ci/wait-for-change-order.sh").is_file());
}
