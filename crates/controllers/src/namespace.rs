//! The namespace controller: empties a namespace being deleted, then removes its
//! `kubernetes` finalizer so that the API server deletes it, as upstream's
//! `pkg/controller/namespace`.
//!
//! Objects are listed live (not from caches) so that the decision "the namespace is empty"
//! never rests on a lagging cache. Objects still going away (graceful pods, objects with
//! finalizers) make the sync look again after a short delay.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Api, ResourceExt};

use crate::informer::{Cache, Change};
use crate::kinds::{self, Kind};
use crate::queue::WorkQueue;
use crate::{Context, Error, is_not_found, run_workers};

/// Upstream's `ConcurrentNamespaceSyncs` default.
const WORKERS: usize = 10;
const FINALIZER: &str = "kubernetes";
/// How soon to look again at a namespace whose objects are still going away.
const RECHECK: Duration = Duration::from_secs(1);

pub struct NamespaceController {
    client: kube::Client,
    namespaces: Cache<Namespace>,
    kinds: Vec<Kind>,
    queue: WorkQueue<String>,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let c = Arc::new(NamespaceController {
        client: ctx.client.clone(),
        namespaces: ctx.informers.cache(),
        kinds: kinds::namespaced(),
        queue: WorkQueue::default(),
    });
    let queue = c.queue.clone();
    c.namespaces.on_change(move |change| match change {
        Change::Added(ns) | Change::Updated { new: ns, .. } if ns.metadata.deletion_timestamp.is_some() => {
            queue.add(ns.name_any())
        }
        _ => {}
    });
    Box::pin(async move {
        c.namespaces.wait_synced().await;
        let queue = c.queue.clone();
        run_workers("namespace", queue, WORKERS, move |name| {
            let c = c.clone();
            async move { c.sync(&name).await }
        })
        .await;
    })
}

/// Whether the namespace is being deleted and still waits for this controller.
pub fn needs_finalizing(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

/// The namespace with the `kubernetes` finalizer removed from its spec.
pub fn finalized(ns: &Namespace) -> Namespace {
    let mut out = ns.clone();
    if let Some(f) = out.spec.as_mut().and_then(|s| s.finalizers.as_mut()) {
        f.retain(|x| x != FINALIZER);
    }
    out
}

impl NamespaceController {
    async fn sync(&self, name: &str) -> Result<Option<Duration>, Error> {
        let Some(ns) = self.namespaces.get("", name) else { return Ok(None) };
        if !needs_finalizing(&ns) {
            return Ok(None);
        }
        let mut remaining = 0usize;
        for kind in &self.kinds {
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), name, &kind.resource);
            let list = api.list(&ListParams::default()).await?;
            for obj in list.items {
                remaining += 1;
                if obj.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match api.delete(&obj.name_any(), &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if remaining > 0 {
            // Deletions were issued or are in progress; come back to confirm the namespace is empty.
            return Ok(Some(RECHECK));
        }
        self.finalize(&ns).await.map(|()| None)
    }

    /// Removes the `kubernetes` finalizer: through `PUT .../finalize` as upstream, or, if
    /// the server does not serve that subresource (404 while the namespace exists),
    /// through a PUT of the namespace itself, whose update carries the spec through.
    async fn finalize(&self, ns: &Namespace) -> Result<(), Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let body = finalized(ns);
        match api.replace_subresource("finalize", &ns.name_any(), &PostParams::default(), &body).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
        match api.replace(&ns.name_any(), &PostParams::default(), &finalized(ns)).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::api::ObjectMeta;

    #[test]
    fn only_terminating_namespaces_with_the_finalizer_are_finalized() {
        let mut ns = Namespace {
            metadata: ObjectMeta { name: Some("x".into()), ..Default::default() },
            spec: Some(NamespaceSpec { finalizers: Some(vec!["kubernetes".into(), "other".into()]) }),
            status: None,
        };
        assert!(!needs_finalizing(&ns));
        ns.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(needs_finalizing(&ns));
        let done = finalized(&ns);
        assert_eq!(done.spec.and_then(|s| s.finalizers), Some(vec!["other".to_owned()]));
    }
}
