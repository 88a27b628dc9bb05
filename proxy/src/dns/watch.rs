//! Keeps the index current: watches Services, EndpointSlices and Pods through reflector
//! stores and rebuilds the whole index (a pure function of the three lists) shortly after
//! each burst of changes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::rr::Name;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;

use super::{Index, Objects, SharedIndex};

/// How long changes are gathered before one rebuild.
const COALESCE: Duration = Duration::from_millis(20);

fn reflect<K>(
    client: &kube::Client,
    changed: Arc<Notify>,
) -> (Store<K>, impl std::future::Future<Output = ()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(
            kube::Api::<K>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    );
    let drive = async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(_) => changed.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, kind = K::kind(&()).as_ref(), "cluster DNS watch failed; retrying")
                }
            }
        }
    };
    (store, drive)
}

/// Keeps `index` built from the cluster's Services, EndpointSlices and Pods for cluster
/// domain `zone`, until `stop` completes. The first index is set once all three lists
/// have been read.
pub async fn watch_cluster(
    client: kube::Client,
    zone: Name,
    index: Arc<SharedIndex>,
    stop: impl std::future::Future<Output = ()>,
) {
    let changed = Arc::new(Notify::new());
    let (services, drive_services) = reflect::<Service>(&client, changed.clone());
    let (slices, drive_slices) = reflect::<EndpointSlice>(&client, changed.clone());
    let (pods, drive_pods) = reflect::<Pod>(&client, changed.clone());
    let rebuild = async {
        let _ = tokio::join!(
            services.wait_until_ready(),
            slices.wait_until_ready(),
            pods.wait_until_ready()
        );
        let mut serial: u32 = 1;
        loop {
            let (s, e, p) = (services.state(), slices.state(), pods.state());
            let (s, e, p): (Vec<&Service>, Vec<&EndpointSlice>, Vec<&Pod>) = (
                s.iter().map(AsRef::as_ref).collect(),
                e.iter().map(AsRef::as_ref).collect(),
                p.iter().map(AsRef::as_ref).collect(),
            );
            let built = Index::build(
                &zone,
                Objects {
                    services: &s,
                    slices: &e,
                    pods: &p,
                },
                serial,
            );
            tracing::debug!(names = built.len(), serial, "cluster DNS index rebuilt");
            index.set(built);
            serial = serial.wrapping_add(1);
            changed.notified().await;
            tokio::time::sleep(COALESCE).await;
        }
    };
    tokio::select! {
        _ = drive_services => {}
        _ = drive_slices => {}
        _ = drive_pods => {}
        _ = rebuild => {}
        _ = stop => {}
    }
}
