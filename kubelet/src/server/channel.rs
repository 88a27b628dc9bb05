//! The kubelet's end of the remote-command protocol that exec and attach speak over
//! WebSocket: decoding the client's frames (stdin, resize, the v5 close of stdin) and the
//! `Status` it sends when a command ends. Subprotocol names, channel numbers and the frame
//! layout are the shared rule in `skiff_api::remotecommand`, re-exported here.

use serde_json::{Value, json};
use skiff_api::remotecommand::TerminalSize;
pub use skiff_api::remotecommand::{
    CLOSE, PROTOCOLS, RESIZE, STATUS, STDERR, STDIN, STDOUT, V4, V5, frame as encode,
};

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

/// Decodes one binary frame from the client. `v5` enables the close frame.
pub fn decode_client(frame: &[u8], v5: bool) -> Result<ClientFrame, FrameError> {
    let Some((&channel, payload)) = frame.split_first() else {
        return Ok(ClientFrame::Ignored);
    };
    match channel {
        STDIN if payload.is_empty() => Ok(ClientFrame::Ignored),
        STDIN => Ok(ClientFrame::Stdin(payload.to_vec())),
        RESIZE => {
            let size =
                TerminalSize::parse(payload).map_err(|e| FrameError::Resize(e.to_string()))?;
            Ok(ClientFrame::Resize {
                width: size.width,
                height: size.height,
            })
        }
        CLOSE if v5 && payload.first() == Some(&STDIN) => Ok(ClientFrame::CloseStdin),
        _ => Ok(ClientFrame::Ignored),
    }
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
