//! The embedded SQLite backend. (Being written.)

/// A [`crate::Store`] in one SQLite file.
pub struct SqliteStore;
