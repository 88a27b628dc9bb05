//! CSR approver: approves `kubernetes.io/kubelet-serving` CertificateSigningRequests that a
//! node (or the node bootstrap identity) made for a registered Node, with the condition
//! `Approved`/`AutoApproved`. Anything else is left pending for a human
//! (`kubectl certificate approve|deny`), as Kubernetes' approver does.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestStatus,
};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::Shutdown;
use crate::csr_request::{Refusal, has_condition, kubelet_serving_node, requestor_allowed};
use crate::error::{Error, Result};
use crate::metrics::timed;
use skiff_client::controller::drive;

/// How long to wait for the Node of a request to register before looking again.
const NODE_RETRY: Duration = Duration::from_secs(2);

/// What the approver does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approve it.
    Approve,
    /// Leave it alone: already decided, or not ours to approve.
    Ignore(Option<Refusal>),
    /// Everything fits but the Node is not registered (yet): look again later.
    WaitForNode(String),
}

/// Decides on one request; `node_exists` answers whether a Node of that name exists.
pub fn decide(csr: &CertificateSigningRequest, node_exists: impl Fn(&str) -> bool) -> Decision {
    if has_condition(csr, "Approved") || has_condition(csr, "Denied") {
        return Decision::Ignore(None);
    }
    let node = match kubelet_serving_node(csr).and_then(|n| {
        requestor_allowed(csr, &n)?;
        Ok(n)
    }) {
        Ok(n) => n,
        Err(r) => return Decision::Ignore(Some(r)),
    };
    if node_exists(&node) {
        Decision::Approve
    } else {
        Decision::WaitForNode(node)
    }
}

/// What the approver shares between reconciles.
struct ApproverContext {
    csrs: Api<CertificateSigningRequest>,
    nodes: Api<Node>,
}

async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<ApproverContext>,
) -> Result<Action> {
    let name = csr.name_any();
    // Only a request that passes every other rule costs a Node lookup.
    let node = match decide(&csr, |_| false) {
        Decision::Ignore(reason) => {
            if let Some(r) = reason {
                tracing::debug!(csr = %name, reason = %r, "not auto-approving");
            }
            return Ok(Action::await_change());
        }
        Decision::WaitForNode(n) => n,
        // With no Node known, `decide` never approves outright.
        Decision::Approve => return Ok(Action::await_change()),
    };
    let exists = ctx
        .nodes
        .get_opt(&node)
        .await
        .map_err(Error::api(format!("node {node}")))?
        .is_some();
    if !exists {
        tracing::info!(csr = %name, %node, "waiting for the node to register before approving");
        return Ok(Action::requeue(NODE_RETRY));
    }
    let mut approved = (*csr).clone();
    let now = Time(jiff::Timestamp::now());
    approved
        .status
        .get_or_insert_with(CertificateSigningRequestStatus::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: "Approved".into(),
            status: "True".into(),
            reason: Some("AutoApproved".into()),
            message: Some(format!(
                "Auto approving kubelet serving certificate for node {node}"
            )),
            last_update_time: Some(now.clone()),
            last_transition_time: Some(now),
        });
    match ctx
        .csrs
        .replace_subresource("approval", &name, &PostParams::default(), &approved)
        .await
    {
        Ok(_) => {
            tracing::info!(csr = %name, %node, "approved kubelet serving certificate request");
            Ok(Action::await_change())
        }
        // A newer version is coming through the watch; it is reconciled then.
        Err(e) if crate::error::conflict(&e) || crate::error::not_found(&e) => {
            Ok(Action::await_change())
        }
        Err(e) => Err(Error::api(name)(e)),
    }
}

fn error_policy(
    csr: Arc<CertificateSigningRequest>,
    err: &Error,
    _: Arc<ApproverContext>,
) -> Action {
    tracing::warn!(csr = %csr.name_any(), error = %err, "csr approval failed");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the approver until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let ctx = Arc::new(ApproverContext {
        csrs: csrs.clone(),
        nodes: Api::all(client),
    });
    let controller = Controller::new(csrs, watcher::Config::default());
    let timed_reconcile = |obj, ctx| timed("csrapproving", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr_request::testing::{USAGES, csr, request};

    fn node_n1(n: &str) -> bool {
        n == "n1"
    }

    fn good_pem() -> String {
        request("system:node:n1", &["system:nodes"], &["n1", "ip:10.0.0.5"]).0
    }

    #[test]
    fn approves_a_node_serving_request_for_a_registered_node() {
        assert_eq!(
            decide(&csr(&good_pem(), USAGES), node_n1),
            Decision::Approve
        );
        let mut from_node = csr(&good_pem(), &["digital signature", "server auth"]);
        from_node.spec.username = Some("system:node:n1".into());
        from_node.spec.groups = Some(vec!["system:nodes".into()]);
        assert_eq!(decide(&from_node, node_n1), Decision::Approve);
    }

    #[test]
    fn waits_for_an_unknown_node() {
        assert_eq!(
            decide(&csr(&good_pem(), USAGES), |_| false),
            Decision::WaitForNode("n1".into())
        );
    }

    fn refusal(c: &CertificateSigningRequest) -> Refusal {
        match decide(c, node_n1) {
            Decision::Ignore(Some(r)) => r,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn refuses_requests_that_break_a_rule() {
        let wrong_cn = request("n1", &["system:nodes"], &["n1"]).0;
        assert!(matches!(
            refusal(&csr(&wrong_cn, USAGES)),
            Refusal::Subject(_)
        ));
        let wrong_o = request("system:node:n1", &["system:masters"], &["n1"]).0;
        assert!(matches!(
            refusal(&csr(&wrong_o, USAGES)),
            Refusal::Subject(_)
        ));
        let two_o = request(
            "system:node:n1",
            &["system:nodes", "system:masters"],
            &["n1"],
        )
        .0;
        assert!(matches!(refusal(&csr(&two_o, USAGES)), Refusal::Subject(_)));
        let client_auth = csr(
            &good_pem(),
            &["digital signature", "server auth", "client auth"],
        );
        assert!(matches!(refusal(&client_auth), Refusal::Usages(_)));
        let no_server = csr(&good_pem(), &["digital signature", "key encipherment"]);
        assert!(matches!(refusal(&no_server), Refusal::Usages(_)));
        let email = request("system:node:n1", &["system:nodes"], &["n1", "email:a@b.c"]).0;
        assert_eq!(refusal(&csr(&email, USAGES)), Refusal::Sans);
        let mut other_signer = csr(&good_pem(), USAGES);
        other_signer.spec.signer_name = "kubernetes.io/kube-apiserver-client".into();
        assert!(matches!(refusal(&other_signer), Refusal::OtherSigner(_)));
        let mut stranger = csr(&good_pem(), USAGES);
        stranger.spec.username = Some("jane".into());
        stranger.spec.groups = Some(vec!["system:nodes".into()]);
        assert!(matches!(refusal(&stranger), Refusal::Requestor(..)));
        let mut other_node = csr(&good_pem(), USAGES);
        other_node.spec.username = Some("system:node:n2".into());
        other_node.spec.groups = Some(vec!["system:nodes".into()]);
        assert!(matches!(refusal(&other_node), Refusal::Requestor(..)));
    }

    #[test]
    fn leaves_decided_requests_alone() {
        let mut c = csr(&good_pem(), USAGES);
        c.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: "Denied".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            certificate: None,
        });
        assert_eq!(decide(&c, node_n1), Decision::Ignore(None));
    }
}
