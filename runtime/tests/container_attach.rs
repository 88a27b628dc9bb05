//! Real containers with `stdin` and `tty`; needs root (each test says it is skipped
//! otherwise): attach sessions write stdin through the shim, `stdinOnce` closes it after the
//! first session, sessions follow one another, terminals resize, and attaching stdin to a
//! container without it is refused. This test binary doubles as the shim.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use skiff_runtime::container::*;
use skiff_runtime::shim::frame::{AttachFrame, FrameDecoder};
use skiff_runtime::shim::log::{Stream, parse_record};
use skiff_runtime::testkit::{ContainerFixture as Fixture, skip_unless_root};

skiff_runtime::test_shim_hook!();

/// A running container, killed and deleted on drop even when the test fails.
struct Running(Option<Container>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            let _ = c.delete(true);
        }
    }
}

impl std::ops::Deref for Running {
    type Target = Container;
    fn deref(&self) -> &Container {
        self.0.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Container {
        self.0.as_mut().unwrap()
    }
}

/// A fixture, or `None` (the test is skipped) when not root.
fn fixture() -> Option<Fixture> {
    (!skip_unless_root()).then(Fixture::new)
}

/// Creates and starts a container running `args` with `stdio`.
fn run(f: &Fixture, args: &[&str], stdio: StdioSpec) -> Running {
    let mut s = f.spec("a", args);
    s.stdio = stdio;
    let mut c = Running(Some(Container::create(&f.root, s).unwrap()));
    c.start().unwrap();
    c
}

fn log_lines(c: &Container) -> Vec<(Stream, String)> {
    std::fs::read_to_string(&c.spec.log_path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| parse_record(l).map(|(_, st, _, t)| (st, t.to_string())))
        .collect()
}

fn send(s: &mut AttachSession, f: AttachFrame) {
    s.stream.write_all(&f.encode()).unwrap();
}

/// Reads output frames until `stdout + stderr` contains `want`, or EOF, or 10 s. Returns
/// (stdout, stderr, eof).
fn read_until(s: &mut AttachSession, want: &str) -> (String, String, bool) {
    read_while(s, |all| !all.contains(want))
}

/// Reads output frames while `more(stdout + stderr)`, until EOF, or for 10 s.
fn read_while(s: &mut AttachSession, more: impl Fn(&str) -> bool) -> (String, String, bool) {
    s.stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut dec = FrameDecoder::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    let mut eof = false;
    while Instant::now() < deadline {
        let all = [out.as_slice(), err.as_slice()].concat();
        if !more(&String::from_utf8_lossy(&all)) {
            break;
        }
        match s.stream.read(&mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => {
                dec.feed(&buf[..n]);
                while let Some(f) = dec.next_frame().unwrap() {
                    match f {
                        AttachFrame::Stdout(b) => out.extend(b),
                        AttachFrame::Stderr(b) => err.extend(b),
                        other => panic!("unexpected frame from the shim: {other:?}"),
                    }
                }
            }
            Err(_) => {}
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
        eof,
    )
}

fn wait_exit(c: &mut Container) -> i32 {
    c.wait(Some(Duration::from_secs(10)))
        .unwrap()
        .expect("container exited")
}

#[test]
fn stdin_pipe_reaches_the_container_and_stdin_once_closes_it() {
    let Some(f) = fixture() else { return };
    let stdio = StdioSpec {
        stdin: true,
        stdin_once: true,
        tty: false,
    };
    let mut c = run(&f, &["sh", "-c", "cat; echo done >&2"], stdio);
    let mut s = c.attach(true).unwrap();
    assert!(!s.tty);
    send(&mut s, AttachFrame::Stdin(b"hello from stdin\n".to_vec()));
    let (out, _, _) = read_until(&mut s, "hello from stdin\n");
    assert_eq!(out, "hello from stdin\n");
    // The first session ends: cat reads EOF, the shell goes on and exits.
    send(&mut s, AttachFrame::CloseStdin);
    let (_, err, eof) = read_while(&mut s, |_| true);
    assert!(eof && err == "done\n", "{err:?}");
    assert_eq!(wait_exit(&mut c), 0);
    let log = log_lines(&c);
    assert!(
        log.contains(&(Stream::Stdout, "hello from stdin".into())),
        "{log:?}"
    );
    assert!(log.contains(&(Stream::Stderr, "done".into())), "{log:?}");
}

#[test]
fn attaching_stdin_needs_a_container_created_with_it() {
    let Some(f) = fixture() else { return };
    let mut c = run(
        &f,
        &["sh", "-c", "sleep 1; echo tick; sleep 30"],
        StdioSpec::default(),
    );
    let err = c.attach(true).unwrap_err().to_string();
    assert!(err.contains("not created with stdin"), "{err}");
    // Output-only attach works, and its stdin frames go nowhere.
    let mut s = c.attach(false).unwrap();
    send(&mut s, AttachFrame::Stdin(b"ignored\n".to_vec()));
    let (out, _, _) = read_until(&mut s, "tick\n");
    assert_eq!(out, "tick\n");
}

#[test]
fn sessions_follow_one_another_on_an_open_stdin() {
    let Some(f) = fixture() else { return };
    let stdio = StdioSpec {
        stdin: true,
        stdin_once: false,
        tty: false,
    };
    let mut c = run(&f, &["sh"], stdio);
    let mut first = c.attach(true).unwrap();
    send(
        &mut first,
        AttachFrame::Stdin(b"echo one-$((0+1))\n".to_vec()),
    );
    let (out, _, _) = read_until(&mut first, "one-1\n");
    assert_eq!(out, "one-1\n");
    // Without stdinOnce, a session's close leaves the container's stdin open.
    send(&mut first, AttachFrame::CloseStdin);
    drop(first);
    let mut second = c.attach(true).unwrap();
    send(
        &mut second,
        AttachFrame::Stdin(b"echo two-$((1+1))\n".to_vec()),
    );
    let (out, _, _) = read_until(&mut second, "two-2\n");
    assert_eq!(out, "two-2\n");
    send(&mut second, AttachFrame::Stdin(b"exit 7\n".to_vec()));
    let (_, _, eof) = read_while(&mut second, |_| true);
    assert!(eof);
    assert_eq!(wait_exit(&mut c), 7);
}

#[test]
fn tty_session_resizes_merges_output_and_ends_with_eof() {
    let Some(f) = fixture() else { return };
    let stdio = StdioSpec {
        stdin: true,
        stdin_once: true,
        tty: true,
    };
    let mut c = run(&f, &["sh"], stdio);
    let mut s = c.attach(true).unwrap();
    assert!(s.tty);
    send(
        &mut s,
        AttachFrame::Resize {
            rows: 33,
            cols: 101,
        },
    );
    send(
        &mut s,
        AttachFrame::Stdin(b"stty size; tty; [ -t 0 ] && echo tty-$((2*3)) >&2\n".to_vec()),
    );
    // Up to the next prompt: the shell reads its terminal again.
    let (out, err, _) = read_while(&mut s, |all| {
        !all.split_once("tty-6")
            .is_some_and(|(_, rest)| rest.contains("# "))
    });
    assert!(out.contains("33 101\r\n"), "{out:?}");
    assert!(out.contains("tty-6"), "stderr is the terminal too: {out:?}");
    // The terminal is the container's own (its devpts), so `tty` can name it.
    assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");
    assert!(err.is_empty(), "{err:?}");
    // The session ends: the shell reads end-of-file from the terminal and exits.
    drop(s);
    let code = c.wait(Some(Duration::from_secs(10))).unwrap();
    let log = log_lines(&c);
    assert_eq!(code, Some(0), "{log:?}");
    assert!(
        log.iter()
            .any(|(st, t)| *st == Stream::Stdout && t == "33 101"),
        "the log has the terminal's lines without CR: {log:?}"
    );
}
