//! A call budget per credential, shared by every watch that uses it: SAE allows 60 calls per
//! minute per account across all its APIs, so watches of one account must not each assume the
//! whole allowance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use changeorder_cloud::http::{Claim, Demand};

/// A queued claim not taken up this long after it was due is dropped (its poller went away or
/// is held up): it no longer holds back the pollers queued after it.
const CLAIM_GRACE: Duration = Duration::from_secs(30);

/// A poller's recorded demand is forgotten this long after it last reported (a deleted watch).
const DEMAND_TTL: Duration = Duration::from_secs(600);

/// Share of the budget the round plans to use. A queue fed at its full rate grows without
/// bound at the first hiccup (a slow reply, a forced poll), and every poll it delays is an
/// observation late; a little slack keeps the queue short.
const PLANNED_USE: f64 = 0.95;

/// Token buckets keyed by a credential fingerprint (never the secret itself), with the queue of
/// pollers waiting for calls and what each poller needs per round.
#[derive(Clone)]
pub struct Budget {
    per_minute: u32,
    accounts: Arc<Mutex<HashMap<String, Account>>>,
}

struct Account {
    tokens: f64,
    updated: Instant,
    /// Pollers told to wait, by poller: their place in the queue, the calls they wait for and
    /// when they were told to come back.
    queue: HashMap<String, Queued>,
    next_place: u64,
    demand: HashMap<String, Recorded>,
}

struct Queued {
    place: u64,
    calls: f64,
    due: Instant,
}

struct Recorded {
    describes: u32,
    interval: Duration,
    seen: Instant,
}

impl Budget {
    pub fn new(per_minute: u32) -> Self {
        Budget {
            per_minute: per_minute.max(1),
            accounts: Arc::default(),
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

    /// The account under `key`, its tokens brought up to now.
    fn account<'m>(
        &self,
        accounts: &'m mut HashMap<String, Account>,
        key: &str,
        now: Instant,
    ) -> &'m mut Account {
        let capacity = self.capacity();
        let account = accounts.entry(key.to_string()).or_insert(Account {
            tokens: capacity,
            updated: now,
            queue: HashMap::new(),
            next_place: 0,
            demand: HashMap::new(),
        });
        let elapsed = now.saturating_duration_since(account.updated).as_secs_f64();
        account.tokens = (account.tokens + elapsed * self.rate_per_sec()).min(capacity);
        account.updated = now;
        account
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Account>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take one call from the credential's budget, or say how long until one is available.
    pub fn try_take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let rate = self.rate_per_sec();
        let mut accounts = self.lock();
        let account = self.account(&mut accounts, key, now);
        if account.tokens >= 1.0 {
            account.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - account.tokens) / rate))
        }
    }

    /// How long until `calls` calls fit the credential's budget for `claim`'s poller (`None`:
    /// now). Takes nothing: a poller that would wait is scheduled for then instead of holding
    /// a reconcile slot. Pollers of orders in flight are queued, each behind those told to wait
    /// before it, so none is starved by pollers needing fewer calls; other polls get only what
    /// the queue leaves.
    pub fn wait_for_calls(&self, key: &str, calls: u32, claim: &Claim<'_>) -> Option<Duration> {
        let now = Instant::now();
        let capacity = self.capacity();
        let rate = self.rate_per_sec();
        let mut accounts = self.lock();
        let account = self.account(&mut accounts, key, now);
        account.queue.retain(|_, q| q.due + CLAIM_GRACE > now);
        // More calls than a burst holds can never be waited for at once: ask for a full bucket.
        let needed = f64::from(calls).min(capacity);
        let own = account.queue.get(claim.poller).map(|q| q.place);
        let ahead: f64 = account
            .queue
            .iter()
            .filter(|(poller, q)| {
                poller.as_str() != claim.poller && (!claim.in_flight || own.is_none_or(|p| q.place < p))
            })
            .map(|(_, q)| q.calls)
            .sum();
        let available = account.tokens - ahead;
        if available >= needed {
            account.queue.remove(claim.poller);
            return None;
        }
        let wait = Duration::from_secs_f64((needed - available) / rate);
        if claim.in_flight {
            let place = own.unwrap_or_else(|| {
                account.next_place += 1;
                account.next_place
            });
            account.queue.insert(
                claim.poller.to_string(),
                Queued {
                    place,
                    calls: needed,
                    due: now + wait,
                },
            );
        }
        Some(wait)
    }

    /// Record `demand` and return the account's round: the time in which the budget serves one
    /// describe of every order in flight, after every poller's list at its interval. Polling
    /// those orders more often than this only queues.
    pub fn round(&self, key: &str, demand: &Demand<'_>) -> Duration {
        let now = Instant::now();
        let rate = self.rate_per_sec();
        let mut accounts = self.lock();
        let account = self.account(&mut accounts, key, now);
        account.demand.insert(
            demand.poller.to_string(),
            Recorded {
                describes: demand.describes,
                interval: demand.interval,
                seen: now,
            },
        );
        account
            .demand
            .retain(|_, d| now.saturating_duration_since(d.seen) < DEMAND_TTL);
        let (mut per_round, mut list_rate) = (0.0, 0.0);
        for d in account.demand.values() {
            per_round += f64::from(d.describes);
            if !d.interval.is_zero() {
                list_rate += 1.0 / d.interval.as_secs_f64();
            }
        }
        // Lists never take more than half: discovery waits before orders in flight do.
        let rate = rate * PLANNED_USE;
        let spare = (rate - list_rate).max(rate / 2.0);
        Duration::from_secs_f64(per_round / spare)
    }

    /// Wait until the credential's budget allows one more call.
    pub async fn take(&self, key: &str) {
        while let Err(wait) = self.try_take(key) {
            tokio::time::sleep(wait).await;
        }
    }
}

impl changeorder_cloud::http::CallBudget for Budget {
    fn admit<'a>(
        &'a self,
        _provider: changeorder_cloud::model::Provider,
        creds: &'a changeorder_cloud::credentials::Credentials,
        host: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move { self.take(&key_for(creds, host)).await })
    }

    fn wait_for<'a>(
        &'a self,
        _provider: changeorder_cloud::model::Provider,
        creds: &'a changeorder_cloud::credentials::Credentials,
        host: &'a str,
        calls: u32,
        claim: &Claim<'a>,
    ) -> Option<Duration> {
        self.wait_for_calls(&key_for(creds, host), calls, claim)
    }

    fn pace<'a>(
        &'a self,
        _provider: changeorder_cloud::model::Provider,
        creds: &'a changeorder_cloud::credentials::Credentials,
        host: &'a str,
        demand: &Demand<'a>,
    ) -> Duration {
        self.round(&key_for(creds, host), demand)
    }
}

/// The budget key: the credential's identity (its hash covers the secret) and the endpoint's
/// host, so neither a borrowed AccessKey id nor a tenant's own endpoint drains another's.
pub fn key_for(credentials: &changeorder_cloud::credentials::Credentials, host: &str) -> String {
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

    fn claim(poller: &str) -> Claim<'_> {
        Claim {
            poller,
            in_flight: true,
        }
    }

    /// Spend `calls` calls at once, as a poll does after its wait.
    fn spend(budget: &Budget, key: &str, calls: u32) {
        for _ in 0..calls {
            budget.try_take(key).expect("a call was available");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_poller_needing_more_calls_is_not_starved_by_smaller_ones() {
        let budget = Budget::new(60); // 1 per second, burst 6
        spend(&budget, "k", 6);
        // "big" needs 4 calls and is told to wait; "small" pollers needing 1 call keep coming.
        let wait_big = budget.wait_for_calls("k", 4, &claim("big")).expect("must wait");
        let mut big_polled_at = None;
        for second in 1..=20 {
            tokio::time::advance(Duration::from_secs(1)).await;
            if big_polled_at.is_none() && budget.wait_for_calls("k", 4, &claim("big")).is_none() {
                spend(&budget, "k", 4);
                big_polled_at = Some(second);
            }
            let small = format!("small-{}", second % 3);
            if budget.wait_for_calls("k", 1, &claim(&small)).is_none() {
                spend(&budget, "k", 1);
            }
        }
        // Without the queue, each token was taken by a small poller as soon as it came.
        let at = big_polled_at.expect("the large poller polled");
        assert!(
            Duration::from_secs(at) <= wait_big + Duration::from_secs(1),
            "polled after {at} s, told {wait_big:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_polls_take_only_what_the_queue_leaves() {
        let budget = Budget::new(60);
        spend(&budget, "k", 6);
        let first = budget.wait_for_calls("k", 3, &claim("busy")).expect("wait");
        tokio::time::advance(first).await;
        let idle = Claim {
            poller: "idle",
            in_flight: false,
        };
        // The tokens that came are claimed by the queued poller, not by the idle one.
        assert!(budget.wait_for_calls("k", 1, &idle).is_some());
        assert!(budget.wait_for_calls("k", 3, &claim("busy")).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_round_serves_every_order_in_flight_after_every_watchs_list() {
        let budget = Budget::new(60); // 1 call per second
        fn demand(poller: &str, describes: u32) -> Demand<'_> {
            Demand {
                poller,
                describes,
                interval: Duration::from_secs(120),
            }
        }
        // 10 idle watches listing every 2 minutes.
        for i in 0..10 {
            let _ = budget.round("k", &demand(&format!("idle-{i}"), 0));
        }
        // 20 watches with 1 order in flight each: 20 describes a round, and their lists.
        let mut round = Duration::ZERO;
        for i in 0..20 {
            round = budget.round("k", &demand(&format!("busy-{i}"), 1));
        }
        // 30 lists every 2 minutes take a quarter call a second; the describes get the rest.
        let want = 20.0 / (PLANNED_USE - 30.0 / 120.0);
        assert!((round.as_secs_f64() - want).abs() < 0.01, "{round:?}");
        // A watch whose orders finished no longer counts in the round.
        let after = budget.round("k", &demand("busy-0", 0));
        assert!(after < round, "{after:?}");
        // Lists never take more than half of the planned calls.
        for i in 0..100 {
            let _ = budget.round("k", &demand(&format!("more-idle-{i}"), 0));
        }
        let crowded = budget.round("k", &demand("busy-0", 1));
        let want = 20.0 / (PLANNED_USE / 2.0);
        assert!((crowded.as_secs_f64() - want).abs() < 0.01, "{crowded:?}");
        // Forgotten after a while without news (a deleted watch).
        tokio::time::advance(DEMAND_TTL + Duration::from_secs(1)).await;
        let alone = budget.round("k", &demand("busy-1", 2));
        let want = 2.0 / (PLANNED_USE - 1.0 / 120.0);
        assert!((alone.as_secs_f64() - want).abs() < 0.01, "{alone:?}");
        // Another account has its own round.
        assert_eq!(budget.round("other", &demand("x", 0)), Duration::ZERO);
    }
}
