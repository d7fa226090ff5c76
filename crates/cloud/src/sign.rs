//! Request signing for the Alibaba Cloud API gateway (EDAS and SAE).
//!
//! Two schemes, both as pure functions so that a client (signing an outgoing request) and a
//! server (the simulator, verifying a received one) compute exactly the same strings:
//!
//! * **V3 `ACS3-HMAC-SHA256`** (the default of today's SDKs): [`v3_canonical_request`],
//!   [`v3_string_to_sign`], [`v3_sign`], [`v3_authorization`].
//! * **ROA HMAC-SHA1** (`Authorization: acs <id>:<sig>`): [`roa_string_to_sign`],
//!   [`roa_signature`], [`roa_authorization`].
//!
//! Client side, [`sign_request`] builds every header a request needs (date, nonce, payload hash,
//! optional STS token, `Authorization`) for either scheme.
//!
//! The server side (parsing `Authorization`, comparing signatures) is the simulator's
//! (`changeorder_sim::verify`): it recomputes with [`v3_sign`] or [`roa_string_to_sign`] +
//! [`roa_signature`] from here, so signer and verifier share one canonical form. Both return the
//! canonical request / string to sign so that a `SignatureDoesNotMatch` reply can show it, as
//! the real gateway does.
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

/// Which signing scheme to use; spelled `v3` or `roa` in a watch's `signatureVersion`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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

// ---------------------------------------------------------------------------------------------
// ROA: HMAC-SHA1
// ---------------------------------------------------------------------------------------------

pub fn header_value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
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

/// The classic RPC string to sign (STS and other RPC products, `SignatureVersion=1.0`):
/// `METHOD&%2F&` + the percent-encoded canonical query (every parameter but `Signature`, sorted
/// by key, `key=value` each side RFC 3986-encoded, joined by `&`).
pub fn rpc_string_to_sign(method: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "Signature").collect();
    sorted.sort();
    let canonical = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!(
        "{}&%2F&{}",
        method.to_ascii_uppercase(),
        percent_encode(&canonical)
    )
}

/// Base64 of HMAC-SHA1 keyed by the secret followed by `&` (the RPC scheme).
pub fn rpc_signature(string_to_sign: &str, access_key_secret: &str) -> String {
    roa_signature(string_to_sign, &format!("{access_key_secret}&"))
}

/// `acs <AccessKeyId>:<signature>`.
pub fn roa_authorization(access_key_id: &str, signature: &str) -> String {
    format!("acs {access_key_id}:{signature}")
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
mod tests;
