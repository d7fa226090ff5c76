//! Injected faults: throttling, server errors, latency and broken JSON, at a rate or every Nth
//! matching call. A seeded generator keeps rate-based runs repeatable.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::scenario::{Fault, FaultKind, Scenario};
use changeorder_cloud::model::Provider;

/// Default `TimeLeft` for throttling and delay for latency.
const DEFAULT_FAULT_DURATION: Duration = Duration::from_secs(1);

struct Rule {
    fault: Fault,
    /// Requests the rule matched (for `everyNth`).
    matched: AtomicU64,
    /// Times it fired (for `limit`).
    fired: AtomicU64,
}

impl Rule {
    fn new(fault: &Fault) -> Rule {
        Rule {
            fault: fault.clone(),
            matched: AtomicU64::new(0),
            fired: AtomicU64::new(0),
        }
    }
}

/// What a request suffers; several kinds can apply (latency plus an error).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub delay: Option<Duration>,
    /// The error or corruption to apply, with its duration knob.
    pub error: Option<(FaultKind, Duration)>,
}

/// All fault rules of a scenario with their counters.
pub struct Faults {
    global: Vec<Rule>,
    /// Per app, indexed like `Scenario::apps`.
    per_app: Vec<Vec<Rule>>,
    rng: Mutex<StdRng>,
}

impl Faults {
    pub fn new(s: &Scenario) -> Faults {
        Faults {
            global: s.faults.iter().map(Rule::new).collect(),
            per_app: s
                .apps
                .iter()
                .map(|a| a.faults.iter().map(Rule::new).collect())
                .collect(),
            rng: Mutex::new(StdRng::seed_from_u64(s.seed)),
        }
    }

    /// Decide the faults for one request. `app` is the index of the app it concerns, if known.
    pub fn decide(&self, provider: Provider, action: &str, app: Option<usize>) -> Decision {
        let mut d = Decision::default();
        let app_rules = app
            .and_then(|i| self.per_app.get(i))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for rule in self.global.iter().chain(app_rules) {
            let f = &rule.fault;
            if !f.providers.is_empty() && !f.providers.contains(&provider) {
                continue;
            }
            if !f.actions.is_empty() && !f.actions.iter().any(|a| a == action) {
                continue;
            }
            let n = rule.matched.fetch_add(1, Ordering::SeqCst) + 1;
            let hit = match (f.every_nth, f.rate) {
                (Some(every), _) => n.is_multiple_of(every),
                (None, Some(rate)) => self.roll(rate),
                (None, None) => true,
            };
            if !hit {
                continue;
            }
            if let Some(limit) = f.limit {
                // Count the firing first so concurrent requests cannot exceed the limit.
                if rule.fired.fetch_add(1, Ordering::SeqCst) >= limit {
                    continue;
                }
            }
            let dur = f
                .duration
                .and_then(|d| d.0.try_into().ok())
                .unwrap_or(DEFAULT_FAULT_DURATION);
            match f.kind {
                // Saturating: durations come from the scenario file.
                FaultKind::Latency => d.delay = Some(d.delay.unwrap_or_default().saturating_add(dur)),
                kind => {
                    // The first matching error rule wins; later ones do not stack.
                    d.error.get_or_insert((kind, dur));
                }
            }
        }
        d
    }

    fn roll(&self, rate: f64) -> bool {
        match self.rng.lock() {
            Ok(mut rng) => rng.random_bool(rate.clamp(0.0, 1.0)),
            // A panic elsewhere poisoned the lock; a fault decision is not worth failing for.
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(yaml: &str) -> Faults {
        Faults::new(&Scenario::from_yaml(yaml).expect("scenario"))
    }

    #[test]
    fn every_nth_and_limit() {
        let f = faults("faults:\n- kind: throttling\n  everyNth: 3\n  limit: 2\napps: []\n");
        let hits: Vec<bool> = (0..12)
            .map(|_| f.decide(Provider::Sae, "ListChangeOrders", None).error.is_some())
            .collect();
        assert_eq!(hits.iter().filter(|h| **h).count(), 2);
        assert!(hits[2] && hits[5] && !hits[8]);
    }

    #[test]
    fn rate_is_seeded_and_roughly_right() {
        let yaml = "seed: 7\nfaults:\n- kind: internalError\n  rate: 0.25\napps: []\n";
        let run = || -> Vec<bool> {
            let f = faults(yaml);
            (0..400)
                .map(|_| {
                    f.decide(Provider::Edas, "GetChangeOrderInfo", None)
                        .error
                        .is_some()
                })
                .collect()
        };
        let a = run();
        assert_eq!(a, run(), "same seed, same decisions");
        let n = a.iter().filter(|h| **h).count();
        assert!((60..140).contains(&n), "{n} of 400");
    }

    /// Latencies of several rules add up; even durations past what validation allows (a
    /// scenario built in code) must not overflow that sum.
    #[test]
    fn latency_sum_saturates() {
        let mut s =
            Scenario::from_yaml("faults:\n- kind: latency\n- kind: latency\n- kind: latency\napps: []\n")
                .expect("scenario");
        for f in &mut s.faults {
            f.duration = Some(crate::scenario::Offset2(jiff::SignedDuration::MAX));
        }
        let d = Faults::new(&s).decide(Provider::Edas, "GetChangeOrderInfo", None);
        assert_eq!(d.delay, Some(Duration::MAX));
    }

    #[test]
    fn filters_and_app_rules() {
        let f = faults(
            "faults:\n- kind: latency\n  duration: 250ms\n  providers: [edas]\n  actions: [GetChangeOrderInfo]\napps:\n- provider: sae\n  appId: a\n  faults:\n  - kind: serviceUnavailable\n",
        );
        let d = f.decide(Provider::Edas, "GetChangeOrderInfo", None);
        assert_eq!(d.delay, Some(Duration::from_millis(250)));
        assert!(d.error.is_none());
        assert_eq!(
            f.decide(Provider::Edas, "ListRecentChangeOrder", None),
            Decision::default()
        );
        let d = f.decide(Provider::Sae, "ListChangeOrders", Some(0));
        assert_eq!(d.error.map(|e| e.0), Some(FaultKind::ServiceUnavailable));
        assert_eq!(
            f.decide(Provider::Sae, "ListChangeOrders", None),
            Decision::default()
        );
    }
}
