//! The `skiff` CLI against a real server: apply (created/configured/unchanged, interoperating
//! with kubectl's last-applied annotation), get in every output form, describe, patch, label,
//! annotate, delete, api-resources, version, and kubectl-style errors.

use serde_json::Value;
use skiff_e2e::{Backend, Cluster, fails, ok, repo_root};

#[test]
fn skiff_cli_workflow() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let web = repo_root()
        .join("manifests/examples/web.yaml")
        .display()
        .to_string();

    let out = ok(&c.skiff(&["apply", "-f", &web]));
    assert!(
        out.contains("deployment.apps/web created")
            && out.contains("service/web created")
            && out.contains("configmap/web-config created"),
        "{out}"
    );
    // kubectl sees skiff's last-applied annotation as its own.
    let out = ok(&c.kubectl(&["apply", "-f", &web]));
    assert_eq!(out.matches("unchanged").count(), 3, "{out}");
    // A changed manifest through stdin: configured; a removed field is removed.
    let changed = std::fs::read_to_string(&web)
        .unwrap()
        .replace("replicas: 2", "replicas: 4")
        .replace("  GREETING: \"hello from skiff\"\n", "");
    let out = ok(&c.skiff_stdin(&["apply", "-f", "-"], Some(&changed)));
    assert!(
        out.contains("deployment.apps/web configured")
            && out.contains("configmap/web-config configured"),
        "{out}"
    );
    let cm: Value =
        serde_json::from_str(&ok(&c.skiff(&["get", "cm", "web-config", "-o", "json"]))).unwrap();
    assert!(
        cm["data"].get("GREETING").is_none(),
        "field removed from the manifest is gone: {cm}"
    );
    let d: Value =
        serde_json::from_str(&ok(&c.skiff(&["get", "deploy", "web", "-o", "json"]))).unwrap();
    assert_eq!(d["spec"]["replicas"], 4);

    // get: tables, wide, names, yaml, selectors, all namespaces.
    let out = ok(&c.skiff(&["get", "deploy,svc,cm", "-o", "wide"]));
    assert!(
        out.contains("UP-TO-DATE") && out.contains("CLUSTER-IP") && out.contains("SELECTOR"),
        "{out}"
    );
    let out = ok(&c.skiff(&["get", "deploy", "-o", "name"]));
    assert_eq!(out.trim(), "deployment.apps/web");
    let out = ok(&c.skiff(&["get", "svc", "web", "-o", "yaml"]));
    assert!(
        out.contains("kind: Service") && out.contains("sessionAffinity: None"),
        "{out}"
    );
    let out = ok(&c.skiff(&["get", "ns", "-A"]));
    assert!(out.contains("kube-system"), "{out}");
    let out = ok(&c.skiff(&["get", "cm", "-l", "app=web", "-o", "name"]));
    assert_eq!(out.trim(), "configmap/web-config");

    // patch (three types), label, annotate.
    ok(&c.skiff(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"replicas":1}}"#,
    ]));
    ok(&c.skiff(&["patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"httpd","image":"busybox:1.37"}]}}}}"#]));
    ok(&c.skiff(&[
        "patch",
        "cm",
        "web-config",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/data/x","value":"y"}]"#,
    ]));
    ok(&c.skiff(&["label", "deploy", "web", "tier=frontend"]));
    let err = fails(&c.skiff(&["label", "deploy", "web", "tier=backend"]));
    assert!(err.contains("--overwrite"), "{err}");
    ok(&c.skiff(&["label", "deploy", "web", "tier=backend", "--overwrite"]));
    ok(&c.skiff(&["annotate", "deploy", "web", "owner=team-a"]));
    let d: Value =
        serde_json::from_str(&ok(&c.skiff(&["get", "deploy", "web", "-o", "json"]))).unwrap();
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.37"
    );
    assert_eq!(d["metadata"]["labels"]["tier"], "backend");
    assert_eq!(d["metadata"]["annotations"]["owner"], "team-a");
    ok(&c.skiff(&["label", "deploy", "web", "tier-"]));

    // describe, api-resources, version.
    let out = ok(&c.skiff(&["describe", "deploy", "web"]));
    assert!(
        out.contains("Name:") && out.contains("Selector:") && out.contains("Events:"),
        "{out}"
    );
    let out = ok(&c.skiff(&["api-resources"]));
    assert!(
        out.contains("deployments") && out.contains("deploy") && out.contains("apps/v1"),
        "{out}"
    );
    let out = ok(&c.skiff(&["version"]));
    assert!(out.contains("Server Version"), "{out}");

    // Errors print like kubectl's and exit non-zero.
    let err = fails(&c.skiff(&["get", "deploy", "missing"]));
    assert!(
        err.contains("Error from server (NotFound): deployments.apps \"missing\" not found"),
        "{err}"
    );
    let err = fails(&c.skiff_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"),
    ));
    assert!(err.contains("Invalid") || err.contains("invalid"), "{err}");
    let err = fails(&c.skiff_stdin(&["apply", "-f", "-"], Some("kind: [unclosed\n")));
    assert!(err.starts_with("error"), "{err}");

    // delete waits until the objects are gone.
    let out = ok(&c.skiff(&["delete", "-f", &web]));
    assert!(out.contains("deployment.apps \"web\" deleted"), "{out}");
    fails(&c.skiff(&["get", "deploy", "web"]));
}

/// `skiff expose` makes the Service kubectl's `expose` makes: the Deployment's selector, the
/// given port and target port, the type asked for; a second expose of the same name is refused.
#[test]
fn skiff_expose_makes_a_service_for_a_deployment() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let web = repo_root()
        .join("manifests/examples/web.yaml")
        .display()
        .to_string();
    ok(&c.skiff(&["apply", "-f", &web]));
    let out = ok(&c.skiff(&[
        "expose",
        "deployment",
        "web",
        "--port",
        "8080",
        "--target-port",
        "80",
        "--name",
        "web-np",
        "--type",
        "NodePort",
    ]));
    assert_eq!(out.trim(), "service/web-np exposed");
    let svc: Value =
        serde_json::from_str(&ok(&c.kubectl(&["get", "svc", "web-np", "-o", "json"]))).unwrap();
    let dep: Value =
        serde_json::from_str(&ok(&c.kubectl(&["get", "deploy", "web", "-o", "json"]))).unwrap();
    assert_eq!(
        svc["spec"]["selector"],
        dep["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    let err = fails(&c.skiff(&[
        "expose",
        "deployment",
        "web",
        "--port",
        "8080",
        "--name",
        "web-np",
    ]));
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&c.skiff(&["expose", "deployment", "nope", "--port", "80"]));
    assert!(err.contains("not found"), "{err}");
}
