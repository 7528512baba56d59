//! The watch cache: every object under `/registry/`, kept in memory by one store watch,
//! with a window of recent events. Lists and watches are served from it.
//!
//! The reflector is an explicit loop of two states: *listing* (read the whole registry at
//! one revision and replace the cache) and *watching* (apply events after that revision).
//! Any watch failure goes back to listing; watchers of the cache are then told to start
//! again, as upstream's cacher does when it re-lists.
//!
//! Reads are consistent: a list first asks the store for its current revision and waits
//! until the cache has applied it (see [`WatchCache::wait_fresh`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::RwLock;
use rkube_store::{EventKind, ListOptions, Revision, Store};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::meta;

/// The root of every API object's key.
pub const REGISTRY: &str = "/registry/";
/// The cache watches the whole keyspace, not just the registry, so that its revision
/// follows the store's global revision even when the newest write is not an API object
/// (a service IP allocation, say); consistent reads wait for that revision.
const WATCH_ROOT: &str = "/";
/// How many recent events a watch can resume from, by default.
pub const DEFAULT_HISTORY: usize = 50_000;
const BROADCAST_CAPACITY: usize = 16_384;
const LIST_PAGE: i64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object, with the object as it is after the change (for a deletion, as
/// it was last) and, for modifications and deletions, as it was before.
#[derive(Debug)]
pub struct CacheEvent {
    pub rev: Revision,
    /// The resource's store prefix, e.g. `/registry/core/pods/`.
    pub resource_prefix: String,
    pub key: String,
    pub kind: EventType,
    pub object: Arc<Value>,
    pub prev: Option<Arc<Value>>,
    /// `object` as JSON, encoded once by the first watcher that needs it and shared by all
    /// others, so that fanning one event out to many watchers costs one encoding.
    json: std::sync::OnceLock<Bytes>,
}

impl CacheEvent {
    pub fn json(&self) -> &Bytes {
        self.json.get_or_init(|| to_json_bytes(&self.object))
    }
}

/// What a watcher receives from the cache.
pub type Broadcast = broadcast::Receiver<Arc<CacheEvent>>;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("too old resource version: {requested} ({oldest})")]
    TooOld { requested: Revision, oldest: Revision },
    #[error("the watch cache is not ready")]
    NotReady,
    #[error("Too large resource version: {requested}, current: {current}")]
    TooNew { requested: Revision, current: Revision },
}

struct State {
    /// The newest revision applied.
    rev: Revision,
    /// Every event with a revision above this one is in `history`.
    oldest: Revision,
    ready: bool,
    objects: HashMap<String, BTreeMap<String, Arc<Value>>>,
    history: VecDeque<Arc<CacheEvent>>,
}

impl State {
    /// The objects of one resource under `list_prefix` (all of it, or one namespace), in key order.
    fn range(&self, resource_prefix: &str, list_prefix: &str) -> Vec<Arc<Value>> {
        self.objects
            .get(resource_prefix)
            .map(|bucket| {
                bucket
                    .range(list_prefix.to_owned()..)
                    .take_while(|(k, _)| k.starts_with(list_prefix))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub struct WatchCache {
    state: RwLock<State>,
    /// How many recent events are kept for watches that resume from a resourceVersion.
    history: usize,
    tx: broadcast::Sender<Arc<CacheEvent>>,
    progress: watch::Sender<Revision>,
    /// Bumped whenever the cache re-lists: watchers holding an older epoch must restart.
    epoch: watch::Sender<u64>,
}

/// `/registry/core/pods/default/a` → `/registry/core/pods/`.
pub fn resource_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(REGISTRY)?;
    let mut end = REGISTRY.len();
    for (i, seg) in rest.split('/').take(2).enumerate() {
        if seg.is_empty() {
            return None;
        }
        end += seg.len() + 1;
        if i == 1 && end > key.len() {
            return None;
        }
    }
    key.get(..end)
}

fn decode(kv: &rkube_store::KeyValue) -> Option<Arc<Value>> {
    match serde_json::from_slice::<Value>(&kv.value) {
        Ok(mut v) => {
            meta::set_resource_version(&mut v, kv.mod_revision);
            Some(Arc::new(v))
        }
        Err(e) => {
            // Only the API server writes the registry, so this is damage, not user input.
            tracing::error!(key = %kv.key, error = %e, "undecodable object in the store; skipping it");
            None
        }
    }
}

impl WatchCache {
    pub fn new() -> Arc<WatchCache> {
        WatchCache::with_history(DEFAULT_HISTORY)
    }

    /// A cache that keeps the `history` most recent events (at least one). Tests use a small
    /// window to reach the "too old resource version" answer without writing 50,000 events.
    pub fn with_history(history: usize) -> Arc<WatchCache> {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Arc::new(WatchCache {
            history: history.max(1),
            state: RwLock::new(State {
                rev: 0,
                oldest: 0,
                ready: false,
                objects: HashMap::new(),
                history: VecDeque::new(),
            }),
            tx,
            progress: watch::channel(0).0,
            epoch: watch::channel(0).0,
        })
    }

    /// Runs the reflector until the task is dropped.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>) {
        loop {
            let rev = match self.relist(&*store).await {
                Ok(rev) => rev,
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache: list failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut stream = match store.watch(WATCH_ROOT, rev).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache: watch failed; re-listing");
                    continue;
                }
            };
            while let Some(item) = stream.next().await {
                match item {
                    Ok(ev) => self.apply(ev),
                    Err(e) => {
                        tracing::warn!(error = %e, "watch cache: watch ended; re-listing");
                        break;
                    }
                }
            }
        }
    }

    async fn relist(&self, store: &dyn Store) -> rkube_store::Result<Revision> {
        let mut objects: HashMap<String, BTreeMap<String, Arc<Value>>> = HashMap::new();
        let mut options = ListOptions { limit: LIST_PAGE, ..Default::default() };
        let rev = loop {
            let page = store.list(WATCH_ROOT, options.clone()).await?;
            for kv in &page.items {
                let (Some(prefix), Some(obj)) = (resource_prefix(&kv.key), decode(kv)) else { continue };
                objects.entry(prefix.to_owned()).or_default().insert(kv.key.clone(), obj);
            }
            match page.continue_token {
                Some(token) => options.continue_token = Some(token),
                None => break page.revision,
            }
        };
        {
            let mut st = self.state.write();
            st.objects = objects;
            st.history.clear();
            st.rev = rev;
            st.oldest = rev;
            st.ready = true;
        }
        self.epoch.send_modify(|e| *e += 1);
        self.progress.send_replace(rev);
        Ok(rev)
    }

    fn apply(&self, ev: rkube_store::Event) {
        let Some(prefix) = resource_prefix(&ev.kv.key).map(str::to_owned) else {
            self.advance(ev.revision);
            return;
        };
        let Some(object) = decode(&ev.kv) else {
            self.advance(ev.revision);
            return;
        };
        let event = {
            let mut st = self.state.write();
            let bucket = st.objects.entry(prefix.clone()).or_default();
            let prev = match ev.kind {
                EventKind::Delete => bucket.remove(&ev.kv.key),
                _ => bucket.insert(ev.kv.key.clone(), object.clone()),
            };
            let kind = match ev.kind {
                EventKind::Create => EventType::Added,
                EventKind::Update => EventType::Modified,
                EventKind::Delete => EventType::Deleted,
            };
            // A deletion reports the object as it was, but at the deletion's revision, as upstream does.
            let object = if kind == EventType::Deleted {
                let mut last = prev.as_deref().cloned().unwrap_or_else(|| (*object).clone());
                meta::set_resource_version(&mut last, ev.revision);
                Arc::new(last)
            } else {
                object
            };
            let event = Arc::new(CacheEvent {
                rev: ev.revision,
                resource_prefix: prefix,
                key: ev.kv.key,
                kind,
                object,
                prev,
                json: std::sync::OnceLock::new(),
            });
            st.history.push_back(event.clone());
            if st.history.len() > self.history
                && let Some(dropped) = st.history.pop_front()
            {
                st.oldest = dropped.rev;
            }
            st.rev = ev.revision;
            // Sent under the lock, so a subscriber that reads history under the lock never
            // misses or repeats an event.
            let _ = self.tx.send(event.clone());
            event
        };
        self.progress.send_replace(event.rev);
    }

    fn advance(&self, rev: Revision) {
        self.state.write().rev = rev;
        self.progress.send_replace(rev);
    }

    /// Waits until the cache has applied revision `rev`, at most `timeout`.
    pub async fn wait_fresh(&self, rev: Revision, timeout: Duration) -> Result<(), CacheError> {
        let mut rx = self.progress.subscribe();
        let wait = async {
            loop {
                if *rx.borrow_and_update() >= rev && self.state.read().ready {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| CacheError::NotReady)
    }

    /// The newest revision applied.
    pub fn revision(&self) -> Revision {
        self.state.read().rev
    }

    /// The objects under `list_prefix` (a resource, or one namespace of it), in key order,
    /// and the revision they are current at.
    pub fn list(&self, resource_prefix: &str, list_prefix: &str) -> (Revision, Vec<Arc<Value>>) {
        let st = self.state.read();
        let items = st.range(resource_prefix, list_prefix);
        (st.rev, items)
    }

    /// Subscribes to changes after `from`, returning the backlog of events already applied
    /// and a receiver for the rest, plus the cache epoch to detect a re-list.
    /// The returned revision is where the backlog ends: live events above it come on the receiver.
    #[allow(clippy::type_complexity)] // A one-off tuple; a struct would only name its parts.
    pub fn subscribe(
        &self,
        resource_prefix: &str,
        from: Revision,
    ) -> Result<(Vec<Arc<CacheEvent>>, Revision, Broadcast, watch::Receiver<u64>), CacheError> {
        let st = self.state.read();
        if !st.ready {
            return Err(CacheError::NotReady);
        }
        if from < st.oldest {
            return Err(CacheError::TooOld { requested: from, oldest: st.oldest });
        }
        if from > st.rev {
            return Err(CacheError::TooNew { requested: from, current: st.rev });
        }
        let rx = self.tx.subscribe();
        let backlog =
            st.history.iter().filter(|e| e.rev > from && e.resource_prefix == resource_prefix).cloned().collect();
        Ok((backlog, st.rev, rx, self.epoch.subscribe()))
    }

    /// Like [`WatchCache::subscribe`] from the newest revision, also returning the current objects.
    #[allow(clippy::type_complexity)] // A one-off tuple; a struct would only name its parts.
    pub fn subscribe_with_state(
        &self,
        resource_prefix: &str,
        list_prefix: &str,
    ) -> Result<(Revision, Vec<Arc<Value>>, Broadcast, watch::Receiver<u64>), CacheError> {
        let st = self.state.read();
        if !st.ready {
            return Err(CacheError::NotReady);
        }
        let rx = self.tx.subscribe();
        let items = st.range(resource_prefix, list_prefix);
        Ok((st.rev, items, rx, self.epoch.subscribe()))
    }
}

/// Serializes an object once for many watchers.
pub fn to_json_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(resource_prefix("/registry/core/pods/default/a"), Some("/registry/core/pods/"));
        assert_eq!(resource_prefix("/registry/core/nodes/n1"), Some("/registry/core/nodes/"));
        assert_eq!(resource_prefix("/registry/core"), None);
        assert_eq!(resource_prefix("/other/x/y/z"), None);
    }
}
