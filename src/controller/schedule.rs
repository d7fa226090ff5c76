//! When to poll a watch next. Pure, so the quiet-by-default rules are table-tested.

use std::time::Duration;

/// What a reconcile should do about polling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    PollNow,
    /// Not due yet: come back after this long.
    Wait(Duration),
}

#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The spec changed since the last status write (or there is no status yet).
    pub generation_changed: bool,
    /// The reconcile-request annotation holds a value not yet handled.
    pub refresh_requested: bool,
    /// The credentials Secret changed since the last poll used it.
    pub secret_changed: bool,
    /// Time since the last poll (see [`assumed_since_last_poll`] for a fresh process).
    pub since_last_poll: Duration,
    /// The wait that applies now: the interval, or the error backoff after failures.
    pub period: Duration,
}

/// For a process that has not polled a watch yet: how long ago to assume the last poll was.
/// The time recorded in status may be up to a heartbeat old, so a watch that looks due is
/// instead spread over one period (`spread` in [0, 1)), rather than every watch polling at once
/// after a restart. The result is remembered, so the spread is drawn once.
pub fn assumed_since_last_poll(recorded: Option<Duration>, period: Duration, spread: f64) -> Duration {
    match recorded {
        Some(since) if since < period => since,
        _ => period.mul_f64(1.0 - spread.clamp(0.0, 1.0)),
    }
}

impl Facts {
    /// A poll asked for by a change rather than by the clock.
    pub fn forced(&self) -> bool {
        self.generation_changed || self.refresh_requested || self.secret_changed
    }
}

/// What decides whether a poll lists the app's orders or only describes those in flight.
#[derive(Clone, Debug, Default)]
pub struct ListFacts {
    pub in_flight: bool,
    /// The poll was forced (spec, refresh request, Secret): it reads everything again.
    pub forced: bool,
    /// Failed polls in a row: after a failure the next poll lists.
    pub failures: u32,
    /// Since the last list by this process (`None`: none yet).
    pub since_last_list: Option<Duration>,
    pub interval: Duration,
}

/// Whether a poll lists. New orders are discovered at the watch's interval; between lists, a
/// poll of orders in flight describes only those, one call each, so the account's budget goes
/// to the orders that change. A list is due a tenth early, as idle polls are (see [`jitter`]).
pub fn lists(f: &ListFacts) -> bool {
    !f.in_flight
        || f.forced
        || f.failures > 0
        || f.since_last_list
            .is_none_or(|since| since >= f.interval.mul_f64(0.9))
}

pub fn decide(f: &Facts) -> Decision {
    if f.generation_changed || f.refresh_requested || f.secret_changed {
        return Decision::PollNow;
    }
    if f.since_last_poll >= f.period {
        Decision::PollNow
    } else {
        Decision::Wait(f.period - f.since_last_poll)
    }
}

/// How often a watch polls: its intervals and the cap on error backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    pub interval: Duration,
    /// While an order is in flight (already no slower than `interval`).
    pub fast: Duration,
    pub max_error_backoff: Duration,
}

/// Where a watch stands, as far as its pace is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    pub in_flight: bool,
    /// Failed polls in a row.
    pub failures: u32,
    /// Wait the cloud advised (rate-limit headers).
    pub retry_after: Option<Duration>,
    /// The last poll's credentials were rejected: retry slowly (a key fixed on the cloud side,
    /// or a proxy's passing 401, recovers without anyone touching the Secret), not hammer.
    pub credentials_rejected: bool,
    /// While in flight, poll no more often than this: the account's call budget serves every
    /// watch with orders in flight once per round, and polling sooner would only queue.
    pub round: Duration,
    /// How often the account's budget lets the watch list (longer than its interval for an
    /// over-large fleet).
    pub list_every: Duration,
}

impl Pace {
    /// Time from one poll to the next.
    pub fn period(&self, s: Standing) -> Duration {
        if s.credentials_rejected {
            self.max_error_backoff
        } else if s.failures > 0 {
            error_backoff(s.failures, self.fast, self.max_error_backoff)
                .max(s.retry_after.unwrap_or_default())
        } else if s.in_flight {
            self.fast.max(s.round).min(self.interval.max(self.fast))
        } else {
            self.interval.max(s.list_every)
        }
    }
}

/// Exponential backoff after `failures` consecutive failed polls, capped.
pub fn error_backoff(failures: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(cap)
}

/// Spread a wait by ±10% so watches created together drift apart.
pub fn jitter(d: Duration, unit: f64) -> Duration {
    d.mul_f64(0.9 + 0.2 * unit.clamp(0.0, 1.0))
}

/// Spread a poll of orders in flight by ±2%: the budget's queue already spaces such polls,
/// and every tenth longer between them is a tenth longer before a change is seen.
pub fn jitter_in_flight(d: Duration, unit: f64) -> Duration {
    d.mul_f64(0.98 + 0.04 * unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn base() -> Facts {
        Facts {
            period: MIN,
            ..Facts::default()
        }
    }

    #[test]
    fn pace() {
        let s = Duration::from_secs;
        let pace = Pace {
            interval: s(60),
            fast: s(15),
            max_error_backoff: s(300),
        };
        let rows = [
            (Standing::default(), s(60)),
            (
                Standing {
                    in_flight: true,
                    ..Standing::default()
                },
                s(15),
            ),
            (
                Standing {
                    failures: 3,
                    ..Standing::default()
                },
                s(60),
            ),
            (
                Standing {
                    failures: 1,
                    retry_after: Some(s(40)),
                    ..Standing::default()
                },
                s(40),
            ),
            // In flight on a busy account: every watch once per round, never slower than idle.
            (
                Standing {
                    in_flight: true,
                    round: s(40),
                    ..Standing::default()
                },
                s(40),
            ),
            (
                Standing {
                    in_flight: true,
                    round: s(90),
                    ..Standing::default()
                },
                s(60),
            ),
            (
                Standing {
                    round: s(40),
                    ..Standing::default()
                },
                s(60),
            ),
            // Rejected credentials: retried, slowly.
            (
                Standing {
                    failures: 1,
                    credentials_rejected: true,
                    ..Standing::default()
                },
                s(300),
            ),
        ];
        for (standing, want) in rows {
            assert_eq!(pace.period(standing), want, "{standing:?}");
        }
    }

    #[test]
    fn polls_in_flight_list_at_the_interval_and_otherwise_only_describe() {
        let s = Duration::from_secs;
        let base = ListFacts {
            in_flight: true,
            since_last_list: Some(s(30)),
            interval: s(60),
            ..ListFacts::default()
        };
        let rows = [
            (base.clone(), false),
            // Due a tenth early, as a jittered idle poll may come.
            (
                ListFacts {
                    since_last_list: Some(s(54)),
                    ..base.clone()
                },
                true,
            ),
            (
                ListFacts {
                    since_last_list: None,
                    ..base.clone()
                },
                true,
            ),
            (
                ListFacts {
                    in_flight: false,
                    ..base.clone()
                },
                true,
            ),
            (
                ListFacts {
                    forced: true,
                    ..base.clone()
                },
                true,
            ),
            (
                ListFacts {
                    failures: 1,
                    ..base.clone()
                },
                true,
            ),
        ];
        for (facts, want) in rows {
            assert_eq!(lists(&facts), want, "{facts:?}");
        }
        assert_eq!(jitter_in_flight(s(100), 0.0), s(98));
        assert_eq!(jitter_in_flight(s(100), 1.0), s(102));
    }

    #[test]
    fn decisions() {
        let s = Duration::from_secs;
        let rows: Vec<(Facts, Decision)> = vec![
            (
                Facts {
                    generation_changed: true,
                    since_last_poll: s(1),
                    ..base()
                },
                Decision::PollNow,
            ),
            (
                Facts {
                    refresh_requested: true,
                    since_last_poll: s(1),
                    ..base()
                },
                Decision::PollNow,
            ),
            (
                Facts {
                    secret_changed: true,
                    since_last_poll: s(1),
                    ..base()
                },
                Decision::PollNow,
            ),
            (
                Facts {
                    since_last_poll: s(20),
                    ..base()
                },
                Decision::Wait(s(40)),
            ),
            (
                Facts {
                    since_last_poll: s(60),
                    ..base()
                },
                Decision::PollNow,
            ),
        ];
        for (facts, want) in rows {
            assert_eq!(decide(&facts), want, "{facts:?}");
        }
    }

    #[test]
    fn a_fresh_process_spreads_due_watches_over_one_period() {
        let s = Duration::from_secs;
        // A recent recorded poll: wait out the rest of the period.
        assert_eq!(assumed_since_last_poll(Some(s(45)), MIN, 0.3), s(45));
        // An old or missing one: due somewhere within the next period, by the spread.
        assert_eq!(assumed_since_last_poll(Some(s(900)), MIN, 0.25), s(45));
        assert_eq!(assumed_since_last_poll(None, MIN, 0.5), s(30));
        let facts = Facts {
            since_last_poll: assumed_since_last_poll(None, MIN, 0.25),
            ..base()
        };
        assert_eq!(decide(&facts), Decision::Wait(s(15)));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let base = Duration::from_secs(5);
        let cap = Duration::from_secs(300);
        let got: Vec<u64> = (1..=9).map(|n| error_backoff(n, base, cap).as_secs()).collect();
        assert_eq!(got, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(error_backoff(u32::MAX, base, cap), cap);
        assert_eq!(jitter(Duration::from_secs(100), 0.0), Duration::from_secs(90));
        assert_eq!(jitter(Duration::from_secs(100), 1.0), Duration::from_secs(110));
    }
}
