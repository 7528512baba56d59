//! The node lifecycle controller, as upstream's `pkg/controller/nodelifecycle` with its
//! taint manager and the part of the pod GC that force-deletes pods evicted from a node
//! that is gone.
//!
//! Node agents renew a Lease named after their node in `kube-node-lease` and post Node
//! status conditions. One loop looks at every node each `node_monitor_period` (and at
//! once when a node, Lease or pod changes): [`plan::plan`] decides, from the caches and
//! the clock, which nodes go Ready=Unknown, which taints they carry, which pods become
//! not ready and which are evicted; this module performs those writes.

pub mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};
use tokio::sync::Notify;

use crate::events::{EventType, Recorder};
use crate::informer::Cache;
use crate::{Context, Error, is_conflict, is_not_found};

use self::plan::Action;

/// The namespace node agents keep their Leases in.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The controller's timings. Upstream's defaults are 40 s of grace and 5 min before
/// eviction; these are much shorter, so that a lost node's pods move within seconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLifecycleConfig {
    /// How long a node's agent may stay silent (no Lease renewal, no Ready heartbeat)
    /// before its conditions become Unknown and it is tainted unreachable.
    pub node_monitor_grace_period: Duration,
    /// How long pods that do not tolerate the not-ready or unreachable taint stay on such a
    /// node before they are deleted, counted from when the taint was added.
    pub pod_eviction_timeout: Duration,
    /// How often every node is looked at even when nothing changed, since a silent node
    /// produces no watch event.
    pub node_monitor_period: Duration,
}

impl Default for NodeLifecycleConfig {
    fn default() -> NodeLifecycleConfig {
        NodeLifecycleConfig {
            node_monitor_grace_period: Duration::from_secs(5),
            pod_eviction_timeout: Duration::from_secs(15),
            node_monitor_period: Duration::from_millis(500),
        }
    }
}

struct NodeLifecycleController {
    client: kube::Client,
    config: NodeLifecycleConfig,
    nodes: Cache<Node>,
    leases: Cache<Lease>,
    pods: Cache<Pod>,
    wake: Arc<Notify>,
    recorder: Recorder,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let c = Arc::new(NodeLifecycleController {
        client: ctx.client.clone(),
        config: ctx.config.node_lifecycle.clone(),
        nodes: ctx.informers.cache(),
        leases: ctx.informers.cache(),
        pods: ctx.informers.cache(),
        wake: Arc::new(Notify::new()),
        recorder: Recorder::new(ctx.client.clone(), "node-controller"),
    });
    // Any change may change a decision; the loop coalesces bursts of them into one pass.
    let w = c.wake.clone();
    c.nodes.on_change(move |_| w.notify_one());
    let w = c.wake.clone();
    c.leases.on_change(move |_| w.notify_one());
    let w = c.wake.clone();
    c.pods.on_change(move |_| w.notify_one());
    Box::pin(async move {
        c.nodes.wait_synced().await;
        c.leases.wait_synced().await;
        c.pods.wait_synced().await;
        loop {
            if let Err(e) = c.pass().await {
                tracing::debug!(error = %e, "node lifecycle pass failed; retrying");
            }
            tokio::select! {
                _ = c.wake.notified() => {}
                _ = tokio::time::sleep(c.config.node_monitor_period) => {}
            }
        }
    })
}

impl NodeLifecycleController {
    /// Plans from the caches and performs every action, carrying on past failures so that
    /// one conflicting write does not hold back the others; the next pass retries.
    async fn pass(&self) -> Result<(), Error> {
        let nodes = self.nodes.list();
        let leases: HashMap<String, Arc<Lease>> =
            self.leases.list_namespace(NODE_LEASE_NAMESPACE).into_iter().map(|l| (l.name_any(), l)).collect();
        let pods = self.pods.list();
        let actions = plan::plan(jiff::Timestamp::now(), &nodes, &leases, &pods, &self.config);
        let mut first_error = None;
        for action in actions {
            if let Err(e) = self.perform(action).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn perform(&self, action: Action) -> Result<(), Error> {
        match action {
            Action::UpdateNode { node, status_changed, taints_changed } => {
                let api: Api<Node> = Api::all(self.client.clone());
                let name = node.name_any();
                let mut written = (*node).clone();
                if status_changed {
                    let ready = node
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                        .map(|c| c.status.clone())
                        .unwrap_or_default();
                    written = ignore_conflict(api.replace_status(&name, &PostParams::default(), &node).await)?
                        .unwrap_or(written);
                    tracing::info!(node = %name, ready, "node stopped reporting");
                    self.recorder.event(
                        &*node,
                        EventType::Normal,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                }
                if taints_changed {
                    // The status write moved the resourceVersion on; carry the planned
                    // taints onto the object it returned.
                    written.spec = node.spec.clone();
                    ignore_conflict(api.replace(&name, &PostParams::default(), &written).await)?;
                }
                Ok(())
            }
            Action::MarkPodNotReady(pod) => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default());
                match api.replace_status(&pod.name_any(), &PostParams::default(), &pod).await {
                    Ok(_) => {
                        self.recorder.event(&*pod, EventType::Warning, "NodeNotReady", "Node is not ready".to_owned());
                        Ok(())
                    }
                    Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            Action::EvictPod { namespace, name, uid, node } => {
                let api: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
                // Grace 0: the node's agent, which would finish a graceful deletion, is
                // not there, so the pod is removed at once, as upstream's pod GC does
                // after the taint manager's eviction.
                let params = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
                    ..Default::default()
                };
                if let Some(pod) = self.pods.get(&namespace, &name) {
                    self.recorder.event(
                        &*pod,
                        EventType::Normal,
                        "TaintManagerEviction",
                        format!("Marking for deletion Pod {namespace}/{name}"),
                    );
                }
                match api.delete(&name, &params).await {
                    Ok(_) => {
                        tracing::info!(pod = %format!("{namespace}/{name}"), node, "evicted pod from unhealthy node");
                        Ok(())
                    }
                    // Gone already, or replaced by a pod of the same name (UID precondition).
                    Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

/// A conflicting write is not a failure: the caches will show the newer state and the
/// next pass decides again from it.
fn ignore_conflict<T>(r: Result<T, kube::Error>) -> Result<Option<T>, Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_conflict(&e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
