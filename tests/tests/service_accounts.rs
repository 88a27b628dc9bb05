//! Service accounts as a Kubernetes user meets them: every namespace has a `default`
//! ServiceAccount; `kubectl create token` issues a bound JWT that authenticates as
//! `system:serviceaccount:<ns>:<name>` and is authorized by RBAC; tokens stop working when
//! their ServiceAccount or bound pod is deleted, or when presented for another audience;
//! the OIDC discovery documents publish the key; and a second server on the same etcd
//! accepts the first one's tokens.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use skiff_e2e::{Backend, Cluster, eventually, fails, ok};

fn token(c: &Cluster, args: &[&str]) -> String {
    let mut all = vec!["create", "token"];
    all.extend_from_slice(args);
    ok(&c.kubectl(&all)).trim().to_string()
}

fn as_token(c: &Cluster, token: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--token", token];
    all.extend_from_slice(args);
    c.kubectl(&all)
}

fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn service_account_tokens_authenticate_bind_and_expire_with_their_objects() {
    let c = Cluster::start(Backend::Etcd).unwrap();
    ok(&c.kubectl(&["create", "namespace", "apps"]));

    // The default ServiceAccount appears, and comes back when deleted.
    let uid_of = |c: &Cluster| {
        eventually(Duration::from_secs(10), || {
            let out = c.kubectl(&[
                "-n",
                "apps",
                "get",
                "sa",
                "default",
                "-o",
                "jsonpath={.metadata.uid}",
            ]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).to_string())
        })
        .expect("the default service account")
    };
    let first_uid = uid_of(&c);

    // A token for it: who it is, by the server's account and by its claims.
    let t = token(&c, &["-n", "apps", "default"]);
    let cl = claims(&t);
    assert_eq!(cl["sub"], "system:serviceaccount:apps:default", "{cl}");
    assert_eq!(cl["iss"], "https://kubernetes.default.svc.cluster.local");
    assert_eq!(
        cl["kubernetes.io"]["serviceaccount"]["uid"],
        first_uid.as_str()
    );
    let lifetime = cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600, "the default lifetime is an hour");
    let who: Value =
        serde_json::from_str(&ok(&as_token(&c, &t, &["auth", "whoami", "-o", "json"]))).unwrap();
    assert_eq!(
        who["status"]["userInfo"]["username"],
        "system:serviceaccount:apps:default"
    );
    let groups = who["status"]["userInfo"]["groups"].to_string();
    for g in [
        "system:serviceaccounts",
        "system:serviceaccounts:apps",
        "system:authenticated",
    ] {
        assert!(groups.contains(&format!("\"{g}\"")), "{who}");
    }

    // It holds nothing until a binding names it.
    let err = fails(&as_token(&c, &t, &["-n", "apps", "get", "configmaps"]));
    assert!(
        err.contains(
            r#"configmaps is forbidden: User "system:serviceaccount:apps:default" cannot list resource "configmaps" in API group "" in the namespace "apps""#
        ),
        "{err}"
    );
    ok(&c.kubectl(&[
        "-n",
        "apps",
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=apps:default",
    ]));
    eventually(Duration::from_secs(5), || {
        as_token(&c, &t, &["-n", "apps", "get", "configmaps"])
            .status
            .success()
            .then_some(())
    })
    .expect("the binding grants view");

    // The issuer's discovery documents, readable by service accounts, name the key the
    // token was signed with.
    let conf: Value = serde_json::from_str(&ok(&as_token(
        &c,
        &t,
        &["get", "--raw", "/.well-known/openid-configuration"],
    )))
    .unwrap();
    assert_eq!(
        conf["jwks_uri"],
        "https://kubernetes.default.svc.cluster.local/openid/v1/jwks"
    );
    let jwks: Value =
        serde_json::from_str(&ok(&as_token(&c, &t, &["get", "--raw", "/openid/v1/jwks"]))).unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(jwks["keys"][0]["kid"], header["kid"], "{jwks}");

    // Bad requests change nothing and say why in Kubernetes' words.
    let err = fails(&c.kubectl(&["-n", "apps", "create", "token", "default", "--duration=5m"]));
    assert!(
        err.contains("spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes"),
        "{err}"
    );
    let err = fails(&c.kubectl(&["-n", "apps", "create", "token", "nobody"]));
    assert!(
        err.contains(r#"serviceaccounts "nobody" not found"#),
        "{err}"
    );
    let err = fails(&c.kubectl(&[
        "-n",
        "apps",
        "create",
        "token",
        "default",
        "--bound-object-kind=Pod",
        "--bound-object-name=missing",
    ]));
    assert!(err.contains(r#"pods "missing" not found"#), "{err}");

    // A token for another audience is not for the API server.
    let vault = token(&c, &["-n", "apps", "default", "--audience=vault"]);
    assert_eq!(claims(&vault)["aud"][0], "vault");
    let err = fails(&as_token(&c, &vault, &["auth", "whoami"]));
    assert!(err.contains("Unauthorized"), "{err}");

    // TokenReview: what a webhook or an aggregated server asks the API server.
    let review = |token: &str, audiences: &str| -> Value {
        let manifest = format!(
            "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec: {{token: {token}, audiences: [{audiences}]}}\n"
        );
        serde_json::from_str(&ok(
            &c.kubectl_stdin(&["create", "-f", "-", "-o", "json"], Some(&manifest))
        ))
        .unwrap()
    };
    let r = review(&t, "");
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    assert_eq!(
        r["status"]["user"]["username"],
        "system:serviceaccount:apps:default"
    );
    let r = review(&vault, "vault");
    assert_eq!(r["status"]["authenticated"], true, "{r}");
    assert_eq!(r["status"]["audiences"][0], "vault", "{r}");
    let r = review(&vault, "");
    assert!(r["status"]["authenticated"].is_null(), "{r}");
    assert_eq!(r["status"]["error"], "invalid bearer token", "{r}");

    // A second server on the same etcd accepts the first one's tokens.
    let peer = c.start_peer().unwrap();
    let who = ok(&as_token(&peer, &t, &["auth", "whoami"]));
    assert!(who.contains("system:serviceaccount:apps:default"), "{who}");
    drop(peer);

    // A token bound to a pod works while the pod is there and stops when it is deleted.
    ok(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: worker, namespace: apps}\nspec:\n  containers: [{name: c, image: busybox}]\n",
        ),
    ));
    let bound = token(
        &c,
        &[
            "-n",
            "apps",
            "default",
            "--bound-object-kind=Pod",
            "--bound-object-name=worker",
        ],
    );
    assert_eq!(claims(&bound)["kubernetes.io"]["pod"]["name"], "worker");
    ok(&as_token(&c, &bound, &["-n", "apps", "get", "configmaps"]));
    ok(&c.kubectl(&[
        "-n",
        "apps",
        "delete",
        "pod",
        "worker",
        "--grace-period=0",
        "--force",
    ]));
    eventually(Duration::from_secs(5), || {
        let out = as_token(&c, &bound, &["auth", "whoami"]);
        (!out.status.success()).then_some(())
    })
    .expect("a deleted pod's token is refused");

    // Deleting the ServiceAccount invalidates its tokens, even once a new default is made.
    ok(&c.kubectl(&["-n", "apps", "delete", "sa", "default"]));
    let second_uid = eventually(Duration::from_secs(10), || {
        let u = uid_of(&c);
        (u != first_uid).then_some(u)
    })
    .expect("a new default service account");
    assert_ne!(second_uid, first_uid);
    let err = fails(&as_token(&c, &t, &["auth", "whoami"]));
    assert!(err.contains("Unauthorized"), "{err}");
    let fresh = token(&c, &["-n", "apps", "default"]);
    ok(&as_token(&c, &fresh, &["-n", "apps", "get", "configmaps"]));
}
