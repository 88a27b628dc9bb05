//! The cluster DNS server on a loopback port: cluster records from in-memory objects,
//! asked over UDP and TCP, and outside names forwarded to a tiny resolver the test runs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use skiff_proxy::dns::upstream::exchange;
use skiff_proxy::dns::{ClusterDns, DnsSettings, Index, Objects};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn cluster() -> (Vec<Service>, Vec<EndpointSlice>, Vec<Pod>) {
    let services = vec![
        obj(
            serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 81}]}}),
        ),
        obj(
            serde_json::json!({"metadata": {"name": "db", "namespace": "prod"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
        ),
        obj(
            serde_json::json!({"metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "outside.example"}}),
        ),
        obj(
            serde_json::json!({"metadata": {"name": "empty", "namespace": "default"},
            "spec": {"clusterIP": "None"}}),
        ),
    ];
    let slices = vec![obj(serde_json::json!({
    "metadata": {"name": "db-abc", "namespace": "prod", "labels": {"kubernetes.io/service-name": "db"}},
    "addressType": "IPv4",
    "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
    "endpoints": [
        {"addresses": ["10.244.0.5"], "hostname": "db-0", "conditions": {"ready": true}},
        {"addresses": ["10.244.0.6"], "conditions": {"ready": true}},
        {"addresses": ["10.244.0.7"], "conditions": {"ready": false}}
    ]}))];
    let pods = vec![obj(serde_json::json!({
        "metadata": {"name": "p", "namespace": "default"},
        "status": {"phase": "Running", "podIP": "10.244.0.9", "podIPs": [{"ip": "10.244.0.9"}]}}))];
    (services, slices, pods)
}

/// A resolver on loopback that answers `outside.example.` with 192.0.2.7 and everything
/// else with NXDOMAIN, counting the queries it gets.
async fn tiny_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut r = Message::new();
            r.set_id(q.id()).set_message_type(MessageType::Response);
            r.add_queries(q.queries().to_vec());
            let name = q.queries()[0].name().clone();
            if name.to_ascii().eq_ignore_ascii_case("outside.example.") {
                r.add_answer(Record::from_rdata(
                    name,
                    300,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
                ));
            } else {
                r.set_response_code(ResponseCode::NXDomain);
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    (addr, count)
}

async fn start(upstream: Option<SocketAddr>) -> SocketAddr {
    let mut settings = DnsSettings::new("cluster.local", "127.0.0.1:0".parse().unwrap());
    settings.upstreams = Some(upstream.into_iter().collect());
    let dns = ClusterDns::bind(&settings).unwrap();
    let (s, e, p) = cluster();
    let (s, e, p): (Vec<&Service>, Vec<&EndpointSlice>, Vec<&Pod>) =
        (s.iter().collect(), e.iter().collect(), p.iter().collect());
    let zone = dns.zone().clone();
    dns.index().set(Index::build(
        &zone,
        Objects {
            services: &s,
            slices: &e,
            pods: &p,
        },
        7,
    ));
    let addr = dns.local_addr();
    tokio::spawn(dns.serve(std::future::pending()));
    addr
}

async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let q = Query::query(Name::from_ascii(name).unwrap(), rtype);
    exchange(&[server], &q, Duration::from_secs(2))
        .await
        .unwrap()
        .message
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn cluster_records_as_the_specification_lays_them_out() {
    let dns = start(None).await;
    let m = ask(dns, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.authoritative());
    assert_eq!(addrs(&m), vec!["10.96.0.20".parse::<IpAddr>().unwrap()]);
    assert_eq!(m.answers()[0].ttl(), 5);
    // Case does not matter.
    let m = ask(dns, "WEB.Default.SVC.cluster.LOCAL.", RecordType::A).await;
    assert_eq!(addrs(&m), vec!["10.96.0.20".parse::<IpAddr>().unwrap()]);
    // SRV for the named port only, the target's address in the additional section.
    let m = ask(
        dns,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    let RData::SRV(srv) = m.answers()[0].data() else {
        panic!("{m:?}")
    };
    assert_eq!(
        (srv.port(), srv.target().to_ascii().as_str()),
        (80, "web.default.svc.cluster.local.")
    );
    assert!(
        m.additionals()
            .iter()
            .any(|r| matches!(r.data(), RData::A(a) if a.0 == Ipv4Addr::new(10, 96, 0, 20)))
    );
    // PTR of the cluster IP.
    let m = ask(dns, "20.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    let RData::PTR(ptr) = m.answers()[0].data() else {
        panic!("{m:?}")
    };
    assert_eq!(ptr.0.to_ascii(), "web.default.svc.cluster.local.");
    // Headless: every ready address, the hostname record, SRV per endpoint.
    let m = ask(dns, "db.prod.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        addrs(&m),
        vec![
            "10.244.0.5".parse::<IpAddr>().unwrap(),
            "10.244.0.6".parse().unwrap()
        ]
    );
    let m = ask(dns, "db-0.db.prod.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addrs(&m), vec!["10.244.0.5".parse::<IpAddr>().unwrap()]);
    let m = ask(dns, "_pg._tcp.db.prod.svc.cluster.local.", RecordType::SRV).await;
    let mut targets: Vec<String> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::SRV(s) => Some(format!("{} {}", s.port(), s.target())),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "5432 10-244-0-6.db.prod.svc.cluster.local.",
            "5432 db-0.db.prod.svc.cluster.local."
        ]
    );
    let m = ask(dns, "5.0.244.10.in-addr.arpa.", RecordType::PTR).await;
    let RData::PTR(ptr) = m.answers()[0].data() else {
        panic!("{m:?}")
    };
    assert_eq!(ptr.0.to_ascii(), "db-0.db.prod.svc.cluster.local.");
    // Pod records, only for pods that exist.
    let m = ask(dns, "10-244-0-9.default.pod.cluster.local.", RecordType::A).await;
    assert_eq!(addrs(&m), vec!["10.244.0.9".parse::<IpAddr>().unwrap()]);
    let m = ask(dns, "10-244-0-99.default.pod.cluster.local.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    // The schema version.
    let m = ask(dns, "dns-version.cluster.local.", RecordType::TXT).await;
    let RData::TXT(txt) = m.answers()[0].data() else {
        panic!("{m:?}")
    };
    assert_eq!(txt.to_string(), "1.1.0");
}

#[tokio::test]
async fn nxdomain_and_nodata_carry_the_soa() {
    let dns = start(None).await;
    for (name, rtype, rcode) in [
        (
            "missing.default.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "empty.default.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "web.default.svc.cluster.local.",
            RecordType::AAAA,
            ResponseCode::NoError,
        ),
        (
            "default.svc.cluster.local.",
            RecordType::A,
            ResponseCode::NoError,
        ),
        ("svc.cluster.local.", RecordType::A, ResponseCode::NoError),
    ] {
        let m = ask(dns, name, rtype).await;
        assert_eq!(m.response_code(), rcode, "{name} {rtype}");
        assert!(m.answers().is_empty(), "{name}");
        let soa = m
            .name_servers()
            .iter()
            .find(|r| r.record_type() == RecordType::SOA);
        assert_eq!(
            soa.map(|r| r.name().to_ascii()),
            Some("cluster.local.".to_string()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn tcp_answers_like_udp() {
    let dns = start(None).await;
    let mut q = Message::new();
    q.set_id(4242).add_query(Query::query(
        Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
        RecordType::A,
    ));
    let bytes = q.to_vec().unwrap();
    let mut s = tokio::net::TcpStream::connect(dns).await.unwrap();
    let len = u16::try_from(bytes.len()).unwrap().to_be_bytes();
    s.write_all(&[&len[..], &bytes].concat()).await.unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).await.unwrap();
    let m = Message::from_vec(&body).unwrap();
    assert_eq!(m.id(), 4242);
    assert_eq!(addrs(&m), vec!["10.96.0.20".parse::<IpAddr>().unwrap()]);
}

#[tokio::test]
async fn outside_names_go_upstream_once_and_then_come_from_the_cache() {
    let (up, count) = tiny_upstream().await;
    let dns = start(Some(up)).await;
    let m = ask(dns, "outside.example.", RecordType::A).await;
    assert_eq!(addrs(&m), vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
    assert!(m.answers()[0].ttl() <= 30, "capped at the cache's maximum");
    let m = ask(dns, "OUTSIDE.example.", RecordType::A).await;
    assert_eq!(addrs(&m), vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the second answer came from the cache"
    );
    let m = ask(dns, "nowhere.example.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    // An ExternalName is a CNAME followed to the outside name's address.
    let m = ask(dns, "ext.default.svc.cluster.local.", RecordType::A).await;
    assert!(
        matches!(m.answers()[0].data(), RData::CNAME(c) if c.0.to_ascii() == "outside.example."),
        "{m:?}"
    );
    assert_eq!(addrs(&m), vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
}

#[tokio::test]
async fn without_an_upstream_outside_names_fail_and_cluster_names_still_answer() {
    let dns = start(None).await;
    assert_eq!(
        ask(dns, "outside.example.", RecordType::A)
            .await
            .response_code(),
        ResponseCode::ServFail
    );
    let m = ask(dns, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
}
