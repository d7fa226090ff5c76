//! Prometheus metrics of the controller, exposed by the admin server at `/metrics`.
//!
//! Every label value is a `&'static str` from a closed set (providers, phases, operation names,
//! error kinds): the type system then keeps per-object names (orders, apps) out of the label
//! space, which would otherwise grow without bound. The one deliberate exception is the
//! per-watch gauges (`watch_ready`, `watch_ready_reason`, `watch_latest_order_phase`,
//! `watch_awaiting_input_since_seconds`), labelled with the watch's namespace and name: watches
//! are few and written by people, their series are removed when the watch is deleted, and "which
//! watch is failing" is the question a dashboard must answer. Orders are not: an order's own
//! waiting time is shown per watch (its longest-waiting order), never per order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::crd::Phase;
use changeorder_cloud::model::Provider;

/// Prefix of every metric name.
pub const PREFIX: &str = "changeorder";

/// Reconciles are API-server round trips plus at most one cloud poll: milliseconds to a minute.
const RECONCILE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];
/// Change orders run from half a minute (a restart) to hours (many manual batches).
const ORDER_BUCKETS: [f64; 11] = [
    30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0,
];
/// A person confirming a batch may take seconds; an approval over a weekend, days.
const AWAIT_BUCKETS: [f64; 10] = [
    30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, 259200.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    provider: &'static str,
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderResultLabels {
    provider: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    action: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderPhaseLabels {
    provider: &'static str,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepResultLabels {
    step: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    ready: &'static str,
}

/// One watch: its namespace and name (owned strings: see the module comment).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchLabels {
    namespace: String,
    name: String,
}

/// One ChangeOrderWatchSet.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchSetLabels {
    namespace: String,
    watchset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchPhaseLabels {
    namespace: String,
    name: String,
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatchReasonLabels {
    namespace: String,
    name: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// What the per-watch gauges show of one watch, as read from the watch cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchState {
    pub namespace: String,
    pub name: String,
    /// The watch's `Ready` condition is True.
    pub ready: bool,
    /// Reason of the `Ready` condition, from the closed set of `watch_status::reason` (see
    /// `watch_status::reason_label`), so it can be a label.
    pub ready_reason: &'static str,
    /// Phase of `status.latestOrder`; `None` while the watch has no order with a phase.
    pub latest_phase: Option<Phase>,
    /// Unix seconds since which the watch's longest-waiting order has waited for a person
    /// (its `AwaitingInput` condition's transition time); `None` while no order waits.
    pub awaiting_input_since: Option<i64>,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn order_histogram() -> Histogram {
    Histogram::new(ORDER_BUCKETS)
}

fn await_histogram() -> Histogram {
    Histogram::new(AWAIT_BUCKETS)
}

struct Inner {
    registry: Registry,
    cloud_calls: Family<CallLabels, Counter>,
    reconciles: Family<ResultLabels, Counter>,
    reconcile_duration: Histogram,
    polls: Family<ProviderResultLabels, Counter>,
    orders: Family<PhaseLabels, Gauge>,
    order_duration: HistogramFamily<ProviderPhaseLabels>,
    awaiting_input: HistogramFamily<ProviderLabels>,
    watches: Family<ReadyLabels, Gauge>,
    leader: Gauge,
    order_write_failures: Family<ProviderResultLabels, Counter>,
    actions: Family<ActionLabels, Counter>,
    watch_ready: Family<WatchLabels, Gauge>,
    watch_latest_phase: Family<WatchPhaseLabels, Gauge>,
    watch_ready_reason: Family<WatchReasonLabels, Gauge>,
    watch_awaiting_since: Family<WatchLabels, Gauge>,
    identity_calls: Family<StepResultLabels, Counter>,
    receiver_requests: Family<ResultLabels, Counter>,
    watchset_apps: Family<WatchSetLabels, Gauge>,
    /// (namespace, name) of every watch that has per-watch series, with the reason its
    /// `watch_ready_reason` series carries, to remove those of deleted watches and a reason's
    /// series when it changes. The lock also serialises whole updates, so a scrape between two
    /// concurrent updates never sees one watch half-written.
    watch_series: Mutex<HashMap<(String, String), &'static str>>,
}

/// The controller's metrics. Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);

        let cloud_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "cloud_calls",
            "Calls to a cloud API, by provider, operation and result (ok or an error kind)",
            cloud_calls.clone(),
        );
        let reconciles = Family::<ResultLabels, Counter>::default();
        registry.register(
            "reconcile",
            "Reconciles of ChangeOrderWatches, by result (ok or an error kind)",
            reconciles.clone(),
        );
        let reconcile_duration = Histogram::new(RECONCILE_BUCKETS);
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile of a ChangeOrderWatch took",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let polls = Family::<ProviderResultLabels, Counter>::default();
        registry.register(
            "polls",
            "Polls of a provider for a watch's change orders, by result (ok or an error kind)",
            polls.clone(),
        );
        let order_write_failures = Family::<ProviderResultLabels, Counter>::default();
        registry.register(
            "order_write_failures",
            "ChangeOrders that could not be written while the rest of the poll went on, by cause",
            order_write_failures.clone(),
        );
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "actions",
            "Finished ChangeOrderActions by action and result (the status reason: Confirmed, \
             Aborted, ActionsDisabled, GuardFailed, Forbidden, OutcomeUnknown, NotSent, ...)",
            actions.clone(),
        );
        let orders = Family::<PhaseLabels, Gauge>::default();
        registry.register("orders", "ChangeOrder objects by phase", orders.clone());
        let order_duration: HistogramFamily<ProviderPhaseLabels> =
            Family::new_with_constructor(order_histogram);
        registry.register_with_unit(
            "change_order_duration",
            "Time from creation to finish of change orders that reached a terminal phase",
            Unit::Seconds,
            order_duration.clone(),
        );
        let awaiting_input: HistogramFamily<ProviderLabels> = Family::new_with_constructor(await_histogram);
        registry.register_with_unit(
            "awaiting_input",
            "Time a change order waited for a person (batch confirmation, approval, resume)",
            Unit::Seconds,
            awaiting_input.clone(),
        );
        let watches = Family::<ReadyLabels, Gauge>::default();
        registry.register(
            "watches",
            "ChangeOrderWatch objects by whether their last poll worked",
            watches.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader-election Lease (or runs without election)",
            leader.clone(),
        );

        let watch_ready = Family::<WatchLabels, Gauge>::default();
        registry.register(
            "watch_ready",
            "1 while the ChangeOrderWatch's Ready condition is True (its last poll worked), else 0",
            watch_ready.clone(),
        );
        let watch_latest_phase = Family::<WatchPhaseLabels, Gauge>::default();
        registry.register(
            "watch_latest_order_phase",
            "Phase of the watch's newest ChangeOrder (status.latestOrder): 1 for the current \
             phase, 0 for the others; no series while the watch has no order",
            watch_latest_phase.clone(),
        );
        let watch_ready_reason = Family::<WatchReasonLabels, Gauge>::default();
        registry.register(
            "watch_ready_reason",
            "Always 1, one series per ChangeOrderWatch: the reason of its Ready condition \
             (Polled, InvalidCredentials, Throttled, ProviderError, Suspended, ...)",
            watch_ready_reason.clone(),
        );
        let watch_awaiting_since = Family::<WatchLabels, Gauge>::default();
        registry.register_with_unit(
            "watch_awaiting_input_since",
            "Unix time since which the watch's longest-waiting ChangeOrder has waited for a \
             person (confirmation, approval, resume); no series while none waits",
            Unit::Seconds,
            watch_awaiting_since.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1; the version label is the running operator's",
            build_info.clone(),
        );
        // Set once: the version cannot change while the process runs.
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);

        let identity_calls = Family::<StepResultLabels, Counter>::default();
        registry.register(
            "identity_calls",
            "Calls made to obtain a watch's ServiceAccount credentials, by step (token_request, sts) and result (ok or error)",
            identity_calls.clone(),
        );

        let receiver_requests = Family::<ResultLabels, Counter>::default();
        registry.register(
            "receiver_requests",
            "Requests to the push receiver, by result (accepted, unauthorized, not_found, too_large, timeout, unavailable)",
            receiver_requests.clone(),
        );

        let watchset_apps = Family::<WatchSetLabels, Gauge>::default();
        registry.register(
            "watchset_apps",
            "Applications a ChangeOrderWatchSet's last successful discovery found",
            watchset_apps.clone(),
        );

        let metrics = Self {
            inner: Arc::new(Inner {
                watchset_apps,
                identity_calls,
                receiver_requests,
                registry,
                cloud_calls,
                reconciles,
                reconcile_duration,
                polls,
                orders,
                order_duration,
                awaiting_input,
                watches,
                leader,
                order_write_failures,
                actions,
                watch_ready,
                watch_latest_phase,
                watch_ready_reason,
                watch_awaiting_since,
                watch_series: Mutex::default(),
            }),
        };
        // Gauges start at an explicit zero so dashboards see every series from the first scrape.
        metrics.set_orders_by_phase(&[]);
        metrics.set_watches(0, 0);
        metrics
    }

    /// One cloud API call; `result` is `ok` or the error's short kind (`Throttled`, ...).
    pub fn cloud_call(&self, provider: Provider, operation: &'static str, result: &'static str) {
        self.inner
            .cloud_calls
            .get_or_create(&CallLabels {
                provider: provider.as_str(),
                operation,
                result,
            })
            .inc();
    }

    /// One call made for keyless credentials (a TokenRequest, an STS exchange, a metadata
    /// fetch); `result` is `ok` or `error`.
    pub fn identity_call(&self, step: &'static str, result: &'static str) {
        self.inner
            .identity_calls
            .get_or_create(&StepResultLabels { step, result })
            .inc();
    }

    /// One finished reconcile and how long it took.
    pub fn reconciled(&self, result: &'static str, took: Duration) {
        self.inner
            .reconciles
            .get_or_create(&ResultLabels { result })
            .inc();
        self.inner.reconcile_duration.observe(took.as_secs_f64());
    }

    /// One poll of a provider for a watch (which may have made several cloud calls).
    pub fn poll(&self, provider: Provider, result: &'static str) {
        self.inner
            .polls
            .get_or_create(&ProviderResultLabels {
                provider: provider.as_str(),
                result,
            })
            .inc();
    }

    /// One order of a poll could not be written (`result` is the cause's short name).
    pub fn order_write_failed(&self, provider: Provider, result: &'static str) {
        self.inner
            .order_write_failures
            .get_or_create(&ProviderResultLabels {
                provider: provider.as_str(),
                result,
            })
            .inc();
    }

    /// One request to the push receiver; `result` is from the closed set in its help text.
    pub fn receiver_request(&self, result: &'static str) {
        self.inner
            .receiver_requests
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// A ChangeOrderAction finished; `result` is its status reason (a closed set).
    pub fn action_finished(&self, action: &'static str, result: &'static str) {
        self.inner
            .actions
            .get_or_create(&ActionLabels { action, result })
            .inc();
    }

    /// An order reached a terminal phase `took` after it was created. Call once per order.
    pub fn order_finished(&self, provider: Provider, phase: Phase, took: Duration) {
        self.inner
            .order_duration
            .get_or_create(&ProviderPhaseLabels {
                provider: provider.as_str(),
                phase: phase.as_str(),
            })
            .observe(took.as_secs_f64());
    }

    /// An order left a phase awaiting a person after `waited`.
    pub fn awaited_input(&self, provider: Provider, waited: Duration) {
        self.inner
            .awaiting_input
            .get_or_create(&ProviderLabels {
                provider: provider.as_str(),
            })
            .observe(waited.as_secs_f64());
    }

    /// Replaces the per-phase order counts with a full count. Phases missing from `counts` are
    /// set to zero, so an order leaving a phase never leaves a stale series behind.
    pub fn set_orders_by_phase(&self, counts: &[(Phase, u64)]) {
        for phase in Phase::ALL {
            let n: u64 = counts.iter().filter(|(p, _)| *p == phase).map(|(_, n)| *n).sum();
            self.inner
                .orders
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str(),
                })
                .set(saturating_i64(n));
        }
    }

    /// The apps a set found (`None`: no discovery has worked yet, or the set is gone: no series).
    pub fn set_watchset_apps(&self, namespace: &str, watchset: &str, apps: Option<usize>) {
        let labels = WatchSetLabels {
            namespace: namespace.to_string(),
            watchset: watchset.to_string(),
        };
        match apps {
            Some(n) => {
                self.inner
                    .watchset_apps
                    .get_or_create(&labels)
                    .set(saturating_i64(n as u64));
            }
            None => {
                self.inner.watchset_apps.remove(&labels);
            }
        }
    }

    /// Replaces the counts of watches whose last poll worked (`ready`) or did not.
    pub fn set_watches(&self, ready: u64, not_ready: u64) {
        for (label, n) in [("true", ready), ("false", not_ready)] {
            self.inner
                .watches
                .get_or_create(&ReadyLabels { ready: label })
                .set(saturating_i64(n));
        }
    }

    /// Replaces the per-watch series of the watches in `scope` (a namespace, or `None` for all)
    /// with `states`: series of watches in the scope that are not in `states` (deleted) are
    /// removed. Each controller serves one scope and knows only its own watches, so it must not
    /// remove another scope's series.
    pub fn set_watch_states(&self, scope: Option<&str>, states: &[WatchState]) {
        let mut series = self.inner.watch_series.lock().unwrap_or_else(|p| p.into_inner());
        let mut live = HashMap::new();
        for w in states {
            let key = WatchLabels {
                namespace: w.namespace.clone(),
                name: w.name.clone(),
            };
            self.inner.watch_ready.get_or_create(&key).set(i64::from(w.ready));
            // One series per watch: the old reason's goes when the reason changes.
            let id = (w.namespace.clone(), w.name.clone());
            if let Some(old) = series.get(&id).copied()
                && old != w.ready_reason
            {
                self.inner
                    .watch_ready_reason
                    .remove(&self.reason_labels(&key, old));
            }
            self.inner
                .watch_ready_reason
                .get_or_create(&self.reason_labels(&key, w.ready_reason))
                .set(1);
            match w.awaiting_input_since {
                Some(since) => {
                    self.inner.watch_awaiting_since.get_or_create(&key).set(since);
                }
                None => {
                    self.inner.watch_awaiting_since.remove(&key);
                }
            }
            match w.latest_phase {
                // Every phase, 0 or 1, so `== 1` selects the current one and a phase change
                // never leaves the old phase at 1.
                Some(current) => {
                    for phase in Phase::ALL {
                        self.inner
                            .watch_latest_phase
                            .get_or_create(&self.phase_labels(&key, phase))
                            .set(i64::from(phase == current));
                    }
                }
                None => self.remove_phases(&key),
            }
            live.insert(id, w.ready_reason);
        }
        let gone: Vec<((String, String), &'static str)> = series
            .iter()
            .filter(|((ns, _), _)| scope.is_none_or(|s| s == ns))
            .filter(|(k, _)| !live.contains_key(*k))
            .map(|(k, r)| (k.clone(), *r))
            .collect();
        for ((namespace, name), reason) in gone {
            let key = WatchLabels { namespace, name };
            self.inner.watch_ready.remove(&key);
            self.inner
                .watch_ready_reason
                .remove(&self.reason_labels(&key, reason));
            self.inner.watch_awaiting_since.remove(&key);
            self.remove_phases(&key);
            series.remove(&(key.namespace, key.name));
        }
        series.extend(live);
    }

    fn reason_labels(&self, watch: &WatchLabels, reason: &'static str) -> WatchReasonLabels {
        WatchReasonLabels {
            namespace: watch.namespace.clone(),
            name: watch.name.clone(),
            reason,
        }
    }

    fn phase_labels(&self, watch: &WatchLabels, phase: Phase) -> WatchPhaseLabels {
        WatchPhaseLabels {
            namespace: watch.namespace.clone(),
            name: watch.name.clone(),
            phase: phase.as_str(),
        }
    }

    fn remove_phases(&self, watch: &WatchLabels) {
        for phase in Phase::ALL {
            self.inner
                .watch_latest_phase
                .remove(&self.phase_labels(watch, phase));
        }
    }

    /// Whether this replica is the one doing the work.
    pub fn set_leader(&self, leading: bool) {
        self.inner.leader.set(i64::from(leading));
    }

    /// All metrics in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric type,
        // and a partial scrape is better than none.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
