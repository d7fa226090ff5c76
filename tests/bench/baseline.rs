//! Benchmark helper (built as the `bench-baseline` example; used by `tests/bench/scale.sh`).
//!
//! `write NS WATCHES ORDERS_PER_WATCH WORKERS`: the baseline. A plain `kube` client writes the
//! ChangeOrder objects the operator would write for the same scenario (same names, labels, spec
//! and status, built by the operator's own mapping), each created and then given its status,
//! `WORKERS` at a time (with `BENCH_BASELINE_APPLY=1`: server-side applied, object then status,
//! as the operator writes). Prints `orders SECONDS CPU_SECONDS` (CPU: this process's own).
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

use changeorder_cloud::model::{AppRef, Batch, CloudOrder, Provider, RawStatus};
use changeorder_operator::crd::{ChangeOrder, ChangeOrderWatch, ChangeOrderWatchSpec};
use futures::{StreamExt, TryStreamExt};
use jiff::{Timestamp, ToSpan};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> Res<&str> {
        args.get(i).map(String::as_str).ok_or_else(|| {
            "usage: bench-baseline write NS WATCHES ORDERS WORKERS | wait NS COUNT | lag NS FILE".into()
        })
    };
    let client = Client::try_default().await?;
    match arg(0)? {
        "write" => {
            let (ns, watches, per, workers) = (arg(1)?, arg(2)?.parse()?, arg(3)?.parse()?, arg(4)?.parse()?);
            let (n, secs) = write(client, ns, watches, per, workers).await?;
            println!("{n} {secs:.3} {:.1}", own_cpu_seconds()?);
        }
        "wait" => println!("{:.3}", wait(client, arg(1)?, arg(2)?.parse()?).await?),
        "lag" => lag(client, arg(1)?, arg(2)?).await?,
        other => return Err(format!("unknown mode {other}").into()),
    }
    Ok(())
}

/// The objects of one bench watch, as `tests/bench/scale.sh` describes them to the simulator:
/// one SAE order in flight, the rest finished.
fn objects(ns: &str, watch_index: usize, per: usize, now: Timestamp) -> Res<Vec<ChangeOrder>> {
    let app = format!("bench-{watch_index}");
    let mut watch = ChangeOrderWatch::new(
        &app,
        serde_json::from_value::<ChangeOrderWatchSpec>(serde_json::json!({
            "provider": "sae", "appId": app, "credentialsSecretRef": {"name": "cloud"},
        }))?,
    );
    watch.metadata.namespace = Some(ns.to_string());
    // No owner: the watch does not exist in the baseline's namespace.
    let app_ref = AppRef::Id(app.clone());
    let mut out = Vec::with_capacity(per);
    for o in 1..=per {
        let (id, status, created) = if o == 1 {
            (format!("{app}-live"), 1, now - 1.minutes())
        } else {
            (format!("{app}-{o}"), 2, now - (o as i64).hours())
        };
        let mut order = CloudOrder::new(Provider::Sae, id, RawStatus::Code(status));
        order.create_time = Some(created);
        order.batch_count = Some(if o == 1 { 2 } else { 1 });
        order.current_batch = Some(1);
        order.batch_type = Some("Automatic".into());
        order.order_type = Some("Deploy".into());
        order.type_code = Some("CoDeploy".into());
        order.detailed = true;
        order.batches = vec![Batch {
            id: Some(format!("{}-b1", order.id)),
            name: "batch 1".into(),
            state: if o == 1 { "1" } else { "2" }.into(),
            start_time: Some(created),
            end_time: (o != 1).then_some(created + 2.minutes()),
            message: None,
        }];
        if o != 1 {
            order.finish_time = Some(created + 3.minutes());
        }
        out.push(changeorder_operator::mapping::desired_object(
            &watch, &app_ref, &order, None, now,
        ));
    }
    Ok(out)
}

async fn write(client: Client, ns: &str, watches: usize, per: usize, workers: usize) -> Res<(usize, f64)> {
    let now = Timestamp::now();
    let mut all = Vec::with_capacity(watches * per);
    for w in 1..=watches {
        all.extend(objects(ns, w, per, now)?);
    }
    let api: Api<ChangeOrder> = Api::namespaced(client, ns);
    let apply = std::env::var("BENCH_BASELINE_APPLY").is_ok_and(|v| v == "1");
    let started = Instant::now();
    let n = all.len();
    futures::stream::iter(all.into_iter().map(|mut obj| {
        let api = api.clone();
        async move {
            let status = obj.status.take();
            if apply {
                // The operator's way: server-side apply of the object, then of its status.
                let params = PatchParams::apply("bench-baseline").force();
                let name = obj.name_any();
                api.patch(&name, &params, &Patch::Apply(&obj)).await?;
                let status = serde_json::json!({
                    "apiVersion": "changeorder.io/v1alpha1", "kind": "ChangeOrder", "status": status,
                });
                api.patch_status(&name, &params, &Patch::Apply(&status)).await?;
                return Res::Ok(());
            }
            let mut created = api.create(&PostParams::default(), &obj).await?;
            created.status = status;
            api.replace_status(&created.name_any(), &PostParams::default(), &created)
                .await?;
            Res::Ok(())
        }
    }))
    .buffer_unordered(workers.max(1))
    .try_collect::<Vec<()>>()
    .await?;
    Ok((n, started.elapsed().as_secs_f64()))
}

/// User + system CPU of this process, from /proc (Linux: fields 14 and 15 of `stat`, in ticks
/// of 1/100 s, the value of `CLK_TCK` on every Linux architecture Rust supports here).
fn own_cpu_seconds() -> Res<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name (field 2) may hold spaces; the fields after it cannot.
    let rest = stat.rsplit_once(')').ok_or("unreadable /proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Res<f64> { Ok(fields.get(i).ok_or("short /proc/self/stat")?.parse::<f64>()?) };
    // After the name: state is index 0, so utime (field 14) is index 11 and stime index 12.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
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
