//! The table of served resources. Adding a resource means one entry in [`RESOURCES`] plus
//! its [`Strategy`] in `resources/`.

use serde_json::Value;

use crate::error::FieldError;
use crate::resources;

/// A subresource the API serves under `<resource>/<name>/<subresource>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    Status,
    /// `namespaces/<name>/finalize`: changes `spec.finalizers` and nothing else.
    Finalize,
    Scale,
    Binding,
    Log,
    Exec,
    Attach,
    /// `serviceaccounts/<name>/token`: the TokenRequest API.
    Token,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Finalize => "finalize",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::Token => "token",
        }
    }

    /// The verbs discovery advertises for it.
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Subresource::Status | Subresource::Scale => &["get", "patch", "update"],
            Subresource::Finalize => &["update"],
            Subresource::Binding | Subresource::Token => &["create"],
            Subresource::Log => &["get"],
            Subresource::Exec | Subresource::Attach => &["create", "get"],
        }
    }

    /// (group, version, kind) of what it returns.
    pub fn response_kind(self, parent: &Resource) -> (&'static str, &'static str, &'static str) {
        match self {
            Subresource::Scale => ("autoscaling", "v1", "Scale"),
            Subresource::Binding => ("", "v1", "Binding"),
            Subresource::Exec | Subresource::Attach => ("", "v1", "PodExecOptions"),
            Subresource::Log => ("", "v1", "Pod"),
            Subresource::Token => ("authentication.k8s.io", "v1", "TokenRequest"),
            Subresource::Status | Subresource::Finalize => (parent.group, parent.version, parent.kind),
        }
    }
}

/// The verbs every resource here supports.
pub const VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// One served resource.
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    /// Plural, lower case: `pods`.
    pub resource: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    pub strategy: &'static dyn Strategy,
}

impl std::fmt::Debug for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.resource)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        Ok(())
    }
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    /// The store prefix of every object of this resource: `/registry/<group>/<resource>/`.
    pub fn prefix(&self) -> String {
        let group = if self.group.is_empty() { "core" } else { self.group };
        format!("/registry/{group}/{}/", self.resource)
    }

    /// The store prefix of one namespace's objects, or of all of them.
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// The store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.prefix()),
            _ => format!("{}{name}", self.prefix()),
        }
    }
}

/// How one kind of object is checked and shaped. Every method is pure: it sees only the
/// objects it is given, never the store.
pub trait Strategy: Sync {
    /// Decodes `obj` into the upstream type to check its field types, and reports the fields
    /// that the type does not have (paths like `spec.foo`).
    /// `Err` carries a decoding message for a 400 BadRequest.
    fn check_types(&self, obj: &Value) -> Result<Vec<String>, String>;

    /// Fills in defaults, as upstream's defaulting functions do.
    fn default(&self, _obj: &mut Value) {}

    /// Validates an object about to be stored. `old` is the stored object on update.
    fn validate(&self, _obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        Vec::new()
    }

    /// Shapes a new object before it is stored, e.g. resets its status.
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// Shapes an update before defaulting and validation, given the stored object, e.g.
    /// drops fields the update made meaningless.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Whether this kind has a status that only its `status` subresource may change,
    /// and a spec whose changes bump `metadata.generation`.
    fn has_status_subresource(&self) -> bool {
        false
    }
}

/// Every resource the server serves, in discovery order.
pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        resource: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        list_kind: "NamespaceList",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[Subresource::Status, Subresource::Finalize],
        strategy: &resources::NamespaceStrategy,
    },
    Resource {
        group: "",
        version: "v1",
        resource: "nodes",
        singular: "node",
        kind: "Node",
        list_kind: "NodeList",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[Subresource::Status],
        strategy: &resources::NodeStrategy,
    },
    Resource {
        group: "",
        version: "v1",
        resource: "pods",
        singular: "pod",
        kind: "Pod",
        list_kind: "PodList",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &[
            Subresource::Status,
            Subresource::Binding,
            Subresource::Log,
            Subresource::Exec,
            Subresource::Attach,
        ],
        strategy: &resources::PodStrategy,
    },
    Resource {
        group: "",
        version: "v1",
        resource: "services",
        singular: "service",
        kind: "Service",
        list_kind: "ServiceList",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[Subresource::Status],
        strategy: &resources::ServiceStrategy,
    },
    Resource {
        group: "",
        version: "v1",
        resource: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        list_kind: "EndpointsList",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        strategy: &resources::EndpointsStrategy,
    },
    Resource {
        group: "",
        version: "v1",
        resource: "secrets",
        singular: "secret",
        kind: "Secret",
        list_kind: "SecretList",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        strategy: &resources::SecretStrategy,
    },
    Resource {
        group: "",
        version: "v1",
        resource: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        list_kind: "ConfigMapList",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        strategy: &resources::ConfigMapStrategy,
    },
    Resource {
        group: "",
        version: "v1",
        resource: "events",
        singular: "event",
        kind: "Event",
        list_kind: "EventList",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        strategy: &resources::EventStrategy,
    },
    Resource {
        group: "",
        version: "v1",
        resource: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        list_kind: "ServiceAccountList",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &[Subresource::Token],
        strategy: &resources::ServiceAccountStrategy,
    },
    Resource {
        group: "apps",
        version: "v1",
        resource: "deployments",
        singular: "deployment",
        kind: "Deployment",
        list_kind: "DeploymentList",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        subresources: &[Subresource::Status, Subresource::Scale],
        strategy: &resources::DeploymentStrategy,
    },
    Resource {
        group: "apps",
        version: "v1",
        resource: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        list_kind: "ReplicaSetList",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &[Subresource::Status, Subresource::Scale],
        strategy: &resources::ReplicaSetStrategy,
    },
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        resource: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        list_kind: "EndpointSliceList",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        strategy: &resources::EndpointSliceStrategy,
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        resource: "leases",
        singular: "lease",
        kind: "Lease",
        list_kind: "LeaseList",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        strategy: &resources::LeaseStrategy,
    },
];

/// Finds a resource by group, version and plural name.
pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.version == version && r.resource == resource)
}

/// Finds a resource by group and kind (for `ownerReferences` and the like).
pub fn find_kind(group: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.group == group && r.kind == kind)
}

/// The served groups, in discovery order, each with its versions.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_namespaces_and_groups() {
        let pods = find("", "v1", "pods").expect("pods");
        assert_eq!(pods.key(Some("default"), "a"), "/registry/core/pods/default/a");
        assert_eq!(pods.list_prefix(Some("default")), "/registry/core/pods/default/");
        assert_eq!(pods.list_prefix(None), "/registry/core/pods/");
        let nodes = find("", "v1", "nodes").expect("nodes");
        assert_eq!(nodes.key(Some("ignored"), "n1"), "/registry/core/nodes/n1");
        let deploy = find_kind("apps", "Deployment").expect("deployments");
        assert_eq!(deploy.prefix(), "/registry/apps/deployments/");
    }
}
