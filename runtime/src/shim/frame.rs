//! The byte stream of an attach session on `shim.sock`, after the shim's first reply:
//! frames of `[kind: u8][length: u32 big-endian][payload]` both ways. The agent sends
//! stdin bytes, a stdin close and terminal resizes; the shim sends the container's raw
//! stdout and stderr bytes (not CRI lines) as they come.

use super::log::Stream;

/// Largest payload accepted in one frame; the shim never sends more than its read buffer.
pub const MAX_PAYLOAD: usize = 1 << 20;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const RESIZE: u8 = 4;
const CLOSE_STDIN: u8 = 5;
const HEADER: usize = 5;

/// One frame of an attach session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachFrame {
    /// Agent → shim: bytes for the container's stdin.
    Stdin(Vec<u8>),
    /// Agent → shim: this session is done with stdin (with `stdinOnce` the container's
    /// stdin then closes).
    CloseStdin,
    /// Agent → shim: the terminal's new size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Shim → agent: container output on stdout (everything, with a TTY).
    Stdout(Vec<u8>),
    /// Shim → agent: container output on stderr.
    Stderr(Vec<u8>),
}

/// A frame that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The kind byte names no frame.
    #[error("unknown attach frame kind {0}")]
    Kind(u8),
    /// The length exceeds [`MAX_PAYLOAD`].
    #[error("attach frame of {0} bytes is too large")]
    TooLarge(usize),
    /// A resize frame whose payload is not 4 bytes.
    #[error("bad resize frame")]
    Resize,
}

impl AttachFrame {
    /// The frame on the wire.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Stdin(b) => frame(STDIN, b),
            Self::CloseStdin => frame(CLOSE_STDIN, &[]),
            Self::Stdout(b) => frame(STDOUT, b),
            Self::Stderr(b) => frame(STDERR, b),
            Self::Resize { rows, cols } => {
                frame(RESIZE, &[rows.to_be_bytes(), cols.to_be_bytes()].concat())
            }
        }
    }
}

/// An output frame for `data` read from the container's `stream`, without copying it
/// into an [`AttachFrame`] first.
pub fn output_frame(stream: Stream, data: &[u8]) -> Vec<u8> {
    match stream {
        Stream::Stdout => frame(STDOUT, data),
        Stream::Stderr => frame(STDERR, data),
    }
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reassembles frames from a byte stream read in arbitrary pieces.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// Appends bytes read from the stream.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<AttachFrame>, FrameError> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let kind = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let payload: Vec<u8> = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Ok(Some(match kind {
            STDIN => AttachFrame::Stdin(payload),
            CLOSE_STDIN => AttachFrame::CloseStdin,
            STDOUT => AttachFrame::Stdout(payload),
            STDERR => AttachFrame::Stderr(payload),
            RESIZE => match payload.as_slice() {
                [r0, r1, c0, c1] => AttachFrame::Resize {
                    rows: u16::from_be_bytes([*r0, *r1]),
                    cols: u16::from_be_bytes([*c0, *c1]),
                },
                _ => return Err(FrameError::Resize),
            },
            other => return Err(FrameError::Kind(other)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let frames = vec![
            AttachFrame::Stdin(b"echo hi\n".to_vec()),
            AttachFrame::Resize {
                rows: 24,
                cols: 300,
            },
            AttachFrame::CloseStdin,
            AttachFrame::Stdout(vec![]),
            AttachFrame::Stderr(vec![7; 70_000]),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(AttachFrame::encode).collect();
        let mut d = FrameDecoder::default();
        let mut back = Vec::new();
        // Three bytes at a time: every split of header and payload happens.
        for piece in wire.chunks(3) {
            d.feed(piece);
            while let Some(f) = d.next_frame().unwrap() {
                back.push(f);
            }
        }
        assert_eq!(back, frames);
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn rejects_bad_frames() {
        let mut d = FrameDecoder::default();
        d.feed(&[9, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::Kind(9)));
        let mut d = FrameDecoder::default();
        d.feed(&[0, 0xff, 0, 0, 0]);
        assert!(matches!(d.next_frame(), Err(FrameError::TooLarge(_))));
        let mut d = FrameDecoder::default();
        d.feed(&[4, 0, 0, 0, 1, 9]);
        assert_eq!(d.next_frame(), Err(FrameError::Resize));
    }
}
