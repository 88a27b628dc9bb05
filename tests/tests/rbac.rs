//! Who may do what, as a Kubernetes user meets it: a user with a client-certificate
//! kubeconfig holds nothing until a RoleBinding grants it; refusals are kube-apiserver's 403
//! words; `kubectl auth can-i [--list]`, `kubectl auth whoami` and `--as` work; nobody grants
//! what they do not hold; aggregated ClusterRoles pick up new rules; and the default roles
//! come back when a server starts after they were deleted.

use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_e2e::{Backend, Cluster, eventually, fails, ok};

struct User<'a> {
    c: &'a Cluster,
    kubeconfig: String,
}

impl User<'_> {
    fn kubectl(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["--kubeconfig", &self.kubeconfig];
        all.extend_from_slice(args);
        self.c.kubectl(&all)
    }

    fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut all = vec!["--kubeconfig", &self.kubeconfig];
        all.extend_from_slice(args);
        self.c.kubectl_stdin(&all, Some(stdin))
    }

    /// `kubectl auth can-i` as this user: exit 0 and "yes", or exit 1 and "no".
    fn can_i(&self, args: &[&str]) -> bool {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let out = self.kubectl(&all);
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            (said == "yes" && out.status.success())
                || (said == "no" && out.status.code() == Some(1)),
            "can-i {args:?}: {out:?}"
        );
        said == "yes"
    }
}

fn role(name: &str, ns: &str, rules: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: {name}, namespace: {ns}}}\nrules:\n{rules}"
    )
}

#[test]
fn users_hold_what_their_bindings_grant_and_nothing_more() {
    let mut c = Cluster::start(Backend::Embedded).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("jane.kubeconfig").display().to_string();
    ok(&c.skiff(&[
        "kubeconfig",
        "create",
        "--user",
        "jane",
        "--group",
        "qa",
        "-o",
        &kubeconfig,
    ]));
    let jane = User {
        c: &c,
        kubeconfig: kubeconfig.clone(),
    };
    for ns in ["a", "b"] {
        ok(&c.kubectl(&["create", "namespace", ns]));
    }
    ok(&c.kubectl(&[
        "-n",
        "a",
        "create",
        "configmap",
        "settings",
        "--from-literal=k=v",
    ]));

    // Who she is, by the server's own account.
    let who = ok(&jane.kubectl(&["auth", "whoami", "-o", "json"]));
    let who: Value = serde_json::from_str(&who).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "jane", "{who}");
    let groups = who["status"]["userInfo"]["groups"].to_string();
    assert!(
        groups.contains("\"qa\"") && groups.contains("system:authenticated"),
        "{who}"
    );

    // Nothing is granted yet: kube-apiserver's words, for namespaced and cluster-scoped
    // resources, for a named object, and for a path.
    let err = fails(&jane.kubectl(&["-n", "a", "get", "pods"]));
    assert!(
        err.contains(
            r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "a""#
        ),
        "{err}"
    );
    let err = fails(&jane.kubectl(&["get", "nodes"]));
    assert!(
        err.contains(
            r#"nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the cluster scope"#
        ),
        "{err}"
    );
    let err = fails(&jane.kubectl(&["-n", "a", "get", "configmap", "settings"]));
    assert!(
        err.contains(
            r#"configmaps "settings" is forbidden: User "jane" cannot get resource "configmaps" in API group "" in the namespace "a""#
        ),
        "{err}"
    );
    let err = fails(&jane.kubectl(&["get", "--raw", "/metrics"]));
    assert!(
        err.contains(r#"forbidden: User "jane" cannot get path "/metrics""#),
        "{err}"
    );
    // Discovery and the version are everyone's (system:discovery, system:public-info-viewer).
    ok(&jane.kubectl(&["get", "--raw", "/api"]));
    ok(&jane.kubectl(&["get", "--raw", "/version"]));
    assert!(!jane.can_i(&["list", "pods", "-n", "a"]));

    // A RoleBinding to `view` in `a` takes effect at once, in `a` only, and not for Secrets
    // (view leaves them out, as in Kubernetes).
    let t = Instant::now();
    ok(&c.kubectl(&[
        "-n",
        "a",
        "create",
        "rolebinding",
        "jane-view",
        "--clusterrole=view",
        "--user=jane",
    ]));
    eventually(Duration::from_secs(5), || {
        jane.kubectl(&["-n", "a", "get", "pods"])
            .status
            .success()
            .then_some(())
    })
    .expect("the binding takes effect");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    eprintln!("a new RoleBinding took effect within {took:?} (including two kubectl runs)");
    let out = ok(&jane.kubectl(&["-n", "a", "get", "configmap", "settings", "-o", "name"]));
    assert_eq!(out.trim(), "configmap/settings");
    let err = fails(&jane.kubectl(&["-n", "a", "get", "secrets"]));
    assert!(
        err.contains(r#"secrets is forbidden: User "jane" cannot list resource "secrets""#),
        "{err}"
    );
    let err = fails(&jane.kubectl(&["-n", "b", "get", "pods"]));
    assert!(err.contains(r#"in the namespace "b""#), "{err}");
    let err = fails(&jane.kubectl(&["-n", "a", "delete", "configmap", "settings"]));
    assert!(
        err.contains(r#"cannot delete resource "configmaps""#),
        "{err}"
    );
    ok(&c.kubectl(&["-n", "a", "get", "configmap", "settings"]));

    // kubectl auth can-i agrees with what the requests met, for her and through --as.
    assert!(jane.can_i(&["list", "pods", "-n", "a"]));
    assert!(jane.can_i(&["get", "deployments.apps", "-n", "a"]));
    assert!(!jane.can_i(&["list", "secrets", "-n", "a"]));
    assert!(!jane.can_i(&["create", "deployments.apps", "-n", "a"]));
    assert!(!jane.can_i(&["list", "pods", "-n", "b"]));
    assert!(jane.can_i(&["get", "/version"]));
    assert!(!jane.can_i(&["get", "/metrics"]));
    assert_eq!(
        ok(&c.kubectl(&["auth", "can-i", "list", "pods", "-n", "a", "--as", "jane"])).trim(),
        "yes"
    );
    let out = c.kubectl(&["auth", "can-i", "list", "pods", "-n", "b", "--as", "jane"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no");
    // --as acts as her: the admin impersonating jane is refused what jane is refused.
    let err = fails(&c.kubectl(&["-n", "b", "get", "pods", "--as", "jane"]));
    assert!(
        err.contains(r#"User "jane" cannot list resource "pods""#),
        "{err}"
    );
    let out = ok(&c.kubectl(&["auth", "whoami", "--as", "jane", "--as-group", "qa"]));
    assert!(out.contains("jane") && out.contains("qa"), "{out}");
    // She may not impersonate anyone herself.
    let err = fails(&jane.kubectl(&["get", "pods", "-n", "a", "--as", "admin"]));
    assert!(
        err.contains(
            r#"users "admin" is forbidden: User "jane" cannot impersonate resource "users" in API group "" at the cluster scope"#
        ),
        "{err}"
    );

    // can-i --list names her rules in the namespace.
    let list = ok(&jane.kubectl(&["auth", "can-i", "--list", "-n", "a"]));
    let pods = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some("pods"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(pods.contains("[get list watch]"), "{pods}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("selfsubjectaccessreviews.authorization.k8s.io")),
        "{list}"
    );
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some("secrets")),
        "{list}"
    );

    // Tables: the binding as `kubectl get -o wide` shows it.
    let out = ok(&c.kubectl(&["-n", "a", "get", "rolebinding", "jane-view", "-o", "wide"]));
    let row = out.lines().nth(1).unwrap();
    assert!(
        row.contains("ClusterRole/view") && row.contains("jane"),
        "{out}"
    );
    let out = ok(&c.kubectl(&["get", "clusterroles"]));
    assert!(out.lines().next().unwrap().contains("CREATED AT"), "{out}");
    assert!(out.contains("cluster-admin"), "{out}");

    // Escalation prevention: as admin of `b` she may make Roles and bindings there, but only
    // with what she holds herself.
    ok(&c.kubectl(&[
        "-n",
        "b",
        "create",
        "rolebinding",
        "jane-admin",
        "--clusterrole=admin",
        "--user=jane",
    ]));
    eventually(Duration::from_secs(5), || {
        jane.can_i(&["create", "roles.rbac.authorization.k8s.io", "-n", "b"])
            .then_some(())
    })
    .expect("admin of b");
    ok(&jane.kubectl_stdin(
        &["apply", "-f", "-"],
        &role(
            "pod-reader",
            "b",
            "- {apiGroups: [\"\"], resources: [pods], verbs: [get, list]}\n",
        ),
    ));
    let err = fails(&jane.kubectl_stdin(
        &["apply", "-f", "-"],
        &role(
            "everything",
            "b",
            "- {apiGroups: [\"*\"], resources: [\"*\"], verbs: [\"*\"]}\n",
        ),
    ));
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "everything" is forbidden: user "jane""#)
            && err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    let err = fails(&jane.kubectl(&[
        "-n",
        "b",
        "create",
        "rolebinding",
        "me-root",
        "--clusterrole=cluster-admin",
        "--user=jane",
    ]));
    assert!(
        err.contains("is attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    // Granting what she holds is fine; nothing refused was made.
    ok(&jane.kubectl(&[
        "-n",
        "b",
        "create",
        "rolebinding",
        "friend-view",
        "--clusterrole=view",
        "--user=friend",
    ]));
    let out = ok(&c.kubectl(&["-n", "b", "get", "roles,rolebindings", "-o", "name"]));
    assert!(
        !out.contains("everything") && !out.contains("me-root"),
        "{out}"
    );
    // roleRef cannot change.
    let err = fails(&c.kubectl(&[
        "-n",
        "b",
        "patch",
        "rolebinding",
        "friend-view",
        "--type=merge",
        "-p",
        r#"{"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"edit"}}"#,
    ]));
    assert!(err.contains("cannot change roleRef"), "{err}");
    // Malformed rules are refused with Kubernetes' field errors.
    let err = fails(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&role(
            "bad",
            "b",
            "- {apiGroups: [\"\"], resources: [pods]}\n",
        )),
    ));
    assert!(err.contains("rules[0].verbs: Required value"), "{err}");

    // Aggregation: a ClusterRole labelled aggregate-to-view adds its rules to view, as an
    // operator's chart does for its CRD's kind.
    ok(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: crontabs.stable.example.com}\nspec:\n  group: stable.example.com\n  scope: Namespaced\n  names: {plural: crontabs, singular: crontab, kind: CronTab}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}\n",
        ),
    ));
    ok(&c.kubectl(&[
        "wait",
        "--for=condition=established",
        "crd/crontabs.stable.example.com",
    ]));
    assert!(!jane.can_i(&["list", "crontabs.stable.example.com", "-n", "a"]));
    ok(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: crontab-reader\n  labels: {rbac.authorization.k8s.io/aggregate-to-view: \"true\"}\nrules:\n- {apiGroups: [stable.example.com], resources: [crontabs], verbs: [get, list, watch]}\n",
        ),
    ));
    eventually(Duration::from_secs(10), || {
        jane.can_i(&["list", "crontabs.stable.example.com", "-n", "a"])
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "view never aggregated crontab-reader: {}",
            ok(&c.kubectl(&["get", "clusterrole", "view", "-o", "yaml"]))
        )
    });
    let view: Value = serde_json::from_str(&ok(&c.kubectl(&[
        "get",
        "clusterrole",
        "view",
        "-o",
        "json",
    ])))
    .unwrap();
    assert!(
        view["aggregationRule"]["clusterRoleSelectors"].is_array(),
        "{view}"
    );
    assert!(view.to_string().contains("crontabs"), "{view}");
    // `admin` and `edit` aggregate view's labels too, as in Kubernetes.
    assert!(jane.can_i(&["list", "crontabs.stable.example.com", "-n", "b"]));

    // The in-process scheduler works as system:kube-scheduler: its lease is held through
    // that user's narrow role, and its credential reads no Secret.
    let sched = c
        .data_dir()
        .join("scheduler.kubeconfig")
        .display()
        .to_string();
    let who = ok(&c.kubectl(&["--kubeconfig", &sched, "auth", "whoami", "-o", "json"]));
    assert!(who.contains("\"system:kube-scheduler\""), "{who}");
    let err = fails(&c.kubectl(&["--kubeconfig", &sched, "get", "secrets", "-A"]));
    assert!(
        err.contains(r#"User "system:kube-scheduler" cannot list resource "secrets""#),
        "{err}"
    );
    ok(&c.kubectl(&[
        "--kubeconfig",
        &sched,
        "-n",
        "kube-system",
        "get",
        "lease",
        "kube-scheduler",
    ]));

    // Deleted defaults come back at the next start; the user's own objects stay.
    ok(&c.kubectl(&["delete", "clusterrole", "system:basic-user"]));
    ok(&c.kubectl(&["delete", "clusterrolebinding", "system:basic-user"]));
    c.restart().unwrap();
    let jane = User { c: &c, kubeconfig };
    ok(&c.kubectl(&["get", "clusterrole", "system:basic-user"]));
    ok(&c.kubectl(&["get", "clusterrolebinding", "system:basic-user"]));
    ok(&c.kubectl(&["-n", "b", "get", "role", "pod-reader"]));
    eventually(Duration::from_secs(10), || {
        jane.kubectl(&["-n", "a", "get", "pods"])
            .status
            .success()
            .then_some(())
    })
    .expect("her binding survives a restart");
}
