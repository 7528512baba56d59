//! Validation helpers shared by the strategies, with upstream's messages.

use rkube_apimachinery::selector::validation::{dns1123_subdomain_errors, label_value_errors, qualified_name_errors};
use serde_json::Value;

use crate::error::FieldError;

const DNS1123_LABEL_MAX: usize = 63;
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Errors for a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters),
/// with upstream's wording.
pub fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errs.push(format!("must be no more than {DNS1123_LABEL_MAX} characters"));
    }
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.last().is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and \
             end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        );
    }
    errs
}

/// Which rule an object's name follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    Subdomain,
    Label,
}

/// Validates `metadata`: name (or generateName), namespace, labels and annotations.
pub fn validate_metadata(obj: &Value, rule: NameRule, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    if name.is_empty() {
        if meta["generateName"].as_str().unwrap_or("").is_empty() {
            errs.push(FieldError::required("metadata.name", "name or generateName is required"));
        }
    } else {
        let problems = match rule {
            NameRule::Subdomain => dns1123_subdomain_errors(name),
            NameRule::Label => dns1123_label_errors(name),
        };
        for p in problems {
            errs.push(FieldError::invalid("metadata.name", &Value::from(name), &p));
        }
    }
    if namespaced && meta["namespace"].as_str().unwrap_or("").is_empty() {
        errs.push(FieldError::required("metadata.namespace", ""));
    }
    errs.extend(validate_labels(&meta["labels"], "metadata.labels"));
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut total = 0;
        for (k, v) in annotations {
            for p in qualified_name_errors(k) {
                errs.push(FieldError::invalid("metadata.annotations", &Value::from(k.as_str()), &p));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: format!(
                    "metadata.annotations: Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"
                ),
            });
        }
    }
    errs
}

/// Validates a label map at `path`.
pub fn validate_labels(labels: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(labels) = labels.as_object() {
        for (k, v) in labels {
            for p in qualified_name_errors(k) {
                errs.push(FieldError::invalid(path, &Value::from(k.as_str()), &p));
            }
            let value = v.as_str().unwrap_or("");
            for p in label_value_errors(value) {
                errs.push(FieldError::invalid(format!("{path}[{k}]"), &Value::from(value), &p));
            }
        }
    }
    errs
}

/// Checks a port number field.
pub fn validate_port(value: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match value.as_i64() {
        Some(p) if (1..=65535).contains(&p) => {}
        _ => errs.push(FieldError::invalid(path, value, "must be between 1 and 65535, inclusive")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(dns1123_label_errors("my-nginx").is_empty());
        assert!(!dns1123_label_errors("My_Nginx").is_empty());
        assert!(!dns1123_label_errors(&"a".repeat(64)).is_empty());
        let errs = validate_metadata(
            &json!({"metadata": {"name": "Bad_Name", "namespace": "default"}}),
            NameRule::Subdomain,
            true,
        );
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].message.starts_with("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
        );
    }

    #[test]
    fn labels() {
        let errs = validate_labels(&json!({"run": "my-nginx", "bad key!": "x", "ok": "bad value!"}), "metadata.labels");
        assert_eq!(errs.len(), 2);
    }
}
