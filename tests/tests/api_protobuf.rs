//! The real kubectl v1.32's typed-client writes, which it sends as Kubernetes protobuf
//! (`create configmap|secret|namespace|deployment|service|serviceaccount`, `autoscale`,
//! `run`, `expose`), against a real `skiff server`: each succeeds, stores the fields asked
//! for, and stores exactly what the same object sent as JSON would have.

use serde_json::Value;
use skiff_e2e::{Backend, Cluster, ok};

fn json_of(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&ok(&c.kubectl(&a))).expect("kubectl -o json")
}

/// An object less what differs between two creations of the same thing, and less what
/// kubectl's typed printing adds (Go's JSON writes `null` for unset non-omitempty fields and
/// a zero status such as `{"desiredReplicas": 0}`; the unstructured printing of `create -f`
/// does not). Create never takes a status from the body, so none is lost.
fn comparable(mut v: Value) -> Value {
    drop_nulls(&mut v);
    v.as_object_mut().map(|o| o.remove("status"));
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            meta.remove(k);
        }
    }
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        // Allocated per create.
        for k in ["clusterIP", "clusterIPs"] {
            spec.remove(k);
        }
    }
    v
}

fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.retain(|_, x| !x.is_null());
            o.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Server-side dry runs of a generator command: sent as protobuf by the command itself, and
/// sent as JSON (`create -f -` of the command's client-side output). Both must store the same.
fn protobuf_matches_json(c: &Cluster, cmd: &[&str]) {
    let manifest = ok(&c.kubectl(&with_flags(cmd, "--dry-run=client")));
    let via_protobuf: Value =
        serde_json::from_str(&ok(&c.kubectl(&with_flags(cmd, "--dry-run=server"))))
            .expect("protobuf dry run");
    let via_json: Value = serde_json::from_str(&ok(&c.kubectl_stdin(
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(&manifest),
    )))
    .expect("json dry run");
    assert_eq!(comparable(via_protobuf), comparable(via_json), "{cmd:?}");
}

/// `cmd` with a dry-run mode and `-o json`, placed before any `--` (after it they would be the
/// container's arguments).
fn with_flags<'a>(cmd: &[&'a str], dry_run: &'a str) -> Vec<&'a str> {
    let at = cmd.iter().position(|a| *a == "--").unwrap_or(cmd.len());
    let mut out = cmd[..at].to_vec();
    out.extend([dry_run, "-o", "json"]);
    out.extend(&cmd[at..]);
    out
}

#[test]
fn kubectl_generators_create_through_protobuf() {
    let c = Cluster::start(Backend::Embedded).expect("cluster");
    let file = c.dir.path().join("notes.txt");
    std::fs::write(&file, "line 1\nline 2\n").unwrap();
    let from_file = format!("--from-file={}", file.display());

    ok(&c.kubectl(&["create", "configmap", "x", "--from-literal=a=b", &from_file]));
    let cm = json_of(&c, &["get", "cm", "x"]);
    assert_eq!(cm["data"]["a"], "b");
    assert_eq!(cm["data"]["notes.txt"], "line 1\nline 2\n");

    ok(&c.kubectl(&["create", "secret", "generic", "s", "--from-literal=p=q"]));
    let s = json_of(&c, &["get", "secret", "s"]);
    assert_eq!(s["data"]["p"], "cQ==");
    assert_eq!(s["type"], "Opaque");

    ok(&c.kubectl(&["create", "namespace", "n"]));
    assert_eq!(
        json_of(&c, &["get", "ns", "n"])["status"]["phase"],
        "Active"
    );

    let deploy = [
        "create",
        "deployment",
        "d",
        "--image=busybox:1.36",
        "--replicas=2",
        "--port=80",
        "--",
        "sleep",
        "3600",
    ];
    ok(&c.kubectl(&deploy));
    let d = json_of(&c, &["get", "deploy", "d"]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "d");
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox:1.36");
    assert_eq!(container["command"], serde_json::json!(["sleep", "3600"]));
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(container["ports"][0]["protocol"], "TCP");
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");

    // A pointer field set to zero must not read as unset.
    ok(&c.kubectl(&[
        "create",
        "deployment",
        "z",
        "--image=busybox:1.36",
        "--replicas=0",
    ]));
    assert_eq!(json_of(&c, &["get", "deploy", "z"])["spec"]["replicas"], 0);

    ok(&c.kubectl(&["create", "service", "clusterip", "s", "--tcp=80:8080"]));
    let svc = json_of(&c, &["get", "svc", "s"]);
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["type"], "ClusterIP");

    ok(&c.kubectl(&["create", "serviceaccount", "sa"]));
    assert_eq!(json_of(&c, &["get", "sa", "sa"])["metadata"]["name"], "sa");

    ok(&c.kubectl(&[
        "autoscale",
        "deployment",
        "d",
        "--min=1",
        "--max=3",
        "--cpu-percent=50",
    ]));
    let hpa = json_of(&c, &["get", "hpa.v2.autoscaling", "d"]);
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(hpa["spec"]["maxReplicas"], 3);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "d");
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );

    ok(&c.kubectl(&[
        "run",
        "p",
        "--image=busybox:1.36",
        "--labels=a=b",
        "--env=X=1",
        "--",
        "sleep",
        "1",
    ]));
    let p = json_of(&c, &["get", "pod", "p"]);
    assert_eq!(p["metadata"]["labels"]["a"], "b");
    assert_eq!(
        p["spec"]["containers"][0]["env"][0],
        serde_json::json!({"name": "X", "value": "1"})
    );
    assert_eq!(
        p["spec"]["containers"][0]["args"],
        serde_json::json!(["sleep", "1"])
    );

    ok(&c.kubectl(&["expose", "deployment", "d", "--port=80", "--name=d-svc"]));
    let exposed = json_of(&c, &["get", "svc", "d-svc"]);
    assert_eq!(exposed["spec"]["selector"]["app"], "d");
    assert_eq!(exposed["spec"]["ports"][0]["targetPort"], 80);

    // Byte-for-byte the same stored object as the JSON path, on fresh names.
    protobuf_matches_json(
        &c,
        &[
            "create",
            "configmap",
            "x2",
            "--from-literal=a=b",
            &from_file,
        ],
    );
    protobuf_matches_json(
        &c,
        &[
            "create",
            "secret",
            "generic",
            "s2",
            "--from-literal=p=q",
            "--type=kubernetes.io/basic-auth",
            "--from-literal=username=u",
            "--from-literal=password=pw",
        ],
    );
    protobuf_matches_json(&c, &["create", "namespace", "n2"]);
    protobuf_matches_json(
        &c,
        &[
            "create",
            "deployment",
            "d2",
            "--image=busybox:1.36",
            "--replicas=0",
            "--port=80",
            "--",
            "sleep",
            "3600",
        ],
    );
    protobuf_matches_json(
        &c,
        &[
            "create",
            "service",
            "nodeport",
            "np",
            "--tcp=81:8081",
            "--node-port=30081",
        ],
    );
    protobuf_matches_json(&c, &["create", "serviceaccount", "sa2"]);
    protobuf_matches_json(
        &c,
        &[
            "autoscale",
            "deployment",
            "d",
            "--name=h2",
            "--min=2",
            "--max=5",
            "--cpu-percent=70",
        ],
    );
}
