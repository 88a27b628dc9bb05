use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::nft::RecordingNft;
use crate::service::tests::{web, web_slice};

fn proxier(batch: usize) -> (NftablesProxier, RecordingNft) {
    let nft = RecordingNft::default();
    let cfg = ProxierConfig {
        table: "t".into(),
        node_name: "n1".into(),
        drop_ranges: vec!["10.96.0.0/12".parse().unwrap()],
        node: NodeContext {
            pod_cidr: Some("10.244.0.0/24".parse().unwrap()),
            local_dns: None,
        },
        full_sync_batch: batch,
    };
    (NftablesProxier::new(cfg, Arc::new(nft.clone())), nft)
}

fn affinity_nodeport() -> k8s_openapi::api::core::v1::Service {
    web(json!({"type": "NodePort", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
        "externalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}))
}

#[tokio::test]
async fn first_sync_replaces_the_table_then_only_differences_are_sent() {
    let (mut p, nft) = proxier(10);
    assert!(p.install_skeleton().await.unwrap());
    p.service_applied(affinity_nodeport());
    p.slice_applied(web_slice("web-a", json!([{"addresses": ["10.244.0.5"], "nodeName": "n1"}, {"addresses": ["10.244.0.6"], "nodeName": "n2"}])));
    let r = p.sync().await.unwrap();
    assert_eq!(
        r,
        SyncReport {
            full: true,
            services: 1,
            transactions: 1
        }
    );
    let scripts = nft.scripts();
    assert!(scripts[0].starts_with("create table ip t\nadd table ip t { comment"));
    assert!(scripts[1].starts_with("add table ip t\ndelete table ip t\nadd table ip t {"));
    assert!(
        scripts[1].contains("add rule ip t cluster-ips-check ip daddr { 10.96.0.0/12 } drop\n")
    );
    assert!(scripts[1].ends_with(
        "add element ip t service-ips { 10.96.0.20 . tcp . 80 : goto svc-default/web/tcp/http }\n\
         add element ip t service-nodeports { tcp . 30080 : goto ext-default/web/tcp/http }\n\
         add element ip t cluster-ips { 10.96.0.20 }\n"
    ));
    // An endpoint goes away: its chain and affinity set, and the service chain's rules.
    p.slice_applied(web_slice(
        "web-a",
        json!([{"addresses": ["10.244.0.5"], "nodeName": "n1"}]),
    ));
    assert_eq!(
        p.sync().await.unwrap(),
        SyncReport {
            full: false,
            services: 1,
            transactions: 1
        }
    );
    assert_eq!(nft.scripts()[2], "\
flush chain ip t ep-default/web/tcp/http__10.244.0.6/8080
flush chain ip t svc-default/web/tcp/http
add rule ip t svc-default/web/tcp/http ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.244.0.0/24 jump mark-for-masquerade
add rule ip t svc-default/web/tcp/http ip saddr @aff-60-default/web/tcp/http__10.244.0.5/8080 goto ep-default/web/tcp/http__10.244.0.5/8080
add rule ip t svc-default/web/tcp/http numgen random mod 1 vmap { 0 : goto ep-default/web/tcp/http__10.244.0.5/8080 }
delete chain ip t ep-default/web/tcp/http__10.244.0.6/8080
delete set ip t aff-60-default/web/tcp/http__10.244.0.6/8080
");
    // Nothing changed: nothing sent.
    p.service_applied(affinity_nodeport());
    assert!(!p.needs_sync());
    // The Service is deleted: everything of it vanishes.
    p.service_deleted(&web(json!({})));
    p.sync().await.unwrap();
    assert_eq!(
        nft.scripts()[3],
        "\
flush chain ip t ep-default/web/tcp/http__10.244.0.5/8080
flush chain ip t ext-default/web/tcp/http
flush chain ip t local-default/web/tcp/http
flush chain ip t svc-default/web/tcp/http
delete element ip t service-ips { 10.96.0.20 . tcp . 80 }
delete element ip t service-nodeports { tcp . 30080 }
delete element ip t cluster-ips { 10.96.0.20 }
delete chain ip t ep-default/web/tcp/http__10.244.0.5/8080
delete chain ip t ext-default/web/tcp/http
delete chain ip t local-default/web/tcp/http
delete chain ip t svc-default/web/tcp/http
delete set ip t aff-60-default/web/tcp/http__10.244.0.5/8080
"
    );
    assert_eq!(nft.scripts().len(), 4);
}

fn numbered(i: usize) -> k8s_openapi::api::core::v1::Service {
    crate::service::tests::service(
        json!({"metadata": {"namespace": "default", "name": format!("s{i}")},
        "spec": {"clusterIP": format!("10.96.{}.{}", i / 250, i % 250 + 1), "ports": [{"port": 80}]}}),
    )
}

#[tokio::test]
async fn a_full_sync_is_cut_into_bounded_transactions_and_a_refusal_forces_another() {
    let (mut p, nft) = proxier(2);
    for i in 0..5 {
        p.service_applied(numbered(i));
    }
    assert_eq!(
        p.sync().await.unwrap(),
        SyncReport {
            full: true,
            services: 5,
            transactions: 3
        }
    );
    let scripts = nft.scripts();
    assert!(scripts[0].starts_with("add table ip t\ndelete table ip t\n"));
    assert!(!scripts[1].contains("delete table"));
    // No endpoints: rejected before any NAT.
    assert!(scripts[2].contains(
        "add element ip t no-endpoint-services { 10.96.0.5 . tcp . 80 : goto reject-chain }"
    ));
    *nft.fail_on.lock().unwrap() = Some("10.96.0.2 ".into());
    p.service_deleted(&numbered(1));
    assert!(p.sync().await.is_err());
    *nft.fail_on.lock().unwrap() = None;
    let r = p.sync().await.unwrap();
    assert!(r.full && r.services == 4, "{r:?}");
}
