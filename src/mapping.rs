//! Pure mapping from a cloud order to the desired `ChangeOrder` (spec, labels, status).
//! Nothing here talks to the cloud or the API server, so every contract row is table-tested.

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::conditions::{condition, tri};
use crate::time::whole_seconds;

use crate::crd::{BatchStatus, ChangeOrderSpec, ChangeOrderStatus, Phase, labels};
use changeorder_cloud::model::{AppRef, CloudOrder, Provider, RawStatus};

pub use changeorder_cloud::status::classify;

pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_RECONCILING: &str = "Reconciling";
pub const CONDITION_STALLED: &str = "Stalled";
pub const CONDITION_AWAITING_INPUT: &str = "AwaitingInput";
pub const CONDITION_DEGRADED: &str = "Degraded";

/// Reason of an order the cloud says no longer exists (phase `Unknown`, never polled again).
pub const REASON_ORDER_NOT_FOUND: &str = "OrderNotFound";

/// SAE `SubStatus` value meaning an exception happened while executing.
const SUB_STATUS_EXCEPTION: i64 = 1;

/// Where the order came from and who polls it: the parts of the object not read from the order.
#[derive(Clone, Debug)]
pub struct Origin<'a> {
    pub watch_name: &'a str,
    pub app: &'a AppRef,
}

/// Longest order id accepted: ids are identities and cannot be cut, and no release system
/// issues ids anywhere near this long. An order with a longer id is reported, not written.
pub const MAX_ORDER_ID_LEN: usize = 512;
/// Longest cloud text kept in an object (messages, descriptions, batch messages).
pub const MAX_TEXT_LEN: usize = 2048;
/// Longest short cloud string kept (types, creators, batch names and states, environments).
pub const MAX_SHORT_LEN: usize = 256;
/// Most batches kept per order, and most environments.
pub const MAX_BATCHES: usize = 100;
pub const MAX_ENV_NAMES: usize = 32;

/// Cut cloud text to at most `max` bytes on a character boundary, marking the cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    const MARK: &str = "…";
    let mut end = max.saturating_sub(MARK.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &s[..end])
}

fn cut_opt(s: &Option<String>, max: usize) -> Option<String> {
    s.as_deref().map(|s| cut(s, max))
}

/// Name of the ChangeOrder object for a cloud order: `<watch>-<id>` when the id is already a
/// valid name part; otherwise (or when too long) a cleaned, shortened form plus a hash of the
/// original id, so that the name is always valid and distinct ids never share a name.
pub fn object_name(watch_name: &str, order_id: &str) -> String {
    const LIMIT: usize = 253;
    if is_dns_subdomain(order_id) {
        let full = format!("{watch_name}-{order_id}");
        if full.len() <= LIMIT {
            return full;
        }
    }
    let hash = id_hash(order_id);
    let cleaned = sanitize_label_chars(order_id);
    let mut prefix = if cleaned.is_empty() {
        watch_name.to_string()
    } else {
        format!("{watch_name}-{cleaned}")
    };
    prefix.truncate(LIMIT - hash.len() - 1);
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// A DNS-1123 subdomain: dot-separated parts of `[a-z0-9-]`, each starting and ending with an
/// alphanumeric, 253 characters at most. The API server's rule for object names.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// Keep `[a-z0-9]` (lower-cased), squeeze everything else to one `-`, trim the ends.
fn sanitize_label_chars(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(256));
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 256 {
            break;
        }
    }
    out.trim_matches('-').to_string()
}

/// 10 hex digits of SHA-256: stable across versions, and long enough that the orders of one
/// watch do not collide by chance.
fn id_hash(s: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(s.as_bytes());
    hex::encode(&digest[..5])
}

/// A label value is at most 63 characters of `[A-Za-z0-9-_.]`, starting and ending alphanumeric.
pub fn label_value(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if trimmed.len() <= 63 && trimmed == s {
        return trimmed.to_string();
    }
    let hash = short_hash(s);
    let keep: String = trimmed.chars().take(63 - hash.len() - 1).collect();
    let keep = keep.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if keep.is_empty() {
        hash
    } else {
        format!("{keep}-{hash}")
    }
}

/// 8 hex digits of FNV-1a: stable across versions and platforms, unlike `DefaultHasher`.
fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

pub fn order_labels(provider: Provider, origin: &Origin<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::WATCH.to_string(), label_value(origin.watch_name)),
        (labels::PROVIDER.to_string(), provider.as_str().to_string()),
        (labels::APP.to_string(), label_value(origin.app.display_name())),
        (labels::MANAGED_BY.to_string(), "changeorder-operator".to_string()),
    ])
}

pub fn desired_spec(order: &CloudOrder, origin: &Origin<'_>) -> ChangeOrderSpec {
    let (app_id, organization_id, app_name) = match origin.app {
        AppRef::Id(id) => (Some(id.clone()), None, None),
        AppRef::Named {
            organization_id,
            app_name,
        } => (None, Some(organization_id.clone()), Some(app_name.clone())),
    };
    ChangeOrderSpec {
        provider: order.provider,
        change_order_id: order.id.clone(),
        app_id,
        organization_id,
        app_name,
        order_type: cut_opt(&order.order_type, MAX_SHORT_LEN),
        type_code: cut_opt(&order.type_code, MAX_SHORT_LEN),
        description: cut_opt(&order.description, MAX_TEXT_LEN),
        creator: cut_opt(&order.creator, MAX_SHORT_LEN),
        create_time: order.create_time.map(whole_seconds),
        batch_type: cut_opt(&order.batch_type, MAX_SHORT_LEN),
        env_names: order
            .env_names
            .iter()
            .take(MAX_ENV_NAMES)
            .map(|e| cut(e, MAX_SHORT_LEN))
            .collect(),
    }
}

/// The status the order should have. `previous` keeps each condition's `lastTransitionTime`
/// unless its status flips; `now` stamps the conditions that do flip (or are new).
pub fn desired_status(
    order: &CloudOrder,
    generation: Option<i64>,
    previous: Option<&ChangeOrderStatus>,
    now: Timestamp,
) -> ChangeOrderStatus {
    let (phase, reason) = if order.gone {
        (Phase::Unknown, REASON_ORDER_NOT_FOUND)
    } else {
        classify(order.provider, &order.status)
    };
    let message = cut(&phase_message(order, phase), MAX_TEXT_LEN);

    let ready = if phase == Phase::Unknown {
        "Unknown"
    } else {
        tri(phase == Phase::Succeeded)
    };
    let degraded = order.sub_status == Some(SUB_STATUS_EXCEPTION);
    let degraded_reason = if degraded {
        "ExecutionException"
    } else {
        "NoException"
    };
    let degraded_message = if degraded {
        order.message.as_deref().map_or_else(
            || "an exception occurred while executing (SubStatus 1)".to_string(),
            |m| cut(m, MAX_TEXT_LEN),
        )
    } else {
        "no exception reported".to_string()
    };

    let specs: [(&str, &str, &str, String); 5] = [
        (CONDITION_READY, ready, reason, message.clone()),
        (
            CONDITION_RECONCILING,
            tri(!phase.is_terminal() && !order.gone),
            reason,
            message.clone(),
        ),
        (
            CONDITION_STALLED,
            tri(matches!(phase, Phase::Failed | Phase::Cancelled) || order.gone),
            reason,
            message.clone(),
        ),
        (
            CONDITION_AWAITING_INPUT,
            tri(phase.awaits_input()),
            reason,
            message,
        ),
        (
            CONDITION_DEGRADED,
            tri(degraded),
            degraded_reason,
            degraded_message,
        ),
    ];
    let previous_detailed = previous.and_then(|p| p.detailed) == Some(true);
    let previous = previous.map(|p| p.conditions.as_slice()).unwrap_or_default();
    let conditions = specs
        .into_iter()
        .map(|(type_, status, reason, message)| {
            condition(type_, status, reason, message, generation, previous, now)
        })
        .collect();

    ChangeOrderStatus {
        observed_generation: generation,
        phase: Some(phase),
        reason: Some(reason.to_string()),
        provider_status: match &order.status {
            RawStatus::Missing => None,
            other => Some(cut(&other.to_string(), MAX_SHORT_LEN)),
        },
        provider_sub_status: order.sub_status,
        finish_time: order.finish_time.map(whole_seconds),
        batch_count: order.batch_count.or_else(|| {
            (!order.batches.is_empty()).then(|| u32::try_from(order.batches.len()).unwrap_or(u32::MAX))
        }),
        // A succeeded order has finished every batch: it stands at the last one.
        current_batch: order
            .current_batch
            .or(order.batch_count.filter(|_| phase == Phase::Succeeded)),
        batches: order
            .batches
            .iter()
            .take(MAX_BATCHES)
            .map(|b| BatchStatus {
                name: cut(&b.name, MAX_SHORT_LEN),
                state: cut(&b.state, MAX_SHORT_LEN),
                start_time: b.start_time.map(whole_seconds),
                end_time: b.end_time.map(whole_seconds),
                message: cut_opt(&b.message, MAX_TEXT_LEN),
            })
            .collect(),
        // Once read by a describe, an order stays detailed: a later write from the list alone
        // (a describe that failed) keeps the stored batches, so it says no less.
        detailed: (order.detailed || previous_detailed).then_some(true),
        conditions,
    }
}

/// The cloud's own words when it has any; otherwise a short factual sentence.
fn phase_message(order: &CloudOrder, phase: Phase) -> String {
    let provider_name = match order.provider {
        Provider::Edas => "EDAS",
        Provider::Sae => "SAE",
        Provider::Appstack => "AppStack",
    };
    if order.gone {
        let last = match &order.status {
            RawStatus::Missing => String::new(),
            raw => format!(" (last reported status {raw})"),
        };
        return format!(
            "{provider_name} no longer has this change order{last}; it is kept as last seen and no longer polled"
        );
    }
    if let Some(m) = order.message.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let provider = match order.provider {
        Provider::Edas => "EDAS",
        Provider::Sae => "SAE",
        Provider::Appstack => "AppStack",
    };
    let raw = &order.status;
    let batch = match (order.current_batch, order.batch_count) {
        (Some(c), Some(n)) => format!(" (batch {c} of {n})"),
        _ => String::new(),
    };
    match phase {
        Phase::Pending => format!("{provider} change order has not started yet (status {raw}){batch}"),
        Phase::Running => format!("{provider} change order is in progress (status {raw}){batch}"),
        Phase::AwaitingConfirmation => {
            format!("{provider} change order waits for a person to confirm the next batch{batch}")
        }
        Phase::AwaitingApproval => format!("{provider} change order waits for approval"),
        Phase::Paused => format!("{provider} change order is suspended{batch}"),
        Phase::Succeeded => format!("{provider} change order succeeded"),
        Phase::Failed => format!("{provider} change order failed (status {raw}){batch}"),
        Phase::Cancelled => format!("{provider} change order was cancelled (status {raw})"),
        Phase::Unknown => match raw {
            RawStatus::Missing => format!("{provider} reported no status for this change order"),
            _ => format!(
                "{provider} reported status {raw:?}, which this operator does not know",
                raw = raw.to_string()
            ),
        },
    }
}

/// The whole desired object (metadata, spec, status) for one cloud order polled by `watch`.
/// `previous` is the stored object, if any: its conditions keep their transition times and its
/// generation is the one the status observes. Used by `probe` to print and by the controller to
/// apply (spec and status go in separate calls).
pub fn desired_object(
    watch: &crate::crd::ChangeOrderWatch,
    app: &AppRef,
    order: &CloudOrder,
    previous: Option<&crate::crd::ChangeOrder>,
    now: Timestamp,
) -> crate::crd::ChangeOrder {
    use kube::{Resource, ResourceExt};
    let watch_name = watch.name_any();
    let origin = Origin {
        watch_name: &watch_name,
        app,
    };
    let mut obj =
        crate::crd::ChangeOrder::new(&object_name(&watch_name, &order.id), desired_spec(order, &origin));
    obj.metadata.namespace = watch.namespace();
    obj.metadata.labels = Some(order_labels(order.provider, &origin));
    obj.metadata.owner_references = watch.controller_owner_ref(&()).map(|r| vec![r]);
    let generation = previous.and_then(|p| p.metadata.generation);
    let previous_status = previous.and_then(|p| p.status.as_ref());
    obj.status = Some(desired_status(order, generation, previous_status, now));
    obj
}

/// Set the generation a status observes (known only once the object has been written).
pub fn observe_generation(status: &mut ChangeOrderStatus, generation: Option<i64>) {
    status.observed_generation = generation;
    for c in &mut status.conditions {
        c.observed_generation = generation;
    }
}

#[cfg(test)]
mod tests;
