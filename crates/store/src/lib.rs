//! The cluster state store: one keyspace with etcd's semantics.
//!
//! Every write gets a revision from one global, strictly increasing counter.
//! The API server turns that revision into `resourceVersion`, so the store must
//! never hand out the same revision twice, nor a smaller one after a restart.
//!
//! Two backends implement [`Store`]:
//! - [`sqlite::SqliteStore`], the embedded default: one WAL-mode SQLite file,
//!   with group commit so that concurrent writers share one fsync;
//! - [`etcd::EtcdStore`], for clusters that outgrow one machine.
//!
//! Both pass the same conformance suite (`tests/conformance.rs`).
//! Values are opaque bytes: this crate knows nothing about Kubernetes objects.

mod continue_token;
mod error;
pub mod etcd;
mod key;
pub mod sqlite;

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

pub use continue_token::ContinueToken;
pub use error::{Error, Result};
pub use key::{prefix_end, validate_key, validate_prefix};

/// etcd's default request size limit (`--max-request-bytes`), 1.5 MiB.
/// A value larger than this is refused with [`Error::ValueTooLarge`], whatever the backend,
/// so that a cluster can move between backends without objects becoming unwritable.
pub const MAX_VALUE_BYTES: usize = 1536 * 1024;

/// A revision of the store. Revision 0 means "none yet"; the first write gets revision 1
/// (or higher: etcd starts its own counter at 1 and may already have used some).
pub type Revision = i64;

/// One key at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// The revision at which this key was last created.
    pub create_revision: Revision,
    /// The revision of the write that produced this value.
    pub mod_revision: Revision,
}

/// What changed at one revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created (it did not exist just before).
    Create,
    /// The key existed and got a new value.
    Update,
    /// The key was deleted; `Event::kv` holds the last value it had.
    Delete,
}

/// One change, delivered by [`Store::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The revision of the change.
    pub revision: Revision,
    /// For create and update, the new value; for delete, the value that was deleted.
    /// In every case `kv.key` is the key that changed and `kv.mod_revision` is `revision`.
    pub kv: KeyValue,
    /// The value before the change, for update and delete.
    /// The API server needs it to tell a watcher with a selector that an object left its view.
    pub prev: Option<KeyValue>,
}

/// A page of a list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    pub items: Vec<KeyValue>,
    /// The revision the whole list (every page of it) is consistent at.
    pub revision: Revision,
    /// Present when more keys remain; pass it back in [`ListOptions::continue_token`].
    pub continue_token: Option<ContinueToken>,
    /// How many keys remain after this page, when more remain.
    pub remaining: i64,
}

/// How to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many items; 0 means no limit.
    pub limit: i64,
    /// Read at this revision instead of the newest. Ignored when a continue token is given,
    /// because the token carries the revision of the first page.
    pub revision: Option<Revision>,
    /// Resume a list from where an earlier page stopped.
    pub continue_token: Option<ContinueToken>,
}

/// A watch: events in revision order. It ends with an `Err` when the backend cannot go on
/// (for example [`Error::Compacted`]); the caller resumes with a new watch from the last revision it saw.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// The storage interface the API server is written against.
///
/// Its semantics follow Kubernetes' `storage.Interface` and etcd v3:
/// every successful mutation returns the revision it was committed at,
/// and a mutation is acknowledged only once it is durable.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates `key`. Fails with [`Error::AlreadyExists`] if it exists.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision>;

    /// Reads the newest value of `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Lists the keys under `prefix` in key order, all at one revision.
    async fn list(&self, prefix: &str, options: ListOptions) -> Result<ListPage>;

    /// Replaces the value of `key` if its current `mod_revision` is `expected`.
    /// Fails with [`Error::Conflict`] (carrying the current value) if it is not,
    /// and with [`Error::NotFound`] if the key does not exist.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision>;

    /// Deletes `key`, if `expected` is given only when its `mod_revision` matches.
    /// Returns the deleted value and the revision of the deletion.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)>;

    /// Counts the keys under `prefix` at the newest revision.
    async fn count(&self, prefix: &str) -> Result<i64>;

    /// The newest committed revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Every change under `prefix` with a revision greater than `after`, in order,
    /// and then every later change as it commits. `after = 0` replays all retained history;
    /// to watch only new changes, pass [`Store::current_revision`]. A revision not written
    /// yet is allowed: the watch waits for it.
    /// Fails with [`Error::Compacted`] if changes after `after` have been compacted away.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// Forgets the history older than `revision`: superseded values and deleted keys.
    /// Reads and watches that need that history then fail with [`Error::Compacted`].
    async fn compact(&self, revision: Revision) -> Result<()>;
}
