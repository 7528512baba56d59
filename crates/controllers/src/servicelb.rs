//! The LoadBalancer controller (`servicelb`): gives Services of type LoadBalancer an ingress
//! IP from a configured pool, for clusters without a cloud.
//!
//! It plays the part of a cloud provider's service controller, but only for addresses: it
//! writes `status.loadBalancer.ingress[{ip, ipMode: VIP}]` and nothing else. Making the
//! address reachable is the job of the speaker in every agent (`rkube_agent::servicelb`),
//! which announces each IP from one node, and of the service proxy, which already DNATs
//! traffic for ingress IPs to the Service's endpoints.
//!
//! Services with a `spec.loadBalancerClass` belong to another implementation and are left
//! alone, as upstream's rule for the default implementation. `spec.loadBalancerIP`
//! (deprecated upstream, still honoured by MetalLB and k3s' servicelb) asks for a given
//! address; it is given when it is in the pool and free, and the Service stays pending
//! otherwise.
//!
//! # Allocation state
//!
//! The allocation table lives in memory: at start it is rebuilt from the ingress IPs that
//! Services already carry (oldest Service first, so that of two Services claiming one
//! address the older keeps it), and each sync updates it before it writes. The table, not
//! the informer's cache, is what a sync consults, because the cache lags behind this
//! controller's own writes and two Services synced in a row could otherwise get the same
//! address. A Service that is deleted or stops being a LoadBalancer releases its address,
//! and the Services still waiting for one are synced again.
//!
//! The decision for one Service is the pure function [`decide`]; [`ServiceLbController`]
//! only applies it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service, ServiceStatus};
use kube::Api;
use kube::api::PostParams;
use parking_lot::Mutex;

use crate::events::{EventType, Recorder};
use crate::informer::{Cache, Change};
use crate::meta::Key;
use crate::queue::WorkQueue;
use crate::{Context, Error, is_not_found, run_workers};

/// One worker: allocations are serialised through the table anyway, and a single worker
/// keeps "first come, first served" easy to reason about.
const WORKERS: usize = 1;

/// A range of IPv4 addresses, both ends included, that ingress IPs are taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoolError {
    #[error("{0:?} is not an IPv4 address")]
    BadAddress(String),
    #[error("the pool {0}-{1} is empty: its start comes after its end")]
    Reversed(Ipv4Addr, Ipv4Addr),
}

impl FromStr for Pool {
    type Err = PoolError;

    /// `START-END` or a single address.
    fn from_str(s: &str) -> Result<Pool, PoolError> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let parse = |x: &str| x.trim().parse::<Ipv4Addr>().map_err(|_| PoolError::BadAddress(x.trim().to_owned()));
        let (start, end) = (parse(a)?, parse(b)?);
        if u32::from(start) > u32::from(end) {
            return Err(PoolError::Reversed(start, end));
        }
        Ok(Pool { start, end })
    }
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl Pool {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(self.start)..=u32::from(self.end)).contains(&u32::from(ip))
    }

    /// The addresses of the pool in order.
    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.start)..=u32::from(self.end)).map(Ipv4Addr::from)
    }
}

/// What [`decide`] wants for one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The Service is not ours (not a LoadBalancer, another class, being deleted): it holds
    /// no address, and ingress IPs from the pool, if it shows any, are removed.
    NotOurs,
    /// The Service should show this address.
    Assign(Ipv4Addr),
    /// The Service should wait without an address, for the reason given.
    Pending(String),
}

/// Whether this controller is responsible for `svc`.
pub fn is_ours(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else { return false };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.load_balancer_class.as_deref().is_none_or(str::is_empty)
        && svc.metadata.deletion_timestamp.is_none()
}

/// The IPv4 ingress addresses `svc` shows.
pub fn ingress_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// The address `svc` should have, given the pool and the table of addresses taken
/// (address → the Service holding it; entries of `svc` itself count as free).
pub fn decide(svc: &Service, pool: &Pool, taken: &HashMap<Ipv4Addr, Key>) -> Decision {
    if !is_ours(svc) {
        return Decision::NotOurs;
    }
    let me = Key::of(svc);
    let free = |ip: Ipv4Addr| taken.get(&ip).is_none_or(|k| *k == me);
    let requested = svc.spec.as_ref().and_then(|s| s.load_balancer_ip.as_deref()).filter(|s| !s.is_empty());
    if let Some(requested) = requested {
        let Ok(ip) = requested.parse::<Ipv4Addr>() else {
            return Decision::Pending(format!("spec.loadBalancerIP {requested:?} is not an IPv4 address"));
        };
        if !pool.contains(ip) {
            return Decision::Pending(format!("spec.loadBalancerIP {ip} is outside the pool {pool}"));
        }
        if !free(ip) {
            return Decision::Pending(format!("spec.loadBalancerIP {ip} is in use by another Service"));
        }
        return Decision::Assign(ip);
    }
    if let Some(ip) = ingress_ips(svc).into_iter().find(|ip| pool.contains(*ip) && free(*ip)) {
        return Decision::Assign(ip);
    }
    match pool.iter().find(|ip| free(*ip)) {
        Some(ip) => Decision::Assign(ip),
        None => Decision::Pending(format!("no free address in the pool {pool}")),
    }
}

/// The status `svc` should have for `decision`, or None if it has it already.
pub fn desired_status(svc: &Service, pool: &Pool, decision: &Decision) -> Option<ServiceStatus> {
    let mut status = svc.status.clone().unwrap_or_default();
    let current = status.load_balancer.as_ref().and_then(|l| l.ingress.clone()).unwrap_or_default();
    let next: Vec<LoadBalancerIngress> = match decision {
        Decision::Assign(ip) => {
            vec![LoadBalancerIngress { ip: Some(ip.to_string()), ip_mode: Some("VIP".into()), ..Default::default() }]
        }
        // A pending Service shows no address; one that is no longer ours loses only the
        // addresses of our pool, since anything else was written by someone else.
        Decision::Pending(_) => Vec::new(),
        Decision::NotOurs => current
            .iter()
            .filter(|i| !i.ip.as_deref().and_then(|ip| ip.parse().ok()).is_some_and(|ip| pool.contains(ip)))
            .cloned()
            .collect(),
    };
    if next == current {
        return None;
    }
    status.load_balancer = Some(LoadBalancerStatus { ingress: (!next.is_empty()).then_some(next) });
    Some(status)
}

pub struct ServiceLbController {
    client: kube::Client,
    pool: Option<Pool>,
    services: Cache<Service>,
    queue: WorkQueue<Key>,
    /// address → the Service holding it.
    taken: Mutex<HashMap<Ipv4Addr, Key>>,
    events: Recorder,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let c = Arc::new(ServiceLbController {
        client: ctx.client.clone(),
        pool: ctx.config.service_lb_pool,
        services: ctx.informers.cache(),
        queue: WorkQueue::default(),
        taken: Mutex::new(HashMap::new()),
        events: Recorder::new(ctx.client.clone(), "service-lb-controller"),
    });
    let queue = c.queue.clone();
    c.services.on_change(move |change| {
        let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
        queue.add(Key::of(s.as_ref()));
    });
    Box::pin(async move {
        c.services.wait_synced().await;
        let Some(pool) = c.pool else {
            tracing::info!("no --service-lb-pool: LoadBalancer Services get no address from rkube");
            return std::future::pending().await;
        };
        c.rebuild(&pool);
        let queue = c.queue.clone();
        run_workers("servicelb", queue, WORKERS, move |key| {
            let c = c.clone();
            async move { c.sync(&key, &pool).await }
        })
        .await;
    })
}

impl ServiceLbController {
    /// Fills the table from the addresses Services show, oldest Service first.
    fn rebuild(&self, pool: &Pool) {
        let mut services: Vec<Arc<Service>> = self.services.list().into_iter().filter(|s| is_ours(s)).collect();
        services.sort_by(|a, b| {
            let t = |s: &Service| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b)).then_with(|| Key::of(a.as_ref()).cmp(&Key::of(b.as_ref())))
        });
        let mut taken = self.taken.lock();
        for svc in services {
            for ip in ingress_ips(&svc).into_iter().filter(|ip| pool.contains(*ip)) {
                taken.entry(ip).or_insert_with(|| Key::of(svc.as_ref()));
            }
        }
    }

    /// Releases every address `key` holds except `keep`; true if one was released.
    fn release(&self, key: &Key, keep: Option<Ipv4Addr>) -> bool {
        let mut taken = self.taken.lock();
        let before = taken.len();
        taken.retain(|ip, k| k != key || Some(*ip) == keep);
        taken.len() != before
    }

    /// Queues every Service that waits for an address, after one was freed.
    fn requeue_pending(&self) {
        for svc in self.services.list() {
            if is_ours(&svc) && ingress_ips(&svc).is_empty() {
                self.queue.add(Key::of(svc.as_ref()));
            }
        }
    }

    async fn sync(&self, key: &Key, pool: &Pool) -> Result<Option<Duration>, Error> {
        let Some(svc) = self.services.get(&key.namespace, &key.name) else {
            if self.release(key, None) {
                self.requeue_pending();
            }
            return Ok(None);
        };
        let decision = {
            let mut taken = self.taken.lock();
            let d = decide(&svc, pool, &taken);
            if let Decision::Assign(ip) = d {
                taken.insert(ip, key.clone());
            }
            d
        };
        let keep = match decision {
            Decision::Assign(ip) => Some(ip),
            _ => None,
        };
        if self.release(key, keep) {
            self.requeue_pending();
        }
        let Some(status) = desired_status(&svc, pool, &decision) else {
            // Still waiting: say why each time the Service is looked at, as MetalLB does, so
            // that `kubectl describe` shows the reason after any change the user makes.
            if let Decision::Pending(reason) = &decision {
                self.events.event(svc.as_ref(), EventType::Warning, "AllocationFailed", reason.clone());
            }
            return Ok(None);
        };
        let mut next = (*svc).clone();
        next.status = Some(status);
        let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
        match api.replace_status(&key.name, &PostParams::default(), &next).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        match &decision {
            Decision::Assign(ip) => {
                tracing::info!(service = %key, %ip, "assigned a LoadBalancer address");
                self.events.event(svc.as_ref(), EventType::Normal, "IPAllocated", format!("Assigned IP {ip}"));
            }
            Decision::Pending(reason) => {
                tracing::info!(service = %key, reason, "LoadBalancer Service pending");
                self.events.event(svc.as_ref(), EventType::Warning, "AllocationFailed", reason.clone());
            }
            Decision::NotOurs => tracing::info!(service = %key, "released its LoadBalancer address"),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use kube::api::ObjectMeta;

    fn pool() -> Pool {
        "192.168.240.201-192.168.240.203".parse().expect("pool")
    }

    fn svc(name: &str, ty: &str, requested: Option<&str>, ingress: &[&str]) -> Service {
        Service {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..Default::default() },
            spec: Some(ServiceSpec {
                type_: Some(ty.into()),
                load_balancer_ip: requested.map(Into::into),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: (!ingress.is_empty()).then(|| {
                        ingress
                            .iter()
                            .map(|ip| LoadBalancerIngress { ip: Some((*ip).into()), ..Default::default() })
                            .collect()
                    }),
                }),
                ..Default::default()
            }),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn pool_parses_ranges_and_single_addresses() {
        assert_eq!(pool().iter().count(), 3);
        assert_eq!("10.0.0.5".parse::<Pool>().map(|p| p.iter().count()), Ok(1));
        assert_eq!("10.0.0.5-10.0.0.1".parse::<Pool>(), Err(PoolError::Reversed(ip("10.0.0.5"), ip("10.0.0.1"))));
        assert!(matches!("10.0.0.5-x".parse::<Pool>(), Err(PoolError::BadAddress(_))));
        assert!(matches!("".parse::<Pool>(), Err(PoolError::BadAddress(_))));
    }

    #[test]
    fn first_free_address_is_assigned() {
        let taken = HashMap::from([(ip("192.168.240.201"), Key::new("default", "other"))]);
        let s = svc("web", "LoadBalancer", None, &[]);
        assert_eq!(decide(&s, &pool(), &taken), Decision::Assign(ip("192.168.240.202")));
    }

    #[test]
    fn an_address_already_shown_is_kept() {
        let s = svc("web", "LoadBalancer", None, &["192.168.240.203"]);
        assert_eq!(decide(&s, &pool(), &HashMap::new()), Decision::Assign(ip("192.168.240.203")));
        // ...unless another Service holds it, then the Service moves.
        let taken = HashMap::from([(ip("192.168.240.203"), Key::new("default", "older"))]);
        assert_eq!(decide(&s, &pool(), &taken), Decision::Assign(ip("192.168.240.201")));
    }

    #[test]
    fn requested_address_is_honoured_only_in_the_pool_and_free() {
        let s = svc("web", "LoadBalancer", Some("192.168.240.202"), &["192.168.240.201"]);
        assert_eq!(decide(&s, &pool(), &HashMap::new()), Decision::Assign(ip("192.168.240.202")));
        let taken = HashMap::from([(ip("192.168.240.202"), Key::new("default", "other"))]);
        assert!(matches!(decide(&s, &pool(), &taken), Decision::Pending(r) if r.contains("in use")));
        let outside = svc("web", "LoadBalancer", Some("10.1.1.1"), &[]);
        assert!(matches!(decide(&outside, &pool(), &HashMap::new()), Decision::Pending(r) if r.contains("outside")));
        let garbage = svc("web", "LoadBalancer", Some("not-an-ip"), &[]);
        assert!(matches!(decide(&garbage, &pool(), &HashMap::new()), Decision::Pending(_)));
    }

    #[test]
    fn exhausted_pool_leaves_the_service_pending_without_an_address() {
        let taken: HashMap<Ipv4Addr, Key> =
            pool().iter().enumerate().map(|(i, a)| (a, Key::new("default", format!("s{i}")))).collect();
        let s = svc("web", "LoadBalancer", None, &["10.9.9.9"]);
        let d = decide(&s, &pool(), &taken);
        assert!(matches!(d, Decision::Pending(_)));
        let status = desired_status(&s, &pool(), &d).expect("a change");
        assert_eq!(status.load_balancer.and_then(|l| l.ingress), None);
    }

    #[test]
    fn other_classes_and_types_are_not_ours_and_lose_only_pool_addresses() {
        let mut classed = svc("web", "LoadBalancer", None, &[]);
        if let Some(spec) = classed.spec.as_mut() {
            spec.load_balancer_class = Some("example.com/lb".into());
        }
        assert_eq!(decide(&classed, &pool(), &HashMap::new()), Decision::NotOurs);
        let np = svc("web", "NodePort", None, &["192.168.240.201", "10.9.9.9"]);
        assert_eq!(decide(&np, &pool(), &HashMap::new()), Decision::NotOurs);
        let status = desired_status(&np, &pool(), &Decision::NotOurs).expect("a change");
        let left = status.load_balancer.and_then(|l| l.ingress).unwrap_or_default();
        assert_eq!(left.iter().filter_map(|i| i.ip.clone()).collect::<Vec<_>>(), vec!["10.9.9.9"]);
        let clean = svc("web", "NodePort", None, &[]);
        assert_eq!(desired_status(&clean, &pool(), &Decision::NotOurs), None);
    }

    #[test]
    fn assigned_status_carries_vip_mode_and_is_idempotent() {
        let s = svc("web", "LoadBalancer", None, &[]);
        let d = decide(&s, &pool(), &HashMap::new());
        let status = desired_status(&s, &pool(), &d).expect("a change");
        let ingress = status.load_balancer.as_ref().and_then(|l| l.ingress.clone()).unwrap_or_default();
        assert_eq!(ingress.len(), 1);
        assert_eq!(ingress[0].ip.as_deref(), Some("192.168.240.201"));
        assert_eq!(ingress[0].ip_mode.as_deref(), Some("VIP"));
        let mut done = s.clone();
        done.status = Some(status);
        assert_eq!(desired_status(&done, &pool(), &d), None);
    }
}
