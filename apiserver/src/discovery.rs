//! Discovery documents: /version, /api, /apis, /apis/<group> and the APIResourceList of every
//! group-version, in the legacy (non-aggregated) shape Kubernetes serves them.

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use skiff_api::resources::{self, ResourceInfo, group_version};

use crate::registry::{Kind, Registry};
use crate::strategy::Deletion;

/// The Kubernetes release whose API skiff speaks.
const KUBE_MAJOR: &str = "1";
const KUBE_MINOR: &str = "33";

/// `v1.33.0-skiff.<crate version>`: what `/version` reports as `gitVersion`.
pub fn git_version() -> String {
    format!(
        "v{KUBE_MAJOR}.{KUBE_MINOR}.0-skiff.{}",
        env!("CARGO_PKG_VERSION")
    )
}

/// `/version`: the version.Info object. Build facts come from the build environment when
/// the release pipeline sets them (`SKIFF_GIT_COMMIT`, `SKIFF_GIT_TREE_STATE`,
/// `SKIFF_BUILD_DATE`); otherwise they are empty, and the build date is the epoch, as in an
/// unstamped Kubernetes build.
pub fn version_info() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": git_version(),
        "gitCommit": option_env!("SKIFF_GIT_COMMIT").unwrap_or(""),
        "gitTreeState": option_env!("SKIFF_GIT_TREE_STATE").unwrap_or(""),
        "buildDate": option_env!("SKIFF_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "n/a",
        "compiler": "rustc",
        "platform": platform(),
    })
}

/// `<os>/<arch>` in Go's spelling (`linux/amd64`, `linux/arm64`).
fn platform() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    format!("{}/{arch}", std::env::consts::OS)
}

/// `/api`: the APIVersions of the core group.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            { "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }
        ],
    })
}

/// Every distinct (group, version) pair served, core first, in registry order.
fn group_versions(kinds: &Registry) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for k in kinds.iter() {
        if !out.contains(&(k.info.group, k.info.version)) {
            out.push((k.info.group, k.info.version));
        }
    }
    out
}

/// Every non-core group, in registry order (first appearance).
fn groups(kinds: &Registry) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (g, _) in group_versions(kinds) {
        if !g.is_empty() && !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

fn version_entry(group: &str, version: &str) -> Value {
    json!({ "groupVersion": group_version(group, version), "version": version })
}

/// The APIGroup body (without kind/apiVersion) of a served non-core group.
fn group_body(kinds: &Registry, group: &str) -> Option<Map<String, Value>> {
    // The preferred version is the first one listed.
    let preferred = kinds
        .iter()
        .find(|k| k.info.group == group)
        .map(|k| k.info.version)?;
    let versions: Vec<Value> = group_versions(kinds)
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| version_entry(g, v))
        .collect();
    let mut body = Map::new();
    body.insert("name".into(), json!(group));
    body.insert("versions".into(), Value::Array(versions));
    body.insert("preferredVersion".into(), version_entry(group, preferred));
    Some(body)
}

/// `/apis`: the APIGroupList of every non-core group.
pub fn api_group_list(kinds: &Registry) -> Value {
    let groups: Vec<Value> = groups(kinds)
        .into_iter()
        .filter_map(|g| group_body(kinds, g))
        .map(Value::Object)
        .chain([crate::metrics_api::serve::api_group()])
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/<group>`: the APIGroup, or `None` when the group is not served (or is the core
/// group, which lives under `/api`).
pub fn api_group(kinds: &Registry, group: &str) -> Option<Value> {
    if group.is_empty() {
        return None;
    }
    let mut body = Map::new();
    body.insert("kind".into(), json!("APIGroup"));
    body.insert("apiVersion".into(), json!("v1"));
    body.extend(group_body(kinds, group)?);
    Some(Value::Object(body))
}

/// Kubernetes' storage version hash: base64 of the first 8 bytes of the sha256 of
/// `<group>/<version>/<kind>` of the version objects are stored in. Clients only compare it
/// for equality, to notice storage migrations.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// Verbs of a top-level resource. Kinds deleted after their contents (namespaces) have no
/// deletecollection in Kubernetes: they are only removed one at a time through their
/// finalizer.
fn verbs_of(k: &Kind) -> Vec<&'static str> {
    let after_contents = k.strategy().deletion() == Deletion::AfterContents;
    k.info
        .verbs
        .iter()
        .copied()
        .filter(|v| !(after_contents && *v == "deletecollection"))
        .collect()
}

fn resource_entry(k: &Kind) -> Value {
    let r = k.info;
    let mut e = Map::new();
    e.insert("name".into(), json!(r.plural));
    e.insert("singularName".into(), json!(r.singular));
    e.insert("namespaced".into(), json!(r.namespaced));
    e.insert("kind".into(), json!(r.kind));
    e.insert("verbs".into(), json!(verbs_of(k)));
    if !r.short_names.is_empty() {
        e.insert("shortNames".into(), json!(r.short_names));
    }
    if !r.categories.is_empty() {
        e.insert("categories".into(), json!(r.categories));
    }
    e.insert(
        "storageVersionHash".into(),
        json!(storage_version_hash(
            r.storage_group,
            r.storage_version,
            r.kind
        )),
    );
    Value::Object(e)
}

fn subresource_entry(r: &ResourceInfo, sub: &resources::Subresource) -> Value {
    let mut e = Map::new();
    e.insert("name".into(), json!(format!("{}/{}", r.plural, sub.name)));
    e.insert("singularName".into(), json!(""));
    e.insert("namespaced".into(), json!(r.namespaced));
    if !sub.group.is_empty() {
        e.insert("group".into(), json!(sub.group));
    }
    if !sub.version.is_empty() {
        e.insert("version".into(), json!(sub.version));
    }
    e.insert("kind".into(), json!(sub.kind));
    let mut verbs = sub.verbs.to_vec();
    verbs.sort_unstable();
    e.insert("verbs".into(), json!(verbs));
    Value::Object(e)
}

/// `/api/v1` or `/apis/<group>/<version>`: the APIResourceList of a served group-version,
/// resources and subresources sorted by name as the Kubernetes API server lists them.
pub fn resource_list(kinds: &Registry, group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Kind> = kinds
        .iter()
        .map(|k| k.as_ref())
        .filter(|k| k.info.group == group && k.info.version == version)
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut entries: Vec<(String, Value)> = Vec::new();
    for k in served {
        let r = k.info;
        entries.push((r.plural.to_string(), resource_entry(k)));
        for sub in r.subresources {
            entries.push((
                format!("{}/{}", r.plural, sub.name),
                subresource_entry(r, sub),
            ));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let resources: Vec<Value> = entries.into_iter().map(|(_, v)| v).collect();
    let mut list = Map::new();
    list.insert("kind".into(), json!("APIResourceList"));
    // The legacy core list goes out without apiVersion; group lists carry `v1`.
    if !group.is_empty() {
        list.insert("apiVersion".into(), json!("v1"));
    }
    list.insert("groupVersion".into(), json!(group_version(group, version)));
    list.insert("resources".into(), Value::Array(resources));
    Some(Value::Object(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {}", list["groupVersion"]))
    }

    #[test]
    fn api_versions_names_the_server() {
        let v = api_versions("10.0.0.1:6443");
        assert_eq!(v["kind"], "APIVersions");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(
            v["serverAddressByClientCIDRs"][0]["serverAddress"],
            "10.0.0.1:6443"
        );
    }

    #[test]
    fn group_list_prefers_autoscaling_v2_and_omits_core() {
        let list = api_group_list(crate::registry::builtin());
        let groups = list["groups"].as_array().unwrap();
        assert!(groups.iter().all(|g| g["name"] != ""));
        // metrics.k8s.io is served by the API server itself (`metrics_api`).
        assert!(groups.iter().any(|g| g["name"] == "metrics.k8s.io"));
        let names: Vec<&str> = groups.iter().map(|g| g["name"].as_str().unwrap()).collect();
        for g in [
            "apps",
            "autoscaling",
            "coordination.k8s.io",
            "discovery.k8s.io",
            "events.k8s.io",
        ] {
            assert!(names.contains(&g), "{g} not in {names:?}");
        }
        let autoscaling = groups.iter().find(|g| g["name"] == "autoscaling").unwrap();
        assert_eq!(
            autoscaling["preferredVersion"],
            json!({"groupVersion": "autoscaling/v2", "version": "v2"})
        );
        let versions: Vec<&str> = autoscaling["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["v2", "v1"]);
    }

    #[test]
    fn api_group_answers_served_groups_only() {
        let apps = api_group(crate::registry::builtin(), "apps").unwrap();
        assert_eq!(apps["kind"], "APIGroup");
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert!(api_group(crate::registry::builtin(), "example.com").is_none());
        assert!(api_group(crate::registry::builtin(), "").is_none());
    }

    #[test]
    fn resource_lists_carry_kubernetes_facts() {
        let core = resource_list(crate::registry::builtin(), "", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        assert!(core.get("apiVersion").is_none());
        assert_eq!(
            resource_list(crate::registry::builtin(), "apps", "v1").unwrap()["apiVersion"],
            "v1"
        );
        let pods = entry(&core, "pods");
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["namespaced"], true);
        assert_eq!(entry(&core, "pods/binding")["verbs"], json!(["create"]));
        assert_eq!(entry(&core, "pods/status")["kind"], "Pod");
        assert!(entry(&core, "pods/status").get("group").is_none());
        assert!(entry(&core, "configmaps").get("categories").is_none());
        assert!(entry(&core, "secrets").get("shortNames").is_none());
        let ns = entry(&core, "namespaces");
        assert_eq!(ns["namespaced"], false);
        assert!(
            !ns["verbs"]
                .as_array()
                .unwrap()
                .contains(&json!("deletecollection"))
        );

        let apps = resource_list(crate::registry::builtin(), "apps", "v1").unwrap();
        let scale = entry(&apps, "deployments/scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
        assert_eq!(entry(&apps, "deployments")["shortNames"], json!(["deploy"]));
        assert!(resource_list(crate::registry::builtin(), "apps", "v2").is_none());
    }

    #[test]
    fn resource_lists_are_sorted_by_name() {
        for (g, v) in group_versions(crate::registry::builtin()) {
            let list = resource_list(crate::registry::builtin(), g, v).unwrap();
            let names: Vec<String> = list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "{g}/{v}");
        }
    }

    #[test]
    fn storage_version_hash_matches_kubernetes() {
        // Values a Kubernetes API server reports for these resources.
        assert_eq!(storage_version_hash("", "v1", "Pod"), "xPOwRZ+Yhw8=");
        assert_eq!(
            storage_version_hash("apps", "v1", "Deployment"),
            "8aSe+NMegvE="
        );
        // Versions sharing storage report the same hash.
        let core = resource_list(crate::registry::builtin(), "", "v1").unwrap();
        let events = resource_list(crate::registry::builtin(), "events.k8s.io", "v1").unwrap();
        assert_eq!(
            entry(&core, "events")["storageVersionHash"],
            entry(&events, "events")["storageVersionHash"]
        );
        let hpa1 = resource_list(crate::registry::builtin(), "autoscaling", "v1").unwrap();
        let hpa2 = resource_list(crate::registry::builtin(), "autoscaling", "v2").unwrap();
        assert_eq!(
            entry(&hpa1, "horizontalpodautoscalers")["storageVersionHash"],
            entry(&hpa2, "horizontalpodautoscalers")["storageVersionHash"]
        );
    }

    #[test]
    fn version_reports_kubernetes_133() {
        let v = version_info();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "33");
        assert!(
            v["gitVersion"]
                .as_str()
                .unwrap()
                .starts_with("v1.33.0-skiff.")
        );
        assert_eq!(v["compiler"], "rustc");
        assert!(v["platform"].as_str().unwrap().starts_with("linux/"));
    }
}
