//! The node lifecycle controller's decision, without I/O: from the nodes, their Leases and
//! the pods at a given instant, what to write. A fake clock is all the tests need.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::NodeLifecycleConfig;

pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
const NO_SCHEDULE: &str = "NoSchedule";
const NO_EXECUTE: &str = "NoExecute";
/// The conditions upstream marks Unknown even when the kubelet never reported them.
const KNOWN_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// One write the controller should make.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// PUT the node as given: its status through `/status` if `status_changed`, then its
    /// taints if `taints_changed`. The object carries the cached resourceVersion, so a
    /// write based on stale state fails with a conflict.
    UpdateNode { node: Box<Node>, status_changed: bool, taints_changed: bool },
    /// PUT the pod's status with its Ready condition False.
    MarkPodNotReady(Box<Pod>),
    /// Force-delete the pod: its node is not coming back to finish a graceful deletion.
    EvictPod { namespace: String, name: String, uid: String, node: String },
}

/// The Ready status the node has, or will have once the planned status is written.
fn ready_status(node: &Node) -> Option<&str> {
    conditions(node).iter().find(|c| c.type_ == "Ready").map(|c| c.status.as_str())
}

fn conditions(node: &Node) -> &[NodeCondition] {
    node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[])
}

/// When the node's agent was last heard from: the later of its Lease's renewal and its
/// Ready condition's heartbeat, or the node's creation if neither exists, so that a new
/// node gets a full grace period to report.
fn last_heard(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renewed = lease.and_then(|l| l.spec.as_ref()).and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
    let heartbeat =
        conditions(node).iter().find(|c| c.type_ == "Ready").and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0);
    match renewed.max(heartbeat) {
        Some(t) => Some(t),
        None => node.metadata.creation_timestamp.as_ref().map(|t| t.0),
    }
}

/// The node's conditions all set to Unknown, as upstream's `tryUpdateNodeHealth` does when
/// the grace period has passed: conditions the agent reported keep their heartbeat, and
/// the ones it never reported are added.
fn unknown_conditions(node: &Node, now: Timestamp) -> Vec<NodeCondition> {
    let mut out: Vec<NodeCondition> = conditions(node).to_vec();
    for c in &mut out {
        if c.status != "Unknown" {
            c.status = "Unknown".to_owned();
            c.reason = Some("NodeStatusUnknown".to_owned());
            c.message = Some("Kubelet stopped posting node status.".to_owned());
            c.last_transition_time = Some(Time(now));
        }
    }
    for ty in KNOWN_CONDITIONS {
        if !out.iter().any(|c| c.type_ == ty) {
            out.push(NodeCondition {
                type_: ty.to_owned(),
                status: "Unknown".to_owned(),
                reason: Some("NodeStatusNeverUpdated".to_owned()),
                message: Some("Kubelet never posted node status.".to_owned()),
                last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                last_transition_time: Some(Time(now)),
            });
        }
    }
    out
}

/// The node's taints with this controller's health taints made to match `ready`: none for
/// True, not-ready for False, unreachable for Unknown. Taints already present keep their
/// `timeAdded`, which the eviction deadline counts from. A node without a Ready condition
/// keeps what it has.
fn desired_taints(current: &[Taint], ready: Option<&str>, now: Timestamp) -> Vec<Taint> {
    let wanted_key = match ready {
        Some("True") => None,
        Some("False") => Some(TAINT_NOT_READY),
        Some(_) => Some(TAINT_UNREACHABLE),
        None => return current.to_vec(),
    };
    let mut out: Vec<Taint> =
        current.iter().filter(|t| !is_health_taint(t) || Some(t.key.as_str()) == wanted_key).cloned().collect();
    if let Some(key) = wanted_key {
        for effect in [NO_SCHEDULE, NO_EXECUTE] {
            if !out.iter().any(|t| t.key == key && t.effect == effect) {
                out.push(Taint {
                    key: key.to_owned(),
                    effect: effect.to_owned(),
                    value: None,
                    // As upstream, only the NoExecute taint records when it was added, for
                    // the eviction deadline.
                    time_added: (effect == NO_EXECUTE).then_some(Time(now)),
                });
            }
        }
    }
    out
}

fn is_health_taint(t: &Taint) -> bool {
    (t.key == TAINT_UNREACHABLE || t.key == TAINT_NOT_READY) && (t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE)
}

/// Whether `toleration` tolerates `taint`, as upstream's `ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => {
            key == taint.key && toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// When the pod must leave a node with these NoExecute taints, or `None` if it may stay
/// for ever. An untolerated health taint allows `pod_eviction_timeout` (what upstream's
/// DefaultTolerationSeconds admission gives every pod); any other untolerated NoExecute
/// taint evicts at once; tolerations with `tolerationSeconds` allow the shortest of them.
pub fn eviction_deadline(
    pod: &Pod,
    taints: &[Taint],
    fallback_added: Timestamp,
    config: &NodeLifecycleConfig,
) -> Option<Timestamp> {
    let tolerations: &[Toleration] = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref()).unwrap_or(&[]);
    let mut deadline: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        let added = taint.time_added.as_ref().map_or(fallback_added, |t| t.0);
        let matching: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        let allowed = if matching.is_empty() {
            if is_health_taint(taint) {
                SignedDuration::try_from(config.pod_eviction_timeout).unwrap_or(SignedDuration::MAX)
            } else {
                SignedDuration::ZERO
            }
        } else if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            // Tolerated for ever, as upstream's `getMinTolerationTime` with no limit.
            continue;
        } else {
            let secs = matching.iter().filter_map(|t| t.toleration_seconds).min().unwrap_or(0).max(0);
            SignedDuration::from_secs(secs)
        };
        let at = added.checked_add(allowed).unwrap_or(Timestamp::MAX);
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    deadline
}

fn pod_ready_true(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod with its Ready condition False, as upstream's `MarkPodsNotReady`.
fn not_ready(pod: &Pod, now: Timestamp) -> Pod {
    let mut out = pod.clone();
    let status = out.status.get_or_insert_with(Default::default);
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == "Ready") {
        c.status = "False".to_owned();
        c.reason = Some("NodeNotReady".to_owned());
        c.message = Some("Node is not ready".to_owned());
        c.last_transition_time = Some(Time(now));
    } else {
        conds.push(PodCondition {
            type_: "Ready".to_owned(),
            status: "False".to_owned(),
            reason: Some("NodeNotReady".to_owned()),
            message: Some("Node is not ready".to_owned()),
            last_transition_time: Some(Time(now)),
            ..Default::default()
        });
    }
    out
}

/// Everything to write at `now`. `leases` are the Leases of the node lease namespace, by name.
pub fn plan(
    now: Timestamp,
    nodes: &[Arc<Node>],
    leases: &HashMap<String, Arc<Lease>>,
    pods: &[Arc<Pod>],
    config: &NodeLifecycleConfig,
) -> Vec<Action> {
    let grace = SignedDuration::try_from(config.node_monitor_grace_period).unwrap_or(SignedDuration::MAX);
    let mut by_node: HashMap<&str, Vec<&Arc<Pod>>> = HashMap::new();
    for p in pods {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()).filter(|n| !n.is_empty()) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let mut actions = Vec::new();
    for node in nodes {
        let Some(name) = node.metadata.name.as_deref() else { continue };
        let mut updated: Node = (**node).clone();
        let stale = last_heard(node, leases.get(name).map(|l| &**l))
            .is_none_or(|t| t.checked_add(grace).is_ok_and(|deadline| deadline < now));
        let status_changed = stale && ready_status(node) != Some("Unknown");
        if status_changed {
            updated.status.get_or_insert_with(Default::default).conditions = Some(unknown_conditions(node, now));
        }
        let ready = ready_status(&updated).map(str::to_owned);
        let current_taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        let taints = desired_taints(&current_taints, ready.as_deref(), now);
        let taints_changed = taints != current_taints;
        if taints_changed {
            updated.spec.get_or_insert_with(Default::default).taints = (!taints.is_empty()).then(|| taints.clone());
        }
        if status_changed || taints_changed {
            actions.push(Action::UpdateNode { node: Box::new(updated.clone()), status_changed, taints_changed });
        }
        let node_pods = by_node.get(name).map(Vec::as_slice).unwrap_or(&[]);
        if ready.as_deref().is_some_and(|r| r != "True") {
            for p in node_pods.iter().filter(|p| pod_ready_true(p) && p.metadata.deletion_timestamp.is_none()) {
                actions.push(Action::MarkPodNotReady(Box::new(not_ready(p, now))));
            }
        }
        // A NoExecute taint without `timeAdded` counts from the Ready condition's last
        // transition, the best record of when the node went bad.
        let fallback = conditions(&updated)
            .iter()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_transition_time.as_ref())
            .map_or(now, |t| t.0);
        for p in node_pods {
            if eviction_deadline(p, &taints, fallback, config).is_some_and(|d| d <= now) {
                actions.push(Action::EvictPod {
                    namespace: p.metadata.namespace.clone().unwrap_or_default(),
                    name: p.metadata.name.clone().unwrap_or_default(),
                    uid: p.metadata.uid.clone().unwrap_or_default(),
                    node: name.to_owned(),
                });
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    use kube::api::ObjectMeta;

    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("valid timestamp")
    }

    fn config() -> NodeLifecycleConfig {
        NodeLifecycleConfig {
            node_monitor_grace_period: Duration::from_secs(5),
            pod_eviction_timeout: Duration::from_secs(15),
            ..Default::default()
        }
    }

    fn node(name: &str, ready: &str, heartbeat: i64) -> Arc<Node> {
        Arc::new(Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(t(0))),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    last_heartbeat_time: Some(Time(t(heartbeat))),
                    last_transition_time: Some(Time(t(0))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn lease(name: &str, renewed: i64) -> (String, Arc<Lease>) {
        let l = Lease {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(LeaseSpec { renew_time: Some(MicroTime(t(renewed))), ..Default::default() }),
        };
        (name.to_owned(), Arc::new(l))
    }

    fn pod(name: &str, node: &str, tolerations: Vec<Toleration>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: Some(node.into()), tolerations: Some(tolerations), ..Default::default() }),
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn tolerate_unreachable(seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(TAINT_UNREACHABLE.into()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    /// Applies node updates to the node list, as the API server and the cache would.
    fn apply(nodes: &mut [Arc<Node>], actions: &[Action]) {
        for a in actions {
            if let Action::UpdateNode { node, .. } = a
                && let Some(slot) = nodes.iter_mut().find(|n| n.metadata.name == node.metadata.name)
            {
                *slot = Arc::new((**node).clone());
            }
        }
    }

    fn summary(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::UpdateNode { node, status_changed, taints_changed } => format!(
                    "node {} ready={:?} status={status_changed} taints={taints_changed} [{}]",
                    node.metadata.name.as_deref().unwrap_or(""),
                    ready_status(node),
                    node.spec
                        .as_ref()
                        .and_then(|s| s.taints.as_ref())
                        .map(|ts| ts.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect::<Vec<_>>().join(","))
                        .unwrap_or_default()
                ),
                Action::MarkPodNotReady(p) => format!("notready {}", p.metadata.name.as_deref().unwrap_or("")),
                Action::EvictPod { name, node, .. } => format!("evict {name} from {node}"),
            })
            .collect()
    }

    #[test]
    fn healthy_nodes_need_nothing() {
        let nodes = vec![node("a", "True", 0)];
        let leases: HashMap<_, _> = [lease("a", 9)].into();
        assert!(plan(t(10), &nodes, &leases, &[pod("p", "a", vec![])], &config()).is_empty());
    }

    #[test]
    fn a_silent_node_goes_unknown_then_its_pods_are_evicted_unless_they_tolerate() {
        let cfg = config();
        let mut nodes = vec![node("a", "True", 0), node("b", "True", 0)];
        let leases: HashMap<_, _> = [lease("a", 2), lease("b", 100)].into();
        let pods = vec![
            pod("x", "a", vec![]),
            pod("stay", "a", vec![tolerate_unreachable(None)]),
            pod("brief", "a", vec![tolerate_unreachable(Some(3))]),
            pod("y", "b", vec![]),
        ];
        // Within the grace period (renewed at 2, grace 5): nothing.
        assert!(plan(t(7), &nodes, &leases, &pods, &cfg).is_empty());
        let actions = plan(t(8), &nodes, &leases, &pods, &cfg);
        assert_eq!(
            summary(&actions),
            vec![
                "node a ready=Some(\"Unknown\") status=true taints=true \
                 [node.kubernetes.io/unreachable:NoSchedule,node.kubernetes.io/unreachable:NoExecute]",
                "notready x",
                "notready stay",
                "notready brief",
            ]
        );
        let Action::UpdateNode { node: a, .. } = &actions[0] else { panic!("expected a node update") };
        let ready = conditions(a).iter().find(|c| c.type_ == "Ready").expect("ready condition");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
        assert_eq!(ready.last_heartbeat_time, Some(Time(t(0))), "the last heartbeat is kept");
        assert!(conditions(a).iter().all(|c| c.status == "Unknown"));
        assert_eq!(conditions(a).len(), 4, "unreported conditions are added as Unknown");
        apply(&mut nodes, &actions);

        // The node is not written twice; pods are marked again only while the cache still
        // shows them ready (here it always does).
        let pods_not_ready: Vec<Arc<Pod>> = pods
            .iter()
            .map(|p| match p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
                Some("a") => Arc::new(not_ready(p, t(8))),
                _ => p.clone(),
            })
            .collect();
        assert!(plan(t(9), &nodes, &leases, &pods_not_ready, &cfg).is_empty());
        // The pod tolerating for 3 s goes at 8 + 3; the untolerating one at 8 + 15.
        assert_eq!(summary(&plan(t(11), &nodes, &leases, &pods_not_ready, &cfg)), vec!["evict brief from a"]);
        assert_eq!(
            summary(&plan(t(23), &nodes, &leases, &pods_not_ready, &cfg)),
            vec!["evict x from a", "evict brief from a"]
        );
        // The pod tolerating for ever stays, however long it takes.
        let later = plan(t(10_000), &nodes, &leases, &pods_not_ready, &cfg);
        assert!(!summary(&later).contains(&"evict stay from a".to_owned()), "{later:?}");
    }

    #[test]
    fn a_node_back_to_ready_loses_the_taints() {
        let cfg = config();
        let mut nodes = vec![node("a", "True", 0)];
        let leases: HashMap<_, _> = [lease("a", 0)].into();
        let actions = plan(t(6), &nodes, &leases, &[], &cfg);
        apply(&mut nodes, &actions);
        assert_eq!(nodes[0].spec.as_ref().and_then(|s| s.taints.as_ref()).map(Vec::len), Some(2));
        // The agent posts Ready=True again, keeping the controller's taints.
        let mut back = (*node("a", "True", 30)).clone();
        back.spec = nodes[0].spec.clone();
        let mut nodes = vec![Arc::new(back)];
        let leases: HashMap<_, _> = [lease("a", 30)].into();
        let actions = plan(t(31), &nodes, &leases, &[], &cfg);
        assert_eq!(summary(&actions), vec!["node a ready=Some(\"True\") status=false taints=true []"]);
        apply(&mut nodes, &actions);
        assert!(plan(t(32), &nodes, &leases, &[], &cfg).is_empty());
    }

    #[test]
    fn a_node_reporting_not_ready_gets_the_not_ready_taints_and_other_taints_are_kept() {
        let cfg = config();
        let mut n = (*node("a", "False", 10)).clone();
        n.spec = Some(NodeSpec {
            taints: Some(vec![
                Taint {
                    key: "dedicated".into(),
                    effect: NO_SCHEDULE.into(),
                    value: Some("x".into()),
                    time_added: None,
                },
                Taint { key: TAINT_UNREACHABLE.into(), effect: NO_EXECUTE.into(), value: None, time_added: None },
            ]),
            ..Default::default()
        });
        let leases: HashMap<_, _> = [lease("a", 10)].into();
        let actions = plan(t(11), &[Arc::new(n)], &leases, &[pod("x", "a", vec![])], &cfg);
        assert_eq!(
            summary(&actions),
            vec![
                "node a ready=Some(\"False\") status=false taints=true \
                 [dedicated:NoSchedule,node.kubernetes.io/not-ready:NoSchedule,node.kubernetes.io/not-ready:NoExecute]",
                "notready x",
            ]
        );
    }

    #[test]
    fn a_node_without_lease_or_heartbeat_gets_a_grace_period_from_creation() {
        let cfg = config();
        let mut n = (*node("a", "True", 0)).clone();
        n.status = None;
        let nodes = vec![Arc::new(n)];
        assert!(plan(t(4), &nodes, &HashMap::new(), &[], &cfg).is_empty());
        let actions = plan(t(6), &nodes, &HashMap::new(), &[], &cfg);
        let Action::UpdateNode { node: a, .. } = &actions[0] else { panic!("expected a node update") };
        let ready = conditions(a).iter().find(|c| c.type_ == "Ready").expect("ready condition");
        assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("Unknown", Some("NodeStatusNeverUpdated")));
    }

    #[test]
    fn other_untolerated_no_execute_taints_evict_at_once() {
        let cfg = config();
        let taint = Taint { key: "k".into(), effect: NO_EXECUTE.into(), value: Some("v".into()), time_added: None };
        let p = pod("x", "a", vec![]);
        assert_eq!(eviction_deadline(&p, std::slice::from_ref(&taint), t(5), &cfg), Some(t(5)));
        let tol = Toleration {
            key: Some("k".into()),
            operator: Some("Equal".into()),
            value: Some("v".into()),
            effect: None,
            toleration_seconds: None,
        };
        assert_eq!(eviction_deadline(&pod("y", "a", vec![tol]), &[taint], t(5), &cfg), None);
    }
}
