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
    assert_eq!(docs.len(), 2);
    for (doc, kind, short) in [
        (&docs[0], "ChangeOrderWatch", "cow"),
        (&docs[1], "ChangeOrder", "co"),
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
