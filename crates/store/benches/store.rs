//! Store benchmark: the embedded SQLite backend against etcd, side by side in one run.
//!
//! Run with `./bench store` (or `cargo bench -p rkube-store --bench store`).
//! For each backend and for 1 and 64 concurrent writers it measures create throughput and
//! latency, how many acknowledged writes shared one fsync, and how long a watcher takes to
//! see each write. etcd is Debian's `etcd`, started here on loopback with its default
//! durability (fsync on), so both backends pay for real durability on the same disk.
//!
//! Set `RKUBE_BENCH_QUICK=1` for a short smoke run.

// The harness is shared with the tests, which use parts of it this benchmark does not.
#[allow(dead_code)]
#[path = "../tests/support/etcd.rs"]
mod etcd_support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use rkube_store::Store;
use rkube_store::etcd::{EtcdConfig, EtcdStore};
use rkube_store::sqlite::SqliteStore;

/// A value of the size of a typical Kubernetes object (a Pod is 1–3 KiB as JSON).
const VALUE_BYTES: usize = 1536;

struct Run {
    backend: &'static str,
    writers: usize,
    writes: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    watch_latencies: Vec<Duration>,
    writes_per_fsync: Option<f64>,
}

impl Run {
    fn throughput(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Runs `writers` tasks that together create `total` keys, while one watcher follows the prefix.
/// Watch latency is measured from the moment a write was acknowledged to the moment the
/// watcher received its event (zero if the event came first, which happens because a
/// backend may publish before it answers the writer).
async fn run(store: Arc<dyn Store>, backend: &'static str, writers: usize, total: usize, prefix: &str) -> Run {
    let per_writer = total / writers;
    let total = per_writer * writers;
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let start_rev = store.current_revision().await.expect("revision");
    let mut watch = store.watch(prefix, start_rev).await.expect("watch");
    let received: Arc<Mutex<HashMap<i64, Instant>>> = Arc::new(Mutex::new(HashMap::with_capacity(total)));
    let watcher = {
        let received = received.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while n < total {
                match tokio::time::timeout(Duration::from_secs(30), watch.next()).await {
                    Ok(Some(Ok(ev))) => {
                        received.lock().insert(ev.revision, Instant::now());
                        n += 1;
                    }
                    other => panic!("watch stopped after {n} events: {other:?}"),
                }
            }
        })
    };

    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, value, prefix) = (store.clone(), value.clone(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let key = format!("{prefix}w{w}/{i}");
                let t0 = Instant::now();
                let rev = store.create(&key, value.clone()).await.expect("create");
                let acked = Instant::now();
                out.push((rev, acked - t0, acked));
            }
            out
        }));
    }
    let mut acks = Vec::with_capacity(total);
    for t in tasks {
        acks.extend(t.await.expect("writer"));
    }
    let elapsed = started.elapsed();
    watcher.await.expect("watcher");

    let received = received.lock();
    let mut latencies: Vec<Duration> = acks.iter().map(|(_, lat, _)| *lat).collect();
    let mut watch_latencies: Vec<Duration> = acks
        .iter()
        .map(|(rev, _, acked)| received.get(rev).map_or(Duration::MAX, |got| got.saturating_duration_since(*acked)))
        .collect();
    latencies.sort_unstable();
    watch_latencies.sort_unstable();
    Run { backend, writers, writes: acks.len(), elapsed, latencies, watch_latencies, writes_per_fsync: None }
}

/// Reads etcd's own count of WAL fsyncs from its metrics endpoint.
async fn etcd_fsyncs(endpoint: &str) -> Option<f64> {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await.ok()?;
    body.lines()
        .find(|l| l.starts_with("etcd_disk_wal_fsync_duration_seconds_count"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::var_os("RKUBE_BENCH_QUICK").is_some();
    let plan: &[(usize, usize)] = if quick { &[(1, 200), (64, 2_000)] } else { &[(1, 2_000), (64, 40_000)] };

    let dir = tempfile::Builder::new().prefix("rkube-bench-store-").tempdir().expect("tempdir");
    let sqlite = SqliteStore::open(dir.path()).expect("open sqlite");
    let cluster = tokio::task::spawn_blocking(|| etcd_support::EtcdCluster::start(1)).await.expect("etcd");
    let endpoint = cluster.endpoint(0);
    let etcd: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(EtcdConfig { endpoints: cluster.endpoints(), ..Default::default() })
            .await
            .expect("connect etcd"),
    );

    let mut runs = Vec::new();
    for (round, &(writers, total)) in plan.iter().enumerate() {
        let prefix = format!("/bench/{round}/");

        let (c0, w0) = (
            sqlite.stats().commits.load(std::sync::atomic::Ordering::Relaxed),
            sqlite.stats().writes.load(std::sync::atomic::Ordering::Relaxed),
        );
        let mut r = run(Arc::new(sqlite.clone()), "sqlite", writers, total, &prefix).await;
        let (c1, w1) = (
            sqlite.stats().commits.load(std::sync::atomic::Ordering::Relaxed),
            sqlite.stats().writes.load(std::sync::atomic::Ordering::Relaxed),
        );
        r.writes_per_fsync = Some((w1 - w0) as f64 / (c1 - c0).max(1) as f64);
        runs.push(r);

        let f0 = etcd_fsyncs(&endpoint).await;
        let mut r = run(etcd.clone(), "etcd", writers, total, &prefix).await;
        let f1 = etcd_fsyncs(&endpoint).await;
        if let (Some(f0), Some(f1)) = (f0, f1) {
            r.writes_per_fsync = Some(r.writes as f64 / (f1 - f0).max(1.0));
        }
        runs.push(r);
    }

    println!("store benchmark: {VALUE_BYTES}-byte creates, durable commits, one watcher on the prefix");
    println!(
        "{:<8} {:>7} {:>7} {:>10} {:>9} {:>9} {:>12} {:>11} {:>11}",
        "backend", "writers", "writes", "writes/s", "p50 ms", "p99 ms", "writes/fsync", "watch p50", "watch p99"
    );
    for r in &runs {
        println!(
            "{:<8} {:>7} {:>7} {:>10.0} {:>9} {:>9} {:>12} {:>11} {:>11}",
            r.backend,
            r.writers,
            r.writes,
            r.throughput(),
            ms(percentile(&r.latencies, 0.50)),
            ms(percentile(&r.latencies, 0.99)),
            r.writes_per_fsync.map_or("-".into(), |w| format!("{w:.1}")),
            ms(percentile(&r.watch_latencies, 0.50)),
            ms(percentile(&r.watch_latencies, 0.99)),
        );
    }
    for &(writers, _) in plan {
        let find = |b| runs.iter().find(|r| r.backend == b && r.writers == writers);
        if let (Some(s), Some(e)) = (find("sqlite"), find("etcd")) {
            println!(
                "ratio sqlite/etcd at {writers} writers: throughput {:.2}x, p99 latency {:.2}x",
                s.throughput() / e.throughput(),
                percentile(&s.latencies, 0.99).as_secs_f64() / percentile(&e.latencies, 0.99).as_secs_f64().max(1e-9)
            );
        }
    }
    drop(cluster);
}
