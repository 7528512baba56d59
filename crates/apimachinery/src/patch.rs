//! The three patch formats of the Kubernetes API, applied to `serde_json::Value`s.
//!
//! | Content type                              | Function                        |
//! |-------------------------------------------|---------------------------------|
//! | `application/json-patch+json`             | [`apply_json_patch`]            |
//! | `application/merge-patch+json`            | [`apply_merge_patch`]           |
//! | `application/strategic-merge-patch+json`  | [`apply_strategic_merge_patch`] |
//!
//! Each function takes the current object and the patch and returns the patched object, leaving
//! its inputs alone. None of them panics on any input: patches come straight from clients.
//!
//! A strategic merge patch needs to know which lists merge and by what key. Upstream reads that
//! from the Go types' struct tags; here a [`PatchSchema`] answers it, and [`schema_for_kind`]
//! supplies the built-in schema of each kind rkube serves (or [`ReplaceAllLists`] for any other
//! kind, which makes every list replace, as upstream does for objects it has no Go type for).
//!
//! ```
//! use rkube_apimachinery::patch::{apply_strategic_merge_patch, schema_for_kind};
//! use serde_json::json;
//!
//! let pod = json!({"spec": {"containers": [{"name": "app", "image": "app:1"}]}});
//! let patch = json!({"spec": {"containers": [{"name": "app", "image": "app:2"}]}});
//! let patched = apply_strategic_merge_patch(&pod, &patch, schema_for_kind("Pod")).unwrap();
//! assert_eq!(patched, json!({"spec": {"containers": [{"name": "app", "image": "app:2"}]}}));
//! ```
//!
//! What the caller (the API server) still does itself, as upstream does outside these functions:
//! cap the number of JSON patch operations (upstream allows 10,000), check that the patch did not
//! change the object's name, kind or API version, and validate the result.

mod error;
mod json_patch;
mod merge_patch;
mod schema;
mod strategic;
mod value;

#[cfg(test)]
mod robustness_tests;

pub use error::PatchError;
pub use json_patch::apply_json_patch;
pub use merge_patch::apply_merge_patch;
pub use schema::{KindSchema, ListStrategy, PatchSchema, ReplaceAllLists, builtin_schema, schema_for_kind};
pub use strategic::apply_strategic_merge_patch;
