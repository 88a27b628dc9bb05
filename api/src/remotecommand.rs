//! The remote-command protocol exec and attach speak over WebSocket (Kubernetes'
//! `v4.channel.k8s.io` and `v5.channel.k8s.io`): the subprotocol names, the channel numbers,
//! and the frames both ends build (a channel byte, then the payload).

use serde::{Deserialize, Serialize};

/// The v5 subprotocol: v4 plus the client's close frame.
pub const V5: &str = "v5.channel.k8s.io";
/// The v4 subprotocol: the final `Status` as JSON on the error channel.
pub const V4: &str = "v4.channel.k8s.io";
/// Subprotocols skiff speaks, most preferred first.
pub const PROTOCOLS: [&str; 2] = [V5, V4];

/// Client to server: the process's standard input.
pub const STDIN: u8 = 0;
/// Server to client: standard output.
pub const STDOUT: u8 = 1;
/// Server to client: standard error.
pub const STDERR: u8 = 2;
/// Server to client: the final `Status` (Kubernetes calls it the error channel).
pub const STATUS: u8 = 3;
/// Client to server: terminal size changes.
pub const RESIZE: u8 = 4;
/// v5, client to server: `[CLOSE, channel]` closes that channel.
pub const CLOSE: u8 = 255;

/// A binary frame: the channel byte, then the payload.
pub fn frame(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 1);
    v.push(channel);
    v.extend_from_slice(payload);
    v
}

/// The v5 frame that closes the client's stdin.
pub fn close_stdin_frame() -> Vec<u8> {
    vec![CLOSE, STDIN]
}

/// A terminal size as the resize channel carries it (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

impl TerminalSize {
    /// The resize frame announcing this size.
    pub fn frame(&self) -> Vec<u8> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        frame(RESIZE, &body)
    }

    /// Reads a resize frame's payload.
    pub fn parse(payload: &[u8]) -> Result<TerminalSize, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_kubernetes_numbers() {
        assert_eq!(
            [STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE],
            [0, 1, 2, 3, 4, 255]
        );
        assert_eq!(PROTOCOLS, ["v5.channel.k8s.io", "v4.channel.k8s.io"]);
    }

    #[test]
    fn frames_carry_the_channel_first() {
        assert_eq!(frame(STDERR, b"oops"), b"\x02oops".to_vec());
        assert_eq!(frame(STATUS, b""), vec![3]);
        assert_eq!(close_stdin_frame(), [255, 0]);
        let size = TerminalSize {
            width: 120,
            height: 40,
        };
        let f = size.frame();
        assert_eq!(f[0], RESIZE);
        assert_eq!(&f[1..], br#"{"Width":120,"Height":40}"#);
        assert_eq!(TerminalSize::parse(&f[1..]).unwrap(), size);
        assert!(TerminalSize::parse(br#"{"Width":-1}"#).is_err());
    }
}
