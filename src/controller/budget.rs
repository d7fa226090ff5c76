//! A call budget per credential, shared by every watch that uses it: SAE allows 60 calls per
//! minute per account across all its APIs, so watches of one account must not each assume the
//! whole allowance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Token buckets keyed by a credential fingerprint (never the secret itself).
#[derive(Clone)]
pub struct Budget {
    per_minute: u32,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Budget {
    pub fn new(per_minute: u32) -> Self {
        Budget {
            per_minute: per_minute.max(1),
            buckets: Arc::default(),
        }
    }

    /// The burst a fresh or rested credential may spend at once.
    fn capacity(&self) -> f64 {
        // A tenth of the minute's allowance, at least one call: enough for one poll's list and a
        // few describes without front-loading a whole minute of calls.
        (f64::from(self.per_minute) / 10.0).max(1.0)
    }

    fn rate_per_sec(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    /// Take one call from the credential's budget, or say how long until one is available.
    pub fn try_take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let capacity = self.capacity();
        let rate = self.rate_per_sec();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// How long until `calls` calls fit the credential's budget (`None`: now). Takes nothing:
    /// a watch that would wait is scheduled for then instead of holding a reconcile slot.
    pub fn wait_for_calls(&self, key: &str, calls: u32) -> Option<Duration> {
        let now = Instant::now();
        let capacity = self.capacity();
        let rate = self.rate_per_sec();
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let tokens = buckets.get(key).map_or(capacity, |b| {
            let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
            (b.tokens + elapsed * rate).min(capacity)
        });
        // More calls than a burst holds can never be waited for at once: ask for a full bucket.
        let needed = f64::from(calls).min(capacity);
        (tokens < needed).then(|| Duration::from_secs_f64((needed - tokens) / rate))
    }

    /// Wait until the credential's budget allows one more call.
    pub async fn take(&self, key: &str) {
        while let Err(wait) = self.try_take(key) {
            tokio::time::sleep(wait).await;
        }
    }
}

impl crate::cloud::http::CallBudget for Budget {
    fn admit<'a>(
        &'a self,
        _provider: crate::cloud::model::Provider,
        creds: &'a crate::cloud::credentials::Credentials,
        host: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move { self.take(&key_for(creds, host)).await })
    }

    fn wait_for<'a>(
        &'a self,
        _provider: crate::cloud::model::Provider,
        creds: &'a crate::cloud::credentials::Credentials,
        host: &'a str,
        calls: u32,
    ) -> Option<Duration> {
        self.wait_for_calls(&key_for(creds, host), calls)
    }
}

/// The budget key: the credential's identity (its hash covers the secret) and the endpoint's
/// host, so neither a borrowed AccessKey id nor a tenant's own endpoint drains another's.
pub fn key_for(credentials: &crate::cloud::credentials::Credentials, host: &str) -> String {
    format!("{}@{host}", credentials.fingerprint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shared_per_credential_and_refills_at_the_rate() {
        let budget = Budget::new(60); // 1 per second, burst 6
        for _ in 0..6 {
            assert!(budget.try_take("a").is_ok());
        }
        let wait = budget.try_take("a").expect_err("burst spent");
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        // Another credential has its own budget.
        assert!(budget.try_take("b").is_ok());
        // A clone shares the same buckets (all watches use one Budget).
        assert!(budget.clone().try_take("a").is_err());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(budget.try_take("a").is_ok());
        assert!(budget.try_take("a").is_ok());
        assert!(budget.try_take("a").is_err());

        // 30 calls at 60/min after the burst take about 24 more seconds.
        let start = Instant::now();
        for _ in 0..30 {
            budget.take("c").await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(23) && took <= Duration::from_secs(25),
            "{took:?}"
        );
    }
}
