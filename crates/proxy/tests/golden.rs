//! Golden tests: a fixed set of Services and slices gives exactly the checked-in ruleset,
//! and one endpoint change gives exactly the checked-in delta.
//! `UPDATE_GOLDEN=1 cargo test -p rkube-proxy --test golden` rewrites the files.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use parking_lot::Mutex;
use rkube_proxy::ProxyConfig;
use rkube_proxy::backend::{ConntrackFlush, Recording};
use rkube_proxy::model::{Endpoint, Model, NodeFacts, Protocol, Service, ServiceKey, ServicePort, Slice, SlicePort};
use rkube_proxy::proxier::Proxier;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("ip")
}

fn port(name: &str, protocol: Protocol, port: u16, node_port: Option<u16>) -> ServicePort {
    ServicePort { name: name.into(), protocol, port, node_port }
}

fn slice(ns: &str, name: &str, svc: &str, ports: &[(&str, Protocol, u16)], eps: Vec<Endpoint>) -> Slice {
    Slice {
        namespace: ns.into(),
        name: name.into(),
        service: svc.into(),
        ports: ports.iter().map(|(n, p, port)| SlicePort { name: n.to_string(), protocol: *p, port: *port }).collect(),
        endpoints: eps,
        trigger_time: None,
    }
}

fn config() -> ProxyConfig {
    let mut c = ProxyConfig::new("n1");
    c.table = "rkube".into();
    c.cluster_cidr = Some("10.42.0.0/16".parse().expect("cidr"));
    c.pod_bridge = Some("cbr0".into());
    c.node_ips = vec![ip("192.168.240.10")];
    c.local_dns = Some(ip("10.96.0.10"));
    c.resync_interval = Duration::from_secs(60);
    c
}

/// One of each kind of Service the proxy programs.
fn fixture() -> Model {
    use Protocol::*;
    let mut m = Model::new();
    m.set_node(NodeFacts { pod_cidr: Some("10.42.0.0/24".parse().expect("cidr")), addresses: vec![] });
    let key = |n: &str| ServiceKey::new("default", n);
    // Two endpoints, port → targetPort.
    m.upsert_service(Service::cluster_ip(key("web"), ip("10.96.0.20"), vec![port("http", Tcp, 80, None)]));
    m.upsert_slice(slice(
        "default",
        "web-1",
        "web",
        &[("http", Tcp, 8080), ("metrics", Tcp, 9090)],
        vec![Endpoint::ready(ip("10.42.0.2"), "n1"), Endpoint::ready(ip("10.42.1.2"), "n2")],
    ));
    // The node-local DNS address: neither DNATed nor rejected, though it has no endpoints.
    m.upsert_service(Service::cluster_ip(
        ServiceKey::new("kube-system", "kube-dns"),
        ip("10.96.0.10"),
        vec![port("dns", Udp, 53, None), port("dns-tcp", Tcp, 53, None), port("metrics", Tcp, 9153, None)],
    ));
    // No endpoints: rejected.
    m.upsert_service(Service::cluster_ip(key("empty"), ip("10.96.0.30"), vec![port("", Tcp, 80, None)]));
    // NodePort with externalTrafficPolicy Local, TCP and UDP.
    let mut np = Service::cluster_ip(
        key("np"),
        ip("10.96.0.40"),
        vec![port("tcp", Tcp, 80, Some(30080)), port("udp", Udp, 53, Some(30053))],
    );
    np.external_local = true;
    np.health_check_node_port = Some(32000);
    m.upsert_service(np);
    m.upsert_slice(slice(
        "default",
        "np-1",
        "np",
        &[("tcp", Tcp, 8080), ("udp", Udp, 5353)],
        vec![Endpoint::ready(ip("10.42.0.3"), "n1"), Endpoint::ready(ip("10.42.1.3"), "n2")],
    ));
    // LoadBalancer with source ranges and ClientIP affinity.
    let mut lb = Service::cluster_ip(key("lb"), ip("10.96.0.50"), vec![port("", Sctp, 443, Some(30443))]);
    lb.load_balancer_ips = vec![ip("192.168.240.100")];
    lb.external_ips = vec![ip("192.168.240.101")];
    lb.load_balancer_source_ranges = vec!["192.168.240.0/24".parse().expect("cidr")];
    lb.affinity_timeout = Some(600);
    m.upsert_service(lb);
    m.upsert_slice(slice(
        "default",
        "lb-1",
        "lb",
        &[("", Sctp, 8443)],
        vec![Endpoint::ready(ip("10.42.0.4"), "n1"), Endpoint::ready(ip("10.42.1.4"), "n2")],
    ));
    // Only terminating endpoints left: the serving one is used, the other not.
    m.upsert_service(Service::cluster_ip(key("term"), ip("10.96.0.60"), vec![port("", Tcp, 80, None)]));
    let mut serving = Endpoint::ready(ip("10.42.0.5"), "n1");
    serving.ready = false;
    serving.terminating = true;
    let mut gone = Endpoint::ready(ip("10.42.0.6"), "n1");
    gone.ready = false;
    gone.serving = false;
    gone.terminating = true;
    m.upsert_slice(slice("default", "term-1", "term", &[("", Tcp, 80)], vec![serving, gone]));
    // internalTrafficPolicy Local: only the local endpoint for ClusterIP traffic.
    let mut itp = Service::cluster_ip(key("itp"), ip("10.96.0.70"), vec![port("", Tcp, 80, None)]);
    itp.internal_local = true;
    m.upsert_service(itp);
    m.upsert_slice(slice(
        "default",
        "itp-1",
        "itp",
        &[("", Tcp, 80)],
        vec![Endpoint::ready(ip("10.42.0.7"), "n1"), Endpoint::ready(ip("10.42.1.7"), "n2")],
    ));
    m
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect("golden file (UPDATE_GOLDEN=1 creates it)");
    assert!(expected == actual, "{name} differs from the golden file:\n{actual}");
}

#[test]
fn whole_ruleset_and_one_endpoint_delta() {
    let model = Mutex::new(fixture());
    let rec = Recording::default();
    let mut proxier = Proxier::new(config(), Box::new(rec.clone()));
    let first = proxier.sync(&model, false).expect("full sync");
    assert!(first.full, "the first sync writes the whole table");
    check("full.nft", &rec.0.lock().scripts[0]);
    assert_eq!(
        proxier.health().get(&32000).map(|(k, n)| (k.name.as_str(), *n)),
        Some(("np", 1)),
        "the health server of np reports its one local endpoint"
    );

    // One endpoint of web moves: only web's chain changes.
    model.lock().upsert_slice(slice(
        "default",
        "web-1",
        "web",
        &[("http", Protocol::Tcp, 8080)],
        vec![Endpoint::ready(ip("10.42.0.2"), "n1"), Endpoint::ready(ip("10.42.1.9"), "n2")],
    ));
    let second = proxier.sync(&model, false).expect("delta sync");
    assert!(!second.full);
    assert_eq!(second.services, 1, "only the changed Service is recomputed");
    check("delta-endpoint.nft", &rec.0.lock().scripts[1]);

    // Nothing changed: nothing is sent.
    let third = proxier.sync(&model, false).expect("empty sync");
    assert_eq!(third.script_bytes, 0);
    assert_eq!(rec.0.lock().scripts.len(), 2);
}

#[test]
fn removed_udp_endpoint_flushes_its_conntrack_entries_after_commit() {
    let model = Mutex::new(fixture());
    let rec = Recording::default();
    let mut proxier = Proxier::new(config(), Box::new(rec.clone()));
    proxier.sync(&model, false).expect("full sync");
    model.lock().upsert_slice(slice(
        "default",
        "np-1",
        "np",
        &[("tcp", Protocol::Tcp, 8080), ("udp", Protocol::Udp, 5353)],
        vec![Endpoint::ready(ip("10.42.0.3"), "n1")],
    ));
    proxier.sync(&model, false).expect("delta sync");
    let r = rec.0.lock();
    assert_eq!(
        r.flushes,
        vec![
            ConntrackFlush { dst: None, port: 30053, nat_to: Some(ip("10.42.1.3")) },
            ConntrackFlush { dst: Some(ip("10.96.0.40")), port: 53, nat_to: Some(ip("10.42.1.3")) },
        ]
    );
    assert!(r.scripts[1].contains("10.96.0.40 . udp . 53 : goto pick-1-"), "{}", r.scripts[1]);
}

#[test]
fn failed_commit_is_repaired_by_a_full_sync() {
    let model = Mutex::new(fixture());
    let rec = Recording::default();
    let mut proxier = Proxier::new(config(), Box::new(rec.clone()));
    proxier.sync(&model, false).expect("full sync");
    model.lock().delete_service(&ServiceKey::new("default", "web"));
    rec.0.lock().fail_next = true;
    assert!(proxier.sync(&model, false).is_err());
    let retry = proxier.sync(&model, false).expect("retry");
    assert!(retry.full, "after a failure the next sync rewrites the table");
    let r = rec.0.lock();
    assert!(!r.scripts[1].contains("web"), "the deleted Service is gone from the rewrite");
}

#[test]
fn services_without_valid_data_never_block_others() {
    use Protocol::*;
    let mut m = Model::new();
    // A slice naming a port the Service lacks, and a Service whose port changes protocol.
    let key = ServiceKey::new("default", "a");
    m.upsert_service(Service::cluster_ip(key.clone(), ip("10.96.1.1"), vec![port("p", Tcp, 80, None)]));
    m.upsert_slice(slice("default", "a-1", "a", &[("other", Tcp, 81)], vec![Endpoint::ready(ip("10.42.0.2"), "n1")]));
    // Two Services claiming one IP and port: the first keeps it.
    m.upsert_service(Service::cluster_ip(
        ServiceKey::new("default", "b"),
        ip("10.96.1.2"),
        vec![port("", Tcp, 80, None)],
    ));
    m.upsert_service(Service::cluster_ip(
        ServiceKey::new("default", "c"),
        ip("10.96.1.2"),
        vec![port("", Tcp, 80, None)],
    ));
    let model = Mutex::new(m);
    let rec = Recording::default();
    let mut proxier = Proxier::new(config(), Box::new(rec.clone()));
    proxier.sync(&model, false).expect("full sync");
    let script = rec.0.lock().scripts[0].clone();
    assert!(script.contains("10.96.1.1 . tcp . 80 : goto reject-chain"), "no endpoint on port p: {script}");
    assert_eq!(script.matches("10.96.1.2 . tcp . 80 :").count(), 1, "{script}");
    model.lock().upsert_service(Service::cluster_ip(key, ip("10.96.1.1"), vec![port("p", Udp, 80, None)]));
    proxier.sync(&model, false).expect("protocol change");
    let delta = rec.0.lock().scripts[1].clone();
    assert!(delta.contains("delete element ip rkube no-endpoint-services { 10.96.1.1 . tcp . 80 }"), "{delta}");
    assert!(delta.contains("add element ip rkube no-endpoint-services { 10.96.1.1 . udp . 80 : goto reject-chain }"));
}
