#![forbid(unsafe_code)]
//! The bundled cloud simulator: EDAS, SAE and AppStack change-order APIs over HTTP, driven by a
//! scenario file, verifying signatures like the real gateway. Used by `changeorder-sim`, by the demo
//! and by tests (start it in-process with [`start`]).

pub mod accounts;
mod actions;
mod appstack;
mod auth;
mod cmd;
mod discovery;
mod edas;
mod faults;
pub mod imds;
mod reply;
mod routes;
mod sae;
pub mod scenario;
// Public for the fuzz targets, which read the simulator's time formats back with the client.
pub mod state;
mod stats;
pub mod sts;
pub mod verify;
mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use auth::Credential;
pub use cmd::{SimulateArgs, run as run_cli};
pub use scenario::{Scenario, ScenarioError};
pub use stats::{ActionStats, StatsSnapshot};

use auth::Verifier;
use changeorder_cloud::model::Provider;
use faults::Faults;
use reply::{Handled, Reply, appstack_error, gateway_error};
use routes::{NoRoute, Op, Params};
use scenario::FaultKind;
use stats::Stats;
pub use world::World;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ACCESS_KEY_ID: &str = "demo-key-id";
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "demo-key-secret";
pub const DEFAULT_YUNXIAO_TOKEN: &str = "demo-token";

/// Everything needed to start a simulator.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub listen: SocketAddr,
    /// AccessKeys the EDAS/SAE side accepts.
    pub credentials: Vec<Credential>,
    /// The personal access token the AppStack side accepts.
    pub yunxiao_token: String,
    pub scenario: Scenario,
    /// STS `AssumeRoleWithOIDC` on `POST /` (keyless RRSA); `None` refuses it.
    pub sts: Option<sts::StsConfig>,
    /// The ECS metadata service's RAM role on `/latest/...`; `None`: no role attached.
    pub ecs_role: Option<imds::EcsRoleConfig>,
}

impl SimConfig {
    /// A config on a free port of 127.0.0.1 with the demo credentials.
    pub fn new(scenario: Scenario) -> SimConfig {
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            credentials: vec![Credential::new(DEFAULT_ACCESS_KEY_ID, DEFAULT_ACCESS_KEY_SECRET)],
            yunxiao_token: DEFAULT_YUNXIAO_TOKEN.to_string(),
            scenario,
            sts: None,
            ecs_role: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// State shared by all requests.
struct Shared {
    world: World,
    verifier: Verifier,
    yunxiao_token: String,
    faults: Faults,
    stats: Stats,
    sts: Option<sts::StsConfig>,
    /// How long the EDAS/SAE side accepts a key the STS issues, whatever `Expiration` STS
    /// replied (`None`: until that expiry): a cloud that does not honour STS's lifetime.
    honoured_for: std::sync::Mutex<Option<Duration>>,
    ecs_role: Option<imds::EcsRoleConfig>,
    imds: imds::Imds,
}

/// A simulator serving in the background. Dropping it stops the server.
pub struct RunningSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSim {
    /// The address actually bound (the real port when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the endpoint to give clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// Calls of one action so far (`product` is `edas`, `sae` or `appstack`).
    pub fn calls(&self, product: &str, action: &str) -> u64 {
        self.shared.stats.snapshot().calls(product, action)
    }

    /// Temporary credentials the simulated STS and metadata service handed out (and still
    /// remember), for tests that check no secret leaks.
    pub fn issued_credentials(&self) -> Vec<Credential> {
        self.shared.verifier.issued()
    }

    /// Revoke every temporary key handed out so far, before its expiry (an administrator
    /// revoking a role's sessions): each is refused as `InvalidAccessKeyId.NotFound` from now
    /// on. Returns how many were revoked.
    pub fn revoke_issued_credentials(&self) -> usize {
        self.shared.verifier.revoke_issued()
    }

    /// Accept keys the STS issues from now on for only `d` (`None`: until their expiry), while
    /// STS still replies the `Expiration` asked for: a cloud that does not honour the lifetime
    /// STS gave. Past it they are refused with `InvalidSecurityToken.Expired`.
    pub fn honour_issued_credentials_for(&self, d: Option<Duration>) {
        *self.shared.honoured_for.lock().unwrap_or_else(|p| p.into_inner()) = d;
    }

    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// The scenario being served.
    pub fn scenario(&self) -> &Scenario {
        &self.shared.world.scenario
    }

    /// Stop accepting requests and wait for the server to finish.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        self.stop().await
    }

    /// Serve until the server fails or [`RunningSim::shutdown`]-like stop (used by the CLI).
    pub async fn serve_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), SimError> {
        signal.await;
        self.stop().await
    }

    async fn stop(&mut self) -> Result<(), SimError> {
        if let Some(tx) = self.shutdown.take() {
            // The server may already be gone; then there is nobody to tell.
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(SimError::Serve(e)),
                Err(e) => Err(SimError::Serve(std::io::Error::other(e))),
            },
            None => Ok(()),
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Bind and serve in the background.
pub async fn start(config: SimConfig) -> Result<RunningSim, SimError> {
    config.scenario.validate()?;
    let faults = Faults::new(&config.scenario);
    let shared = Arc::new(Shared {
        world: World::new(config.scenario)?,
        verifier: Verifier::new(config.credentials),
        yunxiao_token: config.yunxiao_token,
        faults,
        stats: Stats::default(),
        sts: config.sts,
        honoured_for: std::sync::Mutex::new(None),
        ecs_role: config.ecs_role,
        imds: imds::Imds::default(),
    });
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: config.listen,
        source,
    })?;
    let app = Router::new()
        .route("/__sim/stats", get(stats_handler).delete(reset_handler))
        .route("/__sim/scenario", get(scenario_handler))
        .fallback(dispatch)
        .with_state(shared.clone());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                // A dropped sender also means stop.
                let _ = rx.await;
            })
            .await
    });
    Ok(RunningSim {
        addr,
        shared,
        shutdown: Some(tx),
        task: Some(task),
    })
}

async fn stats_handler(State(sh): State<Arc<Shared>>) -> Response {
    Reply::ok(serde_json::to_value(sh.stats.snapshot()).unwrap_or_default()).into_response()
}

async fn reset_handler(State(sh): State<Arc<Shared>>) -> Response {
    sh.stats.reset();
    axum::http::StatusCode::NO_CONTENT.into_response()
}

async fn scenario_handler(State(sh): State<Arc<Shared>>) -> Response {
    match sh.world.scenario.to_yaml() {
        Ok(y) => ([(header::CONTENT_TYPE, "application/yaml")], y).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Every cloud request: route, authenticate, answer from the scenario, then apply faults.
async fn dispatch(
    State(sh): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let host = headers
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_default();
    if let Some(resp) = keyless(&sh, &method, &uri, &headers, &body, &host) {
        return resp;
    }
    let op = match routes::route(&method, path) {
        Ok(op) => op,
        Err(no) => {
            sh.stats.record_unrouted();
            return no_route(no, &host).into_response();
        }
    };
    let provider = op.provider();
    let query = Params::parse(uri.query());

    let auth = match provider {
        Provider::Appstack => check_token(&headers, &sh.yunxiao_token).map(|()| "token"),
        _ => {
            let incoming = auth::Incoming {
                method: method.as_str(),
                path,
                query: &query,
                headers: &headers,
                body: &body,
            };
            sh.verifier
                .check(&incoming, &op, Timestamp::now())
                .map_err(|r| gateway_error(provider, r.status, r.code, &r.message, &host))
        }
    };
    match auth {
        Ok(scheme) => sh.stats.record_scheme(scheme),
        Err(reply) => {
            sh.stats.record(provider.as_str(), op.action(), &reply.outcome);
            return reply.into_response();
        }
    }

    let params = with_form_body(query, &headers, &body);
    if op.is_write() {
        return dispatch_write(&sh, &op, &params, &headers, &host).await;
    }
    let handled = match (provider, &op) {
        (_, Op::SaeListApps | Op::EdasListApps) => discovery::handle(&sh.world, &op, &params, &host),
        (Provider::Edas, _) => edas::handle(&sh.world, &op, &params, &host),
        (Provider::Sae, _) => sae::handle(&sh.world, &op, &params),
        (Provider::Appstack, _) => appstack::handle(&sh.world, &op, &params),
    };
    let decision = sh.faults.decide(provider, op.action(), handled.app);
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    let Handled { reply, .. } = handled;
    match decision.error {
        None => {
            sh.stats.record(provider.as_str(), op.action(), &reply.outcome);
            if matches!(op.action(), "DescribeChangeOrder" | "GetChangeOrderInfo")
                && let Some(id) = params.get("ChangeOrderId")
            {
                sh.stats.record_describe(id);
            }
            reply.into_response()
        }
        Some((FaultKind::MalformedJson, _)) => {
            sh.stats.record(provider.as_str(), op.action(), "MalformedJson");
            let mut bytes = serde_json::to_vec(&reply.body).unwrap_or_default();
            bytes.truncate(bytes.len() / 2);
            reply.into_response_with(bytes)
        }
        Some((kind, dur)) => {
            let r = fault_reply(provider, kind, dur, &host);
            sh.stats.record(provider.as_str(), op.action(), &r.outcome);
            r.into_response()
        }
    }
}

/// STS (`POST /?Action=AssumeRoleWithOIDC`, unsigned) and the ECS metadata service
/// (`/latest/...`); `None` for every other request.
fn keyless(
    sh: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    host: &str,
) -> Option<Response> {
    let path = uri.path();
    let now = Timestamp::now();
    // Today's SDKs send STS calls as `POST /` with `x-acs-action` and a V3 (or ROA) signature
    // in the headers; the classic RPC form signs in the query (`Signature=`), and may carry the
    // header too.
    if path == "/" && headers.get("x-acs-action").and_then(|v| v.to_str().ok()) == Some("GetCallerIdentity") {
        let params = with_form_body(Params::parse(uri.query()), headers, body);
        let signer = if params.get("Signature").is_some() {
            sh.verifier.check_rpc(method.as_str(), &params, now)
        } else {
            let query = Params::parse(uri.query());
            let req = auth::Incoming {
                method: method.as_str(),
                path,
                query: &query,
                headers,
                body,
            };
            sh.verifier.check_sts(&req, "GetCallerIdentity", now)
        };
        return Some(caller_identity(sh, signer, host));
    }
    if path == "/" && (*method == Method::POST || *method == Method::GET) {
        let params = with_form_body(Params::parse(uri.query()), headers, body);
        match params.get("Action") {
            Some("AssumeRoleWithOIDC") if *method == Method::POST => {}
            Some("GetCallerIdentity") => {
                let signer = sh.verifier.check_rpc(method.as_str(), &params, now);
                return Some(caller_identity(sh, signer, host));
            }
            _ => return None,
        }
        let (reply, issued) = match &sh.sts {
            Some(cfg) => sts::assume_role_with_oidc(cfg, &params, now, host),
            None => (
                gateway_error(
                    Provider::Edas,
                    404,
                    "EntityNotExist.OIDCProvider",
                    "No OIDC provider is configured in this simulator.",
                    host,
                ),
                None,
            ),
        };
        if let Some(i) = issued {
            let honoured = *sh.honoured_for.lock().unwrap_or_else(|p| p.into_inner());
            let accepted_until = honoured
                .and_then(|d| jiff::SignedDuration::try_from(d).ok())
                .and_then(|d| now.checked_add(d).ok())
                .map_or(i.expires, |t| t.min(i.expires));
            let arn = reply
                .body
                .pointer("/AssumedRoleUser/Arn")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string);
            sh.verifier.issue_as(
                Credential::sts(i.access_key_id, i.access_key_secret, i.security_token),
                accepted_until,
                arn,
            );
        }
        sh.stats.record("sts", "AssumeRoleWithOIDC", &reply.outcome);
        return Some(reply.into_response());
    }
    let answer = if path == imds::TOKEN_PATH && *method == Method::PUT {
        sh.stats.record("ecs-metadata", "Token", "OK");
        sh.imds.put_token(headers, now)
    } else if let Some(rest) = path.strip_prefix(imds::CREDENTIALS_PATH)
        && *method == Method::GET
    {
        let a = sh.imds.get(sh.ecs_role.as_ref(), rest, headers, now);
        let action = if rest.is_empty() {
            "RoleName"
        } else {
            "Credentials"
        };
        sh.stats.record("ecs-metadata", action, a.status.as_str());
        a
    } else {
        return None;
    };
    if let Some(i) = answer.issued {
        sh.verifier.issue(
            Credential::sts(i.access_key_id, i.access_key_secret, i.security_token),
            i.expires,
        );
    }
    let content_type = if answer.json {
        "application/json"
    } else {
        "text/plain"
    };
    Some((answer.status, [(header::CONTENT_TYPE, content_type)], answer.body).into_response())
}

/// STS `GetCallerIdentity`, signed with the key asked about (classic RPC in the query, or V3/ROA
/// headers): the account of a long-term key from the scenario's `accounts`, of an issued key
/// from its role's ARN.
fn caller_identity(sh: &Shared, signer: Result<auth::Signer, auth::Rejection>, host: &str) -> Response {
    let reply = match signer {
        Err(r) => gateway_error(Provider::Edas, r.status, r.code, &r.message, host),
        Ok(signer) => {
            let accounts = &sh.world.scenario.accounts;
            let digest = changeorder_cloud::sign::sha256_hex(format!("{signer:?}").as_bytes());
            let user_id = u64::from_str_radix(&digest[..12], 16)
                .unwrap_or_default()
                .to_string();
            let body = match signer {
                auth::Signer::LongTerm(id) => {
                    let account = accounts::of_key(accounts, &id);
                    serde_json::json!({
                        "AccountId": account,
                        "UserId": user_id,
                        "PrincipalId": user_id,
                        "Arn": format!("acs:ram::{account}:user/user-{}", &digest[..8]),
                        "IdentityType": "RAMUser",
                    })
                }
                auth::Signer::Assumed { arn, .. } => {
                    let arn = arn.unwrap_or_else(|| {
                        format!(
                            "acs:ram::{}:assumed-role/ecs-role/session",
                            accounts::DEFAULT_ACCOUNT_ID
                        )
                    });
                    let account = changeorder_cloud::account::account_of_arn(&arn)
                        .unwrap_or(accounts::DEFAULT_ACCOUNT_ID)
                        .to_string();
                    let role_id = format!("3{}", &user_id);
                    serde_json::json!({
                        "AccountId": account,
                        "UserId": format!("{role_id}:session"),
                        "PrincipalId": format!("{role_id}:session"),
                        "RoleId": role_id,
                        "Arn": arn,
                        "IdentityType": "AssumedRoleUser",
                    })
                }
            };
            let mut body = body;
            if let Some(o) = body.as_object_mut() {
                o.insert("RequestId".into(), reply::request_id().into());
            }
            Reply::ok(body)
        }
    };
    sh.stats.record("sts", "GetCallerIdentity", &reply.outcome);
    reply.into_response()
}

/// A write call (confirm, abort): refused for read-only keys; faults are decided before the
/// write, so a throttled or failed call changes nothing (a late reply, `latency`, still acts
/// first: the write happened even if the caller never hears of it). `gatewayResend` acts too,
/// then answers `400 SignatureNonceUsed`, as a gateway that resent a request the cloud had
/// carried out; the stats record the write's own outcome.
async fn dispatch_write(
    sh: &Shared,
    op: &routes::Op,
    params: &Params,
    headers: &HeaderMap,
    host: &str,
) -> Response {
    let provider = op.provider();
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::access_key_id);
    if key.is_some_and(|k| sh.world.scenario.read_only_access_keys.contains(&k)) {
        let reply = gateway_error(
            provider,
            403,
            "Forbidden.RAM",
            "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
            host,
        );
        sh.stats.record(provider.as_str(), op.action(), &reply.outcome);
        return reply.into_response();
    }
    let decision = sh
        .faults
        .decide(provider, op.action(), actions::app_of(&sh.world, op, params));
    if let Some((kind, dur)) = decision.error.filter(|(k, _)| *k != FaultKind::GatewayResend) {
        if let Some(delay) = decision.delay {
            tokio::time::sleep(delay).await;
        }
        let r = match kind {
            // A reply that cannot be read: the write is not made either.
            FaultKind::MalformedJson => fault_reply(provider, FaultKind::InternalError, dur, host),
            kind => fault_reply(provider, kind, dur, host),
        };
        sh.stats.record(provider.as_str(), op.action(), &r.outcome);
        return r.into_response();
    }
    let Handled { reply, .. } = actions::handle(&sh.world, op, params, host);
    // Counted when the write is made, before a late reply, so a caller killed while waiting
    // still shows up in the stats.
    sh.stats.record(provider.as_str(), op.action(), &reply.outcome);
    if let Some(delay) = decision.delay {
        tokio::time::sleep(delay).await;
    }
    if let Some((kind @ FaultKind::GatewayResend, dur)) = decision.error {
        return fault_reply(provider, kind, dur, host).into_response();
    }
    reply.into_response()
}

/// One request answered from the scenario without a server or authentication: the route, then
/// the product's handler, no faults. The fuzz targets use it to check that for any scenario the
/// simulator accepts, the replies are ones the operator's clients can read. `None` when no
/// operation has that method and path.
pub fn answer(
    world: &World,
    method: &str,
    path: &str,
    query: Option<&str>,
) -> Option<(u16, serde_json::Value)> {
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    let op = routes::route(&method, path).ok()?;
    let params = Params::parse(query);
    let handled = match op.provider() {
        Provider::Edas => edas::handle(world, &op, &params, "sim.local"),
        Provider::Sae => sae::handle(world, &op, &params),
        Provider::Appstack => appstack::handle(world, &op, &params),
    };
    Some((handled.reply.status.as_u16(), handled.reply.body))
}

/// Form-encoded bodies carry parameters too (some clients send them there instead of the query).
fn with_form_body(mut params: Params, headers: &HeaderMap, body: &[u8]) -> Params {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    if is_form && !body.is_empty() {
        let text = String::from_utf8_lossy(body);
        params.0.extend(Params::parse(Some(&text)).0);
    }
    params
}

fn no_route(no: NoRoute, host: &str) -> Reply {
    match no {
        NoRoute::Pop => gateway_error(
            Provider::Edas,
            404,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
            host,
        ),
        NoRoute::AppstackMethod => appstack_error(405, "MethodNotAllowed", "method not allowed"),
        NoRoute::Unknown => appstack_error(404, "NotFound", "no such API"),
    }
}

/// AppStack authenticates with a personal access token, no signature.
fn check_token(headers: &HeaderMap, want: &str) -> Result<(), Reply> {
    match headers.get("x-yunxiao-token") {
        None => Err(appstack_error(
            401,
            "Unauthorized",
            "the x-yunxiao-token header is required",
        )),
        Some(got) if got.as_bytes() == want.as_bytes() => Ok(()),
        Some(_) => Err(appstack_error(
            401,
            "InvalidTokenError",
            "the personal access token is invalid",
        )),
    }
}

fn fault_reply(provider: Provider, kind: FaultKind, dur: Duration, host: &str) -> Reply {
    let ms = dur.as_millis();
    if provider == Provider::Appstack {
        return match kind {
            FaultKind::Throttling => appstack_error(429, "TooManyRequests", "too many requests")
                .with_header("retry-after", dur.as_secs().max(1).to_string()),
            FaultKind::ServiceUnavailable => appstack_error(503, "ServiceUnavailable", "service unavailable"),
            _ => appstack_error(500, "InternalError", "internal error"),
        };
    }
    match kind {
        FaultKind::Throttling => {
            let reset = Timestamp::now()
                .as_millisecond()
                .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX));
            gateway_error(
                provider,
                400,
                "Throttling.User",
                "Request was denied due to user flow control.",
                host,
            )
            .with_header(
                "x-ratelimit-user-api",
                format!("Limit:60,Remain:0,TimeLeft:{ms},Reset:{reset}"),
            )
        }
        FaultKind::GatewayResend => gateway_error(
            provider,
            400,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
            host,
        ),
        FaultKind::ServiceUnavailable => gateway_error(
            provider,
            503,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
            host,
        ),
        _ => gateway_error(
            provider,
            500,
            "InternalError",
            "The request processing has failed due to some unknown error, exception or failure.",
            host,
        ),
    }
}
