//! Bad input gets the right `Status` and changes nothing: malformed bodies, invalid names,
//! unknown fields under strict validation, stale resourceVersions, oversized bodies, missing
//! namespaces, missing or wrong credentials.

use serde_json::{Value, json};
use skiff_e2e::{Backend, Cluster, fails};

const CM: &str = "/api/v1/namespaces/default/configmaps";

async fn count(c: &Cluster) -> usize {
    let (code, list) = c
        .raw("GET", CM, "application/json", vec![], None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    list["items"].as_array().map(Vec::len).unwrap_or(0)
}

fn assert_status(code: u16, body: &Value, want: u16, reason: &str) {
    assert_eq!(code, want, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], want, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_status_and_stores_nothing() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let good = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "good"}, "data": {"a": "b"}});
    let (code, created) = c
        .raw(
            "POST",
            CM,
            "application/json",
            good.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let before = count(&c).await;

    // Malformed JSON.
    let (code, body) = c
        .raw(
            "POST",
            CM,
            "application/json",
            b"{\"apiVersion\": ".to_vec(),
            None,
        )
        .await
        .unwrap();
    assert_status(code, &body, 400, "BadRequest");

    // Invalid name: 422 with a cause naming the field.
    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_Valid"}});
    let (code, body) = c
        .raw(
            "POST",
            CM,
            "application/json",
            bad.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_status(code, &body, 422, "Invalid");
    assert_eq!(
        body["details"]["causes"][0]["field"], "metadata.name",
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().starts_with(
            "ConfigMap \"Not_Valid\" is invalid: metadata.name: Invalid value: \"Not_Valid\""
        ),
        "{body}"
    );

    // Unknown field under strict validation: 400; without it the field is dropped.
    let unknown = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict"}, "dta": {"a": "b"}});
    let (code, body) = c
        .raw(
            "POST",
            &format!("{CM}?fieldValidation=Strict"),
            "application/json",
            unknown.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_status(code, &body, 400, "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"dta\""),
        "{body}"
    );

    // Stale resourceVersion: 409 Conflict, and the object keeps its data.
    let mut stale = created.clone();
    stale["data"]["a"] = json!("changed");
    let (code, _) = c
        .raw(
            "PUT",
            &format!("{CM}/good"),
            "application/json",
            stale.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    stale["data"]["a"] = json!("again");
    let (code, body) = c
        .raw(
            "PUT",
            &format!("{CM}/good"),
            "application/json",
            stale.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_status(code, &body, 409, "Conflict");
    let (_, now) = c
        .raw(
            "GET",
            &format!("{CM}/good"),
            "application/json",
            vec![],
            None,
        )
        .await
        .unwrap();
    assert_eq!(now["data"]["a"], "changed");

    // Over 3 MiB: 413.
    let big = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"a": "x".repeat(3 * 1024 * 1024 + 10)}});
    let (code, body) = c
        .raw(
            "POST",
            CM,
            "application/json",
            big.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_status(code, &body, 413, "RequestEntityTooLarge");

    // Namespace that does not exist: 404 naming the namespace.
    let (code, body) = c
        .raw(
            "POST",
            "/api/v1/namespaces/nowhere/configmaps",
            "application/json",
            good.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_status(code, &body, 404, "NotFound");
    assert_eq!(body["message"], "namespaces \"nowhere\" not found");

    // Duplicate create: 409 AlreadyExists.
    let (code, body) = c
        .raw(
            "POST",
            CM,
            "application/json",
            good.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_status(code, &body, 409, "AlreadyExists");

    // Invalid Deployment: selector not matching labels, negative replicas.
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": -1, "selector": {"matchLabels": {"app": "a"}},
                 "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
    let (code, body) = c
        .raw(
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            "application/json",
            deploy.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_status(code, &body, 422, "Invalid");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert!(fields.contains(&"spec.replicas"), "{body}");
    assert!(fields.contains(&"spec.template.metadata.labels"), "{body}");

    // Pod without an image: Kubernetes' exact message.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
    let (code, body) = c
        .raw(
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            pod.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_status(code, &body, 422, "Invalid");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("spec.containers[0].image: Required value"),
        "{body}"
    );

    // No token and a wrong token: 401.
    let (code, body) = c
        .raw("GET", CM, "application/json", vec![], Some(""))
        .await
        .unwrap();
    assert_status(code, &body, 401, "Unauthorized");
    let (code, body) = c
        .raw("GET", CM, "application/json", vec![], Some("not-the-token"))
        .await
        .unwrap();
    assert_status(code, &body, 401, "Unauthorized");

    // dryRun=All validates and stores nothing.
    let dry = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dry"}});
    let (code, _) = c
        .raw(
            "POST",
            &format!("{CM}?dryRun=All"),
            "application/json",
            dry.to_string().into_bytes(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 201);
    let (code, _) = c
        .raw(
            "GET",
            &format!("{CM}/dry"),
            "application/json",
            vec![],
            None,
        )
        .await
        .unwrap();
    assert_eq!(code, 404);

    assert_eq!(count(&c).await, before, "bad input changed the store");

    // kubectl prints server errors as kubectl does.
    let out = c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n"),
    );
    assert!(!fails(&out).is_empty());
    let err = fails(&c.kubectl(&["get", "cm", "missing"]));
    assert!(
        err.contains("Error from server (NotFound): configmaps \"missing\" not found"),
        "{err}"
    );
    assert_eq!(count(&c).await, before);
}
