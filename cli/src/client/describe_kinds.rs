//! Per-kind sections of `describe`, following kubectl's describers for Deployments,
//! ReplicaSets, Services, ConfigMaps, Secrets, ServiceAccounts and Namespaces.

use serde_json::Value;

use super::describe::{Related, W, annotations, header, labels, s, when};
use super::describe_pod::pod_template;

/// A number, 0 when absent.
pub(super) fn n(v: &Value) -> i64 {
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
        // kubectl 1.33 leaves both lines out while the Deployment has no ReplicaSet at all.
        if !old.is_empty() || !new.is_empty() {
            w.kv("", "OldReplicaSets", rs_summary(&old));
            w.kv("", "NewReplicaSet", rs_summary(&new[..new.len().min(1)]));
        }
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
    header(w, o, true);
    w.kv("", "Selector", selector_text(&spec["selector"]));
    labels(w, "", "Labels", &o["metadata"]["labels"]);
    annotations(w, "", "Annotations", &o["metadata"]["annotations"]);
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

/// A `Conditions:` table, with the Reason column or without.
pub(super) fn conditions(w: &mut W, conds: &Value, with_reason: bool) {
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

/// kubectl's ServiceAccount describer.
pub fn service_account(w: &mut W, o: &Value) {
    meta_block(w, o, false);
    let names = |key: &str| -> Vec<String> {
        o[key]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| s(&r["name"]))
            .collect()
    };
    for (key, title) in [
        ("imagePullSecrets", "Image pull secrets"),
        ("secrets", "Mountable secrets"),
    ] {
        let list = names(key);
        if list.is_empty() {
            w.kv("", title, "<none>");
        }
        for (i, n) in list.iter().enumerate() {
            if i == 0 {
                w.kv("", title, n);
            } else {
                w.line(format!("\t{n}"));
            }
        }
    }
    w.kv("", "Tokens", "<none>");
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
