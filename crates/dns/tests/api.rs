//! The DNS server fed through the real API: the rkube API server (HTTPS, SQLite store) and
//! its controllers in this process, objects created with the real kubectl, answers checked
//! with the real dig. Also the node's kube-dns endpoints, as kubectl shows them.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rkube_apiserver::server::{ApiServer, Config};
use rkube_dns::wire::{self, encode_name};
use rkube_dns::{DnsConfig, Metrics};
use rkube_store::sqlite::SqliteStore;
use serde_json::json;

struct Cluster {
    server: ApiServer,
    client: Client,
    home: tempfile::TempDir,
    _dir: tempfile::TempDir,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn client_for(kubeconfig: &std::path::Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("client config");
    Client::try_from(cfg).expect("client")
}

async fn start_cluster() -> Cluster {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::Builder::new().prefix("rkube-dns-test-").tempdir().expect("tempdir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("open store"));
    let mut config = Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
    config.compaction_interval = Duration::from_secs(3600);
    let server = ApiServer::start(config, store).await.expect("start API server");
    let client = client_for(&server.kubeconfig).await;
    let c = client.clone();
    let controllers = tokio::spawn(async move {
        if let Err(e) = rkube_controllers::run(c, Default::default()).await {
            panic!("controllers failed: {e}");
        }
    });
    let home = tempfile::Builder::new().prefix("rkube-dns-home-").tempdir().expect("home");
    Cluster { server, client, home, _dir: dir, tasks: vec![controllers] }
}

impl Cluster {
    async fn kubectl(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("kubectl")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.server.kubeconfig)
            .kill_on_drop(true)
            .output()
            .await
            .expect("run kubectl");
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 right now.
fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("probe");
        let port = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// One UDP query; the answer's RCODE and the A records' addresses.
fn query_a(server: SocketAddr, name: &str) -> Option<(u8, Vec<Ipv4Addr>)> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    let mut q = vec![0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend(encode_name(name)?);
    q.extend_from_slice(&[0, 1, 0, 1]);
    sock.send_to(&q, server).ok()?;
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).ok()?;
    let r = &buf[..n];
    let rcode = r[3] & 0xf;
    let an = u16::from_be_bytes([r[6], r[7]]);
    let mut pos = wire::skip_name(r, 12)? + 4;
    let mut ips = Vec::new();
    for _ in 0..an {
        pos = wire::skip_name(r, pos)?;
        let rtype = u16::from_be_bytes([r[pos], r[pos + 1]]);
        let rdlen = usize::from(u16::from_be_bytes([r[pos + 8], r[pos + 9]]));
        if rtype == wire::TYPE_A && rdlen == 4 {
            ips.push(Ipv4Addr::new(r[pos + 10], r[pos + 11], r[pos + 12], r[pos + 13]));
        }
        pos += 10 + rdlen;
    }
    ips.sort();
    Some((rcode, ips))
}

/// Polls until `f` holds, with a deadline; returns how long it took.
async fn until(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f() {
            return start.elapsed();
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn dig_short(server: SocketAddr, args: &[&str]) -> Vec<String> {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+short", "+tries=1", "+time=3"])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run dig");
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    v.sort();
    v
}

async fn set_pod_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) {
    let status = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("patch status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_resolve_through_the_real_api() {
    let c = start_cluster().await;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut config = DnsConfig::new(vec![addr]);
    config.service_cidr = "10.96.0.0/12".parse().ok();
    let metrics = Metrics::new();
    let dns = tokio::spawn(rkube_dns::run(c.client.clone(), config, metrics.clone()));

    // The seeded kube-dns Service resolves once the server has the first lists.
    until("kube-dns to resolve", Duration::from_secs(30), || {
        query_a(addr, "kube-dns.kube-system.svc.cluster.local").is_some_and(|(rc, ips)| rc == 0 && !ips.is_empty())
    })
    .await;

    // A new Service, created with kubectl, resolves within milliseconds of the create.
    c.kubectl(&["create", "service", "clusterip", "web", "--tcp=80:8080"]).await;
    let took = until("web to resolve", Duration::from_secs(10), || {
        query_a(addr, "web.default.svc.cluster.local").is_some_and(|(rc, ips)| rc == 0 && !ips.is_empty())
    })
    .await;
    println!("a new Service resolved {took:?} after kubectl create returned");
    let ip = c.kubectl(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"]).await;
    assert_eq!(dig_short(addr, &["web.default.svc.cluster.local"]).await, vec![ip.clone()]);
    assert_eq!(dig_short(addr, &["-x", &ip]).await, ["web.default.svc.cluster.local."]);
    assert_eq!(
        dig_short(addr, &["SRV", "_80-8080._tcp.web.default.svc.cluster.local"]).await,
        ["0 100 80 web.default.svc.cluster.local."]
    );

    // A headless Service returns exactly its ready pods, through the EndpointSlice controller.
    let manifest = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"name": "pg", "port": 5432}]},
    });
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(c.client.clone(), "default");
    services.create(&PostParams::default(), &serde_json::from_value(manifest).expect("svc")).await.expect("create db");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for (name, ip) in [("db-0", "10.42.0.10"), ("db-1", "10.42.0.11")] {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "db"}},
            "spec": {"hostname": name, "subdomain": "db", "containers": [{"name": "pg", "image": "postgres"}]},
        });
        pods.create(&PostParams::default(), &serde_json::from_value(pod).expect("pod")).await.expect("create pod");
        set_pod_status(&pods, name, ip, true).await;
    }
    let both: Vec<Ipv4Addr> = vec!["10.42.0.10".parse().expect("ip"), "10.42.0.11".parse().expect("ip")];
    until("both db pods", Duration::from_secs(30), || {
        query_a(addr, "db.default.svc.cluster.local").is_some_and(|(_, ips)| ips == both)
    })
    .await;
    assert_eq!(dig_short(addr, &["db-0.db.default.svc.cluster.local"]).await, ["10.42.0.10"]);
    assert_eq!(dig_short(addr, &["10-42-0-11.default.pod.cluster.local"]).await, ["10.42.0.11"]);
    set_pod_status(&pods, "db-1", "10.42.0.11", false).await;
    let only: Vec<Ipv4Addr> = vec!["10.42.0.10".parse().expect("ip")];
    let took = until("db-1 to leave when not ready", Duration::from_secs(30), || {
        query_a(addr, "db.default.svc.cluster.local").is_some_and(|(_, ips)| ips == only)
    })
    .await;
    println!("a readiness change was answerable {took:?} after the status write");

    // Deleting the Service makes the name NXDOMAIN.
    c.kubectl(&["delete", "service", "web"]).await;
    until("web to be NXDOMAIN", Duration::from_secs(10), || {
        query_a(addr, "web.default.svc.cluster.local").is_some_and(|(rc, _)| rc == 3)
    })
    .await;
    assert!(metrics.queries() > 0);
    dns.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_publish_the_kube_dns_endpoints() {
    let c = start_cluster().await;
    rkube_dns::publish_node_endpoint(c.client.clone(), "node-a", Ipv4Addr::new(10, 0, 0, 1)).await.expect("publish a");
    rkube_dns::publish_node_endpoint(c.client.clone(), "node-b", Ipv4Addr::new(10, 0, 0, 2)).await.expect("publish b");
    // Idempotent: publishing again changes nothing.
    rkube_dns::publish_node_endpoint(c.client.clone(), "node-a", Ipv4Addr::new(10, 0, 0, 1)).await.expect("again");

    let svc = c.kubectl(&["get", "services", "kube-dns", "--namespace=kube-system"]).await;
    assert!(svc.contains("10.96.0.10"), "{svc}");
    assert!(svc.contains("53/UDP,53/TCP"), "{svc}");
    let ep = c.kubectl(&["get", "endpoints", "kube-dns", "--namespace=kube-system"]).await;
    assert!(ep.contains("10.0.0.1:53,10.0.0.2:53"), "{ep}");
    let slices =
        c.kubectl(&["get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns"]).await;
    assert!(slices.contains("kube-dns-node-a") && slices.contains("kube-dns-node-b"), "{slices}");
    assert!(slices.contains("10.0.0.1") && slices.contains("10.0.0.2"), "{slices}");
    // The mirroring controller leaves our Endpoints alone (skip-mirror): the only slices
    // of kube-dns are the nodes'.
    let names = c
        .kubectl(&[
            "get",
            "endpointslices",
            "-n",
            "kube-system",
            "-l",
            "kubernetes.io/service-name=kube-dns",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .await;
    let mut names: Vec<&str> = names.split_whitespace().collect();
    names.sort();
    assert_eq!(names, ["kube-dns-node-a", "kube-dns-node-b"]);

    // A node that leaves takes its entries with it.
    rkube_dns::withdraw_node_endpoint(c.client.clone(), "node-b", Ipv4Addr::new(10, 0, 0, 2)).await.expect("withdraw");
    rkube_dns::withdraw_node_endpoint(c.client.clone(), "node-b", Ipv4Addr::new(10, 0, 0, 2)).await.expect("again");
    let ep = c.kubectl(&["get", "endpoints", "kube-dns", "--namespace=kube-system"]).await;
    assert!(ep.contains("10.0.0.1:53") && !ep.contains("10.0.0.2"), "{ep}");
    let slices =
        c.kubectl(&["get", "endpointslices", "-n", "kube-system", "-l", "kubernetes.io/service-name=kube-dns"]).await;
    assert!(slices.contains("kube-dns-node-a") && !slices.contains("kube-dns-node-b"), "{slices}");
}
