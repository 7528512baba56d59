//! Reporting: Events and the PodScheduled condition, written in the background.
//!
//! Reports queue in a bounded channel and a few run at a time, so a burst of decisions never
//! waits on them and they cannot crowd the binds out of the API server. When the queue is
//! full new reports are dropped (upstream's event broadcaster does the same); the scheduler
//! then records the failure message as not reported, so the next attempt reports again.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

use crate::state::PodRef;

/// One report to write.
#[derive(Debug)]
pub enum Report {
    Event {
        pod: PodRef,
        kind: EventKind,
        message: String,
    },
    /// Sets PodScheduled=False, reason Unschedulable, keeping the transition time if given.
    Unschedulable {
        pod: PodRef,
        message: String,
        keep_transition_time: Option<Time>,
    },
}

#[derive(Clone, Copy, Debug)]
pub enum EventKind {
    Scheduled,
    FailedScheduling,
}

impl EventKind {
    fn fields(self) -> (&'static str, &'static str, &'static str) {
        // (type, reason, action), as upstream's scheduler records them.
        match self {
            EventKind::Scheduled => ("Normal", "Scheduled", "Binding"),
            EventKind::FailedScheduling => ("Warning", "FailedScheduling", "Scheduling"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Writer {
    tx: mpsc::Sender<Report>,
}

impl Writer {
    /// Starts the writing task and returns its handle and the task to run.
    pub fn new(
        client: Client,
        component: String,
        instance: String,
        capacity: usize,
        concurrency: usize,
    ) -> (Writer, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let task = async move {
            let ctx = &(client, component, instance);
            let reports = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|r| (r, rx)) });
            reports.for_each_concurrent(concurrency.max(1), |report| write(ctx, report)).await;
        };
        (Writer { tx }, task)
    }

    /// Queues a report; `false` if it was dropped because the queue is full.
    pub fn submit(&self, report: Report) -> bool {
        match self.tx.try_send(report) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "report queue full; dropping a report");
                false
            }
        }
    }
}

async fn write((client, component, instance): &(Client, String, String), report: Report) {
    match report {
        Report::Event { pod, kind, message } => {
            let (type_, reason, action) = kind.fields();
            let event = event(&pod, type_, reason, action, message, component, instance);
            let api: Api<Event> = Api::namespaced(client.clone(), &pod.namespace);
            if let Err(error) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(pod = %pod.name, %error, "cannot record event");
            }
        }
        Report::Unschedulable { pod, message, keep_transition_time } => {
            let transition = keep_transition_time.unwrap_or_else(|| Time(jiff::Timestamp::now()));
            let patch = json!({"status": {"conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": null,
                "lastTransitionTime": transition,
            }]}});
            let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
            if let Err(error) = api.patch_status(&pod.name, &PatchParams::default(), &Patch::Strategic(patch)).await {
                tracing::debug!(pod = %pod.name, %error, "cannot set the PodScheduled condition");
            }
        }
    }
}

/// A core/v1 Event about a pod. Names follow upstream's `<object>.<hex timestamp>`, with a
/// process-wide counter added so two events in one clock tick still differ.
fn event(
    pod: &PodRef,
    type_: &str,
    reason: &str,
    action: &str,
    message: String,
    component: &str,
    instance: &str,
) -> Event {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let now = jiff::Timestamp::now();
    let unique = u64::try_from(now.as_nanosecond()).unwrap_or(0).wrapping_add(SEQ.fetch_add(1, Ordering::Relaxed));
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{}.{unique:x}", pod.name)),
            namespace: Some(pod.namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        action: Some(action.into()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        source: Some(EventSource { component: Some(component.into()), host: None }),
        reporting_component: Some(component.into()),
        reporting_instance: Some(instance.into()),
        ..Default::default()
    }
}
