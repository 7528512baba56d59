//! Tests that only make sense for the embedded backend: the data directory lock,
//! damaged files, persistence across restarts, and crash safety under SIGKILL.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use rkube_store::sqlite::{DB_FILE, SqliteStore};
use rkube_store::{Error, ListOptions, Revision, Store};

#[tokio::test]
async fn a_second_opener_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(dir.path()).expect("open");
    store.create("/a/b", Bytes::from_static(b"x")).await.expect("create");
    match SqliteStore::open(dir.path()) {
        Err(Error::Locked { path }) => assert!(path.contains(&*dir.path().to_string_lossy())),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open of the same directory must fail"),
    }
    drop(store);
    // Once the first store is gone the directory can be opened again.
    let again = SqliteStore::open(dir.path()).expect("reopen");
    assert!(again.get("/a/b").await.expect("get").is_some());
}

#[test]
fn a_garbage_file_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(DB_FILE), vec![0xA5u8; 8192]).expect("write garbage");
    match SqliteStore::open(dir.path()) {
        Err(Error::Corrupt { .. }) => {}
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a garbage file must not open"),
    }
}

#[test]
fn a_foreign_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("create foreign db");
    conn.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)").expect("create table");
    drop(conn);
    match SqliteStore::open(dir.path()) {
        Err(Error::Corrupt { detail, .. }) => assert!(detail.contains("unexpected tables"), "{detail}"),
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("someone else's database must not be taken over"),
    }
}

#[tokio::test]
async fn state_and_revisions_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (r1, r2);
    {
        let store = SqliteStore::open(dir.path()).expect("open");
        r1 = store.create("/p/a", Bytes::from_static(b"1")).await.expect("create");
        r2 = store.create("/p/b", Bytes::from_static(b"2")).await.expect("create");
        // Delete the newest key and compact it away, so that the largest revision in use
        // is no longer in the log: the counter must still not go back.
        store.delete("/p/b", None).await.expect("delete");
        let r = store.current_revision().await.expect("rev");
        store.compact(r).await.expect("compact");
    }
    let store = SqliteStore::open(dir.path()).expect("reopen");
    let kv = store.get("/p/a").await.expect("get").expect("present");
    assert_eq!(kv.mod_revision, r1);
    assert!(store.get("/p/b").await.expect("get").is_none());
    let r4 = store.create("/p/c", Bytes::from_static(b"3")).await.expect("create");
    assert!(r4 > r2 + 1, "revisions keep increasing across restarts ({r4} after {r2} and a delete)");
}

/// The child side of `acknowledged_writes_survive_sigkill`. It is a test function only so that
/// the parent can start it by re-running this test binary; it is ignored in normal runs.
#[test]
#[ignore = "child process of acknowledged_writes_survive_sigkill"]
fn crash_writer_child() {
    let Ok(dir) = std::env::var("RKUBE_CRASH_DIR") else { return };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let store = Arc::new(SqliteStore::open(std::path::Path::new(&dir)).expect("open"));
        let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let mut tasks = Vec::new();
        for w in 0..64 {
            let (store, stdout) = (store.clone(), stdout.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    let key = format!("/crash/w{w}/{n}");
                    let rev = store.create(&key, Bytes::from(key.clone())).await.expect("create");
                    let mut line = format!("ACK {key} {rev}\n");
                    if n % 3 == 0 {
                        let rev2 = store.update(&key, Bytes::from(format!("{key}+")), rev).await.expect("update");
                        line.push_str(&format!("ACK {key} {rev2}\n"));
                    }
                    // Print only after the store acknowledged, and flush, so the parent never
                    // believes in a write that was not acknowledged.
                    let mut out = stdout.lock().expect("stdout lock");
                    out.write_all(line.as_bytes()).expect("write");
                    out.flush().expect("flush");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
}

/// Parses the child's `ACK <key> <revision>` lines; anything else (the test harness's own
/// output) is not an acknowledgement.
fn parse_ack(line: &str) -> Option<(String, Revision)> {
    let mut parts = line.split_whitespace();
    if parts.next() != Some("ACK") {
        return None;
    }
    let key = parts.next()?.to_owned();
    let rev = parts.next()?.parse().ok()?;
    Some((key, rev))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args(["crash_writer_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("RKUBE_CRASH_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");

    // Read acknowledgements until enough have arrived, then kill the writer mid-load.
    const ACKS_BEFORE_KILL: usize = 3000;
    let reader = std::thread::spawn(move || {
        let mut acked: HashMap<String, Revision> = HashMap::new();
        let mut n_acks = 0;
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        while n_acks < ACKS_BEFORE_KILL && Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            let Some((key, rev)) = parse_ack(&line) else { continue };
            acked.insert(key, rev);
            n_acks += 1;
        }
        (acked, n_acks, lines)
    });
    let (mut acked, n_acks, mut lines) = reader.join().expect("reader");
    assert_eq!(n_acks, ACKS_BEFORE_KILL, "the writer acknowledged too few writes before the deadline");
    // `Child::kill` sends SIGKILL to this child's PID: no destructor, no flush,
    // no clean shutdown of SQLite.
    child.kill().expect("kill");
    child.wait().expect("wait");
    // Acknowledgements printed before the kill but not read yet still count.
    for (key, rev) in lines.by_ref().map_while(Result::ok).filter_map(|l| parse_ack(&l)) {
        acked.insert(key, rev);
    }

    let store = SqliteStore::open(dir.path()).expect("reopen after SIGKILL");
    let page = store.list("/crash/", ListOptions::default()).await.expect("list");
    let stored: HashMap<_, _> = page.items.iter().map(|kv| (kv.key.as_str(), kv)).collect();
    for (key, rev) in &acked {
        let kv = stored.get(key.as_str()).unwrap_or_else(|| panic!("acknowledged {key} is missing after the crash"));
        // A write that committed just before the kill may not have been printed yet, so the
        // stored revision can be newer than the last acknowledged one, never older.
        assert!(kv.mod_revision >= *rev, "{key}: stored revision {} < acknowledged {rev}", kv.mod_revision);
    }

    // The log is strictly increasing, and new writes continue above everything acknowledged.
    let mut w = store.watch("/crash/", 0).await.expect("watch");
    let total = store.current_revision().await.expect("rev");
    let mut last = 0;
    while last < total {
        let ev =
            tokio::time::timeout(Duration::from_secs(10), w.next()).await.expect("event").expect("open").expect("ok");
        assert!(ev.revision > last, "revisions must strictly increase");
        last = ev.revision;
    }
    let max_acked = acked.values().copied().max().unwrap_or(0);
    let next = store.create("/crash/after", Bytes::from_static(b"x")).await.expect("write after restart");
    assert!(next > max_acked);
}
