//! Links, addresses and routes over rtnetlink: the node bridge, a veth pair per pod, and
//! the pod side (loopback, `eth0`, address, default route) configured from a thread that
//! entered the pod's network namespace.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::NetworkError;

fn nl(op: &'static str) -> impl FnOnce(rtnetlink::Error) -> NetworkError {
    move |e| NetworkError::Netlink {
        op,
        message: e.to_string(),
    }
}

fn is_exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST)
}

/// Runs netlink work on a fresh thread (inside `netns` when given) with its own runtime,
/// so callers may be sync or async and the agent's namespaces never change.
pub fn run<T, F, Fut>(netns: Option<PathBuf>, work: F) -> Result<T, NetworkError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetworkError>>,
{
    std::thread::spawn(move || {
        if let Some(ns) = &netns {
            let f = std::fs::File::open(ns).map_err(|e| NetworkError::Io {
                path: ns.clone(),
                source: e,
            })?;
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                NetworkError::Namespace {
                    path: ns.clone(),
                    message: format!("setns: {e}"),
                }
            })?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NetworkError::Netlink {
                op: "runtime",
                message: e.to_string(),
            })?;
        rt.block_on(async move {
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|e| NetworkError::Netlink {
                    op: "connect",
                    message: e.to_string(),
                })?;
            tokio::spawn(conn);
            work(handle).await
        })
    })
    .join()
    .unwrap_or_else(|_| {
        Err(NetworkError::Netlink {
            op: "thread",
            message: "panicked".into(),
        })
    })
}

/// Index of link `name`, if it exists.
pub async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>, NetworkError> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(nl("get link")(e)),
    }
}

/// Creates the bridge if missing, gives it the gateway address, brings it up.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gw: Ipv4Addr,
    prefix: u8,
) -> Result<u32, NetworkError> {
    let idx = match link_index(h, name).await? {
        Some(i) => i,
        None => {
            if let Err(e) = h.link().add(LinkBridge::new(name).build()).execute().await
                && !is_exists(&e)
            {
                return Err(nl("add bridge")(e));
            }
            link_index(h, name).await?.ok_or(NetworkError::Netlink {
                op: "add bridge",
                message: format!("{name} missing after create"),
            })?
        }
    };
    if let Err(e) = h.address().add(idx, IpAddr::V4(gw), prefix).execute().await
        && !is_exists(&e)
    {
        return Err(nl("add bridge address")(e));
    }
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl("bridge up"))?;
    Ok(idx)
}

/// Creates a veth pair, moves `peer` into the namespace at `netns`, and plugs `host`
/// into the bridge.
pub async fn add_veth(
    h: &Handle,
    host: &str,
    peer: &str,
    netns: &Path,
    bridge: u32,
) -> Result<(), NetworkError> {
    h.link()
        .add(LinkVeth::new(host, peer).build())
        .execute()
        .await
        .map_err(nl("add veth"))?;
    let ns = std::fs::File::open(netns).map_err(|e| NetworkError::Io {
        path: netns.to_path_buf(),
        source: e,
    })?;
    use std::os::fd::AsRawFd;
    let peer_idx = link_index(h, peer).await?.ok_or(NetworkError::Netlink {
        op: "add veth",
        message: format!("{peer} missing"),
    })?;
    h.link()
        .set(
            LinkUnspec::new_with_index(peer_idx)
                .setns_by_fd(ns.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(nl("move veth"))?;
    let host_idx = link_index(h, host).await?.ok_or(NetworkError::Netlink {
        op: "add veth",
        message: format!("{host} missing"),
    })?;
    h.link()
        .set(
            LinkUnspec::new_with_index(host_idx)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl("veth up"))?;
    // Hairpin on the pod's bridge port: a pod reaching itself through a Service is DNATed
    // back to its own address, so the frame must be allowed out the port it came in on
    // (what the CNI bridge plugin's hairpinMode does).
    let knob = Path::new("/sys/class/net")
        .join(host)
        .join("brport/hairpin_mode");
    std::fs::write(&knob, "1").map_err(|e| NetworkError::Io {
        path: knob,
        source: e,
    })
}

/// Inside the pod namespace: loopback up, `peer` renamed `eth0` with `ip/prefix`, default
/// route via `gw`.
pub async fn configure_pod(
    h: &Handle,
    peer: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gw: Ipv4Addr,
) -> Result<(), NetworkError> {
    if let Some(lo) = link_index(h, "lo").await? {
        h.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(nl("lo up"))?;
    }
    let idx = link_index(h, peer).await?.ok_or(NetworkError::Netlink {
        op: "configure pod",
        message: format!("{peer} not in namespace"),
    })?;
    h.link()
        .set(
            LinkUnspec::new_with_index(idx)
                .name("eth0".to_string())
                .build(),
        )
        .execute()
        .await
        .map_err(nl("rename eth0"))?;
    h.address()
        .add(idx, IpAddr::V4(ip), prefix)
        .execute()
        .await
        .map_err(nl("add pod address"))?;
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl("eth0 up"))?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gw)
        .output_interface(idx)
        .build();
    h.route()
        .add(route)
        .execute()
        .await
        .map_err(nl("add default route"))
}

/// Deletes link `name`; missing is fine.
pub async fn delete_link(h: &Handle, name: &str) -> Result<(), NetworkError> {
    match link_index(h, name).await? {
        Some(idx) => match h.link().del(idx).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -libc::ENODEV => Ok(()),
            Err(e) => Err(nl("delete link")(e)),
        },
        None => Ok(()),
    }
}
