//! Errors from the cloud APIs, classified into a small set of kinds the controller acts on.
//!
//! [`ErrorKind::as_str`] is a stable short name usable as a metrics label, an event reason and
//! a condition reason. [`CloudError`]'s `Display` is one line, e.g.
//! `SignatureDoesNotMatch: The request signature does not conform (RequestId 1A2B, HTTP 400)`,
//! and never contains a secret: messages come from the cloud (which never echoes the secret)
//! or from this crate.

use std::time::Duration;

/// What went wrong, at the level a caller decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Rate limited (`Throttling*`, HTTP 429). Retry later.
    Throttled,
    /// The AccessKey or token is unknown, disabled or expired. Stop until credentials change.
    InvalidCredentials,
    /// The signature did not match (wrong secret, or a signing bug).
    SignatureMismatch,
    /// Authenticated but not allowed.
    Forbidden,
    /// The application does not exist (or is not visible to these credentials).
    AppNotFound,
    /// The change order does not exist.
    OrderNotFound,
    /// The request was rejected as invalid.
    BadRequest,
    /// The cloud failed (5xx, `InternalError`, `ServiceUnavailable`).
    ServerError,
    /// Could not connect, or the connection failed or timed out.
    Transport,
    /// The reply could not be understood (malformed JSON, missing fields).
    BadReply,
    /// The reply exceeded the configured size cap.
    TooLarge,
    /// The request time was rejected: the local clock is off by more than 15 minutes.
    ClockSkew,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 12] = [
        ErrorKind::Throttled,
        ErrorKind::InvalidCredentials,
        ErrorKind::SignatureMismatch,
        ErrorKind::Forbidden,
        ErrorKind::AppNotFound,
        ErrorKind::OrderNotFound,
        ErrorKind::BadRequest,
        ErrorKind::ServerError,
        ErrorKind::Transport,
        ErrorKind::BadReply,
        ErrorKind::TooLarge,
        ErrorKind::ClockSkew,
    ];

    /// Stable name for metrics labels, events and condition reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "Throttled",
            ErrorKind::InvalidCredentials => "InvalidCredentials",
            ErrorKind::SignatureMismatch => "SignatureMismatch",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::AppNotFound => "AppNotFound",
            ErrorKind::OrderNotFound => "OrderNotFound",
            ErrorKind::BadRequest => "BadRequest",
            ErrorKind::ServerError => "ServerError",
            ErrorKind::Transport => "Transport",
            ErrorKind::BadReply => "BadReply",
            ErrorKind::TooLarge => "TooLarge",
            ErrorKind::ClockSkew => "ClockSkew",
        }
    }

    /// Worth retrying the same call soon (with backoff).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled | ErrorKind::ServerError | ErrorKind::Transport
        )
    }

    /// Classify a cloud error code, falling back to the HTTP status (or an HTTP-like status
    /// carried in the body). `not_found` is the kind a bare 404 means for this operation
    /// (an app for a list call, an order for a describe call).
    pub fn classify(code: Option<&str>, status: Option<u16>, not_found: ErrorKind) -> ErrorKind {
        if let Some(kind) = code.and_then(|c| Self::from_code(c, not_found)) {
            return kind;
        }
        match status {
            Some(429) => ErrorKind::Throttled,
            Some(401) => ErrorKind::InvalidCredentials,
            Some(403) => ErrorKind::Forbidden,
            Some(404) => not_found,
            Some(413) => ErrorKind::TooLarge,
            Some(408) => ErrorKind::Transport,
            Some(s) if s >= 500 => ErrorKind::ServerError,
            Some(s) if s >= 400 => ErrorKind::BadRequest,
            _ => ErrorKind::BadReply,
        }
    }

    /// The kind a known cloud code means, `None` for codes not recognised (the caller then
    /// falls back to the HTTP status).
    fn from_code(code: &str, not_found: ErrorKind) -> Option<ErrorKind> {
        let c = code.trim();
        let lower = c.to_ascii_lowercase();
        let starts = |p: &str| lower.starts_with(&p.to_ascii_lowercase());
        let kind = if starts("Throttling") || lower == "toomanyrequests" || lower.contains("ratelimit") {
            ErrorKind::Throttled
        } else if starts("InvalidAccessKeyId")
            || starts("InvalidSecurityToken")
            // STS AssumeRoleWithOIDC: the OIDC token or the role is not accepted.
            || starts("AuthenticationFail")
            || starts("EntityNotExist.Role")
            || lower == "unauthorized"
            || lower == "expiredtokenerror"
            || lower == "invalidtokenerror"
            || lower.contains("token") && (lower.contains("invalid") || lower.contains("expired"))
        {
            ErrorKind::InvalidCredentials
        } else if lower == "signaturedoesnotmatch"
            || lower == "incompletesignature"
            || lower == "signaturenonceused"
            || starts("InvalidSignature")
        {
            ErrorKind::SignatureMismatch
        } else if starts("InvalidTimeStamp") {
            ErrorKind::ClockSkew
        } else if starts("Forbidden")
            || lower.contains("nopermission")
            || lower.contains("no.permission")
            || lower.contains("accessdenied")
        {
            ErrorKind::Forbidden
        } else if lower == "invalidchangeorder.notfound"
            || lower.contains("changeorder") && lower.contains("notfound")
        {
            ErrorKind::OrderNotFound
        } else if lower == "invalidappid.notfound"
            || lower.contains("app") && (lower.contains("notfound") || lower.contains("notexist"))
        {
            ErrorKind::AppNotFound
        } else if lower.ends_with("notfound") || lower == "notfound" {
            not_found
        } else if lower == "internalerror"
            || lower == "serviceunavailable"
            || starts("InternalError")
            || starts("ServiceUnavailable")
        {
            ErrorKind::ServerError
        } else if starts("InvalidParameter")
            || starts("MissingParameter")
            || starts("BadRequest")
            || starts("InvalidAction")
            || starts("InvalidVersion")
        {
            ErrorKind::BadRequest
        } else {
            return None;
        };
        Some(kind)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed cloud call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CloudError {
    pub kind: ErrorKind,
    /// The cloud's error code (`SignatureDoesNotMatch`, `InvalidAppId.NotFound`,
    /// `InvalidTokenError`...), when it sent one.
    pub code: Option<String>,
    /// The cloud's message, or ours for transport and parse failures.
    pub message: String,
    pub request_id: Option<String>,
    pub http_status: Option<u16>,
    /// How long the cloud asked us to wait (rate-limit `TimeLeft`).
    pub retry_after: Option<Duration>,
    /// The reply body as received (truncated), kept for debugging when it could not be read
    /// as the expected JSON. Not part of `Display`.
    pub raw: Option<String>,
}

impl std::fmt::Display for CloudError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // One line: flatten any newline the cloud put into its code, message or request id
        // (all three come from the reply).
        let one_line = |s: &str| -> String {
            s.chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                .collect()
        };
        let code = one_line(
            self.code
                .as_deref()
                .filter(|c| !c.is_empty())
                .unwrap_or(self.kind.as_str()),
        );
        write!(f, "{code}: {}", one_line(&self.message).trim())?;
        let request_id = self.request_id.as_deref().map(one_line);
        match (&request_id, self.http_status) {
            (Some(id), Some(s)) => write!(f, " (RequestId {id}, HTTP {s})"),
            (Some(id), None) => write!(f, " (RequestId {id})"),
            (None, Some(s)) => write!(f, " (HTTP {s})"),
            (None, None) => Ok(()),
        }
    }
}

/// Longest reply excerpt kept in [`CloudError::raw`] and in messages built from raw text.
pub const RAW_EXCERPT_CHARS: usize = 512;

/// The first `RAW_EXCERPT_CHARS` characters of a body, lossily decoded.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(RAW_EXCERPT_CHARS).collect();
    if text.chars().nth(RAW_EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    out
}

impl CloudError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CloudError {
            kind,
            code: None,
            message: message.into(),
            request_id: None,
            http_status: None,
            retry_after: None,
            raw: None,
        }
    }

    pub fn transport(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transport, message)
    }

    pub fn bad_reply(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadReply, message)
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    pub fn with_request_id(mut self, id: Option<String>) -> Self {
        self.request_id = id.filter(|s| !s.is_empty());
        self
    }

    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }

    pub fn with_raw(mut self, body: &[u8]) -> Self {
        self.raw = Some(excerpt(body));
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Worth retrying soon, for a read. `SignatureNonceUsed` is the one signature error a retry
    /// (with a fresh nonce) fixes. Not for writes: a write the cloud carried out can come back
    /// with `SignatureNonceUsed` or a 5xx; see `actions::WriteOutcome`.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable() || self.code.as_deref() == Some("SignatureNonceUsed")
    }

    /// How long the cloud asked us to wait before the next call, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// Longest wait a rate-limit header can impose. The clouds' windows are a minute or less; a
/// larger `TimeLeft` is a broken header, and an unbounded one would overflow the `Instant`
/// arithmetic of whoever schedules the next call (`Instant::now() + wait` panics).
pub const MAX_RATELIMIT_WAIT: Duration = Duration::from_secs(3600);

/// The wait a rate-limit header asks for: `TimeLeft` (milliseconds) from
/// `Limit:1,Remain:0,TimeLeft:<ms>,Reset:...`, at most [`MAX_RATELIMIT_WAIT`]. Returns `None`
/// when the header has no usable `TimeLeft`, or when `Remain` says calls are still left (then
/// there is nothing to wait for).
pub fn parse_ratelimit(value: &str) -> Option<Duration> {
    let mut remain: Option<i64> = None;
    let mut time_left: Option<u64> = None;
    for part in value.split([',', ';']) {
        let Some((k, v)) = part.split_once([':', '=']) else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "remain" => remain = v.trim().parse().ok(),
            "timeleft" => {
                time_left = v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .map(|x| x as u64)
            }
            _ => {}
        }
    }
    if remain.is_some_and(|r| r > 0) {
        return None;
    }
    time_left
        .filter(|ms| *ms > 0)
        .map(|ms| Duration::from_millis(ms).min(MAX_RATELIMIT_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        use ErrorKind::*;
        let cases: &[(Option<&str>, Option<u16>, ErrorKind, ErrorKind)] = &[
            (Some("Throttling"), Some(400), AppNotFound, Throttled),
            (Some("Throttling.User"), Some(400), AppNotFound, Throttled),
            (Some("Throttling.Api"), Some(400), AppNotFound, Throttled),
            (Some("TooManyRequests"), Some(429), AppNotFound, Throttled),
            (None, Some(429), AppNotFound, Throttled),
            (Some("ServiceUnavailable"), Some(503), AppNotFound, ServerError),
            (Some("InternalError"), Some(500), AppNotFound, ServerError),
            (None, Some(502), AppNotFound, ServerError),
            (
                Some("InvalidAccessKeyId.NotFound"),
                Some(404),
                AppNotFound,
                InvalidCredentials,
            ),
            (
                Some("InvalidAccessKeyId.Inactive"),
                Some(400),
                AppNotFound,
                InvalidCredentials,
            ),
            (
                Some("InvalidSecurityToken.Expired"),
                Some(400),
                AppNotFound,
                InvalidCredentials,
            ),
            (Some("Unauthorized"), Some(401), AppNotFound, InvalidCredentials),
            (
                Some("AuthenticationFail.OIDCToken.Expired"),
                Some(400),
                AppNotFound,
                InvalidCredentials,
            ),
            (
                Some("EntityNotExist.Role"),
                Some(404),
                AppNotFound,
                InvalidCredentials,
            ),
            (
                Some("ExpiredTokenError"),
                Some(401),
                AppNotFound,
                InvalidCredentials,
            ),
            (
                Some("InvalidTokenError"),
                Some(401),
                AppNotFound,
                InvalidCredentials,
            ),
            (None, Some(401), AppNotFound, InvalidCredentials),
            (
                Some("SignatureDoesNotMatch"),
                Some(400),
                AppNotFound,
                SignatureMismatch,
            ),
            (
                Some("IncompleteSignature"),
                Some(403),
                AppNotFound,
                SignatureMismatch,
            ),
            (
                Some("SignatureNonceUsed"),
                Some(400),
                AppNotFound,
                SignatureMismatch,
            ),
            (
                Some("InvalidTimeStamp.Expired"),
                Some(400),
                AppNotFound,
                ClockSkew,
            ),
            (Some("Forbidden"), Some(403), AppNotFound, Forbidden),
            (Some("Forbidden.RAM"), Some(403), AppNotFound, Forbidden),
            (Some("ForbiddenAppAccess"), Some(403), AppNotFound, Forbidden),
            (Some("Resouce.no.permission"), Some(400), AppNotFound, Forbidden),
            (None, Some(403), AppNotFound, Forbidden),
            (
                Some("InvalidChangeOrder.NotFound"),
                Some(400),
                AppNotFound,
                OrderNotFound,
            ),
            (
                Some("InvalidAppId.NotFound"),
                Some(404),
                OrderNotFound,
                AppNotFound,
            ),
            (Some("NotFound"), Some(404), OrderNotFound, OrderNotFound),
            (None, Some(404), AppNotFound, AppNotFound),
            (None, Some(404), OrderNotFound, OrderNotFound),
            (
                Some("InvalidParameter.NotEmpty"),
                Some(400),
                AppNotFound,
                BadRequest,
            ),
            (Some("MissingParameter"), Some(400), AppNotFound, BadRequest),
            (Some("BadRequest"), Some(400), AppNotFound, BadRequest),
            (Some("SomethingNew"), Some(400), AppNotFound, BadRequest),
            (Some("SomethingNew"), Some(500), AppNotFound, ServerError),
            (Some("SomethingNew"), None, AppNotFound, BadReply),
            (None, None, AppNotFound, BadReply),
        ];
        for (code, status, nf, want) in cases {
            assert_eq!(
                ErrorKind::classify(*code, *status, *nf),
                *want,
                "{code:?} {status:?}"
            );
        }
    }

    #[test]
    fn retryable() {
        for k in ErrorKind::ALL {
            let want = matches!(
                k,
                ErrorKind::Throttled | ErrorKind::ServerError | ErrorKind::Transport
            );
            assert_eq!(CloudError::new(k, "x").is_retryable(), want, "{k}");
        }
        let nonce = CloudError::new(ErrorKind::SignatureMismatch, "x").with_code("SignatureNonceUsed");
        assert!(nonce.is_retryable());
    }

    #[test]
    fn kind_names_are_unique_and_pascal_case() {
        let mut names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
        );
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn display_one_line() {
        let e = CloudError::new(
            ErrorKind::SignatureMismatch,
            "The request signature does not conform.\nStringToSign: x",
        )
        .with_code("SignatureDoesNotMatch")
        .with_request_id(Some("ABC".into()))
        .with_status(400);
        assert_eq!(
            e.to_string(),
            "SignatureDoesNotMatch: The request signature does not conform. StringToSign: x (RequestId ABC, HTTP 400)"
        );
        let t = CloudError::transport("connection refused");
        assert_eq!(t.to_string(), "Transport: connection refused");
        let a = CloudError::new(ErrorKind::InvalidCredentials, "token expired")
            .with_code("InvalidTokenError")
            .with_status(401);
        assert_eq!(a.to_string(), "InvalidTokenError: token expired (HTTP 401)");
        let r = CloudError::new(ErrorKind::ServerError, "m").with_request_id(Some("R".into()));
        assert_eq!(r.to_string(), "ServerError: m (RequestId R)");
        assert!(!r.to_string().contains('\n'));
    }

    /// Found by the error_envelope fuzz target: a reply whose error code held a carriage return
    /// (`{"Success": false, "Code": "In\r..."}`) made a multi-line error text, which ends up in
    /// conditions, Events and log lines.
    #[test]
    fn display_flattens_code_and_request_id() {
        let e = CloudError::new(ErrorKind::BadRequest, "m\nn")
            .with_code("In\rvalid\nCode")
            .with_request_id(Some("R\r1".into()))
            .with_status(200);
        let line = e.to_string();
        assert!(!line.contains(['\n', '\r']), "{line:?}");
        assert_eq!(line, "In valid Code: m n (RequestId R 1, HTTP 200)");
    }

    #[test]
    fn ratelimit_header() {
        assert_eq!(
            parse_ratelimit("Limit:1,Remain:0,TimeLeft:1500,Reset:1700000000000"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_ratelimit("Limit:60, Remain:0, TimeLeft:20"),
            Some(Duration::from_millis(20))
        );
        assert_eq!(parse_ratelimit("Limit:60,Remain:12,TimeLeft:20"), None);
        assert_eq!(parse_ratelimit("TimeLeft:250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_ratelimit("TimeLeft:0"), None);
        assert_eq!(parse_ratelimit("garbage"), None);
        assert_eq!(parse_ratelimit("TimeLeft:-5"), None);
        assert_eq!(parse_ratelimit(""), None);
    }

    /// A huge `TimeLeft` (`1e30` saturates to `u64::MAX` ms) used to come back as ~584 million
    /// years, and `Instant::now() + wait` in the client's rate-limit gate panicked on it.
    #[test]
    fn ratelimit_wait_is_capped() {
        for header in [
            "TimeLeft:1e30",
            "TimeLeft:18446744073709551615",
            "Remain:0,TimeLeft:3600001",
        ] {
            let wait = parse_ratelimit(header).expect(header);
            assert_eq!(wait, MAX_RATELIMIT_WAIT, "{header}");
            assert!(std::time::Instant::now().checked_add(wait).is_some());
        }
        assert_eq!(parse_ratelimit("TimeLeft:3600000"), Some(MAX_RATELIMIT_WAIT));
    }

    #[test]
    fn excerpt_truncates() {
        let long = "é".repeat(RAW_EXCERPT_CHARS + 10);
        let e = excerpt(long.as_bytes());
        assert_eq!(e.chars().count(), RAW_EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b"short"), "short");
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }

    proptest::proptest! {
        #[test]
        fn ratelimit_never_panics(s in ".*") {
            let _ = parse_ratelimit(&s);
        }

        #[test]
        fn classify_never_panics(s in ".*", status in proptest::option::of(0u16..1000)) {
            let _ = ErrorKind::classify(Some(&s), status, ErrorKind::AppNotFound);
        }
    }
}
