use std::time::Duration;

use jiff::Timestamp;

use super::*;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn reading(secs: i64, cpu_ns: u64, memory: u64) -> Reading {
    Reading {
        time: at(secs),
        cpu_ns,
        memory,
    }
}

fn scrape(secs: i64, node_cpu: u64, pods: &[(&str, &[(&str, u64, u64)])]) -> NodeReading {
    NodeReading {
        node: Some(reading(secs, node_cpu, 1 << 30)),
        pods: pods
            .iter()
            .map(|(name, cs)| PodReading {
                namespace: "default".into(),
                name: (*name).into(),
                containers: cs
                    .iter()
                    .map(|(c, cpu, mem)| ContainerReading {
                        name: (*c).into(),
                        reading: reading(secs, *cpu, *mem),
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[test]
fn rates_need_two_readings_and_span_the_window() {
    let m = ResourceMetrics::default();
    m.record("n1", scrape(0, 0, &[("web", &[("app", 0, 100)])]));
    assert_eq!(m.node_usage("n1"), None);
    assert_eq!(m.pod_usage("n1", "default", "web"), None);
    // Two cores on the node and half a core in the container over 15 s.
    m.record(
        "n1",
        scrape(
            15,
            30_000_000_000,
            &[("web", &[("app", 7_500_000_000, 200)])],
        ),
    );
    let node = m.node_usage("n1").unwrap();
    assert_eq!(node.nano_cores, 2_000_000_000);
    assert_eq!(node.window, Duration::from_secs(15));
    assert_eq!(node.timestamp, at(15));
    let pod = m.pod_usage("n1", "default", "web").unwrap();
    assert_eq!(pod.containers.len(), 1);
    let (name, u) = &pod.containers[0];
    assert_eq!(name, "app");
    assert_eq!((u.nano_cores, u.memory), (500_000_000, 200));
    // The same reading again (the kubelet had nothing newer) changes nothing.
    m.record(
        "n1",
        scrape(
            15,
            30_000_000_000,
            &[("web", &[("app", 7_500_000_000, 200)])],
        ),
    );
    assert_eq!(m.node_usage("n1"), Some(node));
}

#[test]
fn restarted_containers_and_new_ones_wait_for_a_second_reading() {
    let m = ResourceMetrics::default();
    m.record("n1", scrape(0, 0, &[("web", &[("app", 5_000, 1)])]));
    // The counter went back: the container restarted, so no rate yet; a new sidecar has
    // only one reading: the pod is left out until both are measured.
    m.record(
        "n1",
        scrape(10, 10, &[("web", &[("app", 10, 1), ("side", 0, 1)])]),
    );
    assert_eq!(m.pod_usage("n1", "default", "web"), None);
    m.record(
        "n1",
        scrape(
            20,
            20,
            &[("web", &[("app", 1_000_000_010, 1), ("side", 0, 1)])],
        ),
    );
    let pod = m.pod_usage("n1", "default", "web").unwrap();
    assert_eq!(pod.containers[0].1.nano_cores, 100_000_000);
    assert_eq!(pod.containers[1].1.nano_cores, 0);
}

#[test]
fn pods_absent_from_a_scrape_and_forgotten_nodes_are_dropped() {
    let m = ResourceMetrics::default();
    m.record(
        "n1",
        scrape(0, 0, &[("a", &[("c", 0, 1)]), ("b", &[("c", 0, 1)])]),
    );
    m.record(
        "n1",
        scrape(1, 1, &[("a", &[("c", 1, 1)]), ("b", &[("c", 1, 1)])]),
    );
    m.record("n2", scrape(1, 1, &[]));
    assert_eq!(m.counts(), (2, 2));
    m.record("n1", scrape(2, 2, &[("a", &[("c", 2, 1)])]));
    assert!(m.pod_usage("n1", "default", "a").is_some());
    assert_eq!(m.pod_usage("n1", "default", "b"), None);
    // A pod is looked up on its own node only.
    assert_eq!(m.pod_usage("n2", "default", "a"), None);
    m.retain_nodes(|n| n == "n1");
    assert_eq!(m.counts(), (1, 1));
    m.forget("n1");
    assert_eq!(m.counts(), (0, 0));
}
