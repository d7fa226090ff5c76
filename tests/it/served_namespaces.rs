//! `run --namespaces` naming a namespace more than once (`ns, ns ,ns`) serves it once: the API
//! server sees as many watch streams on the namespace's ChangeOrderWatches as with `ns` alone,
//! not one per spelling (two controllers would poll the same watches twice). Counted with the
//! API server's own gauge of open watch requests, on a cluster of its own.

use crate::support;

use std::time::Duration;

use support::cluster::{TestCluster, eventually};
use support::operator::*;
use support::process::*;

/// Open WATCH requests on ChangeOrderWatches, from the API server's `/metrics`.
async fn open_watch_streams(client: &kube::Client) -> u64 {
    let req = http::Request::get("/metrics").body(Vec::new()).expect("request");
    let text = client.request_text(req).await.expect("apiserver /metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_longrunning_requests{"))
        .filter(|l| l.contains(r#"resource="changeorderwatches""#) && l.contains(r#"verb="WATCH""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The number of open streams once it holds still for 3 s (controllers open their watches after
/// they start; a stopped process's streams take a moment to close): nonzero when `open`.
async fn settled_streams(client: &kube::Client, open: bool) -> u64 {
    eventually("the watch streams to settle", Duration::from_secs(60), || async {
        let now = open_watch_streams(client).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let again = open_watch_streams(client).await;
        (now == again && (now > 0) == open).then_some(now)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_named_twice_is_served_by_one_controller() {
    let ns = namespace_in(TestCluster::isolated("namespaces"), "twice").await;
    let client = ns.client();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = ns.cluster().kubeconfig().display().to_string();
    let run = |name: &str, namespaces: String| {
        let port = free_port();
        let env = vec![
            ("KUBECONFIG".to_string(), kubeconfig.clone()),
            ("CHANGEORDER_NAMESPACES".to_string(), namespaces),
            ("CHANGEORDER_LEADER_ELECTION".to_string(), "false".to_string()),
            (
                "CHANGEORDER_ADMIN_LISTEN".to_string(),
                format!("127.0.0.1:{port}"),
            ),
        ];
        (Proc::spawn(name, dir.path(), &env, &[]), port)
    };
    let (mut once, port) = run("once", ns.name().to_string());
    eventually("the operator to be ready", Duration::from_secs(60), || async {
        (http_get(port, "/ready").await.map(|r| r.0) == Some(200)).then_some(())
    })
    .await;
    let single = settled_streams(&client, true).await;
    once.terminate();
    assert_eq!(
        once.exit_code(Duration::from_secs(20)).await,
        Some(0),
        "{}",
        once.log()
    );
    assert_eq!(settled_streams(&client, false).await, 0);

    let twice = format!("{0}, {0} ,{0}", ns.name());
    let (mut doubled, port) = run("twice", twice);
    eventually("the operator to be ready", Duration::from_secs(60), || async {
        (http_get(port, "/ready").await.map(|r| r.0) == Some(200)).then_some(())
    })
    .await;
    let repeated = settled_streams(&client, true).await;
    doubled.terminate();
    assert_eq!(
        doubled.exit_code(Duration::from_secs(20)).await,
        Some(0),
        "{}",
        doubled.log()
    );
    eprintln!(
        "watch streams on ChangeOrderWatches: {single} with the namespace once, {repeated} with it named twice"
    );
    assert_eq!(
        repeated, single,
        "the namespace named twice opened {repeated} watch streams, once {single}"
    );
}
