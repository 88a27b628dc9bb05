//! `exec` and `attach` over WebSocket: parse the stream options, connect the command's
//! stdio (pipes, or a TTY) or the container's attach session in its shim to channel
//! frames, and finish with the exit `Status`.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use skiff_runtime::container::{
    AttachSession, ContainerError, ExecRequest, ExecStdio, ProcessSpec,
};
use skiff_runtime::pod::{PodRuntime, RuntimeError};
use skiff_runtime::shim::frame::{AttachFrame, FrameDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use super::channel::{self, ClientFrame};
use super::{HttpError, NodeState};

/// How long output may still arrive after the command exited (a background child can hold
/// the pipes open forever).
const DRAIN: Duration = Duration::from_millis(500);
/// How long to wait for the client's close reply before dropping the connection.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The query of an exec or attach request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// argv (`command=` repeated); empty for attach.
    pub command: Vec<String>,
    /// Forward the client's stdin.
    pub stdin: bool,
    /// Send stdout.
    pub stdout: bool,
    /// Send stderr (merged into stdout with a TTY).
    pub stderr: bool,
    /// Allocate a TTY.
    pub tty: bool,
}

impl StreamOptions {
    /// Parses `command`, `stdin`, `stdout`, `stderr` and `tty` from query pairs.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, HttpError> {
        let mut o = StreamOptions::default();
        for (k, v) in pairs {
            let on = matches!(v.as_str(), "1" | "true" | "True");
            match k.as_str() {
                "command" => o.command.push(v.clone()),
                "stdin" => o.stdin = on,
                "stdout" => o.stdout = on,
                "stderr" => o.stderr = on,
                "tty" => o.tty = on,
                _ => {}
            }
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err(HttpError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        if o.tty {
            o.stderr = false;
        }
        Ok(o)
    }
}

fn parse_query(q: Option<String>) -> Vec<(String, String)> {
    q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Picks a channel subprotocol or refuses the upgrade.
fn negotiate(ws: WebSocketUpgrade) -> Result<(WebSocketUpgrade, bool), HttpError> {
    let ws = ws.protocols(channel::PROTOCOLS);
    let v5 = match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(channel::V5) => true,
        Some(_) => false,
        None => {
            return Err(HttpError::bad_request(format!(
                "no supported WebSocket subprotocol was offered; this server speaks {}",
                channel::PROTOCOLS.join(", ")
            )));
        }
    };
    Ok((ws, v5))
}

/// `GET|POST /exec/{ns}/{pod}/{container}?command=..&stdin=..&stdout=..&stderr=..&tty=..`
pub async fn exec(
    ws: WebSocketUpgrade,
    State(state): State<NodeState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let opts = StreamOptions::parse(&parse_query(query))?;
    if opts.command.is_empty() {
        return Err(HttpError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let id = state.container(&ns, &pod, &container)?;
    let runtime = state.lookup.runtime();
    let process = exec_process(&*runtime, &id, opts.command.clone()).await;
    let (ws, v5) = negotiate(ws)?;
    tracing::info!(pod = %format!("{ns}/{pod}"), container = %container, command = ?opts.command, "exec");
    Ok(ws.on_upgrade(move |socket| run_exec(socket, v5, runtime, id, process, opts)))
}

/// The process an exec of `command` in container `id` runs: the container's own env, user
/// and working directory as the runtime has them, or the default process when it has none
/// (the exec itself then reports what is wrong with the container).
pub async fn exec_process(runtime: &dyn PodRuntime, id: &str, command: Vec<String>) -> ProcessSpec {
    match runtime.exec_process(id, command.clone()).await {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(container = %id, error = %e, "no process settings for exec; using the defaults");
            super::default_exec_process(command)
        }
    }
}

/// `GET|POST /attach/{ns}/{pod}/{container}?stdin=..&stdout=..&stderr=..&tty=..`: the
/// container's output from now on until it stops, and with `stdin` its standard input and
/// terminal size. The shim holds the container's stdin and terminal, so a session reaches
/// it through the runtime; a container created without `stdin: true` refuses `stdin`.
pub async fn attach(
    ws: WebSocketUpgrade,
    State(state): State<NodeState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let opts = StreamOptions::parse(&parse_query(query))?;
    let id = state.container(&ns, &pod, &container)?;
    let runtime = state.lookup.runtime();
    let (ws, v5) = negotiate(ws)?;
    tracing::info!(pod = %format!("{ns}/{pod}"), container = %container, stdin = opts.stdin, "attach");
    // The session opens after the upgrade: a refusal before it would make kubectl retry
    // over SPDY and report that failure instead. The error channel carries it.
    Ok(ws.on_upgrade(move |socket| async move {
        match runtime.attach(&id, opts.stdin).await {
            Ok(session) => run_attach(socket, v5, session, opts).await,
            Err(e) => {
                let why = match e {
                    RuntimeError::Container(ContainerError::Shim { message, .. }) => message,
                    other => other.to_string(),
                };
                let msg = format!("cannot attach to container {container:?} in pod {pod:?}: {why}");
                let (mut sink, mut stream) = socket.split();
                // Read until the client's close so the status is not lost to a reset.
                let closing = tokio::spawn(async move {
                    while let Some(Ok(m)) = stream.next().await {
                        if matches!(m, Message::Close(_)) {
                            break;
                        }
                    }
                });
                finish(&mut sink, channel::failure_status(&msg), Some(closing)).await;
            }
        }
    }))
}

type Sink = SplitSink<WebSocket, Message>;

/// The exec'd process's stdio, and our ends of it.
struct ExecIo {
    stdio: ExecStdio,
    stdin: Option<pipe::Sender>,
    outputs: Vec<(u8, pipe::Receiver)>,
    /// The TTY master, kept for resizes.
    tty: Option<OwnedFd>,
}

fn dev_null() -> std::io::Result<OwnedFd> {
    Ok(std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?
        .into())
}

fn os_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

impl ExecIo {
    fn open(opts: &StreamOptions) -> std::io::Result<Self> {
        if opts.tty {
            let pty = nix::pty::openpty(None, None)?;
            let flags = nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_GETFL)?;
            let flags =
                nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFL(flags))?;
            let reader = pipe::Receiver::from_owned_fd_unchecked(pty.master.try_clone()?)?;
            let stdin = match opts.stdin {
                true => Some(pipe::Sender::from_owned_fd_unchecked(
                    pty.master.try_clone()?,
                )?),
                false => None,
            };
            return Ok(Self {
                stdio: ExecStdio::Tty(pty.slave),
                stdin,
                outputs: vec![(channel::STDOUT, reader)],
                tty: Some(pty.master),
            });
        }
        let mut outputs = Vec::new();
        let mut output = |wanted: bool, ch: u8| -> std::io::Result<OwnedFd> {
            if !wanted {
                return dev_null();
            }
            let (r, w) = os_pipe()?;
            outputs.push((ch, pipe::Receiver::from_owned_fd(r)?));
            Ok(w)
        };
        let stdout = output(opts.stdout, channel::STDOUT)?;
        let stderr = output(opts.stderr, channel::STDERR)?;
        let (stdin_fd, stdin) = match opts.stdin {
            true => {
                let (r, w) = os_pipe()?;
                (Some(r), Some(pipe::Sender::from_owned_fd(w)?))
            }
            false => (None, None),
        };
        Ok(Self {
            stdio: ExecStdio::Fds {
                stdin: stdin_fd,
                stdout,
                stderr,
            },
            stdin,
            outputs,
            tty: None,
        })
    }
}

async fn run_exec(
    socket: WebSocket,
    v5: bool,
    runtime: Arc<dyn PodRuntime>,
    id: String,
    process: ProcessSpec,
    opts: StreamOptions,
) {
    let (mut sink, stream) = socket.split();
    let io = match ExecIo::open(&opts) {
        Ok(io) => io,
        Err(e) => {
            finish(
                &mut sink,
                channel::failure_status(&format!("set up the exec's stdio: {e}")),
                None,
            )
            .await;
            return;
        }
    };
    let command = process.args.clone();
    let exec = tokio::spawn({
        let id = id.clone();
        async move {
            runtime
                .exec(
                    &id,
                    ExecRequest {
                        process,
                        stdio: io.stdio,
                    },
                )
                .await
        }
    });
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(16);
    for (ch, reader) in io.outputs {
        tokio::spawn(pump(reader, ch, out_tx.clone()));
    }
    drop(out_tx);
    let input = tokio::spawn(read_input(stream, v5, io.stdin, io.tty));
    let Some(result) = relay(&mut sink, &mut out_rx, exec).await else {
        tracing::debug!(container = %id, "exec client went away");
        input.abort();
        return;
    };
    let status = match result {
        Ok(code) => channel::exit_status(code, &command),
        Err(message) => channel::failure_status(&message),
    };
    finish(&mut sink, status, Some(input)).await;
}

/// Forwards output frames until the command has exited and its output is drained. `None`
/// when the client is gone.
async fn relay(
    sink: &mut Sink,
    out_rx: &mut mpsc::Receiver<Vec<u8>>,
    mut exec: tokio::task::JoinHandle<skiff_runtime::pod::Result<i32>>,
) -> Option<Result<i32, String>> {
    let mut result: Option<Result<i32, String>> = None;
    let mut outputs_open = true;
    // Armed once the command exits.
    let drain = tokio::time::sleep(Duration::from_secs(86400));
    tokio::pin!(drain);
    loop {
        tokio::select! {
            frame = out_rx.recv(), if outputs_open => match frame {
                Some(f) => sink.send(Message::Binary(f.into())).await.ok()?,
                None => outputs_open = false,
            },
            done = &mut exec, if result.is_none() => {
                result = Some(match done {
                    Ok(Ok(code)) => Ok(code),
                    Ok(Err(e)) => Err(format!("exec failed: {e}")),
                    Err(e) => Err(format!("exec task failed: {e}")),
                });
                drain.as_mut().reset(tokio::time::Instant::now() + DRAIN);
            },
            _ = &mut drain, if result.is_some() && outputs_open => outputs_open = false,
        }
        if !outputs_open && result.is_some() {
            return result;
        }
    }
}

/// Sends the final status on channel 3 and closes with 1000, then waits briefly for the
/// client's close so the status is not lost to a reset.
async fn finish(
    sink: &mut Sink,
    status: serde_json::Value,
    input: Option<tokio::task::JoinHandle<()>>,
) {
    let frame = channel::encode(channel::STATUS, status.to_string().as_bytes());
    if sink.send(Message::Binary(frame.into())).await.is_err() {
        return;
    }
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    if let Some(input) = input {
        let abort = input.abort_handle();
        if tokio::time::timeout(CLOSE_WAIT, input).await.is_err() {
            abort.abort();
        }
    }
}

async fn pump(mut reader: pipe::Receiver, ch: u8, out: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            // EIO: every holder of the TTY's slave side is gone.
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.send(channel::encode(ch, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads client frames: stdin bytes, stdin close, resizes. Ends when the client closes.
async fn read_input(
    mut stream: SplitStream<WebSocket>,
    v5: bool,
    mut stdin: Option<pipe::Sender>,
    tty: Option<OwnedFd>,
) {
    while let Some(Ok(msg)) = stream.next().await {
        let data = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => break,
            _ => continue,
        };
        match channel::decode_client(&data, v5) {
            Ok(ClientFrame::Stdin(bytes)) => {
                if let Some(w) = stdin.as_mut()
                    && w.write_all(&bytes).await.is_err()
                {
                    stdin = None;
                }
            }
            Ok(ClientFrame::CloseStdin) => stdin = None,
            Ok(ClientFrame::Resize { width, height }) => {
                if let Some(master) = &tty
                    && let Err(e) = skiff_runtime::container::resize_tty(master, height, width)
                {
                    tracing::debug!(error = %e, "resize failed");
                }
            }
            Ok(ClientFrame::Ignored) => {}
            Err(e) => tracing::debug!(error = %e, "bad client frame"),
        }
    }
}

async fn run_attach(socket: WebSocket, v5: bool, session: AttachSession, opts: StreamOptions) {
    let (mut sink, stream) = socket.split();
    let tty = session.tty;
    let shim = match session
        .stream
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(session.stream))
    {
        Ok(s) => s,
        Err(e) => {
            let status = channel::failure_status(&format!("attach: {e}"));
            finish(&mut sink, status, None).await;
            return;
        }
    };
    let (mut from_shim, to_shim) = shim.into_split();
    let mut input = tokio::spawn(attach_input(stream, v5, opts.stdin, to_shim));
    let mut frames = FrameDecoder::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            read = from_shim.read(&mut buf) => {
                // EOF: the container has exited and its output is drained.
                let n = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                frames.feed(&buf[..n]);
                while let Ok(Some(frame)) = frames.next_frame() {
                    let (ch, data) = match frame {
                        AttachFrame::Stdout(d) => (channel::STDOUT, d),
                        // A TTY has one output; without one, stderr keeps its channel.
                        AttachFrame::Stderr(d) if tty => (channel::STDOUT, d),
                        AttachFrame::Stderr(d) => (channel::STDERR, d),
                        _ => continue,
                    };
                    let wanted = if ch == channel::STDERR { opts.stderr } else { opts.stdout };
                    if wanted
                        && sink.send(Message::Binary(channel::encode(ch, &data).into())).await.is_err()
                    {
                        input.abort();
                        return;
                    }
                }
            }
            // The client went away: dropping our ends closes the session in the shim.
            _ = &mut input => return,
        }
    }
    finish(&mut sink, channel::exit_status(0, &[]), Some(input)).await;
}

/// Forwards the client's stdin, stdin close and resizes to the shim as attach frames until
/// the client closes the WebSocket.
async fn attach_input(
    mut stream: SplitStream<WebSocket>,
    v5: bool,
    stdin: bool,
    mut shim: tokio::net::unix::OwnedWriteHalf,
) {
    let mut shim_open = true;
    while let Some(Ok(msg)) = stream.next().await {
        let data = match msg {
            Message::Binary(b) => b,
            Message::Close(_) => break,
            _ => continue,
        };
        let frame = match channel::decode_client(&data, v5) {
            Ok(ClientFrame::Stdin(bytes)) if stdin => AttachFrame::Stdin(bytes),
            Ok(ClientFrame::CloseStdin) if stdin => AttachFrame::CloseStdin,
            Ok(ClientFrame::Resize { width, height }) => AttachFrame::Resize {
                rows: height,
                cols: width,
            },
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "bad client frame");
                continue;
            }
        };
        // The shim is gone once the container exits; the output side then finishes.
        if shim_open && shim.write_all(&frame.encode()).await.is_err() {
            shim_open = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        parse_query(Some(q.to_string()))
    }

    #[test]
    fn parses_stream_options() {
        let o = StreamOptions::parse(&pairs(
            "command=sh&command=-c&command=echo%20hi&stdin=true&stdout=1&stderr=true",
        ))
        .unwrap();
        assert_eq!(o.command, vec!["sh", "-c", "echo hi"]);
        assert!(o.stdin && o.stdout && o.stderr && !o.tty);
        // A TTY merges stderr into stdout.
        let o = StreamOptions::parse(&pairs(
            "command=sh&stdin=true&stdout=true&stderr=true&tty=true",
        ))
        .unwrap();
        assert!(o.tty && !o.stderr);
        assert!(StreamOptions::parse(&pairs("command=sh")).is_err());
    }
}
