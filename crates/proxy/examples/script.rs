//! Prints the full nft script for N synthetic Services of 10 endpoints, then the delta for
//! one endpoint change, separated by a `# delta` line: for measuring nft by hand.
//! `cargo run -p rkube-proxy --example script -- 30000 > /tmp/s.nft`

use std::net::Ipv4Addr;

use parking_lot::Mutex;
use rkube_proxy::ProxyConfig;
use rkube_proxy::backend::Recording;
use rkube_proxy::model::{Endpoint, Model, Protocol, Service, ServiceKey, ServicePort, Slice, SlicePort};
use rkube_proxy::proxier::Proxier;

fn slice(i: usize, first: Ipv4Addr) -> Slice {
    let mut endpoints: Vec<Endpoint> =
        (0..10).map(|k| Endpoint::ready(Ipv4Addr::from(0x0a2b_0000 + (i * 10 + k) as u32), "n2")).collect();
    endpoints[0].ip = first;
    Slice {
        namespace: "bench".into(),
        name: format!("svc-{i}-1"),
        service: format!("svc-{i}"),
        ports: vec![SlicePort { name: "http".into(), protocol: Protocol::Tcp, port: 8080 }],
        endpoints,
        trigger_time: None,
    }
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let mut m = Model::new();
    for i in 0..n {
        let key = ServiceKey::new("bench", format!("svc-{i}"));
        let port = ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: 80, node_port: None };
        m.upsert_service(Service::cluster_ip(key, Ipv4Addr::from(0x0a60_0100 + i as u32), vec![port]));
        m.upsert_slice(slice(i, Ipv4Addr::from(0x0a2b_0000 + (i * 10) as u32)));
    }
    let model = Mutex::new(m);
    let mut c = ProxyConfig::new("n1");
    c.table = "rkube".into();
    let rec = Recording::default();
    let mut proxier = Proxier::new(c, Box::new(rec.clone()));
    if let Err(e) = proxier.sync(&model, false) {
        eprintln!("sync: {e}");
        return;
    }
    model.lock().upsert_slice(slice(n / 2, Ipv4Addr::new(10, 44, 0, 1)));
    if let Err(e) = proxier.sync(&model, false) {
        eprintln!("sync: {e}");
        return;
    }
    let r = rec.0.lock();
    print!("{}# delta\n{}", r.scripts[0], r.scripts[1]);
}
