//! What to poll: provider, endpoint, application, filters, signing scheme and time zone,
//! validated from a `ChangeOrderWatch` spec with messages that name the field.
//!
//! The spec type is plain serde data (no API-server types), so reading it here keeps this
//! module free of Kubernetes while sparing the controller and `probe` a copy of the rules.

use jiff::tz::Offset;
use reqwest::Url;

use super::model::{AppRef, Provider};
use super::sign::Scheme;
use super::time::{default_offset, parse_offset};
use crate::crd::{ChangeOrderWatchSpec, SignatureVersion};

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
    /// Validate a watch spec. The error names the field, like the CRD's CEL rules do (which a
    /// file read by `probe` has not been through).
    pub fn from_spec(spec: &ChangeOrderWatchSpec) -> Result<Target, String> {
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
            .map(|s| s.as_str().to_string())
            .collect();

        let app = match provider {
            Provider::Edas | Provider::Sae => {
                let Some(id) = app_id else {
                    return Err("spec.appId is required when spec.provider is edas or sae".into());
                };
                if endpoint.is_none() && region.is_none() {
                    return Err(
                        "spec.region or spec.endpoint is required when spec.provider is edas or sae".into(),
                    );
                }
                if org.is_some() || app_name.is_some() || spec.env_names.is_some() || spec.states.is_some() {
                    return Err(
                        "spec.organizationId, spec.appName, spec.envNames and spec.states apply only to provider appstack"
                            .into(),
                    );
                }
                AppRef::Id(id)
            }
            Provider::Appstack => {
                if spec.app_id.is_some() {
                    return Err(
                        "spec.appId does not apply to provider appstack: use spec.organizationId and spec.appName".into(),
                    );
                }
                match (org, app_name) {
                    (Some(organization_id), Some(app_name)) => AppRef::Named {
                        organization_id,
                        app_name,
                    },
                    _ => {
                        return Err(
                            "spec.organizationId and spec.appName are required when spec.provider is appstack".into(),
                        );
                    }
                }
            }
        };
        if let Some(r) = &region
            && !r
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("spec.region {r:?} is not a region id (like cn-hangzhou)"));
        }
        if let Some(e) = &endpoint {
            parse_endpoint(e).map_err(|m| format!("spec.endpoint: {m}"))?;
        }
        let zone = match present(&spec.time_zone) {
            None => default_offset(),
            Some(z) => parse_offset(&z)
                .ok_or_else(|| format!("spec.timeZone {z:?} is not a UTC offset like +08:00"))?,
        };
        let signature = match spec.signature_version.unwrap_or_default() {
            SignatureVersion::V3 => Scheme::V3,
            SignatureVersion::Roa => Scheme::Roa,
        };
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
    pub fn base_url(&self) -> Result<Url, String> {
        if let Some(e) = &self.endpoint {
            return parse_endpoint(e);
        }
        let host = match (self.provider, &self.region) {
            (Provider::Appstack, _) => return parse_endpoint(APPSTACK_CENTRAL_ENDPOINT),
            (Provider::Edas, Some(r)) => format!("https://edas.{r}.aliyuncs.com"),
            (Provider::Sae, Some(r)) => format!("https://sae.{r}.aliyuncs.com"),
            (_, None) => return Err("no endpoint and no region".into()),
        };
        parse_endpoint(&host)
    }
}

/// An http(s) URL with a host and no query or fragment; a path is kept as a prefix.
pub fn parse_endpoint(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("{s:?} is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?} must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{s:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{s:?} must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{s:?} must not carry user info"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ChangeOrderWatchSpec {
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
            let e = Target::from_spec(&spec(yaml)).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }
}
