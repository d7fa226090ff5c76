//! The cache of ChangeOrders, indexed by the watch they belong to. A poll reads only its own
//! watch's orders (a scan of every cached order per poll made a cold sync of 10,000 orders
//! quadratic), and the per-phase counts behind the gauges follow each change instead of being
//! recounted after every reconcile.
//!
//! It is fed by a watcher stream the way kube's reflector feeds its store: a relist is
//! collected apart and swapped in whole once complete, so a reader never sees half a list.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::controller::plan;

mod compact;
use crate::crd::{ChangeOrder, ChangeOrderSpec, ChangeOrderStatus, Phase, labels};
use crate::mapping::{CONDITION_AWAITING_INPUT, CONDITION_READY};
use compact::FinalOrder;

/// A watch's orders are found under (namespace, value of the watch label).
type WatchKey = (String, String);
/// One object: (namespace, name).
type ObjectKey = (String, String);

/// A ChangeOrder as the cache decodes it from the API server: of the metadata only what the
/// operator reads (and the resourceVersion the watcher resumes from). managedFields (the
/// largest part of a small object) and annotations are skipped by the parser instead of being
/// built and dropped: at a cold sync of thousands of orders that was a large share of the
/// operator's CPU, and its short-lived pieces, allocated between the cached object's own,
/// fragmented the heap.
#[derive(Clone, Debug)]
pub struct LeanOrder(pub ChangeOrder);

impl<'de> serde::Deserialize<'de> for LeanOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Meta {
            name: Option<String>,
            namespace: Option<String>,
            labels: Option<std::collections::BTreeMap<String, String>>,
            owner_references: Option<Vec<OwnerReference>>,
            generation: Option<i64>,
            resource_version: Option<String>,
            uid: Option<String>,
            deletion_timestamp: Option<Time>,
        }
        #[derive(serde::Deserialize)]
        struct Repr {
            metadata: Meta,
            spec: ChangeOrderSpec,
            status: Option<ChangeOrderStatus>,
        }
        let Repr {
            metadata: m,
            spec,
            status,
        } = Repr::deserialize(d)?;
        Ok(LeanOrder(ChangeOrder {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                labels: m.labels,
                owner_references: m.owner_references,
                generation: m.generation,
                resource_version: m.resource_version,
                uid: m.uid,
                deletion_timestamp: m.deletion_timestamp,
                ..ObjectMeta::default()
            },
            spec,
            status,
        }))
    }
}

impl kube::Resource for LeanOrder {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ChangeOrder::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        ChangeOrder::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        ChangeOrder::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        ChangeOrder::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

/// Drops from a final order (finished or gone: `plan::is_final`) what only judging and writing
/// it would read, since neither happens again: most of a watch's orders are final, so this is
/// most of the cache. Kept: its identity, creation time and phase for retention and the
/// counts, its reason and finish time, the Ready condition (the watch reports the newest
/// order's message) and the condition that changed last (when it settled, for retention).
/// The labels were read for the index before this; the owners are only compared for writes.
pub fn compact_final(order: &mut ChangeOrder) {
    let m = &mut order.metadata;
    m.labels = None;
    m.owner_references = None;
    let spec = &mut order.spec;
    spec.app_id = None;
    spec.organization_id = None;
    spec.app_name = None;
    spec.order_type = None;
    spec.type_code = None;
    spec.description = None;
    spec.creator = None;
    spec.batch_type = None;
    spec.env_names = Vec::new();
    let Some(status) = order.status.as_mut() else {
        return;
    };
    status.provider_status = None;
    status.batches = Vec::new();
    let conditions = std::mem::take(&mut status.conditions);
    // On a tie Ready is the one that changed last: it alone then says when the order settled.
    let last_changed = conditions
        .iter()
        .enumerate()
        .max_by_key(|(_, c)| (c.last_transition_time.0, c.type_ == CONDITION_READY))
        .map(|(i, _)| i);
    status.conditions = conditions
        .into_iter()
        .enumerate()
        .filter(|(i, c)| c.type_ == CONDITION_READY || Some(*i) == last_changed)
        .map(|(_, c)| c)
        .collect();
    // The collect above may reuse the old buffer, capacity and all.
    status.conditions.shrink_to_fit();
}

/// One cached order: in flight, whole; final, compact. Both boxed: a watch's hash table then
/// holds two pointers per order, and its spare capacity costs little.
enum Stored {
    Open(Arc<ChangeOrder>),
    Final(Box<FinalOrder>),
}

impl Stored {
    fn phase(&self) -> Option<Phase> {
        match self {
            Stored::Open(o) => o.status.as_ref()?.phase,
            Stored::Final(f) => f.phase(),
        }
    }
}

/// The orders of one watch. The watch's name is held once here and shared by every order's
/// entry in `Index::home`; each order's name once, shared by both maps.
#[derive(Default)]
struct Filed {
    watch: Arc<str>,
    orders: HashMap<Arc<str>, Stored>,
}

#[derive(Default)]
struct Index {
    by_watch: HashMap<WatchKey, Filed>,
    /// Where each object is filed (namespace, then name, to its watch label), to move it when
    /// its watch label changes and to find it when it is deleted.
    home: HashMap<String, HashMap<Arc<str>, Arc<str>>>,
    len: usize,
    phases: HashMap<Phase, u64>,
    /// Orders waiting for a person: their watch and since when (Unix seconds), so the per-watch
    /// "waiting since" gauge needs no scan of every order.
    awaiting: HashMap<ObjectKey, (WatchKey, i64)>,
}

impl Index {
    fn insert(&mut self, order: ChangeOrder) {
        let ns = order.namespace().unwrap_or_default();
        let name = order.name_any();
        let watch = order.labels().get(labels::WATCH).cloned().unwrap_or_default();
        let key = (ns.clone(), watch);
        let object = (ns, name);
        let filed_under = self
            .home
            .get(&object.0)
            .and_then(|names| names.get(object.1.as_str()));
        if filed_under.is_some_and(|w| **w != *key.1) {
            self.remove(&object);
        }
        match awaiting_since(&order) {
            Some(since) => self.awaiting.insert(object.clone(), (key.clone(), since)),
            None => self.awaiting.remove(&object),
        };
        let stored = if plan::is_final(&order) {
            let mut order = order;
            compact_final(&mut order);
            match FinalOrder::new(order) {
                Ok(compact) => Stored::Final(Box::new(compact)),
                Err(order) => Stored::Open(Arc::from(order)),
            }
        } else {
            Stored::Open(Arc::new(order))
        };
        self.count(Some(&stored), 1);
        let (ns, name) = object;
        let filed = self.by_watch.entry(key).or_insert_with_key(|(_, watch)| Filed {
            watch: Arc::from(watch.as_str()),
            orders: HashMap::new(),
        });
        let watch = filed.watch.clone();
        let previous = match filed.orders.get_mut(name.as_str()) {
            Some(slot) => Some(std::mem::replace(slot, stored)),
            None => {
                let name: Arc<str> = Arc::from(name);
                filed.orders.insert(name.clone(), stored);
                self.home.entry(ns).or_default().insert(name, watch);
                self.len += 1;
                None
            }
        };
        self.count(previous.as_ref(), -1);
    }

    fn remove(&mut self, object: &ObjectKey) {
        self.awaiting.remove(object);
        let Some(names) = self.home.get_mut(&object.0) else {
            return;
        };
        let Some(watch) = names.remove(object.1.as_str()) else {
            return;
        };
        if names.is_empty() {
            self.home.remove(&object.0);
        }
        self.len -= 1;
        let key = (object.0.clone(), watch.to_string());
        if let Some(filed) = self.by_watch.get_mut(&key) {
            let removed = filed.orders.remove(object.1.as_str());
            if filed.orders.is_empty() {
                self.by_watch.remove(&key);
            }
            self.count(removed.as_ref(), -1);
        }
    }

    fn count(&mut self, order: Option<&Stored>, by: i64) {
        if let Some(phase) = order.and_then(Stored::phase) {
            let n = self.phases.entry(phase).or_default();
            *n = n.saturating_add_signed(by);
        }
    }
}

pub struct OrderCache {
    live: RwLock<Index>,
    /// A relist in progress, swapped in at its end.
    relist: std::sync::Mutex<Option<Index>>,
    ready: tokio::sync::watch::Sender<bool>,
}

impl Default for OrderCache {
    fn default() -> Self {
        OrderCache {
            live: RwLock::default(),
            relist: std::sync::Mutex::default(),
            ready: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl OrderCache {
    /// Take one event of the watcher stream.
    pub fn apply(&self, event: Event<LeanOrder>) {
        match event {
            Event::Apply(LeanOrder(order)) => self.write().insert(order),
            Event::Delete(LeanOrder(order)) => self
                .write()
                .remove(&(order.namespace().unwrap_or_default(), order.name_any())),
            Event::Init => *self.relisting() = Some(Index::default()),
            Event::InitApply(LeanOrder(order)) => {
                self.relisting().get_or_insert_with(Index::default).insert(order)
            }
            Event::InitDone => {
                let fresh = self.relisting().take().unwrap_or_default();
                *self.write() = fresh;
                self.ready.send_replace(true);
            }
        }
    }

    /// The orders filed under a watch label in a namespace (final ones rebuilt from their
    /// compact form: a poll reads them once).
    pub fn of_watch(&self, ns: &str, watch_label: &str) -> Vec<Arc<ChangeOrder>> {
        self.read()
            .by_watch
            .get(&(ns.to_string(), watch_label.to_string()))
            .map(|filed| {
                filed
                    .orders
                    .iter()
                    .map(|(name, stored)| match stored {
                        Stored::Open(o) => o.clone(),
                        Stored::Final(f) => Arc::new(f.expand(ns, name)),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many cached orders are in each phase (phases without orders left out).
    pub fn phase_counts(&self) -> HashMap<Phase, u64> {
        let mut counts = self.read().phases.clone();
        counts.retain(|_, n| *n > 0);
        counts
    }

    /// For each watch with an order waiting for a person, since when its longest-waiting order
    /// has waited (Unix seconds), keyed by (namespace, value of the watch label).
    pub fn awaiting_input_since(&self) -> HashMap<WatchKey, i64> {
        let mut oldest: HashMap<WatchKey, i64> = HashMap::new();
        for (watch, since) in self.read().awaiting.values() {
            oldest
                .entry(watch.clone())
                .and_modify(|s| *s = (*s).min(*since))
                .or_insert(*since);
        }
        oldest
    }

    pub fn len(&self) -> usize {
        self.read().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once the first full list is in.
    pub async fn ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // Plain data: a panic elsewhere while writing cannot leave it unusable.
        self.live.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.live.write().unwrap_or_else(|p| p.into_inner())
    }

    fn relisting(&self) -> std::sync::MutexGuard<'_, Option<Index>> {
        self.relist.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Since when an order in a phase that waits for a person has waited: the transition time of
/// its `AwaitingInput` condition, which stays True from one such phase to the next.
fn awaiting_since(order: &ChangeOrder) -> Option<i64> {
    let status = order.status.as_ref()?;
    if !status.phase.is_some_and(Phase::awaits_input) {
        return None;
    }
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_AWAITING_INPUT && c.status == "True")?;
    Some(c.last_transition_time.0.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ChangeOrderStatus;

    fn order(ns: &str, name: &str, watch: &str, phase: Option<Phase>) -> LeanOrder {
        let mut o: ChangeOrder = serde_json::from_value(serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrder",
            "metadata": {"name": name, "namespace": ns, "labels": {labels::WATCH: watch}},
            "spec": {"provider": "sae", "changeOrderId": name}
        }))
        .expect("order");
        o.status = phase.map(|p| ChangeOrderStatus {
            phase: Some(p),
            ..Default::default()
        });
        LeanOrder(o)
    }

    fn names(cache: &OrderCache, ns: &str, watch: &str) -> Vec<String> {
        let mut n: Vec<String> = cache.of_watch(ns, watch).iter().map(|o| o.name_any()).collect();
        n.sort();
        n
    }

    #[test]
    fn orders_are_found_by_namespace_and_watch() {
        let cache = OrderCache::default();
        cache.apply(Event::Apply(order("a", "w-1", "w", Some(Phase::Running))));
        cache.apply(Event::Apply(order("a", "w-2", "w", Some(Phase::Succeeded))));
        cache.apply(Event::Apply(order("a", "v-1", "v", None)));
        cache.apply(Event::Apply(order("b", "w-1", "w", Some(Phase::Running))));
        assert_eq!(names(&cache, "a", "w"), ["w-1", "w-2"]);
        assert_eq!(names(&cache, "a", "v"), ["v-1"]);
        assert_eq!(names(&cache, "b", "w"), ["w-1"]);
        assert!(cache.of_watch("c", "w").is_empty());
        assert_eq!(cache.len(), 4);
        assert_eq!(
            cache.phase_counts(),
            HashMap::from([(Phase::Running, 2), (Phase::Succeeded, 1)])
        );
    }

    #[test]
    fn awaiting_input_since_is_the_oldest_wait_of_each_watch() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
        let waiting = |name: &str, watch: &str, phase: Phase, since: i64| {
            let mut o = order("a", name, watch, Some(phase));
            o.0.status.as_mut().expect("status").conditions = vec![Condition {
                type_: CONDITION_AWAITING_INPUT.into(),
                status: "True".into(),
                reason: phase.to_string(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: Time(jiff::Timestamp::from_second(since).expect("time")),
            }];
            o
        };
        let cache = OrderCache::default();
        cache.apply(Event::Apply(waiting(
            "w-1",
            "w",
            Phase::AwaitingConfirmation,
            1000,
        )));
        cache.apply(Event::Apply(waiting("w-2", "w", Phase::AwaitingApproval, 400)));
        cache.apply(Event::Apply(waiting("v-1", "v", Phase::Paused, 700)));
        cache.apply(Event::Apply(order("a", "u-1", "u", Some(Phase::Running))));
        let key = |w: &str| ("a".to_string(), w.to_string());
        assert_eq!(
            cache.awaiting_input_since(),
            HashMap::from([(key("w"), 400), (key("v"), 700)])
        );
        // w-2 goes on: w's wait is now w-1's own, not the sum or the older one.
        cache.apply(Event::Apply(order("a", "w-2", "w", Some(Phase::Running))));
        cache.apply(Event::Delete(order("a", "v-1", "v", None)));
        assert_eq!(cache.awaiting_input_since(), HashMap::from([(key("w"), 1000)]));
    }

    #[test]
    fn updates_replace_moves_follow_the_label_and_deletes_remove() {
        let cache = OrderCache::default();
        cache.apply(Event::Apply(order("a", "w-1", "w", Some(Phase::Running))));
        cache.apply(Event::Apply(order("a", "w-1", "w", Some(Phase::Succeeded))));
        assert_eq!(cache.phase_counts(), HashMap::from([(Phase::Succeeded, 1)]));
        // Someone relabels it: it belongs to the other watch now, and only there.
        cache.apply(Event::Apply(order("a", "w-1", "v", Some(Phase::Succeeded))));
        assert!(cache.of_watch("a", "w").is_empty());
        assert_eq!(names(&cache, "a", "v"), ["w-1"]);
        assert_eq!(cache.phase_counts(), HashMap::from([(Phase::Succeeded, 1)]));
        cache.apply(Event::Delete(order("a", "w-1", "v", None)));
        assert!(cache.is_empty() && cache.phase_counts().is_empty());
        // A delete of something never seen changes nothing.
        cache.apply(Event::Delete(order("a", "x", "v", Some(Phase::Failed))));
        assert!(cache.is_empty() && cache.phase_counts().is_empty());
    }

    #[test]
    fn the_lean_decode_keeps_what_reconciling_reads_and_skips_the_rest() {
        let json = serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrder",
            "metadata": {"name": "w-1", "namespace": "ns", "labels": {"a": "b"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "managedFields": [{"manager": "changeorder-operator", "operation": "Apply",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:provider": {}}}}],
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "w", "uid": "u", "controller": true}],
                "generation": 2, "resourceVersion": "7", "uid": "0b5e0c3a-6f0e-4a4e-9d5c-2f1b7c0e8a11",
                "creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"],
                "deletionTimestamp": "2026-01-02T00:00:00Z"},
            "spec": {"provider": "sae", "changeOrderId": "1"},
            "status": {"phase": "Running", "batches": [{"name": "b", "state": "1"}]}
        });
        let full: ChangeOrder = serde_json::from_value(json.clone()).expect("full");
        let LeanOrder(lean) = serde_json::from_value(json).expect("lean");
        assert!(lean.metadata.managed_fields.is_none() && lean.metadata.annotations.is_none());
        assert!(lean.metadata.creation_timestamp.is_none() && lean.metadata.finalizers.is_none());
        let mut expected = full.clone();
        expected.metadata.managed_fields = None;
        expected.metadata.annotations = None;
        expected.metadata.creation_timestamp = None;
        expected.metadata.finalizers = None;
        assert_eq!(lean, expected);
        // What the decode keeps is what the cache keeps once the watcher has its resume point.
        let (mut a, mut b) = (lean, full);
        crate::controller::strip_order_metadata(&mut a);
        crate::controller::strip_order_metadata(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn a_final_order_comes_back_as_compact_final_leaves_it() {
        let cache = OrderCache::default();
        let mut o = order("a", "w-1", "w", Some(Phase::Succeeded));
        o.0.spec.description = Some("dropped".into());
        o.0.status.as_mut().expect("status").reason = Some("Succeeded".into());
        cache.apply(Event::Apply(o.clone()));
        let mut want = o.0;
        compact_final(&mut want);
        assert_eq!(
            cache
                .of_watch("a", "w")
                .iter()
                .map(|o| (**o).clone())
                .collect::<Vec<_>>(),
            [want]
        );
        assert_eq!(cache.phase_counts(), HashMap::from([(Phase::Succeeded, 1)]));
        assert!(matches!(
            cache
                .read()
                .by_watch
                .values()
                .next()
                .and_then(|m| m.orders.values().next()),
            Some(Stored::Final(_))
        ));
    }

    #[tokio::test]
    async fn a_relist_is_swapped_in_whole_and_makes_the_cache_ready() {
        let cache = OrderCache::default();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), cache.ready())
                .await
                .is_err()
        );
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(order("a", "w-1", "w", Some(Phase::Running))));
        cache.apply(Event::InitDone);
        cache.ready().await;
        assert_eq!(names(&cache, "a", "w"), ["w-1"]);

        // A second relist: until it is done the old contents stay; then only the new list.
        cache.apply(Event::Init);
        cache.apply(Event::InitApply(order("a", "w-2", "w", Some(Phase::Failed))));
        assert_eq!(names(&cache, "a", "w"), ["w-1"]);
        cache.apply(Event::InitDone);
        assert_eq!(names(&cache, "a", "w"), ["w-2"]);
        assert_eq!(cache.phase_counts(), HashMap::from([(Phase::Failed, 1)]));
    }
}
