//! Request signing for the Alibaba Cloud API gateway (EDAS and SAE).
//!
//! Two schemes, both as pure functions so that a client (signing an outgoing request) and a
//! server (the simulator, verifying a received one) compute exactly the same strings:
//!
//! * **V3 `ACS3-HMAC-SHA256`** (the default of today's SDKs): [`v3_canonical_request`],
//!   [`v3_string_to_sign`], [`v3_sign`], [`v3_authorization`], [`parse_v3_authorization`].
//! * **ROA HMAC-SHA1** (`Authorization: acs <id>:<sig>`): [`roa_string_to_sign`],
//!   [`roa_signature`], [`roa_authorization`], [`parse_roa_authorization`].
//!
//! Client side, [`sign_request`] builds every header a request needs (date, nonce, payload hash,
//! optional STS token, `Authorization`) for either scheme.
//!
//! Server side, parse the `Authorization` header, then call [`v3_sign`] (with the received
//! method, path, decoded query, headers and the signed header names from the header) or
//! [`roa_string_to_sign`] + [`roa_signature`], and compare with [`constant_time_eq`]. Both return
//! the canonical request / string to sign so that a `SignatureDoesNotMatch` reply can show it,
//! as the real gateway does.
//!
//! Everything here works on plain strings: paths are the *decoded* path, query parameters are
//! *decoded* key/value pairs, headers are `(name, value)` pairs in any case.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The V3 algorithm name, first line of the string to sign and start of `Authorization`.
pub const V3_ALGORITHM: &str = "ACS3-HMAC-SHA256";
/// Lower-hex SHA-256 of the empty payload.
pub const EMPTY_PAYLOAD_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub const HEADER_ACTION: &str = "x-acs-action";
pub const HEADER_VERSION: &str = "x-acs-version";
pub const HEADER_DATE: &str = "x-acs-date";
pub const HEADER_NONCE: &str = "x-acs-signature-nonce";
pub const HEADER_CONTENT_SHA256: &str = "x-acs-content-sha256";
pub const HEADER_SECURITY_TOKEN: &str = "x-acs-security-token";
pub const HEADER_SIGNATURE_METHOD: &str = "x-acs-signature-method";
pub const HEADER_SIGNATURE_VERSION: &str = "x-acs-signature-version";

/// Which signing scheme to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `ACS3-HMAC-SHA256`.
    #[default]
    V3,
    /// ROA `acs` scheme, HMAC-SHA1.
    Roa,
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------------------------

/// RFC 3986 percent-encoding: only the unreserved set `A-Z a-z 0-9 - _ . ~` is kept, everything
/// else becomes `%XX` (upper-case hex) of its UTF-8 bytes. So space is `%20`, `*` is `%2A`,
/// `~` stays `~` — the gateway's rules, unlike `application/x-www-form-urlencoded`.
pub fn percent_encode(s: &str) -> String {
    encode_keeping(s, |_| false)
}

/// Like [`percent_encode`] but keeps `/`: the canonical form of a path.
pub fn percent_encode_path(path: &str) -> String {
    encode_keeping(path, |b| b == b'/')
}

fn encode_keeping(s: &str, keep: impl Fn(u8) -> bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// Decode `%XX` escapes (and nothing else: `+` stays `+`). Invalid escapes are kept literally,
/// invalid UTF-8 is replaced, so a server can always canonicalise what it received.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Split a raw query string (`a=1&b=&c`) into decoded pairs, in order. A key without `=` gets an
/// empty value. `+` is *not* a space here: the SDKs encode spaces as `%20`.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Encode decoded pairs for the wire, in the given order, with the gateway's encoding.
pub fn encode_query(query: &[(String, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Base64 of the MD5 of `data`: the `Content-MD5` header of ROA requests with a body.
pub fn content_md5(data: &[u8]) -> String {
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// Compare two strings without an early exit, so a server does not leak how much of a
/// signature matched.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn sorted_pairs(query: &[(String, String)]) -> Vec<&(String, String)> {
    let mut pairs: Vec<&(String, String)> = query.iter().collect();
    // Sort by key, then value, so repeated keys are deterministic too.
    pairs.sort();
    pairs
}

// ---------------------------------------------------------------------------------------------
// V3: ACS3-HMAC-SHA256
// ---------------------------------------------------------------------------------------------

/// The canonical query string: keys sorted, `key=value` both RFC 3986-encoded, empty value as
/// `key=`, joined by `&`.
pub fn v3_canonical_query(query: &[(String, String)]) -> String {
    sorted_pairs(query)
        .into_iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The names of the headers a client signs: `host`, `content-type` and every `x-acs-*` present,
/// lower-cased, sorted and deduplicated.
pub fn v3_default_signed_headers(headers: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.trim().to_ascii_lowercase())
        .filter(|n| n == "host" || n == "content-type" || n.starts_with("x-acs-"))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Canonical headers block for the given (lower-case) names: `name:trimmed value\n` per name in
/// sorted order; a repeated header's values are trimmed, sorted and joined by `,`. A name that is
/// not present gets an empty value (so a server recomputing from a tampered request still
/// produces a string, and the signature simply differs).
fn v3_canonical_headers(headers: &[(String, String)], signed: &[String]) -> String {
    let mut out = String::new();
    for name in signed {
        let mut values: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect();
        values.sort_unstable();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

fn normalise_signed(signed: &[String]) -> Vec<String> {
    let mut names: Vec<String> = signed
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Everything V3 signing needs. `path` is decoded (it is encoded here), `query` holds decoded
/// pairs, `headers` any case. `signed_headers` names the headers to sign; `None` means the
/// client default ([`v3_default_signed_headers`]). A server passes the names it read from the
/// `Authorization` header.
#[derive(Clone, Copy, Debug)]
pub struct V3Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    pub signed_headers: Option<&'a [String]>,
    /// Lower-hex SHA-256 of the body (normally the `x-acs-content-sha256` header's value).
    pub payload_hash: &'a str,
}

/// The result of V3 signing: every intermediate string, for logging and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Signature {
    pub canonical_request: String,
    pub string_to_sign: String,
    /// Signed header names joined by `;`.
    pub signed_headers: String,
    /// Lower-hex HMAC-SHA256.
    pub signature: String,
}

/// The V3 canonical request and the `;`-joined signed header names.
pub fn v3_canonical_request(req: &V3Request<'_>) -> (String, String) {
    let signed = match req.signed_headers {
        Some(names) => normalise_signed(names),
        None => v3_default_signed_headers(req.headers),
    };
    let path = if req.path.is_empty() {
        "/".to_string()
    } else {
        percent_encode_path(req.path)
    };
    let signed_joined = signed.join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        path,
        v3_canonical_query(req.query),
        v3_canonical_headers(req.headers, &signed),
        signed_joined,
        req.payload_hash
    );
    (canonical, signed_joined)
}

/// `ACS3-HMAC-SHA256\n` + lower-hex SHA-256 of the canonical request.
pub fn v3_string_to_sign(canonical_request: &str) -> String {
    format!("{V3_ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// Sign (client) or recompute (server) a V3 signature with the AccessKey secret.
pub fn v3_sign(req: &V3Request<'_>, access_key_secret: &str) -> V3Signature {
    let (canonical_request, signed_headers) = v3_canonical_request(req);
    let string_to_sign = v3_string_to_sign(&canonical_request);
    let signature = hex::encode(hmac_sha256(
        access_key_secret.as_bytes(),
        string_to_sign.as_bytes(),
    ));
    V3Signature {
        canonical_request,
        string_to_sign,
        signed_headers,
        signature,
    }
}

/// `ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<names>,Signature=<hex>`.
pub fn v3_authorization(access_key_id: &str, sig: &V3Signature) -> String {
    format!(
        "{V3_ALGORITHM} Credential={access_key_id},SignedHeaders={},Signature={}",
        sig.signed_headers, sig.signature
    )
}

/// A parsed V3 `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V3Authorization {
    pub access_key_id: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parse `ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`. `None` when the header
/// is not V3 or a part is missing (the gateway answers `IncompleteSignature`).
pub fn parse_v3_authorization(value: &str) -> Option<V3Authorization> {
    let rest = value.trim().strip_prefix(V3_ALGORITHM)?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let (mut id, mut names, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Credential" => id = Some(v.trim().to_string()),
            "SignedHeaders" => {
                names = Some(
                    v.split(';')
                        .map(|n| n.trim().to_ascii_lowercase())
                        .filter(|n| !n.is_empty())
                        .collect::<Vec<_>>(),
                )
            }
            "Signature" => sig = Some(v.trim().to_string()),
            _ => {}
        }
    }
    let (access_key_id, signed_headers, signature) = (id?, names?, sig?);
    if access_key_id.is_empty() || signature.is_empty() {
        return None;
    }
    Some(V3Authorization {
        access_key_id,
        signed_headers,
        signature,
    })
}

// ---------------------------------------------------------------------------------------------
// ROA: HMAC-SHA1
// ---------------------------------------------------------------------------------------------

fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The ROA canonical resource: the path, then `?` and the parameters sorted by key as
/// `key=value` (bare `key` when the value is empty), joined by `&`, not URL-encoded.
pub fn roa_canonical_resource(path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let params: Vec<String> = sorted_pairs(query)
        .into_iter()
        .map(|(k, v)| {
            if v.is_empty() {
                k.clone()
            } else {
                format!("{k}={v}")
            }
        })
        .collect();
    format!("{path}?{}", params.join("&"))
}

/// The ROA string to sign: `METHOD\nAccept\nContent-MD5\nContent-Type\nDate\n`, then every
/// `x-acs-*` header lower-cased and sorted as `name:value\n`, then the canonical resource.
/// Headers are looked up case-insensitively; a missing one leaves an empty line.
pub fn roa_string_to_sign(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
) -> String {
    let mut out = String::new();
    out.push_str(method);
    out.push('\n');
    for name in ["accept", "content-md5", "content-type", "date"] {
        out.push_str(header_value(headers, name).unwrap_or(""));
        out.push('\n');
    }
    let mut acs: Vec<(String, &str)> = headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.as_str()))
        .filter(|(n, _)| n.starts_with("x-acs-"))
        .collect();
    acs.sort();
    // A repeated name is written once with its values joined by `,` (the SDKs use maps, so a
    // well-behaved client never repeats one).
    let mut i = 0;
    while i < acs.len() {
        let name = acs[i].0.clone();
        let mut values = Vec::new();
        while i < acs.len() && acs[i].0 == name {
            values.push(acs[i].1);
            i += 1;
        }
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push_str(&roa_canonical_resource(path, query));
    out
}

/// Base64 of HMAC-SHA1 keyed by the secret (no `&` suffix, unlike the RPC scheme).
pub fn roa_signature(string_to_sign: &str, access_key_secret: &str) -> String {
    let mut mac = match Hmac::<Sha1>::new_from_slice(access_key_secret.as_bytes()) {
        Ok(m) => m,
        // HMAC accepts keys of any length; this arm exists only to avoid a panic path.
        Err(_) => return String::new(),
    };
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// `acs <AccessKeyId>:<signature>`.
pub fn roa_authorization(access_key_id: &str, signature: &str) -> String {
    format!("acs {access_key_id}:{signature}")
}

/// Parse `acs <id>:<signature>` into `(id, signature)`.
pub fn parse_roa_authorization(value: &str) -> Option<(String, String)> {
    let rest = value.trim().strip_prefix("acs ")?;
    let (id, sig) = rest.trim().rsplit_once(':')?;
    if id.is_empty() || sig.is_empty() {
        return None;
    }
    Some((id.to_string(), sig.to_string()))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC accepts keys of any length; unreachable in practice.
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Client side: all headers for one request
// ---------------------------------------------------------------------------------------------

/// One request to sign. `path` is decoded; `query` decoded pairs, sent as given.
#[derive(Clone, Debug)]
pub struct SignInput<'a> {
    pub scheme: Scheme,
    pub method: &'a str,
    /// `host[:port]` exactly as the HTTP client will send it.
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
    /// Sent (and signed) only when there is a body.
    pub content_type: Option<&'a str>,
    pub action: &'a str,
    pub version: &'a str,
    pub access_key_id: &'a str,
    pub access_key_secret: &'a str,
    pub security_token: Option<&'a str>,
    pub now: jiff::Timestamp,
    /// Unique per request.
    pub nonce: &'a str,
}

/// A signed request's headers plus the string that was signed (for debug logging on a
/// mismatch; it holds no secret).
#[derive(Clone, Debug)]
pub struct SignedHeaders {
    /// Every header to send, `Authorization` last. Names lower-case except the ROA standard
    /// headers, which HTTP treats case-insensitively anyway.
    pub headers: Vec<(String, String)>,
    pub string_to_sign: String,
}

/// `YYYY-MM-DDTHH:MM:SSZ` in UTC, the `x-acs-date` format.
pub fn v3_date(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// RFC 1123 / RFC 9110 date in GMT, the ROA `Date` format.
pub fn http_date(ts: jiff::Timestamp) -> String {
    ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Build all headers for a request, signed with the chosen scheme.
pub fn sign_request(input: &SignInput<'_>) -> SignedHeaders {
    let mut headers: Vec<(String, String)> = Vec::new();
    match input.scheme {
        Scheme::V3 => {
            headers.push(("host".into(), input.host.into()));
            headers.push((HEADER_ACTION.into(), input.action.into()));
            headers.push((HEADER_VERSION.into(), input.version.into()));
            headers.push((HEADER_DATE.into(), v3_date(input.now)));
            headers.push((HEADER_NONCE.into(), input.nonce.into()));
            let hash = sha256_hex(input.body);
            headers.push((HEADER_CONTENT_SHA256.into(), hash.clone()));
            if !input.body.is_empty()
                && let Some(ct) = input.content_type
            {
                headers.push(("content-type".into(), ct.into()));
            }
            if let Some(token) = input.security_token.filter(|t| !t.is_empty()) {
                headers.push((HEADER_SECURITY_TOKEN.into(), token.into()));
            }
            let sig = v3_sign(
                &V3Request {
                    method: input.method,
                    path: input.path,
                    query: input.query,
                    headers: &headers,
                    signed_headers: None,
                    payload_hash: &hash,
                },
                input.access_key_secret,
            );
            headers.push((
                "authorization".into(),
                v3_authorization(input.access_key_id, &sig),
            ));
            SignedHeaders {
                headers,
                string_to_sign: sig.canonical_request,
            }
        }
        Scheme::Roa => {
            headers.push(("Date".into(), http_date(input.now)));
            headers.push(("Accept".into(), "application/json".into()));
            if !input.body.is_empty() {
                headers.push(("Content-MD5".into(), content_md5(input.body)));
                headers.push((
                    "Content-Type".into(),
                    input.content_type.unwrap_or("application/octet-stream").into(),
                ));
            }
            headers.push((HEADER_SIGNATURE_METHOD.into(), "HMAC-SHA1".into()));
            headers.push((HEADER_SIGNATURE_VERSION.into(), "1.0".into()));
            headers.push((HEADER_NONCE.into(), input.nonce.into()));
            headers.push((HEADER_VERSION.into(), input.version.into()));
            headers.push((HEADER_ACTION.into(), input.action.into()));
            if let Some(token) = input.security_token.filter(|t| !t.is_empty()) {
                headers.push((HEADER_SECURITY_TOKEN.into(), token.into()));
            }
            let sts = roa_string_to_sign(input.method, input.path, input.query, &headers);
            let sig = roa_signature(&sts, input.access_key_secret);
            headers.push((
                "Authorization".into(),
                roa_authorization(input.access_key_id, &sig),
            ));
            SignedHeaders {
                headers,
                string_to_sign: sts,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const VECTOR_PAYLOAD: &str = "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23";

    fn vector_request<'a>(
        method: &'a str,
        query: &'a [(String, String)],
        headers: &'a [(String, String)],
    ) -> V3Request<'a> {
        V3Request {
            method,
            path: "",
            query,
            headers,
            signed_headers: None,
            payload_hash: VECTOR_PAYLOAD,
        }
    }

    #[test]
    fn v3_official_vector_darabonba() {
        let query = pairs(&[("test", "ok"), ("empty", "")]);
        let headers = pairs(&[("x-acs-test", "http"), ("x-acs-TEST", "https")]);
        let sig = v3_sign(&vector_request("GET", &query, &headers), "secret");
        assert_eq!(
            sig.canonical_request,
            "GET\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n\
             55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
        );
        assert_eq!(
            sig.signature,
            "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
        );
        assert_eq!(
            v3_authorization("acesskey", &sig),
            "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,\
             Signature=d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
        );
    }

    #[test]
    fn v3_official_vector_go_empty_method() {
        let query = pairs(&[("test", "ok"), ("empty", "")]);
        let headers = pairs(&[("x-acs-test", "http"), ("x-acs-TEST", "https")]);
        let sig = v3_sign(&vector_request("", &query, &headers), "secret");
        assert_eq!(
            sig.signature,
            "4ab59fffe3c5738ff8a2729f90cc04fe18b02a4b15b2102cbaf92f9ff3df2ea3"
        );
    }

    #[test]
    fn v3_server_recomputes_with_names_from_authorization() {
        let query = pairs(&[("test", "ok"), ("empty", "")]);
        let headers = pairs(&[
            ("x-acs-test", "http"),
            ("X-ACS-TEST", "https"),
            ("user-agent", "not signed"),
        ]);
        let auth = parse_v3_authorization(
            "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,Signature=abc",
        )
        .unwrap();
        assert_eq!(auth.access_key_id, "acesskey");
        assert_eq!(auth.signed_headers, vec!["x-acs-test".to_string()]);
        let mut req = vector_request("GET", &query, &headers);
        req.signed_headers = Some(&auth.signed_headers);
        let sig = v3_sign(&req, "secret");
        assert_eq!(
            sig.signature,
            "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
        );
        assert!(sig.string_to_sign.starts_with("ACS3-HMAC-SHA256\n"));
    }

    #[test]
    fn parse_v3_authorization_rejects_incomplete() {
        for bad in [
            "",
            "ACS3-HMAC-SHA256",
            "ACS3-HMAC-SHA256Credential=a,SignedHeaders=b,Signature=c",
            "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=b",
            "ACS3-HMAC-SHA256 Credential=,SignedHeaders=b,Signature=c",
            "acs a:b",
        ] {
            assert!(parse_v3_authorization(bad).is_none(), "{bad:?}");
        }
        let ok = parse_v3_authorization(
            "ACS3-HMAC-SHA256 Credential=id, SignedHeaders=host;X-Acs-Date , Signature=ff",
        )
        .unwrap();
        assert_eq!(ok.signed_headers, vec!["host", "x-acs-date"]);
    }

    #[test]
    fn roa_official_vector_empty() {
        let sts = roa_string_to_sign("GET", "", &[], &[]);
        assert_eq!(sts, "GET\n\n\n\n\n");
        assert_eq!(roa_signature(&sts, "secret"), "XGXDWA78AEvx/wmfxKoVCq/afWw=");
    }

    #[test]
    fn roa_official_vector_go_sdk() {
        let headers = pairs(&[
            ("Accept", "application/json"),
            ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
            ("Content-Type", "application/octet-stream"),
            ("Date", "mock date"),
            ("x-acs-version", ""),
            ("x-acs-signature-version", "1.0"),
            ("X-Acs-Signature-Method", "HMAC-SHA1"),
            ("x-acs-credentials-provider", "static_ak"),
            ("host", "not part of ROA"),
        ]);
        let sts = roa_string_to_sign("GET", "/users/:user", &[], &headers);
        assert_eq!(
            sts,
            "GET\napplication/json\n1B2M2Y8AsgTpgAmY7PhCfg==\napplication/octet-stream\nmock date\n\
             x-acs-credentials-provider:static_ak\nx-acs-signature-method:HMAC-SHA1\n\
             x-acs-signature-version:1.0\nx-acs-version:\n/users/:user"
        );
        assert_eq!(
            roa_signature(&sts, "accessKeySecret"),
            "PPPSwv0LPoLvg6rGxp7dd4uPESo="
        );
    }

    #[test]
    fn roa_resource_sorts_and_does_not_encode() {
        let q = pairs(&[("b", "x y"), ("a", ""), ("c", "1/2")]);
        assert_eq!(roa_canonical_resource("/p", &q), "/p?a&b=x y&c=1/2");
        assert_eq!(roa_canonical_resource("/p", &[]), "/p");
    }

    #[test]
    fn roa_authorization_round_trip() {
        let a = roa_authorization("LTAI123", "abc/def+==");
        assert_eq!(a, "acs LTAI123:abc/def+==");
        assert_eq!(
            parse_roa_authorization(&a),
            Some(("LTAI123".to_string(), "abc/def+==".to_string()))
        );
        assert!(parse_roa_authorization("acs :x").is_none());
        assert!(parse_roa_authorization("ACS3-HMAC-SHA256 x").is_none());
    }

    #[test]
    fn percent_encoding_table() {
        for (raw, enc) in [
            ("", ""),
            ("abcXYZ019", "abcXYZ019"),
            ("-_.~", "-_.~"),
            (" ", "%20"),
            ("*", "%2A"),
            ("+", "%2B"),
            ("/", "%2F"),
            ("a=b&c", "a%3Db%26c"),
            ("中", "%E4%B8%AD"),
            ("%", "%25"),
        ] {
            assert_eq!(percent_encode(raw), enc, "{raw:?}");
            assert_eq!(percent_decode(enc), raw, "{enc:?}");
        }
        assert_eq!(percent_encode_path("/a b/c*"), "/a%20b/c%2A");
    }

    #[test]
    fn query_parse_and_canonicalise() {
        let q = parse_query("b=2&a=%20x&empty=&bare&&c=a%2Ab");
        assert_eq!(
            q,
            pairs(&[("b", "2"), ("a", " x"), ("empty", ""), ("bare", ""), ("c", "a*b")])
        );
        assert_eq!(v3_canonical_query(&q), "a=%20x&b=2&bare=&c=a%2Ab&empty=");
        assert_eq!(encode_query(&pairs(&[("k", "a b*")])), "k=a%20b%2A");
    }

    #[test]
    fn default_signed_headers() {
        let h = pairs(&[
            ("Host", "x"),
            ("x-acs-date", "d"),
            ("Content-Type", "application/json"),
            ("user-agent", "u"),
            ("X-Acs-Action", "a"),
            ("authorization", "z"),
        ]);
        assert_eq!(
            v3_default_signed_headers(&h),
            vec!["content-type", "host", "x-acs-action", "x-acs-date"]
        );
    }

    fn input(scheme: Scheme, token: Option<&'static str>) -> SignInput<'static> {
        SignInput {
            scheme,
            method: "POST",
            host: "edas.cn-hangzhou.aliyuncs.com",
            path: "/pop/v5/changeorder/change_order_list",
            query: Box::leak(Box::new(pairs(&[("AppId", "app 1")]))),
            body: b"",
            content_type: None,
            action: "ListRecentChangeOrder",
            version: "2017-08-01",
            access_key_id: "AKID",
            access_key_secret: "s3cr3t",
            security_token: token,
            now: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            nonce: "nonce-1",
        }
    }

    fn get<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        header_value(h, name)
    }

    #[test]
    fn sign_request_v3_verifies_server_side() {
        let signed = sign_request(&input(Scheme::V3, Some("sts-token")));
        let h = &signed.headers;
        assert_eq!(get(h, "x-acs-date"), Some("2023-11-14T22:13:20Z"));
        assert_eq!(get(h, "x-acs-content-sha256"), Some(EMPTY_PAYLOAD_SHA256));
        assert_eq!(get(h, "x-acs-security-token"), Some("sts-token"));
        assert!(get(h, "content-type").is_none());
        let auth = parse_v3_authorization(get(h, "authorization").unwrap()).unwrap();
        assert_eq!(auth.access_key_id, "AKID");
        assert!(auth.signed_headers.contains(&"x-acs-security-token".to_string()));
        assert!(auth.signed_headers.contains(&"host".to_string()));
        // Server: recompute from what it received (decoded query, all headers).
        let received = parse_query("AppId=app%201");
        let server = v3_sign(
            &V3Request {
                method: "POST",
                path: "/pop/v5/changeorder/change_order_list",
                query: &received,
                headers: h,
                signed_headers: Some(&auth.signed_headers),
                payload_hash: get(h, "x-acs-content-sha256").unwrap(),
            },
            "s3cr3t",
        );
        assert!(constant_time_eq(&server.signature, &auth.signature));
        assert_eq!(server.canonical_request, signed.string_to_sign);
        let wrong = v3_sign(
            &V3Request {
                method: "POST",
                path: "/pop/v5/changeorder/change_order_list",
                query: &received,
                headers: h,
                signed_headers: Some(&auth.signed_headers),
                payload_hash: EMPTY_PAYLOAD_SHA256,
            },
            "other",
        );
        assert!(!constant_time_eq(&wrong.signature, &auth.signature));
    }

    #[test]
    fn sign_request_v3_with_body_signs_content_type() {
        let mut i = input(Scheme::V3, None);
        i.body = b"{}";
        i.content_type = Some("application/json");
        let signed = sign_request(&i);
        assert_eq!(
            get(&signed.headers, "x-acs-content-sha256"),
            Some(sha256_hex(b"{}").as_str())
        );
        assert!(get(&signed.headers, "x-acs-security-token").is_none());
        let auth = parse_v3_authorization(get(&signed.headers, "authorization").unwrap()).unwrap();
        assert_eq!(
            auth.signed_headers,
            vec![
                "content-type",
                "host",
                "x-acs-action",
                "x-acs-content-sha256",
                "x-acs-date",
                "x-acs-signature-nonce",
                "x-acs-version"
            ]
        );
    }

    #[test]
    fn sign_request_roa_verifies_server_side() {
        let signed = sign_request(&input(Scheme::Roa, Some("tok")));
        let h = &signed.headers;
        assert_eq!(get(h, "date"), Some("Tue, 14 Nov 2023 22:13:20 GMT"));
        assert_eq!(get(h, "x-acs-security-token"), Some("tok"));
        assert!(get(h, "content-md5").is_none());
        let (id, sig) = parse_roa_authorization(get(h, "authorization").unwrap()).unwrap();
        assert_eq!(id, "AKID");
        let received = parse_query("AppId=app%201");
        // The Authorization header itself is not an x-acs-* header, so passing every received
        // header is fine.
        let sts = roa_string_to_sign("POST", "/pop/v5/changeorder/change_order_list", &received, h);
        assert_eq!(sts, signed.string_to_sign);
        assert!(sts.ends_with("/pop/v5/changeorder/change_order_list?AppId=app 1"));
        assert!(constant_time_eq(&roa_signature(&sts, "s3cr3t"), &sig));
    }

    #[test]
    fn sign_request_roa_with_body() {
        let mut i = input(Scheme::Roa, None);
        i.body = b"";
        let no_body = sign_request(&i);
        assert!(get(&no_body.headers, "content-type").is_none());
        i.body = b"x=1";
        i.content_type = Some("application/x-www-form-urlencoded");
        let s = sign_request(&i);
        assert_eq!(get(&s.headers, "content-md5"), Some(content_md5(b"x=1").as_str()));
        assert!(s.string_to_sign.contains("application/x-www-form-urlencoded\n"));
    }

    #[test]
    fn content_md5_of_empty_matches_go_vector_value() {
        assert_eq!(content_md5(b""), "1B2M2Y8AsgTpgAmY7PhCfg==");
    }

    #[test]
    fn constant_time_eq_table() {
        assert!(constant_time_eq("", ""));
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    proptest::proptest! {
        #[test]
        fn encode_decode_round_trip(s in ".*") {
            let enc = percent_encode(&s);
            proptest::prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
            proptest::prop_assert_eq!(percent_decode(&enc), s);
        }

        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = parse_query(&s);
            let _ = parse_v3_authorization(&s);
            let _ = parse_roa_authorization(&s);
            let _ = roa_string_to_sign(&s, &s, &[(s.clone(), s.clone())], &[(s.clone(), s.clone())]);
        }
    }
}
