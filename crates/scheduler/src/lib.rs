//! The pod scheduler: watches pods, nodes and Services through the Kubernetes API, picks a
//! node for each pending pod with upstream's default filters and scores, and binds it.
//!
//! The layers, from pure to I/O (see `README.md` beside this crate for the design):
//!
//! - [`quantity`], [`model`]: API objects distilled into what the algorithm reads;
//! - [`filter`], [`score`], [`algorithm`]: the decision, [`schedule`], a pure function;
//! - [`usage`], [`queue`], [`state`]: the scheduler's memory (pods per node, assumed pods,
//!   the retry queue), a state machine fed with watch events, still without I/O;
//! - `runner` and `writer`: the watches, the decision loop, the binds, events and status.
//!
//! **Invariant:** the scheduler sees the cluster only through the API; it never touches the
//! store. Everything it knows arrives by watch, and everything it does is an API call.

pub mod algorithm;
pub mod filter;
pub mod model;
pub mod quantity;
pub mod queue;
mod runner;
pub mod score;
pub mod state;
pub mod usage;
mod writer;

use std::time::Duration;

pub use algorithm::{PodToSchedule, Unschedulable, schedule};
pub use model::{NodeInfo, PodInfo};
pub use runner::run;
pub use score::SpreadSelector;
pub use usage::PodsByNode;

/// The name pods use in `spec.schedulerName` to ask for this scheduler; also the event source.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// How the scheduler runs. `Default` gives upstream's timings and a bind concurrency that
/// suits one API server on a small machine.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Pods whose `spec.schedulerName` is this (or unset) are scheduled; others are left alone.
    pub scheduler_name: String,
    /// Names this scheduler instance in the events it records (`reportingInstance`).
    pub instance: String,
    /// How many bind requests may be in flight at once. Decisions take microseconds and a
    /// bind a round trip to the store, so binds run in parallel tasks; this bounds them.
    pub max_in_flight_binds: usize,
    /// The backoff after a pod's first failed attempt; it doubles per failure up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// An unschedulable pod is retried after this long even if no cluster change was seen.
    pub max_unschedulable_wait: Duration,
    /// Events and status updates queue up to this many, then new ones are dropped, as
    /// upstream's event broadcaster does, so that reporting never slows binding down.
    pub max_queued_writes: usize,
    /// How many event and status writes may be in flight at once.
    pub write_concurrency: usize,
}

impl Default for SchedulerConfig {
    fn default() -> SchedulerConfig {
        SchedulerConfig {
            scheduler_name: DEFAULT_SCHEDULER_NAME.to_owned(),
            instance: DEFAULT_SCHEDULER_NAME.to_owned(),
            max_in_flight_binds: 64,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable_wait: Duration::from_secs(300),
            max_queued_writes: 4096,
            write_concurrency: 8,
        }
    }
}

/// Why the scheduler stopped. Transient API failures are not errors: watches resume with
/// backoff and failed binds are retried, so the scheduler runs until it is cancelled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid scheduler configuration: {0}")]
    Config(String),
    /// A watch stream ended, which kube's watcher never does on its own.
    #[error("the {0} watch stopped")]
    WatchStopped(&'static str),
    /// A task of the scheduler panicked; its work is lost, so the scheduler stops.
    #[error("a scheduler task failed: {0}")]
    TaskFailed(String),
}
