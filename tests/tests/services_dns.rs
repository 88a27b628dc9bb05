//! Cluster DNS from inside a real pod: a busybox pod's `nslookup` of a Service by its short
//! name, `<svc>.<ns>` and full name, a headless Service's every ready address and its SRV
//! record, an ExternalName's CNAME, an outside name answered by a resolver the test runs
//! on loopback, a missing name's NXDOMAIN, and `dnsPolicy: None` with `dnsConfig`.
//!
//! The pods are given the node's DNS listen address (the pod bridge's gateway) directly;
//! with the proxy's DNAT of the kube-dns Service they reach the same server at 10.96.0.10.

use std::net::Ipv4Addr;

use skiff_e2e::dns::{exec, lookup_shows, tiny_upstream};
use skiff_e2e::workload::{apply, wait_ready_pods};
use skiff_e2e::{Backend, Cluster, can_run_nodes};

const NODE: &str = "e2e-node-dns";
const N: u8 = 23;

fn manifests(cidr_prefix: &str, gw: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  clusterIP: 10.96.7.7
  ports: [{{name: http, port: 80, protocol: TCP}}]
---
apiVersion: v1
kind: Service
metadata: {{name: db}}
spec:
  clusterIP: None
  ports: [{{name: pg, port: 5432}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  labels: {{kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{{name: pg, port: 5432, protocol: TCP}}]
endpoints:
- {{addresses: ["{cidr_prefix}.201"], hostname: db-0, conditions: {{ready: true}}}}
- {{addresses: ["{cidr_prefix}.202"], conditions: {{ready: true}}}}
- {{addresses: ["{cidr_prefix}.203"], conditions: {{ready: false}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: ext}}
spec: {{type: ExternalName, externalName: target.test}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, labels: {{app: dns-client}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: busybox:1.36, imagePullPolicy: Never, command: ["sleep", "3600"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: custom, labels: {{app: dns-client}}}}
spec:
  terminationGracePeriodSeconds: 1
  dnsPolicy: None
  dnsConfig:
    nameservers: ["{gw}"]
    searches: [default.svc.cluster.local, example.internal]
    options: [{{name: ndots, value: "2"}}, {{name: timeout, value: "1"}}]
  containers:
  - {{name: c, image: busybox:1.36, imagePullPolicy: Never, command: ["sleep", "3600"]}}
"#
    )
}

#[test]
fn pods_resolve_services_headless_srv_externalname_and_outside_names() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let upstream = tiny_upstream(&[
        ("outside.test.", Ipv4Addr::new(192, 0, 2, 44)),
        ("target.test.", Ipv4Addr::new(192, 0, 2, 55)),
    ]);
    let cidr = Cluster::node_pod_cidr(N);
    let prefix = cidr.trim_end_matches(".0/24").to_string();
    let gw = format!("{prefix}.1");
    let c = Cluster::start(Backend::Embedded).unwrap();
    let node = c
        .start_node_with_args(
            NODE,
            N,
            &["--dns-upstream", &upstream, "--cluster-dns", &gw],
        )
        .unwrap();
    apply(&c, &manifests(&prefix, &gw));
    wait_ready_pods(&c, "app=dns-client", 2, 90);

    let resolv = exec(&c, "client", &["cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains(&format!("nameserver {gw}"))
            && resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv.contains("options ndots:5"),
        "{resolv}"
    );

    // A ClusterIP Service by its short name, with its namespace, and in full.
    for name in ["web", "web.default", "web.default.svc.cluster.local"] {
        lookup_shows(&c, "client", &[name], &["10.96.7.7"]);
    }
    // Headless: every ready address, not the unready one.
    let out = lookup_shows(
        &c,
        "client",
        &["db.default.svc.cluster.local"],
        &[&format!("{prefix}.201"), &format!("{prefix}.202")],
    );
    assert!(!out.contains(&format!("{prefix}.203")), "{out}");
    lookup_shows(
        &c,
        "client",
        &["db-0.db.default.svc.cluster.local"],
        &[&format!("{prefix}.201")],
    );
    // SRV of the named port, one per endpoint.
    lookup_shows(
        &c,
        "client",
        &["-type=srv", "_pg._tcp.db.default.svc.cluster.local"],
        &[
            "5432 db-0.db.default.svc.cluster.local",
            &format!(
                "5432 {}.db.default.svc.cluster.local",
                format!("{prefix}.202").replace('.', "-")
            ),
        ],
    );
    lookup_shows(
        &c,
        "client",
        &["-type=srv", "_http._tcp.web.default.svc.cluster.local"],
        &["80 web.default.svc.cluster.local"],
    );
    // ExternalName: a CNAME, followed to the outside address.
    lookup_shows(
        &c,
        "client",
        &["ext.default.svc.cluster.local"],
        &["target.test", "192.0.2.55"],
    );
    // An outside name, from the test's upstream.
    lookup_shows(&c, "client", &["outside.test"], &["192.0.2.44"]);
    // A missing name.
    let out = exec(
        &c,
        "client",
        &["nslookup", "missing.default.svc.cluster.local"],
    );
    assert!(
        out.contains("NXDOMAIN") || out.contains("can't find"),
        "{out}"
    );
    assert!(!out.contains("Address: 10."), "{out}");

    // dnsPolicy None: only dnsConfig, and it works.
    let resolv = exec(&c, "custom", &["cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv,
        format!(
            "search default.svc.cluster.local example.internal\nnameserver {gw}\noptions ndots:2 timeout:1\n"
        )
    );
    lookup_shows(&c, "custom", &["web"], &["10.96.7.7"]);
    drop(node);
}
