//! The API's errors and the one place where every failure becomes a Kubernetes `Status`.
//!
//! Handlers return [`ApiError`]; [`ApiError::to_status`] renders it. Store errors convert
//! through `From`, so no handler decides on its own which HTTP code a store failure gets.

use http::StatusCode;
use serde_json::{Value, json};

/// Which object an error is about, as upstream's `StatusDetails` reports it.
#[derive(Clone, Debug, Default)]
pub struct Target {
    pub group: String,
    /// The resource, plural and lower case (`pods`), as upstream puts it in `details.kind`.
    pub resource: String,
    pub name: String,
}

/// One invalid field, as in upstream's `field.Error`: a `StatusCause` of an Invalid status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueDuplicate`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// The field path, e.g. `metadata.name` or `spec.ports[0].port`.
    pub field: String,
    /// The whole message, as upstream prints it: `spec.ports[0].port: Invalid value: 0: must be between 1 and 65535`.
    pub message: String,
}

impl FieldError {
    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> FieldError {
        let field = field.into();
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError { reason: "FieldValueInvalid", message: format!("{field}: Invalid value: {shown}: {detail}"), field }
    }

    pub fn required(field: impl Into<String>, detail: &str) -> FieldError {
        let field = field.into();
        let message = if detail.is_empty() {
            format!("{field}: Required value")
        } else {
            format!("{field}: Required value: {detail}")
        };
        FieldError { reason: "FieldValueRequired", message, field }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> FieldError {
        let field = field.into();
        FieldError { reason: "FieldValueDuplicate", message: format!("{field}: Duplicate value: {value}"), field }
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> FieldError {
        let field = field.into();
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        FieldError {
            reason: "FieldValueNotSupported",
            message: format!("{field}: Unsupported value: {value}: supported values: {}", list.join(", ")),
            field,
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> FieldError {
        let field = field.into();
        FieldError { reason: "FieldValueForbidden", message: format!("{field}: Forbidden: {detail}"), field }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { message: String },
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{} {:?} not found", .0.resource_display(), .0.name)]
    NotFound(Target),
    /// A path that names no resource at all.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    #[error("{} {:?} already exists", .0.resource_display(), .0.name)]
    AlreadyExists(Target),
    #[error("Operation cannot be fulfilled on {} {:?}: {message}", .target.resource_display(), .target.name)]
    Conflict { target: Target, message: String },
    #[error("{message}")]
    Gone { message: String },
    #[error("{} {:?} is invalid: {}", qualified_kind(kind, &target.group), .target.name, join_causes(.causes))]
    Invalid { target: Target, kind: String, causes: Vec<FieldError> },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("the body of the request was in an unknown format - accepted media types include: {accepted}")]
    UnsupportedMediaType { accepted: String },
    #[error("the server cannot produce a response in any of the accepted formats")]
    NotAcceptable,
    #[error("the request body is too large: limit is {limit} bytes")]
    RequestEntityTooLarge { limit: usize },
    #[error("{message}")]
    Timeout { message: String },
    #[error("{message}")]
    Internal { message: String },
    #[error("{message}")]
    Unavailable { message: String },
}

/// `Service` or `Deployment.apps`, as upstream's `GroupKind.String()`.
fn qualified_kind(kind: &str, group: &str) -> String {
    if group.is_empty() { kind.to_owned() } else { format!("{kind}.{group}") }
}

fn join_causes(causes: &[FieldError]) -> String {
    if causes.len() == 1 {
        return causes[0].message.clone();
    }
    format!("[{}]", causes.iter().map(|c| c.message.as_str()).collect::<Vec<_>>().join(", "))
}

impl Target {
    pub fn new(group: &str, resource: &str, name: &str) -> Target {
        Target { group: group.to_owned(), resource: resource.to_owned(), name: name.to_owned() }
    }

    /// `pods` or `deployments.apps`, as upstream's messages print a `GroupResource`.
    fn resource_display(&self) -> String {
        if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) }
    }
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::Internal { message: message.into() }
    }

    pub fn invalid(target: Target, kind: &str, causes: Vec<FieldError>) -> ApiError {
        ApiError::Invalid { target, kind: kind.to_owned(), causes }
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoSuchPath => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists(_) | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ApiError::RequestEntityTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `reason` field, from upstream's `metav1.StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::NotFound(_) | ApiError::NoSuchPath => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Gone { .. } => "Expired",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::NotAcceptable => "NotAcceptable",
            ApiError::RequestEntityTooLarge { .. } => "RequestEntityTooLarge",
            ApiError::Timeout { .. } => "Timeout",
            ApiError::Internal { .. } => "InternalError",
            ApiError::Unavailable { .. } => "ServiceUnavailable",
        }
    }

    /// The whole `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound(t) | ApiError::AlreadyExists(t) | ApiError::Conflict { target: t, .. } => {
                Some(target_details(t, None))
            }
            ApiError::Invalid { target, kind, causes } => {
                let mut d = target_details(target, Some(kind));
                d["causes"] = causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                Some(d)
            }
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

fn target_details(t: &Target, kind: Option<&str>) -> Value {
    let mut d = json!({ "name": t.name, "kind": kind.unwrap_or(&t.resource) });
    if !t.group.is_empty() {
        d["group"] = json!(t.group);
    }
    d
}

impl From<rkube_store::Error> for ApiError {
    fn from(e: rkube_store::Error) -> ApiError {
        use rkube_store::Error as S;
        match e {
            // Callers that know the object turn these into NotFound/AlreadyExists/Conflict with a
            // proper target first (see `storage.rs`); reaching here means a store key leaked out.
            S::NotFound { key } => ApiError::NotFound(Target { name: key, ..Default::default() }),
            S::AlreadyExists { key } => ApiError::AlreadyExists(Target { name: key, ..Default::default() }),
            S::Conflict { key, .. } => ApiError::Conflict {
                target: Target { name: key, ..Default::default() },
                message: "the object has been modified; please apply your changes to the latest version and try again"
                    .into(),
            },
            S::Compacted { .. } => ApiError::Gone { message: "too old resource version".into() },
            S::FutureRevision { requested, current } => {
                ApiError::Timeout { message: format!("Too large resource version: {requested}, current: {current}") }
            }
            S::ValueTooLarge { .. } => ApiError::RequestEntityTooLarge { limit: rkube_store::MAX_VALUE_BYTES },
            S::InvalidKey { reason, .. } => ApiError::bad_request(format!("invalid object name: {reason}")),
            S::InvalidContinue { reason } => ApiError::bad_request(format!("invalid continue token: {reason}")),
            S::Unavailable(m) => ApiError::Unavailable { message: format!("storage unavailable: {m}") },
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_upstream() {
        let s = ApiError::NotFound(Target::new("apps", "deployments", "my-nginx")).to_status();
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments.apps \"my-nginx\" not found");
        assert_eq!(s["details"], json!({"name": "my-nginx", "group": "apps", "kind": "deployments"}));
    }

    #[test]
    fn invalid_lists_causes() {
        let e = ApiError::invalid(
            Target::new("", "services", "x"),
            "Service",
            vec![FieldError::invalid("spec.ports[0].port", &json!(0), "must be between 1 and 65535, inclusive")],
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(
            s["message"],
            "Service \"x\" is invalid: spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
        );
        assert_eq!(s["details"]["kind"], "Service");
        assert_eq!(s["details"]["causes"][0]["field"], "spec.ports[0].port");
    }
}
