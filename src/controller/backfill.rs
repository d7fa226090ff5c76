//! History backfill: orders already finished when a watch first lists them are written from the
//! list alone (no batches, no message of the cloud's own). Each is described once, newest first,
//! from calls the account's budget spares (`Budget::spare`: never while a poller waits, only from
//! a bucket more than half full), between the watch's polls. A finished order does not change,
//! so once its details are stored (`status.detailed: true` on the ChangeOrder, which survives a
//! restart) it is never described again.

use std::time::Duration;

use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};

use crate::controller::apply::{self, FIELD_MANAGER};
use crate::controller::context::{Context, Memory};
use crate::controller::fetch::{self, Fetched};
use crate::controller::plan::{self, Existing, MAX_DESCRIBE_TRIES};
use crate::controller::spec::WatchConfig;
use crate::crd::{ChangeOrder, ChangeOrderWatch, HistoryProgress};
use changeorder_cloud::credentials::Credentials;

/// How soon a watch with history still owed comes back for more spare calls.
pub const PAUSE: Duration = Duration::from_secs(3);

/// Most describes of one step without a call budget (the operator always has one; a cap keeps
/// a step as small as one with a budget).
const UNBUDGETED_STEP: u32 = 4;

/// One watch's view for a step.
pub struct Watch<'a> {
    pub watch: &'a ChangeOrderWatch,
    pub ns: &'a str,
    pub config: &'a WatchConfig,
    pub objects: &'a [std::sync::Arc<ChangeOrder>],
}

/// The orders still owed a describe, newest first, without those whose describe already
/// failed `MAX_DESCRIBE_TRIES` times in this process.
fn owed(existing: &Existing<'_>, config: &WatchConfig, memory: &Memory, now: Timestamp) -> Vec<String> {
    plan::backfill(existing, &config.retention, now)
        .into_iter()
        .filter(|id| memory.describe_misses.get(id).copied().unwrap_or(0) < MAX_DESCRIBE_TRIES)
        .collect()
}

/// Whether the watch has history to describe (decides whether to come back soon).
pub fn pending(w: &Watch<'_>, memory: &Memory, now: Timestamp) -> bool {
    let existing = plan::existing_by_id(w.objects, &w.watch.name_any());
    !owed(&existing, w.config, memory, now).is_empty()
}

/// One step: describe as many owed orders as the budget spares now, write what they gave, and
/// record the progress on the watch. Returns when to come back (`None`: nothing owed).
pub async fn step(
    ctx: &Context,
    w: &Watch<'_>,
    credentials: &Credentials,
    memory: &mut Memory,
    now: Timestamp,
) -> Result<Option<Duration>, kube::Error> {
    let existing = plan::existing_by_id(w.objects, &w.watch.name_any());
    let owed = owed(&existing, w.config, memory, now);
    let mut progress = plan::history(&existing, &w.config.retention, now);
    if owed.is_empty() {
        write_progress(ctx, w, progress, false).await?;
        return Ok(None);
    }
    let target = &w.config.target;
    let want = u32::try_from(owed.len()).unwrap_or(u32::MAX);
    let spare = ctx
        .cloud
        .spare(target, credentials, want)
        .unwrap_or(UNBUDGETED_STEP);
    let take = usize::try_from(spare).unwrap_or(usize::MAX).min(owed.len());
    if take == 0 {
        write_progress(ctx, w, progress, false).await?;
        return Ok(Some(PAUSE));
    }
    let ids: Vec<String> = owed.into_iter().take(take).collect();
    tracing::debug!(watch = %w.watch.name_any(), namespace = %w.ns, describes = ids.len(), "history backfill");
    let details = fetch::describe_each(&ctx.cloud, target, credentials, ids, &|| ctx.is_stopping()).await;
    let fetched = Fetched {
        listed: Vec::new(),
        from_cloud: false,
        shared: false,
        details,
    };
    let planned = plan::plan(plan::Input {
        watch: w.watch,
        app: &target.app,
        fetched: &fetched,
        existing: &existing,
        superseded: Vec::new(),
        retention: &w.config.retention,
        misses: &memory.describe_misses,
        now,
    });
    memory.describe_misses = planned.misses.clone();
    let described: Vec<String> = planned
        .desired
        .iter()
        .filter(|o| o.status.as_ref().and_then(|s| s.detailed) == Some(true))
        .map(|o| o.spec.change_order_id.clone())
        .collect();
    let applied = apply::apply(ctx, w.ns, planned, &existing, now).await?;
    let failed = described
        .iter()
        .filter(|id| applied.failures.iter().any(|f| f.order_id == **id))
        .count();
    let done = u32::try_from(described.len().saturating_sub(failed)).unwrap_or(u32::MAX);
    progress.described = progress.described.saturating_add(done);
    progress.remaining = progress.remaining.saturating_sub(done);
    write_progress(ctx, w, progress, done > 0).await?;
    Ok(Some(PAUSE))
}

/// Bring `status.history` up to date without describing anything.
pub async fn record(ctx: &Context, w: &Watch<'_>, now: Timestamp) -> Result<(), kube::Error> {
    let existing = plan::existing_by_id(w.objects, &w.watch.name_any());
    write_progress(ctx, w, plan::history(&existing, &w.config.retention, now), false).await
}

/// Record the progress in `status.history`, only when it changed; a watch that never had
/// history to describe gets no such field. `described_now`: this step described history, so
/// the field is written even when that was all of it (nothing is left to describe).
async fn write_progress(
    ctx: &Context,
    w: &Watch<'_>,
    progress: HistoryProgress,
    described_now: bool,
) -> Result<(), kube::Error> {
    let previous = w.watch.status.as_ref();
    let stored = previous.and_then(|s| s.history.as_ref());
    if stored == Some(&progress) || (stored.is_none() && progress.remaining == 0 && !described_now) {
        return Ok(());
    }
    let Some(previous) = previous else {
        // Not polled yet: the first poll's status comes first.
        return Ok(());
    };
    let mut desired = previous.clone();
    desired.history = Some(progress);
    let api: Api<ChangeOrderWatch> = Api::namespaced(ctx.client.clone(), w.ns);
    let patch = serde_json::json!({
        "apiVersion": ChangeOrderWatch::api_version(&()),
        "kind": ChangeOrderWatch::kind(&()),
        "status": desired,
    });
    api.patch_status(
        &w.watch.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
