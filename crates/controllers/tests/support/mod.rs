//! A real API server on a loopback port over a fresh SQLite store, the controllers
//! running against it through a real client, and a stand-in node agent that marks pods
//! running and ready through `/status`, since there is no kubelet (and no scheduler).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use rkube_apiserver::server::{ApiServer, Config};
use rkube_controllers::ControllersConfig;
use rkube_store::sqlite::SqliteStore;
use serde_json::json;

pub struct Cluster {
    pub server: ApiServer,
    pub client: Client,
    pub dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub kubelet: Kubelet,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The stand-in node agent: while `enabled`, every pod that is not ready becomes Running
/// and Ready after `delay`.
#[derive(Clone)]
pub struct Kubelet {
    pub enabled: Arc<AtomicBool>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub async fn client_for(kubeconfig: &std::path::Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("client config");
    Client::try_from(cfg).expect("client")
}

impl Cluster {
    /// Starts the API server, the controllers and the stand-in kubelet (which marks pods
    /// ready after `ready_delay`).
    pub async fn start(ready_delay: Duration) -> Cluster {
        Cluster::start_with(ready_delay, 1, HashSet::new()).await
    }

    /// As `start`, with `instances` independent copies of the controllers.
    pub async fn start_with(ready_delay: Duration, instances: usize, disabled: HashSet<String>) -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::Builder::new().prefix("rkube-ctl-test-").tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("open store"));
        let mut config = Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
        config.compaction_interval = Duration::from_secs(3600);
        let server = ApiServer::start(config, store).await.expect("start API server");
        let home = tempfile::Builder::new().prefix("rkube-kubectl-home-").tempdir().expect("home");
        let client = client_for(&server.kubeconfig).await;
        let mut tasks = Vec::new();
        for _ in 0..instances {
            // Each instance has its own client, informers, queues and expectations.
            let c = client_for(&server.kubeconfig).await;
            let cfg = ControllersConfig { disabled: disabled.clone(), ..Default::default() };
            tasks.push(tokio::spawn(async move {
                if let Err(e) = rkube_controllers::run(c, cfg).await {
                    panic!("controllers failed: {e}");
                }
            }));
        }
        let kubelet = Kubelet { enabled: Arc::new(AtomicBool::new(true)) };
        tasks.push(tokio::spawn(run_kubelet(client.clone(), kubelet.clone(), ready_delay)));
        Cluster { server, client, dir, home, kubelet, tasks }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.server.kubeconfig.clone()
    }

    /// Runs `bin args...` with this cluster's kubeconfig and a fresh HOME.
    pub async fn run(&self, bin: &str, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("KUBECONFIG", self.kubeconfig())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("{bin} {args:?} did not finish within 120 s"))
            .expect("run kubectl")
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it failed.
    pub async fn ok(&self, bin: &str, args: &[&str]) -> String {
        let out = self.run(bin, args).await;
        assert!(
            out.status.success(),
            "{bin} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn deployments(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }
}

async fn run_kubelet(client: Client, kubelet: Kubelet, delay: Duration) {
    let api: Api<Pod> = Api::all(client);
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            _ => continue,
        };
        if !kubelet.enabled.load(Ordering::SeqCst) || pod.metadata.deletion_timestamp.is_some() || is_ready(&pod) {
            continue;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let client_api: Api<Pod> = Api::namespaced(api.clone().into_client(), &ns);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let patch = json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            ]}});
            let _ = client_api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
        });
    }
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
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
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

pub fn template(app: &str, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels(&[("app", app)])), ..Default::default() }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "main".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

pub fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(labels(&[("app", name)])), ..Default::default() },
            template: template(name, image),
            ..Default::default()
        },
        status: None,
    }
}

/// Active (not deleting, not finished) pods in `ns` with label `app=<app>`.
pub async fn active_pods(c: &Cluster, ns: &str, app: &str) -> Vec<Pod> {
    let lp = kube::api::ListParams::default().labels(&format!("app={app}"));
    c.pods(ns)
        .list(&lp)
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}
