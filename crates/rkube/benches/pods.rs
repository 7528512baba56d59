//! Pod start-up on a real `rkube up` node, and the network setup of one pod sandbox, each
//! against a baseline measured in the same run. Needs root, runc and the images.
//!
//! 1. **create → Ready**: 50 nginx pods (the image present), created one after another, each
//!    timed from the create request to the watch showing it Ready; then 50 created at once.
//!    Baseline: the container runtime alone, `runc run -d` of the same image's root
//!    filesystem with a minimal spec, timed to the process running. The ratio is what the
//!    kubelet adds around runc (API round trips, sandbox, volumes, status).
//! 2. **network setup per pod**: a namespace, a veth pair onto a bridge, address, routes,
//!    through netlink as the agent does it, against the same steps with the `ip` command
//!    (what a CNI plugin's shell-out would cost).
//!
//! `RKUBE_BENCH_QUICK=1` uses 10 pods.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher::{self, Event};
use parking_lot::Mutex;
use rkube_agent::net::{NetOps, Netns};

fn quick() -> bool {
    std::env::var_os("RKUBE_BENCH_QUICK").is_some()
}

fn pct(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i.min(samples.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn rkube() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkube"));
    cmd.env("RKUBE_LOG", "warn");
    cmd
}

struct Up {
    name: String,
    dir: std::path::PathBuf,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = rkube().args(["down", "--name", &self.name, "--data-dir"]).arg(&self.dir).output();
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "imagePullPolicy": "IfNotPresent"}],
                 "terminationGracePeriodSeconds": 0}
    }))
    .expect("pod")
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Create → Ready for `names`, created `concurrent`ly or one after another.
async fn create_to_ready(api: &Api<Pod>, names: &[String], concurrent: bool) -> Vec<Duration> {
    let ready: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let notify = Arc::new(tokio::sync::Notify::new());
    let (r, n) = (ready.clone(), notify.clone());
    let stream = watcher::watcher(api.clone(), watcher::Config::default().labels("bench=pods"));
    let watch = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Ok(Event::Apply(p) | Event::InitApply(p)) = event
                && is_ready(&p)
            {
                let name = p.metadata.name.clone().unwrap_or_default();
                r.lock().entry(name).or_insert_with(Instant::now);
                n.notify_waiters();
            }
        }
    });
    // Let the watch establish before the clock starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut started: HashMap<String, Instant> = HashMap::new();
    let wait_for = |names: Vec<String>| {
        let (ready, notify) = (ready.clone(), notify.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let wake = notify.notified();
                if names.iter().all(|n| ready.lock().contains_key(n)) {
                    return;
                }
                assert!(Instant::now() < deadline, "pods did not become Ready");
                let _ = tokio::time::timeout(Duration::from_millis(50), wake).await;
            }
        }
    };
    if concurrent {
        let creates = names.iter().map(|name| {
            let api = api.clone();
            let name = name.clone();
            async move {
                let t = Instant::now();
                api.create(&PostParams::default(), &pod(&name)).await.expect("create pod");
                (name, t)
            }
        });
        started.extend(futures::future::join_all(creates).await);
        wait_for(names.to_vec()).await;
    } else {
        for name in names {
            started.insert(name.clone(), Instant::now());
            api.create(&PostParams::default(), &pod(name)).await.expect("create pod");
            wait_for(vec![name.clone()]).await;
        }
    }
    watch.abort();
    let ready = ready.lock();
    names.iter().map(|n| ready[n] - started[n]).collect()
}

async fn delete_all(api: &Api<Pod>, names: &[String]) {
    for n in names {
        let _ = api.delete(n, &DeleteParams::default()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let left = api.list(&kube::api::ListParams::default().labels("bench=pods")).await.map(|l| l.items.len());
        if left.is_ok_and(|n| n == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `runc run -d` of the nginx root filesystem with runc's default spec, to the process running.
fn runc_baseline(dir: &Path, images: &Path, samples: usize) -> Vec<Duration> {
    let store = rkube_agent::image::ImageStore::open(images).expect("image store");
    let image = store.resolve("nginx").expect("nginx image");
    let root = dir.join("runc-root");
    let mut out = Vec::new();
    for i in 0..samples {
        let id = format!("rkube-bench-{}-{i}", std::process::id());
        let bundle = dir.join(&id);
        std::fs::create_dir_all(&bundle).expect("bundle");
        let rootfs = store.prepare_rootfs(&id, &image, &bundle.join("rootfs")).expect("rootfs");
        let status = Command::new("runc").arg("spec").current_dir(&bundle).status().expect("runc spec");
        assert!(status.success());
        // The default spec runs `sh` with a terminal; run nginx detached instead.
        let spec_path = bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&spec_path).expect("spec")).expect("spec json");
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = serde_json::json!(["nginx", "-g", "daemon off;"]);
        spec["root"]["readonly"] = false.into();
        std::fs::write(&spec_path, serde_json::to_vec(&spec).expect("json")).expect("write spec");
        let t = Instant::now();
        let status = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["run", "-d", &id])
            .current_dir(&bundle)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("runc run");
        out.push(t.elapsed());
        assert!(status.success(), "runc run failed");
        let _ = Command::new("runc").arg("--root").arg(&root).args(["delete", "--force", &id]).status();
        let _ = store.release_rootfs(&rootfs.container_id, &rootfs.path);
        let _ = std::fs::remove_dir_all(&bundle);
    }
    out
}

/// Per-pod network setup with `ops` in a node namespace the bench makes and removes.
fn network_setup(ops: &dyn NetOps, tag: &str, samples: usize) -> Vec<Duration> {
    let node = format!("rkbn{}{tag}", std::process::id() % 100_000);
    let node_ns = Netns::named(&node);
    ops.create_netns(&node).expect("node netns");
    ops.add_bridge(&node_ns, "br0").expect("bridge");
    ops.add_address(&node_ns, "br0", "10.77.0.1/24".parse().expect("net")).expect("address");
    let mut out = Vec::new();
    for i in 0..samples {
        let pod = format!("{node}.p{i}");
        let ip = std::net::Ipv4Addr::new(10, 77, 0, 10 + i as u8);
        let t = Instant::now();
        rkube_agent::net::pod::setup_pod(ops, &node_ns, &pod, ip, 24, std::net::Ipv4Addr::new(10, 77, 0, 1), "br0")
            .expect("pod network");
        out.push(t.elapsed());
    }
    for i in 0..samples {
        let _ = rkube_agent::net::pod::teardown_pod(ops, &node_ns, &format!("{node}.p{i}"));
    }
    let _ = ops.delete_netns(&node);
    out
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = if quick() { 10 } else { 50 };
    let tmp = tempfile::Builder::new().prefix("rkube-bench-pods-").tempdir().expect("tempdir");
    let up = Up { name: format!("rkb{}", std::process::id() % 100_000), dir: tmp.path().join("cluster") };
    let out = rkube()
        .args(["up", "--listen", "127.0.0.1:0", "--nodes", "1", "--name", &up.name, "--data-dir"])
        .arg(&up.dir)
        .output()
        .expect("rkube up");
    assert!(out.status.success(), "rkube up failed: {}", String::from_utf8_lossy(&out.stderr));

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (mut sequential, mut burst) = rt.block_on(async {
        let config = kube::config::Kubeconfig::read_from(up.dir.join("kubeconfig")).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default()).await.expect("config");
        let client = kube::Client::try_from(config).expect("client");
        let api: Api<Pod> = Api::namespaced(client, "default");
        // One untimed pod warms the image's layers and the node's caches.
        let warm = vec!["warm".to_owned()];
        create_to_ready(&api, &warm, false).await;
        delete_all(&api, &warm).await;
        let names: Vec<String> = (0..n).map(|i| format!("seq-{i}")).collect();
        let sequential = create_to_ready(&api, &names, false).await;
        delete_all(&api, &names).await;
        let names: Vec<String> = (0..n).map(|i| format!("burst-{i}")).collect();
        let burst = create_to_ready(&api, &names, true).await;
        delete_all(&api, &names).await;
        (sequential, burst)
    });
    let mut runc = runc_baseline(tmp.path(), &up.dir.join("images"), n.min(20));
    drop(up);

    let netlink = rkube_agent::net::netlink::NetlinkOps::new().expect("netlink");
    let mut nl = network_setup(&netlink, "n", n);
    let mut ipc = network_setup(&rkube_agent::net::ipcmd::IpCommandOps, "i", n);

    let (sp50, sp99) = (pct(&mut sequential, 0.5), pct(&mut sequential, 0.99));
    let (bp50, bp99) = (pct(&mut burst, 0.5), pct(&mut burst, 0.99));
    let r50 = pct(&mut runc, 0.5);
    println!("pod create -> Ready, {n} nginx pods, image present, one node (release build)");
    println!("  one at a time   p50 {:>9}  p99 {:>9}   (target p50 <= 150 ms, p99 <= 500 ms)", ms(sp50), ms(sp99));
    println!("  all at once     p50 {:>9}  p99 {:>9}", ms(bp50), ms(bp99));
    println!("  baseline: runc run -d of the same image, p50 {}", ms(r50));
    println!("  ratio pod/runc (p50, one at a time): {:.2}x", sp50.as_secs_f64() / r50.as_secs_f64());
    let (n50, i50) = (pct(&mut nl, 0.5), pct(&mut ipc, 0.5));
    println!("pod network setup, {n} pods (namespace, veth onto a bridge, address, route)");
    println!("  netlink (rkube)  p50 {:>9}  p99 {:>9}   (target <= 5 ms)", ms(n50), ms(pct(&mut nl, 0.99)));
    println!("  ip command       p50 {:>9}  p99 {:>9}", ms(i50), ms(pct(&mut ipc, 0.99)));
    println!("  ratio netlink/ip: {:.2}x", n50.as_secs_f64() / i50.as_secs_f64());
}
