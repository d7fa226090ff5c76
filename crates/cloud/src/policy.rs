//! Which cloud endpoints the operator may call: an operator-level allow-list, so a tenant who
//! can create a `ChangeOrderWatch` cannot send the operator's signed requests, security tokens
//! or AppStack tokens to a server of their own.
//!
//! A policy is a comma-separated list of URL patterns, `scheme://host[:port][/path]`:
//! - the scheme is `http` or `https` and must match exactly;
//! - the host is compared label by label, case-insensitively; a label `*` matches one or more
//!   labels (`https://*.aliyuncs.com` matches `https://sae.cn-hangzhou.aliyuncs.com` but not
//!   `https://aliyuncs.com` nor `https://x.aliyuncs.com.evil.com`), a label `<region>` matches
//!   exactly one well-formed region id ([`is_region_id`]);
//! - the port is a number or `*`; without one, only the scheme's default port matches;
//! - the path: without one, only the root path matches; with one, only that path (a trailing
//!   `/` aside). A path prefix is where the client sends every call, so a pattern never admits
//!   paths it does not name.
//!
//! The default admits only the cloud's API hosts (`../shared/spec/cloud-apis.md`), not
//! `https://*.aliyuncs.com`: customers own hosts under `aliyuncs.com` too (Function Compute
//! triggers `<account>.<region>.fc.aliyuncs.com`, OSS buckets `<bucket>.oss-<region>.aliyuncs.com`,
//! a bucket may be named `sae`), and a wide pattern lets a tenant's watch send the operator's
//! signed requests and tokens to them.
//!
//! URLs are checked after parsing them the way the HTTP client does (WHATWG rules: lower-cased
//! hosts, normalised IP addresses, percent-decoding), so what is checked is where the request
//! goes. URLs carrying user info (`https://evil.com@x.aliyuncs.com`), a query or a fragment, and
//! hosts written with a trailing dot, are never allowed.

use std::fmt;
use std::str::FromStr;

use reqwest::Url;

/// The policy used when none is configured: the API hosts of EDAS, SAE (and their VPC forms),
/// STS and the Yunxiao central edition, over https at the root path, for well-formed regions.
pub const DEFAULT_ALLOWED_ENDPOINTS: &str = "https://edas.<region>.aliyuncs.com,\
https://edas-vpc.<region>.aliyuncs.com,\
https://sae.<region>.aliyuncs.com,\
https://sae-vpc.<region>.aliyuncs.com,\
https://sts.aliyuncs.com,\
https://sts.<region>.aliyuncs.com,\
https://sts-vpc.<region>.aliyuncs.com,\
https://openapi-rdc.aliyuncs.com";

/// The pattern label that matches one region id.
const REGION_LABEL: &str = "<region>";

/// Longer than any region id the cloud has (`cn-shanghai-finance-1` is 21).
const MAX_REGION_LEN: usize = 32;

/// A well-formed Alibaba Cloud region id: a two-letter area, then hyphen-separated parts of
/// lowercase letters and digits (`cn-hangzhou`, `ap-southeast-1`, `cn-shanghai-finance-1`).
/// The two-letter area is what keeps OSS's `oss-cn-hangzhou` (whose subdomains are customers'
/// buckets) from passing for a region; no dots, so a region never adds a host label.
pub fn is_region_id(s: &str) -> bool {
    let mut parts = s.split('-');
    let area_ok = parts
        .next()
        .is_some_and(|a| a.len() == 2 && a.bytes().all(|b| b.is_ascii_lowercase()));
    let rest: Vec<&str> = parts.collect();
    s.len() <= MAX_REGION_LEN
        && area_ok
        && !rest.is_empty()
        && rest
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(&self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Label {
    /// `*`: one or more labels.
    Any,
    /// `<region>`: one label that is a region id.
    Region,
    Exact(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Port {
    Any,
    Exact(u16),
}

/// One `scheme://host[:port][/path]` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    scheme: Scheme,
    host: Vec<Label>,
    port: Port,
    /// Normalised as URLs are, without a trailing `/`; empty for the root.
    path: String,
    /// As written (trimmed), for messages.
    text: String,
}

/// Why a policy (the `--allowed-endpoints` flag) could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no endpoint pattern given; use e.g. https://sae.<region>.aliyuncs.com")]
    Empty,
    #[error(
        "invalid endpoint pattern {pattern:?}: {problem} (expected scheme://host[:port][/path], e.g. https://sae.<region>.aliyuncs.com or http://127.0.0.1:*)"
    )]
    InvalidPattern {
        /// The pattern as written (trimmed).
        pattern: String,
        problem: PatternProblem,
    },
}

/// What is wrong with one pattern of a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternProblem {
    #[error("no scheme")]
    NoScheme,
    #[error("the scheme must be http or https")]
    BadScheme,
    #[error("only a host, a port and a path are allowed (no user info, query or fragment)")]
    NotOnlyHostAndPort,
    #[error("the path must not contain *")]
    WildcardPath,
    #[error("unterminated IPv6 address")]
    UnterminatedIpv6,
    #[error("unexpected text after the IPv6 address")]
    TextAfterIpv6,
    #[error("the port must be a number from 1 to 65535 or *")]
    BadPort,
    #[error("no host")]
    NoHost,
    #[error("invalid IPv6 address")]
    BadIpv6,
    #[error("host labels are letters, digits, '-', a whole '*' or a whole '<region>'")]
    BadLabel,
    #[error("the host must name at least one label besides * and <region>")]
    OnlyWildcards,
}

/// An endpoint the policy refuses. Names the endpoint (without user info) and the policy,
/// nothing else: the endpoint is a spec field, the policy a flag, neither a credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "endpoint {endpoint:?} {reason}; the operator's endpoint policy (--allowed-endpoints) allows only {policy}"
)]
pub struct EndpointRefused {
    /// As parsed and without user info, or the first 200 characters of an unparsable URL.
    pub endpoint: String,
    pub reason: RefusalReason,
    pub policy: EndpointPolicy,
}

/// Why an endpoint is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefusalReason {
    #[error("is not a valid URL")]
    InvalidUrl,
    #[error("carries user info")]
    UserInfo,
    #[error("carries a query or fragment")]
    QueryOrFragment,
    #[error("has a path no pattern names")]
    PathNotAllowed,
    #[error("is not allowed")]
    NotAllowed,
}

/// The endpoints the operator may call. See the module docs for the pattern syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointPolicy {
    patterns: Vec<Pattern>,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        match Self::parse(DEFAULT_ALLOWED_ENDPOINTS) {
            Ok(p) => p,
            // The constant is a valid pattern (tested); never reached.
            Err(_) => EndpointPolicy { patterns: Vec::new() },
        }
    }
}

impl fmt::Display for EndpointPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.patterns.iter().map(|p| p.text.as_str()).collect();
        f.write_str(&texts.join(","))
    }
}

impl FromStr for EndpointPolicy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, PolicyError> {
        Self::parse(s)
    }
}

impl EndpointPolicy {
    /// Parses a comma-separated list of patterns; at least one is required.
    pub fn parse(s: &str) -> Result<Self, PolicyError> {
        let patterns = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(parse_pattern)
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err(PolicyError::Empty);
        }
        Ok(EndpointPolicy { patterns })
    }

    /// Ok when `url` may be called. The error names the endpoint and the policy, nothing else
    /// (in particular no credentials: the endpoint is a spec field, the policy a flag).
    pub fn check(&self, url: &str) -> Result<(), EndpointRefused> {
        let parsed = Url::parse(url.trim());
        // Named as parsed, without user info (which could hold a password).
        let shown = match &parsed {
            Ok(u) => {
                let mut u = u.clone();
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string()
            }
            Err(_) => url.trim().chars().take(200).collect(),
        };
        let refuse = |reason| {
            Err(EndpointRefused {
                endpoint: shown,
                reason,
                policy: self.clone(),
            })
        };
        let Ok(parsed) = parsed else {
            return refuse(RefusalReason::InvalidUrl);
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return refuse(RefusalReason::UserInfo);
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return refuse(RefusalReason::QueryOrFragment);
        }
        match self.allows(&parsed) {
            Match::Yes => Ok(()),
            Match::OtherPath => refuse(RefusalReason::PathNotAllowed),
            Match::No => refuse(RefusalReason::NotAllowed),
        }
    }

    /// Like [`check`](Self::check), for a URL already parsed (e.g. `Target::base_url`).
    pub fn check_url(&self, url: &Url) -> Result<(), EndpointRefused> {
        self.check(url.as_str())
    }

    fn allows(&self, url: &Url) -> Match {
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Match::No,
        };
        let Some(host) = url.host_str() else {
            return Match::No;
        };
        // Empty labels, a trailing dot included: the policy names hosts exactly.
        let labels: Vec<&str> = host.split('.').collect();
        if labels.iter().any(|l| l.is_empty()) {
            return Match::No;
        }
        let Some(port) = url.port_or_known_default() else {
            return Match::No;
        };
        let path = url.path().strip_suffix('/').unwrap_or(url.path());
        let mut found = Match::No;
        for p in &self.patterns {
            let place = p.scheme == scheme
                && match p.port {
                    Port::Any => true,
                    Port::Exact(want) => want == port,
                }
                && labels_match(&p.host, &labels);
            if place && p.path == path {
                return Match::Yes;
            }
            if place {
                found = Match::OtherPath;
            }
        }
        found
    }
}

/// Whether a URL matched: its place (scheme, host, port) and path, or only its place.
enum Match {
    Yes,
    OtherPath,
    No,
}

/// `pattern` against `host`, where `Label::Any` eats one or more labels.
fn labels_match(pattern: &[Label], host: &[&str]) -> bool {
    match pattern.split_first() {
        None => host.is_empty(),
        Some((Label::Exact(want), rest)) => match host.split_first() {
            Some((label, host_rest)) => label == want && labels_match(rest, host_rest),
            None => false,
        },
        Some((Label::Region, rest)) => match host.split_first() {
            Some((label, host_rest)) => is_region_id(label) && labels_match(rest, host_rest),
            None => false,
        },
        Some((Label::Any, rest)) => (1..=host.len()).any(|n| labels_match(rest, &host[n..])),
    }
}

fn parse_pattern(text: &str) -> Result<Pattern, PolicyError> {
    let bad = |problem| {
        Err(PolicyError::InvalidPattern {
            pattern: text.to_owned(),
            problem,
        })
    };
    let Some((scheme, rest)) = text.split_once("://") else {
        return bad(PatternProblem::NoScheme);
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return bad(PatternProblem::BadScheme),
    };
    if rest.contains(['?', '#', '@', '\\']) {
        return bad(PatternProblem::NotOnlyHostAndPort);
    }
    let (rest, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if path.contains('*') {
        return bad(PatternProblem::WildcardPath);
    }
    // Normalised as the client normalises URLs (dot segments, percent-encoding), so both
    // sides compare as the request will be sent.
    let path = match Url::parse(&format!("http://x{path}")) {
        Ok(u) => u.path().strip_suffix('/').unwrap_or(u.path()).to_owned(),
        Err(_) => return bad(PatternProblem::NotOnlyHostAndPort),
    };
    let (host, port) = if rest.starts_with('[') {
        // An IPv6 literal: [addr] or [addr]:port.
        let Some(end) = rest.find(']') else {
            return bad(PatternProblem::UnterminatedIpv6);
        };
        let (h, p) = rest.split_at(end + 1);
        match p {
            "" => (h, None),
            p => match p.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None => return bad(PatternProblem::TextAfterIpv6),
            },
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => Port::Exact(scheme.default_port()),
        Some("*") => Port::Any,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Port::Exact(n),
            _ => return bad(PatternProblem::BadPort),
        },
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return bad(PatternProblem::NoHost);
    }
    let mut labels = Vec::new();
    if host.starts_with('[') {
        // Normalise the address the way URLs are normalised, so `[::1]` matches `[0:0::1]`.
        let Ok(url) = Url::parse(&format!("http://{host}/")) else {
            return bad(PatternProblem::BadIpv6);
        };
        labels.push(Label::Exact(url.host_str().unwrap_or(host).to_owned()));
    } else {
        for label in host.split('.') {
            if label == "*" {
                labels.push(Label::Any);
            } else if label == REGION_LABEL {
                labels.push(Label::Region);
            } else if label.is_empty()
                || !label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return bad(PatternProblem::BadLabel);
            } else {
                labels.push(Label::Exact(label.to_ascii_lowercase()));
            }
        }
        if labels.iter().all(|l| matches!(l, Label::Any | Label::Region)) {
            return bad(PatternProblem::OnlyWildcards);
        }
    }
    Ok(Pattern {
        scheme,
        host: labels,
        port,
        path,
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests;
