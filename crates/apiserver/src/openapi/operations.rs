//! The `paths` of a group-version's document: for each resource its collection and item paths,
//! the list across namespaces of a namespaced resource, and one path per subresource. Every
//! operation carries upstream's `operationId`, `x-kubernetes-action` and
//! `x-kubernetes-group-version-kind`, and every write takes `dryRun`, `fieldManager` and
//! `fieldValidation`.

use serde_json::{Map, Value, json};

use super::{schema_name, schema_ref};
use crate::discovery::subresource_kind;
use crate::registry::{Resource, Subresource};

const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";

/// The names upstream derives from a group-version: `CoreV1` inside operation ids and
/// `core_v1` as the tag; `discovery.k8s.io/v1` gives `DiscoveryV1` and `discovery_v1`.
struct GroupVersionNames {
    id: String,
    tag: String,
}

impl GroupVersionNames {
    fn new(group: &str, version: &str) -> GroupVersionNames {
        let short = match group {
            "" => "core",
            other => other.strip_suffix(".k8s.io").unwrap_or(other),
        };
        let camel: String = short.split('.').map(capitalize).collect();
        let tag_group = {
            let mut parts = short.split('.');
            let first = parts.next().unwrap_or("").to_owned();
            first + &parts.map(capitalize).collect::<String>()
        };
        GroupVersionNames { id: format!("{camel}{}", capitalize(version)), tag: format!("{tag_group}_{version}") }
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One operation, before it is rendered.
struct Op {
    /// `x-kubernetes-action`: get, list, post, put, patch, delete, deletecollection or connect.
    action: &'static str,
    id: String,
    description: String,
    gvk: (&'static str, &'static str, &'static str),
    parameters: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

impl Op {
    fn render(self, tag: &str) -> Value {
        let (group, version, kind) = self.gvk;
        let mut op = Map::new();
        op.insert("tags".into(), json!([tag]));
        op.insert("description".into(), json!(self.description));
        op.insert("operationId".into(), json!(self.id));
        if !self.parameters.is_empty() {
            op.insert("parameters".into(), Value::Array(self.parameters));
        }
        if let Some(body) = self.body {
            op.insert("requestBody".into(), body);
        }
        op.insert("responses".into(), self.responses);
        op.insert("x-kubernetes-action".into(), json!(self.action));
        op.insert("x-kubernetes-group-version-kind".into(), json!({"group": group, "version": version, "kind": kind}));
        Value::Object(op)
    }
}

// === Parameters ===

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn pretty() -> Value {
    query("pretty", "string", "If 'true', then the output is pretty printed.")
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run \
         stages will be processed",
    )
}

fn field_manager() -> Value {
    query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. It is required for \
         apply requests (application/apply-patch) and optional otherwise.",
    )
}

/// The parameter kubectl looks for before it leaves validation to the server.
fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing \
         unknown or duplicate fields. Valid values are: - Ignore: unknown fields are silently dropped. - Warn: each \
         unknown field is reported in a warning header, and the request succeeds. - Strict: the request fails with a \
         BadRequest error that lists every unknown and duplicate field.",
    )
}

/// The parameters of every create, replace and patch.
fn write_params() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation()]
}

fn list_params() -> Vec<Value> {
    vec![
        query("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        query("continue", "string", "The continue option should be set when retrieving more results from the server."),
        query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
        query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
        query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
        query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy."),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
        ),
    ]
}

// === Bodies and responses ===

fn body(schema: &str) -> Value {
    json!({"content": {"*/*": {"schema": schema_ref(schema)}}, "required": true})
}

/// The request body of every PATCH.
///
/// `application/strategic-merge-patch+json` is accepted by the server but deliberately not
/// listed: when it is, `kubectl apply` computes its strategic merge patches from these
/// documents' schemas instead of from its compiled-in Go types, and the Go types carry
/// directives (`retainKeys`, the exact merge keys of every list) that the schemas here do not
/// fully describe. Without it kubectl uses the Go types, exactly as against upstream.
fn patch_body() -> Value {
    let schema = json!({"schema": schema_ref(PATCH)});
    json!({
        "content": {
            "application/apply-patch+yaml": schema,
            "application/json-patch+json": schema,
            "application/merge-patch+json": schema,
        },
        "required": true,
    })
}

/// JSON responses with `schema` for each of `codes`, plus upstream's 401.
fn responses(codes: &[&str], schema: &str) -> Value {
    let mut out = Map::new();
    for code in codes {
        let description = match *code {
            "201" => "Created",
            "202" => "Accepted",
            _ => "OK",
        };
        out.insert(
            (*code).into(),
            json!({"description": description, "content": {"application/json": {"schema": schema_ref(schema)}}}),
        );
    }
    out.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(out)
}

/// A plain-text response (logs) or an upgraded connection (exec and attach).
fn string_response(media_type: &str) -> Value {
    json!({
        "200": {"description": "OK", "content": {media_type: {"schema": {"type": "string"}}}},
        "401": {"description": "Unauthorized"},
    })
}

// === Paths ===

/// Every path of the group-version, keyed by path.
pub(super) fn paths(group: &str, version: &str, resources: &[&'static Resource]) -> Map<String, Value> {
    let names = GroupVersionNames::new(group, version);
    let base = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    let mut paths = Map::new();
    let discovery = Op {
        action: "get",
        id: format!("get{}APIResources", names.id),
        description: "get available resources".into(),
        gvk: ("", "v1", "APIResourceList"),
        parameters: Vec::new(),
        body: None,
        responses: responses(&["200"], API_RESOURCE_LIST),
    };
    // Upstream's discovery operation carries no group-version-kind; kubectl ignores it either way.
    let mut discovery = discovery.render(&names.tag);
    if let Some(op) = discovery.as_object_mut() {
        op.remove("x-kubernetes-group-version-kind");
        op.remove("x-kubernetes-action");
    }
    paths.insert(format!("{base}/"), json!({ "get": discovery }));
    for r in resources {
        ResourcePaths { names: &names, base: &base, r }.add_to(&mut paths);
    }
    paths
}

/// The paths of one resource.
struct ResourcePaths<'a> {
    names: &'a GroupVersionNames,
    base: &'a str,
    r: &'static Resource,
}

impl ResourcePaths<'_> {
    fn scope(&self) -> &'static str {
        if self.r.namespaced { "Namespaced" } else { "" }
    }

    /// `listCoreV1NamespacedPod`, `readAppsV1NamespacedDeploymentScale`, …
    fn id(&self, verb: &str, suffix: &str) -> String {
        format!("{verb}{}{}{}{suffix}", self.names.id, self.scope(), self.r.kind)
    }

    fn gvk(&self) -> (&'static str, &'static str, &'static str) {
        (self.r.group, self.r.version, self.r.kind)
    }

    fn collection(&self) -> String {
        if self.r.namespaced {
            format!("{}/namespaces/{{namespace}}/{}", self.base, self.r.resource)
        } else {
            format!("{}/{}", self.base, self.r.resource)
        }
    }

    /// The parameters shared by every operation of a path: the name and namespace in it.
    fn path_params(&self, with_name: bool) -> Vec<Value> {
        let mut params = Vec::new();
        if with_name {
            params.push(path_param("name", &format!("name of the {}", self.r.kind)));
        }
        if self.r.namespaced {
            params.push(path_param("namespace", "object name and auth scope, such as for teams and projects"));
        }
        params.push(pretty());
        params
    }

    fn path(&self, ops: Vec<(&str, Op)>, params: Vec<Value>) -> Value {
        let mut path = Map::new();
        for (method, op) in ops {
            path.insert(method.into(), op.render(&self.names.tag));
        }
        path.insert("parameters".into(), Value::Array(params));
        Value::Object(path)
    }

    fn add_to(&self, paths: &mut Map<String, Value>) {
        let r = self.r;
        let kind = schema_name(r.group, r.version, r.kind);
        let list = schema_name(r.group, r.version, r.list_kind);
        let collection = self.collection();
        let item = format!("{collection}/{{name}}");

        let list_op = Op {
            action: "list",
            id: self.id("list", ""),
            description: format!("list or watch objects of kind {}", r.kind),
            gvk: self.gvk(),
            parameters: list_params(),
            body: None,
            responses: responses(&["200"], &list),
        };
        let create = Op {
            action: "post",
            id: self.id("create", ""),
            description: format!("create a {}", r.kind),
            gvk: self.gvk(),
            parameters: write_params(),
            body: Some(body(&kind)),
            responses: responses(&["200", "201", "202"], &kind),
        };
        let delete_collection = Op {
            action: "deletecollection",
            id: format!("delete{}Collection{}{}", self.names.id, self.scope(), r.kind),
            description: format!("delete collection of {}", r.kind),
            gvk: self.gvk(),
            parameters: [delete_params(), list_params()].concat(),
            body: Some(body(DELETE_OPTIONS)),
            responses: responses(&["200"], STATUS),
        };
        let ops = vec![("get", list_op), ("post", create), ("delete", delete_collection)];
        paths.insert(collection.clone(), self.path(ops, self.path_params(false)));

        let delete = Op {
            action: "delete",
            id: self.id("delete", ""),
            description: format!("delete a {}", r.kind),
            gvk: self.gvk(),
            parameters: delete_params(),
            body: Some(body(DELETE_OPTIONS)),
            responses: responses(&["200", "202"], &kind),
        };
        let mut ops = self.read_replace_patch("", self.gvk(), &kind);
        ops.push(("delete", delete));
        paths.insert(item.clone(), self.path(ops, self.path_params(true)));

        if r.namespaced {
            let all = Op {
                action: "list",
                id: format!("list{}{}ForAllNamespaces", self.names.id, r.kind),
                description: format!("list or watch objects of kind {}", r.kind),
                gvk: self.gvk(),
                parameters: list_params(),
                body: None,
                responses: responses(&["200"], &list),
            };
            paths.insert(format!("{}/{}", self.base, r.resource), self.path(vec![("get", all)], vec![pretty()]));
        }

        for &sub in r.subresources {
            let path = format!("{item}/{}", sub.name());
            let gvk = subresource_kind(sub, r);
            let suffix = capitalize(sub.name());
            let ops = match sub {
                Subresource::Status => self.read_replace_patch(&suffix, gvk, &kind),
                Subresource::Scale => self.read_replace_patch(&suffix, gvk, &schema_name(gvk.0, gvk.1, gvk.2)),
                Subresource::Finalize => vec![(
                    "put",
                    Op {
                        action: "put",
                        id: self.id("replace", &suffix),
                        description: format!("replace finalize of the specified {}", r.kind),
                        gvk,
                        parameters: write_params(),
                        body: Some(body(&kind)),
                        responses: responses(&["200", "201"], &kind),
                    },
                )],
                Subresource::Binding | Subresource::Token => {
                    let binding = schema_name(gvk.0, gvk.1, gvk.2);
                    vec![(
                        "post",
                        Op {
                            action: "post",
                            id: self.id("create", &suffix),
                            description: format!("create {} of a {}", sub.name(), r.kind),
                            gvk,
                            parameters: write_params(),
                            body: Some(body(&binding)),
                            responses: responses(&["200", "201", "202"], &binding),
                        },
                    )]
                }
                Subresource::Log => vec![(
                    "get",
                    Op {
                        action: "get",
                        id: self.id("read", &suffix),
                        description: format!("read log of the specified {}", r.kind),
                        gvk,
                        parameters: log_params(),
                        body: None,
                        responses: string_response("text/plain"),
                    },
                )],
                Subresource::Exec | Subresource::Attach => ["get", "post"]
                    .into_iter()
                    .map(|method| {
                        let op = Op {
                            action: "connect",
                            id: format!(
                                "connect{}{}{}{}{suffix}",
                                self.names.id,
                                capitalize(method),
                                self.scope(),
                                r.kind
                            ),
                            description: format!(
                                "connect {} requests to {} of {}",
                                method.to_uppercase(),
                                sub.name(),
                                r.kind
                            ),
                            gvk,
                            parameters: connect_params(sub),
                            body: None,
                            responses: string_response("*/*"),
                        };
                        (method, op)
                    })
                    .collect(),
            };
            paths.insert(path, self.path(ops, self.path_params(true)));
        }
    }

    /// GET, PUT and PATCH of one object or of its status or scale.
    fn read_replace_patch(
        &self,
        suffix: &str,
        gvk: (&'static str, &'static str, &'static str),
        schema: &str,
    ) -> Vec<(&'static str, Op)> {
        let what = if suffix.is_empty() { String::new() } else { format!("{} of ", suffix.to_lowercase()) };
        let kind = self.r.kind;
        vec![
            (
                "get",
                Op {
                    action: "get",
                    id: self.id("read", suffix),
                    description: format!("read {what}the specified {kind}"),
                    gvk,
                    parameters: Vec::new(),
                    body: None,
                    responses: responses(&["200"], schema),
                },
            ),
            (
                "put",
                Op {
                    action: "put",
                    id: self.id("replace", suffix),
                    description: format!("replace {what}the specified {kind}"),
                    gvk,
                    parameters: write_params(),
                    body: Some(body(schema)),
                    responses: responses(&["200", "201"], schema),
                },
            ),
            (
                "patch",
                Op {
                    action: "patch",
                    id: self.id("patch", suffix),
                    description: format!("partially update {what}the specified {kind}"),
                    gvk,
                    parameters: [
                        write_params(),
                        vec![query("force", "boolean", "Force re-acquires conflicting fields on an apply request.")],
                    ]
                    .concat(),
                    body: Some(patch_body()),
                    responses: responses(&["200", "201"], schema),
                },
            ),
        ]
    }
}

fn log_params() -> Vec<Value> {
    vec![
        query("container", "string", "The container for which to stream logs."),
        query("follow", "boolean", "Follow the log stream of the pod."),
        query(
            "limitBytes",
            "integer",
            "The number of bytes to read from the server before terminating the log output.",
        ),
        query("previous", "boolean", "Return previous terminated container logs."),
        query("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs."),
        query("tailLines", "integer", "The number of lines from the end of the logs to show."),
        query("timestamps", "boolean", "Add an RFC3339 timestamp at the beginning of every line of log output."),
    ]
}

fn connect_params(sub: Subresource) -> Vec<Value> {
    let mut params = Vec::new();
    if sub == Subresource::Exec {
        params.push(query("command", "string", "Command is the remote command to execute. argv array."));
    }
    params.extend([
        query("container", "string", "The container in which to execute the command."),
        query("stderr", "boolean", "Redirect the standard error stream of the pod for this call."),
        query("stdin", "boolean", "Redirect the standard input stream of the pod for this call."),
        query("stdout", "boolean", "Redirect the standard output stream of the pod for this call."),
        query("tty", "boolean", "Allocate a terminal for this call."),
    ]);
    params
}
