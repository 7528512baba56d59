//! The one error type of the store, shared by every backend, so that the API server maps
//! store failures to HTTP in one place without knowing which backend produced them.

use crate::{KeyValue, Revision};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `create` found the key already there.
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },

    /// The key does not exist.
    #[error("key {key:?} not found")]
    NotFound { key: String },

    /// A precondition on the key's revision did not hold. `current` is what is stored now,
    /// so that a caller can retry from fresh state without another read.
    #[error("key {key:?} was modified: expected revision {expected}, found {}", current.as_ref().map_or(0, |kv| kv.mod_revision))]
    Conflict { key: String, expected: Revision, current: Option<Box<KeyValue>> },

    /// The requested revision is older than the oldest one kept.
    /// The API server answers 410 Gone.
    #[error("revision {requested} has been compacted; the oldest available is {compacted}")]
    Compacted { requested: Revision, compacted: Revision },

    /// The requested revision has not been written yet.
    #[error("revision {requested} is in the future; the newest is {current}")]
    FutureRevision { requested: Revision, current: Revision },

    /// The value is larger than [`crate::MAX_VALUE_BYTES`].
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge { size: usize, limit: usize },

    /// The key or prefix is not a valid store key.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// A continue token could not be decoded.
    #[error("invalid continue token: {reason}")]
    InvalidContinue { reason: String },

    /// Another process holds the data directory.
    #[error("data directory {path} is in use by another process")]
    Locked { path: String },

    /// The database file is not a valid store.
    #[error("database {path} is corrupt or not an rkube store: {detail}")]
    Corrupt { path: String, detail: String },

    /// The backend could not be reached or failed in a way that may be temporary.
    /// Whether a mutation that failed this way was applied is unknown.
    #[error("store unavailable: {0}")]
    Unavailable(String),

    /// Any other backend failure.
    #[error("store backend error: {0}")]
    Backend(String),
}

impl Error {
    /// True if the operation may succeed when retried as it is.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}
