//! Tables for Deployment and ReplicaSet.

use serde_json::Value;

use super::fields::{arr_at, creation_timestamp, get, int_at, name, opt_int_at, str_at};
use super::selectors::{InvalidSelector, format_label_selector, label_selector_string};
use super::time::{UnixNanos, since};
use super::{AGE_COLUMN, ColumnDefinition, ColumnType, NAME_COLUMN, Row};

const CONTAINERS_COLUMN: ColumnDefinition =
    ColumnDefinition::wide("Containers", ColumnType::String, "Names of each container in the template.");
const IMAGES_COLUMN: ColumnDefinition =
    ColumnDefinition::wide("Images", ColumnType::String, "Images referenced by each container in the template.");

// UP-TO-DATE and AVAILABLE are counts. Upstream declares them "string" yet sends numbers;
// they are declared "integer" here so that every cell matches its column.
pub(super) const DEPLOYMENT_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new("Ready", ColumnType::String, "Number of the pod with ready state"),
    ColumnDefinition::new(
        "Up-to-date",
        ColumnType::Integer,
        "Total number of non-terminated pods targeted by this deployment that have the \
         desired template spec.",
    ),
    ColumnDefinition::new(
        "Available",
        ColumnType::Integer,
        "Total number of available pods (ready for at least minReadySeconds) targeted by this \
         deployment.",
    ),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    ColumnDefinition::wide(
        "Selector",
        ColumnType::String,
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will \
         be the ones affected by this deployment.",
    ),
];

pub(super) fn deployment_row(deploy: &Value, now: UnixNanos) -> Row {
    let (containers, images) = container_cells(deploy);
    // Deployments print an empty selector as "" and a broken one as "<invalid>",
    // unlike ReplicaSets; upstream uses two different helpers and so does this.
    let selector = match label_selector_string(get(deploy, &["spec", "selector"])) {
        Ok(s) => s,
        Err(InvalidSelector) => "<invalid>".to_string(),
    };
    Row::new(vec![
        Value::from(name(deploy)),
        Value::from(format!("{}/{}", int_at(deploy, &["status", "readyReplicas"]), desired_replicas(deploy))),
        Value::from(int_at(deploy, &["status", "updatedReplicas"])),
        Value::from(int_at(deploy, &["status", "availableReplicas"])),
        Value::from(since(creation_timestamp(deploy), now)),
        Value::from(containers),
        Value::from(images),
        Value::from(selector),
    ])
}

pub(super) const REPLICA_SET_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new("Desired", ColumnType::Integer, "Replicas is the number of desired replicas."),
    ColumnDefinition::new("Current", ColumnType::Integer, "Replicas is the most recently observed number of replicas."),
    ColumnDefinition::new("Ready", ColumnType::Integer, "The number of ready replicas for this replica set."),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    ColumnDefinition::wide(
        "Selector",
        ColumnType::String,
        "Selector is a label query over pods that should match the replica count.",
    ),
];

pub(super) fn replica_set_row(rs: &Value, now: UnixNanos) -> Row {
    let (containers, images) = container_cells(rs);
    Row::new(vec![
        Value::from(name(rs)),
        Value::from(desired_replicas(rs)),
        Value::from(int_at(rs, &["status", "replicas"])),
        Value::from(int_at(rs, &["status", "readyReplicas"])),
        Value::from(since(creation_timestamp(rs), now)),
        Value::from(containers),
        Value::from(images),
        Value::from(format_label_selector(get(rs, &["spec", "selector"]))),
    ])
}

/// `spec.replicas`, which defaulting sets to 1 when it is absent.
fn desired_replicas(obj: &Value) -> i64 {
    opt_int_at(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// The names and the images of the pod template's containers, each joined by commas.
fn container_cells(obj: &Value) -> (String, String) {
    let containers = arr_at(obj, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    (names.join(","), images.join(","))
}
