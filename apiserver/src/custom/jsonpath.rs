//! The simple JSONPath of CRD printer columns, scale paths and selectable fields
//! (`.spec.cronSpec`, `.metadata.labels['app']`, `.spec.items[0].name`): field steps and
//! array indexes, no filters or wildcards.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

/// A parsed simple JSONPath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

/// Why a path is not a simple JSONPath.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonPathError {
    /// The path does not start with `.`.
    #[error("path {0:?} must start with a dot")]
    NoLeadingDot(String),
    /// A step is empty or malformed.
    #[error("path {0:?} has a malformed step")]
    Malformed(String),
}

impl JsonPath {
    /// Parses `.a.b['c'][0]`; kubectl's `{...}` braces around it are accepted.
    pub fn parse(text: &str) -> Result<Self, JsonPathError> {
        let t = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(text);
        if !t.starts_with('.') && !t.starts_with('[') {
            return Err(JsonPathError::NoLeadingDot(text.into()));
        }
        let bad = || JsonPathError::Malformed(text.into());
        let mut steps = Vec::new();
        let mut rest = t;
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let name = &r[..end];
                if name.is_empty() {
                    return Err(bad());
                }
                steps.push(Step::Field(name.into()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(bad)?;
                let inner = &r[..end];
                let quoted = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                match quoted {
                    Some(key) => steps.push(Step::Field(key.into())),
                    None => steps.push(Step::Index(inner.parse().map_err(|_| bad())?)),
                }
                rest = &r[end + 1..];
            } else {
                return Err(bad());
            }
        }
        if steps.is_empty() {
            return Err(bad());
        }
        Ok(Self { steps })
    }

    /// The value at the path, if present.
    pub fn get<'a>(&self, obj: &'a Value) -> Option<&'a Value> {
        let mut cur = obj;
        for s in &self.steps {
            cur = match s {
                Step::Field(f) => cur.get(f)?,
                Step::Index(i) => cur.get(*i)?,
            };
        }
        Some(cur)
    }

    /// Sets the value at the path, making missing objects on the way; `false` when an
    /// index step is out of range or a step crosses a non-object.
    pub fn set(&self, obj: &mut Value, value: Value) -> bool {
        let mut cur = obj;
        for s in &self.steps {
            cur = match s {
                Step::Field(f) => {
                    if cur.is_null() {
                        *cur = Value::Object(Default::default());
                    }
                    let Some(m) = cur.as_object_mut() else {
                        return false;
                    };
                    m.entry(f.clone()).or_insert(Value::Null)
                }
                Step::Index(i) => match cur.get_mut(*i) {
                    Some(v) => v,
                    None => return false,
                },
            };
        }
        *cur = value;
        true
    }

    /// The path as a dotted field name (`spec.replicas`), as selectable fields are named.
    pub fn field_name(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            match s {
                Step::Field(f) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(f);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_and_writes_simple_paths() {
        let p = JsonPath::parse(".spec.replicas").unwrap();
        let mut obj = json!({"spec": {"replicas": 2}});
        assert_eq!(p.get(&obj), Some(&json!(2)));
        assert!(p.set(&mut obj, json!(5)));
        assert_eq!(obj["spec"]["replicas"], 5);
        let mut empty = json!({});
        assert!(
            JsonPath::parse(".status.replicas")
                .unwrap()
                .set(&mut empty, json!(1))
        );
        assert_eq!(empty, json!({"status": {"replicas": 1}}));
        let l = JsonPath::parse(".metadata.labels['app.kubernetes.io/name']").unwrap();
        let o = json!({"metadata": {"labels": {"app.kubernetes.io/name": "x"}}});
        assert_eq!(l.get(&o), Some(&json!("x")));
        let i = JsonPath::parse("{.spec.items[1]}").unwrap();
        assert_eq!(i.get(&json!({"spec": {"items": [1, 2]}})), Some(&json!(2)));
        assert_eq!(p.field_name(), "spec.replicas");
    }

    #[test]
    fn refuses_malformed_paths() {
        assert!(JsonPath::parse("spec.replicas").is_err());
        assert!(JsonPath::parse(".spec..x").is_err());
        assert!(JsonPath::parse(".spec[x").is_err());
        assert!(JsonPath::parse("").is_err());
    }
}
