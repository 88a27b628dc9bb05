//! A real node running what pods use beyond plain processes, checked through the real
//! kubectl and the skiff CLI as Kubernetes behaves: readiness probes (Ready false while the
//! container runs, true once the probe passes), env from ConfigMaps and Secrets, configMap,
//! secret, emptyDir and downwardAPI volumes with their updates; `logs -f` from both clients,
//! logs of a crash-looping container, `exec -i`, `exec -it` under a terminal and exit codes;
//! and bad input refused (422 with the field path) without changing anything.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_e2e::{
    Backend, Cluster, can_run_nodes, container_status, eventually, fails, ok, pod_condition,
    skiff_bin,
};

/// ConfigMap `cfg`, Secret `sec`, and pod `feat`: `main` (readiness: an exec probe on a
/// file the test creates) reads everything; `writer` writes into the shared emptyDir.
const FEAT: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {greeting: hello, color: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {password: s3cret, token: abc123}
---
apiVersion: v1
kind: Pod
metadata:
  name: feat
  labels: {app: feat}
  annotations: {note: first}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    env:
    - name: GREETING
      valueFrom: {configMapKeyRef: {name: cfg, key: greeting}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: sec, key: password}}
    - name: MISSING_OK
      valueFrom: {configMapKeyRef: {name: nope, key: x, optional: true}}
    envFrom:
    - configMapRef: {name: cfg}
      prefix: CM_
    - secretRef: {name: sec}
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec}
    - {name: shared, mountPath: /shared}
    - {name: mem, mountPath: /mem}
    - {name: podinfo, mountPath: /etc/podinfo}
  - name: writer
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "echo written-by-writer > /shared/msg; exec sleep 3600"]
    volumeMounts:
    - {name: shared, mountPath: /shared}
  volumes:
  - {name: cfg, configMap: {name: cfg}}
  - {name: sec, secret: {secretName: sec, defaultMode: 0400}}
  - {name: shared, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 8Mi}}
  - name: podinfo
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: annotations, fieldRef: {fieldPath: metadata.annotations}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
---
apiVersion: v1
kind: Pod
metadata: {name: unready}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sleep", "3600"]
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
"#;

/// `kubectl exec feat -c main -- args...`, which must succeed.
fn exec_main(c: &Cluster, args: &[&str]) -> String {
    let mut full = vec!["exec", "feat", "-c", "main", "--"];
    full.extend_from_slice(args);
    ok(&c.kubectl(&full))
}

/// Waits until `cat path` in `feat/main` gives something `f` accepts; returns it.
fn wait_file(c: &Cluster, path: &str, secs: u64, f: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    eventually(Duration::from_secs(secs), || {
        let out = c.kubectl(&["exec", "feat", "-c", "main", "--", "cat", path]);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        f(&last).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("{path} never changed as expected; last: {last:?}"))
}

/// The `/proc/mounts` line of the mount at `target` inside `feat/main`.
fn mount_line(mounts: &str, target: &str) -> String {
    mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(target))
        .unwrap_or_else(|| panic!("{target} is not a mount point:\n{mounts}"))
        .to_string()
}

/// Creates `manifest` (JSON), which must be refused as Invalid: a 422 Status naming the
/// fields, and kubectl's own wording of it. Returns kubectl's stderr.
fn refused_as_invalid(c: &Cluster, manifest: &str) -> String {
    let body = serde_json::to_vec(&serde_json::from_str::<Value>(manifest).unwrap()).unwrap();
    let (code, status) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(c.raw(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            body,
            None,
        ))
        .unwrap();
    assert_eq!(code, 422, "{status:#}");
    assert_eq!(status["reason"], "Invalid", "{status:#}");
    let err = fails(&c.kubectl_stdin(&["create", "-f", "-"], Some(manifest)));
    assert!(err.contains("is invalid"), "{err}");
    err
}

#[test]
fn probes_env_and_volumes_behave_like_kubernetes() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let node = c.start_node("e2e-node-v", 3).unwrap();
    ok(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&FEAT.replace("NODE", &node.name)),
    ));

    // Bad input while the pods start: refused with the field path, nothing created.
    let bad_name = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"bad-name"}},
            "spec":{{"nodeName":"{}","containers":[{{"name":"Bad_Name","image":"busybox:1.36"}}]}}}}"#,
        node.name
    );
    let err = refused_as_invalid(&c, &bad_name);
    assert!(
        err.contains(r#"spec.containers[0].name: Invalid value: "Bad_Name""#),
        "{err}"
    );
    let two_types = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"two-types"}},
            "spec":{{"nodeName":"{}","containers":[{{"name":"c","image":"busybox:1.36"}}],
                     "volumes":[{{"name":"v","emptyDir":{{}},"hostPath":{{"path":"/tmp"}}}}]}}}}"#,
        node.name
    );
    let err = refused_as_invalid(&c, &two_types);
    assert!(
        err.contains(
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"
        ),
        "{err}"
    );
    // An unknown volume type is an unknown field: kubectl validates strictly, and the
    // server refuses it as Kubernetes does (400, naming the field).
    let unknown = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"unknown-type"}},
            "spec":{{"nodeName":"{}","containers":[{{"name":"c","image":"busybox:1.36"}}],
                     "volumes":[{{"name":"v","fooVolume":{{"path":"/x"}}}}]}}}}"#,
        node.name
    );
    let err = fails(&c.kubectl_stdin(&["create", "-f", "-"], Some(&unknown)));
    assert!(
        err.contains(r#"unknown field "spec.volumes[0].fooVolume""#),
        "{err}"
    );
    let names = ok(&c.kubectl(&["get", "pods", "-o", "name"]));
    assert_eq!(names, "pod/feat\npod/unready\n");

    // Readiness: running but not Ready until the probe passes.
    let pod = eventually(Duration::from_secs(40), || {
        let p = c.pod_json("feat")?;
        let ready = ["main", "writer"]
            .iter()
            .all(|n| container_status(&p, n)["state"]["running"].is_object());
        ready.then_some(p)
    })
    .expect("feat running");
    std::thread::sleep(Duration::from_secs(2));
    let pod = c.pod_json("feat").unwrap_or(pod);
    assert_eq!(pod["status"]["phase"], "Running");
    assert_eq!(container_status(&pod, "main")["ready"], false, "{pod:#}");
    assert_eq!(container_status(&pod, "writer")["ready"], true, "{pod:#}");
    assert_eq!(pod_condition(&pod, "Ready"), "False");
    assert_eq!(pod_condition(&pod, "ContainersReady"), "False");
    let get = ok(&c.kubectl(&["get", "pod", "feat"]));
    assert!(get.contains("1/2") && get.contains("Running"), "{get}");
    exec_main(&c, &["touch", "/tmp/ready"]);
    ok(&c.kubectl(&["wait", "--for=condition=Ready", "pod/feat", "--timeout=20s"]));
    let pod = c.pod_json("feat").unwrap();
    assert_eq!(container_status(&pod, "main")["ready"], true);
    // An httpGet probe on a port nothing listens on keeps the other pod unready.
    let unready = eventually(Duration::from_secs(20), || {
        let p = c.pod_json("unready")?;
        container_status(&p, "c")["state"]["running"]
            .is_object()
            .then_some(p)
    })
    .expect("unready running");
    assert_eq!(container_status(&unready, "c")["ready"], false);
    assert_eq!(pod_condition(&unready, "Ready"), "False");
    let describe = ok(&c.kubectl(&["describe", "pod", "unready"]));
    assert!(
        describe.contains("Unhealthy") && describe.contains("Readiness probe failed"),
        "{describe}"
    );

    // Env from the ConfigMap and the Secret: single keys, envFrom with and without prefix.
    let env = exec_main(&c, &["env"]);
    for want in [
        "GREETING=hello",
        "PASSWORD=s3cret",
        "CM_greeting=hello",
        "CM_color=blue",
        "password=s3cret",
        "token=abc123",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing:\n{env}");
    }
    assert!(!env.contains("MISSING_OK"), "{env}");

    // configMap volume: the keys as files; an update reaches the running container.
    assert_eq!(exec_main(&c, &["cat", "/etc/cfg/greeting"]), "hello");
    assert_eq!(exec_main(&c, &["cat", "/etc/cfg/color"]), "blue");
    let started = Instant::now();
    ok(&c.kubectl(&[
        "patch",
        "configmap",
        "cfg",
        "-p",
        r#"{"data":{"color":"green","shape":"round"}}"#,
    ]));
    wait_file(&c, "/etc/cfg/color", 40, |s| s == "green");
    eprintln!("configMap update seen after {:?}", started.elapsed());
    assert_eq!(exec_main(&c, &["cat", "/etc/cfg/shape"]), "round");

    // secret volume: a tmpfs, the content, the mode asked for.
    assert_eq!(exec_main(&c, &["cat", "/etc/sec/password"]), "s3cret");
    assert_eq!(
        exec_main(&c, &["stat", "-L", "-c", "%a", "/etc/sec/token"]),
        "400\n"
    );
    let mounts = exec_main(&c, &["cat", "/proc/mounts"]);
    assert!(
        mount_line(&mounts, "/etc/sec").starts_with("tmpfs "),
        "{mounts}"
    );

    // emptyDir: shared by the two containers; medium Memory is a tmpfs.
    assert_eq!(
        exec_main(&c, &["cat", "/shared/msg"]),
        "written-by-writer\n"
    );
    exec_main(&c, &["sh", "-c", "echo back > /shared/reply"]);
    let reply = ok(&c.kubectl(&["exec", "feat", "-c", "writer", "--", "cat", "/shared/reply"]));
    assert_eq!(reply, "back\n");
    let mem = mount_line(&mounts, "/mem");
    assert!(
        mem.starts_with("tmpfs ") && mem.contains("size=8192k"),
        "{mem}"
    );
    assert!(
        !mount_line(&mounts, "/shared").starts_with("tmpfs "),
        "{mounts}"
    );

    // downwardAPI: labels and annotations as Kubernetes formats them; changes propagate.
    assert_eq!(exec_main(&c, &["cat", "/etc/podinfo/name"]), "feat");
    assert_eq!(
        exec_main(&c, &["cat", "/etc/podinfo/labels"]),
        "app=\"feat\""
    );
    let ann = exec_main(&c, &["cat", "/etc/podinfo/annotations"]);
    assert!(ann.lines().any(|l| l == "note=\"first\""), "{ann}");
    ok(&c.kubectl(&["label", "pod", "feat", "tier=gold"]));
    ok(&c.kubectl(&["annotate", "pod", "feat", "--overwrite", "note=second"]));
    wait_file(&c, "/etc/podinfo/labels", 40, |s| {
        s == "app=\"feat\"\ntier=\"gold\""
    });
    wait_file(&c, "/etc/podinfo/annotations", 20, |s| {
        s.lines().any(|l| l == "note=\"second\"")
    });

    // A pod bound to a node that does not exist stays Pending; nothing else is affected.
    let nowhere = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"nowhere"},
        "spec":{"nodeName":"no-such-node","containers":[{"name":"c","image":"busybox:1.36"}]}}"#;
    ok(&c.kubectl_stdin(&["create", "-f", "-"], Some(nowhere)));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.pod_json("nowhere").unwrap()["status"]["phase"], "Pending");
    ok(&c.kubectl(&["get", "--raw", "/readyz"]));
    assert_eq!(exec_main(&c, &["cat", "/etc/cfg/greeting"]), "hello");

    ok(&c.kubectl(&["delete", "pod", "nowhere", "--grace-period=0", "--force"]));
    ok(&c.kubectl(&["delete", "pod", "feat", "unready", "--timeout=30s"]));
    drop(node);
}

/// Pods for the logs and exec test: a ticker, and a container that crashes at once.
const STREAMS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: tick}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: crashy}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "echo run at $(date +%s%N); echo to stderr >&2; exit 2"]
"#;

/// Follows the ticker's log with `cmd` and checks two successive lines arrive; stops the
/// client by its PID.
fn follow_two_lines(mut cmd: Command, what: &str) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut number = || -> u64 {
        let l = lines.next().unwrap().unwrap();
        l.strip_prefix("tick ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{what}: unexpected line {l:?}"))
    };
    let first = number();
    let second = number();
    let third = number();
    assert_eq!((second, third), (first + 1, first + 2), "{what}");
    // The client's own PID: this test started it.
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn logs_and_exec_work_from_kubectl_and_skiff() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let node = c.start_node("e2e-node-l", 4).unwrap();
    ok(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&STREAMS.replace("NODE", &node.name)),
    ));
    ok(&c.kubectl(&["wait", "--for=condition=Ready", "pod/tick", "--timeout=40s"]));

    // logs -f streams lines written after it started, from both clients.
    let mut kubectl = Command::new("kubectl");
    kubectl
        .arg("--cache-dir")
        .arg(&c.kube_cache)
        .args(["logs", "-f", "tick", "--tail", "1"])
        .env("KUBECONFIG", &c.kubeconfig);
    follow_two_lines(kubectl, "kubectl logs -f");
    let mut skiff = Command::new(skiff_bin());
    skiff
        .args(["logs", "-f", "tick", "--tail", "1"])
        .env("KUBECONFIG", &c.kubeconfig);
    follow_two_lines(skiff, "skiff logs -f");

    // exec: stdin passes through, exit codes come back, -it runs a shell in a terminal.
    let out = ok(&c.kubectl_stdin(
        &["exec", "-i", "tick", "--", "cat"],
        Some("line one\nline two\n"),
    ));
    assert_eq!(out, "line one\nline two\n");
    let out = ok(&c.skiff_stdin(&["exec", "-i", "tick", "--", "cat"], Some("via skiff\n")));
    assert_eq!(out, "via skiff\n");
    let st = c
        .kubectl(&["exec", "tick", "--", "sh", "-c", "exit 3"])
        .status;
    assert_eq!(st.code(), Some(3));
    let st = c
        .skiff(&["exec", "tick", "--", "sh", "-c", "exit 3"])
        .status;
    assert_eq!(st.code(), Some(3));
    let input = "echo hi-$((1+2)); exit\n";
    for (program, name) in [(Path::new("kubectl"), "kubectl"), (&*skiff_bin(), "skiff")] {
        let out = c.in_terminal(program, &["exec", "-it", "tick", "--", "sh"], input);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("hi-3"),
            "{name} exec -it ({}):\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // A crash-looping container: plain logs show its last run (it is not running now),
    // --previous the same run, both clients.
    let s = eventually(Duration::from_secs(30), || {
        let p = c.pod_json("crashy")?;
        let s = container_status(&p, "c").clone();
        (s["state"]["waiting"]["reason"] == "CrashLoopBackOff").then_some(s)
    })
    .expect("crashy in CrashLoopBackOff");
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 2, "{s:#}");
    let logs = ok(&c.kubectl(&["logs", "crashy"]));
    // Both streams, in whichever order the two pipes were read.
    assert!(
        logs.contains("run at ") && logs.contains("to stderr\n"),
        "{logs}"
    );
    let previous = ok(&c.kubectl(&["logs", "crashy", "--previous"]));
    assert!(previous.contains("run at "), "{previous}");
    let skiff_logs = ok(&c.skiff(&["logs", "crashy"]));
    assert!(skiff_logs.contains("run at "), "{skiff_logs}");
    // After a restart, --previous is the run before the current one.
    let before: Value = s["restartCount"].clone();
    let restarted = eventually(Duration::from_secs(40), || {
        let p = c.pod_json("crashy")?;
        let s = container_status(&p, "c");
        (s["restartCount"].as_u64()? > before.as_u64()?).then_some(())
    });
    assert!(restarted.is_some(), "crashy did not restart again");
    // The new run may still be running for a moment; then it is the previous one.
    let again = eventually(Duration::from_secs(10), || {
        let out = ok(&c.kubectl(&["logs", "crashy", "--previous"]));
        (out != previous).then_some(out)
    })
    .expect("--previous moved on to the newer run");
    assert!(again.contains("run at "), "{again}");

    ok(&c.kubectl(&["delete", "pod", "tick", "crashy", "--timeout=30s"]));
    drop(node);
}
