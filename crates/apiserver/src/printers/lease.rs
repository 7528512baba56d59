//! The table for `coordination.k8s.io` Leases, which `kubectl get leases -A` shows for
//! leader election and node heartbeats.

use serde_json::Value;

use super::fields::{creation_timestamp, name, str_at};
use super::time::{UnixNanos, since};
use super::{AGE_COLUMN, ColumnDefinition, ColumnType, NAME_COLUMN, Row};

pub(super) const LEASE_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new(
        "Holder",
        ColumnType::String,
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE_COLUMN,
];

pub(super) fn lease_row(lease: &Value, now: UnixNanos) -> Row {
    Row::new(vec![
        Value::from(name(lease)),
        Value::from(str_at(lease, &["spec", "holderIdentity"])),
        Value::from(since(creation_timestamp(lease), now)),
    ])
}
