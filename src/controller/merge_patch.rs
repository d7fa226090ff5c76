//! JSON merge patches (RFC 7386) computed from what is stored to what is wanted. The operator
//! writes ChangeOrders with them instead of server-side apply: the API server spends several
//! times the CPU on an apply (it rebuilds the applier's field set from the schema on every
//! request), and at a cold sync that CPU is what limits the rate (tests/bench/scale.sh).
//!
//! An apply also removed fields the applier had set before and now leaves out; a merge patch
//! removes only what it names as `null`. So the patch names every key the stored copy has and
//! the wanted one lacks.

use serde_json::{Map, Value};

/// The patch that turns `stored` into `wanted`: changed and new keys with their wanted value,
/// keys that `stored` has and `wanted` lacks as `null`, recursing into objects. Arrays and
/// scalars are replaced whole (as a merge patch does). `None` when nothing differs.
pub fn diff(stored: &Value, wanted: &Value) -> Option<Value> {
    match (stored, wanted) {
        (Value::Object(s), Value::Object(w)) => {
            let mut patch = Map::new();
            for (k, wv) in w {
                // A key wanted as null is a key wanted absent.
                match s.get(k).filter(|sv| !sv.is_null()) {
                    Some(_) if wv.is_null() => {
                        patch.insert(k.clone(), Value::Null);
                    }
                    _ if wv.is_null() => {}
                    Some(sv) => {
                        if let Some(p) = diff(sv, wv) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), without_nulls(wv));
                    }
                }
            }
            for (k, sv) in s {
                if !sv.is_null() && !w.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        // A null wanted inside an object means "absent" to a merge patch; as a whole value it
        // cannot be said: the stored value stands.
        (_, Value::Null) => None,
        _ if stored == wanted => None,
        _ => Some(without_nulls(wanted)),
    }
}

/// A value to set as it is: a `null` inside it would delete instead of set, so those keys are
/// left out (they are absent in what the API server stores anyway).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies a merge patch as the API server does (for tests of `diff`).
#[cfg(test)]
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (_, Some(_)) => {
            *target = Value::Object(Map::new());
            merge(target, patch);
        }
        _ => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(stored: Value, wanted: Value) {
        let mut result = stored.clone();
        if let Some(p) = diff(&stored, &wanted) {
            merge(&mut result, &p);
        }
        assert_eq!(result, without_nulls(&wanted), "stored {stored} wanted {wanted}");
    }

    #[test]
    fn nothing_differs_no_patch() {
        let v = json!({"a": 1, "b": {"c": [1, 2], "d": "x"}});
        assert_eq!(diff(&v, &v), None);
    }

    #[test]
    fn removed_keys_are_named_null_at_every_depth() {
        let stored = json!({"phase": "Running", "message": "m", "nested": {"keep": 1, "drop": 2}});
        let wanted = json!({"phase": "Succeeded", "nested": {"keep": 1}});
        assert_eq!(
            diff(&stored, &wanted),
            Some(json!({"phase": "Succeeded", "message": null, "nested": {"drop": null}}))
        );
        roundtrip(stored, wanted);
    }

    #[test]
    fn arrays_are_replaced_whole() {
        let stored = json!({"conditions": [{"type": "Ready", "status": "False"}, {"type": "X"}]});
        let wanted = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        assert_eq!(diff(&stored, &wanted), Some(wanted.clone()));
        roundtrip(stored, wanted);
    }

    #[test]
    fn new_objects_and_type_changes_are_set_without_nulls() {
        roundtrip(json!({}), json!({"a": {"b": 1, "c": null}}));
        roundtrip(json!({"a": 1}), json!({"a": {"b": 2}}));
        roundtrip(json!({"a": {"b": 2}}), json!({"a": [1]}));
        assert_eq!(
            diff(
                &json!({"a": {"x": 1, "y": 2}}),
                &json!({"a": {"b": 1, "c": null, "y": null}})
            ),
            Some(json!({"a": {"b": 1, "x": null, "y": null}}))
        );
    }
}
