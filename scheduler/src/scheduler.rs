//! The scheduling loop: pod and node watches feed the cache and the queue; one task pops
//! pods, runs the algorithm, assumes the result and hands bindings to concurrent writers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::SchedulerOptions;
use crate::binder::{BindError, Binder};
use crate::cache::Cache;
use crate::framework::Algorithm;
use crate::metrics::AttemptResult;
use crate::podinfo::{PodInfo, pod_key};
use crate::queue::SchedulingQueue;

/// How often back-off expiry and stale assumptions are checked at most.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

enum Input {
    Pod(Box<Event<Pod>>),
    Node(Box<Event<Node>>),
    Storage(StorageEvent),
    Bound {
        key: String,
        took: Duration,
        result: Result<(), BindError>,
    },
}

enum StorageEvent {
    Claim(Event<PersistentVolumeClaim>),
    Volume(Event<PersistentVolume>),
    Class(Event<StorageClass>),
}

/// Feeds one kind's watch events into the loop until the loop is gone.
fn watch<K>(
    tasks: &mut JoinSet<()>,
    api: Api<K>,
    tx: &mpsc::UnboundedSender<Input>,
    wrap: fn(Event<K>) -> Input,
) where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let tx = tx.clone();
    tasks.spawn(async move {
        let kind = K::kind(&K::DynamicType::default()).to_string();
        let mut s = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = s.next().await {
            match ev {
                Ok(ev) => {
                    if tx.send(wrap(ev)).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, kind, "watch failed; retrying"),
            }
        }
    });
}

/// Relist bookkeeping: keys seen since a watcher's `Init`.
#[derive(Default)]
struct Relist(Option<HashSet<String>>);

struct Loop {
    opts: SchedulerOptions,
    binder: Binder,
    cache: Cache,
    queue: SchedulingQueue,
    algorithm: Algorithm,
    /// Unbound pods that are ours, latest version.
    pending: HashMap<String, Arc<Pod>>,
    /// When each pending pod first entered the queue (for latency).
    enqueued_at: HashMap<String, Instant>,
    tx: mpsc::UnboundedSender<Input>,
    binds: Arc<Semaphore>,
    pods_synced: bool,
    nodes_synced: bool,
    pod_relist: Relist,
    node_relist: Relist,
    last_flush: Instant,
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Watches pods and nodes and schedules until an error; the caller decides when to stop
/// (by dropping the future).
pub async fn schedule(
    client: Client,
    opts: SchedulerOptions,
    identity: String,
) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watches = JoinSet::new();
    watch(&mut watches, Api::<Pod>::all(client.clone()), &tx, |e| {
        Input::Pod(Box::new(e))
    });
    watch(&mut watches, Api::<Node>::all(client.clone()), &tx, |e| {
        Input::Node(Box::new(e))
    });
    watch(&mut watches, Api::all(client.clone()), &tx, |e| {
        Input::Storage(StorageEvent::Claim(e))
    });
    watch(&mut watches, Api::all(client.clone()), &tx, |e| {
        Input::Storage(StorageEvent::Volume(e))
    });
    watch(&mut watches, Api::all(client.clone()), &tx, |e| {
        Input::Storage(StorageEvent::Class(e))
    });
    let mut l = Loop {
        binder: Binder::new(client, identity),
        cache: Cache::new(),
        queue: SchedulingQueue::new(),
        algorithm: Algorithm::new(opts.percentage_of_nodes_to_score),
        binds: Arc::new(Semaphore::new(opts.bind_concurrency.max(1))),
        opts,
        pending: HashMap::new(),
        enqueued_at: HashMap::new(),
        tx,
        pods_synced: false,
        nodes_synced: false,
        pod_relist: Relist::default(),
        node_relist: Relist::default(),
        last_flush: Instant::now(),
    };
    loop {
        while let Ok(input) = rx.try_recv() {
            l.handle(input);
        }
        let now = Instant::now();
        if now.duration_since(l.last_flush) >= FLUSH_EVERY {
            l.last_flush = now;
            l.queue.flush(now);
            if l.cache.expire_assumed(now) > 0 {
                l.queue.move_all_unschedulable(now);
            }
            let (a, b, u) = l.queue.lengths();
            l.opts.metrics.queues(a, b, u);
        }
        if l.pods_synced
            && l.nodes_synced
            && l.cache.storage.synced()
            && let Some(key) = l.queue.pop()
        {
            l.schedule_one(key).await;
            // Let watch and bind tasks run between pods on a busy runtime.
            tokio::task::yield_now().await;
            continue;
        }
        let wake = tokio::time::Instant::now() + FLUSH_EVERY;
        tokio::select! {
            input = rx.recv() => match input {
                Some(input) => l.handle(input),
                None => anyhow::bail!("scheduler inputs closed"),
            },
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

impl Loop {
    fn ours(&self, pod: &Pod) -> bool {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(crate::DEFAULT_SCHEDULER_NAME);
        self.opts.scheduler_names.iter().any(|n| n == name)
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Pod(ev) => self.on_pod_event(*ev),
            Input::Node(ev) => self.on_node_event(*ev),
            Input::Storage(ev) => self.on_storage_event(ev),
            Input::Bound { key, took, result } => self.on_bound(key, took, result),
        }
    }

    fn on_pod_event(&mut self, ev: Event<Pod>) {
        match ev {
            Event::Init => self.pod_relist.0 = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let Some(seen) = self.pod_relist.0.as_mut() {
                    seen.insert(pod_key(&pod));
                }
                self.on_pod(pod);
            }
            Event::InitDone => {
                let seen = self.pod_relist.0.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .pending
                    .keys()
                    .chain(self.cache.pod_keys())
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    self.on_pod_gone(&key);
                }
                self.pods_synced = true;
            }
            Event::Apply(pod) => self.on_pod(pod),
            Event::Delete(pod) => self.on_pod_gone(&pod_key(&pod)),
        }
    }

    fn on_pod(&mut self, pod: Pod) {
        let key = pod_key(&pod);
        let now = Instant::now();
        if is_terminal(&pod) {
            self.on_pod_gone(&key);
            return;
        }
        if bound_node(&pod).is_some() {
            self.pending.remove(&key);
            self.enqueued_at.remove(&key);
            if !self.queue.is_in_flight(&key) {
                self.queue.remove(&key);
            }
            let was_assumed = self.cache.is_assumed(&key);
            if self.cache.add_bound_pod(Arc::new(pod)) && !was_assumed {
                // A pod placed by someone else may satisfy a parked pod's affinity.
                self.queue.move_all_unschedulable(now);
            }
            return;
        }
        if self.cache.is_assumed(&key) {
            // Our binding is on its way; this is an older view of the pod.
            return;
        }
        if self.cache.has_pod(&key) {
            self.cache.remove_pod(&key);
        }
        if pod.metadata.deletion_timestamp.is_some() || !self.ours(&pod) {
            self.pending.remove(&key);
            self.enqueued_at.remove(&key);
            self.queue.remove(&key);
            return;
        }
        let changed = self.pending.get(&key).is_none_or(|old| {
            old.spec != pod.spec
                || old.metadata.labels != pod.metadata.labels
                || old.metadata.uid != pod.metadata.uid
        });
        let priority = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        self.pending.insert(key.clone(), Arc::new(pod));
        self.enqueued_at.entry(key.clone()).or_insert(now);
        self.queue.add(&key, priority, changed);
    }

    fn on_pod_gone(&mut self, key: &str) {
        self.pending.remove(key);
        self.enqueued_at.remove(key);
        self.queue.remove(key);
        if self.cache.remove_pod(key) {
            self.queue.move_all_unschedulable(Instant::now());
        }
    }

    fn on_storage_event(&mut self, ev: StorageEvent) {
        let storage = &mut self.cache.storage;
        let changed = match ev {
            StorageEvent::Claim(e) => storage.claims.apply(e),
            StorageEvent::Volume(e) => storage.volumes.apply(e),
            StorageEvent::Class(e) => storage.classes.apply(e),
        };
        if changed {
            // A claim made or bound, a volume freed or a class added may let a pod fit.
            self.queue.move_all_unschedulable(Instant::now());
        }
    }

    fn on_node_event(&mut self, ev: Event<Node>) {
        match ev {
            Event::Init => self.node_relist.0 = Some(HashSet::new()),
            Event::InitApply(node) => {
                if let Some(seen) = self.node_relist.0.as_mut() {
                    seen.insert(node.metadata.name.clone().unwrap_or_default());
                }
                self.on_node(node);
            }
            Event::InitDone => {
                let seen = self.node_relist.0.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .cache
                    .node_names()
                    .iter()
                    .filter(|n| !seen.contains(*n))
                    .cloned()
                    .collect();
                for n in gone {
                    self.cache.remove_node(&n);
                }
                self.nodes_synced = true;
            }
            Event::Apply(node) => self.on_node(node),
            Event::Delete(node) => self
                .cache
                .remove_node(node.metadata.name.as_deref().unwrap_or("")),
        }
    }

    fn on_node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        // Heartbeats change only timestamps; only changes that can make a pod fit matter.
        let relevant = match self.cache.node(&name).and_then(|n| n.node.as_ref()) {
            None => true,
            Some(old) => {
                old.spec != node.spec
                    || old.metadata.labels != node.metadata.labels
                    || old
                        .status
                        .as_ref()
                        .map(|s| (&s.allocatable, &s.capacity, &s.images))
                        != node
                            .status
                            .as_ref()
                            .map(|s| (&s.allocatable, &s.capacity, &s.images))
            }
        };
        if !relevant {
            return;
        }
        self.cache.upsert_node(Arc::new(node));
        self.queue.move_all_unschedulable(Instant::now());
    }

    async fn schedule_one(&mut self, key: String) {
        let Some(pod) = self.pending.get(&key).cloned() else {
            self.queue.remove(&key);
            return;
        };
        let info = Arc::new(PodInfo::new(pod.clone()));
        let start = Instant::now();
        match self.algorithm.schedule(&info, &self.cache) {
            Ok(decision) => {
                let took = start.elapsed();
                tracing::debug!(pod = %key, node = %decision.node, evaluated = decision.evaluated,
                    feasible = decision.feasible, "scheduled");
                self.cache.assume(info, &decision.node);
                let Ok(permit) = self.binds.clone().acquire_owned().await else {
                    return;
                };
                let binder = self.binder.clone();
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let result = binder
                        .select_node_for_claims(&pod, &decision.claims_to_select, &decision.node)
                        .await;
                    let result = match result {
                        Ok(()) => binder.bind(&pod, &decision.node).await,
                        Err(e) => Err(e),
                    };
                    let ok = result.is_ok();
                    let _ = tx.send(Input::Bound { key, took, result });
                    drop(permit);
                    if ok {
                        binder.report_scheduled(&pod, &decision.node).await;
                    }
                });
            }
            Err(fit) => {
                let took = start.elapsed();
                let message = fit.to_string();
                tracing::info!(pod = %key, reason = %message, "unschedulable");
                self.opts
                    .metrics
                    .attempt(AttemptResult::Unschedulable, took);
                self.queue.unschedulable(&key, Instant::now());
                let binder = self.binder.clone();
                tokio::spawn(async move { binder.report_unschedulable(&pod, &message).await });
            }
        }
    }

    fn on_bound(&mut self, key: String, took: Duration, result: Result<(), BindError>) {
        let now = Instant::now();
        match result {
            Ok(()) => {
                self.cache.finish_binding(&key, now);
                self.queue.remove(&key);
                self.pending.remove(&key);
                let since = self.enqueued_at.remove(&key).unwrap_or(now);
                self.opts.metrics.attempt(AttemptResult::Scheduled, took);
                self.opts.metrics.scheduled(now.duration_since(since));
            }
            Err(e @ (BindError::AlreadyBound { .. } | BindError::Gone { .. })) => {
                tracing::info!(pod = %key, reason = %e, "binding not needed");
                self.cache.forget(&key);
                self.queue.remove(&key);
                self.pending.remove(&key);
                self.enqueued_at.remove(&key);
            }
            Err(e) => {
                tracing::warn!(pod = %key, error = %anyhow::Error::from(e), "binding failed; backing off");
                self.opts.metrics.attempt(AttemptResult::Error, took);
                self.cache.forget(&key);
                self.queue.backoff(&key, now);
            }
        }
    }
}
