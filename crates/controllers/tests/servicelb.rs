//! The LoadBalancer controller against a real API server (over a fresh SQLite store) through
//! a real client: addresses from the pool, the requested address, exhaustion and release,
//! and type changes, which must keep the Service's node ports.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rkube_apiserver::server::{ApiServer, Config};
use rkube_controllers::ControllersConfig;
use rkube_store::sqlite::SqliteStore;
use serde_json::json;

struct Harness {
    _server: ApiServer,
    _dir: tempfile::TempDir,
    client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The API server and only the servicelb controller, with a pool of `pool`.
async fn start(pool: &str) -> Harness {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new().prefix("rkube-servicelb-test-").tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("open store"));
    let config = Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
    let server = ApiServer::start(config, store).await.expect("start API server");
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("client config");
    let client = Client::try_from(cfg).expect("client");
    let disabled: HashSet<String> =
        rkube_controllers::all().iter().map(|d| d.name.to_owned()).filter(|n| n != "servicelb").collect();
    let config =
        ControllersConfig { disabled, service_lb_pool: Some(pool.parse().expect("pool")), ..Default::default() };
    let c = client.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = rkube_controllers::run(c, config).await {
            panic!("controllers failed: {e}");
        }
    });
    Harness { _server: server, _dir: dir, client, task }
}

fn service(name: &str, ty: &str, requested: Option<&str>) -> Service {
    Service {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        spec: Some(ServiceSpec {
            type_: Some(ty.into()),
            load_balancer_ip: requested.map(Into::into),
            selector: Some([("app".to_owned(), name.to_owned())].into()),
            ports: Some(vec![ServicePort { port: 80, ..Default::default() }]),
            ..Default::default()
        }),
        status: None,
    }
}

fn ingress(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

fn node_ports(svc: &Service) -> Vec<i32> {
    svc.spec.as_ref().and_then(|s| s.ports.as_ref()).into_iter().flatten().filter_map(|p| p.node_port).collect()
}

/// Polls the Service until `want` holds for it.
async fn wait_for(api: &Api<Service>, name: &str, what: &str, want: impl Fn(&Service) -> bool) -> Service {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let svc = api.get(name).await.expect("get service");
        if want(&svc) {
            return svc;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {name}: {what}; last: {:?}", svc.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn addresses_come_from_the_pool_and_are_released() {
    let h = start("10.250.0.1-10.250.0.2").await;
    let api: Api<Service> = Api::namespaced(h.client.clone(), "default");
    let pp = PostParams::default();
    api.create(&pp, &service("a", "LoadBalancer", None)).await.expect("create a");
    let a = wait_for(&api, "a", "an address", |s| !ingress(s).is_empty()).await;
    assert_eq!(ingress(&a), vec!["10.250.0.1"]);
    let mode = a.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
    assert_eq!(mode.and_then(|i| i[0].ip_mode.clone()).as_deref(), Some("VIP"));

    // The requested address, when in the pool and free.
    api.create(&pp, &service("b", "LoadBalancer", Some("10.250.0.2"))).await.expect("create b");
    wait_for(&api, "b", "the requested address", |s| ingress(s) == ["10.250.0.2"]).await;

    // The pool is exhausted: c waits without an address, and a NodePort Service gets none.
    api.create(&pp, &service("c", "LoadBalancer", None)).await.expect("create c");
    api.create(&pp, &service("np", "NodePort", None)).await.expect("create np");
    // The pending Service must still have no address after the controller saw it; the
    // event it records for it says so, and is what is waited for.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(h.client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let list = events.list(&Default::default()).await.expect("events");
        if list
            .items
            .iter()
            .any(|e| e.involved_object.name.as_deref() == Some("c") && e.reason.as_deref() == Some("AllocationFailed"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no AllocationFailed event for c");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ingress(&api.get("c").await.expect("get c")).is_empty());
    assert!(ingress(&api.get("np").await.expect("get np")).is_empty());

    // Deleting a releases its address, and c, which waited, gets it.
    api.delete("a", &DeleteParams::default()).await.expect("delete a");
    wait_for(&api, "c", "the released address", |s| ingress(s) == ["10.250.0.1"]).await;

    // b stops being a LoadBalancer: it loses the address and keeps its node port; d gets it.
    let before = node_ports(&api.get("b").await.expect("get b"));
    assert_eq!(before.len(), 1, "a LoadBalancer Service has a node port");
    let to_np = json!({"spec": {"type": "NodePort", "loadBalancerIP": null}});
    api.patch("b", &PatchParams::default(), &Patch::Merge(&to_np)).await.expect("patch b");
    let b = wait_for(&api, "b", "no address", |s| ingress(s).is_empty()).await;
    assert_eq!(node_ports(&b), before, "LoadBalancer -> NodePort changed the node port");
    api.create(&pp, &service("d", "LoadBalancer", None)).await.expect("create d");
    wait_for(&api, "d", "the address b released", |s| ingress(s) == ["10.250.0.2"]).await;

    // And back: NodePort -> LoadBalancer keeps the node port too (the pool is full, so b
    // waits for an address).
    let to_lb = json!({"spec": {"type": "LoadBalancer"}});
    let b = api.patch("b", &PatchParams::default(), &Patch::Merge(&to_lb)).await.expect("patch b back");
    assert_eq!(node_ports(&b), before, "NodePort -> LoadBalancer changed the node port");
}

#[tokio::test]
async fn requested_address_outside_the_pool_stays_pending_and_other_classes_are_ignored() {
    let h = start("10.250.1.1-10.250.1.5").await;
    let api: Api<Service> = Api::namespaced(h.client.clone(), "default");
    let pp = PostParams::default();
    api.create(&pp, &service("outside", "LoadBalancer", Some("192.0.2.7"))).await.expect("create");
    let mut classed = service("classed", "LoadBalancer", None);
    if let Some(spec) = classed.spec.as_mut() {
        spec.load_balancer_class = Some("example.com/other".into());
    }
    api.create(&pp, &classed).await.expect("create classed");
    // A Service created after both is served, so both were seen before it.
    api.create(&pp, &service("later", "LoadBalancer", None)).await.expect("create later");
    wait_for(&api, "later", "an address", |s| ingress(s) == ["10.250.1.1"]).await;
    assert!(ingress(&api.get("outside").await.expect("get")).is_empty());
    assert!(ingress(&api.get("classed").await.expect("get")).is_empty());
    // Asking for a free address in the pool moves the Service there.
    let ask = json!({"spec": {"loadBalancerIP": "10.250.1.4"}});
    api.patch("outside", &PatchParams::default(), &Patch::Merge(&ask)).await.expect("patch");
    wait_for(&api, "outside", "the requested address", |s| ingress(s) == ["10.250.1.4"]).await;
}
