//! Filters: whether a pod may run on a node at all.
//!
//! The checks run in upstream's plugin order (NodeUnschedulable, TaintToleration,
//! NodeAffinity, NodePorts, NodeResourcesFit) and a node is rejected by the first that fails,
//! so the reasons in an unschedulable pod's message are the ones upstream would give.

use std::fmt;

use crate::model::{NodeInfo, PodInfo, TAINT_UNSCHEDULABLE, Taint, TaintEffect};
use crate::usage::NodeUsage;

/// Why a node was filtered out. `Display` gives upstream's wording, which ends up in the
/// pod's `PodScheduled` condition and `FailedScheduling` event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The node is cordoned (`spec.unschedulable`).
    Unschedulable,
    /// The node has a NoSchedule or NoExecute taint the pod does not tolerate.
    UntoleratedTaint { key: String, value: String },
    /// `nodeSelector` or required node affinity rule the node out.
    NodeAffinity,
    /// A host port the pod wants is taken on the node.
    HostPorts,
    /// The node runs as many pods as its `allocatable.pods` allows.
    TooManyPods,
    /// The node lacks this much of a resource (`cpu`, `memory`, ...).
    Insufficient(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Unschedulable => f.write_str("node(s) were unschedulable"),
            Reason::UntoleratedTaint { key, value } => write!(f, "node(s) had untolerated taint {{{key}: {value}}}"),
            Reason::NodeAffinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Reason::HostPorts => f.write_str("node(s) didn't have free ports for the requested pod ports"),
            Reason::TooManyPods => f.write_str("Too many pods"),
            Reason::Insufficient(resource) => write!(f, "Insufficient {resource}"),
        }
    }
}

/// Checks whether `pod` fits `node`, given what the node's pods already use.
/// On failure, returns the failing check's reasons (the resource check may give several).
pub fn check(pod: &PodInfo, node: &NodeInfo, usage: Option<&NodeUsage>) -> Result<(), Vec<Reason>> {
    if node.unschedulable && !tolerates_cordon(pod) {
        return Err(vec![Reason::Unschedulable]);
    }
    if let Some(taint) = untolerated_taint(pod, node) {
        return Err(vec![Reason::UntoleratedTaint { key: taint.key.clone(), value: taint.value.clone() }]);
    }
    if !matches_node_affinity(pod, node) {
        return Err(vec![Reason::NodeAffinity]);
    }
    if let Some(usage) = usage
        && pod.host_ports.iter().any(|want| usage.host_ports.iter().any(|used| want.conflicts(used)))
    {
        return Err(vec![Reason::HostPorts]);
    }
    let insufficient = insufficient_resources(pod, node, usage);
    if insufficient.is_empty() { Ok(()) } else { Err(insufficient) }
}

/// A pod that tolerates the cordon taint (DaemonSet pods do) may go to a cordoned node.
fn tolerates_cordon(pod: &PodInfo) -> bool {
    let cordon = Taint::new(TAINT_UNSCHEDULABLE, "", TaintEffect::NoSchedule);
    pod.tolerations.iter().any(|t| t.tolerates(&cordon))
}

/// The first NoSchedule or NoExecute taint that no toleration covers.
fn untolerated_taint<'a>(pod: &PodInfo, node: &'a NodeInfo) -> Option<&'a Taint> {
    node.taints.iter().find(|taint| {
        matches!(taint.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
            && !pod.tolerations.iter().any(|t| t.tolerates(taint))
    })
}

/// `nodeSelector` must match exactly, and at least one required term must match.
pub fn matches_node_affinity(pod: &PodInfo, node: &NodeInfo) -> bool {
    let selector_ok = pod.node_selector.iter().all(|(k, v)| node.labels.get(k) == Some(v));
    selector_ok && pod.required_terms.as_ref().is_none_or(|terms| terms.iter().any(|t| t.matches(node)))
}

/// Upstream's `fitsRequest`: every resource the pod asks for must fit in what is left of the
/// node's allocatable amount.
fn insufficient_resources(pod: &PodInfo, node: &NodeInfo, usage: Option<&NodeUsage>) -> Vec<Reason> {
    let mut out = Vec::new();
    let n_pods = usage.map_or(0, |u| u.pods.len());
    if i64::try_from(n_pods).unwrap_or(i64::MAX) >= node.allowed_pods {
        out.push(Reason::TooManyPods);
    }
    let want = &pod.requests;
    if want.is_zero() {
        return out;
    }
    let zero = Default::default();
    let used = usage.map_or(&zero, |u| &u.requested);
    let alloc = &node.allocatable;
    let short = |want: i64, alloc: i64, used: i64| want > 0 && want > alloc.saturating_sub(used);
    if short(want.milli_cpu, alloc.milli_cpu, used.milli_cpu) {
        out.push(Reason::Insufficient("cpu".into()));
    }
    if short(want.memory, alloc.memory, used.memory) {
        out.push(Reason::Insufficient("memory".into()));
    }
    if short(want.ephemeral_storage, alloc.ephemeral_storage, used.ephemeral_storage) {
        out.push(Reason::Insufficient("ephemeral-storage".into()));
    }
    for (name, amount) in &want.scalar {
        let have = alloc.scalar.get(name).copied().unwrap_or(0);
        if short(*amount, have, used.scalar.get(name).copied().unwrap_or(0)) {
            out.push(Reason::Insufficient(name.clone()));
        }
    }
    out
}
