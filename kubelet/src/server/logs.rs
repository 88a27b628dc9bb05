//! Container logs from the CRI log file (`<RFC3339Nano time> <stream> <P|F> <content>` per
//! line): the options of `GET /containerLogs` and a reader that turns the file back into the
//! container's output, honouring tail, since, timestamps, byte limit and follow.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

/// How long a follower waits at the end of the file before looking again.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Block size for scanning the file backwards for `tailLines`.
const TAIL_BLOCK: u64 = 32 * 1024;

/// Errors of log reading.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A query parameter has a bad value.
    #[error("invalid value for {param}: {value:?}")]
    InvalidOption {
        /// The parameter.
        param: &'static str,
        /// What was sent.
        value: String,
    },
    /// The log file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One parsed CRI log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriLine<'a> {
    /// The timestamp as written.
    pub time: &'a str,
    /// The stream.
    pub stream: Stream,
    /// `P`: the line continues in the next entry (no newline is added).
    pub partial: bool,
    /// The content, without the trailing newline.
    pub content: &'a [u8],
}

/// Parses one line of a CRI log file (with or without its trailing newline).
pub fn parse_cri_line(line: &[u8]) -> Option<CriLine<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(CriLine {
        time,
        stream,
        partial,
        content: parts.next().unwrap_or_default(),
    })
}

/// The options of a log request (`/containerLogs` and `pods/log`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming as the file grows, until the container stops.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Only lines at or after this instant (`sinceSeconds`/`sinceTime`).
    pub since: Option<jiff::Timestamp>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// The previous (terminated) instance of the container.
    pub previous: bool,
}

fn flag(params: &HashMap<String, String>, key: &str) -> bool {
    matches!(
        params.get(key).map(String::as_str),
        Some("true" | "1" | "True")
    )
}

impl LogOptions {
    /// Reads the options from query parameters, resolving `sinceSeconds` against `now`.
    pub fn from_query(
        params: &HashMap<String, String>,
        now: jiff::Timestamp,
    ) -> Result<Self, LogError> {
        let number = |param: &'static str| -> Result<Option<i64>, LogError> {
            match params.get(param).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| LogError::InvalidOption {
                        param,
                        value: v.clone(),
                    }),
            }
        };
        let invalid = |param: &'static str, v: i64| LogError::InvalidOption {
            param,
            value: v.to_string(),
        };
        let tail_lines = match number("tailLines")? {
            Some(n) if n < 0 => None,
            other => other.map(|n| n as u64),
        };
        let limit_bytes = match number("limitBytes")? {
            Some(n) if n < 1 => return Err(invalid("limitBytes", n)),
            other => other.map(|n| n as u64),
        };
        let since = match (
            number("sinceSeconds")?,
            params.get("sinceTime").filter(|v| !v.is_empty()),
        ) {
            (Some(s), _) if s < 1 => return Err(invalid("sinceSeconds", s)),
            (Some(s), _) => Some(now - jiff::SignedDuration::from_secs(s)),
            (None, Some(t)) => {
                Some(
                    t.parse::<jiff::Timestamp>()
                        .map_err(|_| LogError::InvalidOption {
                            param: "sinceTime",
                            value: t.clone(),
                        })?,
                )
            }
            (None, None) => None,
        };
        Ok(Self {
            follow: flag(params, "follow"),
            tail_lines,
            timestamps: flag(params, "timestamps"),
            since,
            limit_bytes,
            previous: flag(params, "previous"),
        })
    }

    /// Whether a line is at or after `since`.
    pub fn matches_since(&self, line: &CriLine<'_>) -> bool {
        match (self.since, line.time.parse::<jiff::Timestamp>()) {
            (Some(since), Ok(t)) => t >= since,
            _ => true,
        }
    }

    /// The bytes one log line contributes to the output.
    pub fn render(&self, line: &CriLine<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(line.content.len() + 40);
        if self.timestamps {
            out.extend_from_slice(line.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(line.content);
        if !line.partial {
            out.push(b'\n');
        }
        out
    }
}

/// The offset where the last `n` lines of the file start.
pub async fn tail_offset(file: &mut tokio::fs::File, n: u64) -> std::io::Result<u64> {
    let len = file.metadata().await?.len();
    if n == 0 {
        return Ok(len);
    }
    let mut end = len;
    let mut seen = 0u64;
    // A newline that ends the file terminates the last line; it does not start a new one.
    let mut skip_last = true;
    while end > 0 {
        let start = end.saturating_sub(TAIL_BLOCK);
        let mut block = vec![0u8; (end - start) as usize];
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(&mut block).await?;
        for (i, b) in block.iter().enumerate().rev() {
            let at = start + i as u64;
            if *b != b'\n' {
                continue;
            }
            if skip_last && at == len - 1 {
                continue;
            }
            seen += 1;
            if seen == n {
                return Ok(at + 1);
            }
        }
        skip_last = false;
        end = start;
    }
    Ok(0)
}

/// Streams the log file at `path` to `out` as `opts` asks, each chunk with its stream. When following, `running` is
/// asked at the end of the file whether more can come; the stream ends once it says no
/// and the file has been read to its end. Returns when done or when `out` is closed.
pub async fn stream_log<F, Fut>(
    path: &Path,
    opts: &LogOptions,
    running: F,
    out: mpsc::Sender<(Stream, Bytes)>,
) -> Result<(), LogError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let io = |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let start = match opts.tail_lines {
        Some(n) => tail_offset(&mut file, n).await.map_err(io)?,
        None => 0,
    };
    file.seek(SeekFrom::Start(start)).await.map_err(io)?;
    let mut reader = BufReader::new(file);
    let mut budget = opts.limit_bytes.unwrap_or(u64::MAX);
    let mut line = Vec::new();
    let mut last_look = false;
    loop {
        let n = reader.read_until(b'\n', &mut line).await.map_err(io)?;
        if n == 0 || !line.ends_with(b"\n") {
            // End of file, possibly inside a line the runtime is still writing.
            if !opts.follow || last_look {
                return Ok(());
            }
            if !running().await {
                // One more pass picks up what was written before the container stopped.
                last_look = true;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = out.closed() => return Ok(()),
            }
            continue;
        }
        let Some(parsed) = parse_cri_line(&line) else {
            line.clear();
            continue;
        };
        if opts.matches_since(&parsed) {
            let mut chunk = opts.render(&parsed);
            if chunk.len() as u64 > budget {
                chunk.truncate(budget as usize);
            }
            budget -= chunk.len() as u64;
            if out.send((parsed.stream, Bytes::from(chunk))).await.is_err() {
                return Ok(());
            }
            if budget == 0 {
                return Ok(());
            }
        }
        line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2024-01-01T00:00:01.000000000Z stdout F one\n\
        2024-01-01T00:00:02.000000000Z stderr F two\n\
        2024-01-01T00:00:03.000000000Z stdout P thr\n\
        2024-01-01T00:00:03.500000000Z stdout F ee\n\
        2024-01-01T00:00:04.000000000Z stdout F four\n";

    #[test]
    fn parses_cri_lines() {
        let l = parse_cri_line(b"2024-01-01T00:00:01.5Z stderr P a b c\n").unwrap();
        assert_eq!(
            (l.time, l.stream, l.partial, l.content),
            (
                "2024-01-01T00:00:01.5Z",
                Stream::Stderr,
                true,
                &b"a b c"[..]
            )
        );
        let empty = parse_cri_line(b"2024-01-01T00:00:01Z stdout F\n").unwrap();
        assert_eq!(empty.content, b"");
        assert!(parse_cri_line(b"garbage").is_none());
        assert!(parse_cri_line(b"2024 stdin F x").is_none());
        assert!(parse_cri_line(b"2024 stdout X x").is_none());
    }

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_options() {
        let now: jiff::Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let o = LogOptions::from_query(
            &query(&[
                ("follow", "true"),
                ("tailLines", "2"),
                ("sinceSeconds", "30"),
                ("limitBytes", "10"),
            ]),
            now,
        )
        .unwrap();
        assert!(o.follow && !o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(2), Some(10)));
        assert_eq!(o.since, Some("2024-01-01T00:00:30Z".parse().unwrap()));
        assert!(LogOptions::from_query(&query(&[("tailLines", "x")]), now).is_err());
        assert!(LogOptions::from_query(&query(&[("limitBytes", "0")]), now).is_err());
        assert_eq!(
            LogOptions::from_query(&query(&[("tailLines", "-1")]), now)
                .unwrap()
                .tail_lines,
            None
        );
    }

    async fn read_all(content: &str, opts: LogOptions) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        std::fs::write(&path, content).unwrap();
        let (tx, mut rx) = mpsc::channel(100);
        stream_log(&path, &opts, || async { false }, tx)
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some((_, b)) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn renders_joins_partials_and_tails() {
        assert_eq!(
            read_all(LOG, LogOptions::default()).await,
            "one\ntwo\nthree\nfour\n"
        );
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(read_all(LOG, tail).await, "ee\nfour\n");
        let zero = LogOptions {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(read_all(LOG, zero).await, "");
        let many = LogOptions {
            tail_lines: Some(100),
            ..Default::default()
        };
        assert_eq!(read_all(LOG, many).await, "one\ntwo\nthree\nfour\n");
        let ts = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(
            read_all(LOG, ts).await,
            "2024-01-01T00:00:04.000000000Z four\n"
        );
        let since = LogOptions {
            since: Some("2024-01-01T00:00:03.500Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(read_all(LOG, since).await, "ee\nfour\n");
        let limit = LogOptions {
            limit_bytes: Some(6),
            ..Default::default()
        };
        assert_eq!(read_all(LOG, limit).await, "one\ntw");
    }

    #[tokio::test]
    async fn tail_offset_spans_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.log");
        let line = format!("2024-01-01T00:00:01Z stdout F {}\n", "x".repeat(1000));
        std::fs::write(&path, line.repeat(100)).unwrap();
        let mut f = tokio::fs::File::open(&path).await.unwrap();
        let len = f.metadata().await.unwrap().len();
        assert_eq!(
            tail_offset(&mut f, 40).await.unwrap(),
            len - 40 * line.len() as u64
        );
        assert_eq!(tail_offset(&mut f, 1000).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn follows_until_the_container_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.log");
        std::fs::write(&path, "2024-01-01T00:00:01Z stdout F first\n").unwrap();
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (tx, mut rx) = mpsc::channel(100);
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let (p, r) = (path.clone(), running.clone());
        let task = tokio::spawn(async move {
            let r2 = r.clone();
            stream_log(
                &p,
                &opts,
                move || {
                    let r = r2.clone();
                    async move { r.load(std::sync::atomic::Ordering::SeqCst) }
                },
                tx,
            )
            .await
        });
        assert_eq!(
            rx.recv().await.unwrap(),
            (Stream::Stdout, Bytes::from_static(b"first\n"))
        );
        // A line written in two pieces is delivered once whole.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"2024-01-01T00:00:02Z stdout F sec").unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        f.write_all(b"ond\n").unwrap();
        assert_eq!(rx.recv().await.unwrap().1, Bytes::from_static(b"second\n"));
        f.write_all(b"2024-01-01T00:00:03Z stdout F last\n")
            .unwrap();
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(rx.recv().await.unwrap().1, Bytes::from_static(b"last\n"));
        assert!(rx.recv().await.is_none());
        task.await.unwrap().unwrap();
    }
}
