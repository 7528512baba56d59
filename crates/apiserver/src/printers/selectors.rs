//! The string forms of label maps and label selectors that the SELECTOR columns show.
//!
//! These mirror `labels.FormatLabels` and `labels.Selector.String()` upstream, because
//! users copy these cells straight into `kubectl get -l`, so the syntax must be the one
//! kubectl parses.

use serde_json::{Map, Value};

use super::fields::{arr_at, obj_at, str_at};

/// `k1=v1,k2=v2` with keys sorted, or `<none>` for an empty or missing map,
/// like upstream's `labels.FormatLabels`.
pub(super) fn format_labels(labels: Option<&Map<String, Value>>) -> String {
    let mut pairs: Vec<(&str, &str)> =
        labels.into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort_unstable();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A `metav1.LabelSelector` that cannot be turned into a selector,
/// e.g. an `In` requirement without values or an unknown operator.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct InvalidSelector;

/// The selector string of a `metav1.LabelSelector` (`app=web,tier in (a,b),!canary`),
/// as upstream's `LabelSelectorAsSelector(s).String()` renders it: requirements sorted
/// by key, values of set requirements sorted.
///
/// A missing selector and an empty one both render as `""` here (upstream's
/// "nothing" and "everything" selectors both print as the empty string); callers
/// decide how to show that. Label key and value syntax is not validated: the object
/// was validated when it was written, and re-validating here could only turn a
/// listing into an error.
pub(super) fn label_selector_string(selector: Option<&Value>) -> Result<String, InvalidSelector> {
    let Some(selector) = selector else {
        return Ok(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    for (key, value) in obj_at(selector, &["matchLabels"]).into_iter().flatten() {
        let value = value.as_str().unwrap_or("");
        requirements.push((key.clone(), format!("{key}={value}")));
    }
    for expr in arr_at(selector, &["matchExpressions"]) {
        let key = str_at(expr, &["key"]);
        let mut values: Vec<&str> = arr_at(expr, &["values"]).iter().map(|v| v.as_str().unwrap_or("")).collect();
        values.sort_unstable();
        let rendered = match str_at(expr, &["operator"]) {
            op @ ("In" | "NotIn") => {
                if values.is_empty() {
                    return Err(InvalidSelector);
                }
                let word = if op == "In" { "in" } else { "notin" };
                format!("{key} {word} ({})", values.join(","))
            }
            "Exists" if values.is_empty() => key.to_string(),
            "DoesNotExist" if values.is_empty() => format!("!{key}"),
            _ => return Err(InvalidSelector),
        };
        requirements.push((key.to_string(), rendered));
    }
    // Stable, so that two requirements on one key keep their written order.
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(requirements.into_iter().map(|(_, r)| r).collect::<Vec<_>>().join(","))
}

/// Upstream's `metav1.FormatLabelSelector`: the selector string, `<none>` when it
/// selects by nothing, `<error>` when it is invalid. Used by the ReplicaSet table.
pub(super) fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s,
        Err(InvalidSelector) => "<error>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn labels_are_sorted_and_empty_is_none() {
        let labels = json!({"run": "my-nginx", "app": "web"});
        assert_eq!(format_labels(labels.as_object()), "app=web,run=my-nginx");
        assert_eq!(format_labels(json!({}).as_object()), "<none>");
        assert_eq!(format_labels(None), "<none>");
    }

    #[test]
    fn selectors_render_like_upstream() {
        let selector = json!({
            "matchLabels": {"tier": "frontend", "app": "guestbook"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "gpu", "operator": "Exists"}
            ]
        });
        assert_eq!(
            label_selector_string(Some(&selector)),
            Ok("app=guestbook,!canary,env in (dev,prod),gpu,tier=frontend,zone notin (b)".to_string())
        );
        assert_eq!(label_selector_string(Some(&json!({}))), Ok(String::new()));
        assert_eq!(label_selector_string(None), Ok(String::new()));
    }

    #[test]
    fn invalid_selectors_are_reported() {
        let no_values = json!({"matchExpressions": [{"key": "a", "operator": "In"}]});
        let bad_op = json!({"matchExpressions": [{"key": "a", "operator": "Like"}]});
        let exists_with_values = json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]});
        for s in [&no_values, &bad_op, &exists_with_values] {
            assert_eq!(label_selector_string(Some(s)), Err(InvalidSelector));
            assert_eq!(format_label_selector(Some(s)), "<error>");
        }
        assert_eq!(format_label_selector(None), "<none>");
    }
}
