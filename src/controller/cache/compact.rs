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

/// A string that is most often one of a few known values (phase names as reasons): those are
/// not copied per order.
#[derive(Clone, Debug, PartialEq)]
enum Text {
    Known(&'static str),
    Other(Box<str>),
}

impl Text {
    fn new(s: String) -> Text {
        match Phase::ALL.iter().map(|p| p.as_str()).find(|k| *k == s) {
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

/// The condition types and statuses a compact order may hold, stored as their index here.
const CONDITION_TYPES: [&str; 5] = [
    CONDITION_READY,
    CONDITION_RECONCILING,
    CONDITION_STALLED,
    CONDITION_AWAITING_INPUT,
    CONDITION_DEGRADED,
];
const CONDITION_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

fn index_of(known: &[&str], s: &str) -> Option<u8> {
    known
        .iter()
        .position(|k| *k == s)
        .and_then(|i| u8::try_from(i).ok())
}

/// An optional number in 8 bytes instead of 16: `i64::MIN` stands for absent, so an order
/// holding that very value is not compacted (`fits`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Maybe(i64);

impl Maybe {
    const ABSENT: i64 = i64::MIN;

    fn fits(v: Option<i64>) -> bool {
        v != Some(Self::ABSENT)
    }

    fn new(v: Option<i64>) -> Maybe {
        Maybe(v.unwrap_or(Self::ABSENT))
    }

    fn get(self) -> Option<i64> {
        (self.0 != Self::ABSENT).then_some(self.0)
    }

    /// Timestamps are kept as whole Unix seconds, which is what the API server returns for
    /// the ones the operator writes; one with a fraction is not compacted (`fits`). jiff's
    /// range keeps a timestamp's seconds far from `ABSENT`.
    fn time_fits(t: Option<&Time>) -> bool {
        t.is_none_or(|t| t.0.subsec_nanosecond() == 0)
    }

    fn of_time(t: Option<Time>) -> Maybe {
        Maybe::new(t.map(|t| t.0.as_second()))
    }

    fn time(self) -> Option<Time> {
        self.get()
            .and_then(|s| jiff::Timestamp::from_second(s).ok())
            .map(Time)
    }
}

#[derive(Clone, Debug, PartialEq)]
struct SmallCondition {
    /// Index into `CONDITION_TYPES`.
    type_: u8,
    /// Index into `CONDITION_STATUSES`.
    status: u8,
    reason: Text,
    message: Box<str>,
    observed_generation: Maybe,
    last_transition_time: Maybe,
}

/// 128 bytes, and kept boxed by the cache so its hash tables hold a pointer per order.
#[derive(Clone, Debug, PartialEq)]
pub struct FinalOrder {
    generation: Maybe,
    deletion_timestamp: Maybe,
    create_time: Maybe,
    observed_generation: Maybe,
    provider_sub_status: Maybe,
    finish_time: Maybe,
    batch_count: Option<u32>,
    current_batch: Option<u32>,
    change_order_id: Box<str>,
    reason: Option<Text>,
    conditions: Box<[SmallCondition]>,
    provider: Provider,
    phase: Option<Phase>,
    /// Whether the object has a status at all (an order gone from the cloud may not).
    has_status: bool,
    /// `status.detailed`: whether the history backfill still owes this order a describe.
    detailed: Option<bool>,
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
            generation: Maybe::new(metadata.generation),
            deletion_timestamp: Maybe::of_time(metadata.deletion_timestamp),
            create_time: Maybe::of_time(spec.create_time),
            observed_generation: Maybe::new(status.observed_generation),
            provider_sub_status: Maybe::new(status.provider_sub_status),
            finish_time: Maybe::of_time(status.finish_time),
            batch_count: status.batch_count,
            current_batch: status.current_batch,
            change_order_id: spec.change_order_id.into_boxed_str(),
            reason: status.reason.map(Text::new),
            conditions: status
                .conditions
                .into_iter()
                .map(|c| SmallCondition {
                    // `fits` found both in their lists.
                    type_: index_of(&CONDITION_TYPES, &c.type_).unwrap_or_default(),
                    status: index_of(&CONDITION_STATUSES, &c.status).unwrap_or_default(),
                    reason: Text::new(c.reason),
                    message: c.message.into_boxed_str(),
                    observed_generation: Maybe::new(c.observed_generation),
                    last_transition_time: Maybe::of_time(Some(c.last_transition_time)),
                })
                .collect(),
            provider: spec.provider,
            phase: status.phase,
            has_status,
            detailed: status.detailed,
        })
    }

    pub fn phase(&self) -> Option<Phase> {
        self.phase
    }

    /// The ChangeOrder this stands for, named `name` in `namespace`.
    pub fn expand(&self, namespace: &str, name: &str) -> ChangeOrder {
        let status = self.has_status.then(|| ChangeOrderStatus {
            observed_generation: self.observed_generation.get(),
            phase: self.phase,
            reason: self.reason.as_ref().map(|r| r.as_str().to_string()),
            provider_status: None,
            provider_sub_status: self.provider_sub_status.get(),
            finish_time: self.finish_time.time(),
            batch_count: self.batch_count,
            current_batch: self.current_batch,
            batches: Vec::new(),
            detailed: self.detailed,
            conditions: self
                .conditions
                .iter()
                .map(|c| Condition {
                    type_: CONDITION_TYPES[usize::from(c.type_)].to_string(),
                    status: CONDITION_STATUSES[usize::from(c.status)].to_string(),
                    reason: c.reason.as_str().to_string(),
                    message: c.message.to_string(),
                    observed_generation: c.observed_generation.get(),
                    last_transition_time: c
                        .last_transition_time
                        .time()
                        .unwrap_or(Time(jiff::Timestamp::UNIX_EPOCH)),
                })
                .collect(),
        });
        ChangeOrder {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                generation: self.generation.get(),
                deletion_timestamp: self.deletion_timestamp.time(),
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
                create_time: self.create_time.time(),
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
    let numbers_fit = Maybe::fits(m.generation)
        && Maybe::time_fits(m.deletion_timestamp.as_ref())
        && Maybe::time_fits(s.create_time.as_ref());
    let status_fits = o.status.as_ref().is_none_or(|s| {
        s.provider_status.is_none()
            && s.batches.is_empty()
            && Maybe::fits(s.observed_generation)
            && Maybe::fits(s.provider_sub_status)
            && Maybe::time_fits(s.finish_time.as_ref())
            && s.conditions.iter().all(|c| {
                index_of(&CONDITION_TYPES, &c.type_).is_some()
                    && index_of(&CONDITION_STATUSES, &c.status).is_some()
                    && Maybe::fits(c.observed_generation)
                    && Maybe::time_fits(Some(&c.last_transition_time))
            })
    });
    meta_fits && spec_fits && numbers_fit && status_fits
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
    fn what_the_compact_form_cannot_hold_exactly_keeps_the_order_whole() {
        let fraction = |o: &mut ChangeOrder| {
            o.spec.create_time = Some(Time("2026-01-01T00:00:00.5Z".parse().expect("time")));
        };
        let absent_marker = |o: &mut ChangeOrder| o.metadata.generation = Some(i64::MIN);
        let unknown_type = |o: &mut ChangeOrder| {
            if let Some(s) = o.status.as_mut() {
                s.conditions[0].type_ = "Custom".into();
            }
        };
        let unknown_status = |o: &mut ChangeOrder| {
            if let Some(s) = o.status.as_mut() {
                s.conditions[0].status = "Maybe".into();
            }
        };
        let changes: [&dyn Fn(&mut ChangeOrder); 4] =
            [&fraction, &absent_marker, &unknown_type, &unknown_status];
        for change in changes {
            let mut o = kept(finished());
            change(&mut o);
            assert_eq!(FinalOrder::new(o.clone()), Err(Box::new(o)));
        }
    }

    #[test]
    fn the_compact_form_is_small() {
        assert!(std::mem::size_of::<FinalOrder>() <= 128);
        assert!(std::mem::size_of::<SmallCondition>() <= 64);
    }
}
