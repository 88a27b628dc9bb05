//! Cluster DNS: Debian's `dnsperf` against a real agent's cluster DNS server and, in the
//! same run, against a `dnsmasq` on loopback serving the same records: a Service's A
//! record, a headless Service's addresses, a missing name inside the cluster domain
//! (NXDOMAIN) and an outside name both forward to the same upstream, an `unbound` the
//! benchmark starts on loopback (answered from their caches after the first query).
//!
//! Per query kind and server: queries/s with `dnsperf` unthrottled (100 queries in
//! flight), and p50 / p99 of every query of a second run paced at a fixed rate (`-v`
//! prints each query's latency), so the latency is the server's and not a queue's.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use skiff_e2e::workload::apply;
use skiff_e2e::{Cluster, Proc, free_port};

use crate::stats;

/// Options of the DNS benchmark.
pub struct DnsBenchOptions {
    /// Seconds per throughput run.
    pub seconds: u64,
    /// Alternating rounds per server and query kind.
    pub rounds: usize,
    /// Queries per second of the paced latency run.
    pub paced_qps: u32,
}

const SERVICE_IP: &str = "10.96.9.9";
const HEADLESS: [&str; 3] = ["198.18.0.1", "198.18.0.2", "198.18.0.3"];
const OUTSIDE: &str = "outside.bench.test";
const OUTSIDE_IP: &str = "192.0.2.44";

const RECORDS: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.9.9
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports: [{name: pg, port: 5432, protocol: TCP}]
endpoints:
- {addresses: ["198.18.0.1"], conditions: {ready: true}}
- {addresses: ["198.18.0.2"], conditions: {ready: true}}
- {addresses: ["198.18.0.3"], conditions: {ready: true}}
"#;

/// The query kinds: label, the query, the answer `dig` must show first (checked on both
/// servers before measuring).
const KINDS: [(&str, &str, &str); 4] = [
    (
        "Service A record",
        "web.default.svc.cluster.local A",
        SERVICE_IP,
    ),
    (
        "headless Service (3 addresses)",
        "db.default.svc.cluster.local A",
        "198.18.0.",
    ),
    (
        "NXDOMAIN inside cluster.local",
        "missing.default.svc.cluster.local A",
        "NXDOMAIN",
    ),
    (
        "outside name (forwarded, cached)",
        "outside.bench.test A",
        OUTSIDE_IP,
    ),
];

/// One dnsperf measurement.
#[derive(Debug, Clone, Default)]
struct Perf {
    qps: f64,
    lost: u64,
    p50_ms: f64,
    p99_ms: f64,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Runs the benchmark (blocking) and returns the Markdown section.
pub fn run(opts: &DnsBenchOptions) -> Result<String> {
    for tool in ["dnsperf", "dnsmasq", "unbound"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            bail!("{tool} is not installed (apt-get install dnsperf dnsmasq-base unbound)");
        }
    }
    let load_start = loadavg();
    let dir = tempfile::tempdir()?;
    let upstream_port = free_port();
    let _upstream = start_unbound(dir.path(), upstream_port)?;
    let reference_port = free_port();
    let _reference = start_dnsmasq(dir.path(), reference_port, upstream_port)?;

    let c = Cluster::start_with_args(&[])?;
    let dns_port = free_port();
    let listen = format!("127.0.0.1:{dns_port}");
    let upstream = format!("127.0.0.1:{upstream_port}");
    let _node = c.start_node_with_args(
        "bench-dns",
        95,
        &["--cluster-dns-listen", &listen, "--dns-upstream", &upstream],
    )?;
    apply(&c, RECORDS);

    for port in [dns_port, reference_port] {
        for (label, query, want) in KINDS {
            wait_answer(port, query, want).with_context(|| format!("{label} on port {port}"))?;
        }
    }

    let mut rows = Vec::new();
    for (label, query, _) in KINDS {
        let file = dir.path().join(format!("q-{}", rows.len()));
        std::fs::write(&file, format!("{query}\n"))?;
        let (mut skiff, mut reference) = (Vec::new(), Vec::new());
        for _ in 0..opts.rounds.max(1) {
            skiff.push(measure(dns_port, &file, opts)?);
            reference.push(measure(reference_port, &file, opts)?);
        }
        let (s, r) = (mean(&skiff), mean(&reference));
        eprintln!(
            "{label}: skiff {:.0}/s {:.3}/{:.3} ms, dnsmasq {:.0}/s {:.3}/{:.3} ms",
            s.qps, s.p50_ms, s.p99_ms, r.qps, r.p50_ms, r.p99_ms
        );
        rows.push((label, s, r));
    }
    let load_end = loadavg();
    Ok(render(opts, &rows, &load_start, &load_end))
}

/// unbound on loopback, authoritative for `bench.test.` (static local data).
fn start_unbound(dir: &Path, port: u16) -> Result<Proc> {
    let conf = dir.join("unbound.conf");
    std::fs::write(
        &conf,
        format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  use-syslog: no\n  logfile: \"\"\n  chroot: \"\"\n  username: \"\"\n  pidfile: \"\"\n  directory: \"{}\"\n  do-ip6: no\n  access-control: 127.0.0.0/8 allow\n  local-zone: \"bench.test.\" static\n  local-data: \"{OUTSIDE}. 3600 IN A {OUTSIDE_IP}\"\n",
            dir.display()
        ),
    )?;
    let child = Command::new("unbound")
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("unbound.log"))?)
        .spawn()
        .context("starting unbound")?;
    let p = Proc::new("unbound", child);
    wait_answer(port, &format!("{OUTSIDE} A"), OUTSIDE_IP).context("unbound upstream")?;
    Ok(p)
}

/// dnsmasq on loopback with the cluster's records: `cluster.local` answered from local
/// data only (NXDOMAIN otherwise), every other name forwarded to `upstream` and cached.
fn start_dnsmasq(dir: &Path, port: u16, upstream: u16) -> Result<Proc> {
    let hosts = dir.join("cluster-hosts");
    let mut text = format!("{SERVICE_IP} web.default.svc.cluster.local\n");
    for ip in HEADLESS {
        text.push_str(&format!("{ip} db.default.svc.cluster.local\n"));
    }
    std::fs::write(&hosts, text)?;
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--user=root",
            "--local=/cluster.local/",
            "--cache-size=10000",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--server=127.0.0.1#{upstream}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dnsmasq.log"))?)
        .spawn()
        .context("starting dnsmasq")?;
    Ok(Proc::new("dnsmasq", child))
}

/// Waits until a few paced queries of `query` on `port` all answer as `want` says.
fn wait_answer(port: u16, query: &str, want: &str) -> Result<()> {
    let mut last = String::new();
    for _ in 0..60 {
        let out = dnsperf(port, query, &["-l", "1", "-Q", "5", "-v", "-t", "1"])?;
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("> ")).collect();
        let ok = !lines.is_empty()
            && lines.iter().all(|l| {
                if want == "NXDOMAIN" {
                    l.starts_with("> NXDOMAIN ")
                } else {
                    l.starts_with("> NOERROR ")
                }
            });
        if ok && (want == "NXDOMAIN" || answer_has(port, query, want)) {
            return Ok(());
        }
        last = out;
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("{query} never answered {want} on port {port}: {last}")
}

/// Whether one UDP query's answer section holds `want` (read with the `host` form of
/// the record's address bytes).
fn answer_has(port: u16, query: &str, want: &str) -> bool {
    let name = query.split_whitespace().next().unwrap_or_default();
    let Ok(sock) = std::net::UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(1)));
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    if sock.send_to(&q, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    let Ok(n) = sock.recv(&mut buf) else {
        return false;
    };
    let resp = &buf[..n];
    let answers = u16::from_be_bytes([resp[6], resp[7]]);
    // A records are the 4 bytes after a `type A, class IN, ttl, rdlength 4` header.
    let found: Vec<String> = resp
        .windows(10)
        .enumerate()
        .filter(|(_, w)| w[0..4] == [0, 1, 0, 1] && w[8..10] == [0, 4])
        .filter_map(|(i, _)| resp.get(i + 10..i + 14))
        .map(|b| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]))
        .collect();
    answers > 0 && found.iter().any(|a| a.starts_with(want))
}

fn dnsperf(port: u16, query: &str, args: &[&str]) -> Result<String> {
    let mut child = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("dnsperf")?;
    child
        .stdin
        .take()
        .context("dnsperf stdin")?
        .write_all(format!("{query}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An unthrottled run for queries/s, then a paced `-v` run for the latencies.
fn measure(port: u16, file: &Path, opts: &DnsBenchOptions) -> Result<Perf> {
    let run = |extra: &[String]| -> Result<String> {
        let out = Command::new("dnsperf")
            .args([
                "-s",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-c",
                "4",
                "-T",
                "1",
            ])
            .arg("-d")
            .arg(file)
            .args(extra)
            .stderr(Stdio::null())
            .output()
            .context("dnsperf")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let text = run(&[
        "-l".into(),
        opts.seconds.to_string(),
        "-q".into(),
        "100".into(),
    ])?;
    let (qps, lost) = parse_summary(&text).with_context(|| format!("dnsperf: {text}"))?;
    let paced = run(&[
        "-l".into(),
        "3".into(),
        "-Q".into(),
        opts.paced_qps.to_string(),
        "-v".into(),
    ])?;
    let lat = parse_latencies(&paced);
    if lat.is_empty() {
        bail!("dnsperf -v printed no query: {paced}");
    }
    let s = stats::summarize(&lat);
    Ok(Perf {
        qps,
        lost,
        p50_ms: s.p50,
        p99_ms: s.p99,
    })
}

/// `Queries per second:` and the count of `Queries lost:`.
fn parse_summary(text: &str) -> Option<(f64, u64)> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_string())
    };
    let qps = field("Queries per second:")?.parse().ok()?;
    let lost = field("Queries lost:")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((qps, lost))
}

/// The latency (last field, seconds) of every `> CODE name type latency` line.
fn parse_latencies(text: &str) -> Vec<Duration> {
    text.lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .collect()
}

fn mean(runs: &[Perf]) -> Perf {
    let n = runs.len().max(1) as f64;
    Perf {
        qps: runs.iter().map(|r| r.qps).sum::<f64>() / n,
        lost: runs.iter().map(|r| r.lost).sum(),
        p50_ms: runs.iter().map(|r| r.p50_ms).sum::<f64>() / n,
        p99_ms: runs.iter().map(|r| r.p99_ms).sum::<f64>() / n,
    }
}

fn render(
    opts: &DnsBenchOptions,
    rows: &[(&str, Perf, Perf)],
    load_start: &str,
    load_end: &str,
) -> String {
    let mut s = format!(
        "A real server and agent ({} build), the agent's cluster DNS on `--cluster-dns-listen 127.0.0.1:<port>`; the reference is dnsmasq {} on loopback with the same records (`cluster.local` local-only, so a missing name is NXDOMAIN; other names forwarded and cached). Both forward outside names to the same unbound on loopback (authoritative for `bench.test.`). Queries/s: `dnsperf -c4 -T1 -q100 -l{}` (one query repeated), p50 / p99: every query of a second run paced at {}/s (`-Q {} -v`). {} alternating rounds per server, means shown. Load average {load_start} at the start, {load_end} at the end.\n\n\
         | query | skiff queries/s | dnsmasq queries/s (reference) | ratio | skiff p50 / p99 | dnsmasq p50 / p99 | lost (skiff / dnsmasq) |\n|---|---|---|---|---|---|---|\n",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        crate::runtime::version("dnsmasq"),
        opts.seconds,
        opts.paced_qps,
        opts.paced_qps,
        opts.rounds
    );
    for (label, k, r) in rows {
        s.push_str(&format!(
            "| {label} | {:.0} | {:.0} | {:.2} | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {} / {} |\n",
            k.qps,
            r.qps,
            k.qps / r.qps,
            k.p50_ms,
            k.p99_ms,
            r.p50_ms,
            r.p99_ms,
            k.lost,
            r.lost
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dnsperf_summary_and_latencies() {
        let text = "> NOERROR web.default.svc.cluster.local A 0.000127\n> NXDOMAIN missing.default.svc.cluster.local A 0.000099\nStatistics:\n\n  Queries sent:         100\n  Queries completed:    98 (98.00%)\n  Queries lost:         2 (2.00%)\n\n  Queries per second:   51234.567890\n";
        assert_eq!(parse_summary(text), Some((51234.56789, 2)));
        let lat = parse_latencies(text);
        assert_eq!(lat.len(), 2);
        assert_eq!(lat[0], Duration::from_secs_f64(0.000127));
        assert_eq!(parse_summary("Queries sent: 1\n"), None);
    }
}
