//! `kubectl-changeorder` as users run it, without a cluster: its help, and the commands the CI
//! example gives (so the example and the program cannot drift apart).

use std::path::Path;
use std::process::Command;

use clap::Parser;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-changeorder");

#[test]
fn help_lists_the_commands() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["status", "wait", "refresh", "confirm", "abort", "rollback"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}

/// The plugin example's commands are accepted by the plugin's own command line.
#[test]
fn ci_plugin_example_uses_valid_plugin_commands() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ci/github-actions-plugin.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let wf: serde_yaml::Value = serde_yaml::from_str(&text).expect("workflow parses");
    let steps = wf["jobs"]["deploy"]["steps"].as_sequence().expect("steps");
    let mut checked = 0;
    for run in steps.iter().filter_map(|s| s["run"].as_str()) {
        if let Some(rest) = run.trim().strip_prefix("kubectl changeorder ") {
            let args = std::iter::once("kubectl-changeorder").chain(rest.split_whitespace());
            changeorder_plugin::Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{run}: {e}"));
            checked += 1;
        }
    }
    assert_eq!(checked, 2, "wait and status");
}
