//! A real API server on a loopback port over a fresh SQLite store, a scheduler running against
//! it through a kube client, and helpers that create nodes and pods as objects.
//!
//! Adapted from the API server's own test harness (`crates/apiserver/tests/support`).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use rkube_apiserver::server::{ApiServer, Config as ServerConfig};
use rkube_scheduler::SchedulerConfig;
use rkube_store::sqlite::SqliteStore;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub const KUBECTL: &str = "/usr/bin/kubectl";

pub struct Cluster {
    pub server: ApiServer,
    pub client: Client,
    pub dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
    scheduler: Option<JoinHandle<Result<(), rkube_scheduler::Error>>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(s) = self.scheduler.take() {
            s.abort();
        }
        self.server.shutdown();
    }
}

impl Cluster {
    /// An API server with no scheduler yet.
    pub async fn start() -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new().prefix("rkube-sched-test-").tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("open store"));
        let mut config = ServerConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
        config.compaction_interval = Duration::from_secs(3600);
        let server = ApiServer::start(config, store).await.expect("start API server");
        let client = client_for(&server.kubeconfig).await;
        let home = tempfile::Builder::new().prefix("rkube-kubectl-home-").tempdir().expect("home");
        Cluster { server, client, dir, home, scheduler: None }
    }

    /// An API server with the scheduler running against it.
    pub async fn with_scheduler() -> Cluster {
        let mut c = Cluster::start().await;
        c.start_scheduler(SchedulerConfig::default());
        c
    }

    /// Starts a scheduler, stopping the one already running if any.
    /// Ready nodes, then the scheduler. Creating the nodes first puts them all in the
    /// scheduler's first list, which it waits for; nodes created later may reach it after pods
    /// created later still, since the node and pod watches are not ordered with each other.
    pub async fn with_nodes(names: &[&str]) -> Cluster {
        let mut c = Cluster::start().await;
        c.ready_nodes(names).await;
        c.start_scheduler(SchedulerConfig::default());
        c
    }

    pub fn start_scheduler(&mut self, config: SchedulerConfig) {
        if let Some(old) = self.scheduler.take() {
            old.abort();
        }
        let client = self.client.clone();
        self.scheduler = Some(tokio::spawn(rkube_scheduler::run(client, config)));
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Creates a node, then sets its status through the status subresource, as a kubelet
    /// registering and then reporting would.
    pub async fn node(&self, spec: NodeSpec) {
        let nodes = self.nodes();
        let mut obj = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": spec.name, "labels": spec.labels},
            "spec": {"unschedulable": spec.unschedulable, "taints": spec.taints},
        });
        obj["metadata"]["labels"]["kubernetes.io/hostname"] = json!(spec.name);
        let node: Node = serde_json::from_value(obj).expect("node");
        nodes.create(&PostParams::default(), &node).await.expect("create node");
        let conditions = match spec.ready {
            Some(status) => json!([{"type": "Ready", "status": status, "reason": "KubeletReady", "message": "test"}]),
            None => json!([]),
        };
        let status = json!({"status": {
            "capacity": {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.max_pods},
            "allocatable": {"cpu": spec.cpu, "memory": spec.memory, "pods": spec.max_pods},
            "conditions": conditions,
        }});
        nodes.patch_status(&spec.name, &PatchParams::default(), &Patch::Merge(status)).await.expect("node status");
    }

    /// Creates ready nodes with default capacity.
    pub async fn ready_nodes(&self, names: &[&str]) {
        for n in names {
            self.node(NodeSpec::ready(n)).await;
        }
    }

    pub async fn create_pod(&self, pod: Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).expect("pod");
        self.pods().create(&PostParams::default(), &pod).await.expect("create pod")
    }

    /// Creates `n` pods owned by one ReplicaSet (by a controller owner reference).
    pub async fn replicas(&self, rs: &str, n: usize) -> Vec<String> {
        let mut names = Vec::new();
        for i in 0..n {
            let name = format!("{rs}-{i}");
            self.create_pod(replica_pod(rs, &name)).await;
            names.push(name);
        }
        names
    }

    /// Waits until every named pod is bound; returns pod → node.
    pub async fn wait_bound(&self, names: &[String]) -> BTreeMap<String, String> {
        let pods = self.pods();
        eventually(Duration::from_secs(30), "pods to be bound", || {
            let pods = pods.clone();
            async move {
                let list = pods.list(&ListParams::default()).await.ok()?;
                let placed: BTreeMap<String, String> = list
                    .items
                    .iter()
                    .filter_map(|p| Some((p.metadata.name.clone()?, p.spec.as_ref()?.node_name.clone()?)))
                    .filter(|(name, _)| names.contains(name))
                    .collect();
                (placed.len() == names.len()).then_some(placed)
            }
        })
        .await
    }

    pub async fn node_of(&self, pod: &str) -> Option<String> {
        self.pods().get(pod).await.ok()?.spec?.node_name
    }

    /// The events recorded about a pod, as (type, reason, message).
    pub async fn events_for(&self, pod: &str) -> Vec<(String, String, String)> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let lp = ListParams::default().fields(&format!("involvedObject.name={pod}"));
        let list = events.list(&lp).await.expect("list events");
        list.items
            .into_iter()
            .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect()
    }

    /// The pod's PodScheduled condition as (status, reason, message).
    pub async fn scheduled_condition(&self, pod: &str) -> Option<(String, String, String)> {
        let p = self.pods().get(pod).await.ok()?;
        let c = p.status?.conditions?.into_iter().find(|c| c.type_ == "PodScheduled")?;
        Some((c.status, c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
    }

    /// Runs kubectl with this cluster's kubeconfig and a fresh HOME.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(KUBECTL);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.server.kubeconfig)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 60 s"))
            .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"))
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it failed.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub async fn client_for(kubeconfig: &PathBuf) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kube config");
    Client::try_from(config).expect("kube client")
}

/// What a test node looks like; `NodeSpec::ready(name)` is a Ready node with 4 CPUs, 8 GiB and
/// room for 110 pods.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub name: String,
    /// The Ready condition's status, or `None` for a node that has reported no conditions.
    pub ready: Option<&'static str>,
    pub unschedulable: bool,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Value>,
    pub cpu: String,
    pub memory: String,
    pub max_pods: String,
}

impl NodeSpec {
    pub fn ready(name: &str) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            ready: Some("True"),
            unschedulable: false,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            cpu: "4".into(),
            memory: "8Gi".into(),
            max_pods: "110".into(),
        }
    }
}

/// A pod owned by ReplicaSet `rs`, labelled `app: rs`.
pub fn replica_pod(rs: &str, name: &str) -> Value {
    let mut pod = plain_pod(name);
    pod["metadata"]["labels"] = json!({"app": rs});
    pod["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": rs,
        "uid": format!("uid-of-replicaset-{rs}"),
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    pod
}

/// A pod with one container and nothing else.
pub fn plain_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]},
    })
}

/// How many of the placed pods are on each node.
pub fn per_node(placed: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for node in placed.values() {
        *out.entry(node.clone()).or_default() += 1;
    }
    out
}

/// Polls `f` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Blocks until the scheduler has seen that `node` is cordoned: a probe pod that may only go
/// to `node` is reported unschedulable for that reason. Watches of nodes and pods are not
/// ordered with each other, so without this a pod created right after a cordon could be
/// decided before the scheduler hears of the cordon. The probe is deleted afterwards.
pub async fn wait_cordon_seen(c: &Cluster, node: &str) {
    for attempt in 0.. {
        let probe = format!("probe-{node}-{attempt}");
        let mut pod = plain_pod(&probe);
        pod["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]
        }}});
        c.create_pod(pod).await;
        let seen = eventually(Duration::from_secs(10), "the probe to be decided", || async {
            if c.node_of(&probe).await.is_some() {
                return Some(false);
            }
            let (_, _, message) = c.scheduled_condition(&probe).await?;
            message.contains("were unschedulable").then_some(true)
        })
        .await;
        c.pods().delete(&probe, &DeleteParams::default().grace_period(0)).await.expect("delete probe");
        if seen {
            return;
        }
        assert!(attempt < 20, "the scheduler never saw node {node} cordoned");
    }
}
