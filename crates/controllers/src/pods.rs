//! What the workload controllers need to know about pods: whether they count, are ready or
//! available, and in which order to delete them.

use std::cmp::Ordering;
use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;

/// Whether the pod counts towards its controller's replicas: not finished and not being
/// deleted, as upstream's `FilterActivePods`.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// When the pod's Ready condition last became true, if it is ready.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let cond = pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been ready for at least `min_ready_seconds`, as upstream's
/// `IsPodAvailable`. A ready pod without a transition time counts as available only when
/// no minimum is asked for.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => {
            since.checked_add(jiff::SignedDuration::from_secs(i64::from(min_ready_seconds))).is_ok_and(|t| t <= now)
        }
    }
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn node_name(pod: &Pod) -> &str {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).unwrap_or("")
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Upstream's `afterOrZero`: a missing time sorts first, otherwise the later time does.
fn after_or_zero(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// Sorts `pods` so that the ones to delete first come first, as upstream's
/// `ActivePodsWithRanks`: unscheduled before scheduled, pending before unknown before
/// running, not ready before ready, lower `pod-deletion-cost` first, more pods of the same
/// owner on the same node first, ready for a shorter time first, more restarts first, and
/// newer first. Upstream compares ready times on a logarithmic scale; this compares them
/// exactly, which only changes the order between pods that became ready at similar times.
pub fn sort_for_deletion(pods: &mut [std::sync::Arc<Pod>]) {
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in pods.iter() {
        *per_node.entry(node_name(p).to_owned()).or_default() += 1;
    }
    let rank = |p: &Pod| per_node.get(node_name(p)).copied().unwrap_or(0);
    pods.sort_by(|a, b| {
        let (na, nb) = (node_name(a), node_name(b));
        if na != nb && (na.is_empty() || nb.is_empty()) {
            return if na.is_empty() { Ordering::Less } else { Ordering::Greater };
        }
        phase_ordinal(a)
            .cmp(&phase_ordinal(b))
            .then_with(|| is_ready(a).cmp(&is_ready(b)))
            .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
            .then_with(|| rank(b).cmp(&rank(a)))
            .then_with(|| match (ready_since(a), ready_since(b)) {
                (Some(ta), Some(tb)) => after_or_zero(ta, tb),
                _ => Ordering::Equal,
            })
            .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
            .then_with(|| {
                after_or_zero(
                    a.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                )
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;
    use std::sync::Arc;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH))
    }

    fn pod(name: &str, node: &str, phase: &str, ready_at: Option<i64>, created: i64) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(t(created)),
                ..Default::default()
            },
            spec: Some(PodSpec { node_name: (!node.is_empty()).then(|| node.into()), ..Default::default() }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|r| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(t(r)),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        })
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter().map(|p| p.metadata.name.as_deref().unwrap_or("")).collect()
    }

    #[test]
    fn deletion_order_follows_upstream_ranks() {
        let mut pods = vec![
            pod("old-ready", "n1", "Running", Some(10), 0),
            pod("new-ready", "n1", "Running", Some(50), 40),
            pod("running-not-ready", "n1", "Running", None, 5),
            pod("pending", "n1", "Pending", None, 6),
            pod("unscheduled", "", "Pending", None, 1),
        ];
        sort_for_deletion(&mut pods);
        assert_eq!(names(&pods), vec!["unscheduled", "pending", "running-not-ready", "new-ready", "old-ready"]);
    }

    #[test]
    fn among_equals_the_newest_goes_first() {
        let mut pods =
            vec![pod("a", "", "Pending", None, 1), pod("b", "", "Pending", None, 3), pod("c", "", "Pending", None, 2)];
        sort_for_deletion(&mut pods);
        assert_eq!(names(&pods), vec!["b", "c", "a"]);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("a", "n", "Running", Some(0), 0);
        let now = t(5).0;
        assert!(is_available(&p, 0, now));
        assert!(is_available(&p, 5, now));
        assert!(!is_available(&p, 6, now));
        assert!(!is_available(&pod("b", "n", "Running", None, 0), 0, now));
        assert!(is_active(&p));
    }
}
