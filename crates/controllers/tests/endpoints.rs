//! Services, EndpointSlices and Endpoints against a real API server: pods are bound to
//! Node objects and given addresses by a stand-in node agent, and the controllers keep the
//! slices and the legacy Endpoints in step; the real kubectl reads them.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use support::*;

const KUBECTL: &str = "/usr/bin/kubectl";
const WAIT: Duration = Duration::from_secs(30);

/// Starts a cluster whose node agent binds pods to two zoned nodes and gives them IPs.
async fn cluster() -> Cluster {
    let c = Cluster::start(Duration::ZERO).await;
    // The shared stand-in kubelet marks pods ready without an address; this file's agent
    // replaces it.
    c.kubelet.enabled.store(false, Ordering::SeqCst);
    let nodes: Api<Node> = Api::all(c.client.clone());
    for (name, zone) in [("node-a", "zone-a"), ("node-b", "zone-b")] {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
        }))
        .expect("node");
        nodes.create(&PostParams::default(), &node).await.expect("create node");
    }
    tokio::spawn(node_agent(c.client.clone()));
    c
}

/// Binds each new pod to a node and marks it Running and Ready with a fresh IP, once.
async fn node_agent(client: Client) {
    let next = Arc::new(AtomicU32::new(1));
    let api: Api<Pod> = Api::all(client.clone());
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            _ => continue,
        };
        let has_ip = pod.status.as_ref().is_some_and(|s| s.pod_ip.is_some());
        if has_ip || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let n = next.fetch_add(1, Ordering::SeqCst);
        let ip = format!("10.{}.{}.{}", 64 + n / 65536, (n / 256) % 256, n % 256);
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let name = pod.name_any();
        let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
        tokio::spawn(async move {
            if !bound {
                let node = if n.is_multiple_of(2) { "node-a" } else { "node-b" };
                let binding = json!({"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": name}, "target": {"kind": "Node", "name": node}});
                let _ = api
                    .create_subresource::<_, serde_json::Value>("binding", &name, &PostParams::default(), &binding)
                    .await;
            }
            let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ]}});
            let _ = api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await;
        });
    }
}

fn service(name: &str, target_port: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": target_port}]},
    }))
    .expect("service")
}

fn pod(app: &str, name: &str, container_port: i32) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx",
            "ports": [{"name": "http", "containerPort": container_port}]}]},
    }))
    .expect("pod")
}

async fn create_pods(c: &Cluster, app: &str, n: usize, port: i32) {
    let api = c.pods("default");
    let pods: Vec<Pod> = (0..n).map(|i| pod(app, &format!("{app}-{i:03}"), port)).collect();
    futures::stream::iter(pods)
        .map(|p| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &p).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .expect("create pods");
}

async fn slices_of(c: &Cluster, svc: &str) -> Vec<EndpointSlice> {
    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
    api.list(&lp).await.expect("list slices").items
}

/// `(ip, port, ready)` of every endpoint in the Service's slices, sorted.
async fn slice_view(c: &Cluster, svc: &str) -> Vec<(String, i32, bool)> {
    let mut out = Vec::new();
    for s in slices_of(c, svc).await {
        let port = s.ports.as_ref().and_then(|p| p.first()).and_then(|p| p.port).unwrap_or(0);
        for e in s.endpoints.iter().flatten() {
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
            out.push((e.addresses[0].clone(), port, ready));
        }
    }
    out.sort();
    out
}

/// The same view from the Endpoints object.
async fn endpoints_view(c: &Cluster, svc: &str) -> Option<Vec<(String, i32, bool)>> {
    let api: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let ep = api.get_opt(svc).await.expect("get endpoints")?;
    let mut out = Vec::new();
    for s in ep.subsets.iter().flatten() {
        let port = s.ports.as_ref().and_then(|p| p.first()).map_or(0, |p| p.port);
        for a in s.addresses.iter().flatten() {
            out.push((a.ip.clone(), port, true));
        }
        for a in s.not_ready_addresses.iter().flatten() {
            out.push((a.ip.clone(), port, false));
        }
    }
    out.sort();
    Some(out)
}

/// Waits until both views show `n` endpoints with `ready` of them ready, and agree.
async fn wait_agreeing(c: &Cluster, svc: &str, n: usize, ready: usize) -> Vec<(String, i32, bool)> {
    eventually(WAIT, &format!("{svc}: {n} endpoints, {ready} ready, in slices and Endpoints"), || async {
        let slices = slice_view(c, svc).await;
        let eps = endpoints_view(c, svc).await?;
        let ok = slices.len() == n && slices.iter().filter(|e| e.2).count() == ready && slices == eps;
        ok.then_some(slices)
    })
    .await
}

async fn set_ready(c: &Cluster, name: &str, ready: bool) {
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    c.pods("default").patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slices_and_endpoints_follow_pod_readiness_and_service_deletion() {
    let c = cluster().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(&PostParams::default(), &service("web", json!(8080))).await.expect("create service");
    create_pods(&c, "web", 2, 8080).await;
    let view = wait_agreeing(&c, "web", 2, 2).await;
    assert!(view.iter().all(|(_, port, _)| *port == 8080), "{view:?}");
    let slices = slices_of(&c, "web").await;
    assert_eq!(slices.len(), 1);
    let s = &slices[0];
    assert!(s.name_any().starts_with("web-") && s.name_any().len() == "web-".len() + 5, "{}", s.name_any());
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(
        s.labels().get("endpointslice.kubernetes.io/managed-by").map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    let owner = &s.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller, owner.block_owner_deletion),
        ("Service", Some(true), Some(true))
    );
    let ep = &s.endpoints.as_deref().unwrap_or_default()[0];
    assert_eq!(ep.node_name.as_deref(), Some("node-a"));
    assert_eq!(ep.zone.as_deref(), Some("zone-a"));
    assert_eq!(ep.target_ref.as_ref().and_then(|r| r.kind.as_deref()), Some("Pod"));

    set_ready(&c, "web-000", false).await;
    let view = wait_agreeing(&c, "web", 2, 1).await;
    let pod_ip = c.pods("default").get("web-000").await.expect("pod").status.and_then(|s| s.pod_ip);
    assert!(view.iter().any(|(ip, _, ready)| Some(ip) == pod_ip.as_ref() && !ready), "{view:?}");
    set_ready(&c, "web-000", true).await;
    wait_agreeing(&c, "web", 2, 2).await;

    svcs.delete("web", &DeleteParams::default()).await.expect("delete service");
    eventually(WAIT, "slices and Endpoints of a deleted Service to go", || async {
        let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
        (slices_of(&c, "web").await.is_empty() && eps.get_opt("web").await.ok()?.is_none()).then_some(())
    })
    .await;
    // The API server's own Endpoints are never touched.
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    assert!(eps.get_opt("kubernetes").await.expect("get").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn named_target_ports_resolve_per_pod() {
    let c = cluster().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(&PostParams::default(), &service("named", json!("http"))).await.expect("create service");
    let api = c.pods("default");
    api.create(&PostParams::default(), &pod("named", "named-a", 8080)).await.expect("pod");
    api.create(&PostParams::default(), &pod("named", "named-b", 9090)).await.expect("pod");
    let view = wait_agreeing(&c, "named", 2, 2).await;
    let ports: HashSet<i32> = view.iter().map(|e| e.1).collect();
    assert_eq!(ports, HashSet::from([8080, 9090]), "{view:?}");
    assert_eq!(slices_of(&c, "named").await.len(), 2, "different port sets go into different slices");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_pods_split_into_slices_and_one_change_rewrites_one_slice() {
    let c = cluster().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    svcs.create(&PostParams::default(), &service("big", json!(80))).await.expect("create service");
    create_pods(&c, "big", 250, 80).await;
    wait_agreeing(&c, "big", 250, 250).await;
    let slices = slices_of(&c, "big").await;
    let mut sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.as_ref().map_or(0, Vec::len)).collect();
    sizes.sort();
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 100), "{sizes:?}");

    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let rv = api.list(&ListParams::default()).await.expect("list").metadata.resource_version.unwrap_or_default();
    let wp = WatchParams::default().labels("kubernetes.io/service-name=big");
    let mut stream = api.watch(&wp, &rv).await.expect("watch").boxed();
    set_ready(&c, "big-123", false).await;
    wait_agreeing(&c, "big", 250, 249).await;
    // Anything the controllers still had to write would come within this time.
    let mut events = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(WatchEvent::Added(s))) => events.push(format!("ADDED {}", s.name_any())),
                Some(Ok(WatchEvent::Modified(s))) => events.push(format!("MODIFIED {}", s.name_any())),
                Some(Ok(WatchEvent::Deleted(s))) => events.push(format!("DELETED {}", s.name_any())),
                Some(_) => {}
                None => break,
            },
            _ = &mut deadline => break,
        }
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(events[0].starts_with("MODIFIED "), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hand_written_endpoints_of_a_selectorless_service_are_mirrored() {
    let c = cluster().await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "external"}, "spec": {"ports": [{"name": "db", "port": 5432}]},
    }))
    .expect("service");
    svcs.create(&PostParams::default(), &svc).await.expect("create service");
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let ep: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "external"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}], "ports": [{"name": "db", "port": 5432}]}],
    }))
    .expect("endpoints");
    eps.create(&PostParams::default(), &ep).await.expect("create endpoints");
    let slices = eventually(WAIT, "a mirrored slice", || async {
        let s = slices_of(&c, "external").await;
        (!s.is_empty()).then_some(s)
    })
    .await;
    assert_eq!(slices.len(), 1);
    assert_eq!(
        slices[0].labels().get("endpointslice.kubernetes.io/managed-by").map(String::as_str),
        Some("endpointslicemirroring-controller.k8s.io")
    );
    let mut ips: Vec<String> = slices[0].endpoints.iter().flatten().map(|e| e.addresses[0].clone()).collect();
    ips.sort();
    assert_eq!(ips, vec!["192.0.2.10", "192.0.2.11"]);
    // The Endpoints object stays as written: the Endpoints controller leaves it alone.
    let got = eps.get("external").await.expect("get");
    assert_eq!(got.subsets.as_ref().map(|s| s[0].addresses.as_ref().map_or(0, Vec::len)), Some(2));
    // The API server's `kubernetes` Endpoints opts out of mirroring.
    let managed = "endpointslice.kubernetes.io/managed-by=endpointslicemirroring-controller.k8s.io";
    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let mirrored = api.list(&ListParams::default().labels(managed)).await.expect("list").items;
    assert!(
        mirrored.iter().all(|s| s.labels().get("kubernetes.io/service-name").map(String::as_str) != Some("kubernetes"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_expose_lists_the_pod_endpoints() {
    let c = cluster().await;
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/manifests/run-my-nginx.yaml");
    c.ok(KUBECTL, &["apply", "-f", manifest]).await;
    let out = c.ok(KUBECTL, &["expose", "deployment/my-nginx"]).await;
    assert!(out.contains("service/my-nginx exposed"), "{out}");
    let ips: Vec<String> = eventually(WAIT, "two ready my-nginx pods with IPs", || async {
        let lp = ListParams::default().labels("run=my-nginx");
        let pods = c.pods("default").list(&lp).await.ok()?.items;
        let ips: Vec<String> = pods
            .iter()
            .filter(|p| is_ready(p))
            .filter_map(|p| p.status.as_ref().and_then(|s| s.pod_ip.clone()))
            .collect();
        (ips.len() == 2).then_some(ips)
    })
    .await;
    let mut expected: Vec<String> = ips.iter().map(|ip| format!("{ip}:80")).collect();
    expected.sort();
    let line = eventually(WAIT, "kubectl get ep to list both pods", || async {
        let out = c.ok(KUBECTL, &["get", "ep", "my-nginx", "--no-headers"]).await;
        let field = out.split_whitespace().nth(1)?.to_owned();
        let mut got: Vec<String> = field.split(',').map(str::to_owned).collect();
        got.sort();
        (got == expected).then_some(out)
    })
    .await;
    assert!(line.starts_with("my-nginx"), "{line}");
    let out = c.ok(KUBECTL, &["describe", "svc", "my-nginx"]).await;
    let endpoints_line = out.lines().find(|l| l.starts_with("Endpoints:")).unwrap_or_default();
    let mut got: Vec<String> =
        endpoints_line.trim_start_matches("Endpoints:").trim().split(',').map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, expected, "{out}");

    // Flipping one pod's readiness takes it out of `kubectl get ep`, and back.
    let pods = c.pods("default").list(&ListParams::default().labels("run=my-nginx")).await.expect("list pods").items;
    let first = pods.iter().find(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_deref()) == Some(ips[0].as_str()));
    let first = first.and_then(|p| p.metadata.name.clone()).expect("the first pod");
    set_ready(&c, &first, false).await;
    let only_other = format!("{}:80", ips[1]);
    eventually(WAIT, "kubectl get ep to drop the not-ready pod", || async {
        let out = c.ok(KUBECTL, &["get", "ep", "my-nginx", "--no-headers"]).await;
        (out.split_whitespace().nth(1)? == only_other).then_some(())
    })
    .await;
    set_ready(&c, &first, true).await;
    eventually(WAIT, "kubectl get ep to list the pod again", || async {
        let out = c.ok(KUBECTL, &["get", "ep", "my-nginx", "--no-headers"]).await;
        let mut got: Vec<String> = out.split_whitespace().nth(1)?.split(',').map(str::to_owned).collect();
        got.sort();
        (got == expected).then_some(())
    })
    .await;
}
