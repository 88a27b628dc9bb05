//! The patch client-side apply sends: kubectl's three-way strategic merge patch computed from
//! the last-applied configuration, the new manifest and the live object.
//!
//! Additions and changes come from live → manifest (fields the server or others set and the
//! manifest never mentioned are left alone); deletions come from last-applied → manifest
//! (a field is removed only when this manifest's author removed it). Lists with a merge key
//! (`containers` by `name`, ...) are patched element by element; other lists are replaced.

use serde_json::{Map, Value};

/// How lists are patched: by merge key (strategic merge patch) or always whole (JSON merge patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/strategic-merge-patch+json`: lists with merge keys merge by element.
    Strategic,
    /// `application/merge-patch+json`: every list is replaced whole.
    Merge,
}

/// Computes the patch that turns `current` into an object agreeing with `modified`, deleting
/// what `original` had and `modified` dropped. An empty object means nothing would change.
pub fn three_way(original: &Value, modified: &Value, current: &Value, kind: PatchKind) -> Value {
    let empty = Value::Object(Map::new());
    let original = if original.is_object() {
        original
    } else {
        &empty
    };
    let current = if current.is_object() { current } else { &empty };
    let mut path = Vec::new();
    let deltas = diff_changes(current, modified, &mut path, kind).unwrap_or_else(|| empty.clone());
    let deletions =
        diff_deletions(original, modified, &mut path, kind).unwrap_or_else(|| empty.clone());
    combine(deletions, deltas, &mut path, kind)
}

/// The strategic merge key of the list at `path` (field names, list indices left out).
pub fn merge_key(path: &[String]) -> Option<&'static str> {
    let last = path.last()?.as_str();
    let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
    let in_container = matches!(
        parent,
        Some("containers" | "initContainers" | "ephemeralContainers")
    );
    match last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "env" if in_container => Some("name"),
        "ports" if in_container => Some("containerPort"),
        "ports" if path.len() == 2 && path[0] == "spec" => Some("port"),
        "volumeMounts" if in_container => Some("mountPath"),
        "volumeDevices" if in_container => Some("devicePath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

fn list_key(path: &[String], kind: PatchKind, lists: &[&Value]) -> Option<&'static str> {
    if kind == PatchKind::Merge {
        return None;
    }
    let key = merge_key(path)?;
    // A list whose elements are not all maps carrying the key cannot be merged by it.
    let keyed = lists.iter().all(|l| {
        l.as_array()
            .is_some_and(|items| items.iter().all(|i| i.get(key).is_some()))
    });
    keyed.then_some(key)
}

fn find_by_key<'a>(items: &'a [Value], key: &str, value: &Value) -> Option<&'a Value> {
    items.iter().find(|i| i.get(key) == Some(value))
}

/// Additions and changes from `current` to `modified`; fields only in `current` are kept.
fn diff_changes(
    current: &Value,
    modified: &Value,
    path: &mut Vec<String>,
    kind: PatchKind,
) -> Option<Value> {
    let (Some(cur), Some(modi)) = (current.as_object(), modified.as_object()) else {
        return (current != modified).then(|| modified.clone());
    };
    let mut out = Map::new();
    for (k, mv) in modi {
        path.push(k.clone());
        let change = match cur.get(k) {
            None => Some(mv.clone()),
            Some(cv) if cv.is_object() && mv.is_object() => diff_changes(cv, mv, path, kind)
                .filter(|d| d.as_object().is_none_or(|m| !m.is_empty())),
            Some(cv) if cv.is_array() && mv.is_array() => list_changes(cv, mv, path, kind),
            Some(cv) => (cv != mv).then(|| mv.clone()),
        };
        path.pop();
        if let Some(c) = change {
            out.insert(k.clone(), c);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn list_changes(
    current: &Value,
    modified: &Value,
    path: &mut Vec<String>,
    kind: PatchKind,
) -> Option<Value> {
    let Some(key) = list_key(path, kind, &[current, modified]) else {
        return (current != modified).then(|| modified.clone());
    };
    let cur = current.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::new();
    for item in modified.as_array().into_iter().flatten() {
        let kv = &item[key];
        match find_by_key(cur, key, kv) {
            None => out.push(item.clone()),
            Some(live) => {
                if let Some(Value::Object(mut d)) = diff_changes(live, item, path, kind) {
                    d.insert(key.to_string(), kv.clone());
                    out.push(Value::Object(d));
                }
            }
        }
    }
    (!out.is_empty()).then_some(Value::Array(out))
}

/// Deletions from `original` to `modified`: `null` for dropped fields, `$patch: delete` for
/// dropped list elements with a merge key.
fn diff_deletions(
    original: &Value,
    modified: &Value,
    path: &mut Vec<String>,
    kind: PatchKind,
) -> Option<Value> {
    let (Some(orig), Some(modi)) = (original.as_object(), modified.as_object()) else {
        return None;
    };
    let mut out = Map::new();
    for (k, ov) in orig {
        path.push(k.clone());
        let deletion = match modi.get(k) {
            None => Some(Value::Null),
            Some(mv) if ov.is_object() && mv.is_object() => diff_deletions(ov, mv, path, kind),
            Some(mv) if ov.is_array() && mv.is_array() => list_deletions(ov, mv, path, kind),
            Some(_) => None,
        };
        path.pop();
        if let Some(d) = deletion {
            out.insert(k.clone(), d);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn list_deletions(
    original: &Value,
    modified: &Value,
    path: &mut Vec<String>,
    kind: PatchKind,
) -> Option<Value> {
    let key = list_key(path, kind, &[original, modified])?;
    let modi = modified.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::new();
    for item in original.as_array().into_iter().flatten() {
        let kv = &item[key];
        match find_by_key(modi, key, kv) {
            None => {
                let mut m = Map::new();
                m.insert(key.to_string(), kv.clone());
                m.insert("$patch".to_string(), Value::String("delete".to_string()));
                out.push(Value::Object(m));
            }
            Some(new) => {
                if let Some(Value::Object(mut d)) = diff_deletions(item, new, path, kind) {
                    d.insert(key.to_string(), kv.clone());
                    out.push(Value::Object(d));
                }
            }
        }
    }
    (!out.is_empty()).then_some(Value::Array(out))
}

/// Merges the deletions patch with the changes patch; changes win where both speak.
fn combine(deletions: Value, changes: Value, path: &mut Vec<String>, kind: PatchKind) -> Value {
    match (deletions, changes) {
        (Value::Object(mut d), Value::Object(c)) => {
            for (k, cv) in c {
                path.push(k.clone());
                let merged = match d.remove(&k) {
                    Some(dv) => combine(dv, cv, path, kind),
                    None => cv,
                };
                path.pop();
                d.insert(k, merged);
            }
            Value::Object(d)
        }
        (Value::Array(d), Value::Array(c)) => match list_key(path, kind, &[]) {
            Some(key) => {
                let mut out: Vec<Value> = d;
                for item in c {
                    match out.iter().position(|i| i.get(key) == item.get(key)) {
                        Some(pos) => {
                            let old = out.remove(pos);
                            out.insert(pos, combine(old, item, path, kind));
                        }
                        None => out.push(item),
                    }
                }
                Value::Array(out)
            }
            None => Value::Array(c),
        },
        (_, c) => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 2, "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn unchanged_gives_an_empty_patch() {
        let m = deploy(json!([{"name": "web", "image": "busybox:1.36"}]));
        let mut live = m.clone();
        live["status"] = json!({"replicas": 2});
        live["metadata"]["uid"] = json!("abc");
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        assert_eq!(three_way(&m, &m, &live, PatchKind::Strategic), json!({}));
    }

    #[test]
    fn added_and_changed_fields() {
        let orig = deploy(json!([{"name": "web", "image": "busybox:1.36"}]));
        let mut new = orig.clone();
        new["spec"]["replicas"] = json!(3);
        new["metadata"]["labels"] = json!({"app": "web"});
        let patch = three_way(&orig, &new, &orig, PatchKind::Strategic);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"replicas": 3}})
        );
    }

    #[test]
    fn removed_fields_become_null() {
        let mut orig = deploy(json!([{"name": "web", "image": "busybox:1.36"}]));
        orig["metadata"]["labels"] = json!({"app": "web", "tier": "front"});
        let mut new = orig.clone();
        new["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("tier");
        new["spec"].as_object_mut().unwrap().remove("replicas");
        let patch = three_way(&orig, &new, &orig, PatchKind::Strategic);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"tier": null}}, "spec": {"replicas": null}})
        );
    }

    #[test]
    fn fields_set_by_others_are_kept() {
        let orig = deploy(json!([{"name": "web", "image": "a"}]));
        let mut live = orig.clone();
        live["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
        live["spec"]["replicas"] = json!(5); // scaled by someone else, manifest unchanged
        let patch = three_way(&orig, &orig, &live, PatchKind::Strategic);
        // The manifest still says 2, so apply sets it back; the annotation is untouched.
        assert_eq!(patch, json!({"spec": {"replicas": 2}}));
    }

    #[test]
    fn containers_merge_by_name() {
        let orig = deploy(json!([{"name": "web", "image": "a"}, {"name": "side", "image": "s"}]));
        let new = deploy(json!([{"name": "side", "image": "s2"}, {"name": "web", "image": "a"}]));
        let patch = three_way(&orig, &new, &orig, PatchKind::Strategic);
        assert_eq!(
            patch,
            json!({"spec": {"template": {"spec": {"containers": [{"image": "s2", "name": "side"}]}}}})
        );
    }

    #[test]
    fn dropped_container_is_deleted_and_new_one_added() {
        let orig = deploy(json!([{"name": "web", "image": "a"}, {"name": "old", "image": "o"}]));
        let new = deploy(json!([{"name": "web", "image": "a"}, {"name": "new", "image": "n"}]));
        let patch = three_way(&orig, &new, &orig, PatchKind::Strategic);
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"],
            json!([{"name": "old", "$patch": "delete"}, {"name": "new", "image": "n"}])
        );
    }

    #[test]
    fn env_removed_by_name() {
        let orig = deploy(json!([{"name": "web", "image": "a",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]));
        let new =
            deploy(json!([{"name": "web", "image": "a", "env": [{"name": "A", "value": "1"}]}]));
        let patch = three_way(&orig, &new, &orig, PatchKind::Strategic);
        assert_eq!(
            patch,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "web", "env": [{"name": "B", "$patch": "delete"}]}
            ]}}}})
        );
    }

    #[test]
    fn whole_env_list_removed_is_null() {
        let orig =
            deploy(json!([{"name": "web", "image": "a", "env": [{"name": "A", "value": "1"}]}]));
        let new = deploy(json!([{"name": "web", "image": "a"}]));
        let patch = three_way(&orig, &new, &orig, PatchKind::Strategic);
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "env": null}])
        );
    }

    #[test]
    fn deletion_and_change_in_one_container_combine() {
        let orig = deploy(json!([{"name": "web", "image": "a", "args": ["x"]}]));
        let new = deploy(json!([{"name": "web", "image": "b"}]));
        let patch = three_way(&orig, &new, &orig, PatchKind::Strategic);
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "args": null, "image": "b"}])
        );
    }

    #[test]
    fn lists_without_merge_key_are_replaced() {
        let orig = deploy(json!([{"name": "web", "image": "a", "args": ["1", "2"]}]));
        let new = deploy(json!([{"name": "web", "image": "a", "args": ["1"]}]));
        let patch = three_way(&orig, &new, &orig, PatchKind::Strategic);
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "args": ["1"]}])
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let orig = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        let new = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
        let mut live = orig.clone();
        live["spec"]["ports"][0]["protocol"] = json!("TCP");
        let patch = three_way(&orig, &new, &live, PatchKind::Strategic);
        assert_eq!(
            patch,
            json!({"spec": {"ports": [{"targetPort": 9090, "port": 80}]}})
        );
    }

    #[test]
    fn merge_patch_replaces_lists() {
        let orig = deploy(json!([{"name": "web", "image": "a"}]));
        let new = deploy(json!([{"name": "web", "image": "b"}]));
        let patch = three_way(&orig, &new, &orig, PatchKind::Merge);
        assert_eq!(
            patch,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "b"}]}}}})
        );
    }

    #[test]
    fn without_last_applied_nothing_is_deleted() {
        let live = json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "data": {"k": "v"}});
        let new = json!({"metadata": {"name": "x"}, "data": {"k": "v2"}});
        let patch = three_way(&Value::Null, &new, &live, PatchKind::Strategic);
        assert_eq!(patch, json!({"data": {"k": "v2"}}));
    }

    #[test]
    fn merge_keys_follow_the_path() {
        let p = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(merge_key(&p("spec.template.spec.containers")), Some("name"));
        assert_eq!(
            merge_key(&p("spec.template.spec.containers.ports")),
            Some("containerPort")
        );
        assert_eq!(merge_key(&p("spec.ports")), Some("port"));
        assert_eq!(
            merge_key(&p("spec.template.spec.containers.volumeMounts")),
            Some("mountPath")
        );
        assert_eq!(merge_key(&p("spec.template.spec.containers.args")), None);
        assert_eq!(merge_key(&p("spec.template.spec.tolerations")), None);
    }
}
