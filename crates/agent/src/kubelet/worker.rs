//! One pod's worker: a task that owns everything of one pod on this node and drives it
//! towards the pod's spec, level-triggered.
//!
//! Each pass of [`Worker::sync`] looks at the latest pod object and at what exists (the
//! sandbox, the container instances and how they ended, the probes' verdicts), takes the next
//! steps (create the sandbox, start or restart a container once its back-off has passed,
//! kill an unhealthy one), then computes the pod status and writes it only if it changed.
//! A pass is cheap when nothing changed (a few `stat`s), so the worker simply runs again when
//! the pod object changes, when a probe's verdict changes, or on a short tick that notices
//! container exits.
//!
//! Container instances are named `<pod uid>.<container>.<attempt>`; the attempt number is the
//! container's restart count. Because the name carries it, an agent restarted after a crash
//! rebuilds the same picture from the runtime's list of containers, and restart counts do not
//! change.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use rkube_controllers::events::EventType;
use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::status::{self, ContainerView, Observed, State, Terminated};
use super::{Kubelet, PodShared, SharedContainer, probe, sandbox};
use crate::image::{Image, PullPolicy};
use crate::runtime::spec::{self, EtcFiles, NamespaceMode, PodNamespaces, SpecInput, UserDb};
use crate::runtime::{self as rt, ContainerState, CreateRequest, ExitReason};

/// How often a pass runs when nothing wakes the worker earlier: the latency of noticing a
/// container's exit.
const TICK: Duration = Duration::from_millis(200);
/// Upstream's crash-loop back-off cap.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long a pod with a failing sandbox or volume waits before trying again.
const SETUP_RETRY: Duration = Duration::from_secs(2);

/// One instance of a container: what the runtime has under `id`.
struct Instance {
    id: String,
    started_at: Option<jiff::Timestamp>,
    exited: Option<Terminated>,
    probers: Option<probe::Probers>,
}

/// What the worker keeps per container of the spec.
#[derive(Default)]
struct Rec {
    /// The current instance's attempt number, which is the restart count.
    attempt: u32,
    current: Option<Instance>,
    /// The id of the instance before the current one, kept for `logs --previous`.
    previous_id: Option<String>,
    last_terminated: Option<Terminated>,
    waiting: Option<(String, Option<String>)>,
    /// The delay before the next restart after a crash; None before the first restart.
    backoff: Option<Duration>,
    image_id: String,
    /// The Unhealthy and Killing events of the current instance were recorded.
    unhealthy_reported: bool,
    /// The current instance's readiness failure was recorded as an event.
    not_ready_reported: bool,
    pulled_reported: bool,
}

/// What all containers of the pod share, as [`Kubelet::setup_sandbox`] made it.
pub(super) struct Sandbox {
    /// The pod's address; None for a host-network pod.
    pub(super) ip: Option<Ipv4Addr>,
    /// The pod's network namespace; None for a host-network pod.
    pub(super) netns: Option<String>,
    pub(super) ipc: PathBuf,
    pub(super) etc: EtcFiles,
}

pub(super) struct Worker {
    k: Arc<Kubelet>,
    uid: String,
    shared: Arc<Mutex<PodShared>>,
    wake: Arc<Notify>,
    sandbox: Option<Sandbox>,
    volumes: Option<super::volumes::PreparedVolumes>,
    volumes_refreshed: Option<Instant>,
    init: BTreeMap<String, Rec>,
    containers: BTreeMap<String, Rec>,
    start_time: Option<jiff::Timestamp>,
    pending: Option<(String, String)>,
    retry_at: Option<Instant>,
}

/// Parses `<uid>.<container>.<attempt>`.
pub(super) fn parse_id(id: &str) -> Option<(&str, &str, u32)> {
    let mut parts = id.splitn(3, '.');
    let uid = parts.next()?;
    let name = parts.next()?;
    let attempt = parts.next()?.parse().ok()?;
    Some((uid, name, attempt))
}

fn instance_id(uid: &str, name: &str, attempt: u32) -> String {
    format!("{uid}.{name}.{attempt}")
}

fn terminated_from(state: &ContainerState) -> Terminated {
    let exit = state.exit.clone();
    let code = exit.as_ref().map_or(137, |e| e.code);
    let reason = exit.as_ref().map_or(ExitReason::Unknown, |e| e.reason);
    Terminated {
        exit_code: code,
        signal: exit.as_ref().and_then(|e| e.signal),
        reason: reason.as_str().to_owned(),
        message: None,
        started_at: state.started_at.and_then(|t| jiff::Timestamp::try_from(t).ok()),
        finished_at: exit.as_ref().and_then(|e| e.finished_at).and_then(|t| jiff::Timestamp::try_from(t).ok()),
        container_id: Some(format!("rkube://{}", state.id)),
    }
}

fn image_config(image: &Image) -> spec::ImageConfig {
    spec::ImageConfig {
        entrypoint: image.config.entrypoint.clone(),
        cmd: image.config.cmd.clone(),
        env: image.config.env.clone(),
        working_dir: Some(image.config.working_dir.clone()).filter(|w| !w.is_empty()),
        user: Some(image.config.user.clone()).filter(|u| !u.is_empty()),
    }
}

/// `docker.io/library/nginx@sha256:…` from `docker.io/library/nginx:latest` and the digest.
fn image_id(image: &Image) -> String {
    let repo = match image.reference.rsplit_once('@') {
        Some((repo, _)) => repo,
        None => match image.reference.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => image.reference.as_str(),
        },
    };
    format!("{repo}@{}", image.manifest_digest)
}

impl Worker {
    pub(super) fn new(
        k: Arc<Kubelet>,
        uid: String,
        shared: Arc<Mutex<PodShared>>,
        adopted: Vec<ContainerState>,
    ) -> Worker {
        let mut w = Worker {
            k,
            uid,
            shared,
            wake: Arc::new(Notify::new()),
            sandbox: None,
            volumes: None,
            volumes_refreshed: None,
            init: BTreeMap::new(),
            containers: BTreeMap::new(),
            start_time: None,
            pending: None,
            retry_at: None,
        };
        w.adopt(adopted);
        w
    }

    /// Rebuilds the records of containers that exist already (after an agent restart).
    fn adopt(&mut self, states: Vec<ContainerState>) {
        let mut by_name: BTreeMap<String, Vec<(u32, ContainerState)>> = BTreeMap::new();
        for s in states {
            if let Some((_, name, attempt)) = parse_id(&s.id) {
                by_name.entry(name.to_owned()).or_default().push((attempt, s.clone()));
            }
        }
        for (name, mut instances) in by_name {
            instances.sort_by_key(|(a, _)| *a);
            let Some((attempt, latest)) = instances.pop() else { continue };
            let mut rec = Rec { attempt, ..Default::default() };
            if let Some((_, prev)) = instances.pop() {
                rec.previous_id = Some(prev.id.clone());
                rec.last_terminated = Some(terminated_from(&prev));
            }
            // Anything older than the previous instance is no longer needed.
            for (_, old) in instances {
                self.spawn_remove(old.id);
            }
            let exited = latest.exit.is_some() || latest.status == rt::Status::Stopped;
            rec.current = Some(Instance {
                id: latest.id.clone(),
                started_at: latest.started_at.and_then(|t| jiff::Timestamp::try_from(t).ok()),
                exited: exited.then(|| terminated_from(&latest)),
                probers: None,
            });
            if attempt > 0 {
                rec.backoff = Some(self.k.cfg.backoff_base);
            }
            // Init and regular containers share the name space; the spec tells them apart at
            // the first pass, where records in the wrong map are moved.
            self.containers.insert(name, rec);
        }
    }

    fn spawn_remove(&self, id: String) {
        let k = self.k.clone();
        tokio::spawn(async move { k.remove_instance(&id).await });
    }

    /// The worker's life: sync until the pod is gone, then clean up.
    pub(super) async fn run(mut self, mut rx: watch::Receiver<Option<Arc<Pod>>>) {
        loop {
            let pod = rx.borrow_and_update().clone();
            match pod {
                None => {
                    self.terminate(None).await;
                    break;
                }
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    self.terminate(Some(&pod)).await;
                    self.finish_deletion(&pod).await;
                    break;
                }
                Some(pod) => self.sync(&pod).await,
            }
            let wake = self.wake.clone();
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    // The kubelet dropped the sender: it is shutting down. Pods keep running.
                    return;
                },
                _ = wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
        self.k.forget(&self.uid);
    }

    fn event(&self, pod: &Pod, ty: EventType, reason: &str, message: String) {
        self.k.recorder.event(pod, ty, reason, message);
    }

    async fn sync(&mut self, pod: &Pod) {
        let spec = match pod.spec.as_ref() {
            Some(s) => s.clone(),
            None => return,
        };
        if self.start_time.is_none() {
            self.start_time = pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0)
                .or_else(|| Some(jiff::Timestamp::now()));
        }
        // Records adopted before the spec was known: move init containers' to their map.
        if let Some(inits) = spec.init_containers.as_ref() {
            for c in inits {
                if let Some(rec) = self.containers.remove(&c.name) {
                    self.init.insert(c.name.clone(), rec);
                }
            }
        }
        let ready_to_retry = self.retry_at.is_none_or(|t| Instant::now() >= t);
        if self.sandbox.is_none() && ready_to_retry {
            match self.k.setup_sandbox(pod, &self.uid).await {
                Ok(s) => {
                    self.sandbox = Some(s);
                    self.pending = None;
                }
                Err(message) => {
                    self.event(pod, EventType::Warning, "FailedCreatePodSandBox", message.clone());
                    self.pending = Some(("ContainerCreating".into(), message));
                    self.retry_at = Some(Instant::now() + SETUP_RETRY);
                }
            }
        }
        if self.sandbox.is_some() && (self.volumes.is_none() && ready_to_retry || self.volumes_due()) {
            let ctx_ips = self.pod_ips();
            match self.k.prepare_volumes(pod, &self.uid, &ctx_ips).await {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.volumes_refreshed = Some(Instant::now());
                    self.pending = None;
                }
                Err(message) => {
                    if self.volumes.is_none() {
                        self.event(pod, EventType::Warning, "FailedMount", message.clone());
                        self.pending = Some(("ContainerCreating".into(), message));
                        self.retry_at = Some(Instant::now() + SETUP_RETRY);
                    } else {
                        tracing::warn!(pod = %pod.name_any(), %message, "refreshing volumes failed");
                        self.volumes_refreshed = Some(Instant::now());
                    }
                }
            }
        }
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
        if self.sandbox.is_some() && self.volumes.is_some() {
            // Init containers run one after another, each to success, before the others.
            let mut initialized = true;
            for c in spec.init_containers.iter().flatten() {
                let init_policy = if policy == "Always" { "OnFailure" } else { policy.as_str() };
                let mut rec = self.init.remove(&c.name).unwrap_or_default();
                self.sync_container(pod, c, &mut rec, init_policy).await;
                let succeeded = rec.current.as_ref().and_then(|i| i.exited.as_ref()).is_some_and(|t| t.exit_code == 0);
                self.init.insert(c.name.clone(), rec);
                if !succeeded {
                    initialized = false;
                    break;
                }
            }
            if initialized {
                for c in &spec.containers {
                    let mut rec = self.containers.remove(&c.name).unwrap_or_default();
                    self.sync_container(pod, c, &mut rec, &policy).await;
                    self.containers.insert(c.name.clone(), rec);
                }
            }
        }
        self.publish_shared(pod);
        self.write_status(pod).await;
    }

    fn volumes_due(&self) -> bool {
        self.volumes_refreshed.is_some_and(|t| t.elapsed() >= self.k.cfg.volume_refresh)
    }

    fn pod_ips(&self) -> Vec<String> {
        match self.sandbox.as_ref().and_then(|s| s.ip) {
            Some(ip) => vec![ip.to_string()],
            None => vec![],
        }
    }

    /// One container of the spec: notice its exit, react to probes, (re)start it.
    async fn sync_container(&mut self, pod: &Pod, c: &Container, rec: &mut Rec, policy: &str) {
        let pod_name = pod.name_any();
        let namespace = pod.namespace().unwrap_or_default();
        if let Some(inst) = rec.current.as_mut()
            && inst.exited.is_none()
        {
            if self.k.has_exited(&inst.id) {
                match self.k.runtime.state(&inst.id).await {
                    Ok(state) => inst.exited = Some(terminated_from(&state)),
                    Err(e) => {
                        tracing::warn!(id = %inst.id, error = %e, "reading an exited container's state failed");
                    }
                }
                inst.probers = None;
            } else if let Some(message) = inst.probers.as_ref().and_then(|p| p.state.lock().unhealthy.clone()) {
                if !rec.unhealthy_reported {
                    self.event(pod, EventType::Warning, "Unhealthy", message.clone());
                    self.event(
                        pod,
                        EventType::Normal,
                        "Killing",
                        format!("Container {} failed liveness probe, will be restarted", c.name),
                    );
                    rec.unhealthy_reported = true;
                }
                let grace = Duration::from_secs(
                    pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30).clamp(0, 30)
                        as u64,
                );
                let exit = rt::stop(self.k.runtime.as_ref(), &inst.id, grace).await;
                let mut t = match self.k.runtime.state(&inst.id).await {
                    Ok(state) => terminated_from(&state),
                    Err(_) => Terminated {
                        exit_code: exit.as_ref().map_or(137, |e| e.code),
                        signal: None,
                        reason: "Error".into(),
                        message: None,
                        started_at: inst.started_at,
                        finished_at: Some(jiff::Timestamp::now()),
                        container_id: Some(format!("rkube://{}", inst.id)),
                    },
                };
                t.message = Some(message);
                inst.exited = Some(t);
                inst.probers = None;
            } else if inst.probers.is_none() {
                // Adopted after an agent restart: its probes start again from the verdicts
                // the pod status last showed.
                let reported = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .and_then(|cs| cs.iter().find(|cs| cs.name == c.name));
                let target = probe::Target {
                    pod_ip: self
                        .sandbox
                        .as_ref()
                        .and_then(|s| s.ip)
                        .map(std::net::IpAddr::V4)
                        .or(Some(std::net::IpAddr::V4(self.k.cfg.node_ip))),
                    container_id: inst.id.clone(),
                    runtime: self.k.runtime.clone(),
                };
                inst.probers = Some(probe::resume(
                    c,
                    target,
                    self.wake.clone(),
                    reported.and_then(|r| r.started).unwrap_or(true),
                    reported.is_some_and(|r| r.ready),
                ));
            } else if let Some(p) = inst.probers.as_ref() {
                let state = p.state.lock().clone();
                if !state.ready
                    && let Some(message) = state.last_failure.clone()
                    && !rec.not_ready_reported
                {
                    self.event(pod, EventType::Warning, "Unhealthy", message);
                    rec.not_ready_reported = true;
                } else if state.ready {
                    rec.not_ready_reported = false;
                }
            }
        }
        let exited = rec.current.as_ref().and_then(|i| i.exited.clone());
        match (&rec.current, exited) {
            (Some(_), None) => {}
            (Some(_), Some(t)) => {
                let restart = policy == "Always" || (policy == "OnFailure" && t.exit_code != 0);
                if !restart {
                    return;
                }
                let finished = t.finished_at.unwrap_or_else(jiff::Timestamp::now);
                if let Some(delay) = rec.backoff {
                    let until = finished
                        .checked_add(jiff::SignedDuration::try_from(delay).unwrap_or_default())
                        .unwrap_or(finished);
                    if jiff::Timestamp::now() < until {
                        let message = format!(
                            "back-off {} restarting failed container={} pod={pod_name}_{namespace}({})",
                            humanize(delay),
                            c.name,
                            self.uid
                        );
                        if rec.waiting.as_ref().map(|(r, _)| r.as_str()) != Some("CrashLoopBackOff") {
                            self.event(
                                pod,
                                EventType::Warning,
                                "BackOff",
                                format!(
                                    "Back-off restarting failed container {} in pod {pod_name}_{namespace}({})",
                                    c.name, self.uid
                                ),
                            );
                        }
                        rec.waiting = Some(("CrashLoopBackOff".into(), Some(message)));
                        return;
                    }
                }
                rec.backoff = Some(match rec.backoff {
                    None => self.k.cfg.backoff_base,
                    Some(d) => (d * 2).min(BACKOFF_MAX),
                });
                // The instance before the one that just ended is no longer needed.
                if let Some(old) = rec.previous_id.take() {
                    self.k.remove_instance(&old).await;
                }
                let ended = rec.current.take().map(|i| i.id);
                rec.previous_id = ended;
                rec.last_terminated = Some(t);
                rec.attempt += 1;
                rec.unhealthy_reported = false;
                self.start(pod, c, rec).await;
            }
            (None, _) => self.start(pod, c, rec).await,
        }
    }

    /// Creates and starts the next instance of a container. Failures before the process runs
    /// leave the container waiting with kubelet's reason; a failure of runc itself counts as
    /// a run that ended at once (StartError), so it restarts with back-off.
    async fn start(&self, pod: &Pod, c: &Container, rec: &mut Rec) {
        let Some(sandbox) = self.sandbox.as_ref() else { return };
        let Some(volumes) = self.volumes.as_ref() else { return };
        let k = self.k.clone();
        let image_name = c.image.clone().unwrap_or_default();
        let policy = c
            .image_pull_policy
            .as_deref()
            .and_then(PullPolicy::parse)
            .unwrap_or_else(|| PullPolicy::default_for(&image_name));
        let image = {
            let store = k.images.clone();
            let name = image_name.clone();
            match tokio::task::spawn_blocking(move || store.ensure(&name, policy)).await {
                Ok(Ok(image)) => image,
                Ok(Err(e)) => {
                    let mut reason = e.reason().to_owned();
                    if reason == "ErrImagePull"
                        && rec.waiting.as_ref().is_some_and(|(r, _)| r == "ErrImagePull" || r == "ImagePullBackOff")
                    {
                        reason = "ImagePullBackOff".into();
                    }
                    if rec.waiting.as_ref().map(|(r, _)| r.as_str()) != Some(reason.as_str()) {
                        self.event(pod, EventType::Warning, "Failed", e.to_string());
                        self.event(pod, EventType::Warning, "Failed", format!("Error: {}", e.reason()));
                    }
                    rec.waiting = Some((reason, Some(e.to_string())));
                    return;
                }
                Err(e) => {
                    rec.waiting = Some(("ImageInspectError".into(), Some(e.to_string())));
                    return;
                }
            }
        };
        rec.image_id = image_id(&image);
        if !rec.pulled_reported {
            self.event(
                pod,
                EventType::Normal,
                "Pulled",
                format!("Container image \"{image_name}\" already present on machine"),
            );
            rec.pulled_reported = true;
        }
        let env = match k.resolve_env(pod, c, &self.pod_ips()).await {
            Ok(env) => env,
            Err(message) => {
                self.config_error(pod, rec, message);
                return;
            }
        };
        let mounts = match super::volumes::container_mounts_with_env(c, volumes, &env) {
            Ok(m) => m,
            Err(e) => {
                self.config_error(pod, rec, e.to_string());
                return;
            }
        };
        let id = instance_id(&self.uid, &c.name, rec.attempt);
        let rootfs_dir = k.cfg.data_dir.join("rootfs").join(&id);
        let rootfs = {
            let (store, id, dir, image) = (k.images.clone(), id.clone(), rootfs_dir.clone(), image.clone());
            match tokio::task::spawn_blocking(move || store.prepare_rootfs(&id, &image, &dir)).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    self.create_error(pod, rec, e.to_string());
                    return;
                }
                Err(e) => {
                    self.create_error(pod, rec, e.to_string());
                    return;
                }
            }
        };
        let users = UserDb::read(&rootfs.path).unwrap_or_default();
        let namespaces = PodNamespaces {
            network: match &sandbox.netns {
                Some(ns) => NamespaceMode::Join(crate::net::netns::path(ns)),
                None => NamespaceMode::Host,
            },
            ipc: NamespaceMode::Join(sandbox.ipc.clone()),
            shm: None,
        };
        let hostname = sandbox::hostname(pod);
        let cgroups = spec::cgroups_path(&k.cfg.cgroup_parent, &self.uid, &id);
        let image_config = image_config(&image);
        let privileged = c.security_context.as_ref().and_then(|s| s.privileged).unwrap_or(false);
        let devices = if privileged { spec::host_devices().unwrap_or_default() } else { Vec::new() };
        let input = SpecInput {
            image: &image_config,
            container: c,
            pod_security_context: pod.spec.as_ref().and_then(|s| s.security_context.as_ref()),
            env: &env,
            users: &users,
            rootfs: &rootfs.path,
            hostname: &hostname,
            namespaces: &namespaces,
            volumes: &mounts,
            etc_files: &sandbox.etc,
            cgroups_path: &cgroups,
            host_devices: &devices,
        };
        let oci = match spec::build(&input) {
            Ok(s) => s,
            Err(e) => {
                k.release_rootfs(&id).await;
                self.config_error(pod, rec, e.to_string());
                return;
            }
        };
        let log_path = k.log_path(pod, &self.uid, &c.name, rec.attempt);
        if let Some(dir) = log_path.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            self.create_error(pod, rec, format!("creating the log directory: {e}"));
            return;
        }
        let created = k.runtime.create(CreateRequest { id: id.clone(), spec: oci, log_path }).await;
        let started = match created {
            Ok(_) => k.runtime.start(&id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = started {
            // runc's message ("exec: \"nope\": executable file not found in $PATH") is what
            // the user needs to see; the instance counts as one that ended at once.
            let message = e.to_string();
            self.event(pod, EventType::Warning, "Failed", format!("Error: {message}"));
            let now = jiff::Timestamp::now();
            rec.current = Some(Instance {
                id: id.clone(),
                started_at: Some(now),
                exited: Some(Terminated {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(message),
                    started_at: Some(now),
                    finished_at: Some(now),
                    container_id: Some(format!("rkube://{id}")),
                }),
                probers: None,
            });
            rec.waiting = None;
            return;
        }
        self.event(pod, EventType::Normal, "Created", format!("Created container: {}", c.name));
        self.event(pod, EventType::Normal, "Started", format!("Started container {}", c.name));
        let target = probe::Target {
            pod_ip: sandbox.ip.map(std::net::IpAddr::V4).or(Some(std::net::IpAddr::V4(k.cfg.node_ip))),
            container_id: id.clone(),
            runtime: k.runtime.clone(),
        };
        let probers = probe::start(c, target, self.wake.clone());
        rec.current =
            Some(Instance { id, started_at: Some(jiff::Timestamp::now()), exited: None, probers: Some(probers) });
        rec.waiting = None;
    }

    fn config_error(&self, pod: &Pod, rec: &mut Rec, message: String) {
        if rec.waiting.as_ref().and_then(|(_, m)| m.as_deref()) != Some(message.as_str()) {
            self.event(pod, EventType::Warning, "Failed", format!("Error: {message}"));
        }
        rec.waiting = Some(("CreateContainerConfigError".into(), Some(message)));
    }

    fn create_error(&self, pod: &Pod, rec: &mut Rec, message: String) {
        if rec.waiting.as_ref().and_then(|(_, m)| m.as_deref()) != Some(message.as_str()) {
            self.event(pod, EventType::Warning, "Failed", format!("Error: {message}"));
        }
        rec.waiting = Some(("CreateContainerError".into(), Some(message)));
    }

    /// What the streaming server needs to find this pod's containers.
    fn publish_shared(&self, pod: &Pod) {
        let mut shared = self.shared.lock();
        shared.namespace = pod.namespace().unwrap_or_default();
        shared.name = pod.name_any();
        shared.default_container = pod
            .annotations()
            .get("kubectl.kubernetes.io/default-container")
            .cloned()
            .or_else(|| pod.spec.as_ref().and_then(|s| s.containers.first()).map(|c| c.name.clone()));
        shared.containers.clear();
        let specs: Vec<&Container> =
            pod.spec.iter().flat_map(|s| s.init_containers.iter().flatten().chain(s.containers.iter())).collect();
        for c in specs {
            let rec = self.init.get(&c.name).or_else(|| self.containers.get(&c.name));
            let Some(rec) = rec else { continue };
            shared.containers.insert(
                c.name.clone(),
                SharedContainer {
                    current_id: rec.current.as_ref().map(|i| i.id.clone()),
                    previous_id: rec.previous_id.clone(),
                    running: rec.current.as_ref().is_some_and(|i| i.exited.is_none()),
                    tty: c.tty.unwrap_or(false),
                    stdin: c.stdin.unwrap_or(false),
                    log_path: self.k.log_path(pod, &self.uid, &c.name, rec.attempt),
                    previous_log_path: rec
                        .attempt
                        .checked_sub(1)
                        .filter(|_| rec.previous_id.is_some())
                        .map(|a| self.k.log_path(pod, &self.uid, &c.name, a)),
                },
            );
        }
    }

    fn view(&self, c: &Container, rec: Option<&Rec>, pod_initializing: bool) -> ContainerView {
        let base = ContainerView {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: String::new(),
            container_id: None,
            restart_count: 0,
            state: State::Waiting {
                reason: if pod_initializing { "PodInitializing".into() } else { "ContainerCreating".into() },
                message: None,
            },
            last_terminated: None,
            ready: false,
            started: false,
        };
        let Some(rec) = rec else { return base };
        let mut v = ContainerView {
            image_id: rec.image_id.clone(),
            restart_count: rec.attempt as i32,
            last_terminated: rec.last_terminated.clone(),
            ..base
        };
        if let Some(inst) = &rec.current {
            v.container_id = Some(format!("rkube://{}", inst.id));
            match &inst.exited {
                None => {
                    let probes = inst.probers.as_ref().map(|p| p.state.lock().clone());
                    v.state = State::Running { started_at: inst.started_at.unwrap_or_else(jiff::Timestamp::now) };
                    v.started = probes.as_ref().is_none_or(|p| p.started);
                    v.ready = probes.as_ref().is_none_or(|p| p.ready);
                }
                Some(t) => {
                    v.state = State::Terminated(t.clone());
                }
            }
        }
        if let Some((reason, message)) = &rec.waiting {
            // A container waiting to restart shows the previous run as its last state.
            if let Some(t) = rec.current.as_ref().and_then(|i| i.exited.clone()) {
                v.last_terminated = Some(t);
            }
            v.state = State::Waiting { reason: reason.clone(), message: message.clone() };
            v.ready = false;
            v.started = false;
        }
        v
    }

    async fn write_status(&mut self, pod: &Pod) {
        let Some(spec) = pod.spec.as_ref() else { return };
        let init_done = spec.init_containers.iter().flatten().all(|c| {
            self.init
                .get(&c.name)
                .and_then(|r| r.current.as_ref())
                .and_then(|i| i.exited.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        });
        let observed = Observed {
            init_containers: spec
                .init_containers
                .iter()
                .flatten()
                .map(|c| self.view(c, self.init.get(&c.name), false))
                .collect(),
            containers: spec
                .containers
                .iter()
                .map(|c| self.view(c, self.containers.get(&c.name), !init_done))
                .collect(),
            pod_ips: self.pod_ips(),
            host_ips: vec![self.k.cfg.node_ip.to_string()],
            start_time: self.start_time,
            pending_reason: None,
        };
        let mut new = status::pod_status(pod, &observed, jiff::Timestamp::now());
        if let Some((_, message)) = &self.pending {
            // Sandbox and volume problems show in the containers' waiting message, as upstream
            // shows them in events; the pod keeps no reason of its own.
            for cs in new.container_statuses.iter_mut().flatten() {
                if let Some(w) = cs.state.as_mut().and_then(|s| s.waiting.as_mut())
                    && w.reason.as_deref() == Some("ContainerCreating")
                {
                    w.message = Some(message.clone());
                }
            }
        }
        let old = pod.status.clone().unwrap_or_default();
        // Times are kept at the API's second precision and transition times carried over,
        // so the same facts give an equal status, which is then not written again.
        if old == new {
            return;
        }
        let mut patch = match serde_json::to_value(&new) {
            Ok(v) => v,
            Err(_) => return,
        };
        // A merge patch keeps fields it does not mention: clear the ones that went away.
        if let (Some(p), Ok(Value::Object(o))) = (patch.as_object_mut(), serde_json::to_value(&old)) {
            for key in o.keys() {
                if !p.contains_key(key) && key != "nominatedNodeName" && key != "resize" {
                    p.insert(key.clone(), Value::Null);
                }
            }
        }
        let api: Api<Pod> = Api::namespaced(self.k.client.clone(), &pod.namespace().unwrap_or_default());
        let body = serde_json::json!({"status": patch});
        if let Err(e) = api.patch_status(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&body)).await {
            tracing::debug!(pod = %pod.name_any(), error = %e, "writing the pod status failed; retrying at the next pass");
        }
    }

    /// Stops every container (gracefully when the pod is given), then removes the sandbox,
    /// volumes and everything else of the pod on this node.
    async fn terminate(&mut self, pod: Option<&Pod>) {
        let grace = pod
            .and_then(|p| {
                p.metadata
                    .deletion_grace_period_seconds
                    .or_else(|| p.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            })
            .unwrap_or(30)
            .max(0) as u64;
        let grace = Duration::from_secs(grace);
        let mut running = Vec::new();
        for (name, rec) in self.init.iter_mut().chain(self.containers.iter_mut()) {
            if let Some(inst) = rec.current.as_mut() {
                inst.probers = None;
                if inst.exited.is_none() {
                    running.push((name.clone(), inst.id.clone()));
                }
            }
        }
        if let Some(pod) = pod {
            for (name, _) in &running {
                self.event(pod, EventType::Normal, "Killing", format!("Stopping container {name}"));
            }
        }
        let runtime = self.k.runtime.clone();
        let stops = running.iter().map(|(_, id)| {
            let runtime = runtime.clone();
            async move {
                if let Err(e) = rt::stop(runtime.as_ref(), id, grace).await {
                    tracing::warn!(%id, error = %e, "stopping a container failed");
                }
            }
        });
        futures::future::join_all(stops).await;
        let mut ids: Vec<String> = Vec::new();
        for rec in self.init.values().chain(self.containers.values()) {
            ids.extend(rec.current.as_ref().map(|i| i.id.clone()));
            ids.extend(rec.previous_id.clone());
        }
        for id in ids {
            self.k.remove_instance(&id).await;
        }
        self.init.clear();
        self.containers.clear();
        self.k.teardown_pod(&self.uid, pod).await;
        self.sandbox = None;
        self.volumes = None;
    }

    /// The last step of a graceful deletion, which only the node may take: remove the object.
    async fn finish_deletion(&self, pod: &Pod) {
        let api: Api<Pod> = Api::namespaced(self.k.client.clone(), &pod.namespace().unwrap_or_default());
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(self.uid.clone()), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&pod.name_any(), &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = %pod.name_any(), error = %e, "deleting the pod object failed"),
        }
    }
}

/// `10s`, `1m20s`, `5m0s`, as Go prints durations in kubelet's back-off message.
fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 { format!("{s}s") } else { format!("{}m{}s", s / 60, s % 60) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_ids_round_trip() {
        let id = instance_id("0b6e0c1a-5f7e-4a55-9d1e-7d1c9b1f2e3a", "nginx", 3);
        assert_eq!(parse_id(&id), Some(("0b6e0c1a-5f7e-4a55-9d1e-7d1c9b1f2e3a", "nginx", 3)));
        assert_eq!(parse_id("no-dots"), None);
        assert_eq!(parse_id("a.b.c"), None);
    }

    #[test]
    fn backoff_messages_read_like_go_durations() {
        assert_eq!(humanize(Duration::from_secs(10)), "10s");
        assert_eq!(humanize(Duration::from_secs(80)), "1m20s");
        assert_eq!(humanize(BACKOFF_MAX), "5m0s");
    }
}
