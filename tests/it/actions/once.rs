//! A write is sent at most once, whatever the cloud or the API server answers: a write the
//! cloud carried out but answered `SignatureNonceUsed` (a gateway resend) is settled by reading,
//! never sent again; a claim whose reply from the API server was lost says nothing was sent;
//! EDAS abort-and-rollback runs once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use changeorder_cloud::actions::{Write, WriteOutcome};
use changeorder_cloud::model::RawStatus;
use changeorder_operator::crd::{ActionPhase, ChangeOrderAction};
use changeorder_sim as sim;
use kube::ResourceExt;
use kube::client::{Body, ClientBuilder};

use super::{
    APP, WAITING, WRITES, client, create_action, enabled, keys, order_named, outcome, scenario, slow_watch,
    state, target, waiting_pipeline,
};
use crate::support::cluster::{TestNamespace, eventually};
use crate::support::operator::*;

/// An EDAS app with an order in flight (batch 1 of 2 running).
const EDAS: &str = "apps:\n  - provider: edas\n    appId: e-app\n    changeOrders:\n      - { id: e-run, createdAt: -1m, batchCount: 2, status: 1, currentBatch: 1 }\n";

async fn edas_watch(ns: &TestNamespace, sim: &sim::RunningSim) {
    create_watch(
        ns,
        "rel",
        serde_json::json!({"provider": "edas", "endpoint": sim.url(), "appId": "e-app",
            "credentialsSecretRef": {"name": "cloud"}, "interval": "2m", "inFlightInterval": "60s",
            "actions": {"allowed": ["Abort", "AbortAndRollback"]}}),
    )
    .await;
}

/// The simulator carries a write out and answers `400 SignatureNonceUsed`, as a gateway that
/// resent it would: the client does not send it again with a new nonce (one call), and says the
/// outcome is unknown, for SAE confirm and EDAS rollback alike.
#[tokio::test]
async fn sim_a_write_answered_nonce_used_is_not_sent_again() {
    let faults = "faults:\n  - { kind: gatewayResend, actions: [ConfirmPipelineBatch, AbortAndRollbackChangeOrder] }\n";
    let sim = start_sim(&format!("{faults}{WRITES}")).await;
    let c = client(3);
    let creds = keys(sim::DEFAULT_ACCESS_KEY_SECRET);
    let t = target("sae", "s", &sim, "v3");
    let confirm = waiting_pipeline(&c, &t, "s-wait").await;
    let o = c.act(&t, &creds, "s-wait", &confirm).await;
    assert!(
        matches!(&o, WriteOutcome::Unknown(e) if e.code.as_deref() == Some("SignatureNonceUsed")),
        "{o:?}"
    );
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 1, "never sent again");
    assert_eq!(
        state(&c, &t, "s-wait").await,
        (RawStatus::Code(1), Some(2)),
        "carried out once"
    );
    let edas = target("edas", "e", &sim, "roa");
    let o = c.act(&edas, &creds, "e-run", &Write::AbortAndRollback).await;
    assert!(matches!(o, WriteOutcome::Unknown(_)), "{o:?}");
    assert_eq!(sim.calls("edas", "AbortAndRollbackChangeOrder"), 1);
    assert_eq!(state(&c, &edas, "e-run").await.0, RawStatus::Code(6));
}

/// The operator's confirm is carried out by the cloud and answered `SignatureNonceUsed`: the
/// request is settled by reading the order (the batch moved on, so `Succeeded`), and the write
/// was made exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_answered_nonce_used_is_settled_by_reading_not_resent() {
    let ns = namespace("act-resend").await;
    let faults = "faults:\n  - { kind: gatewayResend, actions: [ConfirmPipelineBatch], limit: 1 }\n";
    let sim = start_sim(&scenario(faults)).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "rel", &sim, APP, &["Confirm"]).await;
    let _op = Operator::start(ns.client(), ns.name(), enabled(Duration::from_secs(3600))).await;
    let waiting = order_named(&ns, WAITING).await.name_any();
    create_action(&ns, "go", &waiting, "Confirm", Some(2)).await;
    let (p, reason, message) = outcome(&ns, "go", Duration::from_secs(30)).await;
    assert_eq!(
        (p, reason.as_str()),
        (ActionPhase::Succeeded, "Confirmed"),
        "{message}"
    );
    assert!(message.contains("not sent again"), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sim.calls("sae", "ConfirmPipelineBatch"),
        1,
        "exactly one write call"
    );
}

/// EDAS `AbortAndRollbackChangeOrder` through the operator: sent once, the order ends
/// terminated and the rollback order is named in the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edas_rollback_is_sent_once_and_terminates_the_order() {
    let ns = namespace("act-edas-rb").await;
    let sim = start_sim(EDAS).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    edas_watch(&ns, &sim).await;
    let _op = Operator::start(ns.client(), ns.name(), enabled(Duration::from_secs(3600))).await;
    let running = order_named(&ns, "e-run").await.name_any();
    create_action(&ns, "back", &running, "AbortAndRollback", None).await;
    let (p, reason, message) = outcome(&ns, "back", Duration::from_secs(30)).await;
    assert_eq!(
        (p, reason.as_str()),
        (ActionPhase::Succeeded, "AbortedAndRolledBack"),
        "{message}"
    );
    let action = ns.api::<ChangeOrderAction>().get("back").await.expect("action");
    let rollback = action
        .status
        .and_then(|s| s.rollback_change_order_id)
        .expect("the rollback order is named");
    assert_ne!(rollback, "e-run");
    assert_eq!(sim.calls("edas", "AbortAndRollbackChangeOrder"), 1);
    assert_eq!(sim.calls("edas", "AbortChangeOrder"), 0);
    let c = client(1);
    let t = target("edas", "e-app", &sim, "roa");
    assert_eq!(state(&c, &t, "e-run").await.0, RawStatus::Code(6), "terminated");
    let shown = eventually(
        "the ChangeOrder shows the order terminated",
        Duration::from_secs(20),
        || async {
            let o = order(&ns, "e-run").await?;
            (phase(&o).as_deref() == Some("Cancelled")).then_some(())
        },
    )
    .await;
    let () = shown;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sim.calls("edas", "AbortAndRollbackChangeOrder"), 1, "never again");
}

/// What the API-server connection does to the claims (`PUT .../changeorderactions/NAME/status`)
/// of some requests, once each.
#[derive(Clone, Default)]
struct LoseClaims {
    /// The claim is stored, but its reply never comes back.
    reply_lost: Arc<Mutex<HashSet<String>>>,
    /// The claim never reaches the API server.
    request_lost: Arc<Mutex<HashSet<String>>>,
}

impl LoseClaims {
    fn take(set: &Mutex<HashSet<String>>, name: &str) -> bool {
        set.lock().map(|mut s| s.remove(name)).unwrap_or(false)
    }

    /// A client that forwards everything to `inner`, but loses claims as told.
    fn client(&self, inner: kube::Client, ns: &str) -> kube::Client {
        let me = self.clone();
        let svc = tower::service_fn(move |req: http::Request<Body>| {
            let inner = inner.clone();
            let me = me.clone();
            async move {
                let path = req.uri().path().to_string();
                let claim = (req.method() == http::Method::PUT)
                    .then(|| path.strip_suffix("/status"))
                    .flatten()
                    .and_then(|p| p.split_once("/changeorderactions/"))
                    .map(|(_, name)| name.to_string());
                if let Some(name) = &claim
                    && Self::take(&me.request_lost, name)
                {
                    return Err::<http::Response<Body>, tower::BoxError>(
                        "connection reset before the request was sent".into(),
                    );
                }
                let resp = inner.send(req).await?;
                if let Some(name) = &claim
                    && Self::take(&me.reply_lost, name)
                {
                    return Err("connection reset: the reply was lost".into());
                }
                Ok(resp)
            }
        });
        ClientBuilder::new(svc, ns).build()
    }
}

/// The API server stores a claim but its reply is lost: the operator knows it sent nothing, and
/// the status says so (not `OutcomeUnknown`); it is never sent later. A claim that never reached
/// the API server leaves the request `Pending`, and it is then sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_reply_is_lost_says_nothing_was_sent() {
    let ns = namespace("act-claim").await;
    let sim = start_sim(&scenario("")).await;
    access_key_secret(&ns, "cloud", sim::DEFAULT_ACCESS_KEY_SECRET).await;
    slow_watch(&ns, "rel", &sim, APP, &["Confirm"]).await;
    let lose = LoseClaims::default();
    for (set, name) in [
        (&lose.reply_lost, "lost-reply"),
        (&lose.request_lost, "lost-request"),
    ] {
        set.lock().expect("lock").insert(name.to_string());
    }
    let client = lose.client(ns.client(), ns.name());
    let _op = Operator::start(client, ns.name(), enabled(Duration::from_secs(3600))).await;
    let waiting = order_named(&ns, WAITING).await.name_any();

    create_action(&ns, "lost-reply", &waiting, "Confirm", Some(2)).await;
    let (p, reason, message) = outcome(&ns, "lost-reply", Duration::from_secs(30)).await;
    assert_eq!(
        (p, reason.as_str()),
        (ActionPhase::Failed, "NotSent"),
        "{message}"
    );
    assert!(message.contains("nothing was sent to the cloud"), "{message}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 0, "nothing was sent");
    let a = ns
        .api::<ChangeOrderAction>()
        .get("lost-reply")
        .await
        .expect("action");
    assert_eq!(a.status.and_then(|s| s.phase), Some(ActionPhase::Failed), "still");

    create_action(&ns, "lost-request", &waiting, "Confirm", Some(2)).await;
    let (p, reason, message) = outcome(&ns, "lost-request", Duration::from_secs(30)).await;
    assert_eq!(
        (p, reason.as_str()),
        (ActionPhase::Succeeded, "Confirmed"),
        "{message}"
    );
    assert_eq!(sim.calls("sae", "ConfirmPipelineBatch"), 1, "sent once");
}
