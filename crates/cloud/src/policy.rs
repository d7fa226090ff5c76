//! Which cloud endpoints the operator may call: an operator-level allow-list, so a tenant who
//! can create a `ChangeOrderWatch` cannot send the operator's signed requests, security tokens
//! or AppStack tokens to a server of their own.
//!
//! A policy is a comma-separated list of URL patterns, `scheme://host[:port]`:
//! - the scheme is `http` or `https` and must match exactly;
//! - the host is compared label by label, case-insensitively; a label `*` matches one or more
//!   labels (`https://*.aliyuncs.com` matches `https://sae.cn-hangzhou.aliyuncs.com` but not
//!   `https://aliyuncs.com` nor `https://x.aliyuncs.com.evil.com`);
//! - the port is a number or `*`; without one, only the scheme's default port matches.
//!
//! URLs are checked after parsing them the way the HTTP client does (WHATWG rules: lower-cased
//! hosts, normalised IP addresses, percent-decoding), so what is checked is where the request
//! goes. URLs carrying user info (`https://evil.com@x.aliyuncs.com`) are never allowed.

use std::fmt;
use std::str::FromStr;

use reqwest::Url;

/// The policy used when none is configured: Alibaba Cloud's public API hosts over https.
pub const DEFAULT_ALLOWED_ENDPOINTS: &str = "https://*.aliyuncs.com";

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
    Exact(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Port {
    Any,
    Exact(u16),
}

/// One `scheme://host[:port]` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    scheme: Scheme,
    host: Vec<Label>,
    port: Port,
    /// As written (trimmed), for messages.
    text: String,
}

/// Why a policy (the `--allowed-endpoints` flag) could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("no endpoint pattern given; use e.g. {}", DEFAULT_ALLOWED_ENDPOINTS)]
    Empty,
    #[error(
        "invalid endpoint pattern {pattern:?}: {problem} (expected scheme://host[:port], e.g. https://*.aliyuncs.com or http://127.0.0.1:*)"
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
    #[error("only a host and a port are allowed")]
    NotOnlyHostAndPort,
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
    #[error("host labels are letters, digits, '-' or a whole '*'")]
    BadLabel,
    #[error("the host must name at least one label besides *")]
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
        if self.allows(&parsed) {
            Ok(())
        } else {
            refuse(RefusalReason::NotAllowed)
        }
    }

    /// Like [`check`](Self::check), for a URL already parsed (e.g. `Target::base_url`).
    pub fn check_url(&self, url: &Url) -> Result<(), EndpointRefused> {
        self.check(url.as_str())
    }

    fn allows(&self, url: &Url) -> bool {
        let scheme = match url.scheme() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return false,
        };
        let Some(host) = url.host_str() else {
            return false;
        };
        // A fully qualified name (`x.aliyuncs.com.`) is the same host.
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let labels: Vec<&str> = host.split('.').collect();
        if labels.iter().any(|l| l.is_empty()) {
            return false;
        }
        let Some(port) = url.port_or_known_default() else {
            return false;
        };
        self.patterns.iter().any(|p| {
            p.scheme == scheme
                && match p.port {
                    Port::Any => true,
                    Port::Exact(want) => want == port,
                }
                && labels_match(&p.host, &labels)
        })
    }
}

/// `pattern` against `host`, where `Label::Any` eats one or more labels.
fn labels_match(pattern: &[Label], host: &[&str]) -> bool {
    match pattern.split_first() {
        None => host.is_empty(),
        Some((Label::Exact(want), rest)) => match host.split_first() {
            Some((label, host_rest)) => label == want && labels_match(rest, host_rest),
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
    // A trailing slash is tolerated; any other path, query or fragment is not.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@', '\\']) {
        return bad(PatternProblem::NotOnlyHostAndPort);
    }
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
        if labels.iter().all(|l| *l == Label::Any) {
            return bad(PatternProblem::OnlyWildcards);
        }
    }
    Ok(Pattern {
        scheme,
        host: labels,
        port,
        text: text.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(s: &str) -> EndpointPolicy {
        EndpointPolicy::parse(s).expect("valid policy")
    }

    #[test]
    fn default_policy_covers_the_public_endpoints() {
        let p = EndpointPolicy::default();
        assert_eq!(p.to_string(), DEFAULT_ALLOWED_ENDPOINTS);
        for ok in [
            "https://sae.cn-hangzhou.aliyuncs.com",
            "https://edas.cn-shanghai.aliyuncs.com/",
            "https://openapi-rdc.aliyuncs.com",
            "https://sts.aliyuncs.com",
            "https://a.b.c.aliyuncs.com/prefix/path",
            "https://SAE.CN-HANGZHOU.ALIYUNCS.COM",
            "https://sae.cn-hangzhou.aliyuncs.com.",
            "https://sae.cn-hangzhou.aliyuncs.com:443",
        ] {
            assert_eq!(p.check(ok), Ok(()), "{ok}");
        }
        for bad in [
            // Scheme mismatch: plain http would expose tokens on the wire.
            "http://sae.cn-hangzhou.aliyuncs.com",
            // The wildcard needs at least one label.
            "https://aliyuncs.com",
            // Suffix tricks.
            "https://x.aliyuncs.com.evil.com",
            "https://xaliyuncs.com",
            "https://evilaliyuncs.com",
            "https://x.aliyuncs.com-evil.com",
            // User info: the real host is the part after '@'.
            "https://evil.com@x.aliyuncs.com",
            "https://x.aliyuncs.com@evil.com",
            "https://user:pass@x.aliyuncs.com",
            // Another port than the scheme's default.
            "https://sae.cn-hangzhou.aliyuncs.com:8443",
            // Other schemes, garbage, IPs.
            "ftp://sae.cn-hangzhou.aliyuncs.com",
            "not a url",
            "",
            "https://127.0.0.1",
            "https://[::1]",
            // Encoded dots decode to another host.
            "https://x.aliyuncs.com%2eevil.com",
        ] {
            assert!(p.check(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn local_simulator_policy() {
        let p = policy("http://127.0.0.1:*");
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:31337/prefix",
            "http://127.0.0.1",
            // Other spellings of the same address, as the HTTP client parses them.
            "http://0x7f.0.0.1:8080",
            "http://2130706433:8080",
        ] {
            assert_eq!(p.check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "https://127.0.0.1:8080",
            "http://127.0.0.2:8080",
            "http://localhost:8080",
            "http://127.0.0.1.evil.com:8080",
            "http://evil.com@127.0.0.1:8080",
            "http://10.127.0.0.1:8080",
        ] {
            assert!(p.check(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn ports_and_lists() {
        let p = policy(" https://api.example.com:8443 , http://*.internal:80,https://[::1]:*");
        for ok in [
            "https://api.example.com:8443/x",
            "http://a.internal",
            "http://a.b.internal:80",
            "https://[::1]:9",
            "https://[0:0::1]",
        ] {
            assert_eq!(p.check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "https://api.example.com",
            "https://api.example.com:8444",
            "http://a.internal:8080",
            "http://internal",
            "https://[::2]:9",
        ] {
            assert!(p.check(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn wildcard_in_the_middle() {
        let p = policy("https://sae.*.aliyuncs.com");
        assert_eq!(p.check("https://sae.cn-hangzhou.aliyuncs.com"), Ok(()));
        assert_eq!(p.check("https://sae.a.b.aliyuncs.com"), Ok(()));
        assert!(p.check("https://sae.aliyuncs.com").is_err());
        assert!(p.check("https://edas.cn-hangzhou.aliyuncs.com").is_err());
    }

    #[test]
    fn pattern_case_is_ignored() {
        let p = policy("HTTPS://*.AliyunCS.com");
        assert_eq!(p.check("https://sae.cn-hangzhou.aliyuncs.com"), Ok(()));
    }

    #[test]
    fn invalid_patterns() {
        for bad in [
            "",
            " , ",
            "*.aliyuncs.com",
            "ftp://*.aliyuncs.com",
            "https://*",
            "https://*.*",
            "https://",
            "https://x.aliyuncs.com/path",
            "https://x.aliyuncs.com?q",
            "https://user@x.aliyuncs.com",
            "https://x*.aliyuncs.com",
            "https://x..aliyuncs.com",
            "https://x.aliyuncs.com:0",
            "https://x.aliyuncs.com:99999",
            "https://x.aliyuncs.com:abc",
            "https://[::1",
        ] {
            let e = EndpointPolicy::parse(bad).expect_err(bad).to_string();
            assert!(
                e.contains("endpoint pattern"),
                "{bad}: message should say what is wrong: {e}"
            );
        }
    }

    #[test]
    fn the_error_names_the_endpoint_and_the_policy() {
        let p = EndpointPolicy::default();
        let e = p
            .check("http://attacker.example:9000/x")
            .expect_err("refused")
            .to_string();
        assert!(e.contains("http://attacker.example:9000/x"), "{e}");
        assert!(e.contains("https://*.aliyuncs.com"), "{e}");
        assert!(e.contains("--allowed-endpoints"), "{e}");
    }

    #[test]
    fn the_error_never_repeats_user_info() {
        let e = EndpointPolicy::default()
            .check("https://AKID:s3cr3t@x.aliyuncs.com/")
            .expect_err("refused")
            .to_string();
        assert!(!e.contains("s3cr3t") && !e.contains("AKID"), "{e}");
        assert!(e.contains("x.aliyuncs.com"), "{e}");
    }

    #[test]
    fn messages_read_as_before() {
        // Conditions, Events and flag errors show these texts; they must not drift.
        assert_eq!(
            EndpointPolicy::parse(" , ").expect_err("empty").to_string(),
            "no endpoint pattern given; use e.g. https://*.aliyuncs.com"
        );
        assert_eq!(
            EndpointPolicy::parse("https://x.aliyuncs.com:0")
                .expect_err("port 0")
                .to_string(),
            "invalid endpoint pattern \"https://x.aliyuncs.com:0\": the port must be a number from 1 to 65535 or * (expected scheme://host[:port], e.g. https://*.aliyuncs.com or http://127.0.0.1:*)"
        );
        assert_eq!(
            EndpointPolicy::default()
                .check("https://u@x.aliyuncs.com/")
                .expect_err("user info")
                .to_string(),
            "endpoint \"https://x.aliyuncs.com/\" carries user info; the operator's endpoint policy (--allowed-endpoints) allows only https://*.aliyuncs.com"
        );
    }

    #[test]
    fn parsed_urls_check_the_same() {
        let p = EndpointPolicy::default();
        let url = Url::parse("https://sae.cn-beijing.aliyuncs.com/").expect("url");
        assert_eq!(p.check_url(&url), Ok(()));
    }
}
