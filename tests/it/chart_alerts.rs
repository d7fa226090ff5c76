//! The chart's PrometheusRule as Prometheus sees it: `promtool check rules` on the rendered
//! groups, and `promtool test rules` with tests/chart/alerts.test.yaml, which feeds each alert
//! series that must fire it and a near miss that must not.

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

use crate::chart_support::*;

/// The rule groups of the rendered PrometheusRule, as a Prometheus rules file.
fn rules_file(helm: &Path, args: &[&str]) -> String {
    let mut all = vec!["--set", "metrics.prometheusRule.enabled=true"];
    all.extend_from_slice(args);
    let objs = render(helm, &all);
    let rule = one(&objs, "PrometheusRule");
    let mut file = serde_yaml::Mapping::new();
    file.insert("groups".into(), rule["spec"]["groups"].clone());
    serde_yaml::to_string(&Value::Mapping(file)).expect("rules YAML")
}

fn promtool(promtool: &Path, dir: &Path, args: &[&str]) {
    let out = run(Command::new(promtool).current_dir(dir).args(args));
    assert!(out.status.success(), "promtool {args:?} failed:\n{}", text(&out));
}

fn alert<'a>(rules: &'a Value, name: &str) -> &'a Value {
    rules["groups"][0]["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .find(|r| r["alert"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("alert {name}"))
}

#[test]
fn every_alert_fires_when_it_must_and_only_then() {
    let (Some(helm), Some(promtool_bin)) = (helm(), lint_bin("promtool")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yaml"), rules_file(&helm, &[])).expect("write rules");
    std::fs::copy(
        root().join("tests/chart/alerts.test.yaml"),
        dir.path().join("alerts.test.yaml"),
    )
    .expect("copy tests");
    promtool(&promtool_bin, dir.path(), &["check", "rules", "rules.yaml"]);
    promtool(&promtool_bin, dir.path(), &["test", "rules", "alerts.test.yaml"]);
}

/// Every alert of the chart has a test, so a new alert cannot come without one.
#[test]
fn every_alert_is_unit_tested() {
    let Some(helm) = helm() else { return };
    let rules: Value = serde_yaml::from_str(&rules_file(&helm, &[])).expect("rules");
    let tests = std::fs::read_to_string(root().join("tests/chart/alerts.test.yaml")).expect("tests");
    for r in rules["groups"][0]["rules"].as_sequence().expect("rules") {
        let name = str_of(&r["alert"]);
        assert!(
            tests.contains(&format!("alertname: {name}\n        exp_alerts:\n          - ")),
            "{name} has no test where it fires"
        );
        assert!(
            tests.contains(&format!("alertname: {name}\n        exp_alerts: []")),
            "{name} has no test where it stays quiet"
        );
    }
}

/// Values change the rules the way the chart README says, and every variant is valid PromQL.
#[test]
fn values_shape_the_rules_and_every_variant_is_valid() {
    let (Some(helm), Some(promtool_bin)) = (helm(), lint_bin("promtool")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let check = |name: &str, args: &[&str]| -> Value {
        let file = rules_file(&helm, args);
        std::fs::write(dir.path().join(name), &file).expect("write rules");
        promtool(&promtool_bin, dir.path(), &["check", "rules", name]);
        serde_yaml::from_str(&file).expect("rules")
    };

    // An order's wait is compared in seconds, from the value's Go duration.
    let rules = check(
        "wait.yaml",
        &["--set", "metrics.prometheusRule.alerts.awaitingInput.for=1h30m"],
    );
    assert!(str_of(&alert(&rules, "ChangeOrderAwaitingInput")["expr"]).ends_with(" > 5400"));

    // With the specific watch alerts off, the catch-all takes their reasons.
    let rules = check(
        "catchall.yaml",
        &[
            "--set",
            "metrics.prometheusRule.alerts.pollsFailing.enabled=false",
            "--set",
            "metrics.prometheusRule.alerts.invalidCredentials.enabled=false",
        ],
    );
    assert!(
        str_of(&alert(&rules, "ChangeOrderWatchNotReady")["expr"]).contains(r#"reason!~"Polled|Suspended","#)
    );
    let names: Vec<&str> = rules["groups"][0]["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .map(|r| str_of(&r["alert"]))
        .collect();
    assert!(!names.contains(&"ChangeOrderPollsFailing"), "{names:?}");

    // Every feature on: alert labels, extra rules and a selector of one's own.
    let rules = check(
        "full.yaml",
        &[
            "-f",
            &profile("full"),
            "--set-string",
            r#"metrics.prometheusRule.selector=job="changeorder""#,
        ],
    );
    let expr = str_of(&alert(&rules, "ChangeOrderMultipleLeaders")["expr"]);
    assert_eq!(expr, r#"sum(changeorder_leader{job="changeorder"}) > 1"#);
    // A bad duration is refused at render time, not turned into broken PromQL.
    let err = template(
        &helm,
        &[
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.prometheusRule.alerts.awaitingInput.for=two hours",
        ],
    )
    .expect_err("not a duration");
    assert!(err.contains("two hours"), "{err}");
}
