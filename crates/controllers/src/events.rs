//! Recording core/v1 Events about objects, so that `kubectl describe` shows what the
//! controllers did.
//!
//! As upstream's event recorder, repeats of the same event (same object, type, reason,
//! message and source) are folded into one Event whose `count` and `lastTimestamp` grow.
//! Events are written by a background task from a bounded channel: a controller never
//! waits for an Event, and when the API is too slow to keep up, events are dropped rather
//! than slowing reconciles down.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;

/// How many events may wait to be written before new ones are dropped.
const BACKLOG: usize = 1024;

/// `Normal` or `Warning`, as core/v1 Events have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

struct Pending {
    regarding: ObjectReference,
    ty: EventType,
    reason: String,
    message: String,
}

/// A cloneable handle that records events as one component.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Pending>,
}

impl Recorder {
    /// Starts the writer task for `component` (the Event's `source.component`).
    pub fn new(client: Client, component: &str) -> Recorder {
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(write_events(client, component.to_owned(), rx));
        Recorder { tx }
    }

    /// Records an event about `obj`.
    pub fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, ty: EventType, reason: &str, message: String) {
        let regarding = ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: obj.meta().name.clone(),
            namespace: obj.meta().namespace.clone(),
            uid: obj.meta().uid.clone(),
            resource_version: obj.meta().resource_version.clone(),
            field_path: None,
        };
        let pending = Pending { regarding, ty, reason: reason.to_owned(), message };
        if self.tx.try_send(pending).is_err() {
            tracing::debug!(reason, "event backlog full; dropping an event");
        }
    }
}

/// The fields that make two events the same event, as upstream's aggregation key.
type EventKey = (String, String, String, String, String);

async fn write_events(client: Client, component: String, mut rx: mpsc::Receiver<Pending>) {
    // Event key → (Event name, namespace, count) of the Event already written for it.
    let mut seen: HashMap<EventKey, (String, String, i32)> = HashMap::new();
    while let Some(p) = rx.recv().await {
        let ns = p.regarding.namespace.clone().unwrap_or_else(|| "default".to_owned());
        let key = (
            p.regarding.uid.clone().unwrap_or_default(),
            p.ty.as_str().to_owned(),
            p.reason.clone(),
            p.message.clone(),
            component.clone(),
        );
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        let now = Time(jiff::Timestamp::now());
        if let Some((name, ens, count)) = seen.get(&key).cloned() {
            let patch = json!({"count": count + 1, "lastTimestamp": now});
            match Api::<Event>::namespaced(client.clone(), &ens)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    seen.insert(key, (name, ens, count + 1));
                    continue;
                }
                // The Event is gone (expired or its namespace deleted): write a new one.
                Err(e) => tracing::debug!(error = %e, "cannot update event {name}; writing a new one"),
            }
        }
        let name =
            format!("{}.{:x}", p.regarding.name.clone().unwrap_or_default(), jiff::Timestamp::now().as_nanosecond());
        let event = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(ns.clone()), ..Default::default() },
            involved_object: p.regarding,
            reason: Some(p.reason),
            message: Some(p.message),
            type_: Some(p.ty.as_str().to_owned()),
            source: Some(EventSource { component: Some(component.clone()), host: None }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            reporting_component: Some(component.clone()),
            reporting_instance: Some(component.clone()),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &event).await {
            Ok(created) => {
                if seen.len() > 4096 {
                    // A bounded memory of recent events is enough to fold repeats.
                    seen.clear();
                }
                seen.insert(key, (created.name_any(), ns, 1));
            }
            Err(e) => tracing::debug!(error = %e, "cannot record event"),
        }
    }
}
