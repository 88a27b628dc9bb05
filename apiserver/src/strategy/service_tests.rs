//! Tests for the Service strategy.

use super::*;

fn service(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec})
}

fn defaulted(mut v: Value) -> Value {
    ServiceStrategy.default(&mut v);
    v
}

#[test]
fn defaults_match_kubernetes() {
    let s = defaulted(service(
        json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}),
    ));
    let spec = &s["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert!(
        spec.get("ipFamilies").is_none() && spec.get("ipFamilyPolicy").is_none(),
        "the families come from the allocator, which knows the service CIDRs"
    );
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert!(spec.get("externalTrafficPolicy").is_none());
    assert!(
        spec.get("clusterIP").is_none(),
        "allocation is not defaulting"
    );
    assert!(ServiceStrategy.validate(&s).is_empty());
    let mut created = s.clone();
    ServiceStrategy.prepare_create(&mut created);
    assert_eq!(created["status"], json!({"loadBalancer": {}}));

    let np = defaulted(service(
        json!({"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}),
    ));
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(np["spec"]["ports"][0]["targetPort"], "http");
}

#[test]
fn validation_rules() {
    let s = defaulted(service(json!({"type": "Magic", "ports": []})));
    let causes = ServiceStrategy.validate(&s);
    let f: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(f, ["spec.type", "spec.ports"]);
    assert_eq!(
        causes[0].message,
        "Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
    );
    assert_eq!(causes[1].message, "Required value");

    let bad_ip = defaulted(service(
        json!({"clusterIP": "10.96.0.300", "ports": [{"port": 80}]}),
    ));
    let causes = ServiceStrategy.validate(&bad_ip);
    assert_eq!(causes[0].field, "spec.clusterIPs[0]");
    assert_eq!(
        causes[0].message,
        "Invalid value: \"10.96.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
    );

    let headless = defaulted(service(
        json!({"clusterIP": "None", "selector": {"app": "x"}}),
    ));
    assert!(ServiceStrategy.validate(&headless).is_empty());

    let dup = defaulted(service(
        json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}, {"port": 70000, "name": "c"}]}),
    ));
    let causes = ServiceStrategy.validate(&dup);
    let f: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
    assert!(f.contains(&"spec.ports[1]"), "{f:?}");
    assert!(f.contains(&"spec.ports[2].port"), "{f:?}");

    let unnamed = defaulted(service(json!({"ports": [{"port": 80}, {"port": 81}]})));
    let f: Vec<String> = ServiceStrategy
        .validate(&unnamed)
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(f, ["spec.ports[0].name", "spec.ports[1].name"]);

    let bad_selector = defaulted(service(
        json!({"ports": [{"port": 80}], "selector": {"app": "bad value"}}),
    ));
    let f: Vec<String> = ServiceStrategy
        .validate(&bad_selector)
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(f, ["spec.selector"]);
}

#[test]
fn cluster_ip_is_kept_and_fixed() {
    let mut old = service(json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}));
    ServiceStrategy.default(&mut old);
    assert_eq!(old["spec"]["clusterIPs"], json!(["10.96.0.10"]));
    let mut new = service(json!({"ports": [{"port": 80}]}));
    ServiceStrategy.default(&mut new);
    ServiceStrategy.prepare_update(&mut new, &old);
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");
    assert!(ServiceStrategy.validate_update(&new, &old).is_empty());
    new["spec"]["clusterIP"] = json!("10.96.0.11");
    new["spec"]["clusterIPs"] = json!(["10.96.0.11"]);
    let causes = ServiceStrategy.validate_update(&new, &old);
    assert_eq!(causes[0].field, "spec.clusterIPs[0]");
    assert_eq!(
        causes[0].message,
        "Invalid value: [\"10.96.0.11\"]: may not change once set"
    );
}

#[test]
fn service_rows() {
    let now: Timestamp = "2024-01-01T00:00:05Z".parse().unwrap();
    let s = defaulted(service(
        json!({"type": "NodePort", "clusterIP": "10.96.0.5", "selector": {"app": "web"},
        "ports": [{"port": 80, "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}),
    ));
    assert_eq!(
        service_cells(&s, now),
        vec![
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.5"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("5s"),
            json!("app=web")
        ]
    );
    let lb = defaulted(service(
        json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
    ));
    assert_eq!(
        service_cells(&lb, now)[2..4],
        [json!("<none>"), json!("<pending>")]
    );
}

#[test]
fn type_changes_drop_what_the_new_type_does_not_use() {
    let old = defaulted(service(
        json!({"type": "NodePort", "clusterIP": "10.96.0.7",
        "clusterIPs": ["10.96.0.7"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
        "ports": [{"port": 80, "nodePort": 30080}]}),
    ));
    let mut to_cluster_ip = old.clone();
    to_cluster_ip["spec"]["type"] = json!("ClusterIP");
    ServiceStrategy.prepare_update(&mut to_cluster_ip, &old);
    assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
    assert_eq!(to_cluster_ip["spec"]["clusterIP"], "10.96.0.7");
    assert!(ServiceStrategy.validate(&to_cluster_ip).is_empty());

    let mut to_external = old.clone();
    to_external["spec"]["type"] = json!("ExternalName");
    to_external["spec"]["externalName"] = json!("db.example.com");
    ServiceStrategy.prepare_update(&mut to_external, &old);
    assert!(to_external["spec"].get("clusterIP").is_none());
    assert!(to_external["spec"].get("ipFamilies").is_none());
    assert!(ServiceStrategy.validate(&to_external).is_empty());

    let set_ip = defaulted(service(
        json!({"type": "ExternalName", "externalName": "db.example.com",
        "clusterIP": "10.96.0.8"}),
    ));
    let causes = ServiceStrategy.validate(&set_ip);
    assert_eq!(causes[0].field, "spec.clusterIPs");
    assert_eq!(
        causes[0].message,
        "Forbidden: may not be set for type 'ExternalName'"
    );

    let headless_np = defaulted(service(json!({"type": "NodePort", "clusterIP": "None",
        "ports": [{"port": 80}]})));
    let causes = ServiceStrategy.validate(&headless_np);
    assert_eq!(
        causes[0].message,
        "Invalid value: \"None\": may not be set to 'None' for NodePort services"
    );
}

#[test]
fn external_name_needs_a_dns_name_and_no_ports() {
    let ok = defaulted(service(
        json!({"type": "ExternalName", "externalName": "db.example.com."}),
    ));
    assert!(ServiceStrategy.validate(&ok).is_empty());
    let missing = defaulted(service(json!({"type": "ExternalName"})));
    assert_eq!(
        ServiceStrategy.validate(&missing)[0].field,
        "spec.externalName"
    );
    let bad = defaulted(service(
        json!({"type": "ExternalName", "externalName": "not a name"}),
    ));
    assert_eq!(ServiceStrategy.validate(&bad)[0].field, "spec.externalName");
}
