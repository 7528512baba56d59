//! Field selectors: the `fieldSelector` query parameter, such as
//! `metadata.name=web,spec.nodeName!=node1`.
//!
//! The syntax and matching rules are upstream's (`k8s.io/apimachinery/pkg/fields`):
//! comma-separated terms, each `field=value`, `field==value` or `field!=value`, ANDed.
//! In values, `\`, `,` and `=` must be escaped with a backslash; fields have no escaping
//! and end at the first operator. Nothing is trimmed: `a = b` compares field `a ` with
//! value ` b`, as upstream. Which fields a resource supports is the API server's business,
//! not this module's.

use std::fmt;
use std::str::FromStr;

use super::SelectorError;

/// How a [`FieldRequirement`] compares a field's value with its own.
///
/// Upstream accepts `==` as a spelling of `=` and does not remember which was used, so
/// neither does this type; both print as `=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FieldOperator {
    /// `field=value` or `field==value`: the field has exactly this value.
    Equals,
    /// `field!=value`: the field has another value.
    NotEquals,
}

impl FieldOperator {
    /// The operator as written in the canonical string form.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        }
    }
}

impl fmt::Display for FieldOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One term of a field selector: a field path, an operator and an unescaped value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    field: String,
    operator: FieldOperator,
    value: String,
}

impl FieldRequirement {
    /// Builds a term. Upstream does not validate field paths or values when parsing, and
    /// neither does this; `value` is the plain value, not its escaped form.
    pub fn new(field: impl Into<String>, operator: FieldOperator, value: impl Into<String>) -> FieldRequirement {
        FieldRequirement { field: field.into(), operator, value: value.into() }
    }

    /// The field path, such as `metadata.name` or `spec.nodeName`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// How the field's value is compared with [`FieldRequirement::value`].
    pub fn operator(&self) -> FieldOperator {
        self.operator
    }

    /// The value, with escapes resolved.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Tells whether an object whose field has the value `actual` satisfies this term.
    ///
    /// An absent field (`None`) counts as the empty string, as upstream's `Fields.Get`
    /// does, so `spec.nodeName=` selects unscheduled pods and `spec.nodeName!=` the others.
    pub fn matches_value(&self, actual: Option<&str>) -> bool {
        let actual = actual.unwrap_or("");
        match self.operator {
            FieldOperator::Equals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    /// Prints `field=value` or `field!=value`, with the value escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.field, self.operator, escape_value(&self.value))
    }
}

/// A parsed field selector: the AND of its [`FieldRequirement`]s.
///
/// The empty selector (no terms, also [`Default`]) matches every object. Terms are kept
/// sorted by their string form, as upstream sorts the terms of the input, so that the
/// string form is canonical and equal selectors compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object; the same as [`Default::default`].
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses the string form, such as `metadata.name=web,status.phase!=Running`.
    ///
    /// Empty terms are skipped (so `""` and `","` select everything), a term is split at
    /// the first `!=`, `==` or `=`, and the value's escapes are resolved. Errors carry
    /// upstream's messages.
    pub fn parse(selector: &str) -> Result<FieldSelector, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(selector) {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw_value)) = split_term(term) else {
                return Err(SelectorError::FieldTerm { selector: selector.to_owned(), term: term.to_owned() });
            };
            requirements.push(FieldRequirement {
                field: field.to_owned(),
                operator,
                value: unescape_value(raw_value)?,
            });
        }
        Ok(requirements.into_iter().collect())
    }

    /// The terms, in canonical order.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Tells whether this selector places no restriction.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Tells whether an object satisfies every term. `get` returns the value of a field
    /// path such as `metadata.name` for the object, or `None` when it has none (which
    /// counts as the empty string, see [`FieldRequirement::matches_value`]).
    ///
    /// `get` may return owned or borrowed strings, whichever is convenient.
    pub fn matches<S: AsRef<str>>(&self, get: impl Fn(&str) -> Option<S>) -> bool {
        self.requirements.iter().all(|requirement| {
            let actual = get(&requirement.field);
            requirement.matches_value(actual.as_ref().map(AsRef::as_ref))
        })
    }

    /// Returns the value that `field` must equal for this selector to match, if a `=` or
    /// `==` term requires one, as upstream's `RequiresExactMatch`. The API server uses it
    /// to narrow a list through an index before matching, for example to the pods of one
    /// node for `spec.nodeName=node1`.
    pub fn value_for(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.operator == FieldOperator::Equals && r.field == field)
            .map(|r| r.value.as_str())
    }
}

impl FromIterator<FieldRequirement> for FieldSelector {
    /// Builds the AND of the terms, in canonical order.
    fn from_iter<I: IntoIterator<Item = FieldRequirement>>(iter: I) -> FieldSelector {
        let mut requirements: Vec<FieldRequirement> = iter.into_iter().collect();
        requirements.sort_by_cached_key(ToString::to_string);
        FieldSelector { requirements }
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<FieldSelector, SelectorError> {
        FieldSelector::parse(s)
    }
}

impl fmt::Display for FieldSelector {
    /// Prints the canonical string form: terms joined by commas, values escaped. It parses
    /// back to an equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

/// Escapes a value for a field selector string: `\` becomes `\\`, `,` becomes `\,` and
/// `=` becomes `\=`. Use it when building a selector string from arbitrary values.
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Resolves the escapes of a field selector value. Only `\\`, `\,` and `\=` are escapes;
/// any other backslash, and any unescaped `,` or `=`, is an error, as upstream.
pub fn unescape_value(raw: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('\\' | ',' | '=')) => out.push(escaped),
                Some(other) => {
                    return Err(SelectorError::InvalidEscapeSequence(format!("\\{other}")));
                }
                None => return Err(SelectorError::InvalidEscapeSequence("\\".to_owned())),
            },
            ',' | '=' => return Err(SelectorError::UnescapedRune(c)),
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Splits a selector at the commas that are not escaped. A backslash always protects the
/// character after it here; whether the escape is a valid one is judged later, on the
/// value. The empty selector has no terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in selector.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at the first operator, trying `!=` before `==` before `=` at each
/// position so that `a==b` does not leave `=b` as the value. Returns the field, the
/// operator and the still-escaped value.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] =
        [("!=", FieldOperator::NotEquals), ("==", FieldOperator::Equals), ("=", FieldOperator::Equals)];
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        OPERATORS
            .iter()
            .find_map(|&(text, operator)| rest.strip_prefix(text).map(|value| (&term[..i], operator, value)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn parse_err(s: &str) -> String {
        match FieldSelector::parse(s) {
            Ok(sel) => panic!("{s:?} should not parse, got {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn matches(selector: &str, object: &[(&str, &str)]) -> bool {
        let object = fields(object);
        parse(selector).matches(|field| object.get(field).cloned())
    }

    #[test]
    fn parses_terms() {
        let selector = parse("metadata.name=web,spec.nodeName!=node1,status.phase==Running");
        let terms: Vec<(&str, FieldOperator, &str)> =
            selector.requirements().iter().map(|r| (r.field(), r.operator(), r.value())).collect();
        assert_eq!(
            terms,
            vec![
                ("metadata.name", FieldOperator::Equals, "web"),
                ("spec.nodeName", FieldOperator::NotEquals, "node1"),
                ("status.phase", FieldOperator::Equals, "Running"),
            ]
        );
        assert_eq!(selector.to_string(), "metadata.name=web,spec.nodeName!=node1,status.phase=Running");
    }

    #[test]
    fn good_and_bad_strings() {
        // Upstream's TestSelectorParse good strings.
        for input in [
            "",
            ",",
            "x=a,y=b,z=c",
            "x!=a,y=b",
            "x=",
            "x= ",
            "x=,z= ",
            "x= ,z= ",
            "x==a",
            "=a",
            "x=a\\,b",
            "x=a\\=b",
            "x=a\\\\b",
            "x=a!b",
            "x=a!",
            "x!=a\\=",
            // Field values have no character restrictions, unlike label values.
            "x=a||y",
        ] {
            assert!(FieldSelector::parse(input).is_ok(), "{input:?}");
        }
        for input in
            ["x", "x=a,y", "x=a==b", "x=a=b", "x==a==b", "x=a\\", "x=a\\b", "x=a\\!", "x!=a,b", "x!==a", "x=a\\,b\\"]
        {
            assert!(FieldSelector::parse(input).is_err(), "{input:?} should fail");
        }
    }

    #[test]
    fn empty_selects_everything() {
        assert!(parse("").is_empty());
        assert!(parse(",,").is_empty());
        assert!(FieldSelector::everything().is_empty());
        assert!(matches("", &[]));
        assert!(!parse("a=b").is_empty());
    }

    #[test]
    fn escaping() {
        let selector = parse("name=a\\,b");
        assert_eq!(selector.value_for("name"), Some("a,b"));
        assert_eq!(selector.to_string(), "name=a\\,b");
        assert!(matches("name=a\\,b", &[("name", "a,b")]));

        let selector = parse("x=\\\\\\=\\,,y=1");
        assert_eq!(selector.value_for("x"), Some("\\=,"));
        assert_eq!(selector.value_for("y"), Some("1"));
        assert_eq!(selector.to_string(), "x=\\\\\\=\\,,y=1");

        assert_eq!(escape_value("a\\b,c=d!e"), "a\\\\b\\,c\\=d!e");
        assert_eq!(unescape_value("a\\\\b\\,c\\=d!e"), Ok("a\\b,c=d!e".to_owned()));
        for value in ["", "plain", "\\", ",", "=", "a,b=c\\d", "é\\ü"] {
            assert_eq!(unescape_value(&escape_value(value)).as_deref(), Ok(value));
        }
    }

    #[test]
    fn error_messages_match_upstream() {
        assert_eq!(parse_err("x"), "invalid selector: 'x'; can't understand 'x'");
        assert_eq!(parse_err("a=b,foo"), "invalid selector: 'a=b,foo'; can't understand 'foo'");
        assert_eq!(parse_err("x=a\\b"), "invalid field selector: invalid escape sequence: \\b");
        assert_eq!(parse_err("x=a\\"), "invalid field selector: invalid escape sequence: \\");
        assert_eq!(parse_err("x=a=b"), "invalid field selector: unescapedRune character in value: 61");
        // The escaped comma does not end the term, so the value `a\,b=c` has an unescaped `=`.
        assert_eq!(parse_err("x=a\\,b=c"), "invalid field selector: unescapedRune character in value: 61");
    }

    #[test]
    fn fields_end_at_the_first_operator() {
        let selector = parse("a!b=c");
        assert_eq!(selector.requirements()[0].field(), "a!b");
        let selector = parse("a\\=b");
        assert_eq!(selector.requirements()[0].field(), "a\\");
        assert_eq!(selector.requirements()[0].value(), "b");
        let selector = parse(" a = b ");
        assert_eq!(selector.requirements()[0].field(), " a ");
        assert_eq!(selector.requirements()[0].value(), " b ");
    }

    #[test]
    fn matching() {
        assert!(matches("metadata.name=web", &[("metadata.name", "web")]));
        assert!(matches("metadata.name==web", &[("metadata.name", "web")]));
        assert!(!matches("metadata.name=web", &[("metadata.name", "api")]));
        assert!(!matches("metadata.name=web", &[]));
        assert!(matches("metadata.name!=web", &[("metadata.name", "api")]));
        assert!(matches("metadata.name!=web", &[]));
        assert!(!matches("metadata.name!=web", &[("metadata.name", "web")]));
        // An absent field is the empty string.
        assert!(matches("spec.nodeName=", &[]));
        assert!(!matches("spec.nodeName!=", &[]));
        assert!(matches("spec.nodeName!=", &[("spec.nodeName", "n1")]));
        assert!(matches("a=1,b!=2", &[("a", "1"), ("b", "3")]));
        assert!(!matches("a=1,b!=2", &[("a", "1"), ("b", "2")]));
        assert!(!matches("a=1,a=2", &[("a", "1")]));

        // The getter may return borrowed strings too.
        let selector = parse("metadata.namespace=default");
        assert!(selector.matches(|field| (field == "metadata.namespace").then_some("default")));
    }

    #[test]
    fn value_for_finds_equality_terms_only() {
        let selector = parse("spec.nodeName=node1,metadata.name!=x,status.phase==Running");
        assert_eq!(selector.value_for("spec.nodeName"), Some("node1"));
        assert_eq!(selector.value_for("status.phase"), Some("Running"));
        assert_eq!(selector.value_for("metadata.name"), None);
        assert_eq!(selector.value_for("metadata.namespace"), None);
        assert_eq!(parse("spec.nodeName=").value_for("spec.nodeName"), Some(""));
    }

    #[test]
    fn string_form_is_canonical() {
        for (input, expected) in
            [("b=1,a=2", "a=2,b=1"), ("a==z,a=b", "a=b,a=z"), ("x!=y,,x=y", "x!=y,x=y"), ("name=a\\,b", "name=a\\,b")]
        {
            let selector = parse(input);
            assert_eq!(selector.to_string(), expected, "{input:?}");
            assert_eq!(parse(expected), selector, "{input:?} reparsed");
        }
        let built: FieldSelector = [
            FieldRequirement::new("b", FieldOperator::Equals, "x,y"),
            FieldRequirement::new("a", FieldOperator::NotEquals, ""),
        ]
        .into_iter()
        .collect();
        assert_eq!(built.to_string(), "a!=,b=x\\,y");
        assert_eq!(parse(&built.to_string()), built);
    }
}
