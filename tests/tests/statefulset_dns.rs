//! A StatefulSet's stable network identity on a real node: the pods of a 2-replica set
//! governed by a headless Service are found by `<pod>.<service>.<namespace>` and by their
//! full names
//! from another pod, the headless name answers both, and a deleted member comes back
//! under the same name, which then answers the new pod's address.

use std::net::Ipv4Addr;
use std::time::Duration;

use skiff_e2e::dns::{exec, lookup_shows, tiny_upstream};
use skiff_e2e::workload::{apply, json, wait_ready_pods};
use skiff_e2e::{Backend, Cluster, can_run_nodes, eventually};

const NODE: &str = "e2e-node-stsdns";
const N: u8 = 92;

const MANIFESTS: &str = r#"apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: sts-dns-client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox:1.36, imagePullPolicy: Never, command: ["sleep", "3600"]}
"#;

/// The pod's (uid, IP) once it is Ready.
fn ready_pod(c: &Cluster, name: &str) -> (String, String) {
    let p = json(c, &["get", "pod", name]);
    (
        p["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        p["status"]["podIP"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn statefulset_members_resolve_by_stable_name_through_their_headless_service() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    // Nothing here is outside the cluster; the upstream only keeps the machine's own
    // resolvers out of the test.
    let upstream = tiny_upstream(&[("outside.test.", Ipv4Addr::new(192, 0, 2, 44))]);
    let cidr = Cluster::node_pod_cidr(N);
    let gw = format!("{}.1", cidr.trim_end_matches(".0/24"));
    let c = Cluster::start(Backend::Embedded).unwrap();
    let node = c
        .start_node_with_args(
            NODE,
            N,
            &["--dns-upstream", &upstream, "--cluster-dns", &gw],
        )
        .unwrap();
    apply(&c, MANIFESTS);
    wait_ready_pods(&c, "app=web", 2, 120);
    wait_ready_pods(&c, "app=sts-dns-client", 1, 60);

    let (uid0, ip0) = ready_pod(&c, "web-0");
    let (_, ip1) = ready_pod(&c, "web-1");
    assert!(!ip0.is_empty() && !ip1.is_empty() && ip0 != ip1);
    // The controller gave each member its hostname and the Service as its subdomain.
    assert_eq!(exec(&c, "web-1", &["hostname"]).trim(), "web-1");

    // busybox's nslookup sends a dotted name as it is, without the search path, so the
    // pod names its namespace (a libc resolver's search path turns `web-0.nginx` into the
    // same full name).
    for name in [
        "web-0.nginx.default",
        "web-0.nginx.default.svc.cluster.local",
    ] {
        let out = lookup_shows(&c, "client", &[name], &[&format!("Address: {ip0}")]);
        assert!(
            !out.contains(&ip1),
            "{name} answered web-1's address too:\n{out}"
        );
    }
    lookup_shows(
        &c,
        "client",
        &["web-1.nginx.default"],
        &[&format!("Address: {ip1}")],
    );
    lookup_shows(
        &c,
        "client",
        &["nginx.default.svc.cluster.local"],
        &[&format!("Address: {ip0}"), &format!("Address: {ip1}")],
    );
    // A name no member holds.
    let out = exec(
        &c,
        "client",
        &["nslookup", "web-2.nginx.default.svc.cluster.local"],
    );
    assert!(
        out.contains("NXDOMAIN") || out.contains("can't find"),
        "{out}"
    );

    // web-0 deleted: the controller makes it again under the same name, and the name
    // follows the new pod.
    let del = c.kubectl(&["delete", "pod", "web-0", "--wait=false"]);
    assert!(del.status.success(), "{del:?}");
    let (uid, ip) = eventually(Duration::from_secs(120), || {
        let p = c.pod_json("web-0")?;
        let ready = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let uid = p["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (ready && !uid.is_empty() && uid != uid0 && p["metadata"]["deletionTimestamp"].is_null())
            .then(|| ready_pod(&c, "web-0"))
    })
    .expect("web-0 made again and Ready");
    assert_ne!(uid, uid0);
    lookup_shows(
        &c,
        "client",
        &["web-0.nginx.default.svc.cluster.local"],
        &[&format!("Address: {ip}")],
    );
    drop(node);
}
