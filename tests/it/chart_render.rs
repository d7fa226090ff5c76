//! The Helm chart as `helm lint` and `helm template` see it: no cluster needed. What a user gets
//! for each way of installing it (default, namespaced, HA, every feature on), and values the
//! schema must refuse. The same chart against a real API server is in tests/it/chart.rs.

use std::collections::BTreeSet;
use std::process::Command;

use serde_yaml::Value;

use crate::chart_support::*;

macro_rules! need_helm {
    () => {
        match helm() {
            Some(h) => h,
            None => return,
        }
    };
}

const PROFILES: [&str; 4] = ["default", "namespaced", "ha", "full"];

fn profile_args(name: &str) -> Vec<String> {
    if name == "default" {
        vec![]
    } else {
        vec!["-f".into(), profile(name)]
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn lint_is_clean_in_strict_mode_for_every_profile() {
    let helm = need_helm!();
    for p in PROFILES {
        let out = run(Command::new(&helm)
            .args(["lint", "--strict", "--namespace", NAMESPACE])
            .arg(chart_dir())
            .args(profile_args(p)));
        let t = text(&out);
        assert!(out.status.success(), "helm lint --strict ({p}) failed:\n{t}");
        assert!(t.contains("0 chart(s) failed"), "{p}: {t}");
        // Strict mode fails on warnings, but INFO lines (e.g. a missing icon) are worth reading.
        assert!(!t.contains("[WARNING]") && !t.contains("[ERROR]"), "{p}: {t}");
    }
}

/// Every `CHANGEORDER_*` variable that `run` reads (src/controller/args.rs), pulled from the
/// source so a new flag cannot go unnoticed by the chart.
fn run_flag_envs() -> BTreeSet<String> {
    let src = std::fs::read_to_string(root().join("src/controller/args.rs")).unwrap();
    let envs: BTreeSet<String> = src
        .split("env = \"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .filter(|e| e.starts_with("CHANGEORDER_"))
        .collect();
    assert!(
        envs.len() >= 15,
        "parsed too few env names from args.rs: {envs:?}"
    );
    envs
}

/// Flags the chart deliberately leaves to the binary's default, with the reason.
const LEFT_TO_DEFAULT: [(&str, &str); 1] = [(
    "CHANGEORDER_IDENTITY",
    "the pod name plus a random suffix is already unique per pod",
)];

/// Set only when they matter: when serving a list of namespaces. (Leader election is on by
/// default, so its settings are set by default too.)
/// Keyless: the STS endpoint falls back to the official variables, and no namespace may use the
/// operator's own identity unless listed.
const CONDITIONAL: [&str; 4] = [
    "CHANGEORDER_NAMESPACES",
    "CHANGEORDER_RECEIVER_LISTEN",
    "CHANGEORDER_STS_ENDPOINT",
    "CHANGEORDER_OPERATOR_IDENTITY_NAMESPACES",
];

#[test]
fn deployment_sets_every_run_flag_from_values() {
    let helm = need_helm!();
    let full = render(&helm, &["-f", &profile("full")]);
    let set: BTreeSet<String> = env(&full).into_iter().map(|(n, _)| n).collect();
    for flag in run_flag_envs() {
        if LEFT_TO_DEFAULT.iter().any(|(f, _)| *f == flag) {
            assert!(!set.contains(&flag), "{flag} should be left to the binary");
            continue;
        }
        assert!(
            set.contains(&flag),
            "the chart never sets {flag} (src/controller/args.rs)"
        );
    }
    // Default values leave out exactly the conditional ones.
    let default = render(&helm, &[]);
    let set: BTreeSet<String> = env(&default).into_iter().map(|(n, _)| n).collect();
    for flag in CONDITIONAL {
        assert!(!set.contains(flag), "{flag} set with default values");
    }
}

#[test]
fn default_values_match_the_binary_defaults_and_values_reach_the_env() {
    let helm = need_helm!();
    let objs = render(&helm, &[]);
    for (name, want) in [
        ("CHANGEORDER_DEFAULT_INTERVAL", "1m"),
        ("CHANGEORDER_DEFAULT_IN_FLIGHT_INTERVAL", "15s"),
        ("CHANGEORDER_DEFAULT_MAX_FINISHED", "50"),
        ("CHANGEORDER_CALLS_PER_MINUTE", "50"),
        ("CHANGEORDER_MAX_ERROR_BACKOFF", "5m"),
        ("CHANGEORDER_STATUS_HEARTBEAT", "10m"),
        ("CHANGEORDER_CONCURRENCY", "8"),
        ("CHANGEORDER_CLOUD_TIMEOUT", "20s"),
        ("CHANGEORDER_ADMIN_LISTEN", "0.0.0.0:8081"),
        ("CHANGEORDER_LEADER_ELECTION", "true"),
        ("CHANGEORDER_LEASE_DURATION", "15s"),
        (
            "CHANGEORDER_ALLOWED_ENDPOINTS",
            changeorder_cloud::policy::DEFAULT_ALLOWED_ENDPOINTS,
        ),
        ("CHANGEORDER_LOG_FORMAT", "json"),
        ("CHANGEORDER_LOG", "info"),
    ] {
        assert_eq!(env_value(&objs, name).as_deref(), Some(want), "{name}");
    }
    let objs = render(
        &helm,
        &[
            "--set",
            "operator.defaultInterval=2m30s,operator.concurrency=3,operator.callsPerMinute=20",
            "--set",
            "log.format=plain,log.level=debug,adminPort=9090",
        ],
    );
    for (name, want) in [
        ("CHANGEORDER_DEFAULT_INTERVAL", "2m30s"),
        ("CHANGEORDER_CONCURRENCY", "3"),
        ("CHANGEORDER_CALLS_PER_MINUTE", "20"),
        ("CHANGEORDER_LOG_FORMAT", "plain"),
        ("CHANGEORDER_LOG", "debug"),
        ("CHANGEORDER_ADMIN_LISTEN", "0.0.0.0:9090"),
    ] {
        assert_eq!(env_value(&objs, name).as_deref(), Some(want), "{name}");
    }
    assert_eq!(container(&objs)["ports"][0]["containerPort"].as_u64(), Some(9090));
}

#[test]
fn deployment_runs_the_operator_with_probes_and_downward_api() {
    let helm = need_helm!();
    let objs = render(&helm, &[]);
    let c = container(&objs);
    assert_eq!(c["args"][0].as_str(), Some("run"));
    assert_eq!(
        c["image"].as_str(),
        Some("changeorder-operator:0.1.0"),
        "tag defaults to appVersion"
    );
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(8081));
    for (probe, path) in [("livenessProbe", "/live"), ("readinessProbe", "/ready")] {
        assert_eq!(c[probe]["httpGet"]["path"].as_str(), Some(path));
        assert_eq!(c[probe]["httpGet"]["port"].as_str(), Some("admin"));
    }
    let env = c["env"].as_sequence().unwrap();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let e = env.iter().find(|e| e["name"].as_str() == Some(name)).expect(name);
        assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"].as_str(), Some(field));
    }
    assert!(c["resources"]["limits"]["memory"].is_string());
    let pod = &one(&objs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["serviceAccountName"].as_str(),
        Some("co-changeorder-operator")
    );
}

#[test]
fn pod_and_container_are_hardened() {
    let helm = need_helm!();
    let objs = render(&helm, &[]);
    let pod = &one(&objs, "Deployment")["spec"]["template"]["spec"];
    let c = container(&objs);
    for (what, sc) in [
        ("pod", &pod["securityContext"]),
        ("container", &c["securityContext"]),
    ] {
        assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true), "{what}");
        assert_eq!(sc["runAsUser"].as_u64(), Some(65532), "{what}");
        assert_eq!(
            sc["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault"),
            "{what}"
        );
    }
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
}

fn rules_of(role: &Value) -> Vec<(String, String, BTreeSet<String>)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_sequence().unwrap() {
        for group in rule["apiGroups"].as_sequence().unwrap() {
            for res in rule["resources"].as_sequence().unwrap() {
                let verbs = rule["verbs"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|v| str_of(v).to_string())
                    .collect();
                out.push((str_of(group).to_string(), str_of(res).to_string(), verbs));
            }
        }
    }
    out
}

fn verbs_for(role: &Value, group: &str, resource: &str) -> BTreeSet<String> {
    rules_of(role)
        .into_iter()
        .filter(|(g, r, _)| g == group && r == resource)
        .flat_map(|(_, _, v)| v)
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The operator's role grants exactly the listed verbs, no wildcard anywhere.
fn assert_served_rules(role: &Value) {
    let expect = [
        (
            "changeorder.io",
            "changeorderwatches",
            &["get", "list", "watch"][..],
        ),
        ("changeorder.io", "changeorderwatches/status", &["patch"]),
        (
            "changeorder.io",
            "changeorders",
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        ("changeorder.io", "changeorders/status", &["update", "patch"]),
        (
            "changeorder.io",
            "changeorderactions",
            &["get", "list", "watch", "patch", "delete"],
        ),
        (
            "changeorder.io",
            "changeorderactions/status",
            &["update", "patch"],
        ),
        ("", "secrets", &["get", "list", "watch"]),
        ("events.k8s.io", "events", &["create", "patch"]),
    ];
    let rules = rules_of(role);
    assert_eq!(rules.len(), expect.len(), "unexpected extra rules: {rules:?}");
    for (g, r, verbs) in expect {
        assert_eq!(verbs_for(role, g, r), set(verbs), "{g}/{r}");
    }
}

#[test]
fn cluster_wide_rbac_by_default() {
    let helm = need_helm!();
    let objs = render(&helm, &["--set", "leaderElection.enabled=false"]);
    assert!(
        of_kind(&objs, "Role").is_empty(),
        "no Role without leader election or namespaces"
    );
    let roles = of_kind(&objs, "ClusterRole");
    let main = roles
        .iter()
        .find(|r| r["metadata"]["name"].as_str() == Some("co-changeorder-operator"))
        .expect("operator ClusterRole");
    assert_served_rules(main);
    assert!(
        roles
            .iter()
            .all(|r| !str_of(&r["metadata"]["name"]).ends_with("-crds")),
        "no CRD access unless asked for"
    );
    for b in of_kind(&objs, "ClusterRoleBinding") {
        assert_eq!(b["subjects"][0]["name"].as_str(), Some("co-changeorder-operator"));
        assert_eq!(b["subjects"][0]["namespace"].as_str(), Some(NAMESPACE));
    }
    assert_eq!(
        env_value(&objs, "CHANGEORDER_NAMESPACES"),
        None,
        "unset serves all"
    );

    let objs = render(&helm, &["--set", "rbac.readCRDs=true"]);
    let crds = of_kind(&objs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"].as_str() == Some("co-changeorder-operator-crds"))
        .expect("CRD reader ClusterRole");
    assert_eq!(
        crds["rules"][0]["resourceNames"],
        serde_yaml::from_str::<Value>(
            "[changeorderwatches.changeorder.io, changeorders.changeorder.io, changeorderactions.changeorder.io, changeorderreceivers.changeorder.io, changeorderwatchsets.changeorder.io]"
        )
        .unwrap()
    );
    assert_eq!(
        verbs_for(crds, "apiextensions.k8s.io", "customresourcedefinitions"),
        set(&["get"])
    );
}

/// Actions off by default: no user role, no watch patch, the env says false. On: the operator
/// may request polls, and the user ClusterRole exists, aggregated by its own label only.
#[test]
fn the_receiver_is_off_by_default_and_gets_its_own_port_service_ingress_and_rules() {
    let helm = need_helm!();
    let objs = render(&helm, &[]);
    assert_eq!(env_value(&objs, "CHANGEORDER_RECEIVER_LISTEN"), None);
    let names: Vec<&str> = objs
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert!(!names.contains(&"co-changeorder-operator-receiver"), "{names:?}");
    assert!(of_kind(&objs, "Ingress").is_empty());
    let main = of_kind(&objs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"].as_str() == Some("co-changeorder-operator"))
        .expect("operator ClusterRole");
    assert!(verbs_for(main, "changeorder.io", "changeorderreceivers").is_empty());

    let objs = render(
        &helm,
        &[
            "--set",
            "receiver.enabled=true,receiver.port=9090,receiver.ingress.enabled=true,receiver.ingress.host=hooks.example.com",
        ],
    );
    assert_eq!(
        env_value(&objs, "CHANGEORDER_RECEIVER_LISTEN").as_deref(),
        Some("0.0.0.0:9090")
    );
    let ports = &container(&objs)["ports"];
    assert!(
        ports.as_sequence().is_some_and(|p| p
            .iter()
            .any(|p| p["name"].as_str() == Some("receiver") && p["containerPort"].as_u64() == Some(9090))),
        "{ports:?}"
    );
    let svc = of_kind(&objs, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"].as_str() == Some("co-changeorder-operator-receiver"))
        .expect("receiver Service");
    assert_eq!(svc["spec"]["ports"][0]["port"].as_u64(), Some(9090));
    assert_eq!(svc["spec"]["ports"][0]["targetPort"].as_str(), Some("receiver"));
    let ingress = one(&objs, "Ingress");
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"].as_str(), Some("hooks.example.com"));
    assert_eq!(rule["http"]["paths"][0]["path"].as_str(), Some("/hook/"));
    assert_eq!(
        rule["http"]["paths"].as_sequence().map(Vec::len),
        Some(1),
        "only the hooks are exposed"
    );
    let main = of_kind(&objs, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"].as_str() == Some("co-changeorder-operator"))
        .expect("operator ClusterRole");
    assert_eq!(
        verbs_for(main, "changeorder.io", "changeorderreceivers"),
        set(&["get", "list", "watch"])
    );
    assert_eq!(
        verbs_for(main, "changeorder.io", "changeorderreceivers/status"),
        set(&["patch"])
    );
    assert_eq!(
        verbs_for(main, "changeorder.io", "changeorderwatches"),
        set(&["get", "list", "watch", "patch"]),
        "a push annotates watches"
    );
}

#[test]
fn actions_are_off_by_default_and_their_user_role_is_never_in_edit() {
    let helm = need_helm!();
    let objs = render(&helm, &[]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_ENABLE_ACTIONS").as_deref(),
        Some("false")
    );
    assert_eq!(env_value(&objs, "CHANGEORDER_ACTION_TTL").as_deref(), Some("24h"));
    let names: Vec<String> = of_kind(&objs, "ClusterRole")
        .iter()
        .map(|r| str_of(&r["metadata"]["name"]).to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains("-actions")), "{names:?}");

    let objs = render(&helm, &["--set", "actions.enabled=true,actions.ttl=1h"]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_ENABLE_ACTIONS").as_deref(),
        Some("true")
    );
    assert_eq!(env_value(&objs, "CHANGEORDER_ACTION_TTL").as_deref(), Some("1h"));
    let roles = of_kind(&objs, "ClusterRole");
    let main = roles
        .iter()
        .find(|r| r["metadata"]["name"].as_str() == Some("co-changeorder-operator"))
        .expect("operator ClusterRole");
    assert_eq!(
        verbs_for(main, "changeorder.io", "changeorderwatches"),
        set(&["get", "list", "watch", "patch"])
    );
    let parent = roles
        .iter()
        .find(|r| r["metadata"]["name"].as_str() == Some("co-changeorder-operator-actions"))
        .expect("actions ClusterRole");
    assert_eq!(
        parent["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]["changeorder.io/aggregate-to-actions"]
            .as_str(),
        Some("true")
    );
    let child = roles
        .iter()
        .find(|r| r["metadata"]["name"].as_str() == Some("co-changeorder-operator-actions-requests"))
        .expect("actions rules");
    assert!(verbs_for(child, "changeorder.io", "changeorderactions").contains("create"));
    for r in [parent, child] {
        let labels = &r["metadata"]["labels"];
        for builtin in ["view", "edit", "admin"] {
            assert!(
                labels[format!("rbac.authorization.k8s.io/aggregate-to-{builtin}").as_str()].is_null(),
                "not folded into {builtin}"
            );
        }
    }
    // Nothing else grants creating requests.
    for r in &roles {
        if str_of(&r["metadata"]["name"]).ends_with("-actions-requests") {
            continue;
        }
        if r["rules"].as_sequence().is_none() {
            continue;
        }
        assert!(
            !verbs_for(r, "changeorder.io", "changeorderactions").contains("create"),
            "{}",
            str_of(&r["metadata"]["name"])
        );
    }
    let objs = render(&helm, &["--set", "actions.enabled=true,actions.userRole=false"]);
    assert!(
        of_kind(&objs, "ClusterRole")
            .iter()
            .all(|r| !str_of(&r["metadata"]["name"]).ends_with("-actions"))
    );
}

#[test]
fn namespaced_mode_grants_roles_only_in_the_served_namespaces() {
    let helm = need_helm!();
    let objs = render(&helm, &["-f", &profile("namespaced")]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_NAMESPACES").as_deref(),
        Some("team-a,team-b")
    );
    let cluster_roles: Vec<&str> = of_kind(&objs, "ClusterRole")
        .iter()
        .map(|r| str_of(&r["metadata"]["name"]))
        .collect();
    assert!(
        !cluster_roles.contains(&"co-changeorder-operator"),
        "no cluster-wide served role: {cluster_roles:?}"
    );
    // The served Roles; the leader-election Role (on by default) is checked elsewhere.
    let roles: Vec<&Value> = of_kind(&objs, "Role")
        .into_iter()
        .filter(|r| !str_of(&r["metadata"]["name"]).ends_with("-leader-election"))
        .collect();
    let namespaces: Vec<&str> = roles
        .iter()
        .map(|r| str_of(&r["metadata"]["namespace"]))
        .collect();
    assert_eq!(namespaces, ["team-a", "team-b"]);
    for r in roles {
        assert_served_rules(r);
    }
    let bindings: Vec<&Value> = of_kind(&objs, "RoleBinding")
        .into_iter()
        .filter(|b| !str_of(&b["metadata"]["name"]).ends_with("-leader-election"))
        .collect();
    assert_eq!(bindings.len(), 2);
    for b in bindings {
        assert_eq!(b["roleRef"]["kind"].as_str(), Some("Role"));
        assert_eq!(b["subjects"][0]["namespace"].as_str(), Some(NAMESPACE));
    }
    // Listing a namespace twice must not render the same Role twice.
    let objs = render(
        &helm,
        &[
            "--set",
            "watchNamespaces={team-a,team-a},leaderElection.enabled=false",
        ],
    );
    assert_eq!(of_kind(&objs, "Role").len(), 1);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_NAMESPACES").as_deref(),
        Some("team-a")
    );
}

#[test]
fn two_replicas_elect_a_leader_with_a_lease_role_and_a_pdb() {
    let helm = need_helm!();
    let objs = render(&helm, &["-f", &profile("ha")]);
    assert_eq!(one(&objs, "Deployment")["spec"]["replicas"].as_u64(), Some(2));
    assert_eq!(
        env_value(&objs, "CHANGEORDER_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(
        env_value(&objs, "CHANGEORDER_LEADER_ELECTION_NAMESPACE").as_deref(),
        Some(NAMESPACE)
    );
    assert_eq!(
        env_value(&objs, "CHANGEORDER_LEADER_ELECTION_NAME").as_deref(),
        Some("co-changeorder-operator")
    );
    let role = one(&objs, "Role");
    assert_eq!(role["metadata"]["namespace"].as_str(), Some(NAMESPACE));
    assert_eq!(
        verbs_for(role, "coordination.k8s.io", "leases"),
        set(&["get", "create", "update"])
    );
    let pdb = one(&objs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"].as_u64(), Some(1));
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        one(&objs, "Deployment")["spec"]["selector"]["matchLabels"]
    );

    // One replica: no PDB (it would block every drain).
    let objs = render(&helm, &[]);
    assert!(of_kind(&objs, "PodDisruptionBudget").is_empty());
    // One replica with election asked for explicitly.
    let objs = render(&helm, &["--set", "leaderElection.enabled=true"]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(of_kind(&objs, "Role").len(), 1);
}

#[test]
fn metrics_service_exposes_the_admin_port_as_metrics() {
    let helm = need_helm!();
    let objs = render(&helm, &[]);
    let svc = one(&objs, "Service");
    assert_eq!(svc["spec"]["ports"][0]["name"].as_str(), Some("metrics"));
    assert_eq!(svc["spec"]["ports"][0]["port"].as_u64(), Some(8081));
    assert_eq!(svc["spec"]["ports"][0]["targetPort"].as_str(), Some("admin"));
    assert_eq!(
        &svc["spec"]["selector"],
        &one(&objs, "Deployment")["spec"]["selector"]["matchLabels"]
    );
    assert!(of_kind(&objs, "ServiceMonitor").is_empty());
    assert!(of_kind(&objs, "PrometheusRule").is_empty());
    assert!(of_kind(&objs, "NetworkPolicy").is_empty());
}

/// The chart's CRDs are crds/ plus Helm's keep annotation and labels, nothing else.
#[test]
fn rendered_crds_are_the_committed_crds_kept_on_uninstall() {
    let helm = need_helm!();
    let objs = render(&helm, &[]);
    let source = objects(&std::fs::read_to_string(root().join("crds/changeorder.io_crds.yaml")).unwrap());
    let mut rendered: Vec<Value> = of_kind(&objs, "CustomResourceDefinition")
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(rendered.len(), source.len());
    for crd in &mut rendered {
        let meta = crd["metadata"].as_mapping_mut().unwrap();
        let annotations = meta.remove("annotations").expect("annotations");
        assert_eq!(annotations["helm.sh/resource-policy"].as_str(), Some("keep"));
        let labels = meta.remove("labels").expect("labels");
        assert_eq!(labels["app.kubernetes.io/managed-by"].as_str(), Some("Helm"));
    }
    for src in &source {
        let name = &src["metadata"]["name"];
        let r = rendered
            .iter()
            .find(|r| &r["metadata"]["name"] == name)
            .expect("rendered CRD");
        assert_eq!(r, src, "{name:?}");
    }

    let objs = render(&helm, &["--set", "crds.install=false"]);
    assert!(of_kind(&objs, "CustomResourceDefinition").is_empty());
}

#[test]
fn all_features_render_monitoring_network_policy_and_pod_settings() {
    let helm = need_helm!();
    let objs = render(&helm, &["-f", &profile("full")]);

    let sm = one(&objs, "ServiceMonitor");
    assert_eq!(sm["spec"]["endpoints"][0]["port"].as_str(), Some("metrics"));
    assert_eq!(sm["spec"]["endpoints"][0]["path"].as_str(), Some("/metrics"));
    assert_eq!(
        sm["metadata"]["labels"]["release"].as_str(),
        Some("kube-prometheus-stack")
    );
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        of_kind(&objs, "Service")
            .into_iter()
            .find(|s| s["metadata"]["name"].as_str() == Some("co-changeorder-operator-metrics"))
            .expect("metrics Service")["metadata"]["labels"]
            .as_mapping()
            .map(|m| {
                let mut sel = serde_yaml::Mapping::new();
                for k in ["app.kubernetes.io/name", "app.kubernetes.io/instance"] {
                    sel.insert(k.into(), m[k].clone());
                }
                Value::Mapping(sel)
            })
            .unwrap(),
        "the ServiceMonitor selects the metrics Service"
    );

    let rule = one(&objs, "PrometheusRule");
    let rules = rule["spec"]["groups"][0]["rules"].as_sequence().unwrap();
    let alert = |name: &str| {
        rules
            .iter()
            .find(|r| r["alert"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("alert {name}"))
    };
    let sel = format!("job=\"co-changeorder-operator-metrics\",namespace=\"{NAMESPACE}\"");
    let polls = alert("ChangeOrderPollsFailing");
    assert_eq!(
        polls["expr"].as_str().unwrap(),
        format!(
            "max by (namespace, exported_namespace, name) (changeorder_watch_ready_reason{{reason=~\"Throttled|ProviderError|OrderWriteFailed\",{sel}}}) == 1"
        )
    );
    assert_eq!(polls["for"].as_str(), Some("15m"));
    assert_eq!(polls["labels"]["team"].as_str(), Some("platform"));
    // Prometheus' own template syntax must reach Prometheus, not be eaten by Helm.
    assert!(str_of(&polls["annotations"]["description"]).contains("{{ $labels.name }}"));
    let creds = alert("ChangeOrderInvalidCredentials");
    assert!(str_of(&creds["expr"]).contains("changeorder_watch_ready_reason{reason=\"InvalidCredentials\","));
    let waiting = alert("ChangeOrderAwaitingInput");
    assert_eq!(
        waiting["expr"].as_str().unwrap(),
        format!(
            "time() - min by (namespace, exported_namespace, name) (changeorder_watch_awaiting_input_since_seconds{{{sel}}}) > 7200"
        )
    );
    // promtool's unit tests of each alert: tests/it/chart_alerts.rs.
    assert_eq!(
        alert("ChangeOrderOperatorDown")["expr"].as_str().unwrap(),
        format!("absent(up{{{sel}}} == 1)")
    );
    assert_eq!(
        alert("ChangeOrderNoLeader")["expr"].as_str().unwrap(),
        format!("sum(changeorder_leader{{{sel}}}) < 1")
    );
    assert_eq!(alert("ChangeOrderManyInFlight")["for"].as_str(), Some("30m"));
    for r in rules {
        let expr = str_of(&r["expr"]);
        assert_eq!(expr.matches('(').count(), expr.matches(')').count(), "{expr}");
        assert_eq!(expr.matches('{').count(), expr.matches('}').count(), "{expr}");
    }

    let np = one(&objs, "NetworkPolicy");
    assert_eq!(
        np["spec"]["policyTypes"],
        serde_yaml::from_str::<Value>("[Ingress, Egress]").unwrap()
    );
    assert_eq!(
        np["spec"]["ingress"][0]["ports"][0]["port"].as_str(),
        Some("admin")
    );
    assert_eq!(
        np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            .as_str(),
        Some("monitoring")
    );
    let egress_ports: Vec<u64> = np["spec"]["egress"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|e| e["ports"].as_sequence().unwrap().iter())
        .filter_map(|p| p["port"].as_u64())
        .collect();
    for port in [53, 443, 6443, 80] {
        assert!(egress_ports.contains(&port), "egress to {port}: {egress_ports:?}");
    }
    assert_eq!(
        np["spec"]["egress"][1]["to"][0]["ipBlock"]["cidr"].as_str(),
        Some("10.0.0.1/32")
    );

    let pod = &one(&objs, "Deployment")["spec"]["template"];
    assert_eq!(
        pod["metadata"]["annotations"]["example.com/team"].as_str(),
        Some("platform")
    );
    assert_eq!(
        pod["metadata"]["labels"]["example.com/tier"].as_str(),
        Some("ops")
    );
    let spec = &pod["spec"];
    assert_eq!(
        spec["priorityClassName"].as_str(),
        Some("system-cluster-critical")
    );
    assert_eq!(spec["imagePullSecrets"][0]["name"].as_str(), Some("regcred"));
    assert_eq!(spec["nodeSelector"]["kubernetes.io/os"].as_str(), Some("linux"));
    assert_eq!(spec["tolerations"][0]["key"].as_str(), Some("dedicated"));
    assert!(spec["affinity"]["podAntiAffinity"].is_mapping());
    assert!(spec["topologySpreadConstraints"][0].is_mapping());
    let c = container(&objs);
    assert!(
        str_of(&c["image"])
            .ends_with("@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    );
    assert_eq!(
        env_value(&objs, "HTTPS_PROXY").as_deref(),
        Some("http://proxy.example.com:3128")
    );
    assert_eq!(
        env_value(&objs, "CHANGEORDER_LEADER_ELECTION_NAME").as_deref(),
        Some("changeorder-leader")
    );
    let sa = one(&objs, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"]["pod-identity.alibabacloud.com/role-name"].as_str(),
        Some("changeorder-reader")
    );
}

/// `helm template | kubectl apply -f -` must put nothing in kubectl's current namespace by
/// accident: every namespaced object names its namespace.
#[test]
fn every_namespaced_object_names_its_namespace() {
    let helm = need_helm!();
    let cluster_scoped = ["CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"];
    for p in PROFILES {
        for o in render(&helm, &strs(&profile_args(p))) {
            let kind = str_of(&o["kind"]);
            let ns = o["metadata"]["namespace"].as_str();
            if cluster_scoped.contains(&kind) {
                assert_eq!(ns, None, "{p}: {kind} is cluster-scoped");
            } else {
                assert!(
                    ns.is_some_and(|n| !n.is_empty()),
                    "{p}: {kind} {:?} has no namespace",
                    o["metadata"]["name"]
                );
            }
        }
    }
}

/// values.schema.json stops mistakes at install time, naming the offending key.
#[test]
fn schema_rejects_invalid_values() {
    let helm = need_helm!();
    for (set, mentions) in [
        ("operator.defaultInterval=5 minutes", "defaultInterval"),
        ("log.format=xml", "format"),
        ("replicaCount=-1", "replicaCount"),
        ("adminPort=70000", "adminPort"),
        ("watchNamespaces={Team_A}", "watchNamespaces"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("operator.concurency=4", "concurency"),
        ("unknownTopLevel=1", "unknownTopLevel"),
        // Zero or tiny durations (issue 8): a zero interval would spin, a tiny Lease leaves no
        // margin between the leader stopping and a standby taking over.
        ("operator.defaultInterval=0s", "defaultInterval"),
        ("operator.defaultInterval=500ms", "defaultInterval"),
        ("operator.defaultInFlightInterval=0m", "defaultInFlightInterval"),
        ("operator.maxErrorBackoff=0s", "maxErrorBackoff"),
        ("operator.statusHeartbeat=0s", "statusHeartbeat"),
        ("operator.cloudTimeout=0s", "cloudTimeout"),
        ("leaderElection.leaseDuration=1s", "leaseDuration"),
        ("leaderElection.leaseDuration=2s", "leaseDuration"),
        ("allowedEndpoints={ftp://x}", "allowedEndpoints"),
        ("allowedEndpoints={https://a@b.aliyuncs.com}", "allowedEndpoints"),
        ("allowedEndpoints={https://x.aliyuncs.com/*}", "allowedEndpoints"),
    ] {
        let err = template(&helm, &["--set", set])
            .err()
            .unwrap_or_else(|| panic!("--set {set} was accepted"));
        assert!(err.contains("schema"), "--set {set}: {err}");
        assert!(
            err.contains(mentions),
            "--set {set}: error does not name {mentions}: {err}"
        );
    }
    // A parent chart's globals are allowed.
    template(&helm, &["--set", "global.foo=bar"]).expect("global values are accepted");
    for good in [
        "operator.defaultInterval=1s",
        "leaderElection.leaseDuration=3s",
        "leaderElection.leaseDuration=1m",
        "operator.cloudTimeout=1h30m",
        "allowedEndpoints={http://127.0.0.1:*,https://*.aliyuncs.com:443}",
    ] {
        template(&helm, &["--set", good]).unwrap_or_else(|e| panic!("--set {good}: {e}"));
    }
}

#[test]
fn service_monitor_without_the_service_is_refused_with_a_reason() {
    let helm = need_helm!();
    let err = template(
        &helm,
        &[
            "--set",
            "metrics.service.enabled=false,metrics.serviceMonitor.enabled=true",
        ],
    )
    .expect_err("a ServiceMonitor needs the Service");
    assert!(err.contains("metrics.service.enabled"), "{err}");
}

#[test]
fn existing_service_account_must_be_named() {
    let helm = need_helm!();
    let err = template(&helm, &["--set", "serviceAccount.create=false"]).expect_err("needs a name");
    assert!(err.contains("serviceAccount.name is required"), "{err}");
    let objs = render(
        &helm,
        &[
            "--set",
            "serviceAccount.create=false,serviceAccount.name=shared-sa",
        ],
    );
    assert!(of_kind(&objs, "ServiceAccount").is_empty());
    let pod = &one(&objs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"].as_str(), Some("shared-sa"));
    for b in of_kind(&objs, "ClusterRoleBinding") {
        assert_eq!(b["subjects"][0]["name"].as_str(), Some("shared-sa"));
    }
}

/// The README's values table is the one [`values_table`] generates from values.yaml's comments,
/// so every value is documented once, next to its default, and the table cannot drift.
/// Regenerate it with `UPDATE_CHART_README=1 cargo test --test it chart_render::readme`.
#[test]
fn readme_documents_every_value() {
    let values = std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap();
    let table =
        values_table(&values).unwrap_or_else(|keys| panic!("values.yaml has no `# --` comment for {keys:?}"));
    let path = chart_dir().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (begin, end) = (README_TABLE_BEGIN, README_TABLE_END);
    let start = readme.find(begin).expect("README has the table's begin marker") + begin.len();
    let stop = readme.find(end).expect("README has the table's end marker");
    let want = format!("\n{table}");
    if std::env::var_os("UPDATE_CHART_README").is_some() {
        let updated = format!("{}{want}{}", &readme[..start], &readme[stop..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        readme[start..stop] == want,
        "the README's values table is not the one values.yaml gives; regenerate it with \
         `UPDATE_CHART_README=1 cargo test --test it chart_render::readme`"
    );
}

/// values.schema.json knows every value of values.yaml, with the type of its default, and
/// values.yaml sets every value the schema describes (so the README table, generated from
/// values.yaml, lists them all). Maps the schema leaves free-form (`type: object` without
/// `properties`, like `resources`) are checked as a whole.
#[test]
fn schema_covers_every_value() {
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap()).unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap())
            .unwrap();
    fn types(s: &serde_json::Value) -> Vec<String> {
        match &s["type"] {
            serde_json::Value::String(t) => vec![t.clone()],
            serde_json::Value::Array(ts) => ts.iter().filter_map(|t| t.as_str().map(String::from)).collect(),
            _ => vec![],
        }
    }
    fn walk(path: &str, v: &Value, s: &serde_json::Value, errs: &mut Vec<String>) {
        let want = match v {
            Value::Bool(_) => &["boolean"][..],
            Value::Number(n) if n.is_f64() => &["number"][..],
            Value::Number(_) => &["integer", "number"][..],
            Value::String(_) => &["string"][..],
            Value::Sequence(_) => &["array"][..],
            Value::Mapping(_) => &["object"][..],
            _ => &[][..],
        };
        let have = types(s);
        if !have.iter().any(|t| want.contains(&t.as_str())) {
            errs.push(format!("{path}: schema type {have:?}, default is {want:?}"));
            return;
        }
        let (Value::Mapping(m), Some(props)) = (v, s["properties"].as_object()) else {
            return;
        };
        for (k, v) in m {
            let k = str_of(k);
            let p = if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            };
            match props.get(k) {
                Some(ks) => walk(&p, v, ks, errs),
                None => errs.push(format!("{p}: not in the schema")),
            }
        }
        for k in props.keys() {
            // A parent chart's `global` is allowed without a default.
            let global = path.is_empty() && k == "global";
            if !global && !m.contains_key(k.as_str()) {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                errs.push(format!("{p}: in the schema, not in values.yaml"));
            }
        }
    }
    let mut errs = Vec::new();
    walk("", &values, &schema, &mut errs);
    assert!(
        errs.is_empty(),
        "values.yaml and values.schema.json differ:\n{}",
        errs.join("\n")
    );
}

const README_TABLE_BEGIN: &str = "<!-- Generated from values.yaml by `UPDATE_CHART_README=1 cargo test --test it chart_render::readme`; do not edit. -->";
const README_TABLE_END: &str = "<!-- end of generated values table -->";

#[test]
fn notes_tell_what_was_installed() {
    let helm = need_helm!();
    for (args, want) in [
        (vec![], "in every namespace"),
        (strs(&profile_args("namespaced")), "team-a,team-b"),
        (strs(&profile_args("ha")), "Leader election is on"),
    ] {
        // `helm template` does not render NOTES; `install --dry-run` does, without a cluster.
        let out = run(Command::new(&helm)
            .args(["install", RELEASE])
            .arg(chart_dir())
            .args(["--namespace", NAMESPACE, "--dry-run=client"])
            .args(&args));
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        let notes = t
            .split("NOTES:")
            .nth(1)
            .unwrap_or_else(|| panic!("no NOTES in:\n{t}"));
        assert!(notes.contains(want), "NOTES lack {want:?}:\n{notes}");
    }
}

#[test]
fn one_replica_never_runs_two_operators_during_an_upgrade() {
    let helm = need_helm!();
    // Default: leader election, so the new pod waits for the old one's Lease; a rolling update
    // is then safe and keeps a ready pod.
    let objs = render(&helm, &[]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(
        one(&objs, "Deployment")["spec"]["strategy"]["type"].as_str(),
        Some("RollingUpdate"),
        "rolling update with leader election"
    );
    assert_eq!(of_kind(&objs, "Role").len(), 1, "the Lease role");
    // Without election, the old pod must be gone before the new one starts.
    let objs = render(&helm, &["--set", "leaderElection.enabled=false"]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_LEADER_ELECTION").as_deref(),
        Some("false")
    );
    assert_eq!(
        one(&objs, "Deployment")["spec"]["strategy"]["type"].as_str(),
        Some("Recreate")
    );
    // More replicas always elect.
    let objs = render(&helm, &["--set", "leaderElection.enabled=false,replicaCount=2"]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_LEADER_ELECTION").as_deref(),
        Some("true")
    );
    assert_eq!(
        one(&objs, "Deployment")["spec"]["strategy"]["type"].as_str(),
        Some("RollingUpdate")
    );
}

/// The chart's default policy is the operator's: the cloud's API hosts, not `*.aliyuncs.com`.
#[test]
fn the_default_policy_is_the_operators() {
    let helm = need_helm!();
    let objs = render(&helm, &[]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_ALLOWED_ENDPOINTS").as_deref(),
        Some(changeorder_cloud::policy::DEFAULT_ALLOWED_ENDPOINTS)
    );
}

#[test]
fn allowed_endpoints_reach_the_env() {
    let helm = need_helm!();
    let objs = render(
        &helm,
        &[
            "--set",
            "allowedEndpoints={https://*.aliyuncs.com,http://127.0.0.1:*}",
        ],
    );
    assert_eq!(
        env_value(&objs, "CHANGEORDER_ALLOWED_ENDPOINTS").as_deref(),
        Some("https://*.aliyuncs.com,http://127.0.0.1:*")
    );
}

#[test]
fn grafana_dashboard_is_opt_in_and_ships_the_committed_json_for_the_sidecar() {
    let helm = need_helm!();
    let dashboards = |objs: &[Value]| {
        of_kind(objs, "ConfigMap")
            .into_iter()
            .filter(|c| c["metadata"]["labels"]["grafana_dashboard"].as_str() == Some("1"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(dashboards(&render(&helm, &[])).is_empty(), "off by default");

    let objs = render(
        &helm,
        &[
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "grafanaDashboard.namespace=monitoring",
            "--set",
            "grafanaDashboard.annotations.grafana_folder=Operators",
        ],
    );
    let found = dashboards(&objs);
    assert_eq!(found.len(), 1, "one dashboard ConfigMap");
    let cm = &found[0];
    assert_eq!(cm["metadata"]["namespace"].as_str(), Some("monitoring"));
    assert_eq!(
        cm["metadata"]["annotations"]["grafana_folder"].as_str(),
        Some("Operators")
    );
    let shipped = str_of(&cm["data"]["changeorder-operator.json"]);
    let committed =
        std::fs::read_to_string(chart_dir().join("dashboards/changeorder-operator.json")).unwrap();
    // Byte for byte (bar the trailing newline `|-` drops): the file the metrics test checks is the
    // one users get.
    assert_eq!(shipped, committed.trim_end());
    let json: serde_json::Value = serde_json::from_str(shipped).expect("dashboard is JSON");
    assert_eq!(json["uid"].as_str(), Some("changeorder-operator"));
}

/// Minting ServiceAccount tokens is granted only with keyless.enabled, as its own role: a
/// ClusterRole when serving every namespace, else a Role in each served namespace only.
#[test]
fn keyless_token_minting_is_opt_in_and_scoped_to_served_namespaces() {
    let helm = need_helm!();
    let mints = |objs: &[Value]| -> Vec<(String, String)> {
        objs.iter()
            .filter(|o| matches!(o["kind"].as_str(), Some("Role" | "ClusterRole")))
            .filter(|r| verbs_for(r, "", "serviceaccounts/token").contains("create"))
            .map(|r| {
                (
                    str_of(&r["kind"]).to_string(),
                    r["metadata"]["namespace"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let objs = render(&helm, &[]);
    assert!(mints(&objs).is_empty(), "no token minting by default");
    assert_eq!(env_value(&objs, "CHANGEORDER_OPERATOR_IDENTITY_NAMESPACES"), None);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_ECS_METADATA_ENDPOINT").as_deref(),
        Some("http://100.100.100.200")
    );

    let objs = render(&helm, &["--set", "keyless.enabled=true"]);
    assert_eq!(mints(&objs), [("ClusterRole".to_string(), String::new())]);
    let role = of_kind(&objs, "ClusterRole")
        .into_iter()
        .find(|r| str_of(&r["metadata"]["name"]).ends_with("-keyless"))
        .expect("keyless ClusterRole");
    assert_eq!(verbs_for(role, "", "serviceaccounts"), set(&["get"]));
    assert_eq!(rules_of(role).len(), 2, "nothing else in the keyless role");

    let objs = render(
        &helm,
        &[
            "-f",
            &profile("namespaced"),
            "--set",
            "keyless.enabled=true,keyless.operatorIdentityNamespaces={team-b}",
        ],
    );
    assert_eq!(
        mints(&objs),
        [
            ("Role".to_string(), "team-a".to_string()),
            ("Role".to_string(), "team-b".to_string())
        ]
    );
    let bindings: Vec<&Value> = of_kind(&objs, "RoleBinding")
        .into_iter()
        .filter(|b| str_of(&b["metadata"]["name"]).ends_with("-keyless"))
        .collect();
    assert_eq!(bindings.len(), 2);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_OPERATOR_IDENTITY_NAMESPACES").as_deref(),
        Some("team-b")
    );
}

/// Labels the chart sets itself, given again in values: each key must render once. A YAML
/// mapping with a key twice is refused by strict parsers (serde_yaml here, kubectl's strict
/// decoding) and silently resolved by lenient ones (issue 22: `grafana_dashboard` in
/// grafanaDashboard.labels rendered the label twice).
#[test]
fn labels_given_in_values_render_each_key_once() {
    let helm = need_helm!();
    // The case of the issue on its own: the label the Grafana sidecar looks for, set explicitly.
    let manifest = template(
        &helm,
        &[
            "--set",
            "grafanaDashboard.enabled=true",
            "--set-string",
            "grafanaDashboard.labels.grafana_dashboard=1",
        ],
    )
    .unwrap();
    strict_objects(&manifest).unwrap_or_else(|e| panic!("duplicate key: {e}"));
    let manifest = template(
        &helm,
        &[
            "-f",
            &profile("full"),
            "--set-string",
            "grafanaDashboard.labels.grafana_dashboard=1",
            "--set-string",
            "metrics.service.labels.app\\.kubernetes\\.io/part-of=mine",
            "--set-string",
            "serviceAccount.labels.helm\\.sh/chart=mine",
            "--set-string",
            "podLabels.app\\.kubernetes\\.io/version=mine",
            "--set-string",
            "metrics.serviceMonitor.labels.app\\.kubernetes\\.io/managed-by=mine",
        ],
    )
    .unwrap();
    let objs = strict_objects(&manifest).unwrap_or_else(|e| panic!("duplicate key: {e}"));
    let cm = of_kind(&objs, "ConfigMap")
        .into_iter()
        .find(|c| str_of(&c["metadata"]["name"]).ends_with("-dashboard"))
        .expect("dashboard ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"].as_str(), Some("1"));
    // Values win over the chart's own labels, except the selector labels.
    let svc = metrics_service(&objs);
    assert_eq!(
        svc["metadata"]["labels"]["app.kubernetes.io/part-of"].as_str(),
        Some("mine")
    );
    let pod_labels = &one(&objs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["app.kubernetes.io/version"].as_str(), Some("mine"));
    // The selector labels cannot be overridden: the pods would no longer match the Deployment.
    let manifest = template(
        &helm,
        &["--set-string", "podLabels.app\\.kubernetes\\.io/instance=other"],
    )
    .unwrap();
    let objs = strict_objects(&manifest).unwrap_or_else(|e| panic!("duplicate key: {e}"));
    let pod_labels = &one(&objs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["app.kubernetes.io/instance"].as_str(), Some(RELEASE));
}

/// Values that render every object the chart has.
fn every_object_args() -> Vec<String> {
    [
        "-f",
        &profile("full"),
        "--set",
        "keyless.enabled=true,rbac.readCRDs=true,actions.enabled=true,actions.userRole=true",
        "--set",
        "grafanaDashboard.enabled=true,metrics.prometheusRule.enabled=true",
        "--set",
        "test.probe.watch.provider=sae,test.probe.watch.credentialsSecretRef.name=s",
    ]
    .map(String::from)
    .to_vec()
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Every object's name fits: at most 63 characters (Helm's `fullname` convention; a Service
/// name must be a DNS label), valid for its kind, and unique per kind and namespace.
fn assert_names_fit(objs: &[Value], what: &str) {
    let mut seen = BTreeSet::new();
    for o in objs {
        let kind = str_of(&o["kind"]);
        let name = str_of(&o["metadata"]["name"]);
        let ns = o["metadata"]["namespace"].as_str().unwrap_or("");
        assert!(name.len() <= 63, "{what}: {kind} {name} is {} long", name.len());
        // Services and Deployments (whose pods' hostnames derive from it) are DNS labels; the
        // rest are DNS subdomains (CRDs are `<plural>.<group>`).
        let ok = match kind {
            "Service" | "Deployment" => is_dns_label(name),
            _ => is_dns_subdomain(name),
        };
        assert!(ok, "{what}: {kind} name {name:?} is not valid for its kind");
        assert!(
            seen.insert((kind.to_string(), ns.to_string(), name.to_string())),
            "{what}: two {kind} objects named {ns}/{name}"
        );
    }
}

/// A 35-character release name made a 64-character Service name (issue 22). Every length Helm
/// accepts (it refuses release names over 53), with a hyphen at each possible cut.
#[test]
fn every_release_name_length_gives_valid_unique_names() {
    let helm = need_helm!();
    let args = every_object_args();
    let pattern = "ab-cd-efg-h-ijklm-";
    for len in 1..=60 {
        let mut release: String = pattern.chars().cycle().take(len).collect();
        if release.ends_with('-') {
            release.replace_range(len - 1.., "z");
        }
        let out = template_release(&helm, &release, &strs(&args));
        if len > 53 {
            let err = out.expect_err("helm refuses release names over 53 characters");
            assert!(err.contains("53"), "{release}: {err}");
            continue;
        }
        let objs = objects(&out.unwrap_or_else(|e| panic!("{release}: {e}")));
        assert_names_fit(&objs, &release);
        // The suffix that tells the objects apart survives the cut.
        let svc = str_of(&metrics_service(&objs)["metadata"]["name"]);
        assert!(svc.ends_with("-metrics"), "{release}: Service {svc}");
        // The alerts select the Service's series by its (cut) name.
        let rule = one(&objs, "PrometheusRule");
        let exprs = serde_yaml::to_string(&rule["spec"]).unwrap();
        assert!(exprs.contains(&format!("job=\"{svc}\"")), "{release}: {exprs}");
    }
    // fullnameOverride past the limit is cut as well.
    for len in [62, 63, 64, 70] {
        let over: String = pattern.chars().cycle().take(len).collect();
        let mut a = args.clone();
        a.extend(["--set".into(), format!("fullnameOverride={over}")]);
        assert_names_fit(&render(&helm, &strs(&a)), &over);
    }
}

fn pod_spec(objs: &[Value]) -> &Value {
    &one(objs, "Deployment")["spec"]["template"]["spec"]
}

/// kube-score: replicas on one node all go with it. With more than one replica they are spread
/// over nodes by default, softly, unless the values spread them themselves.
#[test]
fn replicas_are_spread_over_nodes_by_default() {
    let helm = need_helm!();
    let one_replica = render(&helm, &[]);
    assert!(pod_spec(&one_replica)["topologySpreadConstraints"].is_null());
    assert!(pod_spec(&one_replica)["affinity"].is_null());

    let two = render(&helm, &["--set", "replicaCount=2"]);
    let spec = pod_spec(&two);
    let tsc = spec["topologySpreadConstraints"]
        .as_sequence()
        .expect("default spread");
    assert_eq!(tsc.len(), 1);
    assert_eq!(tsc[0]["topologyKey"].as_str(), Some("kubernetes.io/hostname"));
    assert_eq!(tsc[0]["whenUnsatisfiable"].as_str(), Some("ScheduleAnyway"));
    assert_eq!(tsc[0]["maxSkew"].as_u64(), Some(1));
    // It selects exactly the operator's pods.
    let selector = &one(&two, "Deployment")["spec"]["selector"]["matchLabels"];
    assert_eq!(&tsc[0]["labelSelector"]["matchLabels"], selector);

    // The user's own constraints replace it...
    let own = render(
        &helm,
        &[
            "--set",
            "replicaCount=3,topologySpreadConstraints[0].maxSkew=2",
            "--set",
            "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
            "--set",
            "topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
        ],
    );
    let tsc = pod_spec(&own)["topologySpreadConstraints"].as_sequence().unwrap();
    assert_eq!(tsc.len(), 1);
    assert_eq!(
        tsc[0]["topologyKey"].as_str(),
        Some("topology.kubernetes.io/zone")
    );
    // ...as does a podAntiAffinity of theirs,
    let anti = "affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1";
    let anti_objs = render(&helm, &["--set", "replicaCount=2", "--set", anti]);
    assert!(pod_spec(&anti_objs)["topologySpreadConstraints"].is_null());
    assert!(pod_spec(&anti_objs)["affinity"]["podAntiAffinity"].is_mapping());
    // ...but not an affinity for nodes, which says nothing about spreading.
    let node = "affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight=1";
    let node_objs = render(&helm, &["--set", "replicaCount=2", "--set", node]);
    assert!(pod_spec(&node_objs)["topologySpreadConstraints"][0].is_mapping());
    assert!(pod_spec(&node_objs)["affinity"]["nodeAffinity"].is_mapping());
}

/// commonLabels reach every object the chart renders, hooks and CRDs included.
#[test]
fn common_labels_are_on_every_object() {
    let helm = need_helm!();
    let mut args = every_object_args();
    args.extend(["--set-string", "commonLabels.team=payments,commonLabels.tier=1"].map(String::from));
    let objs = render(&helm, &strs(&args));
    assert!(objs.len() > 20, "rendered too few objects: {}", objs.len());
    for o in &objs {
        let labels = &o["metadata"]["labels"];
        let what = format!("{} {}", str_of(&o["kind"]), str_of(&o["metadata"]["name"]));
        assert_eq!(labels["team"].as_str(), Some("payments"), "{what}");
        assert_eq!(labels["tier"].as_str(), Some("1"), "{what}");
    }
    let pod_labels = &one(&objs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    assert_eq!(pod_labels["team"].as_str(), Some("payments"));
}

/// namespaceOverride moves every namespaced object, and the RBAC bindings, the Lease and the
/// ServiceMonitor follow it, so the operator still has its rights there.
#[test]
fn namespace_override_moves_every_namespaced_object() {
    let helm = need_helm!();
    for served in ["[]", r#"["team-a","team-b"]"#] {
        let mut args = every_object_args();
        args.extend(["--set".into(), "namespaceOverride=ops".into()]);
        args.extend(["--set-json".into(), format!("watchNamespaces={served}")]);
        // The full profile pins the monitoring objects' own namespaces: let them follow.
        args.extend(
            [
                "--set",
                "metrics.serviceMonitor.namespace=,metrics.prometheusRule.namespace=,grafanaDashboard.namespace=",
            ]
            .map(String::from),
        );
        let objs = render(&helm, &strs(&args));
        for o in &objs {
            let kind = str_of(&o["kind"]);
            let ns = o["metadata"]["namespace"].as_str();
            let what = format!("{served}: {kind} {}", str_of(&o["metadata"]["name"]));
            match kind {
                "CustomResourceDefinition" | "ClusterRole" | "ClusterRoleBinding" => {
                    assert_eq!(ns, None, "{what}")
                }
                // The served namespaces' Roles stay where they grant.
                "Role" | "RoleBinding" if !str_of(&o["metadata"]["name"]).ends_with("-leader-election") => {
                    assert_ne!(served, "[]", "{what}: cluster-wide, no per-namespace Role");
                    assert!(matches!(ns, Some("team-a" | "team-b")), "{what}");
                }
                _ => assert_eq!(ns, Some("ops"), "{what}"),
            }
            if let Some(subjects) = o["subjects"].as_sequence() {
                for s in subjects {
                    assert_eq!(s["namespace"].as_str(), Some("ops"), "{what}");
                }
            }
        }
        let env = env(&objs);
        let lease_ns = env
            .iter()
            .find(|(n, _)| n == "CHANGEORDER_LEADER_ELECTION_NAMESPACE")
            .and_then(|(_, v)| v.clone());
        assert_eq!(lease_ns.as_deref(), Some("ops"));
        let sm = one(&objs, "ServiceMonitor");
        assert_eq!(
            sm["spec"]["namespaceSelector"]["matchNames"][0].as_str(),
            Some("ops")
        );
        let rule = serde_yaml::to_string(&one(&objs, "PrometheusRule")["spec"]).unwrap();
        assert!(rule.contains("namespace=\"ops\""), "{rule}");
    }
}

#[test]
fn extra_args_follow_the_run_command() {
    let helm = need_helm!();
    let objs = render(&helm, &["--set", "extraArgs={--log-format=plain,--x=1}"]);
    let args: Vec<&str> = container(&objs)["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert_eq!(args, ["run", "--log-format=plain", "--x=1"]);
    let objs = render(&helm, &[]);
    assert_eq!(container(&objs)["args"].as_sequence().unwrap().len(), 1);
}

/// extraObjects: maps and strings, both through `tpl`.
#[test]
fn extra_objects_are_rendered_with_tpl() {
    let helm = need_helm!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extra.yaml");
    std::fs::write(
        &file,
        r#"extraObjects:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: '{{ include "changeorder-operator.fullname" . }}-extra'
      namespace: '{{ .Release.Namespace }}'
    data:
      replicas: '{{ .Values.replicaCount }}'
  - |
    apiVersion: v1
    kind: Secret
    metadata:
      name: {{ .Release.Name }}-string
      namespace: {{ .Release.Namespace }}
    stringData:
      a: b
"#,
    )
    .unwrap();
    let objs = render(&helm, &["-f", file.to_str().unwrap()]);
    let cm = of_kind(&objs, "ConfigMap")
        .into_iter()
        .find(|c| str_of(&c["metadata"]["name"]) == "co-changeorder-operator-extra")
        .expect("the map object, its name through tpl");
    assert_eq!(cm["metadata"]["namespace"].as_str(), Some(NAMESPACE));
    assert_eq!(cm["data"]["replicas"].as_str(), Some("1"));
    let secret = one(&objs, "Secret");
    assert_eq!(secret["metadata"]["name"].as_str(), Some("co-string"));
    // None by default.
    assert!(of_kind(&render(&helm, &[]), "Secret").is_empty());
}

/// The metrics Service (the receiver, when enabled, has a Service of its own).
fn metrics_service(objs: &[Value]) -> &Value {
    let found: Vec<&Value> = of_kind(objs, "Service")
        .into_iter()
        .filter(|s| s["spec"]["ports"][0]["name"].as_str() == Some("metrics"))
        .collect();
    assert_eq!(found.len(), 1, "exactly one metrics Service");
    found[0]
}

/// Without watchSets.enabled the operator may not create or delete watches; with it, it runs the
/// set controller and may create, patch and delete them (never update), and write set status.
#[test]
fn watch_sets_are_off_by_default_and_grant_watch_writes_when_on() {
    let helm = need_helm!();
    let main_role = |objs: &[serde_yaml::Value]| {
        of_kind(objs, "ClusterRole")
            .into_iter()
            .find(|r| r["metadata"]["name"].as_str() == Some("co-changeorder-operator"))
            .cloned()
            .expect("operator ClusterRole")
    };
    let objs = render(&helm, &[]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_ENABLE_WATCH_SETS").as_deref(),
        Some("false")
    );
    let main = main_role(&objs);
    assert_eq!(
        verbs_for(&main, "changeorder.io", "changeorderwatches"),
        set(&["get", "list", "watch"])
    );
    assert!(verbs_for(&main, "changeorder.io", "changeorderwatchsets").is_empty());

    let objs = render(&helm, &["--set", "watchSets.enabled=true"]);
    assert_eq!(
        env_value(&objs, "CHANGEORDER_ENABLE_WATCH_SETS").as_deref(),
        Some("true")
    );
    let main = main_role(&objs);
    assert_eq!(
        verbs_for(&main, "changeorder.io", "changeorderwatches"),
        set(&["get", "list", "watch", "create", "patch", "delete"])
    );
    assert_eq!(
        verbs_for(&main, "changeorder.io", "changeorderwatchsets"),
        set(&["get", "list", "watch"])
    );
    assert_eq!(
        verbs_for(&main, "changeorder.io", "changeorderwatchsets/status"),
        set(&["patch"])
    );
}
