//! The push receiver: `POST /hook/<id>` of a ChangeOrderReceiver makes its watches poll now.
//!
//! Served on a port of its own (`--receiver-listen`), with the admin server's connection limits.
//! Answers: `202` accepted, `401` not authenticated (the same body whatever was wrong), `404` no
//! such receiver, `408` body too slow, `413` body over [`MAX_BODY_BYTES`], `503` the receiver's
//! Secret or the cache could not be read. Each is counted in `changeorder_receiver_requests_total`.
//! Nothing from the request (token, signature, body) is logged.

pub mod auth;
mod hooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kube::ResourceExt;

pub use hooks::{COALESCE_WINDOW, Hooks, Woken};

use crate::controller::metrics::Metrics;

/// Largest body accepted. Pushes carry a small JSON event; the body is only signed, never read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time to send the body once the head is in (hyper's timeout covers only the head).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to wait for the receiver cache's first list after a start.
const CACHE_WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct AppState {
    hooks: Arc<Hooks>,
    metrics: Metrics,
}

/// The receiver's routes.
pub fn router(hooks: Arc<Hooks>, metrics: Metrics) -> Router {
    Router::new()
        .route("/hook/{id}", post(push))
        .with_state(AppState { hooks, metrics })
}

/// Serves the receiver on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hooks: Arc<Hooks>,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = crate::admin::Limits {
        // Senders are CI jobs and EventBridge: a short head timeout costs them nothing.
        header_read_timeout: Duration::from_secs(10),
        ..crate::admin::Limits::default()
    };
    crate::admin::serve_router(listener, router(hooks, metrics), limits, "receiver", shutdown).await
}

async fn push(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (result, status) = handle(&state.hooks, &id, &headers, body).await;
    state.metrics.receiver_request(result);
    let text = match status {
        StatusCode::ACCEPTED => "accepted\n",
        StatusCode::UNAUTHORIZED => "unauthorized\n",
        StatusCode::NOT_FOUND => "not found\n",
        StatusCode::PAYLOAD_TOO_LARGE => "body too large\n",
        StatusCode::REQUEST_TIMEOUT => "body too slow\n",
        _ => "unavailable\n",
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The metric's result and the answer's status.
async fn handle(hooks: &Hooks, id: &str, headers: &HeaderMap, body: Body) -> (&'static str, StatusCode) {
    if tokio::time::timeout(CACHE_WAIT, hooks.ready()).await.is_err() {
        return ("unavailable", StatusCode::SERVICE_UNAVAILABLE);
    }
    let Some(receiver) = hooks.find(id) else {
        return ("not_found", StatusCode::NOT_FOUND);
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return ("too_large", StatusCode::PAYLOAD_TOO_LARGE);
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(b)) => b,
        // The only error a well-behaved sender meets is the limit (chunked bodies have no length).
        Ok(Err(_)) => return ("too_large", StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => return ("timeout", StatusCode::REQUEST_TIMEOUT),
    };
    let token = match hooks.token(&receiver).await {
        Ok(Some(t)) => t,
        // No usable token: no push can authenticate; answered like a wrong one.
        Ok(None) => return ("unauthorized", StatusCode::UNAUTHORIZED),
        Err(e) => {
            tracing::warn!(error = %e, receiver = %receiver.name_any(), "cannot read the receiver's Secret");
            return ("unavailable", StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let credentials = auth::Credentials {
        authorization: headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()),
        signature: headers.get(auth::SIGNATURE_HEADER).map(|v| v.as_bytes()),
        timestamp: headers.get(auth::TIMESTAMP_HEADER).map(|v| v.as_bytes()),
    };
    if auth::verify(&token, credentials, &body, jiff::Timestamp::now().as_second()).is_err() {
        tracing::info!(
            receiver = %receiver.name_any(),
            namespace = %receiver.namespace().unwrap_or_default(),
            "push refused: not authenticated"
        );
        return ("unauthorized", StatusCode::UNAUTHORIZED);
    }
    match hooks.wake(&receiver).await {
        Ok(woken) => {
            tracing::info!(
                receiver = %receiver.name_any(),
                namespace = %receiver.namespace().unwrap_or_default(),
                requested = woken.requested,
                already_pending = woken.pending,
                deferred = woken.deferred,
                "push accepted"
            );
            ("accepted", StatusCode::ACCEPTED)
        }
        Err(e) => {
            tracing::warn!(error = %e, receiver = %receiver.name_any(), "cannot request polls for a push");
            ("unavailable", StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}
