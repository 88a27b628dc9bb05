//! Cluster DNS from a test's point of view: a resolver on loopback to be the cluster DNS's
//! upstream (so no test ever asks the machine's own resolvers), and `nslookup` inside a pod.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use crate::{Cluster, eventually};

/// A resolver on loopback: each of `known` (name with its trailing dot, address) answers
/// its A record, every other name is NXDOMAIN. Runs until the test process ends; returns
/// its `address:port`.
pub fn tiny_upstream(known: &[(&str, Ipv4Addr)]) -> String {
    let known: Vec<(String, Ipv4Addr)> = known
        .iter()
        .map(|(n, ip)| (n.to_ascii_lowercase(), *ip))
        .collect();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = q.queries().first().cloned() else {
                continue;
            };
            let mut r = Message::new();
            r.set_id(q.id())
                .set_message_type(MessageType::Response)
                .set_recursion_available(true)
                .add_query(query.clone());
            let name = query.name().to_ascii().to_ascii_lowercase();
            match known.iter().find(|(n, _)| *n == name).map(|(_, ip)| *ip) {
                Some(ip) if query.query_type() == RecordType::A => {
                    r.add_answer(Record::from_rdata(
                        query.name().clone(),
                        60,
                        RData::A(A(ip)),
                    ));
                }
                Some(_) => {}
                None => {
                    r.set_response_code(ResponseCode::NXDomain);
                }
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from);
        }
    });
    addr
}

/// `kubectl exec POD -- CMD`: its stdout and stderr together.
pub fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    let out = c.kubectl(&args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `nslookup ARGS` in `pod` once its output shows every one of `want` (the DNS index
/// follows the API within moments); panics with the last output after 20 s.
pub fn lookup_shows(c: &Cluster, pod: &str, args: &[&str], want: &[&str]) -> String {
    let mut cmd = vec!["nslookup"];
    cmd.extend_from_slice(args);
    let mut last = String::new();
    let seen = eventually(Duration::from_secs(20), || {
        last = exec(c, pod, &cmd);
        want.iter().all(|w| last.contains(w)).then_some(())
    });
    assert!(
        seen.is_some(),
        "nslookup {args:?} never showed {want:?}:\n{last}"
    );
    last
}
