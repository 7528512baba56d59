//! The real kubectl drives the controllers: scale, rollout status/history/undo/restart and
//! describe, with the dispatcher and pinned old and new clients.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;
use kube::api::ListParams;
use support::*;

const DISPATCHER: &str = "/usr/bin/kubectl";

fn pinned(minor: u32) -> String {
    format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}")
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers[0].image.clone())
        .unwrap_or_default()
}

async fn active_images(c: &Cluster, app: &str) -> Vec<String> {
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let list = rss.list(&ListParams::default().labels(&format!("app={app}"))).await.expect("list").items;
    list.iter().filter(|rs| rs.spec.replicas.unwrap_or(0) > 0).map(image_of).collect()
}

/// The full rollout workflow with one kubectl binary.
async fn workflow(c: &Cluster, bin: &str, name: &str) {
    let out = c.ok(bin, &["create", "deployment", name, "--image=nginx:1", "--replicas=3"]).await;
    assert!(out.contains(&format!("deployment.apps/{name} created")), "{out}");
    let out = c.ok(bin, &["rollout", "status", &format!("deployment/{name}"), "--timeout=90s"]).await;
    assert!(out.contains(&format!("deployment \"{name}\" successfully rolled out")), "{out}");

    let out = c.ok(bin, &["scale", &format!("deployment/{name}"), "--replicas=5"]).await;
    assert!(out.contains(&format!("deployment.apps/{name} scaled")), "{out}");
    c.ok(bin, &["rollout", "status", &format!("deployment/{name}"), "--timeout=90s"]).await;
    assert_eq!(active_pods(c, "default", name).await.len(), 5);

    c.ok(bin, &["set", "image", &format!("deployment/{name}"), "nginx=nginx:2"]).await;
    let out = c.ok(bin, &["rollout", "status", &format!("deployment/{name}"), "--timeout=90s"]).await;
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(active_images(c, name).await, vec!["nginx:2".to_owned()]);

    let out = c.ok(bin, &["rollout", "history", &format!("deployment/{name}")]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with(&format!("deployment.apps/{name}")), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("REVISION  CHANGE-CAUSE")), "{out}");
    let revisions: Vec<&str> =
        lines.iter().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
    assert_eq!(revisions, vec!["1", "2"], "{out}");

    let out = c.ok(bin, &["rollout", "undo", &format!("deployment/{name}")]).await;
    assert!(out.contains(&format!("deployment.apps/{name} rolled back")), "{out}");
    c.ok(bin, &["rollout", "status", &format!("deployment/{name}"), "--timeout=90s"]).await;
    assert_eq!(active_images(c, name).await, vec!["nginx:1".to_owned()]);
    let out = c.ok(bin, &["rollout", "history", &format!("deployment/{name}")]).await;
    let revisions: Vec<&str> =
        out.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
    assert_eq!(revisions, vec!["2", "3"], "revision 1 came back as 3: {out}");

    let out = c.ok(bin, &["rollout", "restart", &format!("deployment/{name}")]).await;
    assert!(out.contains(&format!("deployment.apps/{name} restarted")), "{out}");
    c.ok(bin, &["rollout", "status", &format!("deployment/{name}"), "--timeout=90s"]).await;
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let list = rss.list(&ListParams::default().labels(&format!("app={name}"))).await.expect("list").items;
    assert_eq!(list.len(), 3, "a restart makes a new ReplicaSet");

    let out = c.ok(bin, &["describe", "deployment", name]).await;
    for needle in [
        &format!("Name:                   {name}") as &str,
        "Replicas:               5 desired | 5 updated | 5 total | 5 available | 0 unavailable",
        "StrategyType:           RollingUpdate",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
        "Available      True    MinimumReplicasAvailable",
        "Progressing    True    NewReplicaSetAvailable",
        "OldReplicaSets:",
        "NewReplicaSet:",
        "Events:",
        "ScalingReplicaSet",
        "deployment-controller",
    ] {
        assert!(out.contains(needle), "describe lacks {needle:?}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_workflow_with_the_dispatcher() {
    let c = Cluster::start(Duration::from_millis(50)).await;
    workflow(&c, DISPATCHER, "web").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_rollout_workflow_with_1_27_and_1_33() {
    let c = Cluster::start(Duration::from_millis(50)).await;
    workflow(&c, &pinned(27), "old").await;
    workflow(&c, &pinned(33), "new").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cascading_deletes() {
    let c = Cluster::start(Duration::from_millis(10)).await;
    c.ok(DISPATCHER, &["create", "deployment", "casc", "--image=nginx:1", "--replicas=2"]).await;
    c.ok(DISPATCHER, &["rollout", "status", "deployment/casc", "--timeout=60s"]).await;
    c.ok(DISPATCHER, &["delete", "deployment", "casc"]).await;
    eventually(Duration::from_secs(60), "background cascade", || async {
        let out = c.ok(DISPATCHER, &["get", "rs,pods", "-l", "app=casc", "-o", "name"]).await;
        out.trim().is_empty().then_some(())
    })
    .await;
    c.ok(DISPATCHER, &["create", "deployment", "keep", "--image=nginx:1", "--replicas=2"]).await;
    c.ok(DISPATCHER, &["rollout", "status", "deployment/keep", "--timeout=60s"]).await;
    c.ok(DISPATCHER, &["delete", "deployment", "keep", "--cascade=orphan"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out =
        c.ok(DISPATCHER, &["get", "rs", "-l", "app=keep", "-o", "jsonpath={.items[*].metadata.ownerReferences}"]).await;
    assert_eq!(out.trim(), "", "orphaned replicasets have no owner");
    let out = c.ok(DISPATCHER, &["get", "pods", "-l", "app=keep", "-o", "name"]).await;
    assert_eq!(out.lines().count(), 2, "{out}");
}
