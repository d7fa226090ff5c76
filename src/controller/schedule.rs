//! When to poll a watch next. Pure, so the quiet-by-default rules are table-tested.

use std::time::Duration;

/// What a reconcile should do about polling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    PollNow,
    /// Not due yet: come back after this long.
    Wait(Duration),
    /// Nothing will change until the spec, the Secret or a refresh request does.
    AwaitChange,
}

#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub suspended: bool,
    /// The spec changed since the last status write (or there is no status yet).
    pub generation_changed: bool,
    /// The reconcile-request annotation holds a value not yet handled.
    pub refresh_requested: bool,
    /// The credentials Secret changed since the last poll used it.
    pub secret_changed: bool,
    /// The last poll failed on credentials (wrong or missing keys).
    pub credentials_rejected: bool,
    /// Time since the last poll this process made, if it made one.
    pub since_last_poll: Option<Duration>,
    /// Time since the last poll recorded in status (from an earlier process), if any.
    pub since_recorded_poll: Option<Duration>,
    /// The wait that applies now: the interval, or the error backoff after failures.
    pub period: Duration,
}

/// `spread` is a value in [0, 1) used to stagger the first polls after a restart.
pub fn decide(f: &Facts, spread: f64) -> Decision {
    if f.suspended {
        return Decision::AwaitChange;
    }
    if f.generation_changed || f.refresh_requested || f.secret_changed {
        return Decision::PollNow;
    }
    if f.credentials_rejected {
        return Decision::AwaitChange;
    }
    match (f.since_last_poll, f.since_recorded_poll) {
        (Some(since), _) => due_after(f.period, since),
        // Restarted: the recorded time may be up to a heartbeat old, so a due watch is spread
        // over one period instead of every watch polling at once.
        (None, Some(since)) if since < f.period => Decision::Wait(f.period - since),
        (None, _) => Decision::Wait(f.period.mul_f64(spread.clamp(0.0, 1.0))),
    }
}

fn due_after(period: Duration, since: Duration) -> Decision {
    if since >= period {
        Decision::PollNow
    } else {
        Decision::Wait(period - since)
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
    fn decisions() {
        let s = |secs| Some(Duration::from_secs(secs));
        let rows: Vec<(Facts, Decision)> = vec![
            (
                Facts {
                    suspended: true,
                    generation_changed: true,
                    ..base()
                },
                Decision::AwaitChange,
            ),
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
                    credentials_rejected: true,
                    since_last_poll: s(3600),
                    ..base()
                },
                Decision::AwaitChange,
            ),
            (
                Facts {
                    credentials_rejected: true,
                    refresh_requested: true,
                    ..base()
                },
                Decision::PollNow,
            ),
            (
                Facts {
                    credentials_rejected: true,
                    secret_changed: true,
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
                Decision::Wait(Duration::from_secs(40)),
            ),
            (
                Facts {
                    since_last_poll: s(60),
                    ..base()
                },
                Decision::PollNow,
            ),
            // After a restart: recent recorded poll waits out the rest of the period ...
            (
                Facts {
                    since_recorded_poll: s(45),
                    ..base()
                },
                Decision::Wait(Duration::from_secs(15)),
            ),
            // ... an old one is spread over one period rather than polled at once.
            (
                Facts {
                    since_recorded_poll: s(900),
                    ..base()
                },
                Decision::Wait(Duration::from_secs(30)),
            ),
            (base(), Decision::Wait(Duration::from_secs(30))),
        ];
        for (facts, want) in rows {
            assert_eq!(decide(&facts, 0.5), want, "{facts:?}");
        }
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
