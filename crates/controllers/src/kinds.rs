//! The namespaced kinds the garbage collector and the namespace controller look after:
//! every namespaced resource the rkube API serves. A fixed list rather than discovery,
//! because the API's resources are fixed at build time too.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::discovery::ApiResource;

use crate::informer::{Cache, Informers, Watched};

/// What one kind needs: its API coordinates, and a way to read its cache's metadata.
pub struct Kind {
    pub resource: ApiResource,
}

fn kind<K: Watched>() -> Kind {
    Kind { resource: ApiResource::erase::<K>(&()) }
}

/// Every namespaced kind, owners (Deployment, ReplicaSet) before dependents (Pod), so that
/// the namespace controller deletes owners first and the other controllers stop
/// recreating what it deletes.
pub fn namespaced() -> Vec<Kind> {
    vec![
        kind::<Deployment>(),
        kind::<ReplicaSet>(),
        kind::<Pod>(),
        kind::<Service>(),
        kind::<Endpoints>(),
        kind::<EndpointSlice>(),
        kind::<ConfigMap>(),
        kind::<Secret>(),
        kind::<ServiceAccount>(),
        kind::<Lease>(),
        kind::<Event>(),
    ]
}

/// Finds a kind by `apiVersion` and `kind`, as an owner reference names it.
pub fn find<'a>(kinds: &'a [Kind], api_version: &str, kind: &str) -> Option<&'a Kind> {
    kinds.iter().find(|k| k.resource.api_version == api_version && k.resource.kind == kind)
}

/// Calls `f` with the shared cache of every kind in [`namespaced`], in the same order.
pub fn for_each_cache(informers: &Informers, f: &mut dyn FnMut(usize, CacheRef)) {
    f(0, CacheRef::from(informers.cache::<Deployment>()));
    f(1, CacheRef::from(informers.cache::<ReplicaSet>()));
    f(2, CacheRef::from(informers.cache::<Pod>()));
    f(3, CacheRef::from(informers.cache::<Service>()));
    f(4, CacheRef::from(informers.cache::<Endpoints>()));
    f(5, CacheRef::from(informers.cache::<EndpointSlice>()));
    f(6, CacheRef::from(informers.cache::<ConfigMap>()));
    f(7, CacheRef::from(informers.cache::<Secret>()));
    f(8, CacheRef::from(informers.cache::<ServiceAccount>()));
    f(9, CacheRef::from(informers.cache::<Lease>()));
    f(10, CacheRef::from(informers.cache::<Event>()));
}

/// A kind-erased view of one cache: its metadata changes and whether it has synced.
pub struct CacheRef {
    pub on_change: Box<dyn FnOnce(MetaHandler)>,
    pub is_synced: Box<dyn Fn() -> bool + Send + Sync>,
}

/// A handler of metadata changes.
pub type MetaHandler = Box<dyn Fn(MetaChange<'_>) + Send + Sync>;

/// A change, reduced to the objects' metadata.
pub enum MetaChange<'a> {
    Upsert(&'a kube::api::ObjectMeta),
    Deleted(&'a kube::api::ObjectMeta),
}

impl<K: Watched> From<Cache<K>> for CacheRef {
    fn from(cache: Cache<K>) -> CacheRef {
        let for_change = cache.clone();
        CacheRef {
            on_change: Box::new(move |handler| {
                for_change.on_change(move |change| match change {
                    crate::informer::Change::Added(o) | crate::informer::Change::Updated { new: o, .. } => {
                        handler(MetaChange::Upsert(o.meta()))
                    }
                    crate::informer::Change::Deleted(o) => handler(MetaChange::Deleted(o.meta())),
                })
            }),
            is_synced: Box::new(move || cache.is_synced()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_and_kinds_line_up() {
        let kinds = namespaced();
        assert_eq!(kinds.len(), 11);
        assert_eq!(kinds[2].resource.plural, "pods");
        assert!(find(&kinds, "apps/v1", "ReplicaSet").is_some());
        assert!(find(&kinds, "v1", "ReplicaSet").is_none());
    }
}
