//! Leader election against a real kube-apiserver: two candidates in one process, one Lease.

mod support;

use std::time::Duration;

use changeorder_operator::controller::leader::{ElectionConfig, ElectionState, LeaderElection};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use support::cluster::{TestCluster, eventually};
use tokio::time::Instant;

const LEASE: &str = "changeorder-operator";
const DURATION: Duration = Duration::from_secs(3);

fn candidate(client: kube::Client, namespace: &str, identity: &str) -> LeaderElection {
    LeaderElection::new(client, ElectionConfig::new(namespace, LEASE, identity, DURATION))
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get(LEASE)
        .await
        .expect("read the Lease")
        .spec
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn one_leads_and_release_hands_over_quickly() {
    let ns = TestCluster::get().namespace("leader-release").await;
    let leases: Api<Lease> = ns.api();
    let a = candidate(ns.client(), ns.name(), "a");
    let b = candidate(ns.client(), ns.name(), "b");

    let a_leads = a.acquire().await.expect("a acquires a free Lease");
    assert!(a_leads.is_leading());
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));

    // b stands by for more than two lease durations: a keeps renewing, so b never leads.
    let mut b_state = b.subscribe();
    let b_task = tokio::spawn(async move {
        let leadership = b.acquire().await.expect("b acquires eventually");
        (b, leadership, Instant::now())
    });
    let first_renew = leases
        .get(LEASE)
        .await
        .expect("read")
        .spec
        .and_then(|s| s.renew_time);
    tokio::time::sleep(DURATION * 2 + Duration::from_millis(500)).await;
    assert!(!b_task.is_finished(), "b took over a Lease that a was renewing");
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));
    let later_renew = leases
        .get(LEASE)
        .await
        .expect("read")
        .spec
        .and_then(|s| s.renew_time);
    assert!(
        later_renew > first_renew,
        "a did not renew: {first_renew:?} → {later_renew:?}"
    );
    assert_eq!(
        *b_state.borrow_and_update(),
        ElectionState::Standby { leader: "a".into() }
    );

    // a shuts down gracefully: b leads well within one lease duration.
    let released = Instant::now();
    a_leads.release().await;
    let (_b, b_leads, b_at) = tokio::time::timeout(DURATION, b_task)
        .await
        .expect("b takes over within the lease duration after release")
        .expect("b's task did not panic");
    assert!(b_leads.is_leading());
    assert!(b_at.duration_since(released) < DURATION);
    let spec = leases.get(LEASE).await.expect("read").spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    b_leads.release().await;
}

#[tokio::test]
async fn a_crashed_leader_is_replaced_after_expiry() {
    let ns = TestCluster::get().namespace("leader-expiry").await;
    let leases: Api<Lease> = ns.api();
    let a = candidate(ns.client(), ns.name(), "a");
    let b = candidate(ns.client(), ns.name(), "b");

    let a_leads = a.acquire().await.expect("a acquires");
    // Dropping without release stops renewing but leaves a's name in the Lease, like a crash.
    drop(a_leads);
    let started = Instant::now();
    let b_leads = tokio::time::timeout(DURATION * 2 + Duration::from_secs(2), b.acquire())
        .await
        .expect("b takes over once the Lease expires")
        .expect("b acquires");
    // Not before the Lease expired (renewals stopped at most a third of it before the drop).
    assert!(
        started.elapsed() >= DURATION * 2 / 3 - Duration::from_millis(100),
        "b took over after only {:?}",
        started.elapsed()
    );
    assert!(b_leads.is_leading());
    assert_eq!(holder(&leases).await.as_deref(), Some("b"));
    b_leads.release().await;
}

#[tokio::test]
async fn a_leader_notices_when_its_lease_is_taken() {
    let ns = TestCluster::get().namespace("leader-lost").await;
    let leases: Api<Lease> = ns.api();
    let a = candidate(ns.client(), ns.name(), "a");
    let a_leads = a.acquire().await.expect("a acquires");

    // Someone else (an operator, a buggy replica) writes itself into the Lease.
    let mut lease = leases.get(LEASE).await.expect("read");
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some("intruder".into());
    }
    leases
        .replace(LEASE, &PostParams::default(), &lease)
        .await
        .expect("overwrite the holder");

    tokio::time::timeout(DURATION, a_leads.lost())
        .await
        .expect("a notices at its next renewal");
    assert!(!a_leads.is_leading());
    eventually("a's state to be Stopped", Duration::from_secs(2), || {
        let stopped = *a.subscribe().borrow() == ElectionState::Stopped;
        async move { stopped.then_some(()) }
    })
    .await;
    // Releasing a lost leadership must leave the intruder's Lease alone.
    a_leads.release().await;
    assert_eq!(holder(&leases).await.as_deref(), Some("intruder"));
}
