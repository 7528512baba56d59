//! The root CA publisher: every namespace has a ConfigMap `kube-root-ca.crt` whose `ca.crt` is
//! the cluster CA, so that pods can verify the API server (the token volume projects it), as
//! upstream's `pkg/controller/certificates/rootcacertpublisher`.
//!
//! Namespaces and ConfigMaps are watched; a new or changed namespace, and a change to or deletion
//! of a `kube-root-ca.crt`, queue the namespace. The sync compares the cached ConfigMap with the
//! desired one and creates or updates it; other keys and labels someone added are dropped from
//! `data`, as upstream replaces `data` whole, but the rest of the object is kept.
//!
//! The CA comes from [`crate::ControllersConfig::root_ca_pem`]; without it the controller idles.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use crate::informer::{Cache, Change};
use crate::queue::WorkQueue;
use crate::{Context, Error, is_not_found, run_workers};

/// The ConfigMap's name, which the token volume projects.
pub const CONFIGMAP_NAME: &str = "kube-root-ca.crt";
/// The key holding the PEM bundle.
pub const CA_KEY: &str = "ca.crt";
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Upstream's description, word for word, since clients may show it.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// Upstream runs this many publisher workers.
const WORKERS: usize = 1;

pub struct RootCaPublisher {
    client: kube::Client,
    namespaces: Cache<Namespace>,
    config_maps: Cache<ConfigMap>,
    queue: WorkQueue<String>,
    ca_pem: String,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let Some(ca_pem) = ctx.config.root_ca_pem.clone() else {
        return Box::pin(async {
            tracing::info!("no root CA configured; not publishing kube-root-ca.crt");
        });
    };
    let c = Arc::new(RootCaPublisher {
        client: ctx.client.clone(),
        namespaces: ctx.informers.cache(),
        config_maps: ctx.informers.cache(),
        queue: WorkQueue::default(),
        ca_pem,
    });
    let queue = c.queue.clone();
    c.namespaces.on_change(move |change| match change {
        Change::Added(ns) | Change::Updated { new: ns, .. } => queue.add(ns.name_any()),
        Change::Deleted(_) => {}
    });
    let queue = c.queue.clone();
    c.config_maps.on_change(move |change| {
        let cm = match change {
            Change::Updated { new, .. } => new,
            Change::Deleted(cm) => cm,
            Change::Added(_) => return,
        };
        if cm.name_any() == CONFIGMAP_NAME {
            queue.add(cm.namespace().unwrap_or_default());
        }
    });
    Box::pin(async move {
        c.namespaces.wait_synced().await;
        c.config_maps.wait_synced().await;
        let queue = c.queue.clone();
        run_workers("root-ca-cert-publisher", queue, WORKERS, move |name| {
            let c = c.clone();
            async move { c.sync(&name).await }
        })
        .await;
    })
}

/// What the publisher does in one namespace.
#[derive(Debug, PartialEq)]
pub enum Plan {
    Nothing,
    Create(ConfigMap),
    Update(ConfigMap),
}

/// Compares the namespace's `kube-root-ca.crt` (if any) with the desired one.
pub fn plan(ns: &Namespace, existing: Option<&ConfigMap>, ca_pem: &str) -> Plan {
    if ns.metadata.deletion_timestamp.is_some() {
        return Plan::Nothing;
    }
    let data = BTreeMap::from([(CA_KEY.to_owned(), ca_pem.to_owned())]);
    match existing {
        None => Plan::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIGMAP_NAME.to_owned()),
                namespace: Some(ns.name_any()),
                annotations: Some(BTreeMap::from([(DESCRIPTION_ANNOTATION.to_owned(), DESCRIPTION.to_owned())])),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        }),
        Some(cm) => {
            let annotated = cm.annotations().get(DESCRIPTION_ANNOTATION).is_some_and(|d| d == DESCRIPTION);
            if cm.data.as_ref() == Some(&data) && annotated {
                return Plan::Nothing;
            }
            let mut desired = cm.clone();
            desired.data = Some(data);
            desired.binary_data = None;
            desired.annotations_mut().insert(DESCRIPTION_ANNOTATION.to_owned(), DESCRIPTION.to_owned());
            Plan::Update(desired)
        }
    }
}

impl RootCaPublisher {
    async fn sync(&self, namespace: &str) -> Result<Option<Duration>, Error> {
        let Some(ns) = self.namespaces.get("", namespace) else { return Ok(None) };
        let existing = self.config_maps.get(namespace, CONFIGMAP_NAME);
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        match plan(&ns, existing.as_deref(), &self.ca_pem) {
            Plan::Nothing => Ok(None),
            Plan::Create(cm) => match api.create(&PostParams::default(), &cm).await {
                Ok(_) => Ok(None),
                // The namespace is gone or terminating: nothing to publish into.
                Err(e) if is_not_found(&e) => Ok(None),
                Err(kube::Error::Api(s)) if s.is_forbidden() => Ok(None),
                Err(e) => Err(e.into()),
            },
            // The update carries the cached resourceVersion, so a conflict retries from a fresher cache.
            Plan::Update(cm) => match api.replace(CONFIGMAP_NAME, &PostParams::default(), &cm).await {
                Ok(_) => Ok(None),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    fn ns(name: &str) -> Namespace {
        Namespace { metadata: ObjectMeta { name: Some(name.into()), ..Default::default() }, ..Default::default() }
    }

    #[test]
    fn missing_config_maps_are_created_with_the_ca_and_description() {
        let Plan::Create(cm) = plan(&ns("team"), None, PEM) else { panic!("expected a create") };
        assert_eq!(cm.metadata.name.as_deref(), Some("kube-root-ca.crt"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(cm.data.as_ref().and_then(|d| d.get("ca.crt")).map(String::as_str), Some(PEM));
        assert_eq!(cm.annotations().get(DESCRIPTION_ANNOTATION).map(String::as_str), Some(DESCRIPTION));
        // Once it is there, nothing more happens.
        assert_eq!(plan(&ns("team"), Some(&cm), PEM), Plan::Nothing);
    }

    #[test]
    fn changed_config_maps_are_put_back_keeping_their_metadata() {
        let Plan::Create(mut cm) = plan(&ns("team"), None, PEM) else { panic!("expected a create") };
        cm.metadata.resource_version = Some("42".into());
        cm.labels_mut().insert("mine".into(), "yes".into());
        cm.data = Some(BTreeMap::from([("ca.crt".into(), "tampered".into()), ("extra".into(), "x".into())]));
        let Plan::Update(fixed) = plan(&ns("team"), Some(&cm), PEM) else { panic!("expected an update") };
        assert_eq!(fixed.data, Some(BTreeMap::from([("ca.crt".to_owned(), PEM.to_owned())])));
        assert_eq!(fixed.metadata.resource_version.as_deref(), Some("42"), "the update is conditional");
        assert_eq!(fixed.labels().get("mine").map(String::as_str), Some("yes"));
        // A rotated CA is published too.
        let Plan::Create(current) = plan(&ns("team"), None, PEM) else { panic!("expected a create") };
        assert!(matches!(plan(&ns("team"), Some(&current), "other pem"), Plan::Update(_)));
    }

    #[test]
    fn terminating_namespaces_are_left_alone() {
        let mut deleting = ns("old");
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(plan(&deleting, None, PEM), Plan::Nothing);
    }
}
