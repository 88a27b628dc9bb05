//! The watch cache: one store watch per storage prefix feeds an in-memory copy of every object
//! and a bounded history of recent events, which serve all API watches and
//! `resourceVersion=0` lists. A thousand watchers cost one store watch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use skiff_api::fields::FieldSelector;
use tokio::sync::{broadcast, watch};

use crate::storage::{ListOptions, Revision, Store, StoreError, WatchEvent};

/// Events kept per prefix for watches that resume from a recent revision. Older resumes are
/// served from the store's own history, so this only trades memory (each event holds a
/// decoded object version) against store reads; at 1,000 nodes 10,000 events per prefix cost
/// hundreds of MiB.
const HISTORY: usize = 2_000;
/// Live events buffered per watcher before a slow watcher is cut off (it then re-watches).
const BROADCAST: usize = 4_096;
/// Live events buffered per indexed watcher (it sees only its own index value's events).
const INDEXED_BROADCAST: usize = 1_024;

/// A trigger index, as kube-apiserver's watch cache has for pods by `spec.nodeName`: a watcher
/// whose field selector demands one value of the field gets only the events whose object (or
/// its previous state) has that value, instead of waking for every event of the prefix. With
/// a thousand node agents each watching its own pods, a pod event wakes one watcher, not all.
struct Index {
    /// The selectable field (`spec.nodeName`).
    field: &'static str,
    /// Where that field is in the stored object.
    pointer: &'static str,
    /// One channel per field value that has watchers.
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<CacheEvent>>>>,
}

impl Index {
    fn value_of(&self, obj: &Value) -> String {
        obj.pointer(self.pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// Sends `ev` to the watchers of the values it touches; drops channels nobody listens to.
    fn dispatch(&self, ev: &Arc<CacheEvent>) {
        let mut values = vec![self.value_of(&ev.object)];
        if let Some(p) = &ev.prev {
            let v = self.value_of(p);
            if v != values[0] {
                values.push(v);
            }
        }
        let mut channels = self.channels.lock().expect("index lock");
        for v in values {
            if let Some(tx) = channels.get(&v) {
                if tx.send(ev.clone()).is_err() {
                    channels.remove(&v);
                }
            }
        }
    }

    fn subscribe(&self, value: &str) -> broadcast::Receiver<Arc<CacheEvent>> {
        let mut channels = self.channels.lock().expect("index lock");
        channels
            .entry(value.to_string())
            .or_insert_with(|| broadcast::channel(INDEXED_BROADCAST).0)
            .subscribe()
    }

    fn receivers(&self) -> usize {
        let channels = self.channels.lock().expect("index lock");
        channels
            .values()
            .map(broadcast::Sender::receiver_count)
            .sum()
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created (or entered a selector).
    Added,
    /// Updated.
    Modified,
    /// Deleted (or left a selector).
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, with the object decoded once and shared by every watcher.
#[derive(Debug, Clone)]
pub struct CacheEvent {
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for deletes: its last state), resourceVersion set to
    /// the event's revision.
    pub object: Arc<Value>,
    /// The object before the change, when it existed.
    pub prev: Option<Arc<Value>>,
    /// Revision of the change.
    pub revision: Revision,
}

struct Inner {
    objects: BTreeMap<String, Arc<Value>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Revision the cache reflects.
    revision: Revision,
    /// Watches from a revision below this cannot be served from `history`.
    window_start: Revision,
    ready: bool,
}

/// The cache of one storage prefix.
pub struct WatchCache {
    prefix: String,
    inner: RwLock<Inner>,
    tx: broadcast::Sender<Arc<CacheEvent>>,
    index: Option<Index>,
    ready: watch::Sender<bool>,
}

/// Where a cache watcher starts.
pub struct Subscription {
    /// Events to send first (synthetic ADDED for a fresh watch, or replayed history).
    pub initial: Vec<Arc<CacheEvent>>,
    /// Live events; skip those with `revision <= after`.
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// The revision the initial events bring the watcher to.
    pub after: Revision,
}

/// Decodes a stored value into an object carrying its resourceVersion.
pub fn decode(value: &[u8], revision: Revision) -> Result<Value, StoreError> {
    let mut v: Value = serde_json::from_slice(value)
        .map_err(|e| StoreError::Backend(format!("corrupt stored object: {e}")))?;
    place_resource_version(&mut v, revision);
    Ok(v)
}

/// Sets `metadata.resourceVersion` to `revision` where ObjectMeta's field order puts it
/// (the serialized fields are in name order: after `ownerReferences`, before `selfLink` and
/// `uid`), so objects read back keep their fields in the type's order.
pub fn place_resource_version(obj: &mut Value, revision: Revision) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let rv = Value::String(revision.to_string());
    if let Some(v) = meta.get_mut("resourceVersion") {
        *v = rv;
        return;
    }
    let old = std::mem::take(meta);
    let mut rv = Some(rv);
    for (k, v) in old {
        if k.as_str() > "resourceVersion"
            && let Some(rv) = rv.take()
        {
            meta.insert("resourceVersion".into(), rv);
        }
        meta.insert(k, v);
    }
    if let Some(rv) = rv {
        meta.insert("resourceVersion".into(), rv);
    }
}

impl WatchCache {
    /// Starts the cache for `prefix`: lists it, then follows the store's watch.
    pub fn start(store: Arc<dyn Store>, prefix: String) -> Arc<Self> {
        Self::start_indexed(store, prefix, None)
    }

    /// As [`WatchCache::start`], with a trigger index on `(field, JSON pointer)`.
    pub fn start_indexed(
        store: Arc<dyn Store>,
        prefix: String,
        index: Option<(&'static str, &'static str)>,
    ) -> Arc<Self> {
        let (tx, _) = broadcast::channel(BROADCAST);
        let (ready, _) = watch::channel(false);
        let cache = Arc::new(Self {
            prefix,
            inner: RwLock::new(Inner {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                revision: 0,
                window_start: i64::MAX,
                ready: false,
            }),
            tx,
            index: index.map(|(field, pointer)| Index {
                field,
                pointer,
                channels: Mutex::default(),
            }),
            ready,
        });
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                if let Err(e) = cache.run(&*store).await {
                    tracing::warn!(prefix = %cache.prefix, error = %e, "watch cache restarting");
                }
                drop(cache);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        cache
    }

    /// Lists the prefix, reconciles the cached copy with it, then applies the store's events
    /// until the watch fails.
    async fn run(&self, store: &dyn Store) -> Result<(), StoreError> {
        let list = store.list(&self.prefix, ListOptions::default()).await?;
        let mut fresh = BTreeMap::new();
        for kv in &list.items {
            fresh.insert(
                kv.key.clone(),
                Arc::new(decode(&kv.value, kv.mod_revision)?),
            );
        }
        self.reset(fresh, list.revision);
        let mut stream = store.watch(&self.prefix, list.revision).await?;
        while let Some(ev) = stream.next().await {
            self.apply(ev?)?;
        }
        Err(StoreError::Backend("store watch ended".into()))
    }

    /// Replaces the cached copy after a (re)list, emitting the differences as events so
    /// watchers stay consistent.
    fn reset(&self, fresh: BTreeMap<String, Arc<Value>>, revision: Revision) {
        let mut inner = self.inner.write().expect("watch cache lock");
        if inner.ready {
            let old = std::mem::take(&mut inner.objects);
            for (key, prev) in &old {
                if !fresh.contains_key(key) {
                    let ev = CacheEvent {
                        kind: EventType::Deleted,
                        object: prev.clone(),
                        prev: Some(prev.clone()),
                        revision,
                    };
                    self.push(&mut inner, ev);
                }
            }
            for (key, obj) in &fresh {
                match old.get(key) {
                    Some(prev) if prev == obj => {}
                    Some(prev) => self.push(
                        &mut inner,
                        CacheEvent {
                            kind: EventType::Modified,
                            object: obj.clone(),
                            prev: Some(prev.clone()),
                            revision,
                        },
                    ),
                    None => self.push(
                        &mut inner,
                        CacheEvent {
                            kind: EventType::Added,
                            object: obj.clone(),
                            prev: None,
                            revision,
                        },
                    ),
                }
            }
            // History before a relist cannot be trusted for resumption.
            inner.history.clear();
        }
        inner.objects = fresh;
        inner.revision = revision;
        inner.window_start = revision;
        inner.ready = true;
        drop(inner);
        self.ready.send_replace(true);
    }

    fn apply(&self, ev: WatchEvent) -> Result<(), StoreError> {
        let revision = ev.revision();
        let mut inner = self.inner.write().expect("watch cache lock");
        let cache_ev = match ev {
            WatchEvent::Put { kv, .. } => {
                let obj = Arc::new(decode(&kv.value, kv.mod_revision)?);
                let prev = inner.objects.insert(kv.key, obj.clone());
                let kind = if prev.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                CacheEvent {
                    kind,
                    object: obj,
                    prev,
                    revision,
                }
            }
            WatchEvent::Delete { prev, revision } => {
                let last = match inner.objects.remove(&prev.key) {
                    Some(o) => o,
                    None => Arc::new(decode(&prev.value, prev.mod_revision)?),
                };
                let mut obj = (*last).clone();
                if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert(
                        "resourceVersion".into(),
                        Value::String(revision.to_string()),
                    );
                }
                CacheEvent {
                    kind: EventType::Deleted,
                    object: Arc::new(obj),
                    prev: Some(last),
                    revision,
                }
            }
        };
        inner.revision = revision;
        self.push(&mut inner, cache_ev);
        Ok(())
    }

    fn push(&self, inner: &mut Inner, ev: CacheEvent) {
        let ev = Arc::new(ev);
        if inner.history.len() == HISTORY {
            if let Some(old) = inner.history.pop_front() {
                inner.window_start = old.revision;
            }
        }
        inner.history.push_back(ev.clone());
        if let Some(index) = &self.index {
            index.dispatch(&ev);
        }
        let _ = self.tx.send(ev);
    }

    /// Waits until the initial list has loaded.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Every cached object (in key order) and the revision the copy reflects.
    pub async fn snapshot(&self) -> (Vec<Arc<Value>>, Revision) {
        self.wait_ready().await;
        let inner = self.inner.read().expect("watch cache lock");
        (inner.objects.values().cloned().collect(), inner.revision)
    }

    /// The objects under a key prefix (e.g. one namespace), in key order.
    pub async fn snapshot_prefix(&self, key_prefix: &str) -> (Vec<Arc<Value>>, Revision) {
        self.wait_ready().await;
        let inner = self.inner.read().expect("watch cache lock");
        let items = inner
            .objects
            .range(key_prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(key_prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, inner.revision)
    }

    /// Subscribes a watcher. `from = None` starts with synthetic ADDED events for every
    /// object; `Some(rv)` replays the history after `rv`. Returns `None` when `rv` is older
    /// than the cache's window (the caller then watches the store directly).
    /// A watcher whose `fields` demand one value of the indexed field gets only the events
    /// touching that value as live events (initial events are not narrowed: the caller's
    /// filter still decides what to send).
    pub async fn subscribe(
        &self,
        from: Option<Revision>,
        fields: Option<&FieldSelector>,
    ) -> Option<Subscription> {
        self.wait_ready().await;
        let inner = self.inner.read().expect("watch cache lock");
        let indexed = self
            .index
            .as_ref()
            .and_then(|i| Some((i, fields?.required_value(i.field)?)));
        let live = match indexed {
            Some((index, value)) => index.subscribe(value),
            None => self.tx.subscribe(),
        };
        match from {
            None => {
                let revision = inner.revision;
                let initial = inner
                    .objects
                    .values()
                    .map(|o| {
                        Arc::new(CacheEvent {
                            kind: EventType::Added,
                            object: o.clone(),
                            prev: None,
                            revision: object_revision(o),
                        })
                    })
                    .collect();
                Some(Subscription {
                    initial,
                    live,
                    after: revision,
                })
            }
            Some(rv) if rv >= inner.window_start => {
                let initial = inner
                    .history
                    .iter()
                    .filter(|e| e.revision > rv)
                    .cloned()
                    .collect();
                Some(Subscription {
                    initial,
                    live,
                    after: rv.max(inner.revision),
                })
            }
            Some(_) => None,
        }
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> Revision {
        self.inner.read().expect("watch cache lock").revision
    }

    /// Number of watchers currently subscribed.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count() + self.index.as_ref().map_or(0, Index::receivers)
    }
}

/// The resourceVersion of an object as a revision (0 when absent).
pub fn object_revision(obj: &Value) -> Revision {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The caches of every storage prefix, started together.
pub struct WatchCaches {
    store: Arc<dyn Store>,
    caches: RwLock<HashMap<String, Arc<WatchCache>>>,
}

impl WatchCaches {
    /// Starts one cache per distinct storage prefix in the resource table.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let mut caches = HashMap::new();
        for r in skiff_api::resources::RESOURCES
            .iter()
            .filter(|r| r.is_stored())
        {
            let prefix = r.key_prefix();
            // Node agents watch their pods by spec.nodeName: index pod watchers by it.
            let index = (r.group.is_empty() && r.plural == "pods")
                .then_some(("spec.nodeName", "/spec/nodeName"));
            caches
                .entry(prefix.clone())
                .or_insert_with(|| WatchCache::start_indexed(store.clone(), prefix, index));
        }
        Self {
            store,
            caches: RwLock::new(caches),
        }
    }

    /// The cache of a storage prefix.
    pub fn get(&self, prefix: &str) -> Option<Arc<WatchCache>> {
        self.caches
            .read()
            .expect("watch caches lock")
            .get(prefix)
            .cloned()
    }

    /// Starts the cache of a storage prefix defined at run time (a custom kind's) unless it
    /// runs already. A cache outlives its kind's removal: re-creating the kind reuses it.
    pub fn ensure(&self, prefix: &str) {
        let mut caches = self.caches.write().expect("watch caches lock");
        if !caches.contains_key(prefix) {
            let cache = WatchCache::start(self.store.clone(), prefix.to_string());
            caches.insert(prefix.to_string(), cache);
        }
    }

    /// Total watchers across caches, by prefix.
    pub fn watcher_counts(&self) -> Vec<(String, usize)> {
        self.caches
            .read()
            .expect("watch caches lock")
            .iter()
            .map(|(p, c)| (p.clone(), c.watchers()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::EmbeddedStore;
    use serde_json::json;

    fn pod(name: &str, node: &str) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"nodeName": node}}),
        )
        .unwrap()
    }

    async fn next_name(rx: &mut broadcast::Receiver<Arc<CacheEvent>>) -> Option<String> {
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .ok()?
            .ok()
            .map(|e| e.object["metadata"]["name"].as_str().unwrap().to_string())
    }

    #[tokio::test]
    async fn indexed_watchers_get_only_their_node_s_events() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(&dir.path().join("db.sqlite")).unwrap());
        let cache = WatchCache::start_indexed(
            store.clone(),
            "/pods/".into(),
            Some(("spec.nodeName", "/spec/nodeName")),
        );
        let on_a = FieldSelector::parse("spec.nodeName=a").unwrap();
        let mut a = cache.subscribe(None, Some(&on_a)).await.unwrap();
        let mut all = cache.subscribe(None, None).await.unwrap();
        assert_eq!(cache.watchers(), 2);

        store.create("/pods/ns/p1", pod("p1", "b")).await.unwrap();
        let rev = store.create("/pods/ns/p2", pod("p2", "a")).await.unwrap();
        assert_eq!(next_name(&mut all.live).await.as_deref(), Some("p1"));
        assert_eq!(next_name(&mut all.live).await.as_deref(), Some("p2"));
        assert_eq!(next_name(&mut a.live).await.as_deref(), Some("p2"));
        assert_eq!(next_name(&mut a.live).await, None, "p1 is on node b");
        // Leaving the node is an event for the node's watcher too (its prev state matched).
        store
            .update("/pods/ns/p2", pod("p2", "b"), rev)
            .await
            .unwrap();
        assert_eq!(next_name(&mut a.live).await.as_deref(), Some("p2"));
        drop(a);
        store.create("/pods/ns/p3", pod("p3", "a")).await.unwrap();
        assert_eq!(next_name(&mut all.live).await.as_deref(), Some("p2"));
        assert_eq!(next_name(&mut all.live).await.as_deref(), Some("p3"));
        assert_eq!(cache.watchers(), 1, "the unused channel was dropped");
    }
}
