use super::*;

const ME: &str = "me_0001";

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn spec(holder: Option<&str>, renewed: Option<&str>, secs: Option<i32>) -> LeaseSpec {
    LeaseSpec {
        holder_identity: holder.map(String::from),
        renew_time: renewed.map(|r| MicroTime(ts(r))),
        lease_duration_seconds: secs,
        lease_transitions: Some(3),
        ..LeaseSpec::default()
    }
}

fn config() -> ElectionConfig {
    ElectionConfig::new("ns", "lease", ME, Duration::from_secs(15))
}

#[test]
fn decisions() {
    let t0 = Instant::now();
    let secs = Duration::from_secs;
    let wait = |remaining: Duration| Action::Wait {
        holder: "other".into(),
        remaining,
    };
    // (case, spec, seconds since the record was first seen, want)
    let cases: Vec<(&str, Option<LeaseSpec>, u64, Action)> = vec![
        ("no lease", None, 0, Action::Create),
        ("empty spec", Some(LeaseSpec::default()), 0, Action::TakeOver),
        (
            "released (holder cleared)",
            Some(spec(None, Some("2025-01-01T00:00:19Z"), Some(15))),
            0,
            Action::TakeOver,
        ),
        (
            "empty holder string",
            Some(spec(Some(""), Some("2025-01-01T00:00:19Z"), Some(15))),
            0,
            Action::TakeOver,
        ),
        (
            "ours",
            Some(spec(Some(ME), Some("2025-01-01T00:00:19Z"), Some(15))),
            0,
            Action::Renew,
        ),
        (
            "ours, unchanged for long: nobody else took it, so keep it",
            Some(spec(Some(ME), Some("2025-01-01T00:00:00Z"), Some(15))),
            60,
            Action::Renew,
        ),
        (
            "other, just seen",
            Some(spec(Some("other"), Some("2025-01-01T00:00:10Z"), Some(15))),
            0,
            wait(secs(15)),
        ),
        (
            "other, seen 14s ago",
            Some(spec(Some("other"), Some("2025-01-01T00:00:10Z"), Some(15))),
            14,
            wait(secs(1)),
        ),
        (
            "other, unchanged for the whole duration",
            Some(spec(Some("other"), Some("2025-01-01T00:00:10Z"), Some(15))),
            15,
            Action::TakeOver,
        ),
        (
            // The old rule (renewTime + duration < local wall clock) took this over at once.
            "renewTime minutes in the past (leader's clock behind): still wait",
            Some(spec(Some("other"), Some("2020-01-01T00:00:00Z"), Some(15))),
            1,
            wait(secs(14)),
        ),
        (
            // The old rule waited until 2030.
            "renewTime years in the future (leader's clock ahead): expires all the same",
            Some(spec(Some("other"), Some("2030-01-01T00:00:00Z"), Some(15))),
            15,
            Action::TakeOver,
        ),
        (
            "other, no times at all: the duration still counts",
            Some(spec(Some("other"), None, Some(15))),
            0,
            wait(secs(15)),
        ),
        (
            "other, no duration",
            Some(spec(Some("other"), Some("2025-01-01T00:00:19Z"), None)),
            0,
            Action::TakeOver,
        ),
        (
            "other, negative duration",
            Some(spec(Some("other"), Some("2025-01-01T00:00:19Z"), Some(-5))),
            0,
            Action::TakeOver,
        ),
    ];
    for (name, spec, seen_ago, want) in cases {
        let now = t0 + secs(100);
        let observed = now - secs(seen_ago);
        assert_eq!(decide(spec.as_ref(), observed, now, ME), want, "{name}");
    }
}

#[test]
fn only_a_changed_record_restarts_the_count() {
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut seen = Observation::default();
    let first = spec(Some("other"), Some("2025-01-01T00:00:00Z"), Some(15));
    assert_eq!(seen.observe(&first, t0), t0);
    // Read again, unchanged: still counted from the first sight.
    assert_eq!(seen.observe(&first, t0 + s(10)), t0);
    assert_eq!(
        decide(Some(&first), seen.observe(&first, t0 + s(16)), t0 + s(16), ME),
        Action::TakeOver
    );
    // Renewed (even with a renewTime from a clock far behind): counted from now.
    let renewed = spec(Some("other"), Some("2019-06-01T00:00:00Z"), Some(15));
    assert_eq!(seen.observe(&renewed, t0 + s(12)), t0 + s(12));
    assert_eq!(
        decide(Some(&renewed), seen.observe(&renewed, t0 + s(20)), t0 + s(20), ME),
        Action::Wait {
            holder: "other".into(),
            remaining: s(7)
        }
    );
}

#[test]
fn create_starts_transitions_at_zero() {
    let now = ts("2025-01-01T00:00:00Z");
    let s = next_spec(None, &Action::Create, &config(), now);
    assert_eq!(s.holder_identity.as_deref(), Some(ME));
    assert_eq!(s.lease_transitions, Some(0));
    assert_eq!(s.lease_duration_seconds, Some(15));
    assert_eq!(s.acquire_time, Some(MicroTime(now)));
    assert_eq!(s.renew_time, Some(MicroTime(now)));
}

#[test]
fn takeover_counts_a_transition_and_resets_acquire_time() {
    let now = ts("2025-01-01T00:01:00Z");
    let mut old = spec(Some("other"), Some("2025-01-01T00:00:00Z"), Some(30));
    old.preferred_holder = Some("keep-me".into());
    let s = next_spec(Some(&old), &Action::TakeOver, &config(), now);
    assert_eq!(s.holder_identity.as_deref(), Some(ME));
    assert_eq!(s.lease_transitions, Some(4));
    assert_eq!(s.acquire_time, Some(MicroTime(now)));
    assert_eq!(s.renew_time, Some(MicroTime(now)));
    assert_eq!(s.lease_duration_seconds, Some(15));
    // Fields we do not manage pass through untouched.
    assert_eq!(s.preferred_holder.as_deref(), Some("keep-me"));
}

#[test]
fn renew_keeps_acquire_time_and_transitions() {
    let now = ts("2025-01-01T00:00:05Z");
    let mut old = spec(Some(ME), Some("2025-01-01T00:00:00Z"), Some(15));
    old.acquire_time = Some(MicroTime(ts("2024-12-31T00:00:00Z")));
    let s = next_spec(Some(&old), &Action::Renew, &config(), now);
    assert_eq!(s.lease_transitions, Some(3));
    assert_eq!(s.acquire_time, old.acquire_time);
    assert_eq!(s.renew_time, Some(MicroTime(now)));
}

#[test]
fn released_lease_is_free_for_anyone_at_once() {
    let now = ts("2025-01-01T00:00:05Z");
    let old = spec(Some(ME), Some("2025-01-01T00:00:00Z"), Some(15));
    let s = released_spec(Some(&old), now);
    assert_eq!(s.holder_identity, None);
    assert_eq!(s.lease_duration_seconds, Some(1));
    assert_eq!(s.lease_transitions, Some(3));
    let t = Instant::now();
    assert_eq!(decide(Some(&s), t, t, "standby"), Action::TakeOver);
}

#[test]
fn timings_follow_the_lease_duration() {
    let c = config();
    assert_eq!(c.renew_interval, Duration::from_secs(5));
    assert_eq!(c.renew_deadline, Duration::from_secs(10));
    assert_eq!(c.retry_period, Duration::from_millis(2500));
    assert!(c.renew_deadline < c.lease_duration);

    let tiny = ElectionConfig::new("ns", "l", ME, Duration::ZERO);
    assert_eq!(tiny.lease_duration, Duration::from_secs(1));
    assert_eq!(tiny.lease_seconds(), 1);
    let fractional = ElectionConfig::new("ns", "l", ME, Duration::from_millis(2500));
    assert_eq!(fractional.lease_seconds(), 3);
}

#[test]
fn identity_defaults() {
    assert_eq!(
        identity_from(Some("op-7d9f".into()), Some("host".into()), 0xab),
        "op-7d9f_000000ab"
    );
    assert_eq!(identity_from(None, Some("host\n".into()), 1), "host_00000001");
    assert_eq!(
        identity_from(Some(" ".into()), None, 0xffff_ffff),
        "changeorder-operator_ffffffff"
    );
}

#[test]
fn namespace_defaults() {
    assert_eq!(namespace_from(Some("ops".into()), Some("sa".into())), "ops");
    assert_eq!(namespace_from(None, Some("sa-ns\n".into())), "sa-ns");
    assert_eq!(namespace_from(Some(String::new()), None), "default");
}

#[test]
fn healthy_states() {
    assert!(ElectionState::Leading.is_healthy());
    assert!(ElectionState::Standby { leader: "x".into() }.is_healthy());
    assert!(!ElectionState::Starting.is_healthy());
    assert!(!ElectionState::Unreachable.is_healthy());
    assert!(!ElectionState::Stopped.is_healthy());
}

#[test]
fn permanent_errors() {
    let api = |code| KubeError::Api(kube::core::Status::failure("x", "y").with_code(code).boxed());
    assert!(is_permanent(&api(403)));
    assert!(is_permanent(&api(404)));
    assert!(!is_permanent(&api(500)));
    assert!(!is_permanent(&api(429)));
    assert!(is_conflict(&api(409)));
}
