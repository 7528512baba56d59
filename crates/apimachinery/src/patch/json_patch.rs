//! JSON patch, RFC 6902 (`application/json-patch+json`), with JSON pointers per RFC 6901.

use serde_json::{Map, Value};

use super::error::PatchError;
use super::value::json_eq;

/// How much data `copy` operations may duplicate in one patch, in (approximate) bytes of JSON.
///
/// `copy` is the only operation whose output can outgrow its input: a patch of a few hundred
/// operations, each copying the previous result next to itself, doubles the document every
/// time. Ten MiB is several times the largest object the API server accepts, so no sensible
/// patch comes near it.
const MAX_COPIED_BYTES: usize = 10 * 1024 * 1024;

/// Applies a JSON patch to `doc` and returns the result.
///
/// The patch must be an array of operations (`add`, `remove`, `replace`, `move`, `copy`,
/// `test`). They apply in order to a copy of `doc`; if any fails the whole patch fails and
/// `doc` is unchanged, as RFC 6902 requires. Errors about the shape of the patch
/// ([`PatchError::InvalidJsonPatch`]) are found before any operation runs.
///
/// Two details follow Kubernetes' implementation (`evanphx/json-patch`) rather than the letter
/// of the RFC: a `test` for `null` succeeds when the member is absent, and array indices must be
/// plain non-negative decimals (`-` for "after the last element" where `add` allows it).
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let operations = parse(patch)?;
    let mut doc = doc.clone();
    let mut copied = 0usize;
    for operation in &operations {
        operation.apply(&mut doc, &mut copied)?;
    }
    Ok(doc)
}

/// One decoded operation.
#[derive(Debug)]
enum Operation<'p> {
    Add { path: Pointer<'p>, value: &'p Value },
    Remove { path: Pointer<'p> },
    Replace { path: Pointer<'p>, value: &'p Value },
    Move { from: Pointer<'p>, path: Pointer<'p> },
    Copy { from: Pointer<'p>, path: Pointer<'p> },
    Test { path: Pointer<'p>, value: &'p Value },
}

/// A parsed JSON pointer: the text, for messages, and its unescaped reference tokens.
#[derive(Debug)]
struct Pointer<'p> {
    text: &'p str,
    tokens: Vec<String>,
}

fn invalid(index: usize, reason: impl std::fmt::Display) -> PatchError {
    PatchError::InvalidJsonPatch { reason: format!("operation {index}: {reason}") }
}

/// Decodes the whole patch up front, so that a malformed operation late in the patch is reported
/// as a bad request rather than after earlier operations have run.
fn parse(patch: &Value) -> Result<Vec<Operation<'_>>, PatchError> {
    let Value::Array(items) = patch else {
        return Err(PatchError::InvalidJsonPatch { reason: "a JSON patch must be a list of operations".to_string() });
    };
    items.iter().enumerate().map(|(index, item)| parse_operation(index, item)).collect()
}

fn parse_operation(index: usize, item: &Value) -> Result<Operation<'_>, PatchError> {
    let Value::Object(fields) = item else {
        return Err(invalid(index, "an operation must be an object"));
    };
    let op = match fields.get("op") {
        Some(Value::String(op)) => op.as_str(),
        Some(_) => return Err(invalid(index, "\"op\" must be a string")),
        None => return Err(invalid(index, "missing \"op\"")),
    };
    let path = pointer(index, fields, "path")?;
    let value = || fields.get("value").ok_or_else(|| invalid(index, "missing \"value\""));
    Ok(match op {
        "add" => Operation::Add { path, value: value()? },
        "remove" => Operation::Remove { path },
        "replace" => Operation::Replace { path, value: value()? },
        "move" => Operation::Move { from: pointer(index, fields, "from")?, path },
        "copy" => Operation::Copy { from: pointer(index, fields, "from")?, path },
        "test" => Operation::Test { path, value: value()? },
        other => return Err(invalid(index, format!("unexpected kind: {other}"))),
    })
}

/// Reads and parses the pointer in member `name` (`path` or `from`) of an operation.
fn pointer<'p>(index: usize, fields: &'p Map<String, Value>, name: &str) -> Result<Pointer<'p>, PatchError> {
    let text = match fields.get(name) {
        Some(Value::String(text)) => text.as_str(),
        Some(_) => return Err(invalid(index, format!("\"{name}\" must be a string"))),
        None => return Err(invalid(index, format!("missing \"{name}\""))),
    };
    if text.is_empty() {
        return Ok(Pointer { text, tokens: Vec::new() });
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Err(invalid(index, format!("JSON pointer {text:?} must start with \"/\"")));
    };
    let tokens = rest
        .split('/')
        .map(unescape)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid(index, format!("JSON pointer {text:?} has an invalid ~ escape")))?;
    Ok(Pointer { text, tokens })
}

/// Undoes RFC 6901 escaping (`~1` is `/`, `~0` is `~`); any other `~` makes the pointer invalid.
fn unescape(token: &str) -> Option<String> {
    if !token.contains('~') {
        return Some(token.to_string());
    }
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Parses an array index token: decimal digits without a leading zero, per RFC 6901.
fn array_index(token: &str) -> Option<usize> {
    let well_formed =
        !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) && (token == "0" || !token.starts_with('0'));
    if well_formed { token.parse().ok() } else { None }
}

/// The value at `tokens`, if there is one.
fn get<'d>(doc: &'d Value, tokens: &[String]) -> Option<&'d Value> {
    tokens.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get(token),
        Value::Array(items) => array_index(token).and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The value at `tokens`, mutably, if there is one.
fn get_mut<'d>(doc: &'d mut Value, tokens: &[String]) -> Option<&'d mut Value> {
    tokens.iter().try_fold(doc, |node, token| match node {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => array_index(token).and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

/// Roughly how many bytes `value` takes as JSON; exact enough to bound what `copy` duplicates.
fn approximate_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(approximate_size).sum::<usize>() + items.len() + 2,
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + 4 + approximate_size(v)).sum::<usize>() + 2,
    }
}

impl Operation<'_> {
    fn apply(&self, doc: &mut Value, copied: &mut usize) -> Result<(), PatchError> {
        match self {
            Operation::Add { path, value } => add(doc, path, (*value).clone(), "add"),
            Operation::Remove { path } => remove(doc, path, "remove").map(drop),
            Operation::Replace { path, value } => replace(doc, path, (*value).clone()),
            Operation::Move { from, path } => {
                if from.tokens == path.tokens {
                    // Moving a value onto itself changes nothing, but the value must exist.
                    return get(doc, &from.tokens).map(drop).ok_or_else(|| missing("move", from));
                }
                if path.tokens.starts_with(&from.tokens) {
                    return Err(PatchError::JsonPatchNotApplicable {
                        op: "move",
                        reason: format!("cannot move {} into its own child {}", shown(from), shown(path)),
                    });
                }
                let value = remove(doc, from, "move")?;
                add(doc, path, value, "move")
            }
            Operation::Copy { from, path } => {
                let value = get(doc, &from.tokens).ok_or_else(|| missing("copy", from))?;
                *copied = copied.saturating_add(approximate_size(value));
                if *copied > MAX_COPIED_BYTES {
                    return Err(PatchError::JsonPatchNotApplicable {
                        op: "copy",
                        reason: format!("the patch copies more than {MAX_COPIED_BYTES} bytes of JSON"),
                    });
                }
                let value = value.clone();
                add(doc, path, value, "copy")
            }
            Operation::Test { path, value } => test(doc, path, value),
        }
    }
}

/// Shows a pointer in a message; the empty pointer (the whole document) would otherwise vanish.
fn shown(pointer: &Pointer<'_>) -> String {
    if pointer.text.is_empty() { "\"\" (the whole document)".to_string() } else { pointer.text.to_string() }
}

fn missing(op: &'static str, pointer: &Pointer<'_>) -> PatchError {
    PatchError::JsonPatchNotApplicable { op, reason: format!("doc is missing path: {}", shown(pointer)) }
}

/// RFC 6902 `add`: sets a member of an object, or inserts into an array (`-` appends).
fn add(doc: &mut Value, path: &Pointer<'_>, value: Value, op: &'static str) -> Result<(), PatchError> {
    let Some((last, parents)) = path.tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, parents) {
        Some(Value::Object(map)) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Some(Value::Array(items)) => {
            let index = if last == "-" { Some(items.len()) } else { array_index(last) };
            match index {
                Some(index) if index <= items.len() => {
                    items.insert(index, value);
                    Ok(())
                }
                _ => Err(PatchError::JsonPatchNotApplicable {
                    op,
                    reason: format!("invalid array index in path: {}", path.text),
                }),
            }
        }
        _ => Err(missing(op, path)),
    }
}

/// RFC 6902 `remove`, returning the removed value for `move`.
fn remove(doc: &mut Value, path: &Pointer<'_>, op: &'static str) -> Result<Value, PatchError> {
    let Some((last, parents)) = path.tokens.split_last() else {
        return Err(PatchError::JsonPatchNotApplicable { op, reason: "cannot remove the whole document".to_string() });
    };
    let removed = match get_mut(doc, parents) {
        Some(Value::Object(map)) => map.remove(last),
        Some(Value::Array(items)) => match array_index(last) {
            Some(index) if index < items.len() => Some(items.remove(index)),
            _ => None,
        },
        _ => None,
    };
    removed.ok_or_else(|| missing(op, path))
}

/// RFC 6902 `replace`: the target must already exist.
fn replace(doc: &mut Value, path: &Pointer<'_>, value: Value) -> Result<(), PatchError> {
    match get_mut(doc, &path.tokens) {
        Some(target) => {
            *target = value;
            Ok(())
        }
        None => Err(PatchError::JsonPatchNotApplicable {
            op: "replace",
            reason: format!("doc is missing key: {}", shown(path)),
        }),
    }
}

/// RFC 6902 `test`, with `evanphx/json-patch`'s reading that an absent object member equals
/// `null`. An array index that does not exist is an error, as there.
fn test(doc: &Value, path: &Pointer<'_>, expected: &Value) -> Result<(), PatchError> {
    let actual = match path.tokens.split_last() {
        None => Some(doc),
        Some((last, parents)) => match get(doc, parents) {
            Some(Value::Object(map)) => map.get(last),
            Some(Value::Array(items)) => match array_index(last).and_then(|i| items.get(i)) {
                Some(item) => Some(item),
                None => {
                    return Err(PatchError::JsonPatchNotApplicable {
                        op: "test",
                        reason: format!("invalid array index in path: {}", path.text),
                    });
                }
            },
            _ => return Err(missing("test", path)),
        },
    };
    let passed = match actual {
        Some(actual) => json_eq(actual, expected),
        None => expected.is_null(),
    };
    if passed { Ok(()) } else { Err(PatchError::JsonPatchTestFailed { path: path.text.to_string() }) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(doc: Value, patch: Value) -> Result<Value, PatchError> {
        apply_json_patch(&doc, &patch)
    }

    #[test]
    fn add_sets_members_and_inserts_into_arrays() {
        let doc = json!({"a": {"b": [1, 3]}});
        let patch = json!([
            {"op": "add", "path": "/a/c", "value": "x"},
            {"op": "add", "path": "/a/b/1", "value": 2},
            {"op": "add", "path": "/a/b/-", "value": 4},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "add", "path": "/a/c", "value": null},
        ]);
        assert_eq!(apply(doc, patch), Ok(json!({"a": {"b": [0, 1, 2, 3, 4], "c": null}})));
    }

    #[test]
    fn add_at_the_root_replaces_the_document() {
        let patched = apply(json!({"a": 1}), json!([{"op": "add", "path": "", "value": [1]}]));
        assert_eq!(patched, Ok(json!([1])));
    }

    #[test]
    fn add_errors() {
        let doc = json!({"a": [1], "s": "str"});
        for path in ["/missing/x", "/a/2", "/a/01", "/a/-1", "/s/x", "/a/x"] {
            let err = apply(doc.clone(), json!([{"op": "add", "path": path, "value": 1}]));
            assert!(matches!(err, Err(PatchError::JsonPatchNotApplicable { op: "add", .. })), "{path}: {err:?}");
        }
    }

    #[test]
    fn remove_and_replace() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b/c": "2", "t~x": "3"}}, "l": [1, 2, 3]});
        let patch = json!([
            {"op": "remove", "path": "/metadata/labels/b~1c"},
            {"op": "replace", "path": "/metadata/labels/t~0x", "value": "4"},
            {"op": "remove", "path": "/l/1"},
            {"op": "replace", "path": "/l/0", "value": 9},
        ]);
        assert_eq!(apply(doc, patch), Ok(json!({"metadata": {"labels": {"a": "1", "t~x": "4"}}, "l": [9, 3]})));
    }

    #[test]
    fn remove_and_replace_need_an_existing_target() {
        let doc = json!({"a": 1, "l": [1]});
        let err = apply(doc.clone(), json!([{"op": "remove", "path": "/b"}]));
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("remove operation does not apply: doc is missing path: /b".to_string())
        );
        let err = apply(doc.clone(), json!([{"op": "remove", "path": "/l/1"}]));
        assert!(err.is_err());
        let err = apply(doc.clone(), json!([{"op": "replace", "path": "/b", "value": 1}]));
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("replace operation does not apply: doc is missing key: /b".to_string())
        );
        let err = apply(doc.clone(), json!([{"op": "replace", "path": "/l/-", "value": 1}]));
        assert!(err.is_err());
        assert!(apply(doc, json!([{"op": "remove", "path": ""}])).is_err());
    }

    #[test]
    fn move_and_copy() {
        let doc = json!({"a": {"x": 1}, "l": [1, 2]});
        let patch = json!([
            {"op": "copy", "from": "/a", "path": "/b"},
            {"op": "move", "from": "/a/x", "path": "/c"},
            {"op": "move", "from": "/l/0", "path": "/l/-"},
            {"op": "move", "from": "/c", "path": "/c"},
        ]);
        assert_eq!(apply(doc, patch), Ok(json!({"a": {}, "b": {"x": 1}, "c": 1, "l": [2, 1]})));
    }

    #[test]
    fn move_into_own_child_and_missing_from_fail() {
        let doc = json!({"a": {"b": {}}});
        let err = apply(doc.clone(), json!([{"op": "move", "from": "/a", "path": "/a/b/c"}]));
        assert!(matches!(err, Err(PatchError::JsonPatchNotApplicable { op: "move", .. })));
        let err = apply(doc.clone(), json!([{"op": "move", "from": "/x", "path": "/y"}]));
        assert!(matches!(err, Err(PatchError::JsonPatchNotApplicable { op: "move", .. })));
        let err = apply(doc.clone(), json!([{"op": "move", "from": "/x", "path": "/x"}]));
        assert!(err.is_err());
        let err = apply(doc, json!([{"op": "copy", "from": "/x", "path": "/y"}]));
        assert!(matches!(err, Err(PatchError::JsonPatchNotApplicable { op: "copy", .. })));
    }

    #[test]
    fn test_operation() {
        let doc = json!({"metadata": {"name": "web", "resourceVersion": "7"}, "n": 80, "l": [1]});
        let ok = json!([
            {"op": "test", "path": "/metadata/name", "value": "web"},
            {"op": "test", "path": "/n", "value": 80.0},
            {"op": "test", "path": "/metadata/uid", "value": null},
            {"op": "test", "path": "/l/0", "value": 1},
            {"op": "test", "path": "", "value": {"metadata": {"name": "web", "resourceVersion": "7"}, "n": 80, "l": [1]}},
        ]);
        assert_eq!(apply(doc.clone(), ok), Ok(doc.clone()));
        let err = apply(
            doc.clone(),
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "6"}, {"op": "remove", "path": "/n"}]),
        );
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("testing value /metadata/resourceVersion failed: test failed".to_string())
        );
        let err = apply(doc.clone(), json!([{"op": "test", "path": "/metadata/uid", "value": "u"}]));
        assert!(matches!(err, Err(PatchError::JsonPatchTestFailed { .. })));
        let err = apply(doc.clone(), json!([{"op": "test", "path": "/l/-", "value": null}]));
        assert!(matches!(err, Err(PatchError::JsonPatchNotApplicable { op: "test", .. })));
        let err = apply(doc, json!([{"op": "test", "path": "/x/y", "value": null}]));
        assert!(matches!(err, Err(PatchError::JsonPatchNotApplicable { op: "test", .. })));
    }

    #[test]
    fn a_failing_operation_leaves_the_document_alone() {
        let doc = json!({"a": 1});
        let patch = json!([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/zz"}]);
        assert!(apply_json_patch(&doc, &patch).is_err());
        assert_eq!(doc, json!({"a": 1}));
    }

    #[test]
    fn malformed_patches_are_bad_requests() {
        let doc = json!({"a": 1});
        let bad = [
            json!({"op": "add"}),
            json!([1]),
            json!([{"path": "/a"}]),
            json!([{"op": 1, "path": "/a"}]),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "add", "path": "/a~2", "value": 1}]),
            json!([{"op": "remove", "path": 3}]),
            json!([{"op": "move", "path": "/a"}]),
            json!([{"op": "copy", "from": "/a"}]),
            json!([{"op": "test", "path": "/a"}]),
        ];
        for patch in bad {
            let err = apply_json_patch(&doc, &patch);
            assert!(
                matches!(&err, Err(e @ PatchError::InvalidJsonPatch { .. }) if e.is_bad_request()),
                "{patch}: {err:?}"
            );
        }
        // A malformed operation is reported even when an earlier one would fail to apply.
        let patch = json!([{"op": "remove", "path": "/nope"}, {"op": "nope", "path": "/a"}]);
        assert!(matches!(apply_json_patch(&doc, &patch), Err(PatchError::InvalidJsonPatch { .. })));
    }

    #[test]
    fn exponential_copies_are_cut_off() {
        let mut ops = vec![json!({"op": "add", "path": "/a", "value": vec!["0123456789abcdef"; 64]})];
        for _ in 0..40 {
            ops.push(json!({"op": "copy", "from": "/a", "path": "/b"}));
            ops.push(json!({"op": "add", "path": "/a", "value": []}));
            ops.push(json!({"op": "copy", "from": "/b", "path": "/a/-"}));
            ops.push(json!({"op": "copy", "from": "/b", "path": "/a/-"}));
        }
        let err = apply_json_patch(&json!({}), &Value::Array(ops));
        assert!(matches!(err, Err(PatchError::JsonPatchNotApplicable { op: "copy", .. })));
    }

    #[test]
    fn empty_patch_is_identity() {
        assert_eq!(apply(json!({"a": 1}), json!([])), Ok(json!({"a": 1})));
    }
}
