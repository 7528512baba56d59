//! Scores: which of the nodes that passed the filters suits a pod best.
//!
//! Each score is 0 to [`MAX_NODE_SCORE`] per node, normalised across the feasible nodes as
//! upstream's plugins are, and the total is their sum weighted with upstream's default
//! weights. Only the ranking matters, so integer arithmetic with upstream's rounding is used.

use std::collections::{BTreeMap, HashMap};

use crate::model::{NodeInfo, PodInfo, TaintEffect};
use crate::usage::NodeUsage;

pub const MAX_NODE_SCORE: i64 = 100;

/// Upstream's default plugin weights.
const WEIGHT_TAINT_TOLERATION: i64 = 3;
const WEIGHT_NODE_AFFINITY: i64 = 2;
const WEIGHT_SPREAD: i64 = 2;
const WEIGHT_LEAST_ALLOCATED: i64 = 1;
const WEIGHT_BALANCED_ALLOCATION: i64 = 1;

/// How much spreading across zones counts against spreading across nodes, when nodes have
/// zones: upstream's SelectorSpread used two thirds.
const ZONE_WEIGHTING: f64 = 2.0 / 3.0;

/// The pods a pod should be spread away from: those in its namespace with the same
/// controller (its ReplicaSet, say) and selected by every Service that selects it. This is
/// upstream's default spreading selector, with the controller matched by owner uid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpreadSelector {
    pub namespace: String,
    pub controller_uid: Option<String>,
    /// The selectors of the Services that select the pod.
    pub service_selectors: Vec<BTreeMap<String, String>>,
}

impl SpreadSelector {
    /// The selector for `pod`, given the selectors of the Services in its namespace. `None`
    /// when the pod has no controller and no Service: such a pod has no peers to spread from.
    pub fn for_pod<'a>(
        pod: &PodInfo,
        namespace_services: impl IntoIterator<Item = &'a BTreeMap<String, String>>,
    ) -> Option<SpreadSelector> {
        let service_selectors: Vec<_> = namespace_services
            .into_iter()
            .filter(|sel| !sel.is_empty() && labels_match(sel, &pod.labels))
            .cloned()
            .collect();
        if pod.controller_uid.is_none() && service_selectors.is_empty() {
            return None;
        }
        Some(SpreadSelector {
            namespace: pod.namespace.clone(),
            controller_uid: pod.controller_uid.clone(),
            service_selectors,
        })
    }

    pub fn matches(&self, pod: &PodInfo) -> bool {
        !pod.terminating
            && pod.namespace == self.namespace
            && (self.controller_uid.is_none() || pod.controller_uid == self.controller_uid)
            && self.service_selectors.iter().all(|sel| labels_match(sel, &pod.labels))
    }

    /// How many matching pods a node runs.
    fn count(&self, usage: Option<&NodeUsage>) -> i64 {
        let Some(usage) = usage else { return 0 };
        let n = match (&self.controller_uid, self.service_selectors.is_empty()) {
            // The common case, a ReplicaSet's pods: one lookup.
            (Some(uid), true) => usage.by_controller.get(uid).copied().unwrap_or(0),
            _ => usage.pods.iter().filter(|p| self.matches(p)).count(),
        };
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Scores each feasible node for `pod`; the result is in the order of `nodes`.
pub fn score(pod: &PodInfo, spread: Option<&SpreadSelector>, nodes: &[(&NodeInfo, Option<&NodeUsage>)]) -> Vec<i64> {
    let mut total = vec![0i64; nodes.len()];
    let mut add = |weight: i64, scores: Vec<i64>| {
        for (t, s) in total.iter_mut().zip(scores) {
            *t += weight * s;
        }
    };
    add(WEIGHT_TAINT_TOLERATION, taint_toleration(pod, nodes));
    add(WEIGHT_NODE_AFFINITY, node_affinity(pod, nodes));
    add(WEIGHT_SPREAD, spreading(spread, nodes));
    add(WEIGHT_LEAST_ALLOCATED, nodes.iter().map(|(n, u)| least_allocated(pod, n, *u)).collect());
    add(WEIGHT_BALANCED_ALLOCATION, nodes.iter().map(|(n, u)| balanced_allocation(pod, n, *u)).collect());
    total
}

/// Upstream's `DefaultNormalizeScore`: scales raw scores so the largest becomes
/// `MAX_NODE_SCORE`, and with `reverse` makes the largest raw score the worst.
fn normalize(mut scores: Vec<i64>, reverse: bool) -> Vec<i64> {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return scores;
    }
    for s in &mut scores {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
    scores
}

/// Fewer PreferNoSchedule taints the pod does not tolerate is better.
fn taint_toleration(pod: &PodInfo, nodes: &[(&NodeInfo, Option<&NodeUsage>)]) -> Vec<i64> {
    let relevant: Vec<_> =
        pod.tolerations.iter().filter(|t| t.effect.is_none_or(|e| e == TaintEffect::PreferNoSchedule)).collect();
    let raw = nodes
        .iter()
        .map(|(node, _)| {
            let n = node
                .taints
                .iter()
                .filter(|taint| taint.effect == TaintEffect::PreferNoSchedule)
                .filter(|taint| !relevant.iter().any(|t| t.tolerates(taint)))
                .count();
            i64::try_from(n).unwrap_or(i64::MAX)
        })
        .collect();
    normalize(raw, true)
}

/// The weights of the preferred node affinity terms a node matches.
fn node_affinity(pod: &PodInfo, nodes: &[(&NodeInfo, Option<&NodeUsage>)]) -> Vec<i64> {
    if pod.preferred_terms.is_empty() {
        return vec![0; nodes.len()];
    }
    let raw = nodes
        .iter()
        .map(|(node, _)| pod.preferred_terms.iter().filter(|(_, term)| term.matches(node)).map(|(w, _)| *w).sum())
        .collect();
    normalize(raw, false)
}

/// Fewer pods of the same ReplicaSet or Service on a node, and in its zone, is better.
fn spreading(spread: Option<&SpreadSelector>, nodes: &[(&NodeInfo, Option<&NodeUsage>)]) -> Vec<i64> {
    let Some(spread) = spread else { return vec![MAX_NODE_SCORE; nodes.len()] };
    let counts: Vec<i64> = nodes.iter().map(|(_, usage)| spread.count(*usage)).collect();
    let max_by_node = counts.iter().copied().max().unwrap_or(0);
    let mut by_zone: HashMap<&str, i64> = HashMap::new();
    for ((node, _), count) in nodes.iter().zip(&counts) {
        if let Some(zone) = &node.zone {
            *by_zone.entry(zone.as_str()).or_default() += count;
        }
    }
    let max_by_zone = by_zone.values().copied().max().unwrap_or(0);
    let have_zones = !by_zone.is_empty();
    let fraction_free = |count: i64, max: i64| {
        if max > 0 { MAX_NODE_SCORE as f64 * (max - count) as f64 / max as f64 } else { MAX_NODE_SCORE as f64 }
    };
    nodes
        .iter()
        .zip(&counts)
        .map(|((node, _), count)| {
            let mut score = fraction_free(*count, max_by_node);
            if have_zones && let Some(zone) = &node.zone {
                let zone_count = by_zone.get(zone.as_str()).copied().unwrap_or(0);
                score = score * (1.0 - ZONE_WEIGHTING) + ZONE_WEIGHTING * fraction_free(zone_count, max_by_zone);
            }
            score as i64
        })
        .collect()
}

/// The share of CPU and memory left free once the pod is placed, averaged. Pods without
/// requests count with upstream's defaults (100m, 200Mi) so they spread by load too.
fn least_allocated(pod: &PodInfo, node: &NodeInfo, usage: Option<&NodeUsage>) -> i64 {
    let free_share = |requested: i64, capacity: i64| {
        if capacity == 0 || requested > capacity { 0 } else { (capacity - requested) * MAX_NODE_SCORE / capacity }
    };
    let (used_cpu, used_mem) = usage.map_or((0, 0), |u| (u.non_zero_milli_cpu, u.non_zero_memory));
    let cpu = free_share(used_cpu.saturating_add(pod.non_zero_milli_cpu), node.allocatable.milli_cpu);
    let mem = free_share(used_mem.saturating_add(pod.non_zero_memory), node.allocatable.memory);
    (cpu + mem) / 2
}

/// Prefers nodes whose CPU and memory would be used in similar proportions. A pod that
/// requests neither gets the same (zero) score everywhere, as upstream skips it.
fn balanced_allocation(pod: &PodInfo, node: &NodeInfo, usage: Option<&NodeUsage>) -> i64 {
    if pod.requests.milli_cpu == 0 && pod.requests.memory == 0 {
        return 0;
    }
    let fraction = |requested: i64, capacity: i64| {
        if capacity == 0 { 1.0 } else { (requested as f64 / capacity as f64).min(1.0) }
    };
    let (used_cpu, used_mem) = usage.map_or((0, 0), |u| (u.requested.milli_cpu, u.requested.memory));
    let cpu = fraction(used_cpu.saturating_add(pod.requests.milli_cpu), node.allocatable.milli_cpu);
    let mem = fraction(used_mem.saturating_add(pod.requests.memory), node.allocatable.memory);
    let std_dev = (cpu - mem).abs() / 2.0;
    ((1.0 - std_dev) * MAX_NODE_SCORE as f64) as i64
}
