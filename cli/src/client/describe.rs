//! `describe TYPE NAME`: a readable, kubectl-like account of an object's essentials and its
//! events, laid out with Go's tabwriter as kubectl lays it out.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, bail};
use kube::api::ListParams;
use serde_json::Value;

use super::describe_kinds as kinds;
use super::resource::{self, Res};
use super::{Ctx, errors, printer, tabwriter};

/// Flags of `describe`.
#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// `TYPE NAME...` or `TYPE/NAME`; a TYPE alone describes every object of it.
    pub args: Vec<String>,
    /// Label selector (describe every match).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Tab-separated description text, aligned at the end by [`tabwriter::tabwrite`].
#[derive(Default)]
pub struct W {
    text: String,
}

impl W {
    /// `{indent}{key}:\t{value}`.
    pub fn kv(&mut self, indent: &str, key: &str, value: impl AsRef<str>) {
        self.text
            .push_str(&format!("{indent}{key}:\t{}\n", value.as_ref()));
    }
    /// A raw line (may hold tabs).
    pub fn line(&mut self, line: impl AsRef<str>) {
        self.text.push_str(line.as_ref());
        self.text.push('\n');
    }
    /// The text with its tabs left in, as kubectl prints a revision's template.
    pub fn raw(self) -> String {
        self.text
    }
    /// The aligned text.
    pub fn finish(self) -> String {
        tabwriter::tabwrite(&self.text, 2)
    }
}

/// Other objects a description mentions (a Deployment's ReplicaSets, a Service's endpoints).
#[derive(Default)]
pub struct Related {
    /// ReplicaSets owned by the described Deployment.
    pub replicasets: Option<Vec<Value>>,
    /// The Endpoints object of the described Service.
    pub endpoints: Option<Value>,
}

/// Runs `describe`.
pub async fn run(ctx: &Ctx, args: DescribeArgs) -> Result<ExitCode> {
    if args.args.is_empty() {
        bail!(
            "You must specify the type of resource to describe. Use \"skiff api-resources\" for a complete list of supported resources."
        );
    }
    let mut failed = false;
    let mut first = true;
    for (t, name) in resource::split_args(&args.args)? {
        let res = resource::resolve(&ctx.client, &t).await?;
        let api = res.api(&ctx.client, Some(&ctx.namespace));
        let objects: Vec<Value> = match name {
            Some(n) => match api.get(&n).await {
                Ok(o) => vec![serde_json::to_value(o)?],
                Err(e) => {
                    eprintln!("{}", errors::format(&anyhow::Error::new(e)));
                    failed = true;
                    continue;
                }
            },
            None => {
                let lp = ListParams {
                    label_selector: args.selector.clone(),
                    ..Default::default()
                };
                let list = api.list(&lp).await?;
                list.items
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<_, _>>()?
            }
        };
        for obj in objects {
            if !first {
                println!("\n");
            }
            first = false;
            let events = events_for(ctx, &obj).await.unwrap_or_default();
            let related = related_for(ctx, &res, &obj).await;
            print!("{}", describe(&res, &obj, &related, &events));
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn related_for(ctx: &Ctx, res: &Res, obj: &Value) -> Related {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
    let mut related = Related::default();
    match res.kind.as_str() {
        "Deployment" => {
            let rs = resource::resolve_local("replicasets").expect("replicasets are in the table");
            if let Ok(list) = rs
                .api(&ctx.client, Some(ns))
                .list(&ListParams::default())
                .await
            {
                let uid = &obj["metadata"]["uid"];
                let owned = list
                    .items
                    .into_iter()
                    .filter_map(|r| serde_json::to_value(r).ok())
                    .filter(|r| {
                        r["metadata"]["ownerReferences"]
                            .as_array()
                            .is_some_and(|o| o.iter().any(|o| &o["uid"] == uid))
                    })
                    .collect();
                related.replicasets = Some(owned);
            }
        }
        "Service" => {
            let ep = resource::resolve_local("endpoints").expect("endpoints are in the table");
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            if let Ok(Some(e)) = ep.api(&ctx.client, Some(ns)).get_opt(name).await {
                related.endpoints = serde_json::to_value(e).ok();
            }
        }
        _ => {}
    }
    related
}

async fn events_for(ctx: &Ctx, obj: &Value) -> Result<Vec<Value>> {
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let ns = meta["namespace"].as_str().unwrap_or_default();
    let uid = meta["uid"].as_str().unwrap_or_default();
    let mut fs = format!("involvedObject.name={name}");
    if !ns.is_empty() {
        fs.push_str(&format!(",involvedObject.namespace={ns}"));
    }
    if !uid.is_empty() {
        fs.push_str(&format!(",involvedObject.uid={uid}"));
    }
    let events = resource::resolve_local("events").expect("events are in the resource table");
    let ns = if ns.is_empty() { "default" } else { ns };
    let list = events
        .api(&ctx.client, Some(ns))
        .list(&ListParams::default().fields(&fs))
        .await?;
    let mut out: Vec<Value> = list
        .items
        .into_iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()?;
    out.sort_by_key(|e| event_time(e).map(str::to_string));
    Ok(out)
}

fn event_time(e: &Value) -> Option<&str> {
    ["eventTime", "firstTimestamp", "lastTimestamp"]
        .iter()
        .find_map(|k| e[*k].as_str())
        .or_else(|| e["metadata"]["creationTimestamp"].as_str())
}

/// A scalar as kubectl prints it; absent or empty is `<none>`.
pub fn s(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(s) if s.is_empty() => "<none>".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A timestamp as kubectl prints it (RFC 1123 with numeric zone, local time).
pub fn when(v: &Value) -> String {
    match v.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        None => "<unknown>".into(),
    }
}

/// `Labels:\tk=v` then `\tk2=v2` lines, sorted; `<none>` when empty.
pub fn labels(w: &mut W, indent: &str, title: &str, m: &Value) {
    multiline(w, indent, title, m, "=", &[]);
}

/// Annotations as kubectl prints them, leaving out the last-applied configuration.
pub fn annotations(w: &mut W, indent: &str, title: &str, m: &Value) {
    multiline(w, indent, title, m, ": ", &[super::apply::LAST_APPLIED]);
}

fn multiline(w: &mut W, indent: &str, title: &str, m: &Value, sep: &str, skip: &[&str]) {
    let entries: BTreeMap<&String, &Value> = m
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .collect();
    if entries.is_empty() {
        w.kv(indent, title, "<none>");
        return;
    }
    for (i, (k, v)) in entries.iter().enumerate() {
        let text = format!("{k}{sep}{}", v.as_str().unwrap_or_default());
        if i == 0 {
            w.kv(indent, title, text);
        } else {
            // kubectl writes continuation lines without the indent; the aligned output is
            // the same, and `rollout history --revision` prints the raw tabs.
            w.line(format!("\t{text}"));
        }
    }
}

/// The full description of one object.
pub fn describe(res: &Res, obj: &Value, related: &Related, events: &[Value]) -> String {
    let mut w = W::default();
    match res.kind.as_str() {
        "Deployment" => kinds::deployment(&mut w, obj, related),
        "ReplicaSet" => kinds::replicaset(&mut w, obj),
        "Pod" => super::describe_pod::pod(&mut w, obj),
        "Service" => kinds::service(&mut w, obj, related),
        "ConfigMap" => kinds::configmap(&mut w, obj),
        "Secret" => kinds::secret(&mut w, obj),
        "Namespace" => kinds::namespace(&mut w, obj),
        "ServiceAccount" => kinds::service_account(&mut w, obj),
        _ => generic(&mut w, res, obj),
    }
    // kubectl describes namespaces and secrets without their events.
    if res.kind != "Namespace" && res.kind != "Secret" {
        event_lines(&mut w, events);
    }
    w.finish()
}

/// Name, namespace (when namespaced), labels and annotations.
pub fn header(w: &mut W, obj: &Value, namespaced: bool) {
    let meta = &obj["metadata"];
    w.kv("", "Name", s(&meta["name"]));
    if namespaced {
        w.kv("", "Namespace", s(&meta["namespace"]));
    }
}

fn generic(w: &mut W, res: &Res, obj: &Value) {
    header(w, obj, res.namespaced);
    labels(w, "", "Labels", &obj["metadata"]["labels"]);
    annotations(w, "", "Annotations", &obj["metadata"]["annotations"]);
    w.kv("", "API Version", s(&obj["apiVersion"]));
    w.kv("", "Kind", s(&obj["kind"]));
    let mut meta: Vec<(&String, &Value)> = obj["metadata"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "name" | "namespace" | "labels" | "annotations" | "managedFields"
            )
        })
        .collect();
    meta.sort_by_key(|(k, _)| *k);
    if !meta.is_empty() {
        w.line("Metadata:");
        for (k, v) in meta {
            nested(w, 1, k, v);
        }
    }
    let mut rest: Vec<(&String, &Value)> = obj.as_object().into_iter().flatten().collect();
    rest.sort_by_key(|(k, _)| *k);
    for (k, v) in rest {
        if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            nested(w, 0, k, v);
        }
    }
}

fn nested(w: &mut W, level: usize, key: &str, v: &Value) {
    let indent = "  ".repeat(level);
    let title = words(key);
    match v {
        Value::Object(m) => {
            w.line(format!("{indent}{title}:"));
            for (k, v) in m {
                nested(w, level + 1, k, v);
            }
        }
        Value::Array(items) => {
            w.line(format!("{indent}{title}:"));
            for item in items {
                match item.as_object() {
                    Some(m) => m.iter().for_each(|(k, v)| nested(w, level + 1, k, v)),
                    None => w.line(format!("{indent}  {}", s(item))),
                }
            }
        }
        other => w.kv(&indent, &title, s(other)),
    }
}

/// `holderIdentity` → `Holder Identity`, `podCIDR` → `Pod CIDR`.
pub fn words(key: &str) -> String {
    const ACRONYMS: &[&str] = &["API", "URL", "UID", "OSB", "GUID"];
    let chars: Vec<char> = key.chars().collect();
    let mut parts: Vec<String> = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = i > 0 && c.is_uppercase() && chars[i - 1].is_lowercase();
        if i == 0 || boundary {
            parts.push(String::new());
        }
        parts.last_mut().expect("a part was started").push(c);
    }
    parts
        .iter()
        .map(|p| {
            let upper = p.to_uppercase();
            if ACRONYMS.contains(&upper.as_str()) {
                return upper;
            }
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn event_lines(w: &mut W, events: &[Value]) {
    if events.is_empty() {
        w.kv("", "Events", "<none>");
        return;
    }
    w.line("Events:");
    w.line("  Type\tReason\tAge\tFrom\tMessage");
    w.line("  ----\t------\t----\t----\t-------");
    for e in events {
        let first = printer::age(e["eventTime"].as_str().or(e["firstTimestamp"].as_str()));
        let count = e["count"].as_i64().unwrap_or(1);
        let interval = if let Some(series) = e.get("series").filter(|s| s.is_object()) {
            let last = printer::age(series["lastObservedTime"].as_str());
            format!("{last} (x{} over {first})", s(&series["count"]))
        } else if count > 1 {
            format!(
                "{} (x{count} over {first})",
                printer::age(e["lastTimestamp"].as_str())
            )
        } else {
            first
        };
        let from = e["source"]["component"]
            .as_str()
            .filter(|c| !c.is_empty())
            .or(e["reportingComponent"].as_str())
            .unwrap_or_default();
        let message = e["message"].as_str().unwrap_or_default().trim();
        w.line(format!(
            "  {}\t{}\t{interval}\t{from}\t{message}",
            s(&e["type"]),
            s(&e["reason"])
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_tabulated_after_the_fields() {
        let res = resource::resolve_local("cm").unwrap();
        let obj = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}});
        let ev = json!({"type": "Normal", "reason": "Scheduled", "message": "assigned ",
            "source": {"component": "default-scheduler"}, "firstTimestamp": "2020-01-01T00:00:00Z",
            "lastTimestamp": "2020-01-02T00:00:00Z", "count": 3});
        let text = describe(&res, &obj, &Related::default(), &[ev]);
        assert!(text.contains("k:\n----\nv\n"), "{text}");
        assert!(text.contains("Events:\n  Type    Reason     Age"), "{text}");
        assert!(text.contains(" (x3 over "), "{text}");
        assert!(text.ends_with("default-scheduler  assigned\n"), "{text}");
    }

    #[test]
    fn generic_kinds_print_every_field() {
        let res = resource::resolve_local("leases").unwrap();
        let obj = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}});
        let text = describe(&res, &obj, &Related::default(), &[]);
        assert!(
            text.contains("API Version:  coordination.k8s.io/v1\nKind:         Lease\nSpec:\n"),
            "{text}"
        );
        assert!(
            text.contains("  Holder Identity:         n1\n  Lease Duration Seconds:  40\n"),
            "{text}"
        );
        assert_eq!(words("podCIDR"), "Pod CIDR");
        assert_eq!(words("uid"), "UID");
        assert_eq!(words("apiVersion"), "API Version");
        assert_eq!(words("creationTimestamp"), "Creation Timestamp");
    }
}
