//! What the scheduler writes to the API: the `pods/binding` POST, the `Scheduled` and
//! `FailedScheduling` events, and the PodScheduled=False condition.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use skiff_api::storage::SELECTED_NODE;
use skiff_client::events::{EventRecorder, EventType, Reporter, pod_reference};

/// A failed write, with the pod it concerned.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The pod was bound by someone else meanwhile (409).
    #[error("pod {pod} is already bound")]
    AlreadyBound {
        /// `namespace/name`.
        pod: String,
    },
    /// The pod no longer exists (404).
    #[error("pod {pod} no longer exists")]
    Gone {
        /// `namespace/name`.
        pod: String,
    },
    /// A claim the pod uses could not be given the chosen node.
    #[error("selecting node {node} for claim {claim} of pod {pod}")]
    Claim {
        /// `namespace/name` of the pod.
        pod: String,
        /// `namespace/name` of the claim.
        claim: String,
        /// The target node.
        node: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// Any other API failure.
    #[error("binding pod {pod} to node {node}")]
    Api {
        /// `namespace/name`.
        pod: String,
        /// The target node.
        node: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// Writes bindings, events and conditions for one scheduler.
#[derive(Clone)]
pub struct Binder {
    client: Client,
    /// Identity written as the events' reporting instance.
    instance: String,
}

fn ns_name(pod: &Pod) -> (String, String) {
    (
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

fn scheduler_name(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.clone())
        .unwrap_or_else(|| crate::DEFAULT_SCHEDULER_NAME.into())
}

impl Binder {
    /// A binder using `client`; `instance` names this scheduler process in events.
    pub fn new(client: Client, instance: String) -> Binder {
        Binder { client, instance }
    }

    /// Annotates each claim waiting for its first consumer with the chosen node
    /// (`volume.kubernetes.io/selected-node`), as kube-scheduler's VolumeBinding PreBind
    /// does, so the PV binder binds it there or the node's provisioner makes its volume.
    pub async fn select_node_for_claims(
        &self,
        pod: &Pod,
        claims: &[(String, String)],
        node: &str,
    ) -> Result<(), BindError> {
        let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
        for (ns, name) in claims {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
            if let Err(source) = api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                let (pns, pname) = ns_name(pod);
                return Err(BindError::Claim {
                    pod: format!("{pns}/{pname}"),
                    claim: format!("{ns}/{name}"),
                    node: node.into(),
                    source,
                });
            }
        }
        Ok(())
    }

    /// POSTs the Binding of `pod` to `node`.
    pub async fn bind(&self, pod: &Pod, node: &str) -> Result<(), BindError> {
        let (ns, name) = ns_name(pod);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": ns, "uid": pod.metadata.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let key = format!("{ns}/{name}");
        match api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(BindError::AlreadyBound { pod: key }),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(BindError::Gone { pod: key }),
            Err(source) => Err(BindError::Api {
                pod: key,
                node: node.into(),
                source,
            }),
        }
    }

    /// Records an event about `pod` (core/v1, as `kubectl describe` lists them), reported
    /// as the pod's scheduler name and this scheduler process.
    pub async fn event(
        &self,
        pod: &Pod,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let reporter = Reporter {
            component: scheduler_name(pod),
            instance: Some(self.instance.clone()),
            host: None,
        };
        let action = if reason == "Scheduled" {
            "Binding"
        } else {
            "Scheduling"
        };
        EventRecorder::core_v1(self.client.clone(), reporter)
            .write(
                &pod_reference(pod, None),
                kind,
                reason,
                Some(action),
                message.into(),
            )
            .await
    }

    /// Reports a successful binding: the `Scheduled` event.
    pub async fn report_scheduled(&self, pod: &Pod, node: &str) {
        let (ns, name) = ns_name(pod);
        let msg = format!("Successfully assigned {ns}/{name} to {node}");
        if let Err(e) = self.event(pod, EventType::Normal, "Scheduled", &msg).await {
            tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "cannot record Scheduled event");
        }
    }

    /// Reports a pod that fits nowhere: the `FailedScheduling` event and, unless already
    /// set to the same message, PodScheduled=False with reason Unschedulable.
    pub async fn report_unschedulable(&self, pod: &Pod, message: &str) {
        let (ns, name) = ns_name(pod);
        let key = format!("{ns}/{name}");
        if let Err(e) = self
            .event(pod, EventType::Warning, "FailedScheduling", message)
            .await
        {
            tracing::warn!(pod = %key, error = %e, "cannot record FailedScheduling event");
        }
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        if current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        }) {
            return;
        }
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": Time(Timestamp::now()),
        }]}});
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            tracing::warn!(pod = %key, error = %e, "cannot set PodScheduled=False");
        }
    }
}
