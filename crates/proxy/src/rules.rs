//! The pure rule generator: the node's facts and a Service with its endpoints become a
//! [`Fragment`] (the chains, map elements and sets that belong to that Service), and
//! fragments become nft scripts, either the whole table or the delta between two states.
//!
//! Nothing here does I/O. The chain, set and map layout is described in the crate README.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::{PortEndpoint, Protocol, Service, ServiceKey, ServicePort};

/// The packet mark bit that asks the `masquerading` chain to SNAT a connection.
pub const MASQUERADE_MARK: u32 = 0x4000;

/// Everything about the node that the static part of the table depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    pub table: String,
    pub node_name: String,
    pub service_cidr: Ipv4Net,
    pub cluster_cidr: Option<Ipv4Net>,
    pub pod_bridge: Option<String>,
    /// The local podCIDR (the Node's, else the cluster CIDR): sources that are hairpinned.
    pub pod_cidr: Option<Ipv4Net>,
    pub node_ips: Vec<Ipv4Addr>,
    pub local_dns: Option<Ipv4Addr>,
}

/// The maps and sets whose elements belong to Services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MapName {
    ClusterIps,
    ServiceIps,
    ServiceNodeports,
    NoEndpointServices,
    NoEndpointNodeports,
    FirewallIps,
    /// One of `SHARDS` endpoint maps, chosen by a hash of the Service's name.
    Endpoints(u8),
    EndpointChains,
}

/// The `endpoints` map is split in this many maps: nft reads a whole set before it changes
/// one of its elements, so a smaller set makes an endpoint change cheaper (measured: about
/// 20 ms for one map of 300,000 elements).
pub const SHARDS: u8 = 32;

impl MapName {
    pub fn all() -> Vec<MapName> {
        let mut all = vec![
            MapName::ClusterIps,
            MapName::ServiceIps,
            MapName::ServiceNodeports,
            MapName::NoEndpointServices,
            MapName::NoEndpointNodeports,
            MapName::FirewallIps,
            MapName::EndpointChains,
        ];
        all.extend((0..SHARDS).map(MapName::Endpoints));
        all
    }

    pub fn name(self) -> String {
        match self {
            MapName::Endpoints(k) => format!("endpoints-{k}"),
            other => other.static_name().to_string(),
        }
    }

    fn static_name(self) -> &'static str {
        match self {
            MapName::ClusterIps => "cluster-ips",
            MapName::ServiceIps => "service-ips",
            MapName::ServiceNodeports => "service-nodeports",
            MapName::NoEndpointServices => "no-endpoint-services",
            MapName::NoEndpointNodeports => "no-endpoint-nodeports",
            MapName::FirewallIps => "firewall-ips",
            MapName::Endpoints(_) => "endpoints",
            MapName::EndpointChains => "endpoint-chains",
        }
    }

    fn is_set(self) -> bool {
        self == MapName::ClusterIps
    }

    fn declaration(self) -> &'static str {
        match self {
            MapName::ClusterIps => "set cluster-ips { type ipv4_addr; }",
            MapName::ServiceNodeports | MapName::NoEndpointNodeports => "{ type inet_proto . inet_service : verdict; }",
            // Keyed by frontend and the index `pick-N` drew into the connection mark.
            MapName::Endpoints(_) => {
                "{ type ipv4_addr . inet_proto . inet_service . mark : ipv4_addr . inet_service; }"
            }
            MapName::EndpointChains => "{ type ipv4_addr . inet_proto . inet_service . mark : verdict; }",
            _ => "{ type ipv4_addr . inet_proto . inet_service : verdict; }",
        }
    }

    fn kind(self) -> &'static str {
        if self.is_set() { "set" } else { "map" }
    }
}

/// A UDP Service port, remembered so stale conntrack entries can be flushed when its
/// endpoints change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpPort {
    pub ips: Vec<Ipv4Addr>,
    pub port: u16,
    pub node_port: Option<u16>,
    pub endpoints: BTreeSet<Ipv4Addr>,
}

/// Everything one Service contributes to the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fragment {
    /// Chain name → rules, in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// (map, key) → value; the value is empty for set elements.
    pub elements: BTreeMap<(MapName, String), String>,
    /// Shared `pick-N` chains the fragment's elements jump to (created on first use).
    pub picks: BTreeSet<String>,
    /// ClientIP affinity sets: name → timeout in seconds.
    pub affinity_sets: BTreeMap<String, u32>,
    pub udp: Vec<UdpPort>,
    /// healthCheckNodePort and the number of local endpoints it reports.
    pub health: Option<(u16, usize)>,
}

/// Chooses the endpoints traffic may go to: the ready ones, else (kube-proxy's fallback)
/// the serving-and-terminating ones.
fn usable(eps: impl Iterator<Item = PortEndpoint> + Clone) -> Vec<PortEndpoint> {
    let ready: Vec<PortEndpoint> = eps.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() { ready } else { eps.filter(|e| e.fallback).collect() }
}

/// One address (and port) where a Service port is reached, and the endpoints behind it.
struct Frontend {
    /// The `endpoints` map key prefix: "ip . proto . port".
    key: String,
    eps: Vec<PortEndpoint>,
    /// Traffic from outside the cluster arriving here is masqueraded (policy Cluster).
    masquerade: bool,
    /// The chain name suffix for affinity chains: "svc" for the ClusterIP, "ext" otherwise.
    kind: &'static str,
}

/// The endpoint map shard of a Service: FNV-1a of its name, stable across restarts.
pub fn shard(key: &ServiceKey) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.namespace.bytes().chain([b'/']).chain(key.name.bytes()) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h % u32::from(SHARDS)) as u8
}

/// Builds the fragment of one Service. `endpoints` gives the endpoints of each port.
///
/// A Service without ClientIP affinity owns no chain at all, only map elements: its
/// frontends point at a shared `pick-N` chain, which draws a random index below N into the
/// connection's mark, and the shared `dispatch` chain DNATs through the `endpoints` map
/// keyed by destination, port and index. An endpoint change is then a few element updates.
pub fn service_fragment(
    cfg: &RulesConfig,
    svc: &Service,
    endpoints: &dyn Fn(&ServicePort) -> Vec<PortEndpoint>,
) -> Fragment {
    let mut frag = Fragment::default();
    let mut local_ips: BTreeSet<Ipv4Addr> = BTreeSet::new();
    let external_ips: Vec<Ipv4Addr> = svc.external_ips.iter().chain(&svc.load_balancer_ips).copied().collect();
    if let Some(ip) = svc.cluster_ip {
        frag.elements.insert((MapName::ClusterIps, ip.to_string()), String::new());
    }
    for port in &svc.ports {
        let all = endpoints(port);
        let cluster = usable(all.iter().cloned());
        let local = usable(all.iter().filter(|e| e.local).cloned());
        local_ips.extend(local.iter().filter(|e| e.ready).map(|e| e.ip));
        let proto = port.protocol.nft();
        let base = format!("{}/{}/{}/{}", svc.key.namespace, svc.key.name, proto, port.port);
        let is_dns = |ip: Ipv4Addr| cfg.local_dns == Some(ip) && port.port == 53 && port.protocol != Protocol::Sctp;
        let ip_key = |ip: Ipv4Addr| format!("{ip} . {proto} . {}", port.port);
        let service_ips = svc.cluster_ip.into_iter().chain(external_ips.iter().copied());
        if port.protocol == Protocol::Udp {
            frag.udp.push(UdpPort {
                ips: service_ips.clone().collect(),
                port: port.port,
                node_port: port.node_port,
                endpoints: cluster.iter().map(|e| e.ip).collect(),
            });
        }
        if cluster.is_empty() {
            // Nothing can serve: refuse at once instead of letting clients time out.
            for ip in service_ips.filter(|ip| !is_dns(*ip)) {
                frag.elements.insert((MapName::NoEndpointServices, ip_key(ip)), "goto reject-chain".into());
            }
            if let Some(np) = port.node_port {
                frag.elements
                    .insert((MapName::NoEndpointNodeports, format!("{proto} . {np}")), "goto reject-chain".into());
            }
            continue;
        }
        let internal = if svc.internal_local { &local } else { &cluster };
        let external = if svc.external_local { &local } else { &cluster };
        let mut fronts = Vec::new();
        if let Some(ip) = svc.cluster_ip.filter(|ip| !is_dns(*ip)) {
            fronts.push((Frontend { key: ip_key(ip), eps: internal.clone(), masquerade: false, kind: "svc" }, true));
        }
        for ip in external_ips.iter().copied().filter(|ip| !is_dns(*ip)) {
            let masquerade = !svc.external_local;
            fronts.push((Frontend { key: ip_key(ip), eps: external.clone(), masquerade, kind: "ext" }, true));
        }
        if let Some(np) = port.node_port {
            for ip in &cfg.node_ips {
                let key = format!("{ip} . {proto} . {np}");
                let masquerade = !svc.external_local;
                fronts.push((Frontend { key, eps: external.clone(), masquerade, kind: "ext" }, false));
            }
        }
        let k = shard(&svc.key);
        for (front, by_ip) in &fronts {
            let verdict = frontend(&mut frag, &base, k, port.protocol, front, svc.affinity_timeout);
            if *by_ip {
                frag.elements.insert((MapName::ServiceIps, front.key.clone()), verdict);
            } else if let Some(np) = port.node_port {
                frag.elements.insert((MapName::ServiceNodeports, format!("{proto} . {np}")), verdict);
            }
        }
        if !svc.load_balancer_source_ranges.is_empty() && !svc.load_balancer_ips.is_empty() {
            let fw_chain = format!("fw/{base}");
            let ranges: Vec<String> = svc.load_balancer_source_ranges.iter().map(|r| r.to_string()).collect();
            frag.chains.insert(fw_chain.clone(), vec![format!("ip saddr != {{ {} }} drop", ranges.join(", "))]);
            for ip in &svc.load_balancer_ips {
                frag.elements.insert((MapName::FirewallIps, ip_key(*ip)), format!("goto {fw_chain}"));
            }
        }
    }
    if let Some(port) = svc.health_check_node_port {
        frag.health = Some((port, local_ips.len()));
    }
    frag
}

/// Adds the elements (and, with affinity, the chains) that send traffic arriving at
/// `front` to one of its endpoints, and returns the verdict that starts it.
fn frontend(
    frag: &mut Fragment,
    base: &str,
    shard: u8,
    proto: Protocol,
    front: &Frontend,
    affinity: Option<u32>,
) -> String {
    let n = front.eps.len();
    if n == 0 {
        // Only possible under a Local traffic policy: kube-proxy drops such traffic.
        return "drop".into();
    }
    let Some(timeout) = affinity else {
        for (i, e) in front.eps.iter().enumerate() {
            frag.elements
                .insert((MapName::Endpoints(shard), format!("{} . {i}", front.key)), format!("{} . {}", e.ip, e.port));
        }
        let pick = if front.masquerade { format!("ext-pick-{n}-{shard}") } else { format!("pick-{n}-{shard}") };
        let verdict = format!("goto {pick}");
        frag.picks.insert(pick);
        return verdict;
    };
    // ClientIP affinity: a chain per endpoint records the client in a timed set, and the
    // Service's chain sends a client found in one of those sets back to the same endpoint.
    let chain = format!("{}/{base}/{}", front.kind, if front.masquerade { "masq" } else { "direct" });
    let mut rules = Vec::new();
    if front.masquerade {
        rules.push("jump mark-for-masquerade".to_string());
    }
    for (i, e) in front.eps.iter().enumerate() {
        let ep_chain = format!("ep/{base}/{}/{}", e.ip, e.port);
        // The timeout is part of the set's name: a new timeout makes a new set, and the old
        // one is deleted once the chains that use it are refilled.
        let set = format!("aff/{base}/{}/{}/{timeout}", e.ip, e.port);
        frag.affinity_sets.insert(set.clone(), timeout);
        frag.chains.insert(
            ep_chain.clone(),
            vec![
                format!("update @{set} {{ ip saddr }}"),
                format!("meta l4proto {} dnat to {}:{}", proto.nft(), e.ip, e.port),
            ],
        );
        rules.push(format!("ip saddr @{set} goto {ep_chain}"));
        frag.elements.insert((MapName::EndpointChains, format!("{} . {i}", front.key)), format!("goto {ep_chain}"));
    }
    rules.push(format!("ct mark set numgen random mod {n} goto dispatch-affinity"));
    frag.chains.insert(chain.clone(), rules);
    format!("goto {chain}")
}

/// The rules of a shared `pick-N-K` or `ext-pick-N-K` chain (N endpoints, shard K).
fn pick_rules(name: &str) -> Vec<String> {
    let (masq, rest) = match name.strip_prefix("ext-pick-") {
        Some(rest) => (true, rest),
        None => (false, name.trim_start_matches("pick-")),
    };
    let (n, k) = rest.split_once('-').unwrap_or((rest, "0"));
    let mut rules = Vec::new();
    if masq {
        rules.push("jump mark-for-masquerade".to_string());
    }
    rules.push(format!("ct mark set numgen random mod {n} goto dispatch-{k}"));
    rules
}

/// A chain of the static part: name, base-chain declaration (hook and priority) if any, rules.
struct StaticChain {
    name: String,
    hook: Option<&'static str>,
    rules: Vec<String>,
}

fn static_chains(cfg: &RulesConfig) -> Vec<StaticChain> {
    let mut out = Vec::new();
    let chain = |name: &str, hook, rules: Vec<String>| StaticChain { name: name.to_string(), hook, rules };
    if let Some(dns) = cfg.local_dns {
        // The node-local DNS server answers on the kube-dns ClusterIP itself: its traffic is
        // neither DNATed nor tracked, so a flood of queries cannot fill the conntrack table.
        let to = |p: &str| format!("ip daddr {dns} {p} dport 53 notrack");
        let from = |p: &str| format!("ip saddr {dns} {p} sport 53 notrack");
        out.push(chain("raw-prerouting", Some("type filter hook prerouting priority raw"), vec![to("udp"), to("tcp")]));
        out.push(chain(
            "raw-output",
            Some("type filter hook output priority raw"),
            vec![to("udp"), to("tcp"), from("udp"), from("tcp")],
        ));
    }
    // nft 1.0 accepts the `dstnat` priority keyword only on prerouting: output spells it -100.
    let checks = || vec!["ct state new jump firewall-check".to_string(), "ct state new jump endpoints-check".into()];
    out.push(chain("filter-prerouting", Some("type filter hook prerouting priority dstnat - 10"), checks()));
    out.push(chain("filter-output", Some("type filter hook output priority -110"), checks()));
    let post = || vec!["ct state new jump cluster-ips-check".to_string()];
    out.push(chain("filter-prerouting-post-dnat", Some("type filter hook prerouting priority dstnat + 10"), post()));
    out.push(chain("filter-output-post-dnat", Some("type filter hook output priority -90"), post()));
    out.push(chain("nat-prerouting", Some("type nat hook prerouting priority dstnat"), vec!["jump services".into()]));
    out.push(chain("nat-output", Some("type nat hook output priority -100"), vec!["jump services".into()]));
    out.push(chain(
        "nat-postrouting",
        Some("type nat hook postrouting priority srcnat"),
        vec!["jump masquerading".into()],
    ));
    out.push(chain("firewall-check", None, vec!["ip daddr . meta l4proto . th dport vmap @firewall-ips".into()]));
    out.push(chain(
        "endpoints-check",
        None,
        vec![
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into(),
            "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports".into(),
        ],
    ));
    out.push(chain(
        "cluster-ips-check",
        None,
        vec!["ip daddr @cluster-ips reject".into(), format!("ip daddr {} drop", cfg.service_cidr)],
    ));
    let mut services = Vec::new();
    if let Some(cc) = cfg.cluster_cidr {
        services.push(format!("ip daddr @cluster-ips ip saddr != {cc} jump mark-for-masquerade"));
    }
    services.push("ip daddr . meta l4proto . th dport vmap @service-ips".into());
    services.push("ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports".into());
    out.push(chain("services", None, services));
    out.push(chain("mark-for-masquerade", None, vec![format!("meta mark set meta mark | {MASQUERADE_MARK:#x}")]));
    let mut masq = Vec::new();
    if let (Some(bridge), Some(cidr)) = (&cfg.pod_bridge, cfg.pod_cidr) {
        // br_netfilter is off, so a local pod answering a local pod would reply across the
        // bridge and skip the un-DNAT: make the node the source so the reply comes back to it.
        masq.push(format!("ct status dnat ip saddr {cidr} oifname \"{bridge}\" masquerade"));
    }
    masq.push(format!("meta mark & {MASQUERADE_MARK:#x} == 0 return"));
    masq.push(format!("meta mark set meta mark ^ {MASQUERADE_MARK:#x}"));
    masq.push("masquerade fully-random".into());
    out.push(chain("masquerading", None, masq));
    out.push(chain("reject-chain", None, vec!["reject".into()]));
    for k in 0..SHARDS {
        let dispatch: Vec<String> = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp]
            .iter()
            .map(|p| {
                format!(
                    "meta l4proto {} dnat ip addr . port to ip daddr . meta l4proto . th dport . ct mark map @endpoints-{k}",
                    p.nft()
                )
            })
            .collect();
        out.push(chain(&format!("dispatch-{k}"), None, dispatch));
    }
    out.push(chain(
        "dispatch-affinity",
        None,
        vec!["ip daddr . meta l4proto . th dport . ct mark vmap @endpoint-chains".into()],
    ));
    out
}

/// A full-sync script: the whole table, written over whatever is there in one transaction.
/// Rules and non-affinity elements are flushed and rewritten; chains and affinity sets the
/// kernel has but the new state lacks (`stale_chains`, `stale_sets`) are deleted.
pub fn full_script<'a>(
    cfg: &RulesConfig,
    fragments: impl Iterator<Item = &'a Fragment> + Clone,
    stale_chains: &[String],
    stale_sets: &[String],
) -> String {
    let t = &cfg.table;
    let mut s = String::with_capacity(1 << 16);
    let _ = writeln!(s, "add table ip {t}");
    let _ = writeln!(s, "flush table ip {t}");
    let _ = writeln!(s, "add set ip {t} nodeport-ips {{ type ipv4_addr; }}");
    let _ = writeln!(s, "flush set ip {t} nodeport-ips");
    for m in MapName::all() {
        let decl = m.declaration().trim_start_matches("set cluster-ips ");
        let _ = writeln!(s, "add {} ip {t} {} {decl}", m.kind(), m.name());
        let _ = writeln!(s, "flush {} ip {t} {}", m.kind(), m.name());
    }
    for frag in fragments.clone() {
        for (set, timeout) in &frag.affinity_sets {
            add_affinity_set(&mut s, t, set, *timeout);
        }
    }
    let statics = static_chains(cfg);
    for c in &statics {
        match c.hook {
            Some(hook) => {
                let _ = writeln!(s, "add chain ip {t} {} {{ {hook}; policy accept; }}", c.name);
            }
            None => {
                let _ = writeln!(s, "add chain ip {t} {}", c.name);
            }
        }
    }
    let picks: BTreeSet<&String> = fragments.clone().flat_map(|f| f.picks.iter()).collect();
    for name in &picks {
        let _ = writeln!(s, "add chain ip {t} {name}");
    }
    for frag in fragments.clone() {
        for name in frag.chains.keys() {
            let _ = writeln!(s, "add chain ip {t} {name}");
        }
    }
    for c in &statics {
        for r in &c.rules {
            let _ = writeln!(s, "add rule ip {t} {} {r}", c.name);
        }
    }
    for name in &picks {
        for r in pick_rules(name) {
            let _ = writeln!(s, "add rule ip {t} {name} {r}");
        }
    }
    for frag in fragments.clone() {
        for (name, rules) in &frag.chains {
            for r in rules {
                let _ = writeln!(s, "add rule ip {t} {name} {r}");
            }
        }
    }
    if !cfg.node_ips.is_empty() {
        let ips: Vec<String> = cfg.node_ips.iter().map(|i| i.to_string()).collect();
        let _ = writeln!(s, "add element ip {t} nodeport-ips {{ {} }}", ips.join(", "));
    }
    let mut by_map: BTreeMap<MapName, Vec<String>> = BTreeMap::new();
    for frag in fragments {
        for ((m, k), v) in &frag.elements {
            by_map.entry(*m).or_default().push(element(*m, k, v));
        }
    }
    for (m, elems) in &by_map {
        write_elements(&mut s, "add", t, *m, elems);
    }
    for c in stale_chains {
        let _ = writeln!(s, "delete chain ip {t} {c}");
    }
    for set in stale_sets {
        let _ = writeln!(s, "delete set ip {t} {set}");
    }
    s
}

fn add_affinity_set(s: &mut String, t: &str, set: &str, timeout: u32) {
    let _ = writeln!(s, "add set ip {t} {set} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}");
}

fn element(m: MapName, k: &str, v: &str) -> String {
    if m.is_set() { k.to_string() } else { format!("{k} : {v}") }
}

/// Writes elements in statements of at most 1,000, which nft parses fastest.
fn write_elements(s: &mut String, verb: &str, t: &str, m: MapName, elems: &[String]) {
    for chunk in elems.chunks(1000) {
        let _ = writeln!(s, "{verb} element ip {t} {} {{ {} }}", m.name(), chunk.join(", "));
    }
}

/// The names of every chain and set the state has, static part included, for finding what
/// the kernel holds that it should not.
pub fn expected_names<'a>(
    cfg: &RulesConfig,
    fragments: impl Iterator<Item = &'a Fragment>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut chains: BTreeSet<String> = static_chains(cfg).into_iter().map(|c| c.name).collect();
    let mut sets: BTreeSet<String> = MapName::all().iter().map(|m| m.name()).collect();
    sets.insert("nodeport-ips".into());
    for f in fragments {
        chains.extend(f.chains.keys().cloned());
        chains.extend(f.picks.iter().cloned());
        sets.extend(f.affinity_sets.keys().cloned());
    }
    (chains, sets)
}

/// One Service's change: its fragment before and after (`None`: absent).
pub struct Change<'a> {
    pub key: &'a ServiceKey,
    pub old: Option<&'a Fragment>,
    pub new: Option<&'a Fragment>,
}

/// A delta script that turns the old fragments of the changed Services into the new ones,
/// touching nothing else: new sets and chains are added, changed chains are flushed and
/// refilled, changed elements are deleted and re-added, and what is gone is deleted last,
/// once nothing refers to it. It is one transaction, so no packet sees a half-done state.
///
/// `picks` holds the shared `pick-N` chains the table has; new ones are created (and added to
/// it) here. They are tiny and never deleted by a delta; a full sync drops unused ones.
pub fn delta_script(table: &str, changes: &[Change<'_>], picks: &mut BTreeSet<String>) -> String {
    let t = table;
    let empty = Fragment::default();
    let mut s = String::new();
    for c in changes {
        for name in c.new.iter().flat_map(|f| f.picks.iter()) {
            if picks.insert(name.clone()) {
                let _ = writeln!(s, "add chain ip {t} {name}");
                for r in pick_rules(name) {
                    let _ = writeln!(s, "add rule ip {t} {name} {r}");
                }
            }
        }
    }
    let mut dels: BTreeMap<MapName, Vec<String>> = BTreeMap::new();
    let mut adds: BTreeMap<MapName, Vec<String>> = BTreeMap::new();
    let mut gone_chains = Vec::new();
    let mut gone_sets = Vec::new();
    for c in changes {
        let old = c.old.unwrap_or(&empty);
        let new = c.new.unwrap_or(&empty);
        for (set, timeout) in &new.affinity_sets {
            if !old.affinity_sets.contains_key(set) {
                add_affinity_set(&mut s, t, set, *timeout);
            }
        }
        for name in new.chains.keys().filter(|n| !old.chains.contains_key(*n)) {
            let _ = writeln!(s, "add chain ip {t} {name}");
        }
        for (m, k) in old.elements.keys() {
            let v = &old.elements[&(*m, k.clone())];
            if new.elements.get(&(*m, k.clone())) != Some(v) {
                dels.entry(*m).or_default().push(k.clone());
            }
        }
        for ((m, k), v) in &new.elements {
            if old.elements.get(&(*m, k.clone())) != Some(v) {
                adds.entry(*m).or_default().push(element(*m, k, v));
            }
        }
        for name in old.chains.keys().filter(|n| !new.chains.contains_key(*n)) {
            gone_chains.push(name.clone());
        }
        for set in old.affinity_sets.keys().filter(|n| !new.affinity_sets.contains_key(*n)) {
            gone_sets.push(set.clone());
        }
    }
    // Elements go first so that no map points at a chain about to be flushed or deleted.
    for (m, keys) in &dels {
        write_elements(&mut s, "delete", t, *m, keys);
    }
    for c in changes {
        let old = c.old.unwrap_or(&empty);
        let new = c.new.unwrap_or(&empty);
        for (name, rules) in &new.chains {
            match old.chains.get(name) {
                Some(o) if o == rules => continue,
                Some(_) => {
                    let _ = writeln!(s, "flush chain ip {t} {name}");
                }
                None => {}
            }
            for r in rules {
                let _ = writeln!(s, "add rule ip {t} {name} {r}");
            }
        }
    }
    // Chains are emptied before any is deleted: a chain still jumped to cannot be deleted.
    for name in &gone_chains {
        let _ = writeln!(s, "flush chain ip {t} {name}");
    }
    for name in &gone_chains {
        let _ = writeln!(s, "delete chain ip {t} {name}");
    }
    for set in &gone_sets {
        let _ = writeln!(s, "delete set ip {t} {set}");
    }
    for (m, elems) in &adds {
        write_elements(&mut s, "add", t, *m, elems);
    }
    s
}
