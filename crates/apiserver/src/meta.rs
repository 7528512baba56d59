//! Small helpers over an object's `metadata`, on `serde_json::Value`.
//! The server handles every object as JSON; these keep the field names in one place.

use serde_json::{Map, Value, json};

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

pub fn namespace(obj: &Value) -> Option<&str> {
    obj["metadata"]["namespace"].as_str().filter(|s| !s.is_empty())
}

pub fn resource_version(obj: &Value) -> &str {
    obj["metadata"]["resourceVersion"].as_str().unwrap_or("")
}

pub fn uid(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
}

pub fn labels(obj: &Value) -> Option<&Value> {
    obj["metadata"].get("labels")
}

pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Some(map) = obj.as_object_mut() else { unreachable!("made an object above") };
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let Some(meta) = meta.as_object_mut() else { unreachable!("made an object above") };
    meta
}

pub fn set_resource_version(obj: &mut Value, rv: i64) {
    metadata_mut(obj).insert("resourceVersion".into(), Value::from(rv.to_string()));
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    obj["metadata"]["deletionTimestamp"].as_str()
}

/// The current time as Kubernetes writes it: RFC 3339, whole seconds, UTC.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    // `round` to seconds cannot fail for the present time; fall back to the full value.
    let secs = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    secs.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Splits `apiVersion` into group and version: `apps/v1` → (`apps`, `v1`), `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// A random suffix for `generateName`, from upstream's alphabet (no vowels, no ambiguous characters).
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4();
    let mut out = String::with_capacity(n);
    let mut seed = u128::from_le_bytes(*bytes.as_bytes());
    for _ in 0..n {
        out.push(ALPHABET[(seed % ALPHABET.len() as u128) as usize] as char);
        seed /= ALPHABET.len() as u128;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_whole_seconds() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z'));
    }

    #[test]
    fn suffixes() {
        let s = random_suffix(5);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
    }
}
