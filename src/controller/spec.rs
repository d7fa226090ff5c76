//! Validate a watch's spec into typed settings, once, with errors that name the field. The CRD's
//! schema refuses most bad values already; this is the last word for whatever got through (an
//! older CRD, a value the schema cannot express), so nothing falls back silently.

use std::time::Duration;

use crate::controller::args::{DurationError, parse_duration};
use crate::controller::context::Settings;
use crate::controller::identity::{Source, SourceError, source_of};
use crate::controller::plan::Retention;
use crate::crd::ChangeOrderWatchSpec;
use changeorder_cloud::client::Target;
use changeorder_cloud::policy::EndpointPolicy;
use changeorder_cloud::target::TargetError;

/// A watch's spec that cannot be used; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    CredentialSource(#[from] SourceError),
    #[error("{field}: {source}")]
    NotADuration {
        field: &'static str,
        source: DurationError,
    },
    #[error("{field}: must be greater than zero, got {value:?}")]
    ZeroDuration { field: &'static str, value: String },
}

/// A watch's endpoint the operator will not call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("spec.endpoint: {0}")]
    Invalid(TargetError),
    /// Outside `--allowed-endpoints`.
    #[error(transparent)]
    NotAllowed(changeorder_cloud::policy::EndpointRefused),
}

/// A watch's spec, validated and with the operator's defaults filled in.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    pub target: Target,
    pub interval: Duration,
    pub in_flight_interval: Duration,
    pub retention: Retention,
    /// Where the credentials come from (exactly one source).
    pub source: Source,
}

impl WatchConfig {
    pub fn from_spec(spec: &ChangeOrderWatchSpec, settings: &Settings) -> Result<Self, SpecError> {
        let target = spec.target()?;
        let source = source_of(spec)?;
        let interval = duration_field(
            "spec.interval",
            spec.interval.as_deref(),
            settings.default_interval,
        )?;
        let in_flight_interval = duration_field(
            "spec.inFlightInterval",
            spec.in_flight_interval.as_deref(),
            settings.default_in_flight_interval,
        )?;
        let retention = spec.retention.as_ref();
        let max_age = match retention.and_then(|r| r.max_age.as_deref()) {
            None => None,
            Some(v) => Some(duration_field("spec.retention.maxAge", Some(v), Duration::ZERO)?),
        };
        let max_finished = retention
            .and_then(|r| r.max_finished)
            .unwrap_or(settings.default_max_finished);
        Ok(WatchConfig {
            target,
            interval,
            in_flight_interval,
            retention: Retention {
                max_finished: usize::try_from(max_finished).unwrap_or(usize::MAX),
                max_age,
                min_keep: interval,
            },
            source,
        })
    }

    /// The interval that applies while an order is in flight (never slower than the idle one).
    pub fn fast_interval(&self) -> Duration {
        self.in_flight_interval.min(self.interval)
    }

    /// Whether the operator may call the watch's endpoint (checked before anything is sent).
    pub fn check_endpoint(&self, policy: &EndpointPolicy) -> Result<(), EndpointError> {
        let url = self.target.base_url().map_err(EndpointError::Invalid)?;
        policy.check_url(&url).map_err(EndpointError::NotAllowed)
    }
}

/// A positive duration from a spec field, or the default when the field is unset.
fn duration_field(
    field: &'static str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, SpecError> {
    let Some(value) = value else {
        return Ok(default);
    };
    let d = parse_duration(value).map_err(|source| SpecError::NotADuration { field, source })?;
    if d.is_zero() {
        return Err(SpecError::ZeroDuration {
            field,
            value: value.to_string(),
        });
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            default_interval: Duration::from_secs(60),
            default_in_flight_interval: Duration::from_secs(15),
            default_max_finished: 50,
            max_error_backoff: Duration::from_secs(300),
            status_heartbeat: Duration::from_secs(600),
            allowed_endpoints: Default::default(),
            keyless: Default::default(),
            actions: Default::default(),
            watch_sets: false,
        }
    }

    fn spec(extra: serde_json::Value) -> ChangeOrderWatchSpec {
        let mut v = serde_json::json!({
            "provider": "sae", "region": "cn-hangzhou", "appId": "app",
            "credentialsSecretRef": {"name": "creds"}
        });
        if let (Some(base), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(v).expect("spec")
    }

    #[test]
    fn defaults_and_typed_values() {
        let c = WatchConfig::from_spec(&spec(serde_json::json!({})), &settings()).expect("valid");
        assert_eq!(
            (c.interval, c.in_flight_interval),
            (Duration::from_secs(60), Duration::from_secs(15))
        );
        assert_eq!(c.retention.max_finished, 50);
        assert_eq!(c.retention.max_age, None);
        assert_eq!(c.retention.min_keep, Duration::from_secs(60));
        let c = WatchConfig::from_spec(
            &spec(serde_json::json!({"interval": "2m", "retention": {"maxAge": "24h", "maxFinished": 3}})),
            &settings(),
        )
        .expect("valid");
        assert_eq!(c.interval, Duration::from_secs(120));
        assert_eq!(c.retention.max_age, Some(Duration::from_secs(86400)));
        assert_eq!(c.retention.max_finished, 3);
    }

    /// An unreadable retention.maxAge used to mean "keep forever"; now it is an invalid spec.
    #[test]
    fn bad_durations_name_their_field() {
        for (extra, field) in [
            (
                serde_json::json!({"retention": {"maxAge": "a week"}}),
                "spec.retention.maxAge",
            ),
            (
                serde_json::json!({"retention": {"maxAge": "0s"}}),
                "spec.retention.maxAge",
            ),
            (serde_json::json!({"interval": "soon"}), "spec.interval"),
            (
                serde_json::json!({"inFlightInterval": "0"}),
                "spec.inFlightInterval",
            ),
        ] {
            let err = WatchConfig::from_spec(&spec(extra.clone()), &settings())
                .expect_err("invalid")
                .to_string();
            assert!(err.starts_with(field), "{extra}: {err}");
        }
    }
}
