//! Strategic merge patch (`application/strategic-merge-patch+json`), the apply half of upstream
//! `k8s.io/apimachinery/pkg/util/strategicpatch/patch.go`.
//!
//! A strategic merge patch is a JSON merge patch whose lists can merge instead of replace, plus a
//! handful of directives. What upstream does, and so what this module does:
//!
//! * Maps merge recursively; `null` deletes a field; scalars replace.
//! * A list tagged `patchStrategy:"merge"` with a `patchMergeKey` merges element-wise: patch
//!   elements are matched to object elements by the key's value and merged recursively, and
//!   unmatched ones are added. A list tagged `patchStrategy:"merge"` without a key holds
//!   primitives and becomes the union of both lists. Every other list is replaced. The
//!   [`PatchSchema`] says which list is which.
//! * `$patch: replace` in a map replaces the map with the patch's; in a merging list, an element
//!   `{"$patch": "replace"}` makes the rest of the patch list replace the list.
//! * `$patch: delete` in a map empties the map; in a merging list, an element
//!   `{"$patch": "delete", "<key>": <value>}` removes the elements with that key.
//! * `$patch: merge` is the default made explicit. (Upstream rejects it; accepting it costs
//!   nothing and is what the directive's documentation promises.)
//! * `$retainKeys: [..]` drops every field of the map it is in that the list does not name; the
//!   patch may only set fields the list names.
//! * `$deleteFromPrimitiveList/<field>: [..]` removes those values from the primitive list
//!   `<field>`.
//! * `$setElementOrder/<field>: [..]` orders the merged list `<field>`: the elements it names come
//!   in its order, and elements the server has but the directive does not name keep their place
//!   relative to the named ones as far as the server's order allows.
//!
//! Ordering follows upstream exactly, because `kubectl` relies on it: without
//! `$setElementOrder`, elements the patch brings in come before the server's elements that the
//! patch does not mention (the documented behaviour when adding a container with
//! `kubectl patch`).
//!
//! Where upstream leaves directives or nulls inside values it copies wholesale (a field the
//! object lacks, a replaced list, a `$patch: replace` map), the Go API server relies on decoding
//! into typed structs to drop them. rkube stores JSON, so this module strips them itself, the way
//! newer upstream versions already do for absent fields: the result never contains directive keys
//! or `null` map values that came from the patch.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::error::{PatchError, excerpt, json_type_name};
use super::schema::{ListStrategy, PatchSchema};
use super::value::json_eq;

const DIRECTIVE: &str = "$patch";
const DELETE: &str = "delete";
const REPLACE: &str = "replace";
const MERGE: &str = "merge";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

type Object = Map<String, Value>;

/// Applies a strategic merge patch to `doc` and returns the result.
///
/// `schema` says which lists merge and by what key; use
/// [`schema_for_kind`](super::schema_for_kind) for the kind of `doc`. Both `doc` and `patch` must
/// be JSON objects; a `null` patch changes nothing, as it does upstream.
pub fn apply_strategic_merge_patch(doc: &Value, patch: &Value, schema: &dyn PatchSchema) -> Result<Value, PatchError> {
    let Value::Object(original) = doc else {
        return Err(PatchError::InvalidJsonDocument);
    };
    let patch = match patch {
        Value::Object(patch) => patch,
        Value::Null => return Ok(doc.clone()),
        _ => return Err(PatchError::InvalidJsonDocument),
    };
    Merger { schema }.merge_map(original.clone(), patch, &[]).map(Value::Object)
}

/// Carries the schema through the recursion.
struct Merger<'s> {
    schema: &'s dyn PatchSchema,
}

impl Merger<'_> {
    /// Merges `patch` into `original`, the map at `path`. Upstream's `mergeMap`.
    fn merge_map<'p>(&self, mut original: Object, patch: &'p Object, path: &[&'p str]) -> Result<Object, PatchError> {
        if let Some(directive) = patch.get(DIRECTIVE) {
            match directive.as_str() {
                Some(DELETE) => return Ok(Object::new()),
                Some(REPLACE) => return Ok(clean_fields(patch)),
                Some(MERGE) => {}
                _ => return Err(unknown_directive(path, directive, patch)),
            }
        }

        apply_retain_keys(&mut original, patch)?;
        let ordered = self.apply_set_element_order(&mut original, patch, path)?;

        // Deletions from primitive lists run before the ordinary fields, so that the outcome does
        // not depend on the order of keys in the patch (upstream iterates a Go map, whose order is
        // random). kubectl never deletes and adds the same value in one patch.
        for (key, value) in patch {
            if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
                let field = directive_field(key, DELETE_FROM_PRIMITIVE_LIST)
                    .ok_or(PatchError::BadPatchFormatForPrimitiveList)?;
                delete_from_primitive_list(&mut original, field, value)?;
            }
        }

        for (key, value) in patch {
            if is_directive_key(key) || ordered.contains(&key.as_str()) {
                continue;
            }
            if value.is_null() {
                original.remove(key);
                continue;
            }
            let child = child_path(path, key);
            match (original.get_mut(key), value) {
                (Some(Value::Object(current)), Value::Object(patch_fields)) => {
                    let taken = std::mem::take(current);
                    *current = self.merge_map(taken, patch_fields, &child)?;
                }
                (Some(Value::Array(current)), Value::Array(patch_items)) => {
                    let taken = std::mem::take(current);
                    let strategy = self.schema.list_strategy(&child);
                    *current = self.merge_list(taken, patch_items, strategy, &child)?;
                }
                // The field is new, or changes type, or is a scalar: the patch's value replaces it.
                _ => match clean(value) {
                    Some(value) => {
                        original.insert(key.clone(), value);
                    }
                    None => {
                        original.remove(key);
                    }
                },
            }
        }
        Ok(original)
    }

    /// Handles every `$setElementOrder/<field>` of `patch`: merges `<field>` and orders the
    /// result. Returns the fields it handled, which the caller must not merge again. Upstream's
    /// `mergePatchIntoOriginal`.
    fn apply_set_element_order<'p>(
        &self,
        original: &mut Object,
        patch: &'p Object,
        path: &[&'p str],
    ) -> Result<Vec<&'p str>, PatchError> {
        let mut ordered = Vec::new();
        for (key, order) in patch {
            if !key.starts_with(SET_ELEMENT_ORDER) {
                continue;
            }
            let field =
                directive_field(key, SET_ELEMENT_ORDER).ok_or(PatchError::BadPatchFormatForSetElementOrderList)?;
            let Value::Array(order) = order else {
                return Err(PatchError::BadPatchFormatForSetElementOrderList);
            };
            let patch_items = match patch.get(field) {
                None => None,
                Some(Value::Array(items)) => Some(items),
                // A null deletes the list and anything else replaces it; either way there is no
                // list left to order, and the ordinary merge applies the value.
                Some(_) => continue,
            };
            let current = match original.get(field) {
                Some(Value::Array(items)) => Some(items.clone()),
                _ => None,
            };
            let child = child_path(path, field);
            let strategy = self.schema.list_strategy(&child);
            let key_name = strategy.merge_key();
            if let Some(items) = patch_items {
                validate_order(items, order, key_name, &child)?;
            }
            let (merged, server_positions) = match (current, patch_items) {
                (None, None) => continue,
                (Some(current), None) => {
                    let positions = Positions::new(&current, key_name, &child)?;
                    (current, positions)
                }
                (None, Some(items)) => (clean_list(items), Positions::default()),
                (Some(current), Some(items)) => match strategy {
                    ListStrategy::MergeByKey(key) => {
                        self.merge_keyed_list(current, items, key, &child, ServerView::Wanted)?
                    }
                    ListStrategy::Replace | ListStrategy::MergePrimitives => {
                        let positions = Positions::new(&current, key_name, &child)?;
                        (self.merge_list(current, items, strategy, &child)?, positions)
                    }
                },
            };
            let order_positions = Positions::new(order, key_name, &child)?;
            let (listed, unlisted) = partition(merged, &order_positions, key_name, &child)?;
            let result =
                normalize_element_order(listed, unlisted, &order_positions, &server_positions, key_name, &child)?;
            original.insert(field.to_string(), Value::Array(result));
            ordered.push(field);
        }
        Ok(ordered)
    }

    /// Merges the list `patch` into `original`, the list at `path`, as `strategy` says.
    fn merge_list<'p>(
        &self,
        original: Vec<Value>,
        patch: &'p [Value],
        strategy: ListStrategy<'_>,
        path: &[&'p str],
    ) -> Result<Vec<Value>, PatchError> {
        match strategy {
            ListStrategy::Replace => Ok(clean_list(patch)),
            ListStrategy::MergePrimitives => merge_primitive_list(original, patch, path),
            ListStrategy::MergeByKey(key) => {
                self.merge_keyed_list(original, patch, key, path, ServerView::NotWanted).map(|(merged, _)| merged)
            }
        }
    }

    /// Merges a list of objects by the merge key `key`. Upstream's `mergeSlice` for maps.
    ///
    /// With [`ServerView::Wanted`] it also returns the positions of what upstream's
    /// `$setElementOrder` handling sees as the server's list afterwards; see [`ServerView`].
    fn merge_keyed_list<'p>(
        &self,
        original: Vec<Value>,
        patch: &'p [Value],
        key: &str,
        path: &[&'p str],
        view: ServerView,
    ) -> Result<(Vec<Value>, Positions), PatchError> {
        if original.is_empty() && patch.is_empty() {
            return Ok((original, Positions::default()));
        }
        let original_len = original.len();
        match common_kind(original.iter().chain(patch), path)? {
            None | Some(Kind::Object) => {}
            Some(kind) => {
                return Err(PatchError::UnexpectedListElement {
                    field: field_name(path),
                    expected: "a map",
                    actual: kind.name(),
                });
            }
        }

        // Directive elements first: deletions remove elements by key, and a replace marker makes
        // the remaining patch elements the whole list.
        let mut replace = false;
        let mut doomed = Positions::default();
        let mut plain: Vec<&'p Value> = Vec::new();
        for item in patch {
            let Value::Object(fields) = item else {
                continue;
            };
            match fields.get(DIRECTIVE) {
                None => plain.push(item),
                Some(directive) => match directive.as_str() {
                    Some(DELETE) => doomed.insert(identity(item, Some(key), path)?, 0),
                    Some(REPLACE) => replace = true,
                    Some(MERGE) => plain.push(item),
                    _ => return Err(unknown_directive(path, directive, fields)),
                },
            }
        }
        let mut kept = original;
        if !doomed.is_empty() {
            kept.retain(|item| item.get(key).is_none_or(|id| doomed.get(id).is_none()));
        }
        let (mut merged, plain, mut view_positions) = if replace {
            let replacement = plain.iter().filter_map(|item| clean_list_element(item)).collect();
            // Upstream deletes from the server's list in place even when the list is replaced.
            let view_positions = match view {
                ServerView::Wanted => Some(Positions::new(&kept, Some(key), path)?),
                ServerView::NotWanted => None,
            };
            (replacement, Vec::new(), view_positions)
        } else {
            (kept, plain, None)
        };

        // What the server had (after deletions) fixes the order of the elements the patch does
        // not mention; upstream requires all of them to carry the merge key.
        let server_positions = Positions::new(&merged, Some(key), path)?;
        let mut index = server_positions.clone();
        for item in &plain {
            let Value::Object(fields) = item else {
                continue;
            };
            let id = identity(item, Some(key), path)?;
            match index.get(id) {
                Some(at) => {
                    if let Some(Value::Object(current)) = merged.get_mut(at) {
                        let taken = std::mem::take(current);
                        *current = self.merge_map(taken, fields, path)?;
                    }
                }
                None => {
                    if let Some(added) = clean_list_element(item) {
                        index.insert(id, merged.len());
                        merged.push(added);
                    }
                }
            }
        }

        if view == ServerView::Wanted && view_positions.is_none() {
            let visible = &merged[..original_len.min(merged.len())];
            view_positions = Some(Positions::new(visible, Some(key), path)?);
        }

        let patch_positions = Positions::new(plain.iter().copied(), Some(key), path)?;
        let (listed, unlisted) = partition(merged, &patch_positions, Some(key), path)?;
        let merged = normalize_element_order(listed, unlisted, &patch_positions, &server_positions, Some(key), path)?;
        Ok((merged, view_positions.unwrap_or_default()))
    }
}

/// Whether [`Merger::merge_keyed_list`] should work out upstream's view of the server's list.
///
/// Upstream's `$setElementOrder` handling orders the elements only the server has by their
/// positions in the server's list, but it reads that list through a Go slice that the merge has
/// meanwhile modified in place: deletions shift the later elements forward, and the elements the
/// patch adds are appended into the slots the deletions freed. What it sees is therefore the kept
/// elements followed by as many added ones as there were deletions. Upstream's own test tables
/// (and so kubectl's observable behaviour) depend on this, so it is reproduced here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerView {
    Wanted,
    NotWanted,
}

/// Merges a list of primitives as a set: the union of both lists, without duplicates.
/// Upstream's `mergeSlice` for scalars.
fn merge_primitive_list(original: Vec<Value>, patch: &[Value], path: &[&str]) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    if common_kind(original.iter().chain(patch), path)? == Some(Kind::Object) {
        return Err(PatchError::UnexpectedListElement {
            field: field_name(path),
            expected: "a primitive",
            actual: Kind::Object.name(),
        });
    }
    let mut seen = Positions::default();
    let mut merged = Vec::with_capacity(original.len() + patch.len());
    for item in original.iter().chain(patch) {
        if seen.get(item).is_none() {
            seen.insert(item, merged.len());
            merged.push(item.clone());
        }
    }
    let server_positions = Positions::new(&original, None, path)?;
    let patch_positions = Positions::new(patch, None, path)?;
    let (listed, unlisted) = partition(merged, &patch_positions, None, path)?;
    normalize_element_order(listed, unlisted, &patch_positions, &server_positions, None, path)
}

/// Applies `$deleteFromPrimitiveList/<field>: to_delete` to `original`.
fn delete_from_primitive_list(original: &mut Object, field: &str, to_delete: &Value) -> Result<(), PatchError> {
    let Value::Array(to_delete) = to_delete else {
        return Err(PatchError::BadPatchFormatForPrimitiveList);
    };
    if to_delete.iter().any(|item| item.is_object() || item.is_array()) {
        return Err(PatchError::BadPatchFormatForPrimitiveList);
    }
    // Deleting from a list the object does not have is a no-op, as in newer upstream versions
    // (older ones set the list to the deletion list).
    if let Some(Value::Array(items)) = original.get_mut(field) {
        let doomed = Positions::new(to_delete, None, &[])?;
        items.retain(|item| doomed.get(item).is_none());
    }
    Ok(())
}

/// Applies `$retainKeys` of `patch` to `original`. Upstream's `applyRetainKeysDirective`.
fn apply_retain_keys(original: &mut Object, patch: &Object) -> Result<(), PatchError> {
    let Some(retain) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadPatchFormatForRetainKeys);
    };
    let retained: HashSet<&str> = retain.iter().filter_map(Value::as_str).collect();
    // The patch may not set a field that it also asks to drop.
    let contradicts =
        patch.iter().any(|(key, value)| !value.is_null() && !is_directive_key(key) && !retained.contains(key.as_str()));
    if contradicts {
        return Err(PatchError::BadPatchFormatForRetainKeys);
    }
    original.retain(|key, _| retained.contains(key.as_str()));
    Ok(())
}

/// Checks that the elements of the patch list appear in `$setElementOrder` and in the same
/// relative order (deletions and other directive elements aside). Upstream's
/// `validatePatchWithSetOrderList`.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>, path: &[&str]) -> Result<(), PatchError> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let mut order_ids = Vec::with_capacity(order.len());
    for item in order {
        order_ids.push(identity(item, key, path)?);
    }
    let mut next = 0;
    for item in patch {
        if key.is_some() && !item.is_object() {
            return Err(PatchError::UnexpectedListElement {
                field: field_name(path),
                expected: "a map",
                actual: json_type_name(item),
            });
        }
        if item.get(DIRECTIVE).is_some() {
            continue;
        }
        let id = identity(item, key, path)?;
        loop {
            let Some(candidate) = order_ids.get(next) else {
                return Err(PatchError::SetElementOrderMismatch {
                    field: field_name(path),
                    patch: excerpt(&Value::Array(patch.to_vec())),
                    order: excerpt(&Value::Array(order.to_vec())),
                });
            };
            next += 1;
            if same_value(id, candidate) {
                break;
            }
        }
    }
    Ok(())
}

/// Splits `items` into those whose identity is in `by` and the rest, keeping their order.
fn partition(
    items: Vec<Value>,
    by: &Positions,
    key: Option<&str>,
    path: &[&str],
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut listed = Vec::new();
    let mut unlisted = Vec::new();
    for item in items {
        if by.get(identity(&item, key, path)?).is_some() {
            listed.push(item);
        } else {
            unlisted.push(item);
        }
    }
    Ok((listed, unlisted))
}

/// Orders `listed` (elements the patch or `$setElementOrder` names) by `listed_order`, orders
/// `unlisted` (elements only the server has) by `server_order`, and interleaves the two.
/// Upstream's `normalizeElementOrder`.
fn normalize_element_order(
    listed: Vec<Value>,
    unlisted: Vec<Value>,
    listed_order: &Positions,
    server_order: &Positions,
    key: Option<&str>,
    path: &[&str],
) -> Result<Vec<Value>, PatchError> {
    let listed = sort_by_positions(listed, listed_order, key, path)?;
    let unlisted = sort_by_positions(unlisted, server_order, key, path)?;
    merge_sorted(unlisted, listed, server_order, key, path)
}

/// Stable-sorts `items` by their position in `order`; items `order` lacks go last.
fn sort_by_positions(
    items: Vec<Value>,
    order: &Positions,
    key: Option<&str>,
    path: &[&str],
) -> Result<Vec<Value>, PatchError> {
    let mut ranked = Vec::with_capacity(items.len());
    for item in items {
        let rank = order.get(identity(&item, key, path)?).unwrap_or(usize::MAX);
        ranked.push((rank, item));
    }
    ranked.sort_by_key(|(rank, _)| *rank);
    Ok(ranked.into_iter().map(|(_, item)| item).collect())
}

/// Interleaves the server-only elements (`left`) with the patch's (`right`), keeping the relative
/// order within each. Upstream's `mergeSortedSlice`: a server-only element goes first only when
/// both it and the next patch element are in the server's list and it comes earlier there, so
/// elements new to the server come before the server-only elements that follow them.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &Positions,
    key: Option<&str>,
    path: &[&str],
) -> Result<Vec<Value>, PatchError> {
    let rank = |items: &[Value]| -> Result<Vec<Option<usize>>, PatchError> {
        items.iter().map(|item| Ok(server_order.get(identity(item, key, path)?))).collect()
    };
    let left_ranks = rank(&left)?;
    let right_ranks = rank(&right)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().zip(left_ranks).peekable();
    let mut right = right.into_iter().zip(right_ranks).peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((_, l)), Some((_, r))) => matches!((l, r), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some((item, _)) = next {
            out.push(item);
        }
    }
    Ok(out)
}

/// What identifies a list element: the value of its merge key, or the element itself in a list
/// without one. An element of a keyed list must be an object that has the key.
fn identity<'v>(item: &'v Value, key: Option<&str>, path: &[&str]) -> Result<&'v Value, PatchError> {
    let Some(key) = key else {
        return Ok(item);
    };
    match item {
        Value::Object(fields) => fields.get(key).ok_or_else(|| PatchError::MissingMergeKey {
            field: field_name(path),
            element: excerpt(item),
            key: key.to_string(),
        }),
        other => Err(PatchError::UnexpectedListElement {
            field: field_name(path),
            expected: "a map",
            actual: json_type_name(other),
        }),
    }
}

/// Whether two identities are the same value, with numbers compared by value as Go does.
fn same_value(a: &Value, b: &Value) -> bool {
    match (ScalarKey::of(a), ScalarKey::of(b)) {
        (Some(a), Some(b)) => a == b,
        _ => json_eq(a, b),
    }
}

/// A hashable stand-in for a JSON scalar, so that looking up list elements by identity is a hash
/// probe rather than a scan (upstream's scans are quadratic, which a large patch can exploit).
/// Numbers that are equal as Go `float64`s map to the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ScalarKey {
    Null,
    Bool(bool),
    Integer(i128),
    Float(u64),
    String(String),
}

impl ScalarKey {
    fn of(value: &Value) -> Option<ScalarKey> {
        Some(match value {
            Value::Null => ScalarKey::Null,
            Value::Bool(b) => ScalarKey::Bool(*b),
            Value::String(s) => ScalarKey::String(s.clone()),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    ScalarKey::Integer(i128::from(i))
                } else if let Some(u) = n.as_u64() {
                    ScalarKey::Integer(i128::from(u))
                } else {
                    match n.as_f64() {
                        // Integral floats within the exactly representable range equal the
                        // integers they spell; 2^53 bounds that range.
                        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => {
                            let integer = f as i64;
                            ScalarKey::Integer(i128::from(integer))
                        }
                        Some(f) => ScalarKey::Float(f.to_bits()),
                        None => ScalarKey::String(n.to_string()),
                    }
                }
            }
            Value::Array(_) | Value::Object(_) => return None,
        })
    }
}

/// The first position of each identity in a list.
#[derive(Debug, Clone, Default)]
struct Positions {
    scalars: HashMap<ScalarKey, usize>,
    /// Identities that are objects or lists, which no kind's merge key holds in practice; they are
    /// compared one by one.
    others: Vec<(Value, usize)>,
}

impl Positions {
    /// Indexes the identities of `items`; fails as [`identity`] does.
    fn new<'a>(
        items: impl IntoIterator<Item = &'a Value>,
        key: Option<&str>,
        path: &[&str],
    ) -> Result<Positions, PatchError> {
        let mut positions = Positions::default();
        for (at, item) in items.into_iter().enumerate() {
            positions.insert(identity(item, key, path)?, at);
        }
        Ok(positions)
    }

    /// Records `id` at `at`, unless it is already recorded at an earlier position.
    fn insert(&mut self, id: &Value, at: usize) {
        match ScalarKey::of(id) {
            Some(scalar) => {
                self.scalars.entry(scalar).or_insert(at);
            }
            None => {
                if !self.others.iter().any(|(known, _)| json_eq(known, id)) {
                    self.others.push((id.clone(), at));
                }
            }
        }
    }

    fn get(&self, id: &Value) -> Option<usize> {
        match ScalarKey::of(id) {
            Some(scalar) => self.scalars.get(&scalar).copied(),
            None => self.others.iter().find(|(known, _)| json_eq(known, id)).map(|(_, at)| *at),
        }
    }

    fn is_empty(&self) -> bool {
        self.scalars.is_empty() && self.others.is_empty()
    }
}

/// The JSON type of a list element, for upstream's rule that merged lists are homogeneous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl Kind {
    fn of(value: &Value) -> Kind {
        match value {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Array(_) => Kind::Array,
            Value::Object(_) => Kind::Object,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Array => "a list",
            Kind::Object => "a map",
        }
    }
}

/// The one JSON type all `items` share (`None` for no items). Lists of lists, and lists that mix
/// types, cannot be merged. Upstream's `sliceElementType`.
fn common_kind<'a>(items: impl Iterator<Item = &'a Value>, path: &[&str]) -> Result<Option<Kind>, PatchError> {
    let mut common = None;
    for item in items {
        let kind = Kind::of(item);
        if kind == Kind::Array {
            return Err(PatchError::NoListOfLists { field: field_name(path) });
        }
        match common {
            None => common = Some(kind),
            Some(seen) if seen != kind => {
                return Err(PatchError::MixedListElementTypes { field: field_name(path) });
            }
            Some(_) => {}
        }
    }
    Ok(common)
}

/// Whether `key` is one of the directives rather than a field.
fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

/// The field a `<prefix>/<field>` directive key names; `None` unless the key is exactly the
/// prefix, a slash, and the field.
fn directive_field<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    key.strip_prefix(prefix)?.strip_prefix('/')
}

/// A value the patch brings in whole, with its directives and null fields removed: maps marked
/// `$patch: delete` vanish, other `$patch` markers and the list directives are dropped, and list
/// elements that are directives are left out. Returns `None` when the value itself vanishes.
fn clean(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(fields) => match fields.get(DIRECTIVE).map(Value::as_str) {
            None | Some(Some(REPLACE | MERGE)) => Some(Value::Object(clean_fields(fields))),
            // A deleted map, or one with a directive nobody understands, is dropped, as upstream's
            // `removeDirectives` does.
            Some(_) => None,
        },
        Value::Array(items) => Some(Value::Array(clean_list(items))),
        other => Some(other.clone()),
    }
}

/// The fields of a map, cleaned as [`clean`] describes.
fn clean_fields(fields: &Object) -> Object {
    fields
        .iter()
        .filter(|(key, _)| !is_directive_key(key))
        .filter_map(|(key, value)| clean(value).map(|value| (key.clone(), value)))
        .collect()
}

/// A list the patch brings in whole, cleaned element by element.
fn clean_list(items: &[Value]) -> Vec<Value> {
    items.iter().filter_map(clean_list_element).collect()
}

/// One element of a list the patch brings in. An element carrying `$patch` is an instruction about
/// the list, not data, and is left out (unless it is the explicit default, `merge`). Nulls in a
/// list are data and stay.
fn clean_list_element(item: &Value) -> Option<Value> {
    match item {
        Value::Object(fields) => match fields.get(DIRECTIVE).map(Value::as_str) {
            None | Some(Some(MERGE)) => Some(Value::Object(clean_fields(fields))),
            Some(_) => None,
        },
        Value::Array(items) => Some(Value::Array(clean_list(items))),
        other => Some(other.clone()),
    }
}

fn child_path<'p>(path: &[&'p str], name: &'p str) -> Vec<&'p str> {
    let mut child = Vec::with_capacity(path.len() + 1);
    child.extend_from_slice(path);
    child.push(name);
    child
}

/// A path as a dotted field name for messages.
fn field_name(path: &[&str]) -> String {
    if path.is_empty() { "(root)".to_string() } else { path.join(".") }
}

fn unknown_directive(path: &[&str], directive: &Value, fields: &Object) -> PatchError {
    PatchError::UnknownPatchDirective {
        field: field_name(path),
        directive: directive.as_str().map_or_else(|| excerpt(directive), str::to_string),
        map: excerpt(&Value::Object(fields.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::{ReplaceAllLists, schema_for_kind};
    use serde_json::json;

    fn smp(kind: &str, doc: Value, patch: Value) -> Result<Value, PatchError> {
        apply_strategic_merge_patch(&doc, &patch, schema_for_kind(kind))
    }

    fn ok(kind: &str, doc: Value, patch: Value) -> Value {
        match smp(kind, doc, patch) {
            Ok(value) => value,
            Err(err) => panic!("patch failed: {err}"),
        }
    }

    fn deployment(containers: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 1, "template": {"spec": {"containers": containers}}}
        })
    }

    /// What `kubectl apply` sends after a container port changes from 80 to 8080.
    #[test]
    fn kubectl_apply_changes_a_container_port() {
        let doc = deployment(json!([
            {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}]}
        ]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{
                "name": "nginx",
                "ports": [{"containerPort": 8080}, {"$patch": "delete", "containerPort": 80}],
                "$setElementOrder/ports": [{"containerPort": 8080}]
            }]
        }}}});
        let want = deployment(json!([
            {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 8080}]}
        ]));
        assert_eq!(ok("Deployment", doc, patch), want);
    }

    /// What `kubectl apply` sends after a Service's port 8080 changes its target port and moves
    /// in front of 443.
    #[test]
    fn kubectl_apply_reorders_service_ports() {
        let doc = json!({"kind": "Service", "spec": {"ports": [
            {"name": "https", "port": 443, "targetPort": 8443},
            {"name": "http", "port": 8080, "targetPort": 8080}
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 8080}, {"port": 443}],
            "ports": [{"port": 8080, "targetPort": 8081}]
        }});
        assert_eq!(
            ok("Service", doc, patch),
            json!({"kind": "Service", "spec": {"ports": [
                {"name": "http", "port": 8080, "targetPort": 8081},
                {"name": "https", "port": 443, "targetPort": 8443}
            ]}})
        );
    }

    #[test]
    fn kubectl_apply_updates_the_last_applied_annotation() {
        let doc = json!({"metadata": {"name": "web", "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n",
            "other": "kept"
        }}});
        let patch = json!({"metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}\n"
        }}});
        assert_eq!(
            ok("ConfigMap", doc, patch),
            json!({"metadata": {"name": "web", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}\n",
                "other": "kept"
            }}})
        );
    }

    #[test]
    fn patch_delete_removes_a_list_element_by_key() {
        let doc = json!({"spec": {"containers": [{"name": "app", "env": [
            {"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}
        ]}]}});
        let patch = json!({"spec": {"containers": [
            {"name": "app", "env": [{"$patch": "delete", "name": "B"}]}
        ]}});
        assert_eq!(
            ok("Pod", doc, patch),
            json!({"spec": {"containers": [{"name": "app", "env": [
                {"name": "A", "value": "1"}, {"name": "C", "value": "3"}
            ]}]}})
        );
    }

    #[test]
    fn patch_delete_needs_the_merge_key() {
        let doc = json!({"spec": {"containers": [{"name": "app"}]}});
        let patch = json!({"spec": {"containers": [{"$patch": "delete", "image": "x"}]}});
        let err = smp("Pod", doc, patch);
        assert!(
            matches!(&err, Err(PatchError::MissingMergeKey { field, key, .. })
                if field == "spec.containers" && key == "name"),
            "{err:?}"
        );
    }

    #[test]
    fn patch_replace_replaces_a_merging_list() {
        let doc = json!({"spec": {"containers": [{"name": "a", "image": "a"}, {"name": "b"}]}});
        let patch = json!({"spec": {"containers": [
            {"$patch": "replace"}, {"name": "c", "image": "c"}, {"name": "a"}
        ]}});
        assert_eq!(
            ok("Pod", doc, patch),
            json!({"spec": {"containers": [{"name": "c", "image": "c"}, {"name": "a"}]}})
        );
    }

    #[test]
    fn patch_replace_replaces_a_map() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "c": "3", "gone": null}}});
        assert_eq!(ok("Pod", doc, patch), json!({"metadata": {"labels": {"c": "3"}}}));
    }

    #[test]
    fn patch_delete_empties_a_map() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}});
        let patch = json!({"metadata": {"labels": {"$patch": "delete"}}});
        assert_eq!(ok("Pod", doc.clone(), patch), json!({"metadata": {"labels": {}}, "spec": {"x": 1}}));
        // At the top level it empties the whole object.
        assert_eq!(ok("Pod", doc, json!({"$patch": "delete"})), json!({}));
    }

    #[test]
    fn patch_merge_is_the_explicit_default() {
        let doc = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [{"name": "a"}]}});
        let patch = json!({
            "metadata": {"labels": {"$patch": "merge", "b": "2"}},
            "spec": {"containers": [{"$patch": "merge", "name": "a", "image": "x"}]}
        });
        assert_eq!(
            ok("Pod", doc, patch),
            json!({
                "metadata": {"labels": {"a": "1", "b": "2"}},
                "spec": {"containers": [{"name": "a", "image": "x"}]}
            })
        );
    }

    #[test]
    fn unknown_patch_directive_is_a_bad_request() {
        let doc = json!({"metadata": {"labels": {}}, "spec": {"containers": [{"name": "a"}]}});
        let err = smp("Pod", doc.clone(), json!({"metadata": {"labels": {"$patch": "explode"}}}));
        assert!(
            matches!(&err, Err(e @ PatchError::UnknownPatchDirective { field, directive, .. })
                if field == "metadata.labels" && directive == "explode" && e.is_bad_request()),
            "{err:?}"
        );
        let patch = json!({"spec": {"containers": [{"$patch": 7, "name": "a"}]}});
        assert!(matches!(smp("Pod", doc, patch), Err(PatchError::UnknownPatchDirective { .. })));
    }

    #[test]
    fn set_element_order_keeps_server_only_elements_in_place() {
        let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        // Only reorders: c and a are named, b is not.
        let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}});
        assert_eq!(
            ok("Pod", doc.clone(), patch),
            json!({"spec": {"containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}]}})
        );
        // Adds d between a and c, as kubectl does when the configuration lists a, d, c; b was added
        // by someone else and stays. Upstream places the server-only b after the new d, because d
        // is not in the server's order and so is never "after" b.
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "d"}, {"name": "c"}],
            "containers": [{"name": "d", "image": "d"}]
        }});
        assert_eq!(
            ok("Pod", doc.clone(), patch),
            json!({"spec": {"containers": [
                {"name": "a"}, {"name": "d", "image": "d"}, {"name": "b"}, {"name": "c"}
            ]}})
        );
        // The full order.
        let patch = json!({"spec": {"$setElementOrder/containers": [
            {"name": "c"}, {"name": "b"}, {"name": "a"}
        ]}});
        assert_eq!(
            ok("Pod", doc, patch),
            json!({"spec": {"containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]}})
        );
    }

    /// kubectl's configuration replaced container a with c, and the server also has d, which
    /// someone else added. Upstream reads the server's order after deleting a and appending c in
    /// its place, so d stays before c.
    #[test]
    fn set_element_order_after_a_deletion_keeps_server_only_elements_first() {
        let doc = json!({"spec": {"containers": [
            {"name": "a"}, {"name": "b", "image": "b"}, {"name": "d", "image": "d"}
        ]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}],
            "containers": [{"name": "c"}, {"$patch": "delete", "name": "a"}]
        }});
        assert_eq!(
            ok("Pod", doc, patch),
            json!({"spec": {"containers": [
                {"name": "b", "image": "b"}, {"name": "d", "image": "d"}, {"name": "c"}
            ]}})
        );
        // Without the deletion c is not in the server's order and goes before d.
        let doc = json!({"spec": {"containers": [{"name": "b"}, {"name": "d"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "c"}],
            "containers": [{"name": "c"}]
        }});
        assert_eq!(
            ok("Pod", doc, patch),
            json!({"spec": {"containers": [{"name": "b"}, {"name": "c"}, {"name": "d"}]}})
        );
    }

    #[test]
    fn set_element_order_for_a_new_list_and_for_primitives() {
        let doc = json!({"metadata": {"finalizers": ["x", "y"]}, "spec": {}});
        let patch = json!({
            "metadata": {"$setElementOrder/finalizers": ["z", "y", "x"], "finalizers": ["z"]},
            "spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "b"}, {"name": "a", "image": "a", "env": null}]
            }
        });
        assert_eq!(
            ok("Pod", doc, patch),
            json!({
                "metadata": {"finalizers": ["z", "y", "x"]},
                "spec": {"containers": [{"name": "b"}, {"name": "a", "image": "a"}]}
            })
        );
    }

    #[test]
    fn set_element_order_must_agree_with_the_patch() {
        let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "b"}, {"name": "a"}]
        }});
        assert!(matches!(smp("Pod", doc.clone(), patch), Err(PatchError::SetElementOrderMismatch { .. })));
        let patch = json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "z"}]
        }});
        assert!(matches!(smp("Pod", doc.clone(), patch), Err(PatchError::SetElementOrderMismatch { .. })));
        for patch in [
            json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
            json!({"spec": {"$setElementOrder": [{"name": "a"}]}}),
            json!({"spec": {"$setElementOrderX/containers": [{"name": "a"}]}}),
        ] {
            let err = smp("Pod", doc.clone(), patch);
            assert_eq!(err, Err(PatchError::BadPatchFormatForSetElementOrderList));
        }
        let patch = json!({"spec": {"$setElementOrder/containers": [{"image": "a"}]}});
        assert!(matches!(smp("Pod", doc, patch), Err(PatchError::MissingMergeKey { .. })));
    }

    #[test]
    fn set_element_order_with_a_null_list_deletes_it() {
        let doc = json!({"spec": {"containers": [{"name": "a"}], "volumes": [{"name": "v"}]}});
        let patch = json!({"spec": {"$setElementOrder/volumes": [], "volumes": null}});
        assert_eq!(ok("Pod", doc, patch), json!({"spec": {"containers": [{"name": "a"}]}}));
    }

    #[test]
    fn retain_keys_drops_unlisted_fields() {
        let doc = json!({"spec": {"strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}
        }}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        assert_eq!(ok("Deployment", doc.clone(), patch), json!({"spec": {"strategy": {"type": "Recreate"}}}));
        // The patch may clear a field it does not retain, but not set one.
        let patch = json!({"spec": {"strategy": {
            "$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null
        }}});
        assert_eq!(ok("Deployment", doc.clone(), patch), json!({"spec": {"strategy": {"type": "Recreate"}}}));
        let patch = json!({"spec": {"strategy": {
            "$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}
        }}});
        let err = smp("Deployment", doc.clone(), patch);
        assert!(matches!(&err, Err(e @ PatchError::BadPatchFormatForRetainKeys) if e.is_bad_request()));
        let patch = json!({"spec": {"strategy": {"$retainKeys": "type"}}});
        assert_eq!(smp("Deployment", doc, patch), Err(PatchError::BadPatchFormatForRetainKeys));
    }

    #[test]
    fn retain_keys_in_a_volume() {
        let doc = json!({"spec": {"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "c"}}
        ]}});
        let patch = json!({"spec": {"volumes": [{
            "$retainKeys": ["hostPath", "name"],
            "name": "data",
            "hostPath": {"path": "/srv"}
        }]}});
        assert_eq!(
            ok("Pod", doc, patch),
            json!({"spec": {"volumes": [
                {"name": "data", "hostPath": {"path": "/srv"}},
                {"name": "conf", "configMap": {"name": "c"}}
            ]}})
        );
    }

    #[test]
    fn delete_from_primitive_list() {
        let doc = json!({"metadata": {"finalizers": ["a", "b", "c", "b"]}});
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}});
        assert_eq!(ok("Pod", doc.clone(), patch), json!({"metadata": {"finalizers": ["a", "c"]}}));
        // Together with an addition and an order, as kubectl sends them: the order applies to the
        // merged list first (server-only b keeps its place before c), then a is deleted.
        let patch = json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["a"],
            "$setElementOrder/finalizers": ["c", "d"],
            "finalizers": ["d"]
        }});
        assert_eq!(ok("Pod", doc.clone(), patch), json!({"metadata": {"finalizers": ["b", "c", "d"]}}));
        // Deleting from a list the object lacks changes nothing.
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/ownerReferences2": ["a"]}});
        assert_eq!(ok("Pod", doc.clone(), patch), doc);
        for patch in [
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [{"a": 1}]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": null}}),
            json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
        ] {
            assert_eq!(smp("Pod", doc.clone(), patch), Err(PatchError::BadPatchFormatForPrimitiveList));
        }
    }

    #[test]
    fn null_deletes_fields() {
        let doc = json!({
            "metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}},
            "spec": {"containers": [{"name": "a", "args": ["x"]}]}
        });
        let patch = json!({
            "metadata": {"labels": {"a": null, "missing": null}, "annotations": null},
            "spec": {"containers": [{"name": "a", "args": null}]}
        });
        assert_eq!(
            ok("Pod", doc, patch),
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"containers": [{"name": "a"}]}})
        );
    }

    /// The documented result of `kubectl patch deployment --patch` adding a second container: the
    /// new container comes first.
    #[test]
    fn adding_a_container_merges_by_name() {
        let doc = deployment(json!([{"name": "patch-demo-ctr", "image": "nginx"}]));
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "patch-demo-ctr-2", "image": "redis"}
        ]}}}});
        assert_eq!(
            ok("Deployment", doc, patch),
            deployment(json!([
                {"name": "patch-demo-ctr-2", "image": "redis"},
                {"name": "patch-demo-ctr", "image": "nginx"}
            ]))
        );
    }

    #[test]
    fn merging_containers_recurses_into_matched_elements() {
        let doc = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}], "args": ["--v"]},
            {"name": "b", "image": "b:1"}
        ]}});
        let patch = json!({"spec": {"containers": [
            {"name": "b", "image": "b:2"},
            {"name": "a", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "3"}], "args": ["--q"]}
        ]}});
        // The patch names b before a. Elements the patch names take the patch's order; only
        // elements the patch leaves out keep the server's.
        assert_eq!(
            ok("Pod", doc, patch),
            json!({"spec": {"containers": [
                {"name": "b", "image": "b:2"},
                {"name": "a", "image": "a:1", "args": ["--q"], "env": [
                    {"name": "Y", "value": "2"}, {"name": "X", "value": "3"}
                ]}
            ]}})
        );
    }

    #[test]
    fn primitive_list_merge_dedups() {
        let doc = json!({"metadata": {"finalizers": ["a", "b"]}});
        let patch = json!({"metadata": {"finalizers": ["b", "c", "c"]}});
        assert_eq!(ok("Pod", doc, patch), json!({"metadata": {"finalizers": ["a", "b", "c"]}}));
        let doc = json!({"spec": {"podCIDRs": ["10.0.0.0/24"]}});
        let patch = json!({"spec": {"podCIDRs": ["fd00::/64", "10.0.0.0/24"]}});
        assert_eq!(ok("Node", doc, patch), json!({"spec": {"podCIDRs": ["fd00::/64", "10.0.0.0/24"]}}));
    }

    #[test]
    fn lists_without_a_strategy_replace() {
        let doc = json!({"spec": {
            "tolerations": [{"key": "a", "operator": "Exists"}],
            "containers": [{"name": "a", "args": ["1", "2"]}]
        }});
        let patch = json!({"spec": {
            "tolerations": [{"key": "b", "operator": "Exists"}],
            "containers": [{"name": "a", "args": ["3"]}]
        }});
        assert_eq!(
            ok("Pod", doc.clone(), patch.clone()),
            json!({"spec": {
                "tolerations": [{"key": "b", "operator": "Exists"}],
                "containers": [{"name": "a", "args": ["3"]}]
            }})
        );
        // A kind without a schema replaces every list, containers included.
        let patched = apply_strategic_merge_patch(&doc, &patch, &ReplaceAllLists);
        assert_eq!(patched, Ok(patch.clone()));
        assert_eq!(smp("Widget", doc, patch.clone()), Ok(patch));
    }

    #[test]
    fn replaced_lists_drop_directive_elements() {
        let doc = json!({"spec": {"tolerations": [{"key": "a"}]}});
        let patch = json!({"spec": {"tolerations": [{"$patch": "replace"}, {"key": "b", "value": null}]}});
        assert_eq!(ok("Pod", doc, patch), json!({"spec": {"tolerations": [{"key": "b"}]}}));
    }

    #[test]
    fn new_fields_are_cleaned_of_directives_and_nulls() {
        let doc = json!({"metadata": {"name": "p"}});
        let patch = json!({
            "metadata": {"labels": {"a": "1", "b": null}, "annotations": {"$patch": "delete"}},
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{
                    "name": "a",
                    "$setElementOrder/ports": [{"containerPort": 53}],
                    "ports": [
                        {"containerPort": 53, "protocol": "UDP"},
                        {"containerPort": 53, "protocol": "TCP"},
                        {"$patch": "delete", "containerPort": 80}
                    ],
                    "$deleteFromPrimitiveList/args": ["x"],
                    "$retainKeys": ["name", "ports"]
                }],
                "volumes": [{"$patch": "replace"}, {"name": "v", "emptyDir": {"$patch": "replace"}}]
            }
        });
        // A new list keeps elements that share a merge key: they are not merged with anything.
        assert_eq!(
            ok("Pod", doc, patch),
            json!({
                "metadata": {"name": "p", "labels": {"a": "1"}},
                "spec": {
                    "containers": [{"name": "a", "ports": [
                        {"containerPort": 53, "protocol": "UDP"},
                        {"containerPort": 53, "protocol": "TCP"}
                    ]}],
                    "volumes": [{"name": "v", "emptyDir": {}}]
                }
            })
        );
    }

    #[test]
    fn type_changes_replace() {
        let doc = json!({"spec": {"a": {"b": 1}, "c": [1], "d": "s"}});
        let patch = json!({"spec": {"a": [1], "c": {"x": null, "y": 1}, "d": {"e": 1}}});
        assert_eq!(ok("Pod", doc, patch), json!({"spec": {"a": [1], "c": {"y": 1}, "d": {"e": 1}}}));
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let doc = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}});
        let patch =
            json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"uid": "2", "name": "b"}]}});
        assert_eq!(
            ok("ReplicaSet", doc, patch),
            json!({"metadata": {"ownerReferences": [
                {"uid": "1", "name": "a", "controller": true},
                {"uid": "2", "name": "b"}
            ]}})
        );
    }

    #[test]
    fn status_conditions_merge_by_type() {
        let doc = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "MemoryPressure", "status": "False"}
        ], "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
        let patch = json!({"status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "Hostname", "address": "n1"}]
        }});
        assert_eq!(
            ok("Node", doc, patch),
            json!({"status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "MemoryPressure", "status": "False"}
            ], "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "10.0.0.1"}
            ]}})
        );
    }

    #[test]
    fn merge_keys_compare_numbers_by_value() {
        let doc = json!({"spec": {"ports": [{"port": 80, "name": "http"}]}});
        let patch = json!({"spec": {"ports": [{"port": 80.0, "targetPort": 8080}]}});
        assert_eq!(
            ok("Service", doc, patch),
            json!({"spec": {"ports": [{"port": 80.0, "name": "http", "targetPort": 8080}]}})
        );
    }

    #[test]
    fn an_empty_merging_list_changes_nothing() {
        let doc = json!({"spec": {"containers": [{"name": "a"}]}, "metadata": {"finalizers": ["f"]}});
        let patch = json!({"spec": {"containers": []}, "metadata": {"finalizers": []}});
        assert_eq!(ok("Pod", doc.clone(), patch), doc);
    }

    #[test]
    fn malformed_lists_are_rejected() {
        let doc = json!({"spec": {"containers": [{"name": "a"}]}, "metadata": {"finalizers": ["f"]}});
        let cases = [
            json!({"spec": {"containers": [["a"]]}}),
            json!({"spec": {"containers": ["a"]}}),
            json!({"spec": {"containers": [{"image": "x"}]}}),
            json!({"metadata": {"finalizers": [{"a": 1}]}}),
            json!({"metadata": {"finalizers": ["a", 1]}}),
            json!({"metadata": {"finalizers": [["a"]]}}),
        ];
        for patch in cases {
            let err = smp("Pod", doc.clone(), patch.clone());
            assert!(matches!(&err, Err(e) if !e.is_bad_request()), "{patch}: {err:?}");
        }
        let err = smp("Pod", doc.clone(), json!({"spec": {"containers": [["a"]]}}));
        assert_eq!(err, Err(PatchError::NoListOfLists { field: "spec.containers".into() }));
        // A server list whose elements lack the merge key cannot be merged either.
        let doc = json!({"spec": {"containers": [{"image": "x"}]}});
        let err = smp("Pod", doc, json!({"spec": {"containers": [{"name": "a"}]}}));
        assert!(matches!(err, Err(PatchError::MissingMergeKey { .. })));
    }

    #[test]
    fn documents_and_patches_must_be_objects() {
        let schema = schema_for_kind("Pod");
        let doc = json!({"a": 1});
        assert_eq!(apply_strategic_merge_patch(&json!([1]), &json!({}), schema), Err(PatchError::InvalidJsonDocument));
        assert_eq!(apply_strategic_merge_patch(&doc, &json!([1]), schema), Err(PatchError::InvalidJsonDocument));
        assert_eq!(apply_strategic_merge_patch(&doc, &Value::Null, schema), Ok(doc.clone()));
        assert_eq!(apply_strategic_merge_patch(&doc, &json!({}), schema), Ok(doc));
    }

    #[test]
    fn large_lists_merge_quickly() {
        // Upstream's scans are quadratic; the hash-based index keeps this instant.
        let n = 20_000;
        let original: Vec<Value> = (0..n).map(|i| json!(format!("f{i}"))).collect();
        let added: Vec<Value> = (0..n).map(|i| json!(format!("g{i}"))).collect();
        let doc = json!({"metadata": {"finalizers": original}});
        let patch = json!({"metadata": {"finalizers": added}});
        let patched = ok("Pod", doc, patch);
        assert_eq!(patched["metadata"]["finalizers"].as_array().map(Vec::len), Some(2 * n));
    }
}
