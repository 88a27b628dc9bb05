//! One metric spec to a replica proposal and its MetricStatus (horizontal.go's
//! `computeReplicasForMetric` for Resource and ContainerResource sources), and the
//! combination of every spec into the HPA's recommendation
//! (`computeReplicasForMetrics`: the highest valid proposal wins).

use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KQuantity;
use skiff_api::quantity::Quantity;

use super::metrics_source::{PodMetrics, usage_of};
use super::replica_calc::{ReplicaCalculator, Tolerances};

/// A valid metric's proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// Replicas this metric asks for.
    pub replicas: i32,
    /// How the metric is named in the rescale reason (`cpu resource utilization
    /// (percentage of request)`).
    pub name: String,
    /// Its current value.
    pub status: MetricStatus,
}

/// Why a metric gave no proposal: the ScalingActive=False reason and the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricFailure {
    /// `FailedGetResourceMetric`, `InvalidMetricSourceType`, ...
    pub reason: &'static str,
    /// The error, as Kubernetes words it.
    pub error: String,
}

/// The inputs every metric of one HPA is computed from.
pub struct MetricInputs<'a> {
    /// The calculator with its clock.
    pub calc: ReplicaCalculator,
    /// The HPA's tolerances.
    pub tolerances: Tolerances,
    /// The target's `spec.replicas`.
    pub current: i32,
    /// The pods the target's selector matches.
    pub pods: &'a [&'a Pod],
    /// The metrics API's answer for those pods.
    pub metrics: &'a Result<Vec<PodMetrics>, String>,
}

/// `computeReplicasForMetric` for one spec.
pub fn replicas_for_metric(
    spec: &MetricSpec,
    input: &MetricInputs<'_>,
) -> Result<Proposal, MetricFailure> {
    match spec.type_.as_str() {
        "Resource" => {
            let Some(r) = &spec.resource else {
                return Err(invalid_source("Resource"));
            };
            let (replicas, name, current) = resource_metric(&r.name, &r.target, None, input)
                .map_err(|error| MetricFailure {
                    reason: "FailedGetResourceMetric",
                    error,
                })?;
            Ok(Proposal {
                replicas,
                name,
                status: MetricStatus {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricStatus {
                        name: r.name.clone(),
                        current,
                    }),
                    ..Default::default()
                },
            })
        }
        "ContainerResource" => {
            let Some(c) = &spec.container_resource else {
                return Err(invalid_source("ContainerResource"));
            };
            let (replicas, name, current) =
                resource_metric(&c.name, &c.target, Some(&c.container), input).map_err(
                    |error| MetricFailure {
                        reason: "FailedGetContainerResourceMetric",
                        error,
                    },
                )?;
            Ok(Proposal {
                replicas,
                name,
                status: MetricStatus {
                    type_: "ContainerResource".into(),
                    container_resource: Some(ContainerResourceMetricStatus {
                        name: c.name.clone(),
                        container: c.container.clone(),
                        current,
                    }),
                    ..Default::default()
                },
            })
        }
        // These read the custom and external metrics APIs, which skiff does not serve.
        "Pods" | "Object" | "External" => {
            let (reason, api) = match spec.type_.as_str() {
                "Pods" => ("FailedGetPodsMetric", "custom.metrics.k8s.io"),
                "Object" => ("FailedGetObjectMetric", "custom.metrics.k8s.io"),
                _ => ("FailedGetExternalMetric", "external.metrics.k8s.io"),
            };
            Err(MetricFailure {
                reason,
                error: format!("unable to get metric: no {api} API is served in this cluster"),
            })
        }
        other => Err(MetricFailure {
            reason: "InvalidMetricSourceType",
            error: format!("unknown metric source type {other:?}"),
        }),
    }
}

fn invalid_source(kind: &str) -> MetricFailure {
    MetricFailure {
        reason: "InvalidMetricSourceType",
        error: format!("invalid {kind} metric source: the source is not set"),
    }
}

fn milli_quantity(milli: i64) -> KQuantity {
    KQuantity(Quantity::from_milli(milli).to_string())
}

/// `computeStatusForResourceMetricGeneric`: (replicas, metric name, current value).
fn resource_metric(
    resource: &str,
    target: &MetricTarget,
    container: Option<&str>,
    input: &MetricInputs<'_>,
) -> Result<(i32, String, MetricValueStatus), String> {
    let items = input
        .metrics
        .as_ref()
        .map_err(|e| format!("unable to get metrics for resource {resource}: {e}"));
    if let Some(avg) = &target.average_value {
        let items = items.map_err(|e| format!("failed to get {resource} usage: {e}"))?;
        let target_milli = Quantity::parse(&avg.0)
            .map(|q| i64::try_from(q.milli_value()).unwrap_or(i64::MAX))
            .map_err(|e| {
                format!(
                    "failed to get {resource} usage: invalid target {}: {e}",
                    avg.0
                )
            })?;
        let (replicas, usage) = input
            .calc
            .raw_resource_replicas(
                input.current,
                target_milli,
                resource,
                input.tolerances,
                input.pods,
                usage_of(items, resource, container),
            )
            .map_err(|e| format!("failed to get {resource} usage: {e}"))?;
        let status = MetricValueStatus {
            average_value: Some(milli_quantity(usage)),
            ..Default::default()
        };
        return Ok((replicas, format!("{resource} resource"), status));
    }
    let Some(target_utilization) = target.average_utilization else {
        return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into());
    };
    let items = items.map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
    let p = input
        .calc
        .resource_replicas(
            input.current,
            target_utilization,
            resource,
            input.tolerances,
            input.pods,
            usage_of(items, resource, container),
            container,
        )
        .map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
    let name = match container {
        Some(_) => format!("{resource} container resource utilization (percentage of request)"),
        None => format!("{resource} resource utilization (percentage of request)"),
    };
    let status = MetricValueStatus {
        average_utilization: Some(p.utilization),
        average_value: Some(milli_quantity(p.raw_average)),
        value: None,
    };
    Ok((p.replicas, name, status))
}

/// Every metric's outcome combined.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    /// The highest proposal, `None` when the metrics cannot be acted on (all invalid, or
    /// some invalid and the valid ones would scale down).
    pub replicas: Option<i32>,
    /// The metric behind it.
    pub metric: String,
    /// One status per spec (empty for a failed one, as Kubernetes leaves it).
    pub statuses: Vec<MetricStatus>,
    /// The first failure, and the wrapped error (`invalid metrics (1 invalid out of 2),
    /// first error is: ...`).
    pub failure: Option<(MetricFailure, String)>,
}

/// `computeReplicasForMetrics`.
pub fn replicas_for_metrics(specs: &[MetricSpec], input: &MetricInputs<'_>) -> Combined {
    let mut statuses = vec![MetricStatus::default(); specs.len()];
    let (mut replicas, mut metric) = (0, String::new());
    let (mut invalid, mut first) = (0usize, None);
    for (i, spec) in specs.iter().enumerate() {
        match replicas_for_metric(spec, input) {
            Ok(p) => {
                statuses[i] = p.status;
                if replicas == 0 || p.replicas > replicas {
                    replicas = p.replicas;
                    metric = p.name;
                }
            }
            Err(f) => {
                invalid += 1;
                first.get_or_insert(f);
            }
        }
    }
    let failure = first.map(|f| {
        let wrapped = format!(
            "invalid metrics ({invalid} invalid out of {}), first error is: {}",
            specs.len(),
            f.error
        );
        (f, wrapped)
    });
    let unusable = invalid >= specs.len() || (invalid > 0 && replicas < input.current);
    Combined {
        replicas: (!unusable).then_some(replicas),
        metric,
        statuses,
        failure,
    }
}
