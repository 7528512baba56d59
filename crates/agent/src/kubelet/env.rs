//! A container's environment, computed the way kubelet's `makeEnvironmentVariables`
//! (`pkg/kubelet/kubelet_pods.go`) does it.
//!
//! Precedence, lowest first: the service-link variables (`KUBERNETES_SERVICE_HOST`, ...; the
//! pod's own namespace only with `enableServiceLinks`), then `envFrom` in order (a later source
//! wins), then `env` in declaration order. A plain `value` is expanded with `$(VAR)` against
//! everything defined before it and the service variables; a `valueFrom` value is never
//! expanded. The error messages are kubelet's, since they become the container's
//! `CreateContainerConfigError` message.
//!
//! The downward-API helpers ([`field_ref_value`], [`resource_field_value`]) are shared with the
//! `downwardAPI` and `projected` volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::source::{ObjectSource, SourceError};
use crate::runtime::quantity::{self, QuantityError};
use crate::runtime::spec::expand;

/// What the environment of one container is computed from.
pub struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub node_name: &'a str,
    /// `status.podIPs` as the kubelet assigned them, the primary first.
    pub pod_ips: &'a [String],
    pub host_ips: &'a [String],
    /// Every Service that exists, as JSON, for the service-link variables.
    pub services: &'a [serde_json::Value],
    /// The node's allocatable resources, the default of a `resourceFieldRef` to an unset limit.
    pub node_allocatable: &'a BTreeMap<String, Quantity>,
}

/// Why a container's environment could not be computed. The messages are kubelet's.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyMissing { key: String, namespace: String, name: String },
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyMissing { key: String, namespace: String, name: String },
    /// The API could not be read; worth retrying.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A `fieldRef` this kubelet cannot resolve (`field label not supported: spec.foo`).
    #[error("{0}")]
    FieldRef(String),
    /// A `resourceFieldRef` this kubelet cannot resolve.
    #[error("{0}")]
    ResourceFieldRef(String),
    #[error("{0}")]
    Quantity(#[from] QuantityError),
    /// A source kind this node does not support (`fileKeyRef`).
    #[error("environment variable {0}: {1} is not supported on this node")]
    Unsupported(String, &'static str),
}

impl EnvError {
    /// True when the failure may go away by itself (the API was unreachable); the others
    /// need the referenced object or the pod to change.
    pub fn is_transient(&self) -> bool {
        matches!(self, EnvError::Source(_))
    }
}

/// Keys of one `envFrom` source that were left out because they cannot be environment
/// variable names; worth an `InvalidEnvironmentVariableNames` warning event on the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKeys {
    /// `ConfigMap` or `Secret`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// The offending keys, prefix included, sorted.
    pub keys: Vec<String>,
}

impl SkippedKeys {
    /// The event reason kubelet uses.
    pub const REASON: &'static str = "InvalidEnvironmentVariableNames";

    /// The event message, in kubelet's words.
    pub fn message(&self) -> String {
        let kind = if self.kind == "ConfigMap" { "configMap" } else { "secret" };
        format!(
            "Keys [{}] from the EnvFrom {kind} {}/{} were skipped since they are considered invalid environment variable names.",
            self.keys.join(", "),
            self.namespace,
            self.name
        )
    }
}

/// A container's environment and what had to be left out of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedEnv {
    /// Every variable once, service links first, then `envFrom`, then `env` in order.
    pub vars: Vec<(String, String)>,
    pub skipped: Vec<SkippedKeys>,
}

/// The environment of `container`; see [`resolve_detailed`] for the keys it had to skip.
pub async fn resolve(
    ctx: &EnvContext<'_>,
    container: &Container,
    source: &dyn ObjectSource,
) -> Result<Vec<(String, String)>, EnvError> {
    Ok(resolve_detailed(ctx, container, source).await?.vars)
}

/// An ordered map of variables where a redefinition moves the name to the end, so that the
/// final list reads in the order the values were decided.
#[derive(Default)]
struct OrderedEnv {
    vars: Vec<(String, String)>,
}

impl OrderedEnv {
    fn set(&mut self, name: String, value: String) {
        self.vars.retain(|(k, _)| *k != name);
        self.vars.push((name, value));
    }

    fn contains(&self, name: &str) -> bool {
        self.vars.iter().any(|(k, _)| k == name)
    }
}

/// True when `name` can be an environment variable name: kubelet's relaxed rule (printable
/// ASCII without `=`). Upstream no longer checks `envFrom` keys at all, since API validation
/// already guarantees this; the check stays here so that a bad stored object cannot produce
/// an environment entry the runtime would split at the wrong `=`.
fn is_env_var_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b'=')
}

/// The environment of `container` in kubelet's order and precedence, plus the `envFrom` keys
/// that had to be skipped.
pub async fn resolve_detailed(
    ctx: &EnvContext<'_>,
    container: &Container,
    source: &dyn ObjectSource,
) -> Result<ResolvedEnv, EnvError> {
    let pod = ctx.pod;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.as_ref();
    // The API server defaults enableServiceLinks to true; a pod that somehow lacks it is
    // treated the same way rather than refused.
    let enable_service_links = spec.and_then(|s| s.enable_service_links).unwrap_or(true);
    let service_env = rkube_apimachinery::service_env::for_pod(namespace, enable_service_links, ctx.services.iter());

    // Each object is read once per container, as kubelet caches them per call.
    let mut config_maps: BTreeMap<String, Option<k8s_openapi::api::core::v1::ConfigMap>> = BTreeMap::new();
    let mut secrets: BTreeMap<String, Option<k8s_openapi::api::core::v1::Secret>> = BTreeMap::new();
    let mut tmp = OrderedEnv::default();
    let mut skipped = Vec::new();

    for env_from in container.env_from.iter().flatten() {
        let prefix = env_from.prefix.as_deref().unwrap_or("");
        let mut invalid = Vec::new();
        let (kind, name) = if let Some(cm_ref) = &env_from.config_map_ref {
            let name = cm_ref.name.clone();
            let optional = cm_ref.optional.unwrap_or(false);
            let cm = cached_config_map(&mut config_maps, source, namespace, &name).await?;
            let Some(cm) = cm else {
                if optional {
                    continue;
                }
                return Err(EnvError::ConfigMapNotFound(name));
            };
            for (k, v) in cm.data.iter().flatten() {
                let key = format!("{prefix}{k}");
                if is_env_var_name(&key) {
                    tmp.set(key, v.clone());
                } else {
                    invalid.push(key);
                }
            }
            ("ConfigMap", name)
        } else if let Some(secret_ref) = &env_from.secret_ref {
            let name = secret_ref.name.clone();
            let optional = secret_ref.optional.unwrap_or(false);
            let secret = cached_secret(&mut secrets, source, namespace, &name).await?;
            let Some(secret) = secret else {
                if optional {
                    continue;
                }
                return Err(EnvError::SecretNotFound(name));
            };
            for (k, v) in secret.data.iter().flatten() {
                let key = format!("{prefix}{k}");
                if is_env_var_name(&key) {
                    tmp.set(key, String::from_utf8_lossy(&v.0).into_owned());
                } else {
                    invalid.push(key);
                }
            }
            ("Secret", name)
        } else {
            continue;
        };
        if !invalid.is_empty() {
            invalid.sort();
            skipped.push(SkippedKeys { kind, namespace: namespace.to_owned(), name, keys: invalid });
        }
    }

    for env_var in container.env.iter().flatten() {
        let value = env_var.value.as_deref().unwrap_or("");
        let runtime_value = if !value.is_empty() {
            // The lookup list has the service variables first and the container's own after
            // them, so that `expand` (which searches from the end) prefers the latter.
            let lookup: Vec<(String, String)> = service_env.iter().chain(tmp.vars.iter()).cloned().collect();
            expand(value, &lookup)
        } else if let Some(from) = &env_var.value_from {
            if let Some(field_ref) = &from.field_ref {
                env_field_ref_value(ctx, field_ref)?
            } else if let Some(resource_ref) = &from.resource_field_ref {
                resource_field_value(pod, container, resource_ref, ctx.node_allocatable)?
            } else if let Some(cm_ref) = &from.config_map_key_ref {
                let name = cm_ref.name.clone();
                let optional = cm_ref.optional.unwrap_or(false);
                let cm = cached_config_map(&mut config_maps, source, namespace, &name).await?;
                let Some(cm) = cm else {
                    if optional {
                        continue;
                    }
                    return Err(EnvError::ConfigMapNotFound(name));
                };
                match cm.data.as_ref().and_then(|d| d.get(&cm_ref.key)) {
                    Some(v) => v.clone(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::ConfigMapKeyMissing {
                            key: cm_ref.key.clone(),
                            namespace: namespace.to_owned(),
                            name,
                        });
                    }
                }
            } else if let Some(secret_ref) = &from.secret_key_ref {
                let name = secret_ref.name.clone();
                let optional = secret_ref.optional.unwrap_or(false);
                let secret = cached_secret(&mut secrets, source, namespace, &name).await?;
                let Some(secret) = secret else {
                    if optional {
                        continue;
                    }
                    return Err(EnvError::SecretNotFound(name));
                };
                match secret.data.as_ref().and_then(|d| d.get(&secret_ref.key)) {
                    Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::SecretKeyMissing {
                            key: secret_ref.key.clone(),
                            namespace: namespace.to_owned(),
                            name,
                        });
                    }
                }
            } else if from.file_key_ref.is_some() {
                return Err(EnvError::Unsupported(env_var.name.clone(), "fileKeyRef"));
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        tmp.set(env_var.name.clone(), runtime_value);
    }

    let mut vars: Vec<(String, String)> = service_env.into_iter().filter(|(k, _)| !tmp.contains(k)).collect();
    vars.extend(tmp.vars);
    Ok(ResolvedEnv { vars, skipped })
}

async fn cached_config_map(
    cache: &mut BTreeMap<String, Option<k8s_openapi::api::core::v1::ConfigMap>>,
    source: &dyn ObjectSource,
    namespace: &str,
    name: &str,
) -> Result<Option<k8s_openapi::api::core::v1::ConfigMap>, EnvError> {
    if let Some(found) = cache.get(name) {
        return Ok(found.clone());
    }
    let found = source.config_map(namespace, name).await?;
    cache.insert(name.to_owned(), found.clone());
    Ok(found)
}

async fn cached_secret(
    cache: &mut BTreeMap<String, Option<k8s_openapi::api::core::v1::Secret>>,
    source: &dyn ObjectSource,
    namespace: &str,
    name: &str,
) -> Result<Option<k8s_openapi::api::core::v1::Secret>, EnvError> {
    if let Some(found) = cache.get(name) {
        return Ok(found.clone());
    }
    let found = source.secret(namespace, name).await?;
    cache.insert(name.to_owned(), found.clone());
    Ok(found)
}

/// Splits `metadata.labels['key']` into the path and the key.
fn split_subscript(field_path: &str) -> Option<(&str, &str)> {
    let open = field_path.find("['")?;
    let inner = field_path[open + 2..].strip_suffix("']")?;
    Some((&field_path[..open], inner))
}

/// The value of an env `fieldRef`: kubelet's `podFieldSelectorRuntimeValue`, which first
/// checks the label against the ones the downward API supports for pods.
fn env_field_ref_value(ctx: &EnvContext<'_>, selector: &ObjectFieldSelector) -> Result<String, EnvError> {
    let version = selector.api_version.as_deref().unwrap_or("v1");
    if !version.is_empty() && version != "v1" {
        return Err(EnvError::FieldRef(format!("unsupported pod version: {version}")));
    }
    let path = selector.field_path.as_str();
    if let Some((base, _)) = split_subscript(path) {
        if base != "metadata.annotations" && base != "metadata.labels" {
            return Err(EnvError::FieldRef(format!("field label does not support subscript: {path}")));
        }
    } else if !matches!(
        path,
        "metadata.annotations"
            | "metadata.labels"
            | "metadata.name"
            | "metadata.namespace"
            | "metadata.uid"
            | "spec.nodeName"
            | "spec.restartPolicy"
            | "spec.serviceAccountName"
            | "spec.schedulerName"
            | "status.phase"
            | "status.hostIP"
            | "status.hostIPs"
            | "status.podIP"
            | "status.podIPs"
    ) {
        return Err(EnvError::FieldRef(format!("field label not supported: {path}")));
    }
    let spec = ctx.pod.spec.as_ref();
    Ok(match path {
        "spec.nodeName" => {
            spec.and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| ctx.node_name.to_owned())
        }
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()).unwrap_or_default(),
        "status.hostIP" => ctx.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => ctx.host_ips.join(","),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => ctx.pod_ips.join(","),
        _ => field_ref_value(ctx.pod, path)?,
    })
}

/// The value of a metadata `fieldPath` (fieldpath's `ExtractFieldPathAsString`): a name, the
/// namespace, the UID, one label or annotation, or all of them as `key="value"` lines.
pub fn field_ref_value(pod: &Pod, field_path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    if let Some((base, key)) = split_subscript(field_path) {
        return match base {
            "metadata.annotations" => {
                Ok(meta.annotations.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default())
            }
            "metadata.labels" => Ok(meta.labels.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default()),
            _ => Err(EnvError::FieldRef(format!("fieldPath {} does not support subscript", go_quote(field_path)))),
        };
    }
    match field_path {
        "metadata.annotations" => Ok(format_map(meta.annotations.as_ref())),
        "metadata.labels" => Ok(format_map(meta.labels.as_ref())),
        "metadata.name" => Ok(meta.name.clone().unwrap_or_default()),
        "metadata.namespace" => Ok(meta.namespace.clone().unwrap_or_default()),
        "metadata.uid" => Ok(meta.uid.clone().unwrap_or_default()),
        _ => Err(EnvError::FieldRef(format!("unsupported fieldPath: {field_path}"))),
    }
}

/// `key="value"` lines in key order, the value quoted like Go's `%q`, without a final newline.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n")
}

/// A string quoted like Go's `strconv.Quote`, for values written by the downward API.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x80 && c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() && (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\U{:08x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a `resourceFieldRef` (kubelet's `containerResourceRuntimeValue` after
/// `defaultPodLimitsForDownwardAPI`): a limit or request of `container` (or of the container
/// the selector names), in units of the divisor, rounded up. An unset limit is the node's
/// allocatable amount.
pub fn resource_field_value(
    pod: &Pod,
    container: &Container,
    selector: &ResourceFieldSelector,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, EnvError> {
    let target = match selector.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => container,
        Some(name) => find_container(pod, name)
            .ok_or_else(|| EnvError::ResourceFieldRef(format!("container {name} not found")))?,
    };
    let resource = selector.resource.as_str();
    let (section, name) = match resource.split_once('.') {
        Some((section @ ("limits" | "requests"), name)) => (section, name),
        _ => return Err(unsupported_resource(resource)),
    };
    let is_cpu = name == "cpu";
    if !(is_cpu || name == "memory" || name == "ephemeral-storage" || name.starts_with("hugepages-")) {
        return Err(unsupported_resource(resource));
    }
    let resources = target.resources.as_ref();
    let amount = if section == "limits" {
        resources.and_then(|r| r.limits.as_ref()).and_then(|l| l.get(name)).or_else(|| {
            // Kubelet defaults only these three limits to the node's allocatable amount.
            if matches!(name, "cpu" | "memory" | "ephemeral-storage") { node_allocatable.get(name) } else { None }
        })
    } else {
        resources.and_then(|r| r.requests.as_ref()).and_then(|l| l.get(name))
    };
    let divisor = selector.divisor.as_ref().map(|d| d.0.as_str()).unwrap_or("1");
    let value = if is_cpu {
        let divisor = match quantity::milli_value(divisor)? {
            0 => 1000,
            d => d,
        };
        let amount = amount.map(|q| quantity::milli_value(&q.0)).transpose()?.unwrap_or(0);
        ceil_div(amount, divisor)
    } else {
        let divisor = match quantity::value(divisor)? {
            0 => 1,
            d => d,
        };
        let amount = amount.map(|q| quantity::value(&q.0)).transpose()?.unwrap_or(0);
        ceil_div(amount, divisor)
    };
    Ok(value.to_string())
}

fn unsupported_resource(resource: &str) -> EnvError {
    EnvError::ResourceFieldRef(format!("unsupported container resource : {resource}"))
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers.iter().chain(spec.init_containers.iter().flatten()).find(|c| c.name == name)
}

/// `ceil(a / b)` for a positive divisor, in integers so that large byte counts stay exact.
fn ceil_div(a: i64, b: i64) -> i64 {
    let (a, b) = (i128::from(a), i128::from(b.max(1)));
    let q = a.div_euclid(b) + i128::from(a.rem_euclid(b) != 0);
    i64::try_from(q).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
