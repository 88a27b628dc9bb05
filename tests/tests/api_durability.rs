//! Nothing acknowledged is lost: `kill -9` of the server in the middle of a stream of
//! creates, then a restart, on both stores.

use std::sync::{Arc, Mutex};

use serde_json::json;
use skiff_e2e::{Backend, Cluster};

async fn kill9_loses_nothing(backend: Backend) {
    let mut c = Cluster::start(backend).unwrap();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let client = c.client().await.unwrap();
    let writer = {
        let acked = acked.clone();
        tokio::spawn(async move {
            let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                kube::Api::namespaced(client, "default");
            for i in 0.. {
                let name = format!("ack-{i}");
                let cm = serde_json::from_value(
                    json!({"metadata": {"name": name}, "data": {"i": i.to_string()}}),
                )
                .unwrap();
                match api.create(&Default::default(), &cm).await {
                    Ok(_) => acked.lock().unwrap().push(name),
                    Err(_) => return,
                }
            }
        })
    };
    // Let a good number of writes through, then kill the server mid-stream.
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if acked.lock().unwrap().len() >= 150 {
            break;
        }
    }
    c.kill9();
    let _ = writer.await;
    let acked = acked.lock().unwrap().clone();
    c.restart().unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(c.client().await.unwrap(), "default");
    let present: std::collections::HashSet<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|n| !present.contains(*n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged objects lost after kill -9: {lost:?}",
        lost.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_loses_nothing_on_the_embedded_store() {
    kill9_loses_nothing(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_loses_nothing_on_etcd() {
    kill9_loses_nothing(Backend::Etcd).await;
}
