//! OpenAPI v3: the root index at `/openapi/v3` and one document per served group-version at
//! `/openapi/v3/api/v1` and `/openapi/v3/apis/<group>/<version>`.
//!
//! kubectl needs these for its default `--validate=strict`: before `apply`, `create -f`,
//! `replace` and `edit` it looks for a PATCH operation carrying the object's
//! `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter, and only then
//! leaves validation to the server (`fieldValidation=Strict`). `kubectl explain` reads the
//! component schemas, which come from the k8s-openapi types (their `schemars` feature) under
//! upstream's names (`io.k8s.api.core.v1.Pod`), with the group-version-kind extension added to
//! the kinds and the list-merge extensions taken from the server's own strategic merge patch.
//!
//! The documents are static: each is built once, on first use, and kept with its hash. The
//! root links each document as `/openapi/v3/<path>?hash=<hash>`, so a client that requests
//! that URL may cache the answer for good (upstream sends `Cache-Control: public, immutable`
//! when the hash matches).

mod operations;

use std::sync::OnceLock;

use bytes::Bytes;
use k8s_openapi::api::{apps::v1 as apps, autoscaling::v1 as autoscaling, coordination::v1 as coordination};
use k8s_openapi::api::{core::v1 as core, discovery::v1 as discovery};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::{SchemaGenerator, SchemaSettings};
use k8s_openapi::schemars::{JsonSchema, Schema};
use rkube_apimachinery::patch::{ListStrategy, PatchSchema, schema_for_kind};
use serde_json::{Map, Value, json};

use crate::registry::{RESOURCES, Resource, Subresource};

/// The `Content-Type` of the root and of every document.
pub const CONTENT_TYPE: &str = "application/json";

/// One group-version's document, serialized once.
struct Document {
    group: &'static str,
    version: &'static str,
    bytes: Bytes,
    /// Upstream's hash: the SHA-512 of the document's bytes, in upper-case hex.
    hash: String,
}

impl Document {
    /// `api/v1` or `apis/apps/v1`: the document's key in the root and the tail of its URL.
    fn path(&self) -> String {
        path_of(self.group, self.version)
    }
}

fn path_of(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

fn documents() -> &'static [Document] {
    static DOCUMENTS: OnceLock<Vec<Document>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(group, version)| {
                // Serializing a `Value` cannot fail: its keys are strings.
                let bytes = Bytes::from(serde_json::to_vec(&build_document(group, version)).unwrap_or_default());
                let hash = hex_upper(ring::digest::digest(&ring::digest::SHA512, &bytes).as_ref());
                Document { group, version, bytes, hash }
            })
            .collect()
    })
}

/// The served group-versions, core first, in registry order.
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out.sort_by_key(|(group, _)| !group.is_empty());
    out
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// `GET /openapi/v3`: every served group-version with the URL of its document.
pub fn root() -> Value {
    let paths: Map<String, Value> = documents()
        .iter()
        .map(|d| (d.path(), json!({"serverRelativeURL": format!("/openapi/v3/{}?hash={}", d.path(), d.hash)})))
        .collect();
    json!({ "paths": paths })
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`: the document, as JSON
/// bytes, or `None` when that group-version is not served.
pub fn document(group: &str, version: &str) -> Option<Bytes> {
    find(group, version).map(|d| d.bytes.clone())
}

/// The hash the root links a document with, for the `hash` query parameter and an `ETag`.
pub fn document_hash(group: &str, version: &str) -> Option<&'static str> {
    find(group, version).map(|d| d.hash.as_str())
}

fn find(group: &str, version: &str) -> Option<&'static Document> {
    documents().iter().find(|d| d.group == group && d.version == version)
}

/// The `Content-Type` of an OpenAPI v2 document in protobuf, as upstream answers it. Clients
/// ask for `…spec.v2@v1.0+protobuf`, but Go's MIME parser rejects the `@` in a `Content-Type`.
pub const V2_PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `GET /openapi/v2`: an empty OpenAPI v2 document, in protobuf, for a client that asks for
/// protobuf; `None` (a 404) for any other.
///
/// kubectl 1.27 and 1.28 download the v2 document before they validate anything, and give up
/// when that fails, although they then find `fieldValidation` in the v3 documents and leave the
/// validating to the server. An empty protobuf message is a valid, empty document: with it those
/// versions go on to the v3 check, and `apply` builds its patches from its compiled-in types,
/// as it does whenever the v2 document has no schema for a kind. Later versions do not need it
/// and work with it as with a 404 (checked with kubectl 1.33).
pub fn v2(accept: Option<&str>) -> Option<(&'static str, Bytes)> {
    let wants_protobuf = accept.unwrap_or("").split(',').any(|range| {
        let media_type = range.split(';').next().unwrap_or("").trim();
        media_type == "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
            || media_type == V2_PROTOBUF_CONTENT_TYPE
    });
    wants_protobuf.then(|| (V2_PROTOBUF_CONTENT_TYPE, Bytes::new()))
}

// === Documents ===

fn build_document(group: &'static str, version: &'static str) -> Value {
    let resources: Vec<&'static Resource> =
        RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": operations::paths(group, version, &resources),
        "components": {
            "schemas": components(&resources),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "description": "Bearer Token authentication",
                    "name": "authorization",
                    "in": "header",
                },
            },
        },
        "security": [{"BearerToken": []}],
    })
}

/// `#/components/schemas/<name>`.
fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// A kind whose schema comes from its k8s-openapi type.
struct KindType {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    /// Adds the type's schema, and the schemas it refers to, to the generator.
    add: fn(&mut SchemaGenerator) -> Schema,
}

const fn kind_type<T: JsonSchema + k8s_openapi::Resource>() -> KindType {
    KindType { group: T::GROUP, version: T::VERSION, kind: T::KIND, add: SchemaGenerator::subschema_for::<T> }
}

/// The k8s-openapi type of every kind a document describes: the served kinds and what their
/// subresources take and return. A resource added to the registry needs its type here too
/// (a test checks that).
static KIND_TYPES: &[KindType] = &[
    kind_type::<core::Namespace>(),
    kind_type::<core::Node>(),
    kind_type::<core::Pod>(),
    kind_type::<core::Service>(),
    kind_type::<core::Endpoints>(),
    kind_type::<core::Secret>(),
    kind_type::<core::ConfigMap>(),
    kind_type::<core::Event>(),
    kind_type::<core::ServiceAccount>(),
    kind_type::<core::Binding>(),
    kind_type::<apps::Deployment>(),
    kind_type::<apps::ReplicaSet>(),
    kind_type::<autoscaling::Scale>(),
    kind_type::<discovery::EndpointSlice>(),
    kind_type::<coordination::Lease>(),
];

fn kind_type_of(group: &str, version: &str, kind: &str) -> Option<&'static KindType> {
    KIND_TYPES.iter().find(|t| (t.group, t.version, t.kind) == (group, version, kind))
}

/// The component name of a kind: upstream's Go package path and type name, which is also the
/// k8s-openapi schema name. A kind without a k8s-openapi type gets a name in the same style.
fn schema_name(group: &str, version: &str, kind: &str) -> String {
    let package = match group {
        "" => "core",
        other => other.strip_suffix(".k8s.io").unwrap_or(other),
    };
    format!("io.k8s.api.{package}.{version}.{kind}")
}

/// The kinds a document's operations refer to: each resource's kind and what its subresources
/// return, as (group, version, kind).
fn document_kinds(resources: &[&Resource]) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut kinds = Vec::new();
    let mut push = |gvk| {
        if !kinds.contains(&gvk) {
            kinds.push(gvk);
        }
    };
    for r in resources {
        push((r.group, r.version, r.kind));
        for sub in r.subresources {
            // Exec, attach and log are connections and streams, described by query parameters
            // rather than by a body schema, as upstream does.
            if matches!(sub, Subresource::Scale | Subresource::Binding | Subresource::Token) {
                push(crate::discovery::subresource_kind(*sub, r));
            }
        }
    }
    kinds
}

fn components(resources: &[&Resource]) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let kinds = document_kinds(resources);
    let mut kind_names = Vec::new();
    let mut untyped = Vec::new();
    for &(group, version, kind) in &kinds {
        match kind_type_of(group, version, kind) {
            Some(t) => {
                (t.add)(&mut generator);
                kind_names.push(((group, version, kind), schema_name(group, version, kind)));
            }
            None => untyped.push((group, version, kind)),
        }
    }
    // What every document's operations use besides the kinds.
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::Patch>();
    generator.subschema_for::<meta::APIResourceList>();
    let mut schemas = generator.take_definitions(true);

    // A kind without a k8s-openapi type still needs a schema that names it, or kubectl finds
    // no path for it and refuses to validate.
    for (group, version, kind) in untyped {
        let name = schema_name(group, version, kind);
        schemas.insert(
            name.clone(),
            json!({"description": format!("{kind} is served by this server."), "type": "object"}),
        );
        kind_names.push(((group, version, kind), name));
    }
    for ((group, version, kind), name) in &kind_names {
        if let Some(Value::Object(schema)) = schemas.get_mut(name) {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": group, "kind": kind, "version": version}]),
            );
            // k8s-openapi marks `metadata` required because its Rust field is not optional;
            // upstream's schemas do not, and `kubectl explain` would show it as required.
            if let Some(Value::Array(required)) = schema.get_mut("required") {
                required.retain(|f| f != "metadata");
                if required.is_empty() {
                    schema.remove("required");
                }
            }
        }
    }
    for r in resources {
        let name = schema_name(r.group, r.version, r.kind);
        let list = list_schema(r, &name, schemas.get(&name));
        schemas.insert(schema_name(r.group, r.version, r.list_kind), list);
        annotate_patch_strategies(&mut schemas, &name, schema_for_kind(r.kind), &mut Vec::new());
    }
    schemas
}

/// The schema of a resource's list kind (`PodList`), which k8s-openapi has no type for.
fn list_schema(r: &Resource, item_name: &str, item: Option<&Value>) -> Value {
    // Borrow the shared field descriptions from the item's schema rather than restate them.
    let description = |field: &str| item.and_then(|i| i["properties"][field]["description"].as_str()).unwrap_or("");
    json!({
        "description": format!("{} is a list of {}.", r.list_kind, r.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": description("apiVersion"), "type": "string"},
            "items": {"description": format!("List of {}.", r.resource), "type": "array", "items": schema_ref(item_name)},
            "kind": {"description": description("kind"), "type": "string"},
            "metadata": {
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "allOf": [schema_ref("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")],
            },
        },
        "x-kubernetes-group-version-kind": [{"group": r.group, "kind": r.list_kind, "version": r.version}],
    })
}

/// The component a property schema refers to: `{"$ref": …}`, or `{"allOf": [{"$ref": …}], …}`
/// as the generator writes a reference that has a description beside it.
fn referenced(schema: &Value) -> Option<&str> {
    let reference = schema.get("$ref").or_else(|| schema["allOf"].get(0).and_then(|first| first.get("$ref")))?;
    reference.as_str()?.strip_prefix("#/components/schemas/")
}

/// How deep [`annotate_patch_strategies`] follows references: deeper than any list the
/// strategic merge patch table knows, and a stop for recursive types.
const MAX_PATCH_DEPTH: usize = 12;

/// Marks each list the server's strategic merge patch merges (rather than replaces) with
/// upstream's `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key`, so that the
/// documents describe what the server does. `path` is the field path from the kind's root.
fn annotate_patch_strategies(
    schemas: &mut Map<String, Value>,
    name: &str,
    patch: &dyn PatchSchema,
    path: &mut Vec<String>,
) {
    if path.len() > MAX_PATCH_DEPTH {
        return;
    }
    let Some(properties) = schemas.get(name).and_then(|s| s["properties"].as_object()) else { return };
    // Collect first: the walk below mutates the map it reads from.
    let fields: Vec<(String, bool, Option<String>)> = properties
        .iter()
        .map(|(field, schema)| {
            let is_list = schema["type"] == "array";
            let child = if is_list { referenced(&schema["items"]) } else { referenced(schema) };
            (field.clone(), is_list, child.map(str::to_owned))
        })
        .collect();
    for (field, is_list, child) in fields {
        path.push(field.clone());
        if is_list {
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            let extensions = match patch.list_strategy(&segments) {
                ListStrategy::MergeByKey(key) => {
                    Some(json!({"x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge"}))
                }
                ListStrategy::MergePrimitives => Some(json!({"x-kubernetes-patch-strategy": "merge"})),
                ListStrategy::Replace => None,
            };
            if let (Some(Value::Object(extensions)), Some(Value::Object(property))) =
                (extensions, schemas.get_mut(name).and_then(|s| s.get_mut("properties")?.get_mut(&field)))
            {
                property.extend(extensions);
            }
        }
        if let Some(child) = child {
            annotate_patch_strategies(schemas, &child, patch, path);
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests;
