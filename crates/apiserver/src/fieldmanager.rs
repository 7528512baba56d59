//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Every write records which manager set which fields, in upstream's `FieldsV1` format:
//! `{"f:spec": {"f:replicas": {}}}`, with list elements named by their merge key
//! (`k:{"name":"nginx"}`) or, for sets of scalars, by value (`v:"a"`).
//!
//! Apply follows upstream's rules in their essentials:
//! - a field the applier sets that another *applier* owns with a different value is a
//!   conflict (409), unless `force=true`, which takes the field over;
//! - fields the applier owned before and leaves out now are removed, unless someone else
//!   also owns them;
//! - an ordinary write (create, update, patch) takes the fields it changed from everyone.
//!
//! Everything here is a pure function of the objects it is given.

use std::collections::BTreeSet;

use rkube_apimachinery::patch::{ListStrategy, PatchSchema};
use serde_json::{Map, Value, json};

/// One step of a field path, in `FieldsV1` spelling (`f:name`, `k:{...}`, `v:...`).
pub type Path = Vec<String>;

/// Fields that belong to the server or the object's identity, never to a manager.
const IGNORED_TOP: &[&str] = &["apiVersion", "kind", "status"];
const IGNORED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The leaf fields `obj` sets.
pub fn fields_of(obj: &Value, schema: &dyn PatchSchema) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(map) = obj.as_object() else { return out };
    for (k, v) in map {
        if IGNORED_TOP.contains(&k.as_str()) {
            continue;
        }
        if k == "metadata" {
            if let Some(meta) = v.as_object() {
                for (mk, mv) in meta {
                    if !IGNORED_META.contains(&mk.as_str()) {
                        walk(
                            mv,
                            &mut vec!["f:metadata".into(), format!("f:{mk}")],
                            &mut vec!["metadata", mk],
                            schema,
                            &mut out,
                        );
                    }
                }
            }
            continue;
        }
        walk(v, &mut vec![format!("f:{k}")], &mut vec![k.as_str()], schema, &mut out);
    }
    out
}

fn walk<'a>(
    v: &'a Value,
    path: &mut Path,
    names: &mut Vec<&'a str>,
    schema: &dyn PatchSchema,
    out: &mut BTreeSet<Path>,
) {
    match v {
        Value::Object(m) if !m.is_empty() && !is_map_of_scalars_field(names) => {
            for (k, child) in m {
                path.push(format!("f:{k}"));
                names.push(k);
                walk(child, path, names, schema, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) if !items.is_empty() => match schema.list_strategy(names) {
            ListStrategy::MergeByKey(key) => {
                for item in items {
                    let Some(kv) = item.get(key) else {
                        out.insert(path.clone());
                        return;
                    };
                    path.push(format!("k:{}", json!({ key: kv })));
                    // The element itself is owned too (upstream's `.` marker), so that dropping
                    // it from an applied configuration removes the whole element.
                    path.push(".".into());
                    out.insert(path.clone());
                    path.pop();
                    walk(item, path, names, schema, out);
                    path.pop();
                }
            }
            ListStrategy::MergePrimitives => {
                for item in items {
                    path.push(format!("v:{item}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListStrategy::Replace => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// Label and annotation maps are still walked key by key (upstream tracks each key); this
/// hook exists for maps that should be atomic, of which there are none among our kinds.
fn is_map_of_scalars_field(_names: &[&str]) -> bool {
    false
}

/// The value at `path` in `obj`, if any.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        if step == "." {
            continue;
        }
        if let Some(field) = step.strip_prefix("f:") {
            cur = cur.get(field)?;
        } else if let Some(key) = step.strip_prefix("k:") {
            let want: Map<String, Value> = serde_json::from_str(key).ok()?;
            cur = cur.as_array()?.iter().find(|item| want.iter().all(|(k, v)| item.get(k) == Some(v)))?;
        } else if let Some(val) = step.strip_prefix("v:") {
            let want: Value = serde_json::from_str(val).ok()?;
            cur = cur.as_array()?.iter().find(|item| **item == want)?;
        } else {
            return None;
        }
    }
    Some(cur)
}

/// Removes the value at `path` from `obj`; a no-op when it is not there.
fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else { return };
    if last == "." {
        remove_at(obj, parent);
        // A list left empty by the removal goes too, as upstream leaves no empty list behind.
        if let Some((_, list_path)) = parent.split_last()
            && value_at(obj, list_path).is_some_and(|v| v.as_array().is_some_and(Vec::is_empty))
        {
            remove_at(obj, list_path);
        }
        return;
    }
    let mut cur = obj;
    for step in parent {
        let next = if let Some(field) = step.strip_prefix("f:") {
            cur.get_mut(field)
        } else if let Some(key) = step.strip_prefix("k:") {
            let Ok(want) = serde_json::from_str::<Map<String, Value>>(key) else { return };
            cur.as_array_mut().and_then(|a| a.iter_mut().find(|item| want.iter().all(|(k, v)| item.get(k) == Some(v))))
        } else {
            None
        };
        let Some(next) = next else { return };
        cur = next;
    }
    if let Some(field) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(field);
        }
    } else if let Some(key) = last.strip_prefix("k:") {
        let Ok(want) = serde_json::from_str::<Map<String, Value>>(key) else { return };
        if let Some(a) = cur.as_array_mut() {
            a.retain(|item| !want.iter().all(|(k, v)| item.get(k) == Some(v)));
        }
    } else if let Some(val) = last.strip_prefix("v:") {
        let Ok(want) = serde_json::from_str::<Value>(val) else { return };
        if let Some(a) = cur.as_array_mut() {
            a.retain(|item| *item != want);
        }
    }
}

/// Encodes a set of leaf paths as `FieldsV1`.
pub fn to_fields_v1(set: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut cur = &mut root;
        for step in path {
            let entry = cur.entry(step.clone()).or_insert_with(|| json!({}));
            if !entry.is_object() {
                *entry = json!({});
            }
            let Value::Object(next) = entry else { unreachable!("made an object above") };
            cur = next;
        }
    }
    Value::Object(root)
}

/// Decodes `FieldsV1` into leaf paths (an empty object marks a leaf; a `.` child marks a list
/// element that is itself owned, as upstream writes it).
pub fn from_fields_v1(v: &Value) -> BTreeSet<Path> {
    fn go(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(m) = v.as_object() else { return };
        if m.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in m {
            path.push(k.clone());
            go(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    if v.as_object().is_some_and(|m| !m.is_empty()) {
        go(v, &mut Vec::new(), &mut out);
    }
    out
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub time: String,
    pub fields: BTreeSet<Path>,
}

pub fn entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or("").to_owned(),
                    operation: e["operation"].as_str().unwrap_or("Update").to_owned(),
                    api_version: e["apiVersion"].as_str().unwrap_or("").to_owned(),
                    subresource: e["subresource"].as_str().unwrap_or("").to_owned(),
                    time: e["time"].as_str().unwrap_or("").to_owned(),
                    fields: from_fields_v1(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn set_entries(obj: &mut Value, list: &[Entry]) {
    let encoded: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if encoded.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(encoded));
        }
    }
}

/// Records an ordinary write by `manager`: it takes every field it changed.
pub fn record_update(
    new: &mut Value,
    old: Option<&Value>,
    manager: &str,
    subresource: &str,
    schema: &dyn PatchSchema,
    now: &str,
) {
    let mut list = old.map(entries).unwrap_or_default();
    let new_fields = fields_of(new, schema);
    let old_fields = old.map(|o| fields_of(o, schema)).unwrap_or_default();
    let changed: BTreeSet<Path> =
        new_fields.iter().filter(|p| old.is_none_or(|o| value_at(o, p) != value_at(new, p))).cloned().collect();
    let removed: BTreeSet<&Path> = old_fields.iter().filter(|p| !new_fields.contains(*p)).collect();
    for e in &mut list {
        e.fields.retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        let api_version = new["apiVersion"].as_str().unwrap_or("").to_owned();
        match list.iter_mut().find(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource)
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = now.to_owned();
            }
            None => list.push(Entry {
                manager: manager.to_owned(),
                operation: "Update".into(),
                api_version,
                subresource: subresource.to_owned(),
                time: now.to_owned(),
                fields: changed,
            }),
        }
    }
    set_entries(new, &list);
}

/// A field another applier owns with a different value.
#[derive(Debug, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: String,
}

/// `.spec.replicas`, `.spec.template.spec.containers[name="nginx"].image`, as upstream prints paths.
pub fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for step in path {
        if let Some(f) = step.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = step.strip_prefix("k:") {
            let inner: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
            let parts: Vec<String> = inner.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = step.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// Applies `applied` (already merged into `merged` by the caller) on behalf of `manager`:
/// checks conflicts, removes fields the manager no longer applies, and records ownership.
/// `current` is the object before the apply (None when the apply creates it).
pub fn apply(
    merged: &mut Value,
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schema: &dyn PatchSchema,
    now: &str,
) -> Result<(), Vec<Conflict>> {
    let mut list = current.map(entries).unwrap_or_default();
    let applied_fields = fields_of(applied, schema);
    let mut conflicts = Vec::new();
    for e in list.iter().filter(|e| e.manager != manager && e.operation == "Apply") {
        for p in e.fields.intersection(&applied_fields) {
            let theirs = current.and_then(|c| value_at(c, p));
            if theirs != value_at(applied, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: display_path(p),
                });
            }
        }
    }
    // Ordinary writers' fields conflict too, as upstream's do: an apply must not silently
    // overwrite what `kubectl scale` or a controller set.
    // A manager's updates are a different owner from its applies, as upstream's manager
    // identity includes the operation: `kubectl apply` conflicts with `kubectl scale`.
    for e in list.iter().filter(|e| e.operation == "Update") {
        for p in e.fields.intersection(&applied_fields) {
            let theirs = current.and_then(|c| value_at(c, p));
            if theirs.is_some() && theirs != value_at(applied, p) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: display_path(p),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    // Fields this manager applied before and leaves out now go, unless someone else owns them.
    let previous: BTreeSet<Path> = list
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply")
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for p in previous.difference(&applied_fields) {
        let shared = list.iter().any(|e| e.manager != manager && e.fields.contains(p));
        if !shared {
            remove_at(merged, p);
        }
    }
    // Overlaps with equal values stay shared; a force takes the conflicting fields (those
    // whose value the applier changes) from everyone else, and only those.
    if force {
        for e in list.iter_mut().filter(|e| !(e.manager == manager && e.operation == "Apply")) {
            e.fields.retain(|p| {
                !applied_fields.contains(p) || current.and_then(|c| value_at(c, p)) == value_at(applied, p)
            });
        }
    }
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    list.push(Entry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        api_version: merged["apiVersion"].as_str().unwrap_or("").to_owned(),
        subresource: String::new(),
        time: now.to_owned(),
        fields: applied_fields,
    });
    set_entries(merged, &list);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rkube_apimachinery::patch::schema_for_kind;

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "b"}},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
    }

    #[test]
    fn fields_use_merge_keys() {
        let f = fields_of(&deploy(2, "nginx"), schema_for_kind("Deployment"));
        let v1 = to_fields_v1(&f);
        assert_eq!(v1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:image"], json!({}));
        assert_eq!(v1["f:metadata"]["f:labels"]["f:a"], json!({}));
        assert!(v1["f:metadata"].get("f:name").is_none(), "identity is not owned");
        assert_eq!(from_fields_v1(&v1), f);
    }

    #[test]
    fn apply_conflicts_with_another_owner_unless_forced() {
        let schema = schema_for_kind("Deployment");
        let mut first = deploy(2, "nginx");
        apply(&mut first, None, &deploy(2, "nginx"), "alice", false, schema, "t").expect("first apply");
        let mut second = first.clone();
        second["spec"]["replicas"] = json!(5);
        let err =
            apply(&mut second, Some(&first), &deploy(5, "nginx"), "bob", false, schema, "t").expect_err("conflict");
        assert_eq!(
            err,
            vec![Conflict { manager: "alice".into(), api_version: "apps/v1".into(), path: ".spec.replicas".into() }]
        );
        apply(&mut second, Some(&first), &deploy(5, "nginx"), "bob", true, schema, "t").expect("forced");
        let owners = entries(&second);
        let alice = owners.iter().find(|e| e.manager == "alice").expect("alice keeps the rest");
        assert!(!alice.fields.iter().any(|p| display_path(p) == ".spec.replicas"));
    }

    #[test]
    fn dropped_fields_are_removed() {
        let schema = schema_for_kind("Deployment");
        let mut obj = deploy(2, "nginx");
        apply(&mut obj, None, &deploy(2, "nginx"), "alice", false, schema, "t").expect("apply");
        let mut without_labels = deploy(2, "nginx");
        without_labels["metadata"].as_object_mut().expect("meta").remove("labels");
        let before = obj.clone();
        apply(&mut obj, Some(&before), &without_labels, "alice", false, schema, "t").expect("apply");
        assert!(obj["metadata"]["labels"].get("a").is_none(), "{obj}");
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let schema = schema_for_kind("Deployment");
        let mut obj = deploy(2, "nginx");
        apply(&mut obj, None, &deploy(2, "nginx"), "alice", false, schema, "t").expect("apply");
        let mut scaled = obj.clone();
        scaled["spec"]["replicas"] = json!(3);
        record_update(&mut scaled, Some(&obj), "kubectl-scale", "", schema, "t");
        let owners = entries(&scaled);
        let scale = owners.iter().find(|e| e.manager == "kubectl-scale").expect("scale entry");
        assert_eq!(scale.fields.iter().map(|p| display_path(p)).collect::<Vec<_>>(), [".spec.replicas"]);
        // Alice re-applying replicas 2 now conflicts with the scaler.
        let mut again = scaled.clone();
        assert!(apply(&mut again, Some(&scaled), &deploy(2, "nginx"), "alice", false, schema, "t").is_err());
    }
}
