//! Credentials for the clouds: an AccessKey pair (optionally with an STS token) for EDAS and
//! SAE, a personal access token for Yunxiao AppStack.
//!
//! `Debug` never prints a secret, and errors name the missing key, never a value.

use std::collections::BTreeMap;

use super::model::Provider;

/// Keys in a Secret (and in `probe --credentials`), fixed by the user-facing contract.
pub mod keys {
    pub const ACCESS_KEY_ID: &str = "accessKeyId";
    pub const ACCESS_KEY_SECRET: &str = "accessKeySecret";
    pub const SECURITY_TOKEN: &str = "securityToken";
    pub const TOKEN: &str = "token";
}

/// Environment variables read when no Secret / file is given.
pub mod env {
    pub const ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
    pub const ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
    pub const SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";
    pub const YUNXIAO_TOKEN: &str = "YUNXIAO_ACCESS_TOKEN";
}

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// EDAS and SAE. `security_token` is set for temporary (STS) credentials.
    AccessKey {
        access_key_id: String,
        access_key_secret: String,
        security_token: Option<String>,
    },
    /// Yunxiao AppStack personal access token (`x-yunxiao-token`).
    Token(String),
}

/// Show enough of an AccessKey id to tell keys apart in logs, never the whole of it.
fn mask_id(id: &str) -> String {
    if id.chars().count() >= 12 {
        let head: String = id.chars().take(4).collect();
        format!("{head}****")
    } else {
        "****".to_string()
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::AccessKey {
                access_key_id,
                security_token,
                ..
            } => f
                .debug_struct("AccessKey")
                .field("access_key_id", &mask_id(access_key_id))
                .field("access_key_secret", &"<redacted>")
                .field("security_token", &security_token.as_ref().map(|_| "<redacted>"))
                .finish(),
            Credentials::Token(_) => f.debug_tuple("Token").field(&"<redacted>").finish(),
        }
    }
}

/// What is wrong with the supplied credentials. Names keys and sources, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("missing credentials key {key}{found}")]
    MissingKey { key: &'static str, found: String },
    #[error("credentials key {key} is empty")]
    EmptyKey { key: &'static str },
    #[error("credentials key {key} is not valid UTF-8")]
    NotUtf8 { key: &'static str },
    #[error(
        "missing credentials: need keys accessKeyId and accessKeySecret (edas, sae) or token (appstack){found}"
    )]
    MissingAny { found: String },
    #[error("environment variable {var} is not set (or empty)")]
    MissingEnv { var: &'static str },
    #[error("{provider} needs {needed}, but the credentials hold {held}")]
    WrongKind {
        provider: Provider,
        needed: &'static str,
        held: &'static str,
    },
}

impl Credentials {
    /// The AccessKey id (not secret), for rate-limit keys and log correlation.
    pub fn access_key_id(&self) -> Option<&str> {
        match self {
            Credentials::AccessKey { access_key_id, .. } => Some(access_key_id),
            Credentials::Token(_) => None,
        }
    }

    /// A short, non-secret name of the credential kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Credentials::AccessKey { .. } => "an AccessKey",
            Credentials::Token(_) => "a token",
        }
    }

    /// Check that these credentials fit the provider.
    pub fn check_for(&self, provider: Provider) -> Result<(), CredentialsError> {
        match (provider, self) {
            (Provider::Appstack, Credentials::Token(_)) => Ok(()),
            (Provider::Edas | Provider::Sae, Credentials::AccessKey { .. }) => Ok(()),
            (Provider::Appstack, other) => Err(CredentialsError::WrongKind {
                provider,
                needed: "a token",
                held: other.kind_name(),
            }),
            (_, other) => Err(CredentialsError::WrongKind {
                provider,
                needed: "an AccessKey",
                held: other.kind_name(),
            }),
        }
    }

    /// A stable, non-secret identity of these credentials, e.g. to share a call budget between
    /// watches using the same account: the AccessKey id with a short hash of the whole key, or
    /// a short hash of the token. The hash covers the secret, so a watch that names another
    /// tenant's AccessKey id (which is not secret) with a wrong secret does not share, and
    /// cannot drain, that tenant's budget.
    pub fn fingerprint(&self) -> String {
        match self {
            Credentials::AccessKey {
                access_key_id,
                access_key_secret,
                security_token,
            } => {
                let whole = format!(
                    "{access_key_id}\n{access_key_secret}\n{}",
                    security_token.as_deref().unwrap_or("")
                );
                let digest = super::sign::sha256_hex(whole.as_bytes());
                format!("ak:{access_key_id}:{}", &digest[..12])
            }
            Credentials::Token(t) => {
                // 48 bits of SHA-256: enough to tell tokens apart, far too little to recover one.
                let digest = super::sign::sha256_hex(t.as_bytes());
                format!("token:{}", &digest[..12])
            }
        }
    }

    /// From a map whose provider is not known: an AccessKey when `accessKeyId` or
    /// `accessKeySecret` is present, else a token. Prefer [`Credentials::for_provider`], which
    /// reads the right keys when one Secret holds both kinds and names the missing key exactly.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Self, CredentialsError> {
        let has = |k: &str| map.get(k).is_some_and(|v| !v.trim().is_empty());
        if has(keys::ACCESS_KEY_ID) || has(keys::ACCESS_KEY_SECRET) {
            Self::for_provider(Provider::Edas, map)
        } else if map.contains_key(keys::TOKEN) {
            Self::for_provider(Provider::Appstack, map)
        } else {
            Err(CredentialsError::MissingAny {
                found: found_keys(map.keys()),
            })
        }
    }

    /// From a Secret's `stringData`-style map (or a YAML/JSON file of the same keys), reading
    /// the keys `provider` needs. Values are trimmed: a trailing newline from
    /// `echo foo | base64` is the most common Secret mistake.
    pub fn for_provider(
        provider: Provider,
        map: &BTreeMap<String, String>,
    ) -> Result<Self, CredentialsError> {
        Self::from_lookup(
            provider,
            |k| map.get(k).map(|v| Ok(v.as_str())),
            || found_keys(map.keys()),
        )
    }

    /// From a Secret's `data` (bytes, already base64-decoded).
    pub fn from_bytes_map(
        provider: Provider,
        map: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, CredentialsError> {
        Self::from_lookup(
            provider,
            |k| map.get(k).map(|v| std::str::from_utf8(v).map_err(|_| ())),
            || found_keys(map.keys()),
        )
    }

    fn from_lookup<'a>(
        provider: Provider,
        get: impl Fn(&str) -> Option<Result<&'a str, ()>>,
        found: impl Fn() -> String,
    ) -> Result<Self, CredentialsError> {
        let required = |key: &'static str| -> Result<String, CredentialsError> {
            match get(key) {
                None => Err(CredentialsError::MissingKey { key, found: found() }),
                Some(Err(())) => Err(CredentialsError::NotUtf8 { key }),
                Some(Ok(v)) if v.trim().is_empty() => Err(CredentialsError::EmptyKey { key }),
                Some(Ok(v)) => Ok(v.trim().to_string()),
            }
        };
        match provider {
            Provider::Appstack => Ok(Credentials::Token(required(keys::TOKEN)?)),
            Provider::Edas | Provider::Sae => {
                let access_key_id = required(keys::ACCESS_KEY_ID)?;
                let access_key_secret = required(keys::ACCESS_KEY_SECRET)?;
                let security_token = match get(keys::SECURITY_TOKEN) {
                    Some(Err(())) => {
                        return Err(CredentialsError::NotUtf8 {
                            key: keys::SECURITY_TOKEN,
                        });
                    }
                    Some(Ok(v)) if !v.trim().is_empty() => Some(v.trim().to_string()),
                    _ => None,
                };
                Ok(Credentials::AccessKey {
                    access_key_id,
                    access_key_secret,
                    security_token,
                })
            }
        }
    }

    /// From the standard environment variables.
    pub fn from_env(provider: Provider) -> Result<Self, CredentialsError> {
        Self::from_env_with(provider, |k| std::env::var(k).ok())
    }

    /// From environment-like lookups (testable without touching the process environment).
    pub fn from_env_with(
        provider: Provider,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CredentialsError> {
        let required = |name: &'static str| -> Result<String, CredentialsError> {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or(CredentialsError::MissingEnv { var: name })
        };
        match provider {
            Provider::Appstack => Ok(Credentials::Token(required(env::YUNXIAO_TOKEN)?)),
            Provider::Edas | Provider::Sae => Ok(Credentials::AccessKey {
                access_key_id: required(env::ACCESS_KEY_ID)?,
                access_key_secret: required(env::ACCESS_KEY_SECRET)?,
                security_token: var(env::SECURITY_TOKEN)
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty()),
            }),
        }
    }
}

fn found_keys<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = keys.map(String::as_str).collect();
    if names.is_empty() {
        " (no keys present)".to_string()
    } else {
        format!(" (keys present: {})", names.join(", "))
    }
}

/// The only Secret type credentials are read from. Kubernetes gives a Secret created without a
/// type this one; typed Secrets (`kubernetes.io/service-account-token`, `.../dockerconfigjson`,
/// `.../tls`, ...) hold other things, and a service-account token Secret has a `token` key that
/// would otherwise pass for an AppStack token.
pub const SECRET_TYPE: &str = "Opaque";

/// A Secret of another type than [`SECRET_TYPE`]; names the type it has.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the Secret is of type {type_:?}; credentials are read only from Secrets of type {}",
    SECRET_TYPE
)]
pub struct SecretTypeError {
    pub type_: String,
}

/// Ok for a Secret of type `Opaque` (or without a type, which the API server defaults to
/// `Opaque`); otherwise an error naming the type. Call it before reading the Secret's data.
pub fn check_secret_type(type_: Option<&str>) -> Result<(), SecretTypeError> {
    match type_ {
        None | Some("") | Some(SECRET_TYPE) => Ok(()),
        Some(other) => Err(SecretTypeError {
            type_: other.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const SECRET: &str = "TopSecretValue123";
    const TOKEN: &str = "pt-ReallySecretToken";

    #[test]
    fn access_key_from_map_trims() {
        let c = Credentials::for_provider(
            Provider::Sae,
            &map(&[
                ("accessKeyId", " LTAI5tExampleId\n"),
                ("accessKeySecret", "TopSecretValue123\n"),
                ("securityToken", "  "),
                ("token", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c,
            Credentials::AccessKey {
                access_key_id: "LTAI5tExampleId".into(),
                access_key_secret: SECRET.into(),
                security_token: None,
            }
        );
        c.check_for(Provider::Sae).unwrap();
        c.check_for(Provider::Edas).unwrap();
        assert!(c.check_for(Provider::Appstack).is_err());
    }

    #[test]
    fn sts_token_kept() {
        let c = Credentials::for_provider(
            Provider::Edas,
            &map(&[
                ("accessKeyId", "id"),
                ("accessKeySecret", "s"),
                ("securityToken", "sts\n"),
            ]),
        )
        .unwrap();
        assert!(matches!(c, Credentials::AccessKey { security_token: Some(ref t), .. } if t == "sts"));
    }

    #[test]
    fn token_from_map() {
        let c = Credentials::for_provider(Provider::Appstack, &map(&[("token", "pt-abc\n")])).unwrap();
        assert_eq!(c, Credentials::Token("pt-abc".into()));
        c.check_for(Provider::Appstack).unwrap();
        let e = c.check_for(Provider::Edas).unwrap_err();
        assert_eq!(
            e.to_string(),
            "edas needs an AccessKey, but the credentials hold a token"
        );
    }

    #[test]
    fn errors_name_the_key_never_the_value() {
        let e = Credentials::for_provider(
            Provider::Sae,
            &map(&[("accessKeyId", "id"), ("accessKeysecret", SECRET)]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing credentials key accessKeySecret (keys present: accessKeyId, accessKeysecret)"
        );
        assert!(!e.to_string().contains(SECRET));
        let e = Credentials::for_provider(Provider::Sae, &map(&[])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing credentials key accessKeyId (no keys present)"
        );
        let e = Credentials::for_provider(
            Provider::Sae,
            &map(&[("accessKeyId", "id"), ("accessKeySecret", " \n")]),
        )
        .unwrap_err();
        assert_eq!(
            e,
            CredentialsError::EmptyKey {
                key: "accessKeySecret"
            }
        );
        let e = Credentials::for_provider(Provider::Appstack, &map(&[("accessKeyId", "x")])).unwrap_err();
        assert!(e.to_string().contains("missing credentials key token"));
    }

    #[test]
    fn autodetect_and_fingerprint() {
        let ak = Credentials::from_map(&map(&[
            ("accessKeyId", "LTAIid"),
            ("accessKeySecret", "s"),
            ("token", "t"),
        ]))
        .unwrap();
        assert_eq!(ak.access_key_id(), Some("LTAIid"));
        let fp = ak.fingerprint();
        assert!(
            fp.starts_with("ak:LTAIid:") && fp.len() == "ak:LTAIid:".len() + 12,
            "{fp}"
        );
        let wrong_secret = Credentials::AccessKey {
            access_key_id: "LTAIid".into(),
            access_key_secret: "not-the-secret".into(),
            security_token: None,
        };
        assert_ne!(
            fp,
            wrong_secret.fingerprint(),
            "a borrowed AccessKey id gets its own budget"
        );
        let t = Credentials::from_map(&map(&[("token", TOKEN)])).unwrap();
        assert_eq!(t, Credentials::Token(TOKEN.into()));
        let fp = t.fingerprint();
        assert!(
            fp.starts_with("token:") && fp.len() == 18 && !fp.contains(TOKEN),
            "{fp}"
        );
        assert_ne!(fp, Credentials::Token("other".into()).fingerprint());
        let e = Credentials::from_map(&map(&[("accessKeyId", "id")])).unwrap_err();
        assert_eq!(
            e,
            CredentialsError::MissingKey {
                key: "accessKeySecret",
                found: " (keys present: accessKeyId)".into()
            }
        );
        let e = Credentials::from_map(&map(&[("user", "x")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing credentials: need keys accessKeyId and accessKeySecret (edas, sae) or token (appstack) (keys present: user)"
        );
    }

    #[test]
    fn bytes_map() {
        let mut m: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        m.insert("accessKeyId".into(), b"id".to_vec());
        m.insert("accessKeySecret".into(), vec![0xff, 0xfe]);
        let e = Credentials::from_bytes_map(Provider::Edas, &m).unwrap_err();
        assert_eq!(
            e,
            CredentialsError::NotUtf8 {
                key: "accessKeySecret"
            }
        );
        m.insert("accessKeySecret".into(), b"sec\n".to_vec());
        let c = Credentials::from_bytes_map(Provider::Edas, &m).unwrap();
        assert_eq!(c.access_key_id(), Some("id"));
    }

    #[test]
    fn from_env() {
        let vars = map(&[
            ("ALIBABA_CLOUD_ACCESS_KEY_ID", "id"),
            ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "sec"),
            ("ALIBABA_CLOUD_SECURITY_TOKEN", "sts"),
            ("YUNXIAO_ACCESS_TOKEN", "pt"),
        ]);
        let look = |k: &str| vars.get(k).cloned();
        assert_eq!(
            Credentials::from_env_with(Provider::Sae, look).unwrap(),
            Credentials::AccessKey {
                access_key_id: "id".into(),
                access_key_secret: "sec".into(),
                security_token: Some("sts".into()),
            }
        );
        assert_eq!(
            Credentials::from_env_with(Provider::Appstack, look).unwrap(),
            Credentials::Token("pt".into())
        );
        let e = Credentials::from_env_with(Provider::Edas, |k| {
            (k == "ALIBABA_CLOUD_ACCESS_KEY_ID").then(|| "id".to_string())
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment variable ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set (or empty)"
        );
    }

    #[test]
    fn debug_redacts() {
        let ak = Credentials::AccessKey {
            access_key_id: "LTAI5tVeryLongAccessKeyId".into(),
            access_key_secret: SECRET.into(),
            security_token: Some("StsTokenSecret".into()),
        };
        let d = format!("{ak:?}");
        assert!(!d.contains(SECRET), "{d}");
        assert!(!d.contains("StsTokenSecret"), "{d}");
        assert!(!d.contains("VeryLongAccessKeyId"), "{d}");
        assert!(d.contains("LTAI****"), "{d}");
        let pretty = format!("{ak:#?}");
        assert!(!pretty.contains(SECRET));
        let t = Credentials::Token(TOKEN.into());
        assert!(!format!("{t:?}").contains(TOKEN));
        assert_eq!(format!("{t:?}"), "Token(\"<redacted>\")");
        let short = Credentials::AccessKey {
            access_key_id: "ak".into(),
            access_key_secret: "s".into(),
            security_token: None,
        };
        assert!(format!("{short:?}").contains("\"****\""));
    }

    #[test]
    fn only_opaque_secrets_hold_credentials() {
        assert_eq!(check_secret_type(Some("Opaque")), Ok(()));
        assert_eq!(check_secret_type(None), Ok(()));
        assert_eq!(check_secret_type(Some("")), Ok(()));
        for other in [
            "kubernetes.io/service-account-token",
            "kubernetes.io/dockerconfigjson",
            "kubernetes.io/tls",
            "kubernetes.io/basic-auth",
            "opaque",
            "bootstrap.kubernetes.io/token",
        ] {
            let e = check_secret_type(Some(other)).expect_err(other).to_string();
            assert!(e.contains(other) && e.contains("Opaque"), "{e}");
        }
        assert_eq!(
            check_secret_type(Some("kubernetes.io/tls"))
                .expect_err("tls")
                .to_string(),
            "the Secret is of type \"kubernetes.io/tls\"; credentials are read only from Secrets of type Opaque"
        );
    }
}
