//! Replica calculator cases, after Kubernetes' replica_calculator_test.go: the same pod
//! sets, usage levels, targets and expected replicas/utilization where the file gives
//! them, and the readiness and initialization rules one by one.

use super::*;
use serde_json::json;

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn calc() -> ReplicaCalculator {
    ReplicaCalculator {
        cpu_initialization_period: SignedDuration::from_mins(2),
        initial_readiness_delay: SignedDuration::from_secs(10),
        now: now(),
    }
}

/// How one fixture pod looks.
#[derive(Clone, Copy)]
struct P {
    phase: &'static str,
    ready: &'static str,
    /// Seconds before now the pod started.
    started: i64,
    /// Seconds before now Ready last changed.
    transition: i64,
    request_milli: Option<i64>,
    deleting: bool,
}

const RUNNING: P = P {
    phase: "Running",
    ready: "True",
    started: 180,
    transition: 180,
    request_milli: Some(1000),
    deleting: false,
};

fn pod(i: usize, p: P) -> Pod {
    let resources = match p.request_milli {
        Some(m) => json!({"requests": {"cpu": format!("{m}m"), "memory": "1Gi"}}),
        None => json!({}),
    };
    let at = |secs: i64| (now() - SignedDuration::from_secs(secs)).to_string();
    let mut v = json!({
        "metadata": {"name": format!("pod-{i}"), "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]},
        "status": {"phase": p.phase, "startTime": at(p.started),
            "conditions": [{"type": "Ready", "status": p.ready, "lastTransitionTime": at(p.transition)}]},
    });
    if p.deleting {
        v["metadata"]["deletionTimestamp"] = json!(at(1));
    }
    serde_json::from_value(v).unwrap()
}

/// Usage levels by pod index (`None`: no metric for that pod).
fn metrics(levels: &[Option<i64>]) -> PodMetricsInfo {
    levels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            l.map(|value| {
                (
                    format!("pod-{i}"),
                    PodMetric {
                        timestamp: now(),
                        window: SignedDuration::from_secs(30),
                        value,
                    },
                )
            })
        })
        .collect()
}

struct Case {
    name: &'static str,
    current: i32,
    pods: Vec<P>,
    levels: Vec<Option<i64>>,
    target: i32,
    want_replicas: i32,
    want_utilization: i32,
}

fn run(c: &Case) -> Result<UtilizationProposal, CalcError> {
    let pods: Vec<Pod> = c.pods.iter().enumerate().map(|(i, p)| pod(i, *p)).collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    calc().resource_replicas(
        c.current,
        c.target,
        "cpu",
        Tolerances::both(0.1),
        &refs,
        metrics(&c.levels),
        None,
    )
}

fn with(f: impl Fn(&mut P)) -> P {
    let mut p = RUNNING;
    f(&mut p);
    p
}

#[test]
fn cpu_utilization_cases() {
    let unready = with(|p| p.ready = "False");
    let failed = with(|p| {
        p.phase = "Failed";
        p.ready = "False"
    });
    let deleting = with(|p| p.deleting = true);
    let pending = with(|p| {
        p.phase = "Pending";
        p.ready = "False"
    });
    let cases = [
        Case {
            name: "scale up",
            current: 3,
            pods: vec![RUNNING; 3],
            levels: vec![Some(300), Some(500), Some(700)],
            target: 30,
            want_replicas: 5,
            want_utilization: 50,
        },
        Case {
            name: "scale up, an unready pod counted as 0",
            current: 3,
            pods: vec![unready, RUNNING, RUNNING],
            levels: vec![Some(300), Some(500), Some(700)],
            target: 30,
            want_replicas: 4,
            want_utilization: 60,
        },
        Case {
            name: "scale up with unready pods would flip direction: no change",
            current: 3,
            pods: vec![RUNNING, unready, unready],
            levels: vec![Some(400), Some(500), Some(700)],
            target: 30,
            want_replicas: 3,
            want_utilization: 40,
        },
        Case {
            name: "failed pods ignored",
            current: 2,
            pods: vec![RUNNING, RUNNING, failed, failed],
            levels: vec![Some(500), Some(700), Some(300), Some(800)],
            target: 30,
            want_replicas: 4,
            want_utilization: 60,
        },
        Case {
            name: "pods being deleted ignored",
            current: 2,
            pods: vec![RUNNING, RUNNING, deleting, deleting],
            levels: vec![Some(500), Some(700), Some(300), Some(800)],
            target: 30,
            want_replicas: 4,
            want_utilization: 60,
        },
        Case {
            name: "scale down",
            current: 5,
            pods: vec![RUNNING; 5],
            levels: vec![Some(100), Some(300), Some(500), Some(250), Some(250)],
            target: 50,
            want_replicas: 3,
            want_utilization: 28,
        },
        Case {
            name: "scale down over the ready pods only",
            current: 5,
            pods: vec![unready, unready, RUNNING, RUNNING, RUNNING],
            levels: vec![Some(100), Some(300), Some(500), Some(250), Some(250)],
            target: 50,
            want_replicas: 2,
            want_utilization: 33,
        },
        Case {
            name: "within tolerance",
            current: 3,
            pods: vec![RUNNING; 3],
            levels: vec![Some(1010), Some(1030), Some(1020)],
            target: 100,
            want_replicas: 3,
            want_utilization: 102,
        },
        Case {
            name: "missing metric, ratio exactly 1: no change",
            current: 2,
            pods: vec![RUNNING; 2],
            levels: vec![Some(1000), None],
            target: 100,
            want_replicas: 2,
            want_utilization: 100,
        },
        Case {
            name: "missing metric as 0 on scale-up brings it within tolerance",
            current: 2,
            pods: vec![RUNNING; 2],
            levels: vec![Some(1900), None],
            target: 100,
            want_replicas: 2,
            want_utilization: 190,
        },
        Case {
            name: "missing metric as 100% on scale-down",
            current: 2,
            pods: vec![RUNNING; 2],
            levels: vec![Some(600), None],
            target: 100,
            want_replicas: 2,
            want_utilization: 60,
        },
        Case {
            name: "missing and unready, adjusted ratio flips: no change",
            current: 3,
            pods: vec![unready, RUNNING, RUNNING],
            levels: vec![Some(100), Some(450), None],
            target: 50,
            want_replicas: 3,
            want_utilization: 45,
        },
        Case {
            name: "missing and unready on scale-up",
            current: 3,
            pods: vec![unready, RUNNING, RUNNING],
            levels: vec![Some(100), Some(2000), None],
            target: 50,
            want_replicas: 4,
            want_utilization: 200,
        },
        Case {
            name: "missing and unready on scale-down",
            current: 4,
            pods: vec![unready, RUNNING, RUNNING, RUNNING],
            levels: vec![Some(100), Some(100), Some(100), None],
            target: 50,
            want_replicas: 3,
            want_utilization: 10,
        },
        Case {
            name: "pending pod unready, scale-down over the running ones",
            current: 2,
            pods: vec![RUNNING, RUNNING, pending],
            levels: vec![Some(100), Some(100), None],
            target: 50,
            want_replicas: 1,
            want_utilization: 10,
        },
        Case {
            name: "pending pod counted as 0 on scale-up",
            current: 2,
            pods: vec![RUNNING, RUNNING, pending],
            levels: vec![Some(1000), Some(1000), None],
            target: 50,
            want_replicas: 4,
            want_utilization: 100,
        },
    ];
    for c in &cases {
        let got = run(c).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(
            (got.replicas, got.utilization),
            (c.want_replicas, c.want_utilization),
            "{}",
            c.name
        );
    }
}

#[test]
fn raw_average_is_the_ready_pods_mean() {
    let c = Case {
        name: "raw",
        current: 3,
        pods: vec![RUNNING; 3],
        levels: vec![Some(300), Some(500), Some(700)],
        target: 30,
        want_replicas: 5,
        want_utilization: 50,
    };
    assert_eq!(run(&c).unwrap().raw_average, 500);
}

#[test]
fn cpu_initialization_and_readiness_delay() {
    // Started 60 s ago (inside the 2 m period), Ready 10 s ago: no full 30 s window since.
    let hot = with(|p| {
        p.started = 60;
        p.transition = 10;
    });
    let c = Case {
        name: "hot pod's sample ignored",
        current: 3,
        pods: vec![hot, RUNNING, RUNNING],
        levels: vec![Some(300), Some(500), Some(700)],
        target: 30,
        want_replicas: 4,
        want_utilization: 60,
    };
    let got = run(&c).unwrap();
    assert_eq!((got.replicas, got.utilization), (4, 60));

    // Inside the period but Ready for longer than the window: counted.
    let warm = with(|p| {
        p.started = 60;
        p.transition = 50;
    });
    let c = Case {
        pods: vec![warm, RUNNING, RUNNING],
        ..c
    };
    assert_eq!(run(&c).unwrap().replicas, 5);

    // Past the period, unready and never ready (went unready within the 10 s delay of
    // starting): ignored. One that was ready and became unready later: counted.
    let never_ready = with(|p| {
        p.ready = "False";
        p.started = 300;
        p.transition = 295;
    });
    let c = Case {
        pods: vec![never_ready, RUNNING, RUNNING],
        ..c
    };
    assert_eq!(run(&c).unwrap().utilization, 60);
    let was_ready = with(|p| {
        p.ready = "False";
        p.started = 300;
        p.transition = 100;
    });
    let c = Case {
        pods: vec![was_ready, RUNNING, RUNNING],
        ..c
    };
    assert_eq!(run(&c).unwrap().utilization, 50);
}

#[test]
fn memory_ignores_readiness() {
    let unready = with(|p| p.ready = "False");
    let pods: Vec<Pod> = [unready, RUNNING]
        .iter()
        .enumerate()
        .map(|(i, p)| pod(i, *p))
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let mib = 1024 * 1024 * 1000;
    let got = calc()
        .raw_resource_replicas(
            2,
            100 * mib,
            "memory",
            Tolerances::both(0.1),
            &refs,
            metrics(&[Some(150 * mib), Some(150 * mib)]),
        )
        .unwrap();
    assert_eq!(got, (3, 150 * mib));
    // Within tolerance.
    let got = calc()
        .raw_resource_replicas(
            2,
            100 * mib,
            "memory",
            Tolerances::both(0.1),
            &refs,
            metrics(&[Some(105 * mib), Some(105 * mib)]),
        )
        .unwrap();
    assert_eq!(got.0, 2);
    // A missing pod counts as the target on scale-down: 2 × 20 + 100 over 3 pods → 47 → 2.
    let pods3: Vec<Pod> = (0..3).map(|i| pod(i, RUNNING)).collect();
    let refs3: Vec<&Pod> = pods3.iter().collect();
    let got = calc()
        .raw_resource_replicas(
            3,
            100 * mib,
            "memory",
            Tolerances::both(0.1),
            &refs3,
            metrics(&[Some(20 * mib), Some(20 * mib), None]),
        )
        .unwrap();
    assert_eq!(got, (2, 20 * mib));
}

#[test]
fn per_direction_tolerances() {
    let c = Case {
        name: "tol",
        current: 4,
        pods: vec![RUNNING; 4],
        levels: vec![Some(1150); 4],
        target: 100,
        want_replicas: 0,
        want_utilization: 0,
    };
    let pods: Vec<Pod> = c.pods.iter().enumerate().map(|(i, p)| pod(i, *p)).collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let up = |t: Tolerances| {
        calc()
            .resource_replicas(4, 100, "cpu", t, &refs, metrics(&c.levels), None)
            .unwrap()
            .replicas
    };
    assert_eq!(up(Tolerances::both(0.1)), 5);
    assert_eq!(
        up(Tolerances {
            scale_down: 0.1,
            scale_up: 0.2
        }),
        4
    );
    let low = metrics(&[Some(850); 4]);
    let down = |t: Tolerances| {
        calc()
            .resource_replicas(4, 100, "cpu", t, &refs, low.clone(), None)
            .unwrap()
            .replicas
    };
    // 0.85 asks for ceil(3.4) = 4: no change either way.
    assert_eq!(down(Tolerances::both(0.1)), 4);
    let lower = metrics(&[Some(700); 4]);
    let r = calc()
        .resource_replicas(
            4,
            100,
            "cpu",
            Tolerances {
                scale_down: 0.5,
                scale_up: 0.1,
            },
            &refs,
            lower.clone(),
            None,
        )
        .unwrap();
    assert_eq!(r.replicas, 4, "0.7 is inside a 50 % scale-down tolerance");
    let r = calc()
        .resource_replicas(4, 100, "cpu", Tolerances::both(0.1), &refs, lower, None)
        .unwrap();
    assert_eq!(r.replicas, 3);
}

#[test]
fn errors_read_as_kubernetes() {
    let no_request = with(|p| p.request_milli = None);
    let c = Case {
        name: "no request",
        current: 1,
        pods: vec![no_request],
        levels: vec![Some(100)],
        target: 50,
        want_replicas: 0,
        want_utilization: 0,
    };
    assert_eq!(
        run(&c).unwrap_err().to_string(),
        "missing request for cpu in container c of Pod pod-0"
    );
    let c = Case {
        pods: vec![],
        levels: vec![],
        ..c
    };
    assert_eq!(run(&c).unwrap_err(), CalcError::NoPods);
    let unready = with(|p| p.ready = "False");
    let c = Case {
        pods: vec![unready],
        levels: vec![Some(100)],
        ..c
    };
    assert_eq!(
        run(&c).unwrap_err().to_string(),
        "did not receive metrics for targeted pods (pods might be unready)"
    );
}

#[test]
fn container_requests() {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "b", "resources": {"requests": {"cpu": "50m"}}}],
            "initContainers": [
                {"name": "init", "resources": {"requests": {"cpu": "20m"}}},
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "30m"}}}]}
    }))
    .unwrap();
    let pods = [&pod];
    assert_eq!(pod_requests(&pods, None, "cpu").unwrap()["p"], 180);
    assert_eq!(pod_requests(&pods, Some("b"), "cpu").unwrap()["p"], 50);
    assert_eq!(
        pod_requests(&pods, Some("z"), "cpu")
            .unwrap_err()
            .to_string(),
        "container z not found in Pod p"
    );
    assert_eq!(
        pod_requests(&pods, None, "memory").unwrap_err().to_string(),
        "missing request for memory in container a of Pod p"
    );
}
