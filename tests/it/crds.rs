//! The committed CRD YAML must be exactly what the binary prints, so a changed Rust type cannot
//! ship with stale CRDs (in `crds/` or in the Helm chart).

use std::path::Path;
use std::process::Command;

fn generated() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_changeorder-operator"))
        .arg("crds")
        .output()
        .expect("run changeorder-operator crds");
    assert!(
        out.status.success(),
        "crds failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn committed_crds_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = std::fs::read_to_string(root.join("crds/changeorder.io_crds.yaml")).expect("crds file");
    assert!(
        committed == generated(),
        "crds/changeorder.io_crds.yaml is stale: run `cargo run -- crds > crds/changeorder.io_crds.yaml`"
    );
}

#[test]
fn crds_have_names_categories_and_status() {
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&generated())
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document"))
        .collect();
    assert_eq!(docs.len(), 5);
    for (doc, kind, short) in [
        (&docs[0], "ChangeOrderWatch", "cow"),
        (&docs[1], "ChangeOrder", "co"),
        (&docs[2], "ChangeOrderAction", "coa"),
        (&docs[3], "ChangeOrderReceiver", "cor"),
        (&docs[4], "ChangeOrderWatchSet", "cowset"),
    ] {
        let spec = &doc["spec"];
        assert_eq!(spec["names"]["kind"].as_str(), Some(kind));
        assert_eq!(spec["scope"].as_str(), Some("Namespaced"));
        assert_eq!(spec["names"]["shortNames"][0].as_str(), Some(short));
        assert_eq!(spec["names"]["categories"][0].as_str(), Some("alibabacloud"));
        let version = &spec["versions"][0];
        assert!(
            version["subresources"]["status"].is_mapping(),
            "{kind} has a status subresource"
        );
        assert!(
            version["additionalPrinterColumns"]
                .as_sequence()
                .is_some_and(|c| c.len() >= 5)
        );
    }
}

/// Every property of both CRDs has a description, so `kubectl explain` explains each field,
/// and the top level describes the kind rather than the derive macro.
#[test]
fn every_field_is_described() {
    fn walk(path: &str, schema: &serde_yaml::Value, missing: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_mapping() {
            for (name, prop) in props {
                let name = name.as_str().expect("property name");
                let here = format!("{path}.{name}");
                // apiVersion, kind and metadata are the API server's, explained by kubectl.
                let standard = path.is_empty() && matches!(name, "apiVersion" | "kind" | "metadata");
                if !standard && prop["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
                    missing.push(here.clone());
                }
                walk(&here, prop, missing);
            }
        }
        if schema["items"].is_mapping() {
            walk(&format!("{path}[]"), &schema["items"], missing);
        }
    }
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&generated())
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document"))
        .collect();
    for doc in &docs {
        let kind = doc["spec"]["names"]["kind"].as_str().expect("kind");
        let schema = &doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let top = schema["description"].as_str().unwrap_or_default();
        assert!(
            top.starts_with(kind) && !top.contains("Auto-generated"),
            "{kind}: top-level description {top:?}"
        );
        let mut missing = Vec::new();
        walk("", schema, &mut missing);
        assert!(
            missing.is_empty(),
            "{kind}: fields without a description: {missing:?}"
        );
    }
}

/// Every conditions list is a map keyed by `type`, so server-side apply merges conditions by
/// type and the API server rejects two conditions of one type.
#[test]
fn conditions_are_list_maps_keyed_by_type() {
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&generated())
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document"))
        .collect();
    for doc in &docs {
        let kind = doc["spec"]["names"]["kind"].as_str().expect("kind");
        let conditions = &doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
            ["conditions"];
        assert_eq!(
            conditions["x-kubernetes-list-type"].as_str(),
            Some("map"),
            "{kind}"
        );
        let keys: Vec<&str> = conditions["x-kubernetes-list-map-keys"]
            .as_sequence()
            .expect("list-map keys")
            .iter()
            .filter_map(|k| k.as_str())
            .collect();
        assert_eq!(keys, ["type"], "{kind}");
        let required = conditions["items"]["required"].as_sequence().expect("required");
        assert!(
            required.iter().any(|r| r.as_str() == Some("type")),
            "{kind}: the key is required"
        );
    }
}

#[test]
fn change_order_id_is_a_selectable_field() {
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&generated())
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document"))
        .collect();
    let fields = &docs[1]["spec"]["versions"][0]["selectableFields"];
    assert_eq!(fields[0]["jsonPath"].as_str(), Some(".spec.changeOrderId"));
}

/// kubectl expands a category before it matches a resource name, so a category spelled like one
/// of our kinds' names would make `kubectl get changeorder/NAME` list another kind.
#[test]
fn no_category_is_also_a_resource_name() {
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&generated())
        .map(|d| serde::Deserialize::deserialize(d).expect("yaml document"))
        .collect();
    let mut names = std::collections::BTreeSet::new();
    let mut categories = std::collections::BTreeSet::new();
    for doc in &docs {
        let n = &doc["spec"]["names"];
        for key in ["singular", "plural"] {
            names.extend(n[key].as_str().map(str::to_string));
        }
        for list in ["shortNames", "categories"] {
            for v in n[list].as_sequence().into_iter().flatten() {
                let v = v.as_str().expect("name").to_string();
                if list == "shortNames" {
                    names.insert(v);
                } else {
                    categories.insert(v);
                }
            }
        }
    }
    let clash: Vec<_> = categories.intersection(&names).collect();
    assert!(clash.is_empty(), "categories that are resource names: {clash:?}");
}
