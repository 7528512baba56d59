//! The scheduler against a real API server: nodes and pods are created as objects through
//! the API, and the tests look only at what the API then shows.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Cluster, NodeSpec, eventually, per_node, plain_pod, replica_pod};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_two_nodes_land_on_different_nodes() {
    let c = Cluster::with_nodes(&["n1", "n2"]).await;
    let names = c.replicas("web", 2).await;
    let placed = c.wait_bound(&names).await;
    assert_eq!(per_node(&placed).len(), 2, "{placed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_replicas_on_three_nodes_land_three_each() {
    let c = Cluster::start().await;
    c.ready_nodes(&["n1", "n2", "n3"]).await;
    // The pods exist before the scheduler starts, so they all arrive at once in its first
    // list: the burst is decided before any binding shows up in the watch.
    let names = c.replicas("web", 9).await;
    let mut c = c;
    c.start_scheduler(Default::default());
    let placed = c.wait_bound(&names).await;
    assert_eq!(per_node(&placed).into_values().collect::<Vec<_>>(), vec![3, 3, 3], "{placed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_replicas_created_while_running_land_three_each() {
    let c = Cluster::with_nodes(&["n1", "n2", "n3"]).await;
    let names = c.replicas("web", 9).await;
    let placed = c.wait_bound(&names).await;
    assert_eq!(per_node(&placed).into_values().collect::<Vec<_>>(), vec![3, 3, 3], "{placed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cordoned_node_gets_no_pods() {
    let c = Cluster::start().await;
    c.ready_nodes(&["n1", "n3"]).await;
    c.node(NodeSpec { unschedulable: true, ..NodeSpec::ready("n2") }).await;
    let mut c = c;
    c.start_scheduler(Default::default());
    let names = c.replicas("web", 6).await;
    let placed = c.wait_bound(&names).await;
    let counts = per_node(&placed);
    assert_eq!(counts.get("n2"), None, "{placed:?}");
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), vec![3, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_nodes_get_no_pods() {
    let c = Cluster::start().await;
    c.ready_nodes(&["ready"]).await;
    c.node(NodeSpec { ready: Some("False"), ..NodeSpec::ready("not-ready") }).await;
    c.node(NodeSpec { ready: Some("Unknown"), ..NodeSpec::ready("unknown") }).await;
    c.node(NodeSpec { ready: None, ..NodeSpec::ready("silent") }).await;
    let mut c = c;
    c.start_scheduler(Default::default());
    let names = c.replicas("web", 4).await;
    let placed = c.wait_bound(&names).await;
    assert!(placed.values().all(|n| n == "ready"), "{placed:?}");

    // A pod that cannot go to the ready node says why the others were no good.
    let mut pod = plain_pod("elsewhere");
    pod["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["ready"]}]}]
    }}});
    c.create_pod(pod).await;
    let (_, _, message) =
        eventually(Duration::from_secs(10), "the condition", || c.scheduled_condition("elsewhere")).await;
    assert_eq!(
        message,
        "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
         1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, \
         2 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_becoming_ready_takes_waiting_pods() {
    let c = Cluster::with_scheduler().await;
    c.node(NodeSpec { ready: Some("False"), ..NodeSpec::ready("n1") }).await;
    c.create_pod(plain_pod("waiting")).await;
    eventually(Duration::from_secs(10), "the pod to be reported unschedulable", || async {
        c.scheduled_condition("waiting").await.filter(|(s, _, _)| s == "False")
    })
    .await;
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
    c.nodes().patch_status("n1", &Default::default(), &kube::api::Patch::Merge(status)).await.expect("node ready");
    let placed = c.wait_bound(&["waiting".to_owned()]).await;
    assert_eq!(placed["waiting"], "n1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selectors_and_taints_are_honoured() {
    let c = Cluster::start().await;
    c.node(NodeSpec {
        labels: [("disk".to_owned(), "ssd".to_owned())].into_iter().collect(),
        ..NodeSpec::ready("ssd")
    })
    .await;
    c.node(NodeSpec {
        taints: vec![json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})],
        ..NodeSpec::ready("gpu")
    })
    .await;
    c.ready_nodes(&["plain"]).await;
    let mut c = c;
    c.start_scheduler(Default::default());

    let mut names = Vec::new();
    for i in 0..3 {
        let name = format!("wants-ssd-{i}");
        let mut pod = plain_pod(&name);
        pod["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        c.create_pod(pod).await;
        names.push(name);
    }
    let placed = c.wait_bound(&names).await;
    assert!(placed.values().all(|n| n == "ssd"), "{placed:?}");

    // Without a toleration, no pod goes to the tainted node, however empty it is.
    let names = c.replicas("web", 6).await;
    let placed = c.wait_bound(&names).await;
    assert!(placed.values().all(|n| n != "gpu"), "{placed:?}");

    let mut tolerant = plain_pod("tolerant");
    tolerant["spec"]["tolerations"] =
        json!([{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]);
    tolerant["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "gpu"});
    c.create_pod(tolerant).await;
    assert_eq!(c.wait_bound(&["tolerant".to_owned()]).await["tolerant"], "gpu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_pod_is_reported_and_placed_once_a_node_fits() {
    let mut c = Cluster::start().await;
    c.ready_nodes(&["n1", "n2"]).await;
    c.node(NodeSpec { unschedulable: true, ..NodeSpec::ready("n3") }).await;
    c.start_scheduler(Default::default());
    let mut pod = plain_pod("huge");
    pod["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "100", "memory": "1Gi"}});
    c.create_pod(pod).await;

    let want = "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.";
    let condition = eventually(Duration::from_secs(10), "the PodScheduled condition", || async {
        c.scheduled_condition("huge").await.filter(|(_, _, m)| m == want)
    })
    .await;
    assert_eq!(condition, ("False".to_owned(), "Unschedulable".to_owned(), want.to_owned()));
    let events = eventually(Duration::from_secs(10), "the FailedScheduling event", || async {
        let events = c.events_for("huge").await;
        events.iter().any(|(_, reason, _)| reason == "FailedScheduling").then_some(events)
    })
    .await;
    assert!(events.contains(&("Warning".to_owned(), "FailedScheduling".to_owned(), want.to_owned())), "{events:?}");
    assert_eq!(c.node_of("huge").await, None);

    // Adding a node big enough gives the waiting pod another attempt.
    c.node(NodeSpec { cpu: "128".into(), ..NodeSpec::ready("big") }).await;
    let placed = c.wait_bound(&["huge".to_owned()]).await;
    assert_eq!(placed["huge"], "big");
    let events = eventually(Duration::from_secs(10), "the Scheduled event", || async {
        let events = c.events_for("huge").await;
        events.iter().any(|(_, reason, _)| reason == "Scheduled").then_some(events)
    })
    .await;
    assert!(
        events.contains(&(
            "Normal".to_owned(),
            "Scheduled".to_owned(),
            "Successfully assigned default/huge to big".to_owned()
        )),
        "{events:?}"
    );
    let (status, _, _) = c.scheduled_condition("huge").await.expect("condition");
    assert_eq!(status, "True", "binding sets PodScheduled=True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_fill_nodes_exactly() {
    let mut c = Cluster::start().await;
    c.node(NodeSpec { cpu: "1".into(), ..NodeSpec::ready("n1") }).await;
    c.node(NodeSpec { cpu: "1".into(), ..NodeSpec::ready("n2") }).await;
    c.start_scheduler(Default::default());
    let mut names = Vec::new();
    for i in 0..5 {
        let name = format!("p{i}");
        let mut pod = plain_pod(&name);
        pod["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "400m"}});
        c.create_pod(pod).await;
        names.push(name);
    }
    // Two fit on each node (800m of 1000m); the fifth does not fit anywhere.
    let placed = eventually(Duration::from_secs(20), "four pods bound", || async {
        let mut placed = Vec::new();
        for n in &names {
            if let Some(node) = c.node_of(n).await {
                placed.push(node);
            }
        }
        (placed.len() == 4).then_some(placed)
    })
    .await;
    assert_eq!(placed.iter().filter(|n| *n == "n1").count(), 2);
    let unplaced = eventually(Duration::from_secs(10), "the fifth to be reported", || async {
        for n in &names {
            if let Some((s, _, m)) = c.scheduled_condition(n).await
                && s == "False"
            {
                return Some(m);
            }
        }
        None
    })
    .await;
    assert_eq!(unplaced, "0/2 nodes are available: 2 Insufficient cpu.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_are_not_ours_are_left_alone() {
    let c = Cluster::with_nodes(&["n1", "n2"]).await;
    let mut other = plain_pod("other-scheduler");
    other["spec"]["schedulerName"] = json!("my-scheduler");
    c.create_pod(other).await;
    let mut preset = plain_pod("preset");
    preset["spec"]["nodeName"] = json!("n2");
    c.create_pod(preset).await;
    // A pod of ours, created last, shows the scheduler has had its chance with the others.
    c.create_pod(plain_pod("ours")).await;
    c.wait_bound(&["ours".to_owned()]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.node_of("other-scheduler").await, None);
    assert_eq!(c.node_of("preset").await.as_deref(), Some("n2"));
    assert!(c.events_for("preset").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_ports_do_not_collide() {
    let c = Cluster::with_nodes(&["n1", "n2"]).await;
    let mut names = Vec::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        let mut pod = plain_pod(&name);
        pod["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
        c.create_pod(pod).await;
        names.push(name);
    }
    let placed = eventually(Duration::from_secs(20), "two pods bound", || async {
        let mut placed = Vec::new();
        for n in &names {
            if let Some(node) = c.node_of(n).await {
                placed.push(node);
            }
        }
        (placed.len() == 2).then_some(placed)
    })
    .await;
    assert_ne!(placed[0], placed[1]);
    eventually(Duration::from_secs(10), "the third to be reported", || async {
        for n in &names {
            if let Some((_, _, m)) = c.scheduled_condition(n).await
                && m == "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
            {
                return Some(());
            }
        }
        None
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_spreads_pods_without_a_controller() {
    let c = Cluster::with_nodes(&["n1", "n2", "n3"]).await;
    let services: kube::Api<k8s_openapi::api::core::v1::Service> = kube::Api::namespaced(c.client.clone(), "default");
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"selector": {"app": "db"}, "ports": [{"port": 5432}]},
    });
    services.create(&Default::default(), &serde_json::from_value(svc).expect("svc")).await.expect("create service");
    // Unrelated pods weigh n1 down so that load alone would not give an even spread.
    let mut heavy = plain_pod("heavy");
    heavy["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "100m"}});
    heavy["spec"]["nodeName"] = json!("n1");
    c.create_pod(heavy).await;
    let mut names = Vec::new();
    for i in 0..6 {
        let name = format!("db-{i}");
        let mut pod = plain_pod(&name);
        pod["metadata"]["labels"] = json!({"app": "db"});
        c.create_pod(pod).await;
        names.push(name);
    }
    let placed = c.wait_bound(&names).await;
    assert_eq!(per_node(&placed).into_values().collect::<Vec<_>>(), vec![2, 2, 2], "{placed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_scheduler_picks_up_where_the_last_stopped() {
    // The scheduler keeps no state of its own: a new instance picks up where one stopped.
    let mut c = Cluster::with_nodes(&["n1", "n2"]).await;
    let first = c.replicas("web", 2).await;
    c.wait_bound(&first).await;
    c.start_scheduler(Default::default());
    let mut names = first;
    for i in 2..4 {
        let name = format!("web-{i}");
        c.create_pod(replica_pod("web", &name)).await;
        names.push(name);
    }
    let placed = c.wait_bound(&names).await;
    assert_eq!(per_node(&placed).into_values().collect::<Vec<_>>(), vec![2, 2], "{placed:?}");
}
