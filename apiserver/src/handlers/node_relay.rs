//! The relay to kubelets (`NodeRelay`), distinct from the service proxy: pod subresources
//! served by the pod's node: `pods/log` streamed from the kubelet, and
//! `pods/exec`, `pods/attach` relayed frame by frame between the client's WebSocket and the
//! kubelet's, and `pods/portforward` (in `port_forward.rs`). The API server authenticates to kubelets with a client certificate
//! (`kube-apiserver-kubelet-client`, group `system:masters`) issued by the cluster CA at
//! start, and verifies the kubelet's serving certificate against the same CA.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest, protocol::CloseFrame};

use super::ApiState;
use super::object::{ObjectRef, read};
use super::request::{ApiRequest, NodeStream};
use crate::auth::{AuthError, Pki};
use crate::error::ApiError;

/// Subject of the API server's client certificate towards kubelets.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";
/// Kubernetes' kubelet port, when the Node does not say.
const DEFAULT_KUBELET_PORT: u16 = 10250;
/// Subprotocols relayed for exec and attach.
const CHANNEL_PROTOCOLS: [&str; 2] = skiff_api::remotecommand::PROTOCOLS;
/// Query parameters `pods/log` forwards to the kubelet.
const LOG_PARAMS: [&str; 7] = [
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "tailLines",
    "timestamps",
    "limitBytes",
];
/// Query parameters exec and attach forward.
const STREAM_PARAMS: [&str; 5] = ["command", "stdin", "stdout", "stderr", "tty"];
/// How long one direction of a relay may outlive the other (for the closing handshake).
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Connects to kubelets with the API server's client identity.
pub struct NodeRelay {
    tls: tokio_rustls::TlsConnector,
}

impl NodeRelay {
    /// Issues the kubelet-client certificate from the cluster CA and builds the TLS client.
    pub fn new(pki: &Pki) -> Result<Self, AuthError> {
        let (cert, key) = pki.issue_client_cert(KUBELET_CLIENT_CN, &["system:masters"])?;
        let mut roots = RootCertStore::empty();
        roots
            .add(pki.ca_cert_der()?)
            .map_err(|e| AuthError::Tls(format!("CA certificate: {e}")))?;
        let cert = CertificateDer::from_pem_slice(cert.as_bytes())
            .map_err(|e| AuthError::Tls(format!("kubelet client certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
            .map_err(|e| AuthError::Tls(format!("kubelet client key: {e}")))?;
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)
        .map_err(|e| AuthError::Tls(format!("kubelet client identity: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    pub(crate) async fn connect(&self, addr: SocketAddr) -> Result<TlsStream<TcpStream>, ApiError> {
        let dial = |e: std::io::Error| {
            ApiError::new(
                500,
                "InternalError",
                format!("error dialing backend: dial tcp {addr}: {e}"),
            )
        };
        let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| dial(std::io::ErrorKind::TimedOut.into()))?
            .map_err(dial)?;
        let _ = tcp.set_nodelay(true);
        self.tls
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .map_err(dial)
    }
}

/// Serves `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward` (the request parser
/// has checked the verb).
pub async fn serve(
    state: &ApiState,
    req: ApiRequest,
    stream: NodeStream,
    http: Request,
) -> Response {
    serve_inner(state, req, stream, http)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn serve_inner(
    state: &ApiState,
    req: ApiRequest,
    stream: NodeStream,
    http: Request,
) -> Result<Response, ApiError> {
    let sub = req.subresource.map(|s| s.as_str()).unwrap_or_default();
    if stream == NodeStream::PortForward {
        return super::port_forward::serve(state, req, http).await;
    }
    let client = state.kubelet.clone().ok_or_else(|| {
        ApiError::new(
            503,
            "ServiceUnavailable",
            "the API server has no kubelet client credentials",
        )
    })?;
    let ns = req.namespace.clone().unwrap_or_default();
    let name = req.name.clone().unwrap_or_default();
    let params: Vec<(String, String)> = http
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (pod, _) = read(
        state,
        &ObjectRef::new(&state.kinds, &req.kind, Some(&ns), &name),
    )
    .await?;
    let container = pick_container(&pod, &name, param("container"))?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let Some(node_name) = node_name else {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    };
    let forward: &[&str] = if stream == NodeStream::Log {
        &LOG_PARAMS
    } else {
        &STREAM_PARAMS
    };
    // The serializer is not Send; build the string before any await.
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().filter(|(k, _)| forward.contains(&k.as_str())))
        .finish();
    let path = format!("/{}/{ns}/{name}/{container}?{query}", kubelet_verb(stream));
    if stream == NodeStream::Log {
        check_log_state(
            &pod,
            &name,
            &container,
            param("previous").is_some_and(|v| v == "true" || v == "1"),
        )?;
    } else if let Some(phase @ ("Succeeded" | "Failed")) =
        pod.pointer("/status/phase").and_then(Value::as_str)
    {
        return Err(ApiError::bad_request(format!(
            "cannot {sub} into a container in a completed pod; current phase is {phase}"
        )));
    }
    let addr = node_address(state, node_name).await?;
    if stream == NodeStream::Log {
        return proxy_logs(&client, addr, &path).await;
    }
    proxy_stream(client, addr, &path, http).await
}

fn kubelet_verb(stream: NodeStream) -> &'static str {
    match stream {
        NodeStream::Log => "containerLogs",
        NodeStream::Exec => "exec",
        NodeStream::Attach | NodeStream::PortForward => "attach",
    }
}

fn names(pod: &Value, field: &str) -> Vec<String> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The container a request addresses: the one named, else the pod's default-container
/// annotation, else its only container; Kubernetes' errors otherwise.
pub fn pick_container(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let containers = names(pod, "containers");
    let init = names(pod, "initContainers");
    let ephemeral = names(pod, "ephemeralContainers");
    if let Some(c) = requested {
        if containers
            .iter()
            .chain(&init)
            .chain(&ephemeral)
            .any(|n| n == c)
        {
            return Ok(c.to_string());
        }
        return Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        )));
    }
    let annotated = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str);
    if let Some(c) = annotated.filter(|c| containers.iter().any(|n| n == c)) {
        return Ok(c.to_string());
    }
    match containers.as_slice() {
        [only] => Ok(only.clone()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        many => {
            let mut msg = format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                many.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

/// Refuses logs of a container that has not started (or has no previous instance), as the
/// kubelet's `validateContainerLogStatus` decides and words it: a running container, a
/// terminated one, or one waiting after an earlier run (CrashLoopBackOff) has logs — the
/// waiting one shows its last terminated run's output.
fn check_log_state(
    pod: &Value,
    pod_name: &str,
    container: &str,
    previous: bool,
) -> Result<(), ApiError> {
    let status = [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .filter_map(|f| {
        pod.pointer(&format!("/status/{f}"))
            .and_then(Value::as_array)
    })
    .flatten()
    .find(|s| s["name"].as_str() == Some(container));
    let Some(status) = status else {
        let phase = pod
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("Pending");
        if phase == "Pending" {
            return Err(ApiError::bad_request(format!(
                "container {container:?} in pod {pod_name:?} is waiting to start: ContainerCreating"
            )));
        }
        return Ok(());
    };
    let last_terminated = status.pointer("/lastState/terminated").is_some();
    if previous {
        if !last_terminated {
            return Err(ApiError::bad_request(format!(
                "previous terminated container {container:?} in pod {pod_name:?} not found"
            )));
        }
        return Ok(());
    }
    let state = &status["state"];
    if state["running"].is_object() || state["terminated"].is_object() || last_terminated {
        return Ok(());
    }
    if let Some(waiting) = state.get("waiting") {
        let reason = match waiting["reason"].as_str().unwrap_or("") {
            "ErrImagePull" | "InvalidImageName" => "image can't be pulled",
            "ImagePullBackOff" => "trying and failing to pull image",
            "" => "ContainerCreating",
            r => r,
        };
        return Err(ApiError::bad_request(format!(
            "container {container:?} in pod {pod_name:?} is waiting to start: {reason}"
        )));
    }
    Err(ApiError::bad_request(format!(
        "container {container:?} in pod {pod_name:?} is waiting to start - no logs yet"
    )))
}

/// The kubelet endpoint of a node: its InternalIP (else ExternalIP) and kubelet port.
pub(crate) async fn node_address(
    state: &ApiState,
    node_name: &str,
) -> Result<SocketAddr, ApiError> {
    let nodes = state
        .kinds
        .find("", "v1", "nodes")
        .expect("nodes are served");
    let (node, _) = read(state, &ObjectRef::new(&state.kinds, nodes, None, node_name)).await?;
    kubelet_endpoint(&node, node_name)
}

/// The kubelet endpoint a Node object names: its InternalIP (else ExternalIP) and the
/// kubelet port of `status.daemonEndpoints`.
pub(crate) fn kubelet_endpoint(node: &Value, node_name: &str) -> Result<SocketAddr, ApiError> {
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP"]
        .iter()
        .find_map(|kind| {
            addresses
                .iter()
                .filter(|a| a["type"].as_str() == Some(kind))
                .find_map(|a| a["address"].as_str()?.parse::<IpAddr>().ok())
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "node {node_name} has no InternalIP or ExternalIP address"
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(SocketAddr::new(ip, port))
}

impl NodeRelay {
    /// GETs `path` from the kubelet at `addr` and reads the whole answer (stats), failing
    /// on anything but 200 or when it takes longer than `timeout`.
    pub async fn get(
        &self,
        addr: SocketAddr,
        path: &str,
        timeout: Duration,
    ) -> Result<bytes::Bytes, ApiError> {
        use http_body_util::BodyExt;
        let fetch = async {
            let backend = |e: hyper::Error| {
                ApiError::new(
                    500,
                    "InternalError",
                    format!("error talking to the kubelet at {addr}: {e}"),
                )
            };
            let tls = self.connect(addr).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .map_err(backend)?;
            tokio::spawn(conn);
            let req = http::Request::get(path)
                .header(header::HOST, addr.to_string())
                .body(Empty::<bytes::Bytes>::new())
                .map_err(ApiError::internal)?;
            let resp = sender.send_request(req).await.map_err(backend)?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(backend)?
                .to_bytes();
            if !status.is_success() {
                return Err(ApiError::new(
                    500,
                    "InternalError",
                    format!("the kubelet at {addr} answered {status} for {path}"),
                ));
            }
            Ok(body)
        };
        tokio::time::timeout(timeout, fetch).await.map_err(|_| {
            ApiError::new(
                504,
                "Timeout",
                format!("the kubelet at {addr} did not answer {path} within {timeout:?}"),
            )
        })?
    }
}

/// GETs the kubelet's log stream and hands its body through as it arrives.
async fn proxy_logs(
    client: &NodeRelay,
    addr: SocketAddr,
    path: &str,
) -> Result<Response, ApiError> {
    let tls = client.connect(addr).await?;
    let backend = |e: hyper::Error| {
        ApiError::new(
            500,
            "InternalError",
            format!("error talking to the kubelet at {addr}: {e}"),
        )
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(backend)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "kubelet log connection ended");
        }
    });
    let req = http::Request::get(path)
        .header(header::HOST, addr.to_string())
        .body(Empty::<bytes::Bytes>::new())
        .map_err(ApiError::internal)?;
    let resp = sender.send_request(req).await.map_err(backend)?;
    let (parts, body) = resp.into_parts();
    let mut out = Response::builder().status(parts.status);
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out = out.header(header::CONTENT_TYPE, ct);
    }
    out.body(Body::new(body)).map_err(ApiError::internal)
}

/// Opens the kubelet's WebSocket first (so its refusals reach the client as HTTP errors),
/// then accepts the client's upgrade with the protocol the kubelet chose and relays.
pub(crate) async fn proxy_stream(
    client: Arc<NodeRelay>,
    addr: SocketAddr,
    path: &str,
    http: Request,
) -> Result<Response, ApiError> {
    let (mut parts, _) = http.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| ApiError::bad_request("Upgrade request required: exec and attach are served over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io)"))?;
    let offered: Vec<&str> = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .map(str::trim)
        .filter(|p| CHANNEL_PROTOCOLS.contains(p))
        .collect();
    if offered.is_empty() {
        return Err(ApiError::bad_request(format!(
            "no supported WebSocket subprotocol was offered; this server speaks {}",
            CHANNEL_PROTOCOLS.join(", ")
        )));
    }
    let mut request = format!("wss://{addr}{path}")
        .into_client_request()
        .map_err(ApiError::internal)?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        offered.join(", ").parse().map_err(ApiError::internal)?,
    );
    let tls = client.connect(addr).await?;
    let (node, resp) = match tokio_tungstenite::client_async(request, tls).await {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(resp)) => {
            let (parts, body) = resp.into_parts();
            let mut out = Response::builder().status(parts.status);
            if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
                out = out.header(header::CONTENT_TYPE, ct);
            }
            return out
                .body(Body::from(body.unwrap_or_default()))
                .map_err(ApiError::internal);
        }
        Err(e) => {
            return Err(ApiError::new(
                500,
                "InternalError",
                format!("error upgrading the connection to the kubelet at {addr}: {e}"),
            ));
        }
    };
    let chosen = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(offered[0])
        .to_string();
    let chosen: &'static str = CHANNEL_PROTOCOLS
        .into_iter()
        .find(|p| *p == chosen)
        .unwrap_or(CHANNEL_PROTOCOLS[1]);
    Ok(upgrade
        .protocols([chosen])
        .on_upgrade(move |socket| relay(socket, node)))
}

type NodeSocket = tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>;

/// Copies frames both ways; pings are answered by each side's own WebSocket layer.
async fn relay(client: WebSocket, node: NodeSocket) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut node_tx, mut node_rx) = node.split();
    let mut up = tokio::spawn(async move {
        while let Some(Ok(msg)) = client_rx.next().await {
            let out = match msg {
                ws::Message::Binary(b) => tungstenite::Message::Binary(b),
                ws::Message::Text(t) => tungstenite::Message::Text(t.as_str().into()),
                ws::Message::Close(f) => {
                    let frame = f.map(|f| CloseFrame {
                        code: f.code.into(),
                        reason: f.reason.as_str().into(),
                    });
                    let _ = node_tx.send(tungstenite::Message::Close(frame)).await;
                    return;
                }
                ws::Message::Ping(_) | ws::Message::Pong(_) => continue,
            };
            if node_tx.send(out).await.is_err() {
                return;
            }
        }
        let _ = node_tx.send(tungstenite::Message::Close(None)).await;
    });
    let mut down = tokio::spawn(async move {
        while let Some(Ok(msg)) = node_rx.next().await {
            let out = match msg {
                tungstenite::Message::Binary(b) => ws::Message::Binary(b),
                tungstenite::Message::Text(t) => ws::Message::Text(t.as_str().into()),
                tungstenite::Message::Close(f) => {
                    let frame = f.map(|f| ws::CloseFrame {
                        code: f.code.into(),
                        reason: f.reason.as_str().into(),
                    });
                    let _ = client_tx.send(ws::Message::Close(frame)).await;
                    return;
                }
                _ => continue,
            };
            if client_tx.send(out).await.is_err() {
                return;
            }
        }
        let _ = client_tx.send(ws::Message::Close(None)).await;
    });
    let other = tokio::select! {
        _ = &mut up => down,
        _ = &mut down => up,
    };
    let abort = other.abort_handle();
    if tokio::time::timeout(CLOSE_WAIT, other).await.is_err() {
        abort.abort();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(containers: &[&str], init: &[&str], default: Option<&str>) -> Value {
        let mut p = json!({
            "metadata": {"name": "web"},
            "spec": {
                "containers": containers.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
                "initContainers": init.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
            },
        });
        if let Some(d) = default {
            p["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/default-container": d});
        }
        p
    }

    #[test]
    fn picks_the_container_as_kubernetes_does() {
        assert_eq!(
            pick_container(&pod(&["a"], &[], None), "web", None).unwrap(),
            "a"
        );
        assert_eq!(
            pick_container(&pod(&["a", "b"], &[], Some("b")), "web", None).unwrap(),
            "b"
        );
        assert_eq!(
            pick_container(&pod(&["a", "b"], &["i"], None), "web", Some("i")).unwrap(),
            "i"
        );
        let e = pick_container(&pod(&["a", "b"], &[], None), "web", None).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "a container name must be specified for pod web, choose one of: [a b]"
            )
        );
        let e = pick_container(&pod(&["a", "b"], &["i"], Some("zz")), "web", None).unwrap_err();
        assert!(
            e.message
                .ends_with("choose one of: [a b] or one of the init containers: [i]"),
            "{}",
            e.message
        );
        let e = pick_container(&pod(&["a"], &[], None), "web", Some("x")).unwrap_err();
        assert_eq!(e.message, "container x is not valid for pod web");
    }

    #[test]
    fn refuses_logs_of_waiting_containers() {
        let mut p = pod(&["a"], &[], None);
        p["status"] = json!({"phase": "Pending"});
        assert!(
            check_log_state(&p, "web", "a", false)
                .unwrap_err()
                .message
                .contains("waiting to start: ContainerCreating")
        );
        p["status"]["containerStatuses"] =
            json!([{"name": "a", "state": {"waiting": {"reason": "ErrImagePull"}}}]);
        assert!(
            check_log_state(&p, "web", "a", false)
                .unwrap_err()
                .message
                .ends_with("image can't be pulled")
        );
        p["status"]["containerStatuses"] =
            json!([{"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]);
        assert!(
            check_log_state(&p, "web", "a", false)
                .unwrap_err()
                .message
                .ends_with("trying and failing to pull image")
        );
        // Crash-looping: waiting, but the last run's output is there.
        p["status"]["containerStatuses"] = json!([{"name": "a",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1}}}]);
        check_log_state(&p, "web", "a", false).unwrap();
        p["status"]["containerStatuses"] = json!([{"name": "a", "state": {}}]);
        assert!(
            check_log_state(&p, "web", "a", false)
                .unwrap_err()
                .message
                .ends_with("no logs yet")
        );
        p["status"]["containerStatuses"] = json!([{"name": "a", "state": {"running": {}}}]);
        check_log_state(&p, "web", "a", false).unwrap();
        let e = check_log_state(&p, "web", "a", true).unwrap_err();
        assert_eq!(
            e.message,
            "previous terminated container \"a\" in pod \"web\" not found"
        );
        p["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {"exitCode": 1}});
        check_log_state(&p, "web", "a", true).unwrap();
    }
}
