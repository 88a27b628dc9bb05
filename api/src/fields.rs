//! Field selectors (`status.phase=Running,spec.nodeName!=`): Kubernetes' `fields.ParseSelector`
//! grammar with backslash escapes, and matching against field values.

use std::fmt;

pub use crate::labels::SelectorError;

/// Comparison of a field requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One clause of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Field path such as `metadata.name`.
    pub field: String,
    /// The comparison.
    pub op: FieldOp,
    /// The unescaped value.
    pub value: String,
}

/// A conjunction of field requirements; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    /// The requirements, in sorted term order.
    pub requirements: Vec<FieldRequirement>,
}

/// Splits on commas that are not backslash-escaped; escapes are kept for `unescape`.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at its first operator; the field part has no escaping.
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOp::NotEquals),
            ("==", FieldOp::Equals),
            ("=", FieldOp::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, value));
            }
        }
    }
    None
}

/// Removes the escapes `\\`, `\,` and `\=`; any other escape or a bare `,`/`=` is an error.
pub fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(SelectorError(format!(
                        "invalid field selector: invalid escape sequence: \\{c}"
                    )));
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, which is its code point.
            ',' | '=' => {
                return Err(SelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )));
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError(
            "invalid field selector: invalid escape sequence: \\".into(),
        ));
    }
    Ok(out)
}

/// Escapes `\`, `,` and `=` so a value survives `parse`.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl FieldSelector {
    /// Parses a field selector string.
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = split_terms(s);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, op, raw)) = split_term(term) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let value = unescape_value(raw)?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                op,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the object whose fields `get` reads satisfies every requirement. A field that
    /// `get` does not know reads as the empty string.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let have = get(&r.field).unwrap_or_default();
            match r.op {
                FieldOp::Equals => have == r.value,
                FieldOp::NotEquals => have != r.value,
            }
        })
    }

    /// The field paths the selector mentions (for checking them against a kind's supported
    /// fields).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// Whether there are no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value an `Equals` requirement demands of a field, if any (for index look-ups such
    /// as `spec.nodeName=node1`).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.op == FieldOp::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", r.field, escape_value(&r.value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |f| {
            pairs
                .iter()
                .find(|(k, _)| *k == f)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn parses_terms() {
        type Case<'a> = (&'a str, &'a [(&'a str, FieldOp, &'a str)]);
        let cases: &[Case] = &[
            ("", &[]),
            ("a=b", &[("a", FieldOp::Equals, "b")]),
            ("a==b", &[("a", FieldOp::Equals, "b")]),
            ("a!=b", &[("a", FieldOp::NotEquals, "b")]),
            ("spec.nodeName=", &[("spec.nodeName", FieldOp::Equals, "")]),
            (
                "b=1,a!=2",
                &[("a", FieldOp::NotEquals, "2"), ("b", FieldOp::Equals, "1")],
            ),
            ("a=x\\,y\\=z\\\\", &[("a", FieldOp::Equals, "x,y=z\\")]),
            ("a=b,,", &[("a", FieldOp::Equals, "b")]),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let got: Vec<(&str, FieldOp, &str)> = sel
                .requirements
                .iter()
                .map(|r| (r.field.as_str(), r.op, r.value.as_str()))
                .collect();
            assert_eq!(&got, want, "input {input:?}");
            assert_eq!(FieldSelector::parse(&sel.to_string()).unwrap(), sel);
        }
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("abc", "invalid selector: 'abc'; can't understand 'abc'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            (
                "a=b\\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                "a=b\\",
                "invalid field selector: invalid escape sequence: \\",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped character in value: 61",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                FieldSelector::parse(input).unwrap_err().to_string(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn matching() {
        let obj = [("metadata.name", "web"), ("status.phase", "Running")];
        let cases = [
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name=db", false),
            ("metadata.name!=db", true),
            ("status.phase=Running,metadata.name=web", true),
            ("status.phase!=Running", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
        ];
        for (input, want) in cases {
            let sel = FieldSelector::parse(input).unwrap();
            assert_eq!(sel.matches(get(&obj)), want, "{input}");
        }
    }

    #[test]
    fn lists_fields_and_required_values() {
        let sel = FieldSelector::parse("spec.nodeName=n1,metadata.name!=x").unwrap();
        let fields: Vec<&str> = sel.fields().collect();
        assert_eq!(fields, vec!["metadata.name", "spec.nodeName"]);
        assert_eq!(sel.required_value("spec.nodeName"), Some("n1"));
        assert_eq!(sel.required_value("metadata.name"), None);
        assert!(!sel.is_empty());
    }
}
