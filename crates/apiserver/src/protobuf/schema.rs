//! The declarative schema: for each protobuf message Kubernetes sends, a
//! table from field number to JSON name, value type and shape.
//!
//! The tables in the submodules follow upstream's `generated.proto` files
//! (field numbers and value types) and the Go structs' `json` tags (names,
//! `omitempty`, pointer-ness, embedding). They were checked against
//! kubernetes/api and kubernetes/apimachinery as of July 2026. A message's
//! fields are listed by field number.
//!
//! How a Go field maps to a constructor:
//! - pointer fields, fields without `omitempty`, and struct-valued fields
//!   (which Go's `omitempty` never drops) → [`field`]: emitted whenever present
//!   on the wire, even when zero;
//! - non-pointer scalars (`string`, integers, `bool`, `[]byte`) with
//!   `omitempty` → [`omitzero`]: a zero value is dropped, as `encoding/json`
//!   would drop it. Go's protobuf encoder always writes these fields, so this
//!   is what keeps `"generateName": ""` out of the result;
//! - `repeated` → [`list`], `map<string, V>` → [`map`];
//! - an embedded struct with no JSON name (`VolumeSource` in `Volume`,
//!   `ProbeHandler` in `Probe`, `LocalObjectReference` in the key
//!   selectors...) → [`inline`]: its fields land in the enclosing object.

mod apps_v1;
mod authentication_v1;
mod authorization_v1;
mod batch_v1;
mod certificates_v1;
mod coordination_v1;
mod core_v1;
mod meta_v1;
mod networking_v1;
mod policy_v1;
mod rbac_v1;
mod scheduling_v1;

/// One protobuf message type.
pub(crate) struct Message {
    /// The upstream message name, for diagnostics and tests.
    pub(crate) name: &'static str,
    pub(crate) fields: &'static [Field],
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Message({})", self.name)
    }
}

impl Message {
    pub(crate) const fn new(name: &'static str, fields: &'static [Field]) -> Self {
        Message { name, fields }
    }

    pub(crate) fn field(&self, number: u32) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.number == number)
    }
}

/// One field of a message.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    pub(crate) number: u32,
    /// The JSON member name; empty for [`Shape::Inline`].
    pub(crate) json: &'static str,
    pub(crate) ty: Ty,
    pub(crate) shape: Shape,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Shape {
    /// `optional`: at most one value (a repeated occurrence replaces a scalar
    /// and merges into a message, as protobuf specifies). With `omit_zero`,
    /// a zero scalar is dropped from the JSON.
    Single { omit_zero: bool },
    /// An embedded message whose fields are merged into the enclosing object.
    Inline,
    /// `repeated`: a JSON array. Packed encodings of numbers are accepted.
    List,
    /// `map<string, V>`: entries `{1: key, 2: value}`, a JSON object.
    Map,
}

/// A value type.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ty {
    /// `string` and string enums → JSON string (UTF-8 is checked).
    Str,
    /// `bytes` → base64 JSON string, as Go's `encoding/json` writes `[]byte`.
    Bytes,
    /// `int32` → JSON number.
    I32,
    /// `int64` → JSON number.
    I64,
    /// `bool` → JSON boolean.
    Bool,
    /// A nested message → JSON object.
    Msg(&'static Message),
    /// `meta.v1.Time` `{1: seconds, 2: nanos}` → RFC 3339 string in UTC,
    /// whole seconds; an empty message (the zero time) → `null`.
    Time,
    /// `meta.v1.MicroTime` → RFC 3339 with 6 fractional digits; empty → `null`.
    MicroTime,
    /// `intstr.IntOrString` `{1: type, 2: intVal, 3: strVal}` → JSON number
    /// (type 0) or string (type 1).
    IntOrString,
    /// `resource.Quantity` `{1: string}` → the string as sent (upstream
    /// would canonicalise it); an empty message → `"0"`.
    Quantity,
    /// `runtime.RawExtension` `{1: raw}` → the embedded JSON, or the
    /// decoded object when the raw bytes are themselves a protobuf envelope.
    RawExtension,
    /// `meta.v1.FieldsV1` `{1: raw}` → the embedded JSON.
    FieldsV1,
    /// A message wrapping `repeated string items = 1` (`ExtraValue`,
    /// `AttestationValue`) → JSON array of strings.
    StrList,
}

/// Emitted whenever present, zero or not.
pub(crate) const fn field(number: u32, json: &'static str, ty: Ty) -> Field {
    Field { number, json, ty, shape: Shape::Single { omit_zero: false } }
}

/// A Go non-pointer scalar tagged `omitempty`: zero values are dropped.
pub(crate) const fn omitzero(number: u32, json: &'static str, ty: Ty) -> Field {
    Field { number, json, ty, shape: Shape::Single { omit_zero: true } }
}

pub(crate) const fn list(number: u32, json: &'static str, ty: Ty) -> Field {
    Field { number, json, ty, shape: Shape::List }
}

/// `map<string, ty>`.
pub(crate) const fn map(number: u32, json: &'static str, ty: Ty) -> Field {
    Field { number, json, ty, shape: Shape::Map }
}

/// An embedded message whose fields are inlined into the enclosing object.
pub(crate) const fn inline(number: u32, ty: Ty) -> Field {
    Field { number, json: "", ty, shape: Shape::Inline }
}

/// A top-level kind a request body may carry.
pub(crate) struct Kind {
    pub(crate) api_version: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) message: &'static Message,
}

const fn kind(api_version: &'static str, kind: &'static str, message: &'static Message) -> Kind {
    Kind { api_version, kind, message }
}

/// The kinds `decode` accepts: what kubectl's typed-clientset writes send
/// (`create secret|configmap|deployment|service|namespace|serviceaccount|
/// job|cronjob|token|quota|priorityclass|role|clusterrole|rolebinding|
/// clusterrolebinding|pdb|ingress`, `run`, `drain`'s evictions, `auth
/// can-i|whoami`, `certificate approve|deny`), plus the workload kinds
/// that share the pod template.
pub(crate) static KINDS: &[Kind] = &[
    kind("v1", "ConfigMap", &core_v1::CONFIG_MAP),
    kind("v1", "Namespace", &core_v1::NAMESPACE),
    kind("v1", "Pod", &core_v1::POD),
    kind("v1", "ResourceQuota", &core_v1::RESOURCE_QUOTA),
    kind("v1", "Secret", &core_v1::SECRET),
    kind("v1", "Service", &core_v1::SERVICE),
    kind("v1", "ServiceAccount", &core_v1::SERVICE_ACCOUNT),
    kind("apps/v1", "ControllerRevision", &apps_v1::CONTROLLER_REVISION),
    kind("apps/v1", "DaemonSet", &apps_v1::DAEMON_SET),
    kind("apps/v1", "Deployment", &apps_v1::DEPLOYMENT),
    kind("apps/v1", "ReplicaSet", &apps_v1::REPLICA_SET),
    kind("apps/v1", "StatefulSet", &apps_v1::STATEFUL_SET),
    kind("batch/v1", "CronJob", &batch_v1::CRON_JOB),
    kind("batch/v1", "Job", &batch_v1::JOB),
    kind("authentication.k8s.io/v1", "SelfSubjectReview", &authentication_v1::SELF_SUBJECT_REVIEW),
    kind("authentication.k8s.io/v1", "TokenRequest", &authentication_v1::TOKEN_REQUEST),
    kind("authorization.k8s.io/v1", "SelfSubjectAccessReview", &authorization_v1::SELF_SUBJECT_ACCESS_REVIEW),
    kind("authorization.k8s.io/v1", "SelfSubjectRulesReview", &authorization_v1::SELF_SUBJECT_RULES_REVIEW),
    kind("certificates.k8s.io/v1", "CertificateSigningRequest", &certificates_v1::CERTIFICATE_SIGNING_REQUEST),
    kind("coordination.k8s.io/v1", "Lease", &coordination_v1::LEASE),
    kind("networking.k8s.io/v1", "Ingress", &networking_v1::INGRESS),
    kind("policy/v1", "Eviction", &policy_v1::EVICTION),
    kind("policy/v1", "PodDisruptionBudget", &policy_v1::POD_DISRUPTION_BUDGET),
    kind("rbac.authorization.k8s.io/v1", "ClusterRole", &rbac_v1::CLUSTER_ROLE),
    kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", &rbac_v1::CLUSTER_ROLE_BINDING),
    kind("rbac.authorization.k8s.io/v1", "Role", &rbac_v1::ROLE),
    kind("rbac.authorization.k8s.io/v1", "RoleBinding", &rbac_v1::ROLE_BINDING),
    kind("scheduling.k8s.io/v1", "PriorityClass", &scheduling_v1::PRIORITY_CLASS),
];

/// The message for a top-level `apiVersion`/`kind`. `DeleteOptions` is
/// registered in every group version upstream (a typed client's `Delete`
/// sends it as a body), so it is accepted under `meta.k8s.io/v1` and under
/// any group version of the table.
pub(crate) fn lookup(api_version: &str, kind: &str) -> Option<&'static Message> {
    if let Some(k) = KINDS.iter().find(|k| k.api_version == api_version && k.kind == kind) {
        return Some(k.message);
    }
    let known_version = api_version == "meta.k8s.io/v1" || KINDS.iter().any(|k| k.api_version == api_version);
    (kind == "DeleteOptions" && known_version).then_some(&meta_v1::DELETE_OPTIONS)
}
