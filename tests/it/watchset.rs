//! ChangeOrderWatchSet against the real API server and the simulator: generated watches appear,
//! follow the apps (appearing, disappearing; Delete and Keep), never overwrite a hand-written
//! watch, follow template edits, keep everything when discovery fails, and write nothing at
//! rest. The list calls' paging and filters are checked on the cloud client directly.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use changeorder_cloud::discover::AppQuery;
use changeorder_cloud::model::{AppRef, Provider};
use changeorder_cloud::sign::Scheme;
use changeorder_cloud::time::default_offset;
use changeorder_cloud::{ClientConfig, CloudClient, Credentials, ErrorKind, Target};
use changeorder_operator::controller::Settings;
use changeorder_operator::crd::{ChangeOrderWatch, ChangeOrderWatchSet, WATCH_SET_LABEL};
use kube::ResourceExt;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use support::cluster::{TestCluster, TestNamespace, eventually};
use support::operator::*;

const WAIT: Duration = Duration::from_secs(60);

/// SAE apps of namespace cn-hangzhou:fleet (and one elsewhere). `late` appears after 8 s and
/// `gone` disappears after 8 s, on the simulator's clock.
const FLEET: &str = r#"
timeZone: "+08:00"
apps:
  - { provider: sae, appId: id-web, appName: web, namespaceId: "cn-hangzhou:fleet", tags: {team: shop} }
  - { provider: sae, appId: id-api, appName: api, namespaceId: "cn-hangzhou:fleet", tags: {team: shop} }
  - { provider: sae, appId: id-ops, appName: ops-tool, namespaceId: "cn-hangzhou:fleet", tags: {team: ops} }
  - { provider: sae, appId: id-late, appName: late, namespaceId: "cn-hangzhou:fleet", tags: {team: shop}, appearsAt: 8s }
  - { provider: sae, appId: id-gone, appName: gone, namespaceId: "cn-hangzhou:fleet", tags: {team: shop}, disappearsAt: 8s }
  - { provider: sae, appId: id-else, appName: elsewhere, namespaceId: "cn-shanghai", tags: {team: shop} }
  - { provider: edas, appId: e-1, appName: billing, namespaceId: "cn-hangzhou:fleet" }
"#;

fn settings() -> Settings {
    Settings {
        watch_sets: true,
        ..fast_settings()
    }
}

async fn create_set(ns: &TestNamespace, name: &str, spec: serde_json::Value) -> ChangeOrderWatchSet {
    let set: ChangeOrderWatchSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatchSet",
        "metadata": {"name": name}, "spec": spec,
    }))
    .expect("set manifest");
    ns.api::<ChangeOrderWatchSet>()
        .create(&PostParams::default(), &set)
        .await
        .expect("create set")
}

fn sae_set(endpoint: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::json!({
        "provider": "sae", "endpoint": endpoint, "credentialsSecretRef": {"name": "cloud"},
        "discoveryInterval": "5s",
        "generator": {"sae": {"namespaceId": "cn-hangzhou:fleet", "tags": {"team": "shop"}}},
        "template": {"interval": "1h", "metadata": {"labels": {"team": "shop"}}},
    });
    if let (Some(base), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    v
}

/// Watches by name.
async fn watches(ns: &TestNamespace) -> BTreeMap<String, ChangeOrderWatch> {
    ns.api::<ChangeOrderWatch>()
        .list(&ListParams::default())
        .await
        .expect("list watches")
        .items
        .into_iter()
        .map(|w| (w.name_any(), w))
        .collect()
}

async fn set_status(ns: &TestNamespace, name: &str) -> ChangeOrderWatchSet {
    ns.api::<ChangeOrderWatchSet>().get(name).await.expect("get set")
}

fn ready(set: &ChangeOrderWatchSet) -> Option<(String, String, String)> {
    let c = set
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn names(ws: &BTreeMap<String, ChangeOrderWatch>) -> BTreeSet<&str> {
    ws.keys().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_watches_follow_the_apps_and_the_template() {
    let ns = namespace("wset").await;
    let sim = start_sim(FLEET).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let op = Operator::start(ns.client(), ns.name(), settings()).await;
    let set = create_set(&ns, "fleet", sae_set(&sim.url(), serde_json::json!({}))).await;

    // The tag filter selects web, api and (until it goes) gone; not ops-tool, not elsewhere.
    let first = eventually("watches of the shop apps", WAIT, || async {
        let ws = watches(&ns).await;
        names(&ws)
            .is_superset(&BTreeSet::from(["fleet-api", "fleet-web"]))
            .then_some(ws)
    })
    .await;
    assert!(!first.contains_key("fleet-ops-tool") && !first.contains_key("fleet-elsewhere"));
    let web = &first["fleet-web"];
    assert_eq!(web.spec.app_id.as_deref(), Some("id-web"));
    assert_eq!(web.spec.provider, Provider::Sae);
    assert_eq!(web.spec.interval.as_deref(), Some("1h"));
    assert_eq!(web.spec.endpoint.as_deref(), Some(sim.url().as_str()));
    assert_eq!(
        web.labels().get(WATCH_SET_LABEL).map(String::as_str),
        Some("fleet")
    );
    assert_eq!(web.labels().get("team").map(String::as_str), Some("shop"));
    let owner = &web.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("ChangeOrderWatchSet", set.uid().unwrap().as_str(), Some(true))
    );

    // Within a discovery interval of the change: late gets a watch, gone loses its own.
    let after = eventually("late added, gone removed", WAIT, || async {
        let ws = watches(&ns).await;
        (ws.contains_key("fleet-late") && !ws.contains_key("fleet-gone")).then_some(ws)
    })
    .await;
    assert_eq!(
        names(&after),
        BTreeSet::from(["fleet-api", "fleet-late", "fleet-web"])
    );
    let status = eventually("set status counts three apps, all Ready", WAIT, || async {
        let s = set_status(&ns, "fleet").await;
        let st = s.status.clone()?;
        (st.apps_found == Some(3) && st.watches_ready == Some(3) && st.watches_not_ready == Some(0))
            .then_some(s)
    })
    .await;
    let (status_, reason, _) = ready(&status).expect("Ready");
    assert_eq!((status_.as_str(), reason.as_str()), ("True", "Discovered"));
    assert_eq!(
        status.status.as_ref().and_then(|s| s.observed_generation),
        status.metadata.generation
    );
    assert!(
        status
            .status
            .as_ref()
            .is_some_and(|s| s.last_discovery_time.is_some())
    );
    assert!(
        op.metrics.encode().contains(&format!(
            "changeorder_watchset_apps{{namespace=\"{}\",watchset=\"fleet\"}} 3",
            ns.name()
        )),
        "the apps gauge"
    );
    // The plugin lists the set with its counts.
    let out = std::process::Command::new(crate::support::process::workspace_bin("kubectl-changeorder"))
        .env("KUBECONFIG", ns.cluster().kubeconfig())
        .args(["--namespace", ns.name(), "sets"])
        .output()
        .expect("run kubectl-changeorder sets");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}");
    let row: Vec<&str> = table
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        ["fleet", "sae", "3", "3", "0", "0", "True", "Discovered"],
        "{table}"
    );

    // A template edit reaches every generated watch.
    ns.api::<ChangeOrderWatchSet>()
        .patch(
            "fleet",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"template": {"interval": "2h", "metadata": {"labels": {"team": "shop", "tier": "gold"}}}}})),
        )
        .await
        .expect("edit the template");
    eventually("every watch has the new interval and label", WAIT, || async {
        let ws = watches(&ns).await;
        (ws.len() == 3
            && ws.values().all(|w| {
                w.spec.interval.as_deref() == Some("2h")
                    && w.labels().get("tier").map(String::as_str) == Some("gold")
            }))
        .then_some(())
    })
    .await;
    // A generated watch edited by hand is set back to the template.
    ns.api::<ChangeOrderWatch>()
        .patch(
            "fleet-web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"interval": "9m"}})),
        )
        .await
        .expect("hand edit");
    eventually("the hand edit is undone", WAIT, || async {
        let w = ns.api::<ChangeOrderWatch>().get("fleet-web").await.ok()?;
        (w.spec.interval.as_deref() == Some("2h")).then_some(())
    })
    .await;
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_releases_the_watch_of_a_gone_app() {
    let ns = namespace("wset-keep").await;
    let sim = start_sim(FLEET).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let op = Operator::start(ns.client(), ns.name(), settings()).await;
    create_set(
        &ns,
        "keep",
        sae_set(&sim.url(), serde_json::json!({"deletionPolicy": "Keep"})),
    )
    .await;
    eventually("gone has a watch at first", WAIT, || async {
        watches(&ns).await.contains_key("keep-gone").then_some(())
    })
    .await;
    let released = eventually("gone's watch released, not deleted", WAIT, || async {
        let ws = watches(&ns).await;
        let w = ws.get("keep-gone")?.clone();
        (w.owner_references().is_empty() && ws.contains_key("keep-late")).then_some(w)
    })
    .await;
    assert!(
        !released.labels().contains_key(WATCH_SET_LABEL),
        "{:?}",
        released.labels()
    );
    assert_eq!(
        released.spec.app_id.as_deref(),
        Some("id-gone"),
        "its spec is left as it was"
    );
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_written_watch_is_never_overwritten() {
    let ns = namespace("wset-conflict").await;
    let sim = start_sim(FLEET).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let hand = create_watch(
        &ns,
        "mine-web",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "appId": "hand-picked",
            "interval": "7m", "credentialsSecretRef": {"name": "cloud"}}),
    )
    .await;
    let op = Operator::start(ns.client(), ns.name(), settings()).await;
    create_set(&ns, "mine", sae_set(&sim.url(), serde_json::json!({}))).await;
    let set = eventually("the conflict is reported", WAIT, || async {
        let s = set_status(&ns, "mine").await;
        let conflicts = &s.status.as_ref()?.conflicts;
        conflicts
            .iter()
            .any(|c| c.name == "mine-web" && c.app == "web")
            .then_some(s)
    })
    .await;
    let (st, reason, message) = ready(&set).expect("Ready");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "NameConflict"),
        "{message}"
    );
    assert!(message.contains("mine-web"), "{message}");
    let stalled = set
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Stalled").cloned());
    assert_eq!(stalled.map(|c| c.status), Some("True".to_string()));
    // The other apps got their watches; the hand-written one is exactly as it was.
    eventually("the other watches exist", WAIT, || async {
        watches(&ns).await.contains_key("mine-api").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let now = ns
        .api::<ChangeOrderWatch>()
        .get("mine-web")
        .await
        .expect("hand-written watch");
    assert_eq!(now.spec, hand.spec);
    assert!(now.owner_references().is_empty() && !now.labels().contains_key(WATCH_SET_LABEL));
    assert_eq!(now.metadata.generation, hand.metadata.generation);
    op.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_keep_the_watches() {
    let ns = namespace("wset-creds").await;
    let sim = start_sim(FLEET).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let op = Operator::start(ns.client(), ns.name(), settings()).await;
    create_set(&ns, "creds", sae_set(&sim.url(), serde_json::json!({}))).await;
    let before = eventually("watches generated", WAIT, || async {
        let ws = watches(&ns).await;
        (ws.contains_key("creds-web") && ws.contains_key("creds-api")).then_some(ws)
    })
    .await;
    // The key's secret is now wrong: the cloud refuses the signature.
    ns.api::<k8s_openapi::api::core::v1::Secret>()
        .patch(
            "cloud",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"accessKeySecret": "wrong-secret"}})),
        )
        .await
        .expect("break the Secret");
    let set = eventually("InvalidCredentials on the set", WAIT, || async {
        let s = set_status(&ns, "creds").await;
        (ready(&s)?.1 == "InvalidCredentials").then_some(s)
    })
    .await;
    let (st, _, message) = ready(&set).expect("Ready");
    assert_eq!(st, "False");
    assert!(message.contains("kept"), "{message}");
    assert!(
        !message.contains("wrong-secret"),
        "no secret in the status: {message}"
    );
    let after = watches(&ns).await;
    for name in before
        .keys()
        .filter(|n| n.as_str() != "creds-gone" && n.as_str() != "creds-late")
    {
        assert!(after.contains_key(name), "{name} was kept");
    }
    op.stop().await;
}

/// Write requests on the set's kinds, from the API server's own counters.
async fn write_requests(client: &kube::Client) -> u64 {
    let req = http::Request::get("/metrics").body(Vec::new()).expect("request");
    let text = client.request_text(req).await.expect("apiserver /metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| {
            [
                "changeorders",
                "changeorderwatches",
                "changeorderwatchsets",
                "events",
            ]
            .iter()
            .any(|r| l.contains(&format!("resource=\"{r}\"")))
        })
        .filter(|l| {
            ["POST", "PUT", "PATCH", "APPLY", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

const STILL_FLEET: &str = r#"
timeZone: "+08:00"
apps:
  - { provider: sae, appId: q-1, appName: one, namespaceId: quiet }
  - { provider: sae, appId: q-2, appName: two, namespaceId: quiet }
  - { provider: sae, appId: q-3, appName: three, namespaceId: quiet }
"#;

/// Discoveries that find the same apps, and watches polling apps that do not change, send no
/// write request at all (counted by the API server). Its own cluster, so the counters are ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_at_rest_writes_nothing() {
    let ns = namespace_in(TestCluster::isolated("wset-quiet"), "still").await;
    let sim = start_sim(STILL_FLEET).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    let op = Operator::start(ns.client(), ns.name(), settings()).await;
    create_set(
        &ns,
        "still",
        serde_json::json!({"provider": "sae", "endpoint": sim.url(), "credentialsSecretRef": {"name": "cloud"},
            "discoveryInterval": "5s", "generator": {"sae": {"namespaceId": "quiet"}}}),
    )
    .await;
    eventually("three Ready watches counted", WAIT, || async {
        let s = set_status(&ns, "still").await;
        (s.status.as_ref()?.watches_ready == Some(3)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let client = ns.client();
    let before = write_requests(&client).await;
    let lists_before = op.calls.count("ListApplications");
    tokio::time::sleep(Duration::from_secs(16)).await;
    let writes = write_requests(&client).await - before;
    let lists = op.calls.count("ListApplications") - lists_before;
    eprintln!("set at rest: {lists} discoveries in 16 s, {writes} write requests");
    assert!(lists >= 2, "discovery kept running ({lists})");
    assert_eq!(
        writes, 0,
        "{lists} quiet discoveries sent {writes} write requests"
    );
    op.stop().await;
}

fn target(endpoint: String, provider: Provider) -> Target {
    Target {
        provider,
        endpoint: Some(endpoint),
        region: None,
        app: AppRef::Id(String::new()),
        env_names: Vec::new(),
        states: Vec::new(),
        signature: Scheme::V3,
        zone: default_offset(),
    }
}

/// The list calls over real HTTP: every page read (page size 2), filters applied, EDAS too, and
/// a wrong key is an error, never an empty list.
#[tokio::test]
async fn list_calls_page_and_filter() {
    let sim = start_sim(FLEET).await;
    let client = CloudClient::try_new(ClientConfig {
        sae_page_size: 2,
        ..ClientConfig::default()
    })
    .expect("client");
    let creds = Credentials::AccessKey {
        access_key_id: changeorder_sim::DEFAULT_ACCESS_KEY_ID.into(),
        access_key_secret: changeorder_sim::DEFAULT_ACCESS_KEY_SECRET.into(),
        security_token: None,
    };
    let sae = target(sim.url(), Provider::Sae);
    let query = |pattern: Option<&str>, tags: &[(&str, &str)]| AppQuery::Sae {
        namespace_id: "cn-hangzhou:fleet".into(),
        name_pattern: pattern.map(str::to_string),
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let ids = |apps: Vec<changeorder_cloud::discover::FoundApp>| -> Vec<String> {
        let mut v: Vec<String> = apps.into_iter().map(|a| a.app_id).collect();
        v.sort();
        v
    };
    sim.reset_stats();
    let all = client
        .list_apps(&sae, &creds, &query(None, &[]))
        .await
        .expect("all");
    assert_eq!(
        ids(all),
        ["id-api", "id-gone", "id-ops", "id-web"],
        "late has not appeared yet"
    );
    assert_eq!(sim.calls("sae", "ListApplications"), 2, "two pages of two");
    let shop = client
        .list_apps(&sae, &creds, &query(None, &[("team", "shop")]))
        .await
        .expect("tags");
    assert_eq!(ids(shop), ["id-api", "id-gone", "id-web"]);
    let globbed = client
        .list_apps(&sae, &creds, &query(Some("*o*"), &[]))
        .await
        .expect("glob");
    assert_eq!(ids(globbed), ["id-gone", "id-ops"]);
    let edas = client
        .list_apps(
            &target(sim.url(), Provider::Edas),
            &creds,
            &AppQuery::Edas {
                logical_region_id: "cn-hangzhou:fleet".into(),
                name_pattern: None,
                cluster_id: None,
            },
        )
        .await
        .expect("edas");
    assert_eq!(ids(edas), ["e-1"]);
    let wrong = Credentials::AccessKey {
        access_key_id: changeorder_sim::DEFAULT_ACCESS_KEY_ID.into(),
        access_key_secret: "wrong".into(),
        security_token: None,
    };
    let err = client
        .list_apps(&sae, &wrong, &query(None, &[]))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::SignatureMismatch | ErrorKind::InvalidCredentials
        ),
        "{err}"
    );
}

/// The chart's RBAC with `watchSets.enabled` is enough: the binary, with only the chart's
/// ServiceAccount token and environment, discovers, creates the watches (which then poll),
/// deletes the one of a gone app, and writes the set's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_lets_the_operator_run_sets() {
    use crate::operator_process::{ok, token_kubeconfig};
    use support::process::{Proc, free_port};

    let ns = namespace("wset-chart").await;
    let sim = start_sim(FLEET).await;
    access_key_secret(&ns, "cloud", changeorder_sim::DEFAULT_ACCESS_KEY_SECRET).await;
    create_set(&ns, "chart", sae_set(&sim.url(), serde_json::json!({}))).await;
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/changeorder-operator");
    ok(ns.helm().args([
        "install",
        "cwset",
        chart,
        "--set",
        "crds.install=false",
        "--set",
        &format!("watchNamespaces={{{}}}", ns.name()),
        "--set",
        "watchSets.enabled=true",
        "--set",
        "allowedEndpoints={http://127.0.0.1:*}",
    ]));
    let deployment: serde_yaml::Value = serde_yaml::from_str(&ok(ns.kubectl().args([
        "get",
        "deployment",
        "-l",
        "app.kubernetes.io/instance=cwset",
        "-o",
        "yaml",
    ])))
    .expect("deployment yaml");
    let pod = &deployment["items"][0]["spec"]["template"]["spec"];
    let sa = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName")
        .to_string();
    let mut env: Vec<(String, String)> = pod["containers"][0]["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .filter(|(k, _)| k != "CHANGEORDER_ADMIN_LISTEN")
        .collect();
    assert!(env.contains(&("CHANGEORDER_ENABLE_WATCH_SETS".into(), "true".into())));
    env.push(("POD_NAME".into(), "cwset-0".into()));
    env.push(("POD_NAMESPACE".into(), ns.name().to_string()));
    env.push((
        "CHANGEORDER_ADMIN_LISTEN".into(),
        format!("127.0.0.1:{}", free_port()),
    ));
    let token = ok(ns.kubectl().args(["create", "token", &sa, "--duration=1h"]));
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    token_kubeconfig(&ns, &token, &kubeconfig);
    env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    let op = Proc::spawn("operator", dir.path(), &env, &[]);

    eventually(
        "watches created, gone's deleted, status written",
        WAIT,
        || async {
            let ws = watches(&ns).await;
            let s = set_status(&ns, "chart").await.status?;
            (ws.contains_key("chart-web")
                && ws.contains_key("chart-late")
                && !ws.contains_key("chart-gone")
                && s.apps_found == Some(3))
            .then_some(())
        },
    )
    .await;
    eventually("the generated watches poll", WAIT, || async {
        let w = ns.api::<ChangeOrderWatch>().get("chart-web").await.ok()?;
        w.status?.last_poll_time.map(|_| ())
    })
    .await;
    assert!(
        !op.log().contains(changeorder_sim::DEFAULT_ACCESS_KEY_SECRET),
        "no secret in the log"
    );
    let _ = ok(ns.helm().args(["uninstall", "cwset"]));
}

/// A generator that does not fit the provider, or a discovery interval under 5 s, is refused at
/// admission with a message that names the field.
#[tokio::test]
async fn bad_sets_are_refused_at_admission() {
    let ns = namespace("wset-bad").await;
    for (spec, field) in [
        (
            serde_json::json!({"provider": "sae", "region": "cn-hangzhou", "credentialsSecretRef": {"name": "c"},
                "generator": {"edas": {"logicalRegionId": "cn-hangzhou"}}}),
            "spec.generator",
        ),
        (
            serde_json::json!({"provider": "sae", "region": "cn-hangzhou", "credentialsSecretRef": {"name": "c"},
                "discoveryInterval": "1s", "generator": {"sae": {"namespaceId": "cn-hangzhou"}}}),
            "spec.discoveryInterval",
        ),
        (
            serde_json::json!({"provider": "edas", "generator": {"edas": {"logicalRegionId": "cn-hangzhou"}},
                "credentialsSecretRef": {"name": "c"}}),
            "spec.region",
        ),
    ] {
        let set: ChangeOrderWatchSet = serde_json::from_value(serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatchSet",
            "metadata": {"name": "bad"}, "spec": spec,
        }))
        .expect("manifest");
        let err = ns
            .api::<ChangeOrderWatchSet>()
            .create(&PostParams::default(), &set)
            .await
            .expect_err("refused")
            .to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
}
