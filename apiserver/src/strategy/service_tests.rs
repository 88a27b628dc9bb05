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
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
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
