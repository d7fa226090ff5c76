//! Call counters per product and action, so tests can assert how many cloud calls a poll made.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Counts of one action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionStats {
    /// Every request routed to the action, whatever its outcome.
    pub calls: u64,
    /// Outcomes: `OK` or the error code returned (e.g. `SignatureDoesNotMatch`).
    pub outcomes: BTreeMap<String, u64>,
}

/// A copy of the counters: product (`edas`, `sae`, `appstack`) → action → counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    pub total: u64,
    pub products: BTreeMap<String, BTreeMap<String, ActionStats>>,
    /// Requests no operation matched.
    pub unrouted: u64,
    /// Authenticated requests by scheme: `ACS3-HMAC-SHA256`, `acs` (ROA), `token` (AppStack).
    pub auth_schemes: BTreeMap<String, u64>,
    /// Describes answered (`DescribeChangeOrder`, `GetChangeOrderInfo`) by `ChangeOrderId`.
    #[serde(default)]
    pub described: BTreeMap<String, u64>,
    /// Ids in the order of their first describe (each once, so bounded by the orders).
    #[serde(default)]
    pub first_described: Vec<String>,
}

impl StatsSnapshot {
    /// Calls of one action (0 when never called).
    pub fn calls(&self, product: &str, action: &str) -> u64 {
        self.products
            .get(product)
            .and_then(|a| a.get(action))
            .map_or(0, |s| s.calls)
    }

    /// Calls of all actions of one product.
    pub fn product_calls(&self, product: &str) -> u64 {
        self.products
            .get(product)
            .map_or(0, |a| a.values().map(|s| s.calls).sum())
    }

    /// How often an action ended with an outcome (`OK` or an error code).
    pub fn outcome(&self, product: &str, action: &str, outcome: &str) -> u64 {
        self.products
            .get(product)
            .and_then(|a| a.get(action))
            .and_then(|s| s.outcomes.get(outcome))
            .copied()
            .unwrap_or(0)
    }
}

#[derive(Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    pub fn record(&self, product: &str, action: &str, outcome: &str) {
        // A poisoned lock only means another request panicked mid-update; counting on is fine.
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.total += 1;
        let a = s
            .products
            .entry(product.to_string())
            .or_default()
            .entry(action.to_string())
            .or_default();
        a.calls += 1;
        *a.outcomes.entry(outcome.to_string()).or_default() += 1;
    }

    /// A describe of order `id` was answered.
    pub fn record_describe(&self, id: &str) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let n = s.described.entry(id.to_string()).or_default();
        *n += 1;
        if *n == 1 {
            s.first_described.push(id.to_string());
        }
    }

    pub fn record_scheme(&self, scheme: &str) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *s.auth_schemes.entry(scheme.to_string()).or_default() += 1;
    }

    pub fn record_unrouted(&self) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        s.total += 1;
        s.unrouted += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn reset(&self) {
        *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = StatsSnapshot::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let s = Stats::default();
        s.record("sae", "ListChangeOrders", "OK");
        s.record("sae", "ListChangeOrders", "Throttling.User");
        s.record("sae", "DescribeChangeOrder", "OK");
        s.record_unrouted();
        let snap = s.snapshot();
        assert_eq!(snap.total, 4);
        assert_eq!(snap.calls("sae", "ListChangeOrders"), 2);
        assert_eq!(snap.product_calls("sae"), 3);
        assert_eq!(snap.outcome("sae", "ListChangeOrders", "Throttling.User"), 1);
        assert_eq!(snap.calls("edas", "GetChangeOrderInfo"), 0);
        s.reset();
        assert_eq!(s.snapshot(), StatsSnapshot::default());
    }
}
