//! The `run` subcommand: ChangeOrderWatch → ChangeOrder.

pub mod accounts;
pub mod action;
pub mod apply;
pub mod args;
pub mod backfill;
pub mod budget;
pub mod cache;
pub mod context;
pub mod events;
pub mod fetch;
pub mod identity;
pub mod leader;
pub mod merge_patch;
pub mod metrics;
pub mod namespace_lists;
pub mod plan;
pub mod receiver;
pub mod reconcile;
pub mod report;
pub mod run;
pub mod schedule;
pub mod spec;
pub mod watch_status;
pub mod watchset;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

pub use args::RunArgs;
pub use context::{Context, Settings};

use crate::controller::cache::{LeanOrder, OrderCache};
use crate::controller::identity::Identities;
use crate::controller::metrics::Metrics;
use crate::crd::{ChangeOrder, ChangeOrderWatch, labels};
use changeorder_cloud::client::CloudClient;

/// Everything one controller instance needs besides the Kubernetes client.
#[derive(Clone)]
pub struct Runtime {
    pub settings: Settings,
    pub cloud: CloudClient,
    pub metrics: Metrics,
    pub concurrency: u16,
    /// Namespaces to serve; empty serves all.
    pub namespaces: Vec<String>,
    pub identity: String,
}

/// Run the controllers until `shutdown` resolves. `on_synced` is called once every cache
/// has its initial list.
pub async fn run_controllers(
    client: Client,
    rt: Runtime,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
    on_synced: impl FnOnce() + Send,
) {
    // Each namespace once, however the caller listed it: two controllers of one namespace
    // would poll every watch there twice.
    let namespaces = args::distinct_namespaces(&rt.namespaces);
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    // One keyless credential cache for the process: every scope's watches and actions share
    // its exchanges, bounded by the cloud client's timeouts.
    let identities = Arc::new(Identities::for_cloud(rt.settings.keyless.clone(), &rt.cloud));
    let mut synced = Vec::new();
    let mut runs = Vec::new();
    for scope in scopes {
        runs.push(action::controller(
            client.clone(),
            &rt,
            scope.clone(),
            identities.clone(),
            shutdown.clone(),
        ));
        let (sync, run) = controller_for(client.clone(), &rt, scope, identities.clone(), shutdown.clone());
        synced.push(sync);
        runs.push(run);
    }
    let all = futures::future::join_all(runs);
    let ready = async move {
        futures::future::join_all(synced).await;
        on_synced();
        futures::future::pending::<()>().await;
    };
    tokio::select! {
        _ = all => {}
        _ = ready => {}
    }
}

fn scoped<K>(client: Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// The Secret metadata cache of one scope (the namespaces served, or the cluster): names and
/// resourceVersions only, which is all the controller needs to notice a changed Secret. The API
/// sends metadata only (no `data`), and what metadata can carry is stripped before it is cached:
/// `kubectl apply` keeps the whole Secret, data included, in the
/// `last-applied-configuration` annotation, and managed fields can be large.
pub fn secret_metadata_reflector(
    api: Api<PartialObjectMeta<Secret>>,
    writer: reflector::store::Writer<PartialObjectMeta<Secret>>,
) -> impl futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>> + Send {
    reflector::reflector(
        writer,
        watcher(api, watcher::Config::default()).modify(strip_secret_metadata),
    )
}

/// Drops what reconciling never reads from a cached ChangeOrder: managed fields (often the
/// largest part of a small object), annotations (`kubectl apply` copies whole objects there)
/// and the identity fields nothing looks up in the cache. The watcher takes its resume point
/// from the event before this runs, and the store's key is namespace and name; writes and
/// Events use the API server's reply, never the cached copy. Every byte counts here: the cache
/// holds every order of every watch (see tests/bench/scale.sh).
pub fn strip_order_metadata(order: &mut ChangeOrder) {
    let m = &mut order.metadata;
    m.managed_fields = None;
    m.annotations = None;
    m.uid = None;
    m.resource_version = None;
    m.creation_timestamp = None;
    m.finalizers = None;
    m.generate_name = None;
    m.self_link = None;
    // Owners are compared by uid only (`plan::needs_spec_write`).
    for r in m.owner_references.iter_mut().flatten() {
        r.api_version = String::new();
        r.kind = String::new();
        r.name = String::new();
    }
}

/// Keeps of a Secret's metadata only its identity and version.
pub fn strip_secret_metadata(secret: &mut PartialObjectMeta<Secret>) {
    let m = &mut secret.metadata;
    m.annotations = None;
    m.labels = None;
    m.managed_fields = None;
    m.owner_references = None;
    m.finalizers = None;
    m.generate_name = None;
}

/// kubectl's copy of the whole object as last applied, kept in an annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from an object the operator caches whole (watches, actions) what it never reads:
/// managed fields, which the API server rewrites on every status write and which were the
/// largest part of each cached watch (12 MiB of heap at 1,000 watches), and kubectl's
/// last-applied copy of the object. Other annotations stay: the reconcile-request one is read.
/// Writes never send the cached object back, so nothing is lost on the server.
pub fn strip_cached_metadata<K: kube::Resource>(object: &mut K) {
    let m = object.meta_mut();
    m.managed_fields = None;
    if let Some(annotations) = m.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// A controller like `Controller::new`, whose store keeps objects without what
/// `strip_cached_metadata` drops.
pub fn lean_controller<K>(api: Api<K>, config: watcher::Config) -> Controller<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let objects = reflector::reflector(writer, watcher(api, config).modify(strip_cached_metadata::<K>))
        .applied_objects();
    Controller::for_stream(objects, reader)
}

/// How often the gauges are recomputed from the caches (see `controller_for`): how far they
/// may lag behind the watches and orders, and a deleted watch's series behind its deletion.
const GAUGE_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// How long reconciles in flight may run on after a shutdown signal.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

type Boxed = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// One controller over one scope (a namespace or the whole cluster): returns a future that
/// resolves when its caches are synced, and the controller's own future.
fn controller_for(
    client: Client,
    rt: &Runtime,
    ns: Option<String>,
    identities: Arc<Identities>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) -> (Boxed, Boxed) {
    let ns = ns.as_deref();
    let managed = format!("{}=changeorder-operator", labels::MANAGED_BY);
    let orders = Arc::new(OrderCache::default());
    let order_cache = orders.clone();
    let order_events = watcher(
        scoped::<LeanOrder>(client.clone(), ns),
        watcher::Config::default().labels(&managed),
    )
    .modify(|o| strip_order_metadata(&mut o.0))
    .default_backoff()
    .for_each(move |e| {
        match e {
            Ok(event) => order_cache.apply(event),
            Err(e) => tracing::warn!(error = %e, "ChangeOrder watch error"),
        }
        futures::future::ready(())
    });

    // Metadata only: the operator reads a Secret's data just when it polls with it. The store is
    // driven here, apart from the controller, so reconciles can wait for it to be complete; the
    // controller subscribes to its changes to poll again when a Secret changes.
    let (secrets, secrets_writer) = reflector::store_shared::<PartialObjectMeta<Secret>>(1024);
    let secret_changes = secrets_writer.subscribe();
    let secret_events = secret_metadata_reflector(
        scoped::<PartialObjectMeta<Secret>>(client.clone(), ns),
        secrets_writer,
    )
    .default_backoff()
    .for_each(|e| {
        if let Err(e) = e {
            tracing::warn!(error = %e, "Secret watch error");
        }
        futures::future::ready(())
    });

    let recorder = events::Events::new(client.clone(), rt.identity.clone());
    let controller = lean_controller(
        scoped::<ChangeOrderWatch>(client.clone(), ns),
        watcher::Config::default(),
    );
    let watches = controller.store();
    let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
    let ctx = Context::new(
        client.clone(),
        rt.cloud.clone(),
        orders.clone(),
        watches.clone(),
        secrets.clone(),
        rt.settings.clone(),
        rt.metrics.clone(),
        recorder,
        ns.map(str::to_string),
        synced_rx,
        identities,
    );
    // Gauges are refreshed on a tick, not after each reconcile: a refresh reads every watch, so
    // one per poll made a round of polls quadratic in the number of watches (at 1,000 watches
    // it took a whole core). A tick also removes a deleted watch's series, which no reconcile
    // would.
    let gauges_ctx = ctx.clone();
    let gauges = async move {
        let mut tick = tokio::time::interval(GAUGE_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            report::update_gauges(&gauges_ctx);
        }
    };

    let sets: Boxed = if rt.settings.watch_sets {
        Box::pin(watchset::controller(
            ctx.clone(),
            rt.concurrency,
            shutdown.clone(),
        ))
    } else {
        Box::pin(futures::future::pending())
    };

    let ctx_stopping = ctx.stopping_flag();
    let run = controller
        .watches_shared_stream(futures::stream::iter(secret_changes).flatten(), move |secret| {
            watches
                .state()
                .iter()
                .filter(|w| {
                    w.namespace() == secret.namespace()
                        && w.spec
                            .credentials_secret_ref
                            .as_ref()
                            .is_some_and(|r| r.name == secret.name_any())
                })
                .map(|w| ObjectRef::from_obj(w.as_ref()))
                .collect::<Vec<_>>()
        })
        .with_config(controller::Config::default().concurrency(rt.concurrency))
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
            futures::future::ready(())
        });
    let stopping = ctx_stopping.clone();
    let run = async move {
        // After the signal, reconciles in flight get a short grace period; new ones return at
        // once (see `Context::stopping`), so shutdown does not wait for scheduled polls.
        let deadline = async move {
            shutdown.await;
            tracing::debug!("no new polls: shutting down");
            stopping.store(true, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        };
        tokio::select! {
            _ = run => {}
            _ = order_events => {}
            _ = secret_events => {}
            _ = gauges => {}
            _ = sets => {}
            _ = deadline => tracing::warn!("reconciles still running after the grace period; stopping anyway"),
        }
    };
    let sync = async move {
        orders.ready().await;
        let _ = secrets.wait_until_ready().await;
        let _ = synced_tx.send(true);
        // The watch store is not awaited here: the controller already waits on it, and a
        // store's readiness wakes only one waiter.
    };
    (Box::pin(sync), Box::pin(run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_orders_keep_what_reconciling_reads_and_nothing_more() {
        let mut o: ChangeOrder = serde_json::from_value(serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrder",
            "metadata": {"name": "w-1", "namespace": "ns", "labels": {"a": "b"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "managedFields": [{"manager": "changeorder-operator", "operation": "Apply"}],
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "w", "uid": "u", "controller": true}],
                "generation": 2, "resourceVersion": "7", "uid": "0b5e0c3a-6f0e-4a4e-9d5c-2f1b7c0e8a11",
                "creationTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["x"],
                "deletionTimestamp": "2026-01-02T00:00:00Z"},
            "spec": {"provider": "sae", "changeOrderId": "1"}
        }))
        .expect("order");
        let before = o.clone();
        strip_order_metadata(&mut o);
        assert!(o.metadata.managed_fields.is_none() && o.metadata.annotations.is_none());
        assert!(o.metadata.uid.is_none() && o.metadata.resource_version.is_none());
        assert!(o.metadata.creation_timestamp.is_none() && o.metadata.finalizers.is_none());
        assert_eq!(o.metadata.labels, before.metadata.labels);
        let uids = |o: &ChangeOrder| {
            o.owner_references()
                .iter()
                .map(|r| r.uid.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(uids(&o), uids(&before));
        assert_eq!(o.metadata.deletion_timestamp, before.metadata.deletion_timestamp);
        assert_eq!(o.name_any(), before.name_any());
        assert_eq!(
            (o.metadata.generation, o.spec.clone()),
            (before.metadata.generation, before.spec)
        );
    }

    #[test]
    fn cached_watches_lose_managed_fields_and_the_last_applied_copy_only() {
        let mut w: ChangeOrderWatch = serde_json::from_value(serde_json::json!({
            "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrderWatch",
            "metadata": {"name": "w", "namespace": "ns", "labels": {"a": "b"},
                "annotations": {LAST_APPLIED: "{...}", crate::crd::RECONCILE_REQUEST_ANNOTATION: "1"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "generation": 2, "resourceVersion": "7", "uid": "u"},
            "spec": {"provider": "sae", "appId": "a", "credentialsSecretRef": {"name": "s"}}
        }))
        .expect("watch");
        let before = w.clone();
        strip_cached_metadata(&mut w);
        assert!(w.metadata.managed_fields.is_none());
        assert_eq!(
            w.annotations().keys().collect::<Vec<_>>(),
            [crate::crd::RECONCILE_REQUEST_ANNOTATION]
        );
        let mut expected = before;
        expected.metadata.managed_fields = None;
        expected.metadata.annotations = w.metadata.annotations.clone();
        assert_eq!(
            serde_json::to_value(&w).ok(),
            serde_json::to_value(&expected).ok()
        );
    }
}
