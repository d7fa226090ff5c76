//! STS `AssumeRoleWithOIDC` as RRSA uses it: an unsigned `POST /?Action=AssumeRoleWithOIDC...`
//! whose form body carries the OIDC token. The token is verified for real — RS256 signature
//! against the issuer's JWKS, issuer, audience, expiry — and the role's trust (its OIDC provider
//! and, when configured, the allowed `sub` claims) is checked before temporary credentials are
//! issued. The issued keys are then accepted by the EDAS/SAE endpoints until they expire.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::reply::{Reply, gateway_error};
use super::routes::Params;
use changeorder_cloud::model::Provider;

pub const STS_VERSION: &str = "2015-04-01";
/// The audience RRSA tokens are minted for.
pub const RRSA_AUDIENCE: &str = "sts.aliyuncs.com";

/// One public key of a JWKS: RSA (RS256, what ACK's issuer uses) or P-256 (ES256, what an API
/// server with an EC service-account key uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    key: KeyMaterial,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point: 0x04 || x || y.
    P256(Vec<u8>),
}

impl Jwk {
    fn verify(&self, alg: &str, signed: &[u8], signature: &[u8]) -> bool {
        use ring::signature::{
            ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents, UnparsedPublicKey,
        };
        match (&self.key, alg) {
            (KeyMaterial::Rsa { n, e }, "RS256") => RsaPublicKeyComponents { n, e }
                .verify(&RSA_PKCS1_2048_8192_SHA256, signed, signature)
                .is_ok(),
            (KeyMaterial::P256(point), "ES256") => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(signed, signature)
                .is_ok(),
            _ => false,
        }
    }
}

/// The issuer's public keys (`/openid/v1/jwks` of a Kubernetes API server).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// From a JWKS document; keys other than RSA signing keys are skipped.
    pub fn parse(text: &str) -> Result<Jwks, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("JWKS is not JSON: {e}"))?;
        let keys = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS has no keys array")?;
        let mut out = Vec::new();
        for k in keys {
            let s = |name: &str| k.get(name).and_then(Value::as_str);
            if s("use").is_some_and(|u| u != "sig") {
                continue;
            }
            let b64 = |name: &str| -> Result<Vec<u8>, String> {
                URL_SAFE_NO_PAD
                    .decode(s(name).ok_or(format!("JWKS key without {name}"))?)
                    .map_err(|e| format!("JWKS key {name} is not base64url: {e}"))
            };
            let key = match (s("kty"), s("crv")) {
                (Some("RSA"), _) => KeyMaterial::Rsa {
                    n: b64("n")?,
                    e: b64("e")?,
                },
                (Some("EC"), Some("P-256")) => {
                    let mut point = vec![4u8];
                    point.extend(b64("x")?);
                    point.extend(b64("y")?);
                    KeyMaterial::P256(point)
                }
                _ => continue,
            };
            out.push(Jwk {
                kid: s("kid").map(str::to_string),
                key,
            });
        }
        if out.is_empty() {
            return Err("JWKS holds no RSA or P-256 signing key".into());
        }
        Ok(Jwks { keys: out })
    }

    /// From a file, or from an http(s) URL fetched once.
    pub async fn load(source: &str) -> Result<Jwks, String> {
        let text = if source.starts_with("http://") || source.starts_with("https://") {
            let resp = reqwest::get(source)
                .await
                .map_err(|e| format!("fetching JWKS {source}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("fetching JWKS {source}: HTTP {}", resp.status()));
            }
            resp.text()
                .await
                .map_err(|e| format!("reading JWKS {source}: {e}"))?
        } else {
            std::fs::read_to_string(Path::new(source)).map_err(|e| format!("reading JWKS {source}: {e}"))?
        };
        Jwks::parse(&text)
    }
}

/// A RAM role the simulated STS lets OIDC tokens assume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcRole {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    /// Allowed `sub` claims (`system:serviceaccount:NS:NAME`), like a trust policy's
    /// `oidc:sub` condition; empty allows any subject of the provider.
    pub subjects: Vec<String>,
}

/// The simulated STS: who issues tokens, with which keys, and what they may assume.
#[derive(Clone, Debug)]
pub struct StsConfig {
    pub jwks: Jwks,
    /// The `iss` tokens must carry (the API server's `--service-account-issuer`).
    pub issuer: String,
    pub audience: String,
    pub roles: Vec<OidcRole>,
    /// Credentials live at most this long, whatever DurationSeconds asks (short for tests).
    pub max_duration: Option<Duration>,
    /// Refuse every exchange with `Throttling`-free, permanent `AuthenticationFail.NoPermission`.
    pub refuse_all: bool,
}

/// Temporary credentials handed out; the verifier accepts them until `expires`.
#[derive(Clone, Debug)]
pub struct Issued {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: String,
    pub expires: Timestamp,
}

fn sts_error(status: u16, code: &str, message: &str, host: &str) -> Reply {
    // STS uses the RPC error envelope the gateway uses for EDAS.
    gateway_error(Provider::Edas, status, code, message, host)
}

/// Random printable text for keys and tokens.
pub fn random_text(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let i = rng.random_range(0..62u8);
            char::from(match i {
                0..=9 => b'0' + i,
                10..=35 => b'a' + i - 10,
                _ => b'A' + i - 36,
            })
        })
        .collect()
}

/// New temporary credentials valid for `duration` from `now`.
pub fn issue(now: Timestamp, duration: Duration) -> Issued {
    let expires = jiff::SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| now.checked_add(d).ok())
        .unwrap_or(now);
    Issued {
        access_key_id: format!("STS.{}", random_text(24)),
        access_key_secret: random_text(40),
        security_token: format!("CAIS{}", random_text(120)),
        expires,
    }
}

/// Seconds-precision UTC, as STS writes `Expiration`.
pub fn expiration_text(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Answer one AssumeRoleWithOIDC request (query and form body merged in `params`). On success
/// also returns the credentials to register with the verifier.
pub fn assume_role_with_oidc(
    cfg: &StsConfig,
    params: &Params,
    now: Timestamp,
    host: &str,
) -> (Reply, Option<Issued>) {
    match check(cfg, params, now) {
        Ok((role, subject, duration)) => {
            let issued = issue(now, duration);
            let session = params.get("RoleSessionName").unwrap_or("session");
            let role_name = role.role_arn.rsplit('/').next().unwrap_or("role");
            let body = json!({
                "RequestId": super::reply::request_id(),
                "AssumedRoleUser": {
                    "Arn": format!("{}/{session}", role.role_arn.replace(":role/", ":assumed-role/")),
                    "AssumedRoleId": format!("{}:{session}", random_text(18)),
                },
                "OIDCTokenInfo": {"Subject": subject, "Issuer": cfg.issuer, "ClientIds": cfg.audience},
                "SourceIdentity": role_name,
                "Credentials": {
                    "AccessKeyId": issued.access_key_id,
                    "AccessKeySecret": issued.access_key_secret,
                    "SecurityToken": issued.security_token,
                    "Expiration": expiration_text(issued.expires),
                },
            });
            (Reply::ok(body), Some(issued))
        }
        Err((status, code, message)) => (sts_error(status, code, &message, host), None),
    }
}

type Refusal = (u16, &'static str, String);

fn check<'a>(
    cfg: &'a StsConfig,
    params: &Params,
    now: Timestamp,
) -> Result<(&'a OidcRole, String, Duration), Refusal> {
    let required = |k: &'static str| {
        params.get(k).filter(|v| !v.is_empty()).ok_or((
            400,
            "MissingParameter",
            format!("The input parameter {k} that is mandatory for processing this request is not supplied."),
        ))
    };
    if params.get("Version") != Some(STS_VERSION) {
        return Err((
            400,
            "InvalidVersion",
            format!("Specified parameter Version is not valid; use {STS_VERSION}."),
        ));
    }
    let role_arn = required("RoleArn")?;
    let provider_arn = required("OIDCProviderArn")?;
    let token = required("OIDCToken")?;
    required("RoleSessionName")?;
    let duration: u64 = match params.get("DurationSeconds") {
        None | Some("") => 3600,
        Some(d) => d.parse().ok().filter(|d| (900..=43200).contains(d)).ok_or((
            400,
            "InvalidParameter.DurationSeconds",
            "DurationSeconds must be between 900 and 43200.".to_string(),
        ))?,
    };
    let claims = verify_jwt(cfg, token, now)?;
    let role = cfg.roles.iter().find(|r| r.role_arn == role_arn).ok_or((
        404,
        "EntityNotExist.Role",
        format!("The role {role_arn} does not exist."),
    ))?;
    if role.oidc_provider_arn != provider_arn {
        return Err((
            404,
            "EntityNotExist.OIDCProvider",
            format!("The OIDC provider {provider_arn} does not exist or is not trusted by the role."),
        ));
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if cfg.refuse_all || (!role.subjects.is_empty() && !role.subjects.contains(&subject)) {
        return Err((
            403,
            "AuthenticationFail.NoPermission",
            format!("The role's trust policy does not allow {subject} to assume {role_arn}."),
        ));
    }
    let duration = Duration::from_secs(duration);
    let duration = cfg.max_duration.map_or(duration, |m| duration.min(m));
    Ok((role, subject, duration))
}

/// Verify a compact JWS (RS256) against the JWKS and check issuer, audience and time claims.
pub fn verify_jwt(cfg: &StsConfig, token: &str, now: Timestamp) -> Result<Value, Refusal> {
    let invalid = |why: &str| {
        (
            400,
            "AuthenticationFail.OIDCToken.Invalid",
            format!("The OIDC token is invalid: {why}."),
        )
    };
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("not a compact JWS"));
    };
    let decode = |x: &str| URL_SAFE_NO_PAD.decode(x).map_err(|_| invalid("bad base64url"));
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|_| invalid("header is not JSON"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or_default();
    if !matches!(alg, "RS256" | "ES256") {
        return Err(invalid("alg must be RS256 or ES256"));
    }
    let kid = header.get("kid").and_then(Value::as_str);
    let signature = decode(s)?;
    let signed = format!("{h}.{p}");
    let verified = cfg
        .jwks
        .keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        .any(|k| k.verify(alg, signed.as_bytes(), &signature));
    if !verified {
        return Err(invalid("the signature does not verify with the provider's keys"));
    }
    let claims: Value = serde_json::from_slice(&decode(p)?).map_err(|_| invalid("claims are not JSON"))?;
    if claims.get("iss").and_then(Value::as_str) != Some(cfg.issuer.as_str()) {
        return Err((
            400,
            "AuthenticationFail.OIDCToken.IssuerNotMatch",
            "The OIDC token's issuer does not match the OIDC provider's.".into(),
        ));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == cfg.audience,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(cfg.audience.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err((
            400,
            "AuthenticationFail.OIDCToken.AudienceNotMatch",
            format!("The OIDC token's audience must include {}.", cfg.audience),
        ));
    }
    let secs = now.as_second();
    let claim = |k: &str| claims.get(k).and_then(Value::as_i64);
    match claim("exp") {
        Some(exp) if exp > secs => {}
        Some(_) => {
            return Err((
                400,
                "AuthenticationFail.OIDCToken.Expired",
                "The OIDC token has expired.".into(),
            ));
        }
        None => return Err(invalid("no exp claim")),
    }
    if claim("nbf").is_some_and(|nbf| nbf > secs + 60) {
        return Err(invalid("not valid yet (nbf)"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_parsing_skips_other_keys() {
        let doc = r#"{"keys":[{"kty":"EC","crv":"P-384","x":"AA","y":"AA"},{"kty":"oct","k":"AA"},{"kty":"RSA","use":"sig","kid":"k1","alg":"RS256","n":"AQAB","e":"AQAB"}]}"#;
        let j = Jwks::parse(doc).unwrap();
        assert_eq!(j.keys.len(), 1);
        assert_eq!(j.keys[0].kid.as_deref(), Some("k1"));
        assert!(Jwks::parse(r#"{"keys":[]}"#).is_err());
        assert!(Jwks::parse("nope").is_err());
    }

    fn cfg() -> StsConfig {
        StsConfig {
            jwks: Jwks::parse(r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#).unwrap(),
            issuer: "https://issuer".into(),
            audience: RRSA_AUDIENCE.into(),
            roles: vec![],
            max_duration: None,
            refuse_all: false,
        }
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let now = Timestamp::now();
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let h = enc(&json!({"alg": "RS256"}));
        let p = enc(&json!({"iss": "https://issuer", "aud": [RRSA_AUDIENCE], "exp": now.as_second() + 600}));
        let forged = format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(b"not a signature"));
        let e = verify_jwt(&cfg(), &forged, now).unwrap_err();
        assert_eq!(e.1, "AuthenticationFail.OIDCToken.Invalid");
        assert!(e.2.contains("signature"), "{}", e.2);
        // An RS256 signature is not checked against an EC key or the other way round.
        let es = format!(
            "{}.{p}.{}",
            enc(&json!({"alg": "ES256"})),
            URL_SAFE_NO_PAD.encode([0u8; 64])
        );
        assert_eq!(
            verify_jwt(&cfg(), &es, now).unwrap_err().1,
            "AuthenticationFail.OIDCToken.Invalid"
        );
        let none = format!("{}.{p}.", enc(&json!({"alg": "none"})));
        assert_eq!(
            verify_jwt(&cfg(), &none, now).unwrap_err().1,
            "AuthenticationFail.OIDCToken.Invalid"
        );
        assert_eq!(
            verify_jwt(&cfg(), "a.b", now).unwrap_err().1,
            "AuthenticationFail.OIDCToken.Invalid"
        );
    }

    #[test]
    fn issued_credentials_expire_when_asked() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let i = issue(now, Duration::from_secs(900));
        assert!(i.access_key_id.starts_with("STS."));
        assert_eq!(expiration_text(i.expires), "2026-01-01T00:15:00Z");
        assert_ne!(
            issue(now, Duration::from_secs(1)).security_token,
            i.security_token
        );
    }
}
