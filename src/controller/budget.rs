//! A call budget per cloud account (and endpoint host), shared by every watch whose credentials
//! belong to that account: SAE allows 60 calls per minute per account across all its APIs, so
//! watches of one account must not each assume the whole allowance, whichever of the account's
//! keys or roles they use. Which account a credential belongs to is learned by
//! [`Accounts`](crate::controller::accounts::Accounts); a credential whose account is not known
//! has a budget of its own, and one STS refused has a small one of its own.
//!
//! Buckets no one uses are freed: a bucket whose tokens are back to full, with no poller queued
//! or recorded on it, is the same as a new one, and is dropped at the next sweep. A poller that
//! moves to another bucket (its credential rotated) takes its record along.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::controller::accounts::{Accounts, Owner};
use changeorder_cloud::credentials::Credentials;
use changeorder_cloud::http::{Claim, Demand, Pacing};

/// A queued claim not taken up this long after it was due is dropped (its poller went away or
/// is held up): it no longer holds back the pollers queued after it.
const CLAIM_GRACE: Duration = Duration::from_secs(30);

/// A poller's recorded demand is forgotten this long after it last reported (a deleted watch).
const DEMAND_TTL: Duration = Duration::from_secs(600);

/// Share of the budget the round plans to use. A queue fed at its full rate grows without
/// bound at the first hiccup (a slow reply, a forced poll), and every poll it delays is an
/// observation late; a little slack keeps the queue short.
const PLANNED_USE: f64 = 0.95;

/// A credential STS refused gets this share of the rate, in a bucket of its own.
const UNPROVEN_SHARE: f64 = 0.1;

/// Buckets at rest are dropped at most this often (a sweep reads every bucket).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Token buckets keyed by account and host (or by a credential fingerprint when the account is
/// not known; never the secret itself), with the queue of pollers waiting for calls and what
/// each poller needs per round.
#[derive(Clone)]
pub struct Budget {
    per_minute: u32,
    accounts: Arc<Mutex<Buckets>>,
    owners: Arc<Accounts>,
}

#[derive(Default)]
struct Buckets {
    by_key: HashMap<String, Account>,
    /// The bucket each poller last used, to take its record along when it moves.
    pollers: HashMap<String, (String, Instant)>,
    swept: Option<Instant>,
}

/// How large a bucket is.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Size {
    capacity: f64,
    rate_per_sec: f64,
}

struct Account {
    size: Size,
    tokens: f64,
    updated: Instant,
    /// Pollers told to wait, by poller: their place in the queue, the calls they wait for and
    /// when they were told to come back.
    queue: HashMap<String, Queued>,
    next_place: u64,
    demand: HashMap<String, Recorded>,
    /// Calls handed to the history backfill are being spent until then: no second backfill
    /// claim on this account before they are refilled.
    spared_until: Option<Instant>,
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

impl Account {
    /// At rest: as a new bucket would be (full, no one queued or recorded).
    fn at_rest(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.queue.is_empty()
            && self.demand.is_empty()
            && self.tokens + elapsed * self.size.rate_per_sec >= self.size.capacity
    }
}

impl Budget {
    /// A budget per credential: no account is asked of STS (accounts learned from assumed
    /// roles still share one).
    pub fn new(per_minute: u32) -> Self {
        Self::with_accounts(per_minute, Accounts::unasked())
    }

    /// A budget per account, as `owners` tells credentials apart.
    pub fn with_accounts(per_minute: u32, owners: Accounts) -> Self {
        Budget {
            per_minute: per_minute.max(1),
            accounts: Arc::default(),
            owners: Arc::new(owners),
        }
    }

    /// Who owns which credential.
    pub fn owners(&self) -> &Accounts {
        &self.owners
    }

    /// Buckets held now (at rest ones included until the next sweep).
    pub fn buckets(&self) -> usize {
        self.lock().by_key.len()
    }

    /// The size of an account's bucket: its burst is a tenth of the minute's allowance, at
    /// least one call — enough for one poll's list and a few describes without front-loading
    /// a whole minute of calls.
    fn size(&self) -> Size {
        Size {
            capacity: (f64::from(self.per_minute) / 10.0).max(1.0),
            rate_per_sec: f64::from(self.per_minute) / 60.0,
        }
    }

    /// The size of a bucket under `key` (see [`key_for`]).
    fn size_of(&self, key: &str) -> Size {
        let full = self.size();
        if key.starts_with(UNPROVEN) {
            Size {
                capacity: 1.0,
                rate_per_sec: full.rate_per_sec * UNPROVEN_SHARE,
            }
        } else {
            full
        }
    }

    /// The account under `key`, its tokens brought up to now.
    fn account<'m>(&self, buckets: &'m mut Buckets, key: &str, now: Instant) -> &'m mut Account {
        if buckets
            .swept
            .is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY)
        {
            buckets.swept = Some(now);
            buckets.by_key.retain(|k, a| k == key || !a.at_rest(now));
            buckets
                .pollers
                .retain(|_, (_, seen)| now.saturating_duration_since(*seen) < DEMAND_TTL);
        }
        let size = self.size_of(key);
        let account = buckets.by_key.entry(key.to_string()).or_insert(Account {
            size,
            tokens: size.capacity,
            updated: now,
            queue: HashMap::new(),
            next_place: 0,
            demand: HashMap::new(),
            spared_until: None,
        });
        let elapsed = now.saturating_duration_since(account.updated).as_secs_f64();
        account.tokens = (account.tokens + elapsed * account.size.rate_per_sec).min(account.size.capacity);
        account.updated = now;
        account
    }

    /// Note that `poller` now uses `key`: its queue place and demand on another bucket go.
    fn moved(buckets: &mut Buckets, poller: &str, key: &str, now: Instant) {
        let previous = buckets
            .pollers
            .insert(poller.to_string(), (key.to_string(), now))
            .map(|(k, _)| k);
        if let Some(old) = previous.filter(|k| k != key)
            && let Some(a) = buckets.by_key.get_mut(&old)
        {
            a.queue.remove(poller);
            a.demand.remove(poller);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take one call from the bucket under `key`, or say how long until one is available.
    pub fn try_take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.lock();
        let account = self.account(&mut buckets, key, now);
        if account.tokens >= 1.0 {
            account.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - account.tokens) / account.size.rate_per_sec,
            ))
        }
    }

    /// How long until `calls` calls fit the credential's budget for `claim`'s poller (`None`:
    /// now). Takes nothing: a poller that would wait is scheduled for then instead of holding
    /// a reconcile slot. Pollers of orders in flight are queued, each behind those told to wait
    /// before it, so none is starved by pollers needing fewer calls; other polls get only what
    /// the queue leaves.
    pub fn wait_for_calls(&self, key: &str, calls: u32, claim: &Claim<'_>) -> Option<Duration> {
        let now = Instant::now();
        let mut buckets = self.lock();
        Self::moved(&mut buckets, claim.poller, key, now);
        let account = self.account(&mut buckets, key, now);
        let Size {
            capacity,
            rate_per_sec: rate,
        } = account.size;
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

    /// Record `demand` and return the account's round (the time in which the budget serves one
    /// describe of every order in flight, after every poller's list at its interval; polling
    /// those orders more often than this only queues) and how often the poller's lists get
    /// their turn: when every poller's lists at their intervals are more than the budget's
    /// share for lists, every interval stretches by the same factor.
    pub fn round(&self, key: &str, demand: &Demand<'_>) -> Pacing {
        let now = Instant::now();
        let mut buckets = self.lock();
        Self::moved(&mut buckets, demand.poller, key, now);
        let account = self.account(&mut buckets, key, now);
        let rate = account.size.rate_per_sec;
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
        // Lists may use the whole planned rate while no order is in flight, half of it while
        // some are.
        let for_lists = if per_round > 0.0 { rate / 2.0 } else { rate };
        let stretch = (list_rate / for_lists).max(1.0);
        Pacing {
            round: Duration::from_secs_f64(per_round / spare),
            list_every: demand.interval.mul_f64(stretch),
        }
    }

    /// Calls of the bucket under `key` that no poll needs now, for the history backfill: none
    /// while a poller is queued or an earlier spare claim is not refilled yet; otherwise at
    /// most half a burst, taken only from a bucket more than half full. So the calls every
    /// poll of the round plans on (lists, describes of orders in flight) are always there
    /// first, and on an account whose round uses the whole budget the bucket never fills and
    /// nothing is spared. The calls themselves are still taken one by one as they are made.
    pub fn spare(&self, key: &str, want: u32) -> u32 {
        let now = Instant::now();
        let mut buckets = self.lock();
        let account = self.account(&mut buckets, key, now);
        account.queue.retain(|_, q| q.due + CLAIM_GRACE > now);
        if !account.queue.is_empty() || account.spared_until.is_some_and(|t| t > now) {
            return 0;
        }
        let Size {
            capacity,
            rate_per_sec: rate,
        } = account.size;
        let most = (capacity / 2.0).ceil();
        // Only what is asked for is held back, so the next watch's ask is not refused while
        // the calls this one left unclaimed are still in the bucket.
        let spare = (account.tokens - (capacity - most))
            .floor()
            .clamp(0.0, most)
            .min(f64::from(want));
        if spare >= 1.0 {
            account.spared_until = Some(now + Duration::from_secs_f64(spare / rate));
        }
        // At most half a burst, so well within u32.
        spare as u32
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
        creds: &'a Credentials,
        host: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            self.owners.identify(creds).await;
            self.take(&self.key_for(creds, host)).await
        })
    }

    fn wait_for<'a>(
        &'a self,
        _provider: changeorder_cloud::model::Provider,
        creds: &'a Credentials,
        host: &'a str,
        calls: u32,
        claim: &Claim<'a>,
    ) -> Option<Duration> {
        self.wait_for_calls(&self.key_for(creds, host), calls, claim)
    }

    fn pace<'a>(
        &'a self,
        _provider: changeorder_cloud::model::Provider,
        creds: &'a Credentials,
        host: &'a str,
        demand: &Demand<'a>,
    ) -> Pacing {
        self.round(&self.key_for(creds, host), demand)
    }

    fn identify<'a>(
        &'a self,
        creds: &'a Credentials,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(self.owners.identify(creds))
    }

    fn spare<'a>(
        &'a self,
        _provider: changeorder_cloud::model::Provider,
        creds: &'a Credentials,
        host: &'a str,
        want: u32,
    ) -> u32 {
        self.spare(&self.key_for(creds, host), want)
    }

    fn learn(&self, creds: &Credentials, account: &str, until: Option<std::time::Duration>) {
        self.owners
            .learn(creds, account, until.map(|d| Instant::now() + d));
    }
}

/// Prefix of the keys of unproven credentials' buckets.
const UNPROVEN: &str = "unproven:";

impl Budget {
    /// The budget key of `credentials` calling `host`: the account and the host when the
    /// account is known, else the credential's fingerprint (its hash covers the secret, so a
    /// borrowed AccessKey id with a wrong secret shares nothing) in a bucket of its own, small
    /// when STS refused it. The host keeps a tenant's own endpoint (where the policy allows
    /// one) from draining the cloud's budget of the same account.
    pub fn key_for(&self, credentials: &Credentials, host: &str) -> String {
        match self.owners.owner(credentials) {
            Owner::Account(id) => format!("account:{id}@{host}"),
            Owner::Unproven => format!("{UNPROVEN}{}@{host}", credentials.fingerprint()),
            Owner::Unknown => format!("{}@{host}", credentials.fingerprint()),
        }
    }
}

#[cfg(test)]
mod tests;
