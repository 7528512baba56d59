//! The EndpointSlice controller: keeps the EndpointSlices of every Service with a selector
//! in step with the pods it selects, as upstream's `pkg/controller/endpointslice`.
//!
//! A sync reads the Service, its namespace's pods and its managed slices from the caches,
//! lets [`plan::reconcile`] decide, and performs the creations, updates (PUTs carrying the
//! cached resourceVersion) and deletions (UID precondition). Slices are created with
//! `generateName`, so a cache that has not yet seen the last sync's writes would make the
//! next sync create them twice; the [`SliceTracker`] holds a sync back until it has.

pub mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;

use crate::informer::{Cache, Change};
use crate::meta::Key;
use crate::queue::WorkQueue;
use crate::{Context, Error, is_not_found, run_workers};

/// Upstream's `ConcurrentServiceEndpointSyncs` default.
const WORKERS: usize = 5;
/// How long to wait before looking again when the cache lags this controller's writes;
/// the slice's watch event normally requeues the Service sooner.
const STALE_RETRY: Duration = Duration::from_millis(500);
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What one controller last wrote per owner: slice name → the resourceVersion the write
/// returned, or `None` for a deletion. As upstream's `endpointSliceTracker`, it tells a
/// sync whether the cache already shows those writes.
#[derive(Default)]
pub struct SliceTracker {
    written: Mutex<HashMap<Key, HashMap<String, Option<u64>>>>,
}

impl SliceTracker {
    /// Whether the cache holds every write made for `owner`; forgets the writes it shows.
    pub fn cache_is_current(&self, owner: &Key, cached: &[Arc<EndpointSlice>]) -> bool {
        let mut written = self.written.lock();
        let Some(entries) = written.get_mut(owner) else { return true };
        let by_name: HashMap<String, &Arc<EndpointSlice>> = cached.iter().map(|s| (s.name_any(), s)).collect();
        entries.retain(|name, expected| match (expected, by_name.get(name)) {
            (None, None) => false,
            (None, Some(_)) => true,
            (Some(_), None) => true,
            (Some(rv), Some(s)) => parse_rv(s).is_none_or(|seen| seen < *rv),
        });
        let current = entries.is_empty();
        if current {
            written.remove(owner);
        }
        current
    }

    fn record(&self, owner: &Key, name: String, rv: Option<u64>) {
        self.written.lock().entry(owner.clone()).or_default().insert(name, rv);
    }

    pub fn forget(&self, owner: &Key) {
        self.written.lock().remove(owner);
    }
}

fn parse_rv(s: &EndpointSlice) -> Option<u64> {
    s.metadata.resource_version.as_deref().and_then(|rv| rv.parse().ok())
}

/// Performs a plan's writes concurrently and records them in `tracker`.
pub async fn apply_plan(
    client: &kube::Client,
    tracker: &SliceTracker,
    owner: &Key,
    plan: plan::Plan,
) -> Result<(), Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &owner.namespace);
    let pp = PostParams::default();
    let creates = plan.create.iter().map(|s| async {
        let created = api.create(&pp, s).await?;
        tracker.record(owner, created.name_any(), parse_rv(&created));
        Ok::<(), Error>(())
    });
    let updates = plan.update.iter().map(|s| async {
        let updated = api.replace(&s.name_any(), &pp, s).await?;
        tracker.record(owner, updated.name_any(), parse_rv(&updated));
        Ok::<(), Error>(())
    });
    let deletes = plan.delete.iter().map(|s| async {
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: s.metadata.uid.clone(), resource_version: None }),
            ..Default::default()
        };
        match api.delete(&s.name_any(), &dp).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::from(e)),
        }
        tracker.record(owner, s.name_any(), None);
        Ok::<(), Error>(())
    });
    // Creations first: a pod moving between port sets is then never absent from every slice.
    try_join_all(creates).await?;
    try_join_all(updates).await?;
    try_join_all(deletes).await?;
    Ok(())
}

/// The shared state of one EndpointSlice controller.
pub struct EndpointSliceController {
    client: kube::Client,
    services: Cache<Service>,
    pods: Cache<Pod>,
    slices: Cache<EndpointSlice>,
    nodes: Cache<Node>,
    queue: WorkQueue<Key>,
    tracker: SliceTracker,
}

/// Builds the controller, registering its handlers on the shared informers, and returns
/// the future that runs its workers.
pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let c = Arc::new(EndpointSliceController {
        client: ctx.client.clone(),
        services: ctx.informers.cache(),
        pods: ctx.informers.cache(),
        slices: ctx.informers.cache(),
        nodes: ctx.informers.cache(),
        queue: WorkQueue::default(),
        tracker: SliceTracker::default(),
    });
    c.register_handlers();
    Box::pin(async move {
        c.services.wait_synced().await;
        c.pods.wait_synced().await;
        c.slices.wait_synced().await;
        c.nodes.wait_synced().await;
        let queue = c.queue.clone();
        run_workers("endpointslice", queue, WORKERS, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    })
}

/// Whether this controller manages the slice.
fn managed(slice: &EndpointSlice) -> bool {
    crate::meta::labels(&slice.metadata).get(plan::LABEL_MANAGED_BY).map(String::as_str) == Some(plan::CONTROLLER_NAME)
}

fn service_name(slice: &EndpointSlice) -> Option<&String> {
    crate::meta::labels(&slice.metadata).get(plan::LABEL_SERVICE_NAME)
}

impl EndpointSliceController {
    fn register_handlers(self: &Arc<Self>) {
        let queue = self.queue.clone();
        self.services.on_change(move |change| match change {
            Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s) => queue.add(Key::of(s.as_ref())),
        });
        let this = Arc::downgrade(self);
        self.pods.on_change(move |change| {
            let Some(c) = this.upgrade() else { return };
            match change {
                Change::Added(p) | Change::Deleted(p) => c.enqueue_selecting(p, None),
                Change::Updated { old, new } => c.enqueue_selecting(new, Some(old)),
            }
        });
        let queue = self.queue.clone();
        self.slices.on_change(move |change| {
            let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
            if managed(s)
                && let Some(svc) = service_name(s)
            {
                queue.add(Key::new(s.namespace().unwrap_or_default(), svc.clone()));
            }
        });
        // A node's zone label feeds every endpoint on it; zones rarely change, so a
        // change resyncs every Service, as upstream's node handler does when topology
        // hints are on.
        let this = Arc::downgrade(self);
        self.nodes.on_change(move |change| {
            let Some(c) = this.upgrade() else { return };
            if let Change::Updated { old, new } = change
                && old.labels().get(ZONE_LABEL) != new.labels().get(ZONE_LABEL)
            {
                for s in c.services.list() {
                    c.queue.add(Key::of(s.as_ref()));
                }
            }
        });
    }

    /// Enqueues every Service in the pod's namespace whose selector matches the pod now
    /// or matched it before the change.
    fn enqueue_selecting(&self, pod: &Pod, old: Option<&Pod>) {
        let ns = pod.namespace().unwrap_or_default();
        for svc in self.services.list_namespace(&ns) {
            let Some(sel) = plan::selector(&svc) else { continue };
            if plan::selects(sel, pod) || old.is_some_and(|o| plan::selects(sel, o)) {
                self.queue.add(Key::of(svc.as_ref()));
            }
        }
    }

    fn zones(&self) -> HashMap<String, String> {
        self.nodes.list().iter().filter_map(|n| n.labels().get(ZONE_LABEL).map(|z| (n.name_any(), z.clone()))).collect()
    }

    /// One sync of one Service. `Ok(Some(d))` asks to look again after `d`.
    async fn sync(&self, key: &Key) -> Result<Option<Duration>, Error> {
        let Some(svc) = self.services.get(&key.namespace, &key.name) else {
            // The garbage collector deletes the slices through their owner references.
            self.tracker.forget(key);
            return Ok(None);
        };
        if svc.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let slices: Vec<Arc<EndpointSlice>> = self
            .slices
            .list_namespace(&key.namespace)
            .into_iter()
            .filter(|s| managed(s) && service_name(s) == Some(&key.name))
            .collect();
        if !self.tracker.cache_is_current(key, &slices) {
            return Ok(Some(STALE_RETRY));
        }
        let plan = if plan::selector(&svc).is_some() {
            let pods = self.pods.list_namespace(&key.namespace);
            plan::reconcile(&svc, &pods, &self.zones(), &slices)
        } else {
            // A Service that lost its selector keeps no managed slices.
            plan::Plan { delete: slices, ..Default::default() }
        };
        if plan.is_empty() {
            return Ok(None);
        }
        let names: HashSet<String> = plan.update.iter().map(|s| s.name_any()).collect();
        tracing::debug!(service = %key, create = plan.create.len(), update = ?names, delete = plan.delete.len(), "syncing slices");
        apply_plan(&self.client, &self.tracker, key, plan).await?;
        Ok(None)
    }
}
