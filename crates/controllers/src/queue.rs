//! A work queue of keys with per-item exponential retry, as client-go's rate-limited
//! work queue.
//!
//! Protocol, the same as client-go's: an item added while it waits is not queued twice
//! (the `dirty` set); an item added while a worker processes it is queued again only when
//! the worker calls [`WorkQueue::done`] (the `processing` set), so one key is never synced
//! by two workers at once. Failures grow the item's retry delay until [`WorkQueue::forget`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The first retry delay after a failure; it doubles with each further failure.
const BASE_DELAY: Duration = Duration::from_millis(5);
/// Upstream caps the per-item delay at 1000 s; a minute keeps a wedged item from being
/// forgotten for a quarter of an hour in a small cluster.
const MAX_DELAY: Duration = Duration::from_secs(60);

struct State<T> {
    queue: VecDeque<T>,
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
}

/// A cloneable handle to one queue.
pub struct WorkQueue<T> {
    state: Arc<Mutex<State<T>>>,
    notify: Arc<Notify>,
}

impl<T> Clone for WorkQueue<T> {
    fn clone(&self) -> Self {
        WorkQueue { state: self.state.clone(), notify: self.notify.clone() }
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<T> {
    fn default() -> Self {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
            })),
            notify: Arc::new(Notify::new()),
        }
    }
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    /// Queues `item` unless it is already waiting.
    pub fn add(&self, item: T) {
        let mut st = self.state.lock();
        if !st.dirty.insert(item.clone()) {
            return;
        }
        if st.processing.contains(&item) {
            // `done` will queue it again once the current sync has finished.
            return;
        }
        st.queue.push_back(item);
        drop(st);
        self.notify.notify_one();
    }

    /// Queues `item` after `delay`.
    pub fn add_after(&self, item: T, delay: Duration) {
        if delay.is_zero() {
            self.add(item);
            return;
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(item);
        });
    }

    /// Queues `item` after its next retry delay, which grows with each call until `forget`.
    pub fn add_rate_limited(&self, item: T) {
        let delay = {
            let mut st = self.state.lock();
            let n = st.failures.entry(item.clone()).or_insert(0);
            let delay = retry_delay(*n);
            *n = n.saturating_add(1);
            delay
        };
        self.add_after(item, delay);
    }

    /// Resets the retry delay of `item`, after a successful sync.
    pub fn forget(&self, item: &T) {
        self.state.lock().failures.remove(item);
    }

    /// How many times `item` has failed since it was last forgotten.
    pub fn failures(&self, item: &T) -> u32 {
        self.state.lock().failures.get(item).copied().unwrap_or(0)
    }

    /// Waits for the next item and marks it as being processed.
    pub async fn get(&self) -> T {
        loop {
            let notified = self.notify.notified();
            {
                let mut st = self.state.lock();
                if let Some(item) = st.queue.pop_front() {
                    st.dirty.remove(&item);
                    st.processing.insert(item.clone());
                    // Another worker may be waiting for the items behind this one.
                    if !st.queue.is_empty() {
                        self.notify.notify_one();
                    }
                    return item;
                }
            }
            notified.await;
        }
    }

    /// Marks `item` as processed; if it was added meanwhile, it is queued again.
    pub fn done(&self, item: &T) {
        let mut st = self.state.lock();
        st.processing.remove(item);
        if st.dirty.contains(item) {
            st.queue.push_back(item.clone());
            drop(st);
            self.notify.notify_one();
        }
    }

    /// How many items wait to be processed.
    pub fn len(&self) -> usize {
        self.state.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The delay before the retry that follows `failures` earlier failures.
fn retry_delay(failures: u32) -> Duration {
    let factor = 2u32.checked_pow(failures.min(31)).unwrap_or(u32::MAX);
    BASE_DELAY.checked_mul(factor).map_or(MAX_DELAY, |d| d.min(MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_item_waiting_is_not_queued_twice() {
        let q = WorkQueue::default();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await, "a");
        assert_eq!(q.get().await, "b");
    }

    #[tokio::test]
    async fn an_item_added_while_processing_comes_back_after_done() {
        let q = WorkQueue::default();
        q.add("a");
        let item = q.get().await;
        q.add("a");
        assert!(q.is_empty(), "a key being synced must not be handed to a second worker");
        q.done(&item);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await, "a");
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        assert_eq!(retry_delay(0), Duration::from_millis(5));
        assert_eq!(retry_delay(1), Duration::from_millis(10));
        assert_eq!(retry_delay(4), Duration::from_millis(80));
        assert_eq!(retry_delay(40), MAX_DELAY);
    }

    #[tokio::test]
    async fn rate_limited_items_arrive_later_and_forget_resets() {
        let q = WorkQueue::default();
        q.add_rate_limited("a");
        q.add_rate_limited("a");
        assert_eq!(q.failures(&"a"), 2);
        assert_eq!(tokio::time::timeout(Duration::from_secs(1), q.get()).await.ok(), Some("a"));
        q.forget(&"a");
        assert_eq!(q.failures(&"a"), 0);
    }
}
