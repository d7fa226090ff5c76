//! HTTP transport shared by the three clients: signing or token auth, timeouts, a cap on reply
//! size, retries with capped exponential backoff and full jitter, rate-limit headers, a per-call
//! observer for metrics, and debug logging that never shows a credential. Turning a reply into
//! JSON or a classified error (including business failures inside 2xx replies) is
//! [`classify_reply`], in `http/classify.rs`.

mod classify;

pub use classify::classify_reply;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use serde_json::Value;

use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind, parse_ratelimit};
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

    /// Record what one poller needs of the account and return how often it can poll (see
    /// [`Pacing`]). The default paces nothing.
    fn pace<'a>(
        &'a self,
        _provider: Provider,
        _creds: &'a Credentials,
        _host: &'a str,
        demand: &Demand<'a>,
    ) -> Pacing {
        Pacing::unpaced(demand)
    }

    /// Calls that may be spent now on work nobody waits for (the history backfill) without
    /// delaying any poll: the claim is held, so other asks get none until those calls are
    /// refilled. `want` caps the claim, so a small ask does not hold back the next one. The
    /// default spares nothing.
    fn spare<'a>(&'a self, _provider: Provider, _creds: &'a Credentials, _host: &'a str, _want: u32) -> u32 {
        0
    }

    /// Learn, before calls are counted, whose budget `creds` spend (e.g. the account STS
    /// `GetCallerIdentity` names). Never fails; the default learns nothing.
    fn identify<'a>(
        &'a self,
        _creds: &'a Credentials,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(std::future::ready(()))
    }

    /// `creds` belong to cloud account `account` for the next `valid_for` (`None`: while in
    /// use), as the caller knows from elsewhere (an assumed role's ARN).
    fn learn(&self, _creds: &Credentials, _account: &str, _valid_for: Option<Duration>) {}
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
    /// How often it lists the app's orders (its interval), in flight or not; zero when its
    /// lists cost the account nothing of its own (an SAE namespace list serves it).
    pub interval: Duration,
}

/// How often the account's budget lets one poller poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pacing {
    /// How often each poller with orders in flight can poll if every one gets its turn.
    pub round: Duration,
    /// How often this poller's lists get their turn: its interval, or longer when the lists of
    /// every poller of the account at their intervals are more than the budget serves (all
    /// stretched alike, so an over-large fleet slows down evenly).
    pub list_every: Duration,
}

impl Pacing {
    /// Without a budget: no round, lists at the poller's own interval.
    pub fn unpaced(demand: &Demand<'_>) -> Pacing {
        Pacing {
            round: Duration::ZERO,
            list_every: demand.interval,
        }
    }
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

    /// Calls to `base` with `creds` that no other poll needs now (see [`CallBudget::spare`]):
    /// none while the cloud's announced rate limit holds; `None` without a budget.
    pub fn spare(&self, base: &Url, provider: Provider, creds: &Credentials, want: u32) -> Option<u32> {
        let host = host_header(base);
        let gate_key = format!("{host}|{}", creds.fingerprint());
        let gated = match self.gates.lock() {
            Ok(g) => g.get(&gate_key).copied(),
            Err(poisoned) => poisoned.into_inner().get(&gate_key).copied(),
        }
        .is_some_and(|until| until > Instant::now());
        if gated {
            return Some(0);
        }
        self.cfg
            .budget
            .as_ref()
            .map(|b| b.spare(provider, creds, &host, want))
    }

    /// See [`CallBudget::identify`]; nothing without a budget.
    pub async fn identify(&self, creds: &Credentials) {
        if let Some(budget) = &self.cfg.budget {
            budget.identify(creds).await;
        }
    }

    /// See [`CallBudget::learn`]; nothing without a budget.
    pub fn learn_account(&self, creds: &Credentials, account: &str, valid_for: Option<Duration>) {
        if let Some(budget) = &self.cfg.budget {
            budget.learn(creds, account, valid_for);
        }
    }

    /// See [`CallBudget::pace`]; no pacing without a budget.
    pub fn pace(&self, base: &Url, provider: Provider, creds: &Credentials, demand: &Demand<'_>) -> Pacing {
        let host = host_header(base);
        match self.cfg.budget.as_ref() {
            Some(b) => b.pace(provider, creds, &host, demand),
            None => Pacing::unpaced(demand),
        }
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

#[cfg(test)]
mod tests;
