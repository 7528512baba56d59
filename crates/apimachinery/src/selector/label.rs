//! Label selectors: the `labelSelector` query parameter, `metav1.LabelSelector`, and
//! plain `matchLabels` maps such as a Service's `spec.selector`.
//!
//! The grammar, the validation and the matching rules are upstream's
//! (`k8s.io/apimachinery/pkg/labels/selector.go`):
//!
//! ```text
//! <selector-syntax>         ::= <requirement> | <requirement> "," <selector-syntax>
//! <requirement>             ::= [!] KEY [ <set-based-restriction> | <exact-match-restriction> ]
//! <set-based-restriction>   ::= "" | <inclusion-exclusion> <value-set>
//! <inclusion-exclusion>     ::= "in" | "notin"
//! <value-set>               ::= "(" <values> ")"
//! <values>                  ::= VALUE | VALUE "," <values>
//! <exact-match-restriction> ::= ["=" | "==" | "!=" | ">" | "<"] VALUE
//! ```
//!
//! KEY is a qualified name and VALUE a label value (see [`super::validation`]); the empty
//! string is a valid VALUE, and whitespace (space, tab, CR, LF) separates tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use super::SelectorError;
use super::validation::{label_value_errors, qualified_name_errors};

/// How a [`Requirement`] relates a label's value to the requirement's values.
///
/// This is upstream's `selection.Operator` restricted to what label selectors accept.
/// `Equals` and `DoubleEquals` match alike; they are kept apart only so that a parsed
/// selector prints back the way it was written, as upstream's does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    /// `key=value`: the label is present and has exactly this value.
    Equals,
    /// `key==value`: the same as [`Operator::Equals`].
    DoubleEquals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`: the label is present and has one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label is present, with any value.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>n`: the label is present and its value is an integer greater than `n`.
    GreaterThan,
    /// `key<n`: the label is present and its value is an integer less than `n`.
    LessThan,
}

impl Operator {
    /// Upstream's name of the operator (`selection.Operator`), as used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition on one label key; a [`LabelSelector`] is the AND of its requirements.
///
/// A `Requirement` is always valid: the only ways to make one validate the key, the
/// number of values the operator needs, and each value, as upstream's `NewRequirement`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and free of duplicates. Set semantics are all that matching needs, and a
    /// sorted list gives the canonical string form without sorting on every print.
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, validating it like upstream's `NewRequirement`.
    ///
    /// `key` must be a qualified name; `In` and `NotIn` need at least one value; `Equals`,
    /// `DoubleEquals`, `NotEquals`, `GreaterThan` and `LessThan` need exactly one; `Exists`
    /// and `DoesNotExist` need none; `GreaterThan` and `LessThan` need a 64-bit integer; and
    /// every value must be a valid label value. All problems are reported together.
    pub fn new(key: impl Into<String>, operator: Operator, values: Vec<String>) -> Result<Requirement, SelectorError> {
        let key = key.into();
        let mut errors = Vec::new();
        if let Err(e) = validate_key(&key, "key") {
            errors.push(e);
        }

        let count_error = |detail: &str| SelectorError::Invalid {
            field: "values".to_owned(),
            value: go_string_slice(&values),
            detail: detail.to_owned(),
        };
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                errors.push(count_error("for 'in', 'notin' operators, values set can't be empty"))
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
                errors.push(count_error("exact-match compatibility requires one single value"))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                errors.push(count_error("values set must be empty for exists and does not exist"))
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errors.push(count_error("for 'Gt', 'Lt' operators, exactly one value is required"));
                }
                for (i, value) in values.iter().enumerate() {
                    if value.parse::<i64>().is_err() {
                        errors.push(SelectorError::Invalid {
                            field: format!("values[{i}]"),
                            value: go_quote(value),
                            detail: "for 'Gt', 'Lt' operators, the value must be an integer".to_owned(),
                        });
                    }
                }
            }
            _ => {}
        }

        for (i, value) in values.iter().enumerate() {
            let problems = label_value_errors(value);
            if !problems.is_empty() {
                errors.push(SelectorError::Invalid {
                    field: format!("values[{i}][{key}]"),
                    value: go_quote(value),
                    detail: problems.join("; "),
                });
            }
        }
        SelectorError::aggregate(errors)?;

        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement { key, operator, values })
    }

    /// The label key this requirement constrains.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How the label's value is compared with [`Requirement::values`].
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and without duplicates; empty for `Exists` and `DoesNotExist`.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Tells whether a label set satisfies this requirement, given the value of this
    /// requirement's key in it (`None` when the label is absent).
    ///
    /// Absence satisfies the negative operators (`!=`, `notin`, `!key`) and nothing else;
    /// `>` and `<` compare as 64-bit integers and fail when the label's value is not one.
    pub fn matches_value(&self, label_value: Option<&str>) -> bool {
        let has = |v: &str| self.values.iter().any(|candidate| candidate == v);
        match (self.operator, label_value) {
            (Operator::Exists, found) => found.is_some(),
            (Operator::DoesNotExist, found) => found.is_none(),
            (Operator::In | Operator::Equals | Operator::DoubleEquals, found) => found.is_some_and(has),
            (Operator::NotIn | Operator::NotEquals, found) => !found.is_some_and(has),
            (Operator::GreaterThan | Operator::LessThan, None) => false,
            (op @ (Operator::GreaterThan | Operator::LessThan), Some(found)) => {
                let (Ok(actual), [bound]) = (found.parse::<i64>(), self.values.as_slice()) else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if op == Operator::GreaterThan { actual > bound } else { actual < bound }
            }
        }
    }
}

impl fmt::Display for Requirement {
    /// Prints upstream's string form, such as `x in (a,b)`, `!x` or `x!=a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = self.values.join(",");
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={values}", self.key),
            Operator::DoubleEquals => write!(f, "{}=={values}", self.key),
            Operator::NotEquals => write!(f, "{}!={values}", self.key),
            Operator::GreaterThan => write!(f, "{}>{values}", self.key),
            Operator::LessThan => write!(f, "{}<{values}", self.key),
            Operator::In => write!(f, "{} in ({values})", self.key),
            Operator::NotIn => write!(f, "{} notin ({values})", self.key),
        }
    }
}

/// A parsed, validated label selector: the AND of its [`Requirement`]s.
///
/// The empty selector (no requirements, also [`Default`]) matches every label set; this
/// is what an empty `labelSelector` query parameter and an empty `metav1.LabelSelector`
/// (`{}`) mean. The separate [`LabelSelector::nothing`] selector, which is what a null
/// `metav1.LabelSelector` means, matches no label set at all.
///
/// Requirements are kept sorted by key (stable for equal keys), as upstream sorts them,
/// so that the string form is canonical and two spellings of a selector compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// Set only by [`LabelSelector::nothing`]; `requirements` is then empty.
    matches_nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every label set; the same as [`Default::default`].
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// The selector that matches no label set, which is what a null `metav1.LabelSelector`
    /// means (for example, a NetworkPolicy peer or PodDisruptionBudget without a selector).
    /// Its string form is empty, like upstream's.
    pub fn nothing() -> LabelSelector {
        LabelSelector { requirements: Vec::new(), matches_nothing: true }
    }

    /// Parses the string form, as in the `labelSelector` query parameter, for example
    /// `environment in (production, qa),tier!=frontend,!canary`.
    ///
    /// Whitespace around tokens is ignored and the empty string is the selector that
    /// matches everything. Errors carry upstream's messages.
    pub fn parse(selector: &str) -> Result<LabelSelector, SelectorError> {
        let requirements = Parser::new(selector).parse()?;
        Ok(requirements.into_iter().collect())
    }

    /// Builds the selector that requires each label of `labels` to have exactly the given
    /// value, as a Service's or ReplicationController's `spec.selector` does.
    ///
    /// Like upstream's `SelectorFromSet` this does not validate keys and values: they were
    /// validated when the owning object was stored, and an invalid one simply never matches.
    /// An empty map gives the selector that matches everything.
    pub fn from_match_labels(labels: &BTreeMap<String, String>) -> LabelSelector {
        LabelSelector {
            requirements: labels
                .iter()
                .map(|(key, value)| Requirement {
                    key: key.clone(),
                    operator: Operator::Equals,
                    values: vec![value.clone()],
                })
                .collect(),
            matches_nothing: false,
        }
    }

    /// Converts a `metav1.LabelSelector` JSON value (`{"matchLabels": {...},
    /// "matchExpressions": [{"key", "operator", "values"}]}`) into a selector, validating
    /// it like upstream's `LabelSelectorAsSelector`.
    ///
    /// `null` gives [`LabelSelector::nothing`] and `{}` gives the selector that matches
    /// everything, as upstream. The operators are `In`, `NotIn` (which need at least one
    /// value), `Exists` and `DoesNotExist` (which need none). Unknown fields are ignored,
    /// like Go's JSON decoding does.
    pub fn from_label_selector_json(value: &serde_json::Value) -> Result<LabelSelector, SelectorError> {
        if value.is_null() {
            return Ok(LabelSelector::nothing());
        }
        let raw = RawLabelSelector::deserialize(value).map_err(|e| SelectorError::Malformed(e.to_string()))?;
        let match_labels = raw.match_labels.unwrap_or_default();
        let match_expressions = raw.match_expressions.unwrap_or_default();

        let mut requirements = Vec::with_capacity(match_labels.len() + match_expressions.len());
        for (key, value) in match_labels {
            requirements.push(Requirement::new(key, Operator::Equals, vec![value])?);
        }
        for expression in match_expressions {
            let operator = expression.operator.unwrap_or_default();
            let operator = match operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                _ => return Err(SelectorError::UnknownOperator(operator)),
            };
            requirements.push(Requirement::new(
                expression.key.unwrap_or_default(),
                operator,
                expression.values.unwrap_or_default(),
            )?);
        }
        Ok(requirements.into_iter().collect())
    }

    /// Returns this selector with one more requirement, kept in key order.
    ///
    /// The selector that matches nothing stays so.
    pub fn and(mut self, requirement: Requirement) -> LabelSelector {
        if !self.matches_nothing {
            let at = self.requirements.partition_point(|r| r.key <= requirement.key);
            self.requirements.insert(at, requirement);
        }
        self
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Tells whether this selector places no restriction, and so matches every label set.
    pub fn is_empty(&self) -> bool {
        !self.matches_nothing && self.requirements.is_empty()
    }

    /// Tells whether this is [`LabelSelector::nothing`], which matches no label set.
    pub fn is_nothing(&self) -> bool {
        self.matches_nothing
    }

    /// Tells whether `labels` satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|key| labels.get(key).map(String::as_str))
    }

    /// Tells whether a JSON labels object, such as an object's `metadata.labels`, satisfies
    /// every requirement. `None`, `null` and non-objects count as no labels, because an
    /// object without labels is common and must still match `!key` and `notin`. Entries
    /// whose value is not a string count as absent; valid objects never have them.
    pub fn matches_json(&self, labels: Option<&serde_json::Value>) -> bool {
        let labels = labels.and_then(serde_json::Value::as_object);
        self.matches_with(|key| labels.and_then(|labels| labels.get(key)).and_then(serde_json::Value::as_str))
    }

    /// Tells whether the label set described by `get`, which returns the value of a label
    /// key or `None` when the label is absent, satisfies every requirement. This serves
    /// label storage other than a `BTreeMap` or a JSON object.
    pub fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        !self.matches_nothing && self.requirements.iter().all(|r| r.matches_value(get(&r.key)))
    }

    /// Returns the single value `label` must have for this selector to match, if the
    /// selector pins it with `=`, `==` or a one-value `in`. Like upstream's
    /// `RequiresExactMatch`, only the first requirement on that key is considered.
    /// Callers use it to narrow a list through an index before matching.
    pub fn requires_exact_match(&self, label: &str) -> Option<&str> {
        let requirement = self.requirements.iter().find(|r| r.key == label)?;
        match (requirement.operator, requirement.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [value]) => Some(value.as_str()),
            _ => None,
        }
    }
}

impl FromIterator<Requirement> for LabelSelector {
    /// Builds the AND of the requirements, sorted by key.
    fn from_iter<I: IntoIterator<Item = Requirement>>(iter: I) -> LabelSelector {
        let mut requirements: Vec<Requirement> = iter.into_iter().collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements, matches_nothing: false }
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<LabelSelector, SelectorError> {
        LabelSelector::parse(s)
    }
}

impl fmt::Display for LabelSelector {
    /// Prints the canonical string form: the requirements sorted by key, joined by commas,
    /// each with its values sorted. It parses back to an equal selector (except for
    /// [`LabelSelector::nothing`], which prints as the empty string, as upstream's does).
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

/// The JSON shape of `metav1.LabelSelector`. Every field is optional, and explicit
/// `null`s are accepted, because Go's decoder treats both as the zero value.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLabelSelector {
    #[serde(default)]
    match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    match_expressions: Option<Vec<RawLabelSelectorRequirement>>,
}

/// The JSON shape of `metav1.LabelSelectorRequirement`.
#[derive(Deserialize)]
struct RawLabelSelectorRequirement {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    operator: Option<String>,
    #[serde(default)]
    values: Option<Vec<String>>,
}

/// Validates a label key, reporting it under `field` (upstream's field path).
fn validate_key(key: &str, field: &str) -> Result<(), SelectorError> {
    let problems = qualified_name_errors(key);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SelectorError::Invalid { field: field.to_owned(), value: go_quote(key), detail: problems.join("; ") })
    }
}

/// Quotes a string roughly as Go's `%q` does, for error messages.
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// Prints a list of strings as Go's `%#v` prints a `[]string`, for error messages.
fn go_string_slice(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

// ---------------------------------------------------------------------------------------
// Lexer and parser. They follow upstream's structure closely (a token list, then
// recursive descent with one token of lookahead) so that the same inputs are accepted and
// the same errors are reported at the same points.
// ---------------------------------------------------------------------------------------

/// A token of the label selector language. The keywords `in` and `notin` are lexed as
/// identifiers: they are operators only right after a key, and values anywhere else
/// (`x in (in,notin)` is valid), so the parser decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    EndOfString,
    Identifier(&'a str),
    OpenPar,
    ClosedPar,
    Comma,
    /// `!` before a key, for "does not exist".
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
}

impl<'a> Token<'a> {
    /// The text of the token, for "found '...'" errors.
    fn literal(self) -> &'a str {
        match self {
            Token::EndOfString => "",
            Token::Identifier(s) => s,
            Token::OpenPar => "(",
            Token::ClosedPar => ")",
            Token::Comma => ",",
            Token::Bang => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::GreaterThan => ">",
            Token::LessThan => "<",
        }
    }

    fn unexpected(self, expected: &'static str) -> SelectorError {
        SelectorError::Unexpected { found: self.literal().to_owned(), expected }
    }
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the input into tokens, ending with [`Token::EndOfString`].
///
/// Every byte that is neither whitespace nor one of `=!(),<>` belongs to an identifier,
/// so `||` or `a@b` are identifiers that later fail validation. Identifiers are sliced at
/// ASCII bytes or at the end of the input, which are always character boundaries, so
/// non-ASCII input is safe. (Upstream treats a NUL byte as the end of input; here it is an
/// ordinary identifier byte, which validation then rejects.)
fn lex(input: &str) -> Vec<Token<'_>> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    loop {
        while bytes.get(pos).is_some_and(|&b| is_whitespace(b)) {
            pos += 1;
        }
        let Some(&b) = bytes.get(pos) else {
            tokens.push(Token::EndOfString);
            return tokens;
        };
        if is_special(b) {
            // The longest operator wins: `!=` and `==` are the only two-byte ones.
            let (token, len) = match (b, bytes.get(pos + 1)) {
                (b'!', Some(b'=')) => (Token::NotEquals, 2),
                (b'=', Some(b'=')) => (Token::DoubleEquals, 2),
                (b'!', _) => (Token::Bang, 1),
                (b'=', _) => (Token::Equals, 1),
                (b'(', _) => (Token::OpenPar, 1),
                (b')', _) => (Token::ClosedPar, 1),
                (b',', _) => (Token::Comma, 1),
                (b'>', _) => (Token::GreaterThan, 1),
                _ => (Token::LessThan, 1),
            };
            tokens.push(token);
            pos += len;
        } else {
            let start = pos;
            while bytes.get(pos).is_some_and(|&b| !is_special(b) && !is_whitespace(b)) {
                pos += 1;
            }
            tokens.push(Token::Identifier(&input[start..pos]));
        }
    }
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    position: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Parser<'a> {
        Parser { tokens: lex(input), position: 0 }
    }

    /// The current token. Past the end it keeps answering end-of-string, so the parser
    /// cannot index out of bounds whatever the input.
    fn peek(&self) -> Token<'a> {
        self.tokens.get(self.position).copied().unwrap_or(Token::EndOfString)
    }

    /// The current token, moving past it.
    fn next(&mut self) -> Token<'a> {
        let token = self.peek();
        self.position += 1;
        token
    }

    fn parse(mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            match self.peek() {
                Token::Identifier(_) | Token::Bang => {
                    let requirement = self.parse_requirement().map_err(|e| SelectorError::Requirement(Box::new(e)))?;
                    requirements.push(requirement);
                    match self.next() {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let after = self.peek();
                            if !matches!(after, Token::Identifier(_) | Token::Bang) {
                                return Err(after.unexpected("identifier after ','"));
                            }
                        }
                        other => return Err(other.unexpected("',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                other => return Err(other.unexpected("!, identifier, or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (key, unary) = self.parse_key_and_infer_operator()?;
        if let Some(operator) = unary {
            return Requirement::new(key, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => BTreeSet::from([self.parse_exact_value()?]),
        };
        Requirement::new(key, operator, values.into_iter().map(str::to_owned).collect())
    }

    /// Parses `[!] KEY` and, when no binary operator can follow, the unary operator.
    ///
    /// As upstream, `!key` is complete on its own: whatever follows it is left for the
    /// caller, so `!x=a` fails with "found '=', expected: ',' or 'end of string'".
    fn parse_key_and_infer_operator(&mut self) -> Result<(&'a str, Option<Operator>), SelectorError> {
        let mut token = self.next();
        let negated = token == Token::Bang;
        if negated {
            token = self.next();
        }
        let Token::Identifier(key) = token else {
            return Err(token.unexpected("identifier"));
        };
        // Upstream validates the key here with no field path, which prints as `<nil>`.
        validate_key(key, "<nil>")?;
        let unary = if negated {
            Some(Operator::DoesNotExist)
        } else if matches!(self.peek(), Token::EndOfString | Token::Comma) {
            Some(Operator::Exists)
        } else {
            None
        };
        Ok((key, unary))
    }

    fn parse_operator(&mut self) -> Result<Operator, SelectorError> {
        match self.next() {
            Token::Identifier("in") => Ok(Operator::In),
            Token::Identifier("notin") => Ok(Operator::NotIn),
            Token::Equals => Ok(Operator::Equals),
            Token::DoubleEquals => Ok(Operator::DoubleEquals),
            Token::NotEquals => Ok(Operator::NotEquals),
            Token::GreaterThan => Ok(Operator::GreaterThan),
            Token::LessThan => Ok(Operator::LessThan),
            other => Err(other.unexpected("in, notin, =, ==, !=, gt, lt")),
        }
    }

    /// Parses `( values )`. Empty entries are the empty value, so `()`, `(,a)` and `(a,)`
    /// all contain `""`, as upstream.
    fn parse_values(&mut self) -> Result<BTreeSet<&'a str>, SelectorError> {
        let open = self.next();
        if open != Token::OpenPar {
            return Err(open.unexpected("'('"));
        }
        match self.peek() {
            Token::Identifier(_) | Token::Comma => {
                let values = self.parse_identifier_list()?;
                let close = self.next();
                if close != Token::ClosedPar {
                    return Err(close.unexpected("')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.next();
                Ok(BTreeSet::from([""]))
            }
            other => Err(other.unexpected("',', ')' or identifier")),
        }
    }

    /// Parses a comma-separated list of possibly empty identifiers, stopping before `)`.
    fn parse_identifier_list(&mut self) -> Result<BTreeSet<&'a str>, SelectorError> {
        let mut values = BTreeSet::new();
        loop {
            match self.next() {
                Token::Identifier(value) => {
                    values.insert(value);
                    match self.peek() {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        other => return Err(other.unexpected("',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        // `(,`: the list starts with an empty value.
                        values.insert("");
                    }
                    match self.peek() {
                        Token::ClosedPar => {
                            // `,)`: the list ends with an empty value.
                            values.insert("");
                            return Ok(values);
                        }
                        Token::Comma => {
                            // `,,`: an empty value in the middle.
                            self.next();
                            values.insert("");
                        }
                        _ => {}
                    }
                }
                other => return Err(other.unexpected("',', or identifier")),
            }
        }
    }

    /// Parses the value after `=`, `==`, `!=`, `>` or `<`; nothing there is the empty value.
    fn parse_exact_value(&mut self) -> Result<&'a str, SelectorError> {
        if matches!(self.peek(), Token::EndOfString | Token::Comma) {
            return Ok("");
        }
        match self.next() {
            Token::Identifier(value) => Ok(value),
            other => Err(other.unexpected("identifier")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn parse(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} should not parse, got {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement::new(key, operator, values.iter().map(|v| (*v).to_owned()).collect())
            .unwrap_or_else(|e| panic!("valid requirement: {e}"))
    }

    #[test]
    fn lexes_like_upstream() {
        use Token::*;
        let cases: &[(&str, &[Token<'_>])] = &[
            ("", &[]),
            (",", &[Comma]),
            ("notin", &[Identifier("notin")]),
            ("==", &[DoubleEquals]),
            ("!", &[Bang]),
            ("!=", &[NotEquals]),
            ("~", &[Identifier("~")]),
            ("||", &[Identifier("||")]),
            (
                "key in ( value1, value2 )",
                &[
                    Identifier("key"),
                    Identifier("in"),
                    OpenPar,
                    Identifier("value1"),
                    Comma,
                    Identifier("value2"),
                    ClosedPar,
                ],
            ),
            ("== != (), = notin", &[DoubleEquals, NotEquals, OpenPar, ClosedPar, Comma, Equals, Identifier("notin")]),
            ("key>2", &[Identifier("key"), GreaterThan, Identifier("2")]),
            ("key<1", &[Identifier("key"), LessThan, Identifier("1")]),
            ("!==", &[NotEquals, Equals]),
            ("é=ü", &[Identifier("é"), Equals, Identifier("ü")]),
        ];
        for (input, expected) in cases {
            let mut tokens = lex(input);
            assert_eq!(tokens.pop(), Some(EndOfString), "{input:?}");
            assert_eq!(&tokens, expected, "{input:?}");
        }
    }

    #[test]
    fn good_strings_round_trip_without_spaces() {
        // Upstream's TestSelectorParse: the string form is the input without spaces.
        for input in ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5", "x==a"] {
            assert_eq!(parse(input).to_string(), input.replace(' ', ""), "{input:?}");
        }
    }

    #[test]
    fn bad_strings() {
        for input in [
            "x=a||y=b",
            "x==a==b",
            "!x=a",
            "x<a",
            "x,,y",
            ",x,y",
            "x nott in (y)",
            "a in (xyz),",
            "a in (xyz)b notin ()",
            "a in (xyz abc)",
            "a notin(",
            "a (",
            "(",
            "x in a",
            "=a",
            "a/b/c",
            "x in (,,)",
            "x>",
            "x>-1",
            "x=a b",
            "x=(a)",
            "!",
            "!!x",
            "x in (a",
            "x in (a)(",
            ")",
            "x=a,",
            "x =a= b",
            "app:monolith",
        ] {
            assert!(LabelSelector::parse(input).is_err(), "{input:?} should fail");
        }
        // `x!=` with an empty value is valid, like `x=`.
        assert_eq!(parse("x!=").to_string(), "x!=");
        assert_eq!(parse("x==").to_string(), "x==");
    }

    #[test]
    fn set_based_parsing_matches_upstream() {
        let cases: &[(&str, &[Requirement])] = &[
            ("\rx", &[req("x", Operator::Exists, &[])]),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                &[req("this-is-a-dns.domain.com/key-with-dash", Operator::Exists, &[])],
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                &[req("0.1.2.domain/99", Operator::NotIn, &["10.10.100.1", "tick.tack.clock"])],
            ),
            ("foo  in\t (abc)", &[req("foo", Operator::In, &["abc"])]),
            ("x notin\n (abc)", &[req("x", Operator::NotIn, &["abc"])]),
            ("x in (abc,)", &[req("x", Operator::In, &["abc", ""])]),
            ("x in ()", &[req("x", Operator::In, &[""])]),
            ("x notin ( )", &[req("x", Operator::NotIn, &[""])]),
            ("x notin (, a)", &[req("x", Operator::NotIn, &["", "a"])]),
            ("x in (a,,b)", &[req("x", Operator::In, &["a", "", "b"])]),
            (
                "x notin (abc,def),bar,z in (),w",
                &[
                    req("bar", Operator::Exists, &[]),
                    req("w", Operator::Exists, &[]),
                    req("x", Operator::NotIn, &["abc", "def"]),
                    req("z", Operator::In, &[""]),
                ],
            ),
            ("a in (x,y,notin, z,in)", &[req("a", Operator::In, &["in", "notin", "x", "y", "z"])]),
            ("a ", &[req("a", Operator::Exists, &[])]),
            ("notin=in", &[req("notin", Operator::Equals, &["in"])]),
            ("in in (in)", &[req("in", Operator::In, &["in"])]),
            (
                "x=a,y!=b,z in (h,i,j)",
                &[
                    req("x", Operator::Equals, &["a"]),
                    req("y", Operator::NotEquals, &["b"]),
                    req("z", Operator::In, &["h", "i", "j"]),
                ],
            ),
            ("environment in (production, qa)", &[req("environment", Operator::In, &["production", "qa"])]),
            ("x in (b,a,b)", &[req("x", Operator::In, &["a", "b"])]),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input).requirements(), *expected, "{input:?}");
        }
    }

    #[test]
    fn string_form_is_canonical() {
        let cases = [
            ("x in (def,abc),y notin (jkl),z", "x in (abc,def),y notin (jkl),z"),
            ("z,y!=jkl,x notin (abc,def),!w", "!w,x notin (abc,def),y!=jkl,z"),
            ("z notin (),y in (mno,jkl),x notin (abc)", "x notin (abc),y in (jkl,mno),z notin ()"),
            ("x=abc,y==jkl,z!=a,z", "x=abc,y==jkl,z!=a,z"),
            ("z, y<8, x>2", "x>2,y<8,z"),
            ("environment in (production, qa)", "environment in (production,qa)"),
            ("  tier != frontend ,  !canary ", "!canary,tier!=frontend"),
        ];
        for (input, expected) in cases {
            let selector = parse(input);
            assert_eq!(selector.to_string(), expected, "{input:?}");
            assert_eq!(parse(expected), selector, "{input:?} reparsed");
        }
        // Deterministic: the order of requirements in the input does not matter.
        assert_eq!(parse("x=a,a=x"), parse("a=x,x=a"));
    }

    #[test]
    fn error_messages_match_upstream() {
        assert_eq!(
            parse_err("x=a||y=b"),
            "unable to parse requirement: values[0][x]: Invalid value: \"a||y\": a valid label \
             must be an empty string or consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character (e.g. 'MyValue',  or \
             'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert_eq!(
            parse_err("app:monolith"),
            "unable to parse requirement: <nil>: Invalid value: \"app:monolith\": name part \
             must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
             with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', \
             regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert!(parse_err("a/b/c").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name \
                 must consist of"
        ));
        assert_eq!(
            parse_err(&format!("{}=a", "k".repeat(64))),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{}\": name part must be \
                 no more than 63 characters",
                "k".repeat(64)
            )
        );
        assert_eq!(parse_err("x in a"), "unable to parse requirement: found 'a', expected: '('");
        assert_eq!(parse_err("=a"), "found '=', expected: !, identifier, or 'end of string'");
        assert_eq!(parse_err("x,,y"), "found ',', expected: identifier after ','");
        assert_eq!(parse_err("x=a,"), "found '', expected: identifier after ','");
        assert_eq!(parse_err("!x=a"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(
            parse_err("x nott in (y)"),
            "unable to parse requirement: found 'nott', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(parse_err("x==a==b"), "found '==', expected: ',' or 'end of string'");
        assert_eq!(parse_err("a in (xyz abc)"), "unable to parse requirement: found 'abc', expected: ',' or ')'");
        assert_eq!(parse_err("x in (,,)"), "unable to parse requirement: found ')', expected: ',', or identifier");
        assert_eq!(parse_err("a notin("), "unable to parse requirement: found '', expected: ',', ')' or identifier");
        assert_eq!(parse_err("x=(a)"), "unable to parse requirement: found '(', expected: identifier");
        assert_eq!(parse_err("!"), "unable to parse requirement: found '', expected: identifier");
        assert_eq!(
            parse_err("x<a"),
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' \
             operators, the value must be an integer"
        );
        // Two invalid values are reported together, like upstream's aggregate.
        let both = parse_err("x in (a@,b@)");
        assert!(both.starts_with("unable to parse requirement: [values[0][x]: Invalid value: \"a@\": "), "{both}");
        assert!(both.contains(", values[1][x]: Invalid value: \"b@\": "), "{both}");
    }

    #[test]
    fn matching_follows_upstream() {
        let yes = |s: &str, l: &[(&str, &str)]| assert!(parse(s).matches(&labels(l)), "{s} ~ {l:?}");
        let no = |s: &str, l: &[(&str, &str)]| assert!(!parse(s).matches(&labels(l)), "{s} !~ {l:?}");

        yes("", &[("x", "y")]);
        yes("", &[]);
        yes("x=y", &[("x", "y")]);
        yes("x==y", &[("x", "y")]);
        yes("x=y,z=w", &[("x", "y"), ("z", "w")]);
        yes("x!=y,z!=w", &[("x", "z"), ("z", "a")]);
        yes("notin=in", &[("notin", "in")]);
        yes("x", &[("x", "z")]);
        yes("x", &[("x", "")]);
        yes("!x", &[("y", "z")]);
        yes("x>1", &[("x", "2")]);
        yes("x<1", &[("x", "0")]);
        yes("x<1", &[("x", "-5")]);
        yes("x=", &[("x", "")]);
        yes("x in ()", &[("x", "")]);
        yes("x in (a,b)", &[("x", "b")]);
        no("x=z", &[]);
        no("x=", &[]);
        no("x=y", &[("x", "z")]);
        no("x=y,z=w", &[("x", "w"), ("z", "w")]);
        no("x!=y,z!=w", &[("x", "z"), ("z", "w")]);
        no("x", &[("y", "z")]);
        no("!x", &[("x", "z")]);
        no("x>1", &[("x", "0")]);
        no("x>1", &[("x", "1")]);
        no("x<1", &[("x", "2")]);
        no("x>1", &[]);
        no("x<1", &[]);
        no("x>1", &[("x", "v2")]);
        no("x<1", &[("x", "")]);
        no("x in (a,b)", &[("x", "c")]);
        no("x in (a,b)", &[]);
        no("x in ()", &[("y", "")]);

        // The negative operators match when the label is absent.
        yes("x!=a", &[]);
        yes("x notin (a,b)", &[]);
        yes("x notin ()", &[("y", "")]);
        no("x notin (a,b)", &[("x", "a")]);
        no("x notin ()", &[("x", "")]);
        no("x notin (),y", &[("x", "")]);
        no("x notin (),!y", &[("y", "")]);

        let set = [("foo", "bar"), ("baz", "blah")];
        yes("foo=bar", &set);
        yes("baz=blah", &set);
        yes("foo=bar,baz=blah", &set);
        no("foo=blah", &set);
        no("baz=bar", &set);
        no("foo=bar,foobar=bar,baz=blah", &set);
    }

    #[test]
    fn matches_json_labels() {
        let selector = parse("app=web,!canary,tier notin (db)");
        assert!(selector.matches_json(Some(&json!({"app": "web", "tier": "front"}))));
        assert!(!selector.matches_json(Some(&json!({"app": "web", "canary": "true"}))));
        assert!(!selector.matches_json(Some(&json!({"app": "api"}))));
        assert!(!selector.matches_json(None));
        assert!(!selector.matches_json(Some(&json!(null))));
        // A non-string value counts as absent.
        assert!(!selector.matches_json(Some(&json!({"app": 1}))));

        let negative = parse("!canary,tier notin (db)");
        assert!(negative.matches_json(None));
        assert!(negative.matches_json(Some(&json!(null))));
        assert!(negative.matches_json(Some(&json!({"canary": 1}))));
        assert!(LabelSelector::everything().matches_json(None));
        assert!(!LabelSelector::nothing().matches_json(Some(&json!({}))));
    }

    #[test]
    fn empty_everything_and_nothing() {
        assert!(parse("").is_empty());
        assert!(parse("  \t\r\n").is_empty());
        assert!(LabelSelector::everything().is_empty());
        assert!(LabelSelector::everything().matches(&labels(&[("x", "y")])));
        assert!(!parse("x").is_empty());

        let nothing = LabelSelector::nothing();
        assert!(!nothing.is_empty());
        assert!(nothing.is_nothing());
        assert!(!nothing.matches(&labels(&[])));
        assert!(!nothing.matches(&labels(&[("x", "y")])));
        assert_eq!(nothing.to_string(), "");
        assert!(nothing.and(req("x", Operator::Exists, &[])).is_nothing());
    }

    #[test]
    fn from_match_labels_requires_each_label() {
        let selector = LabelSelector::from_match_labels(&labels(&[("b", "2"), ("a", "1")]));
        assert_eq!(selector.to_string(), "a=1,b=2");
        assert!(selector.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "3")])));
        assert!(!selector.matches(&labels(&[("a", "1")])));
        assert!(!selector.matches(&labels(&[("a", "1"), ("b", "3")])));
        assert!(LabelSelector::from_match_labels(&BTreeMap::new()).is_empty());
        assert_eq!(selector, parse("b=2,a=1"));
    }

    #[test]
    fn from_label_selector_json_converts_and_validates() {
        let selector = LabelSelector::from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "ready", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist", "values": []},
            ],
        }))
        .unwrap_or_else(|e| panic!("valid: {e}"));
        assert_eq!(selector.to_string(), "app=web,!canary,env notin (dev),ready,tier in (back,front)");
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", "front"), ("ready", "")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "front")])));

        let everything = LabelSelector::from_label_selector_json(&json!({}));
        assert_eq!(everything, Ok(LabelSelector::everything()));
        let everything = LabelSelector::from_label_selector_json(&json!({"matchLabels": null, "matchExpressions": []}));
        assert_eq!(everything, Ok(LabelSelector::everything()));
        assert_eq!(LabelSelector::from_label_selector_json(&json!(null)), Ok(LabelSelector::nothing()));

        let err = |v: serde_json::Value| match LabelSelector::from_label_selector_json(&v) {
            Ok(s) => panic!("{v} should be rejected, got {s:?}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "x", "operator": "In", "values": []}]})),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "x", "operator": "NotIn"}]})),
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "x", "operator": "Exists", "values": ["a"]}]})),
            "values: Invalid value: []string{\"a\"}: values set must be empty for exists and does not exist"
        );
        assert!(
            err(json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist", "values": ["a", "b"]}]}))
                .contains("values set must be empty")
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "x", "operator": "Gt", "values": ["1"]}]})),
            "\"Gt\" is not a valid pod selector operator"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "x", "operator": "in", "values": ["1"]}]})),
            "\"in\" is not a valid pod selector operator"
        );
        assert!(
            err(json!({"matchLabels": {"a/b/c": "x"}}))
                .starts_with("key: Invalid value: \"a/b/c\": a qualified name must")
        );
        assert!(
            err(json!({"matchLabels": {"x": "-bad"}}))
                .starts_with("values[0][x]: Invalid value: \"-bad\": a valid label must")
        );
        assert!(
            err(json!({"matchExpressions": [{"operator": "Exists"}]}))
                .starts_with("key: Invalid value: \"\": name part must be non-empty; name part must consist")
        );
        // Both the key and the values are judged, and reported together.
        assert!(
            err(json!({"matchExpressions": [{"key": "-x", "operator": "In", "values": []}]}))
                .starts_with("[key: Invalid value: \"-x\": ")
        );
        assert!(err(json!({"matchLabels": {"x": 1}})).starts_with("invalid label selector: "));
        assert!(err(json!({"matchLabels": ["x"]})).starts_with("invalid label selector: "));
        assert!(err(json!("x=y")).starts_with("invalid label selector: "));
    }

    #[test]
    fn requirement_constructor_validates() {
        let ok = |key: &str, op: Operator, values: &[&str]| {
            Requirement::new(key, op, values.iter().map(|v| (*v).to_owned()).collect())
        };
        assert!(ok("x", Operator::In, &[]).is_err());
        assert!(ok("x", Operator::NotIn, &[]).is_err());
        assert!(ok("x", Operator::In, &["foo"]).is_ok());
        assert!(ok("x", Operator::NotIn, &["foo"]).is_ok());
        assert!(ok("x", Operator::Exists, &[]).is_ok());
        assert!(ok("x", Operator::DoesNotExist, &[]).is_ok());
        assert!(ok("1foo", Operator::In, &["bar"]).is_ok());
        assert!(ok("1234", Operator::In, &["bar"]).is_ok());
        assert!(ok("y", Operator::GreaterThan, &["1"]).is_ok());
        assert!(ok("z", Operator::LessThan, &["6"]).is_ok());
        assert!(ok("foo", Operator::GreaterThan, &["bar"]).is_err());
        assert!(ok("barz", Operator::LessThan, &["blah"]).is_err());
        assert!(ok("x", Operator::GreaterThan, &["1", "2"]).is_err());
        assert!(ok("x", Operator::Equals, &["a", "b"]).is_err());
        assert!(ok("x", Operator::NotEquals, &[]).is_err());
        assert!(ok(&"a".repeat(254), Operator::Exists, &[]).is_err());
        assert!(ok("x", Operator::GreaterThan, &["99999999999999999999"]).is_err());
    }

    #[test]
    fn and_keeps_key_order() {
        let selector = parse("b=1")
            .and(req("a", Operator::Exists, &[]))
            .and(req("c", Operator::DoesNotExist, &[]))
            .and(req("b", Operator::NotEquals, &["2"]));
        assert_eq!(selector.to_string(), "a,b=1,b!=2,!c");
        let collected: LabelSelector =
            [req("z", Operator::Exists, &[]), req("y", Operator::Exists, &[])].into_iter().collect();
        assert_eq!(collected.to_string(), "y,z");
    }

    #[test]
    fn requires_exact_match() {
        let selector = parse("a=1,b in (2),c in (3,4),d!=5,e==6");
        assert_eq!(selector.requires_exact_match("a"), Some("1"));
        assert_eq!(selector.requires_exact_match("b"), Some("2"));
        assert_eq!(selector.requires_exact_match("c"), None);
        assert_eq!(selector.requires_exact_match("d"), None);
        assert_eq!(selector.requires_exact_match("e"), Some("6"));
        assert_eq!(selector.requires_exact_match("f"), None);
    }

    #[test]
    fn long_keys_and_values() {
        let value63 = "v".repeat(63);
        let key = format!("{}/{}", "p".repeat(253), "n".repeat(63));
        let selector = parse(&format!("{key}={value63}"));
        assert_eq!(selector.requires_exact_match(&key), Some(value63.as_str()));
        assert!(LabelSelector::parse(&format!("x={}", "v".repeat(64))).is_err());
        assert!(LabelSelector::parse(&format!("{}/n=v", "p".repeat(254))).is_err());
    }
}
