//! The one error type shared by the three patch formats.

use serde_json::Value;

/// Why a patch could not be applied.
///
/// The messages follow the wording of upstream Kubernetes (`evanphx/json-patch` for JSON patch,
/// `k8s.io/apimachinery/pkg/util/mergepatch` for strategic merge patch) so that clients and
/// humans who know the real API server recognise them. Strategic-merge messages name the field
/// they are about (`spec.template.spec.containers: ...`), which upstream does not, because a
/// message without a location is hard to act on.
///
/// The API server turns these into `Status` responses: [`PatchError::is_bad_request`] tells which
/// ones upstream answers with `400 Bad Request` (the patch document itself is malformed); every
/// other variant is a well-formed patch that cannot apply to this object, which upstream answers
/// with `422 Unprocessable Entity`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// A JSON patch is not an array of well-formed RFC 6902 operations.
    #[error("invalid JSON patch: {reason}")]
    InvalidJsonPatch {
        /// What is wrong, naming the operation by its index.
        reason: String,
    },

    /// A JSON patch operation refers to a location the document does not have.
    #[error("{op} operation does not apply: {reason}")]
    JsonPatchNotApplicable {
        /// The operation's name (`add`, `remove`, ...).
        op: &'static str,
        /// What is missing or wrong, naming the JSON pointer.
        reason: String,
    },

    /// A JSON patch `test` operation found a different value.
    #[error("testing value {path} failed: test failed")]
    JsonPatchTestFailed {
        /// The JSON pointer that was tested.
        path: String,
    },

    /// The object or the strategic merge patch is not a JSON object.
    #[error("invalid JSON document")]
    InvalidJsonDocument,

    /// A `$deleteFromPrimitiveList/<field>` directive is malformed: its key has no field name,
    /// its value is not a list, or the list holds objects or lists.
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,

    /// A `$retainKeys` directive is not a list, or the patch sets a field the list omits.
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,

    /// A `$setElementOrder/<field>` directive is malformed: its key has no field name or its
    /// value is not a list.
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,

    /// A `$patch` directive has a value other than `replace`, `delete` or `merge`.
    #[error("{field}: unknown patch type: {directive} in map: {map}")]
    UnknownPatchDirective {
        /// Where the directive is, as a dotted field path.
        field: String,
        /// The directive's value, as JSON.
        directive: String,
        /// The map that carries the directive, as (possibly shortened) JSON.
        map: String,
    },

    /// A list that is merged element-wise has an element that is itself a list.
    #[error("{field}: lists of lists are not supported")]
    NoListOfLists {
        /// The list, as a dotted field path.
        field: String,
    },

    /// A list that is merged element-wise holds elements of different JSON types.
    #[error("{field}: list element types are not identical")]
    MixedListElementTypes {
        /// The list, as a dotted field path.
        field: String,
    },

    /// A list that is merged by a key holds an element that is not an object, or a list that is
    /// merged as a set of primitives holds objects.
    #[error("{field}: expected {expected}, but received {actual}")]
    UnexpectedListElement {
        /// The list, as a dotted field path.
        field: String,
        /// What the schema calls for (`a map`, `a primitive`).
        expected: &'static str,
        /// The JSON type that was found instead (`a string`, ...).
        actual: &'static str,
    },

    /// An element of a list that is merged by a key lacks that key.
    #[error("{field}: map: {element} does not contain declared merge key: {key}")]
    MissingMergeKey {
        /// The list, as a dotted field path.
        field: String,
        /// The element, as (possibly shortened) JSON.
        element: String,
        /// The merge key the schema declares for the list.
        key: String,
    },

    /// The list in the patch names its elements in an order that `$setElementOrder` contradicts,
    /// or names elements that `$setElementOrder` does not.
    #[error("{field}: the order in patch list: {patch} doesn't match $setElementOrder list: {order}")]
    SetElementOrderMismatch {
        /// The list, as a dotted field path.
        field: String,
        /// The patch list, as (possibly shortened) JSON.
        patch: String,
        /// The `$setElementOrder` list, as (possibly shortened) JSON.
        order: String,
    },
}

impl PatchError {
    /// Whether upstream answers this error with `400 Bad Request` rather than
    /// `422 Unprocessable Entity`.
    ///
    /// Upstream reserves 400 for patch documents that cannot be understood at all (a JSON patch
    /// that does not decode, the malformed-directive errors of strategic merge patch); a patch
    /// that is understood but does not fit the object is 422.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            PatchError::InvalidJsonPatch { .. }
                | PatchError::InvalidJsonDocument
                | PatchError::BadPatchFormatForPrimitiveList
                | PatchError::BadPatchFormatForRetainKeys
                | PatchError::BadPatchFormatForSetElementOrderList
                | PatchError::UnknownPatchDirective { .. }
        )
    }
}

/// The longest JSON excerpt an error message quotes. Patches come from clients and can be large;
/// a message that echoes a whole container spec is no easier to read than one that shows its
/// beginning.
const EXCERPT_CHARS: usize = 200;

/// Renders `value` as compact JSON for an error message, shortened to [`EXCERPT_CHARS`].
pub(crate) fn excerpt(value: &Value) -> String {
    let full = value.to_string();
    match full.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &full[..cut]),
        None => full,
    }
}

/// Names the JSON type of `value` with an article, for "expected X, but received Y" messages.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn excerpt_shortens_long_values_on_a_char_boundary() {
        let long = Value::String("é".repeat(500));
        let shown = excerpt(&long);
        assert!(shown.ends_with("..."));
        assert_eq!(shown.chars().count(), EXCERPT_CHARS + 3);
        assert_eq!(excerpt(&json!({"a": 1})), r#"{"a":1}"#);
    }

    #[test]
    fn bad_request_classification_matches_upstream() {
        assert!(PatchError::BadPatchFormatForRetainKeys.is_bad_request());
        assert!(PatchError::InvalidJsonDocument.is_bad_request());
        assert!(!PatchError::NoListOfLists { field: "x".into() }.is_bad_request());
        assert!(!PatchError::JsonPatchTestFailed { path: "/a".into() }.is_bad_request());
    }

    #[test]
    fn messages_read_like_upstream() {
        let e = PatchError::MissingMergeKey {
            field: "spec.containers".into(),
            element: r#"{"image":"nginx"}"#.into(),
            key: "name".into(),
        };
        assert_eq!(
            e.to_string(),
            r#"spec.containers: map: {"image":"nginx"} does not contain declared merge key: name"#
        );
        assert_eq!(
            PatchError::JsonPatchTestFailed { path: "/metadata/name".into() }.to_string(),
            "testing value /metadata/name failed: test failed"
        );
    }
}
