//! `POST /portForward/{namespace}/{pod}`: the kubelet's port forwarding, as
//! `portforward.k8s.io` over SPDY/3.1. For each connection to forward the client opens two
//! streams with the same `requestID`: an `error` stream, on which a failure is reported as
//! text, and a `data` stream carrying the bytes; both name the pod's `port`. Each pair
//! becomes one TCP connection to that port on the pod's loopback, opened inside the pod's
//! network namespace by the runtime. A WebSocket request is served by
//! [`super::portforward_ws`] instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use skiff_runtime::pod::{PodRuntime, SandboxState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::spdy::{self, IncomingStream, Sender};
use super::{HttpError, NodeState};

/// The SPDY version of the upgrade.
pub const SPDY_UPGRADE: &str = "SPDY/3.1";
/// The port-forward protocol the streams speak.
pub const PROTOCOL: &str = "portforward.k8s.io";

/// The two streams of one forwarded connection, as far as they have arrived.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<IncomingStream>,
    port: Option<String>,
}

/// Whether the request asks to upgrade to SPDY with the port-forward protocol.
fn check_upgrade(headers: &HeaderMap) -> Result<(), HttpError> {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !upgrade.eq_ignore_ascii_case(SPDY_UPGRADE) {
        return Err(HttpError::bad_request(
            "unable to upgrade: missing upgrade headers in request",
        ));
    }
    let offered = headers
        .get_all("X-Stream-Protocol-Version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL);
    if !offered {
        return Err(HttpError::bad_request(format!(
            "unable to upgrade: unable to negotiate protocol: client supports none of the server's protocols ([{PROTOCOL}])"
        )));
    }
    Ok(())
}

/// The handler: finds the pod's sandbox, then serves port forwarding over a WebSocket with
/// the channel protocol, or answers 101 and serves the SPDY connection.
pub async fn port_forward(
    State(state): State<NodeState>,
    Path((namespace, pod)): Path<(String, String)>,
    mut req: Request,
) -> Result<Response, HttpError> {
    let websocket = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !websocket {
        check_upgrade(req.headers())?;
    }
    let runtime = state.lookup.runtime();
    let sandbox = runtime
        .list_pod_sandboxes()
        .await
        .map_err(|e| HttpError::internal(e.to_string()))?
        .into_iter()
        .filter(|s| {
            s.state == SandboxState::Ready
                && s.config.namespace == namespace
                && s.config.name == pod
        })
        .max_by_key(|s| s.created_at)
        .ok_or_else(|| HttpError::not_found(format!("pod {namespace}/{pod} not found")))?;
    let target = Target {
        runtime,
        sandbox: sandbox.id,
        pod: pod.clone(),
        uid: sandbox.config.uid,
    };
    if websocket {
        let ports = super::portforward_ws::parse_ports(req.uri().query())?;
        let (mut parts, _) = req.into_parts();
        let ws = WebSocketUpgrade::from_request_parts(&mut parts, &())
            .await
            .map_err(|e| HttpError::bad_request(format!("unable to upgrade: {e}")))?;
        return super::portforward_ws::upgrade(ws, ports, target);
    }
    let on_upgrade = req
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| HttpError::bad_request("the connection cannot be upgraded"))?;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                if let Err(e) = serve(TokioIo::new(upgraded), target).await {
                    tracing::debug!(error = %e, "port-forward connection ended");
                }
            }
            Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, SPDY_UPGRADE)
        .header("X-Stream-Protocol-Version", PROTOCOL)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// Where the forwarded connections go.
#[derive(Clone)]
pub struct Target {
    /// The runtime that opens them.
    pub runtime: Arc<dyn PodRuntime>,
    /// The pod's sandbox.
    pub sandbox: String,
    /// The pod's name (for error messages).
    pub pod: String,
    /// The pod's UID (for error messages).
    pub uid: String,
}

/// Serves port forwarding on an upgraded connection until the client goes away.
pub async fn serve<S>(io: S, target: Target) -> Result<(), spdy::ConnError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let pending: Arc<Mutex<HashMap<String, Pair>>> = Arc::default();
    spdy::serve(io, move |stream, sender| {
        let h = &stream.headers;
        let kind = h.get("streamtype").cloned().unwrap_or_default();
        // Clients that send no requestID pair an error stream with the data stream
        // opened right after it (ids two apart), as the kubelet does.
        let request = match h.get("requestid") {
            Some(r) => r.clone(),
            None if kind == "data" => stream.id.saturating_sub(2).to_string(),
            None => stream.id.to_string(),
        };
        let port = h.get("port").cloned();
        let ready = {
            let mut all = pending.lock().unwrap_or_else(|e| e.into_inner());
            let pair = all.entry(request.clone()).or_default();
            if pair.port.is_none() {
                pair.port = port;
            }
            match kind.as_str() {
                "error" => pair.error = Some(stream.id),
                "data" => pair.data = Some(stream),
                other => {
                    tracing::debug!(stream_type = other, "port-forward: unknown stream type");
                    let (id, sender) = (stream.id, sender.clone());
                    tokio::spawn(async move {
                        sender.reset(id, spdy::frame::status::PROTOCOL_ERROR).await
                    });
                }
            }
            if pair.error.is_some() && pair.data.is_some() {
                all.remove(&request)
            } else {
                None
            }
        };
        if let Some(pair) = ready {
            tokio::spawn(forward(pair, sender, target.clone()));
        }
    })
    .await
}

/// One forwarded connection: dial the pod's port and copy both ways; report a failure on
/// the error stream.
async fn forward(pair: Pair, sender: Sender, target: Target) {
    let (Some(error), Some(mut data)) = (pair.error, pair.data) else {
        return;
    };
    let port_text = pair.port.unwrap_or_default();
    let dialed = match port_text.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("unable to parse {port_text:?} as a port")),
        Ok(port) => target
            .runtime
            .port_forward(&target.sandbox, port)
            .await
            .map_err(|e| {
                format!(
                    "error forwarding port {port} to pod {}, uid {}: {e}",
                    target.pod, target.uid
                )
            }),
    };
    let socket = match dialed {
        Ok(s) => s,
        Err(message) => {
            tracing::debug!(%message, "port-forward failed");
            sender.data(error, message.as_bytes()).await;
            sender.close(error).await;
            sender.close(data.id).await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = socket.into_split();
    let data_id = data.id;
    let up = async {
        while let Some(chunk) = data.data.recv().await {
            if to_pod.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !sender.data(data_id, &buf[..n]).await {
                        return;
                    }
                }
            }
        }
        sender.close(data_id).await;
    };
    tokio::join!(up, down);
    sender.close(error).await;
}
