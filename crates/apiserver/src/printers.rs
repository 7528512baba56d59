//! Server-side table output: the `meta.k8s.io/v1` `Table` that `kubectl get` asks for.
//!
//! kubectl does not know how to print a Pod or a Service. It sends
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...` and prints whatever columns
//! the server returns; a server that cannot answer gets NAME and AGE only. So the column
//! layout and the cell values of upstream's `pkg/printers/internalversion` are reproduced
//! here, kind by kind, on objects held as [`serde_json::Value`].
//!
//! Three properties matter to kubectl and are kept for every kind:
//! - every row has exactly one cell per column definition, and each cell has its column's
//!   type (an `integer` column holds JSON numbers, a `string` column strings), because
//!   kubectl pairs cells with columns by position;
//! - the `-o wide` columns (priority 1) are always present: like upstream's API server,
//!   the table is always generated wide, and kubectl hides priority-1 columns itself;
//! - by default each row carries the object's metadata as a `PartialObjectMetadata`,
//!   from which kubectl takes `--show-labels`, `-L`, the NAMESPACE column of
//!   `--all-namespaces`, and the identity of rows during `--watch`.
//!
//! Printing never fails: a missing or mistyped field shows as upstream shows a Go zero
//! value (`""`, `0`, `<none>`, `<unknown>`), so one odd object cannot break a listing.
//!
//! Time is a parameter ([`TableOptions::now`]) rather than read from the clock, so that
//! every cell is a pure function of the inputs.

mod apps;
mod core;
mod fields;
mod lease;
mod network;
mod pod;
mod selectors;
mod time;

#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use self::time::UnixNanos;
pub use self::time::{human_duration, translate_timestamp_since};

/// The `apiVersion` of the tables (and of the `PartialObjectMetadata` in their rows).
pub const TABLE_API_VERSION: &str = "meta.k8s.io/v1";

/// The type of a column's cells, from the OpenAPI data types the `Table` API allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// Cells are JSON strings.
    String,
    /// Cells are JSON integers.
    Integer,
    /// Cells are JSON numbers.
    Number,
    /// Cells are JSON booleans.
    Boolean,
    /// Cells are RFC 3339 timestamps, as strings.
    Date,
}

impl ColumnType {
    /// The name the `Table` API uses for this type.
    pub const fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Integer => "integer",
            ColumnType::Number => "number",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
        }
    }

    /// Whether `cell` is a valid value for a column of this type.
    pub fn admits(self, cell: &Value) -> bool {
        match self {
            ColumnType::String | ColumnType::Date => cell.is_string(),
            ColumnType::Integer => cell.is_i64() || cell.is_u64(),
            ColumnType::Number => cell.is_number(),
            ColumnType::Boolean => cell.is_boolean(),
        }
    }
}

/// One column of a table: a `meta.k8s.io/v1` `TableColumnDefinition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ColumnDefinition {
    /// The header, which kubectl upper-cases ("Nominated Node" prints as NOMINATED NODE).
    pub name: &'static str,
    /// The type of the cells.
    pub column_type: ColumnType,
    /// `"name"` for the column that holds the object's name, which is how kubectl finds
    /// it (to prefix `pod/` with `--show-kind`, for one); otherwise empty.
    pub format: &'static str,
    /// Documentation of the column, from the API field it shows.
    pub description: &'static str,
    /// 0 for the columns always shown, 1 for those shown only with `-o wide`.
    pub priority: i32,
}

impl ColumnDefinition {
    /// A column kubectl always shows.
    pub const fn new(name: &'static str, column_type: ColumnType, description: &'static str) -> Self {
        ColumnDefinition { name, column_type, format: "", description, priority: 0 }
    }

    /// A column kubectl shows only with `-o wide`.
    pub const fn wide(name: &'static str, column_type: ColumnType, description: &'static str) -> Self {
        ColumnDefinition::new(name, column_type, description).priority(1)
    }

    /// This column with another priority.
    pub const fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The column's JSON form. Every field is always written, as upstream does:
    /// none of them is optional in `TableColumnDefinition`.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.column_type.as_str(),
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The NAME column that (nearly) every table starts with.
const NAME_COLUMN: ColumnDefinition = ColumnDefinition {
    name: "Name",
    column_type: ColumnType::String,
    format: "name",
    description: "Name must be unique within a namespace. Is required when creating \
                  resources, although some resources may allow a client to request the \
                  generation of an appropriate name automatically. Name is primarily intended \
                  for creation idempotence and configuration definition. Cannot be updated. \
                  More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    priority: 0,
};

/// The AGE column, computed from `metadata.creationTimestamp`.
const AGE_COLUMN: ColumnDefinition = ColumnDefinition::new(
    "Age",
    ColumnType::String,
    "CreationTimestamp is a timestamp representing the server time when this object was \
     created. It is not guaranteed to be set in happens-before order across separate \
     operations. Clients may not set this value. It is represented in RFC3339 form and is in \
     UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: \
     https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
);

/// What each row's `object` carries, from the `includeObject` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IncludeObject {
    /// No object: the row has no `object` field.
    None,
    /// The object's metadata as a `PartialObjectMetadata`. The default, because kubectl
    /// needs labels, namespace and name for `--show-labels`, `-L`, `-A` and `--watch`
    /// and does not ask for them explicitly.
    #[default]
    Metadata,
    /// The whole object, as stored.
    Object,
}

impl IncludeObject {
    /// Reads the `includeObject` query parameter: absent or empty means the default,
    /// [`IncludeObject::Metadata`]; anything but `None`, `Metadata` and `Object` is an
    /// error, which the API server should answer with 400 Bad Request as upstream does.
    pub fn from_query(value: Option<&str>) -> Result<Self, InvalidIncludeObject> {
        value.map_or(Ok(IncludeObject::default()), str::parse)
    }
}

impl FromStr for IncludeObject {
    type Err = InvalidIncludeObject;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "Metadata" => Ok(IncludeObject::Metadata),
            "None" => Ok(IncludeObject::None),
            "Object" => Ok(IncludeObject::Object),
            other => Err(InvalidIncludeObject(other.to_string())),
        }
    }
}

/// An `includeObject` value other than `None`, `Metadata` and `Object`.
/// The message is upstream's, so that clients see the same error text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unrecognized includeObject value: {0:?}")]
pub struct InvalidIncludeObject(pub String);

/// How to build a table, beyond the objects themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    /// The instant AGE and the other durations are measured to.
    /// The API server passes the time of the request; tests pass a fixed instant.
    pub now: SystemTime,
    /// What each row's `object` carries.
    pub include_object: IncludeObject,
    /// The table's `metadata.resourceVersion`: the list's for a list, the object's for a
    /// single object (upstream copies whichever it printed). `None` leaves it out.
    pub list_resource_version: Option<String>,
    /// The list's `metadata.continue`, for a paginated list (`kubectl get --chunk-size`).
    pub continue_token: Option<String>,
    /// The list's `metadata.remainingItemCount`, when known.
    pub remaining: Option<i64>,
    /// Leaves out the column definitions. A watch sends them with its first table only,
    /// as upstream does, since kubectl keeps the columns it has already seen.
    pub no_headers: bool,
}

impl TableOptions {
    /// Options for a table at `now`, with the defaults of a plain `kubectl get`:
    /// metadata in the rows, headers, and no list metadata.
    pub fn new(now: SystemTime) -> Self {
        TableOptions {
            now,
            include_object: IncludeObject::default(),
            list_resource_version: None,
            continue_token: None,
            remaining: None,
            no_headers: false,
        }
    }
}

/// Builds the complete `meta.k8s.io/v1` `Table` for `objects`, all of the given `kind`
/// (the objects' `kind`, such as `"Pod"` or `"Deployment"`, not the resource name).
///
/// Kinds without a table of their own get NAME and AGE. Upstream gives unknown kinds
/// NAME and "Created At" (a timestamp), but AGE is what kubectl users expect to read.
pub fn table_for(kind: &str, objects: &[Value], opts: &TableOptions) -> Value {
    let printer = printer_for(kind);
    let now = time::unix_nanos(opts.now);

    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let row = (printer.row)(object, now);
            row.into_json(object, opts.include_object)
        })
        .collect();

    let columns: Vec<Value> =
        if opts.no_headers { Vec::new() } else { printer.columns.iter().map(ColumnDefinition::to_json).collect() };

    json!({
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": list_meta(opts),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The column definitions of `kind`'s table, in cell order.
/// Kinds without a table of their own get NAME and AGE, as in [`table_for`].
pub fn column_definitions(kind: &str) -> &'static [ColumnDefinition] {
    printer_for(kind).columns
}

/// Whether `kind` has a table of its own rather than the default NAME and AGE.
pub fn has_dedicated_table(kind: &str) -> bool {
    dedicated_printer(kind).is_some()
}

/// The table's `ListMeta`. Upstream omits empty fields, and so does this.
fn list_meta(opts: &TableOptions) -> Value {
    let mut meta = Map::new();
    if let Some(rv) = opts.list_resource_version.as_deref().filter(|s| !s.is_empty()) {
        meta.insert("resourceVersion".to_string(), Value::from(rv));
    }
    if let Some(token) = opts.continue_token.as_deref().filter(|s| !s.is_empty()) {
        meta.insert("continue".to_string(), Value::from(token));
    }
    if let Some(remaining) = opts.remaining {
        meta.insert("remainingItemCount".to_string(), Value::from(remaining));
    }
    Value::Object(meta)
}

/// The cells of one row, and the row's conditions when it has any.
struct Row {
    cells: Vec<Value>,
    /// Upstream marks rows of finished pods with a `Completed` condition.
    conditions: Option<Value>,
}

impl Row {
    fn new(cells: Vec<Value>) -> Self {
        Row { cells, conditions: None }
    }

    fn into_json(self, object: &Value, include: IncludeObject) -> Value {
        let mut row = Map::new();
        row.insert("cells".to_string(), Value::Array(self.cells));
        if let Some(conditions) = self.conditions {
            row.insert("conditions".to_string(), conditions);
        }
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                row.insert("object".to_string(), partial_object_metadata(object));
            }
            IncludeObject::Object => {
                row.insert("object".to_string(), object.clone());
            }
        }
        Value::Object(row)
    }
}

/// The object's metadata, whole (labels, annotations, owner references, managed fields),
/// as a `PartialObjectMetadata`, which is what upstream puts in rows by default.
fn partial_object_metadata(object: &Value) -> Value {
    let metadata = fields::get(object, &["metadata"])
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": TABLE_API_VERSION,
        "metadata": metadata,
    })
}

/// Builds the cells of one object's row. Every printer returns exactly as many cells
/// as its columns, wide ones included.
type RowFn = fn(&Value, UnixNanos) -> Row;

struct Printer {
    columns: &'static [ColumnDefinition],
    row: RowFn,
}

const DEFAULT_COLUMNS: &[ColumnDefinition] = &[NAME_COLUMN, AGE_COLUMN];

fn default_row(object: &Value, now: UnixNanos) -> Row {
    Row::new(vec![Value::from(fields::name(object)), Value::from(time::since(fields::creation_timestamp(object), now))])
}

fn printer_for(kind: &str) -> Printer {
    dedicated_printer(kind).unwrap_or(Printer { columns: DEFAULT_COLUMNS, row: default_row })
}

fn dedicated_printer(kind: &str) -> Option<Printer> {
    let (columns, row): (&'static [ColumnDefinition], RowFn) = match kind {
        "Pod" => (pod::COLUMNS, pod::row),
        "Node" => (core::NODE_COLUMNS, core::node_row),
        "Namespace" => (core::NAMESPACE_COLUMNS, core::namespace_row),
        "Secret" => (core::SECRET_COLUMNS, core::secret_row),
        "ConfigMap" => (core::CONFIG_MAP_COLUMNS, core::config_map_row),
        "ServiceAccount" => (core::SERVICE_ACCOUNT_COLUMNS, core::service_account_row),
        "Event" => (core::EVENT_COLUMNS, core::event_row),
        "Service" => (network::SERVICE_COLUMNS, network::service_row),
        "Endpoints" => (network::ENDPOINTS_COLUMNS, network::endpoints_row),
        "EndpointSlice" => (network::ENDPOINT_SLICE_COLUMNS, network::endpoint_slice_row),
        "Deployment" => (apps::DEPLOYMENT_COLUMNS, apps::deployment_row),
        "ReplicaSet" => (apps::REPLICA_SET_COLUMNS, apps::replica_set_row),
        "Lease" => (lease::LEASE_COLUMNS, lease::lease_row),
        _ => return None,
    };
    Some(Printer { columns, row })
}
