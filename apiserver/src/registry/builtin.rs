//! The built-in kinds: one registry entry each, naming its resource info, its k8s-openapi
//! type, its strategy, its conversion (for versions other than the storage one) and its
//! protobuf field table. Adding a built-in kind is one entry here plus its strategy file.

use std::sync::Arc;

use k8s_openapi::api::{
    apps::v1 as apps, authentication::v1 as authn, authorization::v1 as authz, autoscaling,
    batch::v1 as batch, certificates::v1 as certificates, coordination::v1 as coord,
    core::v1 as core, discovery::v1 as disc, events::v1 as events, networking::v1 as net,
    policy::v1 as policy, rbac::v1 as rbac, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use skiff_api::resources::{self, ResourceInfo};

use super::{FnConversion, Kind, KindCodec, Typed};
use crate::protobuf::schema as pb;
use crate::strategy::{self as st, Strategy};

fn typed<T: DeserializeOwned + Serialize + JsonSchema + 'static>() -> Arc<dyn KindCodec> {
    Arc::new(Typed::<T>::new())
}

/// The entry of `group/version/plural` from the shared resource table, decoded as `T`.
fn kind<T: DeserializeOwned + Serialize + JsonSchema + 'static>(
    group: &str,
    version: &str,
    plural: &str,
    strategy: impl Strategy + 'static,
) -> Kind {
    let info: &'static ResourceInfo = resources::find(group, version, plural)
        .unwrap_or_else(|| panic!("{plural} of {group}/{version} is in the resource table"));
    Kind::new(info, typed::<T>(), Arc::new(strategy))
}

/// Every built-in kind, in discovery order (the order of the shared resource table).
pub(super) fn entries() -> Vec<Kind> {
    let scale = || typed::<autoscaling::v1::Scale>();
    vec![
        kind::<core::Namespace>("", "v1", "namespaces", st::NamespaceStrategy)
            .with_protobuf(pb::CORE_V1_NAMESPACE),
        kind::<core::Pod>("", "v1", "pods", st::PodStrategy)
            .with_protobuf(pb::CORE_V1_POD)
            .with_body(
                "binding",
                typed::<core::Binding>(),
                Some(pb::CORE_V1_BINDING),
            )
            .with_body(
                "eviction",
                typed::<policy::Eviction>(),
                Some(pb::POLICY_V1_EVICTION),
            ),
        kind::<core::Service>("", "v1", "services", st::ServiceStrategy)
            .with_protobuf(pb::CORE_V1_SERVICE),
        kind::<core::Endpoints>("", "v1", "endpoints", st::EndpointsStrategy)
            .with_protobuf(pb::CORE_V1_ENDPOINTS),
        kind::<core::Node>("", "v1", "nodes", st::NodeStrategy).with_protobuf(pb::CORE_V1_NODE),
        kind::<core::ConfigMap>("", "v1", "configmaps", st::ConfigMapStrategy)
            .with_protobuf(pb::CORE_V1_CONFIG_MAP),
        kind::<core::Secret>("", "v1", "secrets", st::SecretStrategy)
            .with_protobuf(pb::CORE_V1_SECRET),
        kind::<core::Event>("", "v1", "events", st::EventStrategy).with_protobuf(pb::CORE_V1_EVENT),
        kind::<core::ServiceAccount>("", "v1", "serviceaccounts", st::ServiceAccountStrategy)
            .with_protobuf(pb::CORE_V1_SERVICE_ACCOUNT)
            .with_body(
                "token",
                typed::<authn::TokenRequest>(),
                Some(pb::AUTHENTICATION_V1_TOKEN_REQUEST),
            ),
        kind::<core::ReplicationController>(
            "",
            "v1",
            "replicationcontrollers",
            st::ReplicationControllerStrategy,
        )
        .with_protobuf(pb::CORE_V1_REPLICATION_CONTROLLER)
        .with_body("scale", scale(), Some(pb::AUTOSCALING_V1_SCALE)),
        kind::<apps::Deployment>("apps", "v1", "deployments", st::DeploymentStrategy)
            .with_protobuf(pb::APPS_V1_DEPLOYMENT)
            .with_body("scale", scale(), Some(pb::AUTOSCALING_V1_SCALE)),
        kind::<apps::ReplicaSet>("apps", "v1", "replicasets", st::ReplicaSetStrategy)
            .with_protobuf(pb::APPS_V1_REPLICA_SET)
            .with_body("scale", scale(), Some(pb::AUTOSCALING_V1_SCALE)),
        kind::<apps::DaemonSet>("apps", "v1", "daemonsets", st::DaemonSetStrategy)
            .with_protobuf(pb::APPS_V1_DAEMON_SET),
        kind::<apps::StatefulSet>("apps", "v1", "statefulsets", st::StatefulSetStrategy)
            .with_protobuf(pb::APPS_V1_STATEFUL_SET)
            .with_body("scale", scale(), Some(pb::AUTOSCALING_V1_SCALE)),
        kind::<apps::ControllerRevision>(
            "apps",
            "v1",
            "controllerrevisions",
            st::ControllerRevisionStrategy,
        )
        .with_protobuf(pb::APPS_V1_CONTROLLER_REVISION),
        kind::<batch::Job>("batch", "v1", "jobs", st::JobStrategy).with_protobuf(pb::BATCH_V1_JOB),
        kind::<batch::CronJob>("batch", "v1", "cronjobs", st::CronJobStrategy)
            .with_protobuf(pb::BATCH_V1_CRON_JOB),
        kind::<autoscaling::v2::HorizontalPodAutoscaler>(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            st::HpaStrategy,
        )
        .with_protobuf(pb::AUTOSCALING_V2_HORIZONTAL_POD_AUTOSCALER),
        kind::<autoscaling::v1::HorizontalPodAutoscaler>(
            "autoscaling",
            "v1",
            "horizontalpodautoscalers",
            st::HpaStrategy,
        )
        .with_protobuf(pb::AUTOSCALING_V1_HORIZONTAL_POD_AUTOSCALER)
        .with_conversion(Arc::new(FnConversion {
            to_storage: st::hpa_v1_to_v2,
            to_served: st::hpa_v2_to_v1,
        })),
        kind::<coord::Lease>("coordination.k8s.io", "v1", "leases", st::LeaseStrategy)
            .with_protobuf(pb::COORDINATION_V1_LEASE),
        kind::<disc::EndpointSlice>(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            st::EndpointSliceStrategy,
        )
        .with_protobuf(pb::DISCOVERY_V1_ENDPOINT_SLICE),
        kind::<certificates::CertificateSigningRequest>(
            "certificates.k8s.io",
            "v1",
            "certificatesigningrequests",
            st::CsrStrategy,
        )
        .with_protobuf(pb::CERTIFICATES_V1_CERTIFICATE_SIGNING_REQUEST),
        kind::<net::IPAddress>(
            "networking.k8s.io",
            "v1",
            "ipaddresses",
            st::IpAddressStrategy,
        )
        .with_protobuf(pb::NETWORKING_V1_IPADDRESS),
        kind::<policy::PodDisruptionBudget>(
            "policy",
            "v1",
            "poddisruptionbudgets",
            st::PodDisruptionBudgetStrategy,
        )
        .with_protobuf(pb::POLICY_V1_POD_DISRUPTION_BUDGET),
        kind::<core::PersistentVolume>("", "v1", "persistentvolumes", st::PersistentVolumeStrategy)
            .with_protobuf(pb::CORE_V1_PERSISTENT_VOLUME),
        kind::<core::PersistentVolumeClaim>(
            "",
            "v1",
            "persistentvolumeclaims",
            st::PersistentVolumeClaimStrategy,
        )
        .with_protobuf(pb::CORE_V1_PERSISTENT_VOLUME_CLAIM),
        kind::<storage::StorageClass>(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            st::StorageClassStrategy,
        )
        .with_protobuf(pb::STORAGE_V1_STORAGE_CLASS),
        kind::<apiextensions::CustomResourceDefinition>(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            st::CrdStrategy,
        ),
        kind::<rbac::ClusterRole>(
            st::RBAC_GROUP,
            "v1",
            "clusterroles",
            st::RbacStrategy(st::RbacKind::ClusterRole),
        )
        .with_protobuf(pb::RBAC_V1_CLUSTER_ROLE),
        kind::<rbac::ClusterRoleBinding>(
            st::RBAC_GROUP,
            "v1",
            "clusterrolebindings",
            st::RbacStrategy(st::RbacKind::ClusterRoleBinding),
        )
        .with_protobuf(pb::RBAC_V1_CLUSTER_ROLE_BINDING),
        kind::<rbac::Role>(
            st::RBAC_GROUP,
            "v1",
            "roles",
            st::RbacStrategy(st::RbacKind::Role),
        )
        .with_protobuf(pb::RBAC_V1_ROLE),
        kind::<rbac::RoleBinding>(
            st::RBAC_GROUP,
            "v1",
            "rolebindings",
            st::RbacStrategy(st::RbacKind::RoleBinding),
        )
        .with_protobuf(pb::RBAC_V1_ROLE_BINDING),
        kind::<authz::SelfSubjectAccessReview>(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            st::GenericStrategy,
        )
        .with_protobuf(pb::AUTHORIZATION_V1_SELF_SUBJECT_ACCESS_REVIEW),
        kind::<authz::SelfSubjectRulesReview>(
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
            st::GenericStrategy,
        )
        .with_protobuf(pb::AUTHORIZATION_V1_SELF_SUBJECT_RULES_REVIEW),
        kind::<authz::SubjectAccessReview>(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            st::GenericStrategy,
        )
        .with_protobuf(pb::AUTHORIZATION_V1_SUBJECT_ACCESS_REVIEW),
        kind::<authz::LocalSubjectAccessReview>(
            "authorization.k8s.io",
            "v1",
            "localsubjectaccessreviews",
            st::GenericStrategy,
        )
        .with_protobuf(pb::AUTHORIZATION_V1_LOCAL_SUBJECT_ACCESS_REVIEW),
        kind::<authn::SelfSubjectReview>(
            "authentication.k8s.io",
            "v1",
            "selfsubjectreviews",
            st::GenericStrategy,
        )
        .with_protobuf(pb::AUTHENTICATION_V1_SELF_SUBJECT_REVIEW),
        kind::<authn::TokenReview>(
            "authentication.k8s.io",
            "v1",
            "tokenreviews",
            st::GenericStrategy,
        )
        .with_protobuf(pb::AUTHENTICATION_V1_TOKEN_REVIEW),
        kind::<events::Event>("events.k8s.io", "v1", "events", st::EventStrategy)
            .with_protobuf(pb::EVENTS_V1_EVENT)
            .with_conversion(Arc::new(FnConversion {
                to_storage: st::events_v1_to_core,
                to_served: st::core_to_events_v1,
            })),
    ]
}
