//! Validation of label keys (qualified names) and label values.
//!
//! These are upstream's `IsQualifiedName`, `IsValidLabelValue` and `IsDNS1123Subdomain`
//! from `k8s.io/apimachinery/pkg/util/validation`. Each returns the list of reasons a
//! string is invalid (empty when it is valid), worded like upstream, because the same
//! rules and messages apply when an object's `metadata.labels` are validated.
//!
//! The rules are written out by hand instead of with regular expressions: they are
//! simple character classes, and a hand-written check needs no dependency.

/// The longest label value, and the longest name part of a qualified name, in bytes.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;

/// The longest name part of a qualified name (a label key without its prefix), in bytes.
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;

/// The longest DNS-1123 subdomain, such as the prefix of a label key, in bytes.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character";
const QUALIFIED_NAME_EXAMPLES: &[&str] = &["MyName", "my.name", "123-abc"];

const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of \
     alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
     character";
const LABEL_VALUE_EXAMPLES: &[&str] = &["MyValue", "my_value", "12345"];

const DNS1123_SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower \
     case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
     character";

/// Returns why `value` is not a qualified name, the format of label keys: an optional
/// DNS-1123 subdomain prefix and `/`, then a name of at most 63 characters from
/// `[A-Za-z0-9-_.]` that starts and ends with an alphanumeric character.
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut parts = value.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, _) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => {
            // More than one slash: upstream gives one overall message instead of
            // judging the parts, because it cannot tell which slash was meant.
            errors.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' \
                 (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, QUALIFIED_NAME_EXAMPLES)
            ));
            return errors;
        }
    };

    match prefix {
        Some("") => errors.push("prefix part must be non-empty".to_owned()),
        Some(prefix) => errors.extend(dns1123_subdomain_errors(prefix).into_iter().map(|e| format!("prefix part {e}"))),
        None => {}
    }

    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errors.push(format!("name part {}", max_len_error(QUALIFIED_NAME_MAX_LENGTH)));
    }
    if !is_qualified_name_part(name) {
        errors.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR_MSG, QUALIFIED_NAME_FMT, QUALIFIED_NAME_EXAMPLES)
        ));
    }
    errors
}

/// Returns why `value` is not a label value: at most 63 characters, either empty or
/// from `[A-Za-z0-9-_.]` starting and ending with an alphanumeric character.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errors.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errors.push(regex_error(LABEL_VALUE_ERR_MSG, LABEL_VALUE_FMT, LABEL_VALUE_EXAMPLES));
    }
    errors
}

/// Returns why `value` is not a DNS-1123 subdomain: at most 253 characters of
/// dot-separated labels, each of lowercase alphanumerics and `-`, starting and ending
/// with an alphanumeric character.
pub fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errors.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !value.split('.').all(is_dns1123_label) {
        errors.push(regex_error(DNS1123_SUBDOMAIN_ERR_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errors
}

/// Matches `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Matches `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, one dot-free label of a subdomain.
fn is_dns1123_label(s: &str) -> bool {
    let lower_alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            lower_alnum(first) && lower_alnum(last) && bytes.iter().all(|b| lower_alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// Upstream's `MaxLenError`.
fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Upstream's `RegexError`, including its odd spacing (`'MyName',  or 'my.name', `),
/// so that messages are byte-for-byte what Kubernetes users have seen before.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = msg.to_owned();
    if !examples.is_empty() {
        out.push_str(" (e.g. ");
        for (i, example) in examples.iter().enumerate() {
            if i > 0 {
                out.push_str(" or ");
            }
            out.push('\'');
            out.push_str(example);
            out.push_str("', ");
        }
        out.push_str("regex used for validation is '");
    } else {
        out.push_str(" (regex used for validation is '");
    }
    out.push_str(fmt);
    out.push_str("')");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        for good in [
            "x",
            "1234",
            "1foo",
            "a.b_c-d",
            "A",
            "example.com/MyName",
            "this-is-a-dns.domain.com/key-with-dash",
            "0.1.2.domain/99",
            &"a".repeat(63),
            &format!("{}/a", "a".repeat(253)),
        ] {
            assert!(qualified_name_errors(good).is_empty(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a b",
            "a/b/c",
            "/a",
            "a/",
            "Example.com/a",
            "ex_ample.com/a",
            "app:monolith",
            "*bar",
            "é",
            &"a".repeat(64),
            &format!("{}/a", "a".repeat(254)),
        ] {
            assert!(!qualified_name_errors(bad).is_empty(), "{bad}");
        }
    }

    #[test]
    fn qualified_name_messages_match_upstream() {
        assert_eq!(
            qualified_name_errors("*bar"),
            vec![
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
                 start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  \
                 or '123-abc', regex used for validation is \
                 '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
        assert_eq!(qualified_name_errors(&"a".repeat(64)), vec!["name part must be no more than 63 characters"]);
        let errors = qualified_name_errors("a/b/c");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("a qualified name must consist of"));
        assert!(errors[0].ends_with("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
        assert_eq!(qualified_name_errors("/a"), vec!["prefix part must be non-empty"]);
        let errors = qualified_name_errors("a/");
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0], "name part must be non-empty");
        let errors = qualified_name_errors("app.kubernetes_io/name");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("prefix part a lowercase RFC 1123 subdomain must consist"));
        assert!(errors[0].contains("(e.g. 'example.com', regex used for validation is"));
    }

    #[test]
    fn label_values() {
        for good in ["", "a", "MyValue", "my_value", "12345", "a.b-c_d", &"v".repeat(63)] {
            assert!(label_value_errors(good).is_empty(), "{good:?}");
        }
        for bad in ["-1", "a-", "_a", "a b", "a/b", "a@b", &"v".repeat(64)] {
            assert!(!label_value_errors(bad).is_empty(), "{bad:?}");
        }
        assert_eq!(label_value_errors(&"v".repeat(64)), vec!["must be no more than 63 characters"]);
    }

    #[test]
    fn subdomains() {
        for good in ["a", "example.com", "0.1.2.domain", "a-b.c-d"] {
            assert!(dns1123_subdomain_errors(good).is_empty(), "{good}");
        }
        for bad in ["", ".", "a.", ".a", "a..b", "-a", "a-", "A", "a_b"] {
            assert!(!dns1123_subdomain_errors(bad).is_empty(), "{bad}");
        }
    }
}
