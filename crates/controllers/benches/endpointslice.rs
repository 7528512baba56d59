//! How quickly a pod's readiness change reaches its EndpointSlice, objects only: 1,000
//! Services of 10 pods each (`BENCH_SERVICES`, `BENCH_CHANGES` for quicker runs), then one
//! readiness flip at a time through `/status`, timed from the write's acknowledgement (and
//! from its start) to the slice event showing the new condition on a watch. The baseline
//! in the same run is the API's floor: a ConfigMap write followed by its own watch event.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use rkube_apiserver::server::{ApiServer, Config};
use rkube_controllers::ControllersConfig;
use rkube_store::sqlite::SqliteStore;
use serde_json::json;

const PODS_PER_SERVICE: usize = 10;
const IN_FLIGHT: usize = 64;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ip(n: usize) -> String {
    format!("10.{}.{}.{}", 64 + n / 65536, (n / 256) % 256, n % 256)
}

fn pod_name(svc: usize, i: usize) -> String {
    format!("s{svc:04}-p{i}")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(name: &str, mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let (p50, p99) = (percentile(&v, 0.5), percentile(&v, 0.99));
    println!(
        "{name:<44} n={:<4} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        v.len(),
        p50,
        p99,
        v.last().copied().unwrap_or_default()
    );
    (p50, p99)
}

/// Whether a slice event shows `ip` with the given readiness.
fn shows(slice: &EndpointSlice, ip: &str, ready: bool) -> bool {
    slice.endpoints.iter().flatten().any(|e| {
        e.addresses.first().map(String::as_str) == Some(ip)
            && e.conditions.as_ref().and_then(|c| c.ready) == Some(ready)
    })
}

async fn setup(client: &Client, services: usize) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    futures::stream::iter(0..services * PODS_PER_SERVICE)
        .map(|n| {
            let pods = pods.clone();
            async move {
                let (svc, i) = (n / PODS_PER_SERVICE, n % PODS_PER_SERVICE);
                let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": pod_name(svc, i), "labels": {"app": format!("s{svc:04}")}},
                    "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx"}]},
                }))?;
                pods.create(&PostParams::default(), &pod).await?;
                let patch = json!({"status": {"phase": "Running", "podIP": ip(n), "podIPs": [{"ip": ip(n)}],
                    "conditions": [{"type": "Ready", "status": "True"}]}});
                pods.patch_status(&pod_name(svc, i), &PatchParams::default(), &Patch::Merge(&patch)).await?;
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .expect("create pods");
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    futures::stream::iter(0..services)
        .map(|s| {
            let svcs = svcs.clone();
            async move {
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("s{s:04}")},
                    "spec": {"selector": {"app": format!("s{s:04}")}, "ports": [{"port": 80, "targetPort": 8080}]},
                }))?;
                svcs.create(&PostParams::default(), &svc).await?;
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .expect("create services");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().labels("endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io");
    loop {
        let list = slices.list(&lp).await.map(|l| l.items).unwrap_or_default();
        let ready: usize = list.iter().flat_map(|s| s.endpoints.iter().flatten()).count();
        if ready == services * PODS_PER_SERVICE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("setup: {services} Services x {PODS_PER_SERVICE} pods, all in slices after {:.1?}", started.elapsed());
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let services = env("BENCH_SERVICES", 1000);
        let changes = env("BENCH_CHANGES", 200);
        let dir = tempfile::Builder::new().prefix("rkube-bench-eps-").tempdir().expect("tempdir");
        let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("db")).expect("open store"));
        let mut config = Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
        config.compaction_interval = Duration::from_secs(3600);
        let server = ApiServer::start(config, store).await.expect("API server");
        let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
        let client = Client::try_from(cfg.clone()).expect("client");
        let controllers_client = Client::try_from(cfg).expect("client");
        let controllers = tokio::spawn(async move {
            let _ = rkube_controllers::run(controllers_client, ControllersConfig::default()).await;
        });
        setup(&client, services).await;

        // Baseline: a ConfigMap write, then its event on a watch.
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "floor"}, "data": {"n": "0"}})).expect("cm");
        cms.create(&PostParams::default(), &cm).await.expect("create cm");
        let rv = cms.list(&ListParams::default()).await.expect("list").metadata.resource_version.unwrap_or_default();
        let mut stream =
            cms.watch(&WatchParams::default().fields("metadata.name=floor"), &rv).await.expect("watch").boxed();
        let (mut floor_ack, mut floor_start) = (Vec::new(), Vec::new());
        for n in 1..=changes {
            let patch = json!({"data": {"n": n.to_string()}});
            let start = Instant::now();
            cms.patch("floor", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch cm");
            let ack = Instant::now();
            while let Some(ev) = stream.next().await {
                if let Ok(WatchEvent::Modified(c)) = ev
                    && c.data.as_ref().and_then(|d| d.get("n")) == Some(&n.to_string())
                {
                    break;
                }
            }
            floor_ack.push(ack.elapsed());
            floor_start.push(start.elapsed());
        }

        // Readiness flips, one at a time, on pods spread over the Services.
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
        let rv = slices.list(&ListParams::default()).await.expect("list").metadata.resource_version.unwrap_or_default();
        let mut stream = slices.watch(&WatchParams::default(), &rv).await.expect("watch").boxed();
        let (mut eps_ack, mut eps_start) = (Vec::new(), Vec::new());
        for k in 0..changes {
            let svc = (k * 7919) % services;
            let i = k % PODS_PER_SERVICE;
            let n = svc * PODS_PER_SERVICE + i;
            // Each pod is flipped at most once per direction within a run of this size,
            // so the new readiness is the opposite of the last one written.
            let ready = (k / services) % 2 == 1;
            let patch =
                json!({"status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
            let start = Instant::now();
            pods.patch_status(&pod_name(svc, i), &PatchParams::default(), &Patch::Merge(&patch)).await.expect("flip");
            let ack = Instant::now();
            let want = ip(n);
            loop {
                match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                    Ok(Some(Ok(WatchEvent::Modified(s) | WatchEvent::Added(s)))) if shows(&s, &want, ready) => break,
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => panic!("no slice update for {} within 30 s", pod_name(svc, i)),
                }
            }
            eps_ack.push(ack.elapsed());
            eps_start.push(start.elapsed());
        }
        println!();
        let (_, floor99) = summary("floor: write ack -> watch event", floor_ack);
        let (_, floor99s) = summary("floor: write start -> watch event", floor_start);
        let (_, p99) = summary("readiness ack -> EndpointSlice on watch", eps_ack);
        let (_, p99s) = summary("readiness write start -> EndpointSlice", eps_start);
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-6);
        println!(
            "p99 ratio (from ack): {:.1}x the floor; from write start: {:.1}x",
            ratio(p99, floor99),
            ratio(p99s, floor99s)
        );
        println!("target p99 <= 50 ms: {}", if p99 <= Duration::from_millis(50) { "met" } else { "MISSED" });
        controllers.abort();
        drop(server);
    });
}
