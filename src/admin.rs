//! The admin HTTP server: `/live`, `/ready` and `/metrics` for the kubelet and Prometheus.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// How much the admin server gives one client: anyone who reaches the port (no authentication)
/// must not be able to exhaust the process's sockets or memory with connections that do nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a whole request head. hyper starts this timer whenever it waits for a
    /// request, so it is also how long an idle (kept-alive or fresh) connection stays open.
    pub header_read_timeout: Duration,
    /// Open connections at most; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Largest request head accepted (the routes take no body).
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            // Far above what the kubelet and a few Prometheus replicas use.
            max_connections: 512,
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Serves the admin routes on `listener` until `shutdown` resolves, then lets requests in flight
/// finish before returning.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, metrics, readiness, Limits::default(), shutdown).await
}

/// [`serve`] with other limits (tests use short timeouts). HTTP/1 only: the kubelet and
/// Prometheus speak it, and hyper's HTTP/1 server has the header timeout.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    readiness: Readiness,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(metrics, readiness), limits, "admin", shutdown).await
}

/// The hardened accept loop shared by the admin and receiver servers: HTTP/1 only (hyper's
/// HTTP/1 server has the header timeout), at most `limits.max_connections` at once, graceful
/// shutdown. `name` only labels log lines.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    name: &'static str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, server = name, "listening");
    }
    let service = TowerToHyperService::new(router);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // A slot first, then accept: at the limit, new connections queue in the kernel's
        // backlog instead of costing a task and buffers here.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match stream {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, never spin.
                tracing::warn!(error = %e, server = name, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            // Timeouts and resets end here; nothing to report per connection.
            let _ = conn.await;
            drop(slot);
        });
    }
    drop(listener);
    // Idle connections close at once; requests in flight finish first.
    graceful.shutdown().await;
    Ok(())
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
        start_with(metrics, readiness, Limits::default()).await
    }

    async fn start_with(metrics: Metrics, readiness: Readiness, limits: Limits) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_with(listener, metrics, readiness, limits, async {
            let _ = stopped.await;
        }));
        Server { addr, stop, task }
    }

    fn short(timeout_ms: u64, max_connections: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(timeout_ms),
            max_connections,
            ..Limits::default()
        }
    }

    /// `/live` over a fresh connection, within `within`.
    async fn live_within(addr: SocketAddr, within: Duration) -> Option<u16> {
        let client = reqwest::Client::builder()
            .timeout(within)
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let r = client.get(format!("http://{addr}/live")).send().await.ok()?;
        Some(r.status().as_u16())
    }

    /// Whether the server closes `conn` within `within` (reads to EOF; a reply such as a 408
    /// before closing is fine).
    async fn closed_within(conn: &mut tokio::net::TcpStream, within: Duration) -> bool {
        use tokio::io::AsyncReadExt;
        let mut sink = Vec::new();
        matches!(
            tokio::time::timeout(within, conn.read_to_end(&mut sink)).await,
            Ok(Ok(_)) | Ok(Err(_))
        )
    }

    #[tokio::test]
    async fn live_answers_while_hundreds_of_connections_idle() {
        let s = start(Metrics::new(), Readiness::new()).await;
        let mut idle = Vec::new();
        for _ in 0..300 {
            idle.push(tokio::net::TcpStream::connect(s.addr).await.expect("connect"));
        }
        let started = std::time::Instant::now();
        assert_eq!(live_within(s.addr, Duration::from_secs(5)).await, Some(200));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        drop(idle);
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_header_timeout() {
        let s = start_with(Metrics::new(), Readiness::new(), short(300, 16)).await;
        let mut conn = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
        assert!(
            closed_within(&mut conn, Duration::from_secs(5)).await,
            "idle connection kept open"
        );
    }

    #[tokio::test]
    async fn a_kept_alive_connection_is_closed_when_idle() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let s = start_with(Metrics::new(), Readiness::new(), short(300, 16)).await;
        let mut conn = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
        conn.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut head = [0u8; 12];
        conn.read_exact(&mut head).await.expect("reply");
        assert_eq!(&head, b"HTTP/1.1 200");
        assert!(
            closed_within(&mut conn, Duration::from_secs(5)).await,
            "idle connection kept open"
        );
    }

    #[tokio::test]
    async fn a_partial_header_is_cut_off() {
        use tokio::io::AsyncWriteExt;
        let s = start_with(Metrics::new(), Readiness::new(), short(300, 16)).await;
        let mut conn = tokio::net::TcpStream::connect(s.addr).await.expect("connect");
        // A slow client: the head trickles in, never finished.
        conn.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        let started = std::time::Instant::now();
        assert!(
            closed_within(&mut conn, Duration::from_secs(5)).await,
            "partial head kept open"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_one() {
        let s = start_with(Metrics::new(), Readiness::new(), short(30_000, 4)).await;
        let mut idle = Vec::new();
        for _ in 0..4 {
            idle.push(tokio::net::TcpStream::connect(s.addr).await.expect("connect"));
        }
        // Let the server accept them all.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            live_within(s.addr, Duration::from_millis(500)).await,
            None,
            "a fifth connection was served"
        );
        idle.pop();
        assert_eq!(live_within(s.addr, Duration::from_secs(5)).await, Some(200));
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
