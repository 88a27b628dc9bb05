//! Server-side apply with field ownership, driven by the real kubectl and by kube-rs:
//! applies that drop fields, conflicts between managers and `--force-conflicts`, the
//! migration of an object from client-side to server-side apply, and `Patch::Apply` from
//! Rust with a conflict.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use skiff_e2e::{Backend, Cluster, fails, ok};

fn get_json(c: &Cluster, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", "json", "--show-managed-fields"]);
    serde_json::from_str(&ok(&c.kubectl(&args))).unwrap()
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or("").to_string(),
                e["operation"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn deployment(name: &str, replicas: u32) -> String {
    skiff_e2e::workload::deployment(name, replicas, "1", "{type: RollingUpdate}")
}

/// `kubectl apply --server-side --field-manager=<manager> <extra> -f -` of `manifest`.
fn ssa(c: &Cluster, manager: &str, extra: &[&str], manifest: &str) -> std::process::Output {
    let flag = format!("--field-manager={manager}");
    let mut args = vec!["apply", "--server-side", flag.as_str()];
    args.extend_from_slice(extra);
    args.extend(["-f", "-"]);
    c.kubectl_stdin(&args, Some(manifest))
}

fn kubectl_ssa_dropped_fields_and_conflicts(c: &Cluster) {
    // Applying twice with a dropped field removes it.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels: {a: '1', b: '2'}\ndata:\n  keep: k\n  drop: d\n";
    ok(&c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(cm)));
    let obj = get_json(c, &["cm", "ssa"]);
    assert_eq!(managers(&obj), [("kubectl".into(), "Apply".into())]);
    let fields = &obj["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(
        fields["f:data"],
        json!({"f:drop": {}, "f:keep": {}}),
        "{obj}"
    );
    assert_eq!(obj["metadata"]["managedFields"][0]["apiVersion"], "v1");
    let dropped = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  labels: {a: '1'}\ndata:\n  keep: k\n";
    let out = ok(&c.kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(dropped)));
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    let obj = get_json(c, &["cm", "ssa"]);
    assert_eq!(obj["data"], json!({"keep": "k"}), "{obj}");
    assert_eq!(obj["metadata"]["labels"], json!({"a": "1"}), "{obj}");

    // Two managers: kubectl's client-side apply owns .spec.replicas; another applier that
    // changes it conflicts, worded as kube-apiserver words it.
    ok(&c.kubectl_stdin(&["apply", "-f", "-"], Some(&deployment("web", 2))));
    let obj = get_json(c, &["deploy", "web"]);
    assert!(
        managers(&obj).contains(&("kubectl-client-side-apply".into(), "Update".into())),
        "{obj}"
    );
    let err = fails(&ssa(c, "ci", &[], &deployment("web", 5)));
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"),
        "{err}"
    );
    assert_eq!(get_json(c, &["deploy", "web"])["spec"]["replicas"], 2);
    // --force-conflicts takes ownership.
    ok(&ssa(c, "ci", &["--force-conflicts"], &deployment("web", 5)));
    let obj = get_json(c, &["deploy", "web"]);
    assert_eq!(obj["spec"]["replicas"], 5);
    let ci = entry(&obj, "ci", "Apply");
    assert_eq!(ci["fieldsV1"]["f:spec"]["f:replicas"], json!({}), "{obj}");
    // Two server-side appliers setting the same value share it: no conflict.
    ok(&ssa(c, "cd", &[], &deployment("web", 5)));
    let err = fails(&ssa(c, "cd", &[], &deployment("web", 7)));
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"ci\": .spec.replicas"),
        "{err}"
    );
}

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["manager"] == manager && e["operation"] == operation)
        .unwrap_or_else(|| panic!("no {manager} {operation} entry: {obj}"))
}

fn kubectl_migrates_from_client_side_apply(c: &Cluster) {
    ok(&c.kubectl_stdin(&["apply", "-f", "-"], Some(&deployment("mig", 1))));
    // kubectl's first server-side apply takes over the fields client-side apply last
    // applied, so changing replicas is no conflict.
    let out = ok(&c.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        Some(&deployment("mig", 3)),
    ));
    assert!(
        out.contains("deployment.apps/mig serverside-applied"),
        "{out}"
    );
    let obj = get_json(c, &["deploy", "mig"]);
    assert_eq!(obj["spec"]["replicas"], 3);
    let ssa = entry(&obj, "kubectl", "Apply");
    assert_eq!(ssa["fieldsV1"]["f:spec"]["f:replicas"], json!({}));
    // kubectl moves client-side apply's fields to its server-side entry.
    assert!(
        !managers(&obj).contains(&("kubectl-client-side-apply".into(), "Update".into())),
        "{obj}"
    );
    // Once someone else scaled it, client-side apply's values no longer speak for it.
    ok(&c.kubectl(&[
        "patch",
        "deploy",
        "mig",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":4}}"#,
        "--field-manager=scaler",
    ]));
    let err = fails(&c.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        Some(&deployment("mig", 6)),
    ));
    assert!(
        err.contains(
            "Apply failed with 1 conflict: conflict with \"scaler\" using apps/v1: .spec.replicas"
        ),
        "{err}"
    );
}

async fn kube_rs_apply_with_a_conflict(c: &Cluster) {
    let api: Api<ConfigMap> = Api::namespaced(c.client().await.unwrap(), "default");
    let cm = |v: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rust"},
            "data": {"owner": v}})
    };
    let made = api
        .patch(
            "rust",
            &PatchParams::apply("rust-ctl"),
            &Patch::Apply(cm("a")),
        )
        .await
        .unwrap();
    let mf = made.metadata.managed_fields.unwrap_or_default();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("rust-ctl"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    let err = api
        .patch("rust", &PatchParams::apply("other"), &Patch::Apply(cm("b")))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(
                status.message,
                "Apply failed with 1 conflict: conflict with \"rust-ctl\": .data.owner"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let forced = api
        .patch(
            "rust",
            &PatchParams::apply("other").force(),
            &Patch::Apply(cm("b")),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["owner"], "b");
    // rust-ctl no longer owns .data.owner: its next apply without it leaves the value.
    let none = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rust"}});
    let after = api
        .patch("rust", &PatchParams::apply("rust-ctl"), &Patch::Apply(none))
        .await
        .unwrap();
    assert_eq!(after.data.unwrap()["owner"], "b");
    // An apply without fieldManager is refused, as kube-apiserver refuses it.
    let (code, body) = c
        .raw(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/rust",
            "application/apply-patch+yaml",
            cm("c").to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_owns_fields() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    kubectl_ssa_dropped_fields_and_conflicts(&c);
    kubectl_migrates_from_client_side_apply(&c);
    kube_rs_apply_with_a_conflict(&c).await;
}
