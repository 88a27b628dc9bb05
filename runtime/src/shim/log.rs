//! The CRI log format: `<RFC3339Nano> <stdout|stderr> <F|P> <text>` per line; `P` marks a
//! partial line split because it exceeded the buffer, `F` the line's end.

use std::io::Write;

/// Longest line kept in one record before it is split into partials.
pub const MAX_LINE: usize = 16 * 1024;

/// Which output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn tag(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Splits a byte stream into CRI records.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; returns complete records as `(is_partial, text)`.
    pub fn feed(&mut self, data: &[u8]) -> Vec<(bool, Vec<u8>)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            out.push((false, line));
        }
        while self.buf.len() >= MAX_LINE {
            out.push((true, self.buf.drain(..MAX_LINE).collect()));
        }
        out
    }
    /// The rest at end of stream, as a full line.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf))
    }
}

/// Formats one record.
pub fn format_record(time: jiff::Timestamp, stream: Stream, partial: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 48);
    let _ = write!(
        out,
        "{} {} {} ",
        rfc3339_nano(time),
        stream.tag(),
        if partial { "P" } else { "F" }
    );
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction dropped).
pub fn rfc3339_nano(t: jiff::Timestamp) -> String {
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.subsec_nanosecond();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

/// Parses one CRI record back: (time, stream, partial, text).
pub fn parse_record(line: &str) -> Option<(jiff::Timestamp, Stream, bool, &str)> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?.parse().ok()?;
    let stream = match it.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let partial = match it.next()? {
        "P" => true,
        "F" => false,
        _ => return None,
    };
    Some((time, stream, partial, it.next().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_long_partials() {
        let mut s = LineSplitter::default();
        assert_eq!(s.feed(b"hel"), vec![]);
        assert_eq!(s.feed(b"lo\nwor"), vec![(false, b"hello".to_vec())]);
        let long = vec![b'x'; MAX_LINE + 10];
        let recs = s.feed(&long);
        assert_eq!(recs.len(), 1);
        assert!(recs[0].0);
        assert!(recs[0].1.starts_with(b"wor"));
        assert_eq!(s.finish().unwrap().len(), 13);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn record_format_matches_cri() {
        let t: jiff::Timestamp = "2016-10-06T00:17:09.669794200Z".parse().unwrap();
        let rec = format_record(t, Stream::Stderr, false, b"oops");
        assert_eq!(rec, b"2016-10-06T00:17:09.6697942Z stderr F oops\n");
        let line = String::from_utf8(rec).unwrap();
        let (time, stream, partial, text) = parse_record(line.trim_end()).unwrap();
        assert_eq!(
            (time, stream, partial, text),
            (t, Stream::Stderr, false, "oops")
        );
    }
}
