//! The proxy's in-memory picture of the cluster: Services and EndpointSlices reduced to the
//! fields the rules depend on, plus the set of Services whose rules must be recomputed.
//!
//! Conversion from the API types is here too, so that everything invalid is rejected (and
//! logged) once, at the edge, and never reaches the rule generator.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::SystemTime;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;

/// Namespace and name of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey { namespace: namespace.into(), name: name.into() }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A transport protocol a Service port can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The API spelling ("TCP"); an absent protocol means TCP, as the API defaults it.
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The nftables spelling, also used in chain names.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name; EndpointSlice ports are matched to it by name and protocol.
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub node_port: Option<u16>,
}

/// A Service, reduced to what the rules depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub key: ServiceKey,
    /// The IPv4 ClusterIP; `None` for headless and ExternalName Services, which get no
    /// ClusterIP rules (they may still have external IPs).
    pub cluster_ip: Option<Ipv4Addr>,
    pub ports: Vec<ServicePort>,
    pub external_ips: Vec<Ipv4Addr>,
    pub load_balancer_ips: Vec<Ipv4Addr>,
    pub load_balancer_source_ranges: Vec<Ipv4Net>,
    /// sessionAffinity ClientIP, with its timeout in seconds.
    pub affinity_timeout: Option<u32>,
    pub external_local: bool,
    pub internal_local: bool,
    pub health_check_node_port: Option<u16>,
}

impl Service {
    /// A ClusterIP Service with the given ports and the defaults of everything else.
    pub fn cluster_ip(key: ServiceKey, ip: Ipv4Addr, ports: Vec<ServicePort>) -> Self {
        Service {
            key,
            cluster_ip: Some(ip),
            ports,
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            load_balancer_source_ranges: Vec::new(),
            affinity_timeout: None,
            external_local: false,
            internal_local: false,
            health_check_node_port: None,
        }
    }
}

/// One endpoint address of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub node_name: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

impl Endpoint {
    /// A ready endpoint on `node`.
    pub fn ready(ip: Ipv4Addr, node: &str) -> Self {
        Endpoint { ip, node_name: Some(node.to_string()), ready: true, serving: true, terminating: false }
    }
}

/// A named port of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

/// An IPv4 EndpointSlice, reduced to what the rules depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    pub namespace: String,
    pub name: String,
    pub service: String,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<Endpoint>,
    /// When the change this slice carries happened: the controller's
    /// `endpoints.kubernetes.io/last-change-trigger-time` annotation.
    pub trigger_time: Option<SystemTime>,
}

/// Why an API object was skipped; logged by the caller, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("object has no name or namespace")]
    NoName,
    #[error("not an IPv4 EndpointSlice")]
    NotIpv4,
    #[error("EndpointSlice has no kubernetes.io/service-name label")]
    NoServiceLabel,
}

fn parse_port(n: Option<i32>) -> Option<u16> {
    n.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0)
}

/// Converts a Service. Ports with an unknown protocol or an out-of-range number are dropped,
/// and so are addresses that do not parse: one bad field must not hide the rest.
pub fn service_from_api(svc: &core::Service) -> Result<Service, Invalid> {
    let namespace = svc.metadata.namespace.clone().ok_or(Invalid::NoName)?;
    let name = svc.metadata.name.clone().ok_or(Invalid::NoName)?;
    let key = ServiceKey { namespace, name };
    let spec = svc.spec.clone().unwrap_or_default();
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    let parse_ips = |v: &[String]| v.iter().filter_map(|s| s.parse::<Ipv4Addr>().ok()).collect::<Vec<_>>();
    let cluster_ip = match type_ {
        "ExternalName" => None,
        _ => {
            let mut ips = spec.cluster_ips.clone().unwrap_or_default();
            ips.extend(spec.cluster_ip.clone());
            parse_ips(&ips).into_iter().next()
        }
    };
    let node_ports = matches!(type_, "NodePort" | "LoadBalancer");
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::parse(p.protocol.as_deref())?,
                port: parse_port(Some(p.port))?,
                node_port: if node_ports { parse_port(p.node_port) } else { None },
            })
        })
        .collect();
    let lb_ips = if type_ == "LoadBalancer" {
        let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        parse_ips(&ingress.into_iter().flatten().filter_map(|i| i.ip.clone()).collect::<Vec<_>>())
    } else {
        Vec::new()
    };
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(10800)
    });
    let external = node_ports || !spec.external_ips.as_deref().unwrap_or_default().is_empty();
    let external_local = external && spec.external_traffic_policy.as_deref() == Some("Local");
    Ok(Service {
        key,
        cluster_ip,
        ports,
        external_ips: parse_ips(spec.external_ips.as_deref().unwrap_or_default()),
        load_balancer_ips: lb_ips,
        load_balancer_source_ranges: spec
            .load_balancer_source_ranges
            .iter()
            .flatten()
            .filter_map(|r| r.trim().parse::<Ipv4Net>().ok().map(|n| n.trunc()))
            .collect(),
        affinity_timeout,
        external_local,
        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        health_check_node_port: if external_local && type_ == "LoadBalancer" {
            parse_port(spec.health_check_node_port)
        } else {
            None
        },
    })
}

/// The annotation the EndpointSlice controller sets to the time of the change it carries.
pub const TRIGGER_TIME_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Converts an EndpointSlice. IPv6 slices are not ours (the table is family `ip`).
pub fn slice_from_api(slice: &discovery::EndpointSlice) -> Result<Slice, Invalid> {
    let namespace = slice.metadata.namespace.clone().ok_or(Invalid::NoName)?;
    let name = slice.metadata.name.clone().ok_or(Invalid::NoName)?;
    if slice.address_type != "IPv4" {
        return Err(Invalid::NotIpv4);
    }
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"))
        .cloned()
        .ok_or(Invalid::NoServiceLabel)?;
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(SlicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol: Protocol::parse(p.protocol.as_deref())?,
                port: parse_port(p.port)?,
            })
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .flatten()
        .filter_map(|e| {
            // The API allows one address per endpoint; more are ignored as kube-proxy does.
            let ip = e.addresses.first()?.parse::<Ipv4Addr>().ok()?;
            let c = e.conditions.clone().unwrap_or_default();
            // Unset conditions mean "ready" and "serving" (the API's documented defaults).
            let ready = c.ready.unwrap_or(true);
            Some(Endpoint {
                ip,
                node_name: e.node_name.clone(),
                ready,
                serving: c.serving.unwrap_or(ready),
                terminating: c.terminating.unwrap_or(false),
            })
        })
        .collect();
    let trigger_time = slice
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TRIGGER_TIME_ANNOTATION))
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(SystemTime::from);
    Ok(Slice { namespace, name, service, ports, endpoints, trigger_time })
}

/// Facts about the proxy's own node that the rules depend on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The node's podCIDR: traffic from it that is DNATed back onto the pod bridge is
    /// masqueraded (hairpin and same-node Services, see the README).
    pub pod_cidr: Option<Ipv4Net>,
    /// Node addresses (InternalIP, ExternalIP) where NodePorts answer.
    pub addresses: Vec<Ipv4Addr>,
}

/// Reads podCIDR and the node addresses from the Node.
pub fn node_from_api(node: &core::Node) -> NodeFacts {
    let pod_cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).and_then(|c| c.parse::<Ipv4Net>().ok());
    let addresses = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    NodeFacts { pod_cidr, addresses }
}

/// The endpoints of one Service port, merged from all its slices.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortEndpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub local: bool,
    pub ready: bool,
    /// Serving and terminating: used only when no ready endpoint is left.
    pub fallback: bool,
}

/// The Services and slices the proxy knows, and which Services changed since the last sync.
#[derive(Debug, Default)]
pub struct Model {
    services: HashMap<ServiceKey, Service>,
    slices: HashMap<(String, String), Slice>,
    slices_by_service: HashMap<ServiceKey, BTreeSet<String>>,
    node: NodeFacts,
    dirty: HashSet<ServiceKey>,
    node_dirty: bool,
    /// The earliest not yet programmed change per Service, for the programming-latency metric.
    pending_since: HashMap<ServiceKey, SystemTime>,
}

impl Model {
    pub fn new() -> Self {
        Model::default()
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.services.get(key)
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn node(&self) -> &NodeFacts {
        &self.node
    }

    pub fn upsert_service(&mut self, svc: Service) {
        if self.services.get(&svc.key) != Some(&svc) {
            self.dirty.insert(svc.key.clone());
            self.services.insert(svc.key.clone(), svc);
        }
    }

    pub fn delete_service(&mut self, key: &ServiceKey) {
        if self.services.remove(key).is_some() {
            self.dirty.insert(key.clone());
        }
    }

    pub fn upsert_slice(&mut self, slice: Slice) {
        let id = (slice.namespace.clone(), slice.name.clone());
        let key = ServiceKey::new(&slice.namespace, &slice.service);
        let seen = slice.trigger_time.unwrap_or_else(SystemTime::now);
        if let Some(old) = self.slices.get(&id) {
            if *old == slice {
                return;
            }
            if old.service != slice.service {
                let old_key = ServiceKey::new(&old.namespace, &old.service);
                if let Some(names) = self.slices_by_service.get_mut(&old_key) {
                    names.remove(&slice.name);
                }
                self.mark(old_key, seen);
            }
        }
        self.slices_by_service.entry(key.clone()).or_default().insert(slice.name.clone());
        self.slices.insert(id, slice);
        self.mark(key, seen);
    }

    pub fn delete_slice(&mut self, namespace: &str, name: &str) {
        if let Some(old) = self.slices.remove(&(namespace.to_string(), name.to_string())) {
            let key = ServiceKey::new(&old.namespace, &old.service);
            if let Some(names) = self.slices_by_service.get_mut(&key) {
                names.remove(name);
                if names.is_empty() {
                    self.slices_by_service.remove(&key);
                }
            }
            self.mark(key, SystemTime::now());
        }
    }

    /// Replaces every Service at once (a watch relist): Services no longer listed are deleted.
    pub fn replace_services(&mut self, all: Vec<Service>) {
        let keep: HashSet<ServiceKey> = all.iter().map(|s| s.key.clone()).collect();
        let gone: Vec<ServiceKey> = self.services.keys().filter(|k| !keep.contains(*k)).cloned().collect();
        for key in gone {
            self.delete_service(&key);
        }
        for svc in all {
            self.upsert_service(svc);
        }
    }

    /// Replaces every slice at once (a watch relist).
    pub fn replace_slices(&mut self, all: Vec<Slice>) {
        let keep: HashSet<(String, String)> = all.iter().map(|s| (s.namespace.clone(), s.name.clone())).collect();
        let gone: Vec<(String, String)> = self.slices.keys().filter(|k| !keep.contains(*k)).cloned().collect();
        for (ns, name) in gone {
            self.delete_slice(&ns, &name);
        }
        for slice in all {
            self.upsert_slice(slice);
        }
    }

    pub fn set_node(&mut self, node: NodeFacts) {
        if self.node != node {
            self.node = node;
            self.node_dirty = true;
        }
    }

    fn mark(&mut self, key: ServiceKey, at: SystemTime) {
        self.pending_since.entry(key.clone()).and_modify(|t| *t = (*t).min(at)).or_insert(at);
        self.dirty.insert(key);
    }

    /// Marks every Service dirty, for a full resync.
    pub fn mark_all(&mut self) {
        self.dirty.extend(self.services.keys().cloned());
        self.node_dirty = true;
    }

    /// Takes the set of changed Services (and whether the node changed) since the last call.
    pub fn take_dirty(&mut self) -> (Vec<ServiceKey>, bool) {
        let mut keys: Vec<ServiceKey> = self.dirty.drain().collect();
        keys.sort();
        (keys, std::mem::take(&mut self.node_dirty))
    }

    /// Takes the change times of the given Services, to be observed once they are programmed.
    pub fn take_pending(&mut self, keys: &[ServiceKey]) -> Vec<SystemTime> {
        keys.iter().filter_map(|k| self.pending_since.remove(k)).collect()
    }

    /// All known Service keys, sorted.
    pub fn service_keys(&self) -> Vec<ServiceKey> {
        let mut keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The endpoints of `port` of Service `key`: the slices' ports matched by name and
    /// protocol (a slice port the Service lacks is ignored), deduplicated by address and port.
    pub fn endpoints(&self, key: &ServiceKey, port: &ServicePort, node_name: &str) -> Vec<PortEndpoint> {
        let mut out: BTreeMap<(Ipv4Addr, u16), PortEndpoint> = BTreeMap::new();
        for name in self.slices_by_service.get(key).into_iter().flatten() {
            let Some(slice) = self.slices.get(&(key.namespace.clone(), name.clone())) else { continue };
            let Some(sp) = slice.ports.iter().find(|p| p.name == port.name && p.protocol == port.protocol) else {
                continue;
            };
            for e in &slice.endpoints {
                let pe = PortEndpoint {
                    ip: e.ip,
                    port: sp.port,
                    local: e.node_name.as_deref() == Some(node_name),
                    ready: e.ready,
                    fallback: !e.ready && e.serving && e.terminating,
                };
                // The same address in two slices (a move in progress) counts once; ready wins.
                out.entry((e.ip, sp.port)).and_modify(|o| o.ready |= pe.ready).or_insert(pe);
            }
        }
        out.into_values().collect()
    }
}
