//! The node lifecycle controller against a real API server, with the scheduler and the
//! workload controllers: a node whose agent stops renewing its Lease goes Ready=Unknown
//! and is tainted unreachable, its pods become not ready and are evicted and replaced on
//! the healthy node, except a pod that tolerates the taint; when the agent comes back the
//! node is Ready again and loses the taints.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Container, Node, NodeStatus, Pod, PodSpec, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use rkube_apiserver::server::{ApiServer, Config};
use rkube_controllers::ControllersConfig;
use rkube_controllers::nodelifecycle::NodeLifecycleConfig;
use rkube_store::sqlite::SqliteStore;
use serde_json::json;
use support::{client_for, deployment, eventually, is_ready};

const NS: &str = "default";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// A stand-in node agent: while `alive`, it renews its node's Lease and marks the pods
/// bound to its node Running and Ready.
struct Agent {
    alive: Arc<AtomicBool>,
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Posts Ready=True for `name`, as a kubelet does when it starts.
async fn post_ready(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
         "lastHeartbeatTime": now(), "lastTransitionTime": now()},
    ]}});
    nodes.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("post node status");
}

async fn run_agent(client: Client, name: String, alive: Arc<AtomicBool>) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::all(client.clone());
    let mut was_alive = false;
    loop {
        let is_alive = alive.load(Ordering::SeqCst);
        if is_alive {
            if !was_alive {
                post_ready(&client, &name).await;
            }
            let spec = LeaseSpec {
                holder_identity: Some(name.clone()),
                lease_duration_seconds: Some(1),
                renew_time: Some(MicroTime(jiff::Timestamp::now())),
                ..Default::default()
            };
            let renewed = match leases.get_opt(&name).await {
                Ok(Some(mut l)) => {
                    l.spec = Some(spec);
                    leases.replace(&name, &PostParams::default(), &l).await.is_ok()
                }
                Ok(None) => {
                    let l = Lease {
                        metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
                        spec: Some(spec),
                    };
                    leases.create(&PostParams::default(), &l).await.is_ok()
                }
                Err(_) => false,
            };
            if !renewed {
                tracing::debug!(node = %name, "lease renewal failed; trying again");
            }
            let lp = ListParams::default().fields(&format!("spec.nodeName={name}"));
            for p in pods.list(&lp).await.map(|l| l.items).unwrap_or_default() {
                if p.metadata.deletion_timestamp.is_some() || is_ready(&p) {
                    continue;
                }
                let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
                let patch = json!({"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now()},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now()},
                ]}});
                let _ = api.patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
            }
        }
        was_alive = is_alive;
        // The agent's own pace, not synchronisation: a kubelet renews its Lease periodically.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn node(name: &str) -> Node {
    let allocatable: std::collections::BTreeMap<String, Quantity> = [("cpu", "4"), ("memory", "8Gi"), ("pods", "110")]
        .iter()
        .map(|(k, v)| ((*k).into(), Quantity((*v).into())))
        .collect();
    Node {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: None,
        status: Some(NodeStatus {
            allocatable: Some(allocatable.clone()),
            capacity: Some(allocatable),
            ..Default::default()
        }),
    }
}

fn node_of(p: &Pod) -> &str {
    p.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

fn ready_condition(n: &Node) -> Option<(String, Option<String>, Option<String>)> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn health_taints(n: &Node) -> Vec<String> {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .filter(|t| t.key.starts_with("node.kubernetes.io/"))
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect()
        })
        .unwrap_or_default()
}

async fn app_pods(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    let lp = ListParams::default().labels(&format!("app={app}"));
    pods.list(&lp).await.map(|l| l.items).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_node_is_tainted_and_its_pods_move() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::Builder::new().prefix("rkube-nlc-test-").tempdir().expect("tempdir");
    let home = tempfile::Builder::new().prefix("rkube-kubectl-home-").tempdir().expect("home");
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("open store"));
    let mut config = Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
    config.compaction_interval = Duration::from_secs(3600);
    let server = ApiServer::start(config, store).await.expect("start API server");
    let client = client_for(&server.kubeconfig).await;

    let nodes: Api<Node> = Api::all(client.clone());
    for n in ["node-a", "node-b"] {
        nodes.create(&PostParams::default(), &node(n)).await.expect("create node");
    }
    let mut tasks = Vec::new();
    let mut agents = HashMap::new();
    for n in ["node-a", "node-b"] {
        let alive = Arc::new(AtomicBool::new(true));
        tasks.push(tokio::spawn(run_agent(client.clone(), n.to_owned(), alive.clone())));
        agents.insert(n, Agent { alive });
    }
    let cfg = ControllersConfig {
        node_lifecycle: NodeLifecycleConfig {
            node_monitor_grace_period: Duration::from_secs(1),
            pod_eviction_timeout: Duration::from_secs(3),
            node_monitor_period: Duration::from_millis(200),
        },
        ..Default::default()
    };
    let c = client_for(&server.kubeconfig).await;
    tasks.push(tokio::spawn(async move {
        if let Err(e) = rkube_controllers::run(c, cfg).await {
            panic!("controllers failed: {e}");
        }
    }));
    let s = client_for(&server.kubeconfig).await;
    tasks.push(tokio::spawn(async move {
        if let Err(e) = rkube_scheduler::run(s, rkube_scheduler::SchedulerConfig::default()).await {
            panic!("scheduler failed: {e}");
        }
    }));

    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let deployments = Api::namespaced(client.clone(), NS);
    deployments.create(&PostParams::default(), &deployment("web", 4, "nginx:1")).await.expect("create deployment");
    let tolerant = Pod {
        metadata: ObjectMeta {
            name: Some("tolerant".into()),
            labels: Some(support::labels(&[("app", "tolerant")])),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container { name: "main".into(), image: Some("nginx:1".into()), ..Default::default() }],
            node_name: Some("node-a".into()),
            tolerations: Some(vec![Toleration {
                key: Some(UNREACHABLE.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    };
    pods.create(&PostParams::default(), &tolerant).await.expect("create tolerant pod");

    // The scheduler spreads the replicas over both nodes and the agents make them ready.
    eventually(Duration::from_secs(60), "4 ready web pods on both nodes", || async {
        let ps = app_pods(&pods, "web").await;
        let on_a = ps.iter().filter(|p| node_of(p) == "node-a").count();
        (ps.len() == 4 && ps.iter().all(is_ready) && on_a > 0 && on_a < 4).then_some(())
    })
    .await;
    eventually(Duration::from_secs(30), "the tolerant pod to be ready", || async {
        pods.get("tolerant").await.ok().filter(is_ready).map(|_| ())
    })
    .await;
    let on_a: Vec<String> =
        app_pods(&pods, "web").await.iter().filter(|p| node_of(p) == "node-a").filter_map(|p| p.uid()).collect();

    // Node A's agent goes silent.
    agents["node-a"].alive.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(10), "node-a to be Unknown with the unreachable taints", || async {
        let n = nodes.get("node-a").await.ok()?;
        let ready = ready_condition(&n)?;
        let taints = health_taints(&n);
        (ready
            == (
                "Unknown".into(),
                Some("NodeStatusUnknown".into()),
                Some("Kubelet stopped posting node status.".into()),
            )
            && taints.contains(&format!("{UNREACHABLE}:NoSchedule"))
            && taints.contains(&format!("{UNREACHABLE}:NoExecute")))
        .then_some(())
    })
    .await;
    // Its pods are marked not ready before they are evicted.
    eventually(Duration::from_secs(3), "node-a's pods to be not ready", || async {
        let ps = pods.list(&ListParams::default()).await.ok()?.items;
        ps.iter().filter(|p| node_of(p) == "node-a").all(|p| !is_ready(p)).then_some(())
    })
    .await;
    let out = run_kubectl(&server.kubeconfig, home.path(), &["get", "nodes"]).await;
    let line = out.lines().find(|l| l.starts_with("node-a")).unwrap_or_default();
    assert!(line.split_whitespace().nth(1) == Some("NotReady"), "{out}");
    let line = out.lines().find(|l| l.starts_with("node-b")).unwrap_or_default();
    assert!(line.split_whitespace().nth(1) == Some("Ready"), "{out}");

    // Within the eviction timeout (and a margin), node-a's web pods are gone and replaced
    // on node-b; the tolerant pod stays.
    eventually(Duration::from_secs(15), "node-a's web pods to be replaced on node-b", || async {
        let ps = app_pods(&pods, "web").await;
        (ps.len() == 4
            && ps.iter().all(|p| node_of(p) == "node-b" && is_ready(p))
            && // Replacements may reuse a name (the ReplicaSet derives names from slots), so
            // the evicted pods are told apart by UID.
            !ps.iter().any(|p| p.uid().is_some_and(|u| on_a.contains(&u))))
        .then_some(())
    })
    .await;
    let t = pods.get("tolerant").await.expect("the tolerant pod stays");
    assert_eq!(node_of(&t), "node-a");
    assert!(t.metadata.deletion_timestamp.is_none());
    assert!(!is_ready(&t));

    // Node A comes back.
    agents["node-a"].alive.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(10), "node-a to be Ready without health taints", || async {
        let n = nodes.get("node-a").await.ok()?;
        (ready_condition(&n)?.0 == "True" && health_taints(&n).is_empty()).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the tolerant pod to be ready again", || async {
        pods.get("tolerant").await.ok().filter(is_ready).map(|_| ())
    })
    .await;
    for t in &tasks {
        t.abort();
    }
}

async fn run_kubectl(kubeconfig: &std::path::Path, home: &std::path::Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new("/usr/bin/kubectl")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run kubectl");
    assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
