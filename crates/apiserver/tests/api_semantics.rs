//! API semantics under concurrency, through real HTTPS as clients see them: optimistic
//! concurrency on updates, watches that lose and repeat nothing under concurrent writers,
//! and 410 Gone for history that is no longer kept.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use support::{Cluster, WatchLines, expect_json, expect_status};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

async fn create_namespace(cluster: &Cluster, name: &str) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let resp = cluster.client().post(cluster.url("/api/v1/namespaces")).json(&ns).send().await.expect("create ns");
    expect_json(resp, 201).await;
}

fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn rv_of(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no resourceVersion in {obj}"))
}

/// The resourceVersion of a list of `path`, the point from which a watch sees every later change.
async fn list_rv(cluster: &Cluster, path: &str) -> i64 {
    let list = expect_json(cluster.client().get(cluster.url(path)).send().await.expect("list"), 200).await;
    rv_of(&list)
}

/// 64 clients read the same object, then all write it back with the resourceVersion they
/// read: exactly one write wins each round and every other client gets 409 Conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_with_the_read_resource_version_have_one_winner() {
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 5;
    let cluster = Cluster::start().await;
    let clients: Vec<reqwest::Client> = (0..CLIENTS).map(|_| cluster.client()).collect();
    let url = cluster.url(&format!("{CONFIGMAPS}/contended"));
    let created = clients[0]
        .post(cluster.url(CONFIGMAPS))
        .json(&configmap("contended", json!({"writer": "none"})))
        .send()
        .await
        .expect("create");
    // The clients speak HTTP/2, as kubectl does, so the contention is on one server's streams.
    assert_eq!(created.version(), reqwest::Version::HTTP_2);
    expect_json(created, 201).await;

    for round in 0..ROUNDS {
        // Every client reads before any client writes, so all hold the same resourceVersion.
        let reads =
            join_all(clients.iter().map(|c| async { expect_json(c.get(&url).send().await.expect("get"), 200).await }))
                .await;
        let read_rv = rv_of(&reads[0]);
        assert!(reads.iter().all(|o| rv_of(o) == read_rv), "round {round}: the reads disagree");

        let writes = join_all(clients.iter().zip(reads).enumerate().map(|(i, (c, mut obj))| {
            let url = url.clone();
            async move {
                // Each client writes a different value, so no write is a no-op.
                obj["data"] = json!({"writer": format!("{round}-{i}")});
                let resp = c.put(&url).json(&obj).send().await.expect("put");
                (i, resp.status().as_u16(), resp.text().await.expect("body"))
            }
        }))
        .await;

        let winners: Vec<&(usize, u16, String)> = writes.iter().filter(|(_, code, _)| *code == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one PUT must win; got {:?}", codes(&writes));
        for (i, code, body) in &writes {
            if *code == 200 {
                continue;
            }
            assert_eq!(*code, 409, "round {round}, client {i}: {body}");
            let status: Value = serde_json::from_str(body).expect("Status JSON");
            assert_eq!(status["kind"], "Status", "{body}");
            assert_eq!(status["reason"], "Conflict", "{body}");
            assert_eq!(status["details"]["name"], "contended", "{body}");
            assert_eq!(status["details"]["kind"], "configmaps", "{body}");
            let message = status["message"].as_str().unwrap_or("");
            assert!(
                message.starts_with("Operation cannot be fulfilled on configmaps \"contended\""),
                "round {round}: {message}"
            );
        }

        // The stored object is the winner's write, at the resourceVersion the winner was given.
        let (winner, _, body) = winners[0];
        let won: Value = serde_json::from_str(body).expect("winner's object");
        assert!(rv_of(&won) > read_rv);
        let now = expect_json(clients[0].get(&url).send().await.expect("get"), 200).await;
        assert_eq!(now["data"]["writer"], format!("{round}-{winner}"));
        assert_eq!(rv_of(&now), rv_of(&won));
    }
}

fn codes(writes: &[(usize, u16, String)]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for (_, code, _) in writes {
        *counts.entry(*code).or_insert(0) += 1;
    }
    counts
}

/// What a writer expects the watcher to report for one acknowledged write.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    kind: String,
    name: String,
}

/// A watch from a list's resourceVersion, while 12 clients create, update and delete
/// objects concurrently, reports every acknowledged write exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_every_acknowledged_write_once_in_order() {
    const WRITERS: usize = 12;
    const OBJECTS_PER_WRITER: usize = 20;
    let cluster = Cluster::start().await;
    create_namespace(&cluster, "watched").await;
    let collection = "/api/v1/namespaces/watched/configmaps";
    let start_rv = list_rv(&cluster, collection).await;

    let resp = support::streaming_client(&cluster.server.pki, support::Credentials::AdminCert)
        .get(cluster.url(&format!("{collection}?watch=true&resourceVersion={start_rv}")))
        .send()
        .await
        .expect("watch");
    assert_eq!(resp.status().as_u16(), 200);
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let watcher = tokio::spawn(async move {
        let mut lines = WatchLines::new(resp);
        while let Some(ev) = lines.next().await {
            if events_tx.send(ev).is_err() {
                return;
            }
        }
    });

    // Each writer creates its objects, updates each twice with the resourceVersion it holds,
    // and deletes every third one, recording what each acknowledged write returned.
    let writers = (0..WRITERS).map(|w| {
        let client = cluster.client();
        let base = cluster.url(collection);
        async move {
            let mut acked = Vec::new();
            for i in 0..OBJECTS_PER_WRITER {
                let name = format!("w{w}-{i}");
                let mut obj = configmap(&name, json!({"n": "0"}));
                let resp = client.post(&base).json(&obj).send().await.expect("create");
                obj = expect_json(resp, 201).await;
                acked.push((rv_of(&obj), Seen { kind: "ADDED".into(), name: name.clone() }));
                for n in 1..=2 {
                    obj["data"] = json!({"n": n.to_string()});
                    let resp = client.put(format!("{base}/{name}")).json(&obj).send().await.expect("update");
                    obj = expect_json(resp, 200).await;
                    acked.push((rv_of(&obj), Seen { kind: "MODIFIED".into(), name: name.clone() }));
                }
                if i % 3 == 0 {
                    let resp = client.delete(format!("{base}/{name}")).send().await.expect("delete");
                    let gone = expect_json(resp, 200).await;
                    acked.push((rv_of(&gone), Seen { kind: "DELETED".into(), name: name.clone() }));
                }
            }
            acked
        }
    });
    let mut acked: Vec<(i64, Seen)> = join_all(writers).await.into_iter().flatten().collect();
    acked.sort_by_key(|(rv, _)| *rv);
    let last = acked.last().map(|(rv, _)| *rv).expect("some writes");

    // Collect events until the last acknowledged write has been seen (or the deadline passes).
    let mut seen: Vec<(i64, Seen)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.last().is_none_or(|(rv, _)| *rv < last) {
        let ev = tokio::time::timeout_at(deadline, events_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("the watch stalled after {} of {} events", seen.len(), acked.len()))
            .expect("the watch ended early");
        let kind = ev["type"].as_str().unwrap_or("").to_owned();
        assert!(["ADDED", "MODIFIED", "DELETED"].contains(&kind.as_str()), "unexpected event {ev}");
        let name = ev["object"]["metadata"]["name"].as_str().unwrap_or("").to_owned();
        seen.push((rv_of(&ev["object"]), Seen { kind, name }));
    }
    watcher.abort();

    let seen_rvs: Vec<i64> = seen.iter().map(|(rv, _)| *rv).collect();
    assert!(seen_rvs.windows(2).all(|w| w[0] < w[1]), "resourceVersions are not strictly increasing");
    assert_eq!(
        seen.len(),
        acked.len(),
        "the watcher saw {} events for {} acknowledged writes",
        seen.len(),
        acked.len()
    );
    for ((want_rv, want), (got_rv, got)) in acked.iter().zip(&seen) {
        assert_eq!((want_rv, want), (got_rv, got), "the watch disagrees with the acknowledged writes");
    }
}

/// A list continued after the store compacted away its snapshot gets 410 Expired, with
/// upstream's message telling the client to start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_token_after_compaction_is_expired() {
    let cluster = Cluster::start().await;
    create_namespace(&cluster, "paged").await;
    let client = cluster.client();
    let collection = cluster.url("/api/v1/namespaces/paged/configmaps");
    for i in 0..5 {
        let resp =
            client.post(&collection).json(&configmap(&format!("cm-{i}"), json!({}))).send().await.expect("create");
        expect_json(resp, 201).await;
    }
    let first = expect_json(client.get(format!("{collection}?limit=2")).send().await.expect("list"), 200).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2));
    let token = first["metadata"]["continue"].as_str().expect("a continue token").to_owned();

    // Before compaction the token works.
    let second =
        expect_json(client.get(format!("{collection}?limit=2&continue={token}")).send().await.expect("list"), 200)
            .await;
    assert_eq!(second["items"][0]["metadata"]["name"], "cm-2");

    // A later write, then compaction up to it: the first page's snapshot is gone.
    let resp = client.post(&collection).json(&configmap("later", json!({}))).send().await.expect("create");
    let later = expect_json(resp, 201).await;
    cluster.server.api.store.compact(rv_of(&later)).await.expect("compact");

    let resp = client.get(format!("{collection}?limit=2&continue={token}")).send().await.expect("list");
    let status = expect_status(resp, 410, "Expired").await;
    let message = status["message"].as_str().unwrap_or("");
    assert!(
        message.starts_with("The provided continue parameter is too old to display a consistent list result."),
        "{message}"
    );

    // A fresh list still works and sees everything.
    let all = expect_json(client.get(&collection).send().await.expect("list"), 200).await;
    assert_eq!(all["items"].as_array().map(Vec::len), Some(6));
}

/// How a server reported a watch that cannot start from the requested resourceVersion:
/// upstream's cacher answers 200 and a first `ERROR` event carrying a 410 Status; an
/// initial 410 response is what the uncached path answers. Clients (client-go's reflector,
/// the Python client's `Watch`) treat both as "re-list". Returns the Status either way.
async fn expect_watch_expired(resp: reqwest::Response) -> Value {
    let status = if resp.status().as_u16() == 200 {
        let mut lines = WatchLines::new(resp);
        let ev = lines.next_within(Duration::from_secs(10)).await.expect("an ERROR event");
        assert_eq!(ev["type"], "ERROR", "{ev}");
        ev["object"].clone()
    } else {
        assert_eq!(resp.status().as_u16(), 410);
        resp.json::<Value>().await.expect("Status")
    };
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["code"], 410, "{status}");
    assert!(matches!(status["reason"].as_str(), Some("Expired" | "Gone")), "{status}");
    assert!(status["message"].as_str().unwrap_or("").contains("too old resource version"), "{status}");
    status
}

/// With a watch cache window of 20 events, a watch from a resourceVersion more than 20
/// events old gets 410; one inside the window is replayed from memory, even after the
/// store has compacted that history away (as upstream's cacher does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_outside_the_cache_window_is_expired() {
    const WINDOW: usize = 20;
    let cluster = Cluster::start_with(|config| config.watch_history = WINDOW).await;
    let client = cluster.client();
    let collection = cluster.url(CONFIGMAPS);
    let old_rv = list_rv(&cluster, CONFIGMAPS).await;
    let mut rvs = Vec::new();
    for i in 0..(2 * WINDOW) {
        let resp =
            client.post(&collection).json(&configmap(&format!("cm-{i}"), json!({}))).send().await.expect("create");
        rvs.push(rv_of(&expect_json(resp, 201).await));
    }
    let last = *rvs.last().expect("writes");
    cluster.server.api.store.compact(last).await.expect("compact");

    let watcher = support::streaming_client(&cluster.server.pki, support::Credentials::AdminCert);
    let resp = watcher.get(format!("{collection}?watch=true&resourceVersion={old_rv}")).send().await.expect("watch");
    expect_watch_expired(resp).await;

    // Five events back is well inside the window: they are replayed, then new ones follow.
    let from = rvs[rvs.len() - 6];
    let resp = watcher.get(format!("{collection}?watch=true&resourceVersion={from}")).send().await.expect("watch");
    assert_eq!(resp.status().as_u16(), 200);
    let mut lines = WatchLines::new(resp);
    let mut replayed = Vec::new();
    for _ in 0..5 {
        let ev = lines.next_within(Duration::from_secs(10)).await.expect("a replayed event");
        assert_eq!(ev["type"], "ADDED", "{ev}");
        replayed.push(rv_of(&ev["object"]));
    }
    assert_eq!(replayed, rvs[rvs.len() - 5..].to_vec());
    let resp = client.post(&collection).json(&configmap("after", json!({}))).send().await.expect("create");
    let after = rv_of(&expect_json(resp, 201).await);
    let ev = lines.next_within(Duration::from_secs(10)).await.expect("the new event");
    assert_eq!((ev["type"].as_str(), rv_of(&ev["object"])), (Some("ADDED"), after));

    // Once enough later events have pushed it out of the window, the same watch start is expired.
    for i in 0..WINDOW {
        let resp =
            client.post(&collection).json(&configmap(&format!("more-{i}"), json!({}))).send().await.expect("create");
        expect_json(resp, 201).await;
    }
    let resp = watcher.get(format!("{collection}?watch=true&resourceVersion={from}")).send().await.expect("watch");
    expect_watch_expired(resp).await;

    // A watch without a resourceVersion (or from 0) still starts, with the current objects.
    let resp = watcher.get(format!("{collection}?watch=true&resourceVersion=0")).send().await.expect("watch");
    assert_eq!(resp.status().as_u16(), 200);
    let first = WatchLines::new(resp).next_within(Duration::from_secs(10)).await.expect("an initial event");
    assert_eq!(first["type"], "ADDED");
}

/// A write to the same store outside `/registry/` (a service IP allocation, or another user
/// of a shared etcd) must not stall consistent reads, which wait for the watch cache to reach
/// the store's newest revision. The cache follows the whole keyspace for that reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_outside_the_registry_does_not_stall_consistent_lists() {
    let cluster = Cluster::start().await;
    let store = &cluster.server.api.store;
    store.create("/other-tenant/key", bytes::Bytes::from_static(b"x")).await.expect("write outside /registry/");
    let client = cluster.client();

    let started = std::time::Instant::now();
    let resp = client.get(cluster.url(CONFIGMAPS)).send().await.expect("list");
    expect_json(resp, 200).await;
    assert!(started.elapsed() < Duration::from_secs(1), "the list took {:?}", started.elapsed());

    let started = std::time::Instant::now();
    let resp = support::streaming_client(&cluster.server.pki, support::Credentials::AdminCert)
        .get(cluster.url(&format!("{CONFIGMAPS}?watch=true")))
        .send()
        .await
        .expect("watch");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(1), "the watch took {:?} to start", started.elapsed());
}
