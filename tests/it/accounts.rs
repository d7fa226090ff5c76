//! One call budget per cloud account, against the real API server and the simulator: keys of
//! one account share one budget, and a borrowed key id with a wrong secret takes nothing from
//! its owner.

use crate::support;

use std::time::Duration;

use changeorder_operator::controller::Settings;
use changeorder_operator::controller::identity::KeylessSettings;
use changeorder_sim::{self as sim, Credential, RunningSim, Scenario, SimConfig};
use support::cluster::eventually;
use support::operator::*;

const ACCOUNT: &str = "2000000000000002";

async fn accounts_sim() -> RunningSim {
    let mut yaml = format!("accounts:\n  - id: \"{ACCOUNT}\"\n    accessKeys: [key-a, key-b]\napps:\n");
    for i in 0..6 {
        yaml.push_str(&format!(
            "  - provider: sae\n    appId: app-{i}\n    changeOrders:\n      - {{ id: o{i}-1, createdAt: -5m, status: 2 }}\n"
        ));
    }
    let mut config = SimConfig::new(Scenario::from_yaml(&yaml).expect("scenario"));
    config.credentials = vec![
        Credential::new("key-a", "secret-a"),
        Credential::new("key-b", "secret-b"),
    ];
    sim::start(config).await.expect("simulator starts")
}

/// The operator asks the simulator's STS which account each key belongs to.
fn settings(sim: &RunningSim) -> Settings {
    Settings {
        keyless: KeylessSettings {
            sts_endpoint: sim.url(),
            ..KeylessSettings::default()
        },
        ..fast_settings()
    }
}

/// Cloud calls to the change-order APIs (not STS).
fn cloud_calls(sim: &RunningSim) -> u64 {
    sim.stats().total - sim.calls("sts", "GetCallerIdentity")
}

/// Two Secrets holding two AccessKeys of the same account, three watches each listing every
/// 2 s (three calls a second wanted), and `--calls-per-minute 60`: together they make the calls
/// of one budget (one a second after a burst of six), not of two. A third Secret holds key-a's id with a
/// wrong secret: its watch reports InvalidCredentials and the owner's watches keep the whole
/// budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_one_account_share_one_budget_and_a_borrowed_id_takes_none_of_it() {
    let ns = support::operator::namespace("budget-account").await;
    let sim = accounts_sim().await;
    create_secret(
        &ns,
        "key-a",
        &[("accessKeyId", "key-a"), ("accessKeySecret", "secret-a")],
    )
    .await;
    create_secret(
        &ns,
        "key-b",
        &[("accessKeyId", "key-b"), ("accessKeySecret", "secret-b")],
    )
    .await;
    create_secret(
        &ns,
        "borrowed",
        &[("accessKeyId", "key-a"), ("accessKeySecret", "a-guess")],
    )
    .await;
    for i in 0..6 {
        let secret = if i % 2 == 0 { "key-a" } else { "key-b" };
        create_watch(
            &ns,
            &format!("w{i}"),
            serde_json::json!({
                "provider": "sae", "endpoint": sim.url(), "appId": format!("app-{i}"),
                "credentialsSecretRef": {"name": secret},
            }),
        )
        .await;
    }
    create_watch(
        &ns,
        "intruder",
        serde_json::json!({
            "provider": "sae", "endpoint": sim.url(), "appId": "app-0",
            "credentialsSecretRef": {"name": "borrowed"},
        }),
    )
    .await;
    let _op = Operator::start_with_budget(ns.client(), ns.name(), settings(&sim), 60).await;
    wait_watch_ready(&ns, "intruder", "False", "InvalidCredentials").await;
    eventually("every owner's watch polled", Duration::from_secs(60), || async {
        let mut all = true;
        for i in 0..6 {
            let w = ns
                .api::<changeorder_operator::crd::ChangeOrderWatch>()
                .get(&format!("w{i}"))
                .await
                .ok()?;
            all &= watch_ready(&w).is_some_and(|r| r.0 == "True");
        }
        all.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = cloud_calls(&sim);
    tokio::time::sleep(Duration::from_secs(16)).await;
    let calls = cloud_calls(&sim) - before;
    eprintln!(
        "one account, two keys, six busy watches and a borrowed key id: {calls} calls in 16 s \
         at 60/min ({} GetCallerIdentity calls in all)",
        sim.calls("sts", "GetCallerIdentity")
    );
    // One budget: 16 calls in 16 s, plus a refilled burst of 6, one granted just before the
    // window, and the intruder's own small bucket (one call, then one per 10 s). Two budgets
    // (one per key, as before) make about twice as many.
    assert!(
        calls <= 16 + 6 + 1 + 2,
        "{calls} calls: more than one account's budget"
    );
    // The owner's watches got (nearly) the whole budget: the intruder took none of it.
    assert!(calls >= 12, "{calls} calls: the owner's budget was shared");
    // Once per credential: two keys and the borrowed one.
    assert!(sim.calls("sts", "GetCallerIdentity") <= 3 + 1);
}
