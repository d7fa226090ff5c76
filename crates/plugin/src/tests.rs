use super::*;
use changeorder_operator::controller::watch_status::{self, Input, Outcome};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn order(name: &str, id: &str, phase: Option<Phase>) -> ChangeOrder {
    let mut o: ChangeOrder = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrder",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"provider": "sae", "changeOrderId": id, "createTime": "2026-01-01T00:00:00Z"},
    }))
    .expect("order");
    if let Some(p) = phase {
        o.status = Some(changeorder_operator::crd::ChangeOrderStatus {
            phase: Some(p),
            reason: Some(format!("{p}Reason")),
            ..Default::default()
        });
    }
    o
}

fn watch(name: &str, outcome: Outcome, orders: &[ChangeOrder]) -> ChangeOrderWatch {
    let mut w: ChangeOrderWatch = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch",
        "metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": {"provider": "sae", "region": "cn-hangzhou", "appId": "a", "credentialsSecretRef": {"name": "c"}},
    }))
    .expect("watch");
    w.status = Some(watch_status::desired_with_orders(
        Input {
            previous: None,
            generation: Some(1),
            outcome,
            handled_request: Some("r1".into()),
            now: ts("2026-01-01T00:10:00Z"),
            heartbeat: Duration::from_secs(600),
            pacing: None,
        },
        orders,
    ));
    w
}

#[test]
fn order_verdicts() {
    assert_eq!(order_verdict(None), Verdict::Pending);
    assert_eq!(order_verdict(Some(&order("a", "1", None))), Verdict::Pending);
    for (phase, decided) in [
        (Phase::Pending, None),
        (Phase::Running, None),
        (Phase::AwaitingConfirmation, None),
        (Phase::AwaitingApproval, None),
        (Phase::Paused, None),
        (Phase::Unknown, None),
        (Phase::Succeeded, Some(true)),
        (Phase::Failed, Some(false)),
        (Phase::Cancelled, Some(false)),
    ] {
        let v = order_verdict(Some(&order("a", "1", Some(phase))));
        match decided {
            None => assert_eq!(v, Verdict::Pending, "{phase}"),
            Some(true) => assert!(
                matches!(v, Verdict::Succeeded(ref m) if m.contains("changeorder/a")),
                "{v:?}"
            ),
            Some(false) => assert!(
                matches!(v, Verdict::Failed(ref m) if m.contains(phase.as_str())),
                "{v:?}"
            ),
        }
    }
}

#[test]
fn watch_verdicts_follow_the_latest_order_and_stalled() {
    let polled = || Outcome::Polled(watch_status::counts([]));
    let done = [order("w-1", "1", Some(Phase::Succeeded))];
    assert!(matches!(
        watch_verdict(Some(&watch("w", polled(), &done)), None),
        Verdict::Succeeded(_)
    ));
    let failed = [order("w-1", "1", Some(Phase::Succeeded)), {
        let mut o = order("w-2", "2", Some(Phase::Failed));
        o.spec.create_time = Some(Time(ts("2026-01-01T00:05:00Z")));
        o
    }];
    assert!(
        matches!(watch_verdict(Some(&watch("w", polled(), &failed)), None), Verdict::Failed(ref m) if m.contains("w-2"))
    );
    let running = [order("w-1", "1", Some(Phase::Running))];
    assert_eq!(
        watch_verdict(Some(&watch("w", polled(), &running)), None),
        Verdict::Pending
    );
    assert_eq!(
        watch_verdict(Some(&watch("w", polled(), &[])), None),
        Verdict::Pending
    );
    // A watch that cannot poll fails the wait instead of hanging until the timeout.
    let stalled = watch(
        "w",
        Outcome::Failed {
            reason: watch_status::reason::INVALID_CREDENTIALS,
            message: "InvalidAccessKeyId.NotFound: no such key".into(),
        },
        &done,
    );
    assert!(
        matches!(watch_verdict(Some(&stalled), None), Verdict::Failed(ref m) if m.contains("InvalidCredentials"))
    );
    // --refresh: nothing counts until the operator handled this request.
    let w = watch("w", polled(), &done);
    assert_eq!(watch_verdict(Some(&w), Some("r2")), Verdict::Pending);
    assert!(matches!(
        watch_verdict(Some(&w), Some("r1")),
        Verdict::Succeeded(_)
    ));
    // A spec the operator has not seen yet: the status may be about another app.
    let mut newer = w.clone();
    newer.metadata.generation = Some(2);
    assert_eq!(watch_verdict(Some(&newer), None), Verdict::Pending);
    assert_eq!(watch_verdict(None, None), Verdict::Pending);
}

#[test]
fn status_table_lines_up_and_shows_the_latest_order() {
    let polled = Outcome::Polled(watch_status::counts([Phase::AwaitingConfirmation]));
    let a = watch(
        "orders-api",
        polled,
        &[order("orders-api-9", "9", Some(Phase::AwaitingConfirmation))],
    );
    let b = watch("billing", Outcome::NotPolled, &[]);
    let table = status_table(&[a, b], false, ts("2026-01-01T03:00:00Z"));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("WATCH "), "{table}");
    assert!(lines[1].starts_with("billing "), "sorted by name: {table}");
    assert!(
        lines[1].contains("Unknown") && lines[1].contains("AwaitingFirstPoll"),
        "{table}"
    );
    for cell in [
        "orders-api",
        "sae",
        "True",
        "Polled",
        "9",
        "AwaitingConfirmation",
        "3h",
    ] {
        assert!(
            lines[2].split_whitespace().any(|c| c == cell),
            "{cell} missing: {table}"
        );
    }
    // Columns line up: every header starts where its cells start.
    let col = lines[0].find("LATEST ORDER").expect("column");
    assert_eq!(&lines[2][col..col + 1], "9", "{table}");
    let wide = status_table(
        &[watch("x", Outcome::NotPolled, &[])],
        true,
        ts("2026-01-01T00:00:00Z"),
    );
    assert!(wide.starts_with("NAMESPACE "), "{wide}");
}

#[test]
fn ages_read_like_kubectl() {
    let now = ts("2026-01-10T00:00:00Z");
    for (since, want) in [
        ("2026-01-09T23:59:15Z", "45s"),
        ("2026-01-09T23:30:00Z", "30m"),
        ("2026-01-09T19:00:00Z", "5h"),
        ("2026-01-07T00:00:00Z", "3d"),
        ("2026-01-11T00:00:00Z", "0s"),
    ] {
        assert_eq!(age(ts(since), now), want, "{since}");
    }
}

fn cli_ok(args: &[&str]) -> bool {
    Cli::try_parse_from(std::iter::once("kubectl-changeorder").chain(args.iter().copied()))
        .is_ok_and(|c| c.check().is_ok())
}

#[test]
fn the_command_line_parses() {
    let cli = Cli::try_parse_from([
        "kubectl-changeorder",
        "-n",
        "demo",
        "wait",
        "--latest",
        "w",
        "--refresh",
        "--timeout",
        "30m",
    ])
    .expect("parse");
    assert_eq!(cli.namespace.as_deref(), Some("demo"));
    match cli.command {
        Command::Wait {
            name,
            latest,
            refresh,
            timeout,
        } => {
            assert_eq!(
                (name, latest.as_deref(), refresh, timeout),
                (None, Some("w"), true, Duration::from_secs(1800))
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        Cli::try_parse_from(["kubectl-changeorder", "wait"]).is_err(),
        "a name or --latest is required"
    );
    assert!(Cli::try_parse_from(["kubectl-changeorder", "wait", "a", "--latest", "w"]).is_err());
    let refresh_alone =
        Cli::try_parse_from(["kubectl-changeorder", "wait", "a", "--refresh"]).expect("parses");
    assert!(refresh_alone.check().is_err(), "--refresh needs --latest");
    assert!(cli_ok(&["wait", "--latest", "w", "--refresh"]));
    assert!(Cli::try_parse_from(["kubectl-changeorder", "refresh", "w", "--wait"]).is_ok());
    assert!(Cli::try_parse_from(["kubectl-changeorder", "status", "-A"]).is_ok());
}
