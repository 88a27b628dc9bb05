//! The shim's control protocol: one JSON request per connection on `shim.sock`, file
//! descriptors (an exec's stdio) riding along as `SCM_RIGHTS`, JSON replies by line.

use std::io::{BufRead, IoSlice, IoSliceMut, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

use crate::container::ProcessSpec;

/// A request to the shim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Release the created init process into the user's command.
    Start,
    /// Run a process in the container; stdio fds (3, or 1 for a TTY) come attached.
    Exec {
        /// The process.
        process: ProcessSpec,
        /// The single fd is a TTY slave.
        tty: bool,
    },
    /// Reply when the container exits.
    Wait,
    /// Open an attach session: after the reply (which says whether the container has a
    /// TTY), the connection carries [`super::frame::AttachFrame`]s both ways until the
    /// container exits or the agent hangs up.
    Attach {
        /// The session writes the container's stdin (refused unless the container was
        /// created with `stdin`).
        #[serde(default)]
        stdin: bool,
    },
}

/// A reply from the shim.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    /// Error message, if the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Exit code of the process waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Pid of an exec'd process (sent first, before its exit code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Attach: whether the container runs on a TTY (its output is then all on stdout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
}

impl Reply {
    /// A success without data.
    pub fn ok() -> Self {
        Self::default()
    }
    /// A failure.
    pub fn error(msg: impl Into<String>) -> Self {
        Self {
            error: Some(msg.into()),
            ..Self::default()
        }
    }
    /// Writes the reply as one line.
    pub fn send(&self, stream: &mut UnixStream) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(self).expect("reply serializes");
        line.push(b'\n');
        stream.write_all(&line)
    }
}

/// Sends a request with optional fds.
pub fn send_request(stream: &UnixStream, req: &Request, fds: &[RawFd]) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(req).expect("request serializes");
    line.push(b'\n');
    let iov = [IoSlice::new(&line)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(stream.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one request and the fds sent with it.
pub fn recv_request(stream: &UnixStream) -> std::io::Result<(Request, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 4]);
    let mut fds = Vec::new();
    let n = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = c {
                // SAFETY: the kernel just installed these fds in our table; we own them.
                fds.extend(
                    raw.into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        msg.bytes
    };
    let line = buf[..n].split(|b| *b == b'\n').next().unwrap_or_default();
    let req = serde_json::from_slice(line)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok((req, fds))
}

/// Reads one reply line.
pub fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "shim closed the connection",
        ));
    }
    serde_json::from_str(&line).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn request_with_fds_round_trips() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = std::fs::File::open("/dev/null").unwrap();
        let req = Request::Exec {
            process: ProcessSpec {
                args: vec!["sh".into()],
                ..Default::default()
            },
            tty: false,
        };
        send_request(&a, &req, &[f.as_raw_fd(), f.as_raw_fd()]).unwrap();
        let (back, fds) = recv_request(&b).unwrap();
        assert_eq!(back, req);
        assert_eq!(fds.len(), 2);
        let mut s = b.try_clone().unwrap();
        Reply {
            exit_code: Some(3),
            ..Reply::ok()
        }
        .send(&mut s)
        .unwrap();
        let mut r = BufReader::new(&a);
        assert_eq!(read_reply(&mut r).unwrap().exit_code, Some(3));
    }
}
