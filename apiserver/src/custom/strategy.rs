//! The strategy of one served version of a custom kind, built from its CRD version: schema
//! defaults and validation, the printer columns (Name, the CRD's `additionalPrinterColumns`,
//! else Age), `selectableFields`, the scale subresource's paths, and no strategic merge.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::JsonPath;
use super::intern::intern;
use crate::error::Cause;
use crate::strategy::{Column, ScalePaths, Strategy};

const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.";

/// One `additionalPrinterColumns` entry.
struct PrinterColumn {
    column: Column,
    path: JsonPath,
}

/// Strategy of a custom resource version.
pub struct CustomResourceStrategy {
    schema: Value,
    columns: Vec<PrinterColumn>,
    selectable: Vec<String>,
    scale: Option<ScalePaths>,
}

impl CustomResourceStrategy {
    /// The strategy of CRD version `version` (an entry of `spec.versions`).
    pub fn new(version: &Value) -> Self {
        let schema = version
            .pointer("/schema/openAPIV3Schema")
            .cloned()
            .unwrap_or(json!({}));
        let columns = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let s = |f: &str| c.get(f).and_then(Value::as_str).unwrap_or("");
                Some(PrinterColumn {
                    path: JsonPath::parse(s("jsonPath")).ok()?,
                    column: Column {
                        name: intern(s("name")),
                        kind: intern(s("type")),
                        format: intern(s("format")),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
                        description: intern(s("description")),
                    },
                })
            })
            .collect();
        let selectable = version
            .get("selectableFields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
            .filter_map(|p| JsonPath::parse(p).ok())
            .map(|p| p.field_name())
            .collect();
        let scale = version.pointer("/subresources/scale").and_then(|s| {
            let p = |f: &str| {
                s.get(f)
                    .and_then(Value::as_str)
                    .and_then(|p| JsonPath::parse(p).ok())
            };
            Some(ScalePaths {
                spec_replicas: p("specReplicasPath")?,
                status_replicas: p("statusReplicasPath")?,
                selector: p("labelSelectorPath"),
                selector_is_text: true,
            })
        });
        Self {
            schema,
            columns,
            selectable,
            scale,
        }
    }

    fn cell(&self, c: &PrinterColumn, obj: &Value) -> Value {
        let Some(v) = c.path.get(obj) else {
            return Value::Null;
        };
        match (c.column.kind, v) {
            ("date", Value::String(t)) => {
                json!(crate::strategy::age_since(Some(t), Timestamp::now()))
            }
            ("string", Value::String(_)) => v.clone(),
            ("string", Value::Array(_) | Value::Object(_)) => json!(v.to_string()),
            ("string", other) => json!(crate::error::render_value(other).trim_matches('"')),
            _ => v.clone(),
        }
    }
}

impl Strategy for CustomResourceStrategy {
    fn default(&self, obj: &mut Value) {
        super::defaults::apply(&self.schema, obj);
    }

    fn validate(&self, obj: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        super::validate::validate(&self.schema, obj, "", &mut out);
        out
    }

    fn uses_generation(&self) -> bool {
        true
    }

    fn columns(&self) -> Vec<Column> {
        let name = Column {
            name: "Name",
            kind: "string",
            format: "name",
            priority: 0,
            description: NAME_DESCRIPTION,
        };
        if self.columns.is_empty() {
            let age = Column {
                name: "Age",
                kind: "date",
                format: "",
                priority: 0,
                description: AGE_DESCRIPTION,
            };
            return vec![name, age];
        }
        std::iter::once(name)
            .chain(self.columns.iter().map(|c| c.column.clone()))
            .collect()
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
        if self.columns.is_empty() {
            let created = obj
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str);
            return vec![
                name,
                json!(crate::strategy::age_since(created, Timestamp::now())),
            ];
        }
        std::iter::once(name)
            .chain(self.columns.iter().map(|c| self.cell(c, obj)))
            .collect()
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        if !self.selectable.iter().any(|f| f == path) {
            return None;
        }
        let p = JsonPath::parse(&format!(".{path}")).ok()?;
        Some(match p.get(obj) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        })
    }

    fn scale_paths(&self) -> ScalePaths {
        self.scale.clone().unwrap_or_else(ScalePaths::workload)
    }

    fn strategic_merge(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crontab_version() -> Value {
        json!({"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "cronSpec": {"type": "string"}, "image": {"type": "string"},
                    "replicas": {"type": "integer", "default": 1}}},
                "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
            "selectableFields": [{"jsonPath": ".spec.image"}],
            "subresources": {"scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
            "additionalPrinterColumns": [
                {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]})
    }

    #[test]
    fn printer_columns_selectable_fields_and_defaults() {
        let st = CustomResourceStrategy::new(&crontab_version());
        let names: Vec<&str> = st.columns().iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Spec", "Replicas", "Age"]);
        let mut obj = json!({"metadata": {"name": "c", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"cronSpec": "* * * * */5", "image": "img"}});
        st.default(&mut obj);
        assert_eq!(obj["spec"]["replicas"], 1);
        let cells = st.cells(&obj);
        assert_eq!(&cells[..3], &[json!("c"), json!("* * * * */5"), json!(1)]);
        assert!(
            cells[3].as_str().unwrap().ends_with('y') || cells[3].as_str().unwrap().contains('y')
        );
        assert_eq!(st.field(&obj, "spec.image").as_deref(), Some("img"));
        assert_eq!(st.field(&obj, "spec.cronSpec"), None);
        assert_eq!(st.scale_paths().spec_replicas.get(&obj), Some(&json!(1)));
        assert!(!st.strategic_merge());
    }

    #[test]
    fn a_version_without_columns_prints_name_and_age() {
        let mut v = crontab_version();
        v.as_object_mut()
            .unwrap()
            .remove("additionalPrinterColumns");
        let st = CustomResourceStrategy::new(&v);
        let names: Vec<&str> = st.columns().iter().map(|c| c.name).collect();
        assert_eq!(names, ["Name", "Age"]);
    }
}
