//! Authentication and the cluster's credentials: CA and serving certificates, tokens,
//! kubeconfig files.
// lead's compile placeholders; replaced by the auth helper's implementation
#![allow(missing_docs, dead_code, clippy::all)]
pub mod pki { pub struct Pki { pub ca_cert_pem: String } impl Pki { pub fn load_or_create(_d: &std::path::Path, _s: &[String]) -> anyhow::Result<Pki> { anyhow::bail!("unimplemented") } } }
pub mod tokens { pub struct Tokens { pub admin: String, pub node_join: String } impl Tokens { pub fn load_or_create(_d: &std::path::Path) -> anyhow::Result<Tokens> { anyhow::bail!("unimplemented") } } }
pub mod kubeconfig { pub enum KubeconfigUser { Token(String) } pub fn write_kubeconfig(_p: &std::path::Path, _u: &str, _c: &str, _k: KubeconfigUser) -> anyhow::Result<()> { anyhow::bail!("unimplemented") } }
pub mod authn { #[derive(Clone)] pub struct UserInfo; pub struct Authenticator; impl Authenticator { pub fn new(_t: &super::tokens::Tokens) -> Self { Authenticator } pub fn authenticate(&self, _h: &http::HeaderMap, _c: Option<&rustls_pki_types::CertificateDer<'_>>) -> Option<UserInfo> { None } } }
pub mod tls { pub fn server_config(_p: &super::pki::Pki) -> anyhow::Result<std::sync::Arc<rustls::ServerConfig>> { anyhow::bail!("unimplemented") } }
