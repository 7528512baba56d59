//! Garbage collection (background, orphan and foreground deletion) and namespace deletion
//! against a real API server.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use support::*;

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector { match_labels: Some(labels(&[("app", name)])), ..Default::default() },
            template: Some(template(name, "nginx:1")),
            min_ready_seconds: None,
        },
        status: None,
    }
}

async fn wait_ready(c: &Cluster, ns: &str, app: &str, n: usize) {
    eventually(Duration::from_secs(60), &format!("{n} ready pods of {app}"), || async {
        let pods = active_pods(c, ns, app).await;
        (pods.len() == n && pods.iter().all(is_ready)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletion_leaves_nothing_behind() {
    let c = Cluster::start(Duration::from_millis(10)).await;
    c.deployments("default").create(&PostParams::default(), &deployment("bg", 4, "nginx:1")).await.expect("create");
    wait_ready(&c, "default", "bg", 4).await;
    c.deployments("default").delete("bg", &DeleteParams::background()).await.expect("delete");
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    eventually(Duration::from_secs(60), "replicasets and pods to be collected", || async {
        let rs = rss.list(&ListParams::default().labels("app=bg")).await.ok()?.items;
        let pods = c.pods("default").list(&ListParams::default().labels("app=bg")).await.ok()?.items;
        (rs.is_empty() && pods.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_keeps_the_pods_without_references() {
    let c = Cluster::start(Duration::from_millis(10)).await;
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    rss.create(&PostParams::default(), &replicaset("orph", 3)).await.expect("create");
    wait_ready(&c, "default", "orph", 3).await;
    rss.delete("orph", &DeleteParams::orphan()).await.expect("delete");
    eventually(Duration::from_secs(60), "the replicaset to go", || async {
        rss.get_opt("orph").await.ok()?.is_none().then_some(())
    })
    .await;
    // The pods stay, and stay: nothing collects them later either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods = active_pods(&c, "default", "orph").await;
    assert_eq!(pods.len(), 3);
    for p in pods {
        assert!(p.owner_references().is_empty(), "{} still has {:?}", p.name_any(), p.owner_references());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_removes_dependents_before_the_owner() {
    let c = Cluster::start(Duration::from_millis(10)).await;
    c.deployments("default").create(&PostParams::default(), &deployment("fg", 3, "nginx:1")).await.expect("create");
    wait_ready(&c, "default", "fg", 3).await;
    let deployments: Api<Deployment> = c.deployments("default");
    let marked = deployments.delete("fg", &DeleteParams::foreground()).await.expect("delete");
    let marked = marked.left().expect("a foreground delete returns the object, still there");
    assert!(marked.finalizers().iter().any(|f| f == "foregroundDeletion"));
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    eventually(Duration::from_secs(60), "the deployment to go", || async {
        match deployments.get_opt("fg").await.ok()? {
            Some(d) => {
                assert!(d.metadata.deletion_timestamp.is_some());
                None
            }
            None => Some(()),
        }
    })
    .await;
    // The owner went last: by then its dependents (and theirs, also foreground) were gone.
    let rs = rss.list(&ListParams::default().labels("app=fg")).await.expect("list").items;
    let pods = c.pods("default").list(&ListParams::default().labels("app=fg")).await.expect("list").items;
    assert!(rs.is_empty(), "replicasets left: {:?}", rs.iter().map(|r| r.name_any()).collect::<Vec<_>>());
    assert!(pods.is_empty(), "pods left: {}", pods.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_empties_and_removes_it() {
    let c = Cluster::start(Duration::from_millis(10)).await;
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    let ns =
        Namespace { metadata: ObjectMeta { name: Some("doomed".into()), ..Default::default() }, ..Default::default() };
    namespaces.create(&PostParams::default(), &ns).await.expect("create namespace");
    c.deployments("doomed").create(&PostParams::default(), &deployment("app", 3, "nginx:1")).await.expect("deployment");
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "doomed");
    let cm =
        ConfigMap { metadata: ObjectMeta { name: Some("cfg".into()), ..Default::default() }, ..Default::default() };
    cms.create(&PostParams::default(), &cm).await.expect("configmap");
    let secrets: Api<Secret> = Api::namespaced(c.client.clone(), "doomed");
    let s = Secret { metadata: ObjectMeta { name: Some("s".into()), ..Default::default() }, ..Default::default() };
    secrets.create(&PostParams::default(), &s).await.expect("secret");
    wait_ready(&c, "doomed", "app", 3).await;
    namespaces.delete("doomed", &DeleteParams::default()).await.expect("delete namespace");
    let terminating = namespaces.get("doomed").await.expect("still there while it empties");
    assert_eq!(terminating.status.and_then(|s| s.phase).as_deref(), Some("Terminating"));
    eventually(Duration::from_secs(60), "the namespace to go", || async {
        namespaces.get_opt("doomed").await.ok()?.is_none().then_some(())
    })
    .await;
    for (what, n) in [
        ("pods", c.pods("doomed").list(&ListParams::default()).await.expect("list").items.len()),
        ("configmaps", cms.list(&ListParams::default()).await.expect("list").items.len()),
        ("secrets", secrets.list(&ListParams::default()).await.expect("list").items.len()),
        ("deployments", c.deployments("doomed").list(&ListParams::default()).await.expect("list").items.len()),
    ] {
        assert_eq!(n, 0, "{what} left in the deleted namespace");
    }
}
