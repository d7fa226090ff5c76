//! `kubeconform -strict` over the chart rendered with a matrix of values (issue 22), and over the
//! example watches, with our CRDs' schemas.
//!
//! kubeconform downloads Kubernetes' schemas from GitHub, which this machine cannot reach. They
//! are generated instead from the OpenAPI document of the test cluster's kube-apiserver (the
//! pinned Kubernetes version), the source kubernetes-json-schema itself is generated from, the
//! way its openapi2jsonschema does it in strict mode; ours from crds/. Only ServiceMonitor and
//! PrometheusRule are skipped: their CRDs (the Prometheus Operator's) are not in this repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value as Json, json};

use crate::chart_support::*;
use crate::support::cluster::TestCluster;

/// Kinds whose CRDs (the Prometheus Operator's) are not in this repository.
const SKIPPED: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

/// The kubeconform file name of a schema: `{{.ResourceKind}}{{.KindSuffix}}.json`, lower-case
/// kind, then the first label of the group (or nothing for the core group) and the version.
fn schema_file(kind: &str, api_version: &str) -> String {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let group = group.split('.').next().unwrap_or("");
    let suffix = if group.is_empty() {
        format!("-{version}")
    } else {
        format!("-{group}-{version}")
    };
    format!("{}{suffix}.json", kind.to_lowercase())
}

/// Strict like openapi2jsonschema's `--strict`: objects with properties take no others, except
/// where Kubernetes keeps unknown fields on purpose.
fn strict(v: &mut Json) {
    match v {
        Json::Object(m) => {
            let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if m.contains_key("properties") && !m.contains_key("additionalProperties") && !preserve {
                m.insert("additionalProperties".into(), json!(false));
            }
            for (_, c) in m.iter_mut() {
                strict(c);
            }
        }
        Json::Array(a) => a.iter_mut().for_each(strict),
        _ => {}
    }
}

fn refs(v: &Json, out: &mut BTreeSet<String>) {
    match v {
        Json::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Json::as_str) {
                out.insert(r.trim_start_matches("#/definitions/").to_string());
            }
            m.values().for_each(|c| refs(c, out));
        }
        Json::Array(a) => a.iter().for_each(|c| refs(c, out)),
        _ => {}
    }
}

/// The schemas for `kinds` (kind, apiVersion) in a directory of this process's lifetime.
fn schema_dir(kinds: &BTreeSet<(String, String)>) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR
        .get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .to_path_buf();
    let out = TestCluster::get()
        .kubectl()
        .args(["get", "--raw", "/openapi/v2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let doc: Json = serde_json::from_slice(&out.stdout).unwrap();
    let mut defs = doc["definitions"].as_object().unwrap().clone();
    // As openapi2jsonschema does: these are strings or numbers in manifests (`port: 8081`,
    // `cpu: 1`, `maxSurge: 25%`), which the OpenAPI document only says through a format.
    defs.insert(
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString".into(),
        json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
    );
    defs.insert(
        "io.k8s.apimachinery.pkg.api.resource.Quantity".into(),
        json!({"oneOf": [{"type": "string"}, {"type": "number"}]}),
    );
    let mut by_gvk: BTreeMap<(String, String), String> = BTreeMap::new();
    for (name, d) in &defs {
        for gvk in d["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (g, v, k) = (
                gvk["group"].as_str().unwrap_or(""),
                gvk["version"].as_str().unwrap_or(""),
                gvk["kind"].as_str().unwrap_or(""),
            );
            let api_version = if g.is_empty() {
                v.to_string()
            } else {
                format!("{g}/{v}")
            };
            by_gvk.insert((k.to_string(), api_version), name.clone());
        }
    }
    for (kind, api_version) in kinds {
        if api_version.starts_with("changeorder.io/") || SKIPPED.contains(&kind.as_str()) {
            continue;
        }
        let name = by_gvk
            .get(&(kind.clone(), api_version.clone()))
            .unwrap_or_else(|| panic!("the API server has no schema for {api_version} {kind}"));
        // The kind's definition with every definition it refers to, in one file.
        let mut needed = BTreeSet::from([name.clone()]);
        let mut todo = vec![name.clone()];
        while let Some(n) = todo.pop() {
            let mut found = BTreeSet::new();
            refs(&defs[&n], &mut found);
            for f in found {
                if needed.insert(f.clone()) {
                    todo.push(f);
                }
            }
        }
        let mut schema = defs[name].clone();
        let sub: serde_json::Map<String, Json> =
            needed.iter().map(|n| (n.clone(), defs[n].clone())).collect();
        schema["definitions"] = Json::Object(sub);
        strict(&mut schema);
        std::fs::write(
            dir.join(schema_file(kind, api_version)),
            serde_json::to_string(&schema).unwrap(),
        )
        .unwrap();
    }
    // Ours, from crds/.
    let crds = std::fs::read_to_string(root().join("crds/changeorder.io_crds.yaml")).unwrap();
    for crd in objects(&crds) {
        let group = str_of(&crd["spec"]["group"]);
        let kind = str_of(&crd["spec"]["names"]["kind"]);
        for v in crd["spec"]["versions"].as_sequence().unwrap() {
            let version = str_of(&v["name"]);
            let mut schema: Json = serde_json::to_value(&v["schema"]["openAPIV3Schema"]).unwrap();
            // The API server adds these to every custom resource; the CRD need not list them.
            let props = schema["properties"].as_object_mut().unwrap();
            props.entry("apiVersion").or_insert(json!({"type": "string"}));
            props.entry("kind").or_insert(json!({"type": "string"}));
            props.entry("metadata").or_insert(json!({"type": "object"}));
            strict(&mut schema);
            std::fs::write(
                dir.join(schema_file(kind, &format!("{group}/{version}"))),
                serde_json::to_string(&schema).unwrap(),
            )
            .unwrap();
        }
    }
    dir
}

/// kubeconform -strict on a YAML stream: (passed, output).
fn kubeconform(bin: &Path, schemas: &Path, manifest: &str, file: &Path) -> (bool, String) {
    std::fs::write(file, manifest).unwrap();
    let out = run(Command::new(bin)
        .args(["-strict", "-summary", "-skip", &SKIPPED.join(",")])
        .arg("-schema-location")
        .arg(format!(
            "{}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json",
            schemas.display()
        ))
        .arg(file));
    (out.status.success(), text(&out))
}

fn kinds_of(manifests: &[String]) -> BTreeSet<(String, String)> {
    manifests
        .iter()
        .flat_map(|m| objects(m))
        .map(|o| {
            (
                str_of(&o["kind"]).to_string(),
                str_of(&o["apiVersion"]).to_string(),
            )
        })
        .collect()
}

const EXTRA_OBJECTS: &str = r#"extraObjects:
  - apiVersion: changeorder.io/v1alpha1
    kind: ChangeOrderWatch
    metadata:
      name: '{{ .Release.Name }}-extra'
      namespace: '{{ .Release.Namespace }}'
    spec:
      provider: sae
      region: cn-hangzhou
      appId: app-1
      credentialsSecretRef:
        name: sae-credentials
  - |
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: {{ .Release.Name }}-extra
      namespace: {{ .Release.Namespace }}
    data:
      a: b
"#;

#[test]
fn chart_passes_kubeconform_strict_for_a_matrix_of_values() {
    let Some(helm) = helm() else { return };
    let Some(bin) = lint_bin("kubeconform") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let extra = work.path().join("extra.yaml");
    std::fs::write(&extra, EXTRA_OBJECTS).unwrap();
    let extra = extra.display().to_string();
    let (full, ha, namespaced) = (profile("full"), profile("ha"), profile("namespaced"));
    let every = [
        "-f",
        &full,
        "--set",
        "keyless.enabled=true,rbac.readCRDs=true,actions.enabled=true,grafanaDashboard.enabled=true",
        "--set",
        "test.probe.watch.provider=sae,test.probe.watch.region=cn-hangzhou",
        "--set",
        "test.probe.watch.appId=a,test.probe.watch.credentialsSecretRef.name=s",
    ];
    let mut matrix: Vec<(String, Vec<&str>)> = vec![
        ("co".into(), vec![]),
        ("co".into(), vec!["-f", &namespaced]),
        ("co".into(), vec!["-f", &ha]),
        ("co".into(), every.to_vec()),
        (
            "co".into(),
            [
                &every[..],
                &[
                    "-f",
                    &extra,
                    "--set",
                    "replicaCount=3,namespaceOverride=ops,extraArgs={--log-format=plain}",
                    "--set-string",
                    "commonLabels.team=payments,grafanaDashboard.labels.grafana_dashboard=1",
                ],
            ]
            .concat(),
        ),
    ];
    matrix.push(("a".repeat(53), every.to_vec()));
    let manifests: Vec<String> = matrix
        .iter()
        .map(|(release, args)| {
            template_release(&helm, release, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
        })
        .collect();
    let mut kinds = kinds_of(&manifests);
    kinds.insert(("Deployment".into(), "apps/v1".into()));
    let schemas = schema_dir(&kinds);
    let file = work.path().join("manifest.yaml");
    for ((release, args), manifest) in matrix.iter().zip(&manifests) {
        let (ok, out) = kubeconform(&bin, &schemas, manifest, &file);
        assert!(ok, "kubeconform -strict, release {release}, {args:?}:\n{out}");
        // Every object was checked against a schema, none skipped for want of one.
        let n = objects(manifest)
            .iter()
            .filter(|o| !SKIPPED.contains(&str_of(&o["kind"])))
            .count();
        assert!(out.contains(&format!("Valid: {n},")), "{args:?}: {out}");
    }

    // The schemas are not vacuous: an unknown field, a duplicate key, a wrong type and an
    // unknown field of a ChangeOrderWatch each fail.
    let (base, with_watch) = (&manifests[3], &manifests[4]);
    let bad_field = base.replacen(
        "      serviceAccountName:",
        "      serviceAcountName: x\n      serviceAccountName:",
        1,
    );
    let dup_key = base.replacen(
        "  revisionHistoryLimit:",
        "  revisionHistoryLimit: 3\n  revisionHistoryLimit:",
        1,
    );
    let bad_type = base.replacen("  revisionHistoryLimit: 10", "  revisionHistoryLimit: ten", 1);
    let bad_watch = with_watch.replacen("  appId: app-1", "  appID: app-1", 1);
    for (what, from, m) in [
        ("unknown field", base, bad_field),
        ("duplicate key", base, dup_key),
        ("wrong type", base, bad_type),
        ("unknown ChangeOrderWatch field", with_watch, bad_watch),
    ] {
        assert!(&m != from, "{what}: the manifest was not changed");
        let (ok, out) = kubeconform(&bin, &schemas, &m, &file);
        assert!(!ok, "{what} passed kubeconform:\n{out}");
    }
}
