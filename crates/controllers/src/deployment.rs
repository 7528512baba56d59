//! The Deployment controller: rolls a Deployment's pods from one template to the next
//! through ReplicaSets, as upstream's `pkg/controller/deployment`.
//!
//! One sync, like upstream's `syncDeployment`: claim the ReplicaSets the selector matches,
//! then either only scale (paused, or a resize mid-rollout) or roll out with the strategy
//! (RollingUpdate or Recreate), clean up old ReplicaSets beyond `revisionHistoryLimit`, and
//! write the status. The arithmetic (hashes, fenceposts, proportions, conditions) lives in
//! [`util`] as pure functions; this module performs the writes. Every write is a PUT of
//! the object as the cache (or the previous write) showed it, so a concurrent change makes
//! it fail with 409 and the sync is retried from fresh state.

pub mod util;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::events::{EventType, Recorder};
use crate::informer::{Cache, Change};
use crate::meta::{Key, controller_of, controller_ref, labels, selector_of};
use crate::queue::WorkQueue;
use crate::{Context, Error, is_not_found, run_workers};
use util::{PROGRESSING, desired, max_surge, replicas};

/// Upstream's `ConcurrentDeploymentSyncs` default.
const WORKERS: usize = 5;

pub struct DeploymentController {
    client: kube::Client,
    deployments: Cache<Deployment>,
    replicasets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    queue: WorkQueue<Key>,
    recorder: Recorder,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let c = Arc::new(DeploymentController {
        client: ctx.client.clone(),
        deployments: ctx.informers.cache(),
        replicasets: ctx.informers.cache(),
        pods: ctx.informers.cache(),
        queue: WorkQueue::default(),
        recorder: Recorder::new(ctx.client.clone(), "deployment-controller"),
    });
    c.register_handlers();
    Box::pin(async move {
        c.deployments.wait_synced().await;
        c.replicasets.wait_synced().await;
        c.pods.wait_synced().await;
        let queue = c.queue.clone();
        run_workers("deployment", queue, WORKERS, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    })
}

/// The state one sync works on: the Deployment and its ReplicaSets as last written.
struct Sync {
    d: Deployment,
    rss: Vec<Arc<ReplicaSet>>,
}

impl Sync {
    fn replace(&mut self, rs: Arc<ReplicaSet>) {
        match self.rss.iter_mut().find(|r| r.metadata.uid == rs.metadata.uid) {
            Some(slot) => *slot = rs,
            None => self.rss.push(rs),
        }
    }
}

impl DeploymentController {
    fn register_handlers(self: &Arc<Self>) {
        let queue = self.queue.clone();
        self.deployments.on_change(move |change| match change {
            Change::Added(d) | Change::Updated { new: d, .. } | Change::Deleted(d) => queue.add(Key::of(d.as_ref())),
        });
        let this = Arc::downgrade(self);
        self.replicasets.on_change(move |change| {
            let Some(c) = this.upgrade() else { return };
            match change {
                Change::Added(rs) | Change::Deleted(rs) => c.enqueue_for_rs(rs),
                Change::Updated { old, new } => {
                    if controller_of(&old.metadata).map(|r| &r.uid) != controller_of(&new.metadata).map(|r| &r.uid) {
                        c.enqueue_for_rs(old);
                    }
                    c.enqueue_for_rs(new);
                }
            }
        });
        let this = Arc::downgrade(self);
        self.pods.on_change(move |change| {
            // Recreate waits for the old pods to be gone, so it must hear of deletions.
            if let (Some(c), Change::Deleted(pod)) = (this.upgrade(), change)
                && let Some(r) = controller_of(&pod.metadata)
                && let Some(rs) = c.replicasets.get(pod.metadata.namespace.as_deref().unwrap_or(""), &r.name)
            {
                c.enqueue_for_rs(&rs);
            }
        });
    }

    /// Enqueues the Deployment that controls `rs`, or, for an orphan, every Deployment
    /// whose selector matches it.
    fn enqueue_for_rs(&self, rs: &ReplicaSet) {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        match controller_of(&rs.metadata) {
            Some(r) if r.kind == "Deployment" => {
                if let Some(d) = self.deployments.get(ns, &r.name)
                    && d.metadata.uid.as_deref() == Some(r.uid.as_str())
                {
                    self.queue.add(Key::of(d.as_ref()));
                }
            }
            Some(_) => {}
            None => {
                for d in self.deployments.list_namespace(ns) {
                    if let Ok(sel) = selector_of(Some(&d.spec.selector))
                        && !sel.is_empty()
                        && sel.matches(labels(&rs.metadata))
                    {
                        self.queue.add(Key::of(d.as_ref()));
                    }
                }
            }
        }
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn d_api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn sync(&self, key: &Key) -> Result<Option<Duration>, Error> {
        let Some(cached) = self.deployments.get(&key.namespace, &key.name) else { return Ok(None) };
        let d: Deployment = (*cached).clone();
        let selector = match selector_of(Some(&d.spec.selector)) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(deployment = %key, error = %e, "invalid selector");
                return Ok(None);
            }
        };
        if selector.is_empty() {
            self.recorder.event(
                &d,
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            return Ok(None);
        }
        let rss = self.claim_replicasets(&d, &selector).await?;
        let mut s = Sync { d, rss };
        if s.d.metadata.deletion_timestamp.is_some() {
            self.sync_only(&mut s, false).await?;
            return Ok(None);
        }
        self.check_paused_conditions(&mut s).await?;
        if s.d.spec.paused == Some(true) {
            self.sync_only(&mut s, true).await?;
            return Ok(None);
        }
        if self.is_scaling_event(&s) {
            self.sync_only(&mut s, false).await?;
            return Ok(None);
        }
        if util::is_rolling(&s.d) { self.rollout_rolling(&mut s).await } else { self.rollout_recreate(&mut s).await }
    }

    /// Upstream's `getReplicaSetsForDeployment`: owned ReplicaSets that match, after
    /// adopting matching orphans and releasing owned ones that no longer match.
    async fn claim_replicasets(
        &self,
        d: &Deployment,
        selector: &rkube_apimachinery::selector::LabelSelector,
    ) -> Result<Vec<Arc<ReplicaSet>>, Error> {
        let ns = d.namespace().unwrap_or_default();
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let deleting = d.metadata.deletion_timestamp.is_some();
        let mut owned = Vec::new();
        let mut fresh_checked = false;
        for rs in self.replicasets.list_namespace(&ns) {
            let matches = selector.matches(labels(&rs.metadata));
            match controller_of(&rs.metadata) {
                Some(r) if r.uid != uid => {}
                Some(_) if matches => owned.push(rs),
                Some(_) if !deleting => {
                    let refs: Vec<_> = rs.owner_references().iter().filter(|r| r.uid != uid).cloned().collect();
                    let patch = json!({"metadata": {
                        "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { json!(refs) },
                        "resourceVersion": rs.resource_version(),
                    }});
                    match self.rs_api(&ns).patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                        Ok(_) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(_) => {}
                None if deleting || !matches || rs.metadata.deletion_timestamp.is_some() => {}
                None => {
                    if !fresh_checked {
                        let fresh = self.d_api(&ns).get(&d.name_any()).await?;
                        if fresh.metadata.uid != d.metadata.uid || fresh.metadata.deletion_timestamp.is_some() {
                            return Err(Error::Sync(format!(
                                "deployment {ns}/{} changed before adoption",
                                d.name_any()
                            )));
                        }
                        fresh_checked = true;
                    }
                    let mut refs = rs.owner_references().to_vec();
                    refs.push(controller_ref(d));
                    let patch =
                        json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.resource_version()}});
                    match self.rs_api(&ns).patch(&rs.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
                        Ok(adopted) => owned.push(Arc::new(adopted)),
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(owned)
    }

    /// Upstream's `checkPausedConditions`.
    async fn check_paused_conditions(&self, s: &mut Sync) -> Result<(), Error> {
        if s.d.spec.progress_deadline_seconds.is_none() {
            return Ok(());
        }
        let mut status = s.d.status.clone().unwrap_or_default();
        let paused_cond =
            util::condition(&status, PROGRESSING).is_some_and(|c| c.reason.as_deref() == Some("DeploymentPaused"));
        let paused = s.d.spec.paused == Some(true);
        let now = jiff::Timestamp::now();
        if paused && !paused_cond {
            util::set_condition(
                &mut status,
                util::new_condition(PROGRESSING, "Unknown", "DeploymentPaused", "Deployment is paused".into(), now),
            );
        } else if !paused && paused_cond {
            util::set_condition(
                &mut status,
                util::new_condition(PROGRESSING, "Unknown", "DeploymentResumed", "Deployment is resumed".into(), now),
            );
        } else {
            return Ok(());
        }
        self.write_status(s, status).await
    }

    /// Upstream's `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    fn is_scaling_event(&self, s: &Sync) -> bool {
        let want = desired(&s.d);
        util::active(&s.rss).iter().any(|rs| util::desired_annotation(rs).is_some_and(|d| d != want))
    }

    /// Upstream's `sync`: scale, clean up when paused, and write the status.
    async fn sync_only(&self, s: &mut Sync, cleanup: bool) -> Result<(), Error> {
        let (new, old) = self.all_replicasets(s, false).await?;
        self.scale(s, new.as_ref(), &old).await?;
        let (new, old) = self.current_split(s, new.as_ref());
        if cleanup {
            self.cleanup(s, &old).await?;
        }
        let status = util::calculate_status(&s.rss, new.as_ref(), &s.d, jiff::Timestamp::now());
        self.write_status(s, status).await
    }

    /// The new ReplicaSet (by UID) and the others, from the latest state of the sync.
    fn current_split(
        &self,
        s: &Sync,
        new: Option<&Arc<ReplicaSet>>,
    ) -> (Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>) {
        let new = new.and_then(|n| s.rss.iter().find(|r| r.metadata.uid == n.metadata.uid).cloned());
        let old = util::find_old(&s.rss, new.as_ref());
        (new, old)
    }

    /// Upstream's `scale`.
    async fn scale(&self, s: &mut Sync, new: Option<&Arc<ReplicaSet>>, old: &[Arc<ReplicaSet>]) -> Result<(), Error> {
        let want = desired(&s.d);
        if let Some(target) = util::active_or_latest(new, old) {
            // `scale_rs` also brings the replica annotations up to date when the size is right.
            self.scale_rs(s, &target, want).await?;
            return Ok(());
        }
        if util::is_saturated(&s.d, new) {
            for rs in util::active(old) {
                self.scale_rs(s, &rs, 0).await?;
            }
            return Ok(());
        }
        if util::is_rolling(&s.d) {
            let mut all: Vec<Arc<ReplicaSet>> = old.to_vec();
            all.extend(new.cloned());
            let active = util::active(&all);
            for (rs, size) in util::proportional_sizes(&s.d, &active) {
                self.scale_rs(s, &rs, size).await?;
            }
        }
        Ok(())
    }

    /// Upstream's `scaleReplicaSet`: sets the size and the replica annotations, and
    /// records the scaling.
    async fn scale_rs(&self, s: &mut Sync, rs: &Arc<ReplicaSet>, size: i32) -> Result<Arc<ReplicaSet>, Error> {
        let want = desired(&s.d);
        let max = want + max_surge(&s.d);
        let old_size = replicas(rs);
        let size_changed = old_size != size;
        if !size_changed && !util::replicas_annotations_need_update(rs, want, max) {
            return Ok(rs.clone());
        }
        let mut copy = (**rs).clone();
        copy.spec.replicas = Some(size);
        util::set_replicas_annotations(&mut copy, want, max);
        let updated = Arc::new(
            self.rs_api(&rs.namespace().unwrap_or_default())
                .replace(&rs.name_any(), &PostParams::default(), &copy)
                .await?,
        );
        if size_changed {
            let op = if old_size < size { "up" } else { "down" };
            self.recorder.event(
                &s.d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled {op} replica set {} from {old_size} to {size}", rs.name_any()),
            );
        }
        s.replace(updated.clone());
        Ok(updated)
    }

    /// Upstream's `getAllReplicaSetsAndSyncRevision` and `getNewReplicaSet`: finds (or, if
    /// `create`, creates) the new ReplicaSet and brings revisions up to date.
    async fn all_replicasets(
        &self,
        s: &mut Sync,
        create: bool,
    ) -> Result<(Option<Arc<ReplicaSet>>, Vec<Arc<ReplicaSet>>), Error> {
        let existing = util::find_new(&s.d, &s.rss);
        let old = util::find_old(&s.rss, existing.as_ref());
        let new_revision = util::max_revision(&old) + 1;
        let ns = s.d.namespace().unwrap_or_default();
        let now = jiff::Timestamp::now();
        if let Some(existing) = existing {
            let mut copy = (*existing).clone();
            let annotations_changed = util::set_new_rs_annotations(&s.d, &mut copy, new_revision, true);
            let min_ready_changed = copy.spec.min_ready_seconds != s.d.spec.min_ready_seconds;
            let rs = if annotations_changed || min_ready_changed {
                copy.spec.min_ready_seconds = s.d.spec.min_ready_seconds;
                let updated =
                    Arc::new(self.rs_api(&ns).replace(&copy.name_any(), &PostParams::default(), &copy).await?);
                s.replace(updated.clone());
                updated
            } else {
                existing
            };
            self.set_revision(s, util::revision(&rs)).await?;
            let status = s.d.status.clone().unwrap_or_default();
            if s.d.spec.progress_deadline_seconds.is_some() && util::condition(&status, PROGRESSING).is_none() {
                let mut status = status;
                let msg = format!("Found new replica set {:?}", rs.name_any());
                util::set_condition(
                    &mut status,
                    util::new_condition(PROGRESSING, "True", "FoundNewReplicaSet", msg, now),
                );
                self.write_status(s, status).await?;
            }
            return Ok((Some(rs), old));
        }
        if !create {
            return Ok((None, old));
        }
        let collision = s.d.status.as_ref().and_then(|st| st.collision_count);
        let hash = util::compute_hash(&s.d.spec.template, collision);
        let mut template = s.d.spec.template.clone();
        template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = s.d.spec.selector.clone();
        selector.match_labels.get_or_insert_with(Default::default).insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{hash}", s.d.name_any())),
                namespace: Some(ns.clone()),
                owner_references: Some(vec![controller_ref(&s.d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: s.d.spec.min_ready_seconds,
                selector,
                template: Some(template),
            },
            status: None,
        };
        let mut all = old.clone();
        all.push(Arc::new(new_rs.clone()));
        let new_replicas = util::new_rs_new_replicas(&s.d, &all, &new_rs).map_err(Error::Invalid)?;
        new_rs.spec.replicas = Some(new_replicas);
        util::set_new_rs_annotations(&s.d, &mut new_rs, new_revision, false);
        let (created, already_existed) = match self.rs_api(&ns).create(&PostParams::default(), &new_rs).await {
            Ok(rs) => (Arc::new(rs), false),
            Err(kube::Error::Api(st)) if st.is_already_exists() => {
                let found = self.rs_api(&ns).get_opt(&new_rs.name_any()).await?;
                match found {
                    Some(rs)
                        if controller_of(&rs.metadata).is_some_and(|r| Some(&r.uid) == s.d.metadata.uid.as_ref())
                            && rs
                                .spec
                                .template
                                .as_ref()
                                .is_some_and(|t| util::equal_ignore_hash(t, &s.d.spec.template)) =>
                    {
                        (Arc::new(rs), true)
                    }
                    _ => {
                        // A hash collision: another template already has this name. Upstream
                        // bumps collisionCount so that the next hash differs.
                        let mut status = s.d.status.clone().unwrap_or_default();
                        status.collision_count = Some(collision.unwrap_or(0) + 1);
                        self.write_status(s, status).await?;
                        return Err(Error::Sync(format!(
                            "replica set {} exists with another template",
                            new_rs.name_any()
                        )));
                    }
                }
            }
            Err(e) => {
                let message = format!("Failed to create new replica set {:?}: {e}", new_rs.name_any());
                self.recorder.event(&s.d, EventType::Warning, "FailedCreate", message.clone());
                if s.d.spec.progress_deadline_seconds.is_some() {
                    let mut status = s.d.status.clone().unwrap_or_default();
                    util::set_condition(
                        &mut status,
                        util::new_condition(PROGRESSING, "False", "ReplicaSetCreateError", message, now),
                    );
                    // The create error is what matters; a failed status write is retried with it.
                    let _ = self.write_status(s, status).await;
                }
                return Err(e.into());
            }
        };
        if !already_existed && new_replicas > 0 {
            self.recorder.event(
                &s.d,
                EventType::Normal,
                "ScalingReplicaSet",
                format!("Scaled up replica set {} from 0 to {new_replicas}", created.name_any()),
            );
        }
        s.replace(created.clone());
        self.set_revision(s, new_revision).await?;
        if !already_existed && s.d.spec.progress_deadline_seconds.is_some() {
            let mut status = s.d.status.clone().unwrap_or_default();
            let msg = format!("Created new replica set {:?}", created.name_any());
            util::set_condition(
                &mut status,
                util::new_condition(PROGRESSING, "True", "NewReplicaSetCreated", msg, now),
            );
            self.write_status(s, status).await?;
        }
        Ok((Some(created), old))
    }

    /// Sets the Deployment's revision annotation. Upstream writes it with the status; the
    /// rkube API keeps only `.status` from a `/status` write (see the README), so it is a
    /// merge patch of the annotation, which leaves the spec and its generation alone.
    async fn set_revision(&self, s: &mut Sync, revision: i64) -> Result<(), Error> {
        let rev = revision.to_string();
        if s.d.metadata.annotations.as_ref().and_then(|a| a.get(util::REVISION)) == Some(&rev) {
            return Ok(());
        }
        let patch =
            json!({"metadata": {"annotations": {util::REVISION: rev}, "resourceVersion": s.d.resource_version()}});
        s.d = self
            .d_api(&s.d.namespace().unwrap_or_default())
            .patch(&s.d.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Writes the status through `/status` unless nothing changed. A conflict fails the
    /// sync, which is retried from the fresh cache.
    async fn write_status(&self, s: &mut Sync, status: DeploymentStatus) -> Result<(), Error> {
        let current = s.d.status.clone().unwrap_or_default();
        if s.d.status.is_some() && !util::status_differs(&current, &status) {
            return Ok(());
        }
        let mut next = s.d.clone();
        next.status = Some(status);
        s.d = self
            .d_api(&s.d.namespace().unwrap_or_default())
            .replace_status(&s.d.name_any(), &PostParams::default(), &next)
            .await?;
        Ok(())
    }

    /// Upstream's `rolloutRolling`.
    async fn rollout_rolling(&self, s: &mut Sync) -> Result<Option<Duration>, Error> {
        let (new, _) = self.all_replicasets(s, true).await?;
        let Some(new) = new else { return Err(Error::Sync("no new replica set".into())) };
        // Scale up, if we can.
        if replicas(&new) != desired(&s.d) {
            let target = if replicas(&new) > desired(&s.d) {
                desired(&s.d)
            } else {
                util::new_rs_new_replicas(&s.d, &s.rss, &new).map_err(Error::Invalid)?
            };
            if target != replicas(&new) {
                self.scale_rs(s, &new, target).await?;
                return self.sync_rollout_status(s, &new).await;
            }
        }
        // Scale down, if we can.
        if self.reconcile_old(s, &new).await? {
            return self.sync_rollout_status(s, &new).await;
        }
        let (new_now, old) = self.current_split(s, Some(&new));
        let status = s.d.status.clone().unwrap_or_default();
        if util::is_complete(&s.d, &status) {
            self.cleanup(s, &old).await?;
        }
        self.sync_rollout_status(s, &new_now.unwrap_or(new)).await
    }

    /// Upstream's `reconcileOldReplicaSets`: scales old ReplicaSets down as far as
    /// `maxUnavailable` allows, unhealthy replicas first.
    async fn reconcile_old(&self, s: &mut Sync, new: &Arc<ReplicaSet>) -> Result<bool, Error> {
        let (new, old) = self.current_split(s, Some(new));
        let Some(new) = new else { return Ok(false) };
        let mut old = util::active(&old);
        if util::sum_spec(&old) == 0 {
            return Ok(false);
        }
        let all_pods = util::sum_spec(&s.rss);
        let min_available = desired(&s.d) - util::max_unavailable(&s.d);
        let new_unavailable = replicas(&new) - util::available(&new);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        // Clean up unhealthy replicas first, or they would block the rollout.
        util::sort_by_creation(&mut old);
        let mut cleaned = 0;
        for rs in &old {
            if cleaned >= max_scaled_down {
                break;
            }
            let unhealthy = replicas(rs) - util::available(rs);
            if replicas(rs) == 0 || unhealthy <= 0 {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(unhealthy);
            self.scale_rs(s, rs, replicas(rs) - down).await?;
            cleaned += down;
        }
        // Then scale down old ReplicaSets while enough pods stay available.
        let (_, old) = self.current_split(s, Some(&new));
        let mut old = util::active(&old);
        util::sort_by_creation(&mut old);
        let available = util::sum_available_within_spec(&s.rss);
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for rs in &old {
                if scaled >= total {
                    break;
                }
                let down = replicas(rs).min(total - scaled);
                if down <= 0 {
                    continue;
                }
                self.scale_rs(s, rs, replicas(rs) - down).await?;
                scaled += down;
            }
        }
        Ok(cleaned + scaled > 0)
    }

    /// Upstream's `rolloutRecreate`: all old pods go before any new one is created.
    async fn rollout_recreate(&self, s: &mut Sync) -> Result<Option<Duration>, Error> {
        let (new, old) = self.all_replicasets(s, false).await?;
        let mut scaled_down = false;
        for rs in util::active(&old) {
            self.scale_rs(s, &rs, 0).await?;
            scaled_down = true;
        }
        if scaled_down || self.old_pods_running(s, new.as_ref()) {
            return match new {
                Some(n) => self.sync_rollout_status(s, &n).await,
                None => self.sync_rollout_status_without_new(s).await,
            };
        }
        let new = match new {
            Some(n) => n,
            None => match self.all_replicasets(s, true).await? {
                (Some(n), _) => n,
                (None, _) => return Err(Error::Sync("no new replica set".into())),
            },
        };
        let want = desired(&s.d);
        if replicas(&new) != want {
            self.scale_rs(s, &new, want).await?;
        }
        let (new_now, old) = self.current_split(s, Some(&new));
        let status = s.d.status.clone().unwrap_or_default();
        if util::is_complete(&s.d, &status) {
            self.cleanup(s, &old).await?;
        }
        self.sync_rollout_status(s, &new_now.unwrap_or(new)).await
    }

    /// Upstream's `oldPodsRunning`: old ReplicaSets still report pods, or pods they
    /// control are not yet finished.
    fn old_pods_running(&self, s: &Sync, new: Option<&Arc<ReplicaSet>>) -> bool {
        let old = util::find_old(&s.rss, new);
        if util::sum_actual(&old) > 0 {
            return true;
        }
        let old_uids: Vec<&str> = old.iter().filter_map(|rs| rs.metadata.uid.as_deref()).collect();
        self.pods.list_namespace(&s.d.namespace().unwrap_or_default()).iter().any(|p| {
            controller_of(&p.metadata).is_some_and(|r| old_uids.contains(&r.uid.as_str()))
                && !matches!(p.status.as_ref().and_then(|st| st.phase.as_deref()), Some("Succeeded" | "Failed"))
        })
    }

    async fn sync_rollout_status_without_new(&self, s: &mut Sync) -> Result<Option<Duration>, Error> {
        let status = util::rollout_status(&s.d, &s.rss, None, jiff::Timestamp::now());
        self.write_status(s, status).await?;
        Ok(None)
    }

    /// Upstream's `syncRolloutStatus`, with its `requeueStuckDeployment`: while a rollout
    /// is in progress, look again when its progress deadline would pass.
    async fn sync_rollout_status(&self, s: &mut Sync, new: &Arc<ReplicaSet>) -> Result<Option<Duration>, Error> {
        let new = s.rss.iter().find(|r| r.metadata.uid == new.metadata.uid).cloned().unwrap_or_else(|| new.clone());
        let now = jiff::Timestamp::now();
        let status = util::rollout_status(&s.d, &s.rss, Some(&new), now);
        self.write_status(s, status.clone()).await?;
        let Some(deadline) = s.d.spec.progress_deadline_seconds else { return Ok(None) };
        let progressing = util::condition(&status, PROGRESSING).filter(|c| {
            c.reason.as_deref() == Some("ReplicaSetUpdated") || c.reason.as_deref() == Some("NewReplicaSetCreated")
        });
        match progressing.and_then(|c| c.last_update_time.as_ref()) {
            Some(t) if !util::is_complete(&s.d, &status) => {
                let end = t.0.checked_add(jiff::SignedDuration::from_secs(i64::from(deadline))).unwrap_or(now);
                let left = end.duration_since(now).as_secs().max(0);
                Ok(Some(Duration::from_secs(u64::try_from(left).unwrap_or(0) + 1)))
            }
            _ => Ok(None),
        }
    }

    /// Upstream's `cleanupDeployment`: deletes the oldest ReplicaSets that are fully scaled
    /// down, beyond `revisionHistoryLimit`.
    async fn cleanup(&self, s: &mut Sync, old: &[Arc<ReplicaSet>]) -> Result<(), Error> {
        let Some(limit) = s.d.spec.revision_history_limit else { return Ok(()) };
        let mut cleanable: Vec<Arc<ReplicaSet>> =
            old.iter().filter(|rs| rs.metadata.deletion_timestamp.is_none()).cloned().collect();
        let diff = i32::try_from(cleanable.len()).unwrap_or(i32::MAX) - limit;
        if diff <= 0 {
            return Ok(());
        }
        cleanable.sort_by(|a, b| {
            util::revision(a).cmp(&util::revision(b)).then_with(|| {
                a.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .cmp(&b.metadata.creation_timestamp.as_ref().map(|t| t.0))
            })
        });
        let ns = s.d.namespace().unwrap_or_default();
        for rs in cleanable.iter().take(usize::try_from(diff).unwrap_or(0)) {
            let st = rs.status.clone().unwrap_or_default();
            if st.replicas != 0 || replicas(rs) != 0 || rs.metadata.generation > st.observed_generation {
                continue;
            }
            let dp = DeleteParams {
                preconditions: Some(Preconditions { uid: rs.metadata.uid.clone(), resource_version: None }),
                ..DeleteParams::default()
            };
            match self.rs_api(&ns).delete(&rs.name_any(), &dp).await {
                Ok(_) => s.rss.retain(|r| r.metadata.uid != rs.metadata.uid),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
