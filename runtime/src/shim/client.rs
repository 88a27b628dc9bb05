//! The runtime's side of `shim.sock`: connect, send one request (with fds), read replies.

use std::io::BufReader;
use std::os::fd::RawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::protocol::{Reply, Request, read_reply, send_request};

/// An open request whose replies can be read one by one.
pub struct ShimCall {
    reader: BufReader<UnixStream>,
}

impl ShimCall {
    /// Connects to the shim in container directory `dir` and sends `req` with `fds`.
    pub fn send(dir: &Path, req: &Request, fds: &[RawFd]) -> std::io::Result<Self> {
        let stream = UnixStream::connect(crate::container::socket_path(dir))?;
        send_request(&stream, req, fds)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// Reads the next reply (blocks).
    pub fn reply(&mut self) -> std::io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    /// The reader over the raw stream (attach streams CRI lines after the first reply).
    pub fn into_reader(self) -> BufReader<UnixStream> {
        self.reader
    }
}

/// Sends `req` and returns the first reply.
pub fn call(dir: &Path, req: &Request) -> std::io::Result<Reply> {
    ShimCall::send(dir, req, &[])?.reply()
}
