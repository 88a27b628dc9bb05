//! A node joining as a separate machine would (`skiff agent --server --token --ca-file`, no
//! CA key): its kubelet serving certificate comes through a CertificateSigningRequest that
//! the controller-manager auto-approves and signs, so `kubectl logs` and `kubectl exec`
//! reach its pods; and `kubectl certificate deny|approve` on hand-made requests.

use std::time::Duration;

use skiff_e2e::{Backend, Cluster, can_run_nodes, eventually, ok};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: joined}
spec:
  nodeName: NODE
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "echo hello-from-joined; sleep 3600"]
"#;

/// A PEM certificate request, made with the kubelet's own request builder, for a node that
/// does not exist.
fn foreign_request() -> String {
    let dir = tempfile::tempdir().unwrap();
    let req = skiff_kubelet::server::serving_csr::ServingRequest {
        node_name: "not-a-node".into(),
        dns_names: vec!["example.test".into()],
        ips: vec![],
        dir: dir.path().into(),
    };
    req.make_request().unwrap().1
}

#[test]
fn joined_node_gets_a_serving_certificate_through_a_csr() {
    if !can_run_nodes() {
        eprintln!("skipping: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let node = c.start_remote_node("e2e-joined", 11).unwrap();

    // The request is the node's, made by the bootstrap identity, approved and issued.
    let csrs = eventually(Duration::from_secs(20), || {
        let out = ok(&c.kubectl(&["get", "csr"]));
        out.lines()
            .any(|l| l.starts_with("node-serving-e2e-joined-") && l.contains("Approved,Issued"))
            .then_some(out)
    })
    .unwrap_or_else(|| panic!("no issued CSR: {}", node.log()));
    assert!(csrs.contains("kubernetes.io/kubelet-serving"), "{csrs}");
    assert!(csrs.contains("system:bootstrap:node"), "{csrs}");
    let header = csrs.lines().next().unwrap();
    for col in [
        "NAME",
        "AGE",
        "SIGNERNAME",
        "REQUESTOR",
        "REQUESTEDDURATION",
        "CONDITION",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let reason = ok(&c.kubectl(&[
        "get",
        "csr",
        "-o",
        "jsonpath={.items[0].status.conditions[0].reason}",
    ]));
    assert_eq!(reason, "AutoApproved");
    // The key and certificate are kept under the agent's root for restarts.
    let kept = node.root_dir.join("pki/kubelet-serving.crt");
    assert!(
        eventually(Duration::from_secs(10), || kept.exists().then_some(())).is_some(),
        "{}",
        node.log()
    );

    // A pod on the joined node: logs and exec go through its node server.
    ok(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&POD.replace("NODE", &node.name)),
    ));
    let logs = eventually(Duration::from_secs(30), || {
        let out = c.kubectl(&["logs", "joined"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("hello-from-joined").then_some(text)
    });
    assert!(
        logs.is_some(),
        "logs never came: {:?}\n{}",
        c.pod_json("joined"),
        node.log()
    );
    let out = ok(&c.kubectl(&["exec", "joined", "--", "sh", "-c", "echo exec-$((6*7))"]));
    assert_eq!(out.trim(), "exec-42");

    // A request from someone else is left pending, and can be denied by hand.
    let manifest = serde_json::json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "by-hand"},
        "spec": {
            "request": base64_of(&foreign_request()),
            "signerName": "kubernetes.io/kubelet-serving",
            "usages": ["digital signature", "server auth"],
            "username": "forged",
        }
    });
    ok(&c.kubectl_stdin(&["create", "-f", "-"], Some(&manifest.to_string())));
    let requestor = ok(&c.kubectl(&["get", "csr", "by-hand", "-o", "jsonpath={.spec.username}"]));
    assert_eq!(requestor, "admin");
    std::thread::sleep(Duration::from_secs(1));
    let row = ok(&c.kubectl(&["get", "csr", "by-hand", "--no-headers"]));
    assert!(row.contains("Pending"), "{row}");
    ok(&c.kubectl(&["certificate", "deny", "by-hand"]));
    let row = ok(&c.kubectl(&["get", "csr", "by-hand", "--no-headers"]));
    assert!(row.contains("Denied"), "{row}");
    let cert = ok(&c.kubectl(&[
        "get",
        "csr",
        "by-hand",
        "-o",
        "jsonpath={.status.certificate}",
    ]));
    assert!(cert.is_empty(), "a denied request was issued");

    // Approved by hand, the signer issues it.
    let mut manifest = manifest;
    manifest["metadata"]["name"] = "by-hand-ok".into();
    ok(&c.kubectl_stdin(&["create", "-f", "-"], Some(&manifest.to_string())));
    ok(&c.kubectl(&["certificate", "approve", "by-hand-ok"]));
    let issued = eventually(Duration::from_secs(10), || {
        let row = ok(&c.kubectl(&["get", "csr", "by-hand-ok", "--no-headers"]));
        row.contains("Approved,Issued").then_some(row)
    });
    assert!(issued.is_some(), "{}", c.server_log());
    ok(&c.kubectl(&["delete", "pod", "joined", "--wait=false"]));
}

/// Base64 as Kubernetes writes `[]byte` fields.
fn base64_of(s: &str) -> serde_json::Value {
    serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec())).unwrap()
}

#[test]
fn an_agent_without_a_ca_refuses_to_join_and_registers_nothing() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = format!("https://127.0.0.1:{}", c.port);
    let out = std::process::Command::new(skiff_e2e::process::skiff_bin())
        .args([
            "agent",
            "--server",
            &server,
            "--token",
            &c.join_token().unwrap(),
        ])
        .args(["--node-name", "e2e-no-ca", "--root-dir"])
        .arg(dir.path().join("root"))
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the agent joined without a CA");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without verifying its certificate")
            && err.contains("--ca-file")
            && err.contains("--insecure-skip-tls-verify"),
        "{err}"
    );
    let nodes = ok(&c.kubectl(&["get", "nodes", "-o", "name"]));
    assert!(!nodes.contains("e2e-no-ca"), "{nodes}");
}
