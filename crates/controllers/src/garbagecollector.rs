//! The garbage collector: deletes objects whose owners are gone, and carries out
//! foreground and orphaning deletions, as upstream's `pkg/controller/garbagecollector`.
//!
//! A graph of every watched object (by UID: its identity, owner references, deletion state
//! and finalizers) is kept from the shared informers. Handlers enqueue three kinds of work:
//!
//! - [`Item::AttemptToDelete`]: an object whose owners may be gone. The object and each
//!   owner are read live from the API (the caches may lag), and the object is deleted if
//!   no owner remains, or its references to vanished owners are removed if some do.
//! - [`Item::Foreground`]: an owner deleted with `propagationPolicy=Foreground` (it has a
//!   deletionTimestamp and the `foregroundDeletion` finalizer). Its dependents are deleted;
//!   once none with `blockOwnerDeletion` remain, the finalizer is removed, which lets the
//!   API server delete the owner.
//! - [`Item::Orphan`]: an owner deleted with `propagationPolicy=Orphan` (the `orphan`
//!   finalizer). Its dependents lose their references to it, then the finalizer goes.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ObjectMeta, Patch, PatchParams, Preconditions, PropagationPolicy};
use parking_lot::Mutex;
use serde_json::json;

use crate::kinds::{self, Kind, MetaChange};
use crate::queue::WorkQueue;
use crate::{Context, Error, is_not_found, run_workers};

/// Upstream's `ConcurrentGCSyncs` default.
const WORKERS: usize = 20;
const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

/// One unit of garbage-collection work, by object UID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    AttemptToDelete(String),
    Foreground(String),
    Orphan(String),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::AttemptToDelete(u) => write!(f, "attempt-to-delete {u}"),
            Item::Foreground(u) => write!(f, "foreground {u}"),
            Item::Orphan(u) => write!(f, "orphan {u}"),
        }
    }
}

/// What the graph knows of one object.
#[derive(Clone, Debug)]
struct Node {
    kind: usize,
    namespace: String,
    name: String,
    owners: Vec<OwnerReference>,
    deleting: bool,
    finalizers: Vec<String>,
}

impl Node {
    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }
}

#[derive(Default)]
struct Graph {
    nodes: HashMap<String, Node>,
    /// Owner UID → UIDs of the objects that reference it.
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    fn unlink(&mut self, uid: &str, owners: &[OwnerReference]) {
        for o in owners {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
    }

    fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents.get(uid).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

pub struct GarbageCollector {
    client: kube::Client,
    kinds: Vec<Kind>,
    graph: Mutex<Graph>,
    queue: WorkQueue<Item>,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let gc = Arc::new(GarbageCollector {
        client: ctx.client.clone(),
        kinds: kinds::namespaced(),
        graph: Mutex::new(Graph::default()),
        queue: WorkQueue::default(),
    });
    let mut synced: Vec<Box<dyn Fn() -> bool + Send + Sync>> = Vec::new();
    kinds::for_each_cache(&ctx.informers, &mut |idx, cache| {
        let gc = Arc::downgrade(&gc);
        (cache.on_change)(Box::new(move |change| {
            if let Some(gc) = gc.upgrade() {
                gc.observe(idx, change);
            }
        }));
        synced.push(cache.is_synced);
    });
    Box::pin(async move {
        // Upstream waits for every informer before collecting: a dependent seen before its
        // owner's kind has listed would look orphaned.
        while !synced.iter().all(|s| s()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let queue = gc.queue.clone();
        run_workers("garbagecollector", queue, WORKERS, move |item| {
            let gc = gc.clone();
            async move { gc.process(&item).await }
        })
        .await;
    })
}

impl GarbageCollector {
    /// Updates the graph from one change and enqueues the work it calls for.
    fn observe(&self, kind: usize, change: MetaChange<'_>) {
        let mut g = self.graph.lock();
        match change {
            MetaChange::Upsert(meta) => {
                let Some(uid) = meta.uid.clone() else { return };
                let node = Node {
                    kind,
                    namespace: meta.namespace.clone().unwrap_or_default(),
                    name: meta.name.clone().unwrap_or_default(),
                    owners: meta.owner_references.clone().unwrap_or_default(),
                    deleting: meta.deletion_timestamp.is_some(),
                    finalizers: meta.finalizers.clone().unwrap_or_default(),
                };
                let old = g.nodes.insert(uid.clone(), node.clone());
                if let Some(old) = &old {
                    g.unlink(&uid, &old.owners);
                    // A dependent that dropped a reference may unblock a foreground deletion.
                    for o in &old.owners {
                        if !node.owners.iter().any(|n| n.uid == o.uid) {
                            self.queue.add(Item::Foreground(o.uid.clone()));
                        }
                    }
                }
                for o in &node.owners {
                    g.dependents.entry(o.uid.clone()).or_default().insert(uid.clone());
                }
                if node.deleting && node.has_finalizer(ORPHAN) {
                    self.queue.add(Item::Orphan(uid.clone()));
                }
                if node.deleting_dependents() {
                    self.queue.add(Item::Foreground(uid.clone()));
                    for dep in g.dependents_of(&uid) {
                        self.queue.add(Item::AttemptToDelete(dep));
                    }
                }
                if node.deleting {
                    // A dependent going away may be what a foreground owner waits for.
                    for o in &node.owners {
                        self.queue.add(Item::Foreground(o.uid.clone()));
                    }
                }
                let suspicious = node.owners.iter().any(|o| match g.nodes.get(&o.uid) {
                    None => true,
                    Some(owner) => owner.deleting_dependents(),
                });
                if suspicious {
                    self.queue.add(Item::AttemptToDelete(uid));
                }
            }
            MetaChange::Deleted(meta) => {
                let Some(uid) = meta.uid.clone() else { return };
                if let Some(old) = g.nodes.remove(&uid) {
                    g.unlink(&uid, &old.owners);
                    for o in &old.owners {
                        self.queue.add(Item::Foreground(o.uid.clone()));
                    }
                }
                for dep in g.dependents_of(&uid) {
                    self.queue.add(Item::AttemptToDelete(dep));
                }
            }
        }
    }

    fn api(&self, kind: &Kind, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &kind.resource)
    }

    async fn process(&self, item: &Item) -> Result<Option<Duration>, Error> {
        match item {
            Item::AttemptToDelete(uid) => self.attempt_to_delete(uid).await,
            Item::Foreground(uid) => self.foreground(uid).await,
            Item::Orphan(uid) => self.orphan(uid).await,
        }
        .map(|()| None)
    }

    /// Reads an object live; `None` if it is gone or was replaced by another with its name.
    async fn live(&self, node: &Node, uid: &str) -> Result<Option<DynamicObject>, Error> {
        let obj = self.api(&self.kinds[node.kind], &node.namespace).get_opt(&node.name).await?;
        Ok(obj.filter(|o| o.metadata.uid.as_deref() == Some(uid)))
    }

    /// Upstream's `attemptToDeleteItem`.
    async fn attempt_to_delete(&self, uid: &str) -> Result<(), Error> {
        let Some(node) = self.graph.lock().nodes.get(uid).cloned() else { return Ok(()) };
        let Some(latest) = self.live(&node, uid).await? else { return Ok(()) };
        let meta = &latest.metadata;
        if meta.deletion_timestamp.is_some() {
            // Already being deleted; a foreground deletion is handled by `foreground`.
            return Ok(());
        }
        let owners = meta.owner_references.clone().unwrap_or_default();
        if owners.is_empty() {
            return Ok(());
        }
        let mut solid = Vec::new();
        let mut dangling = Vec::new();
        let mut waiting = Vec::new();
        for o in &owners {
            match self.owner_state(o, &node.namespace).await? {
                OwnerState::Solid => solid.push(o.clone()),
                OwnerState::Dangling => dangling.push(o.clone()),
                OwnerState::WaitingForDependents => waiting.push(o.clone()),
            }
        }
        let plan = plan_attempt(&solid, &dangling, &waiting, self.graph.lock().dependents.contains_key(uid), meta);
        let api = self.api(&self.kinds[node.kind], &node.namespace);
        match plan {
            AttemptPlan::Nothing => Ok(()),
            AttemptPlan::RemoveReferences(remove) => {
                let keep: Vec<&OwnerReference> = owners.iter().filter(|o| !remove.contains(&o.uid)).collect();
                let patch = json!({"metadata": {"ownerReferences": keep, "resourceVersion": meta.resource_version}});
                match api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            AttemptPlan::Delete(policy) => {
                tracing::debug!(kind = %self.kinds[node.kind].resource.kind, name = %node.name, ?policy, "deleting object whose owners are gone");
                let dp = DeleteParams {
                    preconditions: Some(Preconditions { uid: Some(uid.to_owned()), resource_version: None }),
                    propagation_policy: Some(policy),
                    ..DeleteParams::default()
                };
                match api.delete(&node.name, &dp).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Upstream's `classifyReferences` for one owner, read live.
    async fn owner_state(&self, o: &OwnerReference, namespace: &str) -> Result<OwnerState, Error> {
        let Some(kind) = kinds::find(&self.kinds, &o.api_version, &o.kind) else {
            // An owner of a kind this collector does not know cannot be proven absent.
            return Ok(OwnerState::Solid);
        };
        let owner = self.api(kind, namespace).get_opt(&o.name).await?;
        Ok(match owner {
            Some(owner) if owner.metadata.uid.as_deref() == Some(o.uid.as_str()) => {
                let m = &owner.metadata;
                let fg = m.finalizers.as_deref().unwrap_or_default().iter().any(|f| f == FOREGROUND);
                if m.deletion_timestamp.is_some() && fg { OwnerState::WaitingForDependents } else { OwnerState::Solid }
            }
            _ => OwnerState::Dangling,
        })
    }

    /// Upstream's `processDeletingDependentsItem`.
    async fn foreground(&self, uid: &str) -> Result<(), Error> {
        let (node, blocking) = {
            let g = self.graph.lock();
            let Some(node) = g.nodes.get(uid).cloned() else { return Ok(()) };
            if !node.deleting_dependents() {
                return Ok(());
            }
            let blocking: Vec<(String, bool)> = g
                .dependents_of(uid)
                .into_iter()
                .filter_map(|d| {
                    let dep = g.nodes.get(&d)?;
                    let blocks = dep.owners.iter().any(|o| o.uid == uid && o.block_owner_deletion == Some(true));
                    blocks.then(|| (d.clone(), dep.deleting))
                })
                .collect();
            (node, blocking)
        };
        if blocking.is_empty() {
            return self.remove_finalizer(&node, uid, FOREGROUND).await;
        }
        for (dep, deleting) in blocking {
            if !deleting {
                self.queue.add(Item::AttemptToDelete(dep));
            }
        }
        Ok(())
    }

    /// Upstream's `orphanDependents` and the removal of the `orphan` finalizer.
    async fn orphan(&self, uid: &str) -> Result<(), Error> {
        let (node, deps) = {
            let g = self.graph.lock();
            let Some(node) = g.nodes.get(uid).cloned() else { return Ok(()) };
            if !(node.deleting && node.has_finalizer(ORPHAN)) {
                return Ok(());
            }
            let deps: Vec<Node> = g.dependents_of(uid).iter().filter_map(|d| g.nodes.get(d).cloned()).collect();
            (node, deps)
        };
        for dep in deps {
            let api = self.api(&self.kinds[dep.kind], &dep.namespace);
            let Some(latest) = api.get_opt(&dep.name).await? else { continue };
            let owners = latest.metadata.owner_references.clone().unwrap_or_default();
            if !owners.iter().any(|o| o.uid == uid) {
                continue;
            }
            let keep: Vec<&OwnerReference> = owners.iter().filter(|o| o.uid != uid).collect();
            let refs = if keep.is_empty() { serde_json::Value::Null } else { json!(keep) };
            let patch =
                json!({"metadata": {"ownerReferences": refs, "resourceVersion": latest.metadata.resource_version}});
            match api.patch(&dep.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.remove_finalizer(&node, uid, ORPHAN).await
    }

    /// Removes one finalizer from the live object, with its resourceVersion as precondition.
    async fn remove_finalizer(&self, node: &Node, uid: &str, finalizer: &str) -> Result<(), Error> {
        let Some(latest) = self.live(node, uid).await? else { return Ok(()) };
        let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
        if !finalizers.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let keep: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
        let patch = json!({"metadata": {"finalizers": keep, "resourceVersion": latest.metadata.resource_version}});
        match self
            .api(&self.kinds[node.kind], &node.namespace)
            .patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(Debug, PartialEq)]
enum OwnerState {
    Solid,
    Dangling,
    WaitingForDependents,
}

/// What to do with an object, given the state of its owners.
#[derive(Debug, PartialEq)]
enum AttemptPlan {
    Nothing,
    /// Remove the references to these owner UIDs.
    RemoveReferences(Vec<String>),
    Delete(PropagationPolicy),
}

/// Upstream's decision in `attemptToDeleteItem`: with a solid owner left, only references
/// to vanished or foreground-deleting owners go; without one, the object is deleted —
/// in the foreground if its own dependents must go first for a foreground owner, else
/// with the policy its own finalizers ask for.
fn plan_attempt(
    solid: &[OwnerReference],
    dangling: &[OwnerReference],
    waiting: &[OwnerReference],
    has_dependents: bool,
    meta: &ObjectMeta,
) -> AttemptPlan {
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return AttemptPlan::Nothing;
        }
        return AttemptPlan::RemoveReferences(dangling.iter().chain(waiting).map(|o| o.uid.clone()).collect());
    }
    if !waiting.is_empty() && has_dependents {
        return AttemptPlan::Delete(PropagationPolicy::Foreground);
    }
    let finalizers = meta.finalizers.as_deref().unwrap_or_default();
    if finalizers.iter().any(|f| f == ORPHAN) {
        AttemptPlan::Delete(PropagationPolicy::Orphan)
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        AttemptPlan::Delete(PropagationPolicy::Foreground)
    } else {
        AttemptPlan::Delete(PropagationPolicy::Background)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            uid: uid.into(),
            kind: "ReplicaSet".into(),
            api_version: "apps/v1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_solid_owner_keeps_the_object_and_drops_dead_references() {
        let m = ObjectMeta::default();
        assert_eq!(plan_attempt(&[owner("a")], &[], &[], false, &m), AttemptPlan::Nothing);
        assert_eq!(
            plan_attempt(&[owner("a")], &[owner("b")], &[owner("c")], false, &m),
            AttemptPlan::RemoveReferences(vec!["b".into(), "c".into()])
        );
    }

    #[test]
    fn without_owners_the_object_goes_with_its_own_policy() {
        let m = ObjectMeta::default();
        assert!(matches!(
            plan_attempt(&[], &[owner("b")], &[], false, &m),
            AttemptPlan::Delete(PropagationPolicy::Background)
        ));
        let orphaning = ObjectMeta { finalizers: Some(vec![ORPHAN.into()]), ..Default::default() };
        assert!(matches!(
            plan_attempt(&[], &[owner("b")], &[], false, &orphaning),
            AttemptPlan::Delete(PropagationPolicy::Orphan)
        ));
        // A foreground owner's dependent with dependents of its own goes in the foreground too.
        assert!(matches!(
            plan_attempt(&[], &[], &[owner("c")], true, &m),
            AttemptPlan::Delete(PropagationPolicy::Foreground)
        ));
        assert!(matches!(
            plan_attempt(&[], &[], &[owner("c")], false, &m),
            AttemptPlan::Delete(PropagationPolicy::Background)
        ));
    }
}
