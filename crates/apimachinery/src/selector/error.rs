//! The one error type of the selector module.

use thiserror::Error;

/// Why a label selector, a field selector or a `metav1.LabelSelector` was rejected.
///
/// The API server puts the `Display` form of this error into the message of a
/// 400 BadRequest `Status`, and clients (kubectl, client-go based controllers, test
/// suites) show it to people who know Kubernetes' wording. The messages therefore
/// follow upstream's (`k8s.io/apimachinery`) text as closely as is reasonable, including
/// its field paths such as `<nil>` and `values[0][key]`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SelectorError {
    /// The label selector string has a token where the grammar allows none of that kind.
    #[error("found '{found}', expected: {expected}")]
    Unexpected {
        /// The literal text of the offending token; empty at the end of the input.
        found: String,
        /// What the grammar allows at that point, in upstream's words.
        expected: &'static str,
    },

    /// One requirement of a label selector string could not be parsed or is invalid.
    ///
    /// Upstream wraps every error that arises inside a requirement with this prefix,
    /// while errors between requirements (such as a dangling comma) are not wrapped.
    #[error("unable to parse requirement: {0}")]
    Requirement(Box<SelectorError>),

    /// A key or a value failed validation.
    #[error("{field}: Invalid value: {value}: {detail}")]
    Invalid {
        /// The upstream field path of the bad value, such as `key`, `values[0]`, or
        /// `<nil>` (upstream's rendering of a missing path, used for keys in selector strings).
        field: String,
        /// The bad value, already quoted the way Go's `%q`/`%#v` would print it.
        value: String,
        /// Every reason the value is invalid, joined with `"; "`.
        detail: String,
    },

    /// Several validation errors of one requirement, reported together like upstream's
    /// aggregated error list.
    #[error("[{}]", join(.0))]
    Aggregate(Vec<SelectorError>),

    /// A `matchExpressions` entry names an operator other than In, NotIn, Exists and
    /// DoesNotExist. Upstream's message really says "pod selector" for every resource.
    #[error("{0:?} is not a valid pod selector operator")]
    UnknownOperator(String),

    /// A `metav1.LabelSelector` JSON value does not have the shape of one (for example
    /// `matchLabels` is not an object of strings). Upstream rejects such input while
    /// decoding the request body, before any selector logic runs.
    #[error("invalid label selector: {0}")]
    Malformed(String),

    /// A field selector term has none of the operators `=`, `==` and `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm {
        /// The whole field selector as given.
        selector: String,
        /// The comma-separated term that could not be split into field, operator and value.
        term: String,
    },

    /// A field selector value has a backslash that does not escape `\`, `,` or `=`.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscapeSequence(String),

    /// A field selector value has an unescaped `,` or `=`. Upstream prints the character
    /// as its Unicode code point (44 for `,`, 61 for `=`), and so does this message.
    #[error("invalid field selector: unescapedRune character in value: {}", u32::from(*.0))]
    UnescapedRune(char),
}

impl SelectorError {
    /// Folds the errors of one validation into a single error: one error stands for itself,
    /// several become an [`SelectorError::Aggregate`], none is success. This mirrors
    /// upstream's `ErrorList.ToAggregate`, so a single problem is not shown in brackets.
    pub(crate) fn aggregate(mut errors: Vec<SelectorError>) -> Result<(), SelectorError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(SelectorError::Aggregate(errors)),
        }
    }
}

fn join(errors: &[SelectorError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
