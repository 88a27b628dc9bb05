//! The Kubernetes remote-command channel protocol spoken over WebSocket by exec and attach
//! (`v4.channel.k8s.io`, `v5.channel.k8s.io`): one binary frame per message, first byte the
//! channel, then the payload; v5 adds a client frame `[255, channel]` that closes a channel.

use serde::Deserialize;
use serde_json::{Value, json};

/// The v5 subprotocol (adds stream close).
pub const V5: &str = "v5.channel.k8s.io";
/// The v4 subprotocol (status as JSON on channel 3).
pub const V4: &str = "v4.channel.k8s.io";
/// Subprotocols served, most preferred first.
pub const PROTOCOLS: [&str; 2] = [V5, V4];

/// Channel of the process's standard input (client to server).
pub const STDIN: u8 = 0;
/// Channel of standard output (server to client).
pub const STDOUT: u8 = 1;
/// Channel of standard error (server to client).
pub const STDERR: u8 = 2;
/// Channel carrying the final `Status` (server to client).
pub const STATUS: u8 = 3;
/// Channel of terminal resize events (client to server).
pub const RESIZE: u8 = 4;
/// v5: the first payload byte names a channel the client closes.
pub const CLOSE: u8 = 255;

/// A frame the client sent, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Bytes for the process's stdin.
    Stdin(Vec<u8>),
    /// The client closed stdin (v5 only).
    CloseStdin,
    /// The terminal changed size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// A frame with no meaning for the server (empty, or a channel it does not read).
    Ignored,
}

/// A frame that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The resize payload is not `{"Width":..,"Height":..}`.
    #[error("invalid resize event: {0}")]
    Resize(String),
}

#[derive(Deserialize)]
struct TerminalSize {
    #[serde(rename = "Width")]
    width: u16,
    #[serde(rename = "Height")]
    height: u16,
}

/// Decodes one binary frame from the client. `v5` enables the close frame.
pub fn decode_client(frame: &[u8], v5: bool) -> Result<ClientFrame, FrameError> {
    let Some((&channel, payload)) = frame.split_first() else {
        return Ok(ClientFrame::Ignored);
    };
    match channel {
        STDIN if payload.is_empty() => Ok(ClientFrame::Ignored),
        STDIN => Ok(ClientFrame::Stdin(payload.to_vec())),
        RESIZE => {
            let size: TerminalSize =
                serde_json::from_slice(payload).map_err(|e| FrameError::Resize(e.to_string()))?;
            Ok(ClientFrame::Resize {
                width: size.width,
                height: size.height,
            })
        }
        CLOSE if v5 && payload.first() == Some(&STDIN) => Ok(ClientFrame::CloseStdin),
        _ => Ok(ClientFrame::Ignored),
    }
}

/// Encodes a server frame: the channel byte, then the payload.
pub fn encode(channel: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(payload);
    frame
}

/// The `Status` sent on channel 3 when a command ended with `exit_code`, as the kubelet
/// words it (kubectl turns `NonZeroExitCode` into its own exit code).
pub fn exit_status(exit_code: i32, command: &[String]) -> Value {
    if exit_code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {exit_code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": exit_code.to_string()}]},
    })
}

/// The `Status` sent on channel 3 when the command could not run at all.
pub fn failure_status(message: &str) -> Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_client_frames() {
        assert_eq!(
            decode_client(b"\0hello", true),
            Ok(ClientFrame::Stdin(b"hello".to_vec()))
        );
        assert_eq!(decode_client(b"\0", true), Ok(ClientFrame::Ignored));
        assert_eq!(decode_client(b"", true), Ok(ClientFrame::Ignored));
        assert_eq!(
            decode_client(b"\x04{\"Width\":80,\"Height\":24}", false),
            Ok(ClientFrame::Resize {
                width: 80,
                height: 24
            })
        );
        assert!(matches!(
            decode_client(b"\x04{\"Width\":-1}", false),
            Err(FrameError::Resize(_))
        ));
        assert_eq!(decode_client(&[255, 0], true), Ok(ClientFrame::CloseStdin));
        // v4 has no close frame; a close of another channel means nothing to the server.
        assert_eq!(decode_client(&[255, 0], false), Ok(ClientFrame::Ignored));
        assert_eq!(decode_client(&[255, 1], true), Ok(ClientFrame::Ignored));
    }

    #[test]
    fn encodes_frames_and_statuses() {
        assert_eq!(encode(STDERR, b"oops"), b"\x02oops".to_vec());
        assert_eq!(encode(STATUS, b""), vec![3]);
        assert_eq!(
            exit_status(0, &[]),
            json!({"metadata": {}, "status": "Success"})
        );
        let failed = exit_status(3, &["sh".into(), "-c".into(), "exit 3".into()]);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(
            failed["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert!(
            failed["message"]
                .as_str()
                .unwrap()
                .contains("[sh -c exit 3]")
        );
    }
}
