//! Label and field selectors, with Kubernetes' syntax, validation, matching and error
//! messages.
//!
//! - [`LabelSelector`] is parsed from the `labelSelector` query parameter
//!   ([`LabelSelector::parse`]), converted from a `metav1.LabelSelector`
//!   ([`LabelSelector::from_label_selector_json`]) or built from a `matchLabels` map such
//!   as a Service's `spec.selector` ([`LabelSelector::from_match_labels`]).
//! - [`FieldSelector`] is parsed from the `fieldSelector` query parameter.
//!
//! Upstream's `k8s.io/apimachinery` (`pkg/labels`, `pkg/fields`, `LabelSelectorAsSelector`)
//! is the specification: clients rely on its exact grammar (what parses, and what an
//! empty value or an absent label means), and they show its error messages to users,
//! so [`SelectorError`] reproduces them. Parsing never panics, whatever the input.

mod error;
mod field;
mod label;
pub mod validation;

pub use error::SelectorError;
pub use field::{FieldOperator, FieldRequirement, FieldSelector, escape_value, unescape_value};
pub use label::{LabelSelector, Operator, Requirement};

#[cfg(test)]
mod tests {
    //! Properties that hold for any input, checked on many pseudo-random strings.

    use super::*;

    /// A small deterministic generator (xorshift64*), so that failures reproduce and the
    /// crate needs no random-number dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            // The modulo bias is irrelevant for test input.
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }

    /// Builds a string from fragments chosen to hit the grammar's interesting corners:
    /// operators, keywords, parentheses, escapes, whitespace, non-ASCII and NUL.
    fn garbage(rng: &mut Rng) -> String {
        const FRAGMENTS: &[&str] = &[
            "x",
            "y",
            "a",
            "in",
            "notin",
            " in ",
            " notin ",
            "=",
            "==",
            "!=",
            "!",
            ">",
            "<",
            "(",
            ")",
            ",",
            " ",
            "\t",
            "\n",
            "\r",
            "\\",
            "\\,",
            "\\=",
            "\\\\",
            "/",
            ".",
            "-",
            "_",
            "1",
            "-1",
            "99999999999999999999",
            "é",
            "日本",
            "\u{0}",
            "||",
            "@",
            "'",
            "\"",
            "example.com/",
            "app",
            "",
            "a/b/c",
            "\u{1F600}",
            "\u{FEFF}",
        ];
        let len = rng.below(12);
        let mut s = String::new();
        for _ in 0..len {
            if rng.below(10) == 0 {
                // An arbitrary character, including ones no fragment has.
                let c = char::from_u32(u32::try_from(rng.next() % 0x11_0000).unwrap_or(0)).unwrap_or('?');
                s.push(c);
            } else {
                s.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
            }
        }
        s
    }

    #[test]
    fn parsing_garbage_never_panics_and_valid_results_round_trip() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut label_ok = 0;
        let mut field_ok = 0;
        for _ in 0..50_000 {
            let input = garbage(&mut rng);

            if let Ok(selector) = LabelSelector::parse(&input) {
                label_ok += 1;
                let printed = selector.to_string();
                let reparsed = LabelSelector::parse(&printed)
                    .unwrap_or_else(|e| panic!("{input:?} printed as {printed:?}, which fails: {e}"));
                assert_eq!(reparsed, selector, "{input:?} printed as {printed:?}");
                // Matching on arbitrary labels must not panic either.
                let labels = [("x".to_owned(), input.clone()), ("y".to_owned(), "1".to_owned())].into_iter().collect();
                let _ = selector.matches(&labels);
            }

            if let Ok(selector) = FieldSelector::parse(&input) {
                field_ok += 1;
                let printed = selector.to_string();
                let reparsed = FieldSelector::parse(&printed)
                    .unwrap_or_else(|e| panic!("{input:?} printed as {printed:?}, which fails: {e}"));
                assert_eq!(reparsed, selector, "{input:?} printed as {printed:?}");
                let _ = selector.matches(|field| Some(field.to_owned()));
            }

            let json = serde_json::json!({
                "matchLabels": {input.clone(): input.clone()},
                "matchExpressions": [{"key": input.clone(), "operator": "In", "values": [input.clone()]}],
            });
            let _ = LabelSelector::from_label_selector_json(&json);
        }
        // Make sure the generator reaches the valid parts of both grammars too.
        assert!(label_ok > 1_000, "only {label_ok} label selectors parsed");
        assert!(field_ok > 1_000, "only {field_ok} field selectors parsed");
    }
}
