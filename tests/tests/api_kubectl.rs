//! The real kubectl (v1.32, unmodified) against a real `skiff server`, on both stores:
//! apply/get/get -w/describe/patch (three types)/label/annotate/scale/delete/api-resources.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use skiff_e2e::{Backend, Cluster, eventually, fails, ok, repo_root};

fn web_yaml() -> String {
    repo_root()
        .join("manifests/examples/web.yaml")
        .display()
        .to_string()
}

fn json_of(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&ok(&c.kubectl(&a))).expect("kubectl -o json")
}

fn workflow(backend: Backend) {
    let c = Cluster::start(backend).expect("cluster");
    let web = web_yaml();

    let out = ok(&c.kubectl(&["apply", "-f", &web]));
    assert!(out.contains("configmap/web-config created"), "{out}");
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert!(out.contains("service/web created"), "{out}");
    let out = ok(&c.kubectl(&["apply", "-f", &web]));
    assert_eq!(out.matches("unchanged").count(), 3, "{out}");

    // Defaults as Kubernetes shows them.
    let d = json_of(&c, &["get", "deploy", "web"]);
    assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["metadata"]["generation"], 1);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        pod["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    assert!(d["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    let svc = json_of(&c, &["get", "svc", "web"]);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");

    // Server-side tables.
    let out = ok(&c.kubectl(&["get", "all", "-A"]));
    assert!(out.contains("deployment.apps/web"), "{out}");
    assert!(out.contains("service/web"), "{out}");
    assert!(out.contains("UP-TO-DATE"), "{out}");
    let out = ok(&c.kubectl(&["get", "deploy,svc,cm", "-o", "wide"]));
    assert!(
        out.contains("CLUSTER-IP") && out.contains("SELECTOR") && out.contains("IMAGES"),
        "{out}"
    );
    let out = ok(&c.kubectl(&["get", "ns"]));
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(out.contains(ns), "{out}");
    }

    // Patches of all three types.
    ok(&c.kubectl(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":3}}"#,
    ]));
    let d = json_of(&c, &["get", "deploy", "web"]);
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(d["metadata"]["generation"], 2);
    ok(&c.kubectl(&["patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"httpd","image":"busybox:1.37"}]}}}}"#]));
    let d = json_of(&c, &["get", "deploy", "web"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.37"
    );
    assert!(
        d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"].is_object(),
        "strategic patch kept the other fields"
    );
    ok(&c.kubectl(&[
        "patch",
        "cm",
        "web-config",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/extra","value":"1"}]"#,
    ]));
    let err = fails(&c.kubectl(&[
        "patch",
        "cm",
        "web-config",
        "--type",
        "json",
        "-p",
        r#"[{"op":"test","path":"/data/extra","value":"2"}]"#,
    ]));
    assert!(
        err.contains("The request is invalid") && err.contains("test operation 0 failed"),
        "{err}"
    );
    assert_eq!(
        json_of(&c, &["get", "cm", "web-config"])["data"]["extra"],
        "1"
    );

    // Labels, annotations, selectors.
    ok(&c.kubectl(&["label", "deploy", "web", "tier=frontend"]));
    ok(&c.kubectl(&["annotate", "deploy", "web", "note=hello"]));
    let out = ok(&c.kubectl(&["get", "deploy", "-l", "tier=frontend", "-o", "name"]));
    assert_eq!(out.trim(), "deployment.apps/web");
    let out = ok(&c.kubectl(&["get", "deploy", "-l", "tier!=frontend", "-o", "name"]));
    assert_eq!(out.trim(), "");
    let out = ok(&c.kubectl(&[
        "get",
        "cm",
        "--field-selector",
        "metadata.name=web-config",
        "-o",
        "name",
    ]));
    assert_eq!(out.trim(), "configmap/web-config");
    let err = fails(&c.kubectl(&["get", "cm", "--field-selector", "data.x=1"]));
    assert!(
        err.contains("BadRequest") || err.contains("not supported"),
        "{err}"
    );

    // Scale subresource.
    let out = ok(&c.kubectl(&["scale", "deploy", "web", "--replicas=5"]));
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(
        json_of(&c, &["get", "deploy", "web"])["spec"]["replicas"],
        5
    );

    // describe and api-resources.
    let out = ok(&c.kubectl(&["describe", "deploy", "web"]));
    assert!(
        out.contains("Name:") && out.contains("web") && out.contains("RollingUpdate"),
        "{out}"
    );
    let out = ok(&c.kubectl(&["api-resources"]));
    for needle in [
        "deployments",
        "deploy",
        "apps/v1",
        "horizontalpodautoscalers",
        "leases",
        "endpointslices",
    ] {
        assert!(out.contains(needle), "{needle} missing: {out}");
    }

    // get -w sees a change as it happens.
    let mut watch = Command::new("kubectl")
        .arg("--cache-dir")
        .arg(&c.kube_cache)
        .args(["get", "cm", "-w", "--no-headers"])
        .env("KUBECONFIG", &c.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    ok(&c.kubectl_stdin(
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: b\n"),
    ));
    let seen = eventually(Duration::from_secs(10), || {
        rx.try_iter().find(|l| l.starts_with("watched"))
    });
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        seen.is_some(),
        "kubectl get -w did not show the new configmap"
    );

    // Delete waits and leaves nothing.
    let out = ok(&c.kubectl(&["delete", "-f", &web]));
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    let err = fails(&c.kubectl(&["get", "deploy", "web"]));
    assert!(
        err.contains("NotFound") && err.contains("deployments.apps \"web\" not found"),
        "{err}"
    );

    // Namespaces: create, fill, delete removes the contents.
    ok(&c.kubectl_stdin(&["apply", "-f", "-"], Some("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: scratch\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: scratch\ndata:\n  a: b\n")));
    ok(&c.kubectl(&["delete", "namespace", "scratch", "--timeout=30s"]));
    let err = fails(&c.kubectl(&["get", "ns", "scratch"]));
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn kubectl_workflow_on_the_embedded_store() {
    workflow(Backend::Embedded);
}

#[test]
fn kubectl_workflow_on_etcd() {
    workflow(Backend::Etcd);
}
