//! The scheduler's memory: the nodes, the pods on them, the Services, and every pod waiting
//! for a node, fed by watch events and asked for one decision at a time.
//!
//! Like the algorithm, this does no I/O. The loop in `runner.rs` feeds it [`Input`]s and turns
//! its [`Decision`]s into API calls, whose outcomes come back as inputs. Keeping the two
//! apart lets the tests below replay bursts, races and relists without a server.
//!
//! Each pod this scheduler knows about is in one state ([`PodEntry`]):
//!
//! ```text
//!   watch: new unbound pod ──▶ Pending ──decision: Bind──▶ Assumed ──watch: bound──▶ Bound
//!                               ▲   │                      │
//!                               │   └─ no node fits:       └─ bind failed: back to Pending,
//!                               │      stays Pending,         the node's accounting undone
//!                               └───── queued as unschedulable
//! ```
//!
//! An **assumed** pod counts on its node from the moment it is decided, before the API has
//! even seen the binding, so the next decision in a burst already sees it; this is upstream's
//! "assume" step. The watch event showing the pod bound turns it into a plain **bound** pod
//! without counting it twice. Pods of other schedulers are tracked once bound (they use
//! resources) and ignored before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::watcher;
use tokio::time::Instant;

use crate::algorithm::{self, PodToSchedule};
use crate::model::{InvalidPod, NodeInfo, PodInfo};
use crate::queue::{Backoff, PodKey, SchedulingQueue};
use crate::score::SpreadSelector;
use crate::usage::PodsByNode;

/// Everything that can happen to the scheduler: watch events, and the outcomes of the binds
/// it started.
#[derive(Debug)]
pub enum Input {
    // Boxed: API objects are kilobytes, and inputs move through a channel.
    Node(Box<watcher::Event<Node>>),
    Pod(Box<watcher::Event<Pod>>),
    Service(Box<watcher::Event<Service>>),
    BindDone { key: PodKey, uid: String, node: String, outcome: BindOutcome },
}

impl Input {
    pub fn node(event: watcher::Event<Node>) -> Input {
        Input::Node(Box::new(event))
    }

    pub fn pod(event: watcher::Event<Pod>) -> Input {
        Input::Pod(Box::new(event))
    }

    pub fn service(event: watcher::Event<Service>) -> Input {
        Input::Service(Box::new(event))
    }
}

/// How a bind request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindOutcome {
    Bound,
    /// 409: the pod is already bound (perhaps by someone else) or is being deleted.
    Conflict,
    /// 404: the pod is gone.
    NotFound,
    /// Anything else: the API server or the connection failed.
    Failed(String),
}

/// A pod's identity for the API calls a decision leads to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// What the loop should do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Bind the pod to the node. The pod is already assumed there.
    Bind { pod: PodRef, node: String },
    /// No node fits (or the pod cannot be read). `set_condition` says whether the pod's
    /// PodScheduled condition must be written (it differs), with the transition time to keep
    /// when the condition was already False; `record_event` whether to record a
    /// FailedScheduling event (the message changed since the last one).
    Unschedulable {
        pod: PodRef,
        message: String,
        set_condition: bool,
        keep_transition_time: Option<Time>,
        record_event: bool,
    },
}

#[derive(Debug)]
enum PodEntry {
    Pending {
        pod: Arc<Pod>,
        info: Result<Arc<PodInfo>, InvalidPod>,
        attempts: u32,
        /// The message of the last FailedScheduling event recorded for this pod.
        reported: Option<String>,
    },
    Assumed {
        pod: Arc<Pod>,
        info: Arc<PodInfo>,
        node: String,
        attempts: u32,
    },
    Bound {
        info: Arc<PodInfo>,
        node: String,
    },
}

impl PodEntry {
    fn uid(&self) -> &str {
        match self {
            PodEntry::Pending { pod, .. } | PodEntry::Assumed { pod, .. } => pod.metadata.uid.as_deref().unwrap_or(""),
            PodEntry::Bound { info, .. } => &info.uid,
        }
    }
}

/// Settings the state needs; the rest of [`crate::SchedulerConfig`] is the loop's.
#[derive(Clone, Debug)]
pub struct StateConfig {
    pub scheduler_name: String,
    pub backoff: Backoff,
}

/// Which watches have delivered their first complete list; no decision is made before all
/// have, so a pod is never placed on a partial view of the cluster.
#[derive(Debug, Default)]
struct Synced {
    nodes: bool,
    pods: bool,
    services: bool,
}

#[derive(Debug)]
pub struct State {
    config: StateConfig,
    nodes: BTreeMap<String, Arc<NodeInfo>>,
    /// `nodes` as the slice the algorithm takes, rebuilt only when a node changes.
    node_list: Vec<Arc<NodeInfo>>,
    pods_by_node: PodsByNode,
    pods: HashMap<PodKey, PodEntry>,
    /// Service selectors by namespace, then by Service name.
    services: HashMap<String, HashMap<String, BTreeMap<String, String>>>,
    queue: SchedulingQueue,
    synced: Synced,
    /// Names seen since a watch restarted, to drop the objects a relist no longer has.
    relisting_nodes: Option<HashSet<String>>,
    relisting_pods: Option<HashSet<PodKey>>,
    relisting_services: Option<HashSet<(String, String)>>,
}

impl State {
    pub fn new(config: StateConfig) -> State {
        let queue = SchedulingQueue::new(config.backoff);
        State {
            config,
            nodes: BTreeMap::new(),
            node_list: Vec::new(),
            pods_by_node: PodsByNode::default(),
            pods: HashMap::new(),
            services: HashMap::new(),
            queue,
            synced: Synced::default(),
            relisting_nodes: None,
            relisting_pods: None,
            relisting_services: None,
        }
    }

    pub fn is_synced(&self) -> bool {
        self.synced.nodes && self.synced.pods && self.synced.services
    }

    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Node(ev) => self.on_node_event(*ev, now),
            Input::Pod(ev) => self.on_pod_event(*ev, now),
            Input::Service(ev) => self.on_service_event(*ev),
            Input::BindDone { key, uid, node, outcome } => self.on_bind_done(key, &uid, &node, outcome, now),
        }
    }

    /// Makes the next decision, if a pod is ready for an attempt.
    pub fn next_decision(&mut self, now: Instant) -> Option<Decision> {
        if !self.is_synced() {
            return None;
        }
        self.queue.flush_backoff(now);
        while let Some(key) = self.queue.pop() {
            if let Some(decision) = self.attempt(key, now) {
                return Some(decision);
            }
        }
        None
    }

    /// Moves pods whose backoff has passed to the active queue. The loop calls this at the
    /// start of each turn so that [`State::has_ready_work`] sees them.
    pub fn promote_due(&mut self, now: Instant) {
        self.queue.flush_backoff(now);
    }

    /// Whether a call to [`State::next_decision`] may find work now.
    pub fn has_ready_work(&self) -> bool {
        self.is_synced() && self.queue.has_active()
    }

    pub fn next_backoff_deadline(&mut self) -> Option<Instant> {
        self.queue.next_backoff_deadline()
    }

    pub fn flush_unschedulable(&mut self, max_wait: Duration, now: Instant) {
        self.queue.flush_unschedulable(max_wait, now);
    }

    /// Records that a FailedScheduling event with `message` was handed over for writing, so
    /// the same message is not recorded again on every retry.
    pub fn failure_reported(&mut self, key: &PodKey, message: &str) {
        if let Some(PodEntry::Pending { reported, .. }) = self.pods.get_mut(key) {
            *reported = Some(message.to_owned());
        }
    }

    /// How many pods wait in each place of the queue: active, backoff, unschedulable.
    pub fn queue_sizes(&self) -> (usize, usize, usize) {
        self.queue.sizes()
    }

    fn attempt(&mut self, key: PodKey, now: Instant) -> Option<Decision> {
        let Some(PodEntry::Pending { pod, info, attempts, reported }) = self.pods.get(&key) else { return None };
        let pod_ref = pod_ref(pod);
        let result = match info {
            Ok(info) => {
                let spread = SpreadSelector::for_pod(
                    info,
                    self.services.get(&info.namespace).into_iter().flat_map(|s| s.values()),
                );
                let candidate = PodToSchedule { info: info.clone(), spread };
                algorithm::schedule(&candidate, &self.node_list, &self.pods_by_node).map_err(|u| u.to_string())
            }
            Err(invalid) => Err(invalid.to_string()),
        };
        match result {
            Ok(node) => {
                let Some(PodEntry::Pending { pod, info: Ok(info), attempts, .. }) = self.pods.remove(&key) else {
                    return None;
                };
                self.pods_by_node.add(&node, info.clone());
                self.pods.insert(key, PodEntry::Assumed { pod, info, node: node.clone(), attempts });
                Some(Decision::Bind { pod: pod_ref, node })
            }
            Err(message) => {
                let attempts = attempts.saturating_add(1);
                let condition = scheduled_condition(pod);
                let set_condition = condition.as_ref().is_none_or(|c| {
                    c.status != "False"
                        || c.reason.as_deref() != Some("Unschedulable")
                        || c.message.as_deref() != Some(&message)
                });
                let keep_transition_time =
                    condition.filter(|c| c.status == "False").and_then(|c| c.last_transition_time.clone());
                let record_event = reported.as_deref() != Some(message.as_str());
                let priority = priority_of(pod);
                if let Some(PodEntry::Pending { attempts: a, .. }) = self.pods.get_mut(&key) {
                    *a = attempts;
                }
                self.queue.add_unschedulable(key, priority, attempts, now);
                Some(Decision::Unschedulable {
                    pod: pod_ref,
                    message,
                    set_condition,
                    keep_transition_time,
                    record_event,
                })
            }
        }
    }

    // === Nodes ===

    fn on_node_event(&mut self, ev: watcher::Event<Node>, now: Instant) {
        match ev {
            watcher::Event::Init => self.relisting_nodes = Some(HashSet::new()),
            watcher::Event::InitApply(node) => {
                if let (Some(seen), Some(name)) = (&mut self.relisting_nodes, &node.metadata.name) {
                    seen.insert(name.clone());
                }
                self.apply_node(&node, now);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting_nodes.take() {
                    let gone: Vec<String> = self.nodes.keys().filter(|n| !seen.contains(*n)).cloned().collect();
                    for name in gone {
                        self.delete_node(&name);
                    }
                }
                self.synced.nodes = true;
            }
            watcher::Event::Apply(node) => self.apply_node(&node, now),
            watcher::Event::Delete(node) => self.delete_node(node.metadata.name.as_deref().unwrap_or("")),
        }
    }

    fn apply_node(&mut self, node: &Node, now: Instant) {
        let info = NodeInfo::from_node(node);
        // Status heartbeats change nothing the algorithm reads; only real changes rebuild
        // the node list and give unschedulable pods another chance.
        if self.nodes.get(&info.name).is_some_and(|old| **old == info) {
            return;
        }
        self.nodes.insert(info.name.clone(), Arc::new(info));
        self.rebuild_node_list();
        self.queue.move_all_unschedulable(now);
    }

    fn delete_node(&mut self, name: &str) {
        if self.nodes.remove(name).is_some() {
            self.rebuild_node_list();
        }
    }

    fn rebuild_node_list(&mut self) {
        self.node_list = self.nodes.values().cloned().collect();
    }

    // === Services ===

    fn on_service_event(&mut self, ev: watcher::Event<Service>) {
        match ev {
            watcher::Event::Init => self.relisting_services = Some(HashSet::new()),
            watcher::Event::InitApply(svc) => {
                if let Some(seen) = &mut self.relisting_services {
                    seen.insert(service_key(&svc));
                }
                self.apply_service(&svc);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting_services.take() {
                    for (ns, services) in &mut self.services {
                        services.retain(|name, _| seen.contains(&(ns.clone(), name.clone())));
                    }
                    self.services.retain(|_, s| !s.is_empty());
                }
                self.synced.services = true;
            }
            watcher::Event::Apply(svc) => self.apply_service(&svc),
            watcher::Event::Delete(svc) => {
                let (ns, name) = service_key(&svc);
                if let Some(services) = self.services.get_mut(&ns) {
                    services.remove(&name);
                }
            }
        }
    }

    fn apply_service(&mut self, svc: &Service) {
        let (ns, name) = service_key(svc);
        let selector = svc.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        self.services.entry(ns).or_default().insert(name, selector);
    }

    // === Pods ===

    fn on_pod_event(&mut self, ev: watcher::Event<Pod>, now: Instant) {
        match ev {
            watcher::Event::Init => self.relisting_pods = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if let Some(seen) = &mut self.relisting_pods {
                    seen.insert(pod_key(&pod));
                }
                self.apply_pod(pod, now);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.relisting_pods.take() {
                    let gone: Vec<PodKey> = self.pods.keys().filter(|k| !seen.contains(*k)).cloned().collect();
                    for key in gone {
                        self.forget_pod(&key, now);
                    }
                }
                self.synced.pods = true;
            }
            watcher::Event::Apply(pod) => self.apply_pod(pod, now),
            watcher::Event::Delete(pod) => {
                let key = pod_key(&pod);
                if self.pods.get(&key).is_some_and(|e| e.uid() == pod.metadata.uid.as_deref().unwrap_or("")) {
                    self.forget_pod(&key, now);
                }
            }
        }
    }

    fn apply_pod(&mut self, pod: Pod, now: Instant) {
        let key = pod_key(&pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // A different uid under the same name is a new pod: the old one's delete was missed.
        if self.pods.get(&key).is_some_and(|e| e.uid() != uid) {
            self.forget_pod(&key, now);
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).filter(|n| !n.is_empty());
        match node {
            Some(node) => self.apply_bound_pod(key, &pod, node, now),
            None => self.apply_unbound_pod(key, pod, now),
        }
    }

    fn apply_bound_pod(&mut self, key: PodKey, pod: &Pod, node: String, now: Instant) {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            // A finished pod's containers are gone, so its resources are free again.
            self.forget_pod(&key, now);
            return;
        }
        let info = Arc::new(PodInfo::from_pod(pod).unwrap_or_else(|e| {
            tracing::warn!(pod = %key, error = %e, "bound pod has unreadable requests; counting it as requesting nothing");
            PodInfo {
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
                ..Default::default()
            }
        }));
        match self.pods.remove(&key) {
            Some(PodEntry::Pending { .. }) => self.queue.remove(&key),
            Some(PodEntry::Assumed { node: old, .. } | PodEntry::Bound { node: old, .. }) => {
                self.pods_by_node.remove(&old, &info.uid);
            }
            None => {}
        }
        self.pods_by_node.add(&node, info.clone());
        self.pods.insert(key, PodEntry::Bound { info, node });
    }

    fn apply_unbound_pod(&mut self, key: PodKey, pod: Pod, now: Instant) {
        let ours = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .is_none_or(|n| n.is_empty() || n == self.config.scheduler_name);
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let gated = pod.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref()).is_some_and(|g| !g.is_empty());
        let wanted = ours && !deleting && !gated;
        match self.pods.get_mut(&key) {
            // The bind is in flight; its outcome decides what happens next.
            Some(PodEntry::Assumed { pod: stored, .. }) => *stored = Arc::new(pod),
            Some(PodEntry::Pending { .. }) if !wanted => {
                self.pods.remove(&key);
                self.queue.remove(&key);
            }
            Some(PodEntry::Pending { pod: stored, info, .. }) => {
                let new_info = PodInfo::from_pod(&pod).map(Arc::new);
                let changed = match (&*info, &new_info) {
                    (Ok(a), Ok(b)) => a != b,
                    (Err(a), Err(b)) => a != b,
                    _ => true,
                };
                let priority = priority_of(&pod);
                *stored = Arc::new(pod);
                if changed {
                    *info = new_info;
                    self.queue.pod_updated(&key, priority, now);
                }
            }
            // A bound pod cannot become unbound; the uid check above handled re-creation.
            Some(PodEntry::Bound { .. }) => {}
            None if wanted => {
                let priority = priority_of(&pod);
                let info = PodInfo::from_pod(&pod).map(Arc::new);
                self.pods
                    .insert(key.clone(), PodEntry::Pending { pod: Arc::new(pod), info, attempts: 0, reported: None });
                self.queue.add(key, priority);
            }
            None => {}
        }
    }

    /// Drops a pod: deleted, finished or replaced. Resources it held are free, so pods that
    /// did not fit get another chance.
    fn forget_pod(&mut self, key: &PodKey, now: Instant) {
        match self.pods.remove(key) {
            Some(PodEntry::Pending { .. }) => self.queue.remove(key),
            Some(PodEntry::Assumed { info, node, .. } | PodEntry::Bound { info, node }) => {
                self.pods_by_node.remove(&node, &info.uid);
                self.queue.move_all_unschedulable(now);
            }
            None => {}
        }
    }

    // === Binds ===

    fn on_bind_done(&mut self, key: PodKey, uid: &str, node: &str, outcome: BindOutcome, now: Instant) {
        let assumed_here =
            matches!(self.pods.get(&key), Some(e @ PodEntry::Assumed { node: n, .. }) if e.uid() == uid && n == node);
        if !assumed_here {
            // The watch has already shown the pod bound, or it is gone: nothing to undo.
            return;
        }
        if outcome == BindOutcome::Bound {
            // The watch will confirm it; until then the assumption stands.
            return;
        }
        let Some(PodEntry::Assumed { pod, info, node, attempts }) = self.pods.remove(&key) else { return };
        self.pods_by_node.remove(&node, uid);
        let priority = info.priority;
        let attempts = attempts.saturating_add(1);
        self.pods.insert(key.clone(), PodEntry::Pending { pod, info: Ok(info), attempts, reported: None });
        match outcome {
            BindOutcome::Bound => {}
            // The pod is bound elsewhere or on its way out, and the watch will say so. It is
            // parked rather than dropped, in case the conflict was something else: then the
            // next cluster change or the periodic flush retries it.
            BindOutcome::Conflict | BindOutcome::NotFound => self.queue.add_unschedulable(key, priority, attempts, now),
            BindOutcome::Failed(error) => {
                tracing::warn!(pod = %key, %node, %error, "binding failed; retrying after backoff");
                self.queue.add_backoff(key, priority, attempts, now);
            }
        }
    }

    // === Introspection for tests ===

    /// The node each pod is assumed on or bound to.
    #[cfg(test)]
    fn placements(&self) -> BTreeMap<String, String> {
        self.pods
            .iter()
            .filter_map(|(k, e)| match e {
                PodEntry::Assumed { node, .. } | PodEntry::Bound { node, .. } => Some((k.name.clone(), node.clone())),
                PodEntry::Pending { .. } => None,
            })
            .collect()
    }
}

fn pod_key(pod: &Pod) -> PodKey {
    PodKey::new(pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""))
}

fn pod_ref(pod: &Pod) -> PodRef {
    PodRef {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

fn priority_of(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn service_key(svc: &Service) -> (String, String) {
    (svc.metadata.namespace.clone().unwrap_or_default(), svc.metadata.name.clone().unwrap_or_default())
}

fn scheduled_condition(pod: &Pod) -> Option<k8s_openapi::api::core::v1::PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled").cloned()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{
        Container, NodeCondition, NodeSpec, NodeStatus, PodCondition, PodSpec, PodStatus, ResourceRequirements,
        ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn node(name: &str, cpu: &str) -> Node {
        Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(
                    [("cpu", cpu), ("memory", "8Gi"), ("pods", "110")]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
                        .collect(),
                ),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn pod(name: &str, cpu: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some([("cpu".to_owned(), Quantity(cpu.to_owned()))].into_iter().collect()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                scheduler_name: Some("default-scheduler".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn replica(name: &str) -> Pod {
        let mut p = pod(name, "100m");
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "uid-web".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        p
    }

    fn spec_mut(p: &mut Pod) -> &mut PodSpec {
        p.spec.get_or_insert_with(Default::default)
    }

    fn bound(mut p: Pod, node: &str) -> Pod {
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = Some(node.into());
        }
        p
    }

    struct Harness {
        state: State,
        now: Instant,
    }

    impl Harness {
        /// A state that has listed the given nodes and nothing else.
        fn new(nodes: Vec<Node>) -> Harness {
            let mut h = Harness {
                state: State::new(StateConfig {
                    scheduler_name: "default-scheduler".into(),
                    backoff: Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(10) },
                }),
                now: Instant::now(),
            };
            h.feed(Input::node(watcher::Event::Init));
            for n in nodes {
                h.feed(Input::node(watcher::Event::InitApply(n)));
            }
            h.feed(Input::node(watcher::Event::InitDone));
            h.feed(Input::pod(watcher::Event::Init));
            h.feed(Input::pod(watcher::Event::InitDone));
            h.feed(Input::service(watcher::Event::Init));
            h.feed(Input::service(watcher::Event::InitDone));
            h
        }

        fn feed(&mut self, input: Input) {
            self.state.handle(input, self.now);
        }

        fn pod(&mut self, p: Pod) {
            self.feed(Input::pod(watcher::Event::Apply(p)));
        }

        fn decisions(&mut self) -> Vec<Decision> {
            std::iter::from_fn(|| self.state.next_decision(self.now)).collect()
        }

        fn binds(&mut self) -> Vec<(String, String)> {
            self.decisions()
                .into_iter()
                .map(|d| match d {
                    Decision::Bind { pod, node } => (pod.name, node),
                    other => panic!("expected a bind, got {other:?}"),
                })
                .collect()
        }

        fn advance(&mut self, d: Duration) {
            self.now += d;
        }
    }

    #[test]
    fn nothing_is_decided_before_every_watch_has_listed() {
        let mut state = State::new(StateConfig {
            scheduler_name: "default-scheduler".into(),
            backoff: Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(10) },
        });
        let now = Instant::now();
        state.handle(Input::node(watcher::Event::Init), now);
        state.handle(Input::node(watcher::Event::InitApply(node("n1", "4"))), now);
        state.handle(Input::node(watcher::Event::InitDone), now);
        state.handle(Input::pod(watcher::Event::Init), now);
        state.handle(Input::pod(watcher::Event::InitApply(pod("p", "100m"))), now);
        state.handle(Input::pod(watcher::Event::InitDone), now);
        assert_eq!(state.next_decision(now), None, "services have not listed yet");
        state.handle(Input::service(watcher::Event::Init), now);
        state.handle(Input::service(watcher::Event::InitDone), now);
        assert!(matches!(state.next_decision(now), Some(Decision::Bind { .. })));
    }

    #[test]
    fn a_burst_is_spread_by_assumed_pods_before_any_watch_confirmation() {
        let mut h = Harness::new(vec![node("a", "4"), node("b", "4"), node("c", "4")]);
        for i in 0..9 {
            h.pod(replica(&format!("web-{i}")));
        }
        let binds = h.binds();
        assert_eq!(binds.len(), 9);
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for (_, n) in &binds {
            *per_node.entry(n.clone()).or_default() += 1;
        }
        assert_eq!(per_node.values().copied().collect::<Vec<_>>(), vec![3, 3, 3]);
    }

    #[test]
    fn the_watch_confirming_a_bind_does_not_count_the_pod_twice() {
        let mut h = Harness::new(vec![node("a", "1")]);
        h.pod(pod("p1", "600m"));
        let binds = h.binds();
        assert_eq!(binds, vec![("p1".to_owned(), "a".to_owned())]);
        // The watch reports the binding before the bind call returns, then the call returns.
        h.pod(bound(pod("p1", "600m"), "a"));
        h.feed(Input::BindDone {
            key: PodKey::new("default", "p1"),
            uid: "uid-p1".into(),
            node: "a".into(),
            outcome: BindOutcome::Bound,
        });
        h.pod(pod("p2", "400m"));
        assert_eq!(h.binds(), vec![("p2".to_owned(), "a".to_owned())], "600m + 400m fits in 1000m exactly once");
    }

    #[test]
    fn a_failed_bind_undoes_the_assumption_and_retries_after_backoff() {
        let mut h = Harness::new(vec![node("a", "1")]);
        h.pod(pod("p1", "600m"));
        assert_eq!(h.binds().len(), 1);
        h.feed(Input::BindDone {
            key: PodKey::new("default", "p1"),
            uid: "uid-p1".into(),
            node: "a".into(),
            outcome: BindOutcome::Failed("connection reset".into()),
        });
        // The node's 600m are free again: another pod can take them.
        h.pod(pod("p2", "600m"));
        assert_eq!(h.binds(), vec![("p2".to_owned(), "a".to_owned())]);
        h.advance(Duration::from_secs(1));
        let decisions = h.decisions();
        assert!(
            matches!(&decisions[..], [Decision::Unschedulable { pod, .. }] if pod.name == "p1"),
            "p1 is retried after its backoff and no longer fits: {decisions:?}"
        );
    }

    #[test]
    fn a_conflicting_bind_is_dropped_and_the_watch_decides() {
        let mut h = Harness::new(vec![node("a", "4"), node("b", "4")]);
        h.pod(pod("p1", "100m"));
        let (_, chosen) = h.binds().remove(0);
        h.feed(Input::BindDone {
            key: PodKey::new("default", "p1"),
            uid: "uid-p1".into(),
            node: chosen.clone(),
            outcome: BindOutcome::Conflict,
        });
        assert!(h.decisions().is_empty(), "not retried right away");
        let elsewhere = if chosen == "a" { "b" } else { "a" };
        h.pod(bound(pod("p1", "100m"), elsewhere));
        assert_eq!(h.state.placements().get("p1").map(String::as_str), Some(elsewhere));
        assert_eq!(h.state.pods_by_node.count(&chosen), 0);
        h.advance(Duration::from_secs(600));
        h.state.flush_unschedulable(Duration::from_secs(300), h.now);
        assert!(h.decisions().is_empty(), "a bound pod is never attempted again");
    }

    #[test]
    fn an_unschedulable_pod_reports_once_and_retries_when_a_node_arrives() {
        let mut h = Harness::new(vec![node("small", "500m")]);
        h.pod(pod("big", "2"));
        let decisions = h.decisions();
        let [Decision::Unschedulable { pod, message, set_condition, record_event, .. }] = &decisions[..] else {
            panic!("{decisions:?}")
        };
        assert_eq!(pod.name, "big");
        assert_eq!(message, "0/1 nodes are available: 1 Insufficient cpu.");
        assert!(*set_condition && *record_event);
        h.state.failure_reported(&PodKey::new("default", "big"), message);

        // A node change that does not help: the retry gives the same message, which was
        // already recorded, and the watch now shows the condition written.
        let mut with_condition = self::pod("big", "2");
        with_condition.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some(message.clone()),
                ..Default::default()
            }]),
            ..Default::default()
        });
        h.pod(with_condition);
        let mut labelled = node("small", "500m");
        labelled.metadata.labels = Some([("x".to_owned(), "y".to_owned())].into_iter().collect());
        h.feed(Input::node(watcher::Event::Apply(labelled)));
        h.advance(Duration::from_secs(1));
        let decisions = h.decisions();
        let [Decision::Unschedulable { set_condition, record_event, .. }] = &decisions[..] else {
            panic!("{decisions:?}")
        };
        assert!(!set_condition && !record_event, "nothing new to say");

        // A heartbeat (the same node as far as scheduling goes) does not trigger a retry.
        let mut heartbeat = node("small", "500m");
        heartbeat.metadata.labels = Some([("x".to_owned(), "y".to_owned())].into_iter().collect());
        heartbeat.status.get_or_insert_with(Default::default).phase = Some("Running".into());
        h.feed(Input::node(watcher::Event::Apply(heartbeat)));
        h.advance(Duration::from_secs(60));
        assert!(h.decisions().is_empty());

        h.feed(Input::node(watcher::Event::Apply(node("large", "4"))));
        assert_eq!(h.binds(), vec![("big".to_owned(), "large".to_owned())]);
    }

    #[test]
    fn a_pod_whose_backoff_passed_is_ready_work_once_promoted() {
        // The loop asks `has_ready_work` before deciding, so backed-off pods must be promoted
        // first or they would never be attempted again.
        let mut h = Harness::new(vec![node("a", "500m")]);
        h.pod(pod("p", "1"));
        assert!(matches!(&h.decisions()[..], [Decision::Unschedulable { .. }]));
        h.feed(Input::node(watcher::Event::Apply(node("b", "2"))));
        assert!(!h.state.has_ready_work(), "still backing off");
        let deadline = h.state.next_backoff_deadline().expect("a backoff deadline");
        h.now = deadline;
        assert!(!h.state.has_ready_work(), "not promoted yet");
        h.state.promote_due(h.now);
        assert!(h.state.has_ready_work());
        assert_eq!(h.binds(), vec![("p".to_owned(), "b".to_owned())]);
    }

    #[test]
    fn a_deleted_pod_frees_room_for_a_waiting_one() {
        let mut h = Harness::new(vec![node("a", "1")]);
        h.pod(bound(pod("running", "800m"), "a"));
        h.pod(pod("waiting", "500m"));
        assert!(matches!(&h.decisions()[..], [Decision::Unschedulable { .. }]));
        h.advance(Duration::from_secs(2));
        h.feed(Input::pod(watcher::Event::Delete(bound(pod("running", "800m"), "a"))));
        assert_eq!(h.binds(), vec![("waiting".to_owned(), "a".to_owned())]);
    }

    #[test]
    fn finished_pods_free_their_resources() {
        let mut h = Harness::new(vec![node("a", "1")]);
        let mut done = bound(pod("job", "800m"), "a");
        h.pod(done.clone());
        done.status = Some(PodStatus { phase: Some("Succeeded".into()), ..Default::default() });
        h.pod(done);
        h.pod(pod("next", "800m"));
        assert_eq!(h.binds(), vec![("next".to_owned(), "a".to_owned())]);
    }

    #[test]
    fn other_schedulers_gated_and_deleting_pods_are_left_alone() {
        let mut h = Harness::new(vec![node("a", "4")]);
        let mut other = pod("other", "100m");
        spec_mut(&mut other).scheduler_name = Some("custom".into());
        h.pod(other);
        let mut gated = pod("gated", "100m");
        spec_mut(&mut gated).scheduling_gates = Some(vec![Default::default()]);
        h.pod(gated);
        let mut deleting = pod("deleting", "100m");
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        h.pod(deleting);
        let mut unset = pod("unset", "100m");
        spec_mut(&mut unset).scheduler_name = None;
        h.pod(unset);
        assert_eq!(h.binds(), vec![("unset".to_owned(), "a".to_owned())]);

        // Bound pods of other schedulers still use the node.
        let mut other_bound = bound(pod("other-bound", "3900m"), "a");
        spec_mut(&mut other_bound).scheduler_name = Some("custom".into());
        h.pod(other_bound);
        h.pod(pod("late", "100m"));
        assert!(matches!(&h.decisions()[..], [Decision::Unschedulable { .. }]));
    }

    #[test]
    fn a_pending_pod_that_starts_deleting_leaves_the_queue() {
        let mut h = Harness::new(vec![]);
        h.pod(pod("p", "100m"));
        assert!(matches!(&h.decisions()[..], [Decision::Unschedulable { .. }]));
        let mut deleting = pod("p", "100m");
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        h.pod(deleting);
        assert_eq!(h.state.queue_sizes(), (0, 0, 0));
    }

    #[test]
    fn a_relist_drops_what_it_no_longer_has() {
        let mut h = Harness::new(vec![node("a", "1"), node("b", "1")]);
        h.pod(bound(pod("stale", "1"), "a"));
        h.feed(Input::pod(watcher::Event::Init));
        h.feed(Input::pod(watcher::Event::InitDone));
        h.feed(Input::node(watcher::Event::Init));
        h.feed(Input::node(watcher::Event::InitApply(node("a", "1"))));
        h.feed(Input::node(watcher::Event::InitDone));
        h.pod(pod("p", "1"));
        assert_eq!(h.binds(), vec![("p".to_owned(), "a".to_owned())], "b is gone and a is free again");
    }

    #[test]
    fn a_recreated_pod_is_a_new_pod() {
        let mut h = Harness::new(vec![node("a", "1")]);
        h.pod(bound(pod("p", "1"), "a"));
        let mut again = pod("p", "1");
        again.metadata.uid = Some("uid-p-2".into());
        h.pod(again);
        assert_eq!(h.binds(), vec![("p".to_owned(), "a".to_owned())], "the old incarnation's cpu is released");
    }

    #[test]
    fn services_spread_their_pods() {
        let mut h = Harness::new(vec![node("a", "4"), node("b", "4")]);
        let svc = Service {
            metadata: ObjectMeta { name: Some("db".into()), namespace: Some("default".into()), ..Default::default() },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_owned(), "db".to_owned())].into_iter().collect()),
                ..Default::default()
            }),
            status: None,
        };
        h.feed(Input::service(watcher::Event::Apply(svc)));
        // Node a runs a heavier unrelated pod, so least-allocated alone would pick b twice.
        h.pod(bound(pod("other", "1"), "a"));
        let db = |name: &str| {
            let mut p = pod(name, "100m");
            p.metadata.labels = Some([("app".to_owned(), "db".to_owned())].into_iter().collect());
            p
        };
        h.pod(db("db-0"));
        h.pod(db("db-1"));
        let nodes: Vec<String> = h.binds().into_iter().map(|(_, n)| n).collect();
        assert_eq!(nodes, vec!["b", "a"]);
    }

    #[test]
    fn an_unreadable_pod_is_reported_not_scheduled() {
        let mut h = Harness::new(vec![node("a", "4")]);
        h.pod(pod("bad", "a lot"));
        let decisions = h.decisions();
        let [Decision::Unschedulable { message, .. }] = &decisions[..] else { panic!("{decisions:?}") };
        assert!(message.contains("invalid cpu request"), "{message}");
    }

    #[test]
    fn priority_goes_first() {
        let mut h = Harness::new(vec![node("a", "1")]);
        h.pod(pod("low", "600m"));
        let mut high = pod("high", "600m");
        spec_mut(&mut high).priority = Some(1000);
        h.pod(high);
        let decisions = h.decisions();
        assert!(matches!(&decisions[0], Decision::Bind { pod, .. } if pod.name == "high"), "{decisions:?}");
        assert!(matches!(&decisions[1], Decision::Unschedulable { pod, .. } if pod.name == "low"));
    }
}
