//! What to poll: provider, endpoint, application, filters, signing scheme and time zone,
//! validated from a watch's fields ([`TargetSpec`], plain values the operator fills from a
//! `ChangeOrderWatch`) with messages that name the watch's field, so the controller and `probe`
//! share one copy of the rules.

use jiff::tz::Offset;
use reqwest::Url;

use super::model::{AppRef, Provider};
use super::sign::Scheme;
use super::time::{default_offset, parse_offset};

/// The fields of a watch that say what to poll, as the watch spells them (`spec.<field>`), so
/// errors can name them. Unknown keys are ignored, so a whole watch spec deserialises into it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    pub provider: Provider,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub app_name: Option<String>,
    #[serde(default)]
    pub env_names: Option<Vec<String>>,
    #[serde(default)]
    pub states: Option<Vec<String>>,
    #[serde(default, rename = "signatureVersion")]
    pub signature: Option<Scheme>,
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// A watch's target that cannot be polled; the message names the field, like the CRD's CEL
/// rules do (which a file read by `probe` has not been through).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("spec.appId is required when spec.provider is edas or sae")]
    AppIdRequired,
    #[error("spec.region or spec.endpoint is required when spec.provider is edas or sae")]
    RegionOrEndpointRequired,
    #[error(
        "spec.organizationId, spec.appName, spec.envNames and spec.states apply only to provider appstack"
    )]
    AppstackOnlyFields,
    #[error("spec.appId does not apply to provider appstack: use spec.organizationId and spec.appName")]
    AppIdNotForAppstack,
    #[error("spec.organizationId and spec.appName are required when spec.provider is appstack")]
    OrganizationAndAppNameRequired,
    #[error("spec.region {0:?} is not a region id (like cn-hangzhou)")]
    NotARegion(String),
    #[error("spec.endpoint: {0}")]
    Endpoint(EndpointError),
    #[error("spec.timeZone {0:?} is not a UTC offset like +08:00")]
    NotAnOffset(String),
    #[error("no endpoint and no region")]
    NoEndpointOrRegion,
}

/// An endpoint that is not an http(s) URL with a host and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{text:?} is not a URL ({reason})")]
    NotAUrl { text: String, reason: String },
    #[error("{0:?} must start with http:// or https://")]
    Scheme(String),
    #[error("{0:?} has no host")]
    NoHost(String),
    #[error("{0:?} must not have a query or fragment")]
    QueryOrFragment(String),
    #[error("{0:?} must not carry user info")]
    UserInfo(String),
}

/// The Yunxiao central edition's OpenAPI host.
pub const APPSTACK_CENTRAL_ENDPOINT: &str = "https://openapi-rdc.aliyuncs.com";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub provider: Provider,
    /// Explicit endpoint URL (may carry a path prefix; http allowed). Wins over `region`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub app: AppRef,
    /// AppStack only: environment filter (sent comma-separated).
    pub env_names: Vec<String>,
    /// AppStack only: state filter (sent comma-separated).
    pub states: Vec<String>,
    /// EDAS/SAE signing scheme.
    pub signature: Scheme,
    /// Offset of the zone-less times EDAS and SAE report.
    pub zone: Offset,
}

fn present(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl Target {
    /// Validate a watch's target fields. The error names the field.
    pub fn from_spec(spec: &TargetSpec) -> Result<Target, TargetError> {
        let provider = spec.provider;
        let endpoint = present(&spec.endpoint);
        let region = present(&spec.region);
        let app_id = present(&spec.app_id);
        let org = present(&spec.organization_id);
        let app_name = present(&spec.app_name);
        let env_names: Vec<String> = spec
            .env_names
            .iter()
            .flatten()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let states: Vec<String> = spec
            .states
            .iter()
            .flatten()
            .map(|s| s.trim().to_string())
            .collect();

        let app = match provider {
            Provider::Edas | Provider::Sae => {
                let Some(id) = app_id else {
                    return Err(TargetError::AppIdRequired);
                };
                if endpoint.is_none() && region.is_none() {
                    return Err(TargetError::RegionOrEndpointRequired);
                }
                if org.is_some() || app_name.is_some() || spec.env_names.is_some() || spec.states.is_some() {
                    return Err(TargetError::AppstackOnlyFields);
                }
                AppRef::Id(id)
            }
            Provider::Appstack => {
                if spec.app_id.is_some() {
                    return Err(TargetError::AppIdNotForAppstack);
                }
                match (org, app_name) {
                    (Some(organization_id), Some(app_name)) => AppRef::Named {
                        organization_id,
                        app_name,
                    },
                    _ => {
                        return Err(TargetError::OrganizationAndAppNameRequired);
                    }
                }
            }
        };
        if let Some(r) = &region
            && !is_host_label(r)
        {
            return Err(TargetError::NotARegion(r.clone()));
        }
        if let Some(e) = &endpoint {
            parse_endpoint(e).map_err(TargetError::Endpoint)?;
        }
        let zone = match present(&spec.time_zone) {
            None => default_offset(),
            Some(z) => parse_offset(&z).ok_or(TargetError::NotAnOffset(z))?,
        };
        let signature = spec.signature.unwrap_or_default();
        Ok(Target {
            provider,
            endpoint,
            region,
            app,
            env_names,
            states,
            signature,
            zone,
        })
    }

    /// The base URL calls go to: the explicit endpoint, else the provider's public host for
    /// the region (the AppStack central edition has one host for everyone).
    pub fn base_url(&self) -> Result<Url, TargetError> {
        if let Some(e) = &self.endpoint {
            return parse_endpoint(e).map_err(TargetError::Endpoint);
        }
        // The region becomes a host label: checked here too (the fields are public), so no
        // region can add a label, a port or user info to the host. Whether the host is one the
        // operator may call is the endpoint policy's decision.
        if let Some(r) = &self.region
            && self.provider != Provider::Appstack
            && !is_host_label(r)
        {
            return Err(TargetError::NotARegion(r.clone()));
        }
        let host = match (self.provider, &self.region) {
            (Provider::Appstack, _) => {
                return parse_endpoint(APPSTACK_CENTRAL_ENDPOINT).map_err(TargetError::Endpoint);
            }
            (Provider::Edas, Some(r)) => format!("https://edas.{r}.aliyuncs.com"),
            (Provider::Sae, Some(r)) => format!("https://sae.{r}.aliyuncs.com"),
            (_, None) => return Err(TargetError::NoEndpointOrRegion),
        };
        parse_endpoint(&host).map_err(TargetError::Endpoint)
    }
}

/// One DNS label of lowercase letters, digits and inner hyphens: what a region may be so that
/// `sae.<region>.aliyuncs.com` stays a host of exactly that shape.
fn is_host_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// An http(s) URL with a host and no query or fragment; a path is kept as a prefix.
pub fn parse_endpoint(s: &str) -> Result<Url, EndpointError> {
    let url = Url::parse(s.trim()).map_err(|e| EndpointError::NotAUrl {
        text: s.to_string(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EndpointError::Scheme(s.to_string()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(EndpointError::NoHost(s.to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(EndpointError::QueryOrFragment(s.to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::UserInfo(s.to_string()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> TargetSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn edas_from_region() {
        let t = Target::from_spec(&spec(
            "provider: edas\nregion: cn-hangzhou\nappId: abc\ncredentialsSecretRef: {name: s}",
        ))
        .unwrap();
        assert_eq!(t.app, AppRef::Id("abc".into()));
        assert_eq!(t.signature, Scheme::V3);
        assert_eq!(t.zone.seconds(), 8 * 3600);
        assert_eq!(
            t.base_url().unwrap().as_str(),
            "https://edas.cn-hangzhou.aliyuncs.com/"
        );
    }

    #[test]
    fn sae_endpoint_roa_zone() {
        let t = Target::from_spec(&spec(
            "provider: sae\nendpoint: http://127.0.0.1:8080/prefix\nappId: a\nsignatureVersion: roa\ntimeZone: '+00:00'\ncredentialsSecretRef: {name: s}",
        ))
        .unwrap();
        assert_eq!(t.signature, Scheme::Roa);
        assert_eq!(t.zone.seconds(), 0);
        assert_eq!(t.base_url().unwrap().as_str(), "http://127.0.0.1:8080/prefix");
        let t = Target::from_spec(&spec(
            "provider: sae\nregion: cn-shanghai\nappId: a\ncredentialsSecretRef: {name: s}",
        ))
        .unwrap();
        assert_eq!(
            t.base_url().unwrap().as_str(),
            "https://sae.cn-shanghai.aliyuncs.com/"
        );
    }

    #[test]
    fn appstack() {
        let t = Target::from_spec(&spec(
            "provider: appstack\norganizationId: org\nappName: web\nenvNames: [dev, test]\nstates: [RUNNING, FAILED]\ncredentialsSecretRef: {name: s}",
        ))
        .unwrap();
        assert_eq!(
            t.app,
            AppRef::Named {
                organization_id: "org".into(),
                app_name: "web".into()
            }
        );
        assert_eq!(t.env_names, vec!["dev", "test"]);
        assert_eq!(t.states, vec!["RUNNING", "FAILED"]);
        assert_eq!(
            t.base_url().unwrap().as_str(),
            "https://openapi-rdc.aliyuncs.com/"
        );
    }

    #[test]
    fn a_region_cannot_add_to_the_host() {
        for bad in [
            "cn-hangzhou.evil.com",
            "evil.com/",
            "evil.com#",
            "u@evil.com",
            "evil.com:8443",
            "-cn",
            "cn-hangzhou ",
            "",
        ] {
            let mut t = Target::from_spec(&spec(
                "provider: sae\nregion: cn-hangzhou\nappId: a\ncredentialsSecretRef: {name: s}",
            ))
            .unwrap();
            t.region = Some(bad.to_string());
            assert_eq!(
                t.base_url(),
                Err(TargetError::NotARegion(bad.to_string())),
                "{bad:?}"
            );
            let yaml =
                format!("provider: edas\nregion: {bad:?}\nappId: a\ncredentialsSecretRef: {{name: s}}");
            // from_spec trims, so only untrimmed spellings are errors there.
            if !bad.is_empty() && bad.trim() == bad {
                assert!(Target::from_spec(&spec(&yaml)).is_err(), "{bad:?}");
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "provider: edas\nregion: r\ncredentialsSecretRef: {name: s}",
                "spec.appId is required",
            ),
            (
                "provider: sae\nappId: ' '\nregion: r\ncredentialsSecretRef: {name: s}",
                "spec.appId is required",
            ),
            (
                "provider: sae\nappId: a\ncredentialsSecretRef: {name: s}",
                "spec.region or spec.endpoint",
            ),
            (
                "provider: sae\nappId: a\nregion: r\nappName: x\ncredentialsSecretRef: {name: s}",
                "apply only to provider appstack",
            ),
            (
                "provider: appstack\nappName: x\ncredentialsSecretRef: {name: s}",
                "spec.organizationId and spec.appName",
            ),
            (
                "provider: appstack\norganizationId: o\nappName: x\nappId: a\ncredentialsSecretRef: {name: s}",
                "spec.appId does not apply",
            ),
            (
                "provider: sae\nappId: a\nendpoint: ftp://x\ncredentialsSecretRef: {name: s}",
                "spec.endpoint",
            ),
            (
                "provider: sae\nappId: a\nendpoint: 'http://x/?q=1'\ncredentialsSecretRef: {name: s}",
                "spec.endpoint",
            ),
            (
                "provider: sae\nappId: a\nendpoint: 'not a url'\ncredentialsSecretRef: {name: s}",
                "spec.endpoint",
            ),
            (
                "provider: sae\nappId: a\nregion: CN_X\ncredentialsSecretRef: {name: s}",
                "spec.region",
            ),
            (
                "provider: sae\nappId: a\nregion: r\ntimeZone: CST\ncredentialsSecretRef: {name: s}",
                "spec.timeZone",
            ),
        ];
        for (yaml, want) in cases {
            let e = Target::from_spec(&spec(yaml)).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}
