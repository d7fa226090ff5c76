//! `confirm`, `abort` and `rollback`: create a ChangeOrderAction and optionally wait for its
//! outcome. The manifest and the verdict are pure; `run` only talks to the API server.

use std::time::Duration;

use kube::api::PostParams;
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};

use super::{BoxError, EXIT_FAILED, EXIT_SUCCEEDED, EXIT_TIMEOUT, Verdict};
use changeorder_operator::crd::{ActionKind, ActionPhase, ChangeOrder, ChangeOrderAction};

/// A new request for `kind` on the ChangeOrder `order`; its name is generated from the order's.
pub fn manifest(
    order: &str,
    kind: ActionKind,
    expected_batch: Option<u32>,
) -> Result<ChangeOrderAction, BoxError> {
    let verb = match kind {
        ActionKind::Confirm => "confirm",
        ActionKind::Abort => "abort",
        ActionKind::AbortAndRollback => "rollback",
    };
    // generateName adds 5 characters; names are at most 253.
    let prefix: String = order.chars().take(200).collect();
    let mut spec = serde_json::json!({"changeOrder": order, "action": kind});
    if let Some(b) = expected_batch {
        spec["expectedBatch"] = serde_json::json!(b);
    }
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderAction",
        "metadata": {"generateName": format!("{prefix}-{verb}-")},
        "spec": spec,
    }))?)
}

/// How a request ended, as far as known.
pub fn action_verdict(action: Option<&ChangeOrderAction>) -> Verdict {
    let Some(a) = action else {
        return Verdict::Pending;
    };
    let Some(status) = a.status.as_ref() else {
        return Verdict::Pending;
    };
    let text = format!(
        "changeorderaction/{} {}: {}",
        a.name_any(),
        status.reason.as_deref().unwrap_or("-"),
        status.message.as_deref().unwrap_or("")
    );
    match status.phase {
        Some(ActionPhase::Succeeded) => Verdict::Succeeded(text),
        Some(ActionPhase::Failed) => Verdict::Failed(text),
        _ => Verdict::Pending,
    }
}

/// Create the request (for Confirm without `--batch`, guarded by the batch the ChangeOrder
/// shows now, so a confirmation typed for one batch never confirms a later one).
pub async fn run(
    client: Client,
    namespace: &str,
    order: &str,
    kind: ActionKind,
    batch: Option<u32>,
    wait: bool,
    timeout: Duration,
) -> Result<u8, BoxError> {
    let orders: Api<ChangeOrder> = Api::namespaced(client.clone(), namespace);
    let Some(co) = orders.get_opt(order).await? else {
        return Err(format!("changeorder/{order} not found in namespace {namespace}").into());
    };
    let expected = match (kind, batch) {
        (ActionKind::Confirm, None) => co.status.as_ref().and_then(|s| s.current_batch),
        (_, b) => b,
    };
    let api: Api<ChangeOrderAction> = Api::namespaced(client, namespace);
    let created = api
        .create(&PostParams::default(), &manifest(order, kind, expected)?)
        .await?;
    let name = created.name_any();
    match expected {
        Some(b) if kind == ActionKind::Confirm => {
            println!("changeorderaction/{name} created ({kind} changeorder/{order} if it waits at batch {b})")
        }
        _ => println!("changeorderaction/{name} created ({kind} changeorder/{order})"),
    }
    if !wait {
        return Ok(EXIT_SUCCEEDED);
    }
    let decided = |a: Option<&ChangeOrderAction>| !matches!(action_verdict(a), Verdict::Pending);
    let verdict = match tokio::time::timeout(timeout, await_condition(api, &name, decided)).await {
        Ok(found) => action_verdict(found?.as_ref()),
        Err(_) => Verdict::Pending,
    };
    Ok(match verdict {
        Verdict::Succeeded(m) => {
            println!("{m}");
            EXIT_SUCCEEDED
        }
        Verdict::Failed(m) => {
            println!("{m}");
            EXIT_FAILED
        }
        Verdict::Pending => {
            eprintln!("timed out after {timeout:?}");
            EXIT_TIMEOUT
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use changeorder_operator::crd::ChangeOrderActionStatus;

    #[test]
    fn manifests() {
        let a = manifest("w-1", ActionKind::Confirm, Some(2)).expect("manifest");
        assert_eq!(a.metadata.generate_name.as_deref(), Some("w-1-confirm-"));
        assert_eq!(a.spec.expected_batch, Some(2));
        let a = manifest("w-1", ActionKind::AbortAndRollback, None).expect("manifest");
        assert_eq!(a.metadata.generate_name.as_deref(), Some("w-1-rollback-"));
        assert_eq!(a.spec.action, ActionKind::AbortAndRollback);
    }

    #[test]
    fn verdicts() {
        let mut a = manifest("w-1", ActionKind::Abort, None).expect("manifest");
        assert_eq!(action_verdict(Some(&a)), Verdict::Pending);
        a.status = Some(ChangeOrderActionStatus {
            phase: Some(ActionPhase::Executing),
            ..Default::default()
        });
        assert_eq!(action_verdict(Some(&a)), Verdict::Pending);
        a.status = Some(ChangeOrderActionStatus {
            phase: Some(ActionPhase::Failed),
            reason: Some("GuardFailed".into()),
            message: Some("stale".into()),
            ..Default::default()
        });
        assert!(matches!(action_verdict(Some(&a)), Verdict::Failed(m) if m.contains("GuardFailed: stale")));
        a.status = Some(ChangeOrderActionStatus {
            phase: Some(ActionPhase::Succeeded),
            ..Default::default()
        });
        assert!(matches!(action_verdict(Some(&a)), Verdict::Succeeded(_)));
    }
}
