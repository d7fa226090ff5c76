use super::claim::Expect;
use super::*;
use crate::crd::{ChangeOrderActionStatus, ChangeOrderWatch};
use changeorder_cloud::actions::Write;
use changeorder_cloud::model::{Batch, CloudOrder, Provider, RawStatus};

fn order(status: i64, batch: u32) -> CloudOrder {
    let mut o = CloudOrder::new(Provider::Sae, "o", RawStatus::Code(status));
    o.current_batch = Some(batch);
    o.batches = (1..=3)
        .map(|i| Batch {
            id: Some(format!("p{i}")),
            ..Default::default()
        })
        .collect();
    o
}

#[test]
fn confirm_needs_an_order_awaiting_confirmation_at_the_expected_batch() {
    assert_eq!(
        guard(ActionKind::Confirm, Some(2), &order(8, 2)),
        Ok(Write::Confirm {
            pipeline_id: "p2".into(),
            confirm: true
        })
    );
    let stale = guard(ActionKind::Confirm, Some(2), &order(8, 3)).expect_err("stale");
    assert_eq!(stale.reason, reason::GUARD_FAILED);
    assert!(stale.message.contains("batch 2"), "{}", stale.message);
    let running = guard(ActionKind::Confirm, None, &order(1, 2)).expect_err("running");
    assert!(running.message.contains("Running"), "{}", running.message);
    let mut nameless = order(8, 2);
    nameless.batches.clear();
    assert_eq!(
        guard(ActionKind::Confirm, None, &nameless).map_err(|v| v.reason),
        Err(reason::REJECTED)
    );
}

#[test]
fn abort_needs_an_order_in_flight() {
    assert_eq!(guard(ActionKind::Abort, None, &order(1, 1)), Ok(Write::Abort));
    assert_eq!(
        guard(ActionKind::AbortAndRollback, None, &order(8, 2)),
        Ok(Write::AbortAndRollback)
    );
    for done in [2, 3, 6] {
        assert_eq!(
            guard(ActionKind::Abort, None, &order(done, 1)).map_err(|v| v.reason),
            Err(reason::GUARD_FAILED)
        );
    }
}

#[test]
fn an_interrupted_call_is_settled_from_the_order_never_resent() {
    let before = observe(&order(8, 2));
    assert_eq!(before.pipeline_id.as_deref(), Some("p2"));
    let moved = settle(ActionKind::Confirm, &before, &order(1, 2), "x");
    assert_eq!((moved.phase, moved.reason), (ActionPhase::Succeeded, "Confirmed"));
    let next = settle(ActionKind::Confirm, &before, &order(8, 3), "x");
    assert_eq!(next.phase, ActionPhase::Succeeded);
    let same = settle(ActionKind::Confirm, &before, &order(8, 2), "x");
    assert_eq!(
        (same.phase, same.reason),
        (ActionPhase::Failed, reason::OUTCOME_UNKNOWN)
    );
    assert!(same.message.contains("console"), "{}", same.message);
    let running = observe(&order(1, 1));
    assert_eq!(
        settle(ActionKind::Abort, &running, &order(6, 1), "x").phase,
        ActionPhase::Succeeded
    );
    assert_eq!(
        settle(ActionKind::Abort, &running, &order(2, 1), "x").reason,
        reason::OUTCOME_UNKNOWN
    );
    assert_eq!(
        settle(ActionKind::Abort, &running, &order(1, 1), "x").reason,
        reason::OUTCOME_UNKNOWN
    );
}

#[test]
fn a_status_write_replaces_only_the_state_it_was_decided_on() {
    let st = |phase, attempt: Option<&str>| ChangeOrderActionStatus {
        phase: Some(phase),
        attempt_id: attempt.map(str::to_string),
        ..Default::default()
    };
    assert!(Expect::Unclaimed.allows(None));
    assert!(Expect::Unclaimed.allows(Some(&st(ActionPhase::Pending, None))));
    assert!(!Expect::Unclaimed.allows(Some(&st(ActionPhase::Executing, Some("a")))));
    assert!(!Expect::Unclaimed.allows(Some(&st(ActionPhase::Succeeded, None))));
    let mine = Expect::Attempt(Some("a".into()));
    assert!(mine.allows(Some(&st(ActionPhase::Executing, Some("a")))));
    assert!(
        !mine.allows(Some(&st(ActionPhase::Executing, Some("b")))),
        "another attempt"
    );
    assert!(
        !mine.allows(Some(&st(ActionPhase::Succeeded, Some("a")))),
        "already settled"
    );
}

#[test]
fn switches_and_providers() {
    let watch: ChangeOrderWatch = serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch",
        "metadata": {"name": "w"},
        "spec": {"provider": "sae", "appId": "a", "region": "r", "credentialsSecretRef": {"name": "s"},
                 "actions": {"allowed": ["Confirm"]}}
    }))
    .expect("watch");
    assert!(allowed_by_watch(&watch, ActionKind::Confirm).is_ok());
    let no = allowed_by_watch(&watch, ActionKind::Abort).expect_err("not allowed");
    assert_eq!(no.reason, reason::ACTION_NOT_ALLOWED);
    assert!(no.message.contains("spec.actions.allowed"));
    assert!(supported(Provider::Appstack, ActionKind::Confirm).is_err());
    assert!(supported(Provider::Edas, ActionKind::AbortAndRollback).is_ok());
    assert!(supported(Provider::Edas, ActionKind::Abort).is_ok());
}

/// A refusal of the API is taken at its word unless the order shows the effect (then the
/// answer was to a resend of a write the cloud carried out); a confirmation never explains an
/// order that was terminated.
#[test]
fn a_rejected_write_is_checked_against_the_order() {
    let before = observe(&order(8, 2));
    let same = settle_rejected(ActionKind::Confirm, &before, &order(8, 2), "Pipeline.Can.Not");
    assert_eq!((same.phase, same.reason), (ActionPhase::Failed, reason::REJECTED));
    assert!(same.message.contains("Pipeline.Can.Not"), "{}", same.message);
    let moved = settle_rejected(ActionKind::Confirm, &before, &order(1, 2), "Pipeline.Can.Not");
    assert_eq!((moved.phase, moved.reason), (ActionPhase::Succeeded, "Confirmed"));
    assert!(moved.message.contains("not sent again"), "{}", moved.message);
    let ended = settle(ActionKind::Confirm, &before, &order(6, 2), "x");
    assert_eq!(ended.reason, reason::OUTCOME_UNKNOWN, "{}", ended.message);
    let running = observe(&order(1, 1));
    let gone = settle_rejected(ActionKind::Abort, &running, &order(6, 1), "x");
    assert_eq!(gone.phase, ActionPhase::Succeeded);
    let done = settle_rejected(
        ActionKind::Abort,
        &running,
        &order(2, 1),
        "ChangeOrder.Can.Not.Abort",
    );
    assert_eq!(done.reason, reason::REJECTED);
}
