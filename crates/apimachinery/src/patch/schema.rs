//! Which lists a strategic merge patch merges, and by what key.
//!
//! Upstream reads this from the `patchStrategy` and `patchMergeKey` struct tags of the Go types
//! in `k8s.io/api`. rkube has no Go types to reflect on, so the tags that matter are transcribed
//! here as a small static type graph per kind: only the fields that carry a tag, and the fields
//! that lead to them, are listed. Every list the graph does not mention is replaced wholesale,
//! which is exactly what upstream does for a field without a tag.

/// How a strategic merge patch combines a list in the patch with the list in the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy<'a> {
    /// The patch's list replaces the object's (no `patchStrategy` tag; also every list of a kind
    /// without a schema).
    Replace,
    /// `patchStrategy:"merge" patchMergeKey:"<key>"`: elements are objects, matched by the value
    /// of the key; matched elements are merged recursively and the others are added.
    MergeByKey(&'a str),
    /// `patchStrategy:"merge"` without a merge key: elements are primitives, merged as a set
    /// (the union, without duplicates).
    MergePrimitives,
}

impl<'a> ListStrategy<'a> {
    /// The merge key, for [`ListStrategy::MergeByKey`].
    pub fn merge_key(&self) -> Option<&'a str> {
        match *self {
            ListStrategy::MergeByKey(key) => Some(key),
            ListStrategy::Replace | ListStrategy::MergePrimitives => None,
        }
    }
}

/// Answers, for a list somewhere in an object, how a strategic merge patch treats it.
///
/// `path` holds the field names from the root of the object to the list, with list indices left
/// out: the containers of a Deployment are `["spec", "template", "spec", "containers"]`, and the
/// ports of any of those containers are `["spec", "template", "spec", "containers", "ports"]`.
/// Map keys that are data rather than field names (labels, annotations, ConfigMap data) appear
/// as they are; no built-in schema has a list below one.
pub trait PatchSchema: Send + Sync {
    /// The strategy for the list at `path`.
    fn list_strategy(&self, path: &[&str]) -> ListStrategy<'_>;
}

/// The schema of a kind rkube knows nothing about: every list is replaced.
///
/// This makes a strategic merge patch behave like a JSON merge patch (apart from the `$patch`
/// family of directives), which is what upstream does for objects without Go types.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaceAllLists;

impl PatchSchema for ReplaceAllLists {
    fn list_strategy(&self, _path: &[&str]) -> ListStrategy<'_> {
        ListStrategy::Replace
    }
}

/// The built-in schema of one kind, transcribed from the struct tags of `k8s.io/api`.
#[derive(Debug)]
pub struct KindSchema {
    kind: &'static str,
    root: &'static TypeDef,
}

impl KindSchema {
    /// The kind this schema describes, e.g. `Deployment`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

impl PatchSchema for KindSchema {
    fn list_strategy(&self, path: &[&str]) -> ListStrategy<'_> {
        let Some((last, parents)) = path.split_last() else {
            return ListStrategy::Replace;
        };
        let mut ty = self.root;
        for name in parents {
            match ty.field(name).and_then(|field| field.ty) {
                Some(child) => ty = child,
                None => return ListStrategy::Replace,
            }
        }
        ty.field(last).map_or(ListStrategy::Replace, |field| field.list)
    }
}

/// The built-in schema for `kind`, if rkube has one.
///
/// Kinds are looked up by name alone: every kind rkube serves has a name that is unique across
/// the API groups it serves, and the tags do not differ between the versions of a group.
pub fn builtin_schema(kind: &str) -> Option<&'static KindSchema> {
    KINDS.iter().find(|schema| schema.kind == kind)
}

/// The schema a strategic merge patch of `kind` uses: the built-in one, or [`ReplaceAllLists`]
/// for a kind without one.
pub fn schema_for_kind(kind: &str) -> &'static dyn PatchSchema {
    match builtin_schema(kind) {
        Some(schema) => schema,
        None => &ReplaceAllLists,
    }
}

/// A Go struct, reduced to the fields that carry a patch tag or lead to one that does.
#[derive(Debug)]
struct TypeDef {
    fields: &'static [Field],
}

impl TypeDef {
    fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// One field of a [`TypeDef`]: its JSON name, its list strategy if it is a list, and the type of
/// its value (or of its elements, for a list) if that type has tagged fields of its own.
#[derive(Debug)]
struct Field {
    name: &'static str,
    list: ListStrategy<'static>,
    ty: Option<&'static TypeDef>,
}

/// A field that is not a tagged list but leads to one.
const fn nested(name: &'static str, ty: &'static TypeDef) -> Field {
    Field { name, list: ListStrategy::Replace, ty: Some(ty) }
}

/// A list with `patchStrategy:"merge" patchMergeKey:"<key>"` whose elements have no tagged
/// fields.
const fn keyed(name: &'static str, key: &'static str) -> Field {
    Field { name, list: ListStrategy::MergeByKey(key), ty: None }
}

/// A list with `patchStrategy:"merge" patchMergeKey:"<key>"` whose elements have tagged fields.
const fn keyed_of(name: &'static str, key: &'static str, ty: &'static TypeDef) -> Field {
    Field { name, list: ListStrategy::MergeByKey(key), ty: Some(ty) }
}

/// A list of primitives with `patchStrategy:"merge"`.
const fn set(name: &'static str) -> Field {
    Field { name, list: ListStrategy::MergePrimitives, ty: None }
}

// The tags below follow k8s.io/api (core/v1, apps/v1, batch/v1, networking/v1, autoscaling/v2) and k8s.io/apimachinery (meta/v1). Lists without a tag are deliberately
// absent, among them PodSpec.tolerations, PodSpec.readinessGates, NodeSpec.taints,
// ServiceSpec.externalIPs, PodStatus.containerStatuses and everything in Endpoints and
// EndpointSlice: upstream replaces those lists, and so does rkube.

/// `metav1.ObjectMeta`.
static OBJECT_META: TypeDef = TypeDef { fields: &[set("finalizers"), keyed("ownerReferences", "uid")] };

/// `core/v1.Container`, and `EphemeralContainer`, whose inlined `EphemeralContainerCommon`
/// carries the same tags.
static CONTAINER: TypeDef = TypeDef {
    fields: &[
        keyed("ports", "containerPort"),
        keyed("env", "name"),
        keyed("volumeMounts", "mountPath"),
        keyed("volumeDevices", "devicePath"),
    ],
};

/// `core/v1.PodSpec`.
static POD_SPEC: TypeDef = TypeDef {
    fields: &[
        keyed("volumes", "name"),
        keyed_of("initContainers", "name", &CONTAINER),
        keyed_of("containers", "name", &CONTAINER),
        keyed_of("ephemeralContainers", "name", &CONTAINER),
        keyed("imagePullSecrets", "name"),
        keyed("hostAliases", "ip"),
        keyed("topologySpreadConstraints", "topologyKey"),
        keyed("schedulingGates", "name"),
        keyed("resourceClaims", "name"),
    ],
};

/// `core/v1.PodStatus`.
static POD_STATUS: TypeDef = TypeDef {
    fields: &[
        keyed("conditions", "type"),
        keyed("hostIPs", "ip"),
        keyed("podIPs", "ip"),
        keyed("resourceClaimStatuses", "name"),
    ],
};

/// `core/v1.PodTemplateSpec`.
static POD_TEMPLATE_SPEC: TypeDef = TypeDef { fields: &[nested("metadata", &OBJECT_META), nested("spec", &POD_SPEC)] };

/// A status whose only tagged field is `conditions`, merged by `type`: the status of
/// Deployments, ReplicaSets, StatefulSets, DaemonSets, ReplicationControllers, Jobs, Namespaces,
/// PersistentVolumeClaims, Services and HorizontalPodAutoscalers.
static CONDITIONS_STATUS: TypeDef = TypeDef { fields: &[keyed("conditions", "type")] };

/// The spec of a workload that stamps out pods from `spec.template`.
static WORKLOAD_SPEC: TypeDef = TypeDef { fields: &[nested("template", &POD_TEMPLATE_SPEC)] };

/// A kind with metadata only, or with lists that all replace.
static META_ONLY: TypeDef = TypeDef { fields: &[nested("metadata", &OBJECT_META)] };

/// Deployment, ReplicaSet, StatefulSet, DaemonSet, ReplicationController and Job.
static WORKLOAD: TypeDef = TypeDef {
    fields: &[nested("metadata", &OBJECT_META), nested("spec", &WORKLOAD_SPEC), nested("status", &CONDITIONS_STATUS)],
};

static POD: TypeDef =
    TypeDef { fields: &[nested("metadata", &OBJECT_META), nested("spec", &POD_SPEC), nested("status", &POD_STATUS)] };

static POD_TEMPLATE: TypeDef =
    TypeDef { fields: &[nested("metadata", &OBJECT_META), nested("template", &POD_TEMPLATE_SPEC)] };

/// `batch/v1.JobTemplateSpec`.
static JOB_TEMPLATE_SPEC: TypeDef =
    TypeDef { fields: &[nested("metadata", &OBJECT_META), nested("spec", &WORKLOAD_SPEC)] };

static CRON_JOB_SPEC: TypeDef = TypeDef { fields: &[nested("jobTemplate", &JOB_TEMPLATE_SPEC)] };

static CRON_JOB: TypeDef = TypeDef { fields: &[nested("metadata", &OBJECT_META), nested("spec", &CRON_JOB_SPEC)] };

static SERVICE_SPEC: TypeDef = TypeDef { fields: &[keyed("ports", "port")] };

static SERVICE: TypeDef = TypeDef {
    fields: &[nested("metadata", &OBJECT_META), nested("spec", &SERVICE_SPEC), nested("status", &CONDITIONS_STATUS)],
};

static NODE_SPEC: TypeDef = TypeDef { fields: &[set("podCIDRs")] };

static NODE_STATUS: TypeDef = TypeDef { fields: &[keyed("conditions", "type"), keyed("addresses", "type")] };

static NODE: TypeDef =
    TypeDef { fields: &[nested("metadata", &OBJECT_META), nested("spec", &NODE_SPEC), nested("status", &NODE_STATUS)] };

/// Namespace, PersistentVolumeClaim, HorizontalPodAutoscaler and ServiceCIDR: metadata, and
/// conditions in the status.
static WITH_STATUS_CONDITIONS: TypeDef =
    TypeDef { fields: &[nested("metadata", &OBJECT_META), nested("status", &CONDITIONS_STATUS)] };

static SERVICE_ACCOUNT: TypeDef = TypeDef { fields: &[nested("metadata", &OBJECT_META), keyed("secrets", "name")] };

static COMPONENT_STATUS: TypeDef = TypeDef { fields: &[nested("metadata", &OBJECT_META), keyed("conditions", "type")] };

const fn kind(kind: &'static str, root: &'static TypeDef) -> KindSchema {
    KindSchema { kind, root }
}

/// Every kind with a built-in schema.
static KINDS: &[KindSchema] = &[
    kind("Pod", &POD),
    kind("PodTemplate", &POD_TEMPLATE),
    kind("Deployment", &WORKLOAD),
    kind("ReplicaSet", &WORKLOAD),
    kind("StatefulSet", &WORKLOAD),
    kind("DaemonSet", &WORKLOAD),
    kind("ReplicationController", &WORKLOAD),
    kind("Job", &WORKLOAD),
    kind("CronJob", &CRON_JOB),
    kind("Service", &SERVICE),
    kind("Node", &NODE),
    kind("Namespace", &WITH_STATUS_CONDITIONS),
    kind("PersistentVolumeClaim", &WITH_STATUS_CONDITIONS),
    kind("HorizontalPodAutoscaler", &WITH_STATUS_CONDITIONS),
    kind("ServiceCIDR", &WITH_STATUS_CONDITIONS),
    kind("ServiceAccount", &SERVICE_ACCOUNT),
    kind("ComponentStatus", &COMPONENT_STATUS),
    kind("ConfigMap", &META_ONLY),
    kind("Secret", &META_ONLY),
    kind("Endpoints", &META_ONLY),
    kind("EndpointSlice", &META_ONLY),
    kind("Event", &META_ONLY),
    kind("Lease", &META_ONLY),
    kind("LimitRange", &META_ONLY),
    kind("ResourceQuota", &META_ONLY),
    kind("PersistentVolume", &META_ONLY),
    kind("Ingress", &META_ONLY),
    kind("IngressClass", &META_ONLY),
    kind("NetworkPolicy", &META_ONLY),
    kind("PriorityClass", &META_ONLY),
    kind("StorageClass", &META_ONLY),
    kind("Role", &META_ONLY),
    kind("RoleBinding", &META_ONLY),
    kind("ClusterRole", &META_ONLY),
    kind("ClusterRoleBinding", &META_ONLY),
];

#[cfg(test)]
mod tests {
    use super::*;
    use ListStrategy::{MergeByKey, MergePrimitives, Replace};

    fn strategy(kind: &str, path: &str) -> ListStrategy<'static> {
        let path: Vec<&str> = path.split('.').collect();
        schema_for_kind(kind).list_strategy(&path)
    }

    #[test]
    fn pod_lists_follow_the_core_v1_tags() {
        assert_eq!(strategy("Pod", "spec.containers"), MergeByKey("name"));
        assert_eq!(strategy("Pod", "spec.initContainers"), MergeByKey("name"));
        assert_eq!(strategy("Pod", "spec.ephemeralContainers"), MergeByKey("name"));
        assert_eq!(strategy("Pod", "spec.containers.ports"), MergeByKey("containerPort"));
        assert_eq!(strategy("Pod", "spec.ephemeralContainers.env"), MergeByKey("name"));
        assert_eq!(strategy("Pod", "spec.containers.volumeMounts"), MergeByKey("mountPath"));
        assert_eq!(strategy("Pod", "spec.containers.volumeDevices"), MergeByKey("devicePath"));
        assert_eq!(strategy("Pod", "spec.volumes"), MergeByKey("name"));
        assert_eq!(strategy("Pod", "spec.imagePullSecrets"), MergeByKey("name"));
        assert_eq!(strategy("Pod", "spec.hostAliases"), MergeByKey("ip"));
        assert_eq!(strategy("Pod", "spec.topologySpreadConstraints"), MergeByKey("topologyKey"));
        assert_eq!(strategy("Pod", "status.conditions"), MergeByKey("type"));
        assert_eq!(strategy("Pod", "status.podIPs"), MergeByKey("ip"));
        assert_eq!(strategy("Pod", "metadata.finalizers"), MergePrimitives);
        assert_eq!(strategy("Pod", "metadata.ownerReferences"), MergeByKey("uid"));
        // Lists without a tag upstream are replaced.
        assert_eq!(strategy("Pod", "spec.tolerations"), Replace);
        assert_eq!(strategy("Pod", "spec.containers.args"), Replace);
        assert_eq!(strategy("Pod", "status.containerStatuses"), Replace);
    }

    #[test]
    fn workloads_reach_their_pod_template() {
        for kind in ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"] {
            assert_eq!(strategy(kind, "spec.template.spec.containers"), MergeByKey("name"));
            assert_eq!(strategy(kind, "spec.template.spec.containers.ports"), MergeByKey("containerPort"));
            assert_eq!(strategy(kind, "spec.template.metadata.finalizers"), MergePrimitives);
            assert_eq!(strategy(kind, "status.conditions"), MergeByKey("type"));
            assert_eq!(strategy(kind, "spec.containers"), Replace);
        }
        assert_eq!(strategy("CronJob", "spec.jobTemplate.spec.template.spec.volumes"), MergeByKey("name"));
        assert_eq!(strategy("PodTemplate", "template.spec.containers"), MergeByKey("name"));
    }

    #[test]
    fn service_node_and_others() {
        assert_eq!(strategy("Service", "spec.ports"), MergeByKey("port"));
        assert_eq!(strategy("Service", "spec.externalIPs"), Replace);
        assert_eq!(strategy("Node", "spec.taints"), Replace);
        assert_eq!(strategy("Node", "spec.podCIDRs"), MergePrimitives);
        assert_eq!(strategy("Node", "status.addresses"), MergeByKey("type"));
        assert_eq!(strategy("Node", "status.conditions"), MergeByKey("type"));
        assert_eq!(strategy("Namespace", "status.conditions"), MergeByKey("type"));
        assert_eq!(strategy("ServiceAccount", "secrets"), MergeByKey("name"));
        assert_eq!(strategy("EndpointSlice", "endpoints"), Replace);
        assert_eq!(strategy("Endpoints", "subsets"), Replace);
        assert_eq!(strategy("ConfigMap", "metadata.finalizers"), MergePrimitives);
    }

    #[test]
    fn unknown_kinds_and_paths_replace() {
        assert!(builtin_schema("Widget").is_none());
        assert_eq!(strategy("Widget", "metadata.finalizers"), Replace);
        assert_eq!(strategy("Widget", "spec.containers"), Replace);
        assert_eq!(schema_for_kind("Pod").list_strategy(&[]), Replace);
        assert_eq!(strategy("Pod", "metadata.finalizers.deeper"), Replace);
        assert_eq!(builtin_schema("Deployment").map(KindSchema::kind), Some("Deployment"));
    }

    #[test]
    fn merge_key_accessor() {
        assert_eq!(MergeByKey("name").merge_key(), Some("name"));
        assert_eq!(MergePrimitives.merge_key(), None);
        assert_eq!(Replace.merge_key(), None);
    }
}
