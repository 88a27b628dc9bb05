//! A Deployment on a real node: the scheduler binds its pods, the agent runs them in real
//! containers whose readiness is an HTTP probe, and the real kubectl heals, scales, rolls out,
//! rolls back and cordons, with every pod answering HTTP from the host.

use std::time::Duration;

use serde_json::Value;
use skiff_e2e::workload::{
    AvailabilityPoller, apply, assert_within_bounds, http_get, json, pods, wait_ready_pods,
};
use skiff_e2e::{Backend, Cluster, can_run_nodes, eventually, ok};

const NODE: &str = "e2e-node-w";

fn deployment(replicas: u32, version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  strategy: {{type: RollingUpdate, rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: busybox:1.36
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && echo v$VERSION > /www/index.html && exec httpd -f -p 8080 -h /www"]
        env: [{{name: VERSION, value: "{version}"}}]
        readinessProbe:
          httpGet: {{path: /index.html, port: 8080}}
          # A second before a pod can be ready, so the poller sees each rollout step.
          initialDelaySeconds: 1
          periodSeconds: 1
        resources:
          requests: {{cpu: 10m, memory: 8Mi}}
          limits: {{memory: 32Mi}}
"#
    )
}

/// Every ready pod answers HTTP from the host with `v<version>`.
fn all_serve(ps: &[Value], version: &str) {
    for p in ps {
        let ip = p["status"]["podIP"].as_str().expect("podIP");
        let body =
            http_get(&format!("{ip}:8080"), "/index.html").unwrap_or_else(|e| panic!("{ip}: {e}"));
        assert!(
            body.contains(" 200 ") && body.contains(&format!("v{version}")),
            "{ip}: {body}"
        );
    }
}

fn rollout_done(c: &Cluster) {
    let out = ok(&c.kubectl(&["rollout", "status", "deploy/web", "--timeout=120s"]));
    assert!(out.contains("successfully rolled out"), "{out}");
}

#[test]
fn a_deployment_of_real_containers_heals_scales_rolls_and_respects_cordon() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _node = c.start_node(NODE, 9).unwrap();

    apply(&c, &deployment(3, "1"));
    rollout_done(&c);
    let ps = wait_ready_pods(&c, "app=web", 3, 60);
    assert!(ps.iter().all(|p| p["spec"]["nodeName"] == NODE));
    all_serve(&ps, "1");

    // A deleted pod is replaced by a new one.
    let victim = ps[0]["metadata"]["name"].as_str().unwrap().to_string();
    ok(&c.kubectl(&["delete", "pod", &victim, "--wait=false"]));
    let ps = eventually(Duration::from_secs(60), || {
        let ps = wait_ready_pods(&c, "app=web", 3, 60);
        ps.iter()
            .all(|p| p["metadata"]["name"] != victim.as_str())
            .then_some(ps)
    })
    .expect("the deleted pod was replaced");
    all_serve(&ps, "1");

    // Scale 3 → 10 → 2.
    ok(&c.kubectl(&["scale", "deploy", "web", "--replicas=10"]));
    let ps = wait_ready_pods(&c, "app=web", 10, 120);
    all_serve(&ps, "1");
    ok(&c.kubectl(&["scale", "deploy", "web", "--replicas=2"]));
    wait_ready_pods(&c, "app=web", 2, 60);

    // A rolling update never drops below 2 ready pods nor exceeds 3 (maxSurge 1,
    // maxUnavailable 0), with readiness decided by the HTTP probe of real containers.
    let poller = AvailabilityPoller::start(&c, "app=web");
    ok(&c.kubectl(&["set", "env", "deploy/web", "VERSION=2"]));
    rollout_done(&c);
    assert_within_bounds(&poller.finish(), 2, 1, 0);
    all_serve(&wait_ready_pods(&c, "app=web", 2, 60), "2");
    let history = ok(&c.kubectl(&["rollout", "history", "deploy/web"]));
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Rollback returns the first template.
    ok(&c.kubectl(&["rollout", "undo", "deploy/web"]));
    rollout_done(&c);
    all_serve(&wait_ready_pods(&c, "app=web", 2, 60), "1");

    // A cordoned node takes no new pod; uncordoned, it does.
    ok(&c.kubectl(&["cordon", NODE]));
    ok(&c.kubectl(&["scale", "deploy", "web", "--replicas=3"]));
    let pending = eventually(Duration::from_secs(30), || {
        pods(&c, "app=web").into_iter().find(|p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "PodScheduled"
                        && c["status"] == "False"
                        && c["reason"] == "Unschedulable"
                })
            })
        })
    })
    .expect("the new pod stays unschedulable on a cordoned node");
    assert!(pending["spec"]["nodeName"].is_null());
    std::thread::sleep(Duration::from_secs(2));
    let name = pending["metadata"]["name"].as_str().unwrap();
    let still = json(&c, &["get", "pod", name]);
    assert!(still["spec"]["nodeName"].is_null(), "bound while cordoned");
    ok(&c.kubectl(&["uncordon", NODE]));
    all_serve(&wait_ready_pods(&c, "app=web", 3, 60), "1");

    // Deleting the Deployment removes its pods and their containers.
    ok(&c.kubectl(&["delete", "deploy", "web", "--timeout=60s"]));
    eventually(Duration::from_secs(60), || {
        pods(&c, "app=web").is_empty().then_some(())
    })
    .expect("pods removed with their Deployment");
}
