//! The pure half of the EndpointSlice controllers: what endpoints a Service should have,
//! and the fewest slice writes that get the existing slices there.
//!
//! Upstream's reconciler (`pkg/controller/endpointslice/reconciler.go`) groups endpoints by
//! their port set, keeps every endpoint in the slice that already holds it, fills slices
//! that change anyway before touching others, and only then creates new slices. This file
//! does the same without I/O, so the minimal-change property is unit-tested here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::meta::controller_ref;
use crate::pods;

/// Upstream's `--max-endpoints-per-slice` default.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";

/// Endpoints that share one port set, in the order they should be placed.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// The writes that bring the slices to the desired state.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices; their metadata carries `generateName`, not a name.
    pub create: Vec<EndpointSlice>,
    /// Existing slices with new content, carrying the cached resourceVersion.
    pub update: Vec<EndpointSlice>,
    /// Existing slices to delete.
    pub delete: Vec<Arc<EndpointSlice>>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The metadata every managed slice of one owner has: generateName, labels, owner refs.
#[derive(Clone, Debug)]
pub struct Template {
    pub namespace: String,
    pub generate_name: String,
    pub labels: BTreeMap<String, String>,
    pub owner: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    pub address_type: String,
}

/// The plan for one Service with a selector: its desired endpoints from the pods, then the
/// slice writes. `zones` maps node names to their `topology.kubernetes.io/zone` label.
pub fn reconcile(
    service: &Service,
    pods: &[Arc<Pod>],
    zones: &HashMap<String, String>,
    existing: &[Arc<EndpointSlice>],
) -> Plan {
    let groups = desired_groups(service, pods, zones);
    plan_slices(groups, existing, &template_for(service), MAX_ENDPOINTS_PER_SLICE)
}

/// The labels and owner of the slices the EndpointSlice controller writes for `service`.
pub fn template_for(service: &Service) -> Template {
    let mut labels = service.labels().clone();
    labels.insert(LABEL_SERVICE_NAME.into(), service.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    if is_headless(service) {
        labels.insert(LABEL_HEADLESS.into(), String::new());
    }
    Template {
        namespace: service.namespace().unwrap_or_default(),
        generate_name: format!("{}-", service.name_any()),
        labels,
        owner: controller_ref(service),
        address_type: "IPv4".into(),
    }
}

pub fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// The Service's selector, if it has a non-empty one; only those get managed endpoints.
pub fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    service.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether a pod's labels satisfy a Service's equality selector.
pub fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = crate::meta::labels(&pod.metadata);
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pod's IPv4 address, if it has one. Only IPv4 is served, so other pods are left out
/// rather than put into a slice of the wrong address type.
pub fn pod_ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let candidates = status.pod_ip.iter().chain(status.pod_ips.iter().flatten().map(|p| &p.ip));
    candidates.into_iter().find(|ip| ip.parse::<Ipv4Addr>().is_ok()).cloned()
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// The container port a Service port targets on this pod, as upstream's `podutil.FindPort`:
/// a number is taken as is, a name is looked up among the pod's containers' ports, and a
/// missing targetPort means the Service port itself. `None` when a name does not resolve.
pub fn resolve_target_port(target: Option<&IntOrString>, port: i32, protocol: &str, pod: &Pod) -> Option<i32> {
    match target {
        None => Some(port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(s)) => {
            if let Ok(n) = s.parse::<i32>() {
                return Some(n);
            }
            let containers = pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
            containers.iter().flat_map(|c| c.ports.iter().flatten()).find_map(|p| {
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                (p.name.as_deref() == Some(s.as_str()) && proto == protocol).then_some(p.container_port)
            })
        }
    }
}

/// The slice ports of `service` for one pod; ports whose named target does not resolve on
/// this pod are left out, as upstream does.
pub fn pod_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or_default();
    ports
        .iter()
        .filter_map(|sp| {
            let protocol = sp.protocol.clone().unwrap_or_else(|| "TCP".into());
            let port = resolve_target_port(sp.target_port.as_ref(), sp.port, &protocol, pod)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(protocol),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.namespace(),
        name: Some(pod.name_any()),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Whether a pod belongs in the Service's slices at all: it has an address and has not
/// finished. Terminating pods stay, with `terminating: true`, as upstream does since
/// EndpointSliceTerminatingCondition went GA.
fn should_include(pod: &Pod) -> bool {
    !is_terminal(pod) && pod_ipv4(pod).is_some()
}

/// The endpoint of one pod.
pub fn pod_endpoint(service: &Service, pod: &Pod, zones: &HashMap<String, String>) -> Option<Endpoint> {
    let ip = pod_ipv4(pod)?;
    let publish = service.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = pods::is_ready(pod);
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
    let hostname = pod
        .spec
        .as_ref()
        .filter(|s| s.subdomain.as_deref() == Some(service.name_any().as_str()))
        .and_then(|s| s.hostname.clone());
    Some(Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(publish || (ready && !terminating)),
            serving: Some(publish || ready),
            terminating: Some(terminating),
        }),
        zone: node.as_ref().and_then(|n| zones.get(n).cloned()),
        node_name: node,
        hostname,
        target_ref: Some(target_ref(pod)),
        ..Default::default()
    })
}

/// The desired endpoints of `service`, grouped by port set. Pods are taken in name order
/// so that new slices are filled deterministically.
pub fn desired_groups(service: &Service, pods: &[Arc<Pod>], zones: &HashMap<String, String>) -> Vec<Group> {
    let Some(selector) = selector(service) else { return Vec::new() };
    let mut selected: Vec<&Arc<Pod>> = pods.iter().filter(|p| selects(selector, p) && should_include(p)).collect();
    selected.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut groups: Vec<Group> = Vec::new();
    for pod in selected {
        let ports = pod_ports(service, pod);
        let Some(ep) = pod_endpoint(service, pod, zones) else { continue };
        match groups.iter_mut().find(|g| g.ports == ports) {
            Some(g) => g.endpoints.push(ep),
            None => groups.push(Group { ports, endpoints: vec![ep] }),
        }
    }
    groups
}

/// What identifies an endpoint across syncs: the pod's UID, or its address.
fn endpoint_key(ep: &Endpoint) -> String {
    ep.target_ref
        .as_ref()
        .and_then(|r| r.uid.clone().or_else(|| r.name.clone()))
        .or_else(|| ep.addresses.first().cloned())
        .unwrap_or_default()
}

/// A slice being rebuilt: the existing one and its new endpoints.
struct Rebuilt {
    old: Arc<EndpointSlice>,
    group: usize,
    endpoints: Vec<Endpoint>,
    changed: bool,
}

/// The minimal writes from `existing` to `groups`, with at most `max` endpoints a slice.
pub fn plan_slices(groups: Vec<Group>, existing: &[Arc<EndpointSlice>], template: &Template, max: usize) -> Plan {
    let max = max.max(1);
    let mut plan = Plan::default();
    let mut sorted: Vec<&Arc<EndpointSlice>> = existing.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    // Desired endpoints by group, then by key; each is placed once.
    let wanted: Vec<HashMap<String, &Endpoint>> =
        groups.iter().map(|g| g.endpoints.iter().map(|e| (endpoint_key(e), e)).collect()).collect();
    let mut placed: HashSet<(usize, String)> = HashSet::new();
    let mut rebuilt: Vec<Rebuilt> = Vec::new();
    for slice in sorted {
        let ports = slice.ports.clone().unwrap_or_default();
        let Some(gi) = groups.iter().position(|g| g.ports == ports) else {
            plan.delete.push(slice.clone());
            continue;
        };
        let old_eps = slice.endpoints.as_deref().unwrap_or_default();
        let mut endpoints = Vec::with_capacity(old_eps.len());
        for ep in old_eps {
            let key = endpoint_key(ep);
            if let Some(want) = wanted[gi].get(&key)
                && placed.insert((gi, key))
            {
                endpoints.push((*want).clone());
            }
        }
        let changed = endpoints.as_slice() != old_eps;
        rebuilt.push(Rebuilt { old: slice.clone(), group: gi, endpoints, changed });
    }

    for (gi, group) in groups.into_iter().enumerate() {
        let mut remaining: Vec<Endpoint> =
            group.endpoints.into_iter().filter(|e| !placed.contains(&(gi, endpoint_key(e)))).collect();
        // Slices that are written anyway take new endpoints first, then the fullest of the
        // others, so that as few slices as possible change.
        let mut order: Vec<usize> = (0..rebuilt.len()).filter(|&i| rebuilt[i].group == gi).collect();
        order.sort_by_key(|&i| (!rebuilt[i].changed, std::cmp::Reverse(rebuilt[i].endpoints.len())));
        for i in order {
            if remaining.is_empty() {
                break;
            }
            let r = &mut rebuilt[i];
            let room = max.saturating_sub(r.endpoints.len());
            if room == 0 || r.endpoints.is_empty() {
                continue;
            }
            let take = room.min(remaining.len());
            r.endpoints.extend(remaining.drain(..take));
            r.changed = true;
        }
        while !remaining.is_empty() {
            let take = max.min(remaining.len());
            let endpoints: Vec<Endpoint> = remaining.drain(..take).collect();
            plan.create.push(new_slice(template, group.ports.clone(), endpoints));
        }
    }

    for r in rebuilt {
        if r.endpoints.is_empty() {
            plan.delete.push(r.old);
            continue;
        }
        let mut next = (*r.old).clone();
        next.endpoints = Some(r.endpoints);
        let mut labels = next.metadata.labels.clone().unwrap_or_default();
        labels.extend(template.labels.clone());
        next.metadata.labels = Some(labels);
        let owners = next.metadata.owner_references.get_or_insert_with(Vec::new);
        if !owners.iter().any(|o| o.uid == template.owner.uid) {
            owners.retain(|o| o.controller != Some(true));
            owners.push(template.owner.clone());
        }
        // Comparing before writing keeps a no-op sync from touching the slice at all.
        if next != *r.old {
            plan.update.push(next);
        }
    }
    plan
}

fn new_slice(template: &Template, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(template.generate_name.clone()),
            namespace: Some(template.namespace.clone()),
            labels: Some(template.labels.clone()),
            owner_references: Some(vec![template.owner.clone()]),
            ..Default::default()
        },
        address_type: template.address_type.clone(),
        endpoints: Some(endpoints),
        ports: Some(ports),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };

    fn service(target: IntOrString) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("svc-uid".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_owned(), "web".to_owned())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(target),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(i: usize, ready: bool, container_port: i32) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(format!("p{i:04}")),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{i}")),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(format!("10.0.{}.{}", i / 250, i % 250 + 1)),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    /// Turns a plan's creations into existing slices, as the API server would.
    fn apply(plan: Plan, existing: Vec<Arc<EndpointSlice>>) -> Vec<Arc<EndpointSlice>> {
        let deleted: HashSet<_> = plan.delete.iter().map(|s| s.name_any()).collect();
        let updated: HashMap<_, _> = plan.update.into_iter().map(|s| (s.name_any(), s)).collect();
        let mut out: Vec<Arc<EndpointSlice>> = existing
            .into_iter()
            .filter(|s| !deleted.contains(&s.name_any()))
            .map(|s| updated.get(&s.name_any()).cloned().map(Arc::new).unwrap_or(s))
            .collect();
        for (i, mut s) in plan.create.into_iter().enumerate() {
            s.metadata.name = Some(format!("web-{}{i}", out.len()));
            out.push(Arc::new(s));
        }
        out
    }

    fn zones() -> HashMap<String, String> {
        [("n1".to_owned(), "z1".to_owned())].into()
    }

    #[test]
    fn two_ready_pods_make_one_slice_with_conditions_zone_and_ports() {
        let svc = service(IntOrString::Int(8080));
        let plan = reconcile(&svc, &[pod(1, true, 8080), pod(2, false, 8080)], &zones(), &[]);
        assert_eq!(plan.create.len(), 1);
        let s = &plan.create[0];
        assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(
            s.metadata.labels.as_ref().and_then(|l| l.get(LABEL_MANAGED_BY)).map(String::as_str),
            Some(CONTROLLER_NAME)
        );
        let eps = s.endpoints.as_deref().unwrap_or_default();
        assert_eq!(eps.len(), 2);
        assert_eq!(eps[0].conditions.as_ref().and_then(|c| c.ready), Some(true));
        assert_eq!(eps[1].conditions.as_ref().and_then(|c| c.ready), Some(false));
        assert_eq!(eps[0].zone.as_deref(), Some("z1"));
        assert_eq!(s.ports.as_deref().unwrap_or_default()[0].port, Some(8080));
        let owner = &s.metadata.owner_references.as_deref().unwrap_or_default()[0];
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    }

    #[test]
    fn named_target_ports_resolve_per_pod_into_separate_slices() {
        let svc = service(IntOrString::String("http".into()));
        let plan = reconcile(&svc, &[pod(1, true, 8080), pod(2, true, 9090)], &zones(), &[]);
        let mut ports: Vec<i32> = plan.create.iter().filter_map(|s| s.ports.as_ref().and_then(|p| p[0].port)).collect();
        ports.sort();
        assert_eq!(ports, vec![8080, 9090]);
    }

    #[test]
    fn publish_not_ready_addresses_makes_every_endpoint_ready() {
        let mut svc = service(IntOrString::Int(80));
        if let Some(spec) = svc.spec.as_mut() {
            spec.publish_not_ready_addresses = Some(true);
        }
        let plan = reconcile(&svc, &[pod(1, false, 80)], &zones(), &[]);
        let ep = &plan.create[0].endpoints.as_deref().unwrap_or_default()[0];
        assert_eq!(ep.conditions.as_ref().and_then(|c| c.ready), Some(true));
    }

    #[test]
    fn a_service_without_selector_gets_no_slices() {
        let mut svc = service(IntOrString::Int(80));
        if let Some(spec) = svc.spec.as_mut() {
            spec.selector = None;
        }
        assert!(reconcile(&svc, &[pod(1, true, 80)], &zones(), &[]).is_empty());
    }

    #[test]
    fn many_pods_split_into_slices_of_at_most_100_and_a_second_sync_is_a_no_op() {
        let svc = service(IntOrString::Int(80));
        let pods: Vec<_> = (0..250).map(|i| pod(i, true, 80)).collect();
        let plan = reconcile(&svc, &pods, &zones(), &[]);
        let sizes: Vec<usize> = plan.create.iter().map(|s| s.endpoints.as_ref().map_or(0, Vec::len)).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let slices = apply(plan, Vec::new());
        assert!(reconcile(&svc, &pods, &zones(), &slices).is_empty());
    }

    #[test]
    fn one_pod_change_rewrites_only_its_slice() {
        let svc = service(IntOrString::Int(80));
        let mut pods: Vec<_> = (0..250).map(|i| pod(i, true, 80)).collect();
        let slices = apply(reconcile(&svc, &pods, &zones(), &[]), Vec::new());
        pods[130] = pod(130, false, 80);
        let plan = reconcile(&svc, &pods, &zones(), &slices);
        assert!(plan.create.is_empty() && plan.delete.is_empty());
        assert_eq!(plan.update.len(), 1);
        let holder = slices.iter().find(|s| s.name_any() == plan.update[0].name_any()).map(|s| s.endpoints.clone());
        assert_eq!(holder.flatten().map(|e| e.len()), plan.update[0].endpoints.as_ref().map(Vec::len));
    }

    #[test]
    fn new_pods_fill_existing_slices_and_empty_slices_go() {
        let svc = service(IntOrString::Int(80));
        let pods: Vec<_> = (0..150).map(|i| pod(i, true, 80)).collect();
        let slices = apply(reconcile(&svc, &pods, &zones(), &[]), Vec::new());
        // Adding 30 pods fills the half-empty slice instead of creating a new one.
        let more: Vec<_> = (0..180).map(|i| pod(i, true, 80)).collect();
        let plan = reconcile(&svc, &more, &zones(), &slices);
        assert_eq!((plan.create.len(), plan.update.len(), plan.delete.len()), (0, 1, 0));
        // Removing the first 100 pods empties the first slice, which is deleted untouched.
        let fewer: Vec<_> = (100..150).map(|i| pod(i, true, 80)).collect();
        let plan = reconcile(&svc, &fewer, &zones(), &slices);
        assert_eq!((plan.create.len(), plan.update.len(), plan.delete.len()), (0, 0, 1));
    }

    #[test]
    fn slices_of_a_port_set_no_longer_wanted_are_deleted() {
        let svc = service(IntOrString::Int(80));
        let slices = apply(reconcile(&svc, &[pod(1, true, 80)], &zones(), &[]), Vec::new());
        let svc2 = service(IntOrString::Int(81));
        let plan = reconcile(&svc2, &[pod(1, true, 80)], &zones(), &slices);
        assert_eq!((plan.create.len(), plan.update.len(), plan.delete.len()), (1, 0, 1));
    }
}
