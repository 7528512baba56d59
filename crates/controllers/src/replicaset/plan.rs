//! The ReplicaSet controller's decisions, as pure functions of the ReplicaSet and the pods
//! in its namespace: which pods it claims, adopts and releases, which pods to create or
//! delete, and what its status is.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use rkube_apimachinery::selector::LabelSelector;

use crate::meta::{controller_of, labels};
use crate::pods;

/// Upstream's `BurstReplicas`: at most this many creations or deletions per sync.
pub const BURST_REPLICAS: usize = 500;

/// Upstream's `MaxGeneratedNameLength`: a generated name's base is cut to leave room for
/// the five-character suffix within 63 characters.
const MAX_GENERATED_BASE: usize = 58;

/// Upstream's alphabet for generated names: no vowels, no look-alike characters.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// How the pods of a namespace relate to one ReplicaSet, as upstream's
/// `ControllerRefManager.ClaimPods` decides.
#[derive(Debug, Default)]
pub struct Claims {
    /// Pods this ReplicaSet controls and whose labels still match.
    pub owned: Vec<Arc<Pod>>,
    /// Orphans that match the selector, to be adopted.
    pub adopt: Vec<Arc<Pod>>,
    /// Pods this ReplicaSet controls that no longer match, to be released.
    pub release: Vec<Arc<Pod>>,
}

/// Sorts the namespace's pods into owned, to adopt and to release.
pub fn claim_pods(rs: &ReplicaSet, selector: &LabelSelector, pods: &[Arc<Pod>]) -> Claims {
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();
    let mut claims = Claims::default();
    for pod in pods {
        let matches = selector.matches(labels(&pod.metadata));
        match controller_of(&pod.metadata) {
            // Another controller's pod is not ours to touch.
            Some(r) if r.uid != uid => {}
            Some(_) if matches => claims.owned.push(pod.clone()),
            // A ReplicaSet being deleted keeps its pods so that the garbage collector
            // finds them.
            Some(_) if !rs_deleting => claims.release.push(pod.clone()),
            Some(_) => {}
            None if rs_deleting || !matches || pod.metadata.deletion_timestamp.is_some() => {}
            None => claims.adopt.push(pod.clone()),
        }
    }
    claims
}

/// What to do about the number of pods.
#[derive(Debug, PartialEq)]
pub enum Scale {
    None,
    /// Create pods with these names.
    Create(Vec<String>),
    /// Delete these pods, in this order.
    Delete(Vec<Arc<Pod>>),
}

/// Compares the active owned pods with `spec.replicas`, as upstream's `manageReplicas`.
///
/// `taken` holds the names of every pod in the namespace. New pods are named
/// `<rs>-<5 chars>` like upstream's `generateName`, but the suffix is derived from the
/// ReplicaSet's UID and a slot number rather than drawn at random, and the lowest free
/// slots are used. Two controllers that both decide to create the same pod so pick the
/// same name, and the API server's AlreadyExists turns the race into a harmless conflict
/// instead of a surplus pod.
pub fn scale(rs: &ReplicaSet, active: &[Arc<Pod>], taken: &HashSet<String>) -> Scale {
    let want = usize::try_from(rs.spec.replicas.unwrap_or(1)).unwrap_or(0);
    let have = active.len();
    if have < want {
        let n = (want - have).min(BURST_REPLICAS);
        Scale::Create(free_pod_names(rs, taken, n))
    } else if have > want {
        let n = (have - want).min(BURST_REPLICAS);
        let mut order = active.to_vec();
        pods::sort_for_deletion(&mut order);
        order.truncate(n);
        Scale::Delete(order)
    } else {
        Scale::None
    }
}

/// The first `n` slot names of `rs` that no pod in the namespace has.
pub fn free_pod_names(rs: &ReplicaSet, taken: &HashSet<String>, n: usize) -> Vec<String> {
    let uid = rs.metadata.uid.as_deref().unwrap_or("");
    let base = generate_name_base(&rs.name_any());
    let mut out = Vec::with_capacity(n);
    let mut slot: u64 = 0;
    while out.len() < n {
        let name = format!("{base}{}", slot_suffix(uid, slot));
        if !taken.contains(&name) && !out.contains(&name) {
            out.push(name);
        }
        slot += 1;
    }
    out
}

/// `<name>-`, cut as upstream cuts a `generateName` base.
pub fn generate_name_base(name: &str) -> String {
    let mut base = format!("{name}-");
    if base.len() > MAX_GENERATED_BASE {
        let mut cut = MAX_GENERATED_BASE;
        while !base.is_char_boundary(cut) {
            cut -= 1;
        }
        base.truncate(cut);
    }
    base
}

/// Five characters from upstream's alphabet, a function of the owner's UID and the slot.
fn slot_suffix(uid: &str, slot: u64) -> String {
    let mut h = crate::hash::Fnv64::default();
    h.write(uid.as_bytes());
    h.write(&slot.to_le_bytes());
    let mut v = h.finish();
    let mut out = String::with_capacity(5);
    for _ in 0..5 {
        out.push(char::from(ALPHABET[(v % ALPHABET.len() as u64) as usize]));
        v /= ALPHABET.len() as u64;
    }
    out
}

/// The status the ReplicaSet should have, as upstream's `calculateStatus`.
/// `failure` is the reason and message of a failed create or delete in this sync.
pub fn status(rs: &ReplicaSet, active: &[Arc<Pod>], now: Timestamp, failure: Option<(&str, &str)>) -> ReplicaSetStatus {
    let spec = &rs.spec;
    let template_labels =
        spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone()).unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let fully_labeled = count(&|p| {
        let l = labels(&p.metadata);
        template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
    });
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions: Vec<ReplicaSetCondition> = old.conditions.clone().unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_.as_deref() == Some("ReplicaFailure"));
    match failure {
        Some((reason, message)) if !has_failure => conditions.push(ReplicaSetCondition {
            type_: Some("ReplicaFailure".into()),
            status: Some("True".into()),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_transition_time: Some(Time(now)),
        }),
        None if has_failure => conditions.retain(|c| c.type_.as_deref() != Some("ReplicaFailure")),
        _ => {}
    }
    ReplicaSetStatus {
        replicas: i32::try_from(active.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(count(&pods::is_ready)),
        available_replicas: Some(count(&|p| pods::is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: old.terminating_replicas,
    }
}

/// Whether two statuses differ in anything the controller writes.
pub fn status_differs(a: &ReplicaSetStatus, b: &ReplicaSetStatus) -> bool {
    let zero = |v: Option<i32>| v.unwrap_or(0);
    a.replicas != b.replicas
        || zero(a.fully_labeled_replicas) != zero(b.fully_labeled_replicas)
        || zero(a.ready_replicas) != zero(b.ready_replicas)
        || zero(a.available_replicas) != zero(b.available_replicas)
        || a.observed_generation != b.observed_generation
        || a.conditions.as_deref().unwrap_or_default().len() != b.conditions.as_deref().unwrap_or_default().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as Sel, OwnerReference};
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn lbl(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(replicas),
                selector: Sel { match_labels: Some(lbl(&[("app", "web")])), ..Default::default() },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(lbl(&[("app", "web"), ("tier", "fe")])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                min_ready_seconds: None,
            },
            status: None,
        }
    }

    fn pod(name: &str, labels: &[(&str, &str)], owner: Option<&str>, ready: bool) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                labels: Some(lbl(labels)),
                owner_references: owner.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: "x".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: ready
                    .then(|| vec![PodCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]),
                ..Default::default()
            }),
        })
    }

    fn sel(rs: &ReplicaSet) -> LabelSelector {
        crate::meta::selector_of(Some(&rs.spec.selector)).unwrap_or_else(|_| LabelSelector::nothing())
    }

    #[test]
    fn claims_adopt_orphans_release_strays_and_ignore_others() {
        let rs = rs(3);
        let pods = vec![
            pod("mine", &[("app", "web")], Some("rs-uid"), true),
            pod("orphan", &[("app", "web")], None, true),
            pod("stray", &[("app", "db")], Some("rs-uid"), true),
            pod("theirs", &[("app", "web")], Some("other"), true),
            pod("unrelated", &[("app", "db")], None, true),
        ];
        let c = claim_pods(&rs, &sel(&rs), &pods);
        let n = |v: &[Arc<Pod>]| v.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(n(&c.owned), vec!["mine"]);
        assert_eq!(n(&c.adopt), vec!["orphan"]);
        assert_eq!(n(&c.release), vec!["stray"]);
    }

    #[test]
    fn a_deleting_replicaset_neither_adopts_nor_releases() {
        let mut rs = rs(3);
        rs.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        let pods =
            vec![pod("orphan", &[("app", "web")], None, true), pod("stray", &[("app", "db")], Some("rs-uid"), true)];
        let c = claim_pods(&rs, &sel(&rs), &pods);
        assert!(c.adopt.is_empty() && c.release.is_empty() && c.owned.is_empty());
    }

    #[test]
    fn scale_up_names_free_slots_deterministically() {
        let rs = rs(3);
        let have = vec![pod("a", &[("app", "web")], Some("rs-uid"), true)];
        let Scale::Create(names) = scale(&rs, &have, &HashSet::new()) else { panic!("expected creations") };
        assert_eq!(names.len(), 2);
        for n in &names {
            let suffix = n.strip_prefix("web-").unwrap_or("");
            assert_eq!(suffix.len(), 5, "{n}");
            assert!(suffix.bytes().all(|b| ALPHABET.contains(&b)), "{n}");
        }
        // A second controller with the same view picks the same names.
        assert_eq!(scale(&rs, &have, &HashSet::new()), Scale::Create(names.clone()));
        // A taken name is skipped.
        let taken: HashSet<String> = [names[0].clone()].into();
        let Scale::Create(next) = scale(&rs, &have, &taken) else { panic!("expected creations") };
        assert_eq!(next[0], names[1]);
        assert_ne!(next[1], names[0]);
    }

    #[test]
    fn scale_is_bounded_by_the_burst() {
        let rs = rs(2000);
        let Scale::Create(names) = scale(&rs, &[], &HashSet::new()) else { panic!("expected creations") };
        assert_eq!(names.len(), BURST_REPLICAS);
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), BURST_REPLICAS, "names are distinct");
    }

    #[test]
    fn scale_down_deletes_not_ready_first() {
        let rs = rs(1);
        let have = vec![
            pod("ready", &[("app", "web")], Some("rs-uid"), true),
            pod("not-ready", &[("app", "web")], Some("rs-uid"), false),
        ];
        let Scale::Delete(gone) = scale(&rs, &have, &HashSet::new()) else { panic!("expected deletions") };
        assert_eq!(gone.iter().map(|p| p.name_any()).collect::<Vec<_>>(), vec!["not-ready"]);
        assert_eq!(scale(&rs, &have[..1], &HashSet::new()), Scale::None);
    }

    #[test]
    fn long_names_are_cut_like_generate_name() {
        let long = "x".repeat(70);
        assert_eq!(generate_name_base(&long).len(), MAX_GENERATED_BASE);
        assert_eq!(generate_name_base("web"), "web-");
    }

    #[test]
    fn status_counts_and_failure_condition() {
        let rs = rs(3);
        let pods = vec![
            pod("a", &[("app", "web"), ("tier", "fe")], Some("rs-uid"), true),
            pod("b", &[("app", "web")], Some("rs-uid"), false),
        ];
        let s = status(&rs, &pods, Timestamp::UNIX_EPOCH, None);
        assert_eq!(
            (s.replicas, s.fully_labeled_replicas, s.ready_replicas, s.available_replicas, s.observed_generation),
            (2, Some(1), Some(1), Some(1), Some(3))
        );
        assert!(s.conditions.is_none());
        let failed = status(&rs, &pods, Timestamp::UNIX_EPOCH, Some(("FailedCreate", "quota")));
        let conds = failed.conditions.clone().unwrap_or_default();
        assert_eq!(conds[0].reason.as_deref(), Some("FailedCreate"));
        let mut rs2 = rs.clone();
        rs2.status = Some(failed);
        assert!(status(&rs2, &pods, Timestamp::UNIX_EPOCH, None).conditions.is_none(), "success clears the failure");
    }
}
