//! `exec POD [-c C] [-i] [-t] -- CMD...`: the remote-command WebSocket protocol
//! (`v5.channel.k8s.io`, falling back to v4) over `pods/{name}/exec`; the remote exit code
//! becomes ours. With `-t` the local terminal goes raw and size changes are sent.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
// Channel numbers and frames of the remote-command protocol are the shared rule in skiff-api.
use skiff_api::remotecommand::{self as channel, TerminalSize, close_stdin_frame, frame};
use tokio_tungstenite::tungstenite::Message;

use super::Ctx;

/// Flags of `exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// `POD` or `pod/POD`.
    pub pod: String,
    /// The command and its arguments, after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// The container; defaults to the annotated default container, else the first.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// The resize frame for a terminal of `width` columns and `height` rows.
pub fn resize_frame(width: u16, height: u16) -> Vec<u8> {
    TerminalSize { width, height }.frame()
}

/// The exit code a final Status means: 0 for Success, the `ExitCode` cause for
/// `NonZeroExitCode`, else an error with the Status message.
pub fn exit_code(status: &Value) -> Result<i32> {
    if status["status"] == "Success" {
        return Ok(0);
    }
    if status["reason"] == "NonZeroExitCode" {
        let code = status["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.parse::<i32>().ok());
        if let Some(code) = code {
            return Ok(code);
        }
        bail!(
            "Error executing remote command: {}",
            status["message"].as_str().unwrap_or_default()
        );
    }
    bail!("{}", status["message"].as_str().unwrap_or("unknown error"))
}

/// The exec query: `command` once per word, then the stream switches.
pub fn query(command: &[String], container: &str, stdin: bool, tty: bool) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for c in command {
        q.append_pair("command", c);
    }
    q.append_pair("container", container);
    q.append_pair("stdin", if stdin { "true" } else { "false" });
    q.append_pair("stdout", "true");
    // A terminal merges stderr into stdout.
    q.append_pair("stderr", if tty { "false" } else { "true" });
    q.append_pair("tty", if tty { "true" } else { "false" });
    q.finish()
}

/// Puts the terminal in raw mode until dropped.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter() -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = rustix::termios::tcsetattr(
            stdin.as_fd(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

fn terminal_size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout().as_fd()).ok()?;
    Some((ws.ws_col, ws.ws_row))
}

/// Runs `exec`.
pub async fn run(ctx: &Ctx, args: ExecArgs) -> Result<ExitCode> {
    let (target, command) = (&args.pod, &args.command);
    if command.is_empty() {
        bail!("you must specify at least one command for the container");
    }
    let name = target
        .strip_prefix("pod/")
        .or(target.strip_prefix("pods/"))
        .unwrap_or(target);
    let base = format!("/api/v1/namespaces/{}/pods/{name}", ctx.namespace);
    let req = http::Request::get(&base).body(Vec::new())?;
    let pod: Value = serde_json::from_str(&ctx.client.request_text(req).await?)?;
    if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
        bail!("cannot exec into a container in a completed pod; current phase is {phase}");
    }
    let container = match &args.container {
        // The server checks the name, as with kubectl.
        Some(c) => c.clone(),
        None => {
            let (c, notice) = super::logs::default_container(&pod)?;
            if let Some(n) = notice.filter(|_| !args.quiet)
                && n.starts_with("Defaulted")
            {
                eprintln!("{n}");
            }
            c
        }
    };
    let mut tty = args.tty && args.stdin;
    if tty && !rustix::termios::isatty(std::io::stdin().as_fd()) {
        if !args.quiet {
            eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        }
        tty = false;
    }
    let url = format!(
        "{base}/exec?{}",
        query(command, &container, args.stdin, tty)
    );
    let req = http::Request::get(url).body(Vec::new())?;
    let conn = ctx.client.connect(req).await?;
    let v5 = conn.supports_stream_close();
    let (mut tx, mut rx) = conn.into_stream().split();
    let raw = if tty { Some(RawMode::enter()?) } else { None };
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    // Stdin and resizes feed one channel so one task owns the WebSocket's sending half.
    if args.stdin {
        let out_tx = out_tx.clone();
        // A thread of its own, not tokio's blocking pool: a read blocked on a terminal
        // cannot be cancelled, and the runtime would wait for it at exit, keeping the
        // process alive after the remote command has ended.
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = vec![0u8; 8192];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out_tx
                            .blocking_send(frame(channel::STDIN, &buf[..n]))
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            if v5 {
                let _ = out_tx.blocking_send(close_stdin_frame());
            }
        });
    }
    if tty {
        if let Some((w, h)) = terminal_size() {
            let _ = out_tx.send(resize_frame(w, h)).await;
        }
        let out_tx = out_tx.clone();
        tokio::spawn(async move {
            let Ok(mut winch) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some((w, h)) = terminal_size()
                    && out_tx.send(resize_frame(w, h)).await.is_err()
                {
                    return;
                }
            }
        });
    }
    drop(out_tx);
    let sender = tokio::spawn(async move {
        while let Some(f) = out_rx.recv().await {
            if tx.send(Message::binary(f)).await.is_err() {
                break;
            }
        }
    });
    let mut status: Option<Value> = None;
    while let Some(msg) = rx.next().await {
        let msg = msg.context("reading from the exec stream")?;
        let Message::Binary(data) = msg else {
            continue;
        };
        let Some((&ch, payload)) = data.split_first() else {
            continue;
        };
        match ch {
            channel::STDOUT => {
                let mut o = std::io::stdout().lock();
                o.write_all(payload)?;
                o.flush()?;
            }
            channel::STDERR => {
                let mut e = std::io::stderr().lock();
                e.write_all(payload)?;
                e.flush()?;
            }
            channel::STATUS if !payload.is_empty() => {
                status = Some(serde_json::from_slice(payload).context("decoding the exec status")?);
                break;
            }
            _ => {}
        }
    }
    sender.abort();
    drop(raw);
    let code = match status {
        Some(s) => exit_code(&s)?,
        None => 0,
    };
    if code != 0 {
        if !args.quiet {
            eprintln!("command terminated with exit code {code}");
        }
        return Ok(ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_carry_the_channel_first() {
        assert_eq!(frame(channel::STDIN, b"ls\n"), b"\x00ls\n");
        assert_eq!(close_stdin_frame(), [255, 0]);
        let r = resize_frame(120, 40);
        assert_eq!(r[0], 4);
        let body: Value = serde_json::from_slice(&r[1..]).unwrap();
        assert_eq!(body, json!({"Width": 120, "Height": 40}));
    }

    #[test]
    fn status_gives_the_exit_code() {
        assert_eq!(exit_code(&json!({"status": "Success"})).unwrap(), 0);
        let failed = json!({"status": "Failure", "reason": "NonZeroExitCode",
            "message": "command terminated with non-zero exit code: exit status 3",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}});
        assert_eq!(exit_code(&failed).unwrap(), 3);
        let other = json!({"status": "Failure", "reason": "InternalError",
            "message": "container not found (\"x\")"});
        assert_eq!(
            exit_code(&other).unwrap_err().to_string(),
            "container not found (\"x\")"
        );
    }

    #[test]
    fn query_repeats_command_words() {
        let cmd = vec!["sh".to_string(), "-c".to_string(), "echo a b".to_string()];
        assert_eq!(
            query(&cmd, "app", true, false),
            "command=sh&command=-c&command=echo+a+b&container=app&stdin=true&stdout=true&stderr=true&tty=false"
        );
        assert!(query(&cmd, "app", true, true).contains("stderr=false&tty=true"));
    }
}
