//! Lenient readers for the clouds' JSON: numbers sent as strings and strings sent as numbers,
//! XML-style array wrappers that may hold an array, one object or nothing, and keys whose case
//! differs between operations. None of these ever fail; a missing or odd value is `None`.

use serde_json::{Map, Value};

/// The first present, non-null value among `keys` (exact match first, then case-insensitive).
pub fn field<'a>(obj: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    let map = obj.as_object()?;
    for k in keys {
        if let Some(v) = map.get(*k).filter(|v| !v.is_null()) {
            return Some(v);
        }
    }
    for k in keys {
        if let Some((_, v)) = map
            .iter()
            .find(|(name, v)| name.eq_ignore_ascii_case(k) && !v.is_null())
        {
            return Some(v);
        }
    }
    None
}

/// A string field; numbers and booleans are rendered as text. Empty strings count as absent.
pub fn string(obj: &Value, keys: &[&str]) -> Option<String> {
    let s = match field(obj, keys)? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// An integer field; numeric strings (`"2"`) and integral floats (`2.0`) are accepted.
pub fn int(obj: &Value, keys: &[&str]) -> Option<i64> {
    as_int(field(obj, keys)?)
}

pub fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => {
            let t = s.trim();
            t.parse::<i64>().ok().or_else(|| {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            })
        }
        _ => None,
    }
}

/// A boolean field; `"true"`/`"false"` strings and 0/1 are accepted.
pub fn boolean(obj: &Value, keys: &[&str]) -> Option<bool> {
    match field(obj, keys)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    }
}

/// Items of an array that may be wrapped XML-style: `outer` may be an array, an object with an
/// `inner` key holding an array or a single object, a single object itself, or absent.
pub fn wrapped_list<'a>(obj: &'a Value, outer: &[&str], inner: &[&str]) -> Vec<&'a Value> {
    let Some(v) = field(obj, outer) else {
        return Vec::new();
    };
    match v {
        Value::Array(items) => items.iter().filter(|i| i.is_object()).collect(),
        Value::Object(map) => match field(v, inner) {
            Some(Value::Array(items)) => items.iter().filter(|i| i.is_object()).collect(),
            Some(one @ Value::Object(_)) => vec![one],
            Some(_) => Vec::new(),
            // An object without the inner key: either an empty wrapper (`{}`) or a lone item
            // whose wrapper was dropped. Only the latter has fields of its own.
            None if !map.is_empty()
                && inner.iter().all(|k| !map.contains_key(*k))
                && looks_like_item(map) =>
            {
                vec![v]
            }
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// A lone object is taken as an item when its values are not all containers (a wrapper holds
/// only its list).
fn looks_like_item(map: &Map<String, Value>) -> bool {
    map.values()
        .any(|v| !v.is_array() && !v.is_object() && !v.is_null())
}

/// A plain array field (SAE, AppStack); a single object is accepted as a one-item list.
pub fn list<'a>(obj: &'a Value, keys: &[&str]) -> Vec<&'a Value> {
    match field(obj, keys) {
        Some(Value::Array(items)) => items.iter().filter(|i| i.is_object()).collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    }
}

/// Depth-first collection of every non-empty string under any of `keys`, anywhere in `v`
/// (bounded depth, so hostile nesting cannot blow the stack).
pub fn collect_strings(v: &Value, keys: &[&str], out: &mut Vec<String>) {
    collect_inner(v, keys, out, 0);
}

const MAX_DEPTH: usize = 32;

fn collect_inner(v: &Value, keys: &[&str], out: &mut Vec<String>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if keys.iter().any(|want| k.eq_ignore_ascii_case(want))
                    && let Value::String(s) = child
                {
                    let s = s.trim();
                    if !s.is_empty() && !out.iter().any(|o| o == s) {
                        out.push(s.to_string());
                    }
                } else {
                    collect_inner(child, keys, out, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            for i in items {
                collect_inner(i, keys, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// Arbitrary JSON for property tests, with keys the parsers look for so they go deep.
#[cfg(test)]
pub(crate) fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    const KEYS: &[&str] = &[
        "ChangeOrderList",
        "ChangeOrder",
        "changeOrderInfo",
        "PipelineInfoList",
        "PipelineInfo",
        "StageDetailList",
        "StageDetailDTO",
        "TaskList",
        "TaskInfoDTO",
        "TaskErrorMessage",
        "Status",
        "SubStatus",
        "ChangeOrderId",
        "PipelineId",
        "PipelineStatus",
        "PipelineName",
        "StartTime",
        "UpdateTime",
        "CreateTime",
        "FinishTime",
        "BatchCount",
        "BatchType",
        "Auto",
        "Data",
        "Pipelines",
        "CurrentPipelineId",
        "TotalSize",
        "CurrentPage",
        "PageSize",
        "ErrorMessage",
        "Code",
        "Success",
        "ErrorCode",
        "Message",
        "records",
        "changeOrderSummarys",
        "sn",
        "state",
        "type",
        "name",
        "jobs",
        "envName",
        "envs",
        "creator",
        "gmtCreate",
        "startedAt",
        "endedAt",
        "total",
        "pages",
        "current",
        "pageSize",
        "stages",
        "tasks",
        "errorMessage",
        "data",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "2019-11-13 14:23:46",
            "1562831689704",
            "2",
            "RUNNING",
            "0",
            "-1",
            "auto",
            ""
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wrappers_array_object_absent() {
        let arr = json!({"L": {"I": [{"a": 1}, {"a": 2}]}});
        let one = json!({"L": {"I": {"a": 1}}});
        let empty = json!({"L": {}});
        let absent = json!({});
        let null = json!({"L": null});
        let plain = json!({"L": [{"a": 1}]});
        let dropped = json!({"L": {"a": 1}});
        let empty_inner = json!({"L": {"I": []}});
        let odd = json!({"L": {"I": "x"}});
        let junk = json!({"L": [1, "x", {"a": 1}]});
        assert_eq!(wrapped_list(&arr, &["L"], &["I"]).len(), 2);
        assert_eq!(wrapped_list(&one, &["L"], &["I"]).len(), 1);
        assert_eq!(wrapped_list(&empty, &["L"], &["I"]).len(), 0);
        assert_eq!(wrapped_list(&absent, &["L"], &["I"]).len(), 0);
        assert_eq!(wrapped_list(&null, &["L"], &["I"]).len(), 0);
        assert_eq!(wrapped_list(&plain, &["L"], &["I"]).len(), 1);
        assert_eq!(wrapped_list(&dropped, &["L"], &["I"]).len(), 1);
        assert_eq!(wrapped_list(&empty_inner, &["L"], &["I"]).len(), 0);
        assert_eq!(wrapped_list(&odd, &["L"], &["I"]).len(), 0);
        assert_eq!(wrapped_list(&junk, &["L"], &["I"]).len(), 1);
    }

    #[test]
    fn scalars() {
        let v =
            json!({"s": " x ", "n": 2, "ns": "7", "f": 3.0, "b": "true", "e": "", "z": null, "Lower": "L"});
        assert_eq!(string(&v, &["s"]), Some("x".into()));
        assert_eq!(string(&v, &["n"]), Some("2".into()));
        assert_eq!(string(&v, &["e"]), None);
        assert_eq!(string(&v, &["z", "s"]), Some("x".into()));
        assert_eq!(string(&v, &["lower"]), Some("L".into()));
        assert_eq!(int(&v, &["n"]), Some(2));
        assert_eq!(int(&v, &["ns"]), Some(7));
        assert_eq!(int(&v, &["f"]), Some(3));
        assert_eq!(int(&v, &["s"]), None);
        assert_eq!(boolean(&v, &["b"]), Some(true));
        assert_eq!(boolean(&v, &["n"]), Some(true));
        assert_eq!(boolean(&v, &["s"]), None);
        assert_eq!(string(&json!([1]), &["a"]), None);
    }

    #[test]
    fn collect() {
        let v = json!({"a": [{"TaskErrorMessage": "boom"}, {"x": {"taskErrorMessage": " bang "}}, {"TaskErrorMessage": "boom"}]});
        let mut out = Vec::new();
        collect_strings(&v, &["TaskErrorMessage"], &mut out);
        assert_eq!(out, vec!["boom", "bang"]);
    }
}
