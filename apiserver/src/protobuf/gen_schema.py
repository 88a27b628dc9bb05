#!/usr/bin/env python3
"""Generates schema.rs: the protobuf field table for every message reachable from the kinds
skiff decodes. Field numbers and wire types come from k8s-pb (prost code generated from
Kubernetes' generated.proto files); JSON names from k8s-openapi (generated from the OpenAPI
spec, so they are the names Kubernetes serves). Both crates must be the same Kubernetes minor.

Usage: gen_schema.py <k8s-pb src dir> <k8s-openapi src/v1_XX dir> > schema.rs
"""
import os
import re
import sys

# (apiVersion, kind) -> k8s-pb message path. Each root becomes a named `MessageTable` constant
# that the apiserver's kind registry entry points at; the (apiVersion, kind) here only documents
# which kind it is. DeleteOptions is accepted under any apiVersion (Kubernetes registers it in
# every group version); the decoder special-cases that.
ROOTS = [
    ("v1", "Namespace", "api.core.v1.Namespace"),
    ("v1", "Pod", "api.core.v1.Pod"),
    ("v1", "Service", "api.core.v1.Service"),
    ("v1", "Endpoints", "api.core.v1.Endpoints"),
    ("v1", "Node", "api.core.v1.Node"),
    ("v1", "ConfigMap", "api.core.v1.ConfigMap"),
    ("v1", "Secret", "api.core.v1.Secret"),
    ("v1", "Event", "api.core.v1.Event"),
    ("v1", "ServiceAccount", "api.core.v1.ServiceAccount"),
    ("v1", "Binding", "api.core.v1.Binding"),
    ("v1", "ReplicationController", "api.core.v1.ReplicationController"),
    ("v1", "PersistentVolume", "api.core.v1.PersistentVolume"),
    ("v1", "PersistentVolumeClaim", "api.core.v1.PersistentVolumeClaim"),
    ("apps/v1", "Deployment", "api.apps.v1.Deployment"),
    ("apps/v1", "ReplicaSet", "api.apps.v1.ReplicaSet"),
    ("apps/v1", "DaemonSet", "api.apps.v1.DaemonSet"),
    ("apps/v1", "StatefulSet", "api.apps.v1.StatefulSet"),
    ("apps/v1", "ControllerRevision", "api.apps.v1.ControllerRevision"),
    ("batch/v1", "Job", "api.batch.v1.Job"),
    ("batch/v1", "CronJob", "api.batch.v1.CronJob"),
    ("autoscaling/v1", "Scale", "api.autoscaling.v1.Scale"),
    ("autoscaling/v1", "HorizontalPodAutoscaler", "api.autoscaling.v1.HorizontalPodAutoscaler"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "api.autoscaling.v2.HorizontalPodAutoscaler"),
    ("coordination.k8s.io/v1", "Lease", "api.coordination.v1.Lease"),
    ("discovery.k8s.io/v1", "EndpointSlice", "api.discovery.v1.EndpointSlice"),
    ("events.k8s.io/v1", "Event", "api.events.v1.Event"),
    ("policy/v1", "Eviction", "api.policy.v1.Eviction"),
    ("policy/v1", "PodDisruptionBudget", "api.policy.v1.PodDisruptionBudget"),
    ("networking.k8s.io/v1", "IPAddress", "api.networking.v1.IPAddress"),
    ("storage.k8s.io/v1", "StorageClass", "api.storage.v1.StorageClass"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest",
     "api.certificates.v1.CertificateSigningRequest"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "api.rbac.v1.ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "api.rbac.v1.ClusterRoleBinding"),
    ("rbac.authorization.k8s.io/v1", "Role", "api.rbac.v1.Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "api.rbac.v1.RoleBinding"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview",
     "api.authorization.v1.SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview",
     "api.authorization.v1.SelfSubjectRulesReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview", "api.authorization.v1.SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview",
     "api.authorization.v1.LocalSubjectAccessReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview", "api.authentication.v1.SelfSubjectReview"),
    ("authentication.k8s.io/v1", "TokenRequest", "api.authentication.v1.TokenRequest"),
    ("authentication.k8s.io/v1", "TokenReview", "api.authentication.v1.TokenReview"),
    ("meta.k8s.io/v1", "DeleteOptions", "apimachinery.pkg.apis.meta.v1.DeleteOptions"),
]

# Messages whose JSON form is not an object: decoded by hand in decode.rs. A special type
# the decoder does not implement yet (metav1.Duration) stops generation if reached.
UNSUPPORTED = {"apimachinery.pkg.apis.meta.v1.Duration"}
SPECIAL = {
    "apimachinery.pkg.api.resource.Quantity": "Quantity",
    "apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "apimachinery.pkg.apis.meta.v1.Time": "Time",
    "apimachinery.pkg.apis.meta.v1.MicroTime": "MicroTime",
    "apimachinery.pkg.runtime.RawExtension": "RawJson",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "RawJson",
    "api.certificates.v1.ExtraValue": "StringList",
    "api.authorization.v1.ExtraValue": "StringList",
    "api.authentication.v1.ExtraValue": "StringList",
}

# Scalar fields whose zero value survives into Kubernetes' JSON: Go pointers (`*int32`,
# `*bool`, `*string`: present on the wire means set, zero included) and fields without
# `omitempty`. Every other scalar is a non-pointer `omitempty` field, which the Go encoder
# always writes and Go's JSON drops when zero, so the decoder drops it too.
KEEP_ZERO = {
    # authentication/v1 (a pointer: zero is sent, and refused)
    "authentication.v1.TokenRequestSpec.expirationSeconds",
    # meta/v1
    "meta.v1.ObjectMeta.deletionGracePeriodSeconds", "meta.v1.OwnerReference.controller",
    "meta.v1.OwnerReference.blockOwnerDeletion", "meta.v1.DeleteOptions.gracePeriodSeconds",
    "meta.v1.DeleteOptions.orphanDependents", "meta.v1.DeleteOptions.propagationPolicy",
    "meta.v1.DeleteOptions.ignoreStoreReadErrorWithClusterBreakingPotential",
    "meta.v1.Preconditions.uid", "meta.v1.Preconditions.resourceVersion",
    # core/v1 pod
    "core.v1.PodSpec.terminationGracePeriodSeconds", "core.v1.PodSpec.activeDeadlineSeconds",
    "core.v1.PodSpec.priority", "core.v1.PodSpec.automountServiceAccountToken",
    "core.v1.PodSpec.shareProcessNamespace", "core.v1.PodSpec.enableServiceLinks",
    "core.v1.PodSpec.setHostnameAsFQDN", "core.v1.PodSpec.hostUsers",
    "core.v1.PodSpec.hostnameOverride", "core.v1.PodSpec.runtimeClassName",
    "core.v1.PodSpec.preemptionPolicy",
    "core.v1.SecretVolumeSource.defaultMode", "core.v1.SecretVolumeSource.optional",
    "core.v1.ConfigMapVolumeSource.defaultMode", "core.v1.ConfigMapVolumeSource.optional",
    "core.v1.DownwardAPIVolumeSource.defaultMode", "core.v1.DownwardAPIVolumeFile.mode",
    "core.v1.ProjectedVolumeSource.defaultMode", "core.v1.KeyToPath.mode",
    "core.v1.SecretProjection.optional", "core.v1.ConfigMapProjection.optional",
    "core.v1.ClusterTrustBundleProjection.optional", "core.v1.ClusterTrustBundleProjection.name",
    "core.v1.ClusterTrustBundleProjection.signerName",
    "core.v1.ServiceAccountTokenProjection.expirationSeconds",
    "core.v1.PodCertificateProjection.maxExpirationSeconds",
    "core.v1.HostPathVolumeSource.type", "core.v1.IscsiVolumeSource.lun",
    "core.v1.IscsiVolumeSource.initiatorName", "core.v1.FcVolumeSource.lun",
    "core.v1.CSIVolumeSource.readOnly", "core.v1.CSIVolumeSource.fsType",
    "core.v1.AzureDiskVolumeSource.cachingMode", "core.v1.AzureDiskVolumeSource.fsType",
    "core.v1.AzureDiskVolumeSource.readOnly", "core.v1.AzureDiskVolumeSource.kind",
    "core.v1.PersistentVolumeClaimSpec.storageClassName", "core.v1.PersistentVolumeClaimSpec.volumeMode",
    "core.v1.PersistentVolumeClaimSpec.volumeAttributesClassName",
    "core.v1.TypedLocalObjectReference.apiGroup", "core.v1.TypedObjectReference.apiGroup",
    "core.v1.TypedObjectReference.namespace",
    "core.v1.ContainerPort.containerPort", "core.v1.Container.restartPolicy",
    "core.v1.EphemeralContainerCommon.restartPolicy",
    "core.v1.ConfigMapEnvSource.optional", "core.v1.SecretEnvSource.optional",
    "core.v1.ConfigMapKeySelector.optional", "core.v1.SecretKeySelector.optional",
    "core.v1.FileKeySelector.optional",
    "core.v1.VolumeMount.mountPropagation", "core.v1.VolumeMount.recursiveReadOnly",
    "core.v1.Probe.terminationGracePeriodSeconds", "core.v1.GrpcAction.port", "core.v1.GrpcAction.service",
    "core.v1.SleepAction.seconds", "core.v1.Lifecycle.stopSignal",
    "core.v1.SecurityContext.runAsUser", "core.v1.SecurityContext.runAsGroup",
    "core.v1.SecurityContext.privileged", "core.v1.SecurityContext.runAsNonRoot",
    "core.v1.SecurityContext.readOnlyRootFilesystem", "core.v1.SecurityContext.allowPrivilegeEscalation",
    "core.v1.SecurityContext.procMount",
    "core.v1.WindowsSecurityContextOptions.gmsaCredentialSpecName",
    "core.v1.WindowsSecurityContextOptions.gmsaCredentialSpec",
    "core.v1.WindowsSecurityContextOptions.runAsUserName",
    "core.v1.WindowsSecurityContextOptions.hostProcess",
    "core.v1.SeccompProfile.localhostProfile", "core.v1.AppArmorProfile.localhostProfile",
    "core.v1.PodSecurityContext.runAsUser", "core.v1.PodSecurityContext.runAsGroup",
    "core.v1.PodSecurityContext.fsGroup", "core.v1.PodSecurityContext.runAsNonRoot",
    "core.v1.PodSecurityContext.fsGroupChangePolicy", "core.v1.PodSecurityContext.supplementalGroupsPolicy",
    "core.v1.PodSecurityContext.seLinuxChangePolicy",
    "core.v1.PreferredSchedulingTerm.weight", "core.v1.WeightedPodAffinityTerm.weight",
    "core.v1.Toleration.tolerationSeconds", "core.v1.TopologySpreadConstraint.maxSkew",
    "core.v1.TopologySpreadConstraint.minDomains", "core.v1.TopologySpreadConstraint.nodeAffinityPolicy",
    "core.v1.TopologySpreadConstraint.nodeTaintsPolicy", "core.v1.PodDnsConfigOption.value",
    "core.v1.PodResourceClaim.resourceClaimName", "core.v1.PodResourceClaim.resourceClaimTemplateName",
    "core.v1.ContainerStatus.restartCount", "core.v1.ContainerStatus.ready",
    "core.v1.ContainerStatus.started", "core.v1.ContainerStatus.stopSignal",
    "core.v1.ContainerStateTerminated.exitCode", "core.v1.LinuxContainerUser.uid",
    "core.v1.LinuxContainerUser.gid", "core.v1.VolumeMountStatus.recursiveReadOnly",
    "core.v1.PodResourceClaimStatus.resourceClaimName",
    # core/v1 service, endpoints, node
    "core.v1.ServicePort.port", "core.v1.ServicePort.appProtocol", "core.v1.ClientIpConfig.timeoutSeconds",
    "core.v1.ServiceSpec.allocateLoadBalancerNodePorts", "core.v1.ServiceSpec.ipFamilyPolicy",
    "core.v1.ServiceSpec.loadBalancerClass", "core.v1.ServiceSpec.internalTrafficPolicy",
    "core.v1.ServiceSpec.trafficDistribution", "core.v1.LoadBalancerIngress.ipMode",
    "core.v1.PortStatus.port", "core.v1.PortStatus.error", "core.v1.EndpointPort.port",
    "core.v1.EndpointPort.appProtocol", "core.v1.EndpointAddress.nodeName", "core.v1.DaemonEndpoint.Port",
    "core.v1.NodeSwapStatus.capacity", "core.v1.NodeRuntimeHandlerFeatures.recursiveReadOnlyMounts",
    "core.v1.NodeRuntimeHandlerFeatures.userNamespaces", "core.v1.NodeFeatures.supplementalGroupsPolicy",
    # core/v1 others
    "core.v1.ConfigMap.immutable", "core.v1.Secret.immutable",
    "core.v1.ServiceAccount.automountServiceAccountToken",
    "core.v1.ReplicationControllerSpec.replicas", "core.v1.ReplicationControllerStatus.replicas",
    # core/v1 storage
    "core.v1.PersistentVolumeSpec.volumeMode", "core.v1.PersistentVolumeSpec.volumeAttributesClassName",
    "core.v1.IscsiPersistentVolumeSource.lun", "core.v1.IscsiPersistentVolumeSource.initiatorName",
    "core.v1.AzureFilePersistentVolumeSource.secretNamespace", "core.v1.LocalVolumeSource.fsType",
    "core.v1.GlusterfsPersistentVolumeSource.endpointsNamespace",
    "core.v1.PersistentVolumeClaimStatus.currentVolumeAttributesClassName",
    # apps/v1
    "apps.v1.DeploymentSpec.replicas", "apps.v1.DeploymentSpec.revisionHistoryLimit",
    "apps.v1.DeploymentSpec.progressDeadlineSeconds", "apps.v1.DeploymentStatus.collisionCount",
    "apps.v1.DeploymentStatus.terminatingReplicas", "apps.v1.ReplicaSetSpec.replicas",
    "apps.v1.ReplicaSetStatus.replicas", "apps.v1.ReplicaSetStatus.terminatingReplicas",
    "apps.v1.DaemonSetSpec.revisionHistoryLimit", "apps.v1.DaemonSetStatus.currentNumberScheduled",
    "apps.v1.DaemonSetStatus.numberMisscheduled", "apps.v1.DaemonSetStatus.desiredNumberScheduled",
    "apps.v1.DaemonSetStatus.numberReady", "apps.v1.DaemonSetStatus.collisionCount",
    "apps.v1.StatefulSetSpec.replicas", "apps.v1.StatefulSetSpec.revisionHistoryLimit",
    "apps.v1.RollingUpdateStatefulSetStrategy.partition", "apps.v1.StatefulSetOrdinals.start",
    "apps.v1.StatefulSetStatus.replicas", "apps.v1.StatefulSetStatus.collisionCount",
    "apps.v1.StatefulSetStatus.availableReplicas", "apps.v1.ControllerRevision.revision",
    # batch/v1
    "batch.v1.JobSpec.parallelism", "batch.v1.JobSpec.completions",
    "batch.v1.JobSpec.activeDeadlineSeconds", "batch.v1.JobSpec.backoffLimit",
    "batch.v1.JobSpec.backoffLimitPerIndex", "batch.v1.JobSpec.maxFailedIndexes",
    "batch.v1.JobSpec.manualSelector", "batch.v1.JobSpec.ttlSecondsAfterFinished",
    "batch.v1.JobSpec.completionMode", "batch.v1.JobSpec.suspend",
    "batch.v1.JobSpec.podReplacementPolicy", "batch.v1.JobSpec.managedBy",
    "batch.v1.JobStatus.terminating", "batch.v1.JobStatus.failedIndexes", "batch.v1.JobStatus.ready",
    "batch.v1.PodFailurePolicyOnExitCodesRequirement.containerName",
    "batch.v1.SuccessPolicyRule.succeededIndexes", "batch.v1.SuccessPolicyRule.succeededCount",
    "batch.v1.CronJobSpec.timeZone", "batch.v1.CronJobSpec.startingDeadlineSeconds",
    "batch.v1.CronJobSpec.suspend", "batch.v1.CronJobSpec.successfulJobsHistoryLimit",
    "batch.v1.CronJobSpec.failedJobsHistoryLimit",
    # autoscaling
    "autoscaling.v1.ScaleStatus.replicas", "autoscaling.v1.HorizontalPodAutoscalerSpec.minReplicas",
    "autoscaling.v1.HorizontalPodAutoscalerSpec.maxReplicas",
    "autoscaling.v1.HorizontalPodAutoscalerSpec.targetCPUUtilizationPercentage",
    "autoscaling.v1.HorizontalPodAutoscalerStatus.observedGeneration",
    "autoscaling.v1.HorizontalPodAutoscalerStatus.currentReplicas",
    "autoscaling.v1.HorizontalPodAutoscalerStatus.desiredReplicas",
    "autoscaling.v1.HorizontalPodAutoscalerStatus.currentCPUUtilizationPercentage",
    "autoscaling.v2.HorizontalPodAutoscalerSpec.minReplicas",
    "autoscaling.v2.HorizontalPodAutoscalerSpec.maxReplicas", "autoscaling.v2.MetricTarget.averageUtilization",
    "autoscaling.v2.HpaScalingRules.stabilizationWindowSeconds", "autoscaling.v2.HpaScalingRules.selectPolicy",
    "autoscaling.v2.HpaScalingPolicy.value", "autoscaling.v2.HpaScalingPolicy.periodSeconds",
    "autoscaling.v2.HorizontalPodAutoscalerStatus.observedGeneration",
    "autoscaling.v2.HorizontalPodAutoscalerStatus.desiredReplicas",
    "autoscaling.v2.MetricValueStatus.averageUtilization",
    # coordination, discovery, events
    "coordination.v1.LeaseSpec.holderIdentity", "coordination.v1.LeaseSpec.leaseDurationSeconds",
    "coordination.v1.LeaseSpec.leaseTransitions", "coordination.v1.LeaseSpec.strategy",
    "coordination.v1.LeaseSpec.preferredHolder",
    "discovery.v1.Endpoint.hostname", "discovery.v1.Endpoint.nodeName", "discovery.v1.Endpoint.zone",
    "discovery.v1.EndpointConditions.ready", "discovery.v1.EndpointConditions.serving",
    "discovery.v1.EndpointConditions.terminating", "discovery.v1.EndpointPort.name",
    "discovery.v1.EndpointPort.protocol", "discovery.v1.EndpointPort.port",
    "discovery.v1.EndpointPort.appProtocol", "events.v1.EventSeries.count",
    # policy, networking, storage
    "policy.v1.PodDisruptionBudgetSpec.unhealthyPodEvictionPolicy",
    "policy.v1.PodDisruptionBudgetStatus.disruptionsAllowed",
    "policy.v1.PodDisruptionBudgetStatus.currentHealthy",
    "policy.v1.PodDisruptionBudgetStatus.desiredHealthy",
    "policy.v1.PodDisruptionBudgetStatus.expectedPods",
    "storage.v1.StorageClass.reclaimPolicy", "storage.v1.StorageClass.allowVolumeExpansion",
    "storage.v1.StorageClass.volumeBindingMode",
    # certificates
    "certificates.v1.CertificateSigningRequestSpec.expirationSeconds",
}


def const_name(path):
    """`api.core.v1.Pod` -> `CORE_V1_POD`, `apimachinery.pkg.apis.meta.v1.DeleteOptions` ->
    `META_V1_DELETE_OPTIONS`."""
    rest = short(path)
    words = [re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", w) for w in rest.split(".")]
    return "_".join(words).upper()


def short(path):
    return re.sub(r"^(api|apimachinery\.pkg\.apis)\.", "", path)


SCALARS = {"string": "String", "bool": "Bool", "int32": "Int32", "int64": "Int64",
           "bytes": "Bytes"}

FIELD_RE = re.compile(r"#\[prost\((.*?)\)\]\s*pub\s+(?:r#)?(\w+)\s*:\s*(.*?),\s*(?=#\[|$)", re.S)


def parse_pb(root):
    """Returns {message path: [(tag, rust name, prost attr, rust type)]}."""
    messages = {}
    for dirpath, _, files in os.walk(root):
        if "mod.rs" not in files:
            continue
        module = os.path.relpath(dirpath, root).replace(os.sep, ".")
        text = open(os.path.join(dirpath, "mod.rs")).read()
        for m in re.finditer(r"^pub struct (\w+) \{\n(.*?)^\}", text, re.S | re.M):
            body = "\n".join(l for l in m.group(2).splitlines() if not l.strip().startswith("//"))
            fields = []
            for f in FIELD_RE.finditer(body.strip()):
                attr, name, ty = f.group(1), f.group(2), " ".join(f.group(3).split())
                tag = int(re.search(r'tag\s*=\s*"(\d+)"', attr).group(1))
                fields.append((tag, name, attr, ty))
            declared = len(re.findall(r"^\s*pub ", body, re.M))
            if declared != len(fields):
                sys.exit(f"{module}.{m.group(1)}: parsed {len(fields)} of {declared} fields")
            messages[f"{module}.{m.group(1)}"] = fields
    return messages


def parse_openapi(root):
    """Returns {(module, lowercased struct name): {normalised rust field: json name}}."""
    names = {}
    for dirpath, _, files in os.walk(root):
        module = os.path.relpath(dirpath, root).replace(os.sep, ".")
        for fname in files:
            if not fname.endswith(".rs") or fname == "mod.rs":
                continue
            text = open(os.path.join(dirpath, fname)).read()
            s = re.search(r"^pub struct (\w+)", text, re.M)
            if not s:
                continue
            mapping = {norm(k): j for j, k in re.findall(r'"(\w+)" => Field::Key_(\w+)', text)}
            names[(module, s.group(1).lower())] = mapping
    return names


def resolve(module, ty):
    """The message path a prost field type names, relative to `module`."""
    inner = re.sub(r"^::core::option::Option<|^::prost::alloc::vec::Vec<", "", ty)
    inner = inner.rstrip(">").strip().rstrip(",").strip()
    parts = module.split(".")
    segs = inner.split("::")
    while segs and segs[0] == "super":
        parts.pop()
        segs.pop(0)
    return ".".join(parts + segs)


def norm(rust_name):
    """k8s-pb and k8s-openapi snake-case some names differently (pod_cid_rs, pod_cidrs)."""
    return rust_name.replace("_", "").lower()


def camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def main():
    pb = parse_pb(sys.argv[1])
    openapi = parse_openapi(sys.argv[2])
    order, index, warnings = [], {}, []

    def visit(path):
        if path in index or path in SPECIAL:
            return
        if path not in pb:
            sys.exit(f"unknown message {path}")
        if path in UNSUPPORTED:
            sys.exit(f"{path} is reachable: give it a Kind in schema_types.rs and decode.rs")
        index[path] = len(order)
        order.append(path)
        module = path.rsplit(".", 1)[0]
        for tag, name, attr, ty in pb[path]:
            if attr.startswith("message"):
                visit(resolve(module, ty))
            elif "map" in attr.split("=")[0] and "message" in attr:
                value = re.search(r"BTreeMap<[^,]+,\s*(.*)>$", ty).group(1)
                visit(resolve(module, value))

    for _, _, path in ROOTS:
        visit(path)

    def kind_of(module, attr, ty):
        head = attr.split(",")[0].strip()
        if head.startswith("btree_map") or head.startswith("map"):
            key, value = [p.strip() for p in re.search(r'"(.*?)"', attr).group(1).split(",")]
            assert key == "string", attr
            if value == "message":
                target = resolve(module, re.search(r"BTreeMap<[^,]+,\s*(.*)>$", ty).group(1))
                return f"Kind::Map(&{value_kind(target)})"
            return f"Kind::Map(&Kind::{SCALARS[value]})"
        scalar = head.split("=")[0].strip()
        if scalar == "message":
            return value_kind(resolve(module, ty))
        return f"Kind::{SCALARS[scalar]}"

    def value_kind(target):
        if target in SPECIAL:
            return f"Kind::{SPECIAL[target]}"
        return f"Kind::Message({index[target]})"

    # Go structs embedded with `json:",inline"` are nested messages on the wire but merged into
    # the parent object in JSON. They are the message fields the parent's JSON does not name;
    # an embedded struct with no OpenAPI schema of its own takes its names from its parent.
    def own_mapping(path):
        module, msg = path.rsplit(".", 1)
        return openapi.get((module, msg.lower()))

    mappings = {path: own_mapping(path) for path in order}
    inline = set()
    for path in order:
        module = path.rsplit(".", 1)[0]
        for tag, name, attr, ty in pb[path]:
            if attr.startswith("message") and mappings[path] is not None and norm(name) not in mappings[path]:
                target = resolve(module, ty)
                inline.add((path, name))
                if mappings[target] is None:
                    mappings[target] = mappings[path]
    for path in order:
        if mappings[path] is None:
            sys.exit(f"{path}: no k8s-openapi struct and not embedded in one")

    seen_keep = set()
    out = []
    out.append("//! Generated by gen_schema.py from k8s-pb 0.9 and k8s-openapi 0.29 (Kubernetes 1.35): the")
    out.append("//! protobuf field table of every decodable kind. Do not edit.\n")
    out.append("use super::schema_types::{Field, Kind, Message, MessageTable};\n")
    out.append("/// Every message reachable from the decodable kinds, indexed by `Kind::Message`.")
    out.append("#[rustfmt::skip]")
    out.append("pub(super) static MESSAGES: &[Message] = &[")
    for path in order:
        module = path.rsplit(".", 1)[0]
        mapping = mappings[path]
        covered = set()
        out.append(f'    Message {{ name: "{path}", fields: &[')
        for tag, name, attr, ty in sorted(pb[path]):
            is_inline = (path, name) in inline
            json = "" if is_inline else mapping.get(norm(name))
            if json is None:
                sys.exit(f"{path}.{name}: no JSON name")
            covered.add(json)
            repeated = "repeated" in [a.strip() for a in attr.split(",")]
            kind = kind_of(module, attr, ty)
            keep = f"{short(path)}.{json}" in KEEP_ZERO
            seen_keep.add(f"{short(path)}.{json}")
            flags = f"repeated: {str(repeated).lower()}, inline: {str(is_inline).lower()}, keep_zero: {str(keep).lower()}"
            out.append(f'        Field {{ tag: {tag}, json: "{json}", kind: {kind}, {flags} }},')
        if own_mapping(path) is not None and not any(i[0] == path for i in inline):
            missing = set(mapping.values()) - covered - {"apiVersion", "kind"}
            if missing:
                warnings.append(f"{path}: JSON fields with no protobuf field: {sorted(missing)}")
        out.append("    ] },")
    out.append("];\n")
    out.append("// The table of each decodable object, named after its k8s-pb message: the kind registry's")
    out.append("// entries point at these.")
    for api_version, kind, path in ROOTS:
        out.append(f"/// `{kind}` of `{api_version}`.")
        out.append(f"pub const {const_name(path)}: MessageTable = MessageTable({index[path]});")
    unknown = KEEP_ZERO - seen_keep
    if unknown:
        sys.exit(f"KEEP_ZERO names fields that do not exist: {sorted(unknown)}")
    print("\n".join(out))
    for w in warnings:
        print(w, file=sys.stderr)


main()
