//! The Argo CD health checks in examples/argocd, run by a real Lua interpreter against the table
//! of ChangeOrder and ChangeOrderWatch objects in tests/lua/argocd_health_test.lua.
//!
//! `lua5.4` is required in CI (`CI` set; .ci/run installs it). A developer without it gets a
//! skip message instead of a failure. Argo CD itself embeds a Lua 5.1 dialect, so the cases also
//! run under `lua5.1` when that is installed.

use std::path::Path;
use std::process::Command;

const TEST_SCRIPT: &str = "tests/lua/argocd_health_test.lua";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the Lua table tests with `interpreter`; `None` when it is not installed.
fn run_cases(interpreter: &str) -> Option<(bool, String)> {
    let out = match Command::new(interpreter)
        .arg(TEST_SCRIPT)
        .arg("examples/argocd")
        .current_dir(root())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run {interpreter}: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

/// The harness's closing `N passed, M failed` line.
fn summary(text: &str) -> (u32, u32) {
    let line = text
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed"))
        .unwrap_or_else(|| panic!("no summary line:\n{text}"));
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn health_checks_pass_their_cases_under_lua_5_4() {
    match run_cases("lua5.4") {
        Some((ok, text)) => {
            assert!(ok, "Argo CD health-check cases failed under lua5.4:\n{text}");
            // Guards against a harness that silently runs nothing.
            let (passed, failed) = summary(&text);
            assert!(
                passed >= 20 && failed == 0,
                "{passed} passed, {failed} failed:\n{text}"
            );
        }
        None if std::env::var_os("CI").is_some() => {
            panic!("lua5.4 is not installed; CI must install it (apt-get install lua5.4)")
        }
        None => eprintln!(
            "SKIPPED: lua5.4 not found, Argo CD health checks not tested \
             (apt-get install lua5.4 to run them)"
        ),
    }
}

#[test]
fn health_checks_parse_and_pass_under_lua_5_1_when_installed() {
    match run_cases("lua5.1") {
        Some((ok, text)) => assert!(ok, "Argo CD health-check cases failed under lua5.1:\n{text}"),
        None => eprintln!("lua5.1 not found: Lua 5.1 compatibility not checked"),
    }
}

/// The argocd-cm snippet users copy must carry exactly the tested scripts.
#[test]
fn argocd_cm_snippet_embeds_the_tested_scripts() {
    let dir = root().join("examples/argocd");
    let cm: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("argocd-cm.yaml")).unwrap()).unwrap();
    assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
    assert_eq!(cm["metadata"]["name"].as_str(), Some("argocd-cm"));
    for (key, file) in [
        (
            "resource.customizations.health.changeorder.io_ChangeOrder",
            "health.lua",
        ),
        (
            "resource.customizations.health.changeorder.io_ChangeOrderWatch",
            "watch-health.lua",
        ),
    ] {
        let script = std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(
            cm["data"][key].as_str(),
            Some(script.as_str()),
            "argocd-cm.yaml key {key} differs from {file}"
        );
    }
}

/// The resource action in argocd-cm.yaml (a YAML document inside a string, as Argo CD reads it)
/// carries exactly the tested discovery and action scripts.
#[test]
fn argocd_cm_snippet_embeds_the_tested_poll_now_action() {
    let dir = root().join("examples/argocd");
    let cm: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("argocd-cm.yaml")).unwrap()).unwrap();
    let text = cm["data"]["resource.customizations.actions.changeorder.io_ChangeOrderWatch"]
        .as_str()
        .expect("actions key");
    let actions: serde_yaml::Value = serde_yaml::from_str(text).expect("actions YAML");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(
        actions["discovery.lua"].as_str(),
        Some(read("watch-actions-discovery.lua").as_str())
    );
    let definitions = actions["definitions"].as_sequence().expect("definitions");
    assert_eq!(definitions.len(), 1);
    assert_eq!(definitions[0]["name"].as_str(), Some("poll-now"));
    assert_eq!(
        definitions[0]["action.lua"].as_str(),
        Some(read("watch-poll-now.lua").as_str())
    );
    // The action sets the annotation the operator reads.
    assert!(read("watch-poll-now.lua").contains(changeorder_operator::crd::RECONCILE_REQUEST_ANNOTATION));
}

/// The ChangeOrder actions in argocd-cm.yaml carry exactly the tested scripts.
#[test]
fn argocd_cm_snippet_embeds_the_tested_order_actions() {
    let dir = root().join("examples/argocd");
    let cm: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("argocd-cm.yaml")).unwrap()).unwrap();
    let text = cm["data"]["resource.customizations.actions.changeorder.io_ChangeOrder"]
        .as_str()
        .expect("actions key");
    let actions: serde_yaml::Value = serde_yaml::from_str(text).expect("actions YAML");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(
        actions["discovery.lua"].as_str(),
        Some(read("order-actions-discovery.lua").as_str())
    );
    let definitions = actions["definitions"].as_sequence().expect("definitions");
    let names: Vec<&str> = definitions.iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, ["confirm", "abort"]);
    for (d, file) in definitions.iter().zip(["order-confirm.lua", "order-abort.lua"]) {
        assert_eq!(d["action.lua"].as_str(), Some(read(file).as_str()), "{file}");
    }
}
