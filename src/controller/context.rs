//! Shared state of the controller: clients, caches, settings and per-watch memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use tokio::time::Instant;

use crate::controller::cache::OrderCache;
use crate::controller::identity::{Identities, KeylessSettings};
use crate::controller::metrics::Metrics;
use crate::crd::ChangeOrderWatch;
use changeorder_cloud::client::CloudClient;
use changeorder_cloud::credentials::Credentials;
use changeorder_cloud::model::Provider;
use changeorder_cloud::policy::EndpointPolicy;

/// Operator-wide defaults, from the `run` flags.
#[derive(Clone, Debug)]
pub struct Settings {
    pub default_interval: Duration,
    pub default_in_flight_interval: Duration,
    pub default_max_finished: u32,
    pub max_error_backoff: Duration,
    pub status_heartbeat: Duration,
    /// Cloud endpoints watches may use (`--allowed-endpoints`); check before any call.
    pub allowed_endpoints: EndpointPolicy,
    /// ServiceAccount (RRSA) and operator-identity credentials.
    pub keyless: KeylessSettings,
    /// ChangeOrderActions: the operator-level switch and retention (`--enable-actions`).
    pub actions: ActionSettings,
    /// `--enable-watch-sets`: run the ChangeOrderWatchSet controller (it creates and deletes
    /// watches, which the operator's RBAC then must allow).
    pub watch_sets: bool,
}

/// The operator-level switch and retention of finished requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionSettings {
    /// `--enable-actions`: without it every request is refused.
    pub enabled: bool,
    /// Finished requests are deleted this long after they finished.
    pub ttl: Duration,
}

impl Default for ActionSettings {
    fn default() -> Self {
        ActionSettings {
            enabled: false,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

impl Settings {
    pub fn from_args(args: &crate::controller::RunArgs) -> Self {
        Settings {
            default_interval: args.default_interval,
            default_in_flight_interval: args.default_in_flight_interval,
            default_max_finished: args.default_max_finished,
            max_error_backoff: args.max_error_backoff,
            status_heartbeat: args.status_heartbeat,
            allowed_endpoints: args.allowed_endpoints.clone(),
            keyless: KeylessSettings::from_args(args),
            actions: ActionSettings {
                enabled: args.enable_actions,
                ttl: args.action_ttl,
            },
            watch_sets: args.enable_watch_sets,
        }
    }
}

/// What this process remembers about one watch between reconciles (lost on restart, which is
/// why the schedule also reads the status).
#[derive(Clone, Default)]
pub struct Memory {
    pub last_poll: Option<Instant>,
    /// When a poll last listed the app's orders (discovery); polls in between only describe.
    pub last_list: Option<Instant>,
    pub failures: u32,
    /// The last poll failed on credentials; wait for the Secret or the spec to change.
    pub credentials_rejected: bool,
    /// resourceVersion of the Secret the last poll used (`None`: the Secret was absent).
    pub secret_version: Option<Option<String>>,
    /// Parsed credentials with the Secret's resourceVersion and the provider they were read
    /// for, to skip re-reading the Secret (a provider change reads it again: the keys differ).
    pub credentials: Option<(String, Provider, Credentials)>,
    /// Polls in a row each order went without a useful describe (see `plan::MAX_DESCRIBE_TRIES`).
    pub describe_misses: HashMap<String, u32>,
    /// Wait advised by the cloud (rate-limit headers) before the next call.
    pub retry_after: Option<Duration>,
    /// The account's round at the last poll: how often its call budget lets every watch with
    /// orders in flight poll.
    pub round: Duration,
    /// How often the account's budget lets this watch list (its interval, or longer for an
    /// over-large fleet); zero before the first poll.
    pub list_every: Duration,
    /// The last list came from the SAE namespace's shared list: this watch's lists cost the
    /// account nothing of their own.
    pub lists_shared: bool,
}

pub struct Context {
    pub client: kube::Client,
    pub cloud: CloudClient,
    pub orders: Arc<OrderCache>,
    pub watches: Store<ChangeOrderWatch>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    pub settings: Settings,
    pub metrics: Metrics,
    pub recorder: crate::controller::events::Events,
    /// The namespace this controller serves, or `None` for the whole cluster.
    pub scope: Option<String>,
    /// Keyless credentials, cached per ServiceAccount and role; one for the process.
    pub identities: Arc<Identities>,
    /// SAE namespace lists shared by the watches of one namespace and credential.
    pub namespace_lists: crate::controller::namespace_lists::NamespaceLists,
    synced: tokio::sync::watch::Receiver<bool>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    memory: Mutex<HashMap<String, Memory>>,
}

impl Context {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: kube::Client,
        cloud: CloudClient,
        orders: Arc<OrderCache>,
        watches: Store<ChangeOrderWatch>,
        secrets: Store<PartialObjectMeta<Secret>>,
        settings: Settings,
        metrics: Metrics,
        recorder: crate::controller::events::Events,
        scope: Option<String>,
        synced: tokio::sync::watch::Receiver<bool>,
        identities: Arc<Identities>,
    ) -> Arc<Self> {
        Arc::new(Context {
            identities,
            namespace_lists: Default::default(),
            client,
            cloud,
            orders,
            watches,
            secrets,
            settings,
            metrics,
            recorder,
            scope,
            synced,
            stopping: Arc::default(),
            memory: Mutex::default(),
        })
    }

    /// Wait until the order and Secret caches hold their first full list. (A `watch` channel
    /// rather than `Store::wait_until_ready`, which wakes only one of several waiters.)
    pub async fn caches_synced(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|s| *s).await;
    }

    /// Set once shutdown begins: no new poll starts after it.
    pub fn stopping_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.stopping.clone()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Memory of a watch, keyed by uid so a re-created watch starts fresh.
    pub fn memory(&self, uid: &str) -> Memory {
        self.lock().get(uid).cloned().unwrap_or_default()
    }

    pub fn remember(&self, uid: &str, memory: Memory) {
        self.lock().insert(uid.to_string(), memory);
    }

    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Drop what is remembered of watches that no longer exist (deleted watches are not
    /// reconciled again, and their memory holds parsed credentials).
    pub fn forget_all_but(&self, live: &std::collections::HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Memory>> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Controller errors. The short name is the metric label and the Event reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("ChangeOrderWatch has no namespace")]
    NoNamespace,
    #[error("ChangeOrderWatch has no uid yet")]
    NoUid,
    /// A bug: the reconcile panicked. The watch is retried; the other watches go on.
    #[error("reconcile panicked: {0}")]
    Panicked(String),
}

impl Error {
    pub fn name(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubeApiError",
            Error::NoNamespace => "NoNamespace",
            Error::NoUid => "NoUid",
            Error::Panicked(_) => "Panicked",
        }
    }
}
