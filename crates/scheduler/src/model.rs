//! What the scheduling algorithm knows about nodes and pods, distilled from the API objects.
//!
//! The API types are large and stringly typed; the algorithm runs once per pod per node, so it
//! works on these small, pre-parsed copies instead. Conversion happens once, when a watch
//! event arrives, and is where malformed API data is caught: the algorithm itself cannot fail.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::quantity::{self, InvalidQuantity};

/// The taint upstream's node lifecycle controller puts on a node whose Ready condition is False.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint upstream puts on a node whose Ready condition is Unknown.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint a cordoned node is treated as having; tolerating it lets a pod onto a cordoned node.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The resources scoring assumes a container uses when it requests none, as upstream does,
/// so that pods without requests still spread by load.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Requested or allocatable amounts: CPU in millicores, the rest in whole units.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Extended resources (`example.com/gpu`) and huge pages, by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a resource list; `pods` is skipped because it is a count of pods, not a request.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Result<Resources, InvalidQuantity> {
        let mut res = Resources::default();
        for (name, q) in list {
            res.set(name, &q.0)?;
        }
        Ok(res)
    }

    fn set(&mut self, name: &str, value: &str) -> Result<(), InvalidQuantity> {
        match name {
            "cpu" => self.milli_cpu = quantity::parse_milli(value)?,
            "memory" => self.memory = quantity::parse_units(value)?,
            "ephemeral-storage" => self.ephemeral_storage = quantity::parse_units(value)?,
            _ if is_scalar_resource(name) => {
                self.scalar.insert(name.to_owned(), quantity::parse_units(value)?);
            }
            // Upstream ignores the other names (`pods`, `storage`) in requests too.
            _ => {}
        }
        Ok(())
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_add(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let slot = self.scalar.entry(name.clone()).or_default();
            *slot = slot.saturating_add(*v);
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.saturating_sub(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let slot = self.scalar.entry(name.clone()).or_default();
            *slot = slot.saturating_sub(*v);
            if *slot == 0 {
                self.scalar.remove(name);
            }
        }
    }

    /// Raises each amount to at least `other`'s, as upstream does for init containers, which
    /// run one at a time before the regular ones.
    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let slot = self.scalar.entry(name.clone()).or_default();
            *slot = (*slot).max(*v);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0 && self.memory == 0 && self.ephemeral_storage == 0 && self.scalar.values().all(|v| *v == 0)
    }
}

/// Extended resources (a domain-prefixed name), prefixed native ones and huge pages are
/// checked by name against the node's allocatable amount; other names are not resources the
/// scheduler accounts for.
fn is_scalar_resource(name: &str) -> bool {
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    fn parse(s: &str) -> Option<TaintEffect> {
        match s {
            "NoSchedule" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

impl Taint {
    pub fn new(key: &str, value: &str, effect: TaintEffect) -> Taint {
        Taint { key: key.to_owned(), value: value.to_owned(), effect }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TolerationOperator {
    Equal,
    Exists,
}

/// A toleration. An empty key with `Exists` tolerates every taint; no effect means every effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toleration {
    pub key: String,
    pub operator: TolerationOperator,
    pub value: String,
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Upstream's `ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => true,
            TolerationOperator::Equal => self.value == taint.value,
        }
    }

    /// Reads a toleration. One with an operator or effect this scheduler does not know
    /// tolerates nothing, so it is dropped rather than guessed at.
    fn from_api(t: &core::Toleration) -> Option<Toleration> {
        let operator = match t.operator.as_deref() {
            None | Some("") | Some("Equal") => TolerationOperator::Equal,
            Some("Exists") => TolerationOperator::Exists,
            Some(_) => return None,
        };
        let effect = match t.effect.as_deref() {
            None | Some("") => None,
            Some(e) => Some(TaintEffect::parse(e)?),
        };
        Some(Toleration {
            key: t.key.clone().unwrap_or_default(),
            operator,
            value: t.value.clone().unwrap_or_default(),
            effect,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// One requirement of a node selector term, on a label or (for `matchFields`) on the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether a label (or field) value satisfies this requirement; `None` is an absent label.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (self.operator, value) {
            (SelectorOperator::In, Some(v)) => self.values.iter().any(|x| x == v),
            (SelectorOperator::In, None) => false,
            (SelectorOperator::NotIn, Some(v)) => !self.values.iter().any(|x| x == v),
            (SelectorOperator::NotIn, None) => true,
            (SelectorOperator::Exists, v) => v.is_some(),
            (SelectorOperator::DoesNotExist, v) => v.is_none(),
            (SelectorOperator::Gt | SelectorOperator::Lt, None) => false,
            (op @ (SelectorOperator::Gt | SelectorOperator::Lt), Some(v)) => {
                // Parsing checked that there is exactly one integer value.
                let (Ok(have), Some(Ok(want))) = (v.parse::<i64>(), self.values.first().map(|w| w.parse::<i64>()))
                else {
                    return false;
                };
                if op == SelectorOperator::Gt { have > want } else { have < want }
            }
        }
    }
}

/// A node selector term: all its requirements must hold. A term that failed to parse, or that
/// has no requirements at all, matches no node, as upstream's does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    pub match_expressions: Vec<Requirement>,
    /// Requirements on `metadata.name`, the only field upstream allows.
    pub match_fields: Vec<Requirement>,
    pub valid: bool,
}

impl NodeSelectorTerm {
    pub fn matches(&self, node: &NodeInfo) -> bool {
        if !self.valid || (self.match_expressions.is_empty() && self.match_fields.is_empty()) {
            return false;
        }
        self.match_expressions.iter().all(|r| r.matches(node.labels.get(&r.key).map(String::as_str)))
            && self.match_fields.iter().all(|r| r.matches(Some(&node.name)))
    }

    fn from_api(term: &core::NodeSelectorTerm) -> NodeSelectorTerm {
        let mut valid = true;
        let mut parse = |reqs: &Option<Vec<core::NodeSelectorRequirement>>, fields: bool| -> Vec<Requirement> {
            let mut out = Vec::new();
            for r in reqs.iter().flatten() {
                match parse_requirement(r, fields) {
                    Some(req) => out.push(req),
                    None => valid = false,
                }
            }
            out
        };
        let match_expressions = parse(&term.match_expressions, false);
        let match_fields = parse(&term.match_fields, true);
        NodeSelectorTerm { match_expressions, match_fields, valid }
    }
}

/// Reads one requirement, checking the value counts upstream's label and field selectors insist on.
fn parse_requirement(r: &core::NodeSelectorRequirement, field: bool) -> Option<Requirement> {
    let values = r.values.clone().unwrap_or_default();
    let operator = match r.operator.as_str() {
        "In" => SelectorOperator::In,
        "NotIn" => SelectorOperator::NotIn,
        "Exists" => SelectorOperator::Exists,
        "DoesNotExist" => SelectorOperator::DoesNotExist,
        "Gt" => SelectorOperator::Gt,
        "Lt" => SelectorOperator::Lt,
        _ => return None,
    };
    let ok = if field {
        r.key == "metadata.name"
            && matches!(operator, SelectorOperator::In | SelectorOperator::NotIn)
            && values.len() == 1
    } else {
        match operator {
            SelectorOperator::In | SelectorOperator::NotIn => !values.is_empty(),
            SelectorOperator::Exists | SelectorOperator::DoesNotExist => values.is_empty(),
            SelectorOperator::Gt | SelectorOperator::Lt => values.len() == 1 && values[0].parse::<i64>().is_ok(),
        }
    };
    ok.then(|| Requirement { key: r.key.clone(), operator, values })
}

/// A host port a pod binds on its node. `ip` is `0.0.0.0` when the pod binds every address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    /// Upstream's rule: the same protocol and port conflict unless both bind distinct,
    /// specific addresses.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip == other.ip || self.ip == WILDCARD_IP || other.ip == WILDCARD_IP)
    }
}

const WILDCARD_IP: &str = "0.0.0.0";

/// A node as the algorithm sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.unschedulable`: the node is cordoned.
    pub unschedulable: bool,
    /// The node's taints plus the one its Ready condition implies (see [`NodeInfo::from_node`]).
    pub taints: Vec<Taint>,
    pub allocatable: Resources,
    /// `status.allocatable.pods`: how many pods the node takes.
    pub allowed_pods: i64,
    /// The topology zone (region and zone), which spreading balances across as well as nodes.
    pub zone: Option<String>,
}

impl NodeInfo {
    /// Reads a node. A node whose Ready condition is not True gets the `not-ready` (False,
    /// or no condition) or `unreachable` (Unknown) NoSchedule taint, as upstream's node
    /// lifecycle controller would add, so such a node is filtered out unless a pod tolerates
    /// it, and the reason names the taint as upstream's message does. An allocatable amount
    /// that does not parse counts as zero: a node with unreadable capacity takes nothing.
    pub fn from_node(node: &core::Node) -> NodeInfo {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let mut taints: Vec<Taint> = spec
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: TaintEffect::parse(&t.effect)?,
                })
            })
            .collect();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        let condition_taint = match ready {
            Some("True") => None,
            Some("Unknown") => Some(TAINT_UNREACHABLE),
            _ => Some(TAINT_NOT_READY),
        };
        if let Some(key) = condition_taint
            && !taints.iter().any(|t| t.key == key && t.effect == TaintEffect::NoSchedule)
        {
            taints.push(Taint::new(key, "", TaintEffect::NoSchedule));
        }
        let mut allocatable = Resources::default();
        let mut allowed_pods = 0;
        for (res, q) in status.and_then(|s| s.allocatable.as_ref()).into_iter().flatten() {
            let parsed = if res == "pods" {
                quantity::parse_units(&q.0).map(|n| allowed_pods = n)
            } else {
                allocatable.set(res, &q.0)
            };
            if let Err(e) = parsed {
                tracing::warn!(node = %name, resource = %res, error = %e, "ignoring allocatable amount");
            }
        }
        let zone = zone_of(&labels);
        NodeInfo {
            name,
            labels,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            taints,
            allocatable,
            allowed_pods,
            zone,
        }
    }
}

/// Upstream's zone key: region and zone together, since zone names repeat across regions.
fn zone_of(labels: &BTreeMap<String, String>) -> Option<String> {
    let get = |keys: [&str; 2]| keys.iter().find_map(|k| labels.get(*k)).cloned().unwrap_or_default();
    let region = get(["topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region"]);
    let zone = get(["topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"]);
    (!region.is_empty() || !zone.is_empty()).then(|| format!("{region}:\x00:{zone}"))
}

/// A pod as the algorithm sees it: what it asks of a node, and what it uses once there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// The uid of the owner reference with `controller: true` (its ReplicaSet, say).
    pub controller_uid: Option<String>,
    /// What the pod reserves on its node, computed as upstream's `PodRequests`.
    pub requests: Resources,
    /// The CPU and memory scoring counts, with defaults for containers that request none.
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity: at least one term must match. `None` means no requirement.
    pub required_terms: Option<Vec<NodeSelectorTerm>>,
    /// Preferred node affinity, with weights.
    pub preferred_terms: Vec<(i64, NodeSelectorTerm)>,
    pub tolerations: Vec<Toleration>,
    pub priority: i32,
    /// `metadata.deletionTimestamp` is set. Such a pod still holds its resources but no
    /// longer counts for spreading, since it is about to go.
    pub terminating: bool,
}

/// A pod whose spec the scheduler cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPod {
    #[error("container {container:?} has an invalid {resource} request: {source}")]
    Quantity { container: String, resource: String, source: InvalidQuantity },
}

impl PodInfo {
    pub fn from_pod(pod: &core::Pod) -> Result<PodInfo, InvalidPod> {
        let meta = &pod.metadata;
        let default_spec = core::PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&default_spec);
        let controller_uid =
            meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| o.uid.clone());
        let (requests, non_zero) = pod_requests(spec)?;
        let affinity = spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref());
        let required_terms = affinity
            .and_then(|a| a.required_during_scheduling_ignored_during_execution.as_ref())
            .map(|sel| sel.node_selector_terms.iter().map(NodeSelectorTerm::from_api).collect());
        let preferred_terms = affinity
            .and_then(|a| a.preferred_during_scheduling_ignored_during_execution.as_ref())
            .into_iter()
            .flatten()
            .map(|p| (i64::from(p.weight), NodeSelectorTerm::from_api(&p.preference)))
            .collect();
        Ok(PodInfo {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            controller_uid,
            requests,
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            host_ports: host_ports(spec),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_terms,
            preferred_terms,
            tolerations: spec.tolerations.iter().flatten().filter_map(Toleration::from_api).collect(),
            priority: spec.priority.unwrap_or(0),
            terminating: meta.deletion_timestamp.is_some(),
        })
    }
}

/// Upstream's `PodRequests`: the regular containers and restartable (sidecar) init
/// containers run together, the other init containers one at a time before them, so the
/// pod needs the larger of the two, plus its overhead. The second result is the same
/// computed with default CPU and memory for containers that request none, for scoring.
fn pod_requests(spec: &core::PodSpec) -> Result<(Resources, Resources), InvalidPod> {
    let mut out = [Resources::default(), Resources::default()];
    for (i, non_zero) in [false, true].into_iter().enumerate() {
        let mut reqs = Resources::default();
        for c in &spec.containers {
            reqs.add(&container_requests(c, non_zero)?);
        }
        let mut restartable = Resources::default();
        let mut init_max = Resources::default();
        for c in spec.init_containers.iter().flatten() {
            let c_reqs = container_requests(c, non_zero)?;
            let running_alongside = if c.restart_policy.as_deref() == Some("Always") {
                reqs.add(&c_reqs);
                restartable.add(&c_reqs);
                restartable.clone()
            } else {
                let mut tmp = c_reqs;
                tmp.add(&restartable);
                tmp
            };
            init_max.max_with(&running_alongside);
        }
        reqs.max_with(&init_max);
        if let Some(overhead) = &spec.overhead {
            let overhead = Resources::from_list(overhead).map_err(|source| InvalidPod::Quantity {
                container: String::new(),
                resource: "overhead".into(),
                source,
            })?;
            reqs.add(&overhead);
        }
        out[i] = reqs;
    }
    let [requests, non_zero] = out;
    Ok((requests, non_zero))
}

/// A container's requests. A resource with a limit but no request requests its limit: that is
/// upstream's API defaulting, which this API server does not do, so it is done here.
fn container_requests(c: &core::Container, non_zero: bool) -> Result<Resources, InvalidPod> {
    let resources = c.resources.as_ref();
    let mut merged: BTreeMap<String, Quantity> =
        resources.and_then(|r| r.limits.clone()).unwrap_or_default().into_iter().collect();
    merged.extend(resources.and_then(|r| r.requests.clone()).unwrap_or_default());
    let mut res = Resources::default();
    for (name, q) in &merged {
        res.set(name, &q.0).map_err(|source| InvalidPod::Quantity {
            container: c.name.clone(),
            resource: name.clone(),
            source,
        })?;
    }
    if non_zero {
        if !merged.contains_key("cpu") {
            res.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !merged.contains_key("memory") {
            res.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    Ok(res)
}

/// The host ports of the regular and restartable init containers. With host networking every
/// container port is a host port, which upstream's API defaulting writes into `hostPort`.
fn host_ports(spec: &core::PodSpec) -> Vec<HostPort> {
    let host_network = spec.host_network == Some(true);
    let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let mut out = Vec::new();
    for c in spec.containers.iter().chain(sidecars) {
        for p in c.ports.iter().flatten() {
            let port = match p.host_port {
                Some(hp) if hp > 0 => hp,
                _ if host_network => p.container_port,
                _ => continue,
            };
            let ip = match p.host_ip.as_deref() {
                None | Some("") => WILDCARD_IP.to_owned(),
                Some(ip) => ip.to_owned(),
            };
            out.push(HostPort { ip, protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()), port });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, Node, NodeCondition, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn q(list: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        list.iter().map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned()))).collect()
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: (!requests.is_empty()).then(|| q(requests)),
                limits: (!limits.is_empty()).then(|| q(limits)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(spec: PodSpec) -> Pod {
        Pod { metadata: ObjectMeta { name: Some("p".into()), ..Default::default() }, spec: Some(spec), status: None }
    }

    #[track_caller]
    fn info(spec: PodSpec) -> PodInfo {
        PodInfo::from_pod(&pod(spec)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn requests_sum_containers_and_default_from_limits() {
        let p = info(PodSpec {
            containers: vec![
                container(&[("cpu", "100m"), ("memory", "64Mi")], &[]),
                container(&[], &[("cpu", "1"), ("example.com/gpu", "2")]),
            ],
            ..Default::default()
        });
        assert_eq!(p.requests.milli_cpu, 1100);
        assert_eq!(p.requests.memory, 64 << 20);
        assert_eq!(p.requests.scalar.get("example.com/gpu"), Some(&2));
        assert_eq!(p.non_zero_milli_cpu, 1100);
        assert_eq!(p.non_zero_memory, (64 << 20) + DEFAULT_MEMORY_REQUEST, "the second container asks no memory");
    }

    #[test]
    fn init_containers_take_the_max_and_sidecars_add() {
        let mut sidecar = container(&[("cpu", "200m")], &[]);
        sidecar.restart_policy = Some("Always".into());
        let p = info(PodSpec {
            containers: vec![container(&[("cpu", "500m")], &[])],
            init_containers: Some(vec![container(&[("cpu", "2")], &[]), sidecar, container(&[("cpu", "100m")], &[])]),
            overhead: Some(q(&[("cpu", "10m")])),
            ..Default::default()
        });
        // Regular 500m + sidecar 200m = 700m; the first init container alone needs 2000m.
        assert_eq!(p.requests.milli_cpu, 2010);
    }

    #[test]
    fn a_pod_without_requests_scores_with_defaults() {
        let p = info(PodSpec { containers: vec![container(&[], &[]), container(&[], &[])], ..Default::default() });
        assert!(p.requests.is_zero());
        assert_eq!(p.non_zero_milli_cpu, 2 * DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(p.non_zero_memory, 2 * DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn an_invalid_request_is_an_error_not_a_panic() {
        let err = PodInfo::from_pod(&pod(PodSpec {
            containers: vec![container(&[("cpu", "lots")], &[])],
            ..Default::default()
        }))
        .expect_err("invalid");
        assert!(err.to_string().contains("invalid cpu request"), "{err}");
    }

    #[test]
    fn host_ports_default_ip_and_protocol_and_follow_host_network() {
        let mut c = container(&[], &[]);
        c.ports = Some(vec![
            ContainerPort { container_port: 80, host_port: Some(8080), ..Default::default() },
            ContainerPort { container_port: 53, protocol: Some("UDP".into()), ..Default::default() },
        ]);
        let p = info(PodSpec { containers: vec![c.clone()], ..Default::default() });
        assert_eq!(p.host_ports, vec![HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: 8080 }]);
        let p = info(PodSpec { containers: vec![c], host_network: Some(true), ..Default::default() });
        assert_eq!(p.host_ports.len(), 2);
        assert_eq!(p.host_ports[1], HostPort { ip: "0.0.0.0".into(), protocol: "UDP".into(), port: 53 });
    }

    #[test]
    fn host_port_conflicts() {
        let hp = |ip: &str, proto: &str, port| HostPort { ip: ip.into(), protocol: proto.into(), port };
        assert!(hp("0.0.0.0", "TCP", 80).conflicts(&hp("10.0.0.1", "TCP", 80)));
        assert!(hp("10.0.0.1", "TCP", 80).conflicts(&hp("10.0.0.1", "TCP", 80)));
        assert!(!hp("10.0.0.1", "TCP", 80).conflicts(&hp("10.0.0.2", "TCP", 80)));
        assert!(!hp("0.0.0.0", "TCP", 80).conflicts(&hp("0.0.0.0", "UDP", 80)));
        assert!(!hp("0.0.0.0", "TCP", 80).conflicts(&hp("0.0.0.0", "TCP", 81)));
    }

    #[test]
    fn controller_owner_is_the_spreading_key() {
        let mut p = pod(PodSpec::default());
        let owner = |uid: &str, controller| OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: uid.into(),
            controller: Some(controller),
            ..Default::default()
        };
        p.metadata.owner_references = Some(vec![owner("a", false), owner("b", true)]);
        assert_eq!(PodInfo::from_pod(&p).expect("valid").controller_uid.as_deref(), Some("b"));
    }

    fn node(ready: Option<&str>, taints: Vec<core::Taint>) -> Node {
        Node {
            metadata: ObjectMeta { name: Some("n1".into()), ..Default::default() },
            spec: Some(NodeSpec { taints: Some(taints), ..Default::default() }),
            status: Some(NodeStatus {
                allocatable: Some(q(&[("cpu", "4"), ("memory", "8Gi"), ("pods", "110"), ("hugepages-2Mi", "0")])),
                conditions: ready
                    .map(|s| vec![NodeCondition { type_: "Ready".into(), status: s.into(), ..Default::default() }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn node_readiness_becomes_a_taint() {
        let n = NodeInfo::from_node(&node(Some("True"), vec![]));
        assert!(n.taints.is_empty());
        assert_eq!((n.allocatable.milli_cpu, n.allocatable.memory, n.allowed_pods), (4000, 8 << 30, 110));
        for (status, key) in
            [(Some("False"), TAINT_NOT_READY), (None, TAINT_NOT_READY), (Some("Unknown"), TAINT_UNREACHABLE)]
        {
            let n = NodeInfo::from_node(&node(status, vec![]));
            assert_eq!(n.taints, vec![Taint::new(key, "", TaintEffect::NoSchedule)], "{status:?}");
        }
        // The node lifecycle controller's own taint is not doubled.
        let existing = core::Taint { key: TAINT_NOT_READY.into(), effect: "NoSchedule".into(), ..Default::default() };
        assert_eq!(NodeInfo::from_node(&node(Some("False"), vec![existing])).taints.len(), 1);
    }

    #[test]
    fn unknown_taint_effects_are_ignored() {
        let t = core::Taint { key: "k".into(), effect: "Sometimes".into(), ..Default::default() };
        assert!(NodeInfo::from_node(&node(Some("True"), vec![t])).taints.is_empty());
    }

    #[test]
    fn tolerations_match_as_upstream() {
        let taint = Taint::new("k", "v", TaintEffect::NoSchedule);
        let tol = |key: &str, op, value: &str, effect| Toleration {
            key: key.into(),
            operator: op,
            value: value.into(),
            effect,
        };
        use TolerationOperator::{Equal, Exists};
        assert!(tol("k", Equal, "v", None).tolerates(&taint));
        assert!(tol("k", Equal, "v", Some(TaintEffect::NoSchedule)).tolerates(&taint));
        assert!(!tol("k", Equal, "v", Some(TaintEffect::NoExecute)).tolerates(&taint));
        assert!(!tol("k", Equal, "w", None).tolerates(&taint));
        assert!(tol("k", Exists, "", None).tolerates(&taint));
        assert!(tol("", Exists, "", None).tolerates(&taint), "empty key with Exists tolerates everything");
        assert!(!tol("", Equal, "v", None).tolerates(&Taint::new("k", "", TaintEffect::NoSchedule)));
    }

    #[test]
    fn bad_tolerations_are_dropped() {
        let t = |op: &str, effect: &str| core::Toleration {
            key: Some("k".into()),
            operator: Some(op.into()),
            effect: Some(effect.into()),
            ..Default::default()
        };
        assert!(Toleration::from_api(&t("Exists", "NoSchedule")).is_some());
        assert!(Toleration::from_api(&t("Maybe", "NoSchedule")).is_none());
        assert!(Toleration::from_api(&t("Exists", "Never")).is_none());
    }

    #[test]
    fn requirement_operators() {
        let r = |op, values: &[&str]| Requirement {
            key: "k".into(),
            operator: op,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        use SelectorOperator::*;
        assert!(r(In, &["a", "b"]).matches(Some("b")));
        assert!(!r(In, &["a"]).matches(None));
        assert!(r(NotIn, &["a"]).matches(None));
        assert!(!r(NotIn, &["a"]).matches(Some("a")));
        assert!(r(Exists, &[]).matches(Some("")));
        assert!(r(DoesNotExist, &[]).matches(None));
        assert!(r(Gt, &["5"]).matches(Some("6")));
        assert!(!r(Gt, &["5"]).matches(Some("5")));
        assert!(!r(Gt, &["5"]).matches(Some("x")), "a non-integer label never compares");
        assert!(r(Lt, &["5"]).matches(Some("-1")));
        assert!(!r(Lt, &["5"]).matches(None));
    }

    #[test]
    fn malformed_terms_match_nothing() {
        let req = |key: &str, op: &str, values: Option<Vec<&str>>| core::NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.map(|v| v.into_iter().map(str::to_owned).collect()),
        };
        let term = |exprs, fields| {
            NodeSelectorTerm::from_api(&core::NodeSelectorTerm {
                match_expressions: Some(exprs),
                match_fields: Some(fields),
            })
        };
        assert!(term(vec![req("k", "In", Some(vec!["a"]))], vec![]).valid);
        assert!(!term(vec![req("k", "In", None)], vec![]).valid);
        assert!(!term(vec![req("k", "Exists", Some(vec!["a"]))], vec![]).valid);
        assert!(!term(vec![req("k", "Gt", Some(vec!["x"]))], vec![]).valid);
        assert!(!term(vec![req("k", "Like", None)], vec![]).valid);
        assert!(!term(vec![], vec![req("metadata.labels", "In", Some(vec!["a"]))]).valid);
        assert!(!term(vec![], vec![req("metadata.name", "Exists", None)]).valid);
        assert!(term(vec![], vec![req("metadata.name", "NotIn", Some(vec!["a"]))]).valid);
        let n = NodeInfo::from_node(&node(Some("True"), vec![]));
        assert!(!term(vec![], vec![]).matches(&n), "an empty term matches nothing");
        assert!(term(vec![], vec![req("metadata.name", "In", Some(vec!["n1"]))]).matches(&n));
    }

    #[test]
    fn zones_combine_region_and_zone() {
        let labels: BTreeMap<String, String> =
            [("topology.kubernetes.io/zone".to_owned(), "a".to_owned())].into_iter().collect();
        assert_eq!(zone_of(&labels).as_deref(), Some(":\x00:a"));
        assert_eq!(zone_of(&BTreeMap::new()), None);
    }
}
