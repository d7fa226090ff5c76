use super::*;
use crate::crd::{ChangeOrderSpec, ChangeOrderStatus};
use changeorder_cloud::error::CloudError;
use changeorder_cloud::model::Provider;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

const HEARTBEAT: Duration = Duration::from_secs(600);

fn run(prev: Option<&ChangeOrderWatchStatus>, outcome: Outcome, now: &str) -> ChangeOrderWatchStatus {
    desired(Input {
        previous: prev,
        generation: Some(2),
        outcome,
        handled_request: None,
        now: ts(now),
        heartbeat: HEARTBEAT,
        pacing: None,
    })
}

fn with_orders(
    prev: Option<&ChangeOrderWatchStatus>,
    outcome: Outcome,
    now: &str,
    orders: &[ChangeOrder],
) -> ChangeOrderWatchStatus {
    desired_with_orders(
        Input {
            previous: prev,
            generation: Some(2),
            outcome,
            handled_request: None,
            now: ts(now),
            heartbeat: HEARTBEAT,
            pacing: None,
        },
        orders,
    )
}

fn cond<'a>(s: &'a ChangeOrderWatchStatus, type_: &str) -> &'a Condition {
    condition_of(s, type_).unwrap_or_else(|| panic!("no {type_} condition in {s:?}"))
}

/// (status, reason) of a condition.
fn sr<'a>(s: &'a ChangeOrderWatchStatus, type_: &str) -> (&'a str, &'a str) {
    let c = cond(s, type_);
    (c.status.as_str(), c.reason.as_str())
}

fn failed(reason: &'static str, message: &str) -> Outcome {
    Outcome::Failed {
        reason,
        message: message.into(),
    }
}

/// kstatus as fluxcd/cli-utils computes it for a custom resource: a generation not yet observed
/// or `Reconciling=True` is InProgress, `Stalled=True` is Failed (conditions read in list order),
/// then a `Ready` condition decides (True: Current, otherwise InProgress), and without one the
/// resource is Current. tests/it/watch_gitops.rs checks the same table with the library itself.
fn kstatus(generation: i64, status: &ChangeOrderWatchStatus) -> &'static str {
    if status.observed_generation.is_some_and(|g| g != generation) {
        return "InProgress";
    }
    for c in &status.conditions {
        if c.type_ == "Reconciling" && c.status == "True" {
            return "InProgress";
        }
        if c.type_ == "Stalled" && c.status == "True" {
            return "Failed";
        }
    }
    match status.conditions.iter().find(|c| c.type_ == "Ready") {
        Some(c) if c.status != "True" => "InProgress",
        _ => "Current",
    }
}

#[test]
fn quiet_polls_write_nothing_until_the_heartbeat() {
    let c = counts([Phase::Running, Phase::Succeeded]);
    assert_eq!((c.total, c.in_flight, c.running, c.succeeded), (2, 1, 1, 1));
    let first = run(None, Outcome::Polled(c.clone()), "2026-01-01T00:00:00Z");
    assert_eq!(first.last_poll_time, Some(Time(ts("2026-01-01T00:00:00Z"))));
    assert_eq!(cond(&first, "Ready").reason, "Polled");
    let again = run(Some(&first), Outcome::Polled(c.clone()), "2026-01-01T00:05:00Z");
    assert_eq!(
        again, first,
        "same result within the heartbeat: identical status, no write"
    );
    let later = run(Some(&first), Outcome::Polled(c.clone()), "2026-01-01T00:10:00Z");
    assert_eq!(later.last_poll_time, Some(Time(ts("2026-01-01T00:10:00Z"))));
    // A change in counts stamps the time at once.
    let moved = run(
        Some(&first),
        Outcome::Polled(counts([Phase::Succeeded])),
        "2026-01-01T00:01:00Z",
    );
    assert_eq!(moved.last_poll_time, Some(Time(ts("2026-01-01T00:01:00Z"))));
}

#[test]
fn failures_keep_counts_and_last_success() {
    let first = run(
        None,
        Outcome::Polled(counts([Phase::Running])),
        "2026-01-01T00:00:00Z",
    );
    let failed = run(
        Some(&first),
        failed(reason::THROTTLED, "Throttling.User: slow down"),
        "2026-01-01T00:01:00Z",
    );
    let ready = cond(&failed, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "Throttled")
    );
    assert_eq!(ready.last_transition_time, Time(ts("2026-01-01T00:01:00Z")));
    assert_eq!(failed.orders, first.orders);
    assert_eq!(failed.last_success_time, first.last_success_time);
    assert_eq!(failed.last_poll_time, Some(Time(ts("2026-01-01T00:01:00Z"))));
    let recovered = run(
        Some(&failed),
        Outcome::Polled(counts([Phase::Running])),
        "2026-01-01T00:02:00Z",
    );
    assert_eq!(cond(&recovered, "Ready").status, "True");
    assert_eq!(
        recovered.last_success_time,
        Some(Time(ts("2026-01-01T00:02:00Z")))
    );
}

#[test]
fn bookkeeping_without_a_poll() {
    let first = run(None, Outcome::Polled(counts([])), "2026-01-01T00:00:00Z");
    let mut input = Input {
        previous: Some(&first),
        generation: Some(3),
        outcome: Outcome::NotPolled,
        handled_request: Some("2026-01-01T00:00:30Z".into()),
        now: ts("2026-01-01T00:00:30Z"),
        heartbeat: HEARTBEAT,
        pacing: None,
    };
    let next = desired(input);
    assert_eq!(next.observed_generation, Some(3));
    assert!(next.conditions.iter().all(|c| c.observed_generation == Some(3)));
    assert_eq!(sr(&next, "Ready"), ("True", "Polled"));
    assert_eq!(
        next.last_handled_reconcile_at.as_deref(),
        Some("2026-01-01T00:00:30Z")
    );
    assert_eq!(
        next.last_poll_time, first.last_poll_time,
        "no poll, no new poll time"
    );
    input = Input {
        previous: Some(&next),
        generation: Some(3),
        outcome: Outcome::Suspended,
        handled_request: None,
        now: ts("2026-01-01T00:01:00Z"),
        heartbeat: HEARTBEAT,
        pacing: None,
    };
    assert_eq!(sr(&desired(input), "Ready"), ("False", "Suspended"));
}

/// Every outcome: Ready, Stalled and Reconciling, and what kstatus (Flux `wait`, Helm 4,
/// cli-utils) makes of the watch.
#[test]
fn kstatus_conditions_for_every_outcome() {
    type Case = (
        Outcome,
        (&'static str, &'static str),
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        // outcome, Ready (status, reason), Stalled, Reconciling, kstatus
        (
            Outcome::NotPolled,
            ("Unknown", "AwaitingFirstPoll"),
            "False",
            "True",
            "InProgress",
        ),
        (
            Outcome::Polled(counts([])),
            ("True", "Polled"),
            "False",
            "False",
            "Current",
        ),
        (
            failed(
                reason::INVALID_CREDENTIALS,
                "InvalidAccessKeyId.NotFound: no such key",
            ),
            ("False", "InvalidCredentials"),
            "True",
            "False",
            "Failed",
        ),
        (
            failed(reason::APP_NOT_FOUND, "InvalidAppId.NotFound: app not found"),
            ("False", "AppNotFound"),
            "True",
            "False",
            "Failed",
        ),
        (
            failed(reason::FORBIDDEN, "Forbidden.RAM: not authorized"),
            ("False", "Forbidden"),
            "True",
            "False",
            "Failed",
        ),
        (
            Outcome::InvalidSpec("spec.retention.maxAge: invalid duration".into()),
            ("False", "InvalidSpec"),
            "True",
            "False",
            "Failed",
        ),
        (
            Outcome::EndpointNotAllowed(
                "http://evil.example is not allowed by https://*.aliyuncs.com".into(),
            ),
            ("False", "EndpointNotAllowed"),
            "True",
            "False",
            "Failed",
        ),
        (
            failed(reason::THROTTLED, "Throttling.User: slow down"),
            ("False", "Throttled"),
            "False",
            "True",
            "InProgress",
        ),
        (
            failed(reason::PROVIDER_ERROR, "ServiceUnavailable: try later"),
            ("False", "ProviderError"),
            "False",
            "True",
            "InProgress",
        ),
        // Ready=False: Flux waits (a suspended watch is not "done"); Argo CD shows Suspended.
        (
            Outcome::Suspended,
            ("False", "Suspended"),
            "False",
            "False",
            "InProgress",
        ),
    ];
    for (outcome, ready, stalled, reconciling, kstatus_wanted) in cases {
        let label = format!("{outcome:?}");
        let s = run(None, outcome, "2026-01-01T00:00:00Z");
        assert_eq!(sr(&s, "Ready"), ready, "{label}");
        assert_eq!(sr(&s, "Stalled"), (stalled, ready.1), "{label}");
        assert_eq!(sr(&s, "Reconciling"), (reconciling, ready.1), "{label}");
        assert_eq!(s.observed_generation, Some(2), "{label}");
        assert!(
            s.conditions.iter().all(|c| c.observed_generation == Some(2)),
            "{label}"
        );
        assert_eq!(kstatus(2, &s), kstatus_wanted, "{label}");
        // One condition per type: the list is a map keyed by type.
        let mut types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        assert_eq!(types.len(), s.conditions.len(), "{label}");
    }
}

#[test]
fn reconciling_until_the_first_poll_then_stalled_until_fixed() {
    // The first write of a watch whose first poll is not due yet (e.g. waiting for budget).
    let waiting = run(None, Outcome::NotPolled, "2026-01-01T00:00:00Z");
    assert_eq!(sr(&waiting, "Reconciling"), ("True", "AwaitingFirstPoll"));
    assert_eq!(waiting.last_poll_time, None);
    // Nothing changes while nothing happens.
    assert_eq!(
        run(Some(&waiting), Outcome::NotPolled, "2026-01-01T00:00:10Z"),
        waiting
    );
    let rejected = run(
        Some(&waiting),
        failed(
            reason::INVALID_CREDENTIALS,
            "Secret ns/creds (spec.credentialsSecretRef.name) not found",
        ),
        "2026-01-01T00:00:20Z",
    );
    assert_eq!(sr(&rejected, "Stalled"), ("True", "InvalidCredentials"));
    assert_eq!(sr(&rejected, "Reconciling").0, "False");
    // A reconcile without a poll keeps the stalled verdict.
    let kept = run(Some(&rejected), Outcome::NotPolled, "2026-01-01T00:00:30Z");
    assert_eq!(kept, rejected);
    let fixed = run(
        Some(&rejected),
        Outcome::Polled(counts([])),
        "2026-01-01T00:01:00Z",
    );
    assert_eq!(sr(&fixed, "Stalled"), ("False", "Polled"));
    assert_eq!(
        cond(&fixed, "Stalled").last_transition_time,
        Time(ts("2026-01-01T00:01:00Z"))
    );
}

#[test]
fn endpoint_not_allowed_is_stalled_and_no_poll() {
    let s = run(
        None,
        Outcome::EndpointNotAllowed("spec.endpoint http://10.0.0.1 is outside --allowed-endpoints".into()),
        "2026-01-01T00:00:00Z",
    );
    assert_eq!(sr(&s, "Stalled"), ("True", "EndpointNotAllowed"));
    assert!(cond(&s, "Ready").message.contains("http://10.0.0.1"));
    assert_eq!(s.last_poll_time, None, "no call was made");
}

/// Issue 7 defect 6: a failing watch is not rewritten because the reply's RequestId changed.
#[test]
fn repeated_failure_with_a_new_request_id_writes_nothing() {
    let err = |code: &str, id: &str| {
        CloudError::new(
            ErrorKind::Throttled,
            "Request was denied due to user flow control.",
        )
        .with_code(code)
        .with_request_id(Some(id.into()))
        .with_status(400)
        .to_string()
    };
    let first = run(
        None,
        failed(reason::THROTTLED, &err("Throttling.User", "A1")),
        "2026-01-01T00:00:00Z",
    );
    let second = run(
        Some(&first),
        failed(reason::THROTTLED, &err("Throttling.User", "B2")),
        "2026-01-01T00:00:30Z",
    );
    assert_eq!(second, first, "same code, new RequestId: no write");
    assert!(
        cond(&second, "Ready").message.contains("A1"),
        "the first failure's RequestId stays"
    );
    // A new code is news.
    let other_code = run(
        Some(&first),
        failed(reason::THROTTLED, &err("Throttling.Api", "C3")),
        "2026-01-01T00:01:00Z",
    );
    assert!(cond(&other_code, "Ready").message.starts_with("Throttling.Api: "));
    assert_eq!(other_code.last_poll_time, Some(Time(ts("2026-01-01T00:01:00Z"))));
    // So is a new reason, even with the same code.
    let other_reason = run(
        Some(&first),
        failed(reason::PROVIDER_ERROR, &err("Throttling.User", "D4")),
        "2026-01-01T00:01:00Z",
    );
    assert_eq!(sr(&other_reason, "Ready"), ("False", "ProviderError"));
    assert!(cond(&other_reason, "Ready").message.contains("D4"));
    // After the heartbeat the poll time is refreshed, still with the first message.
    let heartbeat = run(
        Some(&first),
        failed(reason::THROTTLED, &err("Throttling.User", "E5")),
        "2026-01-01T00:10:00Z",
    );
    assert_eq!(heartbeat.conditions, first.conditions);
    assert_eq!(heartbeat.last_poll_time, Some(Time(ts("2026-01-01T00:10:00Z"))));
    // Messages without a code (our own, about the Secret) compare whole.
    let secret = |key: &str| {
        failed(
            reason::INVALID_CREDENTIALS,
            &format!("Secret ns/creds: missing key {key}"),
        )
    };
    let a = run(None, secret("accessKeyId"), "2026-01-01T00:00:00Z");
    let b = run(Some(&a), secret("accessKeySecret"), "2026-01-01T00:00:10Z");
    assert!(cond(&b, "Ready").message.ends_with("accessKeySecret"));
    // An invalid spec's message follows the spec, even when it looks like `field: detail`.
    let spec = |m: &str| Outcome::InvalidSpec(m.into());
    let a = run(
        None,
        spec("spec.retention.maxAge: bad unit"),
        "2026-01-01T00:00:00Z",
    );
    let b = run(
        Some(&a),
        spec("spec.retention.maxAge: negative"),
        "2026-01-01T00:00:10Z",
    );
    assert_eq!(cond(&b, "Ready").message, "spec.retention.maxAge: negative");
}

#[test]
fn failure_identity_is_the_code_of_a_cloud_error() {
    let cases = [
        (
            "Throttling.User: slow down (RequestId X, HTTP 400)",
            "Throttling.User",
        ),
        (
            "InvalidAppId.NotFound: no app (RequestId Y)",
            "InvalidAppId.NotFound",
        ),
        ("Transport: connection refused", "Transport"),
        (
            "Secret ns/creds (spec.credentialsSecretRef.name) not found",
            "Secret ns/creds (spec.credentialsSecretRef.name) not found",
        ),
        (
            "Secret ns/creds: missing key token",
            "Secret ns/creds: missing key token",
        ),
        ("", ""),
    ];
    for (message, identity) in cases {
        assert_eq!(failure_identity(message), identity, "{message}");
    }
    // Every kind prints as `Code: ...`, with or without a code from the cloud.
    for kind in ErrorKind::ALL {
        let e = CloudError::new(kind, "m").with_request_id(Some("R".into()));
        assert_eq!(failure_identity(&e.to_string()), kind.as_str());
    }
}

#[test]
fn failure_reasons_and_which_stall() {
    use ErrorKind::*;
    let cases = [
        (Throttled, "Throttled", false),
        (InvalidCredentials, "InvalidCredentials", true),
        (SignatureMismatch, "InvalidCredentials", true),
        (Forbidden, "Forbidden", true),
        (AppNotFound, "AppNotFound", true),
        (OrderNotFound, "ProviderError", false),
        (BadRequest, "ProviderError", false),
        (ServerError, "ProviderError", false),
        (Transport, "ProviderError", false),
        (BadReply, "ProviderError", false),
        (TooLarge, "ProviderError", false),
        (ClockSkew, "ProviderError", false),
    ];
    assert_eq!(cases.len(), ErrorKind::ALL.len());
    for (kind, reason, stalls) in cases {
        assert_eq!(failure_reason(kind), reason, "{kind:?}");
        assert_eq!(is_stalled(reason), stalls, "{kind:?}");
    }
    for r in [reason::INVALID_SPEC, reason::ENDPOINT_NOT_ALLOWED] {
        assert!(is_stalled(r));
    }
    for r in [reason::POLLED, reason::SUSPENDED, reason::AWAITING_FIRST_POLL] {
        assert!(!is_stalled(r));
    }
}

#[test]
fn reason_labels_are_a_closed_set() {
    assert_eq!(reason_label(Some(reason::THROTTLED)), reason::THROTTLED);
    assert_eq!(reason_label(Some(reason::POLLED)), reason::POLLED);
    assert_eq!(reason_label(None), reason::AWAITING_FIRST_POLL);
    assert_eq!(reason_label(Some("SomethingNew")), "Other");
}

// ---- latest order ----

fn order(id: &str, created: Option<&str>, phase: Option<Phase>) -> ChangeOrder {
    let mut o = ChangeOrder::new(
        &format!("w-{id}"),
        ChangeOrderSpec {
            provider: Provider::Edas,
            change_order_id: id.into(),
            app_id: Some("app".into()),
            organization_id: None,
            app_name: None,
            order_type: None,
            type_code: None,
            description: None,
            creator: None,
            create_time: created.map(|t| Time(ts(t))),
            batch_type: None,
            env_names: vec![],
        },
    );
    o.status = phase.map(|p| {
        let reason = match p {
            Phase::Running => "Executing",
            Phase::AwaitingConfirmation => "ManualBatchConfirmation",
            Phase::Cancelled => "Terminated",
            other => other.as_str(),
        };
        ChangeOrderStatus {
            phase: Some(p),
            reason: Some(reason.into()),
            finish_time: Some(Time(ts("2026-01-01T12:00:00Z"))),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: tri(p == Phase::Succeeded).into(),
                reason: reason.into(),
                message: format!("order {id} is {p}"),
                last_transition_time: Time(ts("2026-01-01T00:00:00Z")),
                observed_generation: None,
            }],
            ..Default::default()
        }
    });
    o
}

#[test]
fn latest_order_is_the_newest_by_create_time_then_id() {
    const T1: &str = "2026-01-01T01:00:00Z";
    const T2: &str = "2026-01-01T02:00:00Z";
    let cases: Vec<(&str, Vec<ChangeOrder>, Option<&str>)> = vec![
        ("no orders", vec![], None),
        ("one order", vec![order("a", Some(T1), None)], Some("a")),
        (
            "newest createTime wins whatever the list order",
            vec![order("b", Some(T2), None), order("a", Some(T1), None)],
            Some("b"),
        ),
        (
            "a newer order wins over an older one still running",
            vec![
                order("old", Some(T1), Some(Phase::Running)),
                order("new", Some(T2), Some(Phase::Pending)),
            ],
            Some("new"),
        ),
        (
            "ties on createTime go to the greater id",
            vec![
                order("b", Some(T1), None),
                order("c", Some(T1), None),
                order("a", Some(T1), None),
            ],
            Some("c"),
        ),
        (
            "an order without createTime counts as oldest",
            vec![order("z", None, None), order("a", Some(T1), None)],
            Some("a"),
        ),
        (
            "only orders without createTime: greatest id",
            vec![order("x", None, None), order("y", None, None)],
            Some("y"),
        ),
    ];
    for (label, orders, wanted) in cases {
        let got = latest_order(&orders).map(|l| l.change_order_id);
        assert_eq!(got.as_deref(), wanted, "{label}");
    }
    // Objects being deleted (retention) are skipped.
    let mut gone = order("b", Some(T2), None);
    gone.metadata.deletion_timestamp = Some(Time(ts(T2)));
    let got = latest_order(&[gone, order("a", Some(T1), None)]).map(|l| l.change_order_id);
    assert_eq!(got.as_deref(), Some("a"));
}

#[test]
fn latest_order_fields_and_finish_time_only_when_finished() {
    let running =
        latest_order(&[order("r", Some("2026-01-01T01:00:00Z"), Some(Phase::Running))]).expect("latest");
    assert_eq!(
        running,
        LatestOrder {
            name: "w-r".into(),
            change_order_id: "r".into(),
            phase: Some(Phase::Running),
            reason: Some("Executing".into()),
            create_time: Some(Time(ts("2026-01-01T01:00:00Z"))),
            finish_time: None,
            message: Some("order r is Running".into()),
        }
    );
    let done =
        latest_order(&[order("d", Some("2026-01-01T01:00:00Z"), Some(Phase::Failed))]).expect("latest");
    assert_eq!(done.finish_time, Some(Time(ts("2026-01-01T12:00:00Z"))));
    // Works on shared pointers (the reconciler's cache) and references alike.
    let shared = vec![std::sync::Arc::new(order("s", None, None))];
    assert_eq!(latest_order(&shared).map(|l| l.name).as_deref(), Some("w-s"));
    let owned = [order("o", None, None)];
    let refs: Vec<&ChangeOrder> = owned.iter().collect();
    assert_eq!(latest_order(&refs).map(|l| l.name).as_deref(), Some("w-o"));
    // Long messages are cut.
    let mut long = order("l", None, Some(Phase::Failed));
    long.status.as_mut().expect("status").conditions[0].message = "x".repeat(5000);
    let cut = latest_order(&[long]).and_then(|l| l.message).expect("message");
    assert_eq!(cut.chars().count(), LATEST_MESSAGE_CHARS + 1);
}

#[test]
fn latest_order_conditions_follow_its_phase() {
    let cases: Vec<(Option<Phase>, &str, &str, &str)> = vec![
        // phase, LatestOrderSucceeded, LatestOrderAwaitingInput, reason
        (None, "Unknown", "False", "OrderStatusPending"),
        (Some(Phase::Pending), "Unknown", "False", "Pending"),
        (Some(Phase::Running), "Unknown", "False", "Executing"),
        (
            Some(Phase::AwaitingConfirmation),
            "Unknown",
            "True",
            "ManualBatchConfirmation",
        ),
        (
            Some(Phase::AwaitingApproval),
            "Unknown",
            "True",
            "AwaitingApproval",
        ),
        (Some(Phase::Paused), "Unknown", "True", "Paused"),
        (Some(Phase::Unknown), "Unknown", "False", "Unknown"),
        (Some(Phase::Succeeded), "True", "False", "Succeeded"),
        (Some(Phase::Failed), "False", "False", "Failed"),
        (Some(Phase::Cancelled), "False", "False", "Terminated"),
    ];
    for (phase, succeeded, awaiting, reason) in cases {
        let orders = [order("o1", Some("2026-01-01T01:00:00Z"), phase)];
        let s = with_orders(None, Outcome::Polled(counts([])), "2026-01-01T00:00:00Z", &orders);
        assert_eq!(sr(&s, "LatestOrderSucceeded"), (succeeded, reason), "{phase:?}");
        assert_eq!(
            sr(&s, "LatestOrderAwaitingInput"),
            (awaiting, reason),
            "{phase:?}"
        );
        let m = &cond(&s, "LatestOrderSucceeded").message;
        assert!(m.starts_with("ChangeOrder w-o1 (change order o1): "), "{m}");
        // The watch's own verdict is about polling only.
        assert_eq!(kstatus(2, &s), "Current", "{phase:?}");
    }
    let none = with_orders(
        None,
        Outcome::Polled(counts([])),
        "2026-01-01T00:00:00Z",
        &[] as &[ChangeOrder],
    );
    assert_eq!(sr(&none, "LatestOrderSucceeded"), ("Unknown", "NoOrders"));
    assert_eq!(sr(&none, "LatestOrderAwaitingInput"), ("False", "NoOrders"));
    assert_eq!(none.latest_order, None);
}

#[test]
fn a_newer_order_takes_over_the_latest_order_conditions() {
    let old_done = order("old", Some("2026-01-01T01:00:00Z"), Some(Phase::Succeeded));
    let first = with_orders(
        None,
        Outcome::Polled(counts([])),
        "2026-01-01T00:00:00Z",
        std::slice::from_ref(&old_done),
    );
    assert_eq!(sr(&first, "LatestOrderSucceeded"), ("True", "Succeeded"));
    // A new release starts: the watch no longer reads as succeeded.
    let new_running = order("new", Some("2026-01-01T02:00:00Z"), Some(Phase::Running));
    let second = with_orders(
        Some(&first),
        Outcome::Polled(counts([])),
        "2026-01-01T00:01:00Z",
        &[old_done, new_running],
    );
    assert_eq!(sr(&second, "LatestOrderSucceeded"), ("Unknown", "Executing"));
    assert_eq!(
        second.latest_order.as_ref().map(|l| l.change_order_id.as_str()),
        Some("new")
    );
    assert_eq!(
        cond(&second, "LatestOrderSucceeded").last_transition_time,
        Time(ts("2026-01-01T00:01:00Z"))
    );
    // `desired` without orders keeps what is known, conditions included.
    let kept = run(Some(&second), Outcome::NotPolled, "2026-01-01T00:02:00Z");
    assert_eq!(kept, second);
    let failed_poll = run(
        Some(&second),
        failed(reason::THROTTLED, "Throttling: wait"),
        "2026-01-01T00:02:00Z",
    );
    assert_eq!(failed_poll.latest_order, second.latest_order);
    assert_eq!(sr(&failed_poll, "LatestOrderSucceeded"), ("Unknown", "Executing"));
}

#[test]
fn conditions_come_in_a_fixed_order() {
    let s = run(None, Outcome::Polled(counts([])), "2026-01-01T00:00:00Z");
    let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        [
            "Ready",
            "Stalled",
            "Reconciling",
            "LatestOrderSucceeded",
            "LatestOrderAwaitingInput"
        ]
    );
}

#[test]
fn condition_reasons_are_valid_for_the_api_server() {
    for (r, ok) in [
        ("Executing", true),
        ("Throttling.User", false),
        ("a_b:c,d", true),
        ("", false),
        ("1abc", false),
        ("abc,", false),
        ("has space", false),
    ] {
        assert_eq!(is_condition_reason(r), ok, "{r}");
    }
    // A bad reason on an order falls back to its phase.
    let mut o = order("x", None, Some(Phase::Running));
    o.status.as_mut().expect("status").reason = Some("not a reason".into());
    let s = with_orders(None, Outcome::Polled(counts([])), "2026-01-01T00:00:00Z", &[o]);
    assert_eq!(cond(&s, "LatestOrderSucceeded").reason, "Running");
}

#[test]
fn paced_interval_only_when_the_budget_slows_the_watch_down() {
    let s = Duration::from_secs;
    assert_eq!(paced_interval(s(60), s(60)), None);
    assert_eq!(
        paced_interval(s(60), s(62)),
        None,
        "within the budget's own margin"
    );
    assert_eq!(paced_interval(s(60), Duration::ZERO), None, "a shared list");
    assert_eq!(paced_interval(s(60), s(126)).as_deref(), Some("2m10s"));
    assert_eq!(paced_interval(s(300), s(3604)).as_deref(), Some("1h"));
    assert_eq!(paced_interval(s(10), s(21)).as_deref(), Some("20s"));
}
