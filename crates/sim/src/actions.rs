//! The write calls: SAE `ConfirmPipelineBatch`, `AbortChangeOrder`,
//! `AbortAndRollbackChangeOrder`; EDAS `ContinuePipeline`, `AbortChangeOrder` and
//! `AbortAndRollbackChangeOrder`. Each changes
//! the order's course from the moment of the call (see [`World::intervene`]).
//!
//! Error codes: `Pipeline.Can.Not.Start.Next.Batch` (400) when the order does not wait at that
//! batch, as documented. Where no code is documented the simulator uses its own:
//! `InvalidPipeline.NotFound` (an unknown `PipelineId`) and `ChangeOrder.Can.Not.Abort` (the
//! order already finished).

use jiff::SignedDuration;
use serde_json::{Value, json};

use super::reply::{Handled, Reply, gateway_error, request_id, sae_error, sae_ok};
use super::routes::{Op, Params};
use super::scenario::{Offset2, Order, StatusValue, Step, TimeSpec};
use super::state::is_terminal;
use super::world::{View, World, fake_uuid};
use changeorder_cloud::model::Provider;

/// Scenario time a batch started by a confirmation runs before the order waits again (or, for
/// the last batch, succeeds); also how long a rollback order takes.
pub const BATCH_SPAN: SignedDuration = SignedDuration::from_secs(30);

const WAITING: i64 = 8;
const RUNNING: i64 = 1;
const SUCCEEDED: i64 = 2;
const TERMINATED: i64 = 6;

/// The app a write concerns, for per-app fault rules (decided before the write happens).
pub fn app_of(w: &World, op: &Op, p: &Params) -> Option<usize> {
    let provider = op.provider();
    if let Some(id) = p.get("ChangeOrderId") {
        return w.app_of_order(provider, id);
    }
    let pid = p.get("PipelineId")?;
    find_pipeline(w, provider, pid).map(|(v, _)| v.app_index)
}

pub fn handle(w: &World, op: &Op, p: &Params, host: &str) -> Handled {
    let provider = op.provider();
    let err = |status: u16, code: &str, message: &str| match provider {
        Provider::Sae => sae_error(status, code, message),
        _ => gateway_error(provider, status, code, message, host),
    };
    let result = match op {
        Op::SaeConfirmBatch | Op::EdasContinuePipeline => confirm(w, provider, p),
        Op::SaeAbort | Op::EdasAbort => abort(w, provider, p, false),
        Op::SaeAbortAndRollback | Op::EdasAbortAndRollback => abort(w, provider, p, true),
        _ => Err((404, "InvalidAction.NotFound", "not a write call".to_string())),
    };
    match result {
        Ok((app, data)) => Handled::new(Some(app), ok(provider, data)),
        Err((status, code, message)) => Handled::new(app_of(w, op, p), err(status, code, &message)),
    }
}

type Outcome = Result<(usize, Value), (u16, &'static str, String)>;

fn ok(provider: Provider, data: Value) -> Reply {
    match provider {
        Provider::Sae => sae_ok(data),
        // EDAS: integer Code 200 in a 200 reply.
        _ => Reply::ok(json!({"Code": 200, "Message": "success", "RequestId": request_id(), "Data": data})),
    }
}

fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, (u16, &'static str, String)> {
    p.get(name).ok_or_else(|| {
        (
            400,
            "InvalidParameter.NotEmpty",
            format!("You must specify the parameter {name}."),
        )
    })
}

/// The order one of whose batches has this `PipelineId`, and the batch's 0-based index.
fn find_pipeline<'a>(w: &'a World, provider: Provider, pid: &str) -> Option<(View<'a>, usize)> {
    w.scenario
        .apps
        .iter()
        .enumerate()
        .filter(|(_, a)| a.provider == provider)
        .flat_map(|(i, _)| w.views_of(i))
        .find_map(|v| {
            let i = (0..v.snap.batches.len()).find(|i| v.batch_id(*i) == pid)?;
            Some((v, i))
        })
}

fn step(after: SignedDuration, status: i64, batch: Option<u32>, message: String) -> Step {
    Step {
        after: Offset2(after),
        status: Some(StatusValue::Code(status)),
        sub_status: None,
        current_batch: batch,
        message: Some(message),
        batch_states: None,
    }
}

fn confirm(w: &World, provider: Provider, p: &Params) -> Outcome {
    let pid = required(p, "PipelineId")?;
    let go = match required(p, "Confirm")?.to_ascii_lowercase().as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err((
                400,
                "InvalidParameter",
                format!("Confirm must be true or false, got {other:?}"),
            ));
        }
    };
    let Some((v, index)) = find_pipeline(w, provider, pid) else {
        return Err((
            400,
            "InvalidPipeline.NotFound",
            format!("The pipeline {pid} does not exist."),
        ));
    };
    let batch = u32::try_from(index + 1).unwrap_or(u32::MAX);
    if v.snap.status != StatusValue::Code(WAITING) || v.snap.current_batch != batch {
        return Err((
            400,
            "Pipeline.Can.Not.Start.Next.Batch",
            format!(
                "The change order {} is not waiting for batch {batch} to be confirmed.",
                v.order.id
            ),
        ));
    }
    let now = w.now();
    let total = u32::try_from(v.snap.batches.len()).unwrap_or(u32::MAX);
    let steps = if go {
        let next = if batch < total {
            step(
                now + BATCH_SPAN,
                WAITING,
                Some(batch + 1),
                format!("waiting for confirmation of batch {}", batch + 1),
            )
        } else {
            step(
                now + BATCH_SPAN,
                SUCCEEDED,
                Some(batch),
                "all batches done".into(),
            )
        };
        vec![
            step(now, RUNNING, Some(batch), format!("batch {batch} confirmed")),
            next,
        ]
    } else {
        vec![step(
            now,
            TERMINATED,
            Some(batch),
            "ended by ConfirmPipelineBatch(Confirm=false)".into(),
        )]
    };
    let (app, id) = (v.app_index, v.order.id.clone());
    w.intervene(provider, &id, steps);
    Ok((app, json!({"ChangeOrderId": id, "PipelineId": pid})))
}

fn abort(w: &World, provider: Provider, p: &Params, rollback: bool) -> Outcome {
    let id = required(p, "ChangeOrderId")?;
    let Some(v) = w.order(provider, id) else {
        return Err((
            400,
            "InvalidChangeOrder.NotFound",
            "The current change order does not exist.".into(),
        ));
    };
    if is_terminal(provider, &v.snap.status) {
        return Err((
            400,
            "ChangeOrder.Can.Not.Abort",
            format!("The change order {id} has already finished."),
        ));
    }
    let now = w.now();
    let app = v.app_index;
    let batch = v.snap.current_batch;
    let batch_count = v.order.batch_count;
    let message = if rollback {
        "aborted and rolled back by AbortAndRollbackChangeOrder"
    } else {
        "aborted by AbortChangeOrder"
    };
    w.intervene(
        provider,
        id,
        vec![step(now, TERMINATED, Some(batch), message.into())],
    );
    let mut data = json!({"ChangeOrderId": id});
    if rollback {
        let new_id = fake_uuid(&format!("{provider}/{id}/rollback"));
        let order = Order {
            order_type: Some("CoRollback".into()),
            description: Some(format!("Rollback of {id}")),
            created_at: Some(TimeSpec::Relative(now)),
            source: Some("pop".into()),
            batch_count: batch_count.map(|_| 1),
            status: Some(StatusValue::Code(RUNNING)),
            message: Some(format!("rolling back {id}")),
            timeline: vec![step(
                now + BATCH_SPAN,
                SUCCEEDED,
                Some(1),
                "rollback finished".into(),
            )],
            ..Order::bare(new_id.clone())
        };
        w.add_order(app, order);
        data = json!({"ChangeOrderId": new_id});
    }
    Ok((app, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn world() -> World {
        let yaml = "apps:\n- provider: sae\n  appId: a\n  changeOrders:\n  - id: wait\n    batchCount: 3\n    batchType: manual\n    status: 8\n    currentBatch: 2\n  - id: done\n    status: 2\n- provider: edas\n  appId: e\n  changeOrders:\n  - id: ew\n    batchCount: 2\n    batchType: manual\n    status: 8\n    currentBatch: 2\n";
        World::new(Scenario::from_yaml(yaml).expect("scenario")).expect("world")
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn status(w: &World, provider: Provider, id: &str) -> (StatusValue, u32) {
        let v = w.order(provider, id).expect("order");
        (v.snap.status.clone(), v.snap.current_batch)
    }

    #[test]
    fn confirm_starts_the_waiting_batch_and_only_that_one() {
        let w = world();
        let v = w.order(Provider::Sae, "wait").expect("order");
        let (waiting, first) = (v.batch_id(1), v.batch_id(0));
        drop(v);
        let stale = handle(
            &w,
            &Op::SaeConfirmBatch,
            &params(&[("PipelineId", &first), ("Confirm", "true")]),
            "h",
        );
        assert_eq!(stale.reply.outcome, "Pipeline.Can.Not.Start.Next.Batch");
        assert_eq!(stale.reply.status.as_u16(), 400);
        let ok = handle(
            &w,
            &Op::SaeConfirmBatch,
            &params(&[("PipelineId", &waiting), ("Confirm", "true")]),
            "h",
        );
        assert_eq!(ok.reply.outcome, "OK", "{:?}", ok.reply.body);
        assert_eq!(status(&w, Provider::Sae, "wait"), (StatusValue::Code(1), 2));
        let again = handle(
            &w,
            &Op::SaeConfirmBatch,
            &params(&[("PipelineId", &waiting), ("Confirm", "true")]),
            "h",
        );
        assert_eq!(again.reply.outcome, "Pipeline.Can.Not.Start.Next.Batch");
        let unknown = handle(
            &w,
            &Op::SaeConfirmBatch,
            &params(&[("PipelineId", "nope"), ("Confirm", "true")]),
            "h",
        );
        assert_eq!(unknown.reply.outcome, "InvalidPipeline.NotFound");
    }

    #[test]
    fn confirm_false_ends_the_order() {
        let w = world();
        let pid = w.order(Provider::Edas, "ew").expect("order").batch_id(1);
        let r = handle(
            &w,
            &Op::EdasContinuePipeline,
            &params(&[("PipelineId", &pid), ("Confirm", "false")]),
            "h",
        );
        assert_eq!(r.reply.body["Code"], 200);
        assert_eq!(status(&w, Provider::Edas, "ew").0, StatusValue::Code(6));
    }

    #[test]
    fn abort_terminates_and_rollback_starts_an_order() {
        let w = world();
        let done = handle(&w, &Op::SaeAbort, &params(&[("ChangeOrderId", "done")]), "h");
        assert_eq!(done.reply.outcome, "ChangeOrder.Can.Not.Abort");
        let r = handle(
            &w,
            &Op::SaeAbortAndRollback,
            &params(&[("ChangeOrderId", "wait")]),
            "h",
        );
        assert_eq!(r.reply.outcome, "OK");
        assert_eq!(status(&w, Provider::Sae, "wait").0, StatusValue::Code(6));
        let new_id = r.reply.body["Data"]["ChangeOrderId"]
            .as_str()
            .expect("rollback id")
            .to_string();
        let (ai, _) = w.app_by_id(Provider::Sae, "a").expect("app");
        let ids: Vec<String> = w.views_of(ai).iter().map(|v| v.order.id.clone()).collect();
        assert!(ids.contains(&new_id), "{ids:?}");
        assert_eq!(status(&w, Provider::Sae, &new_id).0, StatusValue::Code(1));
        // Looked up by id, the added order is the one the app's list shows.
        assert_eq!(w.app_of_order(Provider::Sae, &new_id), Some(ai));
        let listed = w
            .views_of(ai)
            .into_iter()
            .find(|v| v.order.id == new_id)
            .expect("listed");
        let by_id = w.order(Provider::Sae, &new_id).expect("by id");
        assert_eq!(
            (listed.order_index, listed.snap.created),
            (by_id.order_index, by_id.snap.created)
        );
        // EDAS: the same, in its envelope.
        let (ei, _) = w.app_by_id(Provider::Edas, "e").expect("edas app");
        let r = handle(
            &w,
            &Op::EdasAbortAndRollback,
            &params(&[("ChangeOrderId", "ew")]),
            "h",
        );
        assert_eq!((r.reply.outcome.as_str(), r.app), ("OK", Some(ei)));
        assert_eq!(r.reply.body["Code"], 200);
        assert_eq!(status(&w, Provider::Edas, "ew").0, StatusValue::Code(6));
        let edas_new = r.reply.body["Data"]["ChangeOrderId"]
            .as_str()
            .expect("rollback id")
            .to_string();
        let rollback = w.order(Provider::Edas, &edas_new).expect("edas rollback order");
        assert_eq!(rollback.order.order_type.as_deref(), Some("CoRollback"));
        assert_eq!(rollback.snap.status, StatusValue::Code(1));
        drop(rollback);
        let again = handle(
            &w,
            &Op::EdasAbortAndRollback,
            &params(&[("ChangeOrderId", "ew")]),
            "h",
        );
        assert_eq!(again.reply.outcome, "ChangeOrder.Can.Not.Abort");
        let missing = handle(&w, &Op::EdasAbort, &params(&[]), "h");
        assert_eq!(missing.reply.outcome, "InvalidParameter.NotEmpty");
    }
}
