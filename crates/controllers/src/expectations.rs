//! Upstream's `ControllerExpectations` with UID tracking of deletions: how many creations
//! and which deletions a controller has issued for one owner and not yet seen in its cache.
//!
//! While expectations are pending, the owner's sync must not create or delete again, since
//! its cache does not yet show the effect of the last round and would make it repeat it.
//! Informer handlers lower the counts as the pods show up or go away. A record older than
//! [`EXPECTATIONS_TIMEOUT`] counts as satisfied, so that a lost watch event delays a
//! controller rather than wedging it.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Upstream's `ExpectationsTimeout`.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Record {
    adds: i64,
    deleting: HashSet<String>,
    set_at: Instant,
}

/// Expectations keyed by owner (`namespace/name`).
#[derive(Default, Debug)]
pub struct Expectations {
    records: Mutex<HashMap<String, Record>>,
}

impl Expectations {
    /// Whether the owner's last round of writes has been observed (or has expired).
    pub fn satisfied(&self, owner: &str) -> bool {
        match self.records.lock().get(owner) {
            None => true,
            Some(r) => (r.adds <= 0 && r.deleting.is_empty()) || r.set_at.elapsed() > EXPECTATIONS_TIMEOUT,
        }
    }

    /// Records that `n` pods are about to be created for `owner`.
    pub fn expect_creations(&self, owner: &str, n: usize) {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.records
            .lock()
            .insert(owner.to_owned(), Record { adds: n, deleting: HashSet::new(), set_at: Instant::now() });
    }

    /// Records that the pods with these keys (`namespace/name`) are about to be deleted.
    pub fn expect_deletions(&self, owner: &str, pods: impl IntoIterator<Item = String>) {
        self.records
            .lock()
            .insert(owner.to_owned(), Record { adds: 0, deleting: pods.into_iter().collect(), set_at: Instant::now() });
    }

    /// One pod of `owner` appeared, or a creation failed and will not appear.
    pub fn creation_observed(&self, owner: &str) {
        if let Some(r) = self.records.lock().get_mut(owner) {
            r.adds -= 1;
        }
    }

    /// The pod `pod` of `owner` is going away, or its deletion failed. Each pod counts once,
    /// however many times its deletion is seen (deletionTimestamp, then the delete itself).
    pub fn deletion_observed(&self, owner: &str, pod: &str) {
        if let Some(r) = self.records.lock().get_mut(owner) {
            r.deleting.remove(pod);
        }
    }

    /// Forgets `owner`, when it is deleted.
    pub fn delete(&self, owner: &str) {
        self.records.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_are_counted_down() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"), "no record means nothing is pending");
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn each_deleted_pod_counts_once() {
        let e = Expectations::default();
        e.expect_deletions("ns/rs", ["ns/a".to_owned(), "ns/b".to_owned()]);
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/a");
        assert!(!e.satisfied("ns/rs"), "b is still expected to go");
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn old_records_expire() {
        let e = Expectations::default();
        e.expect_creations("ns/rs", 1);
        let Some(long_ago) = Instant::now().checked_sub(EXPECTATIONS_TIMEOUT + Duration::from_secs(1)) else {
            return; // The clock is too young to go back that far; nothing to test.
        };
        if let Some(r) = e.records.lock().get_mut("ns/rs") {
            r.set_at = long_ago;
        }
        assert!(e.satisfied("ns/rs"));
    }
}
