//! How long a Deployment takes to go from 0 to 1,000 ready replicas, objects only: the
//! controllers create the pods and the bench plays the node agent, marking each new pod
//! Running and Ready through `/status`. As a baseline, the same run first creates 1,000
//! pods directly through the API (as fast as the controllers may: up to 64 in flight) and
//! marks them ready the same way; the ratio is the controllers' overhead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use rkube_apiserver::server::{ApiServer, Config};
use rkube_controllers::ControllersConfig;
use rkube_store::sqlite::SqliteStore;
use serde_json::json;

const REPLICAS: usize = 1000;
const IN_FLIGHT: usize = 64;

fn template(app: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some([("app".to_owned(), app.to_owned())].into()), ..Default::default() }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "main".into(), image: Some("nginx:1".into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

/// Marks every pod in `ns` ready as soon as it is seen, until dropped.
async fn kubelet(client: Client, ns: String) {
    let api: Api<Pod> = Api::namespaced(client, &ns);
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let marker = tokio::spawn(
        tokio_stream_like(rx)
            .map(move |name| {
                let api = api.clone();
                async move {
                    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
                    let patch = json!({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                    let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .for_each(|()| async {}),
    );
    while let Some(ev) = stream.next().await {
        if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready"));
            if !ready && p.metadata.deletion_timestamp.is_none() && tx.send(p.name_any()).is_err() {
                break;
            }
        }
    }
    marker.abort();
}

fn tokio_stream_like(mut rx: tokio::sync::mpsc::UnboundedReceiver<String>) -> impl futures::Stream<Item = String> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn ready_count(client: &Client, ns: &str) -> usize {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = api.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
    pods.iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

async fn make_namespace(client: &Client, name: &str) {
    let ns = Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("namespace");
}

async fn baseline(client: &Client) -> Duration {
    make_namespace(client, "baseline").await;
    let k = tokio::spawn(kubelet(client.clone(), "baseline".into()));
    let api: Api<Pod> = Api::namespaced(client.clone(), "baseline");
    let start = Instant::now();
    futures::stream::iter(0..REPLICAS)
        .map(|i| {
            let api = api.clone();
            async move {
                let pod = Pod {
                    metadata: ObjectMeta {
                        name: Some(format!("pod-{i}")),
                        labels: Some([("app".to_owned(), "base".to_owned())].into()),
                        ..Default::default()
                    },
                    spec: template("base").spec,
                    status: None,
                };
                api.create(&PostParams::default(), &pod).await.expect("create pod");
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .for_each(|()| async {})
        .await;
    while ready_count(client, "baseline").await < REPLICAS {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    k.abort();
    took
}

async fn with_controllers(client: &Client) -> Duration {
    make_namespace(client, "bench").await;
    let k = tokio::spawn(kubelet(client.clone(), "bench".into()));
    let api: Api<Deployment> = Api::namespaced(client.clone(), "bench");
    let d = Deployment {
        metadata: ObjectMeta { name: Some("web".into()), ..Default::default() },
        spec: DeploymentSpec {
            replicas: Some(i32::try_from(REPLICAS).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            },
            template: template("web"),
            ..Default::default()
        },
        status: None,
    };
    let start = Instant::now();
    api.create(&PostParams::default(), &d).await.expect("create deployment");
    loop {
        let d = api.get("web").await.expect("get");
        let st = d.status.unwrap_or_default();
        if st.available_replicas == Some(REPLICAS as i32) && st.updated_replicas == Some(REPLICAS as i32) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = start.elapsed();
    k.abort();
    took
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new().prefix("rkube-bench-").tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("store"));
        let mut config = Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
        config.compaction_interval = Duration::from_secs(3600);
        let server = ApiServer::start(config, store).await.expect("API server");
        let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
        let client = Client::try_from(cfg).expect("client");

        let base = baseline(&client).await;
        println!("baseline: {REPLICAS} pods created directly and marked ready in {:.2} s", base.as_secs_f64());

        let ctl = Client::try_from(
            kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig"),
                &Default::default(),
            )
            .await
            .expect("config"),
        )
        .expect("client");
        let controllers = tokio::spawn(async move {
            let _ = rkube_controllers::run(ctl, ControllersConfig::default()).await;
        });
        let took = with_controllers(&client).await;
        println!("deployment: 0 -> {REPLICAS} available replicas in {:.2} s", took.as_secs_f64());
        println!("ratio (deployment / baseline): {:.2}", took.as_secs_f64() / base.as_secs_f64());
        controllers.abort();
    });
}
