//! One [`Strategy`] per kind: type checking through the upstream types (k8s-openapi),
//! upstream's defaults, and validation with upstream's messages.

use k8s_openapi::api::{
    apps::v1 as apps, coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::FieldError;
use crate::registry::Strategy;
use crate::validation::{NameRule, validate_labels, validate_metadata, validate_port};

/// Decodes `obj` as `T` and lists the fields of `obj` that `T` dropped.
///
/// Upstream decodes into Go structs and, under `fieldValidation=Strict`, reports every
/// field the struct has no place for. Decoding into the k8s-openapi struct and comparing
/// the re-encoded object with the input finds exactly those fields, without a schema table.
pub fn typed_check<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Vec<String>, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    diff_unknown(obj, &back, "", &mut unknown);
    Ok(unknown)
}

fn diff_unknown(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get(k) {
                    Some(kv) => diff_unknown(v, kv, &p, out),
                    // A null is how clients say "unset"; the type dropping it is not an unknown field.
                    None if !v.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (v, kv)) in a.iter().zip(b).enumerate() {
                diff_unknown(v, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Removes the fields listed by [`typed_check`], as upstream drops them when it decodes
/// without strict validation.
pub fn prune_fields(obj: &mut Value, paths: &[String]) {
    for path in paths {
        remove_path(obj, path);
    }
}

fn remove_path(obj: &mut Value, path: &str) {
    // Paths are `a.b[2].c`; split on dots outside brackets, then index arrays.
    let mut cur = obj;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let (name, indices) = match part.find('[') {
            Some(pos) => (&part[..pos], &part[pos..]),
            None => (*part, ""),
        };
        let last = i == parts.len() - 1 && indices.is_empty();
        if last {
            if let Some(map) = cur.as_object_mut() {
                map.remove(name);
            }
            return;
        }
        let Some(next) = cur.get_mut(name) else { return };
        cur = next;
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            let Ok(idx) = idx.parse::<usize>() else { return };
            let Some(next) = cur.get_mut(idx) else { return };
            cur = next;
        }
    }
}

fn obj_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made it an object"),
    }
}

/// Sets `obj[key]` to `value` unless it is already set.
fn default_field(obj: &mut Value, key: &str, value: Value) {
    let map = obj_mut(obj);
    match map.get(key) {
        Some(v) if !v.is_null() => {}
        _ => {
            map.insert(key.to_owned(), value);
        }
    }
}

fn child<'a>(obj: &'a mut Value, key: &str) -> &'a mut Value {
    obj_mut(obj).entry(key.to_owned()).or_insert_with(|| json!({}))
}

// === Pod specs, shared by Pods and pod templates ===

/// The image pull policy upstream defaults to: Always for `:latest` or no tag, else IfNotPresent.
fn default_pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, "latest")) | None if !image.contains('@') => "Always",
        _ => "IfNotPresent",
    }
}

fn default_probe(probe: &mut Value) {
    if !probe.is_object() {
        return;
    }
    default_field(probe, "timeoutSeconds", json!(1));
    default_field(probe, "periodSeconds", json!(10));
    default_field(probe, "successThreshold", json!(1));
    default_field(probe, "failureThreshold", json!(3));
    if let Some(http) = probe.get_mut("httpGet").filter(|h| h.is_object()) {
        default_field(http, "path", json!("/"));
        default_field(http, "scheme", json!("HTTP"));
    }
}

fn default_container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    let image = c["image"].as_str().unwrap_or("").to_owned();
    default_field(c, "terminationMessagePath", json!("/dev/termination-log"));
    default_field(c, "terminationMessagePolicy", json!("File"));
    default_field(c, "imagePullPolicy", json!(default_pull_policy(&image)));
    default_field(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            default_field(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe) {
            default_probe(p);
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    default_field(spec, "restartPolicy", json!("Always"));
    default_field(spec, "terminationGracePeriodSeconds", json!(30));
    default_field(spec, "dnsPolicy", json!("ClusterFirst"));
    default_field(spec, "securityContext", json!({}));
    default_field(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
    if let Some(vols) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut().filter(|v| v.is_object()) {
            for source in ["secret", "configMap", "downwardAPI", "projected"] {
                if let Some(s) = v.get_mut(source).filter(|s| s.is_object()) {
                    default_field(s, "defaultMode", json!(420));
                }
            }
        }
    }
}

fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let containers = spec["containers"].as_array();
    match containers {
        None => errs.push(FieldError::required(format!("{path}.containers"), "")),
        Some(cs) if cs.is_empty() => errs.push(FieldError::required(format!("{path}.containers"), "")),
        Some(cs) => {
            let mut names = Vec::new();
            for (i, c) in cs.iter().enumerate() {
                let cpath = format!("{path}.containers[{i}]");
                let name = c["name"].as_str().unwrap_or("");
                if name.is_empty() {
                    errs.push(FieldError::required(format!("{cpath}.name"), ""));
                } else {
                    for p in crate::validation::dns1123_label_errors(name) {
                        errs.push(FieldError::invalid(format!("{cpath}.name"), &Value::from(name), &p));
                    }
                    if names.contains(&name) {
                        errs.push(FieldError::duplicate(format!("{cpath}.name"), &Value::from(name)));
                    }
                    names.push(name);
                }
                if c["image"].as_str().unwrap_or("").trim().is_empty() {
                    errs.push(FieldError::required(format!("{cpath}.image"), ""));
                }
                if let Some(ports) = c["ports"].as_array() {
                    for (j, p) in ports.iter().enumerate() {
                        validate_port(&p["containerPort"], &format!("{cpath}.ports[{j}].containerPort"), errs);
                    }
                }
            }
        }
    }
    if let Some(policy) = spec["restartPolicy"].as_str()
        && !["Always", "OnFailure", "Never"].contains(&policy)
    {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            &Value::from(policy),
            &["Always", "OnFailure", "Never"],
        ));
    }
}

// === Kinds ===

macro_rules! typed {
    ($t:ty) => {
        fn check_types(&self, obj: &Value) -> Result<Vec<String>, String> {
            typed_check::<$t>(obj)
        }
    };
}

pub struct NamespaceStrategy;
impl Strategy for NamespaceStrategy {
    typed!(core::Namespace);
    fn default(&self, obj: &mut Value) {
        default_field(child(obj, "spec"), "finalizers", json!(["kubernetes"]));
        default_field(child(obj, "status"), "phase", json!("Active"));
        // Upstream labels every namespace with its own name.
        if let Some(name) = obj["metadata"]["name"].as_str().map(str::to_owned) {
            let labels = child(child(obj, "metadata"), "labels");
            default_field(labels, "kubernetes.io/metadata.name", json!(name));
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        validate_metadata(obj, NameRule::Label, false)
    }
    fn has_status_subresource(&self) -> bool {
        true
    }
}

pub struct NodeStrategy;
impl Strategy for NodeStrategy {
    typed!(core::Node);
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        validate_metadata(obj, NameRule::Subdomain, false)
    }
    fn has_status_subresource(&self) -> bool {
        true
    }
}

pub struct PodStrategy;
impl Strategy for PodStrategy {
    typed!(core::Pod);
    fn default(&self, obj: &mut Value) {
        let spec = child(obj, "spec");
        default_pod_spec(spec);
        default_field(spec, "enableServiceLinks", json!(true));
        default_field(spec, "serviceAccountName", json!("default"));
        default_field(spec, "priority", json!(0));
        default_field(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validate_metadata(obj, NameRule::Subdomain, true);
        validate_pod_spec(&obj["spec"], "spec", &mut errs);
        errs
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        let qos = qos_class(&obj["spec"]);
        obj_mut(obj).insert("status".into(), json!({"phase": "Pending", "qosClass": qos}));
    }
    fn has_status_subresource(&self) -> bool {
        true
    }
}

/// The pod's QoS class, from its containers' requests and limits, as upstream computes it.
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = spec["containers"].as_array().map(|c| c.iter().collect()).unwrap_or_default();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c["resources"]["requests"].as_object();
        let lim = c["resources"]["limits"].as_object();
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(res));
            let r = req.and_then(|r| r.get(res)).or(l);
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Upstream's `dropTypeDependentFields` (pkg/registry/core/service/strategy.go): when an
/// update changes a Service's type so that a field no longer applies, and the update left
/// that field as it was, the field is dropped rather than the update rejected. So
/// `kubectl patch` from NodePort to ClusterIP works without also clearing every nodePort.
pub fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let ty = |v: &Value| v["spec"]["type"].as_str().unwrap_or("ClusterIP").to_owned();
    let (old_ty, new_ty) = (ty(old), ty(new));
    let external = |t: &str| t == "NodePort" || t == "LoadBalancer";
    let node_ports = |v: &Value| -> Vec<Value> {
        v["spec"]["ports"].as_array().map(|ps| ps.iter().map(|p| p["nodePort"].clone()).collect()).unwrap_or_default()
    };
    let same_node_ports = node_ports(new) == node_ports(old);
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let unchanged = |spec: &serde_json::Map<String, Value>, field: &str| spec.get(field) == old["spec"].get(field);
    if external(&old_ty) && !external(&new_ty) && same_node_ports {
        for p in spec.get_mut("ports").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(p) = p.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    if old_ty == "LoadBalancer" && new_ty != "LoadBalancer" {
        for field in ["loadBalancerClass", "allocateLoadBalancerNodePorts"] {
            if unchanged(spec, field) {
                spec.remove(field);
            }
        }
    }
    if !external(&new_ty) && unchanged(spec, "externalTrafficPolicy") {
        spec.remove("externalTrafficPolicy");
    }
    let local = spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
    if !(new_ty == "LoadBalancer" && local) && unchanged(spec, "healthCheckNodePort") {
        spec.remove("healthCheckNodePort");
    }
}

pub struct ServiceStrategy;
impl Strategy for ServiceStrategy {
    typed!(core::Service);
    fn default(&self, obj: &mut Value) {
        let spec = child(obj, "spec");
        default_field(spec, "type", json!("ClusterIP"));
        default_field(spec, "sessionAffinity", json!("None"));
        let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_owned();
        if ty != "ExternalName" {
            default_field(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        if ty == "NodePort" || ty == "LoadBalancer" {
            default_field(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if ty == "LoadBalancer" {
            default_field(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
        if spec["sessionAffinity"] == "ClientIP" {
            default_field(spec, "sessionAffinityConfig", json!({"clientIP": {"timeoutSeconds": 10800}}));
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter(|p| p.is_object()) {
                default_field(p, "protocol", json!("TCP"));
                let port = p["port"].clone();
                default_field(p, "targetPort", port);
            }
        }
        default_field(child(obj, "status"), "loadBalancer", json!({}));
    }
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        drop_type_dependent_fields(new, old);
    }
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validate_metadata(obj, NameRule::Label, true);
        validate_service_spec(&obj["spec"], old.map(|o| &o["spec"]), &mut errs);
        errs
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj_mut(obj).insert("status".into(), json!({"loadBalancer": {}}));
    }
    fn has_status_subresource(&self) -> bool {
        true
    }
}

const SERVICE_TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

fn validate_service_spec(spec: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !SERVICE_TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("spec.type", &Value::from(ty), SERVICE_TYPES));
    }
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    let headless = spec["clusterIP"] == "None";
    if ports.is_empty() && ty != "ExternalName" && !headless {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let mut seen_names = Vec::new();
    let mut seen_ports = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let name = p["name"].as_str().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        }
        if !name.is_empty() {
            for e in crate::validation::dns1123_label_errors(name) {
                errs.push(FieldError::invalid(format!("{path}.name"), &Value::from(name), &e));
            }
            if seen_names.contains(&name) {
                errs.push(FieldError::duplicate(format!("{path}.name"), &Value::from(name)));
            }
            seen_names.push(name);
        }
        validate_port(&p["port"], &format!("{path}.port"), errs);
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        if !PROTOCOLS.contains(&proto) {
            errs.push(FieldError::not_supported(format!("{path}.protocol"), &Value::from(proto), PROTOCOLS));
        }
        let key = (p["port"].as_i64(), proto);
        if seen_ports.contains(&key) {
            errs.push(FieldError::duplicate(path.to_string(), &json!({"port": p["port"], "protocol": proto})));
        }
        seen_ports.push(key);
        match &p["targetPort"] {
            Value::Number(_) => validate_port(&p["targetPort"], &format!("{path}.targetPort"), errs),
            Value::String(s)
                if (s.is_empty()
                    || s.len() > 15
                    || !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')) =>
            {
                errs.push(FieldError::invalid(
                    format!("{path}.targetPort"),
                    &Value::from(s.as_str()),
                    "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                ));
            }
            _ => {}
        }
        if !p["nodePort"].is_null() && ty == "ClusterIP" {
            errs.push(FieldError::forbidden(format!("{path}.nodePort"), "may not be used when `type` is 'ClusterIP'"));
        }
    }
    if ty == "ExternalName" {
        let en = spec["externalName"].as_str().unwrap_or("");
        if en.is_empty() {
            errs.push(FieldError::required("spec.externalName", ""));
        } else {
            let trimmed = en.strip_suffix('.').unwrap_or(en);
            for e in rkube_apimachinery::selector::validation::dns1123_subdomain_errors(trimmed) {
                errs.push(FieldError::invalid("spec.externalName", &Value::from(en), &e));
            }
        }
    }
    errs.extend(validate_labels(&spec["selector"], "spec.selector"));
    if let Some(old) = old {
        let old_ip = old["clusterIP"].as_str().unwrap_or("");
        let new_ip = spec["clusterIP"].as_str().unwrap_or("");
        if !old_ip.is_empty() && old_ip != new_ip && ty != "ExternalName" && old["type"] != "ExternalName" {
            errs.push(FieldError::invalid("spec.clusterIPs[0]", &Value::from(new_ip), "may not change once set"));
        }
    }
}

pub struct EndpointsStrategy;
impl Strategy for EndpointsStrategy {
    typed!(core::Endpoints);
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        validate_metadata(obj, NameRule::Subdomain, true)
    }
}

pub struct SecretStrategy;
impl Strategy for SecretStrategy {
    typed!(core::Secret);
    fn default(&self, obj: &mut Value) {
        default_field(obj, "type", json!("Opaque"));
        // `stringData` is write-only: upstream merges it into `data` and never stores it.
        if let Some(Value::Object(string_data)) = obj_mut(obj).remove("stringData") {
            use base64::Engine;
            let data = obj_mut(child(obj, "data"));
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or("");
                data.insert(k, Value::from(base64::engine::general_purpose::STANDARD.encode(text)));
            }
        }
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validate_metadata(obj, NameRule::Subdomain, true);
        if obj["type"] == "kubernetes.io/tls" {
            for key in ["tls.crt", "tls.key"] {
                if obj["data"][key].is_null() {
                    errs.push(FieldError::required(format!("data[{key}]"), ""));
                }
            }
        }
        errs
    }
}

pub struct ConfigMapStrategy;
impl Strategy for ConfigMapStrategy {
    typed!(core::ConfigMap);
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        validate_metadata(obj, NameRule::Subdomain, true)
    }
}

pub struct EventStrategy;
impl Strategy for EventStrategy {
    typed!(core::Event);
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        validate_metadata(obj, NameRule::Subdomain, true)
    }
}

pub struct ServiceAccountStrategy;
impl Strategy for ServiceAccountStrategy {
    typed!(core::ServiceAccount);
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        validate_metadata(obj, NameRule::Subdomain, true)
    }
}

fn default_template(spec: &mut Value) {
    let template = child(spec, "template");
    default_pod_spec(child(template, "spec"));
}

/// Checks a workload's selector and template, as upstream's apps validation does.
fn validate_workload(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    if let Some(r) = spec["replicas"].as_i64()
        && r < 0
    {
        errs.push(FieldError::invalid("spec.replicas", &spec["replicas"], "must be greater than or equal to 0"));
    }
    let selector = &spec["selector"];
    let empty = selector["matchLabels"].as_object().is_none_or(Map::is_empty)
        && selector["matchExpressions"].as_array().is_none_or(Vec::is_empty);
    if selector.is_null() {
        errs.push(FieldError::required("spec.selector", ""));
    } else if empty {
        errs.push(FieldError::invalid("spec.selector", selector, "empty selector is invalid for deployment"));
    } else {
        match rkube_apimachinery::selector::LabelSelector::from_label_selector_json(selector) {
            Err(e) => errs.push(FieldError::invalid("spec.selector", selector, &e.to_string())),
            Ok(sel) => {
                let labels = &spec["template"]["metadata"]["labels"];
                if !sel.matches_json(Some(labels)) {
                    errs.push(FieldError::invalid(
                        "spec.template.metadata.labels",
                        labels,
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    errs.extend(validate_labels(&spec["template"]["metadata"]["labels"], "spec.template.metadata.labels"));
    validate_pod_spec(&spec["template"]["spec"], "spec.template.spec", errs);
    if let Some(policy) = spec["template"]["spec"]["restartPolicy"].as_str()
        && policy != "Always"
    {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", &Value::from(policy), &["Always"]));
    }
}

pub struct DeploymentStrategy;
impl Strategy for DeploymentStrategy {
    typed!(apps::Deployment);
    fn default(&self, obj: &mut Value) {
        let spec = child(obj, "spec");
        default_field(spec, "replicas", json!(1));
        default_field(spec, "revisionHistoryLimit", json!(10));
        default_field(spec, "progressDeadlineSeconds", json!(600));
        default_field(spec, "strategy", json!({}));
        let strategy = child(spec, "strategy");
        default_field(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            let ru = child(strategy, "rollingUpdate");
            default_field(ru, "maxUnavailable", json!("25%"));
            default_field(ru, "maxSurge", json!("25%"));
        }
        default_template(spec);
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validate_metadata(obj, NameRule::Subdomain, true);
        validate_workload(obj, &mut errs);
        errs
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj_mut(obj).insert("status".into(), json!({}));
    }
    fn has_status_subresource(&self) -> bool {
        true
    }
}

pub struct ReplicaSetStrategy;
impl Strategy for ReplicaSetStrategy {
    typed!(apps::ReplicaSet);
    fn default(&self, obj: &mut Value) {
        let spec = child(obj, "spec");
        default_field(spec, "replicas", json!(1));
        default_template(spec);
    }
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validate_metadata(obj, NameRule::Subdomain, true);
        validate_workload(obj, &mut errs);
        errs
    }
    fn prepare_for_create(&self, obj: &mut Value) {
        obj_mut(obj).insert("status".into(), json!({"replicas": 0}));
    }
    fn has_status_subresource(&self) -> bool {
        true
    }
}

pub struct EndpointSliceStrategy;
impl Strategy for EndpointSliceStrategy {
    typed!(discovery::EndpointSlice);
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validate_metadata(obj, NameRule::Subdomain, true);
        let at = obj["addressType"].as_str().unwrap_or("");
        if !["IPv4", "IPv6", "FQDN"].contains(&at) {
            errs.push(FieldError::not_supported("addressType", &Value::from(at), &["FQDN", "IPv4", "IPv6"]));
        }
        errs
    }
}

pub struct LeaseStrategy;
impl Strategy for LeaseStrategy {
    typed!(coordination::Lease);
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        validate_metadata(obj, NameRule::Subdomain, true)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn type_change_drops_fields_it_left_alone() {
        let old = serde_json::json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut new = serde_json::json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Local",
            "ports": [{"port": 80, "nodePort": 30080}]}});
        super::drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new, serde_json::json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}));
        // A nodePort the update itself changed is the user's, and validation rejects it.
        let mut changed =
            serde_json::json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30081}]}});
        super::drop_type_dependent_fields(&mut changed, &old);
        assert_eq!(changed["spec"]["ports"][0]["nodePort"], 30081);
    }

    use super::*;

    #[test]
    fn unknown_fields_are_found_by_round_trip() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "labels": {"x": "y"}, "bogus": 1},
            "spec": {"containers": [{"name": "c", "image": "nginx", "colour": "red"}], "nodeName": null}
        });
        let unknown = typed_check::<core::Pod>(&pod).expect("decodes");
        assert_eq!(unknown, vec!["metadata.bogus".to_owned(), "spec.containers[0].colour".to_owned()]);
        let mut pruned = pod.clone();
        prune_fields(&mut pruned, &unknown);
        assert!(pruned["metadata"].get("bogus").is_none());
        assert!(pruned["spec"]["containers"][0].get("colour").is_none());
    }

    #[test]
    fn wrong_types_are_decode_errors() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": "nope"}});
        assert!(typed_check::<core::Pod>(&pod).is_err());
    }

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(default_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn deployment_selector_must_match_template() {
        let d = json!({"metadata": {"name": "d", "namespace": "default"}, "spec": {
            "selector": {"matchLabels": {"run": "a"}},
            "template": {"metadata": {"labels": {"run": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let errs = DeploymentStrategy.validate(&d, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn service_port_rules() {
        let s = json!({"metadata": {"name": "s", "namespace": "default"}, "spec": {"type": "ClusterIP", "ports": [
            {"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "TCP", "name": "b"}, {"port": 70000, "name": "c", "protocol": "TCP"}]}});
        let errs = ServiceStrategy.validate(&s, None);
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.ports[0].name", "spec.ports[1]", "spec.ports[2].port"]);
    }
}
