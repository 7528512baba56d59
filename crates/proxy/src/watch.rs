//! The proxy's loop: three watches feed the model, and one task syncs whenever the model
//! changed, and rewrites everything every `resync_interval`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::backend::NftCli;
use crate::health::HealthServers;
use crate::model::{self, Model, ServiceKey};
use crate::proxier::Proxier;
use crate::{Metrics, ProxyConfig, ProxyError};

/// Aborts the watch tasks when `run` is cancelled.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// Runs the proxy until the task is aborted. Errors from the API are retried by the
/// watches; a failed sync is retried as a full sync a second later.
pub async fn run(client: kube::Client, config: ProxyConfig, metrics: Arc<Metrics>) -> Result<(), ProxyError> {
    let model = Arc::new(Mutex::new(Model::new()));
    let changed = Arc::new(Notify::new());
    let services_ready = Arc::new(AtomicBool::new(false));
    let slices_ready = Arc::new(AtomicBool::new(false));
    let _tasks = Tasks(vec![
        tokio::spawn(watch_services(Api::all(client.clone()), model.clone(), changed.clone(), services_ready.clone())),
        tokio::spawn(watch_slices(Api::all(client.clone()), model.clone(), changed.clone(), slices_ready.clone())),
        tokio::spawn(watch_node(Api::all(client), config.node_name.clone(), model.clone(), changed.clone())),
    ]);
    // Programming from half a list would reject Services whose slices are not listed yet.
    while !(services_ready.load(Ordering::Acquire) && slices_ready.load(Ordering::Acquire)) {
        changed.notified().await;
    }
    let mut health = HealthServers::new(config.health_bind);
    let resync = config.resync_interval.max(Duration::from_secs(1));
    let mut proxier = Proxier::new(config, Box::new(NftCli));
    let mut next_full = tokio::time::Instant::now() + resync;
    loop {
        let full = tokio::time::Instant::now() >= next_full;
        let m = model.clone();
        let started = std::time::Instant::now();
        let (p, result) = tokio::task::spawn_blocking(move || {
            let r = proxier.sync(&m, full);
            (proxier, r)
        })
        .await
        .map_err(|e| ProxyError::Task(e.to_string()))?;
        proxier = p;
        match result {
            Ok(outcome) => {
                if outcome.full {
                    next_full = tokio::time::Instant::now() + resync;
                }
                metrics.observe_sync(
                    outcome.full,
                    started.elapsed(),
                    outcome.services,
                    outcome.script_bytes,
                    proxier.programmed_services(),
                );
                let now = SystemTime::now();
                for t in outcome.programmed {
                    metrics.observe_programming(now.duration_since(t).unwrap_or_default());
                }
                health.update(&proxier.health()).await;
                tracing::debug!(
                    full = outcome.full,
                    services = outcome.services,
                    bytes = outcome.script_bytes,
                    "synced"
                );
            }
            Err(e) => {
                metrics.observe_failure();
                tracing::error!(error = %e, "sync failed; retrying with a full sync");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep_until(next_full) => {}
        }
    }
}

async fn watch_services(api: Api<Service>, model: Arc<Mutex<Model>>, changed: Arc<Notify>, ready: Arc<AtomicBool>) {
    let mut buffer = Vec::new();
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "Service watch failed; retrying");
                continue;
            }
        };
        let convert = |s: &Service| match model::service_from_api(s) {
            Ok(svc) => Some(svc),
            Err(e) => {
                tracing::warn!(name = ?s.metadata.name, error = %e, "Service skipped");
                None
            }
        };
        match event {
            Event::Init => buffer.clear(),
            Event::InitApply(s) => buffer.extend(convert(&s)),
            Event::InitDone => {
                model.lock().replace_services(std::mem::take(&mut buffer));
                ready.store(true, Ordering::Release);
            }
            Event::Apply(s) => {
                let mut m = model.lock();
                match convert(&s) {
                    Some(svc) => m.upsert_service(svc),
                    None => {
                        if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                            m.delete_service(&ServiceKey::new(ns, name));
                        }
                    }
                }
            }
            Event::Delete(s) => {
                if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                    model.lock().delete_service(&ServiceKey::new(ns, name));
                }
            }
        }
        changed.notify_one();
    }
}

async fn watch_slices(api: Api<EndpointSlice>, model: Arc<Mutex<Model>>, changed: Arc<Notify>, ready: Arc<AtomicBool>) {
    let mut buffer = Vec::new();
    let mut stream = watcher::watcher(api, watcher::Config::default()).default_backoff().boxed();
    loop {
        let event = match stream.try_next().await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "EndpointSlice watch failed; retrying");
                continue;
            }
        };
        let convert = |s: &EndpointSlice| match model::slice_from_api(s) {
            Ok(slice) => Some(slice),
            Err(model::Invalid::NotIpv4) => None,
            Err(e) => {
                tracing::warn!(name = ?s.metadata.name, error = %e, "EndpointSlice skipped");
                None
            }
        };
        match event {
            Event::Init => buffer.clear(),
            Event::InitApply(s) => buffer.extend(convert(&s)),
            Event::InitDone => {
                model.lock().replace_slices(std::mem::take(&mut buffer));
                ready.store(true, Ordering::Release);
            }
            Event::Apply(s) => {
                let mut m = model.lock();
                match convert(&s) {
                    Some(slice) => m.upsert_slice(slice),
                    None => {
                        if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                            m.delete_slice(ns, name);
                        }
                    }
                }
            }
            Event::Delete(s) => {
                if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                    model.lock().delete_slice(ns, name);
                }
            }
        }
        changed.notify_one();
    }
}

async fn watch_node(api: Api<Node>, name: String, model: Arc<Mutex<Model>>, changed: Arc<Notify>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    loop {
        match stream.try_next().await {
            Ok(Some(Event::Apply(n) | Event::InitApply(n))) => {
                model.lock().set_node(model::node_from_api(&n));
                changed.notify_one();
            }
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "Node watch failed; retrying"),
        }
    }
}
