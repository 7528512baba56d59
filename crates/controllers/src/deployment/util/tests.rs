use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    DeploymentSpec, DeploymentStrategy, ReplicaSetSpec, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use kube::api::ObjectMeta;

use super::*;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container { name: "c".into(), image: Some(image.into()), ..Default::default() }],
            ..Default::default()
        }),
    }
}

fn dep(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    Deployment {
        metadata: ObjectMeta { name: Some("web".into()), generation: Some(1), ..Default::default() },
        spec: DeploymentSpec {
            replicas: Some(replicas),
            template: template("nginx:1"),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavailable),
                }),
            }),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        },
        status: None,
    }
}

fn rs(name: &str, uid: &str, spec: i32, available: i32, created: i64, image: &str) -> Arc<ReplicaSet> {
    Arc::new(ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(uid.into()),
            creation_timestamp: Some(Time(ts(created))),
            ..Default::default()
        },
        spec: ReplicaSetSpec { replicas: Some(spec), template: Some(template(image)), ..Default::default() },
        status: Some(ReplicaSetStatus {
            replicas: spec,
            ready_replicas: Some(available),
            available_replicas: Some(available),
            ..Default::default()
        }),
    })
}

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

#[test]
fn percentages_round_as_upstream() {
    assert_eq!(scaled_value(Some(&pct("25%")), 10, true), Ok(3));
    assert_eq!(scaled_value(Some(&pct("25%")), 10, false), Ok(2));
    assert_eq!(scaled_value(Some(&pct("30%")), 10, true), Ok(3));
    assert_eq!(scaled_value(Some(&IntOrString::Int(4)), 10, true), Ok(4));
    assert!(scaled_value(Some(&pct("x%")), 10, true).is_err());
    // Upstream's default 25%/25% on 1 replica: surge 1, unavailable 0.
    assert_eq!(fenceposts(&dep(1, pct("25%"), pct("25%"))), (1, 0));
    // Both rounding to zero leaves one pod of room.
    assert_eq!(fenceposts(&dep(1, IntOrString::Int(0), pct("25%"))), (0, 1));
    assert_eq!(max_unavailable(&dep(3, IntOrString::Int(0), IntOrString::Int(10))), 3, "capped at replicas");
}

#[test]
fn hash_is_stable_and_changes_with_template_and_collisions() {
    let a = compute_hash(&template("nginx:1"), None);
    assert_eq!(a, compute_hash(&template("nginx:1"), None));
    assert_ne!(a, compute_hash(&template("nginx:2"), None));
    assert_ne!(a, compute_hash(&template("nginx:1"), Some(1)));
    assert!((1..=10).contains(&a.len()), "{a}");
    assert!(a.bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
}

#[test]
fn templates_compare_without_the_hash_label_and_empty_fields() {
    let mut with_hash = template("nginx:1");
    if let Some(l) = with_hash.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.insert(POD_TEMPLATE_HASH.into(), "abc".into());
    }
    assert!(equal_ignore_hash(&with_hash, &template("nginx:1")));
    let mut empty_annotations = template("nginx:1");
    if let Some(m) = empty_annotations.metadata.as_mut() {
        m.annotations = Some(BTreeMap::new());
    }
    assert!(equal_ignore_hash(&empty_annotations, &template("nginx:1")));
    assert!(!equal_ignore_hash(&template("nginx:2"), &template("nginx:1")));
}

#[test]
fn new_and_old_replicasets_are_found_by_template() {
    let d = dep(3, pct("25%"), pct("25%"));
    let rss =
        vec![rs("b", "2", 0, 0, 2, "nginx:1"), rs("a", "1", 3, 3, 1, "nginx:0"), rs("c", "3", 0, 0, 3, "nginx:1")];
    let new = find_new(&d, &rss).expect("new");
    assert_eq!(new.metadata.name.as_deref(), Some("b"), "the oldest matching one");
    let old = find_old(&rss, Some(&new));
    assert_eq!(old.len(), 2);
}

#[test]
fn rolling_new_replicas_respect_surge() {
    let d = dep(10, pct("30%"), IntOrString::Int(2));
    let old = rs("old", "1", 10, 10, 1, "nginx:0");
    let new = rs("new", "2", 0, 0, 2, "nginx:1");
    let all = vec![old.clone(), new.clone()];
    assert_eq!(new_rs_new_replicas(&d, &all, &new), Ok(3), "10 + 3 surge");
    // The old ReplicaSet was scaled down to 8 but still reports 10 pods: no room yet.
    let mut shrinking = (*old).clone();
    shrinking.spec.replicas = Some(8);
    let new3 = rs("new", "2", 3, 0, 2, "nginx:1");
    let all = vec![Arc::new(shrinking.clone()), new3.clone()];
    assert_eq!(new_rs_new_replicas(&d, &all, &new3), Ok(3));
    // Once its status catches up, the new one may grow by the two freed places.
    shrinking.status = Some(ReplicaSetStatus { replicas: 8, ..Default::default() });
    let all = vec![Arc::new(shrinking), new3.clone()];
    assert_eq!(new_rs_new_replicas(&d, &all, &new3), Ok(5));
    // Never beyond the desired count.
    let new9 = rs("new", "2", 9, 9, 2, "nginx:1");
    let all = vec![rs("old", "1", 0, 0, 1, "nginx:0"), new9.clone()];
    assert_eq!(new_rs_new_replicas(&d, &all, &new9), Ok(10));
}

#[test]
fn annotations_move_revisions_forward_and_keep_history() {
    let mut d = dep(3, pct("25%"), pct("25%"));
    d.metadata.annotations = Some(BTreeMap::from([
        ("kubernetes.io/change-cause".to_owned(), "deploy v2".to_owned()),
        (REVISION.to_owned(), "7".to_owned()),
    ]));
    let mut new = (*rs("n", "1", 0, 0, 1, "nginx:1")).clone();
    assert!(set_new_rs_annotations(&d, &mut new, 2, false));
    let a = new.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(a.get(REVISION).map(String::as_str), Some("2"));
    assert_eq!(a.get("kubernetes.io/change-cause").map(String::as_str), Some("deploy v2"));
    assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
    assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("4"));
    assert!(!set_new_rs_annotations(&d, &mut new, 2, true), "idempotent");
    // A rollback brings revision 2 back as 5, remembering 2.
    assert!(set_new_rs_annotations(&d, &mut new, 5, true));
    let a = new.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        (a.get(REVISION).map(String::as_str), a.get(REVISION_HISTORY).map(String::as_str)),
        (Some("5"), Some("2"))
    );
}

#[test]
fn proportional_scaling_splits_by_size_with_leftovers_to_the_largest() {
    // Mid-rollout at 10 replicas (max 13): old 8, new 5. Scale the deployment to 20 (max 26).
    let mut d = dep(20, pct("30%"), IntOrString::Int(2));
    d.status = Some(DeploymentStatus { replicas: Some(13), ..Default::default() });
    let mut old = (*rs("old", "1", 8, 8, 1, "nginx:0")).clone();
    let mut new = (*rs("new", "2", 5, 5, 2, "nginx:1")).clone();
    set_replicas_annotations(&mut old, 10, 13);
    set_replicas_annotations(&mut new, 10, 13);
    let sizes = proportional_sizes(&d, &[Arc::new(old), Arc::new(new)]);
    let named: Vec<(String, i32)> =
        sizes.iter().map(|(rs, n)| (rs.metadata.name.clone().unwrap_or_default(), *n)).collect();
    assert_eq!(named, vec![("old".to_owned(), 16), ("new".to_owned(), 10)]);
    assert_eq!(named.iter().map(|(_, n)| n).sum::<i32>(), 26);
}

#[test]
fn active_or_latest_and_saturation() {
    let d = dep(3, pct("25%"), pct("25%"));
    let new = rs("new", "2", 3, 3, 2, "nginx:1");
    let idle = rs("old", "1", 0, 0, 1, "nginx:0");
    assert_eq!(
        active_or_latest(Some(&new), std::slice::from_ref(&idle)).and_then(|r| r.metadata.name.clone()).as_deref(),
        Some("new")
    );
    assert!(active_or_latest(Some(&new), &[rs("old", "1", 1, 1, 1, "nginx:0")]).is_none());
    assert_eq!(active_or_latest(None, &[idle]).and_then(|r| r.metadata.name.clone()).as_deref(), Some("old"));
    let mut sat = (*new).clone();
    set_replicas_annotations(&mut sat, 3, 4);
    assert!(is_saturated(&d, Some(&Arc::new(sat))));
    assert!(!is_saturated(&d, Some(&new)), "no desired-replicas annotation");
}

#[test]
fn status_and_conditions_follow_upstream() {
    let d = dep(4, pct("25%"), pct("25%"));
    let old = rs("old", "1", 2, 2, 1, "nginx:0");
    let new = rs("new", "2", 3, 1, 2, "nginx:1");
    let all = vec![old, new.clone()];
    let s = rollout_status(&d, &all, Some(&new), ts(0));
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas,
            s.unavailable_replicas,
            s.observed_generation
        ),
        (Some(5), Some(3), Some(3), Some(3), Some(2), Some(1))
    );
    let reason = |s: &DeploymentStatus, ty: &str| condition(s, ty).and_then(|c| c.reason.clone());
    assert_eq!(reason(&s, AVAILABLE).as_deref(), Some("MinimumReplicasAvailable"), "3 >= 4 - 1");
    assert_eq!(reason(&s, PROGRESSING).as_deref(), Some("ReplicaSetUpdated"));
    // Complete: all updated and available.
    let mut d2 = d.clone();
    d2.status = Some(s);
    let done = rs("new", "2", 4, 4, 2, "nginx:1");
    let s2 = rollout_status(&d2, std::slice::from_ref(&done), Some(&done), ts(5));
    assert_eq!(reason(&s2, PROGRESSING).as_deref(), Some("NewReplicaSetAvailable"));
    assert!(is_complete(&d2, &s2));
    // Unavailable below the minimum.
    let thin = rs("new", "2", 4, 1, 2, "nginx:1");
    let s3 = rollout_status(&d, std::slice::from_ref(&thin), Some(&thin), ts(0));
    assert_eq!(reason(&s3, AVAILABLE).as_deref(), Some("MinimumReplicasUnavailable"));
}

#[test]
fn a_stalled_rollout_times_out() {
    let mut d = dep(2, pct("25%"), pct("25%"));
    d.spec.progress_deadline_seconds = Some(10);
    let new = rs("new", "2", 2, 0, 2, "nginx:1");
    let s = rollout_status(&d, std::slice::from_ref(&new), Some(&new), ts(0));
    d.status = Some(s);
    let later = rollout_status(&d, std::slice::from_ref(&new), Some(&new), ts(30));
    assert_eq!(
        condition(&later, PROGRESSING).and_then(|c| c.reason.clone()).as_deref(),
        Some("ProgressDeadlineExceeded")
    );
}

#[test]
fn availability_of_a_shrinking_replicaset_counts_at_most_its_spec() {
    // Scaled from 10 to 8, still reporting 10 available until its controller catches up.
    let mut old = (*rs("old", "1", 8, 10, 1, "nginx:0")).clone();
    old.status = Some(ReplicaSetStatus { replicas: 10, available_replicas: Some(10), ..Default::default() });
    let new = rs("new", "2", 3, 3, 2, "nginx:1");
    let all = vec![Arc::new(old), new];
    assert_eq!(sum_available(&all), 13);
    assert_eq!(sum_available_within_spec(&all), 11);
}
