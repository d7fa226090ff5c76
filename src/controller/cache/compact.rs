//! A final order as the cache keeps it: what `compact_final` leaves of a ChangeOrder, in a
//! fraction of the room. Most of a watch's orders are final, so this is most of the cache; a
//! `ChangeOrder` is 808 bytes before any of its strings (every optional field of the object
//! metadata, spec and status has its slot), this about a quarter of that. The namespace and
//! name are the cache's keys, not repeated here. `expand` gives back the ChangeOrder that
//! `compact_final` would have kept, field for field (tested below).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

use crate::crd::{ChangeOrder, ChangeOrderSpec, ChangeOrderStatus, Phase};
use crate::mapping::{
    CONDITION_AWAITING_INPUT, CONDITION_DEGRADED, CONDITION_READY, CONDITION_RECONCILING, CONDITION_STALLED,
};
use changeorder_cloud::model::Provider;

/// A string that is most often one of a few known values (condition types and statuses,
/// phase names as reasons): those are not copied per order.
#[derive(Clone, Debug, PartialEq)]
enum Text {
    Known(&'static str),
    Other(Box<str>),
}

const KNOWN: [&str; 8] = [
    CONDITION_READY,
    CONDITION_RECONCILING,
    CONDITION_STALLED,
    CONDITION_AWAITING_INPUT,
    CONDITION_DEGRADED,
    "True",
    "False",
    "Unknown",
];

impl Text {
    fn new(s: String) -> Text {
        let known = KNOWN
            .iter()
            .copied()
            .chain(Phase::ALL.iter().map(|p| p.as_str()))
            .find(|k| *k == s);
        match known {
            Some(k) => Text::Known(k),
            None => Text::Other(s.into_boxed_str()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Text::Known(s) => s,
            Text::Other(s) => s,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct SmallCondition {
    type_: Text,
    status: Text,
    reason: Text,
    message: Box<str>,
    observed_generation: Option<i64>,
    last_transition_time: jiff::Timestamp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FinalOrder {
    generation: Option<i64>,
    deletion_timestamp: Option<jiff::Timestamp>,
    provider: Provider,
    change_order_id: Box<str>,
    create_time: Option<jiff::Timestamp>,
    /// Whether the object has a status at all (an order gone from the cloud may not).
    has_status: bool,
    observed_generation: Option<i64>,
    phase: Option<Phase>,
    reason: Option<Text>,
    provider_sub_status: Option<i64>,
    finish_time: Option<jiff::Timestamp>,
    batch_count: Option<u32>,
    current_batch: Option<u32>,
    /// `status.detailed`: whether the history backfill still owes this order a describe.
    detailed: Option<bool>,
    conditions: Box<[SmallCondition]>,
}

impl FinalOrder {
    /// The compact form of an order `compact_final` has been through; the order itself if it
    /// holds something the compact form has no room for (it then stays a ChangeOrder).
    pub fn new(order: ChangeOrder) -> Result<FinalOrder, Box<ChangeOrder>> {
        if !fits(&order) {
            return Err(Box::new(order));
        }
        let ChangeOrder {
            metadata,
            spec,
            status,
            ..
        } = order;
        let has_status = status.is_some();
        let status = status.unwrap_or_default();
        Ok(FinalOrder {
            generation: metadata.generation,
            deletion_timestamp: metadata.deletion_timestamp.map(|t| t.0),
            provider: spec.provider,
            change_order_id: spec.change_order_id.into_boxed_str(),
            create_time: spec.create_time.map(|t| t.0),
            has_status,
            observed_generation: status.observed_generation,
            phase: status.phase,
            reason: status.reason.map(Text::new),
            provider_sub_status: status.provider_sub_status,
            finish_time: status.finish_time.map(|t| t.0),
            batch_count: status.batch_count,
            current_batch: status.current_batch,
            detailed: status.detailed,
            conditions: status
                .conditions
                .into_iter()
                .map(|c| SmallCondition {
                    type_: Text::new(c.type_),
                    status: Text::new(c.status),
                    reason: Text::new(c.reason),
                    message: c.message.into_boxed_str(),
                    observed_generation: c.observed_generation,
                    last_transition_time: c.last_transition_time.0,
                })
                .collect(),
        })
    }

    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// The ChangeOrder this stands for, named `name` in `namespace`.
    pub fn expand(&self, namespace: &str, name: &str) -> ChangeOrder {
        let status = self.has_status.then(|| ChangeOrderStatus {
            observed_generation: self.observed_generation,
            phase: self.phase,
            reason: self.reason.as_ref().map(|r| r.as_str().to_string()),
            provider_status: None,
            provider_sub_status: self.provider_sub_status,
            finish_time: self.finish_time.map(Time),
            batch_count: self.batch_count,
            current_batch: self.current_batch,
            batches: Vec::new(),
            detailed: self.detailed,
            conditions: self
                .conditions
                .iter()
                .map(|c| Condition {
                    type_: c.type_.as_str().to_string(),
                    status: c.status.as_str().to_string(),
                    reason: c.reason.as_str().to_string(),
                    message: c.message.to_string(),
                    observed_generation: c.observed_generation,
                    last_transition_time: Time(c.last_transition_time),
                })
                .collect(),
        });
        ChangeOrder {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                generation: self.generation,
                deletion_timestamp: self.deletion_timestamp.map(Time),
                ..ObjectMeta::default()
            },
            spec: ChangeOrderSpec {
                provider: self.provider,
                change_order_id: self.change_order_id.to_string(),
                app_id: None,
                organization_id: None,
                app_name: None,
                order_type: None,
                type_code: None,
                description: None,
                creator: None,
                create_time: self.create_time.map(Time),
                batch_type: None,
                env_names: Vec::new(),
            },
            status,
        }
    }
}

/// Holds nothing beyond what `FinalOrder` keeps (what `compact_final` and the cache's
/// stripping leave), so `expand` gives back the same object.
fn fits(o: &ChangeOrder) -> bool {
    let m = &o.metadata;
    let meta_fits = m.labels.is_none()
        && m.owner_references.is_none()
        && m.annotations.is_none()
        && m.uid.is_none()
        && m.resource_version.is_none()
        && m.creation_timestamp.is_none()
        && m.deletion_grace_period_seconds.is_none()
        && m.finalizers.is_none()
        && m.generate_name.is_none()
        && m.managed_fields.is_none()
        && m.self_link.is_none()
        && m.name.is_some();
    let s = &o.spec;
    let spec_fits = s.app_id.is_none()
        && s.organization_id.is_none()
        && s.app_name.is_none()
        && s.order_type.is_none()
        && s.type_code.is_none()
        && s.description.is_none()
        && s.creator.is_none()
        && s.batch_type.is_none()
        && s.env_names.is_empty();
    let status_fits = o
        .status
        .as_ref()
        .is_none_or(|s| s.provider_status.is_none() && s.batches.is_empty());
    meta_fits && spec_fits && status_fits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished() -> ChangeOrder {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrder",
            "metadata": {"name": "w-1", "namespace": "ns", "labels": {"changeorder.io/watch": "w"},
                "generation": 3, "uid": "u", "resourceVersion": "9",
                "deletionTimestamp": "2026-01-02T00:00:00Z",
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "w", "uid": "u", "controller": true}]},
            "spec": {"provider": "edas", "changeOrderId": "co-1", "appId": "a", "type": "Deploy",
                "description": "d", "creator": "c", "createTime": "2026-01-01T00:00:00Z",
                "batchType": "Manual", "envNames": ["dev"]},
            "status": {"observedGeneration": 3, "phase": "Failed", "reason": "DeployFailed",
                "providerStatus": "3", "providerSubStatus": 2, "finishTime": "2026-01-01T01:00:00Z",
                "batchCount": 2, "currentBatch": 1,
                "batches": [{"name": "b", "state": "3"}],
                "conditions": [
                    {"type": "Ready", "status": "False", "reason": "DeployFailed", "message": "batch 1 failed",
                     "lastTransitionTime": "2026-01-01T01:00:00Z", "observedGeneration": 3},
                    {"type": "Stalled", "status": "True", "reason": "Failed", "message": "",
                     "lastTransitionTime": "2026-01-01T01:00:01Z"},
                    {"type": "Reconciling", "status": "False", "reason": "Failed", "message": "",
                     "lastTransitionTime": "2026-01-01T00:00:01Z"}]}
        }))
        .expect("order")
    }

    fn kept(mut o: ChangeOrder) -> ChangeOrder {
        crate::controller::strip_order_metadata(&mut o);
        super::super::compact_final(&mut o);
        o
    }

    #[test]
    fn expand_gives_back_what_compact_final_keeps() {
        let want = kept(finished());
        let compact = FinalOrder::new(want.clone()).expect("fits");
        assert_eq!(compact.expand("ns", "w-1"), want);
        assert_eq!(compact.phase(), Some(Phase::Failed));

        let mut bare = finished();
        bare.status = None;
        bare.spec.create_time = None;
        bare.metadata.deletion_timestamp = None;
        let want = kept(bare);
        assert_eq!(
            FinalOrder::new(want.clone()).expect("fits").expand("ns", "w-1"),
            want
        );
    }

    #[test]
    fn an_order_with_more_than_the_compact_form_holds_stays_whole() {
        let mut o = kept(finished());
        o.spec.description = Some("kept".into());
        assert_eq!(FinalOrder::new(o.clone()), Err(Box::new(o)));
        let mut o = kept(finished());
        o.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert!(FinalOrder::new(o).is_err());
    }

    #[test]
    fn the_compact_form_is_small() {
        assert!(std::mem::size_of::<FinalOrder>() * 3 < std::mem::size_of::<ChangeOrder>());
    }
}
