//! Pure mapping from a cloud order to the desired `ChangeOrder` (spec, labels, status).
//! Nothing here talks to the cloud or the API server, so every contract row is table-tested.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::cloud::model::{AppRef, CloudOrder, Provider, RawStatus};
use crate::crd::{BatchStatus, ChangeOrderSpec, ChangeOrderStatus, Phase, labels};

/// Phase and condition reason for a provider's raw status value.
pub fn classify(provider: Provider, status: &RawStatus) -> (Phase, &'static str) {
    use Phase::*;
    match (provider, status) {
        (Provider::Edas | Provider::Sae, RawStatus::Code(code)) => match (provider, code) {
            (_, 0) => (Pending, "Preparing"),
            (_, 1) => (Running, "Executing"),
            (_, 2) => (Succeeded, "Succeeded"),
            (_, 3) => (Failed, "Failed"),
            (_, 6) => (Cancelled, "Terminated"),
            (Provider::Edas, 7) => (Failed, "PartiallySucceeded"),
            (_, 8) => (AwaitingConfirmation, "ManualBatchConfirmation"),
            (_, 9) => (Running, "WaitingForNextBatch"),
            (_, 10) => (Failed, "SystemError"),
            (Provider::Sae, 11) => (AwaitingApproval, "PendingApproval"),
            (Provider::Sae, 12) => (Pending, "Approved"),
            _ => (Unknown, "UnknownStatus"),
        },
        (Provider::Appstack, RawStatus::Text(state)) => match state.trim().to_ascii_uppercase().as_str() {
            "INIT" => (Pending, "Init"),
            "PREPARING" => (Pending, "Preparing"),
            "RUNNING" => (Running, "Running"),
            "STOPPING" => (Running, "Stopping"),
            "SUSPENDING" => (Running, "Suspending"),
            "SUSPENDED" => (Paused, "Suspended"),
            "SUCCESS" => (Succeeded, "Succeeded"),
            "FAILED" => (Failed, "Failed"),
            "CANCELED" => (Cancelled, "Canceled"),
            _ => (Unknown, "UnknownStatus"),
        },
        _ => (Unknown, "UnknownStatus"),
    }
}

pub const CONDITION_READY: &str = "Ready";
pub const CONDITION_RECONCILING: &str = "Reconciling";
pub const CONDITION_STALLED: &str = "Stalled";
pub const CONDITION_AWAITING_INPUT: &str = "AwaitingInput";
pub const CONDITION_DEGRADED: &str = "Degraded";

/// SAE `SubStatus` value meaning an exception happened while executing.
const SUB_STATUS_EXCEPTION: i64 = 1;

/// Where the order came from and who polls it: the parts of the object not read from the order.
#[derive(Clone, Debug)]
pub struct Origin<'a> {
    pub watch_name: &'a str,
    pub app: &'a AppRef,
}

/// Name of the ChangeOrder object for a cloud order: `<watch>-<id>`, made DNS-safe and short.
pub fn object_name(watch_name: &str, order_id: &str) -> String {
    let id = sanitize_dns(order_id);
    let full = if id.is_empty() {
        format!("{watch_name}-{}", short_hash(order_id))
    } else {
        format!("{watch_name}-{id}")
    };
    if full.len() <= 253 && sanitize_dns(&full) == full {
        return full;
    }
    // Too long or not representable: keep a readable prefix and make it unique with a hash.
    let hash = short_hash(&format!("{watch_name}/{order_id}"));
    let prefix: String = sanitize_dns(&full).chars().take(253 - hash.len() - 1).collect();
    format!("{}-{hash}", prefix.trim_end_matches(['-', '.']))
}

/// Lower-case, keep `[a-z0-9-.]`, squeeze the rest to `-`, trim leading/trailing separators.
fn sanitize_dns(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '.' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(['-', '.']).to_string()
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
        order_type: order.order_type.clone(),
        type_code: order.type_code.clone(),
        description: order.description.clone(),
        creator: order.creator.clone(),
        create_time: order.create_time.map(Time),
        batch_type: order.batch_type.clone(),
        env_names: order.env_names.clone(),
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
    let (phase, reason) = classify(order.provider, &order.status);
    let message = phase_message(order, phase);
    let tri = |b: bool| if b { "True" } else { "False" };

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
        order
            .message
            .clone()
            .unwrap_or_else(|| "an exception occurred while executing (SubStatus 1)".to_string())
    } else {
        "no exception reported".to_string()
    };

    let specs: [(&str, &str, &str, String); 5] = [
        (CONDITION_READY, ready, reason, message.clone()),
        (
            CONDITION_RECONCILING,
            tri(!phase.is_terminal()),
            reason,
            message.clone(),
        ),
        (
            CONDITION_STALLED,
            tri(matches!(phase, Phase::Failed | Phase::Cancelled)),
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
    let conditions = specs
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let last_transition_time = previous
                .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
                .filter(|c| c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: type_.to_string(),
                status: status.to_string(),
                reason: reason.to_string(),
                message,
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect();

    ChangeOrderStatus {
        observed_generation: generation,
        phase: Some(phase),
        reason: Some(reason.to_string()),
        provider_status: match &order.status {
            RawStatus::Missing => None,
            other => Some(other.to_string()),
        },
        provider_sub_status: order.sub_status,
        finish_time: order.finish_time.map(Time),
        batch_count: order.batch_count.or_else(|| {
            (!order.batches.is_empty()).then(|| u32::try_from(order.batches.len()).unwrap_or(u32::MAX))
        }),
        current_batch: order.current_batch,
        batches: order
            .batches
            .iter()
            .map(|b| BatchStatus {
                name: b.name.clone(),
                state: b.state.clone(),
                start_time: b.start_time.map(Time),
                end_time: b.end_time.map(Time),
                message: b.message.clone(),
            })
            .collect(),
        conditions,
    }
}

/// The cloud's own words when it has any; otherwise a short factual sentence.
fn phase_message(order: &CloudOrder, phase: Phase) -> String {
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
/// Used by `probe` to print and by the controller to apply (spec and status go in separate calls).
pub fn desired_object(
    watch: &crate::crd::ChangeOrderWatch,
    app: &AppRef,
    order: &CloudOrder,
    previous: Option<&ChangeOrderStatus>,
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
    obj.status = Some(desired_status(order, obj.meta().generation, previous, now));
    obj
}
