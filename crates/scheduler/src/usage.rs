//! What the pods already on each node use: the sums the resource filter subtracts from
//! allocatable, the host ports in use, and counts for spreading.
//!
//! Sums are kept up to date as pods come and go rather than recomputed per decision, so
//! filtering a node costs the same however many pods it runs.

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{HostPort, PodInfo, Resources};

/// The pods on each node, by node name. A node name may appear here before (or after) the
/// node itself is known: pods bound to a node the scheduler has not seen yet still count.
#[derive(Debug, Default)]
pub struct PodsByNode {
    nodes: HashMap<String, NodeUsage>,
}

/// The pods on one node and what they use together.
#[derive(Debug, Default)]
pub struct NodeUsage {
    pub pods: Vec<Arc<PodInfo>>,
    pub requested: Resources,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
    pub host_ports: Vec<HostPort>,
    /// How many of the pods that are not terminating have each controller, so spreading a
    /// ReplicaSet's pods costs one lookup per node.
    pub by_controller: HashMap<String, usize>,
}

impl PodsByNode {
    pub fn get(&self, node: &str) -> Option<&NodeUsage> {
        self.nodes.get(node)
    }

    pub fn add(&mut self, node: &str, pod: Arc<PodInfo>) {
        let usage = self.nodes.entry(node.to_owned()).or_default();
        usage.requested.add(&pod.requests);
        usage.non_zero_milli_cpu = usage.non_zero_milli_cpu.saturating_add(pod.non_zero_milli_cpu);
        usage.non_zero_memory = usage.non_zero_memory.saturating_add(pod.non_zero_memory);
        usage.host_ports.extend(pod.host_ports.iter().cloned());
        if let Some(uid) = &pod.controller_uid
            && !pod.terminating
        {
            *usage.by_controller.entry(uid.clone()).or_default() += 1;
        }
        usage.pods.push(pod);
    }

    /// Removes the pod with `uid` from `node`, undoing exactly what adding it did.
    /// Returns whether it was there.
    pub fn remove(&mut self, node: &str, uid: &str) -> bool {
        let Some(usage) = self.nodes.get_mut(node) else { return false };
        let Some(idx) = usage.pods.iter().position(|p| p.uid == uid) else { return false };
        let pod = usage.pods.swap_remove(idx);
        usage.requested.sub(&pod.requests);
        usage.non_zero_milli_cpu = usage.non_zero_milli_cpu.saturating_sub(pod.non_zero_milli_cpu);
        usage.non_zero_memory = usage.non_zero_memory.saturating_sub(pod.non_zero_memory);
        for hp in &pod.host_ports {
            if let Some(i) = usage.host_ports.iter().position(|h| h == hp) {
                usage.host_ports.swap_remove(i);
            }
        }
        if let Some(uid) = &pod.controller_uid
            && !pod.terminating
            && let Some(n) = usage.by_controller.get_mut(uid)
        {
            *n -= 1;
            if *n == 0 {
                usage.by_controller.remove(uid);
            }
        }
        if usage.pods.is_empty() {
            self.nodes.remove(node);
        }
        true
    }

    /// How many pods are on `node`.
    pub fn count(&self, node: &str) -> usize {
        self.nodes.get(node).map_or(0, |u| u.pods.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, cpu: i64, controller: Option<&str>, ports: &[i32]) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            uid: uid.into(),
            requests: Resources { milli_cpu: cpu, ..Default::default() },
            non_zero_milli_cpu: cpu.max(100),
            controller_uid: controller.map(str::to_owned),
            host_ports: ports
                .iter()
                .map(|p| HostPort { ip: "0.0.0.0".into(), protocol: "TCP".into(), port: *p })
                .collect(),
            ..Default::default()
        })
    }

    #[test]
    fn add_and_remove_are_inverse() {
        let mut by_node = PodsByNode::default();
        by_node.add("n1", pod("a", 500, Some("rs"), &[80]));
        by_node.add("n1", pod("b", 0, Some("rs"), &[80, 443]));
        by_node.add("n2", pod("c", 250, None, &[]));
        let n1 = by_node.get("n1").expect("n1");
        assert_eq!(n1.requested.milli_cpu, 500);
        assert_eq!(n1.non_zero_milli_cpu, 600);
        assert_eq!(n1.host_ports.len(), 3);
        assert_eq!(n1.by_controller.get("rs"), Some(&2));

        assert!(by_node.remove("n1", "b"));
        assert!(!by_node.remove("n1", "b"), "already gone");
        assert!(!by_node.remove("n3", "a"), "no such node");
        let n1 = by_node.get("n1").expect("n1");
        assert_eq!(n1.host_ports.len(), 1, "one of the two port-80 entries stays");
        assert_eq!(n1.by_controller.get("rs"), Some(&1));

        assert!(by_node.remove("n1", "a"));
        assert!(by_node.get("n1").is_none(), "an empty node leaves no entry");
        assert_eq!(by_node.count("n2"), 1);
    }
}
