//! JSON merge patch, RFC 7386 (`application/merge-patch+json`).

use serde_json::{Map, Value};

/// Applies a JSON merge patch to `doc` and returns the result.
///
/// An object in the patch is merged into the object at the same place in the document: a member
/// whose value is `null` removes the member, any other member is merged recursively. Anything
/// that is not an object, lists included, replaces what the document has. A merge patch cannot
/// fail: every JSON value is a valid merge patch for every document.
pub fn apply_merge_patch(doc: &Value, patch: &Value) -> Value {
    merge(doc.clone(), patch)
}

/// The RFC 7386 `MergePatch(Target, Patch)` function, consuming the target so that unchanged
/// subtrees are moved rather than copied.
fn merge(target: Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut target = match target {
        Value::Object(map) => map,
        // The RFC replaces a non-object target with an empty object before merging into it.
        _ => Map::new(),
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            let current = target.remove(key).unwrap_or(Value::Null);
            target.insert(key.clone(), merge(current, value));
        }
    }
    Value::Object(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The examples of RFC 7386, appendix A.
    #[test]
    fn rfc_7386_appendix_a() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "b"}), json!({"b": "c"}), json!({"a": "b", "b": "c"})),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": "b", "b": "c"}), json!({"a": null}), json!({"b": "c"})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (json!({"a": {"b": "c"}}), json!({"a": {"b": "d", "c": null}}), json!({"a": {"b": "d"}})),
            (json!({"a": [{"b": "c"}]}), json!({"a": [1]}), json!({"a": [1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (json!({"e": null}), json!({"a": 1}), json!({"e": null, "a": 1})),
            (json!([1, 2]), json!({"a": "b", "c": null}), json!({"a": "b"})),
            (json!({}), json!({"a": {"bb": {"ccc": null}}}), json!({"a": {"bb": {}}})),
        ];
        for (doc, patch, want) in cases {
            assert_eq!(apply_merge_patch(&doc, &patch), want, "{doc} + {patch}");
        }
    }

    #[test]
    fn kubernetes_style_patches() {
        let doc = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 1, "ports": [{"port": 80}, {"port": 443}]}
        });
        let patch = json!({
            "metadata": {"labels": {"tier": null, "track": "stable"}},
            "spec": {"replicas": 3, "ports": [{"port": 8080}]}
        });
        assert_eq!(
            apply_merge_patch(&doc, &patch),
            json!({
                "metadata": {"name": "web", "labels": {"app": "web", "track": "stable"}},
                "spec": {"replicas": 3, "ports": [{"port": 8080}]}
            })
        );
        // The document passed in is left alone.
        assert_eq!(doc["spec"]["replicas"], 1);
    }
}
