//! `wait`: block until the container exits (through the shim, or by watching its state
//! when the shim is gone) and return its exit code.

use std::time::{Duration, Instant};

use super::{Container, Result, Status};
use crate::shim::{client::ShimCall, protocol::Request};

impl Container {
    /// Waits up to `timeout` (forever if `None`) for the exit; `None` if still running.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Option<i32>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        self.reload()?;
        if self.state.status == Status::Stopped {
            return Ok(self.state.exit_code);
        }
        if let Ok(call) = ShimCall::send(&self.dir, &Request::Wait, &[]) {
            let mut reader = call.into_reader();
            let _ = reader
                .get_ref()
                .set_read_timeout(timeout.map(|t| t.max(Duration::from_millis(1))));
            let _ = crate::shim::protocol::read_reply(&mut reader);
        }
        // Whether the shim answered, timed out or was gone, the state file is the truth.
        loop {
            self.reload()?;
            if self.state.status == Status::Stopped {
                return Ok(self.state.exit_code);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
