//! Small pieces the three clients share when turning replies into `CloudOrder`s.

use serde_json::Value;

use super::json;
use super::model::{Batch, CloudOrder, RawStatus};

/// An EDAS/SAE numeric status: an integer (or numeric string) is a code, any other string is
/// kept as text (mapped to Unknown with the raw value shown), absence is `Missing`.
pub fn numeric_status(obj: &Value, keys: &[&str]) -> RawStatus {
    match json::field(obj, keys) {
        None => RawStatus::Missing,
        Some(v) => match json::as_int(v) {
            Some(i) => RawStatus::Code(i),
            None => match v {
                Value::String(s) if !s.trim().is_empty() => RawStatus::Text(s.trim().to_string()),
                Value::String(_) => RawStatus::Missing,
                other => RawStatus::Text(other.to_string()),
            },
        },
    }
}

/// `Automatic`/`Manual` from EDAS (`Automatic`/`Manual`) and SAE (`auto`/`manual`) spellings;
/// an unknown value is kept as sent.
pub fn batch_type(obj: &Value) -> Option<String> {
    let raw = json::string(obj, &["BatchType"]);
    match raw.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("automatic" | "auto") => Some("Automatic".into()),
        Some("manual") => Some("Manual".into()),
        Some(_) => raw,
        None => json::boolean(obj, &["Auto"]).map(|a| if a { "Automatic" } else { "Manual" }.to_string()),
    }
}

/// EDAS/SAE statuses after which a pipeline no longer changes (succeeded, failed, terminated,
/// partially succeeded, system error).
pub fn pop_batch_finished(state: &str) -> bool {
    matches!(state.trim(), "2" | "3" | "6" | "7" | "10")
}

/// The detail calls of EDAS and SAE carry no finish time. For a finished order the last batch
/// update is the best stand-in, so a caller that does not [`merge`] with the list still gets
/// one (the list's `FinishTime` wins when merged).
pub fn derive_pop_finish_time(o: &mut CloudOrder) {
    if o.finish_time.is_none() && order_finished(o) {
        o.finish_time = o.batches.iter().filter_map(|b| b.end_time).max();
    }
}

/// The 1-based batch in progress when the cloud does not say: the first one that has not
/// succeeded (for a failed order, the batch that failed). `None` when all succeeded.
pub fn first_unfinished(batches: &[Batch], succeeded: impl Fn(&str) -> bool) -> Option<u32> {
    batches
        .iter()
        .position(|b| !succeeded(&b.state))
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// A message worth showing: not empty and not the clouds' placeholder `success`.
pub fn meaningful(msg: Option<String>) -> Option<String> {
    msg.map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty() && !m.eq_ignore_ascii_case("success") && !m.eq_ignore_ascii_case("ok"))
}

/// Error texts found anywhere in a batch's JSON, joined.
pub fn batch_errors(batch: &Value, keys: &[&str]) -> Option<String> {
    let mut found = Vec::new();
    json::collect_strings(batch, keys, &mut found);
    let found: Vec<String> = found.into_iter().filter_map(|m| meaningful(Some(m))).collect();
    (!found.is_empty()).then(|| found.join("; "))
}

/// The message of the batch in progress, for an order still running: the cloud's progress
/// words ("Deploying batch 2") beat a generic sentence. `None` once the order has finished,
/// when old progress text would only mislead.
pub fn progress_message(o: &CloudOrder, finished: bool) -> Option<String> {
    if finished {
        return None;
    }
    let i = usize::try_from(o.current_batch?).ok()?.checked_sub(1)?;
    o.batches.get(i)?.message.clone()
}

/// The order has finished for good. One table decides this for the whole operator: the
/// status mapping's (SAE has no status 7, for one, so an SAE 7 is not finished).
pub fn order_finished(o: &CloudOrder) -> bool {
    crate::status::classify(o.provider, &o.status).0.is_terminal()
}

/// Count as `u32`, ignoring negative or absurd values.
pub fn count(obj: &Value, keys: &[&str]) -> Option<u32> {
    json::int(obj, keys).and_then(|n| u32::try_from(n).ok())
}

/// Which keys an EDAS or SAE pipeline (batch) uses, most specific first.
pub struct PipelineKeys {
    pub status: &'static [&'static str],
    pub errors: &'static [&'static str],
    pub info: &'static [&'static str],
}

/// One EDAS/SAE pipeline as a batch. The two products name a few fields differently.
pub fn pop_pipeline(p: &Value, zone: jiff::tz::Offset, keys: &PipelineKeys) -> Batch {
    let state = json::string(p, keys.status).unwrap_or_default();
    let updated = json::field(p, &["UpdateTime"]).and_then(|t| crate::time::parse_time(t, zone));
    Batch {
        id: json::string(p, &["PipelineId"]),
        name: json::string(p, &["PipelineName"]).unwrap_or_default(),
        start_time: json::field(p, &["StartTime"]).and_then(|t| crate::time::parse_time(t, zone)),
        // UpdateTime is the last change; once the pipeline has finished, that is its end.
        end_time: if pop_batch_finished(&state) { updated } else { None },
        message: batch_errors(p, keys.errors).or_else(|| batch_errors(p, keys.info)),
        state,
    }
}

/// Merge a detail (describe) into what the list said: the detail wins where it has a value,
/// the list fills what the detail lacks (EDAS detail has no FinishTime, for one).
pub fn merge(listed: &CloudOrder, mut detail: CloudOrder) -> CloudOrder {
    // The list's FinishTime is the cloud's own; a derived one only stands in for it.
    if listed.finish_time.is_some() {
        detail.finish_time = listed.finish_time;
    }
    if detail.status == RawStatus::Missing {
        detail.status = listed.status.clone();
    }
    macro_rules! fill {
        ($($f:ident),*) => {$(
            if detail.$f.is_none() {
                detail.$f = listed.$f.clone();
            }
        )*};
    }
    fill!(
        sub_status,
        order_type,
        type_code,
        description,
        creator,
        create_time,
        finish_time,
        batch_count,
        batch_type,
        current_batch,
        message,
        app_id
    );
    if detail.env_names.is_empty() {
        detail.env_names = listed.env_names.clone();
    }
    if detail.batches.is_empty() {
        detail.batches = listed.batches.clone();
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Provider;
    use serde_json::json;

    #[test]
    fn statuses() {
        assert_eq!(
            numeric_status(&json!({"Status": 2}), &["Status"]),
            RawStatus::Code(2)
        );
        assert_eq!(
            numeric_status(&json!({"Status": "8"}), &["Status"]),
            RawStatus::Code(8)
        );
        assert_eq!(
            numeric_status(&json!({"Status": "weird"}), &["Status"]),
            RawStatus::Text("weird".into())
        );
        assert_eq!(
            numeric_status(&json!({"Status": true}), &["Status"]),
            RawStatus::Text("true".into())
        );
        assert_eq!(
            numeric_status(&json!({"Status": ""}), &["Status"]),
            RawStatus::Missing
        );
        assert_eq!(
            numeric_status(&json!({"Status": null}), &["Status"]),
            RawStatus::Missing
        );
        assert_eq!(numeric_status(&json!({}), &["Status"]), RawStatus::Missing);
    }

    #[test]
    fn batch_types() {
        for (v, want) in [
            (json!({"BatchType": "Automatic"}), Some("Automatic")),
            (json!({"BatchType": "auto"}), Some("Automatic")),
            (json!({"BatchType": "Manual"}), Some("Manual")),
            (json!({"BatchType": "manual"}), Some("Manual")),
            (json!({"BatchType": "Canary"}), Some("Canary")),
            (json!({"Auto": false}), Some("Manual")),
            (json!({"Auto": true}), Some("Automatic")),
            (json!({}), None),
        ] {
            assert_eq!(batch_type(&v).as_deref(), want, "{v}");
        }
    }

    #[test]
    fn merge_fills_from_list() {
        let mut listed = CloudOrder::new(Provider::Edas, "1", RawStatus::Code(1));
        listed.finish_time = Some(jiff::Timestamp::UNIX_EPOCH);
        listed.creator = Some("list".into());
        let mut detail = CloudOrder::new(Provider::Edas, "1", RawStatus::Code(2));
        detail.creator = Some("detail".into());
        detail.detailed = true;
        let m = merge(&listed, detail);
        assert_eq!(m.status, RawStatus::Code(2));
        assert_eq!(m.creator.as_deref(), Some("detail"));
        assert_eq!(m.finish_time, Some(jiff::Timestamp::UNIX_EPOCH));
        assert!(m.detailed);
        let m = merge(&listed, CloudOrder::new(Provider::Edas, "1", RawStatus::Missing));
        assert_eq!(m.status, RawStatus::Code(1));
    }

    #[test]
    fn meaningful_messages() {
        assert_eq!(meaningful(Some("success".into())), None);
        assert_eq!(meaningful(Some(" ".into())), None);
        assert_eq!(meaningful(Some(" boom ".into())), Some("boom".into()));
        assert_eq!(
            batch_errors(
                &json!({"a": [{"TaskErrorMessage": "x"}, {"TaskErrorMessage": "success"}]}),
                &["TaskErrorMessage"]
            ),
            Some("x".into())
        );
    }
}
