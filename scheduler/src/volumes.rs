//! The scheduler's view of storage: PersistentVolumeClaims, PersistentVolumes and
//! StorageClasses from their watches, each kept through relists (objects the relist does
//! not return are dropped), for the VolumeBinding plugin.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use skiff_api::storage::is_default_class;

/// Objects of one kind by `namespace/name` (or name), kept from a watch.
#[derive(Debug)]
pub struct Objects<K> {
    items: HashMap<String, Arc<K>>,
    relist: Option<HashSet<String>>,
    synced: bool,
}

impl<K> Default for Objects<K> {
    fn default() -> Self {
        Objects {
            items: HashMap::new(),
            relist: None,
            synced: false,
        }
    }
}

fn key_of<K: ResourceExt>(obj: &K) -> String {
    match obj.namespace() {
        Some(ns) => format!("{ns}/{}", obj.name_any()),
        None => obj.name_any(),
    }
}

impl<K: ResourceExt> Objects<K> {
    /// Applies one watch event; true when the set changed in a way a parked pod may care
    /// about (anything but the start of a relist).
    pub fn apply(&mut self, ev: Event<K>) -> bool {
        match ev {
            Event::Init => {
                self.relist = Some(HashSet::new());
                false
            }
            Event::InitApply(obj) => {
                let key = key_of(&obj);
                if let Some(seen) = self.relist.as_mut() {
                    seen.insert(key.clone());
                }
                self.items.insert(key, Arc::new(obj));
                true
            }
            Event::InitDone => {
                let seen = self.relist.take().unwrap_or_default();
                self.items.retain(|k, _| seen.contains(k));
                self.synced = true;
                true
            }
            Event::Apply(obj) => {
                self.items.insert(key_of(&obj), Arc::new(obj));
                true
            }
            Event::Delete(obj) => self.items.remove(&key_of(&obj)).is_some(),
        }
    }

    /// Adds or replaces one object (tests).
    pub fn insert(&mut self, obj: K) {
        self.items.insert(key_of(&obj), Arc::new(obj));
        self.synced = true;
    }

    /// The object under `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<K>> {
        self.items.get(key)
    }

    /// Every object.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<K>> {
        self.items.values()
    }

    /// Whether the first list has been seen.
    pub fn synced(&self) -> bool {
        self.synced
    }
}

/// Claims, volumes and classes.
#[derive(Debug, Default)]
pub struct Storage {
    /// Claims by `namespace/name`.
    pub claims: Objects<PersistentVolumeClaim>,
    /// Volumes by name.
    pub volumes: Objects<PersistentVolume>,
    /// Classes by name.
    pub classes: Objects<StorageClass>,
}

impl Storage {
    /// Whether all three watches have listed once.
    pub fn synced(&self) -> bool {
        self.claims.synced() && self.volumes.synced() && self.classes.synced()
    }

    /// The class a claim's binding follows: the one it names, or (naming none) the
    /// default class, as the binder assigns it.
    pub fn class_of(&self, pvc: &PersistentVolumeClaim) -> Option<&Arc<StorageClass>> {
        match skiff_api::storage::claim_class(pvc) {
            Some("") => None,
            Some(name) => self.classes.get(name),
            None => self
                .classes
                .iter()
                .filter(|c| is_default_class(c.metadata.annotations.as_ref()))
                .max_by_key(|c| c.metadata.creation_timestamp.clone()),
        }
    }
}
