//! `kubectl changeorder sets`: one row per ChangeOrderWatchSet.

use kube::ResourceExt;

use changeorder_operator::conditions::find;
use changeorder_operator::controller::watch_status::condition_type;
use changeorder_operator::crd::ChangeOrderWatchSet;

/// The `sets` table: apps found, watches Ready / not Ready, conflicts and the Ready condition.
pub fn sets_table(sets: &[ChangeOrderWatchSet], with_namespace: bool) -> String {
    let mut header = vec![
        "SET",
        "PROVIDER",
        "APPS",
        "READY WATCHES",
        "NOT READY",
        "CONFLICTS",
        "READY",
        "REASON",
    ];
    if with_namespace {
        header.insert(0, "NAMESPACE");
    }
    let mut rows: Vec<Vec<String>> = vec![header.into_iter().map(String::from).collect()];
    let mut sorted: Vec<&ChangeOrderWatchSet> = sets.iter().collect();
    sorted.sort_by_key(|s| (s.namespace(), s.name_any()));
    for s in sorted {
        let status = s.status.as_ref();
        let ready = status.and_then(|st| find(&st.conditions, condition_type::READY));
        let count = |n: Option<u32>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
        let mut row = vec![
            s.name_any(),
            s.spec.provider.as_str().to_string(),
            count(status.and_then(|st| st.apps_found)),
            count(status.and_then(|st| st.watches_ready)),
            count(status.and_then(|st| st.watches_not_ready)),
            status.map_or(0, |st| st.conflicts.len()).to_string(),
            ready.map_or_else(|| "Unknown".into(), |c| c.status.clone()),
            ready.map_or_else(|| "-".into(), |c| c.reason.clone()),
        ];
        if with_namespace {
            row.insert(0, s.namespace().unwrap_or_default());
        }
        rows.push(row);
    }
    crate::align(&rows)
}
