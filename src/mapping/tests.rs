use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("valid test timestamp")
}

fn cond<'a>(status: &'a ChangeOrderStatus, type_: &str) -> &'a Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .expect("condition present")
}

/// Every row of the contract's table: (provider, raw, phase, reason).
#[test]
fn classify_every_contract_row() {
    use Phase::*;
    let code = RawStatus::Code;
    let text = |s: &str| RawStatus::Text(s.to_string());
    let rows: Vec<(Provider, RawStatus, Phase, &str)> = vec![
        (Provider::Edas, code(0), Pending, "Preparing"),
        (Provider::Sae, code(0), Pending, "Preparing"),
        (Provider::Edas, code(1), Running, "Executing"),
        (Provider::Sae, code(1), Running, "Executing"),
        (Provider::Edas, code(2), Succeeded, "Succeeded"),
        (Provider::Sae, code(2), Succeeded, "Succeeded"),
        (Provider::Edas, code(3), Failed, "Failed"),
        (Provider::Sae, code(3), Failed, "Failed"),
        (Provider::Edas, code(6), Cancelled, "Terminated"),
        (Provider::Sae, code(6), Cancelled, "Terminated"),
        (Provider::Edas, code(7), Failed, "PartiallySucceeded"),
        (
            Provider::Edas,
            code(8),
            AwaitingConfirmation,
            "ManualBatchConfirmation",
        ),
        (
            Provider::Sae,
            code(8),
            AwaitingConfirmation,
            "ManualBatchConfirmation",
        ),
        (Provider::Edas, code(9), Running, "WaitingForNextBatch"),
        (Provider::Sae, code(9), Running, "WaitingForNextBatch"),
        (Provider::Edas, code(10), Failed, "SystemError"),
        (Provider::Sae, code(10), Failed, "SystemError"),
        (Provider::Sae, code(11), AwaitingApproval, "PendingApproval"),
        (Provider::Sae, code(12), Pending, "Approved"),
        (Provider::Appstack, text("INIT"), Pending, "Init"),
        (Provider::Appstack, text("PREPARING"), Pending, "Preparing"),
        (Provider::Appstack, text("RUNNING"), Running, "Running"),
        (Provider::Appstack, text("STOPPING"), Running, "Stopping"),
        (Provider::Appstack, text("SUSPENDING"), Running, "Suspending"),
        (Provider::Appstack, text("SUSPENDED"), Paused, "Suspended"),
        (Provider::Appstack, text("SUCCESS"), Succeeded, "Succeeded"),
        (Provider::Appstack, text("FAILED"), Failed, "Failed"),
        (Provider::Appstack, text("CANCELED"), Cancelled, "Canceled"),
        // Anything else is Unknown, including values valid only for the other product.
        (Provider::Sae, code(7), Unknown, "UnknownStatus"),
        (Provider::Edas, code(11), Unknown, "UnknownStatus"),
        (Provider::Edas, code(12), Unknown, "UnknownStatus"),
        (Provider::Edas, code(4), Unknown, "UnknownStatus"),
        (Provider::Sae, code(-1), Unknown, "UnknownStatus"),
        (Provider::Appstack, text("ROLLING_BACK"), Unknown, "UnknownStatus"),
        (Provider::Appstack, code(1), Unknown, "UnknownStatus"),
        (Provider::Edas, text("RUNNING"), Unknown, "UnknownStatus"),
        (Provider::Sae, RawStatus::Missing, Unknown, "UnknownStatus"),
    ];
    for (provider, raw, phase, reason) in rows {
        assert_eq!(classify(provider, &raw), (phase, reason), "{provider} {raw:?}");
    }
}

/// The conditions table of the contract, for every phase.
#[test]
fn conditions_follow_the_phase() {
    let now = ts("2026-01-01T00:00:00Z");
    // (provider, raw, Ready, Reconciling, Stalled, AwaitingInput)
    let rows = [
        (
            Provider::Edas,
            RawStatus::Code(0),
            "False",
            "True",
            "False",
            "False",
        ),
        (
            Provider::Edas,
            RawStatus::Code(1),
            "False",
            "True",
            "False",
            "False",
        ),
        (
            Provider::Edas,
            RawStatus::Code(8),
            "False",
            "True",
            "False",
            "True",
        ),
        (
            Provider::Sae,
            RawStatus::Code(11),
            "False",
            "True",
            "False",
            "True",
        ),
        (
            Provider::Appstack,
            RawStatus::Text("SUSPENDED".into()),
            "False",
            "True",
            "False",
            "True",
        ),
        (
            Provider::Edas,
            RawStatus::Code(2),
            "True",
            "False",
            "False",
            "False",
        ),
        (
            Provider::Edas,
            RawStatus::Code(3),
            "False",
            "False",
            "True",
            "False",
        ),
        (
            Provider::Sae,
            RawStatus::Code(6),
            "False",
            "False",
            "True",
            "False",
        ),
        (
            Provider::Edas,
            RawStatus::Code(42),
            "Unknown",
            "True",
            "False",
            "False",
        ),
    ];
    for (provider, raw, ready, reconciling, stalled, awaiting) in rows {
        let order = CloudOrder::new(provider, "id-1", raw.clone());
        let status = desired_status(&order, Some(3), None, now);
        let (phase, reason) = classify(provider, &raw);
        assert_eq!(status.phase, Some(phase));
        for (type_, want) in [
            (CONDITION_READY, ready),
            (CONDITION_RECONCILING, reconciling),
            (CONDITION_STALLED, stalled),
            (CONDITION_AWAITING_INPUT, awaiting),
            (CONDITION_DEGRADED, "False"),
        ] {
            let c = cond(&status, type_);
            assert_eq!(c.status, want, "{type_} for {provider} {raw:?}");
            assert_eq!(c.observed_generation, Some(3));
            assert_eq!(c.last_transition_time, Time(now));
            if type_ != CONDITION_DEGRADED {
                assert_eq!(c.reason, reason);
            }
            assert!(!c.message.is_empty());
        }
        assert_eq!(status.provider_status.as_deref(), Some(raw.to_string().as_str()));
    }
}

#[test]
fn sae_sub_status_one_is_degraded_while_running() {
    let mut order = CloudOrder::new(Provider::Sae, "id-1", RawStatus::Code(1));
    order.sub_status = Some(1);
    order.message = Some("batch 2 failed health check, roll back manually".into());
    let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
    let degraded = cond(&status, CONDITION_DEGRADED);
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "ExecutionException")
    );
    assert_eq!(
        degraded.message,
        "batch 2 failed health check, roll back manually"
    );
    assert_eq!(status.phase, Some(Phase::Running));
    assert_eq!(status.provider_sub_status, Some(1));
    order.sub_status = Some(0);
    let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
    assert_eq!(cond(&status, CONDITION_DEGRADED).status, "False");
}

#[test]
fn unknown_status_keeps_the_raw_value() {
    let order = CloudOrder::new(Provider::Appstack, "sn-1", RawStatus::Text("ROLLING_BACK".into()));
    let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
    assert_eq!(status.phase, Some(Phase::Unknown));
    assert_eq!(status.provider_status.as_deref(), Some("ROLLING_BACK"));
    assert!(cond(&status, CONDITION_READY).message.contains("ROLLING_BACK"));
}

#[test]
fn transition_time_moves_only_when_the_status_flips() {
    let t0 = ts("2026-01-01T00:00:00Z");
    let t1 = ts("2026-01-01T00:05:00Z");
    let running = CloudOrder::new(Provider::Edas, "id", RawStatus::Code(1));
    let first = desired_status(&running, Some(1), None, t0);
    // Same status later: nothing moves, so the object compares equal and no write is needed.
    assert_eq!(desired_status(&running, Some(1), Some(&first), t1), first);
    // Waiting for the next batch automatically: still Running, still no flip.
    let waiting = CloudOrder::new(Provider::Edas, "id", RawStatus::Code(9));
    let second = desired_status(&waiting, Some(1), Some(&first), t1);
    assert!(
        second
            .conditions
            .iter()
            .all(|c| c.last_transition_time == Time(t0))
    );
    // Succeeded: Ready and Reconciling flip, Stalled/AwaitingInput/Degraded do not.
    let done = CloudOrder::new(Provider::Edas, "id", RawStatus::Code(2));
    let third = desired_status(&done, Some(1), Some(&second), t1);
    for (type_, moved) in [
        (CONDITION_READY, true),
        (CONDITION_RECONCILING, true),
        (CONDITION_STALLED, false),
        (CONDITION_AWAITING_INPUT, false),
        (CONDITION_DEGRADED, false),
    ] {
        let want = if moved { t1 } else { t0 };
        assert_eq!(cond(&third, type_).last_transition_time, Time(want), "{type_}");
    }
}

#[test]
fn names_and_labels_are_valid_kubernetes_values() {
    assert_eq!(
        object_name("demo", "1074f3e2-e974-4a0e-9b2e-0123456789ab"),
        "demo-1074f3e2-e974-4a0e-9b2e-0123456789ab"
    );
    // Cleaning changed the id: a hash of the original keeps names distinct.
    assert_eq!(
        object_name("w", "ABC_def"),
        format!("w-abc-def-{}", id_hash("ABC_def"))
    );
    // The collisions and invalid names the old rule made.
    for (a, b) in [
        ("ABC", "abc"),
        ("a b", "a-b"),
        ("a_.b", "a-.b"),
        ("v1..2", "v1-2"),
    ] {
        assert_ne!(object_name("w", a), object_name("w", b), "{a} / {b}");
        assert!(is_dns_subdomain(&object_name("w", a)), "{}", object_name("w", a));
        assert!(is_dns_subdomain(&object_name("w", b)), "{}", object_name("w", b));
    }
    assert_eq!(
        object_name("w", "v1.2"),
        "w-v1.2",
        "valid ids keep the names they had"
    );
    let long = "x".repeat(400);
    let name = object_name("w", &long);
    assert!(name.len() <= 253, "{}", name.len());
    assert_ne!(
        name,
        object_name("w", &"x".repeat(401)),
        "distinct ids give distinct names"
    );
    let weird = object_name("w", "***");
    assert!(weird.starts_with("w-") && weird.len() > 2);
    assert_eq!(label_value("demo-edas-app"), "demo-edas-app");
    let l = label_value(&"a/b".repeat(40));
    assert!(l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
    assert_ne!(
        label_value("a/b"),
        label_value("a:b"),
        "lossy cleaning is disambiguated"
    );
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// For any order id: a valid object name, ≤ 253, under any valid watch name.
    #[test]
    fn any_id_gives_a_valid_name(id in "\\PC{0,300}|[a-zA-Z0-9._ -]{0,300}", watch in "[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?|[a-z]{253}") {
        let name = object_name(&watch, &id);
        proptest::prop_assert!(is_dns_subdomain(&name), "{name:?} from {id:?}");
        proptest::prop_assert!(valid_label_value(&label_value(&id)), "{id:?}");
        proptest::prop_assert!(valid_label_value(&label_value(&watch)));
    }

    /// Distinct ids give distinct names, in particular those that clean to the same text.
    #[test]
    fn distinct_ids_give_distinct_names(a in "[a-zA-Z0-9._ -]{0,80}", b in "[a-zA-Z0-9._ -]{0,80}") {
        proptest::prop_assume!(a != b);
        proptest::prop_assert_ne!(object_name("w", &a), object_name("w", &b));
    }
}

#[test]
fn cloud_text_is_cut_on_a_character_boundary() {
    let long = "é".repeat(MAX_TEXT_LEN);
    let cut_text = cut(&long, MAX_TEXT_LEN);
    assert!(cut_text.len() <= MAX_TEXT_LEN && cut_text.ends_with('…'));
    assert_eq!(cut("short", MAX_TEXT_LEN), "short");
    let mut order = CloudOrder::new(Provider::Sae, "big", RawStatus::Code(3));
    order.message = Some("x".repeat(2 << 20));
    order.batches = vec![Default::default(); 1000];
    let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
    let size = serde_json::to_string(&status).expect("json").len();
    assert!(
        size < 100_000,
        "a 2 MiB message and 1000 batches make {size} bytes"
    );
    assert_eq!(status.batches.len(), MAX_BATCHES);
}

#[test]
fn spec_and_batches_carry_what_the_cloud_said() {
    let mut order = CloudOrder::new(Provider::Edas, "co-1", RawStatus::Code(8));
    order.order_type = Some("Deploy".into());
    order.type_code = Some("CoDeploy".into());
    order.creator = Some("dev@example.com".into());
    order.batch_count = Some(3);
    order.current_batch = Some(2);
    order.batches = vec![changeorder_cloud::model::Batch {
        name: "Batch 1".into(),
        state: "2".into(),
        start_time: Some(ts("2026-01-01T00:00:00Z")),
        ..Default::default()
    }];
    let app = AppRef::Id("app-1".into());
    let origin = Origin {
        watch_name: "w",
        app: &app,
    };
    let spec = desired_spec(&order, &origin);
    assert_eq!(spec.app_id.as_deref(), Some("app-1"));
    assert_eq!(spec.order_type.as_deref(), Some("Deploy"));
    let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
    assert_eq!((status.batch_count, status.current_batch), (Some(3), Some(2)));
    assert_eq!(status.batches[0].name, "Batch 1");
    assert!(
        cond(&status, CONDITION_AWAITING_INPUT)
            .message
            .contains("batch 2 of 3")
    );
    let labels = order_labels(Provider::Edas, &origin);
    assert_eq!(
        labels.get(crate::crd::labels::APP).map(String::as_str),
        Some("app-1")
    );
}
