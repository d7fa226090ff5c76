//! ChangeOrderWatchSet → ChangeOrderWatches: discover the apps every `discoveryInterval`, then
//! make the set's watches match (create the missing, update the changed, delete or release the
//! gone), writing only what differs, and report in the set's status.
//!
//! Safety rules: a watch the set does not own is never written (a name taken by one is a
//! conflict in the status; new watches are created with a plain create, which fails rather
//! than overwrite); watches are deleted only against a successful discovery, so a failing list
//! call (bad credentials, throttling, a malformed reply) loses nothing.

pub mod discover;
pub mod names;
pub mod render;
pub mod status;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio::time::Instant;

use self::discover::Failure;
use self::names::AppKey;
use crate::controller::apply::FIELD_MANAGER;
use crate::controller::args::parse_duration;
use crate::controller::context::{Context, Error};
use crate::controller::schedule;
use crate::controller::watch_status::{condition_type, reason as watch_reason};
use crate::crd::{ChangeOrderWatch, ChangeOrderWatchSet, DeletionPolicy, WATCH_SET_LABEL, WatchSetConflict};

/// Default `spec.discoveryInterval`.
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(300);

/// What this process remembers of one set between reconciles (lost on restart: the first
/// reconcile after a start discovers again before touching any watch).
#[derive(Clone, Debug, Default)]
struct Memory {
    apps: Option<Vec<AppKey>>,
    last_try: Option<Instant>,
    generation: Option<i64>,
    failure: Option<Failure>,
}

pub struct SetContext {
    ctx: Arc<Context>,
    memory: Mutex<HashMap<String, Memory>>,
}

/// The set controller of one scope, sharing the watch controller's context (client, cloud
/// client and its call budget, credentials, settings).
pub fn controller(
    ctx: Arc<Context>,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) -> impl Future<Output = ()> + Send {
    let client = ctx.client.clone();
    let ns = ctx.scope.clone();
    let sets = super::scoped::<ChangeOrderWatchSet>(client.clone(), ns.as_deref());
    let watches = super::scoped::<ChangeOrderWatch>(client, ns.as_deref());
    let sctx = Arc::new(SetContext {
        ctx,
        memory: Mutex::default(),
    });
    Controller::new(sets, watcher::Config::default())
        .owns(watches, watcher::Config::default().labels(WATCH_SET_LABEL))
        .with_config(controller::Config::default().concurrency(concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, sctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "watch set controller event");
            }
            futures::future::ready(())
        })
}

fn error_policy(_set: Arc<ChangeOrderWatchSet>, error: &Error, sctx: Arc<SetContext>) -> Action {
    tracing::warn!(error = %error, "watch set reconcile failed");
    Action::requeue(schedule::jitter(
        Duration::from_secs(5).min(sctx.ctx.settings.max_error_backoff),
        rand::random(),
    ))
}

async fn reconcile(set: Arc<ChangeOrderWatchSet>, sctx: Arc<SetContext>) -> Result<Action, Error> {
    let ctx = &sctx.ctx;
    if set.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes owned watches (they have the set as owner).
        ctx.metrics
            .set_watchset_apps(&set.namespace().unwrap_or_default(), &set.name_any(), None);
        return Ok(Action::await_change());
    }
    let ns = set.namespace().ok_or(Error::NoNamespace)?;
    let uid = set.uid().ok_or(Error::NoUid)?;
    let mut memory = sctx
        .memory
        .lock()
        .map(|m| m.get(&uid).cloned().unwrap_or_default())
        .unwrap_or_default();
    let interval = set
        .spec
        .discovery_interval
        .as_deref()
        .and_then(|d| parse_duration(d).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_DISCOVERY_INTERVAL);
    let retry = memory
        .failure
        .as_ref()
        .and_then(|f| f.retry_after)
        .unwrap_or(ctx.settings.max_error_backoff)
        .min(interval);
    let wait = if memory.failure.is_some() { retry } else { interval };
    let due =
        memory.generation != set.metadata.generation || memory.last_try.is_none_or(|t| t.elapsed() >= wait);

    let mut discovered_now = false;
    if due {
        discovered_now = true;
        memory.last_try = Some(Instant::now());
        memory.generation = set.metadata.generation;
        let result = match check_name(&set).and_then(|()| discover::config(&set.spec, ctx)) {
            Ok(config) => discover::discover(&set.spec, &config, &ns, ctx).await,
            Err(f) => Err(f),
        };
        match result {
            Ok(apps) => {
                memory.apps = Some(apps);
                memory.failure = None;
            }
            Err(f) => {
                tracing::info!(set = %set.name_any(), namespace = %ns, reason = f.reason, "discovery failed: {}", f.message);
                memory.failure = Some(f);
            }
        }
    }
    if let Ok(mut m) = sctx.memory.lock() {
        m.insert(uid.clone(), memory.clone());
    }

    let api: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!(
        "{WATCH_SET_LABEL}={}",
        crate::mapping::label_value(&set.name_any())
    );
    let mine: BTreeMap<String, ChangeOrderWatch> = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|w| render::owned_by(w, &set))
        .map(|w| (w.name_any(), w))
        .collect();

    let mut conflicts = Vec::new();
    let (mut ready, mut not_ready) = count_ready(mine.values());
    if let (Some(apps), None) = (&memory.apps, &memory.failure) {
        let converged = converge(&set, &api, apps, &mine, ctx).await?;
        conflicts = converged.conflicts;
        (ready, not_ready) = count_ready(mine.values().filter(|w| converged.kept.contains(&w.name_any())));
        not_ready += converged.created;
    }
    let desired = status::desired(status::Input {
        previous: set.status.as_ref(),
        generation: set.metadata.generation,
        failure: memory.failure.as_ref(),
        apps_found: memory
            .apps
            .as_ref()
            .map(|a| u32::try_from(a.len()).unwrap_or(u32::MAX)),
        ready,
        not_ready,
        conflicts,
        discovered_now,
        now: jiff::Timestamp::now(),
        heartbeat: ctx.settings.status_heartbeat,
    });
    ctx.metrics
        .set_watchset_apps(&ns, &set.name_any(), memory.apps.as_ref().map(Vec::len));
    if set.status.as_ref() != Some(&desired) {
        let sets: Api<ChangeOrderWatchSet> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = serde_json::json!({
            "apiVersion": ChangeOrderWatchSet::api_version(&()),
            "kind": ChangeOrderWatchSet::kind(&()),
            "status": desired,
        });
        sets.patch_status(
            &set.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    }
    let next = if memory.failure.is_some() { retry } else { interval };
    let left = memory
        .last_try
        .map(|t| next.saturating_sub(t.elapsed()))
        .unwrap_or(next);
    Ok(Action::requeue(left.max(Duration::from_secs(1))))
}

/// The set's name becomes a label value on its watches.
fn check_name(set: &ChangeOrderWatchSet) -> Result<(), Failure> {
    let name = set.name_any();
    if name.len() > names::MAX_NAME {
        return Err(Failure {
            reason: watch_reason::INVALID_SPEC,
            message: format!(
                "metadata.name {name:?} is longer than {} characters; it is the changeorder.io/watch-set label of the generated watches",
                names::MAX_NAME
            ),
            retry_after: None,
        });
    }
    Ok(())
}

/// What converging did.
struct Converged {
    conflicts: Vec<WatchSetConflict>,
    /// Names of the set's watches that were there and stay.
    kept: std::collections::BTreeSet<String>,
    created: u32,
}

/// Make the set's watches match `apps`.
async fn converge(
    set: &ChangeOrderWatchSet,
    api: &Api<ChangeOrderWatch>,
    apps: &[AppKey],
    mine: &BTreeMap<String, ChangeOrderWatch>,
    ctx: &Context,
) -> Result<Converged, Error> {
    let wanted = names::watch_names(&set.name_any(), apps);
    let mut conflicts = Vec::new();
    let mut created = 0u32;
    let kept = mine.keys().filter(|n| wanted.contains_key(*n)).cloned().collect();
    for (name, app) in &wanted {
        let Some(desired) = render::desired(set, name, app) else {
            return Err(Error::NoUid);
        };
        match mine.get(name) {
            Some(existing) if !render::needs_write(existing, &desired) => {}
            Some(_) => {
                api.patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&desired),
                )
                .await?;
            }
            None => {
                let taken = ctx
                    .watches
                    .get(&kube::runtime::reflector::ObjectRef::new(name).within(&api_namespace(set)))
                    .is_some_and(|w| !render::owned_by(&w, set));
                if taken {
                    conflicts.push(conflict(name, app));
                    continue;
                }
                match api
                    .create(
                        &PostParams {
                            field_manager: Some(FIELD_MANAGER.into()),
                            ..PostParams::default()
                        },
                        &desired,
                    )
                    .await
                {
                    Ok(_) => {
                        created += 1;
                        tracing::info!(set = %set.name_any(), watch = %name, app = app.label(), "created a watch");
                    }
                    // Someone else's watch has the name: never overwritten.
                    Err(kube::Error::Api(e)) if e.code == 409 => conflicts.push(conflict(name, app)),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    let policy = set.spec.deletion_policy.unwrap_or_default();
    for (name, watch) in mine {
        if wanted.contains_key(name) {
            continue;
        }
        let uid = watch.uid();
        match policy {
            DeletionPolicy::Delete => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid,
                        resource_version: None,
                    }),
                    ..DeleteParams::background()
                };
                match api.delete(name, &params).await {
                    Ok(_) => {
                        tracing::info!(set = %set.name_any(), watch = %name, "deleted the watch of an app no longer found")
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            DeletionPolicy::Keep => {
                let set_uid = set.uid().unwrap_or_default();
                let owners: Vec<_> = watch
                    .owner_references()
                    .iter()
                    .filter(|r| r.uid != set_uid)
                    .cloned()
                    .collect();
                let patch = serde_json::json!({"metadata": {
                    "ownerReferences": if owners.is_empty() { serde_json::Value::Null } else { serde_json::json!(owners) },
                    "labels": {WATCH_SET_LABEL: null},
                    "annotations": {render::RENDERED_HASH: null},
                }});
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                tracing::info!(set = %set.name_any(), watch = %name, "released the watch of an app no longer found (deletionPolicy Keep)");
            }
        }
    }
    Ok(Converged {
        conflicts,
        kept,
        created,
    })
}

fn api_namespace(set: &ChangeOrderWatchSet) -> String {
    set.namespace().unwrap_or_default()
}

fn conflict(name: &str, app: &AppKey) -> WatchSetConflict {
    WatchSetConflict {
        name: name.to_string(),
        app: app.label().to_string(),
    }
}

/// Ready and not Ready among `watches`.
fn count_ready<'a>(watches: impl Iterator<Item = &'a ChangeOrderWatch>) -> (u32, u32) {
    let (mut ready, mut not_ready) = (0u32, 0u32);
    for w in watches {
        let is_ready = w
            .status
            .as_ref()
            .and_then(|s| crate::conditions::find(&s.conditions, condition_type::READY))
            .is_some_and(|c| c.status == "True");
        if is_ready {
            ready += 1;
        } else {
            not_ready += 1;
        }
    }
    (ready, not_ready)
}
