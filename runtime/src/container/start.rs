//! `start`: release the created init process into the user's command.

use super::{Container, ContainerError, Result};
use crate::shim::{client, protocol::Request};

impl Container {
    /// Starts a created container.
    pub fn start(&mut self) -> Result<()> {
        self.reload()?;
        if !self.state.status.can_start() {
            return Err(self.refuse("start"));
        }
        let reply = client::call(&self.dir, &Request::Start).map_err(|e| ContainerError::Shim {
            id: self.spec.id.clone(),
            message: format!("start: {e}"),
        })?;
        if let Some(message) = reply.error {
            return Err(ContainerError::Shim {
                id: self.spec.id.clone(),
                message,
            });
        }
        self.reload()
    }
}
