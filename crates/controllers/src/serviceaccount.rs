//! The ServiceAccounts controller: every active namespace has a ServiceAccount named `default`,
//! recreated if it is deleted, as upstream's `pkg/controller/serviceaccount`
//! (`serviceaccounts_controller.go`).
//!
//! Namespaces and ServiceAccounts are watched; a new or changed namespace, and a deleted
//! `default` ServiceAccount, queue the namespace's name. The sync plans from the caches and
//! creates what is missing; an `AlreadyExists` answer means a lagging cache, not a failure.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use crate::informer::{Cache, Change};
use crate::queue::WorkQueue;
use crate::{Context, Error, run_workers};

/// Upstream's `ConcurrentServiceAccountSyncs` default.
const WORKERS: usize = 1;
/// The ServiceAccounts every namespace gets.
pub const DEFAULT_SERVICE_ACCOUNTS: &[&str] = &["default"];

pub struct ServiceAccountsController {
    client: kube::Client,
    namespaces: Cache<Namespace>,
    accounts: Cache<ServiceAccount>,
    queue: WorkQueue<String>,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let c = Arc::new(ServiceAccountsController {
        client: ctx.client.clone(),
        namespaces: ctx.informers.cache(),
        accounts: ctx.informers.cache(),
        queue: WorkQueue::default(),
    });
    let queue = c.queue.clone();
    c.namespaces.on_change(move |change| match change {
        Change::Added(ns) | Change::Updated { new: ns, .. } => queue.add(ns.name_any()),
        Change::Deleted(_) => {}
    });
    let queue = c.queue.clone();
    c.accounts.on_change(move |change| {
        if let Change::Deleted(sa) = change
            && DEFAULT_SERVICE_ACCOUNTS.contains(&sa.name_any().as_str())
        {
            queue.add(sa.namespace().unwrap_or_default());
        }
    });
    Box::pin(async move {
        c.namespaces.wait_synced().await;
        c.accounts.wait_synced().await;
        let queue = c.queue.clone();
        run_workers("serviceaccount", queue, WORKERS, move |name| {
            let c = c.clone();
            async move { c.sync(&name).await }
        })
        .await;
    })
}

/// The ServiceAccounts to create in `ns`, given which of the defaults exist. A terminating
/// namespace gets none: the namespace controller is emptying it.
pub fn plan(ns: &Namespace, exists: impl Fn(&str) -> bool) -> Vec<ServiceAccount> {
    if ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
    {
        return Vec::new();
    }
    let namespace = ns.name_any();
    DEFAULT_SERVICE_ACCOUNTS
        .iter()
        .filter(|name| !exists(name))
        .map(|name| ServiceAccount {
            metadata: ObjectMeta {
                name: Some((*name).to_owned()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect()
}

impl ServiceAccountsController {
    async fn sync(&self, namespace: &str) -> Result<Option<Duration>, Error> {
        let Some(ns) = self.namespaces.get("", namespace) else { return Ok(None) };
        let missing = plan(&ns, |name| self.accounts.get(namespace, name).is_some());
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        for sa in missing {
            match api.create(&PostParams::default(), &sa).await {
                Ok(_) => tracing::debug!(namespace, name = %sa.name_any(), "created a ServiceAccount"),
                // Already there (the cache lags), or the namespace started terminating meanwhile.
                Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_forbidden() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(name: &str) -> Namespace {
        Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() }
    }

    #[test]
    fn active_namespaces_get_a_default_service_account() {
        let made = plan(&ns("team"), |_| false);
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].metadata.name.as_deref(), Some("default"));
        assert_eq!(made[0].metadata.namespace.as_deref(), Some("team"));
        assert!(plan(&ns("team"), |n| n == "default").is_empty());
    }

    #[test]
    fn terminating_namespaces_get_nothing() {
        let mut deleting = ns("old");
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert!(plan(&deleting, |_| false).is_empty());
        let mut phase = ns("old");
        phase.status = Some(NamespaceStatus { phase: Some("Terminating".into()), ..Default::default() });
        assert!(plan(&phase, |_| false).is_empty());
    }
}
