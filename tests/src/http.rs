//! The cluster's API as a program sees it: an admin `kube` client, and raw HTTPS requests
//! with any token (or none) for status codes and bodies that typed clients hide.

use anyhow::Result;

use crate::Cluster;

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
