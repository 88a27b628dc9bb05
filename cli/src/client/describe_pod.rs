//! The pod parts of `describe`: pods and pod templates (containers, probes, environment,
//! mounts, volumes, tolerations), following kubectl's describers.

use serde_json::Value;

use super::describe::{W, annotations, header, labels, s, when};
use super::describe_kinds::{conditions, n};

pub(super) fn pod_template(w: &mut W, t: &Value) {
    let spec = &t["spec"];
    w.line("Pod Template:");
    labels(w, "  ", "Labels", &t["metadata"]["labels"]);
    if t["metadata"]["annotations"]
        .as_object()
        .is_some_and(|a| !a.is_empty())
    {
        annotations(w, "  ", "Annotations", &t["metadata"]["annotations"]);
    }
    if let Some(sa) = spec["serviceAccountName"]
        .as_str()
        .filter(|s| !s.is_empty())
    {
        w.kv("  ", "Service Account", sa);
    }
    if spec["initContainers"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        containers(
            w,
            "  ",
            "   ",
            "Init Containers",
            &spec["initContainers"],
            &Value::Null,
            &Value::Null,
        );
    }
    containers(
        w,
        "  ",
        "   ",
        "Containers",
        &spec["containers"],
        &Value::Null,
        &Value::Null,
    );
    volumes(w, "  ", "   ", &spec["volumes"]);
    labels(w, "  ", "Node-Selectors", &spec["nodeSelector"]);
    tolerations(w, "  ", &spec["tolerations"]);
}

fn containers(
    w: &mut W,
    title_indent: &str,
    name_indent: &str,
    title: &str,
    list: &Value,
    statuses: &Value,
    pod: &Value,
) {
    const F: &str = "    ";
    const SUB: &str = "      ";
    w.line(format!("{title_indent}{title}:"));
    for c in list.as_array().into_iter().flatten() {
        let status = statuses
            .as_array()
            .and_then(|a| a.iter().find(|x| x["name"] == c["name"]));
        w.line(format!("{name_indent}{}:", s(&c["name"])));
        if let Some(st) = status {
            w.kv(
                F,
                "Container ID",
                st["containerID"].as_str().unwrap_or_default(),
            );
        }
        w.kv(F, "Image", s(&c["image"]));
        if let Some(st) = status {
            w.kv(F, "Image ID", st["imageID"].as_str().unwrap_or_default());
        }
        let ports: Vec<&Value> = c["ports"]
            .as_array()
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let proto = |p: &Value| p["protocol"].as_str().unwrap_or("TCP").to_string();
        if ports.is_empty() {
            w.kv(F, "Port", "<none>");
            w.kv(F, "Host Port", "<none>");
        } else {
            let list = |key: &str| {
                ports
                    .iter()
                    .map(|p| format!("{}/{}", n(&p[key]), proto(p)))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            w.kv(F, "Port", list("containerPort"));
            w.kv(F, "Host Port", list("hostPort"));
        }
        for (key, title) in [("command", "Command"), ("args", "Args")] {
            if let Some(items) = c[key].as_array() {
                w.line(format!("{F}{title}:"));
                for i in items {
                    w.line(format!("{SUB}{}", i.as_str().unwrap_or_default()));
                }
            }
        }
        if let Some(st) = status {
            container_state(w, "State", &st["state"]);
            if st["lastState"].as_object().is_some_and(|m| !m.is_empty()) {
                container_state(w, "Last State", &st["lastState"]);
            }
            w.kv(
                F,
                "Ready",
                if st["ready"].as_bool().unwrap_or(false) {
                    "True"
                } else {
                    "False"
                },
            );
            w.kv(F, "Restart Count", n(&st["restartCount"]).to_string());
        }
        for (key, title) in [("limits", "Limits"), ("requests", "Requests")] {
            if let Some(m) = c["resources"][key].as_object().filter(|m| !m.is_empty()) {
                w.line(format!("{F}{title}:"));
                for (k, v) in m {
                    w.kv(SUB, k, s(v));
                }
            }
        }
        for (key, title) in [
            ("livenessProbe", "Liveness"),
            ("readinessProbe", "Readiness"),
            ("startupProbe", "Startup"),
        ] {
            if let Some(p) = c.get(key) {
                w.kv(F, title, probe_text(p));
            }
        }
        if let Some(from) = c["envFrom"].as_array().filter(|a| !a.is_empty()) {
            w.line(format!("{F}Environment Variables from:"));
            for e in from {
                let (kind, r) = match e.get("configMapRef") {
                    Some(r) => ("ConfigMap", r),
                    None => ("Secret", &e["secretRef"]),
                };
                let prefix = e["prefix"]
                    .as_str()
                    .map(|p| format!(" with prefix '{p}'"))
                    .unwrap_or_default();
                w.line(format!(
                    "{SUB}{}\t{kind}{prefix}\tOptional: {}",
                    s(&r["name"]),
                    r["optional"].as_bool().unwrap_or(false)
                ));
            }
        }
        match c["env"].as_array().filter(|a| !a.is_empty()) {
            None => w.kv(F, "Environment", "<none>"),
            Some(env) => {
                w.line(format!("{F}Environment:"));
                for e in env {
                    w.kv(SUB, &s(&e["name"]), env_value(e, pod));
                }
            }
        }
        match c["volumeMounts"].as_array().filter(|a| !a.is_empty()) {
            None => w.kv(F, "Mounts", "<none>"),
            Some(mounts) => {
                w.line(format!("{F}Mounts:"));
                for m in mounts {
                    let mode = if m["readOnly"].as_bool().unwrap_or(false) {
                        "ro"
                    } else {
                        "rw"
                    };
                    let sub = m["subPath"]
                        .as_str()
                        .map(|p| format!(",path=\"{p}\""))
                        .unwrap_or_default();
                    w.line(format!(
                        "{SUB}{} from {} ({mode}{sub})",
                        s(&m["mountPath"]),
                        s(&m["name"])
                    ));
                }
            }
        }
    }
}

fn env_value(e: &Value, pod: &Value) -> String {
    if let Some(v) = e.get("value") {
        return v.as_str().unwrap_or_default().to_string();
    }
    let from = &e["valueFrom"];
    if let Some(r) = from.get("configMapKeyRef") {
        format!(
            "<set to the key '{}' of config map '{}'>\tOptional: {}",
            s(&r["key"]),
            s(&r["name"]),
            r["optional"].as_bool().unwrap_or(false)
        )
    } else if let Some(r) = from.get("secretKeyRef") {
        format!(
            "<set to the key '{}' in secret '{}'>\tOptional: {}",
            s(&r["key"]),
            s(&r["name"]),
            r["optional"].as_bool().unwrap_or(false)
        )
    } else if let Some(r) = from.get("fieldRef") {
        format!(
            "{} ({}:{})",
            field_value(pod, r["fieldPath"].as_str().unwrap_or_default()),
            r["apiVersion"].as_str().unwrap_or("v1"),
            s(&r["fieldPath"])
        )
    } else if let Some(r) = from.get("resourceFieldRef") {
        format!(
            "{} ({})",
            s(&r["resource"]),
            r["containerName"].as_str().unwrap_or_default()
        )
    } else {
        String::new()
    }
}

fn container_state(w: &mut W, title: &str, state: &Value) {
    let Some((kind, detail)) = state.as_object().and_then(|m| m.iter().next()) else {
        w.kv("    ", title, "Waiting");
        return;
    };
    let mut chars = kind.chars();
    let name: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    w.kv("    ", title, name);
    for (key, label) in [
        ("reason", "Reason"),
        ("message", "Message"),
        ("exitCode", "Exit Code"),
    ] {
        if let Some(v) = detail.get(key) {
            w.kv("      ", label, s(v));
        }
    }
    for (key, label) in [("startedAt", "Started"), ("finishedAt", "Finished")] {
        if let Some(v) = detail.get(key) {
            w.kv("      ", label, when(v));
        }
    }
}

fn probe_text(p: &Value) -> String {
    let how = if let Some(h) = p.get("httpGet") {
        format!(
            "http-get {}://{}:{}{}",
            h["scheme"].as_str().unwrap_or("http").to_lowercase(),
            h["host"].as_str().unwrap_or_default(),
            s(&h["port"]),
            h["path"].as_str().unwrap_or_default()
        )
    } else if let Some(t) = p.get("tcpSocket") {
        format!(
            "tcp-socket {}:{}",
            t["host"].as_str().unwrap_or_default(),
            s(&t["port"])
        )
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
    let v = |k: &str, dflt: i64| p[k].as_i64().unwrap_or(dflt);
    format!(
        "{how} delay={}s timeout={}s period={}s #success={} #failure={}",
        v("initialDelaySeconds", 0),
        v("timeoutSeconds", 1),
        v("periodSeconds", 10),
        v("successThreshold", 1),
        v("failureThreshold", 3)
    )
}

fn volumes(w: &mut W, title_indent: &str, name_indent: &str, list: &Value) {
    let Some(vols) = list.as_array().filter(|v| !v.is_empty()) else {
        w.kv(title_indent, "Volumes", "<none>");
        return;
    };
    const F: &str = "    ";
    w.line(format!("{title_indent}Volumes:"));
    for v in vols {
        w.line(format!("{name_indent}{}:", s(&v["name"])));
        if let Some(c) = v.get("configMap") {
            w.kv(F, "Type", "ConfigMap (a volume populated by a ConfigMap)");
            w.kv(F, "Name", s(&c["name"]));
            w.kv(
                F,
                "Optional",
                c["optional"].as_bool().unwrap_or(false).to_string(),
            );
        } else if let Some(c) = v.get("secret") {
            w.kv(F, "Type", "Secret (a volume populated by a Secret)");
            w.kv(F, "SecretName", s(&c["secretName"]));
            w.kv(
                F,
                "Optional",
                c["optional"].as_bool().unwrap_or(false).to_string(),
            );
        } else if let Some(e) = v.get("emptyDir") {
            w.kv(
                F,
                "Type",
                "EmptyDir (a temporary directory that shares a pod's lifetime)",
            );
            w.kv(F, "Medium", e["medium"].as_str().unwrap_or_default());
            w.kv(F, "SizeLimit", e["sizeLimit"].as_str().unwrap_or("<unset>"));
        } else if let Some(h) = v.get("hostPath") {
            w.kv(F, "Type", "HostPath (bare host directory volume)");
            w.kv(F, "Path", s(&h["path"]));
            w.kv(F, "HostPathType", h["type"].as_str().unwrap_or_default());
        } else if v.get("projected").is_some() {
            w.kv(
                F,
                "Type",
                "Projected (a volume that contains injected data from multiple sources)",
            );
        } else {
            w.kv(F, "Type", "<unknown>");
        }
    }
}

/// The value a downward-API field path has on a pod; empty for templates or unknown paths.
fn field_value(pod: &Value, path: &str) -> String {
    let meta = &pod["metadata"];
    let v = if let Some(key) = path
        .strip_prefix("metadata.labels['")
        .and_then(|k| k.strip_suffix("']"))
    {
        &meta["labels"][key]
    } else if let Some(key) = path
        .strip_prefix("metadata.annotations['")
        .and_then(|k| k.strip_suffix("']"))
    {
        &meta["annotations"][key]
    } else {
        path.split('.').fold(pod, |v, seg| &v[seg])
    };
    v.as_str().unwrap_or_default().to_string()
}

fn tolerations(w: &mut W, indent: &str, list: &Value) {
    let mut sorted: Vec<&Value> = list
        .as_array()
        .map(|l| l.iter().collect())
        .unwrap_or_default();
    sorted.sort_by_key(|t| t["key"].as_str().unwrap_or_default().to_string());
    let items: Vec<String> = sorted
        .into_iter()
        .map(|t| {
            let mut out = t["key"].as_str().unwrap_or_default().to_string();
            if let Some(v) = t["value"].as_str().filter(|v| !v.is_empty()) {
                out.push_str(&format!("={v}"));
            }
            if let Some(e) = t["effect"].as_str().filter(|e| !e.is_empty()) {
                out.push_str(&format!(":{e}"));
            }
            if t["operator"] == "Exists" && t["value"].as_str().is_none_or(str::is_empty) {
                out.push_str(if out.is_empty() {
                    "op=Exists"
                } else {
                    " op=Exists"
                });
            }
            if let Some(secs) = t["tolerationSeconds"].as_i64() {
                out.push_str(&format!(" for {secs}s"));
            }
            out
        })
        .collect();
    if items.is_empty() {
        w.kv(indent, "Tolerations", "<none>");
        return;
    }
    for (i, t) in items.iter().enumerate() {
        if i == 0 {
            w.kv(indent, "Tolerations", t);
        } else {
            w.line(format!("{indent}\t{t}"));
        }
    }
}

/// kubectl's Pod describer.
pub(super) fn pod(w: &mut W, o: &Value) {
    let (spec, st, meta) = (&o["spec"], &o["status"], &o["metadata"]);
    header(w, o, true);
    w.kv("", "Priority", n(&spec["priority"]).to_string());
    if let Some(pc) = spec["priorityClassName"].as_str() {
        w.kv("", "Priority Class Name", pc);
    }
    w.kv(
        "",
        "Service Account",
        spec["serviceAccountName"].as_str().unwrap_or("default"),
    );
    let node = match (spec["nodeName"].as_str(), st["hostIP"].as_str()) {
        (Some(n), Some(ip)) => format!("{n}/{ip}"),
        (Some(n), None) => n.to_string(),
        _ => "<none>".into(),
    };
    w.kv("", "Node", node);
    if st.get("startTime").is_some() {
        w.kv("", "Start Time", when(&st["startTime"]));
    }
    labels(w, "", "Labels", &meta["labels"]);
    annotations(w, "", "Annotations", &meta["annotations"]);
    let phase = s(&st["phase"]);
    if meta.get("deletionTimestamp").is_some() {
        w.kv("", "Status", "Terminating");
    } else {
        w.kv("", "Status", phase);
    }
    for (key, label) in [("reason", "Reason"), ("message", "Message")] {
        if let Some(v) = st[key].as_str() {
            w.kv("", label, v);
        }
    }
    w.kv("", "IP", st["podIP"].as_str().unwrap_or_default());
    match st["podIPs"].as_array().filter(|a| !a.is_empty()) {
        None => w.kv("", "IPs", "<none>"),
        Some(ips) => {
            w.line("IPs:");
            for ip in ips {
                w.kv("  ", "IP", s(&ip["ip"]));
            }
        }
    }
    if let Some(owner) = meta["ownerReferences"].as_array().and_then(|a| a.first()) {
        w.kv(
            "",
            "Controlled By",
            format!("{}/{}", s(&owner["kind"]), s(&owner["name"])),
        );
    }
    if spec["initContainers"]
        .as_array()
        .is_some_and(|c| !c.is_empty())
    {
        containers(
            w,
            "",
            "  ",
            "Init Containers",
            &spec["initContainers"],
            &st["initContainerStatuses"],
            o,
        );
    }
    containers(
        w,
        "",
        "  ",
        "Containers",
        &spec["containers"],
        &st["containerStatuses"],
        o,
    );
    conditions(w, &st["conditions"], false);
    volumes(w, "", "  ", &spec["volumes"]);
    if let Some(q) = st["qosClass"].as_str() {
        w.kv("", "QoS Class", q);
    }
    labels(w, "", "Node-Selectors", &spec["nodeSelector"]);
    tolerations(w, "", &spec["tolerations"]);
}
