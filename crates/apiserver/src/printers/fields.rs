//! Lenient accessors into objects held as JSON.
//!
//! The printers run on whatever the store holds, and a table must never fail (or panic)
//! because one object lacks a field. Each accessor therefore returns the zero value
//! Go would see in the same situation: `""`, `0`, an empty list. That also makes JSON
//! `null` and an absent field behave the same, as they do for Go's pointers and slices.

use serde_json::{Map, Value};

/// The value at `path`, or `None` if any step is missing, is not an object, or is `null`.
pub(super) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for key in path {
        cur = cur.as_object()?.get(*key)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// The string at `path`, or `""`.
pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` if present, for fields where "absent" must be told apart
/// from "empty" (Go pointers to strings) or where a timestamp may be missing.
pub(super) fn opt_str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// The integer at `path` if present. A float (some JSON encoders write every number
/// as one) is truncated toward zero rather than ignored.
pub(super) fn opt_int_at(v: &Value, path: &[&str]) -> Option<i64> {
    let n = get(v, path)?;
    n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
}

/// The integer at `path`, or `0`.
pub(super) fn int_at(v: &Value, path: &[&str]) -> i64 {
    opt_int_at(v, path).unwrap_or(0)
}

/// The boolean at `path`, or `false`.
pub(super) fn bool_at(v: &Value, path: &[&str]) -> bool {
    get(v, path).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `path`, or an empty slice.
pub(super) fn arr_at<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The object at `path`, if there is one.
pub(super) fn obj_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Map<String, Value>> {
    get(v, path).and_then(Value::as_object)
}

/// The number of entries of the map at `path`, or `0`.
pub(super) fn map_len(v: &Value, path: &[&str]) -> usize {
    obj_at(v, path).map_or(0, Map::len)
}

/// The object's `metadata.name`, the first cell of nearly every table.
pub(super) fn name(v: &Value) -> &str {
    str_at(v, &["metadata", "name"])
}

/// The object's `metadata.creationTimestamp`, from which the AGE cell is computed.
pub(super) fn creation_timestamp(v: &Value) -> Option<&str> {
    opt_str_at(v, &["metadata", "creationTimestamp"])
}

/// Whether `metadata.deletionTimestamp` is set, i.e. the object is being deleted.
pub(super) fn is_being_deleted(v: &Value) -> bool {
    get(v, &["metadata", "deletionTimestamp"]).is_some()
}

/// `s`, or `<none>` when it is empty: upstream's marker for "no value" in a cell.
pub(super) fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_null_and_mistyped_fields_read_as_zero_values() {
        let v = json!({"a": {"s": "x", "n": 3, "f": 2.9, "null": null, "arr": [1], "b": true}});
        assert_eq!(str_at(&v, &["a", "s"]), "x");
        assert_eq!(str_at(&v, &["a", "n"]), "");
        assert_eq!(str_at(&v, &["a", "missing", "deeper"]), "");
        assert_eq!(int_at(&v, &["a", "n"]), 3);
        assert_eq!(int_at(&v, &["a", "f"]), 2);
        assert_eq!(int_at(&v, &["a", "s"]), 0);
        assert_eq!(get(&v, &["a", "null"]), None);
        assert_eq!(arr_at(&v, &["a", "arr"]).len(), 1);
        assert!(arr_at(&v, &["a", "s"]).is_empty());
        assert!(bool_at(&v, &["a", "b"]));
        assert!(!bool_at(&v, &["a", "s"]));
        assert_eq!(map_len(&v, &["a"]), 6);
        assert_eq!(map_len(&json!("scalar"), &["a"]), 0);
    }
}
