//! The record store: an immutable `Snapshot` of every name the cluster zone holds, built
//! from Services, EndpointSlices and Pods by a pure function, and swapped whole when the
//! cluster changes. Records are stored already encoded (type, class, TTL, rdata), so an
//! answer is a hash lookup and a copy.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::RwLock;

use crate::wire::{self, CLASS_IN, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_PTR, TYPE_SOA, TYPE_SRV, TYPE_TXT};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The version the `dns-version` TXT record reports: the version of the Kubernetes DNS
/// specification implemented.
pub const SPEC_VERSION: &str = "1.1.0";

/// What a snapshot is built from, besides the cluster objects.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    pub cluster_domain: String,
    pub ttl: u32,
    pub service_cidr: Option<ipnet::Ipv4Net>,
    /// Whether names outside our zones are forwarded (otherwise they are REFUSED).
    pub forwarding: bool,
}

/// One zone we answer for: its apex and its SOA record (without owner).
pub(crate) struct Zone {
    pub name: Box<[u8]>,
    /// Whether a missing name under this zone is NXDOMAIN (we hold the whole zone) rather
    /// than something to forward.
    pub authoritative: bool,
    /// type, class, TTL, rdlength, rdata of the SOA record.
    pub soa: Box<[u8]>,
}

/// The records of one type at one name, each encoded as type, class, TTL, rdlength and
/// rdata, one after the other, with no owner: the owner is written when answering, as a
/// pointer to the question's name.
pub(crate) struct RrSet {
    pub rtype: u16,
    pub data: Box<[u8]>,
}

pub(crate) struct Node {
    pub zone: u8,
    pub sets: Box<[RrSet]>,
}

/// Every name of the cluster zone and the reverse zones, at one moment.
pub struct Snapshot {
    pub(crate) names: FastMap<Box<[u8]>, Node>,
    pub(crate) zones: Vec<Zone>,
    /// Pod IP to namespace, to know a client's search path (autopath).
    pub(crate) pod_ns: FastMap<IpAddr, Box<str>>,
    pub(crate) forwarding: bool,
    pub(crate) serial: u32,
    pub(crate) ttl: u32,
}

impl Snapshot {
    /// An empty cluster: only the zone apex and `dns-version`.
    pub fn empty(config: &BuildConfig) -> Snapshot {
        Snapshot::build::<Service, EndpointSlice, Pod>(config, 1, &[], &[], &[])
    }

    /// How many names the snapshot holds (empty non-terminals included).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The SOA serial: it changes with every snapshot.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The apexes of the zones we are authoritative for, dotted.
    pub fn zones(&self) -> Vec<String> {
        self.zones.iter().filter(|z| z.authoritative).map(|z| wire::name_to_string(&z.name)).collect()
    }

    /// Every record of the zone `apex` (one of `zones()`) in master-file format (RFC 1035
    /// §5), SOA first, for a reference server to load the same data (the benchmark does).
    pub fn zone_file(&self, apex: &str) -> String {
        let Some(wire_apex) = wire::encode_name(apex) else { return String::new() };
        let Some(zi) = self.zones.iter().position(|z| *z.name == *wire_apex) else { return String::new() };
        let mut owners: Vec<&Box<[u8]>> =
            self.names.iter().filter(|(_, n)| usize::from(n.zone) == zi).map(|(k, _)| k).collect();
        owners.sort_by_key(|o| (o.len(), o.to_vec()));
        let mut out = String::new();
        for owner in owners {
            let Some(node) = self.names.get(owner) else { continue };
            let mut sets: Vec<&RrSet> = node.sets.iter().collect();
            sets.sort_by_key(|s| if s.rtype == TYPE_SOA { 0 } else { u32::from(s.rtype) + 1 });
            for set in sets {
                let d = &set.data;
                let mut pos = 0;
                while pos + 10 <= d.len() {
                    let ttl = u32::from_be_bytes([d[pos + 4], d[pos + 5], d[pos + 6], d[pos + 7]]);
                    let rdlen = usize::from(u16::from_be_bytes([d[pos + 8], d[pos + 9]]));
                    let text = wire::rdata_to_text(set.rtype, d, pos + 10, rdlen);
                    out.push_str(&format!(
                        "{} {ttl} IN {} {text}\n",
                        wire::name_to_string(owner),
                        wire::type_name(set.rtype)
                    ));
                    pos += 10 + rdlen;
                }
            }
        }
        out
    }

    /// Builds the snapshot. Objects that cannot be named (a label over 63 bytes, say) are
    /// skipped rather than failing the whole zone.
    pub fn build<S, E, P>(config: &BuildConfig, serial: u32, services: &[S], slices: &[E], pods: &[P]) -> Snapshot
    where
        S: Borrow<Service>,
        E: Borrow<EndpointSlice>,
        P: Borrow<Pod>,
    {
        let mut b = Builder::new(config, serial);
        let mut slices_by_service: HashMap<(&str, &str), Vec<&EndpointSlice>> = HashMap::new();
        for s in slices {
            let s: &EndpointSlice = s.borrow();
            let ns = s.metadata.namespace.as_deref().unwrap_or_default();
            if let Some(svc) = s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")) {
                slices_by_service.entry((ns, svc.as_str())).or_default().push(s);
            }
        }
        for s in services {
            let s: &Service = s.borrow();
            let ns = s.metadata.namespace.as_deref().unwrap_or_default();
            let name = s.metadata.name.as_deref().unwrap_or_default();
            let found = slices_by_service.get(&(ns, name)).map(Vec::as_slice).unwrap_or_default();
            b.service(s, ns, name, found);
        }
        for p in pods {
            b.pod(p.borrow());
        }
        b.finish()
    }
}

struct Builder<'a> {
    config: &'a BuildConfig,
    serial: u32,
    zone: Vec<u8>,
    records: BTreeMap<Vec<u8>, BTreeMap<u16, Vec<Vec<u8>>>>,
    pod_ns: FastMap<IpAddr, Box<str>>,
}

impl<'a> Builder<'a> {
    fn new(config: &'a BuildConfig, serial: u32) -> Self {
        let zone = wire::encode_name(&config.cluster_domain).unwrap_or_else(|| vec![0]);
        Builder { config, serial, zone, records: BTreeMap::new(), pod_ns: FastMap::default() }
    }

    /// `labels` + the cluster zone, in wire form.
    fn name(&self, dotted: &str) -> Option<Vec<u8>> {
        let mut n = wire::encode_name(dotted)?;
        n.pop();
        n.extend_from_slice(&self.zone);
        (n.len() <= wire::MAX_NAME).then_some(n)
    }

    fn add(&mut self, owner: &[u8], rtype: u16, rdata: Vec<u8>) {
        let set = self.records.entry(owner.to_vec()).or_default().entry(rtype).or_default();
        if !set.contains(&rdata) {
            set.push(rdata);
        }
    }

    fn add_address(&mut self, owner: &[u8], ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.add(owner, TYPE_A, wire::rdata_a(v4)),
            IpAddr::V6(v6) => self.add(owner, TYPE_AAAA, wire::rdata_aaaa(v6)),
        }
    }

    fn add_ptr(&mut self, ip: IpAddr, target: &[u8]) {
        if let Some(owner) = wire::encode_name(&wire::reverse_name(ip)) {
            self.add(&owner, TYPE_PTR, target.to_vec());
        }
    }

    fn service(&mut self, s: &Service, ns: &str, name: &str, slices: &[&EndpointSlice]) {
        let Some(spec) = s.spec.as_ref() else { return };
        let Some(base) = self.name(&format!("{name}.{ns}.svc")) else { return };
        // The name exists whatever it holds, so a query of another type is NODATA.
        self.records.entry(base.clone()).or_default();
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec.external_name.as_deref().and_then(wire::encode_name) {
                self.add(&base, TYPE_CNAME, target);
            }
            return;
        }
        let mut ips: Vec<&str> = spec.cluster_ips.iter().flatten().map(String::as_str).collect();
        if ips.is_empty()
            && let Some(ip) = spec.cluster_ip.as_deref()
        {
            ips.push(ip);
        }
        let headless = ips.first().is_some_and(|ip| *ip == "None");
        if !headless {
            for ip in ips.iter().filter_map(|ip| ip.parse::<IpAddr>().ok()) {
                self.add_address(&base, ip);
                self.add_ptr(ip, &base);
            }
            for port in spec.ports.iter().flatten() {
                let (Some(pname), Ok(number)) = (port.name.as_deref(), u16::try_from(port.port)) else { continue };
                let proto = port.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                if let Some(owner) = self.name(&format!("_{pname}._{proto}.{name}.{ns}.svc")) {
                    self.add(&owner, TYPE_SRV, wire::rdata_srv(0, 100, number, &base));
                }
            }
            return;
        }
        let publish_not_ready = spec.publish_not_ready_addresses == Some(true);
        // Headless: one record per ready endpoint address, and a name per endpoint.
        let mut srv: Vec<(Vec<u8>, u16, Vec<u8>)> = Vec::new();
        for slice in slices {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            for ep in slice.endpoints.iter().flatten() {
                // An unset ready condition means ready (EndpointConditions API doc).
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready && !publish_not_ready {
                    continue;
                }
                for ip in ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                    let host = ep.hostname.clone().unwrap_or_else(|| wire::dashed(ip));
                    let Some(host_name) = self.name(&format!("{host}.{name}.{ns}.svc")) else { continue };
                    self.add_address(&base, ip);
                    self.add_address(&host_name, ip);
                    self.add_ptr(ip, &host_name);
                    for port in slice.ports.iter().flatten() {
                        let (Some(pname), Some(number)) =
                            (port.name.as_deref(), port.port.and_then(|p| u16::try_from(p).ok()))
                        else {
                            continue;
                        };
                        if pname.is_empty() {
                            continue;
                        }
                        let proto = port.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase();
                        if let Some(owner) = self.name(&format!("_{pname}._{proto}.{name}.{ns}.svc")) {
                            srv.push((owner, number, host_name.clone()));
                        }
                    }
                }
            }
        }
        // Weights share 100 between the targets of one port, as CoreDNS does.
        let mut per_owner: BTreeMap<Vec<u8>, Vec<(u16, Vec<u8>)>> = BTreeMap::new();
        for (owner, port, target) in srv {
            let v = per_owner.entry(owner).or_default();
            if !v.contains(&(port, target.clone())) {
                v.push((port, target));
            }
        }
        for (owner, targets) in per_owner {
            let weight = (100 / targets.len()).max(1) as u16;
            for (port, target) in targets {
                self.add(&owner, TYPE_SRV, wire::rdata_srv(0, weight, port, &target));
            }
        }
    }

    fn pod(&mut self, p: &Pod) {
        let ns = p.metadata.namespace.as_deref().unwrap_or_default();
        let Some(status) = p.status.as_ref() else { return };
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            return;
        }
        let mut ips: Vec<IpAddr> =
            status.pod_ips.iter().flatten().filter_map(|i| i.ip.parse().ok()).collect::<Vec<IpAddr>>();
        if ips.is_empty()
            && let Some(ip) = status.pod_ip.as_deref().and_then(|i| i.parse().ok())
        {
            ips.push(ip);
        }
        // A pod in the host network shares its node's address; naming it would be wrong.
        if p.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            return;
        }
        for ip in ips {
            if let Some(owner) = self.name(&format!("{}.{ns}.pod", wire::dashed(ip))) {
                self.add_address(&owner, ip);
            }
            self.pod_ns.insert(ip, ns.into());
        }
    }

    fn finish(mut self) -> Snapshot {
        let ttl = self.config.ttl;
        let apex = self.zone.clone();
        let ns_name = self.name("ns.dns").unwrap_or_else(|| apex.clone());
        let hostmaster = self.name("hostmaster").unwrap_or_else(|| apex.clone());
        if let Some(v) = self.name("dns-version") {
            self.add(&v, TYPE_TXT, wire::rdata_txt(&[SPEC_VERSION]));
        }
        let soa_rdata = wire::rdata_soa(&ns_name, &hostmaster, self.serial, ttl);
        let mut zones = vec![Zone {
            name: apex.clone().into(),
            authoritative: true,
            soa: encode_rr(TYPE_SOA, ttl, &soa_rdata).into(),
        }];
        // The reverse zone of the Service range, rounded out to whole octets, is ours; other
        // reverse names we hold (pod IPs outside it) are answered but not claimed.
        if let Some(cidr) = self.config.service_cidr {
            let octets = usize::from(cidr.prefix_len() / 8);
            let o = cidr.network().octets();
            let labels: Vec<String> = o[..octets].iter().rev().map(u8::to_string).collect();
            let dotted = if labels.is_empty() {
                "in-addr.arpa".to_owned()
            } else {
                format!("{}.in-addr.arpa", labels.join("."))
            };
            if let Some(name) = wire::encode_name(&dotted) {
                zones.push(Zone {
                    name: name.into(),
                    authoritative: true,
                    soa: encode_rr(TYPE_SOA, ttl, &soa_rdata).into(),
                });
            }
        }
        for dotted in ["in-addr.arpa", "ip6.arpa"] {
            if let Some(name) = wire::encode_name(dotted)
                && !zones.iter().any(|z| *z.name == *name)
            {
                zones.push(Zone {
                    name: name.into(),
                    authoritative: false,
                    soa: encode_rr(TYPE_SOA, ttl, &soa_rdata).into(),
                });
            }
        }
        for z in &zones {
            if z.authoritative {
                self.add(&z.name, TYPE_SOA, soa_rdata.clone());
                self.add(&z.name, TYPE_NS, ns_name.clone());
            }
        }
        // Every ancestor of a name, up to its zone's apex, exists (an empty non-terminal), so
        // that `default.svc.cluster.local` is NODATA and not NXDOMAIN.
        let owners: Vec<Vec<u8>> = self.records.keys().cloned().collect();
        for owner in owners {
            let Some(zi) = zone_of(&zones, &owner) else { continue };
            if !zones[zi].authoritative {
                continue;
            }
            let apex_len = zones[zi].name.len();
            let mut pos = 0;
            while owner.len() - pos > apex_len {
                pos += 1 + usize::from(owner[pos]);
                self.records.entry(owner[pos..].to_vec()).or_default();
            }
        }
        let mut names = FastMap::default();
        names.reserve(self.records.len());
        for (owner, sets) in self.records {
            let zone = zone_of(&zones, &owner).unwrap_or(0) as u8;
            let sets = sets
                .into_iter()
                .map(|(rtype, rdatas)| {
                    let mut data = Vec::new();
                    for r in &rdatas {
                        data.extend_from_slice(&encode_rr(rtype, ttl, r));
                    }
                    RrSet { rtype, data: data.into() }
                })
                .collect();
            names.insert(owner.into_boxed_slice(), Node { zone, sets });
        }
        Snapshot { names, zones, pod_ns: self.pod_ns, forwarding: self.config.forwarding, serial: self.serial, ttl }
    }
}

/// The zone a name falls in: the longest apex it ends with, on a label boundary.
pub(crate) fn zone_of(zones: &[Zone], name: &[u8]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, z) in zones.iter().enumerate() {
        if name.len() >= z.name.len()
            && name.ends_with(&z.name)
            && is_label_boundary(name, name.len() - z.name.len())
            && best.is_none_or(|b| zones[b].name.len() < z.name.len())
        {
            best = Some(i);
        }
    }
    best
}

fn is_label_boundary(name: &[u8], at: usize) -> bool {
    let mut pos = 0;
    while pos < at {
        pos += 1 + usize::from(name[pos]);
    }
    pos == at
}

/// type, class IN, TTL, rdlength, rdata.
fn encode_rr(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(10 + rdata.len());
    v.extend_from_slice(&rtype.to_be_bytes());
    v.extend_from_slice(&CLASS_IN.to_be_bytes());
    v.extend_from_slice(&ttl.to_be_bytes());
    v.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    v.extend_from_slice(rdata);
    v
}

/// The current snapshot, shared between the builder and the server threads. Readers keep
/// their own `Arc` and only take the lock when the generation moved, so the hot path
/// touches one atomic per query.
pub struct SnapshotCell {
    generation: AtomicU64,
    current: RwLock<Arc<Snapshot>>,
}

impl SnapshotCell {
    pub fn new(snapshot: Snapshot) -> Arc<SnapshotCell> {
        Arc::new(SnapshotCell { generation: AtomicU64::new(1), current: RwLock::new(Arc::new(snapshot)) })
    }

    /// Publishes a new snapshot; queries see it from their next packet.
    pub fn store(&self, snapshot: Snapshot) {
        *self.current.write() = Arc::new(snapshot);
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.read().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// A reader's view: refreshes its `Arc` when the generation moved.
pub(crate) struct Reader {
    cell: Arc<SnapshotCell>,
    seen: u64,
    snapshot: Arc<Snapshot>,
}

impl Reader {
    pub fn new(cell: Arc<SnapshotCell>) -> Reader {
        let seen = cell.generation();
        let snapshot = cell.load();
        Reader { cell, seen, snapshot }
    }

    pub fn get(&mut self) -> &Snapshot {
        let g = self.cell.generation();
        if g != self.seen {
            self.seen = g;
            self.snapshot = self.cell.load();
        }
        &self.snapshot
    }
}
