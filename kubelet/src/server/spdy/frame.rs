//! SPDY/3.1 frames as the Kubernetes streaming protocols use them (the framing of
//! <https://www.chromium.org/spdy/spdy-protocol/spdy-protocol-draft3-1/>): control frames
//! with a version, type, flags and length, data frames with a stream id, and name/value
//! header blocks compressed by one zlib stream per direction with the protocol's dictionary.

use std::collections::BTreeMap;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The protocol version carried in every control frame.
pub const VERSION: u16 = 3;
/// The largest frame body the length field can carry.
pub const MAX_LENGTH: usize = (1 << 24) - 1;

/// Control frame types.
pub mod kind {
    /// SYN_STREAM.
    pub const SYN_STREAM: u16 = 1;
    /// SYN_REPLY.
    pub const SYN_REPLY: u16 = 2;
    /// RST_STREAM.
    pub const RST_STREAM: u16 = 3;
    /// SETTINGS.
    pub const SETTINGS: u16 = 4;
    /// PING.
    pub const PING: u16 = 6;
    /// GOAWAY.
    pub const GOAWAY: u16 = 7;
    /// HEADERS.
    pub const HEADERS: u16 = 8;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u16 = 9;
}

/// FLAG_FIN, on control and data frames.
pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status codes.
pub mod status {
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// INVALID_STREAM.
    pub const INVALID_STREAM: u32 = 2;
    /// REFUSED_STREAM.
    pub const REFUSED_STREAM: u32 = 3;
    /// CANCEL.
    pub const CANCEL: u32 = 5;
}

/// Name/value pairs of a header block (names lowercase, as the protocol requires).
pub type Headers = BTreeMap<String, String>;

/// The names the protocol's zlib dictionary lists, each with its 32-bit length before it.
const DICTIONARY_NAMES: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The dictionary's tail: status codes and common values, without length prefixes.
const DICTIONARY_TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

/// The SPDY/3 header compression dictionary (1,423 bytes).
pub fn dictionary() -> Vec<u8> {
    let mut d = Vec::with_capacity(1423);
    for name in DICTIONARY_NAMES {
        d.extend_from_slice(&(name.len() as u32).to_be_bytes());
        d.extend_from_slice(name.as_bytes());
    }
    d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
    d
}

/// A malformed frame or header block.
#[derive(Debug, thiserror::Error)]
#[error("SPDY protocol error: {0}")]
pub struct ProtocolError(pub String);

fn bad(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// A frame's 8-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameHead {
    /// A control frame of `kind` with `flags` and a body of `len` bytes.
    Control {
        /// The frame type.
        kind: u16,
        /// Its flags.
        flags: u8,
        /// Body length.
        len: usize,
    },
    /// A data frame of `stream` with `flags` and `len` bytes of payload.
    Data {
        /// The stream.
        stream: u32,
        /// Its flags.
        flags: u8,
        /// Payload length.
        len: usize,
    },
}

impl FrameHead {
    /// Reads the 8 header bytes.
    pub fn parse(b: &[u8; 8]) -> Result<FrameHead, ProtocolError> {
        let len = usize::from(b[5]) << 16 | usize::from(b[6]) << 8 | usize::from(b[7]);
        let flags = b[4];
        if b[0] & 0x80 != 0 {
            let version = u16::from_be_bytes([b[0] & 0x7f, b[1]]);
            if version != VERSION {
                return Err(bad(format!("unsupported version {version}")));
            }
            Ok(FrameHead::Control {
                kind: u16::from_be_bytes([b[2], b[3]]),
                flags,
                len,
            })
        } else {
            Ok(FrameHead::Data {
                stream: u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff,
                flags,
                len,
            })
        }
    }

    /// The body length.
    pub fn len(&self) -> usize {
        match self {
            FrameHead::Control { len, .. } | FrameHead::Data { len, .. } => *len,
        }
    }
}

fn put_len(out: &mut Vec<u8>, flags: u8, len: usize) {
    out.push(flags);
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
}

/// A control frame of `kind` with `flags` and `body`.
pub fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    put_len(&mut out, flags, body.len());
    out.extend_from_slice(body);
    out
}

/// A data frame on `stream`.
pub fn data(stream: u32, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    put_len(&mut out, if fin { FLAG_FIN } else { 0 }, payload.len());
    out.extend_from_slice(payload);
    out
}

/// A RST_STREAM of `stream` with `status`.
pub fn rst_stream(stream: u32, status: u32) -> Vec<u8> {
    let mut body = stream.to_be_bytes().to_vec();
    body.extend_from_slice(&status.to_be_bytes());
    control(kind::RST_STREAM, 0, &body)
}

/// A PING with `id`.
pub fn ping(id: u32) -> Vec<u8> {
    control(kind::PING, 0, &id.to_be_bytes())
}

/// A GOAWAY naming the last stream accepted, status OK.
pub fn goaway(last_good: u32) -> Vec<u8> {
    let mut body = last_good.to_be_bytes().to_vec();
    body.extend_from_slice(&0u32.to_be_bytes());
    control(kind::GOAWAY, 0, &body)
}

/// The first big-endian u32 of a frame body, with the reserved top bit cleared.
pub fn stream_id(body: &[u8]) -> Result<u32, ProtocolError> {
    let b: [u8; 4] = body
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad("frame too short for a stream id"))?;
    Ok(u32::from_be_bytes(b) & 0x7fff_ffff)
}

/// The header compressor of one direction of a connection.
pub struct HeaderWriter(Compress);

impl Default for HeaderWriter {
    fn default() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(&dictionary())
            .expect("a fresh zlib stream takes a dictionary");
        HeaderWriter(c)
    }
}

impl HeaderWriter {
    /// The compressed block for `headers`, flushed so the peer can decode it at once.
    pub fn encode(&mut self, headers: &Headers) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start = self.0.total_in();
        loop {
            let done = (self.0.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.0
                .compress_vec(&raw[done..], &mut out, FlushCompress::Sync)
                .expect("compressing into memory cannot fail");
            // A sync flush is complete once all input is in and the output did not fill.
            if (self.0.total_in() - start) as usize == raw.len() && out.capacity() > out.len() {
                return out;
            }
        }
    }
}

/// The header decompressor of one direction of a connection.
pub struct HeaderReader(Decompress);

impl Default for HeaderReader {
    fn default() -> Self {
        HeaderReader(Decompress::new(true))
    }
}

impl HeaderReader {
    /// Decodes one compressed header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, ProtocolError> {
        let mut raw: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        let start = self.0.total_in();
        loop {
            let done = (self.0.total_in() - start) as usize;
            if raw.capacity() - raw.len() < 256 {
                raw.reserve(1024);
            }
            match self
                .0
                .decompress_vec(&block[done..], &mut raw, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(&dictionary())
                        .map_err(|e| bad(format!("header dictionary: {e}")))?;
                    continue;
                }
                Err(e) => return Err(bad(format!("header block: {e}"))),
            }
            if (self.0.total_in() - start) as usize == block.len() && raw.capacity() > raw.len() {
                break;
            }
            if raw.len() > MAX_LENGTH {
                return Err(bad("header block too large"));
            }
        }
        parse_block(&raw)
    }
}

fn parse_block(raw: &[u8]) -> Result<Headers, ProtocolError> {
    let take = |pos: &mut usize| -> Result<&[u8], ProtocolError> {
        let len_bytes: [u8; 4] = raw
            .get(*pos..*pos + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| bad("truncated header block"))?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let s = raw
            .get(*pos + 4..*pos + 4 + len)
            .ok_or_else(|| bad("truncated header block"))?;
        *pos += 4 + len;
        Ok(s)
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| bad("header is not UTF-8"));
    let count_bytes: [u8; 4] = raw
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| bad("truncated header block"))?;
    let count = u32::from_be_bytes(count_bytes);
    let mut pos = 4;
    let mut out = Headers::new();
    for _ in 0..count {
        let name = text(take(&mut pos)?)?;
        let value = text(take(&mut pos)?)?;
        out.insert(name.to_ascii_lowercase(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_protocols() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\x00\x00\x00\x07options\x00\x00\x00\x04head"));
        assert!(d.ends_with(b",*,enq=0."));
        // zlib names a dictionary by its Adler-32 in the stream header.
        let mut c = Compress::new(Compression::default(), true);
        let adler = c.set_dictionary(&d).unwrap();
        assert_eq!(adler, adler32(&d));
    }

    fn adler32(d: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        b << 16 | a
    }

    #[test]
    fn header_blocks_round_trip_on_one_stream_per_direction() {
        let (mut w, mut r) = (HeaderWriter::default(), HeaderReader::default());
        for i in 0..5 {
            let h: Headers = [
                ("streamtype".to_string(), "data".to_string()),
                ("port".to_string(), format!("{}", 8080 + i)),
                ("requestid".to_string(), i.to_string()),
            ]
            .into();
            let block = w.encode(&h);
            assert_eq!(r.decode(&block).unwrap(), h);
        }
        assert!(r.decode(&w.encode(&Headers::new())).unwrap().is_empty());
    }

    #[test]
    fn frames_carry_type_flags_length_and_stream() {
        let f = control(kind::SYN_REPLY, FLAG_FIN, &[0, 0, 0, 5, 1, 2]);
        let head = FrameHead::parse(f[..8].try_into().unwrap()).unwrap();
        assert_eq!(
            head,
            FrameHead::Control {
                kind: kind::SYN_REPLY,
                flags: FLAG_FIN,
                len: 6
            }
        );
        assert_eq!(stream_id(&f[8..]).unwrap(), 5);
        let d = data(7, true, b"hello");
        assert_eq!(
            FrameHead::parse(d[..8].try_into().unwrap()).unwrap(),
            FrameHead::Data {
                stream: 7,
                flags: FLAG_FIN,
                len: 5
            }
        );
        let mut v2 = control(kind::PING, 0, &[0; 4]);
        v2[1] = 2;
        assert!(FrameHead::parse(v2[..8].try_into().unwrap()).is_err());
        assert!(HeaderReader::default().decode(b"not zlib").is_err());
    }
}
