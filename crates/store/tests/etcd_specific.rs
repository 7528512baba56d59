//! Behaviour of the etcd backend that the shared conformance suite does not cover: what etcd
//! reports about compaction, how a watch ends when etcd goes away, and how the store behaves with
//! a cluster that loses members.

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rkube_store::etcd::{EtcdConfig, EtcdStore};
use rkube_store::{Error, EventKind, ListOptions, Revision, Store, WatchStream};
use support::etcd::EtcdCluster;

/// How long a watch may take to deliver what a test waits for.
const WATCH_DEADLINE: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn connect(endpoints: Vec<String>) -> EtcdStore {
    EtcdStore::connect(EtcdConfig { endpoints, ..Default::default() }).await.expect("connect to etcd")
}

async fn next(w: &mut WatchStream) -> Option<rkube_store::Result<rkube_store::Event>> {
    tokio::time::timeout(WATCH_DEADLINE, w.next()).await.expect("the watch answers within the deadline")
}

#[tokio::test]
async fn compaction_reports_the_compacted_revision() {
    let cluster = EtcdCluster::start(1);
    let s = connect(cluster.endpoints()).await;
    let r1 = s.create("/cp/a", b("1")).await.expect("create");
    let r2 = s.update("/cp/a", b("2"), r1).await.expect("update");
    let (_, r3) = s.delete("/cp/a", None).await.expect("delete");
    let r4 = s.create("/cp/b", b("b")).await.expect("create");
    s.compact(r3).await.expect("compact");
    s.compact(r2).await.expect("compacting below the compaction is not an error");

    match s.list("/cp/", ListOptions { revision: Some(r2), ..Default::default() }).await {
        Err(Error::Compacted { requested, compacted }) => assert_eq!((requested, compacted), (r2, r3)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    // The compaction revision itself stays readable.
    let at = s.list("/cp/", ListOptions { revision: Some(r3), ..Default::default() }).await;
    assert!(at.expect("list at the compaction revision").items.is_empty());

    // A watch needs the state at `after`: `after == r3` works, `after == r3 - 1` does not, even
    // though etcd itself would start it (and would not deliver the delete at r3).
    match s.watch("/cp/", r3 - 1).await {
        Err(Error::Compacted { requested, compacted }) => {
            assert_eq!((requested, compacted), (r3 - 1, r3));
        }
        Err(e) => panic!("expected Compacted, got {e:?}"),
        Ok(_) => panic!("a watch from below the compaction must fail"),
    }
    let mut w = s.watch("/cp/", r3).await.expect("watch from the compaction revision");
    let ev = next(&mut w).await.expect("an event").expect("not an error");
    assert_eq!((ev.kind, ev.revision), (EventKind::Create, r4));

    let future = s.current_revision().await.expect("revision") + 100;
    assert!(matches!(s.compact(future).await, Err(Error::FutureRevision { .. })));
}

#[tokio::test]
async fn watch_events_carry_what_the_api_server_needs() {
    let cluster = EtcdCluster::start(1);
    let s = connect(cluster.endpoints()).await;
    let r1 = s.create("/ev/a", b("1")).await.expect("create");
    let r2 = s.update("/ev/a", b("2"), r1).await.expect("update");
    let (_, r3) = s.delete("/ev/a", Some(r2)).await.expect("delete");

    // `after == 0` replays all the history etcd keeps.
    let mut w = s.watch("/ev/", 0).await.expect("watch");
    let create = next(&mut w).await.expect("event").expect("ok");
    assert_eq!((create.kind, create.revision, create.prev), (EventKind::Create, r1, None));
    assert_eq!((create.kv.create_revision, create.kv.mod_revision), (r1, r1));
    let update = next(&mut w).await.expect("event").expect("ok");
    assert_eq!((update.kind, update.revision), (EventKind::Update, r2));
    assert_eq!((update.kv.value.clone(), update.kv.create_revision), (b("2"), r1));
    assert_eq!(update.prev.map(|p| (p.value, p.mod_revision)), Some((b("1"), r1)));
    let delete = next(&mut w).await.expect("event").expect("ok");
    assert_eq!((delete.kind, delete.revision), (EventKind::Delete, r3));
    // The deleted value, under the revision of the delete.
    assert_eq!(
        (delete.kv.key.as_str(), delete.kv.value.clone(), delete.kv.create_revision, delete.kv.mod_revision),
        ("/ev/a", b("2"), r1, r3)
    );
    assert_eq!(delete.prev.map(|p| (p.value, p.mod_revision)), Some((b("2"), r2)));
}

#[tokio::test]
async fn an_idle_watch_outlives_the_request_timeout() {
    let cluster = EtcdCluster::start(1);
    let s = connect(cluster.endpoints()).await;
    let now = s.current_revision().await.expect("revision");
    let mut w = s.watch("/idle/", now).await.expect("watch");
    // Longer than the store's 5 s request timeout, which must not apply to a watch.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let r = s.create("/idle/a", b("x")).await.expect("create");
    assert_eq!(next(&mut w).await.expect("event").expect("ok").revision, r);
}

#[tokio::test]
async fn a_watch_ends_with_unavailable_when_etcd_dies() {
    let mut cluster = EtcdCluster::start(1);
    let s = connect(cluster.endpoints()).await;
    let now = s.current_revision().await.expect("revision");
    let mut w = s.watch("/gone/", now).await.expect("watch");
    let r = s.create("/gone/a", b("x")).await.expect("create");
    assert_eq!(next(&mut w).await.expect("event").expect("ok").revision, r);

    cluster.kill(0);
    match next(&mut w).await {
        Some(Err(Error::Unavailable(_))) => {}
        other => panic!("expected the watch to fail as unavailable, got {other:?}"),
    }
    assert!(next(&mut w).await.is_none(), "the watch ends after its error");
    assert!(matches!(s.get("/gone/a").await, Err(Error::Unavailable(_))));
}

/// A watcher that resumes from the last revision it saw, as the API server does, sees every
/// acknowledged write exactly once and in order while the leader is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_watch_misses_nothing_across_member_loss() {
    const WRITES: usize = 300;
    const KILL_AT: usize = 100;
    const END: &str = "/rw/end";
    let mut cluster = EtcdCluster::start(3);
    let s = std::sync::Arc::new(connect(cluster.endpoints()).await);
    let start = s.current_revision().await.expect("revision");

    let watcher = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut seen: Vec<Revision> = Vec::new();
            let mut resumes = 0;
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                assert!(Instant::now() < deadline, "watcher saw only {} events", seen.len());
                let after = seen.last().copied().unwrap_or(start);
                let mut w = match s.watch("/rw/", after).await {
                    Ok(w) => w,
                    Err(e) => {
                        assert!(e.is_retryable(), "unexpected watch error {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                while let Some(item) = tokio::time::timeout(WATCH_DEADLINE, w.next())
                    .await
                    .expect("an event or an error within the deadline")
                {
                    match item {
                        Ok(ev) if ev.kv.key == END => return (seen, resumes),
                        Ok(ev) => seen.push(ev.revision),
                        Err(e) => {
                            assert!(e.is_retryable(), "unexpected watch error {e}");
                            break;
                        }
                    }
                }
                resumes += 1;
            }
        })
    };

    let mut acked = Vec::new();
    let mut n = 0;
    let mut killed = false;
    let deadline = Instant::now() + Duration::from_secs(40);
    while acked.len() < WRITES {
        assert!(Instant::now() < deadline, "only {} writes acknowledged", acked.len());
        if !killed && acked.len() == KILL_AT {
            // Kill the member that serves the watch, so that the watch must be resumed.
            let serving = (0..cluster.len()).find(|&m| cluster.watchers(m).unwrap_or(0) > 0);
            let victim = serving.expect("a member serves the watch");
            cluster.kill(victim);
            killed = true;
        }
        // A failed write may or may not have happened; the watcher must see at least every
        // acknowledged one.
        match s.create(&format!("/rw/{n}"), b("x")).await {
            Ok(r) => acked.push(r),
            Err(e) => assert!(e.is_retryable(), "unexpected write error {e}"),
        }
        n += 1;
    }
    let mut end = s.create(END, b("end")).await;
    while let Err(e) = &end {
        assert!(e.is_retryable() || matches!(e, Error::AlreadyExists { .. }), "{e}");
        if matches!(e, Error::AlreadyExists { .. }) {
            break;
        }
        end = s.create(END, b("end")).await;
    }
    let (seen, resumes) = watcher.await.expect("watcher");
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event is delivered twice");
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "events are in revision order");
    let missing: Vec<_> = acked.iter().filter(|r| !unique.contains(r)).collect();
    assert!(missing.is_empty(), "acknowledged writes the watcher missed: {missing:?} ({resumes} resumes)");
    eprintln!("{} writes ({} attempts), watch resumed {resumes} times", acked.len(), n);
}

#[tokio::test]
async fn connecting_to_nothing_fails_as_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let started = Instant::now();
    match EtcdStore::connect(EtcdConfig { endpoints: vec![format!("http://127.0.0.1:{port}")], ..Default::default() })
        .await
    {
        Err(Error::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(15), "gave up in {:?}", started.elapsed());
}

#[tokio::test]
async fn tls_files_need_an_https_endpoint() {
    let result = EtcdStore::connect(EtcdConfig {
        endpoints: vec!["http://127.0.0.1:2379".to_owned()],
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..Default::default()
    })
    .await;
    assert!(matches!(result, Err(Error::Backend(_))), "got {result:?}");
}
