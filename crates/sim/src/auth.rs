//! Gateway authentication for EDAS and SAE, as the cloud does it: the API version and action
//! must match the path, the AccessKey must exist, the timestamp be within 15 minutes, the
//! signature (V3 `ACS3-HMAC-SHA256` or ROA HMAC-SHA1) recompute from the received request, an STS
//! token match its key, and a nonce never repeat. The canonical strings come from
//! `changeorder_cloud::sign`, the same code the clients sign with.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use jiff::{SignedDuration, Timestamp};

use super::routes::{Op, Params};
use super::verify;
use changeorder_cloud::sign;

/// The gateway's tolerance for client clocks.
pub const MAX_SKEW: SignedDuration = SignedDuration::from_mins(15);

/// Nonces are remembered a little longer than a timestamp stays acceptable (both directions).
const NONCE_TTL: Duration = Duration::from_secs(31 * 60);

/// One AccessKey the simulator accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub access_key_id: String,
    pub access_key_secret: String,
    /// When set, the key is temporary (STS): requests must carry this `x-acs-security-token`.
    pub security_token: Option<String>,
}

impl Credential {
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Credential {
        Credential {
            access_key_id: id.into(),
            access_key_secret: secret.into(),
            security_token: None,
        }
    }

    /// An STS credential: the pair plus the token requests must present.
    pub fn sts(id: impl Into<String>, secret: impl Into<String>, token: impl Into<String>) -> Credential {
        Credential {
            security_token: Some(token.into()),
            ..Credential::new(id, secret)
        }
    }
}

/// The AccessKey id an `Authorization` header names (V3 or ROA), without verifying anything.
pub fn access_key_id(authorization: &str) -> Option<String> {
    if let Some(v3) = verify::parse_v3_authorization(authorization) {
        return Some(v3.access_key_id);
    }
    verify::parse_roa_authorization(authorization).map(|(id, _)| id)
}

/// A received request, as the verifier needs it.
pub struct Incoming<'a> {
    pub method: &'a str,
    /// Raw (still percent-encoded) path.
    pub path: &'a str,
    pub query: &'a Params,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Why a request was refused: HTTP status, gateway error code, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

fn reject(status: u16, code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        status,
        code,
        message: message.into(),
    }
}

fn incomplete(detail: impl std::fmt::Display) -> Rejection {
    reject(
        400,
        "IncompleteSignature",
        format!("The request signature does not conform to Aliyun standards. {detail}"),
    )
}

fn mismatch(server_string_to_sign: &str, canonical_request: Option<&str>) -> Rejection {
    let mut message = format!(
        "Specified signature does not match our calculation. server string to sign is:{server_string_to_sign}"
    );
    // V3's string to sign is only a hash; the canonical request is what a client can diff.
    if let Some(c) = canonical_request {
        message.push_str(&format!(" server canonical request is:{c}"));
    }
    reject(400, "SignatureDoesNotMatch", message)
}

/// A temporary credential the simulator handed out.
#[derive(Clone, Debug)]
struct IssuedKey {
    cred: Credential,
    /// Accepted until then (`InvalidSecurityToken.Expired` after).
    expires: Timestamp,
    /// The assumed role's ARN (`acs:ram::<account>:assumed-role/<role>/<session>`), if known.
    arn: Option<String>,
    /// Revoked before its expiry: refused as an unknown key.
    revoked: bool,
}

/// Who signed a request that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    /// A long-term AccessKey, by id.
    LongTerm(String),
    /// A temporary key issued for an assumed role (its ARN, when known).
    Assumed {
        access_key_id: String,
        arn: Option<String>,
    },
}

pub struct Verifier {
    credentials: Vec<Credential>,
    /// Temporary credentials issued by the simulated STS and metadata service, by id.
    issued: Mutex<HashMap<String, IssuedKey>>,
    /// (AccessKey id, nonce) → when first seen.
    nonces: Mutex<Nonces>,
}

impl Verifier {
    pub fn new(credentials: Vec<Credential>) -> Verifier {
        Verifier {
            credentials,
            issued: Mutex::new(HashMap::new()),
            nonces: Mutex::default(),
        }
    }

    /// Accept or refuse a request for `op`, at wall time `now`. On success, names the scheme
    /// (`ACS3-HMAC-SHA256` or `acs`) so the stats can show which one clients use.
    pub fn check(&self, req: &Incoming<'_>, op: &Op, now: Timestamp) -> Result<&'static str, Rejection> {
        let headers = header_pairs(req.headers);
        let get =
            |name: &str| -> Option<&str> { headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()) };
        check_operation(op, get(sign::HEADER_VERSION), get(sign::HEADER_ACTION))?;
        self.check_signature(req, &headers, now).map(|(scheme, _)| scheme)
    }

    /// An STS call (`POST /` with `x-acs-action`, as today's SDKs send it) signed with V3 or
    /// ROA headers: who signed it. The classic RPC form, signed in the query, is
    /// [`check_rpc`](Self::check_rpc).
    pub fn check_sts(&self, req: &Incoming<'_>, action: &str, now: Timestamp) -> Result<Signer, Rejection> {
        let headers = header_pairs(req.headers);
        let get =
            |name: &str| -> Option<&str> { headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()) };
        let version = get(sign::HEADER_VERSION);
        if version != Some(changeorder_cloud::sts::STS_VERSION) {
            return Err(reject(
                400,
                "InvalidVersion",
                format!(
                    "Specified parameter Version is not valid: x-acs-version is {:?}, this API is version {}.",
                    version.unwrap_or(""),
                    changeorder_cloud::sts::STS_VERSION
                ),
            ));
        }
        if get(sign::HEADER_ACTION) != Some(action) {
            return Err(reject(
                404,
                "InvalidAction.NotFound",
                format!("Specified api is not found: x-acs-action is not {action}."),
            ));
        }
        self.check_signature(req, &headers, now).map(|(_, signer)| signer)
    }

    /// The signature in the `Authorization` header (V3 or ROA), the date, the token and the
    /// nonce: the scheme used and who signed.
    fn check_signature(
        &self,
        req: &Incoming<'_>,
        headers: &[(String, String)],
        now: Timestamp,
    ) -> Result<(&'static str, Signer), Rejection> {
        let headers = headers.to_vec();
        let get =
            |name: &str| -> Option<&str> { headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()) };
        let Some(authorization) = get("authorization") else {
            return Err(incomplete("The Authorization header is missing."));
        };
        let nonce = get(sign::HEADER_NONCE)
            .ok_or_else(|| incomplete("The x-acs-signature-nonce header is missing."))?;
        let path = sign::percent_decode(req.path);
        let query = &req.query.0;
        let (scheme, cred, signer) = if authorization.trim_start().starts_with(sign::V3_ALGORITHM) {
            let Some(auth) = verify::parse_v3_authorization(authorization) else {
                return Err(incomplete(
                    "Authorization must be `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.",
                ));
            };
            let (cred, signer) = self.signer_credential(&auth.access_key_id, now)?;
            let date =
                get(sign::HEADER_DATE).ok_or_else(|| incomplete("The x-acs-date header is missing."))?;
            check_skew(parse_v3_date(date)?, now)?;
            check_signed_names(&headers, &auth.signed_headers, !req.body.is_empty())?;
            let actual = sign::sha256_hex(req.body);
            let payload_hash = match get(sign::HEADER_CONTENT_SHA256) {
                Some(claimed) if !claimed.eq_ignore_ascii_case(&actual) => {
                    return Err(reject(
                        400,
                        "SignatureDoesNotMatch",
                        format!(
                            "x-acs-content-sha256 {claimed} does not match the SHA-256 of the body ({actual})."
                        ),
                    ));
                }
                Some(claimed) => claimed.to_string(),
                None => actual,
            };
            let sig = sign::v3_sign(
                &sign::V3Request {
                    method: req.method,
                    path: &path,
                    query,
                    headers: &headers,
                    signed_headers: Some(&auth.signed_headers),
                    payload_hash: &payload_hash,
                },
                &cred.access_key_secret,
            );
            if !verify::constant_time_eq(&sig.signature, &auth.signature.to_ascii_lowercase()) {
                return Err(mismatch(&sig.string_to_sign, Some(&sig.canonical_request)));
            }
            (sign::V3_ALGORITHM, cred, signer)
        } else if authorization.trim_start().starts_with("acs ") {
            let Some((id, signature)) = verify::parse_roa_authorization(authorization) else {
                return Err(incomplete(
                    "Authorization must be `acs <AccessKeyId>:<signature>`.",
                ));
            };
            let (cred, signer) = self.signer_credential(&id, now)?;
            match get(sign::HEADER_SIGNATURE_METHOD) {
                Some("HMAC-SHA1") => {}
                other => {
                    return Err(incomplete(format!(
                        "x-acs-signature-method must be HMAC-SHA1, got {:?}.",
                        other.unwrap_or("")
                    )));
                }
            }
            let date = get("date").ok_or_else(|| incomplete("The Date header is missing."))?;
            check_skew(parse_http_date(date)?, now)?;
            if !req.body.is_empty()
                && let Some(md5) = get("content-md5")
                && md5 != sign::content_md5(req.body)
            {
                return Err(reject(
                    400,
                    "SignatureDoesNotMatch",
                    "Content-MD5 does not match the body.",
                ));
            }
            let sts = sign::roa_string_to_sign(req.method, &path, query, &headers);
            if !verify::constant_time_eq(&sign::roa_signature(&sts, &cred.access_key_secret), &signature) {
                return Err(mismatch(&sts, None));
            }
            ("acs", cred, signer)
        } else {
            return Err(incomplete(
                "Unsupported signature algorithm; use ACS3-HMAC-SHA256 or acs (HMAC-SHA1).",
            ));
        };

        check_token(&cred, get(sign::HEADER_SECURITY_TOKEN))?;
        self.remember_nonce(&cred.access_key_id, nonce)?;
        Ok((scheme, signer))
    }

    /// Accept temporary credentials until `expires` (then `InvalidSecurityToken.Expired`).
    pub fn issue(&self, cred: Credential, expires: Timestamp) {
        self.issue_as(cred, expires, None);
    }

    /// Like [`issue`](Self::issue), for the assumed role `arn`.
    pub fn issue_as(&self, cred: Credential, expires: Timestamp, arn: Option<String>) {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        // Long-expired keys are dropped; recently expired ones stay to be refused by name.
        let horizon = Timestamp::now()
            .saturating_sub(SignedDuration::from_hours(1))
            .unwrap_or(expires);
        issued.retain(|_, k| k.expires > horizon);
        issued.insert(
            cred.access_key_id.clone(),
            IssuedKey {
                cred,
                expires,
                arn,
                revoked: false,
            },
        );
    }

    /// Revoke every temporary credential handed out so far, before its expiry (a role's
    /// sessions revoked by an administrator): they are refused as unknown keys from now on.
    pub fn revoke_issued(&self) -> usize {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued.values_mut().for_each(|k| k.revoked = true);
        issued.len()
    }

    /// Every temporary credential still remembered (tests look for their secrets in logs).
    pub fn issued(&self) -> Vec<Credential> {
        let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        issued.values().map(|k| k.cred.clone()).collect()
    }

    fn signer_credential(&self, id: &str, now: Timestamp) -> Result<(Credential, Signer), Rejection> {
        let not_found = || {
            reject(
                404,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            )
        };
        let temporary = {
            let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
            issued.get(id).cloned()
        };
        if let Some(k) = temporary {
            if k.revoked {
                return Err(not_found());
            }
            if k.expires <= now {
                return Err(reject(
                    400,
                    "InvalidSecurityToken.Expired",
                    "Specified SecurityToken is expired.",
                ));
            }
            let signer = Signer::Assumed {
                access_key_id: id.to_string(),
                arn: k.arn,
            };
            return Ok((k.cred, signer));
        }
        self.credentials
            .iter()
            .find(|c| c.access_key_id == id)
            .cloned()
            .map(|c| (c, Signer::LongTerm(id.to_string())))
            .ok_or_else(not_found)
    }

    /// Verify a classic RPC request (STS `GetCallerIdentity`): parameters from the query and the
    /// form body, `SignatureMethod=HMAC-SHA1`, `SignatureVersion=1.0`, the signature over
    /// `METHOD&%2F&<canonical query>` keyed by `secret&`, the timestamp within 15 minutes, the
    /// security token of a temporary key, a fresh nonce.
    pub fn check_rpc(&self, method: &str, params: &Params, now: Timestamp) -> Result<Signer, Rejection> {
        let missing = |k: &str| {
            reject(
                400,
                "MissingParameter",
                format!(
                    "The input parameter {k} that is mandatory for processing this request is not supplied."
                ),
            )
        };
        let id = params
            .get("AccessKeyId")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("AccessKeyId"))?;
        let signature = params
            .get("Signature")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("Signature"))?;
        if params.get("SignatureMethod") != Some("HMAC-SHA1") {
            return Err(incomplete("SignatureMethod must be HMAC-SHA1."));
        }
        if params.get("SignatureVersion") != Some("1.0") {
            return Err(incomplete("SignatureVersion must be 1.0."));
        }
        let nonce = params
            .get("SignatureNonce")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("SignatureNonce"))?;
        let timestamp = params.get("Timestamp").ok_or_else(|| missing("Timestamp"))?;
        check_skew(parse_v3_date(timestamp)?, now)?;
        let (cred, signer) = self.signer_credential(id, now)?;
        let sts = sign::rpc_string_to_sign(method, &params.0);
        if !verify::constant_time_eq(&sign::rpc_signature(&sts, &cred.access_key_secret), signature) {
            return Err(mismatch(&sts, None));
        }
        check_token(&cred, params.get("SecurityToken"))?;
        self.remember_nonce(&cred.access_key_id, nonce)?;
        Ok(signer)
    }

    /// Record a nonce; refuse one seen before (a replayed or badly generated request).
    fn remember_nonce(&self, key_id: &str, nonce: &str) -> Result<(), Rejection> {
        let mut nonces = self.nonces.lock().unwrap_or_else(|p| p.into_inner());
        nonces.remember((key_id.to_string(), nonce.to_string()), Instant::now())
    }
}

/// Nonces seen within `NONCE_TTL`, with the order they came in, so that forgetting the
/// expired ones costs only those (a sweep of all of them on each request, once there were
/// many, made a busy simulator's every request scan minutes of nonces).
#[derive(Default)]
struct Nonces {
    seen: HashMap<(String, String), Instant>,
    by_age: std::collections::VecDeque<(Instant, (String, String))>,
}

impl Nonces {
    fn remember(&mut self, key: (String, String), now: Instant) -> Result<(), Rejection> {
        while let Some((at, _)) = self.by_age.front()
            && now.saturating_duration_since(*at) >= NONCE_TTL
        {
            if let Some((at, old)) = self.by_age.pop_front()
                && self.seen.get(&old) == Some(&at)
            {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains_key(&key) {
            return Err(reject(
                400,
                "SignatureNonceUsed",
                "Specified signature nonce was used already.",
            ));
        }
        self.seen.insert(key.clone(), now);
        self.by_age.push_back((now, key));
        Ok(())
    }
}

/// All headers as lower-case (name, value) pairs; invalid UTF-8 is replaced, never fatal.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The version and action headers must name the operation the path routes to.
fn check_operation(op: &Op, version: Option<&str>, action: Option<&str>) -> Result<(), Rejection> {
    let want_version = op.version().unwrap_or_default();
    if version != Some(want_version) {
        return Err(reject(
            400,
            "InvalidVersion",
            format!(
                "Specified parameter Version is not valid: x-acs-version is {:?}, this API is version {want_version}.",
                version.unwrap_or("")
            ),
        ));
    }
    if action != Some(op.action()) {
        return Err(reject(
            404,
            "InvalidAction.NotFound",
            format!(
                "Specified api is not found, please check your url and method: x-acs-action is {:?}, the path is {}.",
                action.unwrap_or(""),
                op.action()
            ),
        ));
    }
    Ok(())
}

/// V3 signers must cover `host`, every `x-acs-*` header sent and, with a body, `content-type`.
fn check_signed_names(
    headers: &[(String, String)],
    signed: &[String],
    has_body: bool,
) -> Result<(), Rejection> {
    let present = |name: &str| headers.iter().any(|(n, _)| n == name);
    for name in signed {
        if !present(name) {
            return Err(incomplete(format!("Signed header {name} is not in the request.")));
        }
    }
    let must: Vec<&str> = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n == "host" || n.starts_with("x-acs-") || (has_body && *n == "content-type"))
        .collect();
    for name in must {
        if !signed.iter().any(|s| s == name) {
            return Err(incomplete(format!(
                "Header {name} must be signed (listed in SignedHeaders)."
            )));
        }
    }
    if !signed.iter().any(|s| s == "host") {
        return Err(incomplete("Header host must be signed."));
    }
    Ok(())
}

fn check_token(cred: &Credential, sent: Option<&str>) -> Result<(), Rejection> {
    let code = "InvalidSecurityToken.MismatchWithAccessKey";
    match (&cred.security_token, sent) {
        (None, None) => Ok(()),
        (Some(want), Some(got)) if verify::constant_time_eq(want, got) => Ok(()),
        (Some(_), None) => Err(reject(
            400,
            code,
            "The AccessKey is temporary (STS): x-acs-security-token is required.",
        )),
        (Some(_), Some(_)) => Err(reject(
            400,
            code,
            "Specified SecurityToken mismatch with the AccessKey.",
        )),
        (None, Some(_)) => Err(reject(
            400,
            code,
            "The AccessKey is not an STS key but a security token was sent.",
        )),
    }
}

fn bad_time(value: &str) -> Rejection {
    reject(
        400,
        "InvalidTimeStamp.Format",
        format!("Specified time stamp or date value is not well formatted: {value:?}."),
    )
}

/// `x-acs-date`: `YYYY-MM-DDTHH:MM:SSZ`.
fn parse_v3_date(value: &str) -> Result<Timestamp, Rejection> {
    value.trim().parse::<Timestamp>().map_err(|_| bad_time(value))
}

/// ROA `Date`: RFC 1123 in GMT (`Tue, 14 Nov 2023 22:13:20 GMT`).
fn parse_http_date(value: &str) -> Result<Timestamp, Rejection> {
    jiff::fmt::strtime::parse("%a, %d %b %Y %H:%M:%S GMT", value.trim())
        .and_then(|tm| tm.to_datetime())
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp())
        .map_err(|_| bad_time(value))
}

fn check_skew(sent: Timestamp, now: Timestamp) -> Result<(), Rejection> {
    let skew = now.duration_since(sent).abs();
    if skew > MAX_SKEW {
        return Err(reject(
            400,
            "InvalidTimeStamp.Expired",
            format!(
                "Specified time stamp or date value is expired: {sent} is {skew:#} away from the server time {now}."
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_refused_again_until_they_expire_and_then_forgotten() {
        let mut nonces = Nonces::default();
        let t0 = Instant::now();
        let key = |n: &str| ("id".to_string(), n.to_string());
        assert!(nonces.remember(key("a"), t0).is_ok());
        assert!(nonces.remember(key("b"), t0 + Duration::from_secs(60)).is_ok());
        let replay = nonces.remember(key("a"), t0 + Duration::from_secs(120));
        assert_eq!(replay.err().map(|r| r.code), Some("SignatureNonceUsed"));
        // Past the TTL, "a" is forgotten (and may come again); "b" is not yet.
        let later = t0 + NONCE_TTL + Duration::from_secs(1);
        assert!(nonces.remember(key("c"), later).is_ok());
        assert_eq!(nonces.seen.len(), 2);
        assert!(nonces.remember(key("a"), later).is_ok());
        assert!(nonces.remember(key("b"), later).is_err());
    }
    use axum::http::{HeaderName, HeaderValue};

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn signed(
        scheme: sign::Scheme,
        secret: &str,
        nonce: &str,
        at: Timestamp,
        token: Option<&str>,
    ) -> HeaderMap {
        let query = vec![("AppId".to_string(), "app 1".to_string())];
        let s = sign::sign_request(&sign::SignInput {
            scheme,
            method: "POST",
            host: "127.0.0.1:1",
            path: "/pop/v5/changeorder/change_order_list",
            query: &query,
            body: b"",
            content_type: None,
            action: "ListRecentChangeOrder",
            version: "2017-08-01",
            access_key_id: "id",
            access_key_secret: secret,
            security_token: token,
            now: at,
            nonce,
        });
        let mut h = HeaderMap::new();
        for (n, v) in s.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(n.to_ascii_lowercase()),
                HeaderValue::try_from(v),
            ) {
                h.append(n, v);
            }
        }
        if scheme == sign::Scheme::Roa {
            h.insert("host", HeaderValue::from_static("127.0.0.1:1"));
        }
        h
    }

    fn check(v: &Verifier, h: &HeaderMap) -> Result<&'static str, Rejection> {
        let query = Params::parse(Some("AppId=app+1"));
        let req = Incoming {
            method: "POST",
            path: "/pop/v5/changeorder/change_order_list",
            query: &query,
            headers: h,
            body: b"",
        };
        v.check(&req, &Op::EdasListRecent, now())
    }

    fn code(r: Result<&'static str, Rejection>) -> &'static str {
        match r {
            Ok(_) => "OK",
            Err(e) => e.code,
        }
    }

    #[test]
    fn both_schemes_verify_and_fail_like_the_gateway() {
        for scheme in [sign::Scheme::V3, sign::Scheme::Roa] {
            let v = Verifier::new(vec![Credential::new("id", "secret")]);
            assert_eq!(
                code(check(&v, &signed(scheme, "secret", "n1", now(), None))),
                "OK",
                "{scheme:?}"
            );
            assert_eq!(
                code(check(&v, &signed(scheme, "secret", "n1", now(), None))),
                "SignatureNonceUsed"
            );
            let wrong = check(&v, &signed(scheme, "wrong", "n2", now(), None));
            assert!(
                matches!(&wrong, Err(e) if e.message.contains("server string to sign is:")),
                "{wrong:?}"
            );
            assert_eq!(code(wrong), "SignatureDoesNotMatch");
            // A refused request does not burn its nonce.
            assert_eq!(
                code(check(&v, &signed(scheme, "secret", "n2", now(), None))),
                "OK"
            );
            let old = now() - SignedDuration::from_mins(16);
            assert_eq!(
                code(check(&v, &signed(scheme, "secret", "n3", old, None))),
                "InvalidTimeStamp.Expired"
            );
            let near = now() - SignedDuration::from_mins(14);
            assert_eq!(code(check(&v, &signed(scheme, "secret", "n4", near, None))), "OK");
            assert_eq!(
                code(check(&v, &signed(scheme, "secret", "n5", now(), Some("t")))),
                "InvalidSecurityToken.MismatchWithAccessKey"
            );
            let other = Verifier::new(vec![Credential::new("other", "secret")]);
            assert_eq!(
                code(check(&other, &signed(scheme, "secret", "n6", now(), None))),
                "InvalidAccessKeyId.NotFound"
            );
            let sts = Verifier::new(vec![Credential::sts("id", "secret", "tok")]);
            assert_eq!(
                code(check(&sts, &signed(scheme, "secret", "n7", now(), Some("tok")))),
                "OK"
            );
            assert_eq!(
                code(check(&sts, &signed(scheme, "secret", "n8", now(), None))),
                "InvalidSecurityToken.MismatchWithAccessKey"
            );
        }
    }

    #[test]
    fn missing_or_wrong_headers() {
        let v = Verifier::new(vec![Credential::new("id", "secret")]);
        let mut h = signed(sign::Scheme::V3, "secret", "m1", now(), None);
        h.remove("authorization");
        assert_eq!(code(check(&v, &h)), "IncompleteSignature");
        let mut h = signed(sign::Scheme::V3, "secret", "m2", now(), None);
        h.insert("authorization", HeaderValue::from_static("Bearer x"));
        assert_eq!(code(check(&v, &h)), "IncompleteSignature");
        let mut h = signed(sign::Scheme::V3, "secret", "m3", now(), None);
        h.insert("x-acs-version", HeaderValue::from_static("2019-05-06"));
        assert_eq!(code(check(&v, &h)), "InvalidVersion");
        let mut h = signed(sign::Scheme::V3, "secret", "m4", now(), None);
        h.insert("x-acs-action", HeaderValue::from_static("GetChangeOrderInfo"));
        assert_eq!(code(check(&v, &h)), "InvalidAction.NotFound");
        let mut h = signed(sign::Scheme::V3, "secret", "m5", now(), None);
        h.insert("x-acs-extra", HeaderValue::from_static("unsigned"));
        assert_eq!(code(check(&v, &h)), "IncompleteSignature");
        let mut h = signed(sign::Scheme::V3, "secret", "m6", now(), None);
        h.insert("x-acs-date", HeaderValue::from_static("yesterday"));
        assert_eq!(code(check(&v, &h)), "InvalidTimeStamp.Format");
        let mut h = signed(sign::Scheme::V3, "secret", "m7", now(), None);
        h.insert("x-acs-content-sha256", HeaderValue::from_static("00"));
        assert_eq!(code(check(&v, &h)), "SignatureDoesNotMatch");
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT").map(|t| t.as_second()),
            Ok(1_700_000_000)
        );
        assert!(parse_http_date("2023-11-14").is_err());
    }
}
