//! Benchmark helper (the `bench-cache-footprint` example): what the operator's ChangeOrder cache
//! holds per order, counted by the allocator, without a cluster.
//!
//! `bench-cache-footprint [WATCHES] [ORDERS_PER_WATCH]` (default 1000 × 50): builds each order
//! as the operator writes it (its own mapping, the scenario of `tests/bench/scale.sh`: one SAE
//! order in flight per watch, the rest finished), turns it into what the API server sends back
//! (uid, resourceVersion, creationTimestamp, managedFields), and feeds it to the cache the way
//! the watcher does: decoded lean, stripped, applied. Prints the bytes the cache holds per order
//! (live heap after minus before), and the process's RSS.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use changeorder_cloud::model::{AppRef, Batch, CloudOrder, Provider, RawStatus};
use changeorder_operator::controller::cache::{LeanOrder, OrderCache};
use changeorder_operator::crd::{ChangeOrder, ChangeOrderWatch, ChangeOrderWatchSpec};
use jiff::{Timestamp, ToSpan};
use kube::runtime::watcher::Event;

/// The system allocator, counting the bytes in use.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> Res<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let watches = args.first().copied().unwrap_or(1000);
    let per = args.get(1).copied().unwrap_or(50);
    let now = Timestamp::now();
    let cache = OrderCache::default();
    let before = LIVE.load(Ordering::Relaxed);
    for w in 1..=watches {
        for order in objects("bench", w, per, now)? {
            // Twice, as a cold sync delivers it: created without status, then with it.
            let mut created = order.clone();
            created.status = None;
            cache.apply(Event::Apply(from_server(&created, w)?));
            cache.apply(Event::Apply(from_server(&order, w)?));
        }
    }
    let held = LIVE.load(Ordering::Relaxed) - before;
    let n = cache.len();
    let rss_kib = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    println!(
        "{n} orders ({watches} watches × {per}): cache holds {:.1} MiB, {} bytes per order; process RSS {} MiB",
        held as f64 / 1048576.0,
        held / n.max(1),
        rss_kib / 1024
    );
    Ok(())
}

/// The object as the API server returns it in a watch event, decoded as the operator's watcher
/// decodes it, then stripped as it strips it.
fn from_server(order: &ChangeOrder, w: usize) -> Res<LeanOrder> {
    let mut json = serde_json::to_value(order)?;
    let meta = json["metadata"].as_object_mut().ok_or("metadata")?;
    meta.insert("uid".into(), format!("0b5e0c3a-6f0e-4a4e-9d5c-{w:012}").into());
    meta.insert("resourceVersion".into(), "123456789".into());
    meta.insert("creationTimestamp".into(), "2026-12-06T00:00:00Z".into());
    meta.insert("generation".into(), 1.into());
    meta.insert(
        "managedFields".into(),
        serde_json::json!([{"manager": "changeorder-operator", "operation": "Update",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:provider": {}, "f:changeOrderId": {}}}}]),
    );
    let mut lean: LeanOrder = serde_json::from_value(json)?;
    changeorder_operator::controller::strip_order_metadata(&mut lean.0);
    Ok(lean)
}
fn objects(ns: &str, watch_index: usize, per: usize, now: Timestamp) -> Res<Vec<ChangeOrder>> {
    let app = format!("bench-{watch_index}");
    let mut watch = ChangeOrderWatch::new(
        &app,
        serde_json::from_value::<ChangeOrderWatchSpec>(serde_json::json!({
            "provider": "sae", "appId": app, "credentialsSecretRef": {"name": "cloud"},
        }))?,
    );
    watch.metadata.namespace = Some(ns.to_string());
    watch.metadata.uid = Some(format!("5d1e0c3a-6f0e-4a4e-9d5c-{watch_index:012}"));
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
