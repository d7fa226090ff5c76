//! The cloud clients against the bundled simulator (in-process, real HTTP on 127.0.0.1): both
//! signing schemes, STS, every provider's list and describe, pagination, wrappers, faults, and
//! orders moving over time.

use std::time::Duration;

use changeorder_cloud::model::{AppRef, Provider, RawStatus};
use changeorder_cloud::sign::Scheme;
use changeorder_cloud::time::default_offset;
use changeorder_cloud::{ClientConfig, CloudClient, Credentials, ErrorKind, RetryPolicy, Target};
use changeorder_sim::{self as sim, Credential, RunningSim, Scenario, SimConfig};

const ID: &str = "sim-test-id";
const SECRET: &str = "sim-test-secret";
const TOKEN: &str = "sim-test-token";

fn ak() -> Credentials {
    Credentials::AccessKey {
        access_key_id: ID.into(),
        access_key_secret: SECRET.into(),
        security_token: None,
    }
}

fn config() -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_wait: Duration::from_secs(3),
        },
        ..ClientConfig::default()
    }
}

async fn sim_with(yaml: &str, creds: Vec<Credential>) -> RunningSim {
    let scenario = Scenario::from_yaml(yaml).unwrap();
    let mut cfg = SimConfig::new(scenario);
    cfg.credentials = creds;
    cfg.yunxiao_token = TOKEN.into();
    sim::start(cfg).await.unwrap()
}

async fn sim(yaml: &str) -> RunningSim {
    sim_with(yaml, vec![Credential::new(ID, SECRET)]).await
}

fn target(sim: &RunningSim, provider: Provider, app: AppRef) -> Target {
    Target {
        provider,
        endpoint: Some(sim.url()),
        region: None,
        app,
        env_names: Vec::new(),
        states: Vec::new(),
        signature: Scheme::V3,
        zone: default_offset(),
    }
}

fn id(s: &str) -> AppRef {
    AppRef::Id(s.into())
}

const MIXED: &str = r#"
apps:
  - provider: edas
    appId: e1
    changeOrders:
      - { id: e-run, type: CoDeploy, createdAt: -10m, batchCount: 3, batchType: manual, status: 8, currentBatch: 2, message: "confirm batch 2" }
      - { id: e-fail, type: CoDeploy, createdAt: -1h, batchCount: 2, status: 3, message: "Health check failed" }
      - { id: e-ok, type: CoScaleOut, createdAt: -2h, batchCount: 1, status: 2 }
  - provider: sae
    appId: s1
    changeOrders:
      - { id: s-appr, type: CoDeploy, createdAt: -5m, batchCount: 2, status: 11 }
      - { id: s-exc, type: CoDeploy, createdAt: -6m, batchCount: 2, status: 1, subStatus: 1, currentBatch: 1, message: "roll back manually" }
      - { id: s-ok, type: CoRestartApplication, createdAt: -1h, status: 2 }
  - provider: appstack
    organizationId: org
    appName: web
    changeOrders:
      - { id: a-run, type: Deploy, createdAt: -3m, envNames: [dev, prod], status: RUNNING, currentBatch: 2, message: "Rolling update 2/4" }
      - { id: a-ok, type: Deploy, createdAt: -1h, envNames: [dev], status: SUCCESS }
"#;

#[tokio::test]
async fn every_provider_lists_and_describes_with_both_schemes() {
    let sim = sim(MIXED).await;
    let client = CloudClient::new(config());
    for scheme in [Scheme::V3, Scheme::Roa] {
        let mut t = target(&sim, Provider::Edas, id("e1"));
        t.signature = scheme;
        let orders = client.list(&t, &ak()).await.unwrap();
        let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids.len(), 3, "{ids:?}");
        let run = orders.iter().find(|o| o.id == "e-run").unwrap();
        assert_eq!(run.status, RawStatus::Code(8));
        assert_eq!(run.batch_type.as_deref(), Some("Manual"));
        assert!(run.create_time.is_some());
        let d = client.describe(&t, &ak(), "e-run").await.unwrap();
        assert_eq!(d.batches.len(), 3);
        assert_eq!(d.current_batch, Some(2));
        let f = client.describe(&t, &ak(), "e-fail").await.unwrap();
        assert_eq!(f.status, RawStatus::Code(3));
        assert_eq!(f.message.as_deref(), Some("Health check failed"));

        let mut t = target(&sim, Provider::Sae, id("s1"));
        t.signature = scheme;
        let orders = client.list(&t, &ak()).await.unwrap();
        assert_eq!(orders.len(), 3);
        let d = client.describe(&t, &ak(), "s-exc").await.unwrap();
        assert_eq!(d.sub_status, Some(1));
        assert_eq!(d.message.as_deref(), Some("roll back manually"));
        assert_eq!(d.current_batch, Some(1));
        let a = client.describe(&t, &ak(), "s-appr").await.unwrap();
        assert_eq!(a.status, RawStatus::Code(11));
    }
    let t = target(
        &sim,
        Provider::Appstack,
        AppRef::Named {
            organization_id: "org".into(),
            app_name: "web".into(),
        },
    );
    let token = Credentials::Token(TOKEN.into());
    let orders = client.list(&t, &token).await.unwrap();
    assert_eq!(orders.len(), 2);
    let d = client.describe(&t, &token, "a-run").await.unwrap();
    assert_eq!(d.status, RawStatus::Text("RUNNING".into()));
    assert_eq!(d.env_names, ["dev", "prod"]);
    assert_eq!(d.current_batch, Some(2));
    assert_eq!(d.message.as_deref(), Some("Rolling update 2/4"));
    let e = client.describe(&t, &token, "nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OrderNotFound, "{e}");
}

#[tokio::test]
async fn credentials_and_app_errors() {
    let sim = sim(MIXED).await;
    let client = CloudClient::new(config());
    let wrong = Credentials::AccessKey {
        access_key_id: ID.into(),
        access_key_secret: "wrong".into(),
        security_token: None,
    };
    for scheme in [Scheme::V3, Scheme::Roa] {
        let mut t = target(&sim, Provider::Sae, id("s1"));
        t.signature = scheme;
        let e = client.list(&t, &wrong).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::SignatureMismatch, "{e}");
        assert!(e.request_id.is_some());
    }
    let unknown = Credentials::AccessKey {
        access_key_id: "other".into(),
        access_key_secret: SECRET.into(),
        security_token: None,
    };
    let e = client
        .list(&target(&sim, Provider::Edas, id("e1")), &unknown)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials, "{e}");
    for p in [Provider::Edas, Provider::Sae] {
        let e = client
            .list(&target(&sim, p, id("missing")), &ak())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AppNotFound, "{p}: {e}");
    }
    let e = client
        .describe(&target(&sim, Provider::Sae, id("s1")), &ak(), "missing")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OrderNotFound, "{e}");
    let t = target(
        &sim,
        Provider::Appstack,
        AppRef::Named {
            organization_id: "org".into(),
            app_name: "web".into(),
        },
    );
    let e = client
        .list(&t, &Credentials::Token("bad".into()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials, "{e}");
}

#[tokio::test]
async fn sts_credentials() {
    let sim = sim_with(MIXED, vec![Credential::sts(ID, SECRET, "sts-tok")]).await;
    let client = CloudClient::new(config());
    let sts = Credentials::AccessKey {
        access_key_id: ID.into(),
        access_key_secret: SECRET.into(),
        security_token: Some("sts-tok".into()),
    };
    for scheme in [Scheme::V3, Scheme::Roa] {
        let mut t = target(&sim, Provider::Edas, id("e1"));
        t.signature = scheme;
        assert_eq!(client.list(&t, &sts).await.unwrap().len(), 3);
    }
    let e = client
        .list(&target(&sim, Provider::Edas, id("e1")), &ak())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCredentials, "{e}");
}

#[tokio::test]
async fn pagination_reads_every_page() {
    let mut yaml = String::from("apps:\n  - provider: sae\n    appId: big\n    changeOrders:\n");
    let mut app =
        String::from("  - provider: appstack\n    organizationId: o\n    appName: a\n    changeOrders:\n");
    for i in 0..7 {
        yaml.push_str(&format!(
            "      - {{ id: o{i}, createdAt: -{}m, status: 2 }}\n",
            i + 1
        ));
        app.push_str(&format!(
            "      - {{ id: a{i}, createdAt: -{}m, status: SUCCESS, envNames: [dev] }}\n",
            i + 1
        ));
    }
    yaml.push_str(&app);
    let sim = sim(&yaml).await;
    let client = CloudClient::new(ClientConfig {
        sae_page_size: 3,
        appstack_page_size: 3,
        ..config()
    });
    let orders = client
        .list(&target(&sim, Provider::Sae, id("big")), &ak())
        .await
        .unwrap();
    assert_eq!(orders.len(), 7);
    assert_eq!(sim.calls("sae", "ListChangeOrders"), 3);
    let t = target(
        &sim,
        Provider::Appstack,
        AppRef::Named {
            organization_id: "o".into(),
            app_name: "a".into(),
        },
    );
    let orders = client.list(&t, &Credentials::Token(TOKEN.into())).await.unwrap();
    assert_eq!(orders.len(), 7);
    assert_eq!(sim.calls("appstack", "ListChangeOrderVersions"), 3);
}

#[tokio::test]
async fn edas_single_object_wrappers() {
    let sim = sim(
        "edasWrappers: singleObject\napps:\n  - provider: edas\n    appId: one\n    changeOrders:\n      - { id: only, createdAt: -1m, batchCount: 1, status: 1 }\n  - provider: edas\n    appId: none\n",
    )
    .await;
    let client = CloudClient::new(config());
    let orders = client
        .list(&target(&sim, Provider::Edas, id("one")), &ak())
        .await
        .unwrap();
    assert_eq!(orders.len(), 1);
    let d = client
        .describe(&target(&sim, Provider::Edas, id("one")), &ak(), "only")
        .await
        .unwrap();
    assert_eq!(d.batches.len(), 1);
    let none = client
        .list(&target(&sim, Provider::Edas, id("none")), &ak())
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn faults_are_retried_or_classified() {
    let sim = sim(r#"
apps:
  - provider: sae
    appId: throttled
    faults: [{ kind: throttling, limit: 1 }]
    changeOrders: [{ id: t1, createdAt: -1m, status: 1 }]
  - provider: sae
    appId: broken
    faults: [{ kind: internalError }]
    changeOrders: [{ id: b1, createdAt: -1m, status: 1 }]
  - provider: edas
    appId: garbled
    faults: [{ kind: malformedJson }]
    changeOrders: [{ id: g1, createdAt: -1m, status: 1 }]
"#)
    .await;
    let client = CloudClient::new(config());
    let ok = client
        .list(&target(&sim, Provider::Sae, id("throttled")), &ak())
        .await
        .unwrap();
    assert_eq!(ok.len(), 1);
    let e = client
        .list(&target(&sim, Provider::Sae, id("broken")), &ak())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ServerError, "{e}");
    let e = client
        .list(&target(&sim, Provider::Edas, id("garbled")), &ak())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadReply, "{e}");
}

#[tokio::test]
async fn orders_move_over_time() {
    let sim = sim(r#"
timeScale: 20
apps:
  - provider: sae
    appId: moving
    changeOrders:
      - id: m1
        createdAt: -1m
        batchCount: 2
        status: 1
        currentBatch: 1
        timeline:
          - { after: 2s, currentBatch: 2 }
          - { after: 4s, status: 2 }
"#)
    .await;
    let client = CloudClient::new(config());
    let t = target(&sim, Provider::Sae, id("moving"));
    let first = client.describe(&t, &ak(), "m1").await.unwrap();
    assert_eq!(first.status, RawStatus::Code(1));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let last = client.describe(&t, &ak(), "m1").await.unwrap();
    assert_eq!(last.status, RawStatus::Code(2));
    assert!(last.finish_time.is_some());
    let listed = client.list(&t, &ak()).await.unwrap();
    assert_eq!(listed[0].status, RawStatus::Code(2));
    assert!(listed[0].finish_time.is_some());
}
