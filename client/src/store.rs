//! Watched stores: a reflector-backed cache of every object of a kind, and a readiness gate
//! over it that any number of reconciles can wait on at once.
//!
//! kube-runtime's `Store::wait_until_ready` keeps a single waker: of several reconciles
//! waiting concurrently, only the one that polled last is woken, and the others hang forever
//! (seen as a ReplicaSet that was never reconciled again after a controller restart, and as a
//! PV binder whose reconciles all waited forever because a Controller over the same store
//! took the waker). Here one task asks the store until it is ready and publishes the result
//! through a `watch` channel, which wakes every waiter.

use kube::runtime::reflector::Store;
use tokio::sync::watch;

/// The store's writer was dropped before the store became ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the reflector stopped before its store was ready")]
pub struct StoreGone;

/// Opens once the store has seen its first full list.
#[derive(Clone)]
pub struct ReadyGate(watch::Receiver<Option<bool>>);

impl ReadyGate {
    /// Starts the one task that waits on `store`. Must be called inside a Tokio runtime.
    pub fn new<K>(store: Store<K>) -> Self
    where
        K: kube::Resource + Clone + Send + Sync + 'static,
        K::DynamicType: std::hash::Hash + Eq + Clone + Send + Sync,
    {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            // The store wakes only its last waiter: when a Controller over the same store
            // waits too, this task may never be woken. Asking again is cheap and sees the
            // readiness at once, so it asks every 100 ms until the store is ready.
            let ready = loop {
                let wait = store.wait_until_ready();
                match tokio::time::timeout(std::time::Duration::from_millis(100), wait).await {
                    Ok(r) => break r.is_ok(),
                    Err(_elapsed) => continue,
                }
            };
            let _ = tx.send(Some(ready));
        });
        ReadyGate(rx)
    }

    /// Waits until the store is ready.
    pub async fn wait(&self) -> Result<(), StoreGone> {
        let mut rx = self.0.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(v) if *v == Some(true) => Ok(()),
            _ => Err(StoreGone),
        }
    }
}

/// A cache of every `K` in the cluster, e.g. for a controller's secondary watch: the store, its
/// readiness gate, and the stream of touched objects to hand to `Controller::watches_stream`
/// (which drives the reflector).
pub fn watched_store<K>(
    client: &kube::Client,
) -> (
    Store<K>,
    ReadyGate,
    impl futures::Stream<Item = Result<K, kube::runtime::watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (store, writer) = reflector::store();
    let events = reflector::reflector(
        writer,
        watcher(
            kube::Api::<K>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .touched_objects();
    let gate = ReadyGate::new(store.clone());
    (store, gate, events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::reflector::{self, store::Writer};
    use kube::runtime::watcher::Event;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_every_concurrent_waiter() {
        let (store, mut writer): (Store<Pod>, Writer<Pod>) = reflector::store();
        let gate = ReadyGate::new(store);
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let g = gate.clone();
                tokio::spawn(async move { g.wait().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        for w in waiters {
            let res = tokio::time::timeout(Duration::from_secs(2), w)
                .await
                .expect("every waiter wakes")
                .unwrap();
            assert_eq!(res, Ok(()));
        }
    }

    #[tokio::test]
    async fn reports_a_dropped_writer() {
        let (store, writer): (Store<Pod>, Writer<Pod>) = reflector::store();
        let gate = ReadyGate::new(store);
        drop(writer);
        let res = tokio::time::timeout(Duration::from_secs(2), gate.wait()).await;
        assert_eq!(res.expect("does not hang"), Err(StoreGone));
    }
}
