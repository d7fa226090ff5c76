//! Provider-neutral view of a cloud change order. No Kubernetes types here: the clients produce
//! these, and `crate::mapping` turns them into `ChangeOrder` objects.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Which release system a watch polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Edas,
    Sae,
    Appstack,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Edas, Provider::Sae, Provider::Appstack];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Edas => "edas",
            Provider::Sae => "sae",
            Provider::Appstack => "appstack",
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider name that is none of `edas`, `sae`, `appstack`; holds the name as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {0:?} (expected edas, sae or appstack)")]
pub struct UnknownProvider(pub String);

impl std::str::FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "edas" => Ok(Provider::Edas),
            "sae" => Ok(Provider::Sae),
            "appstack" => Ok(Provider::Appstack),
            other => Err(UnknownProvider(other.to_owned())),
        }
    }
}

/// The application a watch follows, as each provider names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AppRef {
    /// EDAS and SAE: the application id.
    Id(String),
    /// AppStack: organization and application name.
    Named {
        organization_id: String,
        app_name: String,
    },
}

impl AppRef {
    /// A short, human-readable identity (used in labels and messages).
    pub fn display_name(&self) -> &str {
        match self {
            AppRef::Id(id) => id,
            AppRef::Named { app_name, .. } => app_name,
        }
    }
}

/// The provider's status value exactly as the cloud sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawStatus {
    /// EDAS and SAE numeric statuses.
    Code(i64),
    /// AppStack textual states.
    Text(String),
    /// The reply had no status at all.
    Missing,
}

impl std::fmt::Display for RawStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawStatus::Code(c) => write!(f, "{c}"),
            RawStatus::Text(t) => f.write_str(t),
            RawStatus::Missing => f.write_str(""),
        }
    }
}

/// One batch (EDAS/SAE pipeline, AppStack job).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub id: Option<String>,
    pub name: String,
    /// Raw state as the cloud reports it (pipeline status code or AppStack state).
    pub state: String,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    /// The cloud's own words about this batch, e.g. a task's error message.
    pub message: Option<String>,
}

/// One change order as read from the cloud, list and detail merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudOrder {
    pub provider: Provider,
    pub id: String,
    pub status: RawStatus,
    /// SAE `SubStatus` (1 = exception while executing).
    pub sub_status: Option<i64>,
    /// Human text of the type (EDAS/SAE `CoType`, AppStack `type`).
    pub order_type: Option<String>,
    /// Machine code of the type (EDAS/SAE `CoTypeCode`).
    pub type_code: Option<String>,
    pub description: Option<String>,
    pub creator: Option<String>,
    pub create_time: Option<Timestamp>,
    pub finish_time: Option<Timestamp>,
    pub batch_count: Option<u32>,
    /// `Automatic`/`Manual` (normalised from the provider's spelling).
    pub batch_type: Option<String>,
    pub batches: Vec<Batch>,
    /// 1-based index of the batch in progress, when the cloud says (or the clients can tell).
    pub current_batch: Option<u32>,
    /// AppStack environments the order deploys to.
    pub env_names: Vec<String>,
    /// The cloud's own words about the order (error or status message), if any.
    pub message: Option<String>,
    /// Whether `batches` and `message` came from a detail call (describe) or only the list.
    pub detailed: bool,
    /// The cloud answered that this order does not exist (any more).
    pub gone: bool,
    /// The order's application, where the reply names it (SAE describe and per-app list; the
    /// namespace-wide list does not).
    pub app_id: Option<String>,
}

impl CloudOrder {
    pub fn new(provider: Provider, id: impl Into<String>, status: RawStatus) -> Self {
        CloudOrder {
            provider,
            id: id.into(),
            status,
            sub_status: None,
            order_type: None,
            type_code: None,
            description: None,
            creator: None,
            create_time: None,
            finish_time: None,
            batch_count: None,
            batch_type: None,
            batches: Vec::new(),
            current_batch: None,
            env_names: Vec::new(),
            message: None,
            detailed: false,
            gone: false,
            app_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>(), Ok(p));
        }
        let e = "EDAS".parse::<Provider>().expect_err("names are lower-case");
        assert_eq!(e, UnknownProvider("EDAS".into()));
        assert_eq!(
            e.to_string(),
            "unknown provider \"EDAS\" (expected edas, sae or appstack)"
        );
    }
}
