//! Port forwarding into a pod: a TCP connection to the pod's loopback, opened from inside
//! the sandbox's network namespace (what `kubectl port-forward` reaches), by a short-lived
//! thread of its own so the caller's namespaces never change.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connects to `127.0.0.1:port` inside the network namespace pinned at `netns`, giving up
/// after `timeout`. The socket stays in that namespace after the thread that made it ends.
pub fn connect_in_netns(netns: &Path, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let netns: PathBuf = netns.to_path_buf();
    std::thread::Builder::new()
        .name("port-forward".into())
        .spawn(move || {
            let ns = std::fs::File::open(&netns)?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("entering {}: {e}", netns.display())))?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            TcpStream::connect_timeout(&addr, timeout)
        })?
        .join()
        .map_err(|_| io::Error::other("the port-forward thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// In the current namespace (its own `/proc/self/ns/net`), which needs no privilege.
    #[test]
    fn connects_to_a_loopback_listener_in_the_named_namespace() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"pong").unwrap();
            buf
        });
        // setns into the namespace the process is already in.
        let ns = Path::new("/proc/self/ns/net");
        let mut c = match connect_in_netns(ns, port, Duration::from_secs(5)) {
            Ok(c) => c,
            // Without CAP_SYS_ADMIN setns is refused even into the same namespace.
            Err(e) if e.to_string().contains("EPERM") => {
                eprintln!("skipped: setns needs CAP_SYS_ADMIN: {e}");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        c.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
        assert_eq!(&server.join().unwrap(), b"ping");
    }

    #[test]
    fn a_closed_port_is_refused() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = connect_in_netns(Path::new("/proc/self/ns/net"), port, Duration::from_secs(5))
            .unwrap_err();
        assert!(
            err.kind() == io::ErrorKind::ConnectionRefused || err.to_string().contains("EPERM"),
            "{err}"
        );
    }
}
