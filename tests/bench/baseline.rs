//! Benchmark helper (built as the `bench-baseline` example; used by `tests/bench/scale.sh` and
//! `tests/bench/lag.sh`). The client-go peer the operator is measured against is
//! `../shared/bench/rawclient`.
//!
//! `wait NS COUNT`: follows the ChangeOrders of NS with one watch (no repeated lists, so the
//! measurement does not load the API server) and prints the seconds until COUNT of them have a
//! phase in their status.
//!
//! `lag NS FILE`: follows the ChangeOrders of NS until interrupted and appends, for every status
//! change seen, `UNIX_SECONDS NAME PHASE CURRENT_BATCH` to FILE.

use std::collections::HashSet;
use std::io::Write;
use std::time::Instant;

use changeorder_operator::crd::ChangeOrder;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> Res<&str> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| "usage: bench-baseline wait NS COUNT | lag NS FILE".into())
    };
    let client = Client::try_default().await?;
    match arg(0)? {
        "wait" => println!("{:.3}", wait(client, arg(1)?, arg(2)?.parse()?).await?),
        "lag" => lag(client, arg(1)?, arg(2)?).await?,
        other => return Err(format!("unknown mode {other}").into()),
    }
    Ok(())
}

async fn wait(client: Client, ns: &str, count: usize) -> Res<f64> {
    let started = Instant::now();
    let api: Api<ChangeOrder> = Api::namespaced(client, ns);
    let mut done = HashSet::new();
    // Retried: a busy API server may reset the first watch request.
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(o) = events.try_next().await? {
        if o.status.as_ref().and_then(|s| s.phase).is_some() {
            done.insert(o.name_any());
            if done.len() >= count {
                return Ok(started.elapsed().as_secs_f64());
            }
        }
    }
    Err("watch ended".into())
}

async fn lag(client: Client, ns: &str, file: &str) -> Res<()> {
    let api: Api<ChangeOrder> = Api::namespaced(client, ns);
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    let mut seen = std::collections::HashMap::new();
    // Retried: a busy API server may reset the first watch request.
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(o) = events.try_next().await? {
        let Some(s) = o.status.as_ref() else { continue };
        let key = (s.phase, s.current_batch);
        if seen.insert(o.name_any(), key) != Some(key) {
            let phase = s.phase.map(|p| format!("{p:?}")).unwrap_or_default();
            let batch = s.current_batch.map(|b| b.to_string()).unwrap_or_default();
            let t = Timestamp::now().as_millisecond() as f64 / 1000.0;
            writeln!(out, "{t:.3} {} {phase} {batch}", o.name_any())?;
            out.flush()?;
        }
    }
    Ok(())
}
