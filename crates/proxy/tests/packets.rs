//! Real packets through the real rules: each test builds a node namespace with a pod
//! bridge, pods running tiny TCP servers and an outside client, programs the proxy's table
//! in the node with the real `nft`, and checks what clients see.

mod support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use parking_lot::Mutex;
use rkube_proxy::ProxyConfig;
use rkube_proxy::backend::NftCli;
use rkube_proxy::model::{Endpoint, Model, NodeFacts, Protocol, Service, ServiceKey, ServicePort, Slice, SlicePort};
use rkube_proxy::proxier::{Proxier, SyncOutcome};
use support::{Echo, Node, hello, in_ns, sh};

const TABLE: &str = "rkube-test";

fn config() -> ProxyConfig {
    let mut c = ProxyConfig::new("n1");
    c.table = TABLE.into();
    c.cluster_cidr = Some("10.42.0.0/16".parse().expect("cidr"));
    c.pod_bridge = Some("cbr0".into());
    c.node_ips = vec![support::NODE_IP];
    c
}

struct Harness {
    node: Node,
    model: Mutex<Model>,
    proxier: Proxier,
}

impl Harness {
    fn new(tag: &str, pods: usize) -> Harness {
        let node = Node::new(tag, pods);
        let mut model = Model::new();
        model.set_node(NodeFacts { pod_cidr: Some("10.42.0.0/24".parse().expect("cidr")), addresses: vec![] });
        Harness { node, model: Mutex::new(model), proxier: Proxier::new(config(), Box::new(NftCli)) }
    }

    fn sync(&mut self) -> SyncOutcome {
        self.sync_with(false)
    }

    fn sync_with(&mut self, full: bool) -> SyncOutcome {
        let (proxier, model) = (&mut self.proxier, &self.model);
        in_ns(&self.node.node, || proxier.sync(model, full)).expect("sync")
    }

    /// Adds Service `name` on `ip:port` (TCP) with endpoints `pods` on `target`.
    fn service(&self, name: &str, ip: Ipv4Addr, port: u16, target: u16, pods: &[usize]) -> Service {
        let svc = Service::cluster_ip(key(name), ip, vec![tcp_port(port, None)]);
        let mut m = self.model.lock();
        m.upsert_service(svc.clone());
        m.upsert_slice(slice(name, target, pods));
        svc
    }
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

fn tcp_port(port: u16, node_port: Option<u16>) -> ServicePort {
    ServicePort { name: "http".into(), protocol: Protocol::Tcp, port, node_port }
}

fn slice(name: &str, target: u16, pods: &[usize]) -> Slice {
    Slice {
        namespace: "default".into(),
        name: format!("{name}-1"),
        service: name.into(),
        ports: vec![SlicePort { name: "http".into(), protocol: Protocol::Tcp, port: target }],
        endpoints: pods.iter().map(|i| Endpoint::ready(Node::pod_ip(*i), "n1")).collect(),
        trigger_time: None,
    }
}

fn addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

const WEB: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

#[test]
fn cluster_ip_reaches_both_backends_evenly_on_the_target_port() {
    let mut h = Harness::new("even", 3);
    h.node.serve(0, 8080);
    h.node.serve(1, 8080);
    h.service("web", WEB, 80, 8080, &[0, 1]);
    h.sync();
    // The client is a third pod on the same node, so this also checks the bridge masquerade.
    let counts = in_ns(&h.node.pods[2], || {
        let mut counts = [0usize; 2];
        for _ in 0..200 {
            let (id, _) = hello(addr(WEB, 80)).expect("connect through the ClusterIP");
            counts[id] += 1;
        }
        counts
    });
    assert!(counts.iter().all(|c| (50..=150).contains(c)), "uneven split over 200 connections: {counts:?}");
}

#[test]
fn service_without_endpoints_refuses_at_once_and_unallocated_ips_are_dropped() {
    let mut h = Harness::new("refuse", 1);
    h.model.lock().upsert_service(Service::cluster_ip(key("empty"), WEB, vec![tcp_port(80, None)]));
    h.sync();
    let (empty, unallocated) = in_ns(&h.node.pods[0], || {
        let empty = std::net::TcpStream::connect_timeout(&addr(WEB, 80), Duration::from_secs(5));
        let unallocated =
            std::net::TcpStream::connect_timeout(&addr(Ipv4Addr::new(10, 96, 9, 9), 80), Duration::from_secs(1));
        (empty.map(|_| ()), unallocated.map(|_| ()))
    });
    let kind = empty.expect_err("no endpoints must fail").kind();
    assert_eq!(kind, std::io::ErrorKind::ConnectionRefused, "rejected, not left to time out");
    let kind = unallocated.expect_err("unallocated must fail").kind();
    assert_eq!(kind, std::io::ErrorKind::TimedOut, "an unallocated service IP is dropped silently");
}

#[test]
fn client_ip_affinity_pins_a_client_to_one_pod() {
    let mut h = Harness::new("aff", 3);
    h.node.serve(0, 8080);
    h.node.serve(1, 8080);
    let mut svc = h.service("sticky", WEB, 80, 8080, &[0, 1]);
    svc.affinity_timeout = Some(600);
    h.model.lock().upsert_service(svc);
    h.sync();
    let ids = in_ns(&h.node.pods[2], || (0..40).map(|_| hello(addr(WEB, 80)).expect("connect").0).collect::<Vec<_>>());
    assert!(ids.iter().all(|i| *i == ids[0]), "affinity broken: {ids:?}");
}

#[test]
fn node_port_answers_and_external_traffic_policy_decides_the_source() {
    let mut h = Harness::new("np", 2);
    h.node.serve(0, 8080);
    h.node.serve(1, 8081);
    let cluster = Service::cluster_ip(key("cluster"), WEB, vec![tcp_port(80, Some(30080))]);
    let mut local = Service::cluster_ip(key("local"), Ipv4Addr::new(10, 96, 0, 21), vec![tcp_port(80, Some(30081))]);
    local.external_local = true;
    {
        let mut m = h.model.lock();
        m.upsert_service(cluster);
        m.upsert_slice(slice("cluster", 8080, &[0]));
        m.upsert_service(local);
        m.upsert_slice(slice("local", 8081, &[1]));
    }
    h.sync();
    let (cluster_peer, local_peer) =
        in_ns(&h.node.outside, || (hello(addr(support::NODE_IP, 30080)), hello(addr(support::NODE_IP, 30081))));
    assert_eq!(cluster_peer.expect("NodePort, policy Cluster"), (0, support::BRIDGE_IP), "Cluster: SNAT to the node");
    assert_eq!(local_peer.expect("NodePort, policy Local"), (1, support::OUTSIDE_IP), "Local: client IP kept");
}

#[test]
fn removed_endpoint_gets_no_new_connection() {
    let mut h = Harness::new("rm", 3);
    h.node.serve(0, 8080);
    h.node.serve(1, 8080);
    h.service("web", WEB, 80, 8080, &[0, 1]);
    h.sync();
    h.model.lock().upsert_slice(slice("web", 8080, &[0]));
    let outcome = h.sync();
    assert!(!outcome.full && outcome.services == 1, "a delta sync of one Service: {outcome:?}");
    let ids = in_ns(&h.node.pods[2], || (0..50).map(|_| hello(addr(WEB, 80)).expect("connect").0).collect::<Vec<_>>());
    assert!(ids.iter().all(|i| *i == 0), "a connection went to the removed endpoint: {ids:?}");
}

#[test]
fn edge_cases_are_programmed_without_error() {
    let mut h = Harness::new("edge", 2);
    h.node.serve(0, 8080);
    // 5,000 endpoints (pod 0 among them, the rest unreachable addresses of other nodes).
    let mut big = slice("big", 8080, &[0]);
    for i in 0..4999u32 {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 42, 1, 0)) + i);
        big.endpoints.push(Endpoint::ready(ip, "n2"));
    }
    let big_ip = Ipv4Addr::new(10, 96, 0, 30);
    {
        let mut m = h.model.lock();
        m.upsert_service(Service::cluster_ip(key("big"), big_ip, vec![tcp_port(80, None)]));
        m.upsert_slice(big);
    }
    // A slice naming a port its Service does not have.
    let mut odd = slice("odd", 8080, &[0]);
    odd.ports[0].name = "nope".into();
    h.model.lock().upsert_service(Service::cluster_ip(key("odd"), WEB, vec![tcp_port(80, None)]));
    h.model.lock().upsert_slice(odd);
    h.sync();
    let table = sh(&h.node.node, &format!("nft list table ip {TABLE}"));
    assert!(table.contains("numgen random mod 5000"), "a pick chain for 5,000 endpoints");
    assert_eq!(table.matches("10.96.0.30 . tcp . 80 . ").count(), 5000, "every endpoint is in the map");
    // The port changes protocol: TCP 80 becomes UDP 80.
    let mut svc = Service::cluster_ip(key("big"), big_ip, vec![tcp_port(80, None)]);
    svc.ports[0].protocol = Protocol::Udp;
    h.model.lock().upsert_service(svc);
    h.sync();
    let listing = sh(&h.node.node, &format!("nft list map ip {TABLE} no-endpoint-services"));
    assert!(listing.contains("10.96.0.30 . udp . 80"), "{listing}");
    assert!(listing.contains("10.96.0.20 . tcp . 80"), "the odd slice's port is ignored: {listing}");
    let refused =
        in_ns(&h.node.pods[1], || std::net::TcpStream::connect_timeout(&addr(WEB, 80), Duration::from_secs(5)));
    assert_eq!(refused.map(|_| ()).expect_err("no matching port").kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn a_hand_changed_ruleset_is_repaired_by_a_resync() {
    let mut h = Harness::new("drift", 2);
    h.node.serve(0, 8080);
    h.service("web", WEB, 80, 8080, &[0]);
    h.sync();
    sh(
        &h.node.node,
        &format!(
            "nft delete element ip {TABLE} service-ips '{{ 10.96.0.20 . tcp . 80 }}' && \
             nft add chain ip {TABLE} intruder && \
             nft add element ip {TABLE} no-endpoint-services '{{ 10.96.0.20 . tcp . 80 : goto reject-chain }}'"
        ),
    );
    let broken = in_ns(&h.node.pods[1], || hello(addr(WEB, 80)));
    assert!(broken.is_err(), "the hand change took effect");
    let outcome = h.sync_with(true);
    assert!(outcome.full);
    let fixed = in_ns(&h.node.pods[1], || hello(addr(WEB, 80))).expect("repaired");
    assert_eq!(fixed.0, 0);
    let chains = sh(&h.node.node, &format!("nft -t list table ip {TABLE}"));
    assert!(!chains.contains("intruder"), "the foreign chain is deleted");
}

#[test]
fn restarting_the_proxy_keeps_established_connections() {
    let mut h = Harness::new("restart", 2);
    h.node.serve(0, 8080);
    h.service("web", WEB, 80, 8080, &[0]);
    h.sync();
    let mut conn = in_ns(&h.node.pods[1], || Echo::open(addr(WEB, 80))).expect("open");
    assert_eq!(conn.echo("before").expect("echo"), "before");
    // A new proxy with no memory writes its table over the existing one.
    h.proxier = Proxier::new(config(), Box::new(NftCli));
    h.model.lock().mark_all();
    let outcome = h.sync();
    assert!(outcome.full);
    assert_eq!(conn.echo("after").expect("the established connection survives"), "after");
    let fresh = in_ns(&h.node.pods[1], || hello(addr(WEB, 80))).expect("new connections work");
    assert_eq!(fresh.0, 0);
}

#[test]
fn local_dns_traffic_is_neither_dnated_nor_tracked() {
    let dns = Ipv4Addr::new(10, 96, 0, 10);
    let node = Node::new("dns", 1);
    let mut cfg = config();
    cfg.local_dns = Some(dns);
    let mut proxier = Proxier::new(cfg, Box::new(NftCli));
    let model = Mutex::new(Model::new());
    // kube-dns has no endpoints at all: the node-local server answers for it.
    model.lock().upsert_service(Service::cluster_ip(
        ServiceKey::new("kube-system", "kube-dns"),
        dns,
        vec![ServicePort { name: "dns".into(), protocol: Protocol::Udp, port: 53, node_port: None }],
    ));
    in_ns(&node.node, || proxier.sync(&model, false)).expect("sync");
    // The agent uses a dummy interface; this kernel may lack the module, and `lo` serves alike.
    sh(&node.node, "ip addr add 10.96.0.10/32 dev lo");
    let server = in_ns(&node.node, || std::net::UdpSocket::bind((dns, 53)).expect("bind dns"));
    server.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let answer = in_ns(&node.pods[0], || {
        let s = std::net::UdpSocket::bind(("0.0.0.0", 0)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        s.send_to(b"query", (dns, 53)).expect("send");
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).expect("the query arrives at the local server");
        server.send_to(&buf[..n], from).expect("answer");
        let (n, from) = s.recv_from(&mut buf).expect("the answer arrives");
        (buf[..n].to_vec(), from)
    });
    assert_eq!(answer, (b"query".to_vec(), addr(dns, 53)));
    let tracked = std::process::Command::new("ip")
        .args(["netns", "exec", &node.node, "conntrack", "-L", "-p", "udp", "--orig-dst", "10.96.0.10"])
        .output()
        .expect("conntrack");
    let listing = String::from_utf8_lossy(&tracked.stdout);
    assert!(!listing.contains("dport=53"), "DNS traffic was tracked: {listing}");
}
