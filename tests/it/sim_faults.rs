//! Injected faults over real HTTP: throttling, 5xx, latency, broken JSON; every Nth, at a seeded
//! rate, limited, per app.

use crate::sim_support;

use std::time::{Duration, Instant};

use sim_support::{Call, TOKEN, appstack, from_yaml};

const APPS: &str = "apps:
- provider: sae
  appId: sae-a
  changeOrders: [{id: a1}, {id: a2}]
- provider: sae
  appId: sae-b
  changeOrders: [{id: b1}]
- provider: edas
  appId: edas-a
  changeOrders: [{id: e1}]
- provider: appstack
  organizationId: org
  appName: web
  changeOrders: [{id: w1}]
";

fn scenario(faults: &str) -> String {
    format!("{faults}\n{APPS}")
}

#[tokio::test]
async fn throttling_every_nth_with_rate_limit_header() {
    let sim = from_yaml(&scenario(
        "faults:\n- kind: throttling\n  everyNth: 3\n  duration: 2s\n  actions: [DescribeChangeOrder]",
    ))
    .await;
    let mut outcomes = Vec::new();
    for _ in 0..9 {
        let r = Call::sae("DescribeChangeOrder", &[("ChangeOrderId", "a1")])
            .send(&sim)
            .await;
        if r.code() == "Throttling.User" {
            assert_eq!(r.status, 400);
            let h = r
                .headers
                .get("x-ratelimit-user-api")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert!(h.contains("Remain:0") && h.contains("TimeLeft:2000"), "{h}");
        }
        outcomes.push(r.code());
    }
    let throttled: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter(|(_, c)| *c == "Throttling.User")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(throttled, [2, 5, 8], "{outcomes:?}");
    // Other actions are not affected.
    let r = Call::sae("ListChangeOrders", &[("AppId", "sae-a")])
        .send(&sim)
        .await;
    assert_eq!(r.code(), "OK");
    assert_eq!(
        sim.stats()
            .outcome("sae", "DescribeChangeOrder", "Throttling.User"),
        3
    );
}

#[tokio::test]
async fn seeded_rate_is_repeatable() {
    let yaml = scenario("seed: 11\nfaults:\n- kind: internalError\n  rate: 0.3");
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sim = from_yaml(&yaml).await;
        let mut codes = Vec::new();
        for _ in 0..60 {
            let r = Call::edas_list("edas-a").send(&sim).await;
            if r.code() == "InternalError" {
                assert_eq!(r.status, 500);
            }
            codes.push(r.code());
        }
        runs.push(codes);
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    let n = runs[0].iter().filter(|c| *c == "InternalError").count();
    assert!((6..=32).contains(&n), "{n} of 60 at rate 0.3");
}

#[tokio::test]
async fn limit_and_service_unavailable() {
    let sim = from_yaml(&scenario(
        "faults:\n- kind: serviceUnavailable\n  limit: 2\n  providers: [sae]",
    ))
    .await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        let r = Call::sae("ListChangeOrders", &[("AppId", "sae-b")])
            .send(&sim)
            .await;
        codes.push((r.status, r.code()));
    }
    assert_eq!(codes[0], (503, "ServiceUnavailable".to_string()));
    assert_eq!(codes[1], (503, "ServiceUnavailable".to_string()));
    assert_eq!(codes[2], (200, "OK".to_string()));
    assert_eq!(codes[3], (200, "OK".to_string()));
    // EDAS was never the target.
    assert_eq!(Call::edas_list("edas-a").send(&sim).await.code(), "OK");
}

#[tokio::test]
async fn latency() {
    let sim = from_yaml(&scenario(
        "faults:\n- kind: latency\n  duration: 400ms\n  actions: [GetChangeOrderInfo]",
    ))
    .await;
    let t = Instant::now();
    let r = Call::edas_info("e1").send(&sim).await;
    assert_eq!(r.code(), "OK");
    assert!(t.elapsed() >= Duration::from_millis(400), "{:?}", t.elapsed());
}

#[tokio::test]
async fn malformed_json() {
    let sim = from_yaml(&scenario(
        "faults:\n- kind: malformedJson\n  actions: [ListRecentChangeOrder]",
    ))
    .await;
    let r = Call::edas_list("edas-a").send(&sim).await;
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&r.text).is_err(),
        "{}",
        r.text
    );
    assert!(
        r.text.starts_with('{'),
        "looks like JSON, but cut short: {}",
        r.text
    );
    assert_eq!(
        sim.stats()
            .outcome("edas", "ListRecentChangeOrder", "MalformedJson"),
        1
    );
}

#[tokio::test]
async fn per_app_faults_hit_only_that_app() {
    let yaml = APPS.replace(
        "  appId: sae-a\n",
        "  appId: sae-a\n  faults:\n  - kind: throttling\n",
    );
    let sim = from_yaml(&yaml).await;
    assert_eq!(
        Call::sae("ListChangeOrders", &[("AppId", "sae-a")])
            .send(&sim)
            .await
            .code(),
        "Throttling.User"
    );
    // Describe names only the order; the fault still follows its app.
    assert_eq!(
        Call::sae("DescribeChangeOrder", &[("ChangeOrderId", "a2")])
            .send(&sim)
            .await
            .code(),
        "Throttling.User"
    );
    assert_eq!(
        Call::sae("ListChangeOrders", &[("AppId", "sae-b")])
            .send(&sim)
            .await
            .code(),
        "OK"
    );
    assert_eq!(
        Call::sae("DescribeChangeOrder", &[("ChangeOrderId", "b1")])
            .send(&sim)
            .await
            .code(),
        "OK"
    );
}

#[tokio::test]
async fn appstack_throttling_is_429() {
    let sim = from_yaml(&scenario(
        "faults:\n- kind: throttling\n  providers: [appstack]\n  duration: 3s",
    ))
    .await;
    let r = appstack(
        &sim,
        "/oapi/v1/appstack/organizations/org/apps/web/changeOrders/versions",
        Some(TOKEN),
    )
    .await;
    assert_eq!((r.status, r.code()), (429, "TooManyRequests".to_string()));
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("3")
    );
}
