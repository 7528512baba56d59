//! API benchmark: the real API server over HTTPS against its own store called directly,
//! side by side in one run.
//!
//! Run with `./bench api` (or `cargo bench -p rkube-apiserver --bench api`); set
//! `RKUBE_BENCH_QUICK=1` for a short run. It measures, for 1, 16 and 64 concurrent clients,
//! ConfigMap create, get, list (of 1,000 ConfigMaps) and watch delivery, and then the
//! fan-out of one event to 1,000 concurrent watchers. Each client is its own HTTP/2
//! connection with keep-alive and the admin client certificate, as each kubectl process
//! is. The baseline is the same operation on the same SQLite store with no HTTP, TLS,
//! JSON handling or watch cache in between (`store.create` of the same bytes,
//! `store.get`, `store.list` of the same 1,000 keys, `store.watch`), so the ratios show
//! what the API layer costs. Clients and server share this machine's cores, so the API
//! figures include the clients' own TLS and parsing.

// The harness is shared with the tests; it allows the parts this benchmark does not use.
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::{BoxFuture, join_all};
use rkube_apiserver::registry;
use rkube_store::{ListOptions, Revision, Store};
use serde_json::json;
use support::{Cluster, Credentials, https_client, streaming_client};

/// The concurrency levels every operation is measured at.
const CLIENTS: [usize; 3] = [1, 16, 64];
/// How many objects the list benchmark lists.
const LIST_SIZE: usize = 1_000;
/// How many watchers the fan-out benchmark serves.
const FANOUT_WATCHERS: usize = 1_000;
/// How many clients write while the watch benchmark's watchers follow.
const WATCH_WRITERS: usize = 16;
/// The size of each ConfigMap's one value: with its metadata, an object of about the
/// size of a typical Pod (1–3 KiB as JSON).
const VALUE_BYTES: usize = 1024;
/// The targets from the issue, printed next to the figures.
const TARGET_MUTATING_P99: Duration = Duration::from_millis(25);
const TARGET_FANOUT_P99: Duration = Duration::from_millis(50);
/// How long any one phase may wait for a watcher before the run is declared broken.
const STALL: Duration = Duration::from_secs(60);

/// Sizes of one run.
struct Plan {
    creates: [usize; 3],
    gets: [usize; 3],
    lists: [usize; 3],
    watch_writes: usize,
    fanout_events: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                creates: [100, 480, 960],
                gets: [400, 1_600, 3_200],
                lists: [10, 48, 128],
                watch_writes: 320,
                fanout_events: 5,
            }
        } else {
            Plan {
                creates: [1_000, 4_800, 9_600],
                gets: [4_000, 16_000, 32_000],
                lists: [100, 320, 640],
                watch_writes: 2_000,
                fanout_events: 20,
            }
        }
    }
}

/// What one measurement produced: every operation's latency and the wall time of the whole.
struct Sample {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Sample {
    fn new(ops: usize, elapsed: Duration, mut latencies: Vec<Duration>) -> Sample {
        latencies.sort_unstable();
        Sample { ops, elapsed, latencies }
    }

    fn throughput(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn p(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let idx = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies[idx.min(self.latencies.len() - 1)]
    }

    fn max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }
}

/// One line of the report: the API and its store baseline for one operation and concurrency.
struct Row {
    op: &'static str,
    clients: usize,
    api: Sample,
    store: Sample,
    target: Option<Duration>,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// One operation of client `c`, its `i`th.
type Op = Arc<dyn Fn(usize, usize) -> BoxFuture<'static, ()> + Send + Sync>;

/// Runs `clients` tasks that each perform `per_client` operations back to back, timing each.
async fn run_clients(clients: usize, per_client: usize, op: Op) -> Sample {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let t0 = Instant::now();
                    op(c, i).await;
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(clients * per_client);
    for t in tasks {
        latencies.extend(t.await.expect("client task"));
    }
    Sample::new(clients * per_client, started.elapsed(), latencies)
}

/// A ConfigMap body of the benchmark's size.
fn configmap_body(name: &str) -> Bytes {
    let obj = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"value": "v".repeat(VALUE_BYTES)},
    });
    Bytes::from(serde_json::to_vec(&obj).expect("json"))
}

/// Where the API stores the ConfigMaps of `namespace`. The store baselines write there too
/// (in namespaces of their own), because the watch cache follows only `/registry/`: a
/// write elsewhere would leave the cache behind the store's revision, and the next
/// consistent list would wait for it (see the ignored test
/// `a_write_outside_the_registry_does_not_stall_consistent_lists`).
fn configmap_prefix(namespace: &str) -> String {
    registry::find("", "v1", "configmaps").expect("configmaps are registered").list_prefix(Some(namespace))
}

/// The resourceVersion in a JSON document, found without parsing the whole document,
/// so that the clients spend as little of the shared CPU as possible.
fn scan_resource_version(json: &[u8]) -> Option<Revision> {
    const NEEDLE: &[u8] = b"\"resourceVersion\":\"";
    let at = json.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let digits = json[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&json[at..at + digits]).ok()?.parse().ok()
}

/// The API clients, one connection each, already connected and authenticated so that the
/// handshakes are not measured.
async fn connected_clients(cluster: &Cluster, n: usize) -> Arc<Vec<reqwest::Client>> {
    let clients: Vec<reqwest::Client> =
        (0..n).map(|_| https_client(&cluster.server.pki, Credentials::AdminCert)).collect();
    let url = cluster.url("/api/v1/namespaces/default");
    let warm = join_all(clients.iter().map(|c| c.get(&url).send())).await;
    for resp in warm {
        let resp = resp.expect("warm-up request");
        assert!(resp.status().is_success(), "warm-up: {}", resp.status());
        assert_eq!(resp.version(), reqwest::Version::HTTP_2, "the clients must speak HTTP/2, as kubectl does");
    }
    Arc::new(clients)
}

async fn create_namespace(cluster: &Cluster, client: &reqwest::Client, name: &str) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let resp = client.post(cluster.url("/api/v1/namespaces")).json(&ns).send().await.expect("create namespace");
    assert_eq!(resp.status().as_u16(), 201, "create namespace {name}");
}

/// Creates a ConfigMap through the API and returns its resourceVersion.
async fn api_create(client: &reqwest::Client, url: &str, body: Bytes) -> Revision {
    let resp = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("create");
    let code = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("create response");
    assert_eq!(code, 201, "create: {}", String::from_utf8_lossy(&bytes));
    scan_resource_version(&bytes).expect("resourceVersion in the created object")
}

async fn bench_create(cluster: &Cluster, store: &Arc<dyn Store>, clients: usize, total: usize) -> Row {
    let per_client = total / clients;
    let api_clients = connected_clients(cluster, clients).await;
    let url = cluster.url("/api/v1/namespaces/bench/configmaps");
    let op: Op = Arc::new(move |c, i| {
        let client = api_clients[c].clone();
        let url = url.clone();
        Box::pin(async move {
            api_create(&client, &url, configmap_body(&format!("c{clients}-{c}-{i}"))).await;
        })
    });
    let api = run_clients(clients, per_client, op).await;

    let store2 = store.clone();
    let prefix = configmap_prefix("baseline");
    let op: Op = Arc::new(move |c, i| {
        let store = store2.clone();
        let prefix = prefix.clone();
        Box::pin(async move {
            let name = format!("c{clients}-{c}-{i}");
            store.create(&format!("{prefix}{name}"), configmap_body(&name)).await.expect("store create");
        })
    });
    let store = run_clients(clients, per_client, op).await;
    Row { op: "create", clients, api, store, target: (clients == 64).then_some(TARGET_MUTATING_P99) }
}

/// Gets the objects the single-client create run made (and its baseline keys), round robin.
async fn bench_get(cluster: &Cluster, store: &Arc<dyn Store>, clients: usize, total: usize, existing: usize) -> Row {
    let per_client = total / clients;
    let api_clients = connected_clients(cluster, clients).await;
    let base = cluster.url("/api/v1/namespaces/bench/configmaps");
    let op: Op = Arc::new(move |c, i| {
        let client = api_clients[c].clone();
        let url = format!("{base}/c1-0-{}", (c * per_client + i) % existing);
        Box::pin(async move {
            let resp = client.get(&url).send().await.expect("get");
            let code = resp.status().as_u16();
            let bytes = resp.bytes().await.expect("get response");
            assert_eq!(code, 200, "get: {}", String::from_utf8_lossy(&bytes));
        })
    });
    let api = run_clients(clients, per_client, op).await;

    let store2 = store.clone();
    let prefix = configmap_prefix("baseline");
    let op: Op = Arc::new(move |c, i| {
        let store = store2.clone();
        let key = format!("{prefix}c1-0-{}", (c * per_client + i) % existing);
        Box::pin(async move {
            store.get(&key).await.expect("store get").expect("the key exists");
        })
    });
    let store = run_clients(clients, per_client, op).await;
    Row { op: "get", clients, api, store, target: None }
}

/// Lists the 1,000 ConfigMaps of namespace `list`; the baseline lists the same keys from the store.
async fn bench_list(cluster: &Cluster, store: &Arc<dyn Store>, clients: usize, total: usize) -> Row {
    let per_client = total / clients;
    let api_clients = connected_clients(cluster, clients).await;
    let url = cluster.url("/api/v1/namespaces/list/configmaps");
    let op: Op = Arc::new(move |c, _| {
        let client = api_clients[c].clone();
        let url = url.clone();
        Box::pin(async move {
            let resp = client.get(&url).send().await.expect("list");
            let code = resp.status().as_u16();
            let bytes = resp.bytes().await.expect("list response");
            assert_eq!(code, 200, "list: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(500)]));
        })
    });
    let api = run_clients(clients, per_client, op).await;

    let store2 = store.clone();
    let prefix = configmap_prefix("list");
    let op: Op = Arc::new(move |_, _| {
        let store = store2.clone();
        let prefix = prefix.clone();
        Box::pin(async move {
            let page = store.list(&prefix, ListOptions::default()).await.expect("store list");
            assert_eq!(page.items.len(), LIST_SIZE);
        })
    });
    let store = run_clients(clients, per_client, op).await;
    Row { op: "list 1k", clients, api, store, target: None }
}

/// Writes `total` objects from `writers` concurrent tasks with `write`, returning when each
/// write was acknowledged, by revision.
async fn write_all<F, Fut>(writers: usize, total: usize, write: F) -> HashMap<Revision, Instant>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Revision> + Send,
{
    let per_writer = total / writers;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let write = write.clone();
            tokio::spawn(async move {
                let mut acks = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let rev = write(w, i).await;
                    acks.push((rev, Instant::now()));
                }
                acks
            })
        })
        .collect();
    let mut acks = HashMap::with_capacity(total);
    for t in tasks {
        acks.extend(t.await.expect("writer"));
    }
    acks
}

/// How long after each acknowledgement each watcher received the event. An event that
/// arrives before its write is acknowledged counts as zero: the store publishes a commit
/// before the writer's response has travelled back.
fn delivery_latencies(acks: &HashMap<Revision, Instant>, received: &[Vec<(Revision, Instant)>]) -> Vec<Duration> {
    received
        .iter()
        .flatten()
        .map(|(rev, at)| acks.get(rev).map_or(Duration::MAX, |acked| at.saturating_duration_since(*acked)))
        .collect()
}

/// Opens `n` API watches on `collection` from `rv`, each on its own connection, and returns
/// the responses once every watch has been answered (and is therefore subscribed).
async fn open_api_watches(cluster: &Cluster, collection: &str, rv: Revision, n: usize) -> Vec<reqwest::Response> {
    let url = cluster.url(&format!("{collection}?watch=true&resourceVersion={rv}"));
    let mut responses = Vec::with_capacity(n);
    // In batches, so that a thousand TLS handshakes do not all wait on the same two cores.
    for batch in (0..n).collect::<Vec<_>>().chunks(100) {
        let opened = join_all(batch.iter().map(|_| {
            let client = streaming_client(&cluster.server.pki, Credentials::AdminCert);
            let url = url.clone();
            async move { client.get(&url).send().await.expect("watch") }
        }))
        .await;
        for resp in opened {
            assert_eq!(resp.status().as_u16(), 200, "watch");
            responses.push(resp);
        }
    }
    responses
}

/// Reads watch events from `resp`, reporting each event's resourceVersion and arrival time
/// to `report` until it returns false.
async fn follow_api_watch(mut resp: reqwest::Response, mut report: impl FnMut(Revision, Instant) -> bool) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(STALL, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => chunk,
            other => panic!("an API watch stalled or ended: {other:?}"),
        };
        let at = Instant::now();
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            if let Some(rev) = scan_resource_version(&line)
                && !report(rev, at)
            {
                return;
            }
        }
    }
}

/// `watchers` watchers follow one namespace while `WATCH_WRITERS` clients create `writes`
/// objects in it; every watcher must receive every event.
async fn bench_watch(cluster: &Cluster, store: &Arc<dyn Store>, watchers: usize, writes: usize) -> Row {
    let admin = https_client(&cluster.server.pki, Credentials::AdminCert);
    let ns = format!("watch-{watchers}");
    create_namespace(cluster, &admin, &ns).await;
    let collection = format!("/api/v1/namespaces/{ns}/configmaps");
    let list = admin.get(cluster.url(&collection)).send().await.expect("list").bytes().await.expect("list body");
    let rv = scan_resource_version(&list).expect("list resourceVersion");
    let writes = writes / WATCH_WRITERS * WATCH_WRITERS;

    let responses = open_api_watches(cluster, &collection, rv, watchers).await;
    let started = Instant::now();
    let followers: Vec<_> = responses
        .into_iter()
        .map(|resp| {
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(writes);
                follow_api_watch(resp, |rev, at| {
                    got.push((rev, at));
                    got.len() < writes
                })
                .await;
                got
            })
        })
        .collect();
    let writer_clients = connected_clients(cluster, WATCH_WRITERS).await;
    let url = cluster.url(&collection);
    let acks = write_all(WATCH_WRITERS, writes, move |w, i| {
        let client = writer_clients[w].clone();
        let url = url.clone();
        async move { api_create(&client, &url, configmap_body(&format!("w{w}-{i}"))).await }
    })
    .await;
    let received: Vec<Vec<(Revision, Instant)>> =
        join_all(followers).await.into_iter().map(|r| r.expect("watcher")).collect();
    let api = Sample::new(watchers * writes, started.elapsed(), delivery_latencies(&acks, &received));

    // The baseline: the same number of store watches on a prefix, the same writes.
    let prefix = configmap_prefix(&format!("baseline-watch-{watchers}"));
    let from = store.current_revision().await.expect("revision");
    let mut streams = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        streams.push(store.watch(&prefix, from).await.expect("store watch"));
    }
    let started = Instant::now();
    let followers: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(writes);
                while got.len() < writes {
                    match tokio::time::timeout(STALL, stream.next()).await {
                        Ok(Some(Ok(ev))) => got.push((ev.revision, Instant::now())),
                        other => panic!("a store watch stalled or ended: {other:?}"),
                    }
                }
                got
            })
        })
        .collect();
    let store2 = store.clone();
    let acks = write_all(WATCH_WRITERS, writes, move |w, i| {
        let store = store2.clone();
        let prefix = prefix.clone();
        async move {
            let name = format!("w{w}-{i}");
            store.create(&format!("{prefix}{name}"), configmap_body(&name)).await.expect("store create")
        }
    })
    .await;
    let received: Vec<Vec<(Revision, Instant)>> =
        join_all(followers).await.into_iter().map(|r| r.expect("watcher")).collect();
    let store = Sample::new(watchers * writes, started.elapsed(), delivery_latencies(&acks, &received));
    Row { op: "watch", clients: watchers, api, store, target: None }
}

/// One write at a time, each delivered to `FANOUT_WATCHERS` watchers before the next:
/// the time from the write's acknowledgement to each watcher receiving it.
async fn bench_fanout(cluster: &Cluster, store: &Arc<dyn Store>, events: usize) -> Row {
    let admin = https_client(&cluster.server.pki, Credentials::AdminCert);
    create_namespace(cluster, &admin, "fanout").await;
    let collection = "/api/v1/namespaces/fanout/configmaps";
    let list = admin.get(cluster.url(collection)).send().await.expect("list").bytes().await.expect("list body");
    let rv = scan_resource_version(&list).expect("list resourceVersion");
    let responses = open_api_watches(cluster, collection, rv, FANOUT_WATCHERS).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let followers: Vec<_> = responses
        .into_iter()
        .map(|resp| {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut seen = 0;
                follow_api_watch(resp, |rev, at| {
                    seen += 1;
                    tx.send((rev, at)).is_ok() && seen < events
                })
                .await;
            })
        })
        .collect();
    drop(tx);
    let writer = connected_clients(cluster, 1).await;
    let url = cluster.url(collection);
    let api = fan_out(events, rx, |i| {
        let (client, url) = (writer[0].clone(), url.clone());
        async move { api_create(&client, &url, configmap_body(&format!("f-{i}"))).await }
    })
    .await;
    for f in followers {
        f.await.expect("watcher");
    }

    let prefix = configmap_prefix("baseline-fanout");
    let from = store.current_revision().await.expect("revision");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..FANOUT_WATCHERS {
        let mut stream = store.watch(&prefix, from).await.expect("store watch");
        let tx = tx.clone();
        tokio::spawn(async move {
            for _ in 0..events {
                match tokio::time::timeout(STALL, stream.next()).await {
                    Ok(Some(Ok(ev))) => {
                        if tx.send((ev.revision, Instant::now())).is_err() {
                            return;
                        }
                    }
                    other => panic!("a store watch stalled or ended: {other:?}"),
                }
            }
        });
    }
    drop(tx);
    let store = fan_out(events, rx, |i| {
        let (store, prefix) = (store.clone(), prefix.clone());
        async move {
            let name = format!("f-{i}");
            store.create(&format!("{prefix}{name}"), configmap_body(&name)).await.expect("store create")
        }
    })
    .await;
    Row { op: "fan-out", clients: FANOUT_WATCHERS, api, store, target: Some(TARGET_FANOUT_P99) }
}

/// Performs `events` writes one after another; after each, waits until every watcher has
/// reported it on `rx`. Throughput is deliveries per second over the whole phase.
async fn fan_out<F, Fut>(
    events: usize,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(Revision, Instant)>,
    write: F,
) -> Sample
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Revision>,
{
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(events * FANOUT_WATCHERS);
    for i in 0..events {
        let rev = write(i).await;
        let acked = Instant::now();
        for n in 0..FANOUT_WATCHERS {
            let (got, at) = tokio::time::timeout(STALL, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("event {i}: only {n} of {FANOUT_WATCHERS} watchers got it"))
                .expect("the watchers ended early");
            assert_eq!(got, rev, "a watcher got an event out of turn");
            latencies.push(at.saturating_duration_since(acked));
        }
    }
    Sample::new(events * FANOUT_WATCHERS, started.elapsed(), latencies)
}

fn verdict(row: &Row) -> String {
    match row.target {
        Some(t) if row.api.p(0.99) <= t => format!("p99 <= {} ms: met", t.as_millis()),
        Some(t) => format!("p99 <= {} ms: MISSED", t.as_millis()),
        None => String::new(),
    }
}

fn print_report(rows: &[Row], quick: bool) {
    println!(
        "API benchmark{}: rkube over HTTPS (HTTP/2, keep-alive, one connection per client) on SQLite; \
         baseline: the same store called directly",
        if quick { " (quick)" } else { "" }
    );
    println!(
        "latencies in ms; watch and fan-out latency is from the write's acknowledgement to each watcher's receipt"
    );
    println!(
        "{:<8} {:>7} {:>7} {:>9} {:>8} {:>8} {:>8} | {:>9} {:>8} {:>8} | {:>7} {:>7} | target",
        "op", "clients", "ops", "ops/s", "p50", "p99", "max", "store/s", "st p50", "st p99", "x ops/s", "x p99"
    );
    for r in rows {
        println!(
            "{:<8} {:>7} {:>7} {:>9.0} {:>8} {:>8} {:>8} | {:>9.0} {:>8} {:>8} | {:>7.2} {:>7.1} | {}",
            r.op,
            r.clients,
            r.api.ops,
            r.api.throughput(),
            ms(r.api.p(0.50)),
            ms(r.api.p(0.99)),
            ms(r.api.max()),
            r.store.throughput(),
            ms(r.store.p(0.50)),
            ms(r.store.p(0.99)),
            r.api.throughput() / r.store.throughput().max(1e-9),
            r.api.p(0.99).as_secs_f64() / r.store.p(0.99).as_secs_f64().max(1e-6),
            verdict(r),
        );
    }
    println!("x ops/s = API throughput / store throughput; x p99 = API p99 / store p99 (store p99 floored at 1 us)");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::var_os("RKUBE_BENCH_QUICK").is_some();
    let plan = Plan::new(quick);
    let cluster = Cluster::start().await;
    let store = cluster.server.api.store.clone();
    let admin = https_client(&cluster.server.pki, Credentials::AdminCert);
    create_namespace(&cluster, &admin, "bench").await;
    create_namespace(&cluster, &admin, "list").await;

    // The list benchmark's 1,000 objects, written through the API.
    let writers = connected_clients(&cluster, 50).await;
    let url = cluster.url("/api/v1/namespaces/list/configmaps");
    write_all(50, LIST_SIZE, move |w, i| {
        let (client, url) = (writers[w].clone(), url.clone());
        async move { api_create(&client, &url, configmap_body(&format!("l{w}-{i}"))).await }
    })
    .await;

    let mut rows = Vec::new();
    for (k, &clients) in CLIENTS.iter().enumerate() {
        rows.push(bench_create(&cluster, &store, clients, plan.creates[k]).await);
    }
    for (k, &clients) in CLIENTS.iter().enumerate() {
        rows.push(bench_get(&cluster, &store, clients, plan.gets[k], plan.creates[0]).await);
    }
    for (k, &clients) in CLIENTS.iter().enumerate() {
        rows.push(bench_list(&cluster, &store, clients, plan.lists[k]).await);
    }
    for &watchers in &CLIENTS {
        rows.push(bench_watch(&cluster, &store, watchers, plan.watch_writes).await);
    }
    rows.push(bench_fanout(&cluster, &store, plan.fanout_events).await);
    print_report(&rows, quick);
    drop(cluster);
}
