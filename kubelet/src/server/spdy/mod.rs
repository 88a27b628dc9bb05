//! A SPDY/3.1 server connection, the transport of `kubectl port-forward` (directly, or
//! tunnelled through a WebSocket by the API server): the peer opens streams, this side
//! replies to each and exchanges data on them. One task writes every outgoing frame (so
//! header blocks go through one compressor in order); the read loop hands each new stream
//! to the caller with a channel of its data.

pub mod frame;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use frame::{FLAG_FIN, FrameHead, HeaderReader, HeaderWriter, Headers, ProtocolError, kind};

/// Frames waiting to be written, at most this many (the read side waits when full).
const OUT_QUEUE: usize = 64;
/// Data chunks buffered per incoming stream.
const STREAM_QUEUE: usize = 32;

/// What the writer task sends.
enum Out {
    /// SYN_REPLY (no headers) to a stream the peer opened.
    Reply(u32),
    /// A frame already encoded.
    Frame(Vec<u8>),
}

/// Sends frames on the connection; cheap to clone.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<Out>,
}

impl Sender {
    /// Sends `bytes` on `stream` (in frames of at most the protocol's length); false once
    /// the connection is gone.
    pub async fn data(&self, stream: u32, bytes: &[u8]) -> bool {
        for chunk in bytes.chunks(frame::MAX_LENGTH) {
            let f = frame::data(stream, false, chunk);
            if self.tx.send(Out::Frame(f)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Half-closes `stream` from this side (an empty data frame with FIN).
    pub async fn close(&self, stream: u32) -> bool {
        self.tx
            .send(Out::Frame(frame::data(stream, true, &[])))
            .await
            .is_ok()
    }

    /// Resets `stream` with `status`.
    pub async fn reset(&self, stream: u32, status: u32) -> bool {
        self.tx
            .send(Out::Frame(frame::rst_stream(stream, status)))
            .await
            .is_ok()
    }
}

/// A stream the peer opened: its id, headers, and its data until the peer half-closes or
/// resets it (then the channel ends).
pub struct IncomingStream {
    /// The stream id.
    pub id: u32,
    /// Its headers (names lowercase).
    pub headers: Headers,
    /// Its data.
    pub data: mpsc::Receiver<Bytes>,
}

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The peer broke the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Reading or writing failed.
    #[error("SPDY connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves one connection until the peer goes away: every stream the peer opens is replied
/// to and handed to `on_stream` with a [`Sender`] for the connection.
pub async fn serve<S>(
    io: S,
    mut on_stream: impl FnMut(IncomingStream, Sender),
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<Out>(OUT_QUEUE);
    let writer = tokio::spawn(async move {
        let mut headers = HeaderWriter::default();
        while let Some(out) = rx.recv().await {
            let bytes = match out {
                Out::Reply(id) => {
                    let mut body = id.to_be_bytes().to_vec();
                    body.extend_from_slice(&headers.encode(&Headers::new()));
                    frame::control(kind::SYN_REPLY, 0, &body)
                }
                Out::Frame(f) => f,
            };
            wr.write_all(&bytes).await?;
            // Flush when nothing else is queued, so bursts go out together.
            if rx.is_empty() {
                wr.flush().await?;
            }
        }
        let _ = wr.shutdown().await;
        Ok::<(), std::io::Error>(())
    });
    let sender = Sender { tx: tx.clone() };
    let result = read_loop(&mut rd, &tx, &sender, &mut on_stream).await;
    drop(sender);
    drop(tx);
    // Streams still running keep the writer alive until they finish.
    let _ = writer.await;
    result
}

async fn read_loop<R: AsyncRead + Unpin>(
    rd: &mut R,
    tx: &mpsc::Sender<Out>,
    sender: &Sender,
    on_stream: &mut impl FnMut(IncomingStream, Sender),
) -> Result<(), ConnError> {
    let mut headers = HeaderReader::default();
    let mut streams: std::collections::HashMap<u32, mpsc::Sender<Bytes>> = Default::default();
    let mut last_stream = 0u32;
    loop {
        let mut head = [0u8; 8];
        match rd.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let head = FrameHead::parse(&head)?;
        let mut body = vec![0u8; head.len()];
        rd.read_exact(&mut body).await?;
        match head {
            FrameHead::Data { stream, flags, .. } => {
                let fin = flags & FLAG_FIN != 0;
                if let Some(chan) = streams.get(&stream) {
                    // A stream whose reader has gone drops what else arrives for it.
                    if !body.is_empty() && chan.send(Bytes::from(body)).await.is_err() {
                        streams.remove(&stream);
                    }
                }
                if fin {
                    streams.remove(&stream);
                }
            }
            FrameHead::Control { kind, flags, .. } => match kind {
                kind::SYN_STREAM => {
                    let id = frame::stream_id(&body)?;
                    let block = body
                        .get(10..)
                        .ok_or_else(|| ProtocolError("short SYN_STREAM".into()))?;
                    let h = headers.decode(block)?;
                    if id == 0 || id <= last_stream || id % 2 == 0 {
                        let _ = sender.reset(id, frame::status::PROTOCOL_ERROR).await;
                        continue;
                    }
                    last_stream = id;
                    if tx.send(Out::Reply(id)).await.is_err() {
                        return Ok(());
                    }
                    let (stream_tx, stream_rx) = mpsc::channel(STREAM_QUEUE);
                    if flags & FLAG_FIN == 0 {
                        streams.insert(id, stream_tx);
                    }
                    on_stream(
                        IncomingStream {
                            id,
                            headers: h,
                            data: stream_rx,
                        },
                        sender.clone(),
                    );
                }
                kind::RST_STREAM => {
                    streams.remove(&frame::stream_id(&body)?);
                }
                kind::PING => {
                    // Answer the peer's pings (odd ids from a client) with the same frame.
                    let id = frame::stream_id(&body)?;
                    if id % 2 == 1 && tx.send(Out::Frame(frame::ping(id))).await.is_err() {
                        return Ok(());
                    }
                }
                kind::GOAWAY => return Ok(()),
                kind::HEADERS => {
                    // Headers after the first carry nothing port forwarding uses, but they
                    // go through the shared decompressor all the same.
                    if let Some(block) = body.get(4..) {
                        headers.decode(block)?;
                    }
                }
                // Settings and window updates: no flow control is enforced either way,
                // as with the Go implementation Kubernetes clients use.
                kind::SETTINGS | kind::WINDOW_UPDATE => {}
                _ => {}
            },
        }
    }
}

#[cfg(test)]
mod tests;
