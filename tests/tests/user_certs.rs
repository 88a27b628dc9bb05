//! Users the Kubernetes way: `skiff kubeconfig create --user --group` issues a client
//! certificate through a `kubernetes.io/kube-apiserver-client` CertificateSigningRequest and
//! writes a kubeconfig that authenticates as that user; requests the signer's rules refuse,
//! and approved requests for a `kubernetes.io/` signer this cluster does not have, end with
//! a Failed condition saying why.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use skiff_e2e::{Backend, Cluster, eventually, fails, ok};

/// A PEM certificate request made with openssl for this subject.
fn request(dir: &std::path::Path, subject: &str) -> String {
    let (key, req) = (dir.join("req.key"), dir.join("req.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-subj", subject, "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&req)
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{out:?}");
    std::fs::read_to_string(&req).unwrap()
}

fn csr_manifest(name: &str, signer: &str, usages: &[&str], pem: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: {name}}}\nspec:\n  signerName: {signer}\n  usages: [{}]\n  request: {b64}\n",
        usages
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn csr(c: &Cluster, kubeconfig: Option<&str>, name: &str) -> Value {
    let mut args = vec!["get", "csr", name, "-o", "json"];
    if let Some(k) = kubeconfig {
        args.extend(["--kubeconfig", k]);
    }
    serde_json::from_str(&ok(&c.kubectl(&args))).unwrap()
}

/// Approves `name` and waits for its Failed condition's message.
fn approve_and_fail(c: &Cluster, name: &str) -> String {
    ok(&c.kubectl(&["certificate", "approve", name]));
    eventually(Duration::from_secs(20), || {
        let v = csr(c, None, name);
        v["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Failed")
            .map(|c| {
                assert!(v["status"]["certificate"].is_null(), "{v}");
                format!(
                    "{}: {}",
                    c["reason"].as_str().unwrap(),
                    c["message"].as_str().unwrap()
                )
            })
    })
    .unwrap_or_else(|| panic!("csr {name} never failed: {}", csr(c, None, name)))
}

#[test]
fn a_user_kubeconfig_from_an_issued_client_certificate() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let alice = dir.path().join("alice.kubeconfig");
    let alice_s = alice.display().to_string();

    let out = ok(&c.skiff(&[
        "kubeconfig",
        "create",
        "--user",
        "alice",
        "--group",
        "dev",
        "-o",
        &alice_s,
    ]));
    assert!(
        out.is_empty() || !out.contains("BEGIN"),
        "the key is not printed when -o is given: {out}"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&alice).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds a private key");
    let text = std::fs::read_to_string(&alice).unwrap();
    assert!(
        text.contains("client-certificate-data") && text.contains("client-key-data"),
        "{text}"
    );

    // The kubeconfig works, and the server knows its holder as alice in dev. She holds no
    // role yet, so she is refused, in kube-apiserver's words, until one is bound to her group.
    let err = fails(&c.kubectl(&["--kubeconfig", &alice_s, "get", "namespaces"]));
    assert!(
        err.contains(
            "namespaces is forbidden: User \"alice\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        ),
        "{err}"
    );
    ok(&c.kubectl(&[
        "create",
        "clusterrolebinding",
        "dev-csr",
        "--clusterrole=system:node-bootstrapper",
        "--group=dev",
    ]));
    // A request she creates is stamped with her identity.
    let pem = request(dir.path(), "/CN=carol");
    ok(&c.kubectl_stdin(
        &["--kubeconfig", &alice_s, "create", "-f", "-"],
        Some(&csr_manifest(
            "from-alice",
            "kubernetes.io/kube-apiserver-client",
            &["client auth"],
            &pem,
        )),
    ));
    let v = csr(&c, Some(&alice_s), "from-alice");
    assert_eq!(v["spec"]["username"], "alice", "{v}");
    let groups: Vec<&str> = v["spec"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert!(
        groups.contains(&"dev") && groups.contains(&"system:authenticated"),
        "{groups:?}"
    );
    assert!(!groups.contains(&"system:masters"), "{groups:?}");

    // The request `skiff kubeconfig create` made is approved and issued for client auth.
    let list: Value = serde_json::from_str(&ok(&c.kubectl(&["get", "csr", "-o", "json"]))).unwrap();
    let mine = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("skiff-user-")
        })
        .expect("the request is kept");
    assert_eq!(
        mine["spec"]["signerName"],
        "kubernetes.io/kube-apiserver-client"
    );
    assert!(mine["status"]["certificate"].is_string(), "{mine}");
    let out = ok(&c.kubectl(&["get", "csr"]));
    assert!(out.contains("Approved,Issued"), "{out}");

    // Bad input changes nothing: a too-short lifetime is refused before anything is made.
    let before = list["items"].as_array().unwrap().len();
    let err = fails(&c.skiff(&[
        "kubeconfig",
        "create",
        "--user",
        "bob",
        "--expiration-seconds",
        "60",
    ]));
    assert!(
        err.contains("--expiration-seconds must be at least 600"),
        "{err}"
    );
    let list: Value = serde_json::from_str(&ok(&c.kubectl(&["get", "csr", "-o", "json"]))).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), before);

    // The signer's rules, in Kubernetes' words.
    let pem = request(dir.path(), "/CN=mallory");
    ok(&c.kubectl_stdin(
        &["create", "-f", "-"],
        Some(&csr_manifest(
            "server-usage",
            "kubernetes.io/kube-apiserver-client",
            &["client auth", "server auth"],
            &pem,
        )),
    ));
    assert_eq!(
        approve_and_fail(&c, "server-usage"),
        "SignerValidationFailure: invalid usage for client certificate: server auth"
    );
    let pem = request(dir.path(), "/CN=system:node:n1/O=system:nodes");
    ok(&c.kubectl_stdin(
        &["create", "-f", "-"],
        Some(&csr_manifest(
            "kubelet-client",
            "kubernetes.io/kube-apiserver-client-kubelet",
            &["client auth"],
            &pem,
        )),
    ));
    assert_eq!(
        approve_and_fail(&c, "kubelet-client"),
        "SignerValidationFailure: usages did not match [client auth digital signature key encipherment]"
    );
    ok(&c.kubectl_stdin(
        &["create", "-f", "-"],
        Some(&csr_manifest(
            "unknown-signer",
            "kubernetes.io/not-a-signer",
            &["client auth"],
            &pem,
        )),
    ));
    let why = approve_and_fail(&c, "unknown-signer");
    assert!(
        why.contains("unsupported signer \"kubernetes.io/not-a-signer\""),
        "{why}"
    );
    // Another party's signer is theirs: approved, it stays pending here.
    ok(&c.kubectl_stdin(
        &["create", "-f", "-"],
        Some(&csr_manifest(
            "external",
            "example.com/signer",
            &["client auth"],
            &pem,
        )),
    ));
    ok(&c.kubectl(&["certificate", "approve", "external"]));
    std::thread::sleep(Duration::from_secs(2));
    let v = csr(&c, None, "external");
    assert!(v["status"]["certificate"].is_null(), "{v}");
    assert!(
        !v["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Failed"),
        "{v}"
    );
}
