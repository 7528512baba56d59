//! Informers: one watch per resource type feeding an in-memory cache, with handlers that
//! hear every change, as client-go's shared informers.
//!
//! kube-runtime's `watcher` does the listing, watching, resuming and re-listing; this
//! module keeps the cache (indexed by namespace, because every controller here asks "the
//! pods of this namespace") and turns the watcher's events into add/update/delete changes
//! with the old object at hand, which the ReplicaSet controller's expectations need.
//!
//! Handlers run on the informer's task and must be cheap: they enqueue keys and count
//! expectations, nothing more. They are registered before the informer starts.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// What changed in the cache.
pub enum Change<'a, K> {
    Added(&'a Arc<K>),
    Updated { old: &'a Arc<K>, new: &'a Arc<K> },
    Deleted(&'a Arc<K>),
}

type Handler<K> = Arc<dyn Fn(&Change<'_, K>) + Send + Sync>;

/// The bounds every watched type meets.
pub trait Watched: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}
impl<K> Watched for K where K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static {}

struct Inner<K> {
    /// namespace ("" for cluster-scoped objects) → name → object.
    objects: RwLock<HashMap<String, HashMap<String, Arc<K>>>>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: watch::Sender<bool>,
}

/// A read handle on one resource type's cache; cheap to clone.
pub struct Cache<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Cache { inner: self.inner.clone() }
    }
}

impl<K: Watched> Cache<K> {
    fn new() -> Cache<K> {
        Cache {
            inner: Arc::new(Inner {
                objects: RwLock::new(HashMap::new()),
                handlers: RwLock::new(Vec::new()),
                synced: watch::Sender::new(false),
            }),
        }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.inner.objects.read().get(namespace).and_then(|m| m.get(name)).cloned()
    }

    /// Every object in `namespace`.
    pub fn list_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.inner.objects.read().get(namespace).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.inner.objects.read().values().flat_map(|m| m.values().cloned()).collect()
    }

    pub fn len(&self) -> usize {
        self.inner.objects.read().values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a handler for every later change. Register before the informer starts,
    /// or the handler misses the initial list.
    pub fn on_change(&self, handler: impl Fn(&Change<'_, K>) + Send + Sync + 'static) {
        self.inner.handlers.write().push(Arc::new(handler));
    }

    pub fn is_synced(&self) -> bool {
        *self.inner.synced.borrow()
    }

    /// Waits until the first complete list has been loaded.
    pub async fn wait_synced(&self) {
        let mut rx = self.inner.synced.subscribe();
        // The sender lives as long as `self`, so `wait_for` can only fail if it is gone.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    fn dispatch(&self, change: &Change<'_, K>) {
        let handlers = self.inner.handlers.read().clone();
        for h in handlers {
            h(change);
        }
    }

    fn apply(&self, obj: K) {
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let new = Arc::new(obj);
        let old = self.inner.objects.write().entry(ns).or_default().insert(name, new.clone());
        match old {
            None => self.dispatch(&Change::Added(&new)),
            Some(old) if old.resource_version() == new.resource_version() => {}
            Some(old) => self.dispatch(&Change::Updated { old: &old, new: &new }),
        }
    }

    fn delete(&self, obj: K) {
        let ns = obj.namespace().unwrap_or_default();
        let name = obj.name_any();
        let removed = {
            let mut objects = self.inner.objects.write();
            let removed = objects.get_mut(&ns).and_then(|m| m.remove(&name));
            if objects.get(&ns).is_some_and(HashMap::is_empty) {
                objects.remove(&ns);
            }
            removed
        };
        if removed.is_some() {
            // The watch event carries the object's last state, which is what handlers want.
            self.dispatch(&Change::Deleted(&Arc::new(obj)));
        }
    }

    /// Replaces the whole cache with a fresh list, reporting what changed.
    fn replace(&self, listed: Vec<K>) {
        let mut fresh: HashMap<String, HashMap<String, Arc<K>>> = HashMap::new();
        for obj in listed {
            fresh.entry(obj.namespace().unwrap_or_default()).or_default().insert(obj.name_any(), Arc::new(obj));
        }
        let old = std::mem::replace(&mut *self.inner.objects.write(), fresh.clone());
        for (ns, objs) in &fresh {
            for (name, new) in objs {
                match old.get(ns).and_then(|m| m.get(name)) {
                    None => self.dispatch(&Change::Added(new)),
                    Some(o) if o.resource_version() == new.resource_version() => {}
                    Some(o) => self.dispatch(&Change::Updated { old: o, new }),
                }
            }
        }
        for (ns, objs) in &old {
            for (name, gone) in objs {
                if fresh.get(ns).and_then(|m| m.get(name)).is_none() {
                    self.dispatch(&Change::Deleted(gone));
                }
            }
        }
        self.inner.synced.send_replace(true);
    }

    /// Runs the watch until the future is dropped.
    async fn run(self, api: Api<K>) {
        let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
        let mut buffer: Vec<K> = Vec::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => buffer.clear(),
                Ok(watcher::Event::InitApply(obj)) => buffer.push(obj),
                Ok(watcher::Event::InitDone) => self.replace(std::mem::take(&mut buffer)),
                Ok(watcher::Event::Apply(obj)) => self.apply(obj),
                Ok(watcher::Event::Delete(obj)) => self.delete(obj),
                Err(e) => tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying"),
            }
        }
    }
}

/// One informer per resource type, shared by every controller of one [`crate::run`].
#[derive(Clone)]
pub struct Informers {
    client: Client,
    caches: Arc<Mutex<Vec<Entry>>>,
}

/// One cache: its type key, the `Cache<K>` behind `Any`, and how to start its watch.
type Entry = (String, Box<dyn Any + Send + Sync>, Starter);

type Starter = Arc<dyn Fn(Client) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

impl Informers {
    pub fn new(client: Client) -> Informers {
        Informers { client, caches: Arc::new(Mutex::new(Vec::new())) }
    }

    /// The cache of `K`, created on first use.
    pub fn cache<K: Watched>(&self) -> Cache<K> {
        let key = format!("{}/{}", K::api_version(&()), K::kind(&()));
        let mut caches = self.caches.lock();
        if let Some((_, any, _)) = caches.iter().find(|(k, _, _)| *k == key)
            && let Some(cache) = any.downcast_ref::<Cache<K>>()
        {
            return cache.clone();
        }
        let cache = Cache::<K>::new();
        let for_start = cache.clone();
        let starter: Starter = Arc::new(move |client: Client| {
            let cache = for_start.clone();
            Box::pin(cache.run(Api::<K>::all(client)))
        });
        caches.push((key, Box::new(cache.clone()), starter));
        cache
    }

    /// The futures that run every informer asked for so far.
    pub fn start(&self) -> Vec<futures::future::BoxFuture<'static, ()>> {
        self.caches.lock().iter().map(|(_, _, start)| start(self.client.clone())).collect()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn cm(name: &str, rv: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: Some(rv.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn changes_carry_old_and_new_and_relists_report_deletions() {
        let cache = Cache::<ConfigMap>::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        cache.on_change(move |c| {
            s.lock().push(match c {
                Change::Added(o) => format!("add {}", o.name_any()),
                Change::Updated { old, new } => {
                    format!(
                        "update {} {}->{}",
                        new.name_any(),
                        old.resource_version().unwrap_or_default(),
                        new.resource_version().unwrap_or_default()
                    )
                }
                Change::Deleted(o) => format!("delete {}", o.name_any()),
            })
        });
        cache.apply(cm("a", "1"));
        cache.apply(cm("a", "1"));
        cache.apply(cm("a", "2"));
        cache.apply(cm("b", "3"));
        cache.replace(vec![cm("b", "3"), cm("c", "4")]);
        cache.delete(cm("c", "5"));
        assert_eq!(*seen.lock(), vec!["add a", "update a 1->2", "add b", "add c", "delete a", "delete c"]);
        assert!(cache.is_synced());
        assert_eq!(cache.list_namespace("ns").len(), 1);
    }
}
