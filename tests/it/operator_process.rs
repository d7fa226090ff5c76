//! The real `changeorder-operator run` binary, as a cluster runs it: with the Helm chart's
//! ServiceAccount token, environment and RBAC; two replicas behind a Lease; SIGTERM.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use changeorder_operator::crd::ChangeOrderWatch;
use changeorder_sim::{self as sim, Scenario};
use k8s_openapi::api::coordination::v1::Lease;
use serde_yaml::Value;
use support::cluster::{TestNamespace, eventually};
use support::operator::*;
use support::process::*;

const WAIT: Duration = Duration::from_secs(60);
pub(crate) fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A kubeconfig that authenticates with `token` (and nothing else) against the test cluster.
pub(crate) fn token_kubeconfig(ns: &TestNamespace, token: &str, path: &Path) {
    let ca = ok(ns.cluster().kubectl().args([
        "config",
        "view",
        "--raw",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]));
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "test", "cluster": {"server": ns.cluster().apiserver_url(), "certificate-authority-data": ca}}],
        "users": [{"name": "sa", "user": {"token": token.trim()}}],
        "contexts": [{"name": "sa", "context": {"cluster": "test", "user": "sa", "namespace": ns.name()}}],
    });
    std::fs::write(path, serde_yaml::to_string(&config).expect("yaml")).expect("write kubeconfig");
}

fn demo_watches_spec(url: &str) -> Vec<(&'static str, &'static str, serde_json::Value)> {
    vec![
        (
            "edas",
            "cloud",
            serde_json::json!({"provider": "edas", "endpoint": url, "appId": "demo-edas-app", "credentialsSecretRef": {"name": "cloud"}}),
        ),
        (
            "appstack",
            "token",
            serde_json::json!({"provider": "appstack", "endpoint": url, "organizationId": "demo-org", "appName": "demo-app", "credentialsSecretRef": {"name": "token"}}),
        ),
    ]
}

async fn user_objects(ns: &TestNamespace, url: &str) {
    access_key_secret(ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_secret(ns, "token", &[("token", sim::DEFAULT_YUNXIAO_TOKEN)]).await;
    for (name, _, spec) in demo_watches_spec(url) {
        create_watch(ns, name, spec).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_identity_and_settings_do_the_whole_job() {
    let ns = namespace("chart-sa").await;
    let other = namespace("chart-other").await;
    let sim = support::operator::start_sim_with(Scenario::demo().expect("demo")).await;
    user_objects(&ns, &sim.url()).await;
    create_secret(&other, "elsewhere", &[("token", "not for the operator")]).await;

    // Install the chart limited to this namespace; the CRDs are already there.
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/changeorder-operator");
    ok(ns.helm().args([
        "install",
        "cop",
        chart,
        "--set",
        "crds.install=false",
        "--set",
        &format!("watchNamespaces={{{}}}", ns.name()),
        "--set",
        "operator.defaultInterval=3s",
        "--set",
        "operator.defaultInFlightInterval=2s",
        // The simulator listens on 127.0.0.1.
        "--set",
        "allowedEndpoints={http://127.0.0.1:*}",
    ]));
    let deployment: Value = serde_yaml::from_str(&ok(ns.kubectl().args([
        "get",
        "deployment",
        "-l",
        "app.kubernetes.io/instance=cop",
        "-o",
        "yaml",
    ])))
    .expect("deployment yaml");
    let pod = &deployment["items"][0]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let sa = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName")
        .to_string();
    assert_eq!(container["args"][0].as_str(), Some("run"));

    // The container's environment as the chart renders it; the downward API fields by hand.
    let admin_port = free_port();
    let mut env: Vec<(String, String)> = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .filter(|(k, _)| k != "CHANGEORDER_ADMIN_LISTEN")
        .collect();
    env.push(("POD_NAME".into(), "cop-0".into()));
    env.push(("POD_NAMESPACE".into(), ns.name().to_string()));
    env.push((
        "CHANGEORDER_ADMIN_LISTEN".into(),
        format!("127.0.0.1:{admin_port}"),
    ));
    assert!(
        env.iter()
            .any(|(k, v)| k == "CHANGEORDER_NAMESPACES" && v == ns.name()),
        "{env:?}"
    );

    // Its ServiceAccount's token, from the TokenRequest API, is the only credential.
    let token = ok(ns.kubectl().args(["create", "token", &sa, "--duration=1h"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    token_kubeconfig(&ns, &token, &kubeconfig);
    env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    let operator = Proc::spawn("operator", dir.path(), &env, &[]);

    eventually(
        "ChangeOrders written under the chart's identity",
        WAIT,
        || async {
            let all = orders(&ns).await;
            (all.iter().filter(|o| o.status.is_some()).count() >= 20).then_some(())
        },
    )
    .await;
    let watches = ns.api::<ChangeOrderWatch>();
    for (name, _, _) in demo_watches_spec(&sim.url()) {
        eventually("watch Ready", WAIT, || async {
            let w = watches.get(name).await.ok()?;
            (watch_ready(&w)? == ("True".to_string(), "Polled".to_string())).then_some(())
        })
        .await;
    }
    let (status, _) = eventually("ready", WAIT, || async {
        http_get(admin_port, "/ready").await.filter(|(s, _)| *s == 200)
    })
    .await;
    assert_eq!(status, 200);
    let metrics = eventually("both watches counted ready", WAIT, || async {
        let (_, m) = http_get(admin_port, "/metrics").await?;
        m.contains("changeorder_watches{ready=\"true\"} 2").then_some(m)
    })
    .await;
    assert!(metrics.contains("changeorder_leader 1"), "{metrics}");
    assert!(metrics.contains("changeorder_cloud_calls_total{"), "{metrics}");
    assert!(
        metrics.contains("changeorder_orders{phase=\"Succeeded\"}"),
        "{metrics}"
    );
    // The released binary's own version and per-watch series (tests/it/dashboard.rs has the rest).
    assert!(
        metrics.contains(&format!(
            "changeorder_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{metrics}"
    );
    for (name, _, _) in demo_watches_spec(&sim.url()) {
        let series = format!(
            "changeorder_watch_ready{{namespace=\"{}\",name=\"{name}\"}} 1",
            ns.name()
        );
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    // Events were allowed and written.
    let events = ok(ns
        .kubectl()
        .args(["get", "events", "-o", "jsonpath={.items[*].reason}"]));
    assert!(
        events.contains("Executing") || events.contains("Preparing"),
        "{events}"
    );
    // What the identity must not do: read Secrets outside its namespaces.
    let denied = ns
        .cluster()
        .kubectl()
        .args([
            "auth",
            "can-i",
            "get",
            "secrets",
            "-n",
            other.name(),
            &format!("--as=system:serviceaccount:{}:{sa}", ns.name()),
        ])
        .output()
        .expect("kubectl auth can-i");
    let denied = String::from_utf8_lossy(&denied.stdout);
    assert_eq!(denied.trim(), "no");
    assert!(
        !operator.log().contains("Forbidden"),
        "no permission errors:\n{}",
        operator.log()
    );
    assert!(
        !operator.log().contains(sim::DEFAULT_ACCESS_KEY_SECRET),
        "secrets never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_poll_once_and_a_standby_takes_over_on_sigterm() {
    let ns = namespace("replicas").await;
    let sim = support::operator::start_sim_with(Scenario::demo().expect("demo")).await;
    user_objects(&ns, &sim.url()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = ns.cluster().kubeconfig().display().to_string();
    let start = |name: &str| {
        let port = free_port();
        let env = vec![
            ("KUBECONFIG".to_string(), kubeconfig.clone()),
            ("CHANGEORDER_NAMESPACES".to_string(), ns.name().to_string()),
            ("CHANGEORDER_LEADER_ELECTION".to_string(), "true".to_string()),
            (
                "CHANGEORDER_LEADER_ELECTION_NAMESPACE".to_string(),
                ns.name().to_string(),
            ),
            ("CHANGEORDER_LEASE_DURATION".to_string(), "4s".to_string()),
            (
                "CHANGEORDER_ALLOWED_ENDPOINTS".to_string(),
                "http://127.0.0.1:*".to_string(),
            ),
            ("CHANGEORDER_IDENTITY".to_string(), name.to_string()),
            (
                "CHANGEORDER_DEFAULT_IN_FLIGHT_INTERVAL".to_string(),
                "1s".to_string(),
            ),
            (
                "CHANGEORDER_ADMIN_LISTEN".to_string(),
                format!("127.0.0.1:{port}"),
            ),
            (
                "CHANGEORDER_LOG".to_string(),
                "info,changeorder_operator::cloud=debug".to_string(),
            ),
        ];
        (Proc::spawn(name, dir.path(), &env, &[]), port)
    };
    let (mut a, a_port) = start("replica-a");
    let (mut b, b_port) = start("replica-b");
    let leases = ns.api::<Lease>();
    let holder = eventually("a leader", WAIT, || async {
        let lease = leases.get("changeorder-operator").await.ok()?;
        lease.spec?.holder_identity.filter(|h| !h.is_empty())
    })
    .await;
    eventually("orders from the leader", WAIT, || async {
        (orders(&ns).await.len() >= 20).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (leader, leader_port, standby, standby_port) = if holder == "replica-a" {
        (&mut a, a_port, &mut b, b_port)
    } else {
        (&mut b, b_port, &mut a, a_port)
    };
    assert!(leader.log().contains("cloud call"), "the leader polls");
    assert!(
        !standby.log().contains("cloud call"),
        "the standby makes no cloud call:\n{}",
        standby.log()
    );
    // Both are ready: the standby can take over at any time.
    assert_eq!(http_get(leader_port, "/ready").await.map(|r| r.0), Some(200));
    assert_eq!(http_get(standby_port, "/ready").await.map(|r| r.0), Some(200));

    // SIGTERM: the leader exits cleanly and hands over without waiting out the lease.
    let handed_over = std::time::Instant::now();
    leader.terminate();
    assert_eq!(
        leader.exit_code(Duration::from_secs(20)).await,
        Some(0),
        "{}",
        leader.log()
    );
    let exited = handed_over.elapsed();
    let standby_name = if holder == "replica-a" {
        "replica-b"
    } else {
        "replica-a"
    };
    eventually("the standby leads", WAIT, || async {
        let lease = leases.get("changeorder-operator").await.ok()?;
        (lease.spec?.holder_identity.as_deref() == Some(standby_name)).then_some(())
    })
    .await;
    let took = handed_over.elapsed();
    eventually("the new leader polls", WAIT, || async {
        standby.log().contains("cloud call").then_some(())
    })
    .await;
    eprintln!("after SIGTERM: leader exited in {exited:?}, standby leading after {took:?}");
    assert!(
        took < exited + Duration::from_secs(4),
        "released, not waited out: {took:?}"
    );
    standby.terminate();
    assert_eq!(
        standby.exit_code(Duration::from_secs(20)).await,
        Some(0),
        "{}",
        standby.log()
    );
}

/// Issue 8: a leader that loses its Lease stops every write at once, even in the middle of a
/// poll, instead of giving reconciles in flight the shutdown grace period (5 s), which used to
/// run past the moment a standby may take over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_at_once_even_mid_poll() {
    let ns = namespace("lost-lease").await;
    // Every describe hangs for 30 s, so a poll is always in flight.
    let sim = support::operator::start_sim(
        r#"
faults:
  - kind: latency
    duration: 30s
    actions: [DescribeChangeOrder]
apps:
  - provider: sae
    appId: app-slow
    changeOrders:
      - { id: slow-1, createdAt: -1m, status: 1 }
"#,
    )
    .await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_watch(
        &ns,
        "slow",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "app-slow", "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let env = vec![
        (
            "KUBECONFIG".to_string(),
            ns.cluster().kubeconfig().display().to_string(),
        ),
        ("CHANGEORDER_NAMESPACES".to_string(), ns.name().to_string()),
        ("CHANGEORDER_LEADER_ELECTION".to_string(), "true".to_string()),
        (
            "CHANGEORDER_LEADER_ELECTION_NAMESPACE".to_string(),
            ns.name().to_string(),
        ),
        ("CHANGEORDER_LEASE_DURATION".to_string(), "3s".to_string()),
        (
            "CHANGEORDER_ALLOWED_ENDPOINTS".to_string(),
            "http://127.0.0.1:*".to_string(),
        ),
        ("CHANGEORDER_IDENTITY".to_string(), "leader".to_string()),
        (
            "CHANGEORDER_ADMIN_LISTEN".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "CHANGEORDER_LOG".to_string(),
            "info,changeorder_operator::cloud=debug".to_string(),
        ),
    ];
    let mut leader = Proc::spawn("leader", dir.path(), &env, &[]);
    let leases = ns.api::<Lease>();
    eventually("it leads", WAIT, || async {
        let lease = leases.get("changeorder-operator").await.ok()?;
        (lease.spec?.holder_identity.as_deref() == Some("leader")).then_some(())
    })
    .await;
    // The list answers at once; the describe that follows it hangs.
    eventually("the list call done", WAIT, || async {
        leader.log().contains("ListChangeOrders").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Someone else takes the Lease (a standby that judged it expired, or a person). The leader
    // renews every second, so a slow read-modify-write can lose to a renewal: read again then.
    let taken = loop {
        let mut lease = leases.get("changeorder-operator").await.expect("read the Lease");
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = Some("intruder".into());
        }
        let at = std::time::Instant::now();
        match leases
            .replace("changeorder-operator", &Default::default(), &lease)
            .await
        {
            Ok(_) => break at,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("take the Lease: {e}"),
        }
    };
    let code = leader.exit_code(Duration::from_secs(15)).await;
    let exited = taken.elapsed();
    eprintln!("the leader exited {exited:?} after losing its Lease");
    assert_eq!(code, Some(1), "exits non-zero on a lost Lease:\n{}", leader.log());
    // Noticed at the next renewal (every second with a 3 s Lease), then no grace period.
    assert!(
        exited < Duration::from_millis(2500),
        "the leader kept running {exited:?} after losing its Lease:\n{}",
        leader.log()
    );
    assert!(leader.log().contains("lost leadership"), "{}", leader.log());
}
