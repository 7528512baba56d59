//! The scheduler's I/O: three watches feed one decision loop, which hands binds to parallel
//! tasks and reports to the writer.
//!
//! ```text
//!  watch nodes ───┐                         ┌─▶ bind task ─┐ (up to max_in_flight_binds)
//!  watch pods ────┼─▶ inputs ─▶ loop: State ─┼─▶ bind task ─┼─▶ BindDone ─▶ inputs
//!  watch services ┘     ▲                   └─▶ writer (events, PodScheduled condition)
//!                       └──────────────────────────────────────────────────────┘
//! ```
//!
//! The loop is the only owner of [`State`], so nothing is locked: each turn it takes every
//! input that is ready, then makes decisions while there is work and bind capacity, then
//! sleeps until an input, a backoff deadline, the periodic flush or free bind capacity.
//! Inputs are taken before decisions so that a decision never ignores news already received.
//!
//! All tasks live in one `JoinSet` owned by [`run`], so cancelling `run` (dropping its future)
//! aborts the watches, binds and writer with it.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::Instrument;

use crate::queue::{Backoff, PodKey};
use crate::state::{BindOutcome, Decision, Input, PodRef, State, StateConfig};
use crate::writer::{EventKind, Report, Writer};
use crate::{Error, SchedulerConfig};

/// Watch events wait here for the loop; when it is full, watches pause (backpressure).
const INPUT_CAPACITY: usize = 8192;
/// Bounds on one turn of the loop, so inputs and decisions take turns under load.
const MAX_INPUTS_PER_TURN: usize = 2048;
const MAX_DECISIONS_PER_TURN: usize = 512;
/// How often unschedulable pods that have waited `max_unschedulable_wait` are retried.
const FLUSH_PERIOD: Duration = Duration::from_secs(30);

/// How a task of the scheduler ended.
enum TaskEnd {
    Done,
    WatchStopped(&'static str),
}

/// Runs the scheduler until the returned future is dropped. It returns only on a
/// configuration error or if one of its own tasks dies; API failures are retried.
pub async fn run(client: Client, config: SchedulerConfig) -> Result<(), Error> {
    validate(&config)?;
    let span = tracing::info_span!("scheduler", name = %config.scheduler_name);
    run_loop(client, config).instrument(span).await
}

fn validate(config: &SchedulerConfig) -> Result<(), Error> {
    if config.scheduler_name.is_empty() {
        return Err(Error::Config("scheduler_name must not be empty".into()));
    }
    if config.max_in_flight_binds == 0 {
        return Err(Error::Config("max_in_flight_binds must be at least 1".into()));
    }
    if config.initial_backoff.is_zero() || config.max_backoff < config.initial_backoff {
        return Err(Error::Config("backoff must be positive, with max_backoff >= initial_backoff".into()));
    }
    Ok(())
}

async fn run_loop(client: Client, config: SchedulerConfig) -> Result<(), Error> {
    let (tx, mut rx) = mpsc::channel::<Input>(INPUT_CAPACITY);
    let mut tasks: JoinSet<TaskEnd> = JoinSet::new();
    tasks.spawn(watch(Api::<Node>::all(client.clone()), tx.clone(), Input::node, "nodes").in_current_span());
    tasks.spawn(watch(Api::<Pod>::all(client.clone()), tx.clone(), Input::pod, "pods").in_current_span());
    tasks.spawn(watch(Api::<Service>::all(client.clone()), tx.clone(), Input::service, "services").in_current_span());
    let (writer, writer_task) = Writer::new(
        client.clone(),
        config.scheduler_name.clone(),
        config.instance.clone(),
        config.max_queued_writes,
        config.write_concurrency,
    );
    tasks.spawn(
        async move {
            writer_task.await;
            TaskEnd::Done
        }
        .in_current_span(),
    );

    let bind_slots = Arc::new(Semaphore::new(config.max_in_flight_binds));
    let mut state = State::new(StateConfig {
        scheduler_name: config.scheduler_name.clone(),
        backoff: Backoff { initial: config.initial_backoff, max: config.max_backoff },
    });
    let mut flush = tokio::time::interval(FLUSH_PERIOD);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_synced = false;

    loop {
        let mut n_inputs = 0;
        while n_inputs < MAX_INPUTS_PER_TURN {
            match rx.try_recv() {
                Ok(input) => state.handle(input, Instant::now()),
                // The loop holds a sender itself, so the channel never disconnects.
                Err(_) => break,
            }
            n_inputs += 1;
        }
        state.promote_due(Instant::now());
        if !was_synced && state.is_synced() {
            was_synced = true;
            tracing::info!("caches synced; scheduling");
        }

        let mut n_decisions = 0;
        while n_decisions < MAX_DECISIONS_PER_TURN && state.has_ready_work() {
            let Ok(slot) = bind_slots.clone().try_acquire_owned() else { break };
            let Some(decision) = state.next_decision(Instant::now()) else { break };
            n_decisions += 1;
            match decision {
                Decision::Bind { pod, node } => {
                    tasks.spawn(bind(client.clone(), pod, node, slot, tx.clone(), writer.clone()).in_current_span());
                }
                Decision::Unschedulable { pod, message, set_condition, keep_transition_time, record_event } => {
                    tracing::debug!(pod = %pod.name, namespace = %pod.namespace, %message, "unschedulable");
                    let key = PodKey::new(&pod.namespace, &pod.name);
                    if set_condition {
                        writer.submit(Report::Unschedulable {
                            pod: pod.clone(),
                            message: message.clone(),
                            keep_transition_time,
                        });
                    }
                    if record_event
                        && writer.submit(Report::Event {
                            pod,
                            kind: EventKind::FailedScheduling,
                            message: message.clone(),
                        })
                    {
                        state.failure_reported(&key, &message);
                    }
                }
            }
        }

        while let Some(ended) = tasks.try_join_next() {
            check_task(ended)?;
        }
        if n_inputs > 0 || n_decisions > 0 {
            // There may be more of either; let other tasks run, then take another turn.
            tokio::task::yield_now().await;
            continue;
        }

        let deadline = state.next_backoff_deadline();
        let wants_slot = state.has_ready_work();
        tokio::select! {
            input = rx.recv() => {
                if let Some(input) = input {
                    state.handle(input, Instant::now());
                }
            }
            () = sleep_until(deadline) => {}
            _ = flush.tick() => {
                let (active, backoff, unschedulable) = state.queue_sizes();
                tracing::debug!(active, backoff, unschedulable, "flushing long-waiting unschedulable pods");
                state.flush_unschedulable(config.max_unschedulable_wait, Instant::now());
            }
            slot = bind_slots.clone().acquire_owned(), if wants_slot => drop(slot),
            Some(ended) = tasks.join_next() => check_task(ended)?,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn check_task(ended: Result<TaskEnd, tokio::task::JoinError>) -> Result<(), Error> {
    match ended {
        Ok(TaskEnd::Done) => Ok(()),
        Ok(TaskEnd::WatchStopped(what)) => Err(Error::WatchStopped(what)),
        Err(e) => Err(Error::TaskFailed(e.to_string())),
    }
}

/// Follows one kind of object and forwards its events. Errors are logged and retried with
/// kube's default backoff; the watcher relists by itself when it has to.
async fn watch<K>(
    api: Api<K>,
    tx: mpsc::Sender<Input>,
    wrap: fn(watcher::Event<K>) -> Input,
    what: &'static str,
) -> TaskEnd
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                if tx.send(wrap(event)).await.is_err() {
                    return TaskEnd::Done;
                }
            }
            Err(error) => tracing::warn!(%error, what, "watch failed; retrying"),
        }
    }
    TaskEnd::WatchStopped(what)
}

/// Binds one pod, frees its bind slot, records the Scheduled event on success and tells the
/// loop how it went.
async fn bind(
    client: Client,
    pod: PodRef,
    node: String,
    slot: OwnedSemaphorePermit,
    tx: mpsc::Sender<Input>,
    writer: Writer,
) -> TaskEnd {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()).filter(|u| !u.is_empty()),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.clone()),
            ..Default::default()
        },
    };
    let result =
        api.create_subresource::<_, serde_json::Value>("binding", &pod.name, &PostParams::default(), &binding).await;
    drop(slot);
    let outcome = match result {
        Ok(_) => BindOutcome::Bound,
        Err(kube::Error::Api(status)) if status.code == 409 => BindOutcome::Conflict,
        Err(kube::Error::Api(status)) if status.code == 404 => BindOutcome::NotFound,
        Err(e) => BindOutcome::Failed(e.to_string()),
    };
    match &outcome {
        BindOutcome::Bound => {
            tracing::debug!(pod = %pod.name, namespace = %pod.namespace, %node, "bound");
            let message = format!("Successfully assigned {}/{} to {node}", pod.namespace, pod.name);
            writer.submit(Report::Event { pod: pod.clone(), kind: EventKind::Scheduled, message });
        }
        other => tracing::debug!(pod = %pod.name, namespace = %pod.namespace, %node, outcome = ?other, "bind failed"),
    }
    let key = PodKey::new(&pod.namespace, &pod.name);
    let _ = tx.send(Input::BindDone { key, uid: pod.uid, node, outcome }).await;
    TaskEnd::Done
}
