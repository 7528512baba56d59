//! The kubelet: the loop that makes the pods bound to this node real, and reports on them.
//!
//! # Shape
//!
//! [`Kubelet::run`] registers the Node, keeps its Lease and status fresh ([`node`]), and
//! watches the pods bound to this node (a field selector on `spec.nodeName`, so the agent
//! never sees other nodes' pods). Every pod gets a [`worker::Worker`], a task that owns the
//! pod's sandbox, volumes and containers and drives them towards the spec; the watch only
//! hands each worker the latest pod object through a `watch` channel, so a burst of updates
//! costs one pass.
//!
//! # Restarts
//!
//! All the state needed to pick up running pods again lives on disk or in the kernel: the
//! runtime's container directories (named `<pod uid>.<container>.<attempt>`), the IPAM file,
//! the pod network namespaces (named `<node>.<pod uid>`) and the volume mounts. On start the
//! kubelet lists the runtime's containers and hands each pod's to its worker, which adopts
//! them: running containers keep running, restart counts stay. Containers, namespaces and
//! addresses of pods that are no longer bound to the node are removed once the first list of
//! pods has arrived.
//!
//! # What it must not know
//!
//! The kubelet reads the cluster only through the API (watches and GETs) and writes only its
//! Node, its Lease, its pods' status, Events, and the final deletion of a terminated pod.

pub mod env;
pub mod node;
pub mod probe;
pub mod sandbox;
pub mod source;
pub mod status;
pub mod volumes;
mod worker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Container, Pod, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use parking_lot::Mutex;
use rkube_controllers::events::Recorder;
use tokio::sync::watch;

use crate::image::ImageStore;
use crate::net::{NetOps, Netns, ipam::Ipam};
use crate::runtime::spec::EtcFiles;
use crate::runtime::{ContainerRuntime, ContainerState};

/// The agent's settings for its pods.
#[derive(Clone, Debug)]
pub struct KubeletConfig {
    pub node_name: String,
    /// Where pods' files live: `pods/<uid>` (volumes, /etc files), `logs/`, `rootfs/`, `ipam/`.
    pub data_dir: PathBuf,
    pub node_ip: Ipv4Addr,
    pub external_ip: Option<Ipv4Addr>,
    /// The podCIDR to ask for at registration; otherwise the Node's `spec.podCIDR` is used.
    pub pod_cidr: Option<Ipv4Net>,
    /// The pod bridge in the agent's network namespace.
    pub bridge: String,
    pub dns: sandbox::DnsSettings,
    /// The streaming server's port, reported in the Node's `daemonEndpoints`.
    pub port: u16,
    /// The cgroup under which pods' cgroups are made, per agent.
    pub cgroup_parent: String,
    /// How often the Lease is renewed.
    pub heartbeat: Duration,
    /// The first crash-loop back-off; it doubles up to five minutes, as upstream.
    pub backoff_base: Duration,
    /// How often mounted Secrets and ConfigMaps are re-read.
    pub volume_refresh: Duration,
    /// The cluster CA, for projected service-account volumes.
    pub cluster_ca_pem: Option<String>,
}

/// Why the kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("network: {0}")]
    Net(#[from] crate::net::Error),
    #[error("IPAM: {0}")]
    Ipam(#[from] crate::net::ipam::Error),
    #[error("container runtime: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(
        "the node got no podCIDR within a minute: pass one with --pod-cidr, or check the server's node IPAM (--cluster-cidr)"
    )]
    NoPodCidr,
    #[error("{0}")]
    Io(String),
    #[error("invalid podCIDR {0:?}")]
    BadPodCidr(String),
}

/// What the streaming server and tests may know of a pod's containers.
#[derive(Clone, Debug, Default)]
pub struct PodShared {
    pub namespace: String,
    pub name: String,
    pub default_container: Option<String>,
    pub containers: BTreeMap<String, SharedContainer>,
}

#[derive(Clone, Debug)]
pub struct SharedContainer {
    pub current_id: Option<String>,
    pub previous_id: Option<String>,
    pub running: bool,
    pub tty: bool,
    pub stdin: bool,
    pub log_path: PathBuf,
    pub previous_log_path: Option<PathBuf>,
}

struct PodEntry {
    tx: watch::Sender<Option<Arc<Pod>>>,
    shared: Arc<Mutex<PodShared>>,
}

/// The kubelet of one node.
pub struct Kubelet {
    cfg: KubeletConfig,
    client: Client,
    runtime: Arc<dyn ContainerRuntime>,
    /// The runtime's per-container directories, where the shim records an exit.
    containers_dir: PathBuf,
    images: ImageStore,
    net: Arc<dyn NetOps>,
    ipam: Mutex<Option<Ipam>>,
    pod_cidr: Mutex<Option<Ipv4Net>>,
    source: Arc<dyn source::ObjectSource>,
    services: Mutex<Option<reflector::Store<Service>>>,
    recorder: Recorder,
    allocatable: Mutex<BTreeMap<String, Quantity>>,
    pods: Mutex<HashMap<String, PodEntry>>,
}

impl Kubelet {
    pub fn new(
        cfg: KubeletConfig,
        client: Client,
        runtime: Arc<dyn ContainerRuntime>,
        containers_dir: PathBuf,
        images: ImageStore,
        net: Arc<dyn NetOps>,
    ) -> Arc<Kubelet> {
        let source = Arc::new(source::ApiSource::new(client.clone()));
        let recorder = Recorder::new(client.clone(), "kubelet");
        Arc::new(Kubelet {
            cfg,
            client,
            runtime,
            containers_dir,
            images,
            net,
            ipam: Mutex::new(None),
            pod_cidr: Mutex::new(None),
            source,
            services: Mutex::new(None),
            recorder,
            allocatable: Mutex::new(BTreeMap::new()),
            pods: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &KubeletConfig {
        &self.cfg
    }

    /// What the kubelet knows of a pod's containers, by namespace and name.
    pub fn find_pod(&self, namespace: &str, name: &str) -> Option<PodShared> {
        let pods = self.pods.lock();
        pods.values().map(|e| e.shared.lock().clone()).find(|s| s.namespace == namespace && s.name == name)
    }

    /// Registers the node and runs the pods bound to it, until the task is dropped. Pods keep
    /// running when the kubelet stops: a restarted kubelet adopts them.
    pub async fn run(self: Arc<Self>) -> Result<(), KubeletError> {
        let facts = node::NodeFacts::gather(
            &self.cfg.node_name,
            self.cfg.node_ip,
            self.cfg.external_ip,
            self.cfg.pod_cidr.map(|c| c.to_string()),
            self.cfg.port,
        );
        *self.allocatable.lock() = facts.capacity.clone();
        let node = node::register(&self.client, &facts).await?;
        let cidr = match self.cfg.pod_cidr {
            Some(c) => c,
            None => {
                let text = match node.spec.as_ref().and_then(|s| s.pod_cidr.clone()) {
                    Some(c) => c,
                    None => self.wait_for_pod_cidr().await?,
                };
                text.parse().map_err(|_| KubeletError::BadPodCidr(text))?
            }
        };
        *self.pod_cidr.lock() = Some(cidr);
        self.ensure_bridge(cidr).await?;
        let ipam_dir = self.cfg.data_dir.join("ipam");
        std::fs::create_dir_all(&ipam_dir)
            .map_err(|e| KubeletError::Io(format!("creating {}: {e}", ipam_dir.display())))?;
        *self.ipam.lock() = Some(Ipam::open(&ipam_dir, cidr)?);
        tracing::info!(node = %self.cfg.node_name, %cidr, "node registered");

        let heartbeat = tokio::spawn(node::heartbeat(
            self.client.clone(),
            facts,
            node.metadata.uid.clone(),
            self.cfg.heartbeat,
            10,
        ));
        let _heartbeat = AbortOnDrop(heartbeat);

        // Services, for the service-link environment variables of new containers.
        let (reader, writer) = reflector::store();
        *self.services.lock() = Some(reader);
        let services = reflector::reflector(
            writer,
            watcher::watcher(Api::<Service>::all(self.client.clone()), watcher::Config::default()),
        );
        let _services = AbortOnDrop(tokio::spawn(async move {
            let mut s = std::pin::pin!(services);
            while s.next().await.is_some() {}
        }));

        let mut adoptable: HashMap<String, Vec<ContainerState>> = HashMap::new();
        for state in self.runtime.list().await? {
            if let Some((uid, _, _)) = worker::parse_id(&state.id) {
                adoptable.entry(uid.to_owned()).or_default().push(state);
            }
        }
        let pods_api: Api<Pod> = Api::all(self.client.clone());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", self.cfg.node_name));
        let mut stream = std::pin::pin!(watcher::watcher(pods_api, config));
        let mut listing: HashSet<String> = HashSet::new();
        let mut first_list_done = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => listing.clear(),
                Ok(Event::InitApply(pod)) => {
                    listing.insert(pod.uid().unwrap_or_default());
                    self.dispatch(pod, &mut adoptable);
                }
                Ok(Event::InitDone) => {
                    // Pods that disappeared while the watch was down are gone now.
                    let gone: Vec<String> =
                        self.pods.lock().keys().filter(|uid| !listing.contains(*uid)).cloned().collect();
                    for uid in gone {
                        if let Some(entry) = self.pods.lock().get(&uid) {
                            let _ = entry.tx.send(None);
                        }
                    }
                    if !first_list_done {
                        first_list_done = true;
                        let orphans = std::mem::take(&mut adoptable);
                        let this = self.clone();
                        tokio::spawn(async move { this.remove_orphans(orphans).await });
                    }
                }
                Ok(Event::Apply(pod)) => self.dispatch(pod, &mut adoptable),
                Ok(Event::Delete(pod)) => {
                    let uid = pod.uid().unwrap_or_default();
                    if let Some(entry) = self.pods.lock().get(&uid) {
                        let _ = entry.tx.send(None);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the pod watch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        Ok(())
    }

    /// Waits for the server's node IPAM controller to give this node a podCIDR.
    async fn wait_for_pod_cidr(&self) -> Result<String, KubeletError> {
        let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let node = api.get(&self.cfg.node_name).await?;
            if let Some(cidr) = node.spec.and_then(|s| s.pod_cidr).filter(|c| !c.is_empty()) {
                return Ok(cidr);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KubeletError::NoPodCidr);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Hands the latest pod object to its worker, starting one for a new pod.
    fn dispatch(self: &Arc<Self>, pod: Pod, adoptable: &mut HashMap<String, Vec<ContainerState>>) {
        let Some(uid) = pod.uid() else { return };
        let pod = Arc::new(pod);
        let mut pods = self.pods.lock();
        if let Some(entry) = pods.get(&uid) {
            let _ = entry.tx.send(Some(pod));
            return;
        }
        let (tx, rx) = watch::channel(Some(pod));
        let shared = Arc::new(Mutex::new(PodShared::default()));
        pods.insert(uid.clone(), PodEntry { tx, shared: shared.clone() });
        let adopted = adoptable.remove(&uid).unwrap_or_default();
        let worker = worker::Worker::new(self.clone(), uid, shared, adopted);
        tokio::spawn(worker.run(rx));
    }

    fn forget(&self, uid: &str) {
        self.pods.lock().remove(uid);
    }

    /// Removes what is left of pods this node no longer runs: their containers, and their
    /// namespaces, addresses and volumes.
    async fn remove_orphans(&self, orphans: HashMap<String, Vec<ContainerState>>) {
        for (uid, states) in orphans {
            tracing::info!(%uid, containers = states.len(), "removing the containers of a pod no longer on this node");
            for s in &states {
                if let Err(e) = crate::runtime::stop(self.runtime.as_ref(), &s.id, Duration::from_secs(2)).await {
                    tracing::warn!(id = %s.id, error = %e, "stopping an orphaned container failed");
                }
                self.remove_instance(&s.id).await;
            }
            self.teardown_pod(&uid, None).await;
        }
        // Sandboxes without containers (a crash between sandbox and container creation).
        let prefix = format!("{}.", self.cfg.node_name);
        let known: HashSet<String> = self.pods.lock().keys().cloned().collect();
        let net = self.net.clone();
        let leftover =
            tokio::task::spawn_blocking(move || net.list_netns()).await.ok().and_then(Result::ok).unwrap_or_default();
        for netns in leftover {
            if let Some(uid) = netns.strip_prefix(&prefix)
                && !known.contains(uid)
            {
                self.teardown_pod(uid, None).await;
            }
        }
    }

    /// Creates the pod bridge with the podCIDR's first address when it is missing (a node
    /// outside `rkube up`, whose fabric makes it).
    async fn ensure_bridge(&self, cidr: Ipv4Net) -> Result<(), KubeletError> {
        let net = self.net.clone();
        let bridge = self.cfg.bridge.clone();
        let gateway =
            Ipv4Net::new(gateway(cidr), cidr.prefix_len()).map_err(|_| KubeletError::BadPodCidr(cidr.to_string()))?;
        let result = tokio::task::spawn_blocking(move || -> Result<(), crate::net::Error> {
            match net.add_bridge(&Netns::Current, &bridge) {
                Ok(()) => {}
                Err(e) if e.is_already_exists() => return Ok(()),
                Err(e) => return Err(e),
            }
            match net.add_address(&Netns::Current, &bridge, gateway) {
                Err(e) if !e.is_already_exists() => return Err(e),
                _ => {}
            }
            net.set_sysctl(&Netns::Current, "net.ipv4.ip_forward", "1")
        })
        .await;
        match result {
            Ok(r) => Ok(r?),
            Err(_) => Ok(()),
        }
    }

    fn pod_netns(&self, uid: &str) -> String {
        format!("{}.{uid}", self.cfg.node_name)
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.cfg.data_dir.join("pods").join(uid)
    }

    /// `logs/<namespace>_<pod>_<uid>/<container>/<attempt>.log`, as upstream's
    /// `/var/log/pods` layout.
    fn log_path(&self, pod: &Pod, uid: &str, container: &str, attempt: u32) -> PathBuf {
        self.cfg
            .data_dir
            .join("logs")
            .join(format!("{}_{}_{uid}", pod.namespace().unwrap_or_default(), pod.name_any()))
            .join(container)
            .join(format!("{attempt}.log"))
    }

    fn has_exited(&self, id: &str) -> bool {
        self.containers_dir.join(id).join("exit.json").exists() || !self.containers_dir.join(id).exists()
    }

    /// Makes the pod's sandbox: address, network and IPC namespaces, /etc files.
    async fn setup_sandbox(&self, pod: &Pod, uid: &str) -> Result<worker::Sandbox, String> {
        let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
        let dir = self.pod_dir(uid);
        let etc_dir = dir.join("etc");
        std::fs::create_dir_all(&etc_dir).map_err(|e| format!("creating {}: {e}", etc_dir.display()))?;
        let (ip, netns) = if host_network {
            (None, None)
        } else {
            let cidr = (*self.pod_cidr.lock()).ok_or("the node has no podCIDR yet")?;
            let ip = {
                let mut ipam = self.ipam.lock();
                let ipam = ipam.as_mut().ok_or("IPAM is not ready")?;
                ipam.allocate(uid).map_err(|e| format!("allocating an address: {e}"))?
            };
            let name = self.pod_netns(uid);
            if !crate::net::netns::path(&name).exists() {
                let (net, bridge, n) = (self.net.clone(), self.cfg.bridge.clone(), name.clone());
                let gw = gateway(cidr);
                let started = std::time::Instant::now();
                tokio::task::spawn_blocking(move || {
                    crate::net::pod::setup_pod(net.as_ref(), &Netns::Current, &n, ip, cidr.prefix_len(), gw, &bridge)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("failed to set up the pod network: {e}"))?;
                tracing::debug!(pod = %pod.name_any(), %ip, elapsed = ?started.elapsed(), "pod network ready");
            }
            (Some(ip), Some(name))
        };
        let ipc = dir.join("ipc");
        if !ipc.exists() || !is_ns_file(&ipc) {
            crate::runtime::ns::create_ipc_namespace(&ipc)
                .await
                .map_err(|e| format!("creating the IPC namespace: {e}"))?;
        }
        let pod_ip = ip.unwrap_or(self.cfg.node_ip).to_string();
        let hosts = etc_dir.join("hosts");
        let resolv = etc_dir.join("resolv.conf");
        let hostname = etc_dir.join("hostname");
        let write = |path: &Path, text: String| {
            write_atomic(path, text.as_bytes()).map_err(|e| format!("writing {}: {e}", path.display()))
        };
        write(&hosts, sandbox::hosts_file(pod, &pod_ip, &self.cfg.dns.cluster_domain))?;
        write(&resolv, sandbox::resolv_conf(pod, &self.cfg.dns))?;
        write(&hostname, format!("{}\n", sandbox::hostname(pod)))?;
        Ok(worker::Sandbox {
            ip,
            netns,
            ipc,
            etc: EtcFiles { hosts: Some(hosts), resolv_conf: Some(resolv), hostname: Some(hostname) },
        })
    }

    async fn prepare_volumes(
        &self,
        pod: &Pod,
        uid: &str,
        pod_ips: &[String],
    ) -> Result<volumes::PreparedVolumes, String> {
        let dir = self.pod_dir(uid);
        let host_ips = vec![self.cfg.node_ip.to_string()];
        let allocatable = self.allocatable.lock().clone();
        let ctx = volumes::VolumeContext {
            node_allocatable: &allocatable,
            pod,
            pod_dir: &dir,
            node_name: &self.cfg.node_name,
            pod_ips,
            host_ips: &host_ips,
            cluster_ca_pem: self.cfg.cluster_ca_pem.as_deref(),
        };
        volumes::prepare(&ctx, self.source.as_ref()).await.map_err(|e| e.to_string())
    }

    async fn resolve_env(&self, pod: &Pod, c: &Container, pod_ips: &[String]) -> Result<Vec<(String, String)>, String> {
        let services: Vec<serde_json::Value> = self
            .services
            .lock()
            .as_ref()
            .map(|s| s.state().iter().filter_map(|svc| serde_json::to_value(svc.as_ref()).ok()).collect())
            .unwrap_or_default();
        let host_ips = vec![self.cfg.node_ip.to_string()];
        let allocatable = self.allocatable.lock().clone();
        let ctx = env::EnvContext {
            pod,
            node_name: &self.cfg.node_name,
            pod_ips,
            host_ips: &host_ips,
            services: &services,
            node_allocatable: &allocatable,
        };
        env::resolve(&ctx, c, self.source.as_ref()).await.map_err(|e| e.to_string())
    }

    /// Deletes a container instance from the runtime and releases its root filesystem.
    async fn remove_instance(&self, id: &str) {
        if let Err(e) = self.runtime.delete(id).await
            && !matches!(e, crate::runtime::RuntimeError::NotFound(_))
        {
            tracing::warn!(%id, error = %e, "deleting a container failed");
        }
        self.release_rootfs(id).await;
    }

    async fn release_rootfs(&self, id: &str) {
        let (store, id, dir) = (self.images.clone(), id.to_owned(), self.cfg.data_dir.join("rootfs").join(id));
        let result = tokio::task::spawn_blocking(move || store.release_rootfs(&id, &dir)).await;
        if let Ok(Err(e)) = result {
            tracing::warn!(error = %e, "releasing a root filesystem failed");
        }
    }

    /// Removes the pod's volumes, sandbox, address and files. Idempotent.
    async fn teardown_pod(&self, uid: &str, pod: Option<&Pod>) {
        let dir = self.pod_dir(uid);
        let d = dir.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || volumes::teardown(&d)).await {
            tracing::warn!(%uid, error = %e, "removing the pod's volumes failed");
        }
        let name = self.pod_netns(uid);
        let net = self.net.clone();
        if let Ok(Err(e)) =
            tokio::task::spawn_blocking(move || crate::net::pod::teardown_pod(net.as_ref(), &Netns::Current, &name))
                .await
        {
            tracing::warn!(%uid, error = %e, "removing the pod network failed");
        }
        if let Some(ipam) = self.ipam.lock().as_mut()
            && let Err(e) = ipam.release(uid)
        {
            tracing::warn!(%uid, error = %e, "releasing the pod address failed");
        }
        let ipc = dir.join("ipc");
        if ipc.exists() {
            let _ = crate::runtime::ns::remove_namespace(&ipc);
        }
        let _ = std::fs::remove_dir_all(&dir);
        if let Some(pod) = pod {
            let logs = self.cfg.data_dir.join("logs").join(format!(
                "{}_{}_{uid}",
                pod.namespace().unwrap_or_default(),
                pod.name_any()
            ));
            let _ = std::fs::remove_dir_all(logs);
        }
        // The pod's cgroup parent, left empty by the containers' deletion.
        let pod_cgroup = format!("/{}/pod{uid}", self.cfg.cgroup_parent.trim_matches('/'));
        let _ = crate::runtime::ns::remove_cgroup(&pod_cgroup);
    }
}

/// The pods' gateway: the podCIDR's first address, on the bridge.
fn gateway(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()) + 1)
}

/// Whether `path` is a bind-mounted namespace (an nsfs mount), not a leftover plain file.
fn is_ns_file(path: &Path) -> bool {
    rustix::fs::statfs(path).map(|s| s.f_type == 0x6e73_6673).unwrap_or(false)
}

/// Writes a file by renaming a temporary one over it, so a container never reads half of it.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The streaming server finds containers through the kubelet's pod table, with kubelet's
/// messages for the cases a user runs into (`kubectl logs` on a pod still starting, a
/// container name that does not exist, `--previous` without a previous instance).
#[async_trait::async_trait]
impl crate::stream::PodContainers for Kubelet {
    async fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<crate::stream::ContainerTarget, crate::stream::StreamError> {
        use crate::stream::StreamError;
        let shared = self
            .find_pod(namespace, pod)
            .ok_or_else(|| StreamError::NotFound(format!("pod {namespace}/{pod} not found on this node")))?;
        let name = match container {
            Some(c) => c.to_owned(),
            None => shared
                .default_container
                .clone()
                .ok_or_else(|| StreamError::BadRequest(format!("pod {pod} has no containers")))?,
        };
        let c = shared
            .containers
            .get(&name)
            .ok_or_else(|| StreamError::BadRequest(format!("container {name} is not valid for pod {pod}")))?;
        if previous {
            let (Some(id), Some(log)) = (c.previous_id.clone(), c.previous_log_path.clone()) else {
                return Err(StreamError::BadRequest(format!(
                    "previous terminated container \"{name}\" in pod \"{pod}\" not found"
                )));
            };
            return Ok(crate::stream::ContainerTarget {
                container_id: id,
                log_path: log,
                running: false,
                tty: c.tty,
                stdin: c.stdin,
            });
        }
        let id = c.current_id.clone().ok_or_else(|| {
            StreamError::BadRequest(format!(
                "container \"{name}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ))
        })?;
        Ok(crate::stream::ContainerTarget {
            container_id: id,
            log_path: c.log_path.clone(),
            running: c.running,
            tty: c.tty,
            stdin: c.stdin,
        })
    }
}
