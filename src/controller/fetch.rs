//! Read one watch's orders from the cloud: one list, then a describe of each order whose
//! answer can have changed. Shared by the controller and `probe`; what to describe and how to
//! combine the answers with what is stored is decided by the caller (see `plan`).

use std::collections::{HashMap, HashSet};

use futures::StreamExt;

use crate::controller::namespace_lists::{self, NamespaceLists};
use crate::mapping::classify;
use changeorder_cloud::client::{CloudClient, Target};
use changeorder_cloud::credentials::Credentials;
use changeorder_cloud::error::{CloudError, ErrorKind};
use changeorder_cloud::model::CloudOrder;

/// Describes of one poll run at most this many at a time (each call still takes from the budget).
const DESCRIBE_CONCURRENCY: usize = 4;

/// Most orders one poll reads from a list (newest first, as the clouds list them): bounds what a
/// hostile or broken endpoint can make one poll cost, whatever it sends.
pub const MAX_LISTED_ORDERS: usize = 2500;

/// Longest one poll may take, all calls included; a poll over it fails instead of hanging.
pub const POLL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What a describe of one order gave.
#[derive(Debug)]
pub enum Detail {
    Found(Box<CloudOrder>),
    /// The cloud says the order does not exist.
    NotFound,
    Failed(CloudError),
    /// Not asked: the process is shutting down.
    Skipped,
}

#[derive(Debug, Default)]
pub struct Fetched {
    /// The list, each order once (the first occurrence wins), in the cloud's order.
    pub listed: Vec<CloudOrder>,
    /// `listed` is the cloud's list (not the known orders of a describe-only fetch).
    pub from_cloud: bool,
    /// `listed` came from the SAE namespace's shared list (no list call of this watch's own).
    pub shared: bool,
    /// Answers of the describes that were wanted, by order id.
    pub details: HashMap<String, Detail>,
}

impl Fetched {
    /// The first describe failure, if any (what the watch reports).
    pub fn first_failure(&self) -> Option<&CloudError> {
        let mut failed: Vec<(&String, &CloudError)> = self
            .details
            .iter()
            .filter_map(|(id, d)| match d {
                Detail::Failed(e) => Some((id, e)),
                _ => None,
            })
            .collect();
        failed.sort_by_key(|(id, _)| *id);
        failed.first().map(|(_, e)| *e)
    }
}

fn finished(detail: &Detail) -> bool {
    matches!(detail, Detail::Found(o) if classify(o.provider, &o.status).0.is_terminal())
}

/// Keep the first occurrence of each id, in order, at most `MAX_LISTED_ORDERS`; linear in the
/// number of orders.
pub fn dedup(listed: Vec<CloudOrder>) -> Vec<CloudOrder> {
    let total = listed.len();
    let mut seen = HashSet::with_capacity(total.min(MAX_LISTED_ORDERS));
    let out: Vec<CloudOrder> = listed
        .into_iter()
        .filter(|o| seen.insert(o.id.clone()))
        .take(MAX_LISTED_ORDERS)
        .collect();
    if out.len() == MAX_LISTED_ORDERS && total > MAX_LISTED_ORDERS {
        tracing::warn!(
            total,
            kept = MAX_LISTED_ORDERS,
            "list longer than one poll reads; older orders skipped"
        );
    }
    out
}

/// Where a fetch gets the orders it describes from.
pub enum Listing<'a> {
    /// Ask the cloud for the list (discovery).
    Cloud,
    /// Discovery from the SAE namespace's shared list (`namespace_lists`); per app when that
    /// list is not available.
    Namespace(&'a NamespaceLists, namespace_lists::Request<'a>),
    /// Describe-only: these orders, as already known, stand in for the list. Between two
    /// discovery lists this is all a poll of orders in flight needs, one call per order.
    Known(Vec<CloudOrder>),
}

/// Describe each of `ids` (a few at a time); once `stopping` turns true, describes not yet
/// started are skipped.
pub async fn describe_each(
    cloud: &CloudClient,
    target: &Target,
    credentials: &Credentials,
    ids: Vec<String>,
    stopping: &(dyn Fn() -> bool + Sync),
) -> HashMap<String, Detail> {
    futures::stream::iter(ids)
        .map(|id| async move {
            if stopping() {
                return (id, Detail::Skipped);
            }
            let detail = match cloud.describe(target, credentials, &id).await {
                Ok(order) => Detail::Found(Box::new(order)),
                Err(e) if e.kind() == ErrorKind::OrderNotFound => Detail::NotFound,
                Err(e) => Detail::Failed(e),
            };
            (id, detail)
        })
        .buffer_unordered(DESCRIBE_CONCURRENCY)
        .collect()
        .await
}

/// List (or take the known orders), then describe the ids `choose` picks from them. A failed
/// list fails the fetch; a failed describe is one order's answer. Once `stopping` turns true,
/// describes not yet started are skipped.
pub async fn fetch(
    cloud: &CloudClient,
    target: &Target,
    credentials: &Credentials,
    listing: Listing<'_>,
    choose: impl FnOnce(&[CloudOrder]) -> Vec<String>,
    stopping: &(dyn Fn() -> bool + Sync),
) -> Result<Fetched, CloudError> {
    let all = async {
        let mut given = Vec::new();
        let mut shared_list = false;
        let (listed, from_cloud) = match listing {
            Listing::Cloud => (dedup(cloud.list(target, credentials).await?), true),
            Listing::Namespace(lists, req) => match lists.list(cloud, &req).await {
                Some(shared) => {
                    given = shared.details;
                    shared_list = true;
                    (dedup(shared.listed), true)
                }
                None => (dedup(cloud.list(target, credentials).await?), true),
            },
            Listing::Known(orders) => (dedup(orders), false),
        };
        // Describes the namespace list already made (to learn whose new orders are) count as
        // this poll's.
        let mut wanted = choose(&listed);
        wanted.retain(|id| !given.iter().any(|d| &d.id == id));
        let mut details = describe_each(cloud, target, credentials, wanted, stopping).await;
        for d in given {
            details.insert(d.id.clone(), Detail::Found(Box::new(d)));
        }
        let mut fetched = Fetched {
            listed,
            from_cloud,
            shared: shared_list,
            details,
        };
        // An order a describe-only fetch found finished is written once, for good: with the
        // list's view of it too (its own finish time, for one), as a listing poll writes it.
        // Without the list (it failed) the known view stands, as for an order off the list.
        if !from_cloud
            && fetched.details.values().any(finished)
            && let Ok(listed) = cloud.list(target, credentials).await
        {
            fetched.listed = dedup(listed);
            fetched.from_cloud = true;
        }
        Ok(fetched)
    };
    tokio::time::timeout(POLL_TIMEOUT, all).await.unwrap_or_else(|_| {
        Err(CloudError::new(
            ErrorKind::Transport,
            format!(
                "the poll took longer than {} s and was abandoned",
                POLL_TIMEOUT.as_secs()
            ),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use changeorder_cloud::model::{Provider, RawStatus};

    #[test]
    fn dedup_keeps_first_and_order_and_is_linear() {
        let o = |id: &str, s: i64| CloudOrder::new(Provider::Sae, id, RawStatus::Code(s));
        let out = dedup(vec![o("b", 1), o("a", 1), o("b", 2), o("c", 3), o("a", 9)]);
        let got: Vec<(&str, RawStatus)> = out.iter().map(|o| (o.id.as_str(), o.status.clone())).collect();
        assert_eq!(
            got,
            vec![
                ("b", RawStatus::Code(1)),
                ("a", RawStatus::Code(1)),
                ("c", RawStatus::Code(3))
            ]
        );
        // 200k orders, all duplicates of 2 ids: quadratic de-duplication would not finish here.
        let many: Vec<CloudOrder> = (0..200_000)
            .map(|i| o(if i % 2 == 0 { "x" } else { "y" }, 1))
            .collect();
        assert_eq!(dedup(many).len(), 2);
    }
}
