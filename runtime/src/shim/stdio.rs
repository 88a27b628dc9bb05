//! The container's stdio as the shim holds it: output pipes (or a pseudo-terminal's master
//! with `tty`), the writing end of stdin kept open for attach sessions (with `stdin`), and
//! the attach sessions themselves with their stdin and resize frames.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg, socketpair,
};

use super::frame::{AttachFrame, FrameDecoder};
use crate::container::StdioSpec;

type R<T> = Result<T, String>;

/// What the container's init gets (closed in the shim after fork): fds for 0, 1 and 2,
/// and with a TTY the socket to send the terminal's master back on.
pub(super) struct ChildStdio {
    /// Stdin, stdout, stderr (`/dev/null` with a TTY until the init opens it).
    pub fds: [OwnedFd; 3],
    /// The init's end of the console socket.
    pub console: Option<OwnedFd>,
}

/// The shim's ends: output readers (stdout, stderr) and the [`Stdin`] holder.
pub(super) struct ShimStdio {
    /// Read ends of stdout and stderr; with a TTY only the first (the master).
    pub outputs: [Option<OwnedFd>; 2],
    /// Stdin and the terminal.
    pub stdin: Stdin,
    /// With a TTY: where the init sends the master (see [`ShimStdio::receive_terminal`]).
    console: Option<OwnedFd>,
}

impl ShimStdio {
    /// With a TTY, takes the terminal's master from the init (which sent it before
    /// reporting ready) as output and stdin.
    pub fn receive_terminal(&mut self) -> R<()> {
        let Some(sock) = self.console.take() else {
            return Ok(());
        };
        let mut byte = [0u8; 1];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut byte)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        )
        .map_err(|e| format!("receive the terminal: {e}"))?;
        let mut master = None;
        for c in msg
            .cmsgs()
            .map_err(|e| format!("receive the terminal: {e}"))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel just installed this fd in our table; we own it.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    master.get_or_insert(fd);
                }
            }
        }
        let master = master.ok_or("the container's init sent no terminal")?;
        set_flags(&master, true)?;
        let veof = nix::sys::termios::tcgetattr(&master)
            .map(|t| t.control_chars[nix::sys::termios::SpecialCharacterIndices::VEOF as usize])
            .unwrap_or(4);
        if self.stdin.spec.stdin {
            self.stdin.fd = Some(dup(&master)?);
        }
        self.stdin.eof_byte = Some(veof);
        self.stdin.master = Some(dup(&master)?);
        self.outputs[0] = Some(master);
        Ok(())
    }
}

fn set_flags(fd: &OwnedFd, nonblock: bool) -> R<()> {
    let err = |e: Errno| format!("fcntl: {e}");
    // The shim forks the init and every exec: none may keep our ends past execve.
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(err)?;
    if nonblock {
        let fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).map_err(err)?);
        fcntl(fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK)).map_err(err)?;
    }
    Ok(())
}

fn dup(fd: &OwnedFd) -> R<OwnedFd> {
    fd.try_clone().map_err(|e| format!("dup: {e}"))
}

fn pipe() -> R<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// Sets up the container's stdio as `spec` asks; `null` is `/dev/null` opened read-write.
pub(super) fn open(spec: StdioSpec, null: &OwnedFd) -> R<(ChildStdio, ShimStdio)> {
    if spec.tty {
        // The init opens the terminal inside the container and sends back the master.
        let (shim_end, child_end) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("socketpair: {e}"))?;
        return Ok((
            ChildStdio {
                fds: [dup(null)?, dup(null)?, dup(null)?],
                console: Some(child_end),
            },
            ShimStdio {
                outputs: [None, None],
                stdin: Stdin::new(spec),
                console: Some(shim_end),
            },
        ));
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (child_in, fd) = if spec.stdin {
        let (r, w) = pipe()?;
        set_flags(&w, true)?;
        (r, Some(w))
    } else {
        (dup(null)?, None)
    };
    Ok((
        ChildStdio {
            fds: [child_in, out_w, err_w],
            console: None,
        },
        ShimStdio {
            outputs: [Some(out_r), Some(err_r)],
            stdin: Stdin {
                fd,
                ..Stdin::new(spec)
            },
            console: None,
        },
    ))
}

/// The writing end of the container's stdin, what is queued for it, and the terminal.
pub(super) struct Stdin {
    spec: StdioSpec,
    /// Open while sessions may write; `None` without `stdin` or once closed.
    fd: Option<OwnedFd>,
    pending: Vec<u8>,
    /// Close `fd` once `pending` is written.
    closing: bool,
    /// With a TTY, "closing" stdin sends the terminal's end-of-file character instead:
    /// the master also carries the output, which must go on.
    eof_byte: Option<u8>,
    /// The TTY master, for resizes.
    master: Option<OwnedFd>,
}

impl Stdin {
    fn new(spec: StdioSpec) -> Self {
        Self {
            spec,
            fd: None,
            pending: Vec::new(),
            closing: false,
            eof_byte: None,
            master: None,
        }
    }

    /// The container runs on a TTY.
    pub fn tty(&self) -> bool {
        self.spec.tty
    }

    /// The container was created with stdin.
    pub fn declared(&self) -> bool {
        self.spec.stdin
    }

    /// The fd to poll for writability while bytes wait, if any do.
    pub fn blocked_fd(&self) -> Option<RawFd> {
        match &self.fd {
            Some(fd) if !self.pending.is_empty() => Some(fd.as_raw_fd()),
            _ => None,
        }
    }

    /// Queues `data` and writes what the pipe or terminal takes now.
    pub fn write(&mut self, data: &[u8]) {
        if self.fd.is_none() || self.closing {
            return;
        }
        self.pending.extend_from_slice(data);
        self.flush();
    }

    /// Writes queued bytes until the pipe is full; closes when asked and done.
    pub fn flush(&mut self) {
        while let Some(fd) = &self.fd
            && !self.pending.is_empty()
        {
            match nix::unistd::write(fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => {}
                // EPIPE: the container closed its stdin; nothing more will be read.
                Err(_) => {
                    self.fd = None;
                    self.pending.clear();
                }
            }
        }
        if self.closing && self.pending.is_empty() {
            self.fd = None;
        }
    }

    /// A session that wrote stdin ended: with `stdinOnce` the container's stdin closes.
    pub fn session_ended(&mut self) {
        if !self.spec.stdin_once || self.fd.is_none() || self.closing {
            return;
        }
        if let Some(b) = self.eof_byte {
            self.pending.push(b);
        }
        self.closing = true;
        self.flush();
    }

    /// Resizes the terminal (the kernel signals the foreground process group).
    pub fn resize(&self, rows: u16, cols: u16) {
        if let Some(m) = &self.master {
            let _ = crate::container::resize_tty(m, rows, cols);
        }
    }
}

/// An attach session: the connection, its partly read frames, whether it writes stdin.
pub(super) struct Session {
    /// The agent's connection (blocking, with a write timeout).
    pub conn: UnixStream,
    decoder: FrameDecoder,
    /// This session writes the container's stdin and has not closed it yet.
    pub stdin: bool,
}

impl Session {
    /// A session on `conn`.
    pub fn new(conn: UnixStream, stdin: bool) -> Self {
        Self {
            conn,
            decoder: FrameDecoder::default(),
            stdin,
        }
    }

    /// Reads what the agent sent (after poll said readable) and applies it to `io`.
    /// `false` when the session is over (hang-up, error or a bad frame).
    pub fn read(&mut self, io: &mut Stdin) -> bool {
        let mut buf = [0u8; 32 * 1024];
        let n = match self.conn.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        self.decoder.feed(&buf[..n]);
        loop {
            match self.decoder.next_frame() {
                Ok(None) => return true,
                Ok(Some(AttachFrame::Stdin(data))) if self.stdin => io.write(&data),
                Ok(Some(AttachFrame::CloseStdin)) if self.stdin => {
                    self.stdin = false;
                    io.session_ended();
                }
                Ok(Some(AttachFrame::Resize { rows, cols })) => io.resize(rows, cols),
                Ok(Some(_)) => {}
                Err(_) => return false,
            }
        }
    }

    /// Ends the session, closing stdin if it was the one `stdinOnce` allows.
    pub fn end(self, io: &mut Stdin) {
        if self.stdin {
            io.session_ended();
        }
    }
}
