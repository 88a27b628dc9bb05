//! The service load balancer against a real API server: addresses from the pool in
//! `status.loadBalancer.ingress`, a requested `loadBalancerIP`, other classes left alone,
//! an exhausted pool (Warning event, no ingress), and an address freed by a deletion or
//! a type change going to the Service that waited for it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{TestCluster, eventually};
use k8s_openapi::api::core::v1::{Event, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_controller::{ControllerKind, ControllerOptions};

const T: Duration = Duration::from_secs(20);

async fn create_lb(client: &Client, name: &str, extra: serde_json::Value) {
    let mut spec =
        json!({"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": name}});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    let svc: Service = serde_json::from_value(
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .unwrap();
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
}

async fn ingress(client: &Client, name: &str) -> Vec<(String, String)> {
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .unwrap();
    svc.status
        .and_then(|s| s.load_balancer)
        .and_then(|lb| lb.ingress)
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.ip.unwrap_or_default(), i.ip_mode.unwrap_or_default()))
        .collect()
}

async fn wait_ingress(client: &Client, name: &str) -> String {
    eventually(T, &format!("ingress of {name}"), || async {
        ingress(client, name).await.first().map(|(ip, mode)| {
            assert_eq!(mode, "VIP");
            ip.clone()
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_get_distinct_pool_addresses() {
    let mut c = TestCluster::start().await;
    c.start_controllers_with(ControllerOptions {
        controllers: [ControllerKind::ServiceLb]
            .into_iter()
            .collect::<BTreeSet<_>>(),
        leader_elect: false,
        service_lb_pool: "192.0.2.10-192.0.2.12".parse().unwrap(),
        ..Default::default()
    });
    let client = c.client.clone();
    create_lb(&client, "asked", json!({"loadBalancerIP": "192.0.2.12"})).await;
    create_lb(&client, "a", json!({})).await;
    create_lb(
        &client,
        "other",
        json!({"loadBalancerClass": "example.com/lb"}),
    )
    .await;
    let asked = wait_ingress(&client, "asked").await;
    assert_eq!(asked, "192.0.2.12");
    let a = wait_ingress(&client, "a").await;
    create_lb(&client, "b", json!({})).await;
    let b = wait_ingress(&client, "b").await;
    let all: BTreeSet<String> = [asked, a.clone(), b].into_iter().collect();
    assert_eq!(all.len(), 3, "{all:?}");

    // The pool is exhausted: no ingress and a Warning event.
    create_lb(&client, "late", json!({})).await;
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually(T, "an AllocationFailed event", || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=late"))
            .await
            .ok()?;
        list.items
            .iter()
            .find(|e| {
                e.reason.as_deref() == Some("AllocationFailed")
                    && e.type_.as_deref() == Some("Warning")
            })
            .map(|_| ())
    })
    .await;
    assert!(ingress(&client, "late").await.is_empty());
    assert!(
        ingress(&client, "other").await.is_empty(),
        "another class is not ours"
    );

    // Turning `a` into a ClusterIP Service frees its address for `late`.
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    svcs.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"type": "ClusterIP"}})),
    )
    .await
    .unwrap();
    eventually(T, "a loses its ingress", || async {
        ingress(&client, "a").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(wait_ingress(&client, "late").await, a);

    // A deletion frees one too.
    svcs.delete("b", &DeleteParams::default()).await.unwrap();
    create_lb(&client, "last", json!({})).await;
    wait_ingress(&client, "last").await;
    c.stop_controllers();
}
