//! Table tests for the strategic merge patch engine.

use serde_json::{Value, json};

use super::*;

fn smp(original: &Value, patch: &Value) -> Value {
    strategic_merge(original, patch).unwrap_or_else(|e| panic!("patch {patch} failed: {e}"))
}

/// Fails when a directive key survives anywhere in `v`.
fn assert_no_directives(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                assert!(
                    !(k == "$patch"
                        || k == "$retainKeys"
                        || k.starts_with("$setElementOrder")
                        || k.starts_with("$deleteFromPrimitiveList")),
                    "directive {k} left in result"
                );
                assert!(!x.is_null(), "null left at {k}");
                assert_no_directives(x);
            }
        }
        Value::Array(a) => a.iter().for_each(assert_no_directives),
        _ => {}
    }
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
}

fn deployment(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}}}
    })
}

/// `spec.template.spec.containers` of a Deployment, `spec.containers` of a Pod.
fn containers_of(v: &Value) -> &Value {
    v.pointer("/spec/template/spec/containers")
        .or_else(|| v.pointer("/spec/containers"))
        .unwrap()
}

fn two_containers() -> Value {
    json!([
        {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent",
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
         "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 9090, "name": "metrics"}],
         "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "cfg", "mountPath": "/etc/cfg"}],
         "args": ["--a", "--b"]},
        {"name": "side", "image": "side:1"}
    ])
}

#[test]
fn container_lists_merge_by_name_in_pods_and_deployments() {
    // (name, patch to the container list, expected container list)
    let cases = [
        (
            "image by name keeps the other container",
            json!([{"name": "side", "image": "side:2"}]),
            json!([two_containers()[0].clone(), {"name": "side", "image": "side:2"}]),
        ),
        (
            "env var added, existing kept",
            json!([{"name": "app", "env": [{"name": "C", "value": "3"}]}]),
            {
                let mut c = two_containers();
                c[0]["env"] = json!([{"name": "C", "value": "3"}, {"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
                c
            },
        ),
        (
            "env var changed in place",
            json!([{"name": "app", "env": [{"name": "B", "value": "20"}]}]),
            {
                let mut c = two_containers();
                c[0]["env"][1]["value"] = json!("20");
                c
            },
        ),
        (
            "container port merged by containerPort",
            json!([{"name": "app", "ports": [{"containerPort": 9090, "name": "prom"}]}]),
            {
                let mut c = two_containers();
                c[0]["ports"][1]["name"] = json!("prom");
                c
            },
        ),
        (
            "volumeMount merged by mountPath",
            json!([{"name": "app", "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}]),
            {
                let mut c = two_containers();
                c[0]["volumeMounts"][0]["readOnly"] = json!(true);
                c
            },
        ),
        (
            "args replaced whole",
            json!([{"name": "app", "args": ["--c"]}]),
            {
                let mut c = two_containers();
                c[0]["args"] = json!(["--c"]);
                c
            },
        ),
        (
            "$patch delete removes one container",
            json!([{"name": "side", "$patch": "delete"}]),
            json!([two_containers()[0].clone()]),
        ),
        (
            "$patch delete removes one env var",
            json!([{"name": "app", "env": [{"name": "A", "$patch": "delete"}]}]),
            {
                let mut c = two_containers();
                c[0]["env"] = json!([{"name": "B", "value": "2"}]);
                c
            },
        ),
        (
            "$patch replace item replaces the list",
            json!([{"$patch": "replace"}, {"name": "only", "image": "only:1"}]),
            json!([{"name": "only", "image": "only:1"}]),
        ),
        (
            "null deletes a container field",
            json!([{"name": "app", "imagePullPolicy": null, "args": null}]),
            {
                let mut c = two_containers();
                let app = c[0].as_object_mut().unwrap();
                app.shift_remove("imagePullPolicy");
                app.shift_remove("args");
                c
            },
        ),
        (
            "new container goes where Kubernetes puts it",
            json!([{"name": "new", "image": "new:1"}]),
            json!([{"name": "new", "image": "new:1"}, two_containers()[0].clone(), two_containers()[1].clone()]),
        ),
    ];
    for (name, patch, want) in cases {
        for shape in ["pod", "deployment"] {
            let (original, full_patch) = if shape == "pod" {
                (
                    pod(two_containers()),
                    json!({"spec": {"containers": patch}}),
                )
            } else {
                (
                    deployment(two_containers()),
                    json!({"spec": {"template": {"spec": {"containers": patch}}}}),
                )
            };
            let got = smp(&original, &full_patch);
            assert_no_directives(&got);
            assert_eq!(containers_of(&got), &want, "{shape}: {name}");
            assert_eq!(
                got["metadata"]["name"], original["metadata"]["name"],
                "{shape}: {name}"
            );
        }
    }
}

#[test]
fn merge_keys_of_other_lists() {
    // (name, original, patch, expected)
    let cases = [
        (
            "service ports merge by port",
            json!({"kind": "Service", "spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
            json!({"kind": "Service", "spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 9090, "protocol": "TCP"},
                {"name": "https", "port": 443, "targetPort": 8443}]}}),
        ),
        (
            "volumes by name",
            json!({"spec": {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "b", "emptyDir": {"medium": "Memory"}}]}}),
            json!({"spec": {"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {"medium": "Memory"}}]}}),
        ),
        (
            "imagePullSecrets by name",
            json!({"spec": {"imagePullSecrets": [{"name": "r1"}]}}),
            json!({"spec": {"imagePullSecrets": [{"name": "r1"}, {"name": "r2"}]}}),
            json!({"spec": {"imagePullSecrets": [{"name": "r1"}, {"name": "r2"}]}}),
        ),
        (
            "hostAliases by ip",
            json!({"spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}, {"ip": "10.0.0.2", "hostnames": ["b"]}]}}),
            json!({"spec": {"hostAliases": [{"ip": "10.0.0.2", "hostnames": ["c"]}]}}),
            json!({"spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}, {"ip": "10.0.0.2", "hostnames": ["c"]}]}}),
        ),
        (
            "topologySpreadConstraints by topologyKey",
            json!({"spec": {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}, {"topologyKey": "host", "maxSkew": 1}]}}),
            json!({"spec": {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}]}}),
            json!({"spec": {"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}, {"topologyKey": "host", "maxSkew": 1}]}}),
        ),
        (
            "volumeDevices by devicePath",
            json!({"spec": {"containers": [{"name": "c", "volumeDevices": [{"devicePath": "/dev/a", "name": "x"}]}]}}),
            json!({"spec": {"containers": [{"name": "c", "volumeDevices": [{"devicePath": "/dev/a", "name": "y"}]}]}}),
            json!({"spec": {"containers": [{"name": "c", "volumeDevices": [{"devicePath": "/dev/a", "name": "y"}]}]}}),
        ),
        (
            "conditions by type",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}}),
        ),
        (
            "ownerReferences by uid",
            json!({"metadata": {"ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "rs"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "u1", "kind": "ReplicaSet", "name": "rs", "controller": true}]}}),
        ),
        (
            "finalizers union",
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        ),
        (
            "$deleteFromPrimitiveList removes finalizers",
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
            json!({"metadata": {"finalizers": ["a", "c"]}}),
        ),
        (
            "tolerations replaced",
            json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]}}),
            json!({"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}}),
            json!({"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}}),
        ),
        (
            "envFrom replaced",
            json!({"spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "a"}}]}]}}),
            json!({"spec": {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "b"}}]}]}}),
            json!({"spec": {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "b"}}]}]}}),
        ),
        (
            "command replaced",
            json!({"spec": {"containers": [{"name": "c", "command": ["sh", "-c"]}]}}),
            json!({"spec": {"containers": [{"name": "c", "command": ["bash"]}]}}),
            json!({"spec": {"containers": [{"name": "c", "command": ["bash"]}]}}),
        ),
        (
            "endpoints subset ports replaced",
            json!({"subsets": [{"ports": [{"port": 80}, {"port": 81}]}]}),
            json!({"subsets": [{"ports": [{"port": 82}]}]}),
            json!({"subsets": [{"ports": [{"port": 82}]}]}),
        ),
        (
            "merge keys compare numbers by value",
            json!({"spec": {"ports": [{"port": 80, "name": "a"}]}}),
            json!({"spec": {"ports": [{"port": 80.0, "name": "b"}]}}),
            json!({"spec": {"ports": [{"port": 80.0, "name": "b"}]}}),
        ),
    ];
    for (name, original, patch, want) in cases {
        let got = smp(&original, &patch);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn map_directives_and_nulls() {
    let original = json!({
        "metadata": {"name": "web", "labels": {"a": "1", "b": "2"}, "annotations": {"x": "y"}},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}, "replicas": 2}
    });
    // (name, patch, expected)
    let cases = [
        (
            "null deletes a field",
            json!({"metadata": {"labels": {"a": null}}, "spec": {"replicas": null}}),
            json!({"metadata": {"name": "web", "labels": {"b": "2"}, "annotations": {"x": "y"}},
                   "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}),
        ),
        (
            "$patch replace replaces a map",
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
            json!({"metadata": {"name": "web", "labels": {"c": "3"}, "annotations": {"x": "y"}},
                   "spec": original["spec"].clone()}),
        ),
        (
            "$patch delete removes a map",
            json!({"metadata": {"annotations": {"$patch": "delete"}}}),
            json!({"metadata": {"name": "web", "labels": {"a": "1", "b": "2"}}, "spec": original["spec"].clone()}),
        ),
        (
            "$patch merge merges",
            json!({"metadata": {"labels": {"$patch": "merge", "c": "3"}}}),
            json!({"metadata": {"name": "web", "labels": {"a": "1", "b": "2", "c": "3"}, "annotations": {"x": "y"}},
                   "spec": original["spec"].clone()}),
        ),
        (
            "$retainKeys drops unlisted fields",
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            json!({"metadata": original["metadata"].clone(), "spec": {"strategy": {"type": "Recreate"}, "replicas": 2}}),
        ),
        (
            "$retainKeys keeps listed fields it does not set",
            json!({"spec": {"strategy": {"$retainKeys": ["type", "rollingUpdate"], "type": "RollingUpdate"}}}),
            original.clone(),
        ),
        (
            "directives in a new field are resolved",
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "a", "image": "a", "env": [{"name": "X", "$patch": "delete"}], "x": null}]
            }}}}),
            json!({"metadata": original["metadata"].clone(), "spec": {
                "strategy": original["spec"]["strategy"].clone(), "replicas": 2,
                "template": {"spec": {"containers": [{"name": "a", "image": "a", "env": []}]}}}}),
        ),
        ("empty patch changes nothing", json!({}), original.clone()),
        (
            "keys that only look like directives are fields",
            json!({"spec": {"$ref": "#/x", "$schema": "s"}}),
            json!({"metadata": original["metadata"].clone(), "spec": {
                "strategy": original["spec"]["strategy"].clone(), "replicas": 2, "$ref": "#/x", "$schema": "s"}}),
        ),
    ];
    for (name, patch, want) in cases {
        let got = smp(&original, &patch);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn set_element_order() {
    let svc = json!({"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}, {"port": 8080, "name": "alt"}]}});
    // (name, original, patch, expected port numbers)
    let cases = [
        (
            "reorders without content",
            svc.clone(),
            json!({"spec": {"$setElementOrder/ports": [{"port": 8080}, {"port": 443}, {"port": 80}]}}),
            vec![8080, 443, 80],
        ),
        (
            "reorders and patches",
            svc.clone(),
            json!({"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}, {"port": 8080}],
                            "ports": [{"port": 80, "name": "web"}]}}),
            vec![443, 80, 8080],
        ),
        (
            "new item placed by order",
            svc.clone(),
            json!({"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 81}, {"port": 443}, {"port": 8080}],
                            "ports": [{"port": 81}]}}),
            vec![80, 81, 443, 8080],
        ),
        (
            "server-only item keeps its neighbour",
            svc.clone(),
            json!({"spec": {"$setElementOrder/ports": [{"port": 8080}, {"port": 80}]}}),
            vec![443, 8080, 80],
        ),
        (
            "delete with order",
            svc.clone(),
            json!({"spec": {"$setElementOrder/ports": [{"port": 8080}, {"port": 80}],
                            "ports": [{"port": 443, "$patch": "delete"}]}}),
            vec![8080, 80],
        ),
    ];
    for (name, original, patch, want) in cases {
        let got = smp(&original, &patch);
        assert_no_directives(&got);
        let ports: Vec<i64> = got["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["port"].as_i64().unwrap())
            .collect();
        assert_eq!(ports, want, "{name}");
    }
    let patched = smp(
        &svc,
        &json!({"spec": {"$setElementOrder/ports": [{"port": 443}, {"port": 80}, {"port": 8080}],
        "ports": [{"port": 80, "name": "web"}]}}),
    );
    assert_eq!(
        patched["spec"]["ports"][1],
        json!({"port": 80, "name": "web"})
    );

    let fin = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
    let got = smp(
        &fin,
        &json!({"metadata": {"$setElementOrder/finalizers": ["c", "a", "d"], "finalizers": ["d"],
        "$deleteFromPrimitiveList/finalizers": ["b"]}}),
    );
    assert_eq!(got, json!({"metadata": {"finalizers": ["c", "a", "d"]}}));
}

/// Cases from Kubernetes' own strategic merge tests (3-way patch against a drifted live object).
#[test]
fn kubernetes_merging_list_cases() {
    let list = |v: Value| json!({"spec": {"containers": v}});
    // (name, current, patch, result)
    let cases = [
        (
            "add map and delete map",
            json!([{"name": "1"}, {"name": "2", "other": "b"}, {"name": "4", "other": "c"}]),
            json!({"$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
                   "containers": [{"name": "3"}, {"name": "1", "$patch": "delete"}]}),
            json!([{"name": "2", "other": "b"}, {"name": "4", "other": "c"}, {"name": "3"}]),
        ),
        (
            "add map and delete map with conflict",
            json!([{"name": "1", "other": "a"}, {"name": "4", "other": "c"}]),
            json!({"$setElementOrder/containers": [{"name": "2"}, {"name": "3"}],
                   "containers": [{"name": "2"}, {"name": "3"}, {"name": "1", "$patch": "delete"}]}),
            json!([{"name": "4", "other": "c"}, {"name": "2"}, {"name": "3"}]),
        ),
        (
            "delete missing map",
            json!([{"name": "3", "other": "a"}]),
            json!({"$setElementOrder/containers": [{"name": "2"}],
                   "containers": [{"name": "2"}, {"name": "1", "$patch": "delete"}]}),
            json!([{"name": "2"}, {"name": "3", "other": "a"}]),
        ),
        (
            "de-duplicate",
            json!([{"name": "1"}, {"name": "1"}]),
            json!({"$setElementOrder/containers": [{"name": "1"}], "containers": [{"$patch": "delete", "name": "1"}, {"name": "1"}]}),
            json!([{"name": "1"}]),
        ),
        (
            "field deleted in one item",
            json!([{"name": "1", "value": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}]),
            json!({"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}], "containers": [{"name": "1", "value": null}]}),
            json!([{"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}]),
        ),
    ];
    for (name, current, patch, want) in cases {
        let got = smp(&list(current), &json!({"spec": patch}));
        assert_eq!(got, list(want), "{name}");
    }
}

/// Patches as `kubectl apply` computes them (3-way: last-applied, new config, live).
#[test]
fn kubectl_apply_three_way_patches() {
    // Live Deployment: server defaults, a label and a container env var kubectl applied
    // earlier, plus fields nobody applied (status, uid).
    let live = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "uid": "u1", "labels": {"app": "web", "tier": "fe"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{old}", "deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [
                    {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log",
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 8080, "protocol": "TCP"}]},
                    {"name": "side", "image": "side:1", "imagePullPolicy": "IfNotPresent"}
                ],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}}},
        "status": {"replicas": 2}
    });

    // New config drops the sidecar, env B, the tier label and replicas; bumps the image.
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{new}"}, "labels": {"tier": null}},
        "spec": {"replicas": null, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [
                {"$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "B"}], "image": "app:2", "name": "app"},
                {"$patch": "delete", "name": "side"}
            ]}}}
    });
    let got = smp(&live, &patch);
    assert_no_directives(&got);
    let mut want = live.clone();
    want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("{new}");
    want["metadata"]["labels"] = json!({"app": "web"});
    want["spec"]
        .as_object_mut()
        .unwrap()
        .shift_remove("replicas");
    let app = &mut want["spec"]["template"]["spec"]["containers"];
    *app = json!([app[0].clone()]);
    app[0]["image"] = json!("app:2");
    app[0]["env"] = json!([{"name": "A", "value": "1"}]);
    assert_eq!(got, want);

    // Next apply inserts a container between two and a port, and switches the strategy
    // to Recreate (kubectl sends $retainKeys for the strategy).
    let live2 = deployment(
        json!([{"name": "a", "image": "a:1"}, {"name": "c", "image": "c:1", "ports": [{"containerPort": 80}]}]),
    );
    let mut live2 = live2;
    live2["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
    let patch2 = json!({"spec": {
    "strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null},
    "template": {"spec": {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "containers": [
            {"name": "b", "image": "b:1"},
            {"$setElementOrder/ports": [{"containerPort": 443}, {"containerPort": 80}], "name": "c", "ports": [{"containerPort": 443}]}
        ]}}}});
    let got2 = smp(&live2, &patch2);
    assert_no_directives(&got2);
    assert_eq!(got2["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(
        got2["spec"]["template"]["spec"]["containers"],
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"},
               {"name": "c", "image": "c:1", "ports": [{"containerPort": 443}, {"containerPort": 80}]}])
    );
    assert_eq!(got2["spec"]["replicas"], 1);
}

#[test]
fn bad_patches_are_rejected_without_panics() {
    let original = pod(two_containers());
    // (name, patch, expected HTTP code)
    let cases = [
        (
            "unknown $patch",
            json!({"spec": {"$patch": "explode"}}),
            400,
        ),
        (
            "unknown $patch in list item",
            json!({"spec": {"containers": [{"name": "app", "$patch": "nope"}]}}),
            400,
        ),
        (
            "list item without merge key",
            json!({"spec": {"containers": [{"image": "x"}]}}),
            400,
        ),
        (
            "container port without containerPort",
            json!({"spec": {"containers": [{"name": "app", "ports": [{"name": "http"}]}]}}),
            400,
        ),
        (
            "delete without merge key",
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            400,
        ),
        (
            "retainKeys not a list",
            json!({"spec": {"$retainKeys": "x"}}),
            400,
        ),
        (
            "patch sets a field retainKeys omits",
            json!({"spec": {"$retainKeys": ["a"], "b": 1}}),
            400,
        ),
        (
            "setElementOrder not a list",
            json!({"spec": {"$setElementOrder/containers": {"name": "a"}}}),
            400,
        ),
        (
            "setElementOrder without field",
            json!({"spec": {"$setElementOrder": []}}),
            400,
        ),
        (
            "setElementOrder item without key",
            json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}}),
            400,
        ),
        (
            "patch order contradicts setElementOrder",
            json!({"spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
                "containers": [{"name": "side", "image": "s"}, {"name": "app", "image": "a"}]}}),
            400,
        ),
        (
            "deleteFromPrimitiveList not a list",
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
            400,
        ),
        (
            "deleteFromPrimitiveList without field",
            json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
            400,
        ),
        (
            "mixed item types",
            json!({"spec": {"containers": ["app"]}}),
            400,
        ),
        (
            "lists of lists",
            json!({"spec": {"containers": [["a"]]}}),
            422,
        ),
    ];
    for (name, patch, code) in cases {
        let err = strategic_merge(&original, &patch).expect_err(name);
        assert_eq!(err.clone().into_api_error().code, code, "{name}: {err}");
    }
    for body in ["", "{", "[1]", "\"s\"", "null", "{\"spec\": }"] {
        let err = apply_strategic_patch(&original, body.as_bytes()).expect_err(body);
        assert_eq!((err.code, err.reason), (400, "BadRequest"), "{body}");
    }
}

#[test]
fn odd_shapes_do_not_panic() {
    let shapes = [
        json!(null),
        json!(1),
        json!("s"),
        json!([]),
        json!({}),
        json!([[1]]),
        json!({"$patch": "delete"}),
    ];
    for original in &shapes {
        for patch in &shapes {
            let wrapped = json!({"spec": {"containers": patch, "ports": patch, "x": patch}, "metadata": {"finalizers": patch}});
            let _ = strategic_merge(original, patch);
            let _ = strategic_merge(
                &json!({"spec": {"containers": original, "ports": original}}),
                &wrapped,
            );
        }
    }
    assert_eq!(
        smp(&json!({"a": 1}), &json!({"$patch": "delete"})),
        json!({})
    );
    assert_eq!(
        smp(&json!({"a": 1}), &json!({"$patch": "replace", "b": 2})),
        json!({"b": 2})
    );
}

#[test]
fn long_lists_merge_in_linear_time() {
    let n = 20_000;
    let original = json!({"spec": {"containers":
        (0..n).map(|i| json!({"name": format!("c{i}"), "image": "x:1"})).collect::<Vec<_>>()}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": (0..n).rev().map(|i| json!({"name": format!("c{i}")})).collect::<Vec<_>>(),
        "containers": (0..n).rev().step_by(2).map(|i| json!({"name": format!("c{i}"), "image": "x:2"})).collect::<Vec<_>>(),
    }});
    let started = std::time::Instant::now();
    let got = smp(&original, &patch);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let list = got["spec"]["containers"].as_array().unwrap();
    assert_eq!(list.len(), n);
    assert_eq!(
        list[0],
        json!({"name": format!("c{}", n - 1), "image": "x:2"})
    );
    assert_eq!(list[n - 1], json!({"name": "c0", "image": "x:1"}));
}

#[test]
fn primitive_lists_dedupe_and_compare_numbers_by_value() {
    let got = smp(
        &json!({"spec": {"podCIDRs": ["10.0.0.0/24", "10.0.0.0/24"]}, "metadata": {"finalizers": ["a"]}}),
        &json!({"spec": {"podCIDRs": ["10.0.1.0/24"]},
                "metadata": {"finalizers": ["a", "b"], "$deleteFromPrimitiveList/finalizers": ["zz"]}}),
    );
    // Deduplicated; a value the server never had goes first, as in Kubernetes.
    assert_eq!(
        got["spec"]["podCIDRs"],
        json!(["10.0.1.0/24", "10.0.0.0/24"])
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["a", "b"]));
    let nums = smp(
        &json!({"metadata": {"finalizers": [1, 2]}}),
        &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [1.0]}}),
    );
    assert_eq!(nums["metadata"]["finalizers"], json!([2]));
}
