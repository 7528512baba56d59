//! Service ClusterIP and NodePort allocation, in the store.
//!
//! Each allocated IP or port is one key, `/allocations/serviceips/<ip>` or
//! `/allocations/nodeports/<port>`, whose value names the owning Service. Allocating is a
//! store `create`, so two concurrent creates can never get the same IP or port, whatever the
//! in-memory hints say. Keys live outside `/registry/` because they are not API objects.
//!
//! A crash between allocating and storing the Service (or between deleting a Service and
//! releasing) leaves a leak. [`Allocators::repair`] is level-driven and idempotent, like
//! upstream's `controller/repair.go`: it re-creates records that running Services need and
//! frees a record only after it has seen it unowned [`LEAK_SIGHTINGS`] times in a row.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rkube_store::{ListOptions, Store};
use serde_json::{Value, json};

use crate::error::{ApiError, FieldError, Target};
use crate::meta;

const IP_PREFIX: &str = "/allocations/serviceips/";
const PORT_PREFIX: &str = "/allocations/nodeports/";
/// How many repair passes must see a record unowned before it is freed.
pub const LEAK_SIGHTINGS: u32 = 3;

/// An IPv4 CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub base: Ipv4Addr,
    pub bits: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, bits) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        if !(8..=30).contains(&bits) {
            return None;
        }
        let mask = u32::MAX << (32 - bits);
        Some(Cidr { base: Ipv4Addr::from(u32::from(ip) & mask), bits })
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.bits)
    }

    /// The `n`th usable address (1-based: the network address is never handed out).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        (n >= 1 && n < self.size() - 1).then(|| Ipv4Addr::from(u32::from(self.base) + n))
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let off = u32::from(ip).checked_sub(u32::from(self.base))?;
        (off >= 1 && off < self.size() - 1).then_some(off)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.bits)
    }
}

#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub cidr: Cidr,
    pub node_ports: (u16, u16),
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        // Upstream's defaults: a /12 for Services, and the 30000-32767 NodePort range.
        ServiceConfig { cidr: Cidr { base: Ipv4Addr::new(10, 96, 0, 0), bits: 12 }, node_ports: (30000, 32767) }
    }
}

pub struct Allocators {
    store: Arc<dyn Store>,
    pub config: ServiceConfig,
    /// Hints of what is taken, to avoid trying known-taken values; the store decides.
    taken_ips: Mutex<HashSet<u32>>,
    taken_ports: Mutex<HashSet<u16>>,
    cursor: Mutex<(u32, u16)>,
    /// Records seen unowned by consecutive repair passes.
    sightings: Mutex<HashMap<String, u32>>,
}

/// What a service holds: its IP and node ports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Holdings {
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<u16>,
}

pub fn holdings(svc: &Value) -> Holdings {
    let ip = svc["spec"]["clusterIP"].as_str().and_then(|s| s.parse().ok());
    let ports = svc["spec"]["ports"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["nodePort"].as_u64()).filter_map(|p| u16::try_from(p).ok()).collect())
        .unwrap_or_default();
    Holdings { ip, ports }
}

fn owner_of(svc: &Value) -> String {
    format!("{}/{}", meta::namespace(svc).unwrap_or(""), meta::name(svc))
}

fn invalid(name: &str, field: &str, value: Value, detail: &str) -> ApiError {
    ApiError::invalid(Target::new("", "services", name), "Service", vec![FieldError::invalid(field, &value, detail)])
}

impl Allocators {
    pub async fn new(store: Arc<dyn Store>, config: ServiceConfig) -> Result<Arc<Allocators>, ApiError> {
        let a = Arc::new(Allocators {
            store,
            config,
            taken_ips: Mutex::new(HashSet::new()),
            taken_ports: Mutex::new(HashSet::new()),
            cursor: Mutex::new((0, 0)),
            sightings: Mutex::new(HashMap::new()),
        });
        a.reload_hints().await?;
        Ok(a)
    }

    async fn reload_hints(&self) -> Result<(), ApiError> {
        let ips = self.store.list(IP_PREFIX, ListOptions::default()).await?;
        let ports = self.store.list(PORT_PREFIX, ListOptions::default()).await?;
        *self.taken_ips.lock() = ips
            .items
            .iter()
            .filter_map(|kv| kv.key.strip_prefix(IP_PREFIX)?.parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .collect();
        *self.taken_ports.lock() =
            ports.items.iter().filter_map(|kv| kv.key.strip_prefix(PORT_PREFIX)?.parse::<u16>().ok()).collect();
        Ok(())
    }

    async fn claim(&self, key: String, owner: &str) -> Result<bool, ApiError> {
        match self.store.create(&key, Bytes::from(json!({"owner": owner}).to_string())).await {
            Ok(_) => Ok(true),
            Err(rkube_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Allocates `requested`, or the next free IP.
    pub async fn allocate_ip(&self, owner: &str, requested: Option<Ipv4Addr>) -> Result<Ipv4Addr, ApiError> {
        let svc = owner.rsplit('/').next().unwrap_or(owner);
        let cidr = self.config.cidr;
        if let Some(ip) = requested {
            if cidr.offset(ip).is_none() {
                return Err(invalid(
                    svc,
                    "spec.clusterIPs",
                    Value::from(vec![ip.to_string()]),
                    &format!(
                        "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {cidr}"
                    ),
                ));
            }
            if !self.claim(format!("{IP_PREFIX}{ip}"), owner).await? {
                return Err(invalid(
                    svc,
                    "spec.clusterIPs",
                    Value::from(vec![ip.to_string()]),
                    &format!("failed to allocate IP {ip}: provided IP is already allocated"),
                ));
            }
            self.taken_ips.lock().insert(u32::from(ip));
            return Ok(ip);
        }
        let usable = cidr.size() - 2;
        let start = {
            let mut c = self.cursor.lock();
            c.0 = c.0 % usable + 1;
            c.0
        };
        for step in 0..usable {
            let n = (start - 1 + step) % usable + 1;
            let Some(ip) = cidr.nth(n) else { continue };
            // Upstream reserves the lower band for requested addresses; skip the first
            // sixteen so `kubernetes` (.1) and `kube-dns` (.10) stay where users expect them.
            if n <= 16 && usable > 64 {
                continue;
            }
            if self.taken_ips.lock().contains(&u32::from(ip)) {
                continue;
            }
            if self.claim(format!("{IP_PREFIX}{ip}"), owner).await? {
                self.taken_ips.lock().insert(u32::from(ip));
                self.cursor.lock().0 = n;
                return Ok(ip);
            }
            self.taken_ips.lock().insert(u32::from(ip));
        }
        Err(invalid(
            svc,
            "spec.clusterIPs",
            Value::Null,
            &format!("failed to allocate a serviceIP: range {cidr} is full"),
        ))
    }

    /// Allocates `requested`, or the next free node port.
    pub async fn allocate_port(&self, owner: &str, field: &str, requested: Option<u16>) -> Result<u16, ApiError> {
        let svc = owner.rsplit('/').next().unwrap_or(owner);
        let (lo, hi) = self.config.node_ports;
        if let Some(port) = requested {
            if !(lo..=hi).contains(&port) {
                return Err(invalid(
                    svc,
                    field,
                    Value::from(port),
                    &format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}"),
                ));
            }
            if !self.claim(format!("{PORT_PREFIX}{port}"), owner).await? {
                return Err(invalid(svc, field, Value::from(port), "provided port is already allocated"));
            }
            self.taken_ports.lock().insert(port);
            return Ok(port);
        }
        let span = u32::from(hi - lo) + 1;
        let start = {
            let mut c = self.cursor.lock();
            c.1 = ((u32::from(c.1) + 1) % span) as u16;
            c.1
        };
        for step in 0..span {
            let port = lo + ((u32::from(start) + step) % span) as u16;
            if self.taken_ports.lock().contains(&port) {
                continue;
            }
            if self.claim(format!("{PORT_PREFIX}{port}"), owner).await? {
                self.taken_ports.lock().insert(port);
                return Ok(port);
            }
            self.taken_ports.lock().insert(port);
        }
        Err(invalid(svc, field, Value::Null, &format!("failed to allocate a nodePort: range {lo}-{hi} is full")))
    }

    pub async fn release(&self, h: &Holdings) {
        if let Some(ip) = h.ip
            && self.store.delete(&format!("{IP_PREFIX}{ip}"), None).await.is_ok()
        {
            self.taken_ips.lock().remove(&u32::from(ip));
        }
        for port in &h.ports {
            if self.store.delete(&format!("{PORT_PREFIX}{port}"), None).await.is_ok() {
                self.taken_ports.lock().remove(port);
            }
        }
    }

    /// Fills in a new Service's IP fields and node ports. Returns what was allocated, so the
    /// caller can release it if the Service is not stored after all.
    pub async fn admit_create(&self, svc: &mut Value) -> Result<Holdings, ApiError> {
        let mut got = Holdings::default();
        let result = self.admit(svc, None, &mut got).await;
        if let Err(e) = result {
            self.release(&got).await;
            return Err(e);
        }
        Ok(got)
    }

    /// Carries a Service's allocations across an update and allocates what a type change
    /// needs. Returns (newly allocated, no longer held) holdings.
    pub async fn admit_update(&self, svc: &mut Value, old: &Value) -> Result<(Holdings, Holdings), ApiError> {
        let mut got = Holdings::default();
        if let Err(e) = self.admit(svc, Some(old), &mut got).await {
            self.release(&got).await;
            return Err(e);
        }
        let before = holdings(old);
        let after = holdings(svc);
        let dropped = Holdings {
            ip: before.ip.filter(|ip| after.ip != Some(*ip)),
            ports: before.ports.iter().copied().filter(|p| !after.ports.contains(p)).collect(),
        };
        Ok((got, dropped))
    }

    async fn admit(&self, svc: &mut Value, old: Option<&Value>, got: &mut Holdings) -> Result<(), ApiError> {
        let owner = owner_of(svc);
        let name = meta::name(svc).to_owned();
        let ty = svc["spec"]["type"].as_str().unwrap_or("ClusterIP").to_owned();
        let spec = svc
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ApiError::bad_request("spec is required"))?;
        if ty == "ExternalName" {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
            return Ok(());
        }
        // An update that leaves the IP out keeps the old one: it may not change anyway.
        if let Some(old) = old {
            let old_ip = old["spec"]["clusterIP"].as_str().unwrap_or("");
            if !old_ip.is_empty() && spec.get("clusterIP").and_then(Value::as_str).unwrap_or("").is_empty() {
                spec.insert("clusterIP".into(), Value::from(old_ip));
                spec.insert("clusterIPs".into(), old["spec"]["clusterIPs"].clone());
            }
        }
        let requested = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("").to_owned();
        let requested = if requested.is_empty() {
            spec.get("clusterIPs").and_then(|v| v[0].as_str()).unwrap_or("").to_owned()
        } else {
            requested
        };
        let old_ip = old.and_then(|o| o["spec"]["clusterIP"].as_str()).unwrap_or("");
        if requested == "None" {
            spec.insert("clusterIP".into(), Value::from("None"));
            spec.insert("clusterIPs".into(), json!(["None"]));
        } else if !requested.is_empty() && requested == old_ip {
            // Already held.
        } else if old.is_some() && !old_ip.is_empty() {
            // Changing the IP is refused by validation; leave it for validation to report.
        } else {
            let req_ip = if requested.is_empty() {
                None
            } else {
                Some(requested.parse::<Ipv4Addr>().map_err(|_| {
                    invalid(
                        &name,
                        "spec.clusterIPs[0]",
                        Value::from(requested.as_str()),
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )
                })?)
            };
            let ip = self.allocate_ip(&owner, req_ip).await?;
            got.ip = Some(ip);
            spec.insert("clusterIP".into(), Value::from(ip.to_string()));
            spec.insert("clusterIPs".into(), json!([ip.to_string()]));
        }
        spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
        spec.entry("ipFamilyPolicy").or_insert_with(|| json!("SingleStack"));

        let wants_node_ports = ty == "NodePort"
            || (ty == "LoadBalancer"
                && spec.get("allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false));
        let old_ports: HashMap<(i64, String), u16> = old
            .and_then(|o| o["spec"]["ports"].as_array())
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| {
                        let np = u16::try_from(p["nodePort"].as_u64()?).ok()?;
                        Some(((p["port"].as_i64()?, p["protocol"].as_str().unwrap_or("TCP").to_owned()), np))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let old_held: HashSet<u16> = old_ports.values().copied().collect();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            let mut claimed: HashMap<u16, ()> = HashMap::new();
            for (i, p) in ports.iter_mut().enumerate() {
                let Some(pm) = p.as_object_mut() else { continue };
                if !wants_node_ports {
                    pm.remove("nodePort");
                    continue;
                }
                let field = format!("spec.ports[{i}].nodePort");
                let key = (
                    pm.get("port").and_then(Value::as_i64).unwrap_or(0),
                    pm.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_owned(),
                );
                let requested =
                    pm.get("nodePort").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0);
                let port = match requested {
                    // Kept across the update (including NodePort → LoadBalancer).
                    Some(n) if old_held.contains(&n) => n,
                    // A port shared by TCP and UDP entries of one Service is one allocation.
                    Some(n) if claimed.contains_key(&n) => n,
                    Some(n) => {
                        let n = self.allocate_port(&owner, &field, Some(n)).await?;
                        got.ports.push(n);
                        n
                    }
                    None => match old_ports.get(&key) {
                        Some(n) => *n,
                        None => {
                            let n = self.allocate_port(&owner, &field, None).await?;
                            got.ports.push(n);
                            n
                        }
                    },
                };
                claimed.insert(port, ());
                pm.insert("nodePort".into(), Value::from(port));
            }
        }
        Ok(())
    }

    /// How many IPs and node ports are allocated, for `/metrics`.
    pub fn allocated(&self) -> (usize, usize) {
        (self.taken_ips.lock().len(), self.taken_ports.lock().len())
    }

    /// One pass of the repair loop: `services` is every Service that exists.
    pub async fn repair(&self, services: &[Arc<Value>]) -> Result<RepairReport, ApiError> {
        let mut wanted_ips: HashMap<String, String> = HashMap::new();
        let mut wanted_ports: HashMap<String, String> = HashMap::new();
        for svc in services {
            let h = holdings(svc);
            let owner = owner_of(svc);
            if let Some(ip) = h.ip {
                wanted_ips.insert(format!("{IP_PREFIX}{ip}"), owner.clone());
            }
            for p in h.ports {
                wanted_ports.insert(format!("{PORT_PREFIX}{p}"), owner.clone());
            }
        }
        let mut report = RepairReport::default();
        for (prefix, wanted) in [(IP_PREFIX, &wanted_ips), (PORT_PREFIX, &wanted_ports)] {
            let existing = self.store.list(prefix, ListOptions::default()).await?;
            let present: HashSet<&str> = existing.items.iter().map(|kv| kv.key.as_str()).collect();
            // Records that running Services need but that are missing: re-create them.
            for (key, owner) in wanted.iter() {
                if !present.contains(key.as_str()) && self.claim(key.clone(), owner).await? {
                    report.restored += 1;
                }
            }
            let mut sightings = self.sightings.lock();
            for kv in &existing.items {
                if wanted.contains_key(&kv.key) {
                    sightings.remove(&kv.key);
                    continue;
                }
                let n = sightings.entry(kv.key.clone()).or_insert(0);
                *n += 1;
                if *n >= LEAK_SIGHTINGS {
                    report.to_free.push(kv.key.clone());
                }
            }
        }
        for key in &report.to_free {
            if self.store.delete(key, None).await.is_ok() {
                self.sightings.lock().remove(key);
                report.freed += 1;
            }
        }
        self.reload_hints().await?;
        Ok(report)
    }
}

#[derive(Debug, Default)]
pub struct RepairReport {
    pub restored: usize,
    pub freed: usize,
    to_free: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.96.0.0/12").expect("cidr");
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 96, 0, 1)));
        assert_eq!(c.nth(10), Some(Ipv4Addr::new(10, 96, 0, 10)));
        assert_eq!(c.offset(Ipv4Addr::new(10, 111, 255, 254)), Some((1 << 20) - 2));
        assert_eq!(c.offset(Ipv4Addr::new(10, 112, 0, 0)), None);
        assert_eq!(c.offset(Ipv4Addr::new(10, 96, 0, 0)), None, "the network address is not usable");
        assert!(Cidr::parse("10.96.0.0/33").is_none());
        assert_eq!(Cidr::parse("10.96.3.4/16").map(|c| c.base), Some(Ipv4Addr::new(10, 96, 0, 0)));
    }
}
