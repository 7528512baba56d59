//! Tables for the core kinds other than Pod and the networking ones:
//! Node, Namespace, Secret, ConfigMap, ServiceAccount and Event.

use std::collections::BTreeSet;

use serde_json::Value;

use super::fields::{arr_at, bool_at, creation_timestamp, get, int_at, map_len, name, obj_at, opt_str_at, str_at};
use super::time::{UnixNanos, since};
use super::{AGE_COLUMN, ColumnDefinition, ColumnType, NAME_COLUMN, Row};

// ---------------------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------------------

pub(super) const NODE_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new("Status", ColumnType::String, "The status of the node"),
    ColumnDefinition::new("Roles", ColumnType::String, "The roles of the node"),
    AGE_COLUMN,
    ColumnDefinition::new("Version", ColumnType::String, "Kubelet Version reported by the node."),
    ColumnDefinition::wide("Internal-IP", ColumnType::String, "List of addresses reachable to the node."),
    ColumnDefinition::wide("External-IP", ColumnType::String, "List of addresses reachable to the node."),
    ColumnDefinition::wide(
        "OS-Image",
        ColumnType::String,
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    ColumnDefinition::wide(
        "Kernel-Version",
        ColumnType::String,
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    ColumnDefinition::wide(
        "Container-Runtime",
        ColumnType::String,
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. \
         containerd://1.4.2).",
    ),
];

/// The label prefix that gives a node a role (`node-role.kubernetes.io/control-plane`).
const NODE_ROLE_LABEL_PREFIX: &str = "node-role.kubernetes.io/";
/// The older label that names a node's role in its value (`kubernetes.io/role=master`).
const NODE_ROLE_LABEL: &str = "kubernetes.io/role";

pub(super) fn node_row(node: &Value, now: UnixNanos) -> Row {
    // Only the Ready condition makes up STATUS; if it appears twice the last one counts,
    // as upstream builds a map of conditions by type.
    let ready = arr_at(node, &["status", "conditions"]).iter().rev().find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if bool_at(node, &["spec", "unschedulable"]) {
        status.push_str(",SchedulingDisabled");
    }

    let roles = node_roles(node);
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.into_iter().collect::<Vec<_>>().join(",") };

    let info = |field: &str| {
        let v = str_at(node, &["status", "nodeInfo", field]);
        if v.is_empty() { "<unknown>" } else { v }.to_string()
    };

    Row::new(vec![
        Value::from(name(node)),
        Value::from(status),
        Value::from(roles),
        Value::from(since(creation_timestamp(node), now)),
        Value::from(str_at(node, &["status", "nodeInfo", "kubeletVersion"])),
        Value::from(node_address(node, "InternalIP")),
        Value::from(node_address(node, "ExternalIP")),
        Value::from(info("osImage")),
        Value::from(info("kernelVersion")),
        Value::from(info("containerRuntimeVersion")),
    ])
}

/// The node's roles, sorted and deduplicated, from both role label conventions.
fn node_roles(node: &Value) -> BTreeSet<&str> {
    let mut roles = BTreeSet::new();
    for (key, value) in obj_at(node, &["metadata", "labels"]).into_iter().flatten() {
        if let Some(role) = key.strip_prefix(NODE_ROLE_LABEL_PREFIX) {
            if !role.is_empty() {
                roles.insert(role);
            }
        } else if key == NODE_ROLE_LABEL
            && let Some(role) = value.as_str().filter(|r| !r.is_empty())
        {
            roles.insert(role);
        }
    }
    roles
}

/// The first address of the given type, or `<none>`.
fn node_address(node: &Value, kind: &str) -> String {
    arr_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map_or("<none>", |a| str_at(a, &["address"]))
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Namespace
// ---------------------------------------------------------------------------------------

pub(super) const NAMESPACE_COLUMNS: &[ColumnDefinition] =
    &[NAME_COLUMN, ColumnDefinition::new("Status", ColumnType::String, "The status of the namespace"), AGE_COLUMN];

pub(super) fn namespace_row(ns: &Value, now: UnixNanos) -> Row {
    Row::new(vec![
        Value::from(name(ns)),
        Value::from(str_at(ns, &["status", "phase"])),
        Value::from(since(creation_timestamp(ns), now)),
    ])
}

// ---------------------------------------------------------------------------------------
// Secret, ConfigMap, ServiceAccount
// ---------------------------------------------------------------------------------------

// DATA and SECRETS are counts. Upstream declares these columns "string" yet sends
// numbers; they are declared "integer" here so that every cell matches its column.
pub(super) const SECRET_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new("Type", ColumnType::String, "Used to facilitate programmatic handling of secret data."),
    ColumnDefinition::new(
        "Data",
        ColumnType::Integer,
        "Data contains the secret data. Each key must consist of alphanumeric characters, \
         '-', '_' or '.'.",
    ),
    AGE_COLUMN,
];

pub(super) fn secret_row(secret: &Value, now: UnixNanos) -> Row {
    // `stringData` is merged into `data` when a secret is written, but a secret stored
    // before that merge must not show fewer keys than it will have.
    let mut keys: BTreeSet<&str> = BTreeSet::new();
    for field in ["data", "stringData"] {
        keys.extend(obj_at(secret, &[field]).into_iter().flatten().map(|(k, _)| k.as_str()));
    }
    // An absent type is what defaulting turns into Opaque.
    let kind = opt_str_at(secret, &["type"]).filter(|t| !t.is_empty()).unwrap_or("Opaque");
    Row::new(vec![
        Value::from(name(secret)),
        Value::from(kind),
        Value::from(keys.len() as i64),
        Value::from(since(creation_timestamp(secret), now)),
    ])
}

pub(super) const CONFIG_MAP_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new("Data", ColumnType::Integer, "Data contains the configuration data."),
    AGE_COLUMN,
];

pub(super) fn config_map_row(cm: &Value, now: UnixNanos) -> Row {
    let entries = map_len(cm, &["data"]) + map_len(cm, &["binaryData"]);
    Row::new(vec![Value::from(name(cm)), Value::from(entries as i64), Value::from(since(creation_timestamp(cm), now))])
}

pub(super) const SERVICE_ACCOUNT_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new(
        "Secrets",
        ColumnType::Integer,
        "Secrets is a list of the secrets in the same namespace that pods running using this \
         ServiceAccount are allowed to use.",
    ),
    AGE_COLUMN,
];

pub(super) fn service_account_row(sa: &Value, now: UnixNanos) -> Row {
    Row::new(vec![
        Value::from(name(sa)),
        Value::from(arr_at(sa, &["secrets"]).len() as i64),
        Value::from(since(creation_timestamp(sa), now)),
    ])
}

// ---------------------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------------------

pub(super) const EVENT_COLUMNS: &[ColumnDefinition] = &[
    ColumnDefinition::new(
        "Last Seen",
        ColumnType::String,
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    ColumnDefinition::new(
        "Type",
        ColumnType::String,
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    ColumnDefinition::new(
        "Reason",
        ColumnType::String,
        "This should be a short, machine understandable string that gives the reason for the \
         transition into the object's current status.",
    ),
    ColumnDefinition::new("Object", ColumnType::String, "The object that this event is about."),
    ColumnDefinition::wide(
        "Subobject",
        ColumnType::String,
        "If referring to a piece of an object instead of an entire object, this string \
         should contain a valid JSON/Go field access statement, such as \
         desiredState.manifest.containers[2].",
    ),
    ColumnDefinition::wide(
        "Source",
        ColumnType::String,
        "The component reporting this event. Should be a short machine understandable string.",
    ),
    ColumnDefinition::new(
        "Message",
        ColumnType::String,
        "A human-readable description of the status of this operation.",
    ),
    ColumnDefinition::wide(
        "First Seen",
        ColumnType::String,
        "The time at which the event was first recorded. (Time of server receipt is in \
         TypeMeta.)",
    ),
    ColumnDefinition::wide("Count", ColumnType::Integer, "The number of times this event has occurred."),
    NAME_COLUMN.priority(1),
];

/// Prints both `v1` Events and `events.k8s.io/v1` Events, which upstream converts into one
/// internal type before printing: the newer API renamed `involvedObject` to `regarding`,
/// `message` to `note`, and kept the old timestamps and count under `deprecated*` names.
pub(super) fn event_row(event: &Value, now: UnixNanos) -> Row {
    let field =
        |core: &'static str, events_api: &'static str| get(event, &[core]).or_else(|| get(event, &[events_api]));
    let field_str = |core, events_api| field(core, events_api).and_then(Value::as_str);

    let first_timestamp = field_str("firstTimestamp", "deprecatedFirstTimestamp");
    let first_seen = match first_timestamp {
        Some(_) => since(first_timestamp, now),
        None => since(opt_str_at(event, &["eventTime"]), now),
    };
    let last_timestamp = field_str("lastTimestamp", "deprecatedLastTimestamp");
    let mut last_seen = match last_timestamp {
        Some(_) => since(last_timestamp, now),
        None => first_seen.clone(),
    };

    let mut count = field("count", "deprecatedCount").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = get(event, &["series"]) {
        last_seen = since(opt_str_at(series, &["lastObservedTime"]), now);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        // Singleton events of the newer API carry no count.
        count = 1;
    }

    let involved = field("involvedObject", "regarding").unwrap_or(&Value::Null);
    let kind = str_at(involved, &["kind"]).to_lowercase();
    let involved_name = str_at(involved, &["name"]);
    let target = if involved_name.is_empty() { kind } else { format!("{kind}/{involved_name}") };

    let source = field("source", "deprecatedSource").unwrap_or(&Value::Null);
    let source = format_event_source(
        first_non_empty(str_at(source, &["component"]), str_at(event, &["reportingController"])),
        first_non_empty(str_at(source, &["host"]), str_at(event, &["reportingInstance"])),
    );
    let message = field_str("message", "note").unwrap_or("").trim();

    Row::new(vec![
        Value::from(last_seen),
        Value::from(str_at(event, &["type"])),
        Value::from(str_at(event, &["reason"])),
        Value::from(target),
        Value::from(str_at(involved, &["fieldPath"])),
        Value::from(source),
        Value::from(message),
        Value::from(first_seen),
        Value::from(count),
        Value::from(name(event)),
    ])
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

/// `component, host`, or just `component` when there is no host.
fn format_event_source(component: &str, instance: &str) -> String {
    if instance.is_empty() { component.to_string() } else { format!("{component}, {instance}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_source_formats() {
        assert_eq!(format_event_source("kubelet", "node-1"), "kubelet, node-1");
        assert_eq!(format_event_source("kubelet", ""), "kubelet");
        assert_eq!(format_event_source("", ""), "");
    }
}
