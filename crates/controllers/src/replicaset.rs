//! The ReplicaSet controller: keeps `spec.replicas` pods matching each ReplicaSet, as
//! upstream's `pkg/controller/replicaset`.
//!
//! A sync reads the ReplicaSet and the pods of its namespace from the informer caches,
//! lets [`plan`] decide, and performs the writes: adoptions and releases (merge patches
//! with a resourceVersion precondition), creations and deletions (guarded by
//! [`Expectations`]), then the status through `/status`. Informer handlers enqueue the
//! ReplicaSets that a change concerns and count expectations down.

pub mod plan;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::expectations::Expectations;
use crate::informer::{Cache, Change};
use crate::meta::{Key, controller_of, controller_ref, selector_of};
use crate::queue::WorkQueue;
use crate::{Context, Error, is_conflict, is_not_found, pods, run_workers};

/// Upstream's `ConcurrentRSSyncs` default.
const WORKERS: usize = 5;
/// How many pod writes one sync has in flight at once.
const MAX_IN_FLIGHT: usize = 64;

/// The shared state of one ReplicaSet controller.
pub struct ReplicaSetController {
    client: kube::Client,
    replicasets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    queue: WorkQueue<Key>,
    expectations: Arc<Expectations>,
    recorder: Recorder,
}

/// Builds the controller, registering its handlers on the shared informers, and returns
/// the future that runs its workers.
pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let c = Arc::new(ReplicaSetController {
        client: ctx.client.clone(),
        replicasets: ctx.informers.cache(),
        pods: ctx.informers.cache(),
        queue: WorkQueue::default(),
        expectations: Arc::new(Expectations::default()),
        recorder: Recorder::new(ctx.client.clone(), "replicaset-controller"),
    });
    c.register_handlers();
    Box::pin(async move {
        c.replicasets.wait_synced().await;
        c.pods.wait_synced().await;
        let queue = c.queue.clone();
        run_workers("replicaset", queue, WORKERS, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    })
}

impl ReplicaSetController {
    fn register_handlers(self: &Arc<Self>) {
        let queue = self.queue.clone();
        let expectations = self.expectations.clone();
        self.replicasets.on_change(move |change| match change {
            Change::Added(rs) | Change::Updated { new: rs, .. } => queue.add(Key::of(rs.as_ref())),
            Change::Deleted(rs) => {
                expectations.delete(&Key::of(rs.as_ref()).to_string());
                queue.add(Key::of(rs.as_ref()));
            }
        });
        let this = Arc::downgrade(self);
        self.pods.on_change(move |change| {
            if let Some(c) = this.upgrade() {
                c.on_pod_change(change);
            }
        });
    }

    /// The ReplicaSet that controls `pod`, if it exists in the cache with the same UID.
    fn controller_rs(&self, pod: &Pod) -> Option<Arc<ReplicaSet>> {
        let r = controller_of(&pod.metadata)?;
        if r.kind != "ReplicaSet" {
            return None;
        }
        let rs = self.replicasets.get(pod.metadata.namespace.as_deref().unwrap_or(""), &r.name)?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(rs)
    }

    /// Enqueues every ReplicaSet whose selector matches an orphan pod, which may adopt it.
    fn enqueue_matching(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        for rs in self.replicasets.list_namespace(ns) {
            if let Ok(sel) = selector_of(Some(&rs.spec.selector))
                && sel.matches(crate::meta::labels(&pod.metadata))
            {
                self.queue.add(Key::of(rs.as_ref()));
            }
        }
    }

    /// A pod went away (or started going away): its controller's deletion is observed.
    fn pod_gone(&self, pod: &Pod) {
        if let Some(rs) = self.controller_rs(pod) {
            let key = Key::of(rs.as_ref());
            self.expectations.deletion_observed(&key.to_string(), &Key::of(pod).to_string());
            self.queue.add(key);
        }
    }

    /// Upstream's `addPod`, `updatePod` and `deletePod`.
    fn on_pod_change(&self, change: &Change<'_, Pod>) {
        match change {
            Change::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    // Seen for the first time already going away (e.g. after a re-list):
                    // it must not count as a creation.
                    self.pod_gone(pod);
                    return;
                }
                match self.controller_rs(pod) {
                    Some(rs) => {
                        let key = Key::of(rs.as_ref());
                        self.expectations.creation_observed(&key.to_string());
                        self.queue.add(key);
                    }
                    None if controller_of(&pod.metadata).is_none() => self.enqueue_matching(pod),
                    None => {}
                }
            }
            Change::Updated { old, new } => {
                let labels_changed = old.metadata.labels != new.metadata.labels;
                if new.metadata.deletion_timestamp.is_some() {
                    self.pod_gone(new);
                    if labels_changed {
                        self.pod_gone(old);
                    }
                    return;
                }
                let old_ref = controller_of(&old.metadata);
                let new_ref = controller_of(&new.metadata);
                let ref_changed = old_ref.map(|r| &r.uid) != new_ref.map(|r| &r.uid);
                if ref_changed && let Some(rs) = self.controller_rs(old) {
                    self.queue.add(Key::of(rs.as_ref()));
                }
                match self.controller_rs(new) {
                    Some(rs) => {
                        let key = Key::of(rs.as_ref());
                        let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
                        if min_ready > 0 && !pods::is_ready(old) && pods::is_ready(new) {
                            // The pod becomes available only later; look again then.
                            let delay = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0));
                            self.queue.add_after(key.clone(), delay);
                        }
                        self.queue.add(key);
                    }
                    None if new_ref.is_none() && (labels_changed || ref_changed) => self.enqueue_matching(new),
                    None => {}
                }
            }
            Change::Deleted(pod) => self.pod_gone(pod),
        }
    }

    /// One sync of one ReplicaSet. `Ok(Some(d))` asks to look again after `d`.
    async fn sync(&self, key: &Key) -> Result<Option<Duration>, Error> {
        let exp_key = key.to_string();
        let Some(rs) = self.replicasets.get(&key.namespace, &key.name) else {
            self.expectations.delete(&exp_key);
            return Ok(None);
        };
        let satisfied = self.expectations.satisfied(&exp_key);
        let selector = match selector_of(Some(&rs.spec.selector)) {
            Ok(s) => s,
            Err(e) => {
                // A selector the API accepted but that does not parse cannot be fixed by retrying.
                tracing::warn!(replicaset = %key, error = %e, "invalid selector");
                return Ok(None);
            }
        };
        let all_pods = self.pods.list_namespace(&key.namespace);
        let claims = plan::claim_pods(&rs, &selector, &all_pods);
        let mut owned = claims.owned;
        if !claims.release.is_empty() || !claims.adopt.is_empty() {
            owned.extend(self.adopt_and_release(&rs, &claims.adopt, &claims.release).await?);
        }
        let active: Vec<Arc<Pod>> = owned.into_iter().filter(|p| pods::is_active(p)).collect();

        let mut failure: Option<(&'static str, String)> = None;
        let mut lost_race = false;
        if satisfied && rs.metadata.deletion_timestamp.is_none() {
            let taken: HashSet<String> = all_pods.iter().map(|p| p.name_any()).collect();
            match plan::scale(&rs, &active, &taken) {
                plan::Scale::None => {}
                plan::Scale::Create(names) => match self.create_pods(&rs, &exp_key, names).await {
                    Ok(()) => {}
                    // Another controller created that pod first: not a failure of this
                    // ReplicaSet, only a reason to look again once the cache has it.
                    Err(Error::Api(e)) if is_already_exists(&e) => lost_race = true,
                    Err(e) => failure = Some(("FailedCreate", e.to_string())),
                },
                plan::Scale::Delete(victims) => {
                    if let Err(e) = self.delete_pods(&rs, &exp_key, victims).await {
                        failure = Some(("FailedDelete", e.to_string()));
                    }
                }
            }
        }

        let now = jiff::Timestamp::now();
        let status = plan::status(&rs, &active, now, failure.as_ref().map(|(r, m)| (*r, m.as_str())));
        self.write_status(&rs, &active, status.clone(), failure.as_ref().map(|(r, m)| (*r, m.as_str()))).await?;
        if let Some((_, message)) = failure {
            return Err(Error::Sync(message));
        }
        if lost_race {
            return Err(Error::Sync(format!("replicaset {key}: a pod it wanted to create already exists")));
        }
        let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
        let ready = status.ready_replicas.unwrap_or(0);
        let available = status.available_replicas.unwrap_or(0);
        if min_ready > 0 && ready == status.replicas && available != status.replicas {
            return Ok(Some(Duration::from_secs(u64::try_from(min_ready).unwrap_or(0))));
        }
        Ok(None)
    }

    /// Adopts orphans and releases strays, returning the pods adopted.
    async fn adopt_and_release(
        &self,
        rs: &ReplicaSet,
        adopt: &[Arc<Pod>],
        release: &[Arc<Pod>],
    ) -> Result<Vec<Arc<Pod>>, Error> {
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        for pod in release {
            let refs: Vec<_> = pod.owner_references().iter().filter(|r| r.uid != uid).cloned().collect();
            let patch = json!({"metadata": {
                "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { json!(refs) },
                "resourceVersion": pod.resource_version(),
            }});
            match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut adopted = Vec::new();
        if adopt.is_empty() {
            return Ok(adopted);
        }
        // Upstream's `RecheckDeletionTimestamp`: adopt only if a fresh read shows this same
        // ReplicaSet, not being deleted, since the cache may be behind.
        let fresh = Api::<ReplicaSet>::namespaced(self.client.clone(), &ns).get(&rs.name_any()).await?;
        if fresh.metadata.uid != rs.metadata.uid || fresh.metadata.deletion_timestamp.is_some() {
            return Err(Error::Sync(format!("replicaset {}/{} changed before adoption", ns, rs.name_any())));
        }
        for pod in adopt {
            let mut refs = pod.owner_references().to_vec();
            refs.push(controller_ref(rs));
            let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": pod.resource_version()}});
            match api.patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(p) => adopted.push(Arc::new(p)),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(adopted)
    }

    /// Creates pods in upstream's slow-start batches (1, 2, 4, ...), stopping at the first
    /// batch with a failure so that a hopeless create (quota, admission) is not repeated
    /// hundreds of times.
    async fn create_pods(&self, rs: &ReplicaSet, exp_key: &str, names: Vec<String>) -> Result<(), Error> {
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        self.expectations.expect_creations(exp_key, names.len());
        let mut remaining = names.as_slice();
        let mut batch = 1usize;
        let mut first_error: Option<Error> = None;
        while !remaining.is_empty() {
            let (now, later) = remaining.split_at(batch.min(remaining.len()));
            remaining = later;
            let results: Vec<Result<Pod, kube::Error>> = futures::stream::iter(now.iter().cloned())
                .map(|name| {
                    let pod = pod_from_template(rs, &ns, name);
                    let api = api.clone();
                    async move { api.create(&PostParams::default(), &pod).await }
                })
                .buffer_unordered(MAX_IN_FLIGHT)
                .collect()
                .await;
            for r in results {
                match r {
                    Ok(pod) => self.recorder.event(
                        rs,
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", pod.name_any()),
                    ),
                    Err(e) => {
                        // This pod will never show up in the cache: stop waiting for it.
                        self.expectations.creation_observed(exp_key);
                        if !is_already_exists(&e) {
                            self.recorder.event(rs, EventType::Warning, "FailedCreate", format!("Error creating: {e}"));
                        }
                        first_error.get_or_insert(e.into());
                    }
                }
            }
            if first_error.is_some() {
                for _ in remaining {
                    self.expectations.creation_observed(exp_key);
                }
                break;
            }
            batch *= 2;
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes pods in parallel, each with its UID as a precondition, so that a pod
    /// replaced under the same name since the cache saw it is left alone.
    async fn delete_pods(&self, rs: &ReplicaSet, exp_key: &str, victims: Vec<Arc<Pod>>) -> Result<(), Error> {
        let ns = rs.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        self.expectations.expect_deletions(exp_key, victims.iter().map(|p| Key::of(p.as_ref()).to_string()));
        let results: Vec<(Arc<Pod>, Result<(), kube::Error>)> = futures::stream::iter(victims)
            .map(|pod| {
                let api = api.clone();
                async move {
                    let dp = DeleteParams {
                        preconditions: Some(Preconditions { uid: pod.metadata.uid.clone(), resource_version: None }),
                        ..DeleteParams::default()
                    };
                    let r = api.delete(&pod.name_any(), &dp).await.map(|_| ());
                    (pod, r)
                }
            })
            .buffer_unordered(MAX_IN_FLIGHT)
            .collect()
            .await;
        let mut first_error = None;
        for (pod, r) in results {
            match r {
                Ok(()) => self.recorder.event(
                    rs,
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", pod.name_any()),
                ),
                Err(e) => {
                    self.expectations.deletion_observed(exp_key, &Key::of(pod.as_ref()).to_string());
                    if !is_not_found(&e) {
                        self.recorder.event(rs, EventType::Warning, "FailedDelete", format!("Error deleting: {e}"));
                        first_error.get_or_insert(Error::from(e));
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Writes the status through `/status` unless it is unchanged; on a conflict, reads
    /// the ReplicaSet again and recomputes the status from it.
    async fn write_status(
        &self,
        rs: &ReplicaSet,
        active: &[Arc<Pod>],
        mut status: k8s_openapi::api::apps::v1::ReplicaSetStatus,
        failure: Option<(&str, &str)>,
    ) -> Result<(), Error> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &rs.namespace().unwrap_or_default());
        let mut current = rs.clone();
        for _ in 0..3 {
            let unchanged = current.status.as_ref().is_some_and(|s| !plan::status_differs(s, &status));
            if unchanged {
                return Ok(());
            }
            let mut next = current.clone();
            next.status = Some(status.clone());
            match api.replace_status(&current.name_any(), &PostParams::default(), &next).await {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if is_conflict(&e) => {
                    current = match api.get_opt(&rs.name_any()).await? {
                        Some(fresh) if fresh.metadata.uid == rs.metadata.uid => fresh,
                        _ => return Ok(()),
                    };
                    status = plan::status(&current, active, jiff::Timestamp::now(), failure);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Sync(format!("status of replicaset {} kept conflicting", rs.name_any())))
    }
}

/// The pod a ReplicaSet creates, as upstream's `GetPodFromTemplate`.
pub fn pod_from_template(rs: &ReplicaSet, namespace: &str, name: String) -> Pod {
    let template = rs.spec.template.clone().unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            generate_name: Some(plan::generate_name_base(&rs.name_any())),
            namespace: Some(namespace.to_owned()),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![controller_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_already_exists())
}
