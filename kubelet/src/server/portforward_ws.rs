//! Port forwarding over a WebSocket with the channel protocol (`v4.channel.k8s.io`), as
//! the kubelet serves it for clients such as kube-rs: `?ports=80,8080` names the pod's
//! ports; port `i` has data channel `2i` and error channel `2i+1`; the server opens each
//! channel with a frame of the port number (two bytes, little-endian), then copies the data
//! channel to one TCP connection to that port and reports a failure on the error channel.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use skiff_api::remotecommand::V4;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::HttpError;
use super::portforward::Target;

/// The ports of `?ports=` (comma-separated, or repeated).
pub fn parse_ports(query: Option<&str>) -> Result<Vec<u16>, HttpError> {
    let mut ports = Vec::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if k != "ports" {
            continue;
        }
        for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => ports.push(n),
                _ => {
                    return Err(HttpError::bad_request(format!(
                        "unable to parse \"{p}\" as a port: must be between 1 and 65535"
                    )));
                }
            }
        }
    }
    if ports.is_empty() {
        return Err(HttpError::bad_request(
            "query parameter \"port\" is required",
        ));
    }
    Ok(ports)
}

/// Accepts the WebSocket (the binary channel protocol only) and forwards `ports`.
pub fn upgrade(
    ws: WebSocketUpgrade,
    ports: Vec<u16>,
    target: Target,
) -> Result<Response, HttpError> {
    let offered = ws
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .any(|p| p.trim() == V4);
    if !offered {
        return Err(HttpError::bad_request(format!(
            "no supported WebSocket subprotocol was offered; port forwarding over a WebSocket speaks {V4}"
        )));
    }
    Ok(ws
        .protocols([V4])
        .on_upgrade(move |socket| serve(socket, ports, target)))
}

async fn serve(socket: WebSocket, ports: Vec<u16>, target: Target) {
    let (mut tx, mut rx) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if tx.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        let _ = tx.send(Message::Close(None)).await;
    });
    let mut to_pod = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        let lo_hi = port.to_le_bytes();
        for ch in [data, error] {
            let _ = out_tx.send(vec![ch, lo_hi[0], lo_hi[1]]).await;
        }
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(32);
        to_pod.push(in_tx);
        tokio::spawn(forward(
            *port,
            data,
            error,
            in_rx,
            out_tx.clone(),
            target.clone(),
        ));
    }
    drop(out_tx);
    while let Some(Ok(msg)) = rx.next().await {
        let bytes = match msg {
            Message::Binary(b) => b.to_vec(),
            Message::Close(_) => break,
            _ => continue,
        };
        let Some((&ch, payload)) = bytes.split_first() else {
            continue;
        };
        // Data channels only; what a client writes on an error channel means nothing.
        if ch % 2 == 0
            && let Some(sink) = to_pod.get(usize::from(ch / 2))
            && !payload.is_empty()
        {
            let _ = sink.send(payload.to_vec()).await;
        }
    }
    drop(to_pod);
    let _ = writer.await;
}

async fn forward(
    port: u16,
    data: u8,
    error: u8,
    mut from_client: mpsc::Receiver<Vec<u8>>,
    out: mpsc::Sender<Vec<u8>>,
    target: Target,
) {
    let socket = match target.runtime.port_forward(&target.sandbox, port).await {
        Ok(s) => s,
        Err(e) => {
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: {e}",
                target.pod, target.uid
            );
            let mut frame = vec![error];
            frame.extend_from_slice(msg.as_bytes());
            let _ = out.send(frame).await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = socket.into_split();
    let up = async {
        while let Some(chunk) = from_client.recv().await {
            if to_pod.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_pod.read(&mut buf[1..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf[0] = data;
                    if out.send(buf[..=n].to_vec()).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    // The channel protocol has no half-close: the pod closing its side ends the port.
    tokio::select! {
        () = down => {}
        () = async { up.await; std::future::pending::<()>().await } => {}
    }
}
