//! The kubelet against a real in-process API server with the fake runtime: registration,
//! lease, pod lifecycle and status, restart policies and back-off, probes, env, volumes,
//! graceful deletion, image pull back-off and adoption after a restart.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_kubelet::{FakeImages, FakeRuntime};

fn pod(name: &str, node: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "1000"]}]},
    });
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            if let Some(spec) = v.as_object().filter(|_| k == "spec") {
                for (sk, sv) in spec {
                    p["spec"][sk] = sv.clone();
                }
            } else {
                p[k] = v.clone();
            }
        }
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_node_and_renews_lease() {
    let api = start_api().await;
    let rt = Arc::new(FakeRuntime::default());
    let mut cfg = fake_config(&api, "n1", rt, Arc::new(FakeImages::default()));
    cfg.max_pods = Some(40);
    let _node = start_kubelet(cfg);
    let nodes: Api<Node> = Api::all(api.client.clone());
    let n = eventually(Duration::from_secs(10), "node ready", || async {
        let n = nodes.get_opt("n1").await.unwrap()?;
        let ready = n.status.as_ref()?.conditions.as_ref()?.iter().any(|c| {
            c.type_ == "Ready" && c.status == "True" && c.reason.as_deref() == Some("KubeletReady")
        });
        ready.then_some(n)
    })
    .await;
    let st = n.status.unwrap();
    assert_eq!(st.capacity.as_ref().unwrap()["pods"].0, "40");
    assert!(
        st.capacity
            .as_ref()
            .unwrap()
            .contains_key("ephemeral-storage")
    );
    let cpu: u32 = st.allocatable.as_ref().unwrap()["cpu"].0.parse().unwrap();
    assert!(cpu >= 1);
    let info = st.node_info.unwrap();
    assert!(info.kubelet_version.starts_with("v1.33.0-skiff"));
    assert!(info.container_runtime_version.starts_with("skiff://"));
    assert_eq!(info.operating_system, "linux");
    let types: Vec<String> = st
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"] {
        assert!(types.contains(&t.to_string()), "{t} in {types:?}");
    }
    let addrs = st.addresses.unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == "192.0.2.10")
    );
    assert!(
        addrs
            .iter()
            .any(|a| a.type_ == "Hostname" && a.address == "n1")
    );
    let labels = n.metadata.labels.unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "n1");
    assert_eq!(labels["kubernetes.io/os"], "linux");

    let leases: Api<Lease> = Api::namespaced(api.client.clone(), "kube-node-lease");
    let first = eventually(Duration::from_secs(10), "lease", || async {
        leases.get_opt("n1").await.unwrap()
    })
    .await;
    let t0 = first.spec.as_ref().unwrap().renew_time.clone().unwrap().0;
    assert_eq!(first.spec.unwrap().holder_identity.as_deref(), Some("n1"));
    eventually(Duration::from_secs(10), "lease renewed", || async {
        let l = leases.get("n1").await.unwrap();
        (l.spec?.renew_time?.0 > t0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_runs_with_kubernetes_status_and_events() {
    let api = start_api().await;
    let rt = Arc::new(FakeRuntime::default());
    let _node = start_kubelet(fake_config(
        &api,
        "n1",
        rt.clone(),
        Arc::new(FakeImages::default()),
    ));
    create_pod(
        &api.client,
        pod(
            "web",
            "n1",
            json!({"spec": {"containers": [
            {"name": "main", "image": "busybox:1.36", "command": ["sleep", "1000"],
             "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}]}}),
        ),
    )
    .await;
    let p = wait_pod(&api.client, "web", 10, "running and ready", |p| {
        phase(p) == "Running" && condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    let st = p.status.as_ref().unwrap();
    for c in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(condition(&p, c).as_deref(), Some("True"), "{c}");
    }
    assert_eq!(st.qos_class.as_deref(), Some("Guaranteed"));
    assert_eq!(st.host_ip.as_deref(), Some("192.0.2.10"));
    assert!(st.pod_ip.as_deref().unwrap().starts_with("10.88."));
    assert!(st.start_time.is_some());
    let cs = cstatus(&p, "main").unwrap();
    assert!(cs.ready && cs.started == Some(true));
    assert_eq!(cs.restart_count, 0);
    assert!(cs.state.as_ref().unwrap().running.is_some());
    assert!(cs.image_id.starts_with("sha256:"));
    let id = container_id(&p, "main").unwrap();
    let cfg = rt.container_config(&id).unwrap();
    assert_eq!(cfg.process.args, ["sleep", "1000"]);
    assert_eq!(cfg.resources.memory_limit, Some(64 << 20));
    assert_eq!(cfg.resources.cpu_quota_us, Some(10_000));

    let events: Api<Event> = Api::namespaced(api.client.clone(), "default");
    let reasons = eventually(Duration::from_secs(10), "events", || async {
        let evs = events.list(&ListParams::default()).await.unwrap();
        let reasons: Vec<String> = evs
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some("web"))
            .filter_map(|e| e.reason.clone())
            .collect();
        (reasons.iter().any(|r| r == "Started")).then_some(reasons)
    })
    .await;
    // IfNotPresent with the image present: "already present", no pull.
    for r in ["Pulled", "Created", "Started"] {
        assert!(reasons.iter().any(|x| x == r), "{r} in {reasons:?}");
    }
    let ev = events.list(&ListParams::default()).await.unwrap().items;
    let started = ev
        .iter()
        .find(|e| e.reason.as_deref() == Some("Started"))
        .unwrap();
    assert_eq!(started.source.as_ref().unwrap().host.as_deref(), Some("n1"));
    assert_eq!(started.reporting_component.as_deref(), Some("kubelet"));
    assert_eq!(
        started.involved_object.field_path.as_deref(),
        Some("spec.containers{main}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policies_and_crash_loop_backoff() {
    let api = start_api().await;
    let rt = Arc::new(FakeRuntime::default());
    let _node = start_kubelet(fake_config(
        &api,
        "n1",
        rt.clone(),
        Arc::new(FakeImages::default()),
    ));
    create_pod(&api.client, pod("always", "n1", json!({}))).await;
    create_pod(
        &api.client,
        pod("never", "n1", json!({"spec": {"restartPolicy": "Never"}})),
    )
    .await;
    create_pod(
        &api.client,
        pod(
            "onfail",
            "n1",
            json!({"spec": {"restartPolicy": "OnFailure"}}),
        ),
    )
    .await;
    for name in ["always", "never", "onfail"] {
        wait_pod(&api.client, name, 10, "running", |p| phase(p) == "Running").await;
    }

    // Always: the first exit restarts at once, the second waits in CrashLoopBackOff.
    let p = get_pod(&api.client, "always").await.unwrap();
    let id = container_id(&p, "main").unwrap();
    assert!(rt.exit_container(&id, 1, "Error"));
    let t0 = Instant::now();
    let p = wait_pod(&api.client, "always", 10, "restart 1", |p| {
        cstatus(p, "main")
            .is_some_and(|c| c.restart_count == 1 && c.state.as_ref().unwrap().running.is_some())
    })
    .await;
    assert!(
        t0.elapsed() < Duration::from_millis(700),
        "first restart is immediate"
    );
    // The back-off runs from the restart (Kubernetes' IsInBackOffSince).
    let t1 = Instant::now();
    let last = cstatus(&p, "main")
        .unwrap()
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    let id2 = container_id(&p, "main").unwrap();
    assert_ne!(id, id2);
    assert!(rt.exit_container(&id2, 2, "Error"));
    let p = wait_pod(&api.client, "always", 10, "crash loop", |p| {
        cstatus(p, "main")
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .as_deref()
            == Some("CrashLoopBackOff")
    })
    .await;
    assert_eq!(phase(&p), "Running");
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
    wait_pod(&api.client, "always", 10, "restart 2", |p| {
        cstatus(p, "main").is_some_and(|c| c.restart_count == 2)
    })
    .await;
    let waited = t1.elapsed();
    assert!(
        waited >= Duration::from_millis(700),
        "back-off of 800ms honoured: {waited:?}"
    );
    // Third crash: the delay doubles.
    let p = get_pod(&api.client, "always").await.unwrap();
    assert!(rt.exit_container(&container_id(&p, "main").unwrap(), 1, "Error"));
    let t2 = Instant::now();
    wait_pod(&api.client, "always", 10, "restart 3", |p| {
        cstatus(p, "main").is_some_and(|c| c.restart_count == 3)
    })
    .await;
    assert!(
        t2.elapsed() >= Duration::from_millis(1300),
        "doubled back-off: {:?}",
        t2.elapsed()
    );

    // Never: exit 0 → Succeeded, no restart.
    let p = get_pod(&api.client, "never").await.unwrap();
    assert!(rt.exit_container(&container_id(&p, "main").unwrap(), 0, "Completed"));
    let p = wait_pod(&api.client, "never", 10, "succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await;
    let cs = cstatus(&p, "main").unwrap();
    assert_eq!(cs.restart_count, 0);
    let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(
        (term.exit_code, term.reason.as_deref()),
        (0, Some("Completed"))
    );

    // OnFailure: a failure restarts, success completes.
    let p = get_pod(&api.client, "onfail").await.unwrap();
    assert!(rt.exit_container(&container_id(&p, "main").unwrap(), 3, "Error"));
    let p = wait_pod(&api.client, "onfail", 10, "onfailure restart", |p| {
        cstatus(p, "main")
            .is_some_and(|c| c.restart_count == 1 && c.state.as_ref().unwrap().running.is_some())
    })
    .await;
    assert!(rt.exit_container(&container_id(&p, "main").unwrap(), 0, "Completed"));
    wait_pod(&api.client, "onfail", 10, "onfailure succeeded", |p| {
        phase(p) == "Succeeded"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_flip_readiness_and_liveness_restarts() {
    let api = start_api().await;
    let rt = Arc::new(FakeRuntime::default());
    let ready = Arc::new(AtomicBool::new(false));
    let alive = Arc::new(AtomicBool::new(true));
    let (r2, a2) = (ready.clone(), alive.clone());
    rt.set_exec_handler(Arc::new(move |_name, args| {
        let flag = if args.first().map(String::as_str) == Some("ready") {
            &r2
        } else {
            &a2
        };
        if flag.load(Ordering::SeqCst) { 0 } else { 1 }
    }));
    let _node = start_kubelet(fake_config(
        &api,
        "n1",
        rt.clone(),
        Arc::new(FakeImages::default()),
    ));
    create_pod(
        &api.client,
        pod("probed", "n1", json!({"spec": {"containers": [{
            "name": "main", "image": "busybox:1.36", "command": ["sleep", "1000"],
            "readinessProbe": {"exec": {"command": ["ready"]}, "periodSeconds": 1, "failureThreshold": 1},
            "livenessProbe": {"exec": {"command": ["alive"]}, "periodSeconds": 1, "failureThreshold": 2},
        }]}})),
    )
    .await;
    let p = wait_pod(&api.client, "probed", 10, "running", |p| {
        phase(p) == "Running"
    })
    .await;
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
    ready.store(true, Ordering::SeqCst);
    wait_pod(&api.client, "probed", 10, "ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    ready.store(false, Ordering::SeqCst);
    let p = wait_pod(&api.client, "probed", 10, "unready", |p| {
        condition(p, "ContainersReady").as_deref() == Some("False")
    })
    .await;
    assert!(
        cstatus(&p, "main")
            .unwrap()
            .state
            .as_ref()
            .unwrap()
            .running
            .is_some(),
        "still running"
    );
    alive.store(false, Ordering::SeqCst);
    let p = wait_pod(&api.client, "probed", 15, "liveness restart", |p| {
        cstatus(p, "main").is_some_and(|c| c.restart_count >= 1)
    })
    .await;
    alive.store(true, Ordering::SeqCst);
    assert!(
        cstatus(&p, "main")
            .unwrap()
            .last_state
            .as_ref()
            .unwrap()
            .terminated
            .is_some()
    );
    let events: Api<Event> = Api::namespaced(api.client.clone(), "default");
    let evs = events.list(&ListParams::default()).await.unwrap().items;
    assert!(evs.iter().any(|e| {
        e.reason.as_deref() == Some("Unhealthy")
            && e.message
                .as_deref()
                .unwrap_or("")
                .starts_with("Readiness probe failed")
    }));
    assert!(evs.iter().any(|e| {
        e.reason.as_deref() == Some("Killing")
            && e.message
                .as_deref()
                .unwrap_or("")
                .contains("failed liveness probe")
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_resolution_and_volumes() {
    let api = start_api().await;
    let cms: Api<ConfigMap> = Api::namespaced(api.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(api.client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
        "metadata": {"name": "cfg"}, "data": {"color": "blue", "size": "L"}}))
        .unwrap(),
    )
    .await
    .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
        "metadata": {"name": "sec"}, "data": {"password": "aHVudGVyMg=="}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let rt = Arc::new(FakeRuntime::default());
    let cfg = fake_config(&api, "n1", rt.clone(), Arc::new(FakeImages::default()));
    let root = cfg.root_dir.clone();
    let _node = start_kubelet(cfg);
    let p = create_pod(
        &api.client,
        pod("envpod", "n1", json!({"spec": {
            "containers": [{
                "name": "main", "image": "busybox:1.36", "command": ["echo", "$(COLOR)-$(POD)"],
                "env": [
                    {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                    {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "PLAIN", "value": "x$(NS)"},
                ],
                "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}],
                "volumeMounts": [{"name": "c", "mountPath": "/etc/c"}, {"name": "d", "mountPath": "/etc/d"},
                                 {"name": "s", "mountPath": "/etc/s"}, {"name": "e", "mountPath": "/data"}],
            }],
            "volumes": [
                {"name": "c", "configMap": {"name": "cfg"}},
                {"name": "d", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "s", "secret": {"secretName": "sec"}},
                {"name": "e", "emptyDir": {}},
            ],
        }})),
    )
    .await;
    let uid = p.metadata.uid.unwrap();
    let p = wait_pod(&api.client, "envpod", 10, "running", |p| {
        phase(p) == "Running"
    })
    .await;
    let id = container_id(&p, "main").unwrap();
    let cfg = rt.container_config(&id).unwrap();
    let env: std::collections::BTreeMap<String, String> = cfg
        .process
        .env
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    assert_eq!(env["COLOR"], "blue");
    assert_eq!(env["PASS"], "hunter2");
    assert_eq!(env["POD"], "envpod");
    assert_eq!(env["NS"], "default");
    assert_eq!(env["UID"], uid);
    assert_eq!(env["NODE"], "n1");
    assert_eq!(env["PLAIN"], "xdefault");
    assert_eq!(env["CM_size"], "L");
    assert_eq!(
        Some(env["IP"].as_str()),
        p.status.as_ref().unwrap().pod_ip.as_deref()
    );
    assert_eq!(cfg.process.args, ["echo", "blue-envpod"]);
    assert_eq!(cfg.mounts.len(), 4);

    let vol = root.join("pods").join(&uid).join("volumes");
    assert_eq!(
        std::fs::read_to_string(vol.join("c/color")).unwrap(),
        "blue"
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("s/password")).unwrap(),
        "hunter2"
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("d/labels")).unwrap(),
        "app=\"envpod\""
    );
    assert!(vol.join("e").is_dir());
    // An update reaches the running pod's volume.
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(&json!({"data": {"color": "red"}})),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(10),
        "configmap update in volume",
        || async { (std::fs::read_to_string(vol.join("c/color")).ok()? == "red").then_some(()) },
    )
    .await;
    // A missing configMap key fails the container config, reported as a waiting reason.
    create_pod(
        &api.client,
        pod("badenv", "n1", json!({"spec": {"containers": [{
            "name": "main", "image": "busybox:1.36", "command": ["true"],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]}]}})),
    )
    .await;
    wait_pod(&api.client, "badenv", 10, "config error", |p| {
        cstatus(p, "main")
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .as_deref()
            == Some("CreateContainerConfigError")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_deletion_waits_grace_then_removes_pod() {
    let api = start_api().await;
    let rt = Arc::new(FakeRuntime::default());
    rt.set_term_exit(None); // the process ignores SIGTERM
    let prestop = Arc::new(AtomicBool::new(false));
    let ps = prestop.clone();
    rt.set_exec_handler(Arc::new(move |_, args| {
        if args.first().map(String::as_str) == Some("prestop") {
            ps.store(true, Ordering::SeqCst);
        }
        0
    }));
    let cfg = fake_config(&api, "n1", rt.clone(), Arc::new(FakeImages::default()));
    let root = cfg.root_dir.clone();
    let _node = start_kubelet(cfg);
    let created = create_pod(
        &api.client,
        pod(
            "bye",
            "n1",
            json!({"spec": {"terminationGracePeriodSeconds": 2, "containers": [{
            "name": "main", "image": "busybox:1.36", "command": ["sleep", "1000"],
            "lifecycle": {"preStop": {"exec": {"command": ["prestop"]}}}}]}}),
        ),
    )
    .await;
    let p = wait_pod(&api.client, "bye", 10, "running", |p| phase(p) == "Running").await;
    let id = container_id(&p, "main").unwrap();
    let pods: Api<Pod> = Api::namespaced(api.client.clone(), "default");
    let t0 = Instant::now();
    pods.delete("bye", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        get_pod(&api.client, "bye").await.is_some(),
        "pod stays during its grace period"
    );
    eventually(Duration::from_secs(10), "pod removed", || async {
        get_pod(&api.client, "bye").await.is_none().then_some(())
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "grace honoured: {:?}",
        t0.elapsed()
    );
    assert!(prestop.load(Ordering::SeqCst), "preStop ran");
    assert_eq!(
        rt.signals(&id),
        [15, 9],
        "SIGTERM, then SIGKILL after the grace period"
    );
    assert_eq!(rt.container_count(), 0);
    let uid = created.metadata.uid.unwrap();
    assert!(
        !root.join("pods").join(uid).exists(),
        "pod directory cleaned up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_backoff_then_recovery() {
    let api = start_api().await;
    let rt = Arc::new(FakeRuntime::default());
    let images = Arc::new(FakeImages::default());
    images.make_missing("example.com/missing:1");
    let _node = start_kubelet(fake_config(&api, "n1", rt.clone(), images.clone()));
    create_pod(
        &api.client,
        pod(
            "pull",
            "n1",
            json!({"spec": {"containers": [{
            "name": "main", "image": "example.com/missing:1", "command": ["sleep", "1"]}]}}),
        ),
    )
    .await;
    let reason = |p: &Pod| {
        cstatus(p, "main").and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
    };
    // ErrImagePull lasts only until the back-off starts; a loaded machine may first see the
    // pod already in ImagePullBackOff, which is the state the next wait checks.
    wait_pod(&api.client, "pull", 10, "ErrImagePull", |p| {
        matches!(
            reason(p).as_deref(),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
    })
    .await;
    let p = wait_pod(&api.client, "pull", 10, "ImagePullBackOff", |p| {
        reason(p).as_deref() == Some("ImagePullBackOff")
    })
    .await;
    assert_eq!(phase(&p), "Pending");
    images.make_available("example.com/missing:1");
    wait_pod(
        &api.client,
        "pull",
        15,
        "running after image appears",
        |p| phase(p) == "Running",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_adopts_running_containers_and_removes_orphans() {
    let api = start_api().await;
    let rt = Arc::new(FakeRuntime::default());
    let node = start_kubelet(fake_config(
        &api,
        "n1",
        rt.clone(),
        Arc::new(FakeImages::default()),
    ));
    create_pod(&api.client, pod("keep", "n1", json!({}))).await;
    let p = wait_pod(&api.client, "keep", 10, "running", |p| {
        phase(p) == "Running" && condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    let id = container_id(&p, "main").unwrap();
    node.stop().await;
    // A sandbox whose pod does not exist: removed by the next kubelet.
    use skiff_runtime::pod::PodRuntime;
    let orphan = rt
        .run_pod_sandbox(skiff_runtime::pod::PodSandboxConfig {
            name: "ghost".into(),
            namespace: "default".into(),
            uid: "no-such-uid".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let before = rt.container_count();
    let _node = start_kubelet(fake_config(
        &api,
        "n1",
        rt.clone(),
        Arc::new(FakeImages::default()),
    ));
    eventually(Duration::from_secs(10), "orphan removed", || async {
        rt.pod_sandbox_status(&orphan).await.is_err().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let p = get_pod(&api.client, "keep").await.unwrap();
    assert_eq!(container_id(&p, "main").unwrap(), id, "same container");
    assert_eq!(cstatus(&p, "main").unwrap().restart_count, 0);
    assert_eq!(condition(&p, "Ready").as_deref(), Some("True"));
    assert_eq!(rt.container_count(), before, "no duplicate containers");
    assert_eq!(rt.list_pod_sandboxes().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_nodes_register() {
    let api = start_api().await;
    let client = api.client.clone();
    let root = api.dir().join("hollow");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(skiff_kubelet::run_hollow_nodes(
        3,
        move |_| client.clone(),
        "hollow",
        root,
        async move {
            let _ = rx.await;
        },
    ));
    let nodes: Api<Node> = Api::all(api.client.clone());
    eventually(Duration::from_secs(15), "3 hollow nodes ready", || async {
        let list = nodes.list(&ListParams::default()).await.unwrap();
        let ready = list
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready == 3).then_some(())
    })
    .await;
    create_pod(&api.client, pod("h", "hollow-1", json!({}))).await;
    wait_pod(&api.client, "h", 10, "hollow pod running", |p| {
        phase(p) == "Running"
    })
    .await;
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}
