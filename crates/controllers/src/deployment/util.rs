//! Pure helpers of the Deployment controller, as upstream's
//! `pkg/controller/deployment/util`: the pod-template hash, revisions and replica
//! annotations, fenceposts, finding the new and old ReplicaSets, and conditions.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::hash::{Fnv32, safe_encode, write_canonical};

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Annotations of a Deployment that are not copied to its ReplicaSets.
const SKIPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Upstream's `ComputeHash`: FNV-1a 32 of the template, then of the collision count as
/// eight little-endian bytes, printed in decimal and mapped through `SafeEncodeString`.
/// Upstream hashes Go's printed form of the struct; this hashes canonical JSON, so the
/// values differ from upstream's but are stable and use the same alphabet and length.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h = Fnv32::default();
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    write_canonical(&mut h, &value);
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&c.to_le_bytes());
        h.write(&bytes);
    }
    safe_encode(&h.finish().to_string())
}

/// Removes nulls, empty objects and empty arrays, recursively: upstream compares templates
/// with `Semantic.DeepEqual`, which treats nil and empty collections alike.
fn normalize(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                normalize(child);
            }
            map.retain(|_, c| {
                !(c.is_null()
                    || c.as_object().is_some_and(|m| m.is_empty())
                    || c.as_array().is_some_and(|a| a.is_empty()))
            });
        }
        Value::Array(items) => items.iter_mut().for_each(normalize),
        _ => {}
    }
}

fn template_value_without_hash(t: &PodTemplateSpec) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let mut v = serde_json::to_value(&t).unwrap_or(Value::Null);
    normalize(&mut v);
    v
}

/// Upstream's `EqualIgnoreHash`: the templates are equal apart from the hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    template_value_without_hash(a) == template_value_without_hash(b)
}

pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(0)
}

pub fn desired(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(&rs.metadata.annotations, REVISION).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn annotation<'a>(a: &'a Option<BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    a.as_ref().and_then(|m| m.get(key)).map(String::as_str)
}

pub fn is_rolling(d: &Deployment) -> bool {
    d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()).unwrap_or("RollingUpdate") != "Recreate"
}

/// Upstream's `GetScaledValueFromIntOrPercent`: an int as is, `N%` of `total` rounded up
/// or down.
pub fn scaled_value(v: Option<&IntOrString>, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        None => Ok(0),
        Some(IntOrString::Int(i)) => Ok(*i),
        Some(IntOrString::String(s)) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = pct * i64::from(total);
            let v = if round_up { (scaled + 99).div_euclid(100) } else { scaled.div_euclid(100) };
            i32::try_from(v).map_err(|_| format!("value {s:?} of {total} is out of range"))
        }
    }
}

/// Upstream's `ResolveFenceposts`: (maxSurge, maxUnavailable) as numbers of pods. Surge
/// rounds up, unavailability rounds down, and if both come to zero one pod may be
/// unavailable, or the rollout could never progress.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
    let want = desired(d);
    let surge = scaled_value(ru.and_then(|r| r.max_surge.as_ref()), want, true).unwrap_or(0);
    let unavailable = scaled_value(ru.and_then(|r| r.max_unavailable.as_ref()), want, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || desired(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(desired(d))
}

fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    ta.cmp(&tb).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Sorts oldest first, as upstream's `ReplicaSetsByCreationTimestamp`.
pub fn sort_by_creation(rss: &mut [Arc<ReplicaSet>]) {
    rss.sort_by(|a, b| by_creation(a, b));
}

/// Upstream's `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the
/// Deployment's, if any.
pub fn find_new(d: &Deployment, rss: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    let mut sorted = rss.to_vec();
    sort_by_creation(&mut sorted);
    sorted.into_iter().find(|rs| rs.spec.template.as_ref().is_some_and(|t| equal_ignore_hash(t, &d.spec.template)))
}

/// The ReplicaSets other than `new`.
pub fn find_old(rss: &[Arc<ReplicaSet>], new: Option<&Arc<ReplicaSet>>) -> Vec<Arc<ReplicaSet>> {
    rss.iter().filter(|rs| new.is_none_or(|n| n.metadata.uid != rs.metadata.uid)).cloned().collect()
}

pub fn active(rss: &[Arc<ReplicaSet>]) -> Vec<Arc<ReplicaSet>> {
    rss.iter().filter(|rs| replicas(rs) > 0).cloned().collect()
}

pub fn sum_spec(rss: &[Arc<ReplicaSet>]) -> i32 {
    rss.iter().map(|rs| replicas(rs)).sum()
}

fn status_of(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (s.replicas, s.ready_replicas.unwrap_or(0), s.available_replicas.unwrap_or(0))
}

pub fn sum_actual(rss: &[Arc<ReplicaSet>]) -> i32 {
    rss.iter().map(|rs| status_of(rs).0).sum()
}

pub fn sum_ready(rss: &[Arc<ReplicaSet>]) -> i32 {
    rss.iter().map(|rs| status_of(rs).1).sum()
}

pub fn sum_available(rss: &[Arc<ReplicaSet>]) -> i32 {
    rss.iter().map(|rs| status_of(rs).2).sum()
}

/// Available replicas that will remain: an old ReplicaSet just scaled down still reports
/// the pods it is about to delete as available, so each counts at most its spec.
///
/// Upstream sums `status.availableReplicas` as is when deciding how far old ReplicaSets
/// may shrink; with a status that lags a scale-down, a second sync would then shrink them
/// again below `replicas - maxUnavailable`. Clamping keeps the decision conservative.
pub fn sum_available_within_spec(rss: &[Arc<ReplicaSet>]) -> i32 {
    rss.iter().map(|rs| status_of(rs).2.min(replicas(rs))).sum()
}

pub fn available(rs: &ReplicaSet) -> i32 {
    status_of(rs).2
}

/// The pods a ReplicaSet may have: its spec, or more while its controller has not yet
/// deleted the surplus after a scale-down (the status still counts them).
fn pods_upper_bound(rs: &ReplicaSet) -> i32 {
    replicas(rs).max(status_of(rs).0)
}

/// Upstream's `NewRSNewReplicas`: how big the new ReplicaSet may be now.
///
/// Upstream counts the old ReplicaSets by their spec; this counts the larger of spec and
/// status, so that pods an old ReplicaSet is still deleting keep the total within
/// `replicas + maxSurge` while the new ReplicaSet grows.
pub fn new_rs_new_replicas(d: &Deployment, all: &[Arc<ReplicaSet>], new: &ReplicaSet) -> Result<i32, String> {
    if !is_rolling(d) {
        return Ok(desired(d));
    }
    let ru = d.spec.strategy.as_ref().and_then(|s| s.rolling_update.as_ref());
    let surge = scaled_value(ru.and_then(|r| r.max_surge.as_ref()), desired(d), true)?;
    let current: i32 = all
        .iter()
        .map(|rs| if rs.metadata.uid == new.metadata.uid { replicas(new) } else { pods_upper_bound(rs) })
        .sum();
    let max_total = desired(d) + surge;
    if current >= max_total {
        return Ok(replicas(new));
    }
    let up = (max_total - current).min(desired(d) - replicas(new));
    Ok(replicas(new) + up.max(0))
}

/// Sets the replica annotations; tells whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.to_owned(), v);
            changed = true;
        }
    }
    changed
}

pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata.annotations, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata.annotations, MAX_REPLICAS) != Some(max.to_string().as_str())
}

pub fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata.annotations, DESIRED_REPLICAS).and_then(|v| v.parse().ok())
}

fn max_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata.annotations, MAX_REPLICAS).and_then(|v| v.parse().ok())
}

/// Upstream's `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, moves
/// the revision forward (keeping the old one in the history when an old ReplicaSet comes
/// back by a rollback) and, for a ReplicaSet about to be created, the replica annotations.
pub fn set_new_rs_annotations(d: &Deployment, rs: &mut ReplicaSet, new_revision: i64, exists: bool) -> bool {
    let mut changed = false;
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if SKIPPED_ANNOTATIONS.contains(&k.as_str()) || a.get(k) == Some(v) {
            continue;
        }
        a.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = a.get(REVISION).cloned().unwrap_or_default();
    let old_n: i64 = old.parse().unwrap_or(0);
    if old_n < new_revision {
        a.insert(REVISION.to_owned(), new_revision.to_string());
        changed = true;
        if !old.is_empty() {
            let history = match a.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old.clone(),
            };
            a.insert(REVISION_HISTORY.to_owned(), history);
        }
    }
    if !exists && set_replicas_annotations(rs, desired(d), desired(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

pub fn max_revision(rss: &[Arc<ReplicaSet>]) -> i64 {
    rss.iter().map(|rs| revision(rs)).max().unwrap_or(0)
}

/// Upstream's `getReplicaSetFraction`: how many replicas `rs` should gain (or lose) for
/// the Deployment's new size, in proportion to its share of the old size.
fn fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if desired(d) == 0 {
        return -replicas(rs);
    }
    let deployment_replicas = desired(d) + max_surge(d);
    let annotated = max_annotation(rs).unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let new_size = f64::from(replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    (new_size.round() as i32) - replicas(rs)
}

/// Upstream's `GetProportion`.
fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let f = fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 { f.min(allowed) } else { f.max(allowed) }
}

/// Upstream's proportional scaling in `scale`: the new size of each active ReplicaSet when
/// a rolling Deployment is resized mid-rollout, largest first.
pub fn proportional_sizes(d: &Deployment, active_rss: &[Arc<ReplicaSet>]) -> Vec<(Arc<ReplicaSet>, i32)> {
    let mut rss = active_rss.to_vec();
    let current = sum_spec(&rss);
    let allowed = if desired(d) > 0 { desired(d) + max_surge(d) } else { 0 };
    let to_add = allowed - current;
    // Larger first; on equal sizes, newer first when growing and older first when shrinking.
    rss.sort_by(|a, b| {
        replicas(b).cmp(&replicas(a)).then_with(|| if to_add > 0 { by_creation(b, a) } else { by_creation(a, b) })
    });
    let mut added = 0;
    let mut sizes: Vec<(Arc<ReplicaSet>, i32)> = Vec::new();
    for rs in &rss {
        if to_add != 0 {
            let p = proportion(rs, d, to_add, added);
            sizes.push((rs.clone(), replicas(rs) + p));
            added += p;
        } else {
            sizes.push((rs.clone(), replicas(rs)));
        }
    }
    if let Some(first) = sizes.first_mut()
        && to_add != 0
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    sizes
}

/// Upstream's `FindActiveOrLatest`: the only active ReplicaSet, or the newest if none is
/// active; `None` when several are active.
pub fn active_or_latest(new: Option<&Arc<ReplicaSet>>, old: &[Arc<ReplicaSet>]) -> Option<Arc<ReplicaSet>> {
    let mut old = old.to_vec();
    sort_by_creation(&mut old);
    old.reverse();
    let mut all: Vec<Arc<ReplicaSet>> = old.clone();
    all.extend(new.cloned());
    let act = active(&all);
    match act.len() {
        0 => new.cloned().or_else(|| old.first().cloned()),
        1 => act.first().cloned(),
        _ => None,
    }
}

/// Upstream's `IsSaturated`: the new ReplicaSet has all the replicas, all available.
pub fn is_saturated(d: &Deployment, rs: Option<&Arc<ReplicaSet>>) -> bool {
    let Some(rs) = rs else { return false };
    desired_annotation(rs) == Some(desired(d)) && replicas(rs) == desired(d) && available(rs) == desired(d)
}

pub fn condition<'a>(status: &'a DeploymentStatus, ty: &str) -> Option<&'a DeploymentCondition> {
    status.conditions.as_deref().unwrap_or_default().iter().find(|c| c.type_.as_deref() == Some(ty))
}

pub fn new_condition(ty: &str, status: &str, reason: &str, message: String, now: Timestamp) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(ty.to_owned()),
        status: Some(status.to_owned()),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream's `SetDeploymentCondition`: keeps the old condition if nothing but times
/// changed, and the transition time if only the reason changed.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = condition(status, cond.type_.as_deref().unwrap_or("")) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, cond.type_.as_deref().unwrap_or(""));
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

pub fn remove_condition(status: &mut DeploymentStatus, ty: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_.as_deref() != Some(ty));
    }
}

/// Upstream's `calculateStatus`.
pub fn calculate_status(
    all: &[Arc<ReplicaSet>],
    new: Option<&Arc<ReplicaSet>>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let available = sum_available(all);
    let total = sum_spec(all);
    let old = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum_actual(all)),
        updated_replicas: Some(new.map_or(0, |n| status_of(n).0)),
        ready_replicas: Some(sum_ready(all)),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: old.terminating_replicas,
    };
    if available >= desired(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

/// Upstream's `DeploymentComplete`.
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = desired(d);
    s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream's `DeploymentProgressing`: more updated, ready or available replicas, or fewer old ones.
pub fn is_progressing(d: &Deployment, s: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let z = |v: Option<i32>| v.unwrap_or(0);
    let old_old = z(old.replicas) - z(old.updated_replicas);
    let new_old = z(s.replicas) - z(s.updated_replicas);
    z(s.updated_replicas) > z(old.updated_replicas)
        || new_old < old_old
        || z(s.ready_replicas) > z(old.ready_replicas)
        || z(s.available_replicas) > z(old.available_replicas)
}

/// Upstream's `DeploymentTimedOut`.
pub fn timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = d.spec.progress_deadline_seconds else { return false };
    let Some(cond) = condition(s, PROGRESSING) else { return false };
    match cond.reason.as_deref() {
        Some("NewReplicaSetAvailable") => false,
        Some("ProgressDeadlineExceeded") => true,
        _ => cond.last_update_time.as_ref().is_some_and(|t| {
            t.0.checked_add(jiff::SignedDuration::from_secs(i64::from(deadline))).is_ok_and(|end| end < now)
        }),
    }
}

/// Upstream's `syncRolloutStatus` conditions: Progressing, from the new status.
pub fn rollout_status(
    d: &Deployment,
    all: &[Arc<ReplicaSet>],
    new: Option<&Arc<ReplicaSet>>,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(all, new, d, now);
    let has_deadline = d.spec.progress_deadline_seconds.is_some();
    if !has_deadline {
        remove_condition(&mut status, PROGRESSING);
    }
    let old = d.status.clone().unwrap_or_default();
    let current = condition(&old, PROGRESSING).cloned();
    let complete_already = status.replicas == status.updated_replicas
        && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    let rs_name = new.and_then(|n| n.metadata.name.clone());
    if has_deadline && !complete_already {
        if is_complete(d, &status) {
            let msg = match &rs_name {
                Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
                None => {
                    format!("Deployment {:?} has successfully progressed.", d.metadata.name.clone().unwrap_or_default())
                }
            };
            set_condition(&mut status, new_condition(PROGRESSING, "True", "NewReplicaSetAvailable", msg, now));
        } else if is_progressing(d, &status) {
            let msg = match &rs_name {
                Some(n) => format!("ReplicaSet {n:?} is progressing."),
                None => format!("Deployment {:?} is progressing.", d.metadata.name.clone().unwrap_or_default()),
            };
            let mut cond = new_condition(PROGRESSING, "True", "ReplicaSetUpdated", msg, now);
            if let Some(cur) = &current {
                if cur.status.as_deref() == Some("True") {
                    cond.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, cond);
        } else if timed_out(d, &status, now) {
            let msg = match &rs_name {
                Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                None => {
                    format!("Deployment {:?} has timed out progressing.", d.metadata.name.clone().unwrap_or_default())
                }
            };
            set_condition(&mut status, new_condition(PROGRESSING, "False", "ProgressDeadlineExceeded", msg, now));
        }
    }
    // Upstream moves a ReplicaSet's ReplicaFailure condition up to the Deployment.
    let failure = all.iter().find_map(|rs| {
        rs.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_.as_deref() == Some(REPLICA_FAILURE)).cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut status,
            DeploymentCondition {
                type_: Some(REPLICA_FAILURE.into()),
                status: f.status,
                reason: f.reason,
                message: f.message,
                last_update_time: f.last_transition_time.clone(),
                last_transition_time: f.last_transition_time,
            },
        ),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// Whether two statuses differ in more than condition timestamps that upstream would also
/// rewrite: counts, generation, and each condition's type, status, reason and message.
pub fn status_differs(a: &DeploymentStatus, b: &DeploymentStatus) -> bool {
    let key = |s: &DeploymentStatus| {
        let mut conds: Vec<_> = s
            .conditions
            .iter()
            .flatten()
            .map(|c| {
                (c.type_.clone(), c.status.clone(), c.reason.clone(), c.message.clone(), c.last_update_time.clone())
            })
            .collect();
        conds.sort_by(|x, y| x.0.cmp(&y.0));
        let z = |v: Option<i32>| v.unwrap_or(0);
        (
            s.observed_generation,
            z(s.replicas),
            z(s.updated_replicas),
            z(s.ready_replicas),
            z(s.available_replicas),
            z(s.unavailable_replicas),
            s.collision_count,
            conds,
        )
    };
    key(a) != key(b)
}

#[cfg(test)]
mod tests;
