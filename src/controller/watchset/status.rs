//! The set's status, computed from what this reconcile knows (pure). Unchanged input gives an
//! equal status, so a quiet reconcile writes nothing.

use std::time::Duration;

use jiff::Timestamp;

use super::discover::Failure;
use crate::conditions::{condition, tri};
use crate::controller::watch_status::{condition_type, is_stalled};
use crate::crd::{ChangeOrderWatchSetStatus, WatchSetConflict};

pub mod reason {
    /// Every app found has its watch.
    pub const DISCOVERED: &str = "Discovered";
    /// A watch name the set needs belongs to a watch it does not own.
    pub const NAME_CONFLICT: &str = "NameConflict";
    /// No discovery has finished since the operator started.
    pub const AWAITING_DISCOVERY: &str = "AwaitingDiscovery";
}

/// Conflicts listed in the status at most (the count in the Ready message is complete).
pub const MAX_CONFLICTS: usize = 100;

pub struct Input<'a> {
    pub previous: Option<&'a ChangeOrderWatchSetStatus>,
    pub generation: Option<i64>,
    /// Why the last discovery (or the spec) failed; `None` when it worked.
    pub failure: Option<&'a Failure>,
    /// Apps of the last successful discovery; `None` before the first.
    pub apps_found: Option<u32>,
    pub ready: u32,
    pub not_ready: u32,
    pub conflicts: Vec<WatchSetConflict>,
    /// A discovery was attempted in this reconcile.
    pub discovered_now: bool,
    pub now: Timestamp,
    pub heartbeat: Duration,
}

pub fn desired(input: Input<'_>) -> ChangeOrderWatchSetStatus {
    let previous_conditions = input
        .previous
        .map(|p| p.conditions.as_slice())
        .unwrap_or_default();
    let (ready, ready_reason, message, stalled, reconciling) = match (input.failure, input.apps_found) {
        (Some(f), _) => {
            let stalled = is_stalled(f.reason);
            let kept = match input.apps_found {
                Some(n) => format!(" (the {n} watches of the last discovery are kept)"),
                None => String::new(),
            };
            (
                "False",
                f.reason,
                format!("{}{kept}", f.message),
                stalled,
                !stalled,
            )
        }
        (None, None) => (
            "False",
            reason::AWAITING_DISCOVERY,
            "no discovery has finished yet".to_string(),
            false,
            true,
        ),
        (None, Some(_)) if !input.conflicts.is_empty() => {
            let names: Vec<&str> = input.conflicts.iter().take(5).map(|c| c.name.as_str()).collect();
            (
                "False",
                reason::NAME_CONFLICT,
                format!(
                    "{} watch name(s) belong to watches this set does not own and are left alone: {}{}",
                    input.conflicts.len(),
                    names.join(", "),
                    if input.conflicts.len() > names.len() {
                        ", ..."
                    } else {
                        ""
                    }
                ),
                true,
                false,
            )
        }
        (None, Some(n)) => (
            "True",
            reason::DISCOVERED,
            format!(
                "{n} apps, {} watches Ready, {} not Ready",
                input.ready, input.not_ready
            ),
            false,
            false,
        ),
    };
    let g = input.generation;
    let now = input.now;
    let conditions = vec![
        condition(
            condition_type::READY,
            ready,
            ready_reason,
            message.clone(),
            g,
            previous_conditions,
            now,
        ),
        condition(
            condition_type::STALLED,
            tri(stalled),
            if stalled { ready_reason } else { "NotStalled" },
            if stalled { message.clone() } else { String::new() },
            g,
            previous_conditions,
            now,
        ),
        condition(
            condition_type::RECONCILING,
            tri(reconciling),
            if reconciling { ready_reason } else { "Reconciled" },
            if reconciling { message } else { String::new() },
            g,
            previous_conditions,
            now,
        ),
    ];
    let mut out = ChangeOrderWatchSetStatus {
        observed_generation: g,
        conditions,
        apps_found: input.apps_found,
        watches_ready: Some(input.ready),
        watches_not_ready: Some(input.not_ready),
        last_discovery_time: input.previous.and_then(|p| p.last_discovery_time.clone()),
        conflicts: input.conflicts.into_iter().take(MAX_CONFLICTS).collect(),
    };
    if input.discovered_now {
        let mut without_time = input.previous.cloned().unwrap_or_default();
        without_time.last_discovery_time = out.last_discovery_time.clone();
        let stale = out.last_discovery_time.as_ref().is_none_or(|t| {
            let age = now.duration_since(t.0);
            age.as_secs_f64() >= input.heartbeat.as_secs_f64()
        });
        if stale || without_time != out {
            out.last_discovery_time = Some(crate::time::whole_seconds(now));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(previous: Option<&ChangeOrderWatchSetStatus>, now: Timestamp) -> Input<'_> {
        Input {
            previous,
            generation: Some(1),
            failure: None,
            apps_found: Some(3),
            ready: 3,
            not_ready: 0,
            conflicts: Vec::new(),
            discovered_now: true,
            now,
            heartbeat: Duration::from_secs(600),
        }
    }

    fn ready(s: &ChangeOrderWatchSetStatus) -> (&str, &str) {
        let c = s.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn a_quiet_discovery_changes_nothing_until_the_heartbeat() {
        let t0: Timestamp = "2026-12-06T00:00:00Z".parse().unwrap();
        let first = desired(input(None, t0));
        assert_eq!(ready(&first), ("True", reason::DISCOVERED));
        let later = desired(input(Some(&first), t0 + jiff::SignedDuration::from_secs(60)));
        assert_eq!(later, first, "nothing to write a minute later");
        let much_later = desired(input(Some(&first), t0 + jiff::SignedDuration::from_secs(601)));
        assert_ne!(much_later.last_discovery_time, first.last_discovery_time);
    }

    #[test]
    fn failures_and_conflicts_have_their_reasons() {
        let t0: Timestamp = "2026-12-06T00:00:00Z".parse().unwrap();
        let f = Failure {
            reason: "InvalidCredentials",
            message: "InvalidAccessKeyId.NotFound".into(),
            retry_after: None,
        };
        let s = desired(Input {
            failure: Some(&f),
            ..input(None, t0)
        });
        assert_eq!(ready(&s), ("False", "InvalidCredentials"));
        assert!(
            s.conditions
                .iter()
                .any(|c| c.type_ == "Stalled" && c.status == "True")
        );
        assert_eq!(s.apps_found, Some(3), "the last good count is kept");
        let s = desired(Input {
            conflicts: vec![WatchSetConflict {
                name: "fleet-web".into(),
                app: "web".into(),
            }],
            ..input(None, t0)
        });
        assert_eq!(ready(&s), ("False", reason::NAME_CONFLICT));
        let s = desired(Input {
            apps_found: None,
            ..input(None, t0)
        });
        assert_eq!(ready(&s), ("False", reason::AWAITING_DISCOVERY));
        assert!(
            s.conditions
                .iter()
                .any(|c| c.type_ == "Reconciling" && c.status == "True")
        );
    }
}
