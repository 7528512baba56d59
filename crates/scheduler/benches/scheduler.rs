//! Scheduler throughput against a real API server, objects only: 1,000 pods on 100 nodes.
//!
//! Two runs, each on a fresh API server and store, measured the same way, from the first pod
//! create to the moment a watch shows the last pod bound:
//!
//! - **baseline**: no scheduler; each creating task binds its pod right after creating it,
//!   round-robin over the nodes, straight through the binding API. This is the floor the API
//!   server sets for creating and binding this many pods.
//! - **scheduler**: the scheduler runs; the same tasks only create pods.
//!
//! Run with `cargo bench -p rkube-scheduler --bench scheduler`. `PODS`, `NODES` and
//! `CREATORS` override the sizes.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use support::{Cluster, NodeSpec, replica_pod};
use tokio::sync::oneshot;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Sizes {
    pods: usize,
    nodes: usize,
    creators: usize,
}

fn main() {
    let sizes = Sizes { pods: env_or("PODS", 1000), nodes: env_or("NODES", 100), creators: env_or("CREATORS", 32) };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        println!(
            "scheduler throughput: {} pods on {} nodes, {} concurrent creators, one API server (SQLite store) in-process",
            sizes.pods, sizes.nodes, sizes.creators
        );
        let baseline = run(&sizes, Mode::Baseline).await;
        let scheduled = run(&sizes, Mode::Scheduler).await;
        let rate = |d: Duration| sizes.pods as f64 / d.as_secs_f64();
        println!(
            "baseline  (create + direct bind, round-robin): {:>7.3} s  {:>7.0} pods/s  (creates done after {:.3} s)",
            baseline.total.as_secs_f64(),
            rate(baseline.total),
            baseline.created.as_secs_f64()
        );
        println!(
            "scheduler (create, scheduler binds):           {:>7.3} s  {:>7.0} pods/s  (creates done after {:.3} s)",
            scheduled.total.as_secs_f64(),
            rate(scheduled.total),
            scheduled.created.as_secs_f64()
        );
        println!(
            "ratio: the scheduler run takes {:.2}x the baseline's time ({:.0}% of the API's floor throughput)",
            scheduled.total.as_secs_f64() / baseline.total.as_secs_f64(),
            100.0 * baseline.total.as_secs_f64() / scheduled.total.as_secs_f64()
        );
        let counts: Vec<usize> = scheduled.per_node.values().copied().collect();
        println!(
            "scheduler spread: {} nodes used, {}..{} pods per node",
            counts.len(),
            counts.iter().min().unwrap_or(&0),
            counts.iter().max().unwrap_or(&0)
        );
    });
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Baseline,
    Scheduler,
}

struct Outcome {
    /// First create to the last create's response.
    created: Duration,
    /// First create to the last pod seen bound.
    total: Duration,
    per_node: BTreeMap<String, usize>,
}

async fn run(sizes: &Sizes, mode: Mode) -> Outcome {
    let mut c = Cluster::start().await;
    let node_names: Vec<String> = (0..sizes.nodes).map(|i| format!("node-{i:03}")).collect();
    futures::stream::iter(&node_names)
        .for_each_concurrent(16, |n| {
            let c = &c;
            async move { c.node(NodeSpec { cpu: "32".into(), memory: "128Gi".into(), ..NodeSpec::ready(n) }).await }
        })
        .await;
    if mode == Mode::Scheduler {
        c.start_scheduler(Default::default());
        // One pod scheduled shows the scheduler has listed everything and is deciding.
        c.create_pod(support::plain_pod("warm-up")).await;
        c.wait_bound(&["warm-up".to_owned()]).await;
    }

    // Ten ReplicaSets of equal size, so spreading has real work to do.
    let names: Vec<(String, String)> =
        (0..sizes.pods).map(|i| (format!("rs{}", i % 10), format!("bench-{i:05}"))).collect();
    let watching: HashSet<String> = names.iter().map(|(_, n)| n.clone()).collect();
    let (ready_tx, ready_rx) = oneshot::channel();
    let observer = tokio::spawn(observe_bound(c.pods(), watching, ready_tx));
    ready_rx.await.expect("observer ready");

    let start = Instant::now();
    let pods = c.pods();
    futures::stream::iter(names.iter().enumerate())
        .for_each_concurrent(sizes.creators, |(i, (rs, name))| {
            let (c, pods, node_names) = (&c, &pods, &node_names);
            async move {
                c.create_pod(replica_pod(rs, name)).await;
                if mode == Mode::Baseline {
                    bind(pods, name, &node_names[i % node_names.len()]).await;
                }
            }
        })
        .await;
    let created = start.elapsed();
    let per_node = observer.await.expect("observer");
    let total = start.elapsed();
    drop(c);
    Outcome { created, total, per_node }
}

async fn bind(pods: &Api<Pod>, name: &str, node: &str) {
    let binding = Binding {
        metadata: ObjectMeta { name: Some(name.into()), namespace: Some("default".into()), ..Default::default() },
        target: ObjectReference { kind: Some("Node".into()), name: Some(node.into()), ..Default::default() },
    };
    pods.create_subresource::<_, serde_json::Value>("binding", name, &PostParams::default(), &binding)
        .await
        .expect("bind");
}

/// Watches pods until every one in `names` is bound; returns how many went to each node.
async fn observe_bound(
    pods: Api<Pod>,
    mut names: HashSet<String>,
    ready: oneshot::Sender<()>,
) -> BTreeMap<String, usize> {
    let mut per_node = BTreeMap::new();
    let mut ready = Some(ready);
    let stream = watcher(pods, watcher::Config::default());
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(watcher::Event::InitDone) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                continue;
            }
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(e) => panic!("watch failed: {e}"),
        };
        let (Some(name), Some(node)) = (pod.metadata.name, pod.spec.and_then(|s| s.node_name)) else { continue };
        if names.remove(&name) {
            *per_node.entry(node).or_default() += 1;
            if names.is_empty() {
                return per_node;
            }
        }
    }
    panic!("the watch ended with {} pods unbound", names.len());
}
