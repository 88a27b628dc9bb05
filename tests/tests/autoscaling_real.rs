//! HorizontalPodAutoscalers acting on real containers: a Deployment with a CPU request and
//! an HPA at 50 %. One pod is made busy through `kubectl exec` → replicas grow, bounded by
//! max; the burner stops → replicas shrink to min after the (shortened) downscale
//! stabilization; the recorded history of replica counts only ever rises during the load
//! and falls after it (no flapping inside the tolerance). An HPA whose target has no
//! requests reports ScalingActive=False with Kubernetes' reason. A memory AverageValue HPA
//! scales on the pods' working sets.

use std::time::{Duration, Instant};

use skiff_e2e::workload::{apply, json, wait_ready_pods};
use skiff_e2e::{Cluster, can_run_nodes, eventually, ok};

const NODE: &str = "e2e-node-hpa";

/// Each pod burns CPU (up to its 200m limit, 400 % of its 50m request) while
/// /tmp/burn exists and idles otherwise, so the test switches the load through exec.
const APPS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: busybox:1.36
        imagePullPolicy: Never
        command: ["sh", "-c", "while :; do if [ -e /tmp/burn ]; then :; else sleep 1; fi; done"]
        resources:
          requests: {cpu: 50m, memory: 8Mi}
          limits: {cpu: 200m, memory: 64Mi}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burn}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: norequests}
spec:
  replicas: 1
  selector: {matchLabels: {app: norequests}}
  template:
    metadata: {labels: {app: norequests}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: idle
        image: busybox:1.36
        imagePullPolicy: Never
        command: ["sh", "-c", "while :; do sleep 1; done"]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: norequests}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: norequests}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
"#;

fn replicas(c: &Cluster, deploy: &str) -> u64 {
    json(c, &["get", "deploy", deploy])["spec"]["replicas"]
        .as_u64()
        .unwrap_or(0)
}

fn condition(c: &Cluster, hpa: &str, type_: &str) -> Option<(String, String, String)> {
    let h = json(c, &["get", "hpa", hpa]);
    let cond = h["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|x| x["type"] == type_)?
        .clone();
    let s = |k: &str| cond[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

/// Records the Deployment's replica count whenever it changes.
struct History(Vec<u64>);

impl History {
    fn see(&mut self, n: u64) -> u64 {
        if self.0.last() != Some(&n) {
            self.0.push(n);
        }
        n
    }
}

#[test]
fn hpa_grows_under_exec_load_and_shrinks_after_it() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start_with_args(&[
        "--horizontal-pod-autoscaler-sync-period=1s",
        "--horizontal-pod-autoscaler-downscale-stabilization=10s",
        "--horizontal-pod-autoscaler-cpu-initialization-period=5s",
        "--horizontal-pod-autoscaler-initial-readiness-delay=2s",
    ])
    .unwrap();
    let _node = c.start_node(NODE, 32).unwrap();
    apply(&c, APPS);
    let pods = wait_ready_pods(&c, "app=burn", 1, 90);
    let first = pods[0]["metadata"]["name"].as_str().unwrap().to_string();
    wait_ready_pods(&c, "app=norequests", 1, 90);

    // Idle at min: the HPA reads the pod's usage and keeps one replica.
    let mut history = History(vec![]);
    let active = eventually(Duration::from_secs(60), || {
        history.see(replicas(&c, "burn"));
        condition(&c, "burn", "ScalingActive").filter(|x| x.0 == "True")
    });
    assert!(
        active.is_some(),
        "{:?}",
        condition(&c, "burn", "ScalingActive")
    );
    assert_eq!(replicas(&c, "burn"), 1);

    // The target without requests: Kubernetes' reason and message, nothing scaled.
    let (status, reason, message) = eventually(Duration::from_secs(60), || {
        condition(&c, "norequests", "ScalingActive").filter(|x| x.1 == "FailedGetResourceMetric")
    })
    .unwrap_or_else(|| panic!("{:?}", condition(&c, "norequests", "ScalingActive")));
    assert_eq!(status, "False");
    assert_eq!(reason, "FailedGetResourceMetric");
    assert!(message.contains("missing request for cpu"), "{message}");
    assert_eq!(replicas(&c, "norequests"), 1);

    // Load: one pod at 200m of a 50m request is 400 %; ceil(1 × 400/50) = 8, bounded by 3.
    ok(&c.kubectl(&["exec", &first, "--", "touch", "/tmp/burn"]));
    let load_start = Instant::now();
    let grown = eventually(Duration::from_secs(90), || {
        (history.see(replicas(&c, "burn")) == 3).then_some(())
    });
    assert!(grown.is_some(), "never reached max: {:?}", history.0);
    eprintln!(
        "scaled to max after {:?}: {:?}",
        load_start.elapsed(),
        history.0
    );
    wait_ready_pods(&c, "app=burn", 3, 90);
    // Held at max while loaded: 200m over 3 pods is still above target (133 % of 50 %),
    // and never above max.
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(8) {
        history.see(replicas(&c, "burn"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, reason, _) = condition(&c, "burn", "ScalingLimited").expect("ScalingLimited");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "TooManyReplicas")
    );
    let peak = history.0.len();

    // Load stops: usage falls to almost nothing; after the 10 s stabilization window the
    // recommendation is min.
    ok(&c.kubectl(&["exec", &first, "--", "rm", "/tmp/burn"]));
    let stop = Instant::now();
    let shrunk = eventually(Duration::from_secs(120), || {
        (history.see(replicas(&c, "burn")) == 1).then_some(())
    });
    assert!(shrunk.is_some(), "never shrank to min: {:?}", history.0);
    let waited = stop.elapsed();
    eprintln!("scaled to min after {waited:?}: {:?}", history.0);
    assert!(
        waited >= Duration::from_secs(8),
        "scaled down before the stabilization window: {waited:?}"
    );
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(5) {
        history.see(replicas(&c, "burn"));
        std::thread::sleep(Duration::from_millis(500));
    }

    // The history: up to max (never above), held there, then down to min, without a
    // single reversal.
    let h = &history.0;
    assert!(h.iter().all(|&n| (1..=3).contains(&n)), "{h:?}");
    assert!(h[..peak].windows(2).all(|w| w[0] < w[1]), "{h:?}");
    assert!(h[peak - 1..].windows(2).all(|w| w[0] > w[1]), "{h:?}");
    assert_eq!((h[peak - 1], *h.last().unwrap()), (3, 1), "{h:?}");

    // The events name the rescales with their reasons.
    let events = ok(&c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=burn,reason=SuccessfulRescale",
    ]));
    assert!(
        events.contains(
            "New size: 3; reason: cpu resource utilization (percentage of request) above target"
        ),
        "{events}"
    );
    assert!(
        events.contains("New size: 1; reason: All metrics below target"),
        "{events}"
    );
}

/// Each pod holds 32 MB of anonymous memory in a shell variable (the loop keeps the shell,
/// and the string, alive).
const MEMORY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: hold}
spec:
  replicas: 1
  selector: {matchLabels: {app: hold}}
  template:
    metadata: {labels: {app: hold}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: hold
        image: busybox:1.36
        imagePullPolicy: Never
        command: ["sh", "-c", "x=$(head -c 32000000 /dev/zero | tr '\\0' a); while :; do sleep 3600; done"]
        resources:
          requests: {cpu: 10m, memory: 16Mi}
          limits: {memory: 192Mi}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: hold}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: hold}
  minReplicas: 1
  maxReplicas: 2
  metrics:
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 20Mi}}
"#;

#[test]
fn memory_average_value_hpa_scales_on_the_working_set() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start_with_args(&["--horizontal-pod-autoscaler-sync-period=1s"]).unwrap();
    let _node = c.start_node("e2e-node-hpa-mem", 33).unwrap();
    apply(&c, MEMORY);
    wait_ready_pods(&c, "app=hold", 1, 90);
    // 32 MB per pod against 20 Mi: ceil(1 × 30.5/20) = 2, the max.
    let mut history = History(vec![]);
    let grown = eventually(Duration::from_secs(90), || {
        (history.see(replicas(&c, "hold")) == 2).then_some(())
    });
    assert!(
        grown.is_some(),
        "{:?} {:?}",
        history.0,
        condition(&c, "hold", "ScalingActive")
    );
    wait_ready_pods(&c, "app=hold", 2, 90);
    // The status reports the per-pod average of the working sets, as a quantity.
    let avg = eventually(Duration::from_secs(30), || {
        let h = json(&c, &["get", "hpa", "hold"]);
        let m = &h["status"]["currentMetrics"][0]["resource"];
        (m["name"] == "memory" && h["status"]["currentReplicas"] == 2)
            .then(|| m["current"]["averageValue"].as_str().map(str::to_string))?
    })
    .expect("current memory average");
    let bytes: f64 = match avg.strip_suffix("Mi") {
        Some(v) => v.parse::<f64>().unwrap() * 1048576.0,
        None => match avg.strip_suffix("Ki") {
            Some(v) => v.parse::<f64>().unwrap() * 1024.0,
            None => avg.parse().unwrap(),
        },
    };
    assert!((28e6..40e6).contains(&bytes), "{avg}");
    let table = ok(&c.kubectl(&["get", "hpa", "hold"]));
    assert!(table.contains("/20Mi"), "{table}");
    let hold = Instant::now();
    while hold.elapsed() < Duration::from_secs(4) {
        history.see(replicas(&c, "hold"));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(history.0, [1, 2]);
}
