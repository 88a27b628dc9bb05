//! Reading manifests: files, directories (recursively `*.yaml`, `*.yml`, `*.json`) and `-`
//! for stdin, multi-document YAML, JSON, and `kind: List` flattened into its items.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::Value;

/// One object read from a manifest, with where it came from for error messages.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it was read from (`-` for stdin).
    pub source: String,
    /// The object as written.
    pub object: Value,
}

/// Reads every object named by `-f` arguments, in order.
pub fn read_all(paths: &[String]) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            out.extend(parse(&text, "-")?);
            continue;
        }
        let path = Path::new(p);
        if !path.exists() {
            bail!("the path \"{p}\" does not exist");
        }
        for file in files_under(path)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            out.extend(parse(&text, &file.display().to_string())?);
        }
    }
    if out.is_empty() {
        bail!("no objects passed to apply");
    }
    Ok(out)
}

/// A file as itself; a directory as its manifest files, recursively, sorted by path.
fn files_under(path: &Path) -> Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(path)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p)?);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
        {
            out.push(p);
        }
    }
    Ok(out)
}

/// Parses one file's text: JSON, or YAML with any number of `---` separated documents.
pub fn parse(text: &str, source: &str) -> Result<Vec<Manifest>> {
    let mut objects = Vec::new();
    if text.trim_start().starts_with('{') {
        let v: Value =
            serde_json::from_str(text).with_context(|| format!("error parsing {source}"))?;
        objects.push(v);
    } else {
        for doc in serde_yaml::Deserializer::from_str(text) {
            let v = Value::deserialize(doc).with_context(|| format!("error parsing {source}"))?;
            if !v.is_null() {
                objects.push(v);
            }
        }
    }
    let mut out = Vec::new();
    for v in objects {
        flatten(v, source, &mut out)?;
    }
    Ok(out)
}

fn flatten(v: Value, source: &str, out: &mut Vec<Manifest>) -> Result<()> {
    if !v.is_object() {
        bail!("error validating \"{source}\": a manifest must be an object");
    }
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind == "List" || (kind.ends_with("List") && v.get("items").is_some()) {
        for item in v
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            flatten(item.clone(), source, out)?;
        }
        return Ok(());
    }
    if kind.is_empty() {
        bail!("error validating data from \"{source}\": kind not set");
    }
    if v.get("apiVersion")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        bail!("error validating data from \"{source}\": apiVersion not set");
    }
    out.push(Manifest {
        source: source.to_string(),
        object: v,
    });
    Ok(())
}

/// The object's `metadata.name`, empty when missing.
pub fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object's `metadata.namespace`, if set.
pub fn namespace_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_skips_empty_documents() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n";
        let ms = parse(text, "x.yaml").unwrap();
        let names: Vec<_> = ms.iter().map(|m| name_of(&m.object)).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn json_and_lists_are_flattened() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},
            {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"b","namespace":"x"}}]}"#;
        let ms = parse(text, "x.json").unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(namespace_of(&ms[1].object), Some("x"));
        assert_eq!(ms[1].object["kind"], "Deployment");
    }

    #[test]
    fn missing_kind_is_an_error() {
        let err = parse("apiVersion: v1\nmetadata:\n  name: a\n", "f.yaml").unwrap_err();
        assert!(err.to_string().contains("kind not set"), "{err}");
    }

    #[test]
    fn directories_are_read_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sub/b.json"),
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "kind: nope").unwrap();
        let ms = read_all(&[dir.path().display().to_string()]).unwrap();
        let kinds: Vec<_> = ms
            .iter()
            .map(|m| m.object["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["ConfigMap", "Secret"]);
    }
}
