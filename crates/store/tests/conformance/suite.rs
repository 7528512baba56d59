//! The store conformance suite: what every backend must do, written once against `dyn Store`.
//! Modelled on Kubernetes' `storage/testing/store_tests.go`.
//!
//! Every case works relative to the revisions it observes, because backends start their
//! counters at different places (a fresh etcd has already used revision 1).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rkube_store::{ContinueToken, Error, Event, EventKind, ListOptions, MAX_VALUE_BYTES, Revision, Store, WatchStream};
use tokio::sync::Barrier;

/// How long a watch may take to deliver what the test is waiting for.
const WATCH_DEADLINE: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next_event(w: &mut WatchStream) -> Event {
    match tokio::time::timeout(WATCH_DEADLINE, w.next()).await {
        Ok(Some(Ok(ev))) => ev,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no event within {WATCH_DEADLINE:?}"),
    }
}

async fn collect_events(w: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(next_event(w).await);
    }
    out
}

pub async fn create_and_get(s: &dyn Store) {
    let before = s.current_revision().await.expect("revision");
    let rev = s.create("/c/a", b("one")).await.expect("create");
    assert!(rev > before, "create must get a new revision ({rev} > {before})");
    let kv = s.get("/c/a").await.expect("get").expect("present");
    assert_eq!(kv.value, b("one"));
    assert_eq!((kv.create_revision, kv.mod_revision), (rev, rev));
    assert_eq!(s.current_revision().await.expect("revision"), rev);

    match s.create("/c/a", b("two")).await {
        Err(Error::AlreadyExists { key }) => assert_eq!(key, "/c/a"),
        other => panic!("second create must fail with AlreadyExists, got {other:?}"),
    }
    let kv = s.get("/c/a").await.expect("get").expect("present");
    assert_eq!((kv.value, kv.mod_revision), (b("one"), rev), "a failed create changes nothing");
    assert_eq!(s.current_revision().await.expect("revision"), rev, "a failed create uses no revision");
    assert!(s.get("/c/missing").await.expect("get").is_none());
}

pub async fn update_with_precondition(s: &dyn Store) {
    let r1 = s.create("/u/a", b("v1")).await.expect("create");
    let r2 = s.update("/u/a", b("v2"), r1).await.expect("update");
    assert!(r2 > r1);
    let kv = s.get("/u/a").await.expect("get").expect("present");
    assert_eq!((kv.value.clone(), kv.create_revision, kv.mod_revision), (b("v2"), r1, r2));

    match s.update("/u/a", b("stale"), r1).await {
        Err(Error::Conflict { expected, current: Some(cur), .. }) => {
            assert_eq!(expected, r1);
            assert_eq!((cur.value, cur.mod_revision), (b("v2"), r2), "a conflict reports the current value");
        }
        other => panic!("stale update must conflict, got {other:?}"),
    }
    assert_eq!(s.get("/u/a").await.expect("get").expect("present").mod_revision, r2);
    assert!(matches!(s.update("/u/missing", b("x"), r1).await, Err(Error::NotFound { .. })));
}

pub async fn delete_with_precondition(s: &dyn Store) {
    let r1 = s.create("/d/a", b("v1")).await.expect("create");
    let r2 = s.update("/d/a", b("v2"), r1).await.expect("update");
    assert!(matches!(s.delete("/d/a", Some(r1)).await, Err(Error::Conflict { .. })));
    assert!(s.get("/d/a").await.expect("get").is_some(), "a failed delete keeps the key");

    let (old, r3) = s.delete("/d/a", Some(r2)).await.expect("delete");
    assert!(r3 > r2);
    assert_eq!((old.value, old.mod_revision), (b("v2"), r2), "delete returns the deleted value");
    assert!(s.get("/d/a").await.expect("get").is_none());
    assert!(matches!(s.delete("/d/a", None).await, Err(Error::NotFound { .. })));

    // A key can be created again after deletion, with a new creation revision.
    let r4 = s.create("/d/a", b("again")).await.expect("re-create");
    let kv = s.get("/d/a").await.expect("get").expect("present");
    assert_eq!(kv.create_revision, r4);
    s.delete("/d/a", None).await.expect("unconditional delete");
}

pub async fn list_and_count(s: &dyn Store) {
    for i in 0..25 {
        s.create(&format!("/l/items/{i:02}"), b(&format!("v{i}"))).await.expect("create");
    }
    // Neighbours that a prefix match must not pick up.
    s.create("/l/items2/x", b("x")).await.expect("create");
    s.create("/l/item", b("x")).await.expect("create");

    assert_eq!(s.count("/l/items/").await.expect("count"), 25);
    let all = s.list("/l/items/", ListOptions::default()).await.expect("list");
    assert_eq!(all.items.len(), 25);
    assert!(all.continue_token.is_none());
    let keys: Vec<_> = all.items.iter().map(|kv| kv.key.clone()).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "lists are in key order");
    assert_eq!(all.revision, s.current_revision().await.expect("revision"));
    assert!(s.list("/l/nothing/", ListOptions::default()).await.expect("list").items.is_empty());
}

pub async fn list_pages_are_consistent(s: &dyn Store) {
    let mut revs = BTreeMap::new();
    for i in 0..25 {
        let key = format!("/p/items/{i:02}");
        revs.insert(key.clone(), s.create(&key, b("old")).await.expect("create"));
    }
    let first = s.list("/p/items/", ListOptions { limit: 10, ..Default::default() }).await.expect("list");
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.remaining, 15);
    let token = first.continue_token.clone().expect("a continue token");

    // Writes between pages must not show in later pages: the list is one snapshot.
    let k = "/p/items/20";
    s.update(k, b("new"), revs[k]).await.expect("update");
    s.create("/p/items/99", b("late")).await.expect("create");
    s.delete("/p/items/15", None).await.expect("delete");

    let second = s
        .list("/p/items/", ListOptions { limit: 10, continue_token: Some(token), ..Default::default() })
        .await
        .expect("list");
    assert_eq!(second.revision, first.revision, "every page is read at the first page's revision");
    assert_eq!(second.items.len(), 10);
    assert_eq!(second.remaining, 5);
    let third = s
        .list(
            "/p/items/",
            ListOptions { limit: 10, continue_token: second.continue_token.clone(), ..Default::default() },
        )
        .await
        .expect("list");
    assert_eq!(third.items.len(), 5);
    assert!(third.continue_token.is_none());

    let pages: Vec<_> = first.items.iter().chain(&second.items).chain(&third.items).collect();
    let keys: Vec<_> = pages.iter().map(|kv| kv.key.as_str()).collect();
    let expected: Vec<_> = revs.keys().map(String::as_str).collect();
    assert_eq!(keys, expected, "pages cover the snapshot exactly once");
    assert!(pages.iter().all(|kv| kv.value == b("old")), "no page sees a later write");

    // A token is opaque but tamper-evident enough not to cross into another list.
    let foreign = ContinueToken { revision: first.revision, start: "/other/x".into() };
    assert!(s.list("/p/items/", ListOptions { continue_token: Some(foreign), ..Default::default() }).await.is_err());
}

pub async fn list_at_revision(s: &dyn Store) {
    let r1 = s.create("/r/a", b("v1")).await.expect("create");
    let r2 = s.update("/r/a", b("v2"), r1).await.expect("update");
    s.create("/r/b", b("b")).await.expect("create");
    let old = s.list("/r/", ListOptions { revision: Some(r1), ..Default::default() }).await.expect("list");
    assert_eq!(old.revision, r1);
    assert_eq!(old.items.len(), 1);
    assert_eq!(old.items[0].value, b("v1"));
    let now = s.list("/r/", ListOptions::default()).await.expect("list");
    assert_eq!(now.items.len(), 2);
    assert_eq!(now.items[0].mod_revision, r2);
    let future = s.current_revision().await.expect("revision") + 1000;
    assert!(matches!(
        s.list("/r/", ListOptions { revision: Some(future), ..Default::default() }).await,
        Err(Error::FutureRevision { .. })
    ));
}

pub async fn watch_from_revision(s: &dyn Store) {
    let r0 = s.current_revision().await.expect("revision");
    let r1 = s.create("/w/a", b("1")).await.expect("create");
    s.create("/other/x", b("x")).await.expect("create");
    let r2 = s.update("/w/a", b("2"), r1).await.expect("update");
    let (_, r3) = s.delete("/w/a", Some(r2)).await.expect("delete");

    let mut w = s.watch("/w/", r0).await.expect("watch");
    let evs = collect_events(&mut w, 3).await;
    assert_eq!(
        evs.iter().map(|e| (e.kind.clone(), e.revision)).collect::<Vec<_>>(),
        vec![(EventKind::Create, r1), (EventKind::Update, r2), (EventKind::Delete, r3)]
    );
    assert_eq!(evs[1].prev.as_ref().map(|p| p.value.clone()), Some(b("1")), "updates carry the previous value");
    assert_eq!(evs[2].kv.key, "/w/a");
    assert_eq!(evs[2].prev.as_ref().map(|p| p.value.clone()), Some(b("2")), "deletes carry the deleted value");

    // Live events follow the historical ones without a gap.
    let r4 = s.create("/w/b", b("live")).await.expect("create");
    let ev = next_event(&mut w).await;
    assert_eq!((ev.kind, ev.revision, ev.kv.value), (EventKind::Create, r4, b("live")));

    // A watch from the current revision sees only what comes later.
    let now = s.current_revision().await.expect("revision");
    let mut w0 = s.watch("/w/", now).await.expect("watch");
    let r5 = s.update("/w/b", b("later"), r4).await.expect("update");
    assert_eq!(next_event(&mut w0).await.revision, r5);
}

/// Watchers see every event, in revision order, under concurrent writers.
pub async fn watch_under_concurrent_writes(s: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 40;
    let r0 = s.current_revision().await.expect("revision");
    let mut live = s.watch("/cw/", r0).await.expect("watch");

    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..PER_WRITER {
                let key = format!("/cw/{w}/{i}");
                let r = s.create(&key, b("x")).await.expect("create");
                acked.push(r);
                if i % 2 == 0 {
                    acked.push(s.update(&key, b("y"), r).await.expect("update"));
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.expect("writer"));
    }
    acked.sort_unstable();
    let unique: HashSet<_> = acked.iter().collect();
    assert_eq!(unique.len(), acked.len(), "every write gets its own revision");

    let seen: Vec<Revision> = collect_events(&mut live, acked.len()).await.iter().map(|e| e.revision).collect();
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "events arrive in strictly increasing revision order");
    assert_eq!(seen, acked, "the watcher sees exactly the acknowledged writes");

    // A watch started afterwards from the same revision replays the same history.
    let mut replay = s.watch("/cw/", r0).await.expect("watch");
    let replayed: Vec<Revision> = collect_events(&mut replay, acked.len()).await.iter().map(|e| e.revision).collect();
    assert_eq!(replayed, acked);
}

/// A watch that is dropped and resumed from the last revision it saw misses and repeats nothing.
pub async fn watch_resumes(s: &dyn Store) {
    let r0 = s.current_revision().await.expect("revision");
    let mut written = Vec::new();
    for i in 0..10 {
        written.push(s.create(&format!("/wr/{i}"), b("x")).await.expect("create"));
    }
    let mut w = s.watch("/wr/", r0).await.expect("watch");
    let first: Vec<_> = collect_events(&mut w, 4).await.iter().map(|e| e.revision).collect();
    drop(w);
    for i in 10..20 {
        written.push(s.create(&format!("/wr/{i}"), b("x")).await.expect("create"));
    }
    let last_seen = *first.last().expect("events");
    let mut w = s.watch("/wr/", last_seen).await.expect("resume");
    let rest: Vec<_> = collect_events(&mut w, 16).await.iter().map(|e| e.revision).collect();
    let all: Vec<_> = first.into_iter().chain(rest).collect();
    assert_eq!(all, written);
}

/// 16 writers race compare-and-swap on one key; exactly one wins each round.
pub async fn cas_race(s: Arc<dyn Store>) {
    const RACERS: usize = 16;
    const ROUNDS: usize = 20;
    let key = "/cas/counter";
    s.create(key, b("0")).await.expect("create");
    let barrier = Arc::new(Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for racer in 0..RACERS {
        let (s, barrier) = (s.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut wins = Vec::new();
            for round in 0..ROUNDS {
                // Everyone reads the same revision, then everyone tries to swap it.
                let cur = s.get(key).await.expect("get").expect("present");
                barrier.wait().await;
                match s.update(key, b(&format!("{round}:{racer}")), cur.mod_revision).await {
                    Ok(_) => wins.push(round),
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("unexpected error {e}"),
                }
                barrier.wait().await;
            }
            wins
        }));
    }
    let mut wins_per_round = vec![0; ROUNDS];
    for t in tasks {
        for round in t.await.expect("racer") {
            wins_per_round[round] += 1;
        }
    }
    assert_eq!(wins_per_round, vec![1; ROUNDS], "exactly one winner per round");
}

pub async fn compaction(s: &dyn Store) {
    let r1 = s.create("/cp/a", b("1")).await.expect("create");
    let r2 = s.update("/cp/a", b("2"), r1).await.expect("update");
    let r3 = s.create("/cp/b", b("b")).await.expect("create");
    let (_, r4) = s.delete("/cp/b", None).await.expect("delete");
    let r5 = s.update("/cp/a", b("3"), r2).await.expect("update");
    let r6 = s.create("/cp/c", b("c")).await.expect("create");
    let _ = (r3, r6);

    s.compact(r4).await.expect("compact");
    // Compacting again, or to an older revision, is not an error.
    s.compact(r4).await.expect("compact is idempotent");

    match s.list("/cp/", ListOptions { revision: Some(r1), ..Default::default() }).await {
        Err(Error::Compacted { .. }) => {}
        other => panic!("a list below the compaction must fail with Compacted, got {other:?}"),
    }
    let watch_err = match s.watch("/cp/", r1).await {
        Err(e) => Some(e),
        Ok(mut w) => match tokio::time::timeout(WATCH_DEADLINE, w.next()).await {
            Ok(Some(Err(e))) => Some(e),
            other => panic!("a watch below the compaction must fail, got {other:?}"),
        },
    };
    assert!(matches!(watch_err, Some(Error::Compacted { .. })), "got {watch_err:?}");

    // History after the compaction point, and current state, are intact.
    let mut w = s.watch("/cp/", r4).await.expect("watch at the compaction point");
    let ev = next_event(&mut w).await;
    assert_eq!((ev.revision, ev.prev.map(|p| p.value)), (r5, Some(b("2"))));
    let now = s.list("/cp/", ListOptions::default()).await.expect("list");
    let values: Vec<_> = now.items.iter().map(|kv| (kv.key.as_str(), kv.value.clone())).collect();
    assert_eq!(values, vec![("/cp/a", b("3")), ("/cp/c", b("c"))]);
    let at =
        s.list("/cp/", ListOptions { revision: Some(r4), ..Default::default() }).await.expect("list at compaction");
    assert_eq!(at.items.len(), 1);
    assert_eq!(at.items[0].value, b("2"));
    assert_eq!(s.count("/cp/").await.expect("count"), 2);
}

pub async fn bad_input(s: &dyn Store) {
    let r0 = s.current_revision().await.expect("revision");
    let big = Bytes::from(vec![b'x'; MAX_VALUE_BYTES + 1]);
    assert!(matches!(s.create("/bad/big", big.clone()).await, Err(Error::ValueTooLarge { .. })));
    let exact = Bytes::from(vec![b'x'; 1024 * 1024]);
    let r1 = s.create("/bad/ok", exact).await.expect("a 1 MiB value is within the limit");
    assert!(matches!(s.update("/bad/ok", big, r1).await, Err(Error::ValueTooLarge { .. })));
    for key in ["", "relative", "/trailing/", "/a//b", "/nul\0", "/a/../b"] {
        assert!(matches!(s.create(key, b("x")).await, Err(Error::InvalidKey { .. })), "create {key:?}");
        assert!(matches!(s.get(key).await, Err(Error::InvalidKey { .. })), "get {key:?}");
    }
    assert!(matches!(s.list("/no-trailing-slash", ListOptions::default()).await, Err(Error::InvalidKey { .. })));
    assert!(matches!(s.watch("relative/", r0).await, Err(Error::InvalidKey { .. })));
    assert!(matches!(s.update("/bad/ok", b("y"), r1 - 1).await, Err(Error::Conflict { .. })));
    assert_eq!(s.current_revision().await.expect("revision"), r1, "only the valid create was written");
    assert_eq!(r1, r0 + 1);
    assert_eq!(s.count("/bad/").await.expect("count"), 1);
}
