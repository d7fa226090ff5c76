//! The simulator's scenario file: which apps exist, their change orders and how those move over
//! time, plus injected faults. Parsing reports the path of a bad field (`apps[0].changeOrders[2]
//! .timeline[1].after: ...`) so a user can fix a scenario without reading this code.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp, tz::Offset};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use changeorder_cloud::model::Provider;
// One offset parser for the operator and the simulator, so a zone one accepts the other does too.
use changeorder_cloud::time::parse_offset;

/// The built-in demo, served when no `--scenario` is given.
pub const DEMO_YAML: &str = include_str!("demo.yaml");

/// A whole scenario file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// Free text, shown nowhere but kept for the reader of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Offset of the zone-less EDAS/SAE times (`YYYY-MM-DD HH:MM:SS`).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Timelines run this many times faster than real time (tests use large values).
    #[serde(default = "default_time_scale")]
    pub time_scale: f64,
    /// Seed of the random generator behind fault rates, so runs are repeatable.
    #[serde(default)]
    pub seed: u64,
    /// How EDAS wraps arrays; see [`EdasWrappers`].
    #[serde(default)]
    pub edas_wrappers: EdasWrappers,
    /// Faults applied to every request (after authentication).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    /// AccessKey ids whose RAM policy is read-only: their write calls (confirm, abort) get
    /// `403 Forbidden.RAM`, as with a real read-only policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_access_keys: Vec<String>,
    /// Accounts and their AccessKey ids, for STS `GetCallerIdentity` (unlisted keys belong to
    /// one default account); see [`crate::accounts`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<crate::accounts::Account>,
    pub apps: Vec<App>,
}

fn default_time_zone() -> String {
    "+08:00".to_string()
}

fn default_time_scale() -> f64 {
    1.0
}

/// EDAS JSON mimics XML: `ChangeOrderList: {ChangeOrder: [...]}`. The cloud has been seen to send
/// a single object instead of a one-element array and to drop empty wrappers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EdasWrappers {
    /// Always an array, `[]` when empty.
    #[default]
    Array,
    /// One element as a bare object; the wrapper left out when empty.
    SingleObject,
}

/// One application of one provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct App {
    pub provider: Provider,
    /// EDAS/SAE application id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// AppStack organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    /// AppStack application name (required there); SAE `AppName` (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// SAE namespace (`ListNamespaceChangeOrders`, `ListApplications`); EDAS logical region
    /// (`ListApplication`). Default `cn-hangzhou`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<String>,
    /// SAE tags (key: value), for `ListApplications`' `Tags` filter.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// The app exists only from this offset (or time) on: listed, and its calls answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appears_at: Option<TimeSpec>,
    /// The app is deleted at this offset (or time): no longer listed, its calls `AppNotFound`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disappears_at: Option<TimeSpec>,
    /// Overrides the scenario's `edasWrappers` for this app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edas_wrappers: Option<EdasWrappers>,
    /// Faults for requests about this app only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    #[serde(default)]
    pub change_orders: Vec<Order>,
}

impl App {
    /// How the app is named in messages: the id, or `org/app`.
    pub fn label(&self) -> String {
        match (&self.app_id, &self.organization_id, &self.app_name) {
            (Some(id), _, _) => id.clone(),
            (None, Some(org), Some(name)) => format!("{org}/{name}"),
            (None, _, Some(name)) => name.clone(),
            _ => String::from("?"),
        }
    }
}

/// One change order and how it changes over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Order {
    /// EDAS/SAE `ChangeOrderId`, AppStack `sn`.
    pub id: String,
    /// EDAS/SAE `CoTypeCode` (e.g. `CoDeploy`), AppStack `type` (Deploy, Scale, Rollback, Destroy).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub order_type: Option<String>,
    /// EDAS/SAE `CoType`, the human text; derived from `type` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    /// AppStack order name; defaults to `<version>-<type>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// When the order was created: an offset from simulator start (`-2h`, `30s`: the order
    /// appears only then) or an RFC 3339 time. Default: ten minutes apart, newest first in file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<TimeSpec>,
    /// EDAS/SAE `Source`: console or pop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_type: Option<BatchMode>,
    /// AppStack environments; one job per environment, in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_names: Vec<String>,
    /// AppStack version (`20250717115350-021`); derived from the creation time when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// AppStack origin, for `ListChangeOrdersByOrigin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<OrderOrigin>,
    // The initial state at creation (same fields as a step); `timeline` steps change it later.
    /// EDAS/SAE numeric status or AppStack state. Default: 2 / SUCCESS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusValue>,
    /// SAE `SubStatus` (1: an exception while executing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<i64>,
    /// 1-based batch (EDAS/SAE pipeline, AppStack job) the status applies to; earlier batches
    /// are done, later ones not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_batch: Option<u32>,
    /// The cloud's words: EDAS task message, SAE `ErrorMessage`, AppStack job message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Explicit per-batch states, overriding the derived ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_states: Option<Vec<StatusValue>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Step>,
}

impl Order {
    /// An order with only an id: a finished (status 2) single-batch order unless changed.
    pub fn bare(id: impl Into<String>) -> Order {
        Order {
            id: id.into(),
            order_type: None,
            type_name: None,
            name: None,
            description: None,
            creator: None,
            created_at: None,
            source: None,
            batch_count: None,
            batch_type: None,
            env_names: Vec::new(),
            version: None,
            origin: None,
            status: None,
            sub_status: None,
            current_batch: None,
            message: None,
            batch_states: None,
            timeline: Vec::new(),
        }
    }

    /// The initial state as a change from nothing.
    pub fn initial(&self) -> StateChange {
        StateChange {
            status: self.status.clone(),
            sub_status: self.sub_status,
            current_batch: self.current_batch,
            message: self.message.clone(),
            batch_states: self.batch_states.clone(),
        }
    }
}

/// Fields a step may change; unset ones keep their previous value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateChange {
    pub status: Option<StatusValue>,
    pub sub_status: Option<i64>,
    pub current_batch: Option<u32>,
    pub message: Option<String>,
    pub batch_states: Option<Vec<StatusValue>>,
}

/// One change at `after` (scenario time since simulator start).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    pub after: Offset2,
    /// EDAS/SAE numeric status or AppStack state. Default: 2 / SUCCESS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusValue>,
    /// SAE `SubStatus` (1: an exception while executing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_status: Option<i64>,
    /// 1-based batch (EDAS/SAE pipeline, AppStack job) the status applies to; earlier batches
    /// are done, later ones not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_batch: Option<u32>,
    /// The cloud's words: EDAS task message, SAE `ErrorMessage`, AppStack job message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Explicit per-batch states, overriding the derived ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_states: Option<Vec<StatusValue>>,
}

impl Step {
    pub fn change(&self) -> StateChange {
        StateChange {
            status: self.status.clone(),
            sub_status: self.sub_status,
            current_batch: self.current_batch,
            message: self.message.clone(),
            batch_states: self.batch_states.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderOrigin {
    #[serde(rename = "type")]
    pub origin_type: String,
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchMode {
    Automatic,
    Manual,
}

/// A provider status: a number for EDAS/SAE, a word for AppStack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StatusValue {
    Code(i64),
    Text(String),
}

impl fmt::Display for StatusValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusValue::Code(c) => write!(f, "{c}"),
            StatusValue::Text(t) => f.write_str(t),
        }
    }
}

/// A signed duration written as `10s`, `1m30s`, `-2h`, `500ms` or a number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offset2(pub SignedDuration);

impl FromStr for Offset2 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Ok(secs) = t.parse::<f64>() {
            return SignedDuration::try_from_secs_f64(secs)
                .map(Offset2)
                .map_err(|e| format!("invalid duration {s:?}: {e}"));
        }
        t.parse::<SignedDuration>()
            .map(Offset2)
            .map_err(|e| format!("invalid duration {s:?} (expected e.g. 10s, 1m30s, -2h): {e}"))
    }
}

impl Serialize for Offset2 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The friendly form (`1h 30m`) parses back and is what people write.
        s.serialize_str(&format!("{:#}", self.0))
    }
}

impl<'de> Deserialize<'de> for Offset2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => SignedDuration::try_from_secs_f64(n)
                .map(Offset2)
                .map_err(serde::de::Error::custom),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A point in time: relative to simulator start, or absolute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    Relative(SignedDuration),
    Absolute(Timestamp),
}

impl Serialize for TimeSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TimeSpec::Relative(d) => Offset2(*d).serialize(s),
            TimeSpec::Absolute(t) => s.serialize_str(&t.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for TimeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => SignedDuration::try_from_secs_f64(n)
                .map(TimeSpec::Relative)
                .map_err(serde::de::Error::custom),
            Raw::Text(t) => {
                if let Ok(ts) = t.parse::<Timestamp>() {
                    return Ok(TimeSpec::Absolute(ts));
                }
                t.parse::<Offset2>()
                    .map(|o| TimeSpec::Relative(o.0))
                    .map_err(|e| serde::de::Error::custom(format!("{e}; or an RFC 3339 time")))
            }
        }
    }
}

/// One injected fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    pub kind: FaultKind,
    /// Probability (0..1) that a matching request gets the fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Deterministic alternative to `rate`: every Nth matching request (N, 2N, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_nth: Option<u64>,
    /// Stop after firing this many times (e.g. throttle the first two calls only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Only these providers (global faults); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<Provider>,
    /// Only these actions (e.g. `GetChangeOrderInfo`); empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
    /// Delay for `latency`; the `TimeLeft` advertised by `throttling` (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Offset2>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// EDAS/SAE `Throttling.User` (HTTP 400 with rate-limit headers), AppStack 429.
    Throttling,
    /// HTTP 500 `InternalError`.
    InternalError,
    /// HTTP 503 `ServiceUnavailable`.
    ServiceUnavailable,
    /// Answer normally, but late.
    Latency,
    /// HTTP 200 with a truncated JSON body.
    MalformedJson,
    /// A gateway or proxy that resent the request: a write is carried out, then answered
    /// `400 SignatureNonceUsed` (the answer to the resend); a read is answered the same way.
    GatewayResend,
}

/// Every action the simulator serves, for validating fault filters.
pub const ACTIONS: &[(Provider, &str)] = &[
    (Provider::Edas, "ListRecentChangeOrder"),
    (Provider::Edas, "GetChangeOrderInfo"),
    (Provider::Edas, "ContinuePipeline"),
    (Provider::Edas, "AbortChangeOrder"),
    (Provider::Edas, "AbortAndRollbackChangeOrder"),
    (Provider::Sae, "ListChangeOrders"),
    (Provider::Sae, "DescribeChangeOrder"),
    (Provider::Sae, "ListNamespaceChangeOrders"),
    (Provider::Sae, "DescribePipeline"),
    (Provider::Sae, "ConfirmPipelineBatch"),
    (Provider::Sae, "AbortChangeOrder"),
    (Provider::Sae, "AbortAndRollbackChangeOrder"),
    (Provider::Appstack, "ListChangeOrderVersions"),
    (Provider::Appstack, "GetChangeOrder"),
    (Provider::Appstack, "ListChangeOrdersByOrigin"),
];

/// Longest fault `duration`. Latencies add up across rules and become rate-limit headers in
/// milliseconds; a day is far beyond any test and keeps that arithmetic from overflowing.
pub const MAX_FAULT_DURATION: SignedDuration = SignedDuration::from_hours(24);

/// Most batches (EDAS/SAE `batchCount`, AppStack environments) an order may have. The clouds
/// allow a handful; the simulator builds every batch of every order on each request, so an
/// unbounded count (`batchCount: 4294967295`) would exhaust memory.
pub const MAX_BATCHES: u32 = 100;

/// Farthest `createdAt` and timeline `after` from the simulator's start. Batch times are
/// computed by adding to these; near the limits of a duration that addition overflowed.
pub const MAX_OFFSET: SignedDuration = SignedDuration::from_hours(100 * 366 * 24);

/// Why a scenario was rejected; the message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

impl Scenario {
    /// The built-in demo.
    pub fn demo() -> Result<Scenario, ScenarioError> {
        Scenario::from_yaml(DEMO_YAML)
    }

    /// Parse and validate; errors carry the path of the offending field.
    pub fn from_yaml(text: &str) -> Result<Scenario, ScenarioError> {
        let de = serde_yaml::Deserializer::from_str(text);
        let scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path == "?" || path.is_empty() {
                ScenarioError::Invalid(inner.to_string())
            } else {
                ScenarioError::Invalid(format!("{path}: {inner}"))
            }
        })?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn from_file(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::from_yaml(&text)
    }

    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(self)
    }

    /// The zone of zone-less EDAS/SAE times.
    pub fn offset(&self) -> Result<Offset, ScenarioError> {
        parse_offset(&self.time_zone).ok_or_else(|| {
            invalid(
                "timeZone",
                format!("{:?} is not an offset like +08:00", self.time_zone),
            )
        })
    }

    /// Checks serde cannot express: identities per provider, value types per provider, order.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.offset()?;
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(invalid("timeScale", "must be a number greater than 0"));
        }
        for (i, f) in self.faults.iter().enumerate() {
            validate_fault(&format!("faults[{i}]"), f, None)?;
        }
        crate::accounts::validate(&self.accounts).map_err(|(at, m)| invalid(&at, m))?;
        let mut seen_apps = HashSet::new();
        let mut seen_orders = HashSet::new();
        for (a, app) in self.apps.iter().enumerate() {
            let at = format!("apps[{a}]");
            validate_app_identity(&at, app)?;
            let key = (
                app.provider,
                app.app_id.clone(),
                app.organization_id.clone(),
                app.app_name.clone(),
            );
            let key = match app.provider {
                Provider::Edas | Provider::Sae => (key.0, key.1, None, None),
                Provider::Appstack => key,
            };
            if !seen_apps.insert(key) {
                return Err(invalid(
                    &at,
                    format!("app {} ({}) appears twice", app.label(), app.provider),
                ));
            }
            for (i, f) in app.faults.iter().enumerate() {
                validate_fault(&format!("{at}.faults[{i}]"), f, Some(app.provider))?;
            }
            for (o, order) in app.change_orders.iter().enumerate() {
                let ot = format!("{at}.changeOrders[{o}]");
                if order.id.trim().is_empty() {
                    return Err(invalid(&format!("{ot}.id"), "must not be empty"));
                }
                // Describe calls name the order alone, so ids are unique per provider.
                if !seen_orders.insert((app.provider, order.id.clone())) {
                    return Err(invalid(
                        &format!("{ot}.id"),
                        format!(
                            "change order {:?} appears twice for provider {}",
                            order.id, app.provider
                        ),
                    ));
                }
                validate_order(&ot, app.provider, order)?;
            }
        }
        Ok(())
    }
}

fn invalid(path: &str, msg: impl fmt::Display) -> ScenarioError {
    ScenarioError::Invalid(format!("{path}: {msg}"))
}

fn validate_app_identity(at: &str, app: &App) -> Result<(), ScenarioError> {
    let nonempty = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
    match app.provider {
        Provider::Edas | Provider::Sae => {
            if !nonempty(&app.app_id) {
                return Err(invalid(
                    &format!("{at}.appId"),
                    format!("required for provider {}", app.provider),
                ));
            }
            if app.organization_id.is_some() {
                return Err(invalid(
                    &format!("{at}.organizationId"),
                    format!("applies only to provider appstack, not {}", app.provider),
                ));
            }
        }
        Provider::Appstack => {
            if !nonempty(&app.organization_id) {
                return Err(invalid(
                    &format!("{at}.organizationId"),
                    "required for provider appstack",
                ));
            }
            if !nonempty(&app.app_name) {
                return Err(invalid(
                    &format!("{at}.appName"),
                    "required for provider appstack",
                ));
            }
            if app.app_id.is_some() {
                return Err(invalid(
                    &format!("{at}.appId"),
                    "does not apply to provider appstack: use organizationId and appName",
                ));
            }
            if app.namespace_id.is_some() {
                return Err(invalid(
                    &format!("{at}.namespaceId"),
                    "applies only to provider sae",
                ));
            }
        }
    }
    if app.provider != Provider::Edas && app.edas_wrappers.is_some() {
        return Err(invalid(
            &format!("{at}.edasWrappers"),
            "applies only to provider edas",
        ));
    }
    Ok(())
}

fn validate_fault(at: &str, f: &Fault, provider: Option<Provider>) -> Result<(), ScenarioError> {
    if let Some(rate) = f.rate
        && !(0.0..=1.0).contains(&rate)
    {
        return Err(invalid(&format!("{at}.rate"), "must be between 0 and 1"));
    }
    if f.rate.is_some() && f.every_nth.is_some() {
        return Err(invalid(at, "set either rate or everyNth, not both"));
    }
    if f.every_nth == Some(0) {
        return Err(invalid(&format!("{at}.everyNth"), "must be at least 1"));
    }
    if provider.is_some() && !f.providers.is_empty() {
        return Err(invalid(
            &format!("{at}.providers"),
            "only global faults filter by provider",
        ));
    }
    for (i, action) in f.actions.iter().enumerate() {
        let known = ACTIONS
            .iter()
            .any(|(p, a)| a == action && provider.is_none_or(|want| want == *p));
        if !known {
            let names: Vec<&str> = ACTIONS
                .iter()
                .filter(|(p, _)| provider.is_none_or(|want| want == *p))
                .map(|(_, a)| *a)
                .collect();
            return Err(invalid(
                &format!("{at}.actions[{i}]"),
                format!("unknown action {action:?} (known: {})", names.join(", ")),
            ));
        }
    }
    if let Some(d) = f.duration
        && d.0.is_negative()
    {
        return Err(invalid(&format!("{at}.duration"), "must not be negative"));
    }
    if let Some(d) = f.duration
        && d.0 > MAX_FAULT_DURATION
    {
        return Err(invalid(&format!("{at}.duration"), "must be at most 24h"));
    }
    Ok(())
}

fn validate_order(at: &str, provider: Provider, order: &Order) -> Result<(), ScenarioError> {
    let batches = match provider {
        Provider::Edas | Provider::Sae => {
            if !order.env_names.is_empty() {
                return Err(invalid(
                    &format!("{at}.envNames"),
                    "applies only to provider appstack",
                ));
            }
            if order.origin.is_some() {
                return Err(invalid(
                    &format!("{at}.origin"),
                    "applies only to provider appstack",
                ));
            }
            if order.version.is_some() {
                return Err(invalid(
                    &format!("{at}.version"),
                    "applies only to provider appstack",
                ));
            }
            let n = order.batch_count.unwrap_or(1);
            if n == 0 || n > MAX_BATCHES {
                return Err(invalid(
                    &format!("{at}.batchCount"),
                    format!("must be between 1 and {MAX_BATCHES}"),
                ));
            }
            n
        }
        Provider::Appstack => {
            if order.batch_count.is_some() {
                return Err(invalid(
                    &format!("{at}.batchCount"),
                    "does not apply to provider appstack: one job per entry of envNames",
                ));
            }
            if order.sub_status.is_some() || order.timeline.iter().any(|s| s.sub_status.is_some()) {
                return Err(invalid(
                    &format!("{at}.subStatus"),
                    "applies only to provider sae",
                ));
            }
            order.env_names.len().max(1) as u32
        }
    };
    if provider == Provider::Appstack && order.env_names.len() > MAX_BATCHES as usize {
        return Err(invalid(
            &format!("{at}.envNames"),
            format!("must have at most {MAX_BATCHES} entries"),
        ));
    }
    if let Some(TimeSpec::Relative(d)) = order.created_at
        // Not `abs()`: that overflows for the most negative duration.
        && (d > MAX_OFFSET || d < -MAX_OFFSET)
    {
        return Err(invalid(
            &format!("{at}.createdAt"),
            "must be within 100 years of the start",
        ));
    }
    validate_change(at, provider, batches, &order.initial())?;
    let mut last: Option<SignedDuration> = None;
    for (i, step) in order.timeline.iter().enumerate() {
        let st = format!("{at}.timeline[{i}]");
        if step.after.0.is_negative() {
            return Err(invalid(&format!("{st}.after"), "must not be negative"));
        }
        if step.after.0 > MAX_OFFSET {
            return Err(invalid(
                &format!("{st}.after"),
                "must be within 100 years of the start",
            ));
        }
        if let Some(prev) = last
            && step.after.0 < prev
        {
            return Err(invalid(&format!("{st}.after"), "steps must be in time order"));
        }
        last = Some(step.after.0);
        validate_change(&st, provider, batches, &step.change())?;
    }
    Ok(())
}

fn validate_change(at: &str, provider: Provider, batches: u32, c: &StateChange) -> Result<(), ScenarioError> {
    let check_value = |path: String, v: &StatusValue| match (provider, v) {
        (Provider::Edas | Provider::Sae, StatusValue::Text(t)) => Err(invalid(
            &path,
            format!("provider {provider} uses numeric statuses, got {t:?}"),
        )),
        (Provider::Appstack, StatusValue::Code(c)) => Err(invalid(
            &path,
            format!("provider appstack uses state words such as RUNNING, got {c}"),
        )),
        _ => Ok(()),
    };
    if let Some(s) = &c.status {
        check_value(format!("{at}.status"), s)?;
    }
    if let Some(b) = c.current_batch
        && (b == 0 || b > batches)
    {
        return Err(invalid(
            &format!("{at}.currentBatch"),
            format!("must be between 1 and {batches} (the number of batches)"),
        ));
    }
    if let Some(states) = &c.batch_states {
        if states.len() > batches as usize {
            return Err(invalid(
                &format!("{at}.batchStates"),
                format!("has {} entries but the order has {batches} batches", states.len()),
            ));
        }
        for (i, s) in states.iter().enumerate() {
            check_value(format!("{at}.batchStates[{i}]"), s)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
