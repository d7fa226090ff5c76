//! The admin HTTP server: `/live`, `/ready` and `/metrics` for the kubelet and Prometheus.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::controller::metrics::Metrics;

/// Content type of the OpenMetrics text format, which `Metrics::encode` writes.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the process is ready to do its job, as `/ready` reports it.
///
/// Starts not ready. The owner sets it once the caches have synced and the CRDs exist and, with
/// leader election, while this replica either leads or stands by with a working API connection:
/// a healthy standby is ready too, so a rollout does not wait for a lease it cannot get.
/// The API server being unreachable makes it not ready too (see [`Readiness::set_api_reachable`]).
#[derive(Clone, Debug)]
pub struct Readiness {
    ready: Arc<AtomicBool>,
    api_reachable: Arc<AtomicBool>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            ready: Arc::default(),
            api_reachable: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the last check of the API server answered: during an outage nothing can be
    /// written, and `/ready` says so.
    pub fn set_api_reachable(&self, reachable: bool) {
        self.api_reachable.store(reachable, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.api_reachable.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The admin routes, for callers that mount them in a server of their own.
pub fn router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, readiness })
}

/// Serves the admin routes on `listener` until `shutdown` resolves, then lets requests in flight
/// finish before returning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin server listening");
    }
    axum::serve(listener, router(metrics, readiness))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The process is up and its runtime answers; nothing deeper, so a slow API server never gets
/// the pod restarted.
async fn live() -> &'static str {
    "ok\n"
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    struct Server {
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        task: JoinHandle<std::io::Result<()>>,
    }

    async fn start(metrics: Metrics, readiness: Readiness) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, metrics, readiness, async {
            let _ = stopped.await;
        }));
        Server { addr, stop, task }
    }

    async fn get(addr: SocketAddr, path: &str) -> reqwest::Response {
        reqwest::get(format!("http://{addr}{path}"))
            .await
            .expect("request")
    }

    #[tokio::test]
    async fn live_is_always_ok() {
        let s = start(Metrics::new(), Readiness::new()).await;
        let r = get(s.addr, "/live").await;
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn ready_follows_readiness() {
        let readiness = Readiness::new();
        let s = start(Metrics::new(), readiness.clone()).await;
        assert_eq!(get(s.addr, "/ready").await.status(), 503);
        readiness.set_ready(true);
        assert_eq!(get(s.addr, "/ready").await.status(), 200);
        readiness.set_api_reachable(false);
        assert_eq!(get(s.addr, "/ready").await.status(), 503, "API server outage");
        readiness.set_api_reachable(true);
        assert_eq!(get(s.addr, "/ready").await.status(), 200);
        readiness.set_ready(false);
        assert_eq!(get(s.addr, "/ready").await.status(), 503);
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_text() {
        let metrics = Metrics::new();
        metrics.poll(changeorder_cloud::model::Provider::Sae, "ok");
        let s = start(metrics, Readiness::new()).await;
        let r = get(s.addr, "/metrics").await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some(OPENMETRICS_CONTENT_TYPE)
        );
        let body = r.text().await.expect("body");
        assert!(
            body.contains(r#"changeorder_polls_total{provider="sae",result="ok"} 1"#),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let s = start(Metrics::new(), Readiness::new()).await;
        assert_eq!(get(s.addr, "/healthz").await.status(), 404);
    }

    /// The port is unauthenticated: it serves three read-only paths and nothing else.
    #[tokio::test]
    async fn only_three_read_only_endpoints_are_served() {
        let s = start(Metrics::new(), Readiness::new()).await;
        for path in [
            "/",
            "/debug/pprof",
            "/metrics/",
            "/live/x",
            "/readyz",
            "/config",
            "/env",
        ] {
            assert_eq!(get(s.addr, path).await.status(), 404, "{path}");
        }
        let client = reqwest::Client::new();
        for path in ["/live", "/ready", "/metrics"] {
            for method in [
                reqwest::Method::POST,
                reqwest::Method::PUT,
                reqwest::Method::DELETE,
            ] {
                let r = client
                    .request(method.clone(), format!("http://{}{path}", s.addr))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(r.status(), 405, "{method} {path}");
            }
        }
    }

    #[tokio::test]
    async fn shuts_down_gracefully() {
        let s = start(Metrics::new(), Readiness::new()).await;
        assert_eq!(get(s.addr, "/live").await.status(), 200);
        s.stop.send(()).expect("server still running");
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), s.task)
            .await
            .expect("server stops within 5s")
            .expect("server task did not panic");
        assert!(result.is_ok(), "{result:?}");
        assert!(
            reqwest::get(format!("http://{}/live", s.addr)).await.is_err(),
            "still serving after shutdown"
        );
    }
}
