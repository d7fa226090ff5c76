//! Pure mapping from a cloud order to the desired `ChangeOrder` (spec, labels, status).
//! Nothing here talks to the cloud or the API server, so every contract row is table-tested.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::conditions::{condition, tri};

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

/// A `Time` as the API server stores it: whole seconds. Cloud times often carry milliseconds,
/// and a desired value that can never equal the stored one would be written on every poll.
pub fn whole_seconds(t: Timestamp) -> Time {
    Time(Timestamp::from_second(t.as_second()).unwrap_or(t))
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
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid test timestamp")
    }

    fn cond<'a>(status: &'a ChangeOrderStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    /// Every row of the contract's table: (provider, raw, phase, reason).
    #[test]
    fn classify_every_contract_row() {
        use Phase::*;
        let code = RawStatus::Code;
        let text = |s: &str| RawStatus::Text(s.to_string());
        let rows: Vec<(Provider, RawStatus, Phase, &str)> = vec![
            (Provider::Edas, code(0), Pending, "Preparing"),
            (Provider::Sae, code(0), Pending, "Preparing"),
            (Provider::Edas, code(1), Running, "Executing"),
            (Provider::Sae, code(1), Running, "Executing"),
            (Provider::Edas, code(2), Succeeded, "Succeeded"),
            (Provider::Sae, code(2), Succeeded, "Succeeded"),
            (Provider::Edas, code(3), Failed, "Failed"),
            (Provider::Sae, code(3), Failed, "Failed"),
            (Provider::Edas, code(6), Cancelled, "Terminated"),
            (Provider::Sae, code(6), Cancelled, "Terminated"),
            (Provider::Edas, code(7), Failed, "PartiallySucceeded"),
            (
                Provider::Edas,
                code(8),
                AwaitingConfirmation,
                "ManualBatchConfirmation",
            ),
            (
                Provider::Sae,
                code(8),
                AwaitingConfirmation,
                "ManualBatchConfirmation",
            ),
            (Provider::Edas, code(9), Running, "WaitingForNextBatch"),
            (Provider::Sae, code(9), Running, "WaitingForNextBatch"),
            (Provider::Edas, code(10), Failed, "SystemError"),
            (Provider::Sae, code(10), Failed, "SystemError"),
            (Provider::Sae, code(11), AwaitingApproval, "PendingApproval"),
            (Provider::Sae, code(12), Pending, "Approved"),
            (Provider::Appstack, text("INIT"), Pending, "Init"),
            (Provider::Appstack, text("PREPARING"), Pending, "Preparing"),
            (Provider::Appstack, text("RUNNING"), Running, "Running"),
            (Provider::Appstack, text("STOPPING"), Running, "Stopping"),
            (Provider::Appstack, text("SUSPENDING"), Running, "Suspending"),
            (Provider::Appstack, text("SUSPENDED"), Paused, "Suspended"),
            (Provider::Appstack, text("SUCCESS"), Succeeded, "Succeeded"),
            (Provider::Appstack, text("FAILED"), Failed, "Failed"),
            (Provider::Appstack, text("CANCELED"), Cancelled, "Canceled"),
            // Anything else is Unknown, including values valid only for the other product.
            (Provider::Sae, code(7), Unknown, "UnknownStatus"),
            (Provider::Edas, code(11), Unknown, "UnknownStatus"),
            (Provider::Edas, code(12), Unknown, "UnknownStatus"),
            (Provider::Edas, code(4), Unknown, "UnknownStatus"),
            (Provider::Sae, code(-1), Unknown, "UnknownStatus"),
            (Provider::Appstack, text("ROLLING_BACK"), Unknown, "UnknownStatus"),
            (Provider::Appstack, code(1), Unknown, "UnknownStatus"),
            (Provider::Edas, text("RUNNING"), Unknown, "UnknownStatus"),
            (Provider::Sae, RawStatus::Missing, Unknown, "UnknownStatus"),
        ];
        for (provider, raw, phase, reason) in rows {
            assert_eq!(classify(provider, &raw), (phase, reason), "{provider} {raw:?}");
        }
    }

    /// The conditions table of the contract, for every phase.
    #[test]
    fn conditions_follow_the_phase() {
        let now = ts("2026-01-01T00:00:00Z");
        // (provider, raw, Ready, Reconciling, Stalled, AwaitingInput)
        let rows = [
            (
                Provider::Edas,
                RawStatus::Code(0),
                "False",
                "True",
                "False",
                "False",
            ),
            (
                Provider::Edas,
                RawStatus::Code(1),
                "False",
                "True",
                "False",
                "False",
            ),
            (
                Provider::Edas,
                RawStatus::Code(8),
                "False",
                "True",
                "False",
                "True",
            ),
            (
                Provider::Sae,
                RawStatus::Code(11),
                "False",
                "True",
                "False",
                "True",
            ),
            (
                Provider::Appstack,
                RawStatus::Text("SUSPENDED".into()),
                "False",
                "True",
                "False",
                "True",
            ),
            (
                Provider::Edas,
                RawStatus::Code(2),
                "True",
                "False",
                "False",
                "False",
            ),
            (
                Provider::Edas,
                RawStatus::Code(3),
                "False",
                "False",
                "True",
                "False",
            ),
            (
                Provider::Sae,
                RawStatus::Code(6),
                "False",
                "False",
                "True",
                "False",
            ),
            (
                Provider::Edas,
                RawStatus::Code(42),
                "Unknown",
                "True",
                "False",
                "False",
            ),
        ];
        for (provider, raw, ready, reconciling, stalled, awaiting) in rows {
            let order = CloudOrder::new(provider, "id-1", raw.clone());
            let status = desired_status(&order, Some(3), None, now);
            let (phase, reason) = classify(provider, &raw);
            assert_eq!(status.phase, Some(phase));
            for (type_, want) in [
                (CONDITION_READY, ready),
                (CONDITION_RECONCILING, reconciling),
                (CONDITION_STALLED, stalled),
                (CONDITION_AWAITING_INPUT, awaiting),
                (CONDITION_DEGRADED, "False"),
            ] {
                let c = cond(&status, type_);
                assert_eq!(c.status, want, "{type_} for {provider} {raw:?}");
                assert_eq!(c.observed_generation, Some(3));
                assert_eq!(c.last_transition_time, Time(now));
                if type_ != CONDITION_DEGRADED {
                    assert_eq!(c.reason, reason);
                }
                assert!(!c.message.is_empty());
            }
            assert_eq!(status.provider_status.as_deref(), Some(raw.to_string().as_str()));
        }
    }

    #[test]
    fn sae_sub_status_one_is_degraded_while_running() {
        let mut order = CloudOrder::new(Provider::Sae, "id-1", RawStatus::Code(1));
        order.sub_status = Some(1);
        order.message = Some("batch 2 failed health check, roll back manually".into());
        let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
        let degraded = cond(&status, CONDITION_DEGRADED);
        assert_eq!(
            (degraded.status.as_str(), degraded.reason.as_str()),
            ("True", "ExecutionException")
        );
        assert_eq!(
            degraded.message,
            "batch 2 failed health check, roll back manually"
        );
        assert_eq!(status.phase, Some(Phase::Running));
        assert_eq!(status.provider_sub_status, Some(1));
        order.sub_status = Some(0);
        let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
        assert_eq!(cond(&status, CONDITION_DEGRADED).status, "False");
    }

    #[test]
    fn unknown_status_keeps_the_raw_value() {
        let order = CloudOrder::new(Provider::Appstack, "sn-1", RawStatus::Text("ROLLING_BACK".into()));
        let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
        assert_eq!(status.phase, Some(Phase::Unknown));
        assert_eq!(status.provider_status.as_deref(), Some("ROLLING_BACK"));
        assert!(cond(&status, CONDITION_READY).message.contains("ROLLING_BACK"));
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let t0 = ts("2026-01-01T00:00:00Z");
        let t1 = ts("2026-01-01T00:05:00Z");
        let running = CloudOrder::new(Provider::Edas, "id", RawStatus::Code(1));
        let first = desired_status(&running, Some(1), None, t0);
        // Same status later: nothing moves, so the object compares equal and no write is needed.
        assert_eq!(desired_status(&running, Some(1), Some(&first), t1), first);
        // Waiting for the next batch automatically: still Running, still no flip.
        let waiting = CloudOrder::new(Provider::Edas, "id", RawStatus::Code(9));
        let second = desired_status(&waiting, Some(1), Some(&first), t1);
        assert!(
            second
                .conditions
                .iter()
                .all(|c| c.last_transition_time == Time(t0))
        );
        // Succeeded: Ready and Reconciling flip, Stalled/AwaitingInput/Degraded do not.
        let done = CloudOrder::new(Provider::Edas, "id", RawStatus::Code(2));
        let third = desired_status(&done, Some(1), Some(&second), t1);
        for (type_, moved) in [
            (CONDITION_READY, true),
            (CONDITION_RECONCILING, true),
            (CONDITION_STALLED, false),
            (CONDITION_AWAITING_INPUT, false),
            (CONDITION_DEGRADED, false),
        ] {
            let want = if moved { t1 } else { t0 };
            assert_eq!(cond(&third, type_).last_transition_time, Time(want), "{type_}");
        }
    }

    #[test]
    fn names_and_labels_are_valid_kubernetes_values() {
        assert_eq!(
            object_name("demo", "1074f3e2-e974-4a0e-9b2e-0123456789ab"),
            "demo-1074f3e2-e974-4a0e-9b2e-0123456789ab"
        );
        // Cleaning changed the id: a hash of the original keeps names distinct.
        assert_eq!(
            object_name("w", "ABC_def"),
            format!("w-abc-def-{}", id_hash("ABC_def"))
        );
        // The collisions and invalid names the old rule made.
        for (a, b) in [
            ("ABC", "abc"),
            ("a b", "a-b"),
            ("a_.b", "a-.b"),
            ("v1..2", "v1-2"),
        ] {
            assert_ne!(object_name("w", a), object_name("w", b), "{a} / {b}");
            assert!(is_dns_subdomain(&object_name("w", a)), "{}", object_name("w", a));
            assert!(is_dns_subdomain(&object_name("w", b)), "{}", object_name("w", b));
        }
        assert_eq!(
            object_name("w", "v1.2"),
            "w-v1.2",
            "valid ids keep the names they had"
        );
        let long = "x".repeat(400);
        let name = object_name("w", &long);
        assert!(name.len() <= 253, "{}", name.len());
        assert_ne!(
            name,
            object_name("w", &"x".repeat(401)),
            "distinct ids give distinct names"
        );
        let weird = object_name("w", "***");
        assert!(weird.starts_with("w-") && weird.len() > 2);
        assert_eq!(label_value("demo-edas-app"), "demo-edas-app");
        let l = label_value(&"a/b".repeat(40));
        assert!(l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        assert_ne!(
            label_value("a/b"),
            label_value("a:b"),
            "lossy cleaning is disambiguated"
        );
    }

    fn valid_label_value(v: &str) -> bool {
        v.is_empty()
            || (v.len() <= 63
                && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// For any order id: a valid object name, ≤ 253, under any valid watch name.
        #[test]
        fn any_id_gives_a_valid_name(id in "\\PC{0,300}|[a-zA-Z0-9._ -]{0,300}", watch in "[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?|[a-z]{253}") {
            let name = object_name(&watch, &id);
            proptest::prop_assert!(is_dns_subdomain(&name), "{name:?} from {id:?}");
            proptest::prop_assert!(valid_label_value(&label_value(&id)), "{id:?}");
            proptest::prop_assert!(valid_label_value(&label_value(&watch)));
        }

        /// Distinct ids give distinct names, in particular those that clean to the same text.
        #[test]
        fn distinct_ids_give_distinct_names(a in "[a-zA-Z0-9._ -]{0,80}", b in "[a-zA-Z0-9._ -]{0,80}") {
            proptest::prop_assume!(a != b);
            proptest::prop_assert_ne!(object_name("w", &a), object_name("w", &b));
        }
    }

    #[test]
    fn cloud_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_TEXT_LEN);
        let cut_text = cut(&long, MAX_TEXT_LEN);
        assert!(cut_text.len() <= MAX_TEXT_LEN && cut_text.ends_with('…'));
        assert_eq!(cut("short", MAX_TEXT_LEN), "short");
        let mut order = CloudOrder::new(Provider::Sae, "big", RawStatus::Code(3));
        order.message = Some("x".repeat(2 << 20));
        order.batches = vec![Default::default(); 1000];
        let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
        let size = serde_json::to_string(&status).expect("json").len();
        assert!(
            size < 100_000,
            "a 2 MiB message and 1000 batches make {size} bytes"
        );
        assert_eq!(status.batches.len(), MAX_BATCHES);
    }

    #[test]
    fn spec_and_batches_carry_what_the_cloud_said() {
        let mut order = CloudOrder::new(Provider::Edas, "co-1", RawStatus::Code(8));
        order.order_type = Some("Deploy".into());
        order.type_code = Some("CoDeploy".into());
        order.creator = Some("dev@example.com".into());
        order.batch_count = Some(3);
        order.current_batch = Some(2);
        order.batches = vec![changeorder_cloud::model::Batch {
            name: "Batch 1".into(),
            state: "2".into(),
            start_time: Some(ts("2026-01-01T00:00:00Z")),
            ..Default::default()
        }];
        let app = AppRef::Id("app-1".into());
        let origin = Origin {
            watch_name: "w",
            app: &app,
        };
        let spec = desired_spec(&order, &origin);
        assert_eq!(spec.app_id.as_deref(), Some("app-1"));
        assert_eq!(spec.order_type.as_deref(), Some("Deploy"));
        let status = desired_status(&order, None, None, ts("2026-01-01T00:00:00Z"));
        assert_eq!((status.batch_count, status.current_batch), (Some(3), Some(2)));
        assert_eq!(status.batches[0].name, "Batch 1");
        assert!(
            cond(&status, CONDITION_AWAITING_INPUT)
                .message
                .contains("batch 2 of 3")
        );
        let labels = order_labels(Provider::Edas, &origin);
        assert_eq!(
            labels.get(crate::crd::labels::APP).map(String::as_str),
            Some("app-1")
        );
    }
}
