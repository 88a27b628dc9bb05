//! `attach`: open a session with a running container's shim that streams its output and,
//! when the container was created with stdin, writes its stdin and resizes its terminal.
//! The session speaks [`crate::shim::frame`] over the returned socket.

use std::io::Read;
use std::os::unix::net::UnixStream;

use super::{Container, ContainerError, Result};
use crate::shim::protocol::{Reply, Request, send_request};

/// An open attach session.
#[derive(Debug)]
pub struct AttachSession {
    /// The connection to the shim: write [`crate::shim::frame::AttachFrame`]s (stdin,
    /// close stdin, resize), read output frames; EOF when the container has exited.
    /// Closing it ends the session.
    pub stream: UnixStream,
    /// The container runs on a TTY (all output comes as stdout).
    pub tty: bool,
}

impl Container {
    /// Attaches to the running container; `stdin` asks to write its stdin, which the shim
    /// refuses unless the container was created with `stdin`.
    pub fn attach(&mut self, stdin: bool) -> Result<AttachSession> {
        self.reload()?;
        if self.state.status != super::Status::Running {
            return Err(self.refuse("attach"));
        }
        let shim_err = |message: String| ContainerError::Shim {
            id: self.spec.id.clone(),
            message,
        };
        let mut stream = UnixStream::connect(self.socket_path())
            .map_err(|e| shim_err(format!("attach: {e}")))?;
        send_request(&stream, &Request::Attach { stdin }, &[])
            .map_err(|e| shim_err(format!("attach: {e}")))?;
        let reply = read_reply_line(&mut stream).map_err(|e| shim_err(format!("attach: {e}")))?;
        if let Some(e) = reply.error {
            return Err(shim_err(e));
        }
        Ok(AttachSession {
            stream,
            tty: reply.tty.unwrap_or(false),
        })
    }
}

/// Reads the reply line byte by byte: frames follow it at once on the same socket, and a
/// buffered reader would swallow some.
fn read_reply_line(stream: &mut UnixStream) -> std::io::Result<Reply> {
    let mut line = Vec::with_capacity(64);
    let mut b = [0u8; 1];
    loop {
        if stream.read(&mut b)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "shim closed the connection",
            ));
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > 64 * 1024 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "reply line too long",
            ));
        }
    }
    serde_json::from_slice(&line)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
