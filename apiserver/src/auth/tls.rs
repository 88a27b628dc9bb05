//! The API server's rustls configuration: the serving certificate, optional client
//! certificates verified against the cluster CA, and ALPN for HTTP/2 and HTTP/1.1.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{AuthError, Pki};

/// Builds the server TLS configuration. Clients may present a certificate signed by the
/// cluster CA; clients without one are let through so bearer tokens work.
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, AuthError> {
    // Name the provider: with both ring and aws-lc linked, rustls cannot pick a default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(pki.ca_cert_der()?)
        .map_err(|e| AuthError::Tls(format!("CA certificate: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| AuthError::Tls(format!("client verifier: {e}")))?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| AuthError::Tls(format!("server certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes())
        .map_err(|e| AuthError::Tls(format!("server key: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| AuthError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::auth::{Authenticator, Tokens};

    fn client_config(pki: &Pki, identity: Option<(String, String)>) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(pki.ca_cert_der().unwrap()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(config)
    }

    /// Runs one handshake; returns the server side's view (ALPN, authenticated user) or the
    /// client's error.
    async fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
    ) -> Result<(Option<Vec<u8>>, Option<String>), String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = tokio_rustls::TlsAcceptor::from(server)
                .accept(tcp)
                .await
                .ok()?;
            let (_, conn) = tls.get_ref();
            let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
            let auth = Authenticator::new(&Tokens {
                admin: "a".into(),
                node_join: "b".into(),
                scheduler: "c".into(),
            });
            let user = auth
                .authenticate(
                    &http::HeaderMap::new(),
                    conn.peer_certificates().and_then(|c| c.first()),
                )
                .map(|u| u.name);
            tls.write_all(b"ok").await.ok()?;
            tls.shutdown().await.ok()?;
            Some((alpn, user))
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("kubernetes.default.svc").unwrap();
        let connector = tokio_rustls::TlsConnector::from(client);
        let result = async {
            let mut tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(buf)
        }
        .await;
        let server_view = server_task.await.unwrap();
        match (result, server_view) {
            (Ok(buf), Some(view)) if buf == b"ok" => Ok(view),
            (Err(e), _) => Err(e),
            (Ok(_), _) => Err("server side failed".into()),
        }
    }

    #[tokio::test]
    async fn tls_handshakes_with_and_without_client_certs() {
        let dir = tempfile::tempdir().unwrap();
        let sans = vec![
            "127.0.0.1".to_string(),
            "kubernetes.default.svc".to_string(),
        ];
        let pki = Pki::load_or_create(dir.path(), &sans).unwrap();
        let server = server_config(&pki).unwrap();

        let (alpn, user) = handshake(server.clone(), client_config(&pki, None))
            .await
            .unwrap();
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(user, None);

        let identity = pki.issue_client_cert("admin", &["system:masters"]).unwrap();
        let (_, user) = handshake(server.clone(), client_config(&pki, Some(identity)))
            .await
            .unwrap();
        assert_eq!(user.as_deref(), Some("admin"));

        // A certificate from another CA is refused at the TLS layer.
        let other_dir = tempfile::tempdir().unwrap();
        let other = Pki::load_or_create(other_dir.path(), &sans).unwrap();
        let foreign = other.issue_client_cert("mallory", &[]).unwrap();
        let result = handshake(server, client_config(&pki, Some(foreign))).await;
        assert!(result.is_err(), "{result:?}");
    }
}
