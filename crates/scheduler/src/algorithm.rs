//! The scheduling decision: a pure function from a pod and the cluster as the scheduler sees
//! it to a node name, or to the reasons no node fits.
//!
//! Everything it needs is in its arguments; it does no I/O, reads no clock and keeps no
//! state, so the same inputs always give the same node. That is what makes the heavy unit
//! testing below possible, and the burst behaviour predictable: the caller counts the pods it
//! has just placed ("assumed" pods) in `pods_by_node` before deciding the next one.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::filter::{self, Reason};
use crate::model::{NodeInfo, PodInfo};
use crate::score::{self, SpreadSelector};
use crate::usage::{NodeUsage, PodsByNode};

/// A pod to place: its own requirements, and the selector of the peers it should spread from
/// (which depends on the Services in its namespace, so the caller works it out).
#[derive(Clone, Debug)]
pub struct PodToSchedule {
    pub info: Arc<PodInfo>,
    pub spread: Option<SpreadSelector>,
}

/// No node fits: how many nodes there were and how many were rejected for each reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unschedulable {
    pub n_nodes: usize,
    pub reasons: BTreeMap<Reason, usize>,
}

impl fmt::Display for Unschedulable {
    /// Upstream's `FitError` message, e.g.
    /// `0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu.`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.n_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        let mut parts: Vec<String> = self.reasons.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        // Upstream sorts the formatted strings, counts included.
        parts.sort();
        write!(f, "0/{} nodes are available: {}.", self.n_nodes, parts.join(", "))
    }
}

/// Picks the node for `pod` among `nodes` (in any fixed order; the caller keeps them sorted by
/// name), given the pods already on each node, assumed ones included.
///
/// Filters run first; among the nodes that pass, the highest total score wins. Ties are
/// broken by a hash of the pod's name, which is deterministic but spreads ties fairly
/// across the tied nodes rather than always favouring the first by name.
pub fn schedule(
    pod: &PodToSchedule,
    nodes: &[Arc<NodeInfo>],
    pods_by_node: &PodsByNode,
) -> Result<String, Unschedulable> {
    let info = &pod.info;
    let mut feasible: Vec<(&NodeInfo, Option<&NodeUsage>)> = Vec::with_capacity(nodes.len());
    let mut reasons: BTreeMap<Reason, usize> = BTreeMap::new();
    for node in nodes {
        let usage = pods_by_node.get(&node.name);
        match filter::check(info, node, usage) {
            Ok(()) => feasible.push((node, usage)),
            Err(failed) => {
                for r in failed {
                    *reasons.entry(r).or_default() += 1;
                }
            }
        }
    }
    match feasible.as_slice() {
        [] => return Err(Unschedulable { n_nodes: nodes.len(), reasons }),
        // Upstream skips scoring when there is no choice to make.
        [(only, _)] => return Ok(only.name.clone()),
        _ => {}
    }
    let scores = score::score(info, pod.spread.as_ref(), &feasible);
    let best = scores.iter().copied().max().unwrap_or(0);
    let tied: Vec<usize> = scores.iter().enumerate().filter(|(_, s)| **s == best).map(|(i, _)| i).collect();
    let pick = tie_break(info, tied.len());
    let idx = tied.get(pick).copied().unwrap_or(0);
    Ok(feasible[idx].0.name.clone())
}

/// An index below `n`, from an FNV-1a hash of the pod's namespace and name: stable across
/// runs and Rust versions, and uniform enough that tied nodes share the pods.
fn tie_break(pod: &PodInfo, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pod.namespace.bytes().chain([b'/']).chain(pod.name.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % n as u64) as usize
}

#[cfg(test)]
mod tests {
    //! The cases are built with small builders so each test states only what it is about.

    use std::collections::HashMap;

    use super::*;
    use crate::model::{
        HostPort, NodeSelectorTerm, Requirement, Resources, SelectorOperator, Taint, TaintEffect, Toleration,
        TolerationOperator,
    };

    const GI: i64 = 1 << 30;

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: BTreeMap::new(),
            unschedulable: false,
            taints: Vec::new(),
            allocatable: Resources { milli_cpu: 4000, memory: 8 * GI, ..Default::default() },
            allowed_pods: 110,
            zone: None,
        }
    }

    fn pod(name: &str) -> PodInfo {
        PodInfo {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            non_zero_milli_cpu: 100,
            non_zero_memory: 200 << 20,
            ..Default::default()
        }
    }

    fn with_cpu(mut p: PodInfo, milli: i64) -> PodInfo {
        p.requests.milli_cpu = milli;
        p.non_zero_milli_cpu = milli;
        p
    }

    fn replica(rs: &str, i: usize) -> PodInfo {
        let mut p = pod(&format!("{rs}-{i}"));
        p.controller_uid = Some(format!("uid-{rs}"));
        p.labels.insert("app".into(), rs.into());
        p
    }

    /// A cluster the tests schedule into: nodes and the pods bound so far.
    struct Cluster {
        nodes: Vec<Arc<NodeInfo>>,
        pods: PodsByNode,
        services: Vec<BTreeMap<String, String>>,
    }

    impl Cluster {
        fn new(nodes: Vec<NodeInfo>) -> Cluster {
            let mut nodes: Vec<_> = nodes.into_iter().map(Arc::new).collect();
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            Cluster { nodes, pods: PodsByNode::default(), services: Vec::new() }
        }

        fn try_place(&self, pod: &PodInfo) -> Result<String, Unschedulable> {
            let spread = SpreadSelector::for_pod(pod, &self.services);
            schedule(&PodToSchedule { info: Arc::new(pod.clone()), spread }, &self.nodes, &self.pods)
        }

        /// Schedules and assumes the pod, as the scheduler's loop does.
        #[track_caller]
        fn place(&mut self, pod: PodInfo) -> String {
            let node = self.try_place(&pod).unwrap_or_else(|e| panic!("{}: {e}", pod.name));
            self.pods.add(&node, Arc::new(pod));
            node
        }

        #[track_caller]
        fn fail(&self, pod: &PodInfo) -> String {
            match self.try_place(pod) {
                Ok(n) => panic!("{} should not fit, went to {n}", pod.name),
                Err(e) => e.to_string(),
            }
        }

        fn counts(&self) -> Vec<usize> {
            self.nodes.iter().map(|n| self.pods.count(&n.name)).collect()
        }
    }

    // === Spreading ===

    #[test]
    fn two_replicas_on_two_nodes_land_apart() {
        let mut c = Cluster::new(vec![node("a"), node("b")]);
        let first = c.place(replica("web", 0));
        let second = c.place(replica("web", 1));
        assert_ne!(first, second);
    }

    #[test]
    fn nine_replicas_on_three_nodes_land_three_each() {
        let mut c = Cluster::new(vec![node("a"), node("b"), node("c")]);
        for i in 0..9 {
            c.place(replica("web", i));
        }
        assert_eq!(c.counts(), vec![3, 3, 3]);
    }

    #[test]
    fn many_replica_sets_interleaved_spread_each() {
        let mut c = Cluster::new((0..10).map(|i| node(&format!("n{i:02}"))).collect());
        for i in 0..10 {
            for rs in ["a", "b", "c"] {
                c.place(replica(rs, i));
            }
        }
        for rs in ["a", "b", "c"] {
            let uid = format!("uid-{rs}");
            for n in &c.nodes {
                let on_node = c.pods.get(&n.name).map_or(0, |u| u.by_controller.get(&uid).copied().unwrap_or(0));
                assert_eq!(on_node, 1, "{rs} on {}", n.name);
            }
        }
    }

    #[test]
    fn spreading_beats_least_allocated_on_equal_nodes() {
        let mut c = Cluster::new(vec![node("a"), node("b")]);
        // Node a is busier, but already runs no replica; b runs one.
        c.pods.add("a", Arc::new(with_cpu(pod("big"), 1000)));
        c.pods.add("b", Arc::new(replica("web", 0)));
        assert_eq!(c.place(replica("web", 1)), "a");
    }

    #[test]
    fn service_pods_without_a_controller_spread() {
        let mut c = Cluster::new(vec![node("a"), node("b"), node("c")]);
        c.services.push([("app".to_owned(), "db".to_owned())].into_iter().collect());
        // Load the nodes unevenly with unrelated pods so least-allocated alone would pile up.
        c.pods.add("a", Arc::new(with_cpu(pod("x"), 10)));
        for i in 0..6 {
            let mut p = pod(&format!("db-{i}"));
            p.labels.insert("app".into(), "db".into());
            c.place(p);
        }
        assert_eq!(c.counts(), vec![3, 2, 2], "two db pods per node plus x on a");
    }

    #[test]
    fn pods_in_other_namespaces_do_not_count_for_spreading() {
        let s = SpreadSelector {
            namespace: "default".into(),
            controller_uid: None,
            service_selectors: vec![[("app".to_owned(), "db".to_owned())].into_iter().collect()],
        };
        let mut p = pod("p");
        p.labels.insert("app".into(), "db".into());
        assert!(s.matches(&p));
        p.namespace = "other".into();
        assert!(!s.matches(&p));
    }

    #[test]
    fn terminating_pods_do_not_count_for_spreading() {
        let mut c = Cluster::new(vec![node("a"), node("b")]);
        let mut leaving = replica("web", 0);
        leaving.terminating = true;
        c.pods.add("a", Arc::new(leaving));
        c.pods.add("b", Arc::new(replica("web", 1)));
        assert_eq!(c.place(replica("web", 2)), "a");
    }

    #[test]
    fn spreading_prefers_the_emptier_zone() {
        let zoned = |name: &str, zone: &str| NodeInfo { zone: Some(zone.into()), ..node(name) };
        let mut c = Cluster::new(vec![zoned("a1", "a"), zoned("a2", "a"), zoned("b1", "b")]);
        c.place(replica("web", 0));
        c.place(replica("web", 1));
        let zone_of = |c: &Cluster, zone: &str| {
            c.nodes.iter().filter(|n| n.zone.as_deref() == Some(zone)).map(|n| c.pods.count(&n.name)).sum::<usize>()
        };
        assert_eq!((zone_of(&c, "a"), zone_of(&c, "b")), (1, 1), "one replica per zone first");
    }

    #[test]
    fn unrelated_pods_spread_by_load() {
        let mut c = Cluster::new(vec![node("a"), node("b"), node("c")]);
        for i in 0..30 {
            c.place(pod(&format!("p{i}")));
        }
        assert_eq!(c.counts(), vec![10, 10, 10]);
    }

    #[test]
    fn ties_are_broken_by_name_not_node_order() {
        let c = Cluster::new((0..4).map(|i| node(&format!("n{i}"))).collect());
        let mut chosen: HashMap<String, usize> = HashMap::new();
        for i in 0..200 {
            *chosen.entry(c.try_place(&pod(&format!("p{i}"))).expect("fits")).or_default() += 1;
        }
        assert_eq!(chosen.len(), 4, "every tied node gets some first pods: {chosen:?}");
        assert!(chosen.values().all(|n| *n >= 25), "roughly fair: {chosen:?}");
        // The same pod always gets the same node.
        assert_eq!(c.try_place(&pod("p7")), c.try_place(&pod("p7")));
    }

    // === Filters ===

    #[test]
    fn cordoned_nodes_get_nothing() {
        let mut c = Cluster::new(vec![NodeInfo { unschedulable: true, ..node("a") }, node("b")]);
        for i in 0..5 {
            assert_eq!(c.place(replica("web", i)), "b");
        }
    }

    #[test]
    fn tolerating_the_cordon_taint_allows_a_cordoned_node() {
        let c = Cluster::new(vec![NodeInfo { unschedulable: true, ..node("a") }]);
        let mut p = pod("ds");
        p.tolerations.push(Toleration {
            key: "node.kubernetes.io/unschedulable".into(),
            operator: TolerationOperator::Exists,
            value: String::new(),
            effect: Some(TaintEffect::NoSchedule),
        });
        assert_eq!(c.try_place(&p).as_deref(), Ok("a"));
    }

    #[test]
    fn not_ready_nodes_get_nothing() {
        let not_ready = NodeInfo {
            taints: vec![Taint::new("node.kubernetes.io/not-ready", "", TaintEffect::NoSchedule)],
            ..node("a")
        };
        let mut c = Cluster::new(vec![not_ready, node("b")]);
        for i in 0..5 {
            assert_eq!(c.place(replica("web", i)), "b");
        }
        let c = Cluster::new(vec![NodeInfo { name: "a".into(), ..c.nodes[0].as_ref().clone() }]);
        assert_eq!(
            c.fail(&pod("p")),
            "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
        );
    }

    #[test]
    fn taints_need_tolerations() {
        let tainted = NodeInfo { taints: vec![Taint::new("dedicated", "gpu", TaintEffect::NoSchedule)], ..node("a") };
        let mut c = Cluster::new(vec![tainted, node("b")]);
        for i in 0..3 {
            assert_eq!(c.place(replica("web", i)), "b");
        }
        let mut tolerant = pod("t");
        tolerant.tolerations.push(Toleration {
            key: "dedicated".into(),
            operator: TolerationOperator::Equal,
            value: "gpu".into(),
            effect: None,
        });
        assert_eq!(c.place(tolerant), "a", "tolerated and emptier");
    }

    #[test]
    fn no_execute_taints_filter_and_prefer_no_schedule_only_scores() {
        let c = Cluster::new(vec![
            NodeInfo { taints: vec![Taint::new("k", "v", TaintEffect::NoExecute)], ..node("a") },
            NodeInfo { taints: vec![Taint::new("k", "v", TaintEffect::PreferNoSchedule)], ..node("b") },
        ]);
        assert_eq!(c.try_place(&pod("p")).as_deref(), Ok("b"), "PreferNoSchedule still allows the node");
        let c = Cluster::new(vec![
            NodeInfo { taints: vec![Taint::new("k", "v", TaintEffect::PreferNoSchedule)], ..node("a") },
            node("b"),
        ]);
        for i in 0..10 {
            assert_eq!(c.try_place(&pod(&format!("p{i}"))).as_deref(), Ok("b"));
        }
    }

    #[test]
    fn prefer_no_schedule_is_outweighed_by_a_full_node() {
        let mut c = Cluster::new(vec![
            NodeInfo { taints: vec![Taint::new("k", "v", TaintEffect::PreferNoSchedule)], ..node("a") },
            NodeInfo { allocatable: Resources { milli_cpu: 1000, memory: 8 * GI, ..Default::default() }, ..node("b") },
        ]);
        c.place(with_cpu(pod("big"), 1000));
        assert_eq!(c.try_place(&with_cpu(pod("next"), 100)).as_deref(), Ok("a"));
    }

    #[test]
    fn node_selector_is_honoured() {
        let ssd = NodeInfo { labels: [("disk".to_owned(), "ssd".to_owned())].into_iter().collect(), ..node("b") };
        let mut c = Cluster::new(vec![node("a"), ssd]);
        let mut p = pod("p");
        p.node_selector.insert("disk".into(), "ssd".into());
        for i in 0..3 {
            let mut p = p.clone();
            p.name = format!("p{i}");
            assert_eq!(c.place(p), "b");
        }
        p.node_selector.insert("disk".into(), "nvme".into());
        assert_eq!(c.fail(&p), "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.");
    }

    fn req(key: &str, op: SelectorOperator, values: &[&str]) -> Requirement {
        Requirement { key: key.into(), operator: op, values: values.iter().map(|v| (*v).to_owned()).collect() }
    }

    fn term(exprs: Vec<Requirement>, fields: Vec<Requirement>) -> NodeSelectorTerm {
        NodeSelectorTerm { match_expressions: exprs, match_fields: fields, valid: true }
    }

    fn labelled(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
        NodeInfo { labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(), ..node(name) }
    }

    #[test]
    fn required_node_affinity_operators() {
        use SelectorOperator::*;
        let c = Cluster::new(vec![
            labelled("a", &[("zone", "x"), ("cores", "8")]),
            labelled("b", &[("zone", "y"), ("cores", "32")]),
            labelled("c", &[("gpu", "")]),
        ]);
        let cases: Vec<(Vec<NodeSelectorTerm>, &[&str])> = vec![
            (vec![term(vec![req("zone", In, &["x"])], vec![])], &["a"]),
            (vec![term(vec![req("zone", NotIn, &["x"])], vec![])], &["b", "c"]),
            (vec![term(vec![req("gpu", Exists, &[])], vec![])], &["c"]),
            (vec![term(vec![req("zone", DoesNotExist, &[])], vec![])], &["c"]),
            (vec![term(vec![req("cores", Gt, &["16"])], vec![])], &["b"]),
            (vec![term(vec![req("cores", Lt, &["16"])], vec![])], &["a"]),
            (vec![term(vec![], vec![req("metadata.name", In, &["c"])])], &["c"]),
            (vec![term(vec![], vec![req("metadata.name", NotIn, &["c"])])], &["a", "b"]),
            // Terms are ORed, requirements in a term ANDed.
            (
                vec![term(vec![req("zone", In, &["x"])], vec![]), term(vec![req("gpu", Exists, &[])], vec![])],
                &["a", "c"],
            ),
            (vec![term(vec![req("zone", In, &["x", "y"]), req("cores", Gt, &["8"])], vec![])], &["b"]),
            (vec![term(vec![req("zone", In, &["x"])], vec![req("metadata.name", In, &["b"])])], &[]),
        ];
        for (terms, want) in cases {
            let mut p = pod("p");
            p.required_terms = Some(terms.clone());
            let fits: Vec<&str> =
                c.nodes.iter().filter(|n| filter::check(&p, n, None).is_ok()).map(|n| n.name.as_str()).collect();
            assert_eq!(fits, want, "{terms:?}");
        }
    }

    #[test]
    fn empty_required_terms_match_nothing() {
        let c = Cluster::new(vec![node("a")]);
        let mut p = pod("p");
        p.required_terms = Some(vec![]);
        assert!(c.try_place(&p).is_err());
        p.required_terms = Some(vec![term(vec![], vec![])]);
        assert!(c.try_place(&p).is_err());
        p.required_terms = Some(vec![NodeSelectorTerm {
            valid: false,
            ..term(vec![req("x", SelectorOperator::Exists, &[])], vec![])
        }]);
        assert!(c.try_place(&p).is_err());
    }

    #[test]
    fn preferred_node_affinity_scores() {
        let c = Cluster::new(vec![labelled("a", &[("zone", "x")]), labelled("b", &[("zone", "y")])]);
        for (zone, want) in [("x", "a"), ("y", "b")] {
            let mut p = pod("p");
            p.preferred_terms = vec![(50, term(vec![req("zone", SelectorOperator::In, &[zone])], vec![]))];
            assert_eq!(c.try_place(&p).as_deref(), Ok(want));
        }
    }

    #[test]
    fn resources_must_fit() {
        let mut c = Cluster::new(vec![node("a"), node("b")]);
        let first = c.place(with_cpu(pod("p1"), 3000));
        let second = c.place(with_cpu(pod("p2"), 3000));
        assert_ne!(first, second, "least-allocated puts the second big pod on the empty node");
        // Both nodes have 1000m left.
        assert_eq!(c.fail(&with_cpu(pod("p3"), 1500)), "0/2 nodes are available: 2 Insufficient cpu.");
        let mut mem = pod("m");
        mem.requests.memory = 9 * GI;
        mem.requests.milli_cpu = 2000;
        assert_eq!(c.fail(&mem), "0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory.");
        assert!(c.try_place(&with_cpu(pod("p4"), 1000)).is_ok(), "exactly what is left fits");
    }

    #[test]
    fn extended_resources_and_ephemeral_storage() {
        let gpu_node = NodeInfo {
            allocatable: Resources {
                milli_cpu: 4000,
                memory: 8 * GI,
                ephemeral_storage: 10 * GI,
                scalar: [("example.com/gpu".to_owned(), 2)].into_iter().collect(),
            },
            ..node("gpu")
        };
        let mut c = Cluster::new(vec![node("plain"), gpu_node]);
        let mut p = pod("train");
        p.requests.scalar.insert("example.com/gpu".into(), 2);
        assert_eq!(c.place(p.clone()), "gpu");
        p.name = "train2".into();
        assert_eq!(c.fail(&p), "0/2 nodes are available: 2 Insufficient example.com/gpu.");
        let mut disk = pod("disk");
        disk.requests.ephemeral_storage = 11 * GI;
        assert_eq!(c.fail(&disk), "0/2 nodes are available: 2 Insufficient ephemeral-storage.");
    }

    #[test]
    fn pod_count_is_a_resource() {
        let mut c =
            Cluster::new(vec![NodeInfo { allowed_pods: 2, ..node("a") }, NodeInfo { allowed_pods: 0, ..node("b") }]);
        c.place(pod("p1"));
        c.place(pod("p2"));
        assert_eq!(c.fail(&pod("p3")), "0/2 nodes are available: 2 Too many pods.");
    }

    #[test]
    fn host_ports_conflict() {
        let mut c = Cluster::new(vec![node("a"), node("b")]);
        let web = |name: &str, ip: &str| {
            let mut p = pod(name);
            p.host_ports.push(HostPort { ip: ip.into(), protocol: "TCP".into(), port: 80 });
            p
        };
        let first = c.place(web("w1", "0.0.0.0"));
        let second = c.place(web("w2", "0.0.0.0"));
        assert_ne!(first, second);
        assert_eq!(
            c.fail(&web("w3", "10.0.0.1")),
            "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
        );
    }

    #[test]
    fn the_first_failing_filter_names_the_reason() {
        // Cordoned and tainted and too small: only "unschedulable" is reported for it.
        let everything_wrong = NodeInfo {
            unschedulable: true,
            taints: vec![Taint::new("k", "v", TaintEffect::NoSchedule)],
            allocatable: Resources::default(),
            ..node("a")
        };
        let tainted = NodeInfo { taints: vec![Taint::new("k", "v", TaintEffect::NoSchedule)], ..node("b") };
        let small = NodeInfo { allocatable: Resources { milli_cpu: 100, ..Default::default() }, ..node("c") };
        let c = Cluster::new(vec![everything_wrong, tainted, small, NodeInfo { unschedulable: true, ..node("d") }]);
        assert_eq!(
            c.fail(&with_cpu(pod("p"), 500)),
            "0/4 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}, \
             2 node(s) were unschedulable."
        );
    }

    #[test]
    fn the_upstream_example_message() {
        let c = Cluster::new(vec![
            NodeInfo { unschedulable: true, ..node("a") },
            NodeInfo { allocatable: Resources { milli_cpu: 100, memory: GI, ..Default::default() }, ..node("b") },
            NodeInfo { allocatable: Resources { milli_cpu: 100, memory: GI, ..Default::default() }, ..node("c") },
        ]);
        assert_eq!(
            c.fail(&with_cpu(pod("p"), 200)),
            "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
        );
    }

    #[test]
    fn no_nodes_at_all() {
        let c = Cluster::new(vec![]);
        assert_eq!(c.fail(&pod("p")), "no nodes available to schedule pods");
    }

    #[test]
    fn pods_on_unknown_nodes_do_not_confuse_anything() {
        let mut c = Cluster::new(vec![node("a")]);
        c.pods.add("gone", Arc::new(with_cpu(pod("orphan"), 4000)));
        assert_eq!(c.place(with_cpu(pod("p"), 4000)), "a");
    }

    #[test]
    fn hundred_nodes_thousand_pods_fill_evenly() {
        let mut c = Cluster::new((0..100).map(|i| node(&format!("node-{i:03}"))).collect());
        for rs in 0..10 {
            for i in 0..100 {
                c.place(with_cpu(replica(&format!("rs{rs}"), i), 100));
            }
        }
        assert!(c.counts().iter().all(|n| *n == 10), "{:?}", c.counts());
    }
}
