//! Workload controllers: ReplicaSet, Deployment, the garbage collector and the namespace
//! controller, following upstream's `pkg/controller`.
//!
//! Controllers see the cluster only through the Kubernetes API: shared [`informer`]s
//! (kube-runtime watchers feeding caches) tell them what is, work [`queue`]s hold the keys
//! to look at, and each controller's sync compares desired with observed state through a
//! pure planner before it writes. See `README.md` beside this crate for the design.
//!
//! **Architecture invariant:** this crate does not depend on the store or the API server;
//! a [`kube::Client`] is all it needs, so the controllers could run in another process.
//!
//! The binary calls [`run`] with a client and a [`ControllersConfig`]; [`all`] lists the
//! controllers by name, for `--disable`.

pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointslicemirroring;
pub mod events;
pub mod expectations;
pub mod garbagecollector;
pub mod hash;
pub mod informer;
pub mod kinds;
pub mod meta;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod pods;
pub mod queue;
pub mod replicaset;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod servicelb;

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::informer::Informers;
use crate::queue::WorkQueue;

/// Failures of a sync or of starting the controllers. A failed sync is retried with a
/// growing delay, so every variant here is considered retryable except
/// [`Error::UnknownController`], which only [`run`] returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("cannot encode an object: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("invalid object: {0}")]
    Invalid(String),
    #[error("{0}")]
    Sync(String),
    #[error("unknown controller {0:?}; known controllers: {1}")]
    UnknownController(String, String),
}

/// What [`run`] needs besides the client.
#[derive(Clone, Debug, Default)]
pub struct ControllersConfig {
    /// Names of controllers not to run (see [`all`]).
    pub disabled: HashSet<String>,
    /// Timings of the node lifecycle controller.
    pub node_lifecycle: nodelifecycle::NodeLifecycleConfig,
    /// Where nodes' podCIDRs come from (`10.42.0.0/16`); None turns node IPAM off.
    pub cluster_cidr: Option<String>,
    /// Where the LoadBalancer controller takes ingress IPs from; none leaves LoadBalancer
    /// Services pending.
    pub service_lb_pool: Option<servicelb::Pool>,
    /// The cluster CA (PEM) that the root CA publisher puts into every namespace's
    /// `kube-root-ca.crt`; None leaves that controller idle.
    pub root_ca_pem: Option<String>,
}

/// What a controller gets to build itself: the client and the shared informers.
pub struct Context {
    pub client: kube::Client,
    pub informers: Informers,
    /// The configuration [`run`] was given, for controllers that have settings.
    pub config: ControllersConfig,
}

/// One controller, registered by name.
pub struct Descriptor {
    pub name: &'static str,
    /// Registers the controller's handlers on the shared informers and returns the
    /// future that runs it.
    pub start: fn(&Context) -> BoxFuture<'static, ()>,
}

/// Every controller, in start order. Names are unique, as upstream's controller
/// descriptors; the test below checks it.
pub fn all() -> Vec<Descriptor> {
    vec![
        Descriptor { name: "replicaset", start: replicaset::start },
        Descriptor { name: "deployment", start: deployment::start },
        Descriptor { name: "garbagecollector", start: garbagecollector::start },
        Descriptor { name: "namespace", start: namespace::start },
        Descriptor { name: "nodelifecycle", start: nodelifecycle::start },
        Descriptor { name: "nodeipam", start: nodeipam::start },
        Descriptor { name: "endpointslice", start: endpointslice::start },
        Descriptor { name: "endpoints", start: endpoints::start },
        Descriptor { name: "endpointslicemirroring", start: endpointslicemirroring::start },
        Descriptor { name: "servicelb", start: servicelb::start },
        Descriptor { name: "serviceaccount", start: serviceaccount::start },
        Descriptor { name: "root-ca-cert-publisher", start: rootcacertpublisher::start },
    ]
}

/// Runs every controller not disabled until the returned future is dropped.
/// Fails at once if `config.disabled` names a controller that does not exist.
pub async fn run(client: kube::Client, config: ControllersConfig) -> Result<(), Error> {
    let descriptors = all();
    let known: Vec<&str> = descriptors.iter().map(|d| d.name).collect();
    if let Some(unknown) = config.disabled.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(Error::UnknownController(unknown.clone(), known.join(", ")));
    }
    let ctx = Context { informers: Informers::new(client.clone()), client, config: config.clone() };
    let mut tasks: Vec<BoxFuture<'static, ()>> = Vec::new();
    for d in descriptors.iter().filter(|d| !config.disabled.contains(d.name)) {
        tracing::info!(controller = d.name, "starting controller");
        tasks.push((d.start)(&ctx));
    }
    // Informers start after every controller registered its handlers, so that no handler
    // misses the initial list.
    tasks.extend(ctx.informers.start());
    // A JoinSet aborts its tasks when dropped, so dropping this future stops every
    // controller and informer it started.
    let mut set = tokio::task::JoinSet::new();
    for t in tasks {
        set.spawn(t);
    }
    while let Some(done) = set.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a controller task failed");
        }
    }
    Ok(())
}

/// Runs `workers` loops that take keys from `queue` and sync them, retrying failures with
/// the queue's growing delay and honouring a sync's request to look again later.
pub(crate) async fn run_workers<T, F, Fut>(name: &'static str, queue: WorkQueue<T>, workers: usize, sync: F)
where
    T: Clone + Eq + Hash + Send + Sync + std::fmt::Display + 'static,
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, Error>> + Send + 'static,
{
    // Workers live in a JoinSet so that they stop when this future is dropped.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let queue = queue.clone();
        let sync = sync.clone();
        set.spawn(async move {
            loop {
                let item = queue.get().await;
                match sync(item.clone()).await {
                    Ok(again) => {
                        queue.forget(&item);
                        if let Some(delay) = again {
                            queue.add_after(item.clone(), delay);
                        }
                    }
                    Err(e) => {
                        let failures = queue.failures(&item);
                        if matches!(&e, Error::Api(k) if is_conflict(k)) || failures < 3 {
                            tracing::debug!(controller = name, key = %item, error = %e, "sync failed; retrying");
                        } else {
                            tracing::warn!(controller = name, key = %item, error = %e, failures, "sync failed; retrying");
                        }
                        queue.add_rate_limited(item.clone());
                    }
                }
                queue.done(&item);
            }
        });
    }
    // Workers only end if they panic; report it and keep the others going.
    while let Some(done) = set.join_next().await {
        // A worker loops forever, so it only ends by failing.
        let Err(e) = done;
        tracing::error!(controller = name, error = %e, "a worker failed");
    }
}

pub(crate) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_conflict())
}

pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_names_are_unique() {
        let names: Vec<&str> = all().iter().map(|d| d.name).collect();
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(names.len(), unique.len(), "{names:?}");
    }
}
