//! The real kubectl drives the cluster while the scheduler runs: `cordon` and `uncordon`
//! change where new pods go.

mod support;

use k8s_openapi::api::core::v1::Node;
use support::{Cluster, per_node, plain_pod, wait_cordon_seen};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cordon_and_uncordon_are_honoured() {
    let c = Cluster::with_nodes(&["n1", "n2", "n3"]).await;

    let out = c.kubectl_ok(&["cordon", "n1"]).await;
    assert_eq!(out.trim(), "node/n1 cordoned");
    let node: Node = c.nodes().get("n1").await.expect("n1");
    assert_eq!(node.spec.and_then(|s| s.unschedulable), Some(true));
    let listed = c.kubectl_ok(&["get", "nodes"]).await;
    assert!(listed.lines().any(|l| l.starts_with("n1") && l.contains("SchedulingDisabled")), "{listed}");
    wait_cordon_seen(&c, "n1").await;

    let names = c.replicas("web", 6).await;
    let placed = c.wait_bound(&names).await;
    assert_eq!(per_node(&placed).get("n1"), None, "{placed:?}");

    let out = c.kubectl_ok(&["uncordon", "n1"]).await;
    assert_eq!(out.trim(), "node/n1 uncordoned");
    // n1 runs none of the ReplicaSet's pods, so the next three all go there once the
    // scheduler has seen the uncordon; a pod pinned to n1 shows when it has.
    let mut pinned = plain_pod("pinned");
    pinned["spec"]["nodeSelector"] = serde_json::json!({"kubernetes.io/hostname": "n1"});
    c.create_pod(pinned).await;
    assert_eq!(c.wait_bound(&["pinned".to_owned()]).await["pinned"], "n1");
    let more: Vec<String> = (6..9).map(|i| format!("web-{i}")).collect();
    for name in &more {
        c.create_pod(support::replica_pod("web", name)).await;
    }
    let placed = c.wait_bound(&more).await;
    assert!(placed.values().all(|n| n == "n1"), "{placed:?}");

    let wide = c.kubectl_ok(&["get", "pods", "-o", "wide"]).await;
    assert!(wide.lines().any(|l| l.starts_with("web-7 ") && l.contains(" n1 ")), "{wide}");
}
