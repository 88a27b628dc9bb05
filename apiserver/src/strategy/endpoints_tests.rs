//! Tests for the Endpoints and EndpointSlice strategies.

use super::*;

fn slice(body: Value) -> Value {
    let mut v = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"}});
    for (k, val) in body.as_object().unwrap() {
        v[k] = val.clone();
    }
    EndpointSliceStrategy.default(&mut v);
    v
}

fn endpoints(subsets: Value) -> Value {
    let mut v = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "subsets": subsets});
    EndpointsStrategy.default(&mut v);
    v
}

fn fields(causes: &[Cause]) -> Vec<&str> {
    causes.iter().map(|c| c.field.as_str()).collect()
}

#[test]
fn slice_ports_default_to_tcp_and_an_empty_name() {
    let es = slice(json!({"addressType": "IPv4", "ports": [{"port": 80}], "endpoints": []}));
    assert_eq!(
        es["ports"][0],
        json!({"name": "", "port": 80, "protocol": "TCP"})
    );
    assert!(EndpointSliceStrategy.validate(&es).is_empty());
}

#[test]
fn slice_address_type_is_required_supported_and_immutable() {
    let none = slice(json!({"endpoints": []}));
    let causes = EndpointSliceStrategy.validate(&none);
    assert_eq!(fields(&causes), ["addressType"]);
    assert_eq!(causes[0].message, "Required value");

    let ip = slice(json!({"addressType": "IP", "endpoints": []}));
    assert_eq!(
        EndpointSliceStrategy.validate(&ip)[0].message,
        "Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
    );

    let v4 = slice(json!({"addressType": "IPv4", "endpoints": []}));
    let v6 = slice(json!({"addressType": "IPv6", "endpoints": []}));
    let causes = EndpointSliceStrategy.validate_update(&v6, &v4);
    assert_eq!(fields(&causes), ["addressType"]);
    assert_eq!(
        causes[0].message,
        "Invalid value: \"IPv6\": field is immutable"
    );
    assert!(EndpointSliceStrategy.validate_update(&v4, &v4).is_empty());
}

#[test]
fn slice_addresses_must_fit_the_type_and_not_be_special() {
    let es = slice(json!({"addressType": "IPv4", "endpoints": [
        {"addresses": ["10.0.0.1"]},
        {"addresses": ["fd00::1"]},
        {"addresses": ["127.0.0.1"]},
        {"addresses": []},
        {"addresses": ["169.254.1.1", "010.000.000.001"]},
    ]}));
    let causes = EndpointSliceStrategy.validate(&es);
    assert_eq!(
        fields(&causes),
        [
            "endpoints[1].addresses[0]",
            "endpoints[2].addresses[0]",
            "endpoints[3].addresses",
            "endpoints[4].addresses[0]",
        ]
    );
    assert_eq!(
        causes[0].message,
        "Invalid value: \"fd00::1\": must be a valid IPv4 address"
    );
    assert_eq!(
        causes[1].message,
        "Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
    );
    assert_eq!(
        causes[2].message,
        "Required value: must contain at least 1 address"
    );

    let v6 = slice(json!({"addressType": "IPv6", "endpoints": [
        {"addresses": ["fd00::1"]}, {"addresses": ["10.0.0.1"]}, {"addresses": ["fe80::1"]},
    ]}));
    assert_eq!(
        fields(&EndpointSliceStrategy.validate(&v6)),
        ["endpoints[1].addresses[0]", "endpoints[2].addresses[0]"]
    );

    let fqdn = slice(json!({"addressType": "FQDN", "endpoints": [
        {"addresses": ["db.example.com."]}, {"addresses": ["localhost"]}, {"addresses": ["Bad_Name.com"]},
    ]}));
    let causes = EndpointSliceStrategy.validate(&fqdn);
    assert_eq!(
        fields(&causes),
        ["endpoints[1].addresses[0]", "endpoints[2].addresses[0]"]
    );
    assert_eq!(
        causes[0].message,
        "Invalid value: \"localhost\": should be a domain with at least two segments separated by dots"
    );
}

#[test]
fn slice_endpoint_fields_and_limits() {
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"addresses": [format!("10.0.{}.{}", i / 250, i % 250 + 1)]}))
        .collect();
    let es = slice(json!({"addressType": "IPv4", "endpoints": many}));
    let causes = EndpointSliceStrategy.validate(&es);
    assert_eq!(fields(&causes), ["endpoints"]);
    assert_eq!(causes[0].reason, "FieldValueTooMany");
    assert_eq!(
        causes[0].message,
        "Too many: 1001: must have at most 1000 items"
    );

    let es = slice(json!({"addressType": "IPv4", "endpoints": [{
        "addresses": ["10.0.0.1"], "nodeName": "Node_1", "hostname": "web.0",
        "hints": {"forZones": [{"name": "a"}, {"name": "a"}], "forNodes": [{"name": "n1"}]},
    }]}));
    assert_eq!(
        fields(&EndpointSliceStrategy.validate(&es)),
        [
            "endpoints[0].nodeName",
            "endpoints[0].hostname",
            "endpoints[0].hints.forZones[1].name",
        ]
    );
}

#[test]
fn slice_ports_are_unique_with_known_protocols() {
    let es = slice(json!({"addressType": "IPv4", "endpoints": [], "ports": [
        {"name": "http", "port": 80},
        {"name": "http", "port": 81},
        {"port": 82},
        {"port": 83, "protocol": "ICMP"},
        {"name": "Web", "port": 84, "appProtocol": "not valid!"},
    ]}));
    let causes = EndpointSliceStrategy.validate(&es);
    assert_eq!(
        fields(&causes),
        [
            "ports[1].name",
            "ports[3].name",
            "ports[3].protocol",
            "ports[4].name",
            "ports[4].appProtocol",
        ]
    );
    assert_eq!(causes[0].message, "Duplicate value: \"http\"");
    assert_eq!(causes[1].message, "Duplicate value: \"\"");
    assert_eq!(
        causes[2].message,
        "Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
    );
}

#[test]
fn endpoints_defaults_and_validation() {
    let ep = endpoints(json!([{"addresses": [{"ip": "10.0.0.1", "nodeName": "n1"}],
        "ports": [{"port": 80}]}]));
    assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
    assert!(EndpointsStrategy.validate(&ep).is_empty());

    let ep = endpoints(json!([
        {"ports": [{"port": 80}]},
        {"addresses": [{"ip": "nope"}], "notReadyAddresses": [{"ip": "0.0.0.0", "hostname": "A"}],
         "ports": [{"port": 80}, {"name": "dns", "port": 0, "protocol": "ICMP"}]},
    ]));
    let causes = EndpointsStrategy.validate(&ep);
    assert_eq!(
        fields(&causes),
        [
            "subsets[0]",
            "subsets[1].addresses[0].ip",
            "subsets[1].addresses[0].ip",
            "subsets[1].notReadyAddresses[0].hostname",
            "subsets[1].notReadyAddresses[0].ip",
            "subsets[1].ports[0].name",
            "subsets[1].ports[1].port",
            "subsets[1].ports[1].protocol",
        ]
    );
    assert_eq!(
        causes[0].message,
        "Required value: must specify `addresses` or `notReadyAddresses`"
    );
    assert_eq!(
        causes[4].message,
        "Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)"
    );
}

#[test]
fn endpoints_rows() {
    let now: Timestamp = "2024-01-01T00:00:05Z".parse().unwrap();
    let ep = endpoints(
        json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
            "ports": [{"port": 8080}]}]),
    );
    assert_eq!(
        EndpointsStrategy.cells(&ep)[1],
        json!("10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more...")
    );
    let v6 = endpoints(json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]));
    assert_eq!(endpoints_cells(&v6, now)[1], json!("[fd00::1]:80"));
    let empty = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"}});
    assert_eq!(endpoints_cells(&empty, now)[1], json!("<none>"));
    let not_ready = endpoints(json!([{"notReadyAddresses": [{"ip": "10.0.0.1"}]}]));
    assert_eq!(endpoints_cells(&not_ready, now)[1], json!(""));
}

#[test]
fn endpointslice_rows() {
    let now: Timestamp = "2024-01-01T00:00:05Z".parse().unwrap();
    let es = slice(
        json!({"addressType": "IPv4", "ports": [{"port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}),
    );
    assert_eq!(
        endpointslice_cells(&es, now),
        vec![
            json!("web-abc"),
            json!("IPv4"),
            json!("8080"),
            json!("10.0.0.1,10.0.0.2"),
            json!("5s")
        ]
    );
    let bare = slice(json!({"addressType": "IPv4", "endpoints": []}));
    assert_eq!(
        endpointslice_cells(&bare, now)[2..4],
        [json!("<unset>"), json!("<unset>")]
    );
    assert_eq!(
        EndpointSliceStrategy
            .columns()
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>(),
        ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    );
}
