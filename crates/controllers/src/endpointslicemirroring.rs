//! The EndpointSlice mirroring controller: copies hand-written Endpoints of Services
//! without a selector into EndpointSlices, as upstream's
//! `pkg/controller/endpointslicemirroring`, so that slice readers (kube-proxy, kubectl
//! describe) see them too.
//!
//! Endpoints labelled `endpointslice.kubernetes.io/skip-mirror=true` (the API server's
//! `default/kubernetes`) and those of Services with a selector (the EndpointSlice
//! controller's business) are not mirrored. The slices are owned by the Endpoints object,
//! so deleting it lets the garbage collector remove them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::ResourceExt;

use crate::endpointslice::plan::{self, Group, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, Template};
use crate::endpointslice::{SliceTracker, apply_plan};
use crate::informer::{Cache, Change};
use crate::meta::{Key, controller_ref};
use crate::queue::WorkQueue;
use crate::{Context, Error, run_workers};

/// Upstream's `ConcurrentEndpointSliceMirroringSyncs` default.
const WORKERS: usize = 5;
/// Upstream's `--mirroring-max-endpoints-per-subset` default.
const MAX_ENDPOINTS_PER_SLICE: usize = 1000;
pub const CONTROLLER_NAME: &str = "endpointslicemirroring-controller.k8s.io";
pub const LABEL_SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
const STALE_RETRY: Duration = Duration::from_millis(500);

pub struct MirroringController {
    client: kube::Client,
    services: Cache<Service>,
    endpoints: Cache<Endpoints>,
    slices: Cache<EndpointSlice>,
    queue: WorkQueue<Key>,
    tracker: SliceTracker,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let c = Arc::new(MirroringController {
        client: ctx.client.clone(),
        services: ctx.informers.cache(),
        endpoints: ctx.informers.cache(),
        slices: ctx.informers.cache(),
        queue: WorkQueue::default(),
        tracker: SliceTracker::default(),
    });
    c.register_handlers();
    Box::pin(async move {
        c.services.wait_synced().await;
        c.endpoints.wait_synced().await;
        c.slices.wait_synced().await;
        let queue = c.queue.clone();
        run_workers("endpointslicemirroring", queue, WORKERS, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    })
}

fn mirrored(slice: &EndpointSlice) -> bool {
    crate::meta::labels(&slice.metadata).get(LABEL_MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME)
}

/// The slice groups of an Endpoints object: one per subset (merged when subsets share a
/// port set), ready addresses then not-ready ones, IPv4 only.
pub fn desired_groups(endpoints: &Endpoints) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for subset in endpoints.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let ready = subset.addresses.iter().flatten().map(|a| (a, true));
        let not_ready = subset.not_ready_addresses.iter().flatten().map(|a| (a, false));
        let eps: Vec<Endpoint> = ready.chain(not_ready).filter_map(|(a, r)| endpoint(a, r)).collect();
        if eps.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|g| g.ports == ports) {
            Some(g) => g.endpoints.extend(eps),
            None => groups.push(Group { ports, endpoints: eps }),
        }
    }
    groups
}

fn endpoint(a: &EndpointAddress, ready: bool) -> Option<Endpoint> {
    a.ip.parse::<Ipv4Addr>().ok()?;
    Some(Endpoint {
        addresses: vec![a.ip.clone()],
        conditions: Some(EndpointConditions { ready: Some(ready), serving: Some(ready), terminating: None }),
        hostname: a.hostname.clone(),
        node_name: a.node_name.clone(),
        target_ref: a.target_ref.clone(),
        ..Default::default()
    })
}

/// Mirrored slices carry the Endpoints' labels, minus the mirroring opt-out, plus the
/// service name and this controller as manager.
fn template(endpoints: &Endpoints) -> Template {
    let mut labels: BTreeMap<String, String> = endpoints.labels().clone();
    labels.remove(LABEL_SKIP_MIRROR);
    labels.insert(LABEL_SERVICE_NAME.into(), endpoints.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    Template {
        namespace: endpoints.namespace().unwrap_or_default(),
        generate_name: format!("{}-", endpoints.name_any()),
        labels,
        owner: controller_ref(endpoints),
        address_type: "IPv4".into(),
    }
}

impl MirroringController {
    fn register_handlers(self: &Arc<Self>) {
        let queue = self.queue.clone();
        self.endpoints.on_change(move |change| {
            let (Change::Added(e) | Change::Updated { new: e, .. } | Change::Deleted(e)) = change;
            queue.add(Key::of(e.as_ref()));
        });
        // A Service appearing, or gaining or losing its selector, changes whether its
        // Endpoints are mirrored.
        let queue = self.queue.clone();
        self.services.on_change(move |change| {
            let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
            queue.add(Key::of(s.as_ref()));
        });
        let queue = self.queue.clone();
        self.slices.on_change(move |change| {
            let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
            if mirrored(s)
                && let Some(name) = crate::meta::labels(&s.metadata).get(LABEL_SERVICE_NAME)
            {
                queue.add(Key::new(s.namespace().unwrap_or_default(), name.clone()));
            }
        });
    }

    async fn sync(&self, key: &Key) -> Result<Option<Duration>, Error> {
        let slices: Vec<Arc<EndpointSlice>> = self
            .slices
            .list_namespace(&key.namespace)
            .into_iter()
            .filter(|s| {
                mirrored(s)
                    && crate::meta::labels(&s.metadata).get(LABEL_SERVICE_NAME).map(String::as_str)
                        == Some(key.name.as_str())
            })
            .collect();
        if !self.tracker.cache_is_current(key, &slices) {
            return Ok(Some(STALE_RETRY));
        }
        let endpoints = self.endpoints.get(&key.namespace, &key.name);
        let service = self.services.get(&key.namespace, &key.name);
        let mirror = match (&endpoints, &service) {
            (Some(ep), Some(svc)) => {
                plan::selector(svc).is_none()
                    && ep.labels().get(LABEL_SKIP_MIRROR).map(String::as_str) != Some("true")
                    && ep.metadata.deletion_timestamp.is_none()
            }
            _ => false,
        };
        let plan = match endpoints {
            Some(ep) if mirror => {
                plan::plan_slices(desired_groups(&ep), &slices, &template(&ep), MAX_ENDPOINTS_PER_SLICE)
            }
            _ => plan::Plan { delete: slices, ..Default::default() },
        };
        if plan.is_empty() {
            return Ok(None);
        }
        apply_plan(&self.client, &self.tracker, key, plan).await?;
        Ok(None)
    }
}
