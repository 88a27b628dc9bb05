//! Port forwarding over SPDY against a client written from the protocol: streams opened,
//! replied to, paired by request id, data copied both ways, failures on the error stream.

use std::sync::Arc;

use skiff_runtime::pod::{PodRuntime, PodSandboxConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::frame::{self, FLAG_FIN, FrameHead, HeaderReader, HeaderWriter, Headers, kind};
use crate::fake::FakeRuntime;
use crate::server::portforward::{Target, serve};

/// The client half: its own header compressor, the server's decompressor.
struct Client {
    io: DuplexStream,
    out: HeaderWriter,
    inp: HeaderReader,
}

#[derive(Debug)]
enum Got {
    Reply(u32),
    Data(u32, Vec<u8>, bool),
    Ping(u32),
    Rst(u32),
}

impl Client {
    async fn open(&mut self, id: u32, fields: &[(&str, &str)]) {
        let h: Headers = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&self.out.encode(&h));
        self.io
            .write_all(&frame::control(kind::SYN_STREAM, 0, &body))
            .await
            .unwrap();
    }

    async fn send(&mut self, bytes: Vec<u8>) {
        self.io.write_all(&bytes).await.unwrap();
    }

    async fn next(&mut self) -> Got {
        let mut head = [0u8; 8];
        self.io.read_exact(&mut head).await.unwrap();
        let head = FrameHead::parse(&head).unwrap();
        let mut body = vec![0u8; head.len()];
        self.io.read_exact(&mut body).await.unwrap();
        match head {
            FrameHead::Data { stream, flags, .. } => Got::Data(stream, body, flags & FLAG_FIN != 0),
            FrameHead::Control { kind: k, .. } => {
                let id = frame::stream_id(&body).unwrap();
                match k {
                    kind::SYN_REPLY => {
                        assert!(self.inp.decode(&body[4..]).unwrap().is_empty());
                        Got::Reply(id)
                    }
                    kind::PING => Got::Ping(id),
                    kind::RST_STREAM => Got::Rst(id),
                    other => panic!("unexpected control frame {other}"),
                }
            }
        }
    }

    /// Frames until both `a` and `b` are finished by the server: (data of a, data of b).
    async fn until_finished(&mut self, a: u32, b: u32) -> (Vec<u8>, Vec<u8>, Vec<u32>) {
        let (mut da, mut db, mut replies) = (Vec::new(), Vec::new(), Vec::new());
        let (mut fa, mut fb) = (false, false);
        while !(fa && fb) {
            match tokio::time::timeout(std::time::Duration::from_secs(10), self.next())
                .await
                .expect("the server answers")
            {
                Got::Reply(id) => replies.push(id),
                Got::Data(id, bytes, fin) if id == a => {
                    da.extend(bytes);
                    fa |= fin;
                }
                Got::Data(id, bytes, fin) if id == b => {
                    db.extend(bytes);
                    fb |= fin;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        (da, db, replies)
    }
}

async fn setup() -> (Client, Arc<FakeRuntime>) {
    let runtime = Arc::new(FakeRuntime::default());
    let sandbox = runtime
        .run_pod_sandbox(PodSandboxConfig {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let target = Target {
        runtime: runtime.clone(),
        sandbox,
        pod: "web".into(),
        uid: "u1".into(),
    };
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(serve(server, target));
    (
        Client {
            io: client,
            out: HeaderWriter::default(),
            inp: HeaderReader::default(),
        },
        runtime,
    )
}

#[tokio::test]
async fn a_stream_pair_becomes_one_connection_to_the_pods_port() {
    let (mut c, runtime) = setup().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    runtime.set_port_target(8080, listener.local_addr().unwrap());
    let pod_side = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        // A reply larger than one read, so it spans several data frames.
        let reply: Vec<u8> = got.iter().cycle().take(100_000).copied().collect();
        s.write_all(&reply).await.unwrap();
        got
    });
    c.open(
        1,
        &[
            ("streamtype", "error"),
            ("port", "8080"),
            ("requestid", "0"),
        ],
    )
    .await;
    // The client closes its side of the error stream at once, as kubectl does.
    c.send(frame::data(1, true, &[])).await;
    c.open(
        3,
        &[("streamtype", "data"), ("port", "8080"), ("requestid", "0")],
    )
    .await;
    c.send(frame::data(3, false, b"hello ")).await;
    c.send(frame::data(3, true, b"pod")).await;
    let (errors, data, replies) = c.until_finished(1, 3).await;
    assert_eq!(replies, [1, 3]);
    assert!(errors.is_empty(), "{}", String::from_utf8_lossy(&errors));
    assert_eq!(pod_side.await.unwrap(), b"hello pod");
    assert_eq!(data.len(), 100_000);
    assert!(data.starts_with(b"hello podhello pod"));
}

#[tokio::test]
async fn a_port_nothing_listens_on_is_reported_on_the_error_stream() {
    let (mut c, _) = setup().await;
    c.open(
        1,
        &[("streamtype", "error"), ("port", "81"), ("requestid", "7")],
    )
    .await;
    c.open(
        3,
        &[("streamtype", "data"), ("port", "81"), ("requestid", "7")],
    )
    .await;
    let (errors, data, _) = c.until_finished(1, 3).await;
    let text = String::from_utf8(errors).unwrap();
    assert!(
        text.starts_with("error forwarding port 81 to pod web, uid u1: "),
        "{text}"
    );
    assert!(data.is_empty());
}

#[tokio::test]
async fn pings_are_answered_and_pairs_without_request_ids_match_by_stream_order() {
    let (mut c, runtime) = setup().await;
    c.send(frame::ping(5)).await;
    assert!(matches!(c.next().await, Got::Ping(5)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    runtime.set_port_target(9000, listener.local_addr().unwrap());
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"banner").await.unwrap();
    });
    c.open(1, &[("streamtype", "error"), ("port", "9000")])
        .await;
    c.open(3, &[("streamtype", "data"), ("port", "9000")]).await;
    c.send(frame::data(3, true, &[])).await;
    let (errors, data, _) = c.until_finished(1, 3).await;
    assert!(errors.is_empty());
    assert_eq!(data, b"banner");
    // A stream id that does not grow is refused.
    c.open(3, &[("streamtype", "data"), ("port", "9000")]).await;
    assert!(matches!(c.next().await, Got::Rst(3)));
}
