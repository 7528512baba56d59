//! The embedded backend: one SQLite database in WAL mode, in the data directory.
//!
//! # Layout
//! The database is a log, in the style of k3s' kine: every write appends one row to `log`,
//! keyed by its revision. The newest row of a key is its current value, or a tombstone if it
//! was deleted. Reading at an older revision means taking, for each key, the newest row at or
//! below that revision. Compaction removes the rows that no reader can need any more.
//!
//! # Writes: group commit
//! All writes go to one writer thread that owns the only write connection. It takes every
//! request that is waiting, applies them in one transaction (each gets its own revision, as
//! in etcd), commits with `synchronous=FULL` so that the commit is one fsync of the WAL, and
//! only then answers. While one batch is being fsynced the next one queues, so the number
//! of writes per fsync grows with the load instead of the fsync capping throughput.
//!
//! # Watches
//! After each commit the writer publishes the batch's events on a broadcast channel.
//! A watch catches up from the log, then follows the channel; see [`Hub`] for why
//! that loses and duplicates nothing.
//!
//! # Safety of the directory
//! An advisory lock on `store.lock` keeps a second process out; it gets [`Error::Locked`].
//! A file that is not a SQLite database, or not ours, gets [`Error::Corrupt`].

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread;

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    ContinueToken, Error, Event, EventKind, KeyValue, ListOptions, ListPage, MAX_VALUE_BYTES, Result, Revision, Store,
    WatchStream, prefix_end, validate_key, validate_prefix,
};

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "state.db";
const LOCK_FILE: &str = "store.lock";
const SCHEMA_VERSION: i64 = 1;

/// The most requests one transaction takes. Bounded so that one batch's latency stays small.
const MAX_BATCH: usize = 1024;
/// Rows read per step when a watch catches up from the log.
const CATCHUP_CHUNK: i64 = 1000;
/// Batches a slow watcher may fall behind before it must catch up from the log again.
const BROADCAST_CAPACITY: usize = 4096;

const KIND_CREATE: i64 = 0;
const KIND_UPDATE: i64 = 1;
const KIND_DELETE: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    kind INTEGER NOT NULL,
    create_rev INTEGER NOT NULL,
    prev_rev INTEGER NOT NULL,
    value BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS log_key_rev ON log(key, rev);
";

/// Counters that the benchmark reads to report writes per fsync.
#[derive(Debug, Default)]
pub struct WriteStats {
    /// Transactions committed; each is one fsync of the WAL.
    pub commits: AtomicU64,
    /// Mutations acknowledged.
    pub writes: AtomicU64,
}

/// A [`Store`] in one SQLite file. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: mpsc::UnboundedSender<WriteRequest>,
    readers: Arc<ReadPool>,
    hub: Arc<Hub>,
    stats: Arc<WriteStats>,
    /// Held for the life of the store: the advisory lock on the data directory.
    _lock: File,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let lock = lock_dir(dir)?;
        let path = dir.join(DB_FILE);
        let mut conn = open_connection(&path, true)?;
        init_schema(&mut conn, &path)?;

        let compacted = meta_get(&conn, "compact_rev").map_err(|e| map_sqlite(&path, e))?;
        let max_rev: Revision = conn
            .query_row("SELECT COALESCE(MAX(rev), 0) FROM log", [], |r| r.get(0))
            .map_err(|e| map_sqlite(&path, e))?;
        // Compaction may delete the newest row (a tombstone), so the compaction revision
        // also bounds what has been handed out.
        let current = max_rev.max(compacted);

        let hub = Arc::new(Hub::new(current, compacted));
        let readers = Arc::new(ReadPool { path: path.clone(), idle: Mutex::new(Vec::new()) });
        let stats = Arc::new(WriteStats::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer { conn, path: path.clone(), next_rev: current + 1, hub: hub.clone(), stats: stats.clone() };
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| Error::Backend(format!("cannot start the writer thread: {e}")))?;

        Ok(SqliteStore { inner: Arc::new(Inner { path, writer: tx, readers, hub, stats, _lock: lock }) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Commit and write counters, for benchmarks and metrics.
    pub fn stats(&self) -> &WriteStats {
        &self.inner.stats
    }

    async fn write(&self, op: WriteOp) -> Result<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .writer
            .send(WriteRequest { op, reply })
            .map_err(|_| Error::Backend("the store's writer has stopped".into()))?;
        rx.await.map_err(|_| Error::Backend("the store's writer has stopped".into()))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.inner.readers.clone().run(f).await
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::Backend(format!("{}: {e}", path.display()))
}

fn lock_dir(dir: &Path) -> Result<File> {
    let lock_path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_error(&lock_path, e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Error::Locked { path: dir.display().to_string() }),
        Err(e) => Err(io_error(&lock_path, e.into())),
    }
}

fn open_connection(path: &Path, create: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(|e| map_sqlite(path, e))?;
    // WAL lets readers work while the writer commits; synchronous=FULL makes each commit
    // durable (one fsync of the WAL) before we acknowledge it.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=OFF;",
    )
    .map_err(|e| map_sqlite(path, e))?;
    Ok(conn)
}

fn init_schema(conn: &mut Connection, path: &Path) -> Result<()> {
    let corrupt = |detail: String| Error::Corrupt { path: path.display().to_string(), detail };
    // A database that has tables but not ours is someone else's file: refuse it rather than
    // add our tables beside theirs.
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| map_sqlite(path, e))?;
    let ours = ["meta", "log"];
    let fresh = tables.is_empty();
    let only_ours = tables.len() == ours.len() && tables.iter().all(|t| ours.contains(&t.as_str()));
    if !fresh && !only_ours {
        return Err(corrupt(format!("unexpected tables {tables:?}")));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| map_sqlite(path, e))?;
    tx.execute_batch(SCHEMA).map_err(|e| map_sqlite(path, e))?;
    let version: Option<i64> = tx
        .query_row("SELECT value FROM meta WHERE name = 'schema'", [], |r| r.get(0))
        .optional()
        .map_err(|e| map_sqlite(path, e))?;
    match version {
        None => {
            tx.execute("INSERT INTO meta(name, value) VALUES ('schema', ?1), ('compact_rev', 0)", [SCHEMA_VERSION])
                .map_err(|e| map_sqlite(path, e))?;
        }
        Some(SCHEMA_VERSION) => {}
        Some(other) => return Err(corrupt(format!("schema version {other}, expected {SCHEMA_VERSION}"))),
    }
    tx.commit().map_err(|e| map_sqlite(path, e))
}

fn meta_get(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| r.get(0))
}

/// Maps SQLite's errors: a damaged or foreign file is [`Error::Corrupt`], everything else is
/// a backend failure that says what SQLite said.
fn map_sqlite(path: &Path, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            Error::Corrupt { path: path.display().to_string(), detail: e.to_string() }
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Locked { path: path.display().to_string() },
        _ => Error::Backend(format!("sqlite: {e}")),
    }
}

// === Reads ===

/// Read connections, reused between reads. WAL gives each read a consistent snapshot,
/// and every read also filters by revision, so reads never see a half-published batch.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    async fn run<T, F>(self: Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        tokio::task::spawn_blocking(move || {
            let conn = match self.idle.lock().pop() {
                Some(c) => c,
                None => open_connection(&self.path, false)?,
            };
            let res = f(&conn).map_err(|e| map_sqlite(&self.path, e));
            self.idle.lock().push(conn);
            res
        })
        .await
        .map_err(|e| Error::Backend(format!("read task failed: {e}")))?
    }
}

type Row = (String, Vec<u8>, Revision, Revision);

fn row_to_kv((key, value, create_revision, mod_revision): Row) -> KeyValue {
    KeyValue { key, value: Bytes::from(value), create_revision, mod_revision }
}

fn read_current(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    let row: Option<(String, Vec<u8>, Revision, Revision, i64)> = conn
        .prepare_cached("SELECT key, value, create_rev, rev, kind FROM log WHERE key = ?1 ORDER BY rev DESC LIMIT 1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    Ok(row.and_then(|(k, v, c, m, kind)| (kind != KIND_DELETE).then(|| row_to_kv((k, v, c, m)))))
}

/// Lists live keys in `[start, end)` as of `rev`, at most `limit` of them (0: all).
fn read_range(conn: &Connection, start: &str, end: &str, rev: Revision, limit: i64) -> rusqlite::Result<Vec<KeyValue>> {
    // For each key, the row that is newest at `rev`. The index on (key, rev) makes both the
    // scan in key order and the correlated MAX cheap, and the scan stops at LIMIT.
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, create_rev, rev FROM log AS l
         WHERE key >= ?1 AND key < ?2 AND rev <= ?3 AND kind != 2
           AND rev = (SELECT MAX(rev) FROM log WHERE key = l.key AND rev <= ?3)
         ORDER BY key LIMIT ?4",
    )?;
    let limit = if limit <= 0 { -1 } else { limit };
    stmt.query_map(params![start, end, rev, limit], |r| Ok(row_to_kv((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))))?
        .collect()
}

fn count_range(conn: &Connection, start: &str, end: &str, rev: Revision) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT COUNT(*) FROM log AS l
         WHERE key >= ?1 AND key < ?2 AND rev <= ?3 AND kind != 2
           AND rev = (SELECT MAX(rev) FROM log WHERE key = l.key AND rev <= ?3)",
    )?
    .query_row(params![start, end, rev], |r| r.get(0))
}

/// Reads the events with revisions in `(after, upto]` under `[start, end)`, at most `limit`.
fn read_events(
    conn: &Connection,
    start: &str,
    end: &str,
    after: Revision,
    upto: Revision,
    limit: i64,
) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.rev, l.key, l.kind, l.create_rev, l.value, p.rev, p.create_rev, p.value
         FROM log AS l LEFT JOIN log AS p ON p.rev = l.prev_rev AND l.prev_rev != 0
         WHERE l.rev > ?1 AND l.rev <= ?2 AND l.key >= ?3 AND l.key < ?4
         ORDER BY l.rev LIMIT ?5",
    )?;
    stmt.query_map(params![after, upto, start, end, limit], |r| {
        let rev: Revision = r.get(0)?;
        let key: String = r.get(1)?;
        let kind: i64 = r.get(2)?;
        let create_rev: Revision = r.get(3)?;
        let value: Vec<u8> = r.get(4)?;
        let prev_rev: Option<Revision> = r.get(5)?;
        let prev = match prev_rev {
            Some(prev_rev) => Some(KeyValue {
                key: key.clone(),
                create_revision: r.get(6)?,
                value: Bytes::from(r.get::<_, Vec<u8>>(7)?),
                mod_revision: prev_rev,
            }),
            None => None,
        };
        Ok(make_event(kind, rev, key, create_rev, Bytes::from(value), prev))
    })?
    .collect()
}

fn make_event(
    kind: i64,
    rev: Revision,
    key: String,
    create_rev: Revision,
    value: Bytes,
    prev: Option<KeyValue>,
) -> Event {
    match kind {
        KIND_DELETE => {
            // A tombstone stores no value: the event carries the last one, from `prev`.
            let (value, create_revision) =
                prev.as_ref().map_or((Bytes::new(), create_rev), |p| (p.value.clone(), p.create_revision));
            Event {
                kind: EventKind::Delete,
                revision: rev,
                kv: KeyValue { key, value, create_revision, mod_revision: rev },
                prev,
            }
        }
        _ => Event {
            kind: if kind == KIND_CREATE { EventKind::Create } else { EventKind::Update },
            revision: rev,
            kv: KeyValue { key, value, create_revision: create_rev, mod_revision: rev },
            prev,
        },
    }
}

// === Writes ===

enum WriteOp {
    Create { key: String, value: Bytes },
    Update { key: String, value: Bytes, expected: Revision },
    Delete { key: String, expected: Option<Revision> },
    Compact { revision: Revision },
}

enum Outcome {
    Written(Revision),
    Deleted(KeyValue, Revision),
    Compacted,
}

struct WriteRequest {
    op: WriteOp,
    reply: oneshot::Sender<Result<Outcome>>,
}

struct Writer {
    conn: Connection,
    path: PathBuf,
    next_rev: Revision,
    hub: Arc<Hub>,
    stats: Arc<WriteStats>,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<WriteRequest>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        // `blocking_recv` returns None once every store handle is gone: then we stop.
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
    }

    /// Applies every request in one transaction and answers them after the commit.
    /// A request that fails its own checks writes nothing and does not affect the others.
    fn commit_batch(&mut self, batch: &mut Vec<WriteRequest>) {
        let first_rev = self.next_rev;
        let mut results = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut compacted_to = None;

        let outcome: rusqlite::Result<()> = (|| {
            let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for req in batch.iter() {
                let res = apply(&tx, &req.op, &mut self.next_rev, &mut events, &mut compacted_to);
                results.push(res);
            }
            tx.commit()
        })();

        match outcome {
            Ok(()) => {
                let n_writes =
                    results.iter().filter(|r| matches!(r, Ok(Ok(Outcome::Written(_) | Outcome::Deleted(..))))).count();
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.writes.fetch_add(n_writes as u64, Ordering::Relaxed);
                if let Some(rev) = compacted_to {
                    self.hub.compacted.fetch_max(rev, Ordering::SeqCst);
                }
                // Publish before answering: a client that hears "written at N" and then
                // watches from N-1 must be able to see N.
                self.hub.publish(self.next_rev - 1, events);
                for (req, res) in batch.drain(..).zip(results) {
                    let res = res.unwrap_or_else(|e| Err(map_sqlite(&self.path, e)));
                    let _ = req.reply.send(res);
                }
            }
            Err(e) => {
                // The transaction rolled back: nothing in it happened, so its revisions are
                // free again. Every request in it fails, even those that would have passed.
                tracing::error!(error = %e, "store commit failed");
                self.next_rev = first_rev;
                let err = map_sqlite(&self.path, e);
                for req in batch.drain(..) {
                    let _ = req.reply.send(Err(copy_error(&err)));
                }
            }
        }
    }
}

fn copy_error(e: &Error) -> Error {
    match e {
        Error::Corrupt { path, detail } => Error::Corrupt { path: path.clone(), detail: detail.clone() },
        Error::Locked { path } => Error::Locked { path: path.clone() },
        other => Error::Backend(other.to_string()),
    }
}

/// Applies one request inside the batch's transaction. The outer `Result` is a database
/// failure (which aborts the batch); the inner one is this request's own answer.
fn apply(
    tx: &rusqlite::Transaction<'_>,
    op: &WriteOp,
    next_rev: &mut Revision,
    events: &mut Vec<Event>,
    compacted_to: &mut Option<Revision>,
) -> rusqlite::Result<Result<Outcome>> {
    let mut insert = |key: &str, kind: i64, create_rev: Option<Revision>, prev: Option<&KeyValue>, value: &Bytes| {
        insert_row(tx, next_rev, events, key, kind, create_rev, prev, value)
    };
    Ok(match op {
        WriteOp::Create { key, value } => match read_current(tx, key)? {
            Some(_) => Err(Error::AlreadyExists { key: key.clone() }),
            None => Ok(Outcome::Written(insert(key, KIND_CREATE, None, None, value)?)),
        },
        WriteOp::Update { key, value, expected } => match read_current(tx, key)? {
            None => Err(Error::NotFound { key: key.clone() }),
            Some(cur) if cur.mod_revision != *expected => {
                Err(Error::Conflict { key: key.clone(), expected: *expected, current: Some(Box::new(cur)) })
            }
            Some(cur) => Ok(Outcome::Written(insert(key, KIND_UPDATE, Some(cur.create_revision), Some(&cur), value)?)),
        },
        WriteOp::Delete { key, expected } => match read_current(tx, key)? {
            None => Err(Error::NotFound { key: key.clone() }),
            Some(cur) if expected.is_some_and(|e| e != cur.mod_revision) => Err(Error::Conflict {
                key: key.clone(),
                expected: expected.unwrap_or_default(),
                current: Some(Box::new(cur)),
            }),
            Some(cur) => {
                let rev = insert(key, KIND_DELETE, Some(cur.create_revision), Some(&cur), &cur.value)?;
                Ok(Outcome::Deleted(cur, rev))
            }
        },
        WriteOp::Compact { revision } => {
            let current = *next_rev - 1;
            let done: Revision = meta_get(tx, "compact_rev")?;
            if *revision > current {
                Err(Error::FutureRevision { requested: *revision, current })
            } else if *revision <= done {
                Ok(Outcome::Compacted)
            } else {
                // Keep, for each key, its newest row at `revision` unless that row is a
                // tombstone; drop everything older. Rows above `revision` are untouched.
                tx.prepare_cached(
                    "DELETE FROM log WHERE rev <= ?1 AND (kind = 2 OR rev < (SELECT MAX(rev) FROM log AS n WHERE n.key = log.key AND n.rev <= ?1))",
                )?
                .execute([revision])?;
                tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'compact_rev'")?.execute([revision])?;
                *compacted_to = Some(*revision);
                Ok(Outcome::Compacted)
            }
        }
    })
}

/// Appends one row to the log at the next revision and records its event.
/// `create_rev` is `None` for a create: the key's creation revision is this row's own.
#[allow(clippy::too_many_arguments)] // One call site; a struct for it would only rename the arguments.
fn insert_row(
    tx: &rusqlite::Transaction<'_>,
    next_rev: &mut Revision,
    events: &mut Vec<Event>,
    key: &str,
    kind: i64,
    create_rev: Option<Revision>,
    prev: Option<&KeyValue>,
    value: &Bytes,
) -> rusqlite::Result<Revision> {
    let rev = *next_rev;
    let create_rev = create_rev.unwrap_or(rev);
    let prev_rev = prev.map_or(0, |p| p.mod_revision);
    let stored: &[u8] = if kind == KIND_DELETE { &[] } else { value };
    tx.prepare_cached("INSERT INTO log(rev, key, kind, create_rev, prev_rev, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?
        .execute(params![rev, key, kind, create_rev, prev_rev, stored])?;
    *next_rev += 1;
    events.push(make_event(kind, rev, key.to_owned(), create_rev, value.clone(), prev.cloned()));
    Ok(rev)
}

// === Watches ===

/// Fans committed events out to watchers.
///
/// The invariant that makes watches exact: `last` and the broadcast are only changed
/// together, under `state`. A new watch subscribes and reads `last` under the same lock,
/// so every event with a revision above `last` arrives on its receiver, and every event
/// at or below `last` is already committed and can be read from the log.
struct Hub {
    state: Mutex<HubState>,
    /// The newest compaction revision, for rejecting watches that start too early.
    compacted: AtomicI64,
    /// The newest published revision, readable without the lock.
    current: AtomicI64,
}

struct HubState {
    last: Revision,
    tx: broadcast::Sender<Arc<[Event]>>,
}

impl Hub {
    fn new(current: Revision, compacted: Revision) -> Hub {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Hub {
            state: Mutex::new(HubState { last: current, tx }),
            compacted: AtomicI64::new(compacted),
            current: AtomicI64::new(current),
        }
    }

    fn publish(&self, last: Revision, events: Vec<Event>) {
        let mut state = self.state.lock();
        state.last = last;
        self.current.store(last, Ordering::SeqCst);
        if !events.is_empty() {
            // No receivers is not an error: nobody is watching.
            let _ = state.tx.send(events.into());
        }
    }

    fn subscribe(&self) -> (broadcast::Receiver<Arc<[Event]>>, Revision) {
        let state = self.state.lock();
        (state.tx.subscribe(), state.last)
    }
}

/// Runs one watch: catch up from the log, then follow the hub.
/// If the watcher falls so far behind that the broadcast drops batches for it, it goes
/// back to the log from the last revision it delivered, so lagging loses nothing.
async fn run_watch(
    readers: Arc<ReadPool>,
    hub: Arc<Hub>,
    prefix: String,
    mut after: Revision,
    out: mpsc::Sender<Result<Event>>,
) {
    let end = prefix_end(&prefix);
    'resubscribe: loop {
        let (mut rx, upto) = hub.subscribe();
        // Catch up on (after, upto] from the log.
        while after < upto {
            let compacted = hub.compacted.load(Ordering::SeqCst);
            if after < compacted {
                let _ = out.send(Err(Error::Compacted { requested: after, compacted })).await;
                return;
            }
            let (start, stop, from) = (prefix.clone(), end.clone(), after);
            let chunk = readers.clone().run(move |c| read_events(c, &start, &stop, from, upto, CATCHUP_CHUNK)).await;
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = out.send(Err(e)).await;
                    return;
                }
            };
            // A compaction that ran during the read may have removed rows the read needed.
            let compacted = hub.compacted.load(Ordering::SeqCst);
            if after < compacted {
                let _ = out.send(Err(Error::Compacted { requested: after, compacted })).await;
                return;
            }
            let full = chunk.len() as i64 == CATCHUP_CHUNK;
            for ev in chunk {
                after = ev.revision;
                if out.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            if !full {
                after = upto;
            }
        }
        // Follow live batches.
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Ok(batch) => {
                        for ev in batch.iter() {
                            if ev.revision > after
                                && ev.kv.key.starts_with(&prefix)
                                && out.send(Ok(ev.clone())).await.is_err()
                            {
                                return;
                            }
                        }
                        if let Some(last) = batch.last() {
                            after = after.max(last.revision);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue 'resubscribe,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = out.closed() => return,
            }
        }
    }
}

// === The Store implementation ===

fn check_value(value: &Bytes) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge { size: value.len(), limit: MAX_VALUE_BYTES });
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        validate_key(key)?;
        check_value(&value)?;
        match self.write(WriteOp::Create { key: key.to_owned(), value }).await? {
            Outcome::Written(rev) => Ok(rev),
            _ => Err(Error::Backend("unexpected write outcome".into())),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        validate_key(key)?;
        let key = key.to_owned();
        self.read(move |c| read_current(c, &key)).await
    }

    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage> {
        validate_prefix(prefix)?;
        let end = prefix_end(prefix);
        let current = self.inner.hub.current.load(Ordering::SeqCst);
        let (revision, start) = match &options.continue_token {
            Some(token) => {
                if !token.start.starts_with(prefix) {
                    return Err(Error::InvalidContinue { reason: "token does not belong to this list".into() });
                }
                (token.revision, token.start.clone())
            }
            None => (options.revision.filter(|r| *r > 0).unwrap_or(current), prefix.to_owned()),
        };
        if revision > current {
            return Err(Error::FutureRevision { requested: revision, current });
        }
        let compacted = self.inner.hub.compacted.load(Ordering::SeqCst);
        if revision < compacted {
            return Err(Error::Compacted { requested: revision, compacted });
        }
        let limit = options.limit.max(0);
        let page = self
            .read(move |c| {
                // Read one extra item to learn whether another page follows.
                let mut items = read_range(c, &start, &end, revision, if limit > 0 { limit + 1 } else { 0 })?;
                let more = limit > 0 && items.len() as i64 > limit;
                let mut remaining = 0;
                let mut continue_token = None;
                if more {
                    items.truncate(limit as usize);
                    let next = items.last().map(|kv| format!("{}\0", kv.key)).unwrap_or_default();
                    remaining = count_range(c, &next, &end, revision)?;
                    continue_token = Some(ContinueToken { revision, start: next });
                }
                Ok(ListPage { items, revision, continue_token, remaining })
            })
            .await?;
        // A compaction may have run while we read; then the page may be missing history.
        let compacted = self.inner.hub.compacted.load(Ordering::SeqCst);
        if revision < compacted {
            return Err(Error::Compacted { requested: revision, compacted });
        }
        Ok(page)
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        validate_key(key)?;
        check_value(&value)?;
        match self.write(WriteOp::Update { key: key.to_owned(), value, expected }).await? {
            Outcome::Written(rev) => Ok(rev),
            _ => Err(Error::Backend("unexpected write outcome".into())),
        }
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)> {
        validate_key(key)?;
        match self.write(WriteOp::Delete { key: key.to_owned(), expected }).await? {
            Outcome::Deleted(kv, rev) => Ok((kv, rev)),
            _ => Err(Error::Backend("unexpected write outcome".into())),
        }
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        validate_prefix(prefix)?;
        let (start, end) = (prefix.to_owned(), prefix_end(prefix));
        let rev = self.inner.hub.current.load(Ordering::SeqCst);
        self.read(move |c| count_range(c, &start, &end, rev)).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(self.inner.hub.current.load(Ordering::SeqCst))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        // Like etcd, a watch from a revision not yet written simply waits for it.
        let after = after.max(0);
        let compacted = self.inner.hub.compacted.load(Ordering::SeqCst);
        if after < compacted {
            return Err(Error::Compacted { requested: after, compacted });
        }
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run_watch(self.inner.readers.clone(), self.inner.hub.clone(), prefix.to_owned(), after, tx));
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.write(WriteOp::Compact { revision }).await? {
            Outcome::Compacted => Ok(()),
            _ => Err(Error::Backend("unexpected write outcome".into())),
        }
    }
}
