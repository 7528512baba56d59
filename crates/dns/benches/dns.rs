//! `./bench dns`: dnsperf against rkube's DNS server and against NSD (a reference
//! authoritative server from Debian) serving the same records from zone files generated
//! from the same snapshot. Both servers are pinned to CPU 0 and dnsperf to CPU 1, on
//! loopback. For each: the saturation QPS, and the latency percentiles at a fixed offered
//! load (100,000 QPS by default), then the ratios.
//!
//! `RKUBE_BENCH_QUICK=1` runs 2 s per measurement instead of 10.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_dns::fixtures;
use rkube_dns::wire::encode_name;
use rkube_dns::{DnsServer, Metrics, SnapshotCell};
use serde_json::json;

const SERVICES: usize = 1000;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // By PID: only the reference server this run started.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let quick = std::env::var("RKUBE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let secs = if quick { 2 } else { 10 };
    let rate: u64 = std::env::var("RKUBE_DNS_BENCH_QPS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    for tool in ["dnsperf", "nsd", "taskset"] {
        let found = Command::new("sh").args(["-c", &format!("command -v {tool} || test -x /usr/sbin/{tool}")]).output();
        assert!(found.is_ok_and(|o| o.status.success()), "{tool} is missing: run scripts/install-deps.sh");
    }
    let dir = tempfile::Builder::new().prefix("rkube-dns-bench-").tempdir().expect("tempdir");

    // The data: the fixture cluster plus SERVICES ClusterIP Services with a named port.
    let mut cluster = fixtures::cluster(10);
    for i in 0..SERVICES {
        let ip = format!("10.96.{}.{}", 4 + i / 250, i % 250 + 1);
        cluster.services.push(fixtures::service(
            "bench",
            &format!("svc-{i}"),
            json!({"clusterIP": ip, "clusterIPs": [ip], "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
        ));
    }
    let cfg = fixtures::build_config();
    let snapshot = cluster.snapshot(&cfg);
    let queries = dir.path().join("queries.txt");
    write_queries(&queries);

    // rkube: the server's threads inherit CPU 0 from the thread that starts them.
    let cell = SnapshotCell::new(snapshot);
    let zones: Vec<(String, String)> = {
        let s = cell.load();
        s.zones().into_iter().map(|z| (z.clone(), s.zone_file(&z))).collect()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut cpus = rustix::thread::CpuSet::new();
        cpus.set(0);
        rustix::thread::sched_setaffinity(None, &cpus).expect("pin to CPU 0");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
            let server = DnsServer::start(&[listen], Vec::new(), 30, cell, Metrics::new()).expect("start");
            let _ = tx.send(server.local_addrs()[0]);
            std::future::pending::<()>().await;
        });
    });
    let ours = rx.recv().expect("rkube dns started");

    // NSD, on the same records.
    let nsd_port = free_udp_port();
    let nsd = start_nsd(dir.path(), nsd_port, &zones);
    let theirs = SocketAddr::from((Ipv4Addr::LOCALHOST, nsd_port));
    wait_answering(theirs);

    // Same answers from both, for a sample of the queries.
    for (name, qtype) in [
        ("svc-7.bench.svc.cluster.local", "A"),
        ("_http._tcp.svc-7.bench.svc.cluster.local", "SRV"),
        ("8.4.96.10.in-addr.arpa", "PTR"),
        ("nope-3.bench.svc.cluster.local", "A"),
        ("svc-9.bench.svc.cluster.local", "AAAA"),
    ] {
        let a = dig(ours, name, qtype);
        let b = dig(theirs, name, qtype);
        assert_eq!(a, b, "rkube and nsd disagree on {name} {qtype}");
    }

    println!(
        "dns: {} Services, query mix of A / SRV / PTR / AAAA (NODATA) / NXDOMAIN; servers on CPU 0, dnsperf on CPU 1",
        SERVICES + cluster.services.len() - SERVICES
    );
    let mut results = Vec::new();
    // Latency at the target rate, and at a fifth of it: on a shared two-core machine the
    // first mostly measures queueing behind other work, the second the server itself.
    let light = rate / 5;
    for (label, addr) in [("rkube", ours), ("nsd", theirs)] {
        let qps = saturation(addr, &queries, secs);
        let (p50, p99, achieved) = latency(addr, &queries, secs, rate);
        let (lp50, lp99, _) = latency(addr, &queries, secs, light);
        println!(
            "{label:>6}: saturation {qps:>9.0} QPS | at {rate} QPS offered ({achieved:.0} answered/s): p50 {:.3} ms, p99 {:.3} ms | at {light} QPS: p50 {:.3} ms, p99 {:.3} ms",
            p50 * 1e3,
            p99 * 1e3,
            lp50 * 1e3,
            lp99 * 1e3
        );
        results.push((qps, p99));
    }
    drop(nsd);
    let (ours_qps, ours_p99) = results[0];
    let (nsd_qps, nsd_p99) = results[1];
    println!("ratio rkube/nsd: QPS {:.2}x, p99 {:.2}x", ours_qps / nsd_qps, ours_p99 / nsd_p99);
    println!(
        "targets: >= 100,000 QPS on one core: {}; p99 <= 1 ms at {rate} QPS: {}; >= nsd QPS: {}",
        if ours_qps >= 100_000.0 { "met" } else { "NOT met" },
        if ours_p99 <= 0.001 { "met" } else { "NOT met" },
        if ours_qps >= nsd_qps { "met" } else { "NOT met" },
    );
}

fn write_queries(path: &Path) {
    let mut f = std::fs::File::create(path).expect("queries file");
    for i in 0..10_000usize {
        let s = (i * 7919) % SERVICES;
        let line = match i % 10 {
            0..=5 => format!("svc-{s}.bench.svc.cluster.local A"),
            6 => format!("_http._tcp.svc-{s}.bench.svc.cluster.local SRV"),
            7 => format!("{}.{}.96.10.in-addr.arpa PTR", s % 250 + 1, 4 + s / 250),
            8 => format!("svc-{s}.bench.svc.cluster.local AAAA"),
            _ => format!("nope-{s}.bench.svc.cluster.local A"),
        };
        writeln!(f, "{line}").expect("write");
    }
}

fn free_udp_port() -> u16 {
    loop {
        let u = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("probe");
        let port = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

fn start_nsd(dir: &Path, port: u16, zones: &[(String, String)]) -> Killed {
    let d = dir.display();
    let mut conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  \
         pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  \
         server-count: 1\n  verbosity: 0\n  hide-version: yes\n  logfile: \"{d}/nsd.log\"\n  refuse-any: no\n  minimal-responses: yes\n  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n\
         remote-control:\n  control-enable: no\n"
    );
    for (i, (apex, text)) in zones.iter().enumerate() {
        let file = dir.join(format!("zone{i}.zone"));
        std::fs::write(&file, text).expect("zone file");
        conf.push_str(&format!("zone:\n  name: \"{apex}\"\n  zonefile: \"{}\"\n", file.display()));
    }
    let conf_path = dir.join("nsd.conf");
    std::fs::write(&conf_path, conf).expect("nsd.conf");
    let child = Command::new("taskset")
        .args(["-c", "0", "/usr/sbin/nsd", "-d", "-c"])
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nsd");
    Killed(child)
}

fn wait_answering(addr: SocketAddr) {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let mut q = vec![0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend(encode_name("cluster.local").expect("name"));
    q.extend_from_slice(&[0, 6, 0, 1]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        let _ = sock.send_to(&q, addr);
        if sock.recv(&mut buf).is_ok() {
            return;
        }
    }
    panic!("the reference server at {addr} never answered; see its log in the temp dir");
}

fn dig(addr: SocketAddr, name: &str, qtype: &str) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args([
            "-p",
            &addr.port().to_string(),
            "+noall",
            "+answer",
            "+authority",
            "+comments",
            "+nocookie",
            name,
            qtype,
        ])
        .output()
        .expect("dig");
    // Keep the records and the status, not the IDs and timings.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<String> = text
        .lines()
        .filter_map(|l| {
            if let Some(s) = l.split("status: ").nth(1) {
                return Some(s.split(',').next().unwrap_or("").to_owned());
            }
            if l.starts_with(';') || l.is_empty() {
                return None;
            }
            // SOA serials differ (ours changes per snapshot, a zone file's is fixed).
            let parts: Vec<&str> = l.split_whitespace().collect();
            Some(if parts.get(3) == Some(&"SOA") { parts[..5].join(" ") } else { parts.join(" ") })
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

fn dnsperf(args: &[&str]) -> String {
    let out = Command::new("taskset").args(["-c", "1", "dnsperf"]).args(args).output().expect("run dnsperf");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn field(report: &str, key: &str) -> f64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn saturation(addr: SocketAddr, queries: &Path, secs: u64) -> f64 {
    let port = addr.port().to_string();
    let q = queries.display().to_string();
    let report = dnsperf(&["-s", "127.0.0.1", "-p", &port, "-d", &q, "-l", &secs.to_string(), "-c", "8", "-q", "256"]);
    let lost = field(&report, "Queries lost:");
    if lost > 0.0 {
        eprintln!("  ({lost} queries lost at saturation)");
    }
    field(&report, "Queries per second:")
}

/// Latency percentiles at a fixed offered rate, from dnsperf's per-query verbose lines
/// ("> NOERROR name type latency").
fn latency(addr: SocketAddr, queries: &Path, secs: u64, rate: u64) -> (f64, f64, f64) {
    let port = addr.port().to_string();
    let q = queries.display().to_string();
    let report = dnsperf(&[
        "-s",
        "127.0.0.1",
        "-p",
        &port,
        "-d",
        &q,
        "-l",
        &secs.to_string(),
        "-c",
        "8",
        "-q",
        "1000",
        "-Q",
        &rate.to_string(),
        "-v",
    ]);
    let mut lat: Vec<f64> = report
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last().and_then(|v| v.parse().ok()))
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
    };
    let _ = Arc::new(());
    (pct(0.50), pct(0.99), field(&report, "Queries per second:"))
}
