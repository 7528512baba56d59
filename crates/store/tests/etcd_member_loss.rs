//! Acceptance: member loss (etcd). One of three members is killed during the load. No
//! acknowledged write is lost, and the store keeps serving.
//!
//! The killed member is the Raft leader, the harder case: the survivors must notice, elect a new
//! leader, and the client must stop using the dead member's address.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rkube_store::etcd::{EtcdConfig, EtcdStore};
use rkube_store::{Error, ListOptions, Revision, Store};
use support::etcd::EtcdCluster;

const WRITERS: usize = 64;
const READERS: usize = 4;
/// Acknowledged writes before the kill: about a second of load on this machine's disk.
const ACKED_BEFORE_KILL: usize = 1000;
/// Acknowledged writes, started after the kill, at which the load stops.
const ACKED_AFTER_KILL: usize = 1000;
/// The least number of writes, started after the kill, that must be acknowledged.
const MIN_ACKED_AFTER_KILL: usize = 500;
/// How soon after the survivors have elected a new leader a write started after the kill must be
/// acknowledged. Writes sent to a follower just after the kill are forwarded to the dead leader and
/// lost, so they wait for the store's write timeout (2 s); the rest is slack for a slow machine.
const FIRST_ACK_AFTER_ELECTION_WITHIN: Duration = Duration::from_secs(3);
/// Bounds on each phase, so that a broken store fails the test instead of hanging it.
const PHASE_DEADLINE: Duration = Duration::from_secs(20);

/// One acknowledged create.
struct Ack {
    key: String,
    revision: Revision,
    /// Whether the write was started after the kill.
    after_kill: bool,
    at: Instant,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    killed: AtomicBool,
    acked: AtomicUsize,
    acked_after_kill: AtomicUsize,
}

async fn writer(store: Arc<EtcdStore>, shared: Arc<Shared>, w: usize) -> (Vec<Ack>, Vec<Error>) {
    let mut acks = Vec::new();
    let mut errors = Vec::new();
    let value = Bytes::from(vec![b'v'; 256]);
    for n in 0.. {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let key = format!("/loss/w{w}/{n}");
        let after_kill = shared.killed.load(Ordering::SeqCst);
        match store.create(&key, value.clone()).await {
            Ok(revision) => {
                acks.push(Ack { key, revision, after_kill, at: Instant::now() });
                shared.acked.fetch_add(1, Ordering::Relaxed);
                if after_kill {
                    shared.acked_after_kill.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                errors.push(e);
                // Not a retry of the same key: a failed create may or may not have happened,
                // and the test only holds the store to what it acknowledged.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    (acks, errors)
}

/// Reads while the writers write: every read must succeed, member loss included, because reads
/// are retried. Returns how many reads were made.
async fn reader(store: Arc<EtcdStore>, shared: Arc<Shared>, r: usize) -> usize {
    let mut reads = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let revision = store.current_revision().await.expect("current revision during the load");
        let key = format!("/loss/w{r}/0");
        let kv = store.get(&key).await.expect("get during the load");
        if let Some(kv) = kv {
            assert!(kv.mod_revision <= store.current_revision().await.expect("revision"));
        }
        let page =
            store.list("/loss/", ListOptions { limit: 50, ..Default::default() }).await.expect("list during the load");
        assert!(page.revision >= revision, "reads never go back in time");
        reads += 3;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reads
}

async fn wait_for(what: &str, counter: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + PHASE_DEADLINE;
    while counter.load(Ordering::Relaxed) < target {
        assert!(
            Instant::now() < deadline,
            "{what}: only {} of {target} writes acknowledged within {PHASE_DEADLINE:?}",
            counter.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_loss_keeps_acknowledged_writes_and_serving() {
    let mut cluster = EtcdCluster::start(3);
    let store = Arc::new(
        EtcdStore::connect(EtcdConfig { endpoints: cluster.endpoints(), ..Default::default() })
            .await
            .expect("connect to the cluster"),
    );
    let shared = Arc::new(Shared::default());
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS).map(|w| tokio::spawn(writer(store.clone(), shared.clone(), w))).collect();

    let readers: Vec<_> = (0..READERS).map(|r| tokio::spawn(reader(store.clone(), shared.clone(), r))).collect();

    wait_for("before the kill", &shared.acked, ACKED_BEFORE_KILL).await;
    let leader = cluster.leader().await.expect("the cluster has a leader");
    let before_kill = shared.acked.load(Ordering::Relaxed);
    let load_time = started.elapsed();
    shared.killed.store(true, Ordering::SeqCst);
    let killed_at = Instant::now();
    cluster.kill(leader);
    let new_leader = wait_for_leader(&cluster).await;
    let elected_after = killed_at.elapsed();

    wait_for("after the kill", &shared.acked_after_kill, ACKED_AFTER_KILL).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut acks = Vec::new();
    let mut errors = Vec::new();
    for w in writers {
        let (a, e) = w.await.expect("writer task");
        acks.extend(a);
        errors.extend(e);
    }

    let mut reads = 0;
    for r in readers {
        reads += r.await.expect("reader task: every read succeeds");
    }

    let first_after = acks
        .iter()
        .filter(|a| a.after_kill)
        .map(|a| a.at.duration_since(killed_at))
        .min()
        .expect("writes started after the kill were acknowledged");
    let after_kill = acks.iter().filter(|a| a.after_kill).count();
    eprintln!(
        "{before_kill} writes acknowledged in {load_time:?} before killing the leader (member \
         {leader}); member {new_leader} leader {elected_after:?} after the kill; first write started after the kill acknowledged {first_after:?} after it; \
         {after_kill} acknowledged after; {reads} reads; {} failed: {:?}",
        errors.len(),
        errors.iter().map(ToString::to_string).collect::<HashSet<_>>()
    );
    assert!(
        errors.iter().all(|e| matches!(e, Error::Unavailable(_))),
        "writes may only fail as unavailable (an ambiguous write must not be retried into \
         AlreadyExists): {errors:?}"
    );
    assert!(after_kill >= MIN_ACKED_AFTER_KILL, "only {after_kill} writes acknowledged after the kill");
    assert!(
        first_after <= elected_after + FIRST_ACK_AFTER_ELECTION_WITHIN,
        "the first write after the kill took {first_after:?}, and the election {elected_after:?}"
    );

    let revisions: HashSet<Revision> = acks.iter().map(|a| a.revision).collect();
    assert_eq!(revisions.len(), acks.len(), "every acknowledged write has its own revision");

    // A fresh client, on the survivors only, sees every acknowledged write at its revision.
    let fresh = EtcdStore::connect(EtcdConfig { endpoints: cluster.live_endpoints(), ..Default::default() })
        .await
        .expect("connect to the survivors");
    let stored = list_all(&fresh, "/loss/").await;
    for ack in &acks {
        match stored.get(&ack.key) {
            Some(&(create, modified)) => assert_eq!(
                (create, modified),
                (ack.revision, ack.revision),
                "{} was acknowledged at revision {}",
                ack.key,
                ack.revision
            ),
            None => panic!("{} was acknowledged at revision {} and is lost", ack.key, ack.revision),
        }
    }

    // And the survivors still take writes.
    fresh.create("/loss/after", Bytes::from_static(b"x")).await.expect("write after the test");
}

/// Waits for the survivors to elect a leader, and says which member it is.
async fn wait_for_leader(cluster: &EtcdCluster) -> usize {
    let deadline = Instant::now() + PHASE_DEADLINE;
    loop {
        if let Some(leader) = cluster.leader().await {
            return leader;
        }
        assert!(Instant::now() < deadline, "no new leader within {PHASE_DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every key under `prefix`, with its create and mod revisions, read page by page at one revision.
async fn list_all(store: &EtcdStore, prefix: &str) -> BTreeMap<String, (Revision, Revision)> {
    let mut out = BTreeMap::new();
    let mut token = None;
    loop {
        let page = store
            .list(prefix, ListOptions { limit: 1000, continue_token: token, ..Default::default() })
            .await
            .expect("list");
        for kv in page.items {
            out.insert(kv.key, (kv.create_revision, kv.mod_revision));
        }
        match page.continue_token {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}
