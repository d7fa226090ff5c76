//! The chart's Grafana dashboard through a real Prometheus (tests/tools/prometheus-bin.sh builds
//! it): the operator binary runs out of cluster with watches in two namespaces, Prometheus
//! scrapes it with the scrape configuration the chart's ServiceMonitor stands for, and every
//! panel's query, with its variables filled in as Grafana fills them, returns the series it is
//! meant to show, labelled with the watch's namespace (never the operator's).
//!
//! Two scrape jobs read the same operator: one from the ServiceMonitor with the chart's defaults
//! (`honorLabels: false`, so Prometheus renames the metrics' own `namespace` label to
//! `exported_namespace` and sets `namespace` to the target's), one with `honorLabels: true`.
//! The dashboard must be right under both.
//!
//! Also here: the rules of Grafana's dashboard-linter that apply to this dashboard (the linter
//! is not served by any registry this project builds from), checked on the JSON.

use crate::chart_support;
use crate::dashboard::{dashboard, metric_names, queries};
use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use changeorder_sim as sim;
use serde_json::{Value, json};
use support::cluster::{TestNamespace, eventually};
use support::operator::*;
use support::process::{Proc, free_port, http_get};

/// The namespace the scrape's target (the operator's pod) is in.
const OPERATOR_NS: &str = "changeorder-system";
/// What Grafana puts for `$__rate_interval` with a 1 s scrape interval and a short range.
const RATE_INTERVAL: &str = "1m";

/// Two orders on one EDAS app that each wait for a person, run and succeed, the second well
/// after the first: the duration histograms get a sample while Prometheus already has the
/// series, so their rates are not zero.
const SCENARIO: &str = r#"
timeScale: 1
apps:
  - provider: edas
    appId: app-prom
    changeOrders:
      - id: first
        createdAt: 0s
        batchCount: 2
        batchType: manual
        status: 8
        currentBatch: 1
        timeline:
          - { after: 6s, status: 1, currentBatch: 2 }
          - { after: 9s, status: 2, currentBatch: 2 }
      - id: second
        createdAt: 0s
        batchCount: 2
        batchType: manual
        status: 8
        currentBatch: 1
        timeline:
          - { after: 30s, status: 1, currentBatch: 2 }
          - { after: 34s, status: 2, currentBatch: 2 }
"#;

/// The Prometheus server built by tests/tools/prometheus-bin.sh: `PROMETHEUS_BIN_DIR` (set by
/// tests/run.sh), else that script's cache; `None` after saying why the caller skips (in CI a
/// missing server is a failure).
fn prometheus_bin() -> Option<PathBuf> {
    let in_env = std::env::var_os("PROMETHEUS_BIN_DIR").map(|d| PathBuf::from(d).join("prometheus"));
    let found = in_env.filter(|p| p.is_file()).or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?
            .join("changeorder-operator/prometheus");
        let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin/prometheus")))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("prometheus not found: CI builds it with tests/tools/prometheus-bin.sh");
        }
        eprintln!(
            "SKIPPED: prometheus not found (run tests/tools/prometheus-bin.sh and set PROMETHEUS_BIN_DIR)"
        );
    }
    found
}

/// A Prometheus server; killed when dropped, its log printed if the test fails.
struct Prometheus {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("----- prometheus (last lines) -----");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(bin: &Path, dir: &Path, config: &Value) -> Prometheus {
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, serde_yaml::to_string(config).expect("yaml")).expect("config");
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).expect("log");
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, log, port }
    }

    /// An instant query through the HTTP API: the result vector (`[{metric, value}]`).
    async fn query(&self, promql: &str) -> Vec<Value> {
        self.try_query(promql)
            .await
            .unwrap_or_else(|| panic!("query {promql}: Prometheus does not answer"))
    }

    /// [`Self::query`], or `None` while the server does not answer yet.
    async fn try_query(&self, promql: &str) -> Option<Vec<Value>> {
        let resp = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .form(&[("query", promql)])
            .send()
            .await
            .ok()?;
        let body: Value = resp.json().await.ok()?;
        assert_eq!(body["status"], "success", "{promql}: {body}");
        assert_eq!(body["data"]["resultType"], "vector", "{promql}: {body}");
        Some(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

/// The scrape job a Prometheus Operator generates for the chart's ServiceMonitor (release
/// `release`, extra `--set` values), on a static target standing for the operator's pod: the
/// target labels the operator sets from service discovery (namespace, service, pod, container,
/// endpoint, and job from the Service's name), then the ServiceMonitor's own honorLabels,
/// path, relabelings and metric relabelings. Its interval is 1 s instead of the chart's 30 s,
/// so the test takes seconds.
fn scrape_job(helm: &Path, release: &str, set: &[&str], target: &str) -> (String, Value) {
    let mut args = vec!["--set", "metrics.serviceMonitor.enabled=true"];
    for s in set {
        args.extend(["--set", s]);
    }
    let manifest = chart_support::template_release(helm, release, &args).expect("helm template");
    let objs = chart_support::objects(&manifest);
    let sm = chart_support::one(&objs, "ServiceMonitor");
    let service = chart_support::of_kind(&objs, "Service")
        .into_iter()
        .find(|s| {
            s["spec"]["ports"]
                .as_sequence()
                .is_some_and(|p| p.iter().any(|p| p["name"].as_str() == Some("metrics")))
        })
        .expect("the metrics Service");
    let service_name = chart_support::str_of(&service["metadata"]["name"]).to_string();
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"].as_str(), Some("metrics"));
    let to_json = |v: &serde_yaml::Value| serde_json::to_value(v).expect("json");
    let relabel = |list: &serde_yaml::Value| -> Vec<Value> {
        list.as_sequence()
            .map(|l| l.iter().map(|r| prometheus_relabel(&to_json(r))).collect())
            .unwrap_or_default()
    };
    let job = json!({
        "job_name": format!("serviceMonitor/{OPERATOR_NS}/{}/0", chart_support::str_of(&sm["metadata"]["name"])),
        "honor_labels": endpoint["honorLabels"].as_bool().expect("honorLabels rendered"),
        "metrics_path": endpoint["path"].as_str().unwrap_or("/metrics"),
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "static_configs": [{
            "targets": [target],
            "labels": {
                "job": service_name,
                "namespace": OPERATOR_NS,
                "service": service_name,
                "pod": format!("{release}-changeorder-operator-7d9f8-x2x4q"),
                "container": "operator",
                "endpoint": "metrics",
            },
        }],
        "relabel_configs": relabel(&endpoint["relabelings"]),
        "metric_relabel_configs": relabel(&endpoint["metricRelabelings"]),
    });
    (service_name, job)
}

/// A ServiceMonitor relabeling (camelCase) in Prometheus's own syntax.
fn prometheus_relabel(r: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in r.as_object().expect("relabeling is a map") {
        let snake: String = k
            .chars()
            .flat_map(|c| {
                if c.is_ascii_uppercase() {
                    vec!['_', c.to_ascii_lowercase()]
                } else {
                    vec![c]
                }
            })
            .collect();
        out.insert(snake, v.clone());
    }
    Value::Object(out)
}

/// A query with the dashboard's variables filled in as Grafana does: a single value as it is,
/// "All" as the variable's allValue.
fn fill(expr: &str, job: &str, namespace: &str) -> String {
    expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("${datasource}", "")
        .replace("$job", job)
        .replace("$namespace", namespace)
}

fn label<'a>(series: &'a Value, name: &str) -> Option<&'a str> {
    series["metric"][name].as_str()
}

fn number(series: &Value) -> f64 {
    series["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Every panel of the dashboard: (title, [expr]).
fn panels() -> Vec<(String, Vec<String>)> {
    dashboard()["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            let exprs = p["targets"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t["expr"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            (title, exprs)
        })
        .collect()
}

fn variable(name: &str) -> Value {
    dashboard()["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no ${name} variable"))
}

fn start_operator(dir: &Path, kubeconfig: &Path, namespaces: &[&TestNamespace]) -> (Proc, u16) {
    let port = free_port();
    let names: Vec<&str> = namespaces.iter().map(|n| n.name()).collect();
    let env: Vec<(String, String)> = [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("CHANGEORDER_NAMESPACES", names.join(",")),
        ("CHANGEORDER_ALLOWED_ENDPOINTS", "http://127.0.0.1:*".into()),
        ("CHANGEORDER_DEFAULT_INTERVAL", "2s".into()),
        ("CHANGEORDER_DEFAULT_IN_FLIGHT_INTERVAL", "1s".into()),
        ("CHANGEORDER_CALLS_PER_MINUTE", "1000".into()),
        ("CHANGEORDER_ADMIN_LISTEN", format!("127.0.0.1:{port}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    (Proc::spawn("operator", dir, &env, &[]), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_through_prometheus_shows_the_watch_namespace() {
    let (Some(prometheus), Some(helm)) = (prometheus_bin(), chart_support::helm()) else {
        return;
    };
    let a = namespace("dash-prom-a").await;
    let b = namespace("dash-prom-b").await;
    let sim = start_sim(SCENARIO).await;
    let spec = |secret: &str| {
        json!({"provider": "edas", "endpoint": sim.url(), "appId": "app-prom",
            "credentialsSecretRef": {"name": secret}})
    };
    for ns in [&a, &b] {
        access_key_secret(ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
        create_watch(ns, "app", spec("cloud")).await;
    }
    // Never Ready (its Secret does not exist): the "not ready" panel counts it, in b only.
    create_watch(&b, "no-secret", spec("absent")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (op, port) = start_operator(dir.path(), a.cluster().kubeconfig(), &[&a, &b]);
    eventually("the operator ready", Duration::from_secs(60), || async {
        http_get(port, "/ready").await.filter(|(s, _)| *s == 200)
    })
    .await;

    let target = format!("127.0.0.1:{port}");
    let (job_default, default_scrape) = scrape_job(&helm, "co", &[], &target);
    let (job_honor, honor_scrape) = scrape_job(
        &helm,
        "honored",
        &["metrics.serviceMonitor.honorLabels=true"],
        &target,
    );
    assert_eq!(default_scrape["honor_labels"], false, "the chart's default");
    let config = json!({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [default_scrape, honor_scrape],
    });
    let started = std::time::Instant::now();
    let prom = Prometheus::start(&prometheus, dir.path(), &config);
    eventually("both scrape jobs up", Duration::from_secs(60), || async {
        let up = prom.try_query("up == 1").await?;
        (up.len() == 2).then_some(())
    })
    .await;
    eprintln!("prometheus scraping in {:.1}s", started.elapsed().as_secs_f64());

    // The collision the dashboard must handle: under the default scrape the metric's
    // `namespace` is the operator's, the watch's is `exported_namespace`.
    let raw = prom
        .query(&format!("changeorder_watch_ready{{job=\"{job_default}\"}}"))
        .await;
    assert!(!raw.is_empty());
    for s in &raw {
        assert_eq!(label(s, "namespace"), Some(OPERATOR_NS), "{s}");
    }

    // Both orders finished and Prometheus saw the second one finish: every histogram panel has
    // a rate to show.
    for metric in [
        "changeorder_change_order_duration_seconds_count",
        "changeorder_awaiting_input_seconds_count",
    ] {
        eventually(
            &format!("{metric} increased within {RATE_INTERVAL} in both jobs"),
            Duration::from_secs(120),
            || async {
                let r = prom
                    .query(&format!("sum by (job) (increase({metric}[{RATE_INTERVAL}])) > 0"))
                    .await;
                (r.len() == 2).then_some(())
            },
        )
        .await;
    }

    let watch_namespaces: BTreeSet<String> = [a.name().to_string(), b.name().to_string()].into();
    let all_namespaces = variable("namespace")["allValue"]
        .as_str()
        .expect("$namespace allValue")
        .to_string();

    // The variables: $job lists both jobs; $namespace lists the watches' namespaces.
    let jobs = reqwest::get(format!(
        "http://127.0.0.1:{}/api/v1/label/job/values?match[]=changeorder_build_info",
        prom.port
    ))
    .await
    .expect("label values")
    .json::<Value>()
    .await
    .expect("json");
    let job_query = variable("job")["query"]["query"]
        .as_str()
        .expect("$job query")
        .to_string();
    assert_eq!(job_query, "label_values(changeorder_build_info, job)");
    for job in [&job_default, &job_honor] {
        assert!(
            jobs["data"]
                .as_array()
                .is_some_and(|j| j.iter().any(|v| v == job.as_str())),
            "{jobs}"
        );
    }
    let ns_var = variable("namespace");
    let ns_query = ns_var["query"]["query"].as_str().expect("$namespace query");
    let inner = ns_query
        .strip_prefix("query_result(")
        .and_then(|q| q.strip_suffix(')'))
        .expect("$namespace is a query_result()");
    assert_eq!(ns_var["regex"], r#"/namespace="([^"]+)"/"#);
    for job in [&job_default, &job_honor] {
        let listed: BTreeSet<String> = prom
            .query(&fill(inner, job, &all_namespaces))
            .await
            .iter()
            .filter_map(|s| label(s, "namespace").map(str::to_string))
            .collect();
        assert_eq!(listed, watch_namespaces, "$namespace under job {job}");
    }

    // Every panel, under both scrapes, for all namespaces and for one.
    let mut checked = 0;
    for job in [&job_default, &job_honor] {
        // "All", one namespace, and two picked (Grafana joins a multi-value as `(x|y)`).
        let both = format!("({}|{})", a.name(), b.name());
        for (selected, expect) in [
            (all_namespaces.as_str(), watch_namespaces.clone()),
            (b.name(), [b.name().to_string()].into()),
            (both.as_str(), watch_namespaces.clone()),
        ] {
            for (title, exprs) in panels() {
                for expr in &exprs {
                    let promql = fill(expr, job, selected);
                    let result = prom.query(&promql).await;
                    assert!(!result.is_empty(), "panel {title:?}: no series for\n{promql}");
                    checked += 1;
                    if !expr.contains("$namespace") {
                        continue;
                    }
                    // Per-watch panels: every series names a watch's namespace, and the
                    // breakdowns by namespace show each selected one.
                    let seen: BTreeSet<String> = result
                        .iter()
                        .filter_map(|s| label(s, "namespace").map(str::to_string))
                        .collect();
                    assert!(
                        !seen.contains(OPERATOR_NS),
                        "panel {title:?} shows the operator's namespace:\n{promql}\n{result:?}"
                    );
                    if expr.contains("by (namespace") {
                        assert_eq!(seen, expect, "panel {title:?}:\n{promql}\n{result:?}");
                        assert!(
                            result.iter().all(|s| label(s, "name").is_some()),
                            "panel {title:?}: {result:?}"
                        );
                    }
                }
            }
        }
        // The stat panels count the right watches: "no-secret" in b is the one not ready.
        let not_ready = panels()
            .into_iter()
            .find(|(t, _)| t == "Watches not ready")
            .expect("Watches not ready panel")
            .1[0]
            .clone();
        for (selected, want) in [(all_namespaces.as_str(), 1.0), (a.name(), 0.0), (b.name(), 1.0)] {
            let r = prom.query(&fill(&not_ready, job, selected)).await;
            assert_eq!(r.len(), 1, "{r:?}");
            assert_eq!(number(&r[0]), want, "not ready in {selected} under {job}");
        }
    }
    // The duration panels show a number, not NaN, under the default scrape.
    for title in [
        "Change order duration (p50, p95)",
        "Time waiting for a person (p95)",
    ] {
        let (_, exprs) = panels().into_iter().find(|(t, _)| t == title).expect(title);
        for expr in exprs {
            let r = prom.query(&fill(&expr, &job_default, &all_namespaces)).await;
            assert!(r.iter().any(|s| number(s).is_finite()), "{title}: {r:?}");
        }
    }
    eprintln!("{checked} panel queries checked through Prometheus");
    drop(op);
}

/// The selectors of `expr` that name one of the operator's metrics: `name{...}`, or the bare
/// name (a selector without braces).
fn selectors(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for name in metric_names(expr) {
        let mut rest = expr;
        while let Some(i) = rest.find(&name) {
            let tail = &rest[i + name.len()..];
            // Longer names sharing this prefix are listed on their own.
            if tail.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                rest = tail;
                continue;
            }
            let selector = match tail.strip_prefix('{') {
                Some(t) => format!("{name}{{{}", &t[..t.find('}').map_or(t.len(), |e| e + 1)]),
                None => name.clone(),
            };
            out.push(selector);
            rest = tail;
        }
    }
    out
}

/// Range windows (`[...]`) in a PromQL text.
fn windows(expr: &str) -> Vec<&str> {
    expr.split('[')
        .skip(1)
        .filter_map(|s| s.split(']').next())
        .collect()
}

/// dashboard-linter's rules, as far as they apply, on the dashboard's JSON: an empty list when
/// all hold.
fn lint(d: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let vars = d["templating"]["list"].as_array().cloned().unwrap_or_default();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name);
    // template-datasource-rule
    match var("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        _ => problems.push("no Prometheus datasource variable named datasource".to_string()),
    }
    // template-job-rule
    match var("job") {
        Some(v)
            if v["type"] == "query"
                && v["datasource"]["uid"] == "${datasource}"
                && v["query"]["query"]
                    .as_str()
                    .is_some_and(|q| q.ends_with(", job)")) => {}
        _ => problems.push("no job variable listing job label values from ${datasource}".to_string()),
    }
    // template-on-time-change-reload-rule
    for v in vars.iter().filter(|v| v["type"] == "query") {
        if v["refresh"] != 2 {
            problems.push(format!(
                "variable {} does not refresh on time range change",
                v["name"]
            ));
        }
    }
    for p in d["panels"].as_array().cloned().unwrap_or_default() {
        let title = p["title"].as_str().unwrap_or_default().to_string();
        // panel-title-description-rule
        if title.is_empty() || p["description"].as_str().unwrap_or_default().is_empty() {
            problems.push(format!("panel {title:?} lacks a title or description"));
        }
        // panel-datasource-rule
        if p["datasource"]["uid"] != "${datasource}" {
            problems.push(format!("panel {title:?} does not use ${{datasource}}"));
        }
        // panel-units-rule
        if p["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
        {
            problems.push(format!("panel {title:?} has no unit"));
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        // panel-no-targets-rule
        if targets.is_empty() {
            problems.push(format!("panel {title:?} has no query"));
        }
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            if t["datasource"]["uid"] != "${datasource}" {
                problems.push(format!("a query of {title:?} does not use ${{datasource}}"));
            }
            // target-job-rule
            for s in selectors(expr) {
                if !s.contains(r#"job=~"$job""#) {
                    problems.push(format!("{title:?}: selector {s} has no job=~\"$job\""));
                }
            }
            // target-rate-interval-rule
            for w in windows(expr) {
                if w != "$__rate_interval" {
                    problems.push(format!("{title:?}: window [{w}] instead of [$__rate_interval]"));
                }
            }
            // target-counter-agg-rule: counters only under rate() or increase().
            for s in selectors(expr) {
                let name = s.split('{').next().unwrap_or_default();
                if name.ends_with("_total") || name.ends_with("_bucket") || name.ends_with("_count") {
                    let at = expr.find(&s).unwrap_or(0);
                    let before = expr[..at].trim_end();
                    if !(before.ends_with("rate(") || before.ends_with("increase(")) {
                        problems.push(format!("{title:?}: counter {name} outside rate()"));
                    }
                }
            }
        }
    }
    problems
}

#[test]
fn the_dashboard_follows_the_dashboard_linter_rules() {
    let problems = lint(&dashboard());
    assert!(problems.is_empty(), "{problems:#?}");
    // Every query, variables included, is covered by the Prometheus test above.
    let mut all = Vec::new();
    queries(&dashboard(), &mut all);
    assert!(all.len() >= 15, "{all:?}");
}

#[test]
fn the_linter_rules_catch_what_they_are_for() {
    let mut d = dashboard();
    d["templating"]["list"] = json!([]);
    let panel = &mut d["panels"][0];
    panel["fieldConfig"]["defaults"] = json!({});
    panel["datasource"] = json!({"type": "prometheus", "uid": "prom"});
    panel["targets"] = json!([{
        "refId": "A", "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "expr": "sum(rate(changeorder_polls_total[5m])) + changeorder_reconcile_total{job=~\"$job\"}",
    }]);
    let problems = lint(&d).join("\n");
    for expected in [
        "no Prometheus datasource variable",
        "no job variable",
        "has no unit",
        "does not use ${datasource}",
        "selector changeorder_polls_total has no job",
        "window [5m]",
        "counter changeorder_reconcile_total outside rate()",
    ] {
        assert!(problems.contains(expected), "{expected:?} not in\n{problems}");
    }
    assert!(
        !problems.contains("selector changeorder_reconcile_total"),
        "{problems}"
    );
}

#[test]
fn selectors_and_windows_are_found() {
    let q = r#"histogram_quantile(0.95, sum by (le) (rate(changeorder_reconcile_duration_seconds_bucket{job=~"$job"}[$__rate_interval]))) / changeorder_leader"#;
    assert_eq!(
        selectors(q),
        [
            "changeorder_leader",
            r#"changeorder_reconcile_duration_seconds_bucket{job=~"$job"}"#
        ]
    );
    assert_eq!(windows(q), ["$__rate_interval"]);
}
