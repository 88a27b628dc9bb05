//! The RBAC authorizer: Roles, ClusterRoles and their bindings, read from the watch caches
//! (so a binding works as soon as it is stored, on every server), indexed once per change.
//! A request is allowed when a ClusterRoleBinding, or a RoleBinding in the request's
//! namespace, binds one of the user's identities to a role with a rule that matches it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{Attributes, Decision};
use crate::auth::UserInfo;
use crate::watchcache::WatchCaches;

/// One PolicyRule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// Verbs (`*` for all).
    pub verbs: Vec<String>,
    /// API groups (`""` core, `*` all).
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*/subresource` or `*`.
    pub resources: Vec<String>,
    /// Object names; empty means any.
    pub resource_names: Vec<String>,
    /// Non-resource URLs, exact or ending in `*`.
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|v| v == "*" || v == want)
}

impl Rule {
    /// A rule from its JSON form.
    pub fn from_json(r: &Value) -> Rule {
        Rule {
            verbs: strings(&r["verbs"]),
            api_groups: strings(&r["apiGroups"]),
            resources: strings(&r["resources"]),
            resource_names: strings(&r["resourceNames"]),
            non_resource_urls: strings(&r["nonResourceURLs"]),
        }
    }

    /// The rules of a role object.
    pub fn all_of(role: &Value) -> Vec<Rule> {
        role["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Rule::from_json)
            .collect()
    }

    /// The rule as JSON (as a PolicyRule serializes: empty lists left out).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("verbs".into(), serde_json::json!(self.verbs));
        for (k, v) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !v.is_empty() {
                m.insert(k.into(), serde_json::json!(v));
            }
        }
        Value::Object(m)
    }

    fn resource_matches(&self, resource: &str, sub: &str) -> bool {
        self.resources.iter().any(|r| {
            r == "*"
                || (sub.is_empty() && r == resource)
                || (!sub.is_empty()
                    && (r.strip_prefix("*/") == Some(sub)
                        || r.split_once('/') == Some((resource, sub))))
        })
    }

    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == "*"
                || u == path
                || u.strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    }

    /// Whether the rule allows the request.
    pub fn allows(&self, a: &Attributes) -> bool {
        if !has(&self.verbs, &a.verb) {
            return false;
        }
        if !a.resource_request {
            return self.url_matches(&a.path);
        }
        has(&self.api_groups, &a.api_group)
            && self.resource_matches(&a.resource, &a.subresource)
            && (self.resource_names.is_empty() || self.resource_names.contains(&a.name))
    }
}

/// A binding's subject.
#[derive(Debug, Clone)]
struct Subject {
    kind: String,
    name: String,
    namespace: String,
}

/// A binding: who, and which role.
#[derive(Debug, Clone)]
struct Binding {
    name: String,
    subjects: Vec<Subject>,
    role_kind: String,
    role_name: String,
}

impl Binding {
    fn from_json(b: &Value) -> Binding {
        let ns = b["metadata"]["namespace"].as_str().unwrap_or_default();
        Binding {
            name: b["metadata"]["name"].as_str().unwrap_or_default().into(),
            subjects: b["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| Subject {
                    kind: s["kind"].as_str().unwrap_or_default().into(),
                    name: s["name"].as_str().unwrap_or_default().into(),
                    namespace: s["namespace"].as_str().unwrap_or(ns).into(),
                })
                .collect(),
            role_kind: b["roleRef"]["kind"].as_str().unwrap_or_default().into(),
            role_name: b["roleRef"]["name"].as_str().unwrap_or_default().into(),
        }
    }

    fn applies_to(&self, user: &UserInfo) -> bool {
        self.subjects.iter().any(|s| match s.kind.as_str() {
            "User" => s.name == user.name,
            "Group" => user.in_group(&s.name),
            "ServiceAccount" => {
                user.name == format!("system:serviceaccount:{}:{}", s.namespace, s.name)
            }
            _ => false,
        })
    }
}

/// Everything RBAC stores, indexed.
#[derive(Debug, Default)]
pub struct Index {
    cluster_roles: HashMap<String, Vec<Rule>>,
    roles: HashMap<(String, String), Vec<Rule>>,
    cluster_bindings: Vec<Binding>,
    bindings: HashMap<String, Vec<Binding>>,
}

impl Index {
    /// Builds the index from the four kinds' objects.
    pub fn build(
        cluster_roles: &[Arc<Value>],
        roles: &[Arc<Value>],
        cluster_bindings: &[Arc<Value>],
        bindings: &[Arc<Value>],
    ) -> Index {
        let name = |o: &Value| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let ns = |o: &Value| {
            o["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let mut idx = Index::default();
        for r in cluster_roles {
            idx.cluster_roles.insert(name(r), Rule::all_of(r));
        }
        for r in roles {
            idx.roles.insert((ns(r), name(r)), Rule::all_of(r));
        }
        idx.cluster_bindings = cluster_bindings
            .iter()
            .map(|b| Binding::from_json(b))
            .collect();
        for b in bindings {
            idx.bindings
                .entry(ns(b))
                .or_default()
                .push(Binding::from_json(b));
        }
        idx
    }

    fn role_rules(&self, namespace: &str, b: &Binding) -> &[Rule] {
        let rules = match b.role_kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&b.role_name),
            "Role" => self
                .roles
                .get(&(namespace.to_string(), b.role_name.clone())),
            _ => None,
        };
        rules.map(Vec::as_slice).unwrap_or_default()
    }

    /// The bindings that apply to `user` in `namespace` (cluster-wide ones first), with
    /// the rules of the role each grants.
    fn grants<'a>(
        &'a self,
        user: &'a UserInfo,
        namespace: &'a str,
    ) -> impl Iterator<Item = (String, &'a [Rule])> + 'a {
        let cluster = self
            .cluster_bindings
            .iter()
            .filter(|b| b.applies_to(user))
            .map(|b| {
                (
                    format!(
                        "ClusterRoleBinding {:?} of ClusterRole {:?}",
                        b.name, b.role_name
                    ),
                    self.role_rules("", b),
                )
            });
        let local = (!namespace.is_empty())
            .then(|| self.bindings.get(namespace))
            .flatten()
            .into_iter()
            .flatten()
            .filter(|b| b.applies_to(user))
            .map(move |b| {
                (
                    format!(
                        "RoleBinding {:?} of {} {:?} to namespace {namespace:?}",
                        b.name, b.role_kind, b.role_name
                    ),
                    self.role_rules(namespace, b),
                )
            });
        cluster.chain(local)
    }

    /// Whether a rule bound to the user allows the request.
    pub fn authorize(&self, a: &Attributes) -> Decision {
        for (why, rules) in self.grants(&a.user, &a.namespace) {
            if rules.iter().any(|r| r.allows(a)) {
                return Decision::Allow(format!("RBAC: allowed by {why}"));
            }
        }
        Decision::NoOpinion
    }

    /// Every rule the user holds in `namespace` (cluster-wide ones included).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<Rule> {
        self.grants(user, namespace)
            .flat_map(|(_, rules)| rules.iter().cloned())
            .collect()
    }

    /// The rules of a role a binding in `namespace` refers to, if it exists.
    pub fn role(&self, namespace: &str, kind: &str, name: &str) -> Option<&[Rule]> {
        match kind {
            "ClusterRole" => self.cluster_roles.get(name),
            "Role" => self.roles.get(&(namespace.to_string(), name.to_string())),
            _ => None,
        }
        .map(Vec::as_slice)
    }
}

const KINDS: [&str; 4] = [
    "/registry/rbac.authorization.k8s.io/clusterroles/",
    "/registry/rbac.authorization.k8s.io/roles/",
    "/registry/rbac.authorization.k8s.io/clusterrolebindings/",
    "/registry/rbac.authorization.k8s.io/rolebindings/",
];

/// The RBAC authorizer over the watch caches.
pub struct Authorizer {
    caches: Arc<WatchCaches>,
    index: Mutex<Option<([u64; 4], Arc<Index>)>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    /// An authorizer reading the RBAC kinds from `caches`.
    pub fn new(caches: Arc<WatchCaches>) -> Authorizer {
        Authorizer {
            caches,
            index: Mutex::new(None),
        }
    }

    /// The index as of the caches' current revisions, rebuilt when any of them moved.
    pub async fn index(&self) -> Arc<Index> {
        let caches: Vec<_> = KINDS.iter().map(|p| self.caches.get(p)).collect();
        let mut revs = [0u64; 4];
        for (i, c) in caches.iter().enumerate() {
            if let Some(c) = c {
                c.wait_ready().await;
                revs[i] = c.revision() as u64;
            }
        }
        if let Some((at, idx)) = self.index.lock().expect("rbac index lock").as_ref()
            && *at == revs
        {
            return idx.clone();
        }
        let mut lists = Vec::new();
        for c in &caches {
            lists.push(match c {
                Some(c) => c.snapshot().await.0,
                None => Vec::new(),
            });
        }
        let idx = Arc::new(Index::build(&lists[0], &lists[1], &lists[2], &lists[3]));
        *self.index.lock().expect("rbac index lock") = Some((revs, idx.clone()));
        idx
    }

    /// RBAC's decision on `a`.
    pub async fn authorize(&self, a: &Attributes) -> Decision {
        self.index().await.authorize(a)
    }
}
