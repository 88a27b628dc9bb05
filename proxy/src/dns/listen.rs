//! The server's sockets: UDP and TCP on one address, bound with IP_FREEBIND so the node's
//! pod-bridge gateway address can be listened on before the bridge exists.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

use super::DnsError;

fn socket(addr: SocketAddr, kind: Type, protocol: &'static str) -> Result<Socket, DnsError> {
    let err = |source| DnsError::Listen {
        addr,
        protocol,
        source,
    };
    let proto = if kind == Type::DGRAM {
        Protocol::UDP
    } else {
        Protocol::TCP
    };
    let s = Socket::new(Domain::for_address(addr), kind, Some(proto)).map_err(err)?;
    s.set_reuse_address(true).map_err(err)?;
    match addr {
        SocketAddr::V4(_) => s.set_freebind_v4(true).map_err(err)?,
        SocketAddr::V6(_) => s.set_freebind_v6(true).map_err(err)?,
    }
    s.set_nonblocking(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    Ok(s)
}

/// Binds UDP on `addr` and TCP on the same address and port. When `addr` asks for any
/// port, the UDP socket's port is taken for TCP too; if another process holds that port for
/// TCP, a fresh pair is tried (a few times) rather than failing. Call within a Tokio runtime.
pub fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    const ATTEMPTS: usize = 16;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match bind_pair_once(addr) {
            Err(DnsError::Listen {
                protocol: "tcp",
                source,
                ..
            }) if addr.port() == 0
                && attempt < ATTEMPTS
                && source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                continue
            }
            other => return other,
        }
    }
}

fn bind_pair_once(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let udp = socket(addr, Type::DGRAM, "udp")?;
    let bound = udp
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .unwrap_or(addr);
    let tcp = socket(bound, Type::STREAM, "tcp")?;
    let err = |protocol, source| DnsError::Listen {
        addr: bound,
        protocol,
        source,
    };
    tcp.listen(1024).map_err(|e| err("tcp", e))?;
    let udp = UdpSocket::from_std(udp.into()).map_err(|e| err("udp", e))?;
    let tcp = TcpListener::from_std(tcp.into()).map_err(|e| err("tcp", e))?;
    Ok((udp, tcp))
}
