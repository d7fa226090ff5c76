//! An API-server outage while orders change: the operator keeps running, `/ready` reports the
//! outage, and once the API server is back everything converges without a restart. Its own
//! cluster: stopping the API server would disturb any other test sharing one.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::cluster::{TestCluster, eventually};
use support::convergence::*;
use support::operator::*;
use support::process::*;

fn cluster() -> &'static TestCluster {
    TestCluster::isolated("outage")
}

fn cluster_sh(verb: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/cluster.sh");
    let out = Command::new(script)
        .args([verb, &cluster().dir().display().to_string()])
        .output()
        .expect("cluster.sh runs");
    assert!(
        out.status.success(),
        "cluster.sh {verb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_outage_is_reported_and_survived() {
    let ns = namespace_in(cluster(), "outage").await;
    // Orders change at 14-18 s and later, inside the outage.
    let (yaml, moving) = moving_scenario("ou", 6, 6, 4, "");
    let sim = start_sim(&yaml).await;
    let watch = sae_watch(&ns, "outage", &sim, "ou-app").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut op = start_operator_on(cluster(), "operator", dir.path(), &operator_args(&ns, port, &[]));
    eventually("first sync and ready", Duration::from_secs(60), || async {
        let synced = orders(&ns).await.iter().filter(|o| o.status.is_some()).count() == 10;
        let ready = http_get(port, "/ready").await.is_some_and(|(s, _)| s == 200);
        (synced && ready).then_some(())
    })
    .await;

    let down = Instant::now();
    cluster_sh("stop-apiserver");
    eventually("/ready reports the outage", Duration::from_secs(20), || async {
        http_get(port, "/ready").await.filter(|(s, _)| *s == 503)
    })
    .await;
    let noticed = down.elapsed();
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down.elapsed())).await;
    assert!(
        op.child.try_wait().expect("process state").is_none(),
        "the operator kept running through the outage"
    );
    let up = Instant::now();
    cluster_sh("start-apiserver");
    eventually("ready again", Duration::from_secs(60), || async {
        http_get(port, "/ready").await.filter(|(s, _)| *s == 200)
    })
    .await;
    let ready_again = up.elapsed();
    // The timelines end at 58 s; then everything must be as the cloud says.
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(down.elapsed())).await;
    let took = wait_converged(&ns, &sim, &watch, &moving, Duration::from_secs(90)).await;
    eprintln!(
        "API server outage of 30 s: /ready reported it {:.1} s after the stop began and was 200 again {:.1} s after the \
         start began; converged {:.1} s after the timelines ended, no operator restart",
        noticed.as_secs_f64(),
        ready_again.as_secs_f64(),
        took.as_secs_f64()
    );
}
