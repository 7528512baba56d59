//! Record-by-record conformance with the real `dig` (dnsutils) against the server on a
//! loopback port, fed the fixture cluster directly. Forwarding, the cache and autopath go
//! to a loopback stub resolver started by the test.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rkube_dns::fixtures;
use rkube_dns::wire::{self, encode_name};
use rkube_dns::{DnsServer, Metrics, SnapshotCell};

#[derive(Debug, Default)]
struct Dig {
    status: String,
    flags: String,
    answers: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
    raw: String,
}

impl Dig {
    fn data(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.answers.iter().map(|l| l.split('\t').next_back().unwrap_or("").to_owned()).collect();
        v.sort();
        v
    }
    fn has_flag(&self, f: &str) -> bool {
        self.flags.split_whitespace().any(|x| x == f)
    }
}

async fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("dig")
            .arg(format!("@{}", server.ip()))
            .args(["-p", &server.port().to_string(), "+tries=1", "+time=3", "+nocookie"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("dig finished")
    .expect("run dig (apt-get install dnsutils)");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut d = Dig { raw: raw.clone(), ..Default::default() };
    let mut section = "";
    for line in raw.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or("").to_owned();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            d.flags = rest.split(';').next().unwrap_or("").to_owned();
        } else if line.starts_with(";; ANSWER SECTION") {
            section = "an";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "ns";
        } else if line.starts_with(";; ADDITIONAL SECTION") {
            section = "ar";
        } else if line.is_empty() || line.starts_with(';') {
            if line.is_empty() {
                section = "";
            }
        } else {
            let norm = line.split_whitespace().collect::<Vec<_>>().join("\t");
            match section {
                "an" => d.answers.push(norm),
                "ns" => d.authority.push(norm),
                "ar" => d.additional.push(norm),
                _ => {}
            }
        }
    }
    d
}

struct Fixture {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    _server: DnsServer,
}

fn start(cluster: &fixtures::Cluster, forwarding: Option<SocketAddr>) -> Fixture {
    let mut cfg = fixtures::build_config();
    cfg.forwarding = forwarding.is_some();
    let cell = SnapshotCell::new(cluster.snapshot(&cfg));
    let metrics = Metrics::new();
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server =
        DnsServer::start(&[listen], forwarding.into_iter().collect(), 30, cell, metrics.clone()).expect("start");
    Fixture { addr: server.local_addrs()[0], metrics, _server: server }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_type_with_dig() {
    let f = start(&fixtures::cluster(100), None);
    let a = f.addr;

    let d = dig(a, &["my-nginx.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert!(d.has_flag("aa"), "{}", d.raw);
    assert_eq!(d.answers, ["my-nginx.default.svc.cluster.local.\t30\tIN\tA\t10.96.0.100"]);

    let d = dig(a, &["dual.default.svc.cluster.local", "AAAA"]).await;
    assert_eq!(d.data(), ["fd00:10:96::c8"]);

    let d = dig(a, &["headless.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.data(), ["10.42.0.5", "10.42.1.6"], "only the ready endpoints");
    let d = dig(a, &["headless-all.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.data(), ["10.42.0.5", "10.42.1.6", "10.42.2.7"]);
    let d = dig(a, &["web-0.headless.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.data(), ["10.42.0.5"]);

    let d = dig(a, &["_http._tcp.my-nginx.default.svc.cluster.local", "SRV"]).await;
    assert_eq!(d.data(), ["my-nginx.default.svc.cluster.local."]);
    assert!(d.answers[0].contains("SRV\t0\t100\t80\tmy-nginx.default.svc.cluster.local."), "{}", d.raw);
    assert_eq!(d.additional, ["my-nginx.default.svc.cluster.local.\t30\tIN\tA\t10.96.0.100"]);

    let d = dig(a, &["-x", "10.96.0.100"]).await;
    assert_eq!(d.data(), ["my-nginx.default.svc.cluster.local."]);
    let d = dig(a, &["-x", "10.42.1.6"]).await;
    assert_eq!(
        d.data(),
        ["10-42-1-6.headless-all.default.svc.cluster.local.", "10-42-1-6.headless.default.svc.cluster.local."]
    );

    let d = dig(a, &["ext.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.answers, ["ext.default.svc.cluster.local.\t30\tIN\tCNAME\texample.org."]);

    let d = dig(a, &["10-42-0-5.default.pod.cluster.local", "A"]).await;
    assert_eq!(d.data(), ["10.42.0.5"]);

    let d = dig(a, &["dns-version.cluster.local", "TXT"]).await;
    assert_eq!(d.data(), ["\"1.1.0\""]);

    // NXDOMAIN and NODATA, both with the SOA.
    let d = dig(a, &["nope.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.status, "NXDOMAIN");
    assert!(d.answers.is_empty());
    assert_eq!(d.authority.len(), 1);
    assert!(d.authority[0].starts_with("cluster.local.\t30\tIN\tSOA\tns.dns.cluster.local."), "{}", d.raw);
    let d = dig(a, &["my-nginx.default.svc.cluster.local", "AAAA"]).await;
    assert_eq!(d.status, "NOERROR");
    assert!(d.answers.is_empty());
    assert!(d.authority[0].contains("\tSOA\t"), "{}", d.raw);
    let d = dig(a, &["default.svc.cluster.local", "A"]).await;
    assert_eq!((d.status.as_str(), d.answers.len()), ("NOERROR", 0), "an empty non-terminal");

    // Other zones, classes and types.
    assert_eq!(dig(a, &["example.org", "A"]).await.status, "REFUSED");
    assert_eq!(dig(a, &["-c", "CH", "version.bind", "TXT"]).await.status, "NOTIMP");
    let d = dig(a, &["cluster.local", "AXFR"]).await;
    assert!(d.raw.contains("Transfer failed"), "zone transfers are refused: {}", d.raw);
    assert_eq!(dig(a, &["+edns=1", "+noednsneg", "my-nginx.default.svc.cluster.local"]).await.status, "BADVERS");

    assert!(f.metrics.render().contains("rkube_dns_responses_total{rcode=\"NXDOMAIN\"} 1"), "{}", f.metrics.render());

    // The same metrics over HTTP, as Prometheus scrapes them.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    let maddr = probe.local_addr().expect("addr");
    drop(probe);
    let serving = tokio::spawn(rkube_dns::serve_metrics(maddr, f.metrics.clone()));
    let body = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            if let Ok(mut s) = tokio::net::TcpStream::connect(maddr).await {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
                let mut body = String::new();
                s.read_to_string(&mut body).await.expect("read");
                return body;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let body = tokio::time::timeout(Duration::from_secs(10), body).await.expect("metrics answered");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("rkube_dns_requests_total{type=\"SRV\"} 1"), "{body}");
    assert!(body.contains("rkube_dns_request_duration_seconds_bucket{le=\"+Inf\"}"), "{body}");
    serving.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_and_tcp_with_dig() {
    let f = start(&fixtures::cluster(100), None);
    let d = dig(f.addr, &["+ignore", "+noedns", "big.default.svc.cluster.local", "A"]).await;
    assert!(d.has_flag("tc"), "{}", d.raw);
    assert!(d.answers.is_empty());
    let d = dig(f.addr, &["+ignore", "+bufsize=1232", "big.default.svc.cluster.local", "A"]).await;
    assert!(d.has_flag("tc"), "EDNS 1232 is still too small: {}", d.raw);
    // Without +ignore dig retries over TCP on TC, as a stub resolver does.
    let d = dig(f.addr, &["big.default.svc.cluster.local", "A"]).await;
    assert!(d.raw.contains("Truncated, retrying in TCP mode"), "{}", d.raw);
    assert_eq!(d.answers.len(), 100);
    let d = dig(f.addr, &["+tcp", "my-nginx.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.data(), ["10.96.0.100"]);
    let d = dig(f.addr, &["+tcp", "+keepopen", "my-nginx.default.svc.cluster.local", "dual.default.svc.cluster.local"])
        .await;
    assert_eq!(d.data(), ["10.96.0.100", "10.96.0.200"], "two queries on one TCP connection");
}

/// A loopback stub resolver: `example.org` has A 192.0.2.1 (a documentation address that
/// only ever appears inside DNS data), everything else is NXDOMAIN with an SOA whose
/// minimum is 60 s. Counts the queries it gets.
struct Stub {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn stub() -> Stub {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind stub");
    sock.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let addr = sock.local_addr().expect("addr");
    let queries = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (q, s) = (queries.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !s.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            q.fetch_add(1, Ordering::Relaxed);
            let msg = &buf[..n];
            let Ok(query) = wire::parse_query(msg) else { continue };
            let mut r = msg[..query.question_end].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[10] = 0;
            r[11] = 0;
            if query.name() == encode_name("example.org").expect("n").as_slice() && query.qtype == wire::TYPE_A {
                r[7] = 1;
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 192, 0, 2, 1]);
            } else {
                r[3] = 0x83;
                r[9] = 1;
                let soa = wire::rdata_soa(&encode_name("a.example").expect("n"), &[0], 1, 60);
                r.extend_from_slice(&[0]);
                r.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0x0e, 0x10]);
                r.extend_from_slice(&(soa.len() as u16).to_be_bytes());
                r.extend_from_slice(&soa);
            }
            let _ = sock.send_to(&r, from);
        }
    });
    Stub { addr, queries, stop }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_cache_and_autopath_with_dig() {
    let upstream = stub();
    let mut cluster = fixtures::cluster(1);
    // dig runs on 127.0.0.1; make that address a pod of `default`, so the server knows
    // its search path, as it knows a real pod's.
    cluster.pods.push(fixtures::pod("default", "dig", "127.0.0.1"));
    let f = start(&cluster, Some(upstream.addr));

    let d = dig(f.addr, &["example.org", "A"]).await;
    assert_eq!(d.data(), ["192.0.2.1"], "{}", d.raw);
    assert!(d.has_flag("ra"));
    let d = dig(f.addr, &["EXAMPLE.org", "A"]).await;
    assert_eq!(d.data(), ["192.0.2.1"]);
    assert_eq!(upstream.queries.load(Ordering::Relaxed), 1, "the second query came from the cache");

    // The negative cache: NXDOMAIN from upstream is kept for the SOA minimum.
    assert_eq!(dig(f.addr, &["nope.example", "A"]).await.status, "NXDOMAIN");
    assert_eq!(dig(f.addr, &["nope.example", "A"]).await.status, "NXDOMAIN");
    assert_eq!(upstream.queries.load(Ordering::Relaxed), 2);

    // Autopath: the first step of the search path gets the final answer at once.
    let d = dig(f.addr, &["example.org.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.status, "NOERROR", "{}", d.raw);
    assert_eq!(
        d.answers,
        ["example.org.default.svc.cluster.local.\t30\tIN\tCNAME\texample.org.", "example.org.\t300\tIN\tA\t192.0.2.1"]
    );
    // In-cluster names found one step later are answered without going upstream.
    let before = upstream.queries.load(Ordering::Relaxed);
    let d = dig(f.addr, &["kube-dns.kube-system.default.svc.cluster.local", "A"]).await;
    assert_eq!(d.data(), ["10.96.0.10", "kube-dns.kube-system.svc.cluster.local."]);
    assert_eq!(upstream.queries.load(Ordering::Relaxed), before);
    // A name that exists nowhere stays NXDOMAIN, and the client walks its path itself.
    assert_eq!(dig(f.addr, &["nothing.example.default.svc.cluster.local", "A"]).await.status, "NXDOMAIN");
    let m = f.metrics.render();
    // Hits: EXAMPLE.org, the second nope.example, and autopath's example.org.
    assert!(m.contains("rkube_dns_cache_hits_total 3"), "{m}");
    assert!(m.contains("rkube_dns_autopath_total 1"), "{m}");
}
