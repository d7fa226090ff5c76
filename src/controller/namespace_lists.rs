//! SAE watches of one namespace that use the same credentials find new orders together: one
//! `ListNamespaceChangeOrders` per interval serves all of them, instead of a `ListChangeOrders`
//! per app. SAE's namespace list does not say whose an order is, so each entry is placed this
//! way:
//!
//! - an order a watch already stores is that watch's (`Request::own`);
//! - an order created before the group's horizon (`LAG` plus `SLACK` ago) is history: a watch
//!   lists per app whenever its last list is older than `LAG`, so such an order was in an own list;
//! - any other order is new: it is described once (the detail names its app, and gives the
//!   batches its watch would describe anyway) and handed to that watch's next list.
//!
//! Pages are read newest first until one ends before the horizon; a reply that is not sorted
//! newest first (SAE does not promise it) is read to the end. Grouping is by exact credentials,
//! not only by account: two keys of one account may hold different RAM permissions, and a watch
//! must never see orders its own key could not list.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use changeorder_cloud::client::{CloudClient, Target};
use changeorder_cloud::credentials::Credentials;
use changeorder_cloud::model::CloudOrder;

/// Longest gap between two lists of a watch for the namespace list to serve it; a watch whose
/// last list is older (first poll, long failure, long interval) lists per app.
pub const LAG: Duration = Duration::from_secs(30 * 60);
/// Clock difference between the cloud and this process tolerated in the horizon.
const SLACK: Duration = Duration::from_secs(5 * 60);
/// Describes of unplaced new orders per namespace list; the rest wait for the next list.
const MAX_PLACEMENTS: usize = 16;
/// After a failed namespace list, the group's watches list per app for this long.
const FALLBACK: Duration = Duration::from_secs(10 * 60);
/// Placements and undelivered details are kept this long: longer than any gap `LAG` allows
/// between two lists of a watch, so every new order reaches its watch.
const KEEP: Duration = Duration::from_secs(2 * 30 * 60);
/// Groups unused this long are dropped.
const IDLE: Duration = Duration::from_secs(2 * 3600);
/// Bound on placements remembered per group, whatever a cloud sends.
const MAX_PLACED: usize = 50_000;

/// Whether a watch may take its list from the namespace: its list must be recent enough that
/// no order of its app can be older than the horizon and unseen by it.
pub fn serves(interval: Duration, since_last_list: Option<Duration>) -> bool {
    interval <= LAG / 2 && since_last_list.is_some_and(|d| d <= LAG)
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    credentials: String,
    endpoint: String,
    namespace: String,
}

/// The process's namespace groups.
#[derive(Default)]
pub struct NamespaceLists {
    groups: Mutex<HashMap<Key, Arc<Group>>>,
}

#[derive(Default)]
struct Group {
    state: tokio::sync::Mutex<State>,
    used: Mutex<Option<Instant>>,
}

#[derive(Default)]
struct State {
    /// The last namespace list and when its reading began.
    list: Option<(Instant, Arc<Vec<CloudOrder>>)>,
    /// New orders placed by a describe: order id → app id ("" when the reply named none).
    placed: HashMap<String, (Instant, Arc<str>)>,
    /// Details of placed orders not yet handed to their watch.
    details: HashMap<String, (Instant, CloudOrder)>,
    /// Until then the namespace list is not tried.
    fallback_until: Option<Instant>,
}

/// One watch asking for its orders from the namespace list.
pub struct Request<'a> {
    pub target: &'a Target,
    pub credentials: &'a Credentials,
    pub namespace: &'a str,
    pub app: &'a str,
    /// Whether the watch stores an order of this id.
    pub own: &'a (dyn Fn(&str) -> bool + Sync),
    /// A namespace list whose reading began at or after this is fresh enough.
    pub fresh_after: Instant,
}

/// The watch's part of a namespace list.
#[derive(Debug, Default)]
pub struct Shared {
    /// Entries of the watch's app, in the cloud's order.
    pub listed: Vec<CloudOrder>,
    /// Describes already made of some of them (new orders placed by their detail).
    pub details: Vec<CloudOrder>,
}

impl NamespaceLists {
    /// The watch's orders from its namespace's list; `None` when the watch should list per app
    /// (the namespace list failed lately).
    pub async fn list(&self, cloud: &CloudClient, req: &Request<'_>) -> Option<Shared> {
        let group = self.group(req);
        let mut st = group.state.lock().await;
        let now = Instant::now();
        if st.fallback_until.is_some_and(|t| now < t) {
            return None;
        }
        st.forget_before(now);
        let fresh = st
            .list
            .as_ref()
            .filter(|(at, _)| *at >= req.fresh_after)
            .map(|(_, l)| l.clone());
        let list = match fresh {
            Some(l) => l,
            None => match st.read(cloud, req).await {
                Some(l) => l,
                None => {
                    st.fallback_until = Some(now + FALLBACK);
                    return None;
                }
            },
        };
        Some(st.share(&list, req))
    }

    fn group(&self, req: &Request<'_>) -> Arc<Group> {
        let key = Key {
            credentials: req.credentials.fingerprint(),
            endpoint: req.target.base_url().map(|u| u.to_string()).unwrap_or_default(),
            namespace: req.namespace.to_string(),
        };
        let now = Instant::now();
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        groups.retain(|k, g| *k == key || g.last_used().is_none_or(|t| now.duration_since(t) < IDLE));
        let group = groups.entry(key).or_default().clone();
        *group.used.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        group
    }
}

/// Each order once (pages may overlap while the cloud inserts new orders), in the cloud's
/// order. Not capped like one app's list: the horizon bounds what is read.
fn unique(listed: Vec<CloudOrder>) -> Vec<CloudOrder> {
    let mut seen = std::collections::HashSet::with_capacity(listed.len());
    listed.into_iter().filter(|o| seen.insert(o.id.clone())).collect()
}

impl Group {
    fn last_used(&self) -> Option<Instant> {
        *self.used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn forget_before(&mut self, now: Instant) {
        self.placed.retain(|_, (at, _)| now.duration_since(*at) < KEEP);
        self.details.retain(|_, (at, _)| now.duration_since(*at) < KEEP);
    }

    /// Read the namespace's new pages and place their new orders; `None` when the list failed.
    async fn read(&mut self, cloud: &CloudClient, req: &Request<'_>) -> Option<Arc<Vec<CloudOrder>>> {
        let started = Instant::now();
        let horizon = horizon(Timestamp::now());
        let mut order = NewestFirst::default();
        let mut more = |page: &[CloudOrder]| order.more(page, horizon);
        let listed = match cloud
            .list_namespace(req.target, req.credentials, req.namespace, &mut more)
            .await
        {
            Ok(l) => unique(l),
            Err(e) => {
                tracing::warn!(
                    namespace_id = req.namespace,
                    error = %e,
                    "SAE namespace list failed; its watches list per app for a while"
                );
                return None;
            }
        };
        let unplaced: Vec<String> = listed
            .iter()
            .filter(|o| is_new(o, horizon) && !self.placed.contains_key(&o.id) && !(req.own)(&o.id))
            .map(|o| o.id.clone())
            .take(MAX_PLACEMENTS)
            .collect();
        let own_app = Arc::<str>::from(req.app);
        for id in unplaced {
            match cloud.describe(req.target, req.credentials, &id).await {
                Ok(detail) => {
                    let app: Arc<str> = match detail.app_id.as_deref() {
                        Some(a) if a == req.app => own_app.clone(),
                        Some(a) => Arc::from(a),
                        None => Arc::from(""),
                    };
                    if self.placed.len() < MAX_PLACED {
                        self.placed.insert(id.clone(), (started, app));
                        self.details.insert(id, (started, detail));
                    }
                }
                // Placed at a later list; the order's own watch describes it meanwhile if it
                // already stores it.
                Err(e) => tracing::debug!(order = %id, error = %e, "describe to place a new order failed"),
            }
        }
        let list = Arc::new(listed);
        self.list = Some((started, list.clone()));
        Some(list)
    }

    /// The requester's entries and the details waiting for it.
    fn share(&mut self, list: &[CloudOrder], req: &Request<'_>) -> Shared {
        let mut out = Shared::default();
        for o in list {
            let placed_here = self.placed.get(&o.id).is_some_and(|(_, app)| &**app == req.app);
            if placed_here || (req.own)(&o.id) {
                if let Some((_, detail)) = self.details.remove(&o.id) {
                    out.details.push(detail);
                }
                out.listed.push(o.clone());
            }
        }
        out
    }
}

/// Orders created before this are history to the group (see the module's rules).
fn horizon(now: Timestamp) -> Timestamp {
    let back = jiff::SignedDuration::try_from(LAG + SLACK).unwrap_or(jiff::SignedDuration::ZERO);
    now.checked_sub(back).unwrap_or(now)
}

/// New to the group: created after the horizon, or of unknown age (placed to be safe).
fn is_new(o: &CloudOrder, horizon: Timestamp) -> bool {
    o.create_time.is_none_or(|t| t >= horizon)
}

/// Whether the pages read so far are newest first, and where they end.
#[derive(Default)]
struct NewestFirst {
    unsorted: bool,
    last: Option<Timestamp>,
}

impl NewestFirst {
    /// After a page: read another unless the pages are sorted newest first and this one ends
    /// before the horizon (every later entry is history then).
    fn more(&mut self, page: &[CloudOrder], horizon: Timestamp) -> bool {
        for o in page {
            match o.create_time {
                Some(t) if self.last.is_none_or(|l| t <= l) => self.last = Some(t),
                _ => self.unsorted = true,
            }
        }
        self.unsorted || self.last.is_none_or(|l| l >= horizon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use changeorder_cloud::model::{Provider, RawStatus};

    fn at(id: &str, t: Option<Timestamp>) -> CloudOrder {
        let mut o = CloudOrder::new(Provider::Sae, id, RawStatus::Code(2));
        o.create_time = t;
        o
    }

    #[test]
    fn pages_stop_once_sorted_and_past_the_horizon() {
        let now = Timestamp::now();
        let h = horizon(now);
        let min = |m: i64| Some(now - jiff::SignedDuration::from_mins(m));
        let mut n = NewestFirst::default();
        assert!(
            n.more(&[at("a", min(1)), at("b", min(2))], h),
            "still after the horizon"
        );
        assert!(
            !n.more(&[at("c", min(3)), at("d", min(90))], h),
            "ends before it: stop"
        );

        // An entry newer than the one before it: not sorted, so everything is read.
        let mut n = NewestFirst::default();
        assert!(n.more(&[at("a", min(5)), at("b", min(1))], h));
        assert!(n.more(&[at("c", min(200))], h));

        // No creation time: its age is unknown, read on.
        let mut n = NewestFirst::default();
        assert!(n.more(&[at("a", None), at("b", min(200))], h));
    }

    #[test]
    fn only_recent_or_undated_orders_are_new() {
        let now = Timestamp::now();
        let h = horizon(now);
        assert!(is_new(&at("a", Some(now)), h));
        assert!(is_new(&at("a", None), h));
        assert!(!is_new(
            &at("a", Some(now - jiff::SignedDuration::from_hours(2))),
            h
        ));
    }

    #[test]
    fn a_watch_lists_per_app_after_a_long_gap_or_with_a_long_interval() {
        let m = |x: u64| Duration::from_secs(60 * x);
        assert!(serves(m(1), Some(m(1))));
        assert!(!serves(m(1), None), "first list after start");
        assert!(!serves(m(1), Some(m(31))), "gap over LAG");
        assert!(!serves(m(20), Some(m(1))), "interval over LAG / 2");
    }
}
