//! The scheduler against a real API server with hollow Node objects.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use skiff_scheduler::{LeaderElectionConfig, SchedulerOptions};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_land_on_fitting_nodes_and_unfit_pods_report_why() {
    let api = start().await;
    let c = &api.client;
    create_node(c, node("small-1", "2", "4Gi", json!({}), json!({}))).await;
    create_node(c, node("small-2", "2", "4Gi", json!({}), json!({}))).await;
    create_node(
        c,
        node(
            "gpu",
            "16",
            "4Gi",
            json!({}),
            json!({"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
        ),
    )
    .await;
    let _s = spawn_scheduler(c, no_election());

    create_pod(c, pod("fits", "1500m", json!({}), json!({}))).await;
    let n = node_of(c, "fits").await;
    assert!(n.starts_with("small-"), "landed on {n}");
    let ev = eventually(Duration::from_secs(10), "Scheduled event", || async {
        events_for(c, "fits", "Scheduled").await.into_iter().next()
    })
    .await;
    assert_eq!(
        ev.message.as_deref(),
        Some(format!("Successfully assigned default/fits to {n}").as_str())
    );

    // Two more 1500m pods: one fits on the other small node, the next fits nowhere.
    create_pod(c, pod("fits-2", "1500m", json!({}), json!({}))).await;
    let n2 = node_of(c, "fits-2").await;
    assert_ne!(n, n2, "the assume cache must keep both off one node");

    create_pod(c, pod("huge", "8", json!({}), json!({}))).await;
    let expected = "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. \
        preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
        2 No preemption victims found for incoming pod.";
    let ev = eventually(
        Duration::from_secs(10),
        "FailedScheduling event",
        || async {
            events_for(c, "huge", "FailedScheduling")
                .await
                .into_iter()
                .next()
        },
    )
    .await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.message.as_deref(), Some(expected));
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let cond = eventually(Duration::from_secs(10), "PodScheduled=False", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("huge").await.ok()?;
            p.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled")
        }
    })
    .await;
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(cond.message.as_deref(), Some(expected));
    let huge = pods.get("huge").await.unwrap();
    assert!(huge.spec.unwrap().node_name.is_none());

    // A tolerating pod may use the tainted node.
    create_pod(
        c,
        pod("tolerant", "8", json!({}), json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]})),
    )
    .await;
    assert_eq!(node_of(c, "tolerant").await, "gpu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_affinity_and_spread_against_fake_nodes() {
    let api = start().await;
    let c = &api.client;
    for (name, zone, disk) in [
        ("a1", "a", "ssd"),
        ("a2", "a", "hdd"),
        ("b1", "b", "hdd"),
        ("c1", "c", "hdd"),
    ] {
        create_node(
            c,
            node(
                name,
                "8",
                "16Gi",
                json!({"zone": zone, "disk": disk}),
                json!({}),
            ),
        )
        .await;
    }
    let _s = spawn_scheduler(c, no_election());

    create_pod(
        c,
        pod(
            "ssd",
            "100m",
            json!({}),
            json!({"nodeSelector": {"disk": "ssd"}}),
        ),
    )
    .await;
    assert_eq!(node_of(c, "ssd").await, "a1");

    let required_zone = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}});
    create_pod(c, pod("in-b", "100m", json!({}), required_zone)).await;
    assert_eq!(node_of(c, "in-b").await, "b1");

    // Pod affinity: follow the "in-b" pod's zone.
    create_pod(
        c,
        pod(
            "db",
            "100m",
            json!({"app": "db"}),
            json!({"nodeSelector": {"zone": "c"}}),
        ),
    )
    .await;
    assert_eq!(node_of(c, "db").await, "c1");
    let follow = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        [{"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}]}}});
    create_pod(c, pod("near-db", "100m", json!({}), follow)).await;
    assert_eq!(node_of(c, "near-db").await, "c1");

    // Anti-affinity by hostname: four replicas on four nodes, a fifth stays pending.
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        [{"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    for i in 0..5 {
        create_pod(
            c,
            pod(
                &format!("web-{i}"),
                "100m",
                json!({"app": "web"}),
                anti.clone(),
            ),
        )
        .await;
    }
    let mut hosts = HashSet::new();
    for i in 0..4 {
        hosts.insert(node_of(c, &format!("web-{i}")).await);
    }
    assert_eq!(hosts.len(), 4);
    let ev = eventually(
        Duration::from_secs(10),
        "web-4 FailedScheduling",
        || async {
            events_for(c, "web-4", "FailedScheduling")
                .await
                .into_iter()
                .next()
        },
    )
    .await;
    assert!(
        ev.message.as_deref().unwrap().starts_with(
            "0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules."
        ),
        "{:?}",
        ev.message
    );

    // Topology spread over zones a (2 nodes), b, c with maxSkew 1: six pods, two per zone.
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "spread"}}}]});
    for i in 0..6 {
        create_pod(
            c,
            pod(
                &format!("sp-{i}"),
                "100m",
                json!({"app": "spread"}),
                spread.clone(),
            ),
        )
        .await;
    }
    let mut per_zone = BTreeMap::new();
    for i in 0..6 {
        let n = node_of(c, &format!("sp-{i}")).await;
        let zone = n[..1].to_string();
        *per_zone.entry(zone).or_insert(0) += 1;
    }
    assert_eq!(
        per_zone,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_blocks_new_pods_and_uncordon_releases_them() {
    let api = start().await;
    let c = &api.client;
    create_node(c, node("only", "4", "8Gi", json!({}), json!({}))).await;
    let _s = spawn_scheduler(c, no_election());
    let nodes: Api<Node> = Api::all(c.clone());
    nodes
        .patch(
            "only",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    create_pod(c, pod("waits", "100m", json!({}), json!({}))).await;
    let ev = eventually(Duration::from_secs(10), "FailedScheduling", || async {
        events_for(c, "waits", "FailedScheduling")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert!(
        ev.message
            .unwrap()
            .starts_with("0/1 nodes are available: 1 node(s) were unschedulable.")
    );
    // Other scheduler names are ignored entirely.
    create_pod(
        c,
        pod(
            "not-ours",
            "100m",
            json!({}),
            json!({"schedulerName": "other"}),
        ),
    )
    .await;
    nodes
        .patch(
            "only",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": null}})),
        )
        .await
        .unwrap();
    assert_eq!(node_of(c, "waits").await, "only");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let other = pods.get("not-ours").await.unwrap();
    assert!(other.spec.unwrap().node_name.is_none());
    assert!(
        events_for(c, "not-ours", "FailedScheduling")
            .await
            .is_empty()
    );
}

fn elected(identity: &str) -> SchedulerOptions {
    let mut le = LeaderElectionConfig::new("kube-scheduler");
    le.identity = identity.into();
    le.lease_duration = Duration::from_secs(3);
    le.renew_deadline = Duration::from_secs(2);
    le.retry_period = Duration::from_millis(300);
    SchedulerOptions {
        leader_election: Some(le),
        ..SchedulerOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_with_leader_election_bind_each_pod_once() {
    let api = start().await;
    let c = &api.client;
    for i in 0..3 {
        create_node(c, node(&format!("n{i}"), "8", "16Gi", json!({}), json!({}))).await;
    }
    let one = elected("one");
    let two = elected("two");
    let (m1, m2) = (one.metrics.clone(), two.metrics.clone());
    let s1 = spawn_scheduler(c, one);
    let s2 = spawn_scheduler(c, two);
    for i in 0..20 {
        create_pod(c, pod(&format!("p{i}"), "100m", json!({}), json!({}))).await;
    }
    for i in 0..20 {
        node_of(c, &format!("p{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..20 {
        assert_eq!(
            events_for(c, &format!("p{i}"), "Scheduled").await.len(),
            1,
            "p{i} scheduled once"
        );
    }
    assert_eq!(m1.pods_scheduled() + m2.pods_scheduled(), 20);
    assert!(
        m1.pods_scheduled() == 0 || m2.pods_scheduled() == 0,
        "only the leader schedules"
    );
    let (leader, follower_metrics) = if m1.pods_scheduled() > 0 {
        (s1, m2)
    } else {
        (s2, m1)
    };
    // The leader steps down (releasing the lease); the other takes over.
    leader.stop().await;
    create_pod(c, pod("after", "100m", json!({}), json!({}))).await;
    node_of(c, "after").await;
    // The binding shows in the API a moment before the scheduler counts it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while follower_metrics.pods_scheduled() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(follower_metrics.pods_scheduled(), 1);
}
