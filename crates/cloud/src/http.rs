//! HTTP transport shared by the three clients: signing or token auth, timeouts, a cap on reply
//! size, retries with capped exponential backoff and full jitter, rate-limit headers, error
//! classification (including business failures inside 2xx replies), a per-call observer for
//! metrics, and debug logging that never shows a credential.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde_json::Value;

use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind, excerpt, parse_ratelimit};
use super::json;
use super::model::Provider;
use super::sign::{self, Scheme};

/// Retry policy for one API call (each page of a list is one call).
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in total, including the first. 1 disables retries.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time, capped at `max_delay`. The actual
    /// wait is uniformly random in `[0, backoff]` (full jitter).
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest wait the cloud's `TimeLeft` may impose within a call. A longer one ends the call
    /// with the `Throttled` error (its `retry_after` says when to come back).
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The jittered wait before attempt `attempt + 1` (after `attempt` failed ones).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let ms = u64::try_from(exp.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(if ms == 0 { 0 } else { rand::random_range(0..=ms) })
    }
}

/// One HTTP attempt, reported to the [`CallObserver`].
#[derive(Clone, Debug)]
pub struct CallOutcome<'a> {
    pub provider: Provider,
    /// The API operation (`ListRecentChangeOrder`, `DescribeChangeOrder`, `GetChangeOrder`...).
    pub operation: &'static str,
    /// `"ok"` or the error kind's stable name (`Throttled`, `SignatureMismatch`...).
    pub result: &'static str,
    pub error: Option<&'a CloudError>,
    pub http_status: Option<u16>,
    /// 1-based attempt number within the call.
    pub attempt: u32,
    pub elapsed: Duration,
}

/// Receives every HTTP attempt, e.g. to count calls by provider, operation and result.
/// Closures `Fn(&CallOutcome)` implement it.
pub trait CallObserver: Send + Sync {
    fn observe(&self, outcome: &CallOutcome<'_>);
}

impl<F: Fn(&CallOutcome<'_>) + Send + Sync> CallObserver for F {
    fn observe(&self, outcome: &CallOutcome<'_>) {
        self(outcome)
    }
}

/// Admits each HTTP attempt (pages and retries included), e.g. a call budget shared by every
/// watch that uses one account.
pub trait CallBudget: Send + Sync {
    /// Wait until one call to `host` with `creds` is allowed, and take it.
    fn admit<'a>(
        &'a self,
        provider: Provider,
        creds: &'a Credentials,
        host: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

    /// How long until `calls` calls would be allowed to `claim`'s poller (`None`: now). Takes
    /// no call; a poller told to wait is queued, so pollers of one account are served in turn.
    fn wait_for<'a>(
        &'a self,
        provider: Provider,
        creds: &'a Credentials,
        host: &'a str,
        calls: u32,
        claim: &Claim<'a>,
    ) -> Option<Duration>;

    /// Record what one poller needs of the account and return the account's round: how often
    /// each poller with orders in flight can poll if every one of them gets its turn.
    fn pace<'a>(
        &'a self,
        _provider: Provider,
        _creds: &'a Credentials,
        _host: &'a str,
        _demand: &Demand<'a>,
    ) -> Duration {
        Duration::ZERO
    }
}

/// A poller asking for calls before it starts a poll.
#[derive(Clone, Copy, Debug)]
pub struct Claim<'a> {
    /// Identity of the poller (a watch's uid).
    pub poller: &'a str,
    /// Whether it polls orders in flight: those are served first, in turn; other polls take
    /// only what no waiting poll has claimed.
    pub in_flight: bool,
}

/// What one poller needs of its account's budget.
#[derive(Clone, Copy, Debug)]
pub struct Demand<'a> {
    pub poller: &'a str,
    /// Describes of one poll: one per order in flight (0: none in flight).
    pub describes: u32,
    /// How often it lists the app's orders (its interval), in flight or not.
    pub interval: Duration,
}

/// Client settings. `Default` suits production; tests shorten the delays.
#[derive(Clone)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    /// Longest gap between reads of the reply.
    pub read_timeout: Duration,
    /// Longest whole request (one attempt).
    pub request_timeout: Duration,
    /// Replies larger than this fail with `TooLarge` (the body is not read further).
    pub max_reply_bytes: usize,
    pub retry: RetryPolicy,
    /// Stop paging after this many pages (a server that never ends must not loop us forever).
    pub max_pages: u32,
    pub sae_page_size: u32,
    pub appstack_page_size: u32,
    pub user_agent: String,
    pub observer: Option<Arc<dyn CallObserver>>,
    pub budget: Option<Arc<dyn CallBudget>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            // A page of 50 orders is tens of KiB; more is a broken or hostile endpoint.
            max_reply_bytes: 4 * 1024 * 1024,
            retry: RetryPolicy::default(),
            max_pages: 50,
            sae_page_size: 50,
            appstack_page_size: 50,
            user_agent: concat!("changeorder-operator/", env!("CARGO_PKG_VERSION")).to_string(),
            observer: None,
            budget: None,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_reply_bytes", &self.max_reply_bytes)
            .field("retry", &self.retry)
            .field("max_pages", &self.max_pages)
            .field("sae_page_size", &self.sae_page_size)
            .field("appstack_page_size", &self.appstack_page_size)
            .field("user_agent", &self.user_agent)
            .field("observer", &self.observer.as_ref().map(|_| "<observer>"))
            .field("budget", &self.budget.as_ref().map(|_| "<budget>"))
            .finish()
    }
}

/// One API call, before auth.
#[derive(Clone, Debug)]
pub(crate) struct ApiCall {
    pub provider: Provider,
    pub operation: &'static str,
    /// `x-acs-version` for EDAS/SAE; unused for AppStack.
    pub version: &'static str,
    pub method: Method,
    /// Already percent-encoded, starting with `/`; appended to the endpoint's own path.
    pub path: String,
    /// Decoded pairs, sent in this order.
    pub query: Vec<(String, String)>,
    /// What a bare 404 means for this call.
    pub not_found: ErrorKind,
}

/// The shared HTTP machinery. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    cfg: Arc<ClientConfig>,
    /// Earliest next call per (host, credential fingerprint), from rate-limit headers.
    gates: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Transport {
    pub fn new(cfg: ClientConfig) -> Result<Self, CloudError> {
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .timeout(cfg.request_timeout)
            .user_agent(cfg.user_agent.clone())
            // Never follow redirects: the token header would travel to wherever we are sent.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CloudError::transport(format!("cannot build HTTP client: {}", error_chain(&e))))?;
        Ok(Transport {
            http,
            cfg: Arc::new(cfg),
            gates: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Make the call, retrying what is retryable, and return the reply's JSON.
    pub async fn call(
        &self,
        base: &Url,
        call: &ApiCall,
        creds: &Credentials,
        scheme: Scheme,
    ) -> Result<Value, CloudError> {
        self.call_retrying(base, call, creds, scheme, CloudError::is_retryable)
            .await
    }

    /// Make the call, retrying only the errors `retry` accepts (writes retry only what the
    /// cloud surely refused before acting, such as throttling).
    pub async fn call_retrying(
        &self,
        base: &Url,
        call: &ApiCall,
        creds: &Credentials,
        scheme: Scheme,
        retry: fn(&CloudError) -> bool,
    ) -> Result<Value, CloudError> {
        let url = build_url(base, &call.path, &call.query)?;
        // Rate limits are per account (and per product host): one gate per credential and host.
        let gate_key = format!("{}|{}", host_header(&url), creds.fingerprint());
        let policy = &self.cfg.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(budget) = &self.cfg.budget {
                budget.admit(call.provider, creds, &host_header(&url)).await;
            }
            self.wait_gate(&gate_key, call).await?;
            let started = Instant::now();
            let result = self.send_once(&url, call, creds, scheme, &gate_key).await;
            let elapsed = started.elapsed();
            let (status, outcome) = match &result {
                Ok((status, _)) => (Some(*status), "ok"),
                Err(e) => (e.http_status, e.kind.as_str()),
            };
            if let Some(obs) = &self.cfg.observer {
                obs.observe(&CallOutcome {
                    provider: call.provider,
                    operation: call.operation,
                    result: outcome,
                    error: result.as_ref().err(),
                    http_status: status,
                    attempt,
                    elapsed,
                });
            }
            let err = match result {
                Ok((_, value)) => return Ok(value),
                Err(e) => e,
            };
            if !retry(&err) || attempt >= max_attempts {
                return Err(err);
            }
            let wait = match err.retry_after {
                Some(ra) if ra > policy.max_wait => return Err(err),
                // The cloud said how long; add a little jitter so many clients do not align.
                Some(ra) => ra + policy.backoff(1).min(Duration::from_millis(250)),
                None => policy.backoff(attempt),
            };
            tracing::debug!(
                provider = %call.provider,
                operation = call.operation,
                attempt,
                error = %err,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying cloud call"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// How long before `calls` calls to `base` with `creds` could start without waiting on the
    /// call budget or a rate limit the cloud announced (`None`: now). Takes nothing.
    pub fn wait_before(
        &self,
        base: &Url,
        provider: Provider,
        creds: &Credentials,
        calls: u32,
        claim: &Claim<'_>,
    ) -> Option<Duration> {
        let host = host_header(base);
        let gate_key = format!("{host}|{}", creds.fingerprint());
        let gate = match self.gates.lock() {
            Ok(g) => g.get(&gate_key).copied(),
            Err(poisoned) => poisoned.into_inner().get(&gate_key).copied(),
        }
        .and_then(|until| until.checked_duration_since(Instant::now()))
        .filter(|d| !d.is_zero());
        let budget = self
            .cfg
            .budget
            .as_ref()
            .and_then(|b| b.wait_for(provider, creds, &host, calls, claim));
        match (gate, budget) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// See [`CallBudget::pace`]; zero without a budget.
    pub fn pace(&self, base: &Url, provider: Provider, creds: &Credentials, demand: &Demand<'_>) -> Duration {
        let host = host_header(base);
        self.cfg
            .budget
            .as_ref()
            .map_or(Duration::ZERO, |b| b.pace(provider, creds, &host, demand))
    }

    /// Honour a `TimeLeft` the cloud gave on an earlier reply for the same account.
    async fn wait_gate(&self, key: &str, call: &ApiCall) -> Result<(), CloudError> {
        let until = match self.gates.lock() {
            Ok(g) => g.get(key).copied(),
            Err(poisoned) => poisoned.into_inner().get(key).copied(),
        };
        let Some(until) = until else { return Ok(()) };
        let now = Instant::now();
        if until <= now {
            return Ok(());
        }
        let wait = until - now;
        if wait > self.cfg.retry.max_wait {
            return Err(CloudError::new(
                ErrorKind::Throttled,
                format!(
                    "{} rate limit: next call allowed in {} ms",
                    call.provider,
                    wait.as_millis()
                ),
            )
            .with_retry_after(Some(wait)));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn set_gate(&self, key: &str, wait: Duration) {
        // `wait` comes from a reply header; never let it overflow the clock (a panic).
        let until = Instant::now()
            .checked_add(wait.min(super::error::MAX_RATELIMIT_WAIT))
            .unwrap_or_else(Instant::now);
        let mut gates = match self.gates.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Forget expired gates so the map does not grow with every account ever seen.
        let now = Instant::now();
        gates.retain(|_, t| *t > now);
        let entry = gates.entry(key.to_string()).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    async fn send_once(
        &self,
        url: &Url,
        call: &ApiCall,
        creds: &Credentials,
        scheme: Scheme,
        gate_key: &str,
    ) -> Result<(u16, Value), CloudError> {
        let mut req = self.http.request(call.method.clone(), url.clone());
        req = req.header("accept", "application/json");
        match creds {
            Credentials::AccessKey {
                access_key_id,
                access_key_secret,
                security_token,
            } => {
                let host = host_header(url);
                let path = sign::percent_decode(url.path());
                let nonce = format!("{:032x}", rand::random::<u128>());
                let signed = sign::sign_request(&sign::SignInput {
                    scheme,
                    method: call.method.as_str(),
                    host: &host,
                    path: &path,
                    query: &call.query,
                    body: b"",
                    content_type: None,
                    action: call.operation,
                    version: call.version,
                    access_key_id,
                    access_key_secret,
                    security_token: security_token.as_deref(),
                    now: jiff::Timestamp::now(),
                    nonce: &nonce,
                });
                for (name, value) in signed.headers {
                    // reqwest sends Host from the URL, the same value that was signed.
                    if !name.eq_ignore_ascii_case("host") {
                        req = req.header(name, value);
                    }
                }
            }
            Credentials::Token(token) => {
                req = req.header("x-yunxiao-token", token.as_str());
            }
        }

        let resp = req.send().await.map_err(|e| transport_error(&e, &self.cfg))?;
        let status = resp.status().as_u16();
        let wait = ["x-ratelimit-user-api", "x-ratelimit-user"]
            .iter()
            .filter_map(|h| resp.headers().get(*h)?.to_str().ok())
            .filter_map(parse_ratelimit)
            .max();
        if let Some(w) = wait {
            self.set_gate(gate_key, w);
        }
        let body = read_capped(resp, self.cfg.max_reply_bytes)
            .await
            .map_err(|e| e.with_status(status))?;
        let result = classify_reply(call.provider, status, &body, call.not_found);
        let request_id = match &result {
            Ok(v) => json::string(v, &["RequestId", "requestId"]),
            Err(e) => e.request_id.clone(),
        };
        tracing::debug!(
            provider = %call.provider,
            operation = call.operation,
            method = %call.method,
            path = url.path(),
            query = url.query().unwrap_or(""),
            status,
            request_id = request_id.as_deref().unwrap_or(""),
            bytes = body.len(),
            result = match &result { Ok(_) => "ok", Err(e) => e.kind.as_str() },
            "cloud call"
        );
        match result {
            Ok(v) => Ok((status, v)),
            Err(e) => Err(redact(e.with_retry_after(wait), creds)),
        }
    }
}

/// Replace any credential value that a reply echoed (a ROA string to sign in a
/// `SignatureDoesNotMatch` message contains the STS token) before the error travels on.
fn redact(mut e: CloudError, creds: &Credentials) -> CloudError {
    let secrets: Vec<&str> = match creds {
        Credentials::AccessKey {
            access_key_secret,
            security_token,
            ..
        } => std::iter::once(access_key_secret.as_str())
            .chain(security_token.as_deref())
            .collect(),
        Credentials::Token(t) => vec![t.as_str()],
    };
    for s in secrets.into_iter().filter(|s| s.len() >= 4) {
        e.message = e.message.replace(s, "<redacted>");
        if let Some(raw) = e.raw.as_mut() {
            *raw = raw.replace(s, "<redacted>");
        }
    }
    e
}

/// `host[:port]` as the HTTP client sends it (default ports are never in a parsed `Url`).
pub(crate) fn host_header(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => String::new(),
    }
}

/// The endpoint's own path (a proxy prefix) + the operation's path, and the query.
pub(crate) fn build_url(base: &Url, path: &str, query: &[(String, String)]) -> Result<Url, CloudError> {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}{path}"));
    url.set_fragment(None);
    if query.is_empty() {
        url.set_query(None);
    } else {
        url.set_query(Some(&sign::encode_query(query)));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(CloudError::new(
            ErrorKind::BadRequest,
            format!("endpoint {base} has no host"),
        ));
    }
    Ok(url)
}

/// Read the body, stopping as soon as it exceeds `cap`.
pub(crate) async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, CloudError> {
    let too_large = |n: String| {
        CloudError::new(
            ErrorKind::TooLarge,
            format!("reply of {n} bytes exceeds the {cap}-byte limit"),
        )
    };
    if let Some(len) = resp.content_length()
        && usize::try_from(len).map_or(true, |l| l > cap)
    {
        return Err(too_large(len.to_string()));
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > cap {
                    return Err(too_large(format!("more than {}", buf.len() + chunk.len())));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf),
            Err(e) => {
                return Err(CloudError::transport(format!(
                    "reading the reply failed: {}",
                    error_chain(&e.without_url())
                )));
            }
        }
    }
}

fn transport_error(e: &reqwest::Error, cfg: &ClientConfig) -> CloudError {
    let what = if e.is_timeout() {
        format!(
            "timed out (connect {:?}, request {:?})",
            cfg.connect_timeout, cfg.request_timeout
        )
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let url = e
        .url()
        .map(|u| format!(" to {}", host_header(u)))
        .unwrap_or_default();
    // reqwest's own text ("error sending request for url (...)") adds nothing to its
    // sources; the innermost causes are the useful part.
    let cause = match std::error::Error::source(e) {
        Some(src) => error_chain(src),
        None => e.to_string(),
    };
    CloudError::transport(format!("{what}{url}: {cause}"))
}

/// An error and its sources on one line (reqwest's own text alone is terse).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Turn one reply into its JSON or a classified error. Pure, so every case is table-tested.
///
/// EDAS/SAE: non-2xx → `{RequestId, HostId, Code, Message, Recommend}`; inside a 2xx, SAE
/// `Success=false` (code in `ErrorCode`) and EDAS integer `Code != 200` are failures too.
/// AppStack: non-2xx → `errorCode`/`errorMessage`, else `errorDescription`, else `message`,
/// else the raw text; a 2xx with `success=false` is a failure.
pub fn classify_reply(
    provider: Provider,
    status: u16,
    body: &[u8],
    not_found: ErrorKind,
) -> Result<Value, CloudError> {
    let ok_status = (200..300).contains(&status);
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    let value = match parsed {
        Ok(v) => v,
        Err(e) if ok_status => {
            return Err(CloudError::bad_reply(format!("reply is not valid JSON: {e}"))
                .with_status(status)
                .with_raw(body));
        }
        Err(_) => {
            let kind = ErrorKind::classify(None, Some(status), not_found);
            let text = excerpt(body);
            let message = if text.trim().is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                text.trim().to_string()
            };
            return Err(CloudError::new(kind, message).with_status(status).with_raw(body));
        }
    };
    if !value.is_object() {
        if ok_status {
            return Err(CloudError::bad_reply("reply is not a JSON object")
                .with_status(status)
                .with_raw(body));
        }
        let kind = ErrorKind::classify(None, Some(status), not_found);
        return Err(CloudError::new(kind, excerpt(body))
            .with_status(status)
            .with_raw(body));
    }
    match provider {
        Provider::Edas | Provider::Sae => pop_reply(status, value, body, not_found),
        Provider::Appstack => appstack_reply(status, value, body, not_found),
    }
}

fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn pop_reply(status: u16, v: Value, body: &[u8], not_found: ErrorKind) -> Result<Value, CloudError> {
    let ok_status = (200..300).contains(&status);
    let request_id = json::string(&v, &["RequestId", "requestId"]);
    let error_code = json::string(&v, &["ErrorCode", "errorCode"]);
    let code_field = json::string(&v, &["Code", "code"]);
    // An HTTP-like status inside the body (EDAS integer Code, SAE string Code).
    let body_status = code_field
        .as_deref()
        .filter(|c| is_numeric(c))
        .and_then(|c| c.parse::<u16>().ok());
    let text_code = error_code
        .clone()
        .or_else(|| code_field.clone().filter(|c| !is_numeric(c)));
    let success = json::boolean(&v, &["Success", "success"]);
    let failed = if ok_status {
        success == Some(false)
            || body_status.is_some_and(|s| !(200..300).contains(&s))
            // A non-numeric Code other than an explicit success marker is an error code.
            || (success.is_none() && code_field.as_deref().is_some_and(|c| !is_numeric(c) && !c.eq_ignore_ascii_case("success") && !c.eq_ignore_ascii_case("ok")))
    } else {
        true
    };
    if !failed {
        return Ok(v);
    }
    let effective_status = if ok_status {
        body_status.or(Some(400))
    } else {
        Some(status)
    };
    let kind = ErrorKind::classify(text_code.as_deref(), effective_status, not_found);
    let mut message =
        json::string(&v, &["Message", "message", "ErrorMessage"]).unwrap_or_else(|| format!("HTTP {status}"));
    if ok_status
        && text_code.is_none()
        && let Some(s) = body_status
    {
        message = format!("{message} (Code {s})");
    }
    let mut err = CloudError::new(kind, message)
        .with_status(status)
        .with_request_id(request_id)
        .with_raw(body);
    err.code = text_code;
    Err(err)
}

fn appstack_reply(status: u16, v: Value, body: &[u8], not_found: ErrorKind) -> Result<Value, CloudError> {
    let ok_status = (200..300).contains(&status);
    let failed = !ok_status || json::boolean(&v, &["success"]) == Some(false);
    if !failed {
        return Ok(v);
    }
    let code = json::string(&v, &["errorCode", "code", "error"]).filter(|c| !is_numeric(c));
    let body_status = json::int(&v, &["httpStatusCode", "statusCode", "status"])
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..600).contains(s));
    let effective_status = if ok_status {
        body_status.or(Some(400))
    } else {
        Some(status)
    };
    let kind = ErrorKind::classify(code.as_deref(), effective_status, not_found);
    let message = json::string(&v, &["errorMessage"])
        .or_else(|| json::string(&v, &["errorDescription"]))
        .or_else(|| json::string(&v, &["message", "errorMsg"]))
        .unwrap_or_else(|| excerpt(body));
    let mut err = CloudError::new(kind, message)
        .with_status(status)
        .with_request_id(json::string(&v, &["requestId", "RequestId", "traceId"]))
        .with_raw(body);
    err.code = code;
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: Provider, status: u16, body: &str) -> CloudError {
        classify_reply(p, status, body.as_bytes(), ErrorKind::AppNotFound).unwrap_err()
    }

    #[test]
    fn pop_errors_table() {
        use ErrorKind::*;
        let cases: &[(u16, &str, ErrorKind, Option<&str>)] = &[
            (
                400,
                r#"{"RequestId":"R1","HostId":"h","Code":"Throttling.User","Message":"Request was denied due to user flow control."}"#,
                Throttled,
                Some("Throttling.User"),
            ),
            (
                503,
                r#"{"RequestId":"R","Code":"ServiceUnavailable","Message":"busy"}"#,
                ServerError,
                Some("ServiceUnavailable"),
            ),
            (
                500,
                r#"{"RequestId":"R","Code":"InternalError","Message":"oops"}"#,
                ServerError,
                Some("InternalError"),
            ),
            (
                404,
                r#"{"RequestId":"R","Code":"InvalidAccessKeyId.NotFound","Message":"Specified access key is not found."}"#,
                InvalidCredentials,
                Some("InvalidAccessKeyId.NotFound"),
            ),
            (
                400,
                r#"{"RequestId":"R","Code":"SignatureDoesNotMatch","Message":"The request signature does not conform to Aliyun standards. server string to sign is:ACS3-HMAC-SHA256\nabc"}"#,
                SignatureMismatch,
                Some("SignatureDoesNotMatch"),
            ),
            (
                400,
                r#"{"RequestId":"R","Code":"InvalidTimeStamp.Expired","Message":"Specified time stamp or date value is expired."}"#,
                ClockSkew,
                Some("InvalidTimeStamp.Expired"),
            ),
            (
                403,
                r#"{"RequestId":"R","Code":"Forbidden.RAM","Message":"User not authorized"}"#,
                Forbidden,
                Some("Forbidden.RAM"),
            ),
            (
                404,
                r#"{"RequestId":"R","Code":"InvalidAppId.NotFound","Message":"The specified AppId does not exist."}"#,
                AppNotFound,
                Some("InvalidAppId.NotFound"),
            ),
            (
                400,
                r#"{"RequestId":"R","Code":"InvalidChangeOrder.NotFound","Message":"gone"}"#,
                OrderNotFound,
                Some("InvalidChangeOrder.NotFound"),
            ),
            // SAE business failure inside 200.
            (
                200,
                r#"{"RequestId":"R","Success":false,"ErrorCode":"InvalidAppId.NotFound","Code":"404","Message":"The specified AppId does not exist."}"#,
                AppNotFound,
                Some("InvalidAppId.NotFound"),
            ),
            (
                200,
                r#"{"RequestId":"R","Success":false,"Code":"500","Message":"x"}"#,
                ServerError,
                None,
            ),
            (
                200,
                r#"{"RequestId":"R","Success":false,"Message":"x"}"#,
                BadRequest,
                None,
            ),
            // EDAS integer Code != 200 inside 200.
            (
                200,
                r#"{"RequestId":"R","Code":500,"Message":"system error"}"#,
                ServerError,
                None,
            ),
            (
                200,
                r#"{"RequestId":"R","Code":403,"Message":"no permission"}"#,
                Forbidden,
                None,
            ),
            (
                200,
                r#"{"RequestId":"R","Code":404,"Message":"app not found"}"#,
                AppNotFound,
                None,
            ),
            (
                200,
                r#"{"RequestId":"R","Code":"Throttling","Message":"slow down"}"#,
                Throttled,
                Some("Throttling"),
            ),
            // Non-JSON error bodies.
            (502, "<html>Bad Gateway</html>", ServerError, None),
            (429, "", Throttled, None),
            (401, "nope", InvalidCredentials, None),
        ];
        for (status, body, kind, code) in cases {
            for p in [Provider::Edas, Provider::Sae] {
                let e = err(p, *status, body);
                assert_eq!(e.kind, *kind, "{status} {body}");
                assert_eq!(e.code.as_deref(), *code, "{status} {body}");
                assert_eq!(e.http_status, Some(*status));
                assert!(!e.to_string().contains('\n'));
            }
        }
        let e = err(
            Provider::Edas,
            200,
            r#"{"RequestId":"R9","Code":500,"Message":"system error"}"#,
        );
        assert_eq!(
            e.to_string(),
            "ServerError: system error (Code 500) (RequestId R9, HTTP 200)"
        );
        let e = err(
            Provider::Sae,
            404,
            r#"{"RequestId":"R2","Code":"InvalidAppId.NotFound","Message":"The specified AppId does not exist."}"#,
        );
        assert_eq!(
            e.to_string(),
            "InvalidAppId.NotFound: The specified AppId does not exist. (RequestId R2, HTTP 404)"
        );
    }

    #[test]
    fn pop_success_table() {
        for body in [
            r#"{"RequestId":"R","Code":200,"Message":"success","ChangeOrderList":{}}"#,
            r#"{"RequestId":"R","Code":"200","Success":true,"Data":{}}"#,
            r#"{"RequestId":"R","Success":true,"Data":{}}"#,
            r#"{"Data":{}}"#,
            r#"{"Code":"OK"}"#,
        ] {
            assert!(
                classify_reply(Provider::Sae, 200, body.as_bytes(), ErrorKind::AppNotFound).is_ok(),
                "{body}"
            );
        }
    }

    #[test]
    fn bad_replies() {
        let e = err(Provider::Edas, 200, "{not json");
        assert_eq!(e.kind, ErrorKind::BadReply);
        assert_eq!(e.raw.as_deref(), Some("{not json"));
        assert_eq!(err(Provider::Sae, 200, "[1,2]").kind, ErrorKind::BadReply);
        assert_eq!(err(Provider::Appstack, 200, "").kind, ErrorKind::BadReply);
        assert_eq!(err(Provider::Appstack, 200, "null").kind, ErrorKind::BadReply);
    }

    #[test]
    fn appstack_errors_table() {
        use ErrorKind::*;
        let cases: &[(u16, &str, ErrorKind, Option<&str>, &str)] = &[
            (
                401,
                r#"{"errorCode":"InvalidTokenError","errorMessage":"token is invalid"}"#,
                InvalidCredentials,
                Some("InvalidTokenError"),
                "token is invalid",
            ),
            (
                401,
                r#"{"errorCode":"ExpiredTokenError","errorDescription":"expired"}"#,
                InvalidCredentials,
                Some("ExpiredTokenError"),
                "expired",
            ),
            (
                401,
                r#"{"message":"Unauthorized"}"#,
                InvalidCredentials,
                None,
                "Unauthorized",
            ),
            (
                403,
                r#"{"errorCode":"ForbiddenOperation","errorMessage":"no"}"#,
                Forbidden,
                Some("ForbiddenOperation"),
                "no",
            ),
            (
                404,
                r#"{"errorCode":"NotFound","errorMessage":"app x not found"}"#,
                AppNotFound,
                Some("NotFound"),
                "app x not found",
            ),
            (
                429,
                r#"{"errorCode":"TooManyRequests","errorMessage":"slow"}"#,
                Throttled,
                Some("TooManyRequests"),
                "slow",
            ),
            (
                500,
                "Internal Server Error",
                ServerError,
                None,
                "Internal Server Error",
            ),
            (
                400,
                r#"{"errorCode":"BadRequest","errorMessage":"bad states"}"#,
                BadRequest,
                Some("BadRequest"),
                "bad states",
            ),
            (
                200,
                r#"{"success":false,"errorCode":"InvalidTokenError","errorMessage":"bad"}"#,
                InvalidCredentials,
                Some("InvalidTokenError"),
                "bad",
            ),
        ];
        for (status, body, kind, code, msg) in cases {
            let e = err(Provider::Appstack, *status, body);
            assert_eq!(e.kind, *kind, "{body}");
            assert_eq!(e.code.as_deref(), *code, "{body}");
            assert_eq!(e.message, *msg, "{body}");
        }
        let e = err(
            Provider::Appstack,
            401,
            r#"{"errorCode":"InvalidTokenError","errorMessage":"token is invalid"}"#,
        );
        assert_eq!(e.to_string(), "InvalidTokenError: token is invalid (HTTP 401)");
        assert!(
            classify_reply(
                Provider::Appstack,
                200,
                br#"{"records":[]}"#,
                ErrorKind::AppNotFound
            )
            .is_ok()
        );
    }

    #[test]
    fn redaction_of_echoed_secrets() {
        let creds = Credentials::AccessKey {
            access_key_id: "id".into(),
            access_key_secret: "SuperSecret".into(),
            security_token: Some("StsTok3n".into()),
        };
        let e = CloudError::new(
            ErrorKind::SignatureMismatch,
            "string to sign: x-acs-security-token:StsTok3n",
        )
        .with_raw(b"StsTok3n SuperSecret");
        let r = redact(e, &creds);
        assert!(!r.message.contains("StsTok3n"));
        assert!(!r.raw.as_deref().unwrap_or("").contains("SuperSecret"));
    }

    /// A rate-limit wait from a reply header must not overflow `Instant` (that panicked with
    /// "overflow when adding duration to instant"); it is capped like `parse_ratelimit`'s.
    #[test]
    fn huge_gate_wait_does_not_panic() {
        let tr = Transport::new(ClientConfig::default()).expect("transport");
        tr.set_gate("k", Duration::MAX);
        let until = tr.gates.lock().expect("gates")["k"];
        assert!(until <= Instant::now() + crate::error::MAX_RATELIMIT_WAIT);
    }

    #[test]
    fn url_building() {
        let base = Url::parse("http://127.0.0.1:8080/proxy/").unwrap();
        let u = build_url(&base, "/pop/v5/x", &[("AppId".into(), "a b*".into())]).unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:8080/proxy/pop/v5/x?AppId=a%20b%2A");
        assert_eq!(host_header(&u), "127.0.0.1:8080");
        let base = Url::parse("https://sae.cn-hangzhou.aliyuncs.com").unwrap();
        let u = build_url(&base, "/pop/v1/sam/changeorder/ListChangeOrders", &[]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://sae.cn-hangzhou.aliyuncs.com/pop/v1/sam/changeorder/ListChangeOrders"
        );
        assert_eq!(host_header(&u), "sae.cn-hangzhou.aliyuncs.com");
        let base = Url::parse("https://example.com:443/").unwrap();
        assert_eq!(host_header(&build_url(&base, "/a", &[]).unwrap()), "example.com");
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            max_wait: Duration::from_secs(1),
        };
        for attempt in 1..40 {
            let d = p.backoff(attempt);
            assert!(d <= Duration::from_millis(350), "{attempt} {d:?}");
        }
        assert!(p.backoff(1) <= Duration::from_millis(100));
        let zero = RetryPolicy {
            base_delay: Duration::ZERO,
            ..p
        };
        assert_eq!(zero.backoff(3), Duration::ZERO);
    }

    proptest::proptest! {
        #[test]
        fn classify_reply_never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256), status in 100u16..600) {
            for p in Provider::ALL {
                let _ = classify_reply(p, status, &body, ErrorKind::OrderNotFound);
            }
        }

        #[test]
        fn classify_reply_json_never_panics(
            code in proptest::option::of(".{0,20}"),
            num in proptest::option::of(proptest::num::i64::ANY),
            success in proptest::option::of(proptest::bool::ANY),
            status in 100u16..600,
        ) {
            let v = serde_json::json!({"Code": code, "ErrorCode": num, "Success": success, "success": success,
                                       "errorCode": code, "status": num, "Message": code});
            let body = serde_json::to_vec(&v).unwrap_or_default();
            for p in Provider::ALL {
                let _ = classify_reply(p, status, &body, ErrorKind::AppNotFound);
            }
        }
    }
}
