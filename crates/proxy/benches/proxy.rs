//! `./bench proxy`: the nftables proxy against a kube-proxy-iptables-like baseline (linear
//! chains, rewritten per sync), in network namespaces the benchmark creates, in one run.
//!
//! (a) first-packet latency (connect, request, response) from an outside client through a
//!     ClusterIP versus straight to the pod IP, with 100, 10,000 and 30,000 Services;
//! (b) a full sync of 30,000 Services with 10 endpoints each;
//! (c) one endpoint change programmed with 30,000 Services present;
//! (d) the same three for the baseline, and the ratios.
//!
//! `RKUBE_BENCH_QUICK=1` shrinks the sizes (100, 1,000, 3,000) for a smoke run.

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rkube_proxy::ProxyConfig;
use rkube_proxy::backend::NftCli;
use rkube_proxy::model::{Endpoint, Model, NodeFacts, Protocol, Service, ServiceKey, ServicePort, Slice, SlicePort};
use rkube_proxy::proxier::Proxier;
use support::{Node, in_ns};

const TABLE: &str = "rkube-bench";
const BASE_TABLE: &str = "kubeproxy-linear";
const WEB: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const ENDPOINTS: usize = 10;

fn svc_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 1, 0)) + i as u32)
}

fn ep_ip(i: usize, k: usize) -> Ipv4Addr {
    // Other nodes' pods: never contacted, only programmed.
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 43, 0, 0)) + ((i * ENDPOINTS + k) % 1_000_000) as u32)
}

fn port(p: u16) -> ServicePort {
    ServicePort { name: "http".into(), protocol: Protocol::Tcp, port: p, node_port: None }
}

fn slice(name: &str, eps: Vec<Ipv4Addr>, node: &str) -> Slice {
    Slice {
        namespace: "bench".into(),
        name: format!("{name}-1"),
        service: name.into(),
        ports: vec![SlicePort { name: "http".into(), protocol: Protocol::Tcp, port: 8080 }],
        endpoints: eps.into_iter().map(|ip| Endpoint::ready(ip, node)).collect(),
        trigger_time: None,
    }
}

fn add_services(model: &Mutex<Model>, from: usize, to: usize) {
    let mut m = model.lock();
    for i in from..to {
        let name = format!("svc-{i}");
        m.upsert_service(Service::cluster_ip(ServiceKey::new("bench", &name), svc_ip(i), vec![port(80)]));
        m.upsert_slice(slice(&name, (0..ENDPOINTS).map(|k| ep_ip(i, k)).collect(), "n2"));
    }
}

fn config() -> ProxyConfig {
    let mut c = ProxyConfig::new("n1");
    c.table = TABLE.into();
    c.cluster_cidr = Some("10.42.0.0/16".parse().expect("cidr"));
    c.pod_bridge = Some("cbr0".into());
    c.node_ips = vec![support::NODE_IP];
    c
}

fn nft(ns: &str, script: &str) -> Duration {
    in_ns(ns, || {
        let t = Instant::now();
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
        child.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write script");
        let out = child.wait_with_output().expect("nft");
        assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
        t.elapsed()
    })
}

/// connect + request + response, `n` times to each of `a` and `b`, alternating, from the
/// outside namespace (so load from elsewhere on the machine hits both alike); sorted samples.
fn latency(ns: &str, a: SocketAddr, b: SocketAddr, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    in_ns(ns, || {
        let once = |to: &SocketAddr| {
            let t = Instant::now();
            let conn = TcpStream::connect_timeout(to, Duration::from_secs(5)).expect("connect");
            conn.set_nodelay(true).expect("nodelay");
            let mut w = conn.try_clone().expect("clone");
            let mut r = BufReader::new(conn);
            let mut line = String::new();
            r.read_line(&mut line).expect("greeting");
            w.write_all(b"ping\n").expect("request");
            line.clear();
            r.read_line(&mut line).expect("response");
            t.elapsed()
        };
        let (mut sa, mut sb) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n + n / 10 {
            let (x, y) = if i % 2 == 0 {
                (once(&a), once(&b))
            } else {
                let y = once(&b);
                (once(&a), y)
            };
            // The first tenth warms caches and is not counted.
            if i >= n / 10 {
                sa.push(x);
                sb.push(y);
            }
        }
        sa.sort();
        sb.sort();
        (sa, sb)
    })
}

fn pct(s: &[Duration], p: f64) -> Duration {
    s[((s.len() as f64 - 1.0) * p) as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The kube-proxy iptables-mode shape in nft: one services chain with a rule per Service
/// (matched in order), a chain per Service picking an endpoint with iptables' cascading
/// probabilities, and a chain per endpoint. `web` is matched last, the worst case.
fn baseline_service_chains(s: &mut String, i: usize, eps: &[(Ipv4Addr, u16)]) {
    let t = BASE_TABLE;
    let _ = writeln!(s, "add chain ip {t} svc-{i}");
    let _ = writeln!(s, "flush chain ip {t} svc-{i}");
    let n = eps.len();
    for (k, (ip, p)) in eps.iter().enumerate() {
        let _ = writeln!(s, "add chain ip {t} sep-{i}-{k}");
        let _ = writeln!(s, "flush chain ip {t} sep-{i}-{k}");
        let _ = writeln!(s, "add rule ip {t} sep-{i}-{k} meta l4proto tcp dnat to {ip}:{p}");
        if k + 1 < n {
            let _ = writeln!(s, "add rule ip {t} svc-{i} numgen random mod {} == 0 jump sep-{i}-{k}", n - k);
        } else {
            let _ = writeln!(s, "add rule ip {t} svc-{i} jump sep-{i}-{k}");
        }
    }
}

fn baseline_services_chain(s: &mut String, n: usize) {
    let t = BASE_TABLE;
    let _ = writeln!(s, "flush chain ip {t} services");
    for i in 0..n {
        let _ = writeln!(s, "add rule ip {t} services ip daddr {} tcp dport 80 jump svc-{i}", svc_ip(i));
    }
    let _ = writeln!(s, "add rule ip {t} services ip daddr {WEB} tcp dport 80 jump svc-web");
}

fn baseline_full(n: usize) -> String {
    let t = BASE_TABLE;
    let mut s = String::new();
    let _ = writeln!(s, "add table ip {t}");
    let _ = writeln!(s, "add chain ip {t} prerouting {{ type nat hook prerouting priority dstnat; }}");
    let _ = writeln!(s, "add chain ip {t} postrouting {{ type nat hook postrouting priority srcnat; }}");
    let _ = writeln!(s, "add chain ip {t} services");
    let _ = writeln!(s, "flush chain ip {t} prerouting");
    let _ = writeln!(s, "flush chain ip {t} postrouting");
    let _ = writeln!(s, "add rule ip {t} prerouting jump services");
    let _ = writeln!(s, "add rule ip {t} postrouting ct status dnat masquerade");
    for i in 0..n {
        let eps: Vec<(Ipv4Addr, u16)> = (0..ENDPOINTS).map(|k| (ep_ip(i, k), 8080)).collect();
        baseline_service_chains(&mut s, i, &eps);
    }
    let _ = writeln!(s, "add chain ip {t} svc-web\nflush chain ip {t} svc-web");
    let _ = writeln!(s, "add chain ip {t} sep-web\nflush chain ip {t} sep-web");
    let _ = writeln!(s, "add rule ip {t} sep-web meta l4proto tcp dnat to {}:8080", Node::pod_ip(0));
    let _ = writeln!(s, "add rule ip {t} svc-web jump sep-web");
    baseline_services_chain(&mut s, n);
    s
}

struct Row {
    services: usize,
    direct: Duration,
    ours: Duration,
    base_direct: Duration,
    base: Duration,
}

fn main() {
    let quick = std::env::var_os("RKUBE_BENCH_QUICK").is_some();
    let sizes: [usize; 3] = if quick { [100, 1_000, 3_000] } else { [100, 10_000, 30_000] };
    let samples = if quick { 300 } else { 2_000 };
    let changes = if quick { 5 } else { 20 };
    let largest = sizes[2];

    let mut node = Node::new("bench", 1);
    node.serve(0, 8080);
    node.route_services_from_outside();
    support::ip(&["-n", &node.outside, "route", "add", "10.42.0.0/24", "via", "192.168.240.10"]);
    let pod = SocketAddr::new(Node::pod_ip(0).into(), 8080);
    let vip = SocketAddr::new(WEB.into(), 80);

    // nft's fixed cost: a process start and a cache load, for the netlink question.
    let empty = (0..20).map(|_| nft(&node.node, "add table ip rkube-probe\n")).min().expect("runs");
    nft(&node.node, "delete table ip rkube-probe\n");

    // (a) and the growth to the largest size, ours.
    let model = Mutex::new(Model::new());
    model.lock().set_node(NodeFacts { pod_cidr: Some("10.42.0.0/24".parse().expect("cidr")), addresses: vec![] });
    model.lock().upsert_service(Service::cluster_ip(ServiceKey::new("bench", "web"), WEB, vec![port(80)]));
    model.lock().upsert_slice(slice("web", vec![Node::pod_ip(0)], "n1"));
    let mut proxier = Proxier::new(config(), Box::new(NftCli));
    let mut rows = Vec::new();
    let mut have = 0;
    for &n in &sizes {
        add_services(&model, have, n);
        have = n;
        in_ns(&node.node, || proxier.sync(&model, false)).expect("sync");
        let (direct, ours) = latency(&node.outside, pod, vip, samples);
        eprintln!(
            "(a) {n} Services: direct p50 {:.1} µs, ClusterIP p50 {:.1} µs",
            us(pct(&direct, 0.5)),
            us(pct(&ours, 0.5))
        );
        rows.push(Row {
            services: n,
            direct: pct(&direct, 0.5),
            ours: pct(&ours, 0.5),
            base_direct: Duration::ZERO,
            base: Duration::ZERO,
        });
    }

    // (b) a full sync from nothing, and a full resync over the existing table.
    nft(&node.node, &format!("delete table ip {TABLE}\n"));
    let mut fresh = Proxier::new(config(), Box::new(NftCli));
    let t = Instant::now();
    let full = in_ns(&node.node, || fresh.sync(&model, true)).expect("full sync");
    let full_time = t.elapsed();
    let t = Instant::now();
    in_ns(&node.node, || fresh.sync(&model, true)).expect("resync");
    let resync_time = t.elapsed();

    // (c) one endpoint change, `changes` times.
    let mut one = Vec::new();
    let mut split = Vec::new();
    for c in 0..changes {
        let i = (c * 7919) % largest;
        let mut eps: Vec<Ipv4Addr> = (0..ENDPOINTS).map(|k| ep_ip(i, k)).collect();
        eps[c % ENDPOINTS] = Ipv4Addr::new(10, 44, (c / 250) as u8, (c % 250) as u8);
        model.lock().upsert_slice(slice(&format!("svc-{i}"), eps, "n2"));
        let t = Instant::now();
        let out = in_ns(&node.node, || fresh.sync(&model, false)).expect("delta");
        one.push(t.elapsed());
        split.push((out.compute, out.apply, out.script_bytes));
    }
    one.sort();
    nft(&node.node, &format!("delete table ip {TABLE}\n"));

    // (d) the baseline: (a) at each size, (b), (c).
    for row in rows.iter_mut() {
        nft(&node.node, &baseline_full(row.services));
        let (direct, base) = latency(&node.outside, pod, vip, samples);
        // The baseline's overhead is taken against its own interleaved direct samples.
        row.base_direct = pct(&direct, 0.5);
        row.base = pct(&base, 0.5);
        eprintln!("(d) {} Services: linear ClusterIP p50 {:.1} µs", row.services, us(row.base));
    }
    nft(&node.node, &format!("delete table ip {BASE_TABLE}\n"));
    let base_full = nft(&node.node, &baseline_full(largest));
    let mut base_one = Vec::new();
    // The baseline rewrites its 30,000-rule chain per change; fewer samples keep the run short.
    for c in 0..changes.min(5) {
        let i = (c * 7919) % largest;
        let mut eps: Vec<(Ipv4Addr, u16)> = (0..ENDPOINTS).map(|k| (ep_ip(i, k), 8080)).collect();
        eps[c % ENDPOINTS].0 = Ipv4Addr::new(10, 44, (c / 250) as u8, (c % 250) as u8);
        // kube-proxy's partial sync: the changed Service's chains and the whole services chain.
        let mut s = String::new();
        baseline_service_chains(&mut s, i, &eps);
        baseline_services_chain(&mut s, largest);
        base_one.push(nft(&node.node, &s));
    }
    base_one.sort();
    nft(&node.node, &format!("delete table ip {BASE_TABLE}\n"));

    println!("\n== ./bench proxy{} ==", if quick { " (quick)" } else { "" });
    println!("nft fixed cost (process + cache, best of 20): {:.2} ms", ms(empty));
    println!("(a) first-packet latency, connect+request+response, p50 over {samples}, outside client:");
    println!(
        "    {:>8}  {:>10}  {:>10}  {:>10}  {:>12}  {:>12}",
        "services", "pod IP", "rkube", "linear", "rkube extra", "linear extra"
    );
    for r in &rows {
        let extra = |d: Duration, direct: Duration| us(d) - us(direct);
        println!(
            "    {:>8}  {:>8.1}µs  {:>8.1}µs  {:>8.1}µs  {:>10.1}µs  {:>10.1}µs",
            r.services,
            us(r.direct),
            us(r.ours),
            us(r.base),
            extra(r.ours, r.direct),
            extra(r.base, r.base_direct)
        );
    }
    println!(
        "(b) full sync, {largest} Services × {ENDPOINTS} endpoints: rkube {:.0} ms (resync over the table {:.0} ms, {} KiB script); linear {:.0} ms; ratio linear/rkube {:.1}×",
        ms(full_time),
        ms(resync_time),
        full.script_bytes / 1024,
        ms(base_full),
        ms(base_full) / ms(full_time)
    );
    let (c50, a50, bytes) = split[split.len() / 2];
    println!(
        "(c) one endpoint change with {largest} Services: rkube p50 {:.2} ms, max {:.2} ms (compute {:.2} ms, nft {:.2} ms, {} bytes); linear p50 {:.1} ms; ratio {:.1}×",
        ms(pct(&one, 0.5)),
        ms(one[one.len() - 1]),
        ms(c50),
        ms(a50),
        bytes,
        ms(pct(&base_one, 0.5)),
        ms(pct(&base_one, 0.5)) / ms(pct(&one, 0.5))
    );
    println!("targets: (a) extra ≤ 5 µs p50 and flat; (b) ≤ 1,000 ms; (c) ≤ 10 ms");
}
