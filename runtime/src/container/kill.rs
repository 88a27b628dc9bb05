//! `kill` and `stop`: deliver a signal to the init process; stop is SIGTERM, a grace
//! period, then SIGKILL.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Container, ContainerError, Result, Status};

impl Container {
    /// Sends `signal` to the container's init process.
    pub fn kill(&mut self, signal: Signal) -> Result<()> {
        self.reload()?;
        if !self.state.status.can_kill() {
            return Err(self.refuse("kill"));
        }
        // A pid whose start time changed is someone else's process now.
        if !self.state.process_alive() {
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(self.state.pid.unwrap_or(0));
        match nix::sys::signal::kill(pid, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(source) => Err(ContainerError::Signal {
                id: self.spec.id.clone(),
                source,
            }),
        }
    }

    /// Stops the container: SIGTERM, up to `grace` to exit, then SIGKILL. Returns the exit
    /// code. A stopped container is left as is.
    pub fn stop(&mut self, grace: Duration) -> Result<i32> {
        self.reload()?;
        match self.state.status {
            Status::Stopped => return Ok(self.state.exit_code.unwrap_or(255)),
            // A created init never ran user code; there is nothing to be graceful to.
            Status::Created | Status::Creating => self.kill(Signal::SIGKILL)?,
            Status::Running => {
                self.kill(Signal::SIGTERM)?;
                if let Some(code) = self.wait(Some(grace))? {
                    return Ok(code);
                }
                self.kill(Signal::SIGKILL)?;
            }
        }
        Ok(self.wait(Some(Duration::from_secs(30)))?.unwrap_or(255))
    }
}
