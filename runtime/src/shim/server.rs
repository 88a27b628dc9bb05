//! The shim's life: fork the container's init into a new PID namespace, report creation,
//! then one single-threaded poll loop over SIGCHLD, the control socket and the output
//! pipes until init exits; then record the exit and go.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use super::frame::output_frame;
use super::log::{LineSplitter, Stream, format_record};
use super::protocol::{Reply, Request, recv_request};
use super::stdio::{self, Session, Stdin};
use crate::cgroups::{self, CgroupManager};
use crate::container::init::{InitPipes, release, run_exec, run_init};
use crate::container::state::{ContainerState, Status, proc_start_time};
use crate::container::{ContainerSpec, IdMapping, ProcessSpec, socket_path};
use crate::syscall::{LinuxSyscall, Syscall};

type R<T> = Result<T, String>;

fn pipe() -> R<(OwnedFd, OwnedFd)> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

/// Resets what a forked child inherited from the shim's event loop.
fn child_reset(stdio: [&OwnedFd; 3]) {
    let _ = SigSet::empty().thread_set_mask();
    // SAFETY: restoring the default disposition in the single-threaded child; the shim
    // ignores SIGPIPE, and an ignored signal would survive execve into the container.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
    for (i, fd) in stdio.iter().enumerate() {
        // SAFETY: dup2 of a valid fd onto 0..2 in the freshly forked, single-threaded child.
        unsafe { libc::dup2(fd.as_raw_fd(), i as i32) };
    }
}

fn exit_code(status: WaitStatus) -> Option<(i32, bool)> {
    match status {
        WaitStatus::Exited(_, code) => Some((code, false)),
        WaitStatus::Signaled(_, sig, _) => Some((128 + sig as i32, sig == Signal::SIGKILL)),
        _ => None,
    }
}

struct Output {
    fd: Option<OwnedFd>,
    stream: Stream,
    split: LineSplitter,
}

struct Shim {
    dir: std::path::PathBuf,
    spec: ContainerSpec,
    state: ContainerState,
    cgroup: Option<Box<dyn CgroupManager>>,
    init: Pid,
    go: Option<OwnedFd>,
    log: std::fs::File,
    outputs: [Output; 2],
    stdin: Stdin,
    attached: Vec<Session>,
    waiters: Vec<UnixStream>,
    execs: HashMap<i32, UnixStream>,
    exited: Option<(i32, bool)>,
}

/// Creates the container and serves it until it exits.
pub fn run(dir: &Path) -> R<()> {
    let spec: ContainerSpec = std::fs::read(dir.join("config.json"))
        .map_err(|e| format!("read config: {e}"))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("parse config: {e}")))?;
    let mut state = ContainerState::load(dir).map_err(|e| e.to_string())?;
    let sys = LinuxSyscall;
    // Children of the shim (init and every exec) are born into the container's PID ns.
    sys.unshare(CloneFlags::CLONE_NEWPID)
        .map_err(|e| e.to_string())?;
    let cgroup = cgroups::manager(&spec.cgroup);
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))?;
    let null: OwnedFd = null.into();
    // A gone agent must cost a failed write, not the shim.
    // SAFETY: setting a signal to ignored installs no handler code.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }
        .map_err(|e| format!("ignore SIGPIPE: {e}"))?;
    let (child_io, shim_io) = stdio::open(spec.stdio, &null)?;
    let (go_r, go_w) = pipe()?;
    let (st_r, st_w) = pipe()?;
    // SAFETY: the shim is single-threaded; the child only runs the init path and execs.
    let init = match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let [i, o, e] = &child_io.fds;
            child_reset([i, o, e]);
            drop((shim_io, go_w, st_r));
            run_init(
                &sys,
                &spec,
                InitPipes {
                    go: go_r,
                    status: st_w,
                    console: child_io.console,
                },
            )
        }
        ForkResult::Parent { child } => child,
    };
    drop((child_io, go_r, st_w));
    let mut shim_io = shim_io;
    let fail = |msg: String| {
        let _ = nix::sys::signal::kill(init, Signal::SIGKILL);
        let _ = waitpid(init, None);
        msg
    };
    if let Some(cg) = &cgroup
        && let Err(e) = cg.add_process(init.as_raw())
    {
        return Err(fail(e.to_string()));
    }
    release(&go_w).map_err(|e| fail(format!("release init: {e}")))?;
    let mut status = Vec::new();
    let mut st = std::fs::File::from(st_r);
    let mut first = [0u8; 1];
    match st.read(&mut first) {
        Ok(1) if first[0] == b'R' => {}
        Ok(1) => {
            let _ = st.read_to_end(&mut status);
            return Err(fail(String::from_utf8_lossy(&status).into_owned()));
        }
        _ => return Err(fail("container init exited during setup".into())),
    }
    drop(st);
    shim_io.receive_terminal().map_err(&fail)?;
    let [out_r, err_r] = shim_io.outputs;
    if let Some(map) = &spec.user_namespace {
        write_id_maps(init, map).map_err(&fail)?;
    }
    let log = open_log(&spec.log_path).map_err(&fail)?;
    let sock = socket_path(dir);
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(&sock).map_err(|e| fail(format!("bind {}: {e}", sock.display())))?;
    state.status = Status::Created;
    state.pid = Some(init.as_raw());
    state.pid_start = proc_start_time(init.as_raw());
    state.shim_pid = Some(std::process::id() as i32);
    state.shim_start = proc_start_time(std::process::id() as i32);
    state.save(dir).map_err(|e| fail(e.to_string()))?;
    let _ = writeln!(std::io::stdout(), "ok");
    super::detach_stdout();
    let mut shim = Shim {
        dir: dir.to_path_buf(),
        spec,
        state,
        cgroup,
        init,
        go: Some(go_w),
        log,
        outputs: [
            Output {
                fd: out_r,
                stream: Stream::Stdout,
                split: LineSplitter::default(),
            },
            Output {
                fd: err_r,
                stream: Stream::Stderr,
                split: LineSplitter::default(),
            },
        ],
        stdin: shim_io.stdin,
        attached: Vec::new(),
        waiters: Vec::new(),
        execs: HashMap::new(),
        exited: None,
    };
    // What startup allocated and freed (CLI parsing, the spec's JSON, the child's setup)
    // stays in malloc's free lists otherwise; hand it back so the idle shim keeps only
    // the pages its loop uses.
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe { libc::malloc_trim(0) };
    trim_stack();
    shim.serve(listener, null)
}

/// Writes the ID maps of the user namespace `init` entered; as its privileged parent the
/// shim may map any host IDs and leave `setgroups` allowed.
fn write_id_maps(init: Pid, map: &IdMapping) -> R<()> {
    for (file, ranges) in [("uid_map", &map.uids), ("gid_map", &map.gids)] {
        let path = format!("/proc/{}/{file}", init.as_raw());
        std::fs::write(&path, IdMapping::map_file(ranges))
            .map_err(|e| format!("write {path}: {e}"))?;
    }
    Ok(())
}

/// Gives the main stack's pages below the current frame back to the kernel: startup (CLI
/// parsing, JSON) ran deeper than the idle loop goes, and those pages would otherwise stay
/// resident for the shim's whole life. Pages below the stack pointer hold nothing live in a
/// single-threaded process; touched again, they come back zero-filled.
fn trim_stack() {
    // Headroom for the loop's own calls (the pump's buffer, replies, forks).
    const KEEP: usize = 128 * 1024;
    let marker = 0u8;
    let here = std::ptr::addr_of!(marker) as usize;
    let Some((lo, hi)) = std::fs::read_to_string("/proc/self/maps")
        .ok()
        .and_then(|maps| {
            let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
            let (a, b) = line.split_whitespace().next()?.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
    else {
        return;
    };
    if !(lo..hi).contains(&here) {
        return;
    }
    let end = here.saturating_sub(KEEP) & !0xfff;
    if end > lo {
        // SAFETY: [lo, end) is the unused part of this thread's own stack mapping, entirely
        // below the live frames (and the red zone); discarding it loses no data.
        unsafe { libc::madvise(lo as *mut libc::c_void, end - lo, libc::MADV_DONTNEED) };
    }
}

fn open_log(path: &Path) -> R<std::fs::File> {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("open log {}: {e}", path.display()))
}

impl Shim {
    fn serve(&mut self, listener: UnixListener, null: OwnedFd) -> R<()> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()
            .map_err(|e| format!("block SIGCHLD: {e}"))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| format!("signalfd: {e}"))?;
        let mut drain_deadline: Option<Instant> = None;
        // The child may have exited before SIGCHLD was blocked.
        self.reap();
        loop {
            if self.exited.is_some() {
                let deadline =
                    *drain_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
                if self.outputs.iter().all(|o| o.fd.is_none()) || Instant::now() >= deadline {
                    break;
                }
            }
            let mut fds = vec![
                libc::pollfd {
                    fd: sigfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            for o in &self.outputs {
                let fd = o.fd.as_ref().map_or(-1, |f| f.as_raw_fd());
                fds.push(libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // While stdin is full, wait for it to drain and read no more from sessions
            // (a hang-up still shows).
            let blocked = self.stdin.blocked_fd();
            fds.push(libc::pollfd {
                fd: blocked.unwrap_or(-1),
                events: libc::POLLOUT,
                revents: 0,
            });
            for a in &self.attached {
                fds.push(libc::pollfd {
                    fd: a.conn.as_raw_fd(),
                    events: if blocked.is_some() { 0 } else { libc::POLLIN },
                    revents: 0,
                });
            }
            let timeout = if drain_deadline.is_some() { 100 } else { -1 };
            // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, timeout) };
            if n < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                while let Ok(Some(_)) = sigfd.read_signal() {}
                self.reap();
            }
            if fds[1].revents != 0
                && let Ok((conn, _)) = listener.accept()
            {
                self.handle(conn, &null);
            }
            for i in 0..2 {
                if fds[2 + i].revents != 0 {
                    self.pump(i);
                }
            }
            if fds[4].revents != 0 {
                self.stdin.flush();
            }
            // Sessions accepted or dropped above are not in `fds`: match by fd.
            let ready: Vec<RawFd> = fds[5..]
                .iter()
                .filter(|p| p.revents != 0)
                .map(|p| p.fd)
                .collect();
            for fd in ready {
                if let Some(i) = self.attached.iter().position(|a| a.conn.as_raw_fd() == fd)
                    && !self.attached[i].read(&mut self.stdin)
                {
                    self.attached.swap_remove(i).end(&mut self.stdin);
                }
            }
        }
        self.finish();
        Ok(())
    }

    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    let (Some(pid), Some(code)) = (ws.pid(), exit_code(ws)) else {
                        continue;
                    };
                    if pid == self.init {
                        self.exited = Some(code);
                    } else if let Some(mut conn) = self.execs.remove(&pid.as_raw()) {
                        let _ = Reply {
                            exit_code: Some(code.0),
                            ..Reply::ok()
                        }
                        .send(&mut conn);
                    }
                }
            }
        }
    }

    fn pump(&mut self, i: usize) {
        let mut buf = [0u8; 32 * 1024];
        let out = &mut self.outputs[i];
        let Some(fd) = &out.fd else { return };
        let n = match nix::unistd::read(fd, &mut buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return,
            // EIO from a terminal's master: every holder of the slave is gone.
            Err(_) => 0,
        };
        let records = if n == 0 {
            out.fd = None;
            out.split
                .finish()
                .map(|r| vec![(false, r)])
                .unwrap_or_default()
        } else {
            out.split.feed(&buf[..n])
        };
        let stream = out.stream;
        let now = jiff::Timestamp::now();
        let mut bytes = Vec::new();
        for (partial, mut text) in records {
            // A terminal ends lines with CR LF; the log keeps the text.
            if self.stdin.tty() && text.last() == Some(&b'\r') {
                text.pop();
            }
            bytes.extend(format_record(now, stream, partial, &text));
        }
        if !bytes.is_empty() {
            let _ = self.log.write_all(&bytes);
        }
        if n > 0 && !self.attached.is_empty() {
            let frame = output_frame(stream, &buf[..n]);
            let mut i = 0;
            while i < self.attached.len() {
                if self.attached[i].conn.write_all(&frame).is_ok() {
                    i += 1;
                } else {
                    self.attached.swap_remove(i).end(&mut self.stdin);
                }
            }
        }
    }

    fn handle(&mut self, mut conn: UnixStream, null: &OwnedFd) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
        let (req, fds) = match recv_request(&conn) {
            Ok(r) => r,
            Err(e) => {
                let _ = Reply::error(format!("bad request: {e}")).send(&mut conn);
                return;
            }
        };
        match req {
            Request::Start => {
                let reply = self.start();
                let _ = reply.send(&mut conn);
            }
            Request::Wait => self.waiters.push(conn),
            Request::Attach { stdin } => {
                if stdin && !self.stdin.declared() {
                    let _ = Reply::error(
                        "the container was not created with stdin: true; attach without stdin",
                    )
                    .send(&mut conn);
                    return;
                }
                let reply = Reply {
                    tty: Some(self.stdin.tty()),
                    ..Reply::ok()
                };
                if reply.send(&mut conn).is_ok() {
                    self.attached.push(Session::new(conn, stdin));
                }
            }
            Request::Exec { process, tty } => match self.exec(&process, tty, fds, null) {
                Ok(pid) => {
                    if (Reply {
                        pid: Some(pid),
                        ..Reply::ok()
                    })
                    .send(&mut conn)
                    .is_ok()
                    {
                        let _ = conn.set_write_timeout(None);
                        self.execs.insert(pid, conn);
                    }
                }
                Err(e) => {
                    let _ = Reply::error(e).send(&mut conn);
                }
            },
        }
    }

    fn start(&mut self) -> Reply {
        if self.state.status != Status::Created || self.exited.is_some() {
            return Reply::error(format!("container is {}", self.state.status));
        }
        let Some(go) = self.go.take() else {
            return Reply::error("already started");
        };
        self.state.status = Status::Running;
        self.state.started_at = Some(jiff::Timestamp::now());
        if let Err(e) = self.state.save(&self.dir) {
            return Reply::error(e.to_string());
        }
        match release(&go) {
            Ok(()) => Reply::ok(),
            Err(e) => Reply::error(format!("release init: {e}")),
        }
    }

    fn exec(
        &mut self,
        process: &ProcessSpec,
        tty: bool,
        fds: Vec<OwnedFd>,
        null: &OwnedFd,
    ) -> R<i32> {
        if self.exited.is_some() || self.state.status != Status::Running {
            return Err(format!("container is {}", self.state.status));
        }
        let stdio: [&OwnedFd; 3] = match (tty, fds.len()) {
            (true, n) if n >= 1 => [&fds[0], &fds[0], &fds[0]],
            (false, 3) => [&fds[0], &fds[1], &fds[2]],
            (false, 2) => [null, &fds[0], &fds[1]],
            (_, n) => return Err(format!("exec needs stdio fds, got {n}")),
        };
        let (go_r, go_w) = pipe()?;
        let sys = LinuxSyscall;
        // SAFETY: single-threaded shim; the child only joins namespaces and execs.
        let pid = match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => {
                child_reset(stdio);
                drop(go_w);
                run_exec(&sys, &self.spec, process, self.init.as_raw(), tty, go_r)
            }
            ForkResult::Parent { child } => child,
        };
        drop(go_r);
        if let Some(cg) = &self.cgroup
            && let Err(e) = cg.add_process(pid.as_raw())
        {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            return Err(e.to_string());
        }
        release(&go_w).map_err(|e| format!("release exec: {e}"))?;
        Ok(pid.as_raw())
    }

    fn finish(&mut self) {
        for i in 0..2 {
            if self.outputs[i].fd.is_some() {
                self.pump(i);
            }
        }
        // Exec'd processes die with the PID namespace; collect and answer them.
        for (pid, mut conn) in std::mem::take(&mut self.execs) {
            if let Ok(ws) = waitpid(Pid::from_raw(pid), None)
                && let Some((code, _)) = exit_code(ws)
            {
                let _ = Reply {
                    exit_code: Some(code),
                    ..Reply::ok()
                }
                .send(&mut conn);
            }
        }
        let (code, sigkill) = self.exited.unwrap_or((255, false));
        let oom = self
            .cgroup
            .as_ref()
            .and_then(|c| c.oom_kills().ok())
            .unwrap_or(0)
            > 0;
        self.state.status = Status::Stopped;
        self.state.exit_code = Some(code);
        self.state.finished_at = Some(jiff::Timestamp::now());
        self.state.oom_killed = oom && sigkill;
        self.state.reason = Some(
            if self.state.oom_killed {
                "OOMKilled"
            } else if code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .into(),
        );
        if let Err(e) = self.state.save(&self.dir) {
            let _ = writeln!(std::io::stderr(), "save state: {e}");
        }
        let _ = std::fs::remove_file(socket_path(&self.dir));
        for mut w in self.waiters.drain(..) {
            let _ = Reply {
                exit_code: Some(code),
                ..Reply::ok()
            }
            .send(&mut w);
        }
        self.attached.clear();
    }
}
