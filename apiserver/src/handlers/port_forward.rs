//! `pods/portforward`: the client's connection carried to the pod's kubelet, which speaks
//! `portforward.k8s.io` over SPDY/3.1. Two ways in, as kube-apiserver offers them:
//!
//! - a WebSocket with the subprotocol `SPDY/3.1+portforward.k8s.io` (kubectl's default
//!   since 1.31): each binary message carries the next bytes of the SPDY connection, which
//!   this server passes to and from the kubelet's upgraded connection unchanged;
//! - a plain `Upgrade: SPDY/3.1` (older clients, or `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`):
//!   both upgraded connections are joined byte for byte.
//!
//! A WebSocket offering only the channel protocol (`v4.channel.k8s.io`, as kube-rs does)
//! is relayed frame by frame to the kubelet's WebSocket port forwarding instead.
//!
//! The kubelet's connection is opened first, so its refusals reach the client as HTTP
//! errors before the client's connection is upgraded.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ApiState;
use super::node_relay::{NodeRelay, node_address, proxy_stream};
use super::object::{ObjectRef, read};
use super::request::ApiRequest;
use crate::error::ApiError;

/// The WebSocket subprotocol that tunnels SPDY.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The upgrade token of a direct SPDY connection.
const SPDY: &str = "SPDY/3.1";
/// The stream protocol inside SPDY.
const PORT_FORWARD: &str = "portforward.k8s.io";

fn header_is(http: &Request, name: header::HeaderName, want: &str) -> bool {
    http.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(want))
}

/// Serves `pods/portforward` (the request parser has checked the verb).
pub async fn serve(
    state: &ApiState,
    req: ApiRequest,
    mut http: Request,
) -> Result<Response, ApiError> {
    let relay = state.kubelet.clone().ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            "the API server has no kubelet client credentials",
        )
    })?;
    let websocket = header_is(&http, header::UPGRADE, "websocket");
    let spdy = header_is(&http, header::UPGRADE, SPDY);
    if !websocket && !spdy {
        return Err(ApiError::bad_request(
            "Upgrade request required: port forwarding is served over SPDY/3.1 or a WebSocket (SPDY/3.1+portforward.k8s.io)",
        ));
    }
    let protocol = header::SEC_WEBSOCKET_PROTOCOL;
    let tunnelled = websocket && header_is(&http, protocol.clone(), TUNNEL_PROTOCOL);
    let channels = websocket
        && skiff_api::remotecommand::PROTOCOLS
            .iter()
            .any(|p| header_is(&http, protocol.clone(), p));
    if websocket && !tunnelled && !channels {
        return Err(ApiError::bad_request(format!(
            "no supported WebSocket subprotocol was offered; port forwarding speaks {TUNNEL_PROTOCOL} and {}",
            skiff_api::remotecommand::V4
        )));
    }
    let ns = req.namespace.clone().unwrap_or_default();
    let name = req.name.clone().unwrap_or_default();
    let (pod, _) = read(
        state,
        &ObjectRef::new(&state.kinds, &req.kind, Some(&ns), &name),
    )
    .await?;
    let Some(node) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    if let Some(phase @ ("Succeeded" | "Failed")) =
        pod.pointer("/status/phase").and_then(Value::as_str)
    {
        return Err(ApiError::bad_request(format!(
            "cannot port-forward to a completed pod; current phase is {phase}"
        )));
    }
    let addr = node_address(state, node).await?;
    if websocket && !tunnelled {
        // The channel protocol (kube-rs and other WebSocket clients): frames relayed to
        // the kubelet's own WebSocket port forwarding, one connection per port.
        let ports = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                form_urlencoded::parse(http.uri().query().unwrap_or("").as_bytes())
                    .filter(|(k, _)| k == "ports"),
            )
            .finish();
        let path = format!("/portForward/{ns}/{name}?{ports}");
        return proxy_stream(relay, addr, &path, http).await;
    }
    let kubelet = match open_kubelet(&relay, addr, &ns, &name).await? {
        Ok(upgraded) => upgraded,
        Err(refusal) => return Ok(refusal),
    };
    if websocket {
        let (mut parts, _) = http.into_parts();
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| ApiError::bad_request(format!("unable to upgrade: {e}")))?;
        return Ok(upgrade
            .protocols([TUNNEL_PROTOCOL])
            .on_upgrade(move |socket| tunnel(socket, kubelet)));
    }
    let on_upgrade = http
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| ApiError::bad_request("the connection cannot be upgraded"))?;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(client) => {
                let (mut client, mut kubelet) = (TokioIo::new(client), TokioIo::new(kubelet));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await;
            }
            Err(e) => tracing::debug!(error = %e, "port-forward client upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, SPDY)
        .header("X-Stream-Protocol-Version", PORT_FORWARD)
        .body(Body::empty())
        .map_err(ApiError::internal)
}

/// Asks the kubelet at `addr` to upgrade to SPDY port forwarding for the pod: the upgraded
/// connection, or the kubelet's answer when it refused (to hand to the client).
async fn open_kubelet(
    relay: &NodeRelay,
    addr: SocketAddr,
    ns: &str,
    name: &str,
) -> Result<Result<Upgraded, Response>, ApiError> {
    let backend = |e: hyper::Error| {
        ApiError::new(
            500,
            "InternalError",
            format!("error talking to the kubelet at {addr}: {e}"),
        )
    };
    let tls = relay.connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(backend)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "kubelet port-forward connection ended");
        }
    });
    let req = http::Request::post(format!("/portForward/{ns}/{name}"))
        .header(header::HOST, addr.to_string())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, SPDY)
        .header("X-Stream-Protocol-Version", PORT_FORWARD)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(ApiError::internal)?;
    let resp = sender.send_request(req).await.map_err(backend)?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(backend)?.to_bytes();
        let mut out = Response::builder().status(parts.status);
        if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
            out = out.header(header::CONTENT_TYPE, ct);
        }
        return Ok(Err(out
            .body(Body::from(body))
            .map_err(ApiError::internal)?));
    }
    let upgraded = hyper::upgrade::on(resp).await.map_err(backend)?;
    Ok(Ok(upgraded))
}

/// Carries the SPDY bytes between the client's WebSocket messages and the kubelet.
async fn tunnel(socket: WebSocket, kubelet: Upgraded) {
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut from_kubelet, mut to_kubelet) = tokio::io::split(TokioIo::new(kubelet));
    let up = async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            match msg {
                ws::Message::Binary(b) => {
                    if to_kubelet.write_all(&b).await.is_err() {
                        break;
                    }
                }
                ws::Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = to_kubelet.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_kubelet.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = ws::Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]));
                    if ws_tx.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = ws_tx.send(ws::Message::Close(None)).await;
    };
    // Either side ending ends the tunnel.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
