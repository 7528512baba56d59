//! Garbage in, no panic out: the patch functions take their input straight from clients.
//!
//! These tests feed the three formats many pseudo-random documents and patches, built from a
//! vocabulary of field names and directives that steers them into the interesting code paths.
//! The generator is seeded, so a failure reproduces exactly.

use serde_json::{Map, Value, json};

use super::{ReplaceAllLists, apply_json_patch, apply_merge_patch, apply_strategic_merge_patch, schema_for_kind};

/// SplitMix64: tiny, deterministic, and good enough to pick among a few choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        // The modulo bias is irrelevant for picking test inputs.
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const FIELDS: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "template",
    "containers",
    "initContainers",
    "name",
    "image",
    "ports",
    "containerPort",
    "port",
    "env",
    "finalizers",
    "ownerReferences",
    "uid",
    "labels",
    "conditions",
    "type",
    "volumes",
    "tolerations",
    "podCIDRs",
];

const DIRECTIVE_KEYS: &[&str] = &[
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/ports",
    "$setElementOrder/finalizers",
    "$setElementOrder/labels",
    "$deleteFromPrimitiveList/finalizers",
    "$deleteFromPrimitiveList/containers",
    "$setElementOrder",
    "$deleteFromPrimitiveList",
];

const STRINGS: &[&str] = &["delete", "replace", "merge", "a", "b", "name", "", "80", "~1"];

/// A random scalar, with numbers that collide as merge keys (80 and 80.0).
fn scalar(rng: &mut Rng) -> Value {
    match rng.below(7) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 => json!(rng.below(3) as u64 + 79),
        3 => json!(80.0),
        4 => json!(-1),
        _ => json!(rng.pick(STRINGS)),
    }
}

/// A random value at most `depth` levels deep. `directives` allows the directive keys of
/// strategic merge patch, which documents never contain.
fn value(rng: &mut Rng, depth: usize, directives: bool) -> Value {
    if depth == 0 {
        return scalar(rng);
    }
    match rng.below(10) {
        0..=2 => scalar(rng),
        3..=5 => {
            let len = rng.below(4);
            // Lists of objects that carry common merge keys, to reach the merging code.
            let elements: Vec<Value> = (0..len)
                .map(|_| {
                    if rng.below(3) == 0 {
                        value(rng, depth - 1, directives)
                    } else {
                        let mut element = object(rng, depth - 1, directives);
                        for key in ["name", "containerPort", "port", "uid", "type"] {
                            if rng.below(3) == 0 {
                                element.insert(key.to_string(), json!(rng.pick(&["a", "b"])));
                            }
                        }
                        Value::Object(element)
                    }
                })
                .collect();
            Value::Array(elements)
        }
        _ => Value::Object(object(rng, depth - 1, directives)),
    }
}

fn object(rng: &mut Rng, depth: usize, directives: bool) -> Map<String, Value> {
    let len = rng.below(5);
    let mut map = Map::new();
    for _ in 0..len {
        let key = if directives && rng.below(3) == 0 { rng.pick(DIRECTIVE_KEYS) } else { rng.pick(FIELDS) };
        map.insert(key.to_string(), value(rng, depth, directives));
    }
    map
}

/// Replaces a random subtree of `target` with garbage, so that realistic patches go wrong in
/// every possible place.
fn mutate(rng: &mut Rng, target: &mut Value) {
    let mut node = target;
    loop {
        let children = match node {
            Value::Object(map) if !map.is_empty() => map.len(),
            Value::Array(items) if !items.is_empty() => items.len(),
            _ => 0,
        };
        if children == 0 || rng.below(3) == 0 {
            *node = value(rng, 3, true);
            return;
        }
        let at = rng.below(children);
        node = match node {
            Value::Object(map) => match map.values_mut().nth(at) {
                Some(child) => child,
                None => return,
            },
            Value::Array(items) => &mut items[at],
            _ => return,
        };
    }
}

/// Whether any key anywhere in `value` starts with `$`.
fn has_directive_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(k, v)| k.starts_with('$') || has_directive_key(v)),
        Value::Array(items) => items.iter().any(has_directive_key),
        _ => false,
    }
}

#[test]
fn strategic_merge_patch_survives_garbage_and_never_leaks_directives() {
    let mut rng = Rng(0x5EED_0001);
    let schemas = [schema_for_kind("Pod"), schema_for_kind("Deployment"), schema_for_kind("Node"), &ReplaceAllLists];
    let mut applied = 0;
    for _ in 0..4000 {
        let doc = Value::Object(object(&mut rng, 4, false));
        let patch = if rng.below(4) == 0 { value(&mut rng, 4, true) } else { Value::Object(object(&mut rng, 4, true)) };
        for schema in schemas {
            if let Ok(patched) = apply_strategic_merge_patch(&doc, &patch, schema) {
                applied += 1;
                assert!(!has_directive_key(&patched), "doc {doc}\npatch {patch}\n=> {patched}");
            }
        }
    }
    // The generator must reach the success path often, or this test proves little.
    assert!(applied > 2000, "only {applied} patches applied");
}

#[test]
fn mutated_kubectl_patches_do_not_panic() {
    let mut rng = Rng(0x5EED_0002);
    let doc = json!({
        "metadata": {"name": "web", "finalizers": ["a", "b"], "labels": {"app": "web"}},
        "spec": {"template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}, {"containerPort": 443}]},
            {"name": "sidecar", "image": "envoy"}
        ]}}}
    });
    let patches = [
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{
                "name": "nginx",
                "ports": [{"containerPort": 8080}, {"$patch": "delete", "containerPort": 80}],
                "$setElementOrder/ports": [{"containerPort": 8080}]
            }]
        }}}}),
        json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["a"],
            "$setElementOrder/finalizers": ["b", "c"],
            "finalizers": ["c"],
            "$retainKeys": ["finalizers", "name"]
        }}),
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "x"}]}}}}),
    ];
    for _ in 0..3000 {
        let mut patch = rng.pick(&patches).clone();
        mutate(&mut rng, &mut patch);
        let mut target = doc.clone();
        if rng.below(2) == 0 {
            mutate(&mut rng, &mut target);
        }
        for kind in ["Deployment", "Pod", "Widget"] {
            let patched = apply_strategic_merge_patch(&target, &patch, schema_for_kind(kind));
            if let Ok(patched) = patched
                && !has_directive_key(&target)
            {
                assert!(!has_directive_key(&patched), "patch {patch}\n=> {patched}");
            }
        }
    }
}

#[test]
fn json_patch_survives_garbage() {
    let mut rng = Rng(0x5EED_0003);
    let ops = ["add", "remove", "replace", "move", "copy", "test", "bogus"];
    let segments = ["a", "b", "0", "1", "-", "01", "~0", "~1", "~2", "", "spec"];
    let pointer = |rng: &mut Rng| -> Value {
        if rng.below(10) == 0 {
            return scalar(rng);
        }
        let depth = rng.below(4);
        let mut text = String::new();
        for _ in 0..depth {
            text.push('/');
            let segment = *rng.pick(&segments[..]);
            text.push_str(segment);
        }
        if rng.below(20) == 0 {
            text = text.trim_start_matches('/').to_string();
        }
        Value::String(text)
    };
    let mut applied = 0;
    for _ in 0..4000 {
        let doc = value(&mut rng, 4, false);
        let count = rng.below(5);
        let mut operations = Vec::new();
        for _ in 0..count {
            let mut op = Map::new();
            if rng.below(20) != 0 {
                op.insert("op".into(), json!(rng.pick(&ops)));
            }
            if rng.below(20) != 0 {
                op.insert("path".into(), pointer(&mut rng));
            }
            if rng.below(2) == 0 {
                op.insert("from".into(), pointer(&mut rng));
            }
            if rng.below(4) != 0 {
                op.insert("value".into(), value(&mut rng, 2, false));
            }
            operations.push(Value::Object(op));
        }
        let patch = if rng.below(30) == 0 { value(&mut rng, 2, false) } else { Value::Array(operations) };
        if apply_json_patch(&doc, &patch).is_ok() {
            applied += 1;
        }
    }
    assert!(applied > 400, "only {applied} patches applied");
}

#[test]
fn merge_patch_survives_garbage_and_is_idempotent() {
    let mut rng = Rng(0x5EED_0004);
    for _ in 0..4000 {
        let doc = value(&mut rng, 4, false);
        let patch = value(&mut rng, 4, false);
        let once = apply_merge_patch(&doc, &patch);
        let twice = apply_merge_patch(&once, &patch);
        assert_eq!(once, twice, "doc {doc}\npatch {patch}");
    }
}
