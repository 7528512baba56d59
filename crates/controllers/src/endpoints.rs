//! The Endpoints controller: writes the legacy `v1 Endpoints` object of every Service with
//! a selector, as upstream's `pkg/controller/endpoint`.
//!
//! The subsets come from the same pods and the same port resolution as the EndpointSlices
//! (see [`crate::endpointslice::plan`]), so both views agree. Services without a selector
//! are left alone: their Endpoints are written by hand (and mirrored into slices by
//! [`crate::endpointslicemirroring`]), and `default/kubernetes` belongs to the API server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service};
use kube::api::{DeleteParams, ObjectMeta, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use crate::endpointslice::plan::{self as slices, LABEL_HEADLESS};
use crate::informer::{Cache, Change};
use crate::meta::Key;
use crate::queue::WorkQueue;
use crate::{Context, Error, is_not_found, run_workers};

/// Upstream's `ConcurrentEndpointSyncs` default.
const WORKERS: usize = 5;
/// Upstream truncates an Endpoints object beyond this many addresses and says so.
const MAX_CAPACITY: usize = 1000;
const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

pub struct EndpointsController {
    client: kube::Client,
    services: Cache<Service>,
    pods: Cache<Pod>,
    endpoints: Cache<Endpoints>,
    queue: WorkQueue<Key>,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let c = Arc::new(EndpointsController {
        client: ctx.client.clone(),
        services: ctx.informers.cache(),
        pods: ctx.informers.cache(),
        endpoints: ctx.informers.cache(),
        queue: WorkQueue::default(),
    });
    c.register_handlers();
    Box::pin(async move {
        c.services.wait_synced().await;
        c.pods.wait_synced().await;
        c.endpoints.wait_synced().await;
        let queue = c.queue.clone();
        run_workers("endpoints", queue, WORKERS, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    })
}

/// The subsets of `service` from its pods, as upstream's `syncService` then
/// `RepackSubsets`: addresses grouped by their pods' resolved port sets, sorted.
pub fn desired_subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let Some(selector) = slices::selector(service) else { return Vec::new() };
    let publish = service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    // Port set (as JSON, which orders it) → (ports, ready, not ready).
    type Entry = (Vec<EndpointPort>, Vec<EndpointAddress>, Vec<EndpointAddress>);
    let mut groups: BTreeMap<String, Entry> = BTreeMap::new();
    for pod in pods.iter().filter(|p| slices::selects(selector, p)) {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            continue;
        }
        // Unlike slices, Endpoints carry no terminating condition: upstream leaves
        // terminating pods out unless the Service publishes not-ready addresses.
        if pod.metadata.deletion_timestamp.is_some() && !publish {
            continue;
        }
        let Some(ip) = slices::pod_ipv4(pod) else { continue };
        let mut ports: Vec<EndpointPort> = slices::pod_ports(service, pod)
            .into_iter()
            .map(|p| EndpointPort {
                name: p.name.filter(|n| !n.is_empty()),
                port: p.port.unwrap_or_default(),
                protocol: p.protocol,
                app_protocol: p.app_protocol,
            })
            .collect();
        if ports.is_empty() {
            continue;
        }
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let address = EndpointAddress {
            ip,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty()),
            hostname: pod
                .spec
                .as_ref()
                .filter(|s| s.subdomain.as_deref() == Some(service.name_any().as_str()))
                .and_then(|s| s.hostname.clone()),
            target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let entry = groups.entry(key).or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish || crate::pods::is_ready(pod) {
            entry.1.push(address);
        } else {
            entry.2.push(address);
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: Some(ports),
            }
        })
        .collect()
}

/// Keeps at most [`MAX_CAPACITY`] addresses, ready ones first, as upstream's
/// `truncateEndpoints`; returns whether anything was cut.
fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let total: usize = subsets
        .iter()
        .map(|s| s.addresses.as_ref().map_or(0, Vec::len) + s.not_ready_addresses.as_ref().map_or(0, Vec::len))
        .sum();
    if total <= MAX_CAPACITY {
        return false;
    }
    let mut budget = MAX_CAPACITY;
    for s in subsets.iter_mut() {
        if let Some(a) = s.addresses.as_mut() {
            a.truncate(budget);
            budget -= a.len();
        }
    }
    for s in subsets.iter_mut() {
        if let Some(a) = s.not_ready_addresses.as_mut() {
            a.truncate(budget);
            budget -= a.len();
        }
    }
    true
}

/// The labels upstream puts on an Endpoints object: the Service's, plus the headless
/// marker when the Service has no cluster IP.
fn desired_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.labels().clone();
    if slices::is_headless(service) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    } else {
        labels.remove(LABEL_HEADLESS);
    }
    labels
}

impl EndpointsController {
    fn register_handlers(self: &Arc<Self>) {
        let queue = self.queue.clone();
        self.services.on_change(move |change| {
            let (Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s)) = change;
            queue.add(Key::of(s.as_ref()));
        });
        let this = Arc::downgrade(self);
        self.pods.on_change(move |change| {
            let Some(c) = this.upgrade() else { return };
            let (pod, old) = match change {
                Change::Added(p) | Change::Deleted(p) => (p, None),
                Change::Updated { old, new } => (new, Some(old)),
            };
            for svc in c.services.list_namespace(&pod.namespace().unwrap_or_default()) {
                let Some(sel) = slices::selector(&svc) else { continue };
                if slices::selects(sel, pod) || old.is_some_and(|o| slices::selects(sel, o)) {
                    c.queue.add(Key::of(svc.as_ref()));
                }
            }
        });
        // Someone else changing or deleting a managed Endpoints object gets it rewritten.
        let queue = self.queue.clone();
        self.endpoints.on_change(move |change| {
            if let Change::Updated { new: e, .. } | Change::Deleted(e) = change {
                queue.add(Key::of(e.as_ref()));
            }
        });
    }

    async fn sync(&self, key: &Key) -> Result<Option<Duration>, Error> {
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), &key.namespace);
        let current = self.endpoints.get(&key.namespace, &key.name);
        let Some(svc) = self.services.get(&key.namespace, &key.name) else {
            // Endpoints carry no owner reference, so upstream deletes those of a deleted
            // Service itself. Only objects this controller wrote (they carry the
            // trigger-time annotation) go: a hand-written Endpoints without a Service is
            // the user's.
            if let Some(ep) = current
                && ep.annotations().contains_key(TRIGGER_ANNOTATION)
            {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions { uid: ep.metadata.uid.clone(), resource_version: None }),
                    ..Default::default()
                };
                match api.delete(&key.name, &dp).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(None);
        };
        if slices::selector(&svc).is_none() || svc.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let pods = self.pods.list_namespace(&key.namespace);
        let mut subsets = desired_subsets(&svc, &pods);
        let truncated = truncate(&mut subsets);
        let labels = desired_labels(&svc);
        let subsets_opt = (!subsets.is_empty()).then_some(subsets);
        match current {
            Some(cur) => {
                let over = cur.annotations().get(OVER_CAPACITY).map(String::as_str) == Some("truncated");
                if cur.subsets == subsets_opt
                    && cur.metadata.labels.clone().unwrap_or_default() == labels
                    && over == truncated
                {
                    return Ok(None);
                }
                let mut next = (*cur).clone();
                next.subsets = subsets_opt;
                next.metadata.labels = Some(labels);
                let annotations = next.metadata.annotations.get_or_insert_with(BTreeMap::new);
                annotations.insert(TRIGGER_ANNOTATION.into(), now());
                if truncated {
                    annotations.insert(OVER_CAPACITY.into(), "truncated".into());
                } else {
                    annotations.remove(OVER_CAPACITY);
                }
                api.replace(&key.name, &PostParams::default(), &next).await?;
            }
            None => {
                let mut annotations = BTreeMap::from([(TRIGGER_ANNOTATION.to_owned(), now())]);
                if truncated {
                    annotations.insert(OVER_CAPACITY.into(), "truncated".into());
                }
                let ep = Endpoints {
                    metadata: ObjectMeta {
                        name: Some(key.name.clone()),
                        namespace: Some(key.namespace.clone()),
                        labels: Some(labels),
                        annotations: Some(annotations),
                        ..Default::default()
                    },
                    subsets: subsets_opt,
                };
                api.create(&PostParams::default(), &ep).await?;
            }
        }
        Ok(None)
    }
}

/// Upstream stamps each write with the time of the change that caused it.
const TRIGGER_ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some("n1".into()), ..Default::default() }),
            status: Some(PodStatus {
                pod_ip: Some(ip.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn ready_and_not_ready_addresses_share_a_subset() {
        let svc = Service {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_owned(), "web".to_owned())].into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    target_port: Some(IntOrString::Int(8080)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        };
        let subsets = desired_subsets(&svc, &[pod("b", "10.0.0.2", true), pod("a", "10.0.0.1", false)]);
        assert_eq!(subsets.len(), 1);
        let ips = |a: &Option<Vec<EndpointAddress>>| a.iter().flatten().map(|a| a.ip.clone()).collect::<Vec<_>>();
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.2"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.0.0.1"]);
        assert_eq!(subsets[0].ports.as_ref().map(|p| p[0].port), Some(8080));
    }
}
