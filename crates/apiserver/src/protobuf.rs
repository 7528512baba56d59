//! Request bodies in the Kubernetes protobuf encoding
//! (`Content-Type: application/vnd.kubernetes.protobuf`), decoded to the JSON
//! the same request would have carried, so the rest of the server handles
//! them like JSON bodies.
//!
//! kubectl 1.32 and later send protobuf for writes made through the typed
//! clientset (`kubectl create secret|configmap|deployment|service|...`,
//! `create token`, `drain`'s evictions, `auth can-i`) and does not retry a
//! `415` as JSON, so these bodies must be understood.
//!
//! The body is `k8s\0` followed by a `runtime.Unknown`: `{1: TypeMeta
//! {1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding, 4: contentType}`,
//! where `raw` is the object's own message. The object is decoded with a
//! hand-written declarative schema (module `schema`) by a small wire
//! reader (module `wire`).
//!
//! What comes out is what Go's `encoding/json` would write for the Go object
//! upstream decodes: Go's protobuf encoder writes every non-pointer field, so
//! zero scalars of `omitempty` fields are dropped (no `"namespace": ""`),
//! while pointer fields (`replicas: 0`), fields without `omitempty`
//! (`containerPort`) and struct fields (`"strategy": {}`, `"resources": {}`,
//! `"creationTimestamp": null`) are kept whenever present. A repeated or map
//! field with no entries on the wire is absent, not `null`. `bytes` become
//! base64 strings; `schema::Ty` documents the special types (`Time`,
//! `IntOrString`, `Quantity`...).
//!
//! Fields the schema does not know are skipped by wire type and reported in
//! [`Decoded::unknown_fields`] as paths such as `spec.template.spec.#99`
//! (`#` and the field number in place of a name), so the caller can reject
//! them under `fieldValidation=Strict` or warn under `Warn`. (Upstream's
//! protobuf decoder drops unknown fields silently whatever the validation.)

mod decode;
mod schema;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::Value;

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The deepest nesting of messages (envelope, object, its fields...) the
/// decoder follows before giving up with [`ProtobufError::TooDeep`]. The
/// deepest built-in schema needs about 15 levels; embedded envelopes in
/// `RawExtension` fields could otherwise nest without bound.
pub const MAX_DEPTH: usize = 64;

/// A decoded request body.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The object as JSON, `apiVersion` and `kind` (from the envelope)
    /// included.
    pub object: Value,
    pub api_version: String,
    pub kind: String,
    /// Paths of fields the schema does not know, in wire order, such as
    /// `metadata.#42` or `spec.ports[1].#9`.
    pub unknown_fields: Vec<String>,
}

/// Why a body could not be decoded.
///
/// Answer [`ProtobufError::UnknownKind`] with `415 Unsupported Media Type`:
/// the server has no protobuf schema for that kind, as upstream answers 415
/// to protobuf for kinds that have none (custom resources), and the client
/// can send JSON instead. Answer every other error with `400 Bad Request`,
/// as upstream answers a body it cannot decode. [`ProtobufError::http_status`]
/// says which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("the body does not start with the Kubernetes protobuf prefix \"k8s\\0\"")]
    MissingMagic,
    #[error("truncated protobuf data at {path}")]
    Truncated { path: String },
    #[error("protobuf varint longer than 10 bytes at {path}")]
    VarintOverflow { path: String },
    #[error("invalid protobuf tag {tag} at {path}")]
    InvalidTag { path: String, tag: u64 },
    #[error("unsupported protobuf wire type {wire_type} at {path}")]
    UnsupportedWireType { path: String, wire_type: u8 },
    #[error("{path}: expected protobuf wire type {expected}, found {found}")]
    WireTypeMismatch { path: String, expected: u8, found: u8 },
    #[error("{path}: string is not valid UTF-8")]
    InvalidUtf8 { path: String },
    #[error("{path}: {reason}")]
    InvalidValue { path: String, reason: String },
    #[error("protobuf messages nested deeper than {max} levels at {path}")]
    TooDeep { path: String, max: usize },
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    #[error("unsupported content type {0:?} inside the protobuf envelope")]
    UnsupportedContentType(String),
    #[error("no protobuf decoding for apiVersion {api_version:?}, kind {kind:?}")]
    UnknownKind { api_version: String, kind: String },
}

impl ProtobufError {
    /// The HTTP status to answer with: 415 for [`ProtobufError::UnknownKind`],
    /// 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            ProtobufError::UnknownKind { .. } => 415,
            _ => 400,
        }
    }
}

/// Decodes a protobuf request body. The envelope's `apiVersion` and `kind`
/// select the schema.
pub fn decode(body: &[u8]) -> Result<Decoded, ProtobufError> {
    decode_inner(body, None)
}

/// [`decode()`], with `api_version` and `kind` (those the request's endpoint
/// serves) standing in for an envelope that leaves them empty, as upstream
/// does. An envelope naming another kind is not rejected here: compare
/// [`Decoded::kind`] with what the endpoint expects.
pub fn decode_expecting(body: &[u8], api_version: &str, kind: &str) -> Result<Decoded, ProtobufError> {
    decode_inner(body, Some((api_version, kind)))
}

fn decode_inner(body: &[u8], defaults: Option<(&str, &str)>) -> Result<Decoded, ProtobufError> {
    let mut decoder = decode::Decoder::default();
    let envelope = decoder.envelope(body, defaults, 0)?;
    Ok(Decoded {
        object: Value::Object(envelope.object),
        api_version: envelope.api_version,
        kind: envelope.kind,
        unknown_fields: decoder.unknown,
    })
}

/// Whether bodies of this `apiVersion` and `kind` can be decoded.
pub fn is_supported(api_version: &str, kind: &str) -> bool {
    schema::lookup(api_version, kind).is_some()
}

/// The `(apiVersion, kind)` pairs [`decode()`] handles (besides
/// `DeleteOptions`, accepted in each of their group versions).
pub fn supported_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    schema::KINDS.iter().map(|k| (k.api_version, k.kind))
}
