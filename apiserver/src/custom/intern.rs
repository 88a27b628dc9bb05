//! Resource facts of kinds defined at run time, made `'static` once per distinct value: the
//! registry's entries borrow `&'static ResourceInfo` like the built-in table's. Interning
//! bounds what is kept to the distinct definitions seen, however often a CRD is re-read.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, Mutex};

use skiff_api::resources::{ResourceInfo, Subresource};

/// A string kept for the life of the process, shared with every equal one.
pub fn intern(s: &str) -> &'static str {
    static STRINGS: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);
    let mut set = STRINGS.lock().expect("intern lock");
    if let Some(s) = set.get(s) {
        return s;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

fn intern_list(items: &[String]) -> &'static [&'static str] {
    static LISTS: LazyLock<Mutex<HashMap<Vec<String>, &'static [&'static str]>>> =
        LazyLock::new(Default::default);
    let mut map = LISTS.lock().expect("intern lock");
    if let Some(l) = map.get(items) {
        return l;
    }
    let leaked: &'static [&'static str] = Box::leak(
        items
            .iter()
            .map(|s| intern(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    map.insert(items.to_vec(), leaked);
    leaked
}

/// The owned form of a custom resource version's facts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InfoSpec {
    /// API group.
    pub group: String,
    /// Served version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Namespace scoped.
    pub namespaced: bool,
    /// Short names.
    pub short_names: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// `status` subresource enabled.
    pub status: bool,
    /// `scale` subresource enabled.
    pub scale: bool,
    /// The CRD's storage version.
    pub storage_version: String,
}

const SUB_VERBS: &[&str] = &["get", "patch", "update"];

/// The interned `ResourceInfo` of `spec`.
pub fn info(spec: &InfoSpec) -> &'static ResourceInfo {
    static INFOS: LazyLock<Mutex<HashMap<InfoSpec, &'static ResourceInfo>>> =
        LazyLock::new(Default::default);
    if let Some(i) = INFOS.lock().expect("intern lock").get(spec) {
        return i;
    }
    let kind = intern(&spec.kind);
    let mut subs = Vec::new();
    if spec.status {
        subs.push(Subresource {
            name: "status",
            kind,
            group: "",
            version: "",
            verbs: SUB_VERBS,
        });
    }
    if spec.scale {
        subs.push(Subresource {
            name: "scale",
            kind: "Scale",
            group: "autoscaling",
            version: "v1",
            verbs: SUB_VERBS,
        });
    }
    let group = intern(&spec.group);
    let plural = intern(&spec.plural);
    let info: &'static ResourceInfo = Box::leak(Box::new(ResourceInfo {
        group,
        version: intern(&spec.version),
        kind,
        plural,
        singular: intern(&spec.singular),
        namespaced: spec.namespaced,
        short_names: intern_list(&spec.short_names),
        categories: intern_list(&spec.categories),
        subresources: Box::leak(subs.into_boxed_slice()),
        storage_group: group,
        storage_plural: plural,
        storage_version: intern(&spec.storage_version),
        verbs: skiff_api::resources::RESOURCE_VERBS,
    }));
    INFOS
        .lock()
        .expect("intern lock")
        .entry(spec.clone())
        .or_insert(info)
}
