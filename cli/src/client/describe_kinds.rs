//! Per-kind sections of `describe`, following kubectl's describers for Deployments,
//! ReplicaSets, Pods (and pod templates), Services, ConfigMaps, Secrets and Namespaces.

use serde_json::Value;

use super::describe::{Related, W, annotations, header, labels, s, when};

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn selector_text(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    parts.sort();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let values: Vec<String> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        match e["operator"].as_str().unwrap_or_default() {
            "In" => parts.push(format!("{} in ({})", s(&e["key"]), values.join(","))),
            "NotIn" => parts.push(format!("{} notin ({})", s(&e["key"]), values.join(","))),
            "Exists" => parts.push(s(&e["key"])),
            _ => parts.push(format!("!{}", s(&e["key"]))),
        }
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn meta_block(w: &mut W, o: &Value, created: bool) {
    header(w, o, true);
    if created {
        w.kv(
            "",
            "CreationTimestamp",
            when(&o["metadata"]["creationTimestamp"]),
        );
    }
    labels(w, "", "Labels", &o["metadata"]["labels"]);
    annotations(w, "", "Annotations", &o["metadata"]["annotations"]);
}

fn rs_summary(list: &[&Value]) -> String {
    if list.is_empty() {
        return "<none>".into();
    }
    list.iter()
        .map(|r| {
            format!(
                "{} ({}/{} replicas created)",
                s(&r["metadata"]["name"]),
                n(&r["status"]["replicas"]),
                n(&r["spec"]["replicas"])
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// kubectl's Deployment describer.
pub fn deployment(w: &mut W, o: &Value, related: &Related) {
    let (spec, st) = (&o["spec"], &o["status"]);
    meta_block(w, o, true);
    w.kv("", "Selector", selector_text(&spec["selector"]));
    w.kv(
        "",
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
    w.kv("", "StrategyType", s(&spec["strategy"]["type"]));
    w.kv(
        "",
        "MinReadySeconds",
        n(&spec["minReadySeconds"]).to_string(),
    );
    if let Some(ru) = spec["strategy"].get("rollingUpdate") {
        w.kv(
            "",
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                s(&ru["maxUnavailable"]),
                s(&ru["maxSurge"])
            ),
        );
    }
    pod_template(w, &spec["template"]);
    conditions(w, &st["conditions"], true);
    if let Some(rss) = &related.replicasets {
        let template = strip_hash(&spec["template"]);
        let (new, old): (Vec<&Value>, Vec<&Value>) = rss
            .iter()
            .partition(|r| strip_hash(&r["spec"]["template"]) == template);
        let old: Vec<&Value> = old
            .into_iter()
            .filter(|r| n(&r["spec"]["replicas"]) > 0 || n(&r["status"]["replicas"]) > 0)
            .collect();
        w.kv("", "OldReplicaSets", rs_summary(&old));
        w.kv("", "NewReplicaSet", rs_summary(&new[..new.len().min(1)]));
    }
}

/// A pod template without the `pod-template-hash` label, for finding a Deployment's new ReplicaSet.
fn strip_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    t
}

/// kubectl's ReplicaSet describer.
pub fn replicaset(w: &mut W, o: &Value) {
    let (spec, st) = (&o["spec"], &o["status"]);
    meta_block(w, o, false);
    w.kv("", "Selector", selector_text(&spec["selector"]));
    if let Some(owner) = o["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|a| a.first())
    {
        w.kv(
            "",
            "Controlled By",
            format!("{}/{}", s(&owner["kind"]), s(&owner["name"])),
        );
    }
    w.kv(
        "",
        "Replicas",
        format!(
            "{} current / {} desired",
            n(&st["replicas"]),
            n(&spec["replicas"])
        ),
    );
    w.kv(
        "",
        "Pods Status",
        format!(
            "{} Running / 0 Waiting / 0 Succeeded / 0 Failed",
            n(&st["readyReplicas"])
        ),
    );
    pod_template(w, &spec["template"]);
    conditions(w, &st["conditions"], true);
}

fn pod_template(w: &mut W, t: &Value) {
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

fn conditions(w: &mut W, conds: &Value, with_reason: bool) {
    let Some(list) = conds.as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    w.line("Conditions:");
    if with_reason {
        w.line("  Type\tStatus\tReason");
        w.line("  ----\t------\t------");
    } else {
        w.line("  Type\tStatus");
    }
    for c in list {
        if with_reason {
            w.line(format!(
                "  {} \t{}\t{}",
                s(&c["type"]),
                s(&c["status"]),
                s(&c["reason"])
            ));
        } else {
            w.line(format!("  {} \t{} ", s(&c["type"]), s(&c["status"])));
        }
    }
}

/// kubectl's Pod describer.
pub fn pod(w: &mut W, o: &Value) {
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

/// kubectl's Service describer.
pub fn service(w: &mut W, o: &Value, related: &Related) {
    let spec = &o["spec"];
    header(w, o, true);
    labels(w, "", "Labels", &o["metadata"]["labels"]);
    annotations(w, "", "Annotations", &o["metadata"]["annotations"]);
    super::describe::labels(w, "", "Selector", &spec["selector"]);
    w.kv("", "Type", s(&spec["type"]));
    if let Some(p) = spec["ipFamilyPolicy"].as_str() {
        w.kv("", "IP Family Policy", p);
    }
    if let Some(f) = spec["ipFamilies"].as_array() {
        w.kv(
            "",
            "IP Families",
            f.iter().map(s).collect::<Vec<_>>().join(","),
        );
    }
    w.kv("", "IP", spec["clusterIP"].as_str().unwrap_or_default());
    match spec["clusterIPs"].as_array().filter(|a| !a.is_empty()) {
        Some(ips) => w.kv("", "IPs", ips.iter().map(s).collect::<Vec<_>>().join(",")),
        None => w.kv("", "IPs", "<none>"),
    }
    for p in spec["ports"].as_array().into_iter().flatten() {
        let name = p["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or("<unset>");
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        w.kv("", "Port", format!("{name}  {}/{proto}", s(&p["port"])));
        w.kv(
            "",
            "TargetPort",
            format!("{}/{proto}", s(p.get("targetPort").unwrap_or(&p["port"]))),
        );
        if let Some(np) = p.get("nodePort") {
            w.kv("", "NodePort", format!("{name}  {}/{proto}", s(np)));
        }
        w.kv(
            "",
            "Endpoints",
            endpoints_for(related.endpoints.as_ref(), p["name"].as_str()),
        );
    }
    w.kv(
        "",
        "Session Affinity",
        spec["sessionAffinity"].as_str().unwrap_or("None"),
    );
    if matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer")) {
        w.kv(
            "",
            "External Traffic Policy",
            spec["externalTrafficPolicy"].as_str().unwrap_or("Cluster"),
        );
    }
    if let Some(p) = spec["internalTrafficPolicy"].as_str() {
        w.kv("", "Internal Traffic Policy", p);
    }
}

fn endpoints_for(ep: Option<&Value>, port_name: Option<&str>) -> String {
    let mut out = Vec::new();
    for subset in ep
        .and_then(|e| e["subsets"].as_array())
        .into_iter()
        .flatten()
    {
        let port = subset["ports"].as_array().into_iter().flatten().find(|p| {
            p["name"].as_str().filter(|n| !n.is_empty()) == port_name.filter(|n| !n.is_empty())
        });
        let Some(port) = port else { continue };
        for a in subset["addresses"].as_array().into_iter().flatten() {
            out.push(format!("{}:{}", s(&a["ip"]), s(&port["port"])));
        }
    }
    if out.is_empty() {
        "<none>".into()
    } else {
        out.join(",")
    }
}

/// kubectl's ConfigMap describer.
pub fn configmap(w: &mut W, o: &Value) {
    meta_block(w, o, false);
    w.line("");
    w.line("Data");
    w.line("====");
    let mut keys: Vec<(&String, &Value)> = o["data"].as_object().into_iter().flatten().collect();
    keys.sort_by_key(|(k, _)| *k);
    for (k, v) in keys {
        w.line(format!("{k}:"));
        w.line("----");
        w.line(v.as_str().unwrap_or_default());
        w.line("");
    }
    w.line("");
    w.line("BinaryData");
    w.line("====");
    for (k, v) in o["binaryData"].as_object().into_iter().flatten() {
        w.line(format!(
            "{k}: {} bytes",
            v.as_str().map(|b| b.len() * 3 / 4).unwrap_or(0)
        ));
    }
    w.line("");
}

/// kubectl's Secret describer: sizes, never values.
pub fn secret(w: &mut W, o: &Value) {
    meta_block(w, o, false);
    w.line("");
    w.kv("", "Type", s(&o["type"]));
    w.line("");
    w.line("Data");
    w.line("====");
    for (k, v) in o["data"].as_object().into_iter().flatten() {
        let b = v.as_str().unwrap_or_default();
        let len = b.len() / 4 * 3 - b.chars().rev().take_while(|c| *c == '=').count();
        w.kv("", k, format!("{len} bytes"));
    }
}

/// kubectl's Namespace describer.
pub fn namespace(w: &mut W, o: &Value) {
    header(w, o, false);
    labels(w, "", "Labels", &o["metadata"]["labels"]);
    annotations(w, "", "Annotations", &o["metadata"]["annotations"]);
    w.kv("", "Status", s(&o["status"]["phase"]));
}

#[cfg(test)]
mod tests {
    use super::super::describe::describe;
    use super::*;
    use crate::client::resource::resolve_local;
    use serde_json::json;

    fn web() -> Value {
        json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}, "uid": "u1",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "httpd", "image": "busybox:1.36", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "command": ["sh", "-c", "httpd"], "resources": {"requests": {"cpu": "50m", "memory": "16Mi"}},
                        "envFrom": [{"configMapRef": {"name": "web-config"}}],
                        "volumeMounts": [{"name": "config", "mountPath": "/config"}]}],
                        "volumes": [{"name": "config", "configMap": {"name": "web-config"}}]}}},
            "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1, "unavailableReplicas": 1}})
    }

    #[test]
    fn deployment_reads_like_kubectl() {
        let res = resolve_local("deploy").unwrap();
        let mut rs = json!({"metadata": {"name": "web-abc", "ownerReferences": [{"uid": "u1"}]},
            "spec": {"replicas": 2, "template": web()["spec"]["template"].clone()}, "status": {"replicas": 2}});
        rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] = json!("abc");
        let related = Related {
            replicasets: Some(vec![rs]),
            endpoints: None,
        };
        let text = describe(&res, &web(), &related, &[]);
        let expected_head = "Name:                   web\nNamespace:              default\n";
        assert!(text.starts_with(expected_head), "{text}");
        assert!(text.contains("Annotations:            <none>\n"), "{text}");
        assert!(text.contains("RollingUpdateStrategy:  25% max unavailable, 25% max surge\nPod Template:\n  Labels:  app=web\n  Containers:\n   httpd:\n    Image:      busybox:1.36\n    Port:       8080/TCP\n    Host Port:  0/TCP\n    Command:\n      sh\n      -c\n      httpd\n"), "{text}");
        assert!(
            text.contains("    Requests:\n      cpu:     50m\n      memory:  16Mi\n"),
            "{text}"
        );
        assert!(text.contains("    Environment Variables from:\n      web-config  ConfigMap  Optional: false\n    Environment:  <none>\n    Mounts:\n      /config from config (rw)\n"), "{text}");
        assert!(text.contains("  Volumes:\n   config:\n    Type:          ConfigMap (a volume populated by a ConfigMap)\n    Name:          web-config\n    Optional:      false\n  Node-Selectors:  <none>\n  Tolerations:     <none>\n"), "{text}");
        assert!(text.contains("  Tolerations:     <none>\nOldReplicaSets:    <none>\nNewReplicaSet:     web-abc (2/2 replicas created)\nEvents:            <none>\n"), "{text}");
    }

    #[test]
    fn service_and_configmap_layouts() {
        let svc = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "type": "ClusterIP", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
                "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5"],
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}});
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.42.0.7"}, {"ip": "10.42.0.8"}], "ports": [{"name": "http", "port": 8080}]}]});
        let related = Related {
            replicasets: None,
            endpoints: Some(ep),
        };
        let text = describe(&resolve_local("svc").unwrap(), &svc, &related, &[]);
        assert!(text.contains("Port:                     http  80/TCP\nTargetPort:               http/TCP\nEndpoints:                10.42.0.7:8080,10.42.0.8:8080\n"), "{text}");
        assert!(
            text.ends_with("Internal Traffic Policy:  Cluster\nEvents:                   <none>\n"),
            "{text}"
        );
        let cm = json!({"metadata": {"name": "c", "namespace": "default"}, "data": {"b": "2", "a": "1\n"}});
        let text = describe(&resolve_local("cm").unwrap(), &cm, &Related::default(), &[]);
        assert!(text.ends_with("\nData\n====\na:\n----\n1\n\n\nb:\n----\n2\n\n\nBinaryData\n====\n\nEvents:  <none>\n"), "{text}");
    }
}
