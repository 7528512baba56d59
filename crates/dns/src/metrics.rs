//! Query metrics in the Prometheus text format: counts by query type and by result, a
//! latency histogram, and the forwarding cache's hits and misses. Plain atomics, so the
//! hot path pays a few uncontended increments.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::DnsError;
use crate::answer::Answered;
use crate::wire;

const TYPES: [(u16, &str); 10] = [
    (wire::TYPE_A, "A"),
    (wire::TYPE_AAAA, "AAAA"),
    (wire::TYPE_SRV, "SRV"),
    (wire::TYPE_PTR, "PTR"),
    (wire::TYPE_CNAME, "CNAME"),
    (wire::TYPE_TXT, "TXT"),
    (wire::TYPE_SOA, "SOA"),
    (wire::TYPE_NS, "NS"),
    (wire::TYPE_ANY, "ANY"),
    (0, "other"),
];

const RESULTS: [&str; 9] =
    ["NOERROR", "NODATA", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "BADVERS", "other"];

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 12] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10_000, 100_000, 1_000_000];

pub struct Metrics {
    by_type: [AtomicU64; TYPES.len()],
    by_result: [AtomicU64; RESULTS.len()],
    latency: [AtomicU64; BUCKETS_US.len() + 1],
    latency_sum_ns: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    forwarded: AtomicU64,
    autopath: AtomicU64,
    dropped: AtomicU64,
}

impl Metrics {
    #[allow(clippy::new_ret_no_self)] // The servers and the caller share one instance.
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics {
            by_type: Default::default(),
            by_result: Default::default(),
            latency: Default::default(),
            latency_sum_ns: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            autopath: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    pub(crate) fn answered(&self, a: Answered, took: Duration) {
        let t = TYPES.iter().position(|(code, _)| *code == a.qtype).unwrap_or(TYPES.len() - 1);
        self.by_type[t].fetch_add(1, Relaxed);
        let r = match (a.rcode, a.nodata) {
            (0, true) => 1,
            (0, false) => 0,
            (1, _) => 2,
            (2, _) => 3,
            (3, _) => 4,
            (4, _) => 5,
            (5, _) => 6,
            (16, _) => 7,
            _ => 8,
        };
        self.by_result[r].fetch_add(1, Relaxed);
        let us = took.as_micros() as u64;
        let b = BUCKETS_US.iter().position(|le| us <= *le).unwrap_or(BUCKETS_US.len());
        self.latency[b].fetch_add(1, Relaxed);
        self.latency_sum_ns.fetch_add(took.as_nanos() as u64, Relaxed);
    }

    pub(crate) fn cache(&self, hit: bool) {
        if hit { &self.cache_hits } else { &self.cache_misses }.fetch_add(1, Relaxed);
    }

    pub(crate) fn forwarded(&self) {
        self.forwarded.fetch_add(1, Relaxed);
    }

    pub(crate) fn autopath(&self) {
        self.autopath.fetch_add(1, Relaxed);
    }

    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    /// Total answered queries.
    pub fn queries(&self) -> u64 {
        self.by_type.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP rkube_dns_requests_total DNS queries answered, by query type.\n");
        s.push_str("# TYPE rkube_dns_requests_total counter\n");
        for ((_, name), c) in TYPES.iter().zip(&self.by_type) {
            let _ = writeln!(s, "rkube_dns_requests_total{{type=\"{name}\"}} {}", c.load(Relaxed));
        }
        s.push_str("# HELP rkube_dns_responses_total DNS responses, by result (RCODE, or NODATA).\n");
        s.push_str("# TYPE rkube_dns_responses_total counter\n");
        for (name, c) in RESULTS.iter().zip(&self.by_result) {
            let _ = writeln!(s, "rkube_dns_responses_total{{rcode=\"{name}\"}} {}", c.load(Relaxed));
        }
        s.push_str("# HELP rkube_dns_request_duration_seconds Time from receiving a query to sending its answer.\n");
        s.push_str("# TYPE rkube_dns_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (le, c) in BUCKETS_US.iter().zip(&self.latency) {
            cumulative += c.load(Relaxed);
            let _ =
                writeln!(s, "rkube_dns_request_duration_seconds_bucket{{le=\"{}\"}} {cumulative}", *le as f64 / 1e6);
        }
        cumulative += self.latency[BUCKETS_US.len()].load(Relaxed);
        let _ = writeln!(s, "rkube_dns_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ =
            writeln!(s, "rkube_dns_request_duration_seconds_sum {}", self.latency_sum_ns.load(Relaxed) as f64 / 1e9);
        let _ = writeln!(s, "rkube_dns_request_duration_seconds_count {cumulative}");
        let hits = self.cache_hits.load(Relaxed);
        let misses = self.cache_misses.load(Relaxed);
        for (name, help, v) in [
            ("rkube_dns_cache_hits_total", "Forwarded queries answered from the cache.", hits),
            ("rkube_dns_cache_misses_total", "Forwarded queries that went upstream.", misses),
            ("rkube_dns_forward_requests_total", "Queries sent upstream.", self.forwarded.load(Relaxed)),
            ("rkube_dns_autopath_total", "Queries answered by autopath.", self.autopath.load(Relaxed)),
            ("rkube_dns_dropped_total", "Packets dropped without an answer.", self.dropped.load(Relaxed)),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let ratio = if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 };
        let _ = writeln!(
            s,
            "# HELP rkube_dns_cache_hit_ratio Cache hits over lookups.\n# TYPE rkube_dns_cache_hit_ratio gauge\nrkube_dns_cache_hit_ratio {ratio}"
        );
        s
    }
}

/// Serves `GET /metrics` (any path, in fact) in the Prometheus text format on `listen`, one
/// request per connection, until cancelled. Deliberately minimal: a scraper is the only
/// client.
pub async fn serve_metrics(listen: std::net::SocketAddr, metrics: Arc<Metrics>) -> Result<(), DnsError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|source| DnsError::Bind { addr: listen, source })?;
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let m = metrics.clone();
        tokio::spawn(async move {
            // Read the request head (bounded, with a deadline); its content does not matter.
            let mut head = [0u8; 2048];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head)).await;
            if !matches!(read, Ok(Ok(n)) if n > 0) {
                return;
            }
            let body = m.render();
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(resp.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
