//! `skiff kubeconfig create --user NAME [--group G]`: a client-certificate kubeconfig for a
//! user, made the Kubernetes way in one step. A new key stays on this machine; a
//! CertificateSigningRequest for `kubernetes.io/kube-apiserver-client` (CN the user, O the
//! group) is created, approved through its `approval` subresource by the caller (who must
//! be allowed to approve), and once the controller-manager's signer has issued the
//! certificate the kubeconfig is written with the server and CA of the current one.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde_json::json;
use skiff_apiserver::auth::KubeconfigUser;
use skiff_apiserver::auth::kubeconfig::render_kubeconfig_for;

use super::{Ctx, GlobalArgs};

/// The signer of user client certificates.
const SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// How long the signer gets to issue the approved request.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(30);

/// `skiff kubeconfig ...`.
#[derive(clap::Args, Debug)]
pub struct KubeconfigArgs {
    #[command(subcommand)]
    cmd: KubeconfigCmd,
}

#[derive(clap::Subcommand, Debug)]
enum KubeconfigCmd {
    /// Issue a client certificate for a user and write a kubeconfig using it.
    Create(CreateArgs),
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// The user name (the certificate's common name).
    #[arg(long)]
    user: String,
    /// A group the user is in (the certificate's organization; one).
    #[arg(long)]
    group: Option<String>,
    /// Lifetime of the certificate in seconds (the signer's maximum when not given; at
    /// least 600).
    #[arg(long)]
    expiration_seconds: Option<i32>,
    /// Where to write the kubeconfig (default: standard output).
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

/// Runs `skiff kubeconfig`.
pub async fn run(ctx: &Ctx, globals: &GlobalArgs, args: KubeconfigArgs) -> Result<ExitCode> {
    let KubeconfigCmd::Create(a) = args.cmd;
    if a.user.is_empty() {
        bail!("--user must not be empty");
    }
    if a.expiration_seconds.is_some_and(|s| s < 600) {
        bail!("--expiration-seconds must be at least 600");
    }
    let key = KeyPair::generate().context("generating a key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, a.user.as_str());
    if let Some(g) = &a.group {
        dn.push(DnType::OrganizationName, g.as_str());
    }
    params.distinguished_name = dn;
    let request = params
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .context("writing the certificate request")?;
    let csrs: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let csr = CertificateSigningRequest {
        metadata: kube::api::ObjectMeta {
            generate_name: Some("skiff-user-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.into_bytes()),
            signer_name: SIGNER.into(),
            usages: Some(vec!["digital signature".into(), "client auth".into()]),
            expiration_seconds: a.expiration_seconds,
            ..Default::default()
        },
        status: None,
    };
    let made = csrs.create(&PostParams::default(), &csr).await?;
    let name = made.metadata.name.clone().unwrap_or_default();
    let approval = json!({"status": {"conditions": [{
        "type": "Approved", "status": "True", "reason": "SkiffKubeconfigCreate",
        "message": format!("approved by skiff kubeconfig create for user {:?}", a.user),
    }]}});
    csrs.patch_approval(&name, &PatchParams::default(), &Patch::Merge(&approval))
        .await
        .with_context(|| format!("approving certificatesigningrequest {name}"))?;
    let start = Instant::now();
    let cert = loop {
        let cur = csrs.get(&name).await?;
        let status = cur.status.unwrap_or_default();
        if let Some(c) = status.certificate.filter(|c| !c.0.is_empty()) {
            break String::from_utf8(c.0).context("the issued certificate is not PEM")?;
        }
        if let Some(f) = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed" || c.type_ == "Denied")
        {
            bail!(
                "certificatesigningrequest {name} {}: {}",
                f.type_.to_lowercase(),
                f.message.clone().unwrap_or_default()
            );
        }
        if start.elapsed() > ISSUE_TIMEOUT {
            bail!(
                "certificatesigningrequest {name} was approved but not issued within {}s (is the controller-manager running?)",
                ISSUE_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let config = super::load_config(globals).await?;
    let ca_pem: String = config
        .root_cert
        .iter()
        .flatten()
        .map(|der| pem_block("CERTIFICATE", der))
        .collect();
    let text = render_kubeconfig_for(
        &config.cluster_url.to_string(),
        &ca_pem,
        &a.user,
        &KubeconfigUser::ClientCert {
            cert_pem: cert,
            key_pem: key.serialize_pem(),
        },
    )?;
    match &a.output {
        Some(path) => {
            write_private(path, &text)?;
            eprintln!(
                "kubeconfig for user {:?} written to {} (certificatesigningrequest {name})",
                a.user,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes the file readable by its owner only (it holds a private key).
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
