//! Leader election against a real kube-apiserver: two candidates in one process, one Lease.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use changeorder_operator::controller::leader::{ElectionConfig, ElectionState, LeaderElection, WallClock};
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

/// A wall clock off by `skew` (positive: ahead).
fn skewed(skew: jiff::SignedDuration) -> WallClock {
    Arc::new(move || {
        jiff::Timestamp::now()
            .checked_add(skew)
            .expect("skewed time in range")
    })
}

const MINUTES_5: jiff::SignedDuration = jiff::SignedDuration::from_secs(300);

#[tokio::test]
async fn a_leader_whose_clock_is_behind_keeps_the_lease() {
    // a writes renewTimes five minutes in the past. A standby comparing renewTime with its own
    // clock would take over at once from this healthy leader.
    let ns = TestCluster::get().namespace("leader-skew-behind").await;
    let leases: Api<Lease> = ns.api();
    let a = candidate(ns.client(), ns.name(), "a").with_clock(skewed(-MINUTES_5));
    let b = candidate(ns.client(), ns.name(), "b");
    let a_leads = a.acquire().await.expect("a acquires");
    let b_task = tokio::spawn(async move { b.acquire().await.map(|l| (l, Instant::now())) });
    tokio::time::sleep(DURATION * 3).await;
    assert!(
        !b_task.is_finished(),
        "b took over from a healthy leader whose clock is 5 minutes behind"
    );
    assert!(a_leads.is_leading());
    assert_eq!(holder(&leases).await.as_deref(), Some("a"));
    b_task.abort();
    a_leads.release().await;
}

#[tokio::test]
async fn a_crashed_leader_whose_clock_was_ahead_is_replaced_after_one_lease_duration() {
    // a wrote renewTimes five minutes in the future, then crashed. A standby comparing renewTime
    // with its own clock would wait five minutes.
    let ns = TestCluster::get().namespace("leader-skew-ahead").await;
    let leases: Api<Lease> = ns.api();
    let a = candidate(ns.client(), ns.name(), "a").with_clock(skewed(MINUTES_5));
    let b = candidate(ns.client(), ns.name(), "b");
    drop(a.acquire().await.expect("a acquires"));
    let started = Instant::now();
    let b_leads = tokio::time::timeout(DURATION * 3, b.acquire())
        .await
        .expect("b takes over about one lease duration after it last saw a renew")
        .expect("b acquires");
    let waited = started.elapsed();
    // b first sees the Lease as a left it and counts a full duration from there.
    assert!(waited >= DURATION, "b took over after only {waited:?}");
    assert_eq!(holder(&leases).await.as_deref(), Some("b"));
    b_leads.release().await;
}

/// A TCP forwarder to the API server that can be cut, to cut one replica off.
struct Cuttable {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Cuttable {
    async fn start(upstream: String) -> Cuttable {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the forwarder");
        let addr = listener.local_addr().expect("forwarder address");
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c, k) = (cut.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                k.lock().expect("lock").push(task);
            }
        });
        Cuttable {
            addr,
            cut,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.conns.lock().expect("lock").drain(..) {
            task.abort();
        }
    }
}

impl Drop for Cuttable {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn a_cut_off_leader_stops_a_third_of_the_lease_before_anyone_takes_over() {
    let ns = TestCluster::get().namespace("leader-margin").await;
    let cluster = TestCluster::get();
    let upstream = cluster.apiserver_url().trim_start_matches("https://").to_string();
    let forwarder = Cuttable::start(upstream).await;
    let mut config = cluster.config().await;
    config.cluster_url = format!("https://{}", forwarder.addr)
        .parse()
        .expect("forwarder URL");
    let a_client = kube::Client::try_from(config).expect("client through the forwarder");
    // a's clock is behind too: the margin must not depend on the timestamps.
    let a = candidate(a_client, ns.name(), "a").with_clock(skewed(-MINUTES_5));
    let b = candidate(ns.client(), ns.name(), "b");
    let a_leads = a.acquire().await.expect("a acquires");
    let b_task = tokio::spawn(async move {
        let leadership = b.acquire().await.expect("b acquires eventually");
        (b, leadership, Instant::now())
    });
    tokio::time::sleep(DURATION).await;
    assert!(!b_task.is_finished(), "b took over from a healthy leader");

    forwarder.cut();
    tokio::time::timeout(DURATION, a_leads.lost())
        .await
        .expect("a gives up within its renew deadline");
    let a_stopped = Instant::now();
    let (_b, b_leads, b_at) = tokio::time::timeout(DURATION * 2, b_task)
        .await
        .expect("b takes over once the Lease expired")
        .expect("b's task did not panic");
    let margin = b_at.duration_since(a_stopped);
    eprintln!("margin between the leader stopping and the takeover: {margin:?}");
    // A third of the lease minus scheduling noise (b polls every sixth of it, so the measured
    // margin is usually larger).
    assert!(
        margin >= DURATION / 3 - Duration::from_millis(250),
        "b took over only {margin:?} after a stopped"
    );
    b_leads.release().await;
}
