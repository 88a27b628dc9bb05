//! The agent's API client, from a kubeconfig or a server URL and join token, and the host
//! name a node is called by default.

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::AgentOptions;

/// The host's name, lowercased (a valid node name on ordinary hosts).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase()
}

/// Why the agent will not connect to `server` without a CA to check it by.
pub fn unverified_refusal(server: &str) -> String {
    format!(
        "refusing to connect to {server} without verifying its certificate: pass the cluster CA \
         with --ca-file (the server's <data-dir>/tls/ca.crt), or --insecure-skip-tls-verify to \
         connect unverified"
    )
}

/// An API client from the options: a kubeconfig file, or server URL plus token.
pub async fn client(opts: &AgentOptions) -> anyhow::Result<kube::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = match (&opts.kubeconfig, &opts.server) {
        (Some(path), _) => Kubeconfig::read_from(path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?,
        (None, Some(server)) => {
            let mut cluster = serde_json::json!({"server": server});
            match &opts.ca_file {
                Some(ca) => cluster["certificate-authority"] = ca.display().to_string().into(),
                None if opts.insecure_skip_tls_verify => {
                    tracing::warn!(%server, "not verifying the API server's certificate (--insecure-skip-tls-verify)");
                    cluster["insecure-skip-tls-verify"] = true.into()
                }
                None => anyhow::bail!("{}", unverified_refusal(server)),
            }
            let doc = serde_json::json!({
                "apiVersion": "v1", "kind": "Config", "current-context": "agent",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": opts.token.clone().unwrap_or_default()}}],
                "contexts": [{"name": "agent", "context": {"cluster": "c", "user": "u"}}],
            });
            Kubeconfig::from_yaml(&serde_json::to_string(&doc)?)?
        }
        (None, None) => anyhow::bail!("the agent needs --server and --token, or --kubeconfig"),
    };
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}
