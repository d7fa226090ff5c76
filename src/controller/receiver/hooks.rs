//! The Kubernetes side of the receiver: which receiver a path names, its token, waking its
//! watches, and its status.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::crd::{
    ChangeOrderReceiver, ChangeOrderReceiverStatus, ChangeOrderWatch, RECEIVER_TOKEN_KEY,
    RECONCILE_REQUEST_ANNOTATION, receiver_path,
};

/// How often every receiver's status is checked again even without a change to it (a Secret
/// created or edited later is noticed within this).
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// A watch asked to poll less than this long ago is not asked again at once: the request is
/// deferred to the end of the window (once), so a flood of pushes costs at most two polls per
/// window and the last push is still followed by a poll.
pub const COALESCE_WINDOW: Duration = Duration::from_secs(5);

/// Per watch (namespace, name): when it was last asked to poll, and whether a deferred request
/// is already scheduled.
type Recent = Arc<std::sync::Mutex<HashMap<(String, String), (Instant, bool)>>>;

/// Receivers as the operator's caches see them, and the API client to act for them.
pub struct Hooks {
    client: Client,
    stores: Vec<Store<ChangeOrderReceiver>>,
    /// Serialises waking, so that concurrent pushes see each other's requests as pending and
    /// coalesce instead of each asking for a poll.
    waking: tokio::sync::Mutex<()>,
    recent: Recent,
    changed: tokio::sync::Notify,
}

/// The outcome of a push that authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Woken {
    /// Watches asked to poll now.
    pub requested: usize,
    /// Watches whose previous request was still pending, left as they were.
    pub pending: usize,
    /// Watches asked within the last [`COALESCE_WINDOW`]: asked again at its end, once.
    pub deferred: usize,
}

impl Hooks {
    /// Starts caching the receivers of `namespaces` (all when empty) and keeping their status.
    pub fn start(client: Client, namespaces: &[String]) -> Arc<Hooks> {
        let apis: Vec<Api<ChangeOrderReceiver>> = if namespaces.is_empty() {
            vec![Api::all(client.clone())]
        } else {
            namespaces
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect()
        };
        let mut stores = Vec::new();
        let mut streams = Vec::new();
        for api in apis {
            let (reader, writer) = reflector::store();
            stores.push(reader);
            streams.push(
                reflector::reflector(writer, watcher(api, watcher::Config::default()))
                    .default_backoff()
                    .touched_objects()
                    .boxed(),
            );
        }
        let hooks = Arc::new(Hooks {
            client,
            stores,
            waking: tokio::sync::Mutex::new(()),
            recent: Recent::default(),
            changed: tokio::sync::Notify::new(),
        });
        let events = Arc::clone(&hooks);
        tokio::spawn(async move {
            let mut all = futures::stream::select_all(streams);
            while let Some(event) = all.next().await {
                match event {
                    Ok(_) => events.changed.notify_one(),
                    Err(e) => tracing::warn!(error = %e, "watching ChangeOrderReceivers"),
                }
            }
        });
        tokio::spawn(keep_status(Arc::clone(&hooks)));
        hooks
    }

    /// Whether every cache has listed once (before that, an unknown path may be a known one).
    pub async fn ready(&self) {
        for store in &self.stores {
            let _ = store.wait_until_ready().await;
        }
    }

    /// The receiver served at `/hook/<id>`.
    pub fn find(&self, id: &str) -> Option<Arc<ChangeOrderReceiver>> {
        let path = format!("/hook/{id}");
        self.stores.iter().flat_map(|s| s.state()).find(|r| {
            r.metadata
                .uid
                .as_deref()
                .is_some_and(|uid| receiver_path(uid) == path)
        })
    }

    /// The receiver's token, or None when its Secret or key is missing or empty.
    pub async fn token(&self, receiver: &ChangeOrderReceiver) -> Result<Option<Vec<u8>>, kube::Error> {
        let ns = receiver.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let Some(secret) = secrets.get_opt(&receiver.spec.secret_ref.name).await? else {
            return Ok(None);
        };
        Ok(token_of(&secret))
    }

    /// Asks every watch the receiver names to poll now, except those whose last request has
    /// not been handled yet: a flood of pushes then costs one poll per watch, not one per push.
    pub async fn wake(&self, receiver: &ChangeOrderReceiver) -> Result<Woken, kube::Error> {
        let _one_at_a_time = self.waking.lock().await;
        let ns = receiver.namespace().unwrap_or_default();
        let api: Api<ChangeOrderWatch> = Api::namespaced(self.client.clone(), &ns);
        let mut watches = Vec::new();
        for name in receiver.spec.watches.iter().flatten() {
            if let Some(w) = api.get_opt(&name.0).await? {
                watches.push(w);
            }
        }
        if let Some(selector) = receiver.spec.watch_selector.as_ref()
            && !selector.match_labels.is_empty()
        {
            let labels = selector
                .match_labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            for w in api.list(&ListParams::default().labels(&labels)).await? {
                if !watches.iter().any(|have| have.name_any() == w.name_any()) {
                    watches.push(w);
                }
            }
        }
        let now = Timestamp::now();
        let value = format!("{now}/receiver/{}", receiver.name_any());
        let mut woken = Woken::default();
        for w in &watches {
            if request_pending(w) {
                woken.pending += 1;
                continue;
            }
            let key = (ns.clone(), w.name_any());
            match self.slot(&key) {
                Slot::Now => {
                    request_poll(&api, &key.1, &value).await?;
                    woken.requested += 1;
                }
                Slot::Later(at) => {
                    woken.deferred += 1;
                    let (api, recent, value) = (api.clone(), Arc::clone(&self.recent), value.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep_until(at).await;
                        let result = match api.get_opt(&key.1).await {
                            Ok(Some(w)) if !request_pending(&w) => request_poll(&api, &key.1, &value).await,
                            Ok(_) => Ok(()),
                            Err(e) => Err(e),
                        };
                        if let Err(e) = result {
                            tracing::warn!(error = %e, watch = %key.1, namespace = %key.0, "cannot request a deferred poll");
                        }
                        if let Ok(mut recent) = recent.lock() {
                            recent.insert(key, (Instant::now(), false));
                        }
                    });
                }
                Slot::Scheduled => woken.deferred += 1,
            }
        }
        if woken.requested > 0 {
            // Only when a poll was asked for: a flood of pushes does not become a flood of writes.
            let receivers: Api<ChangeOrderReceiver> = Api::namespaced(self.client.clone(), &ns);
            let status = serde_json::json!({"status": {"lastPushTime": crate::time::whole_seconds(now)}});
            receivers
                .patch_status(
                    &receiver.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&status),
                )
                .await?;
        }
        Ok(woken)
    }
}

/// What to do with a watch a push names.
enum Slot {
    /// Ask it to poll now.
    Now,
    /// Asked recently: ask again at this instant.
    Later(Instant),
    /// A deferred request is already scheduled.
    Scheduled,
}

impl Hooks {
    /// Claims the watch's slot in the coalescing window (see [`COALESCE_WINDOW`]).
    fn slot(&self, key: &(String, String)) -> Slot {
        let now = Instant::now();
        let Ok(mut recent) = self.recent.lock() else {
            return Slot::Now;
        };
        // Entries past their window say nothing any more; dropping them bounds the map.
        recent.retain(|_, (at, scheduled)| *scheduled || now.duration_since(*at) < COALESCE_WINDOW);
        match recent.get_mut(key) {
            None => {
                recent.insert(key.clone(), (now, false));
                Slot::Now
            }
            Some((_, true)) => Slot::Scheduled,
            Some((at, scheduled)) => {
                *scheduled = true;
                Slot::Later(*at + COALESCE_WINDOW)
            }
        }
    }
}

async fn request_poll(api: &Api<ChangeOrderWatch>, name: &str, value: &str) -> Result<(), kube::Error> {
    let patch = serde_json::json!({"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// The watch has a reconcile request its controller has not acted on yet.
fn request_pending(watch: &ChangeOrderWatch) -> bool {
    let requested = watch.annotations().get(RECONCILE_REQUEST_ANNOTATION);
    let handled = watch
        .status
        .as_ref()
        .and_then(|s| s.last_handled_reconcile_at.as_ref());
    requested.is_some() && requested != handled
}

/// The token of a Secret: key `token`, trailing whitespace dropped (files written by editors and
/// `echo` end in a newline nobody means to be part of the token).
fn token_of(secret: &Secret) -> Option<Vec<u8>> {
    let raw = secret.data.as_ref()?.get(RECEIVER_TOKEN_KEY)?;
    let mut token = raw.0.clone();
    while token.last().is_some_and(u8::is_ascii_whitespace) {
        token.pop();
    }
    (!token.is_empty()).then_some(token)
}

/// Writes each receiver's url and Ready condition whenever a receiver changes, and every
/// [`STATUS_EVERY`] for Secrets created or fixed later.
async fn keep_status(hooks: Arc<Hooks>) {
    hooks.ready().await;
    loop {
        for store in &hooks.stores {
            for receiver in store.state() {
                if let Err(e) = write_status(&hooks, &receiver).await {
                    tracing::warn!(error = %e, receiver = %receiver.name_any(), "cannot write receiver status");
                }
            }
        }
        tokio::select! {
            () = hooks.changed.notified() => {}
            () = tokio::time::sleep(STATUS_EVERY) => {}
        }
    }
}

async fn write_status(hooks: &Hooks, receiver: &ChangeOrderReceiver) -> Result<(), kube::Error> {
    let Some(uid) = receiver.metadata.uid.as_deref() else {
        return Ok(());
    };
    let previous = receiver.status.clone().unwrap_or_default();
    let (ready, reason, message) = match hooks.token(receiver).await {
        Ok(Some(_)) => (true, "Ready", "accepting pushes".to_string()),
        Ok(None) => (
            false,
            "SecretNotFound",
            format!(
                "Secret {} with a non-empty key {RECEIVER_TOKEN_KEY} not found",
                receiver.spec.secret_ref.name
            ),
        ),
        Err(kube::Error::Api(s)) if s.code == 403 => (
            false,
            "SecretForbidden",
            format!(
                "the operator may not read Secret {}",
                receiver.spec.secret_ref.name
            ),
        ),
        Err(e) => return Err(e),
    };
    let ready_condition = crate::conditions::condition(
        "Ready",
        crate::conditions::tri(ready),
        reason,
        message,
        receiver.metadata.generation,
        &previous.conditions,
        Timestamp::now(),
    );
    let status = ChangeOrderReceiverStatus {
        url: Some(receiver_path(uid)),
        observed_generation: receiver.metadata.generation,
        conditions: vec![ready_condition],
        last_push_time: previous.last_push_time.clone(),
    };
    if status == previous {
        return Ok(());
    }
    let api: Api<ChangeOrderReceiver> =
        Api::namespaced(hooks.client.clone(), &receiver.namespace().unwrap_or_default());
    let patch = serde_json::json!({"status": {
        "url": status.url,
        "observedGeneration": status.observed_generation,
        "conditions": status.conditions,
    }});
    api.patch_status(
        &receiver.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(token: &[u8]) -> Secret {
        Secret {
            data: Some([(RECEIVER_TOKEN_KEY.to_string(), ByteString(token.to_vec()))].into()),
            ..Secret::default()
        }
    }

    #[test]
    fn a_trailing_newline_is_not_part_of_the_token() {
        assert_eq!(token_of(&secret(b"abc\n")), Some(b"abc".to_vec()));
        assert_eq!(token_of(&secret(b"a b")), Some(b"a b".to_vec()));
        assert_eq!(token_of(&secret(b" \n")), None);
        assert_eq!(token_of(&Secret::default()), None);
    }

    #[test]
    fn a_request_is_pending_until_the_controller_records_it() {
        let mut w = ChangeOrderWatch::new(
            "w",
            serde_json::from_value(serde_json::json!({
                "provider": "sae", "appId": "a", "region": "cn-hangzhou",
                "credentialsSecretRef": {"name": "s"}
            }))
            .expect("spec"),
        );
        assert!(!request_pending(&w), "no request");
        w.annotations_mut()
            .insert(RECONCILE_REQUEST_ANNOTATION.to_string(), "t1".to_string());
        assert!(request_pending(&w), "not handled yet");
        w.status = Some(crate::crd::ChangeOrderWatchStatus {
            last_handled_reconcile_at: Some("t1".to_string()),
            ..Default::default()
        });
        assert!(!request_pending(&w), "handled");
    }
}
