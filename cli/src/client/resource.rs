//! Type-name resolution: what a user typed (`deploy`, `deployments.apps`, `svc/web`) or what a
//! manifest says (`apps/v1` `Deployment`) to the resource the server serves, from the local
//! resource table first and the server's discovery documents otherwise.

use anyhow::{Result, anyhow, bail};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use skiff_api::resources::{self, ResourceInfo};

use super::three_way::PatchKind;

/// A resource the client can talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Res {
    /// API group; empty for core.
    pub group: String,
    /// Version within the group.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural URL name, e.g. `deployments`.
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether the kind is built in (strategic merge patch) rather than custom (merge patch).
    pub builtin: bool,
}

impl From<&ResourceInfo> for Res {
    fn from(r: &ResourceInfo) -> Self {
        Res {
            group: r.group.to_string(),
            version: r.version.to_string(),
            kind: r.kind.to_string(),
            plural: r.plural.to_string(),
            namespaced: r.namespaced,
            builtin: true,
        }
    }
}

impl Res {
    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        resources::group_version(&self.group, &self.version)
    }

    /// What kubectl prints before `/name`: `deployment.apps`, `service`.
    pub fn display(&self) -> String {
        let kind = self.kind.to_ascii_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }

    /// `deployments.apps`, `services`: the form kubectl's error messages use.
    pub fn plural_group(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The patch type client-side apply uses for this kind.
    pub fn patch_kind(&self) -> PatchKind {
        if self.builtin {
            PatchKind::Strategic
        } else {
            PatchKind::Merge
        }
    }

    /// The kube-rs description of this resource.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// A dynamic API handle scoped to `namespace` (ignored for cluster-scoped kinds), or to
    /// all namespaces when `namespace` is `None`.
    pub fn api(&self, client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
        let ar = self.api_resource();
        match namespace {
            Some(ns) if self.namespaced => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        }
    }

    /// The collection URL path, e.g. `/apis/apps/v1/namespaces/default/deployments`.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }
}

/// Every resource of category `all`, one version each, as `kubectl get all` lists them.
pub fn category_all() -> Vec<Res> {
    let mut out: Vec<Res> = Vec::new();
    for r in resources::RESOURCES
        .iter()
        .filter(|r| r.categories.contains(&"all"))
    {
        if !out
            .iter()
            .any(|o| o.group == r.group && o.plural == r.plural)
        {
            out.push(r.into());
        }
    }
    out
}

/// Resolves a type name from the local table only.
pub fn resolve_local(name: &str) -> Option<Res> {
    resources::resolve(name).map(Res::from)
}

/// Resolves a type name the user typed, asking the server's discovery when the local table
/// does not know it.
pub async fn resolve(client: &Client, name: &str) -> Result<Res> {
    if let Some(r) = resolve_local(name) {
        return Ok(r);
    }
    let lower = name.to_ascii_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    for d in discover(client).await? {
        if group.as_deref().is_some_and(|g| g != d.res.group) {
            continue;
        }
        if d.res.plural == base
            || d.singular == base
            || d.res.kind.to_ascii_lowercase() == base
            || d.short_names.contains(&base)
        {
            return Ok(d.res);
        }
    }
    bail!("the server doesn't have a resource type \"{name}\"")
}

/// Resolves a manifest's `apiVersion` and `kind`.
pub async fn for_manifest(client: &Client, api_version: &str, kind: &str) -> Result<Res> {
    if let Some(r) = resources::find_by_kind(api_version, kind) {
        return Ok(r.into());
    }
    let (group, version) = resources::split_api_version(api_version);
    discover(client)
        .await?
        .into_iter()
        .map(|d| d.res)
        .find(|r| r.group == group && r.version == version && r.kind == kind)
        .ok_or_else(|| anyhow!("resource mapping not found for kind \"{kind}\" in version \"{api_version}\"; ensure CRDs are installed first"))
}

/// One entry of the server's discovery documents.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The resource.
    pub res: Res,
    /// Singular name.
    pub singular: String,
    /// Short names.
    pub short_names: Vec<String>,
    /// Verbs the resource answers.
    pub verbs: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
}

/// Reads `/api/v1` and the preferred version of every group under `/apis`.
pub async fn discover(client: &Client) -> Result<Vec<Discovered>> {
    let mut lists = vec![client.list_core_api_resources("v1").await?];
    for g in client.list_api_groups().await?.groups {
        let Some(v) = g.preferred_version.or_else(|| g.versions.first().cloned()) else {
            continue;
        };
        lists.push(client.list_api_group_resources(&v.group_version).await?);
    }
    let mut out = Vec::new();
    for list in lists {
        let (group, version) = resources::split_api_version(&list.group_version);
        for r in list.resources {
            if r.name.contains('/') {
                continue;
            }
            let builtin = resources::find(group, version, &r.name).is_some();
            out.push(Discovered {
                singular: if r.singular_name.is_empty() {
                    r.kind.to_ascii_lowercase()
                } else {
                    r.singular_name
                },
                short_names: r.short_names.unwrap_or_default(),
                verbs: r.verbs,
                categories: r.categories.unwrap_or_default(),
                res: Res {
                    group: r.group.unwrap_or_else(|| group.to_string()),
                    version: r.version.unwrap_or_else(|| version.to_string()),
                    kind: r.kind,
                    plural: r.name,
                    namespaced: r.namespaced,
                    builtin,
                },
            });
        }
    }
    Ok(out)
}

/// Splits `type/name` arguments and `TYPE[,TYPE] NAME...` arguments into (type, name) pairs;
/// a `None` name means every object of the type.
pub fn split_args(args: &[String]) -> Result<Vec<(String, Option<String>)>> {
    let Some(first) = args.first() else {
        bail!("you must specify the type of resource to get");
    };
    if args.iter().any(|a| a.contains('/')) {
        let mut out = Vec::new();
        for a in args {
            let Some((t, n)) = a.split_once('/') else {
                bail!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiff get resource/<resource_name>' instead of 'skiff get resource resource/<resource_name>'"
                );
            };
            if t.is_empty() || n.is_empty() {
                bail!("arguments in resource/name form must have a single resource and name");
            }
            out.push((t.to_string(), Some(n.to_string())));
        }
        return Ok(out);
    }
    let types: Vec<&str> = first.split(',').filter(|t| !t.is_empty()).collect();
    let names = &args[1..];
    let mut out = Vec::new();
    for t in types {
        if names.is_empty() {
            out.push((t.to_string(), None));
        }
        for n in names {
            out.push((t.to_string(), Some(n.clone())));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names_resolve_with_display_forms() {
        let d = resolve_local("deploy").unwrap();
        assert_eq!(d.display(), "deployment.apps");
        assert_eq!(d.plural_group(), "deployments.apps");
        assert_eq!(
            d.collection_path(Some("ns1")),
            "/apis/apps/v1/namespaces/ns1/deployments"
        );
        let s = resolve_local("svc").unwrap();
        assert_eq!(s.display(), "service");
        assert_eq!(
            s.collection_path(Some("default")),
            "/api/v1/namespaces/default/services"
        );
        let n = resolve_local("nodes").unwrap();
        assert_eq!(n.collection_path(Some("default")), "/api/v1/nodes");
        assert!(resolve_local("widgets").is_none());
    }

    #[test]
    fn all_lists_each_resource_once() {
        let all = category_all();
        let hpas = all
            .iter()
            .filter(|r| r.plural == "horizontalpodautoscalers")
            .count();
        assert_eq!(hpas, 1);
        assert!(all.iter().any(|r| r.kind == "Pod"));
        assert!(!all.iter().any(|r| r.kind == "ConfigMap"));
    }

    #[test]
    fn arguments_split_into_pairs() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            split_args(&s(&["deploy,svc", "web"])).unwrap(),
            vec![
                ("deploy".into(), Some("web".into())),
                ("svc".into(), Some("web".into()))
            ]
        );
        assert_eq!(
            split_args(&s(&["pods"])).unwrap(),
            vec![("pods".into(), None)]
        );
        assert_eq!(
            split_args(&s(&["deploy/a", "svc/b"])).unwrap(),
            vec![
                ("deploy".into(), Some("a".into())),
                ("svc".into(), Some("b".into()))
            ]
        );
        assert!(split_args(&s(&["deploy", "svc/b"])).is_err());
    }
}
