//! The Helm chart ships the CRDs as templates (so `helm upgrade` updates them). Each chart file is
//! `crds/changeorder.io_crds.yaml`'s document for that CRD plus a fixed wrapper: the
//! `crds.install` toggle, the `helm.sh/resource-policy: keep` annotation and the chart's labels.
//! These tests fail when the chart's copy differs from `crds/`; to refresh it run
//! `UPDATE_CHART_CRDS=1 cargo test --test it chart_crds`.

use std::path::{Path, PathBuf};

const SOURCE: &str = "crds/changeorder.io_crds.yaml";
const CHART_CRDS_DIR: &str = "charts/changeorder-operator/templates/crds";
const UPDATE_ENV: &str = "UPDATE_CHART_CRDS";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `(metadata.name, document)` for each CRD in `crds/`, each document starting with `---\n`.
fn source_documents() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join(SOURCE)).expect("read crds/");
    let body = text.strip_prefix("---\n").expect("crds/ starts with ---");
    body.split("\n---\n")
        .map(|doc| {
            let doc = format!("---\n{}\n", doc.trim_end_matches('\n'));
            let name = doc
                .lines()
                .skip_while(|l| *l != "metadata:")
                .nth(1)
                .and_then(|l| l.strip_prefix("  name: "))
                .unwrap_or_else(|| panic!("no metadata.name right after metadata: in\n{doc}"))
                .to_string();
            (name, doc)
        })
        .collect()
}

/// The chart file for one CRD document: the document verbatim with the wrapper lines added.
fn wrap(name: &str, doc: &str) -> String {
    // Helm would try to evaluate template delimiters inside descriptions or CEL rules.
    assert!(
        !doc.contains("{{") && !doc.contains("}}"),
        "{name}: the CRD contains template delimiters; the chart copy would need escaping"
    );
    let name_line = format!("  name: {name}\n");
    let anchor = format!("metadata:\n{name_line}");
    assert_eq!(doc.matches(&anchor).count(), 1, "{name}: one metadata.name line");
    let metadata = format!(
        "{anchor}  annotations:\n    \
         # Left in place by `helm uninstall`, so users' watches and orders survive it.\n    \
         helm.sh/resource-policy: keep\n  \
         labels:\n    \
         {{{{- include \"changeorder-operator.labels\" . | nindent 4 }}}}\n"
    );
    format!(
        "{{{{- /* Generated from {SOURCE} by `{UPDATE_ENV}=1 cargo test --test it chart_crds`; do not edit. */}}}}\n\
         {{{{- if .Values.crds.install }}}}\n\
         {}\
         {{{{- end }}}}\n",
        doc.replacen(&anchor, &metadata, 1)
    )
}

fn chart_file(name: &str) -> PathBuf {
    root().join(CHART_CRDS_DIR).join(format!("{name}.yaml"))
}

#[test]
fn chart_crds_match_crds_dir() {
    let docs = source_documents();
    assert_eq!(docs.len(), 5, "five CRDs in {SOURCE}");
    let update = std::env::var_os(UPDATE_ENV).is_some();
    let mut stale = Vec::new();
    for (name, doc) in &docs {
        let want = wrap(name, doc);
        let path = chart_file(name);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "chart CRDs differ from {SOURCE}: {stale:?}\nrun `{UPDATE_ENV}=1 cargo test --test it chart_crds`"
    );
}

/// A CRD dropped from `crds/` must not linger in the chart.
#[test]
fn chart_has_no_other_crd_files() {
    let mut expected: Vec<String> = source_documents()
        .into_iter()
        .map(|(name, _)| format!("{name}.yaml"))
        .collect();
    expected.sort();
    let mut present: Vec<String> = std::fs::read_dir(root().join(CHART_CRDS_DIR))
        .expect("chart CRD directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(present, expected);
}

/// Removing exactly the wrapper lines gives back the source document: the wrapper adds and
/// changes nothing else.
#[test]
fn wrapper_only_adds_lines() {
    for (name, doc) in source_documents() {
        let wrapped = wrap(&name, &doc);
        let wrapper_lines = [
            "  annotations:",
            "    # Left in place by `helm uninstall`, so users' watches and orders survive it.",
            "    helm.sh/resource-policy: keep",
            "  labels:",
            "    {{- include \"changeorder-operator.labels\" . | nindent 4 }}",
            "{{- if .Values.crds.install }}",
            "{{- end }}",
        ];
        let stripped: Vec<&str> = wrapped
            .lines()
            .filter(|l| !l.starts_with("{{- /*") && !wrapper_lines.contains(l))
            .collect();
        assert_eq!(stripped.join("\n") + "\n", doc, "{name}");
    }
}
