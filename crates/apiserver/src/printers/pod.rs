//! The Pod table: NAME, READY, STATUS, RESTARTS, AGE and, with `-o wide`, IP, NODE,
//! NOMINATED NODE and READINESS GATES.
//!
//! STATUS is not a field of the pod: it is a summary that upstream's `printPod` derives
//! from the phase, the init containers and the containers, in an order that decides which
//! reason wins. Users read it more than any other cell, so the derivation below follows
//! upstream step by step rather than trying to be clever.

use serde_json::{Value, json};

use super::fields::{
    arr_at, bool_at, creation_timestamp, get, int_at, is_being_deleted, name, opt_str_at, or_none, str_at,
};
use super::time::{UnixNanos, elapsed, parse_rfc3339, since};
use super::{AGE_COLUMN, ColumnDefinition, ColumnType, NAME_COLUMN, Row};

pub(super) const COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new(
        "Ready",
        ColumnType::String,
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    ColumnDefinition::new("Status", ColumnType::String, "The aggregate status of the containers in this pod."),
    // A string, not an integer: the cell carries "5 (3m ago)" when the time of the last
    // restart is known, as upstream has done since Kubernetes 1.23.
    ColumnDefinition::new(
        "Restarts",
        ColumnType::String,
        "The number of times the containers in this pod have been restarted and when the \
         last container in this pod has restarted.",
    ),
    AGE_COLUMN,
    ColumnDefinition::wide(
        "IP",
        ColumnType::String,
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if \
         not yet allocated.",
    ),
    ColumnDefinition::wide(
        "Node",
        ColumnType::String,
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a \
         candidate for scheduling by the scheduler defined in schedulerName.",
    ),
    ColumnDefinition::wide(
        "Nominated Node",
        ColumnType::String,
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it \
         cannot be scheduled right away as preemption victims receive their graceful \
         termination periods.",
    ),
    ColumnDefinition::wide(
        "Readiness Gates",
        ColumnType::String,
        "If specified, all readiness gates will be evaluated for pod readiness.",
    ),
];

/// The reason the node lifecycle controller gives a pod on a node that stopped reporting.
const NODE_UNREACHABLE_POD_REASON: &str = "NodeLost";

/// The latest of the `lastState.terminated.finishedAt` times seen so far.
/// `None` plays the part of Go's zero time, which is before every real time.
#[derive(Clone, Copy, Default)]
struct LastRestart(Option<UnixNanos>);

impl LastRestart {
    fn observe(&mut self, status: &Value) {
        if get(status, &["lastState", "terminated"]).is_none() {
            return;
        }
        let finished = opt_str_at(status, &["lastState", "terminated", "finishedAt"]).and_then(parse_rfc3339);
        if let Some(t) = finished
            && self.0.is_none_or(|last| last < t)
        {
            self.0 = Some(t);
        }
    }
}

pub(super) fn row(pod: &Value, now: UnixNanos) -> Row {
    let spec_containers = arr_at(pod, &["spec", "containers"]);
    let spec_init_containers = arr_at(pod, &["spec", "initContainers"]);
    let init_statuses = arr_at(pod, &["status", "initContainerStatuses"]);
    let statuses = arr_at(pod, &["status", "containerStatuses"]);
    let conditions = arr_at(pod, &["status", "conditions"]);

    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let mut total_containers = spec_containers.len();
    let mut ready_containers: usize = 0;
    let mut last_restart = LastRestart::default();
    let mut last_restartable_init_restart = LastRestart::default();

    let phase = str_at(pod, &["status", "phase"]);
    let status_reason = str_at(pod, &["status", "reason"]);
    let mut reason = if status_reason.is_empty() { phase.to_string() } else { status_reason.to_string() };

    // A pod held back by scheduling gates says so, whatever its phase.
    if conditions.iter().any(|c| str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    let row_conditions = match phase {
        "Succeeded" => Some(completed_condition("Succeeded", "The pod has completed successfully.")),
        "Failed" => Some(completed_condition("Failed", "The pod failed.")),
        _ => None,
    };

    // Sidecars (init containers with restartPolicy Always) keep running beside the
    // main containers, so they count toward READY's total.
    let is_restartable_init = |container_name: &str| {
        spec_init_containers
            .iter()
            .any(|c| str_at(c, &["name"]) == container_name && str_at(c, &["restartPolicy"]) == "Always")
    };
    total_containers += spec_init_containers.iter().filter(|c| str_at(c, &["restartPolicy"]) == "Always").count();

    let mut initializing = false;
    for (i, status) in init_statuses.iter().enumerate() {
        let restart_count = int_at(status, &["restartCount"]);
        restarts += restart_count;
        last_restart.observe(status);
        let restartable = is_restartable_init(str_at(status, &["name"]));
        if restartable {
            restartable_init_restarts += restart_count;
            last_restartable_init_restart.observe(status);
        }

        let terminated = get(status, &["state", "terminated"]);
        let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
        if let Some(t) = terminated
            && int_at(t, &["exitCode"]) == 0
        {
            continue;
        }
        if restartable && bool_at(status, &["started"]) {
            if bool_at(status, &["ready"]) {
                ready_containers += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            // The init container failed.
            let t_reason = str_at(t, &["reason"]);
            if !t_reason.is_empty() {
                format!("Init:{t_reason}")
            } else if int_at(t, &["signal"]) != 0 {
                format!("Init:Signal:{}", int_at(t, &["signal"]))
            } else {
                format!("Init:ExitCode:{}", int_at(t, &["exitCode"]))
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", spec_init_containers.len())
        };
        initializing = true;
        break;
    }

    if !initializing || is_pod_initialized(conditions) {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        // Backwards, so that the first container with something to say has the last word.
        for status in statuses.iter().rev() {
            restarts += int_at(status, &["restartCount"]);
            last_restart.observe(status);

            let waiting_reason = str_at(status, &["state", "waiting", "reason"]);
            let terminated = get(status, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                let t_reason = str_at(t, &["reason"]);
                reason = if !t_reason.is_empty() {
                    t_reason.to_string()
                } else if int_at(t, &["signal"]) != 0 {
                    format!("Signal:{}", int_at(t, &["signal"]))
                } else {
                    format!("ExitCode:{}", int_at(t, &["exitCode"]))
                };
            } else if bool_at(status, &["ready"]) && get(status, &["state", "running"]).is_some() {
                has_running = true;
                ready_containers += 1;
            }
        }

        // A pod whose last container to report completed, but where another one is
        // still running, is not "Completed" yet.
        if reason == "Completed" && has_running {
            reason = if has_condition(conditions, "Ready") { "Running".to_string() } else { "NotReady".to_string() };
        }
    }

    if is_being_deleted(pod) && status_reason == NODE_UNREACHABLE_POD_REASON {
        reason = "Unknown".to_string();
    } else if is_being_deleted(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match last_restart.0 {
        Some(t) if restarts != 0 => {
            let ago = elapsed(t, now);
            format!("{restarts} ({ago} ago)")
        }
        _ => restarts.to_string(),
    };

    let cells = vec![
        Value::from(name(pod)),
        Value::from(format!("{ready_containers}/{total_containers}")),
        Value::from(reason),
        Value::from(restarts_cell),
        Value::from(since(creation_timestamp(pod), now)),
        Value::from(or_none(pod_ip(pod))),
        Value::from(or_none(str_at(pod, &["spec", "nodeName"]))),
        Value::from(or_none(str_at(pod, &["status", "nominatedNodeName"]))),
        Value::from(readiness_gates(pod, conditions)),
    ];
    Row { cells, conditions: row_conditions }
}

/// The pod's primary IP. `status.podIP` wins over `status.podIPs[0]`, as in upstream's
/// conversion to the internal type, which keeps old kubelets that set only `podIP` working.
fn pod_ip(pod: &Value) -> &str {
    let ip = str_at(pod, &["status", "podIP"]);
    if !ip.is_empty() {
        return ip;
    }
    arr_at(pod, &["status", "podIPs"]).first().map_or("", |first| str_at(first, &["ip"]))
}

/// `"<trueConditions>/<gates>"` for pods with readiness gates, `<none>` for the rest.
fn readiness_gates(pod: &Value, conditions: &[Value]) -> String {
    let gates = arr_at(pod, &["spec", "readinessGates"]);
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let satisfied = gates
        .iter()
        .filter(|gate| {
            let wanted = str_at(gate, &["conditionType"]);
            conditions.iter().find(|c| str_at(c, &["type"]) == wanted).is_some_and(|c| str_at(c, &["status"]) == "True")
        })
        .count();
    format!("{satisfied}/{}", gates.len())
}

/// Whether the condition of type `kind` is present and `True`.
fn has_condition(conditions: &[Value], kind: &str) -> bool {
    conditions.iter().any(|c| str_at(c, &["type"]) == kind && str_at(c, &["status"]) == "True")
}

/// Whether the first `Initialized` condition is `True`; a pod whose init containers
/// all finished reports its main containers even if an init status looks unfinished.
fn is_pod_initialized(conditions: &[Value]) -> bool {
    conditions.iter().find(|c| str_at(c, &["type"]) == "Initialized").is_some_and(|c| str_at(c, &["status"]) == "True")
}

/// The row condition upstream attaches to finished pods, which lets clients
/// tell a finished pod from a live one without parsing STATUS.
fn completed_condition(reason: &str, message: &str) -> Value {
    json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}])
}
