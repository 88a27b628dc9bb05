//! The upstream resolvers names outside the cluster go to: which ones (the `--dns-upstream`
//! list, or the host's `resolv.conf` with a loopback stub such as systemd-resolved's
//! followed to its real servers, never ourselves), and the exchange with them over UDP,
//! retried over TCP when the answer is truncated.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::DnsError;

/// The host's resolver configuration.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of the real upstream servers behind its 127.0.0.53 stub.
pub const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// Parses `--dns-upstream`: comma-separated `ip` or `ip:port` (`[v6]:port`), port 53 by
/// default.
pub fn parse_upstreams(list: &str) -> Result<Vec<SocketAddr>, DnsError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let addr = match item.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => match item.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, 53),
                Err(_) => return Err(DnsError::BadUpstream(item.to_string())),
            },
        };
        out.push(addr);
    }
    if out.is_empty() {
        return Err(DnsError::BadUpstream(list.to_string()));
    }
    Ok(out)
}

/// The `nameserver` addresses of a resolv.conf text.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        // A scoped IPv6 address (`fe80::1%eth0`) is of no use from another namespace.
        .filter_map(|w| w.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The host's upstream resolvers from `resolv_conf` (the host's file); when every server
/// there is on loopback (a local stub), the servers of `stub_conf` (systemd-resolved's real
/// list) instead, if it has any. Addresses in `own` (this server's) are never upstreams.
pub fn host_upstreams(resolv_conf: &Path, stub_conf: &Path, own: &[SocketAddr]) -> Vec<SocketAddr> {
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|s| nameservers(&s))
            .unwrap_or_default()
    };
    let not_own = |a: &SocketAddr| !own.iter().any(|o| same_endpoint(*o, *a));
    let mut servers: Vec<SocketAddr> = read(resolv_conf).into_iter().filter(not_own).collect();
    if servers.iter().all(|a| a.ip().is_loopback()) {
        let real: Vec<SocketAddr> = read(stub_conf)
            .into_iter()
            .filter(not_own)
            .filter(|a| !a.ip().is_loopback())
            .collect();
        if !real.is_empty() {
            servers = real;
        }
    }
    servers
}

/// Whether `a` and `b` reach the same listener (a wildcard bind counts as every address).
fn same_endpoint(own: SocketAddr, other: SocketAddr) -> bool {
    own.port() == other.port() && (own.ip() == other.ip() || own.ip().is_unspecified())
}

/// One answer from an upstream resolver.
#[derive(Debug)]
pub struct Exchange {
    /// The response.
    pub message: Message,
    /// The server that answered.
    pub server: SocketAddr,
    /// How long it took.
    pub elapsed: Duration,
}

/// Asks `servers` in turn for `query` until one answers, each within `timeout`.
pub async fn exchange(
    servers: &[SocketAddr],
    query: &Query,
    timeout: Duration,
) -> Result<Exchange, DnsError> {
    let mut last = DnsError::NoUpstream;
    for server in servers {
        let start = Instant::now();
        match tokio::time::timeout(timeout, ask(*server, query)).await {
            Ok(Ok(message)) => {
                return Ok(Exchange {
                    message,
                    server: *server,
                    elapsed: start.elapsed(),
                });
            }
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = DnsError::UpstreamTimeout {
                    server: *server,
                    timeout,
                }
            }
        }
    }
    Err(last)
}

fn request(query: &Query) -> Message {
    let mut m = Message::new();
    m.set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    m.set_edns(edns);
    m
}

async fn ask(server: SocketAddr, query: &Query) -> Result<Message, DnsError> {
    let io = |source| DnsError::UpstreamIo { server, source };
    let req = request(query);
    let bytes = req.to_vec().map_err(|e| DnsError::Encode(e.to_string()))?;
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(bind).await.map_err(io)?;
    sock.connect(server).await.map_err(io)?;
    sock.send(&bytes).await.map_err(io)?;
    let mut buf = vec![0u8; 4096];
    let reply = loop {
        let n = sock.recv(&mut buf).await.map_err(io)?;
        // Anything but the answer to this id and question is stray: keep waiting.
        if let Ok(m) = Message::from_vec(&buf[..n])
            && m.id() == req.id()
            && m.message_type() == MessageType::Response
            && m.queries().first() == Some(query)
        {
            break m;
        }
    };
    if !reply.truncated() {
        return Ok(reply);
    }
    ask_tcp(server, &req, &bytes).await
}

async fn ask_tcp(server: SocketAddr, req: &Message, bytes: &[u8]) -> Result<Message, DnsError> {
    let io = |source| DnsError::UpstreamIo { server, source };
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let len = u16::try_from(bytes.len()).map_err(|_| DnsError::Encode("query too long".into()))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(io)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await.map_err(io)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body).await.map_err(io)?;
    let m = Message::from_vec(&body).map_err(|e| DnsError::Decode {
        server,
        reason: e.to_string(),
    })?;
    if m.id() != req.id() {
        return Err(DnsError::Decode {
            server,
            reason: "the answer carries another id".into(),
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_list_takes_ports_and_defaults_to_53() {
        let got = parse_upstreams("127.0.0.1:5353, 10.0.0.2,[::1]:54").unwrap();
        assert_eq!(
            got,
            vec![
                "127.0.0.1:5353".parse().unwrap(),
                "10.0.0.2:53".parse().unwrap(),
                "[::1]:54".parse().unwrap()
            ]
        );
        assert!(
            matches!(parse_upstreams("dns.example"), Err(DnsError::BadUpstream(s)) if s == "dns.example")
        );
        assert!(parse_upstreams(" , ").is_err());
    }

    #[test]
    fn a_loopback_stub_is_followed_to_its_real_servers() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("resolv.conf");
        let stub = tmp.path().join("stub.conf");
        std::fs::write(
            &host,
            "# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n",
        )
        .unwrap();
        std::fs::write(
            &stub,
            "nameserver 192.168.1.1\nnameserver fe80::1%eth0\nnameserver 1.1.1.1\n",
        )
        .unwrap();
        assert_eq!(
            host_upstreams(&host, &stub, &[]),
            vec![
                "192.168.1.1:53".parse().unwrap(),
                "1.1.1.1:53".parse().unwrap()
            ]
        );
        // Without the real list the stub is all there is.
        assert_eq!(
            host_upstreams(&host, &tmp.path().join("missing"), &[]),
            vec!["127.0.0.53:53".parse().unwrap()]
        );
    }

    #[test]
    fn our_own_address_is_never_an_upstream() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("resolv.conf");
        std::fs::write(&host, "nameserver 10.42.0.1\nnameserver 10.0.0.2\n").unwrap();
        let own = ["10.42.0.1:53".parse().unwrap()];
        assert_eq!(
            host_upstreams(&host, &tmp.path().join("none"), &own),
            vec!["10.0.0.2:53".parse().unwrap()]
        );
        let wildcard = ["0.0.0.0:53".parse().unwrap()];
        assert!(host_upstreams(&host, &tmp.path().join("none"), &wildcard).is_empty());
    }
}
