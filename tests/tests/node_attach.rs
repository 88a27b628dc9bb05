//! Attach on a real node through the real kubectl: `kubectl attach -i` writes a container's
//! stdin (pipe) and reads its output, sessions follow one another, `stdinOnce` closes stdin
//! after the first, a container without `stdin: true` refuses `-i`, an agent restart keeps
//! the container's stdin (the shim holds it), and `kubectl run -it --rm` gives a shell on a
//! terminal.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_e2e::{Backend, Cluster, can_run_nodes, eventually, ok};

const FEEDER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: feeder}
spec:
  nodeName: NODE
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: reader
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "while read l; do echo got:$l; done; echo reader-eof"]
    stdin: true
  - name: once
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "cat; echo once-eof"]
    stdin: true
    stdinOnce: true
  - name: plain
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sleep", "3600"]
"#;

/// A running command whose stdout and stderr are collected as they come; killed on drop.
struct Live {
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Live {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let output = Arc::new(Mutex::new(Vec::new()));
        for mut r in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = r.read(&mut buf) {
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        Self { child, output }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn write(&mut self, input: &str) {
        let w = self.child.stdin.as_mut().expect("stdin open");
        w.write_all(input.as_bytes()).unwrap();
        w.flush().unwrap();
    }

    /// Closes stdin (kubectl then closes the stream's stdin).
    fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Waits until the output contains `want`.
    fn expect(&self, want: &str, timeout: Duration) {
        let seen = eventually(timeout, || self.text().contains(want).then_some(()));
        assert!(seen.is_some(), "no {want:?} in {:?}", self.text());
    }

    /// Waits for the exit; its status code.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("still running after {timeout:?}: {:?}", self.text());
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn kubectl(c: &Cluster, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--cache-dir")
        .arg(&c.kube_cache)
        .args(args)
        .env("KUBECONFIG", &c.kubeconfig);
    cmd
}

/// `kubectl attach -i feeder -c <container>`, fed `line`, until `want` comes back.
fn attach_and_see(c: &Cluster, container: &str, line: &str, want: &str) {
    let mut a = Live::spawn(&mut kubectl(
        c,
        &["attach", "-i", "feeder", "-c", container],
    ));
    a.write(line);
    a.expect(want, Duration::from_secs(15));
}

#[test]
fn attach_writes_stdin_and_run_it_gives_a_terminal() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let mut node = c.start_node("e2e-node-att", 7).unwrap();
    ok(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&FEEDER.replace("NODE", &node.name)),
    ));
    ok(&c.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/feeder",
        "--timeout=40s",
    ]));

    // Sessions in sequence write the same open stdin; each kubectl is cut off (without
    // stdinOnce the container's stdin stays open, so the stream does not end).
    attach_and_see(&c, "reader", "one\n", "got:one");
    attach_and_see(&c, "reader", "two\n", "got:two");

    // stdinOnce: the first session's end (kubectl closing stdin) is the container's EOF;
    // the container exits and the attach ends cleanly.
    let mut once = Live::spawn(&mut kubectl(&c, &["attach", "-i", "feeder", "-c", "once"]));
    once.write("only line\n");
    once.expect("only line", Duration::from_secs(15));
    once.close_stdin();
    assert_eq!(once.wait(Duration::from_secs(15)), Some(0));
    assert!(once.text().contains("once-eof"), "{}", once.text());

    // No `stdin: true`: -i is refused with a clear error.
    let refused = c.kubectl_stdin(&["attach", "-i", "feeder", "-c", "plain"], Some("x\n"));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(err.contains("not created with stdin"), "{err}");

    // The shim, not the agent, holds stdin: after an agent restart it is still open. The
    // restarted agent serves the pod's containers once it has adopted them.
    node.restart(&c).unwrap();
    let adopted = eventually(Duration::from_secs(20), || {
        let mut a = Live::spawn(&mut kubectl(
            &c,
            &["attach", "-i", "feeder", "-c", "reader"],
        ));
        a.write("three\n");
        let out = eventually(Duration::from_secs(10), || {
            let t = a.text();
            (t.contains("got:three") || t.contains("Error from server")).then_some(t)
        });
        out.filter(|t| t.contains("got:three"))
    });
    assert!(adopted.is_some(), "no attach after the agent restart");
    let logs = ok(&c.kubectl(&["logs", "feeder", "-c", "reader"]));
    assert_eq!(logs, "got:one\ngot:two\ngot:three\n");

    // kubectl run -it --rm: a pod with stdin, stdinOnce and a TTY, attached on a terminal
    // (script gives kubectl one), removed afterwards.
    let overrides = format!(r#"{{"spec":{{"nodeName":"{}"}}}}"#, node.name);
    let run = format!(
        "kubectl --cache-dir {} --kubeconfig {} run -it --rm --restart=Never \
         --image=busybox:1.36 --image-pull-policy=Never --overrides '{overrides}' t -- sh",
        c.kube_cache.display(),
        c.kubeconfig.display(),
    );
    let mut shell = Live::spawn(Command::new("script").args(["-qec", &run, "/dev/null"]));
    shell.expect("try pressing enter", Duration::from_secs(40));
    shell.write("echo hi-$((1+2)); tty; exit\n");
    let code = shell.wait(Duration::from_secs(30));
    let out = shell.text();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("hi-3"), "{out}");
    assert!(
        out.contains("/dev/pts/0"),
        "the shell runs on its own terminal: {out}"
    );
    let gone = eventually(Duration::from_secs(20), || {
        let got = c.kubectl(&["get", "pod", "t"]);
        (!got.status.success()).then_some(())
    });
    assert!(gone.is_some(), "pod t was not removed");
    ok(&c.kubectl(&["delete", "pod", "feeder", "--wait=false"]));
}
