//! `describe TYPE NAME`: a readable, kubectl-like account of an object's essentials and its
//! events.

use std::process::ExitCode;

use anyhow::{Result, bail};
use kube::api::ListParams;
use serde_json::Value;

use super::printer::{self, format_labels};
use super::resource::{self, Res};
use super::{Ctx, errors};

/// Flags of `describe`.
#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// `TYPE NAME...` or `TYPE/NAME`.
    pub args: Vec<String>,
    /// Label selector (describe every match).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Lines of a description: indent level, label and optional value.
#[derive(Default)]
pub struct Desc {
    lines: Vec<(usize, String, Option<String>)>,
}

impl Desc {
    /// A `Label:  value` line.
    pub fn kv(&mut self, level: usize, key: &str, value: impl Into<String>) {
        let label = if key.is_empty() {
            String::new()
        } else {
            format!("{key}:")
        };
        self.lines.push((level, label, Some(value.into())));
    }
    /// A line of its own (a section title or free text).
    pub fn line(&mut self, level: usize, text: impl Into<String>) {
        self.lines.push((level, text.into(), None));
    }
    /// Renders with the values of neighbouring lines at one indent aligned.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < self.lines.len() {
            let level = self.lines[i].0;
            let mut j = i;
            while j < self.lines.len() && self.lines[j].0 == level && self.lines[j].2.is_some() {
                j += 1;
            }
            if j == i {
                let (l, text, _) = &self.lines[i];
                out.push_str(&format!("{}{}\n", "  ".repeat(*l), text));
                i += 1;
                continue;
            }
            let width = self.lines[i..j]
                .iter()
                .map(|(_, k, _)| k.len())
                .max()
                .unwrap_or(0);
            for (l, k, v) in &self.lines[i..j] {
                let v = v.as_deref().unwrap_or_default();
                out.push_str(
                    format!("{}{:<w$}{}", "  ".repeat(*l), k, v, w = width + 2).trim_end(),
                );
                out.push('\n');
            }
            i = j;
        }
        out
    }
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
                let mut lp = ListParams::default();
                lp.label_selector = args.selector.clone();
                api.list(&lp)
                    .await?
                    .items
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
            print!("{}", describe(&res, &obj, &events));
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
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
    ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|k| e[*k].as_str())
        .or_else(|| e["metadata"]["creationTimestamp"].as_str())
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "<none>".into(),
        Value::String(s) if s.is_empty() => "<none>".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn map_lines(d: &mut Desc, level: usize, key: &str, m: &Value, sep: &str) {
    let entries: Vec<(String, String)> = m
        .as_object()
        .map(|m| {
            let mut v: Vec<_> = m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    if entries.is_empty() {
        d.kv(level, key, "<none>");
        return;
    }
    for (i, (k, v)) in entries.iter().enumerate() {
        d.kv(level, if i == 0 { key } else { "" }, format!("{k}{sep}{v}"));
    }
}

/// The full description of one object.
pub fn describe(res: &Res, obj: &Value, events: &[Value]) -> String {
    let mut d = Desc::default();
    let meta = &obj["metadata"];
    d.kv(0, "Name", s(&meta["name"]));
    if res.namespaced {
        d.kv(0, "Namespace", s(&meta["namespace"]));
    }
    d.kv(0, "CreationTimestamp", s(&meta["creationTimestamp"]));
    map_lines(&mut d, 0, "Labels", &meta["labels"], "=");
    let mut annotations = meta["annotations"].clone();
    if let Some(a) = annotations.as_object_mut() {
        a.remove(super::apply::LAST_APPLIED);
    }
    map_lines(&mut d, 0, "Annotations", &annotations, ": ");
    if let Some(owner) = meta["ownerReferences"].as_array().and_then(|o| o.first()) {
        d.kv(
            0,
            "Controlled By",
            format!("{}/{}", s(&owner["kind"]), s(&owner["name"])),
        );
    }
    match res.kind.as_str() {
        "Deployment" => deployment(&mut d, obj),
        "ReplicaSet" | "DaemonSet" => replicaset(&mut d, obj),
        "Pod" => pod(&mut d, obj),
        "Service" => service(&mut d, obj),
        "ConfigMap" | "Secret" => data(&mut d, obj, res.kind == "Secret"),
        _ => {
            for (k, v) in obj.as_object().into_iter().flatten() {
                if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    generic(&mut d, 0, k, v);
                }
            }
        }
    }
    event_lines(&mut d, events);
    d.render()
}

fn generic(d: &mut Desc, level: usize, key: &str, v: &Value) {
    let title = capitalize(key);
    match v {
        Value::Object(m) => {
            d.line(level, format!("{title}:"));
            for (k, v) in m {
                generic(d, level + 1, k, v);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object()) => {
            d.line(level, format!("{title}:"));
            for item in items {
                for (k, v) in item.as_object().into_iter().flatten() {
                    generic(d, level + 1, k, v);
                }
            }
        }
        Value::Array(items) => d.kv(
            level,
            &title,
            items.iter().map(s).collect::<Vec<_>>().join(", "),
        ),
        other => d.kv(level, &title, s(other)),
    }
}

fn capitalize(k: &str) -> String {
    let mut c = k.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn selector_text(sel: &Value) -> String {
    let labels = sel.get("matchLabels").unwrap_or(sel);
    format_labels(labels)
}

fn deployment(d: &mut Desc, o: &Value) {
    let (spec, st) = (&o["spec"], &o["status"]);
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    d.kv(0, "Selector", selector_text(&spec["selector"]));
    d.kv(
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            spec["replicas"].as_i64().unwrap_or(1),
            n(&st["updatedReplicas"]),
            n(&st["replicas"]),
            n(&st["availableReplicas"]),
            n(&st["unavailableReplicas"])
        ),
    );
    d.kv(0, "StrategyType", s(&spec["strategy"]["type"]));
    d.kv(
        0,
        "MinReadySeconds",
        n(&spec["minReadySeconds"]).to_string(),
    );
    pod_template(d, &spec["template"]);
    conditions(d, &st["conditions"], &["Type", "Status", "Reason"]);
}

fn replicaset(d: &mut Desc, o: &Value) {
    let (spec, st) = (&o["spec"], &o["status"]);
    d.kv(0, "Selector", selector_text(&spec["selector"]));
    d.kv(
        0,
        "Replicas",
        format!(
            "{} current / {} desired",
            st["replicas"].as_i64().unwrap_or(0),
            s(&spec["replicas"])
        ),
    );
    d.kv(
        0,
        "Pods Status",
        format!(
            "{} Ready / {} Available",
            st["readyReplicas"].as_i64().unwrap_or(0),
            st["availableReplicas"].as_i64().unwrap_or(0)
        ),
    );
    pod_template(d, &spec["template"]);
}

fn pod_template(d: &mut Desc, t: &Value) {
    d.line(0, "Pod Template:");
    map_lines(d, 1, "Labels", &t["metadata"]["labels"], "=");
    containers(d, 1, &t["spec"]["containers"], &Value::Null);
}

fn containers(d: &mut Desc, level: usize, list: &Value, statuses: &Value) {
    d.line(level, "Containers:");
    for c in list.as_array().into_iter().flatten() {
        d.line(level + 1, format!("{}:", s(&c["name"])));
        d.kv(level + 2, "Image", s(&c["image"]));
        let ports: Vec<String> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}/{}",
                    s(&p["containerPort"]),
                    p["protocol"].as_str().unwrap_or("TCP")
                )
            })
            .collect();
        d.kv(
            level + 2,
            "Port",
            if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(", ")
            },
        );
        if let Some(cmd) = c["command"].as_array() {
            d.kv(
                level + 2,
                "Command",
                cmd.iter().map(s).collect::<Vec<_>>().join(" "),
            );
        }
        if let Some(st) = statuses
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == c["name"]))
        {
            let state = st["state"]
                .as_object()
                .and_then(|m| m.keys().next().cloned())
                .unwrap_or_default();
            d.kv(level + 2, "State", capitalize(&state));
            d.kv(level + 2, "Ready", s(&st["ready"]));
            d.kv(level + 2, "Restart Count", s(&st["restartCount"]));
        }
        if let Some(p) = c.get("readinessProbe") {
            d.kv(level + 2, "Readiness", probe_text(p));
        }
        if let Some(p) = c.get("livenessProbe") {
            d.kv(level + 2, "Liveness", probe_text(p));
        }
        let env: Vec<String> = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| match e.get("value") {
                Some(v) => format!("{}:  {}", s(&e["name"]), s(v)),
                None => format!("{}:  <set from a reference>", s(&e["name"])),
            })
            .chain(c["envFrom"].as_array().into_iter().flatten().map(|e| {
                let (kind, r) = match e.get("configMapRef") {
                    Some(r) => ("ConfigMap", r),
                    None => ("Secret", &e["secretRef"]),
                };
                format!(
                    "{}  {kind}  Optional: {}",
                    s(&r["name"]),
                    r["optional"].as_bool().unwrap_or(false)
                )
            }))
            .collect();
        if env.is_empty() {
            d.kv(level + 2, "Environment", "<none>");
        } else {
            d.line(level + 2, "Environment:");
            for e in env {
                d.line(level + 3, e);
            }
        }
    }
}

fn probe_text(p: &Value) -> String {
    let how = if let Some(h) = p.get("httpGet") {
        format!(
            "http-get http://:{}{}",
            s(&h["port"]),
            h["path"].as_str().unwrap_or("/")
        )
    } else if let Some(t) = p.get("tcpSocket") {
        format!("tcp-socket :{}", s(&t["port"]))
    } else if let Some(e) = p.get("exec") {
        format!(
            "exec [{}]",
            e["command"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect::<Vec<_>>()
                .join(" ")
        )
    } else {
        "unknown".into()
    };
    let n = |k: &str, dflt: i64| p[k].as_i64().unwrap_or(dflt);
    format!(
        "{how} delay={}s timeout={}s period={}s #success={} #failure={}",
        n("initialDelaySeconds", 0),
        n("timeoutSeconds", 1),
        n("periodSeconds", 10),
        n("successThreshold", 1),
        n("failureThreshold", 3)
    )
}

fn conditions(d: &mut Desc, conds: &Value, cols: &[&str]) {
    let Some(list) = conds.as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    d.line(0, "Conditions:");
    let mut rows = vec![cols.iter().map(|c| c.to_string()).collect::<Vec<_>>()];
    rows.push(cols.iter().map(|c| "-".repeat(c.len())).collect());
    for c in list {
        rows.push(cols.iter().map(|k| s(&c[k.to_ascii_lowercase()])).collect());
    }
    for line in printer::align(&rows).lines() {
        d.line(1, line);
    }
}

fn pod(d: &mut Desc, o: &Value) {
    let (spec, st) = (&o["spec"], &o["status"]);
    let node = match (spec["nodeName"].as_str(), st["hostIP"].as_str()) {
        (Some(n), Some(ip)) => format!("{n}/{ip}"),
        (Some(n), None) => n.to_string(),
        _ => "<none>".into(),
    };
    d.kv(0, "Node", node);
    d.kv(0, "Start Time", s(&st["startTime"]));
    d.kv(0, "Status", s(&st["phase"]));
    d.kv(0, "IP", s(&st["podIP"]));
    containers(d, 0, &spec["containers"], &st["containerStatuses"]);
    conditions(d, &st["conditions"], &["Type", "Status"]);
}

fn service(d: &mut Desc, o: &Value) {
    let spec = &o["spec"];
    d.kv(0, "Selector", format_labels(&spec["selector"]));
    d.kv(0, "Type", s(&spec["type"]));
    d.kv(0, "IP", s(&spec["clusterIP"]));
    for p in spec["ports"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("<unset>");
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        d.kv(0, "Port", format!("{name}  {}/{proto}", s(&p["port"])));
        d.kv(
            0,
            "TargetPort",
            format!("{}/{proto}", s(p.get("targetPort").unwrap_or(&p["port"]))),
        );
        if let Some(np) = p.get("nodePort") {
            d.kv(0, "NodePort", format!("{name}  {}/{proto}", s(np)));
        }
    }
    d.kv(
        0,
        "Session Affinity",
        spec["sessionAffinity"].as_str().unwrap_or("None"),
    );
}

fn data(d: &mut Desc, o: &Value, secret: bool) {
    if secret {
        d.kv(0, "Type", s(&o["type"]));
    }
    d.line(0, "");
    d.line(0, "Data");
    d.line(0, "====");
    for (k, v) in o["data"].as_object().into_iter().flatten() {
        if secret {
            let len = v.as_str().map(|b| b.len() * 3 / 4).unwrap_or(0);
            d.kv(0, k, format!("{len} bytes"));
        } else {
            d.line(0, format!("{k}:"));
            d.line(0, "----");
            d.line(0, s(v));
            d.line(0, "");
        }
    }
}

fn event_lines(d: &mut Desc, events: &[Value]) {
    if events.is_empty() {
        d.kv(0, "Events", "<none>");
        return;
    }
    d.line(0, "Events:");
    let mut rows = vec![
        ["Type", "Reason", "Age", "From", "Message"]
            .map(String::from)
            .to_vec(),
        ["----", "------", "----", "----", "-------"]
            .map(String::from)
            .to_vec(),
    ];
    for e in events {
        let mut age = printer::age(event_time(e));
        let count = e["count"].as_i64().unwrap_or(1);
        if count > 1 {
            let first = e["firstTimestamp"].as_str().or(event_time(e));
            age = format!("{age} (x{count} over {})", printer::age(first));
        }
        let from = e["source"]["component"]
            .as_str()
            .or(e["reportingComponent"].as_str())
            .unwrap_or_default()
            .to_string();
        rows.push(vec![
            s(&e["type"]),
            s(&e["reason"]),
            age,
            from,
            e["message"].as_str().unwrap_or_default().trim().to_string(),
        ]);
    }
    for line in printer::align(&rows).lines() {
        d.line(1, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_description_has_essentials_and_no_events() {
        let res = resource::resolve_local("deploy").unwrap();
        let obj = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "strategy": {"type": "RollingUpdate"},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "busybox:1.36", "ports": [{"containerPort": 8080}]}]}}},
            "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1, "unavailableReplicas": 1}});
        let text = describe(&res, &obj, &[]);
        assert!(
            text.starts_with("Name:               web\nNamespace:          default\n"),
            "{text}"
        );
        assert!(text.contains("Annotations:        <none>\n"), "{text}");
        assert!(
            text.contains(
                "Replicas:           2 desired | 2 updated | 2 total | 1 available | 1 unavailable"
            ),
            "{text}"
        );
        assert!(
            text.contains("      Image:        busybox:1.36\n      Port:         8080/TCP\n"),
            "{text}"
        );
        assert!(text.ends_with("Events:  <none>\n"), "{text}");
    }

    #[test]
    fn events_are_tabulated() {
        let res = resource::resolve_local("cm").unwrap();
        let obj = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"k": "v"}});
        let ev = json!({"type": "Normal", "reason": "Scheduled", "message": "assigned",
            "source": {"component": "default-scheduler"}, "lastTimestamp": "2020-01-01T00:00:00Z"});
        let text = describe(&res, &obj, &[ev]);
        assert!(text.contains("k:\n----\nv\n"), "{text}");
        assert!(
            text.contains("Events:\n  Type     Reason      Age"),
            "{text}"
        );
        assert!(text.contains("  Normal   Scheduled   "), "{text}");
    }
}
