//! ReplicaSets and Deployments against a real API server: scaling, rolling updates within
//! their bounds, rollback, and two controller instances racing.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use support::*;

const NS: &str = "default";

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

async fn scale_rs(api: &Api<ReplicaSet>, name: &str, n: i32) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({"spec": {"replicas": n}}))).await.expect("scale");
}

async fn wait_rs(c: &Cluster, api: &Api<ReplicaSet>, name: &str, n: usize) {
    eventually(Duration::from_secs(120), &format!("{name} to have {n} ready pods"), || async {
        let pods = active_pods(c, NS, name).await;
        let rs = api.get(name).await.ok()?;
        let st = rs.status.clone().unwrap_or_default();
        (pods.len() == n
            && pods.iter().all(is_ready)
            && st.replicas == n as i32
            && st.ready_replicas.unwrap_or(0) == n as i32
            && st.available_replicas.unwrap_or(0) == n as i32
            && st.observed_generation == rs.metadata.generation)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_scales_0_to_50_to_2() {
    let c = Cluster::start(Duration::from_millis(10)).await;
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), NS);
    api.create(&PostParams::default(), &replicaset("web", 0)).await.expect("create");
    wait_rs(&c, &api, "web", 0).await;
    scale_rs(&api, "web", 50).await;
    wait_rs(&c, &api, "web", 50).await;
    let pods = active_pods(&c, NS, "web").await;
    let rs = api.get("web").await.expect("get");
    for p in &pods {
        let name = p.name_any();
        let suffix = name.strip_prefix("web-").expect("named after the replicaset");
        assert_eq!(suffix.len(), 5, "{name}");
        assert!(suffix.bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)), "{name}");
        let r = &p.owner_references()[0];
        assert_eq!(
            (r.controller, r.block_owner_deletion, &r.uid),
            (Some(true), Some(true), rs.metadata.uid.as_ref().expect("uid"))
        );
        assert_eq!(p.labels().get("app").map(String::as_str), Some("web"));
    }
    scale_rs(&api, "web", 2).await;
    wait_rs(&c, &api, "web", 2).await;
    // Nothing more happens once converged.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(active_pods(&c, NS, "web").await.len(), 2);
    let st = api.get("web").await.expect("get").status.expect("status");
    assert_eq!(st.fully_labeled_replicas, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_adopts_orphans_and_releases_strays() {
    let c = Cluster::start(Duration::from_millis(10)).await;
    let pods = c.pods(NS);
    // An orphan that matches is adopted instead of a new pod being created.
    let orphan = Pod {
        metadata: ObjectMeta {
            name: Some("orphan".into()),
            labels: Some(labels(&[("app", "adopt")])),
            ..Default::default()
        },
        spec: template("adopt", "nginx:1").spec,
        status: None,
    };
    pods.create(&PostParams::default(), &orphan).await.expect("create orphan");
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), NS);
    api.create(&PostParams::default(), &replicaset("adopt", 2)).await.expect("create");
    wait_rs(&c, &api, "adopt", 2).await;
    let adopted = pods.get("orphan").await.expect("orphan still there");
    assert_eq!(adopted.owner_references().first().map(|r| r.name.as_str()), Some("adopt"));
    // Relabelling a pod releases it; the ReplicaSet makes a replacement.
    pods.patch("orphan", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"labels": {"app": "gone"}}})))
        .await
        .expect("relabel");
    wait_rs(&c, &api, "adopt", 2).await;
    let released = eventually(Duration::from_secs(30), "release", || async {
        let p = pods.get("orphan").await.ok()?;
        p.owner_references().is_empty().then_some(p)
    })
    .await;
    assert_eq!(released.labels().get("app").map(String::as_str), Some("gone"));
}

/// Watches pods with `app=<app>` and records the most pods and the fewest ready pods seen
/// at once, counting only pods not being deleted.
struct Bounds {
    max_pods: usize,
    min_ready: usize,
}

async fn watch_bounds(client: kube::Client, app: String, stop: tokio::sync::watch::Receiver<bool>) -> Bounds {
    let api: Api<Pod> = Api::namespaced(client, NS);
    let mut stream = watcher(api, watcher::Config::default().labels(&format!("app={app}"))).boxed();
    let mut pods: HashMap<String, Pod> = HashMap::new();
    let mut bounds = Bounds { max_pods: 0, min_ready: usize::MAX };
    let mut synced = false;
    loop {
        if *stop.borrow() {
            return bounds;
        }
        let ev = tokio::select! {
            ev = stream.next() => ev,
            () = tokio::time::sleep(Duration::from_millis(100)) => continue,
        };
        match ev {
            Some(Ok(watcher::Event::InitApply(p) | watcher::Event::Apply(p))) => {
                pods.insert(p.name_any(), p);
            }
            Some(Ok(watcher::Event::Delete(p))) => {
                pods.remove(&p.name_any());
            }
            Some(Ok(watcher::Event::InitDone)) => synced = true,
            _ => continue,
        }
        if synced {
            let active: Vec<&Pod> = pods.values().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
            bounds.max_pods = bounds.max_pods.max(active.len());
            bounds.min_ready = bounds.min_ready.min(active.iter().filter(|p| is_ready(p)).count());
        }
    }
}

async fn wait_rollout(c: &Cluster, name: &str, replicas: i32) -> Deployment {
    eventually(Duration::from_secs(180), &format!("{name} to roll out"), || async {
        let d = c.deployments(NS).get(name).await.ok()?;
        let st = d.status.clone()?;
        (st.observed_generation >= d.metadata.generation
            && st.updated_replicas == Some(replicas)
            && st.replicas == Some(replicas)
            && st.available_replicas == Some(replicas)
            && active_pods(c, NS, name).await.len() == replicas as usize)
            .then_some(d)
    })
    .await
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers[0].image.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_stays_within_surge_and_unavailability() {
    let c = Cluster::start(Duration::from_millis(300)).await;
    let mut d = deployment("roll", 10, "nginx:1");
    d.spec.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(k8s_openapi::api::apps::v1::RollingUpdateDeployment {
            max_surge: Some(IntOrString::String("30%".into())),
            max_unavailable: Some(IntOrString::Int(2)),
        }),
    });
    c.deployments(NS).create(&PostParams::default(), &d).await.expect("create");
    let first = wait_rollout(&c, "roll", 10).await;
    assert_eq!(first.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("1"));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch_bounds(c.client.clone(), "roll".into(), stop_rx));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}});
    c.deployments(NS).patch("roll", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update");
    let done = wait_rollout(&c, "roll", 10).await;
    stop_tx.send(true).expect("stop");
    let bounds = watcher.await.expect("watcher");
    eprintln!("rolling update: at most {} pods, at least {} ready", bounds.max_pods, bounds.min_ready);
    // maxSurge 30% of 10 rounds up to 3; maxUnavailable is 2.
    assert!(bounds.max_pods <= 13, "saw {} pods at once, more than replicas + maxSurge = 13", bounds.max_pods);
    assert!(
        bounds.min_ready >= 8,
        "saw only {} ready pods, fewer than replicas - maxUnavailable = 8",
        bounds.min_ready
    );
    assert_eq!(done.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("2"));

    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), NS);
    let list = rss.list(&ListParams::default().labels("app=roll")).await.expect("list").items;
    assert_eq!(list.len(), 2, "the old ReplicaSet is kept for rollback");
    for rs in &list {
        let hash = rs.labels().get("pod-template-hash").expect("hash label").clone();
        assert_eq!(rs.name_any(), format!("roll-{hash}"));
        let sel = rs.spec.selector.match_labels.clone().unwrap_or_default();
        assert_eq!(sel.get("pod-template-hash"), Some(&hash));
        let expected = if image_of(rs) == "nginx:2" { (10, "2") } else { (0, "1") };
        assert_eq!(rs.spec.replicas, Some(expected.0));
        assert_eq!(rs.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some(expected.1));
        assert_eq!(rs.annotations().get("deployment.kubernetes.io/desired-replicas").map(String::as_str), Some("10"));
        assert_eq!(rs.annotations().get("deployment.kubernetes.io/max-replicas").map(String::as_str), Some("13"));
    }
    let st = done.status.expect("status");
    let reason = |ty: &str| {
        st.conditions.iter().flatten().find(|c| c.type_.as_deref() == Some(ty)).and_then(|c| c.reason.clone())
    };
    assert_eq!(reason("Available").as_deref(), Some("MinimumReplicasAvailable"));
    assert_eq!(reason("Progressing").as_deref(), Some("NewReplicaSetAvailable"));
    assert_eq!((st.ready_replicas, st.unavailable_replicas), (Some(10), Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_pause_and_history_limit() {
    let c = Cluster::start(Duration::from_millis(10)).await;
    let mut d = deployment("rec", 3, "nginx:1");
    d.spec.strategy =
        Some(k8s_openapi::api::apps::v1::DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None });
    d.spec.revision_history_limit = Some(1);
    c.deployments(NS).create(&PostParams::default(), &d).await.expect("create");
    wait_rollout(&c, "rec", 3).await;
    for image in ["nginx:2", "nginx:3"] {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}});
        c.deployments(NS).patch("rec", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update");
        wait_rollout(&c, "rec", 3).await;
    }
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), NS);
    let names = eventually(Duration::from_secs(30), "history limit cleanup", || async {
        let list = rss.list(&ListParams::default().labels("app=rec")).await.ok()?.items;
        (list.len() == 2).then_some(list)
    })
    .await;
    let images: HashSet<String> = names.iter().map(image_of).collect();
    assert_eq!(images, HashSet::from(["nginx:2".to_owned(), "nginx:3".to_owned()]), "the oldest revision is gone");

    // Paused: template changes make no new ReplicaSet, but scaling still happens.
    c.deployments(NS)
        .patch("rec", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"paused": true}})))
        .await
        .expect("pause");
    let patch =
        json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "main", "image": "nginx:4"}]}}}});
    c.deployments(NS).patch("rec", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update");
    eventually(Duration::from_secs(60), "paused deployment to scale", || async {
        (active_pods(&c, NS, "rec").await.iter().filter(|p| is_ready(p)).count() == 5).then_some(())
    })
    .await;
    let list = rss.list(&ListParams::default().labels("app=rec")).await.expect("list").items;
    assert!(list.iter().all(|rs| image_of(rs) != "nginx:4"), "no rollout while paused");
    let d = c.deployments(NS).get("rec").await.expect("get");
    let cond = d.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(cond.iter().any(|c| c.reason.as_deref() == Some("DeploymentPaused")), "{cond:?}");
    c.deployments(NS)
        .patch("rec", &PatchParams::default(), &Patch::Merge(&json!({"spec": {"paused": false}})))
        .await
        .expect("resume");
    wait_rollout(&c, "rec", 5).await;
    let list = rss.list(&ListParams::default().labels("app=rec")).await.expect("list").items;
    assert!(list.iter().any(|rs| image_of(rs) == "nginx:4" && rs.spec.replicas == Some(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_by_patching_the_template_back_reuses_the_old_replicaset() {
    let c = Cluster::start(Duration::from_millis(10)).await;
    c.deployments(NS).create(&PostParams::default(), &deployment("undo", 3, "nginx:1")).await.expect("create");
    wait_rollout(&c, "undo", 3).await;
    let rss: Api<ReplicaSet> = Api::namespaced(c.client.clone(), NS);
    let first = rss.list(&ListParams::default().labels("app=undo")).await.expect("list").items;
    let first_name = first[0].name_any();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "nginx:2"}]}}}});
    c.deployments(NS).patch("undo", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("update");
    wait_rollout(&c, "undo", 3).await;
    // What `kubectl rollout undo` does: copy the old ReplicaSet's template (without the
    // hash label) into the Deployment (kubectl uses a JSON patch; a PUT has the same effect).
    let old = rss.get(&first_name).await.expect("old rs kept");
    let mut tmpl = old.spec.template.clone().expect("template");
    if let Some(l) = tmpl.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.remove("pod-template-hash");
    }
    let mut d = c.deployments(NS).get("undo").await.expect("get");
    d.spec.template = tmpl;
    c.deployments(NS).replace("undo", &PostParams::default(), &d).await.expect("undo");
    let d = wait_rollout(&c, "undo", 3).await;
    let back = rss.get(&first_name).await.expect("old rs");
    assert_eq!(back.spec.replicas, Some(3), "the old ReplicaSet is scaled back up, not replaced");
    assert_eq!(back.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("3"));
    assert_eq!(back.annotations().get("deployment.kubernetes.io/revision-history").map(String::as_str), Some("1"));
    assert_eq!(d.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("3"));
    for p in active_pods(&c, NS, "undo").await {
        assert_eq!(p.spec.and_then(|s| s.containers[0].image.clone()).as_deref(), Some("nginx:1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controller_instances_never_overshoot() {
    let c = Cluster::start_with(Duration::from_millis(5), 2, HashSet::from(["deployment".to_owned()])).await;
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), NS);
    let names: Vec<String> = (0..4).map(|i| format!("race{i}")).collect();
    for n in &names {
        api.create(&PostParams::default(), &replicaset(n, 0)).await.expect("create");
    }
    // Count every pod ever seen at once per ReplicaSet while the two instances race.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut watchers = Vec::new();
    for n in &names {
        watchers.push(tokio::spawn(watch_bounds(c.client.clone(), n.clone(), stop_rx.clone())));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut max_replicas = 0;
    for target in [7, 3, 12, 1, 9, 15, 4] {
        max_replicas = max_replicas.max(target);
        for n in &names {
            scale_rs(&api, n, target).await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    for n in &names {
        wait_rs(&c, &api, n, 4).await;
    }
    stop_tx.send(true).expect("stop");
    for (n, w) in names.iter().zip(watchers) {
        let b = w.await.expect("watcher");
        // Pods are never more than the largest replica count asked for, and at rest
        // exactly the last one.
        assert!(b.max_pods <= max_replicas as usize, "{n}: saw {} pods, more than {max_replicas}", b.max_pods);
    }
    // Scale up from zero at once, twice over, with no time for caches to settle in between.
    for n in &names {
        scale_rs(&api, n, 0).await;
    }
    for n in &names {
        wait_rs(&c, &api, n, 0).await;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut watchers = Vec::new();
    for n in &names {
        watchers.push(tokio::spawn(watch_bounds(c.client.clone(), n.clone(), stop_rx.clone())));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in &names {
        scale_rs(&api, n, 20).await;
    }
    for n in &names {
        wait_rs(&c, &api, n, 20).await;
    }
    stop_tx.send(true).expect("stop");
    for (n, w) in names.iter().zip(watchers) {
        let b = w.await.expect("watcher");
        assert!(b.max_pods <= 20, "{n}: saw {} pods, more than 20", b.max_pods);
    }
}
