//! Sending transactions to the kernel: `nft -f -` (one script, one atomic netlink batch),
//! behind a trait so the proxier is tested with a recording fake.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;

/// A failed transaction.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nft` could not be started.
    #[error("running {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `nft` refused the transaction (nothing of it was applied).
    #[error("nft refused the transaction: {stderr}")]
    Refused {
        /// What nft said.
        stderr: String,
    },
}

/// Applies one transaction atomically.
#[async_trait::async_trait]
pub trait Nft: Send + Sync {
    /// Applies `script` (nft's command syntax) as one transaction.
    async fn apply(&self, script: &str) -> Result<(), NftError>;
}

/// The `nft` program, optionally behind a prefix (`ip netns exec NS`) that runs it in
/// another network namespace.
#[derive(Debug, Clone)]
pub struct NftCommand {
    /// The program and its leading arguments (`["nft"]`).
    pub argv: Vec<String>,
}

impl Default for NftCommand {
    fn default() -> Self {
        Self {
            argv: vec!["nft".into()],
        }
    }
}

impl NftCommand {
    /// `nft` in the network namespace `netns` (`ip netns exec <netns> nft`).
    pub fn in_netns(netns: &str) -> Self {
        Self {
            argv: ["ip", "netns", "exec", netns, "nft"]
                .map(String::from)
                .to_vec(),
        }
    }
}

#[async_trait::async_trait]
impl Nft for NftCommand {
    async fn apply(&self, script: &str) -> Result<(), NftError> {
        let program = self.argv[0].clone();
        let mut child = tokio::process::Command::new(&program)
            .args(&self.argv[1..])
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| NftError::Spawn {
                program: program.clone(),
                source,
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A write error shows as nft's own failure below.
            let _ = stdin.write_all(script.as_bytes()).await;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| NftError::Spawn { program, source })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NftError::Refused {
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

/// Records every transaction; refuses those containing `fail_on` (when set).
#[derive(Debug, Clone, Default)]
pub struct RecordingNft {
    /// The transactions applied, in order.
    pub applied: Arc<Mutex<Vec<String>>>,
    /// A transaction containing this text is refused.
    pub fail_on: Arc<Mutex<Option<String>>>,
}

impl RecordingNft {
    /// The transactions applied so far.
    pub fn scripts(&self) -> Vec<String> {
        self.applied.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Nft for RecordingNft {
    async fn apply(&self, script: &str) -> Result<(), NftError> {
        let refuse = self
            .fail_on
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .is_some_and(|f| script.contains(&f));
        if refuse {
            return Err(NftError::Refused {
                stderr: "refused by the test".into(),
            });
        }
        if let Ok(mut a) = self.applied.lock() {
            a.push(script.to_string());
        }
        Ok(())
    }
}

/// Removes table `ip <table>` (nothing else); a missing table is fine.
pub async fn remove_table(nft: &dyn Nft, table: &str) -> Result<(), NftError> {
    nft.apply(&format!("add table ip {table}\ndelete table ip {table}\n"))
        .await
}
