//! The fault suite: the operator binary as a real process against the local control plane and
//! the simulator, while the cloud fails on purpose, the process is killed with SIGKILL, and
//! the cloud sends orders too large or oddly named. Each test ends by checking the promise:
//! every order the cloud has exists exactly once, with the status the cloud last reported.

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use changeorder_operator::crd::ChangeOrderWatch;
use changeorder_operator::mapping;
use support::cluster::eventually;
use support::convergence::*;
use support::operator::*;
use support::process::*;

/// Throttling, 5xx, timeouts and malformed JSON on about 30 % of all calls (list and describe
/// alike) while orders move; after the faults stop, everything converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_faults_lose_nothing_and_converge_after() {
    let ns = namespace("faults-cloud").await;
    let faults = "faults:\n  - { kind: throttling, rate: 0.1, limit: 40, duration: 1s }\n  - { kind: internalError, rate: 0.08, limit: 30 }\n  - { kind: serviceUnavailable, rate: 0.05, limit: 20 }\n  - { kind: malformedJson, rate: 0.05, limit: 20 }\n  - { kind: latency, rate: 0.03, limit: 10, duration: 3s }\n";
    let (yaml, moving) = moving_scenario("fc", 4, 8, 6, faults);
    let sim = start_sim(&yaml).await;
    let watch = sae_watch(&ns, "faulty", &sim, "fc-app").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _op = start_operator("operator", dir.path(), &operator_args(&ns, port, &[]));

    // Let the timelines run out (the last step is at 52 s) under faults.
    tokio::time::sleep(Duration::from_secs(56)).await;
    let injected = faults_injected(&sim);
    let calls = sim.stats().total;
    let took = wait_converged(&ns, &sim, &watch, &moving, Duration::from_secs(60)).await;
    eprintln!(
        "fault suite (cloud): {injected} faults in {calls} calls ({:.0} %); converged {:.1} s after the timelines ended",
        100.0 * injected as f64 / calls.max(1) as f64,
        took.as_secs_f64()
    );
    assert!(
        injected >= 20,
        "only {injected} faults in {calls} calls: the suite tests little"
    );
}

/// kill -9 at random moments during a cold sync of a few hundred orders and while they change,
/// 20 times, restarting each time: no duplicates, nothing lost, all converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing() {
    let ns = namespace("faults-kill").await;
    let (yaml, moving) = moving_scenario("fk", 15, 20, 280, "");
    let sim = start_sim(&yaml).await;
    let watch = sae_watch(&ns, "killed", &sim, "fk-app").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let args = operator_args(&ns, free_port(), &[]);
    let mut kills = 0;
    let started = Instant::now();
    while kills < 20 {
        let mut op = start_operator(&format!("operator-{kills}"), dir.path(), &args);
        let wait = Duration::from_millis(300 + rand::random::<u64>() % 1700);
        tokio::time::sleep(wait).await;
        op.child.kill().expect("SIGKILL");
        let _ = op.child.wait();
        kills += 1;
    }
    let killing = started.elapsed();
    let synced_before = orders(&ns).await.len();
    // One last run that is not killed, while the orders finish (last step at 63 s).
    let _op = start_operator("operator-final", dir.path(), &args);
    tokio::time::sleep(Duration::from_secs(66).saturating_sub(started.elapsed())).await;
    let took = wait_converged(&ns, &sim, &watch, &moving, Duration::from_secs(90)).await;
    eprintln!(
        "fault suite (SIGKILL): {kills} kills in {:.1} s ({synced_before} of 300 objects written by then); \
         converged {:.1} s after the timelines ended",
        killing.as_secs_f64(),
        took.as_secs_f64()
    );
}

/// An order with a 2 MiB message, ids that used to make invalid or colliding names, and an id
/// too long to be one sit beside normal orders: the normal ones sync, the odd ones get valid
/// distinct names, the impossible one is reported on the watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_and_oddly_named_orders_do_not_stop_the_others() {
    let ns = namespace("faults-odd").await;
    let huge = "x".repeat(2 << 20);
    let long_id = "y".repeat(mapping::MAX_ORDER_ID_LEN + 10);
    let mut yaml = String::from(
        "timeZone: \"+08:00\"\napps:\n  - provider: sae\n    appId: odd-app\n    changeOrders:\n",
    );
    for (id, status) in [
        ("normal-1", 2),
        ("normal-2", 1),
        ("ABC", 2),
        ("abc", 2),
        ("a_.b", 2),
        ("v1..2", 2),
    ] {
        yaml.push_str(&format!(
            "      - {{ id: \"{id}\", status: {status}, batchCount: 1 }}\n"
        ));
    }
    yaml.push_str(&format!(
        "      - {{ id: \"huge\", status: 1, batchCount: 1, message: \"{huge}\" }}\n"
    ));
    yaml.push_str(&format!(
        "      - {{ id: \"{long_id}\", status: 2, batchCount: 1 }}\n"
    ));
    let sim = start_sim(&yaml).await;
    let watch = sae_watch(&ns, "odd", &sim, "odd-app").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let _op = start_operator("operator", dir.path(), &operator_args(&ns, free_port(), &[]));

    let want: BTreeSet<&str> = ["normal-1", "normal-2", "ABC", "abc", "a_.b", "v1..2", "huge"].into();
    let objects = eventually("every writable order synced", Duration::from_secs(60), || async {
        let all = orders(&ns).await;
        let ids: BTreeSet<&str> = all
            .iter()
            .map(|o| o.spec.change_order_id.as_str())
            .collect::<BTreeSet<_>>();
        (want.iter().all(|w| ids.contains(w)) && all.iter().all(|o| o.status.is_some()))
            .then_some(all.clone())
    })
    .await;
    assert_eq!(
        objects.len(),
        want.len(),
        "one object per order, the long id refused"
    );
    let names: BTreeSet<String> = objects.iter().filter_map(|o| o.metadata.name.clone()).collect();
    assert_eq!(names.len(), objects.len(), "distinct names: {names:?}");
    let huge_obj = objects
        .iter()
        .find(|o| o.spec.change_order_id == "huge")
        .expect("huge order");
    let message = huge_obj
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .expect("Ready");
    assert!(
        message.len() <= mapping::MAX_TEXT_LEN && message.ends_with('…'),
        "{}",
        message.len()
    );

    // The refused one is reported: the watch's condition and an Event, without stopping polls.
    let w = eventually(
        "the watch reports the refused order",
        Duration::from_secs(30),
        || async {
            let w = ns.api::<ChangeOrderWatch>().get("odd").await.ok()?;
            let ready = w
                .status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (ready.status == "False"
                && ready.reason == "OrderWriteFailed"
                && ready.message.contains("over the limit"))
            .then_some(w)
        },
    )
    .await;
    assert_eq!(
        w.status.as_ref().and_then(|s| s.orders.as_ref()).map(|c| c.total),
        Some(7)
    );
    eventually(
        "an Event names the refused order",
        Duration::from_secs(30),
        || async {
            event_reasons(&ns, "odd")
                .contains("OrderWriteFailed")
                .then_some(())
        },
    )
    .await;
    let _ = watch;
}
