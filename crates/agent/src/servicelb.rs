//! The LoadBalancer speaker: makes each Service's ingress IP reachable on the node network
//! by announcing it from exactly one node, and moves it when that node dies.
//!
//! The server's `servicelb` controller (`rkube_controllers::servicelb`) writes the ingress
//! IPs; the service proxy already DNATs packets for them to the endpoints on whichever
//! node receives them. What is missing on bare metal is a node that receives them, which
//! is what this module provides, as MetalLB's layer-2 mode does, but with a fail-over time
//! of about a second instead of minutes.
//!
//! # Who announces
//!
//! Every agent runs [`run`]. For each ingress IP there is a `coordination.k8s.io/v1` Lease
//! in `kube-system` named `servicelb-<ip with dashes>`; the node that holds it announces the
//! IP. The holder renews every [`RENEW`] with a duration of [`LEASE_DURATION`]. Every other
//! node watches the Lease and takes it over, with an optimistic-concurrency write that only
//! one node can win, once it has seen no change to it for a whole duration. As client-go's
//! leader election, expiry is judged by the observer's own clock (when *it* last saw the
//! Lease change), never by comparing the holder's `renewTime` with the local clock, so
//! clock skew between machines cannot make two nodes announce at once.
//!
//! A holder that cannot renew (the API server is unreachable, say) stops announcing once a
//! duration has passed since the start of its last successful renewal, which is before any
//! other node can consider the Lease expired: at most one node announces at a time, give or
//! take the time for the neighbours' caches to follow.
//!
//! A Lease whose IP no Service uses any more is deleted by its holder, or, if the holder
//! died first, by any node once it has been expired for two durations.
//!
//! With `externalTrafficPolicy: Local`, a node only competes for an IP if it has a ready
//! endpoint of the Service (or if no node has one, so that the IP is still answered), and a
//! holder without one gives the Lease up, so that traffic arrives where it can be served.
//!
//! # Announcing
//!
//! Announcing is adding `IP/32` to the uplink with the label `<uplink>:lb`, so the node
//! answers ARP for it, then sending gratuitous ARP (`arping -U`) so that neighbours that
//! cached the previous holder's MAC address switch at once. Withdrawing is removing the
//! address. At start, addresses with that label are removed: they are left over from a
//! previous run (the agent is killed without cleanup when its node is stopped), and the
//! Leases say who announces now.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

/// How often the holder renews its Leases.
pub const RENEW: Duration = Duration::from_millis(300);
/// How long a Lease is valid without renewal (`leaseDurationSeconds`).
pub const LEASE_DURATION: Duration = Duration::from_secs(1);
/// How often the loop looks at the Leases; the fail-over time is the duration plus up to
/// one tick.
const TICK: Duration = Duration::from_millis(100);
const NAMESPACE: &str = "kube-system";
const LEASE_PREFIX: &str = "servicelb-";
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "rkube-servicelb");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{command}: {message}")]
    Command { command: String, message: String },
}

/// The name of the Lease for `ip`.
pub fn lease_name(ip: Ipv4Addr) -> String {
    format!("{LEASE_PREFIX}{}", ip.to_string().replace('.', "-"))
}

/// The ingress IPs to announce, each with its Service: LoadBalancer Services of the
/// default implementation (no `loadBalancerClass`).
pub fn wanted_ips(services: &[std::sync::Arc<Service>]) -> BTreeMap<Ipv4Addr, std::sync::Arc<Service>> {
    let mut out = BTreeMap::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else { continue };
        if spec.type_.as_deref() != Some("LoadBalancer")
            || spec.load_balancer_class.as_deref().is_some_and(|c| !c.is_empty())
            || svc.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        for ip in ingress.into_iter().flatten().filter_map(|i| i.ip.as_deref()?.parse().ok()) {
            out.entry(ip).or_insert_with(|| svc.clone());
        }
    }
    out
}

/// Whether `node` should compete for the IP of `svc`: always, unless the Service keeps
/// external traffic on nodes with a local endpoint and some node other than this one has
/// a ready endpoint.
pub fn eligible(svc: &Service, slices: &[std::sync::Arc<EndpointSlice>], node: &str) -> bool {
    let local_policy = svc.spec.as_ref().and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local");
    if !local_policy {
        return true;
    }
    let (Some(ns), name) = (svc.namespace(), svc.name_any()) else { return true };
    let ready_nodes: HashSet<&str> = slices
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .filter(|s| s.labels().get("kubernetes.io/service-name") == Some(&name))
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.node_name.as_deref())
        .collect();
    ready_nodes.is_empty() || ready_nodes.contains(node)
}

/// What the loop does about one wanted IP's Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Create the Lease, which does not exist, with this node as holder.
    Create,
    /// Take over an expired Lease.
    TakeOver,
    /// Renew this node's Lease.
    Renew,
    /// Give this node's Lease up (delete it).
    Release,
    /// Nothing to do now.
    Wait,
}

/// What this node sees of one Lease.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub holder: Option<&'a str>,
    /// When this node last saw the Lease change (its resourceVersion).
    pub changed_at: Instant,
}

/// The action for one wanted IP. `last_renew` is the start of this node's last successful
/// write of the Lease, if it holds it.
pub fn decide(
    lease: Option<Observed<'_>>,
    me: &str,
    eligible: bool,
    last_renew: Option<Instant>,
    now: Instant,
) -> Action {
    match lease {
        None if eligible => Action::Create,
        None => Action::Wait,
        Some(l) if l.holder == Some(me) => {
            if !eligible {
                Action::Release
            } else if last_renew.is_none_or(|t| now.duration_since(t) >= RENEW) {
                Action::Renew
            } else {
                Action::Wait
            }
        }
        Some(l) => {
            let vacant = l.holder.is_none_or(str::is_empty);
            if eligible && (vacant || now.duration_since(l.changed_at) > LEASE_DURATION) {
                Action::TakeOver
            } else {
                Action::Wait
            }
        }
    }
}

/// Runs the speaker for `node_name`, announcing on the link `uplink`, until dropped.
pub async fn run(client: kube::Client, node_name: String, uplink: String) -> Result<(), Error> {
    let link = Link::new(uplink);
    link.flush_stale().await?;
    let (services, _s): (Store<Service>, _) = spawn_reflector(Api::all(client.clone()), watcher::Config::default());
    let (slices, _e): (Store<EndpointSlice>, _) = spawn_reflector(Api::all(client.clone()), watcher::Config::default());
    let selector = format!("{}={}", MANAGED_BY.0, MANAGED_BY.1);
    let leases_api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let (leases, _l) = spawn_reflector(leases_api.clone(), watcher::Config::default().labels(&selector));
    // Wait for the first lists, so that nothing is judged on empty caches.
    let _ = tokio::join!(services.wait_until_ready(), slices.wait_until_ready(), leases.wait_until_ready());
    let mut speaker = Speaker {
        node: node_name,
        api: leases_api,
        link,
        seen: HashMap::new(),
        renewed: HashMap::new(),
        announced: HashSet::new(),
    };
    tracing::info!(node = %speaker.node, link = %speaker.link.name, "LoadBalancer speaker running");
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        speaker.step(&services.state(), &slices.state(), &leases.state()).await;
    }
}

/// Starts a watcher that keeps a store, on a task that stops when the returned guard is
/// dropped.
fn spawn_reflector<K>(api: Api<K>, config: watcher::Config) -> (Store<K>, AbortOnDrop)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff()).applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    (reader, AbortOnDrop(task))
}

/// Aborts a spawned task when dropped, so that the watchers stop with [`run`].
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Speaker {
    node: String,
    api: Api<Lease>,
    link: Link,
    /// Lease name → (resourceVersion, when this node first saw it).
    seen: HashMap<String, (String, Instant)>,
    /// IP → start of the last successful write of its Lease by this node.
    renewed: HashMap<Ipv4Addr, Instant>,
    announced: HashSet<Ipv4Addr>,
}

impl Speaker {
    async fn step(
        &mut self,
        services: &[std::sync::Arc<Service>],
        slices: &[std::sync::Arc<EndpointSlice>],
        leases: &[std::sync::Arc<Lease>],
    ) {
        let now = Instant::now();
        let by_name: HashMap<String, &Lease> = leases.iter().map(|l| (l.name_any(), l.as_ref())).collect();
        for (name, lease) in &by_name {
            let rv = lease.resource_version().unwrap_or_default();
            let entry = self.seen.entry(name.clone()).or_insert_with(|| (rv.clone(), now));
            if entry.0 != rv {
                *entry = (rv, now);
            }
        }
        self.seen.retain(|name, _| by_name.contains_key(name));

        let wanted = wanted_ips(services);
        for (ip, svc) in &wanted {
            let name = lease_name(*ip);
            let lease = by_name.get(&name).copied();
            let observed = lease.map(|l| Observed {
                holder: l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()),
                changed_at: self.seen.get(&name).map_or(now, |s| s.1),
            });
            let ok = eligible(svc, slices, &self.node);
            let action = decide(observed, &self.node, ok, self.renewed.get(ip).copied(), now);
            match action {
                Action::Wait => {}
                Action::Create | Action::TakeOver | Action::Renew => {
                    let started = Instant::now();
                    match self.write(&name, lease, action).await {
                        Ok(()) => {
                            if action != Action::Renew {
                                tracing::info!(%ip, node = %self.node, "took the LoadBalancer IP's lease");
                            }
                            self.renewed.insert(*ip, started);
                        }
                        Err(e) => {
                            tracing::debug!(%ip, error = %e, ?action, "writing the LoadBalancer lease failed");
                            if action != Action::Renew {
                                self.renewed.remove(ip);
                            }
                        }
                    }
                }
                Action::Release => {
                    self.renewed.remove(ip);
                    self.link.withdraw(*ip, &mut self.announced).await;
                    if let Some(l) = lease {
                        let dp = DeleteParams {
                            preconditions: Some(Preconditions { uid: None, resource_version: l.resource_version() }),
                            ..Default::default()
                        };
                        if let Err(e) = self.api.delete(&name, &dp).await {
                            tracing::debug!(%ip, error = %e, "releasing the LoadBalancer lease failed");
                        }
                    }
                }
            }
        }
        // IPs no longer wanted: give their Leases up so they do not linger.
        let gone: Vec<Ipv4Addr> = self.renewed.keys().filter(|ip| !wanted.contains_key(ip)).copied().collect();
        for ip in gone {
            self.renewed.remove(&ip);
            let name = lease_name(ip);
            if let Some(l) = by_name.get(&name) {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions { uid: None, resource_version: l.resource_version() }),
                    ..Default::default()
                };
                let _ = self.api.delete(&name, &dp).await;
            }
        }
        // Leases of IPs no longer wanted whose holder died before it could give them up:
        // once expired, any node removes them (the resourceVersion guards against a holder
        // that is alive after all).
        let wanted_names: HashSet<String> = wanted.keys().map(|ip| lease_name(*ip)).collect();
        for (name, lease) in &by_name {
            let expired = self.seen.get(name).is_some_and(|(_, t)| now.duration_since(*t) > 2 * LEASE_DURATION);
            if expired && !wanted_names.contains(name) {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions { uid: None, resource_version: lease.resource_version() }),
                    ..Default::default()
                };
                if self.api.delete(name, &dp).await.is_ok() {
                    tracing::info!(lease = %name, "removed the expired Lease of a LoadBalancer IP no longer in use");
                }
            }
        }
        // Announce exactly the IPs whose Lease this node holds with a renewal recent enough
        // that no other node can have taken over yet.
        let now = Instant::now();
        let held: HashSet<Ipv4Addr> =
            self.renewed.iter().filter(|(_, t)| now.duration_since(**t) < LEASE_DURATION).map(|(ip, _)| *ip).collect();
        for ip in held.difference(&self.announced.clone()) {
            self.link.announce(*ip, &mut self.announced).await;
        }
        for ip in self.announced.clone().difference(&held) {
            tracing::info!(%ip, node = %self.node, "withdrawing the LoadBalancer IP");
            self.link.withdraw(*ip, &mut self.announced).await;
        }
    }

    async fn write(&self, name: &str, current: Option<&Lease>, action: Action) -> Result<(), kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        match (action, current) {
            (Action::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(NAMESPACE.to_owned()),
                        labels: Some([(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned())].into()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.node.clone()),
                        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await?;
            }
            (_, Some(cur)) => {
                // The current resourceVersion goes along, so of two nodes taking over the
                // same expired Lease only one write succeeds.
                let mut next = cur.clone();
                let spec = next.spec.get_or_insert_with(Default::default);
                if action == Action::TakeOver {
                    spec.holder_identity = Some(self.node.clone());
                    spec.acquire_time = Some(now.clone());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(LEASE_DURATION.as_secs() as i32);
                spec.renew_time = Some(now);
                self.api.replace(name, &PostParams::default(), &next).await?;
            }
        }
        Ok(())
    }
}

/// The uplink the IPs are announced on.
struct Link {
    name: String,
    /// The address label that marks our addresses; None when the link's name is too long
    /// for one (labels are limited to 15 bytes, like link names).
    label: Option<String>,
}

impl Link {
    fn new(name: String) -> Link {
        let label = format!("{name}:lb");
        Link { label: (label.len() <= 15).then_some(label), name }
    }

    /// Removes the addresses a previous run left (see the module docs).
    async fn flush_stale(&self) -> Result<(), Error> {
        let Some(label) = &self.label else { return Ok(()) };
        let out = ip(&["-4", "-o", "addr", "show", "dev", &self.name]).await?;
        for line in out.lines().filter(|l| l.split_whitespace().last() == Some(label.as_str())) {
            let mut fields = line.split_whitespace();
            if fields.any(|f| f == "inet")
                && let Some(addr) = fields.next()
            {
                tracing::info!(%addr, "removing a LoadBalancer address left by a previous run");
                ip(&["addr", "del", addr, "dev", &self.name]).await?;
            }
        }
        Ok(())
    }

    async fn announce(&self, addr: Ipv4Addr, announced: &mut HashSet<Ipv4Addr>) {
        let cidr = format!("{addr}/32");
        let mut args = vec!["addr", "replace", &cidr, "dev", &self.name];
        if let Some(label) = &self.label {
            args.extend(["label", label.as_str()]);
        }
        if let Err(e) = ip(&args).await {
            tracing::warn!(%addr, error = %e, "adding the LoadBalancer IP to the uplink");
            return;
        }
        announced.insert(addr);
        tracing::info!(%addr, link = %self.name, "announcing the LoadBalancer IP");
        // Unsolicited ARP, three frames 100 ms apart because one can be lost; neighbours
        // replace the cached MAC address of the previous holder. This arping cannot send
        // several frames less than a second apart, so each frame is its own arping, run in
        // the background so that the loop goes on.
        let link = self.name.clone();
        tokio::spawn(async move {
            let mut children = Vec::new();
            for i in 0..3 {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let spawned = tokio::process::Command::new("arping")
                    .args(["-q", "-U", "-c", "1", "-I", &link, "-s"])
                    .arg(addr.to_string())
                    .arg(addr.to_string())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn();
                match spawned {
                    Ok(child) => children.push(child),
                    Err(e) => {
                        tracing::warn!(error = %e, "running arping; neighbours learn the move only when they ask");
                        break;
                    }
                }
            }
            for mut child in children {
                let _ = child.wait().await;
            }
        });
    }

    async fn withdraw(&self, addr: Ipv4Addr, announced: &mut HashSet<Ipv4Addr>) {
        if !announced.remove(&addr) {
            return;
        }
        let cidr = format!("{addr}/32");
        if let Err(e) = ip(&["addr", "del", &cidr, "dev", &self.name]).await {
            tracing::warn!(%addr, error = %e, "removing the LoadBalancer IP from the uplink");
        }
    }
}

async fn ip(args: &[&str]) -> Result<String, Error> {
    let command = format!("ip {}", args.join(" "));
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| Error::Command { command: command.clone(), message: e.to_string() })?;
    if !out.status.success() {
        let message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        // Removing an address that is already gone is what was wanted.
        if !(args.get(1) == Some(&"del") && message.contains("Cannot assign requested address")) {
            return Err(Error::Command { command, message });
        }
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(holder: Option<&str>, age: Duration, now: Instant) -> Option<Observed<'_>> {
        Some(Observed { holder, changed_at: now.checked_sub(age).unwrap_or(now) })
    }

    #[test]
    fn missing_lease_is_created_by_eligible_nodes_only() {
        let now = Instant::now();
        assert_eq!(decide(None, "n1", true, None, now), Action::Create);
        assert_eq!(decide(None, "n1", false, None, now), Action::Wait);
    }

    #[test]
    fn holder_renews_on_schedule_and_releases_when_not_eligible() {
        let now = Instant::now();
        let l = observed(Some("n1"), Duration::ZERO, now);
        let recently = now.checked_sub(Duration::from_millis(100));
        let long_ago = now.checked_sub(RENEW);
        assert_eq!(decide(l, "n1", true, recently, now), Action::Wait);
        assert_eq!(decide(l, "n1", true, long_ago, now), Action::Renew);
        assert_eq!(decide(l, "n1", true, None, now), Action::Renew);
        assert_eq!(decide(l, "n1", false, recently, now), Action::Release);
    }

    #[test]
    fn another_holder_is_only_replaced_after_a_full_duration_of_silence() {
        let now = Instant::now();
        let fresh = observed(Some("n2"), Duration::from_millis(900), now);
        let stale = observed(Some("n2"), Duration::from_millis(1100), now);
        assert_eq!(decide(fresh, "n1", true, None, now), Action::Wait);
        assert_eq!(decide(stale, "n1", true, None, now), Action::TakeOver);
        assert_eq!(decide(stale, "n1", false, None, now), Action::Wait);
        let vacant = observed(None, Duration::ZERO, now);
        assert_eq!(decide(vacant, "n1", true, None, now), Action::TakeOver);
    }

    #[test]
    fn lease_names_are_valid_object_names() {
        assert_eq!(lease_name(Ipv4Addr::new(192, 168, 240, 201)), "servicelb-192-168-240-201");
    }

    #[test]
    fn local_policy_prefers_nodes_with_ready_endpoints() {
        use k8s_openapi::api::core::v1::ServiceSpec;
        use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
        let svc = Service {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(ServiceSpec { external_traffic_policy: Some("Local".into()), ..Default::default() }),
            status: None,
        };
        let slice = |node: &str, ready: bool| {
            std::sync::Arc::new(EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(format!("web-{node}")),
                    namespace: Some("ns".into()),
                    labels: Some([("kubernetes.io/service-name".to_owned(), "web".to_owned())].into()),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: Some(vec![Endpoint {
                    addresses: vec!["10.42.2.5".into()],
                    node_name: Some(node.into()),
                    conditions: Some(EndpointConditions { ready: Some(ready), ..Default::default() }),
                    ..Default::default()
                }]),
                ports: None,
            })
        };
        assert!(eligible(&svc, &[], "n1"), "no endpoints anywhere: anyone may answer");
        assert!(!eligible(&svc, &[slice("n2", true)], "n1"));
        assert!(eligible(&svc, &[slice("n2", true)], "n2"));
        assert!(eligible(&svc, &[slice("n2", false)], "n1"), "not-ready endpoints do not count");
        let mut cluster = svc.clone();
        if let Some(spec) = cluster.spec.as_mut() {
            spec.external_traffic_policy = Some("Cluster".into());
        }
        assert!(eligible(&cluster, &[slice("n2", true)], "n1"));
    }
}
