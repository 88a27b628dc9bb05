//! The cluster's API as a program sees it: an admin `kube` client, and raw HTTPS requests
//! with any token (or none) for status codes and bodies that typed clients hide.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::Cluster;

/// A `system:masters` client certificate named `cn`, signed by the cluster CA in `tls_dir`
/// (`ca.crt`, `ca.key`), written under `dir`: what a node's kubelet server accepts (it
/// takes no tokens). Returns the certificate's and the key's paths.
pub fn kubelet_client_cert(tls_dir: &Path, dir: &Path, cn: &str) -> Result<(PathBuf, PathBuf)> {
    let (key, csr, crt, ext) = (
        dir.join("client.key"),
        dir.join("client.csr"),
        dir.join("client.crt"),
        dir.join("client-ext.cnf"),
    );
    // A v3 certificate for client authentication (webpki refuses v1).
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )?;
    let run = |cmd: &mut std::process::Command| -> Result<()> {
        let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
        if !out.status.success() {
            bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    run(std::process::Command::new("openssl")
        .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj"])
        .arg(format!("/O=system:masters/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;
    run(std::process::Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-CAcreateserial", "-extfile"])
        .arg(&ext)
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(tls_dir.join("ca.crt"))
        .arg("-CAkey")
        .arg(tls_dir.join("ca.key"))
        .arg("-CAserial")
        .arg(dir.join("ca.srl"))
        .arg("-out")
        .arg(&crt))?;
    Ok((crt, key))
}

impl Cluster {
    /// A `kube` client authenticated with the admin kubeconfig.
    pub async fn client(&self) -> Result<kube::Client> {
        Ok(kube::Client::try_from(self.client_config().await?)?)
    }

    /// A raw HTTPS request with the admin token (or `token` when given, `Some("")` for none).
    /// Returns status code and body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        token: Option<&str>,
    ) -> Result<(u16, serde_json::Value)> {
        use http_body_util::BodyExt;
        let mut cfg = self.client_config().await?;
        if let Some(t) = token {
            cfg.auth_info.token = if t.is_empty() {
                None
            } else {
                Some(t.to_string().into())
            };
        }
        let client = kube::Client::try_from(cfg)?;
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(body)?;
        let resp = client.send(req.map(kube::client::Body::from)).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes().to_vec();
        let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
        Ok((status, v))
    }

    async fn client_config(&self) -> Result<kube::Config> {
        crate::kube_config(&self.kubeconfig).await
    }
}

/// A client configuration from a kubeconfig file (installing the TLS provider first).
pub async fn kube_config(kubeconfig: &std::path::Path) -> Result<kube::Config> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    Ok(
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?,
    )
}
