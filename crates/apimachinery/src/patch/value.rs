//! Helpers on `serde_json::Value` shared by the patch formats.

use serde_json::{Number, Value};

/// JSON equality as the Go implementations see it.
///
/// `serde_json` keeps integers and floats apart, so `80 == 80.0` is false for `Value`'s own
/// `PartialEq`. Go decodes every JSON number into a `float64`, so upstream treats them as equal
/// when it matches merge keys, deduplicates primitive lists or runs a JSON patch `test`. Objects
/// compare regardless of key order, as JSON requires.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_eq(x, y),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(l, r)| json_eq(l, r)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, l)| y.get(k).is_some_and(|r| json_eq(l, r)))
        }
        _ => a == b,
    }
}

/// Compares two numbers by value: exactly when both are integers, as floats otherwise.
fn number_eq(x: &Number, y: &Number) -> bool {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    match (x.as_f64(), y.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&json!(80), &json!(80.0)));
        assert!(json_eq(&json!(-3), &json!(-3.0)));
        assert!(!json_eq(&json!(80), &json!(81)));
        assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_eq(&json!(80), &json!("80")));
    }

    #[test]
    fn containers_compare_deeply() {
        assert!(json_eq(&json!({"a": [1, {"b": 2.0}]}), &json!({"a": [1.0, {"b": 2}]})));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(!json_eq(&json!([1, 2]), &json!([2, 1])));
    }
}
