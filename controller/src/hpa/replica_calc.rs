//! The replica calculator of Kubernetes' HPA (pkg/controller/podautoscaler,
//! replica_calculator.go): from pod metrics, pod requests and the pods themselves to a
//! proposed replica count, with the tolerance, the missing-metric and unready-pod rules
//! and the CPU initialization period. Pure: the pods, metrics and clock are passed in.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use skiff_api::quantity::Quantity;

/// One pod's usage of one resource (millis), as the metrics API reported it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodMetric {
    /// When the sample was taken.
    pub timestamp: Timestamp,
    /// The window the sample covers.
    pub window: SignedDuration,
    /// The usage in millis (millicores, millibytes).
    pub value: i64,
}

/// Usage by pod name.
pub type PodMetricsInfo = BTreeMap<String, PodMetric>;

/// The scale-down and scale-up tolerances on the usage ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Below 1 − this, the ratio asks for a scale-down.
    pub scale_down: f64,
    /// Above 1 + this, the ratio asks for a scale-up.
    pub scale_up: f64,
}

impl Tolerances {
    /// The same tolerance both ways.
    pub fn both(t: f64) -> Tolerances {
        Tolerances {
            scale_down: t,
            scale_up: t,
        }
    }

    fn is_within(self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }
}

/// Why no replica count could be proposed; the messages are Kubernetes'.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    /// The selector matched no pod.
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    /// Every pod with a metric was unready, pending or ignored.
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoReadyMetrics,
    /// A container of a pod has no request for the resource.
    #[error("missing request for {resource} in container {container} of Pod {pod}")]
    MissingRequest {
        /// The resource (`cpu`, `memory`).
        resource: String,
        /// The container without a request.
        container: String,
        /// The pod.
        pod: String,
    },
    /// A ContainerResource metric names a container the pod does not have.
    #[error("container {container} not found in Pod {pod}")]
    ContainerNotFound {
        /// The container named by the metric.
        container: String,
        /// The pod.
        pod: String,
    },
    /// The metrics belong to none of the pods with requests.
    #[error("no metrics returned matched known pods")]
    NoMatchingMetrics,
}

/// The calculator's timing settings and clock.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaCalculator {
    /// `--horizontal-pod-autoscaler-cpu-initialization-period`.
    pub cpu_initialization_period: SignedDuration,
    /// `--horizontal-pod-autoscaler-initial-readiness-delay`.
    pub initial_readiness_delay: SignedDuration,
    /// Now.
    pub now: Timestamp,
}

/// A utilization proposal: replicas, utilization (percent of request), raw average (millis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtilizationProposal {
    /// The proposed replica count.
    pub replicas: i32,
    /// Average utilization of the ready pods, percent of their requests.
    pub utilization: i32,
    /// Average usage of the ready pods, millis.
    pub raw_average: i64,
}

struct Groups {
    ready: usize,
    unready: BTreeSet<String>,
    missing: BTreeSet<String>,
    ignored: BTreeSet<String>,
}

impl ReplicaCalculator {
    /// `GetResourceReplicas`: replicas for a target utilization (percent of request) of
    /// `resource`, over the pods the target's selector matched.
    #[allow(clippy::too_many_arguments)]
    pub fn resource_replicas(
        &self,
        current: i32,
        target_utilization: i32,
        resource: &str,
        tolerances: Tolerances,
        pods: &[&Pod],
        mut metrics: PodMetricsInfo,
        container: Option<&str>,
    ) -> Result<UtilizationProposal, CalcError> {
        if pods.is_empty() {
            return Err(CalcError::NoPods);
        }
        let g = self.group_pods(pods, &metrics, resource);
        metrics.retain(|p, _| !g.ignored.contains(p) && !g.unready.contains(p));
        if metrics.is_empty() {
            return Err(CalcError::NoReadyMetrics);
        }
        let requests = pod_requests(pods, container, resource)?;
        let (ratio, utilization, raw_average) =
            utilization_ratio(&metrics, &requests, target_utilization)?;
        let proposal = |replicas| UtilizationProposal {
            replicas,
            utilization,
            raw_average,
        };

        let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && g.missing.is_empty() {
            if tolerances.is_within(ratio) {
                return Ok(proposal(current));
            }
            return Ok(proposal(ceil(ratio * g.ready as f64)));
        }
        if !g.missing.is_empty() {
            if ratio < 1.0 {
                // On a scale-down a missing pod counts as using its whole request (or the
                // target, for targets above 100 %).
                let fallback = i64::from(target_utilization.max(100));
                for pod in &g.missing {
                    let value = requests.get(pod).copied().unwrap_or(0) * fallback / 100;
                    metrics.insert(pod.clone(), self.filler(value));
                }
            } else if ratio > 1.0 {
                for pod in &g.missing {
                    metrics.insert(pod.clone(), self.filler(0));
                }
            }
        }
        if scale_up_with_unready {
            for pod in &g.unready {
                metrics.insert(pod.clone(), self.filler(0));
            }
        }
        let (new_ratio, _, _) = utilization_ratio(&metrics, &requests, target_utilization)?;
        if tolerances.is_within(new_ratio)
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
        {
            return Ok(proposal(current));
        }
        let replicas = ceil(new_ratio * metrics.len() as f64);
        if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
            return Ok(proposal(current));
        }
        Ok(proposal(replicas))
    }

    /// `GetRawResourceReplicas`: replicas for a target average usage (millis) of
    /// `resource`. Returns the replicas and the average usage of the ready pods.
    pub fn raw_resource_replicas(
        &self,
        current: i32,
        target_usage: i64,
        resource: &str,
        tolerances: Tolerances,
        pods: &[&Pod],
        mut metrics: PodMetricsInfo,
    ) -> Result<(i32, i64), CalcError> {
        if pods.is_empty() {
            return Err(CalcError::NoPods);
        }
        let g = self.group_pods(pods, &metrics, resource);
        metrics.retain(|p, _| !g.ignored.contains(p) && !g.unready.contains(p));
        if metrics.is_empty() {
            return Err(CalcError::NoReadyMetrics);
        }
        let (ratio, usage) = usage_ratio(&metrics, target_usage);
        let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && g.missing.is_empty() {
            if tolerances.is_within(ratio) {
                return Ok((current, usage));
            }
            return Ok((ceil(ratio * g.ready as f64), usage));
        }
        if !g.missing.is_empty() {
            // On a scale-down a missing pod counts as using exactly the target.
            let fill = if ratio < 1.0 {
                Some(target_usage)
            } else if ratio > 1.0 {
                Some(0)
            } else {
                None
            };
            if let Some(v) = fill {
                for pod in &g.missing {
                    metrics.insert(pod.clone(), self.filler(v));
                }
            }
        }
        if scale_up_with_unready {
            for pod in &g.unready {
                metrics.insert(pod.clone(), self.filler(0));
            }
        }
        let (new_ratio, _) = usage_ratio(&metrics, target_usage);
        if tolerances.is_within(new_ratio)
            || (ratio < 1.0 && new_ratio > 1.0)
            || (ratio > 1.0 && new_ratio < 1.0)
        {
            return Ok((current, usage));
        }
        let replicas = ceil(new_ratio * metrics.len() as f64);
        if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
            return Ok((current, usage));
        }
        Ok((replicas, usage))
    }

    fn filler(&self, value: i64) -> PodMetric {
        PodMetric {
            timestamp: self.now,
            window: SignedDuration::ZERO,
            value,
        }
    }

    /// `groupPods`: ready pods counted; pending and (for cpu) not-yet-ready pods unready;
    /// pods without a metric missing; deleted and failed pods ignored.
    fn group_pods(&self, pods: &[&Pod], metrics: &PodMetricsInfo, resource: &str) -> Groups {
        let mut g = Groups {
            ready: 0,
            unready: BTreeSet::new(),
            missing: BTreeSet::new(),
            ignored: BTreeSet::new(),
        };
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let status = pod.status.clone().unwrap_or_default();
            let phase = status.phase.as_deref().unwrap_or("");
            if pod.metadata.deletion_timestamp.is_some() || phase == "Failed" {
                g.ignored.insert(name);
                continue;
            }
            if phase == "Pending" {
                g.unready.insert(name);
                continue;
            }
            let Some(metric) = metrics.get(&name) else {
                g.missing.insert(name);
                continue;
            };
            if resource == "cpu" && self.cpu_sample_unready(&status, metric) {
                g.unready.insert(name);
                continue;
            }
            g.ready += 1;
        }
        g
    }

    fn cpu_sample_unready(
        &self,
        status: &k8s_openapi::api::core::v1::PodStatus,
        metric: &PodMetric,
    ) -> bool {
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        let (Some(cond), Some(start)) = (ready, status.start_time.as_ref()) else {
            return true;
        };
        let start = start.0;
        let transition = cond
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let not_ready = cond.status == "False";
        if start + self.cpu_initialization_period > self.now {
            // Inside the initialization period: unready, or no full metric window since
            // the last readiness transition.
            not_ready || metric.timestamp < transition + metric.window
        } else {
            // After it: unready and never ready since start (within the readiness delay).
            not_ready && start + self.initial_readiness_delay > transition
        }
    }
}

fn ceil(x: f64) -> i32 {
    let c = x.ceil();
    if c > f64::from(i32::MAX) {
        i32::MAX
    } else {
        c as i32
    }
}

/// `calculateRequests`: each pod's request for `resource` (millis): the sum over its
/// containers and restartable init containers, or the named container's.
pub fn pod_requests(
    pods: &[&Pod],
    container: Option<&str>,
    resource: &str,
) -> Result<BTreeMap<String, i64>, CalcError> {
    let mut out = BTreeMap::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let mut sum = 0i64;
        let mut found = false;
        for c in spec.containers.iter().chain(sidecars) {
            if container.is_some_and(|want| want != c.name) {
                continue;
            }
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| Quantity::parse(&q.0).ok());
            let Some(q) = request else {
                return Err(CalcError::MissingRequest {
                    resource: resource.into(),
                    container: c.name.clone(),
                    pod: name,
                });
            };
            sum += i64::try_from(q.milli_value()).unwrap_or(i64::MAX);
            found = true;
            if container.is_some() {
                break;
            }
        }
        if let (Some(want), false) = (container, found) {
            return Err(CalcError::ContainerNotFound {
                container: want.into(),
                pod: name,
            });
        }
        out.insert(name, sum);
    }
    Ok(out)
}

/// `GetResourceUtilizationRatio`: (usage ratio, utilization percent, average usage).
fn utilization_ratio(
    metrics: &PodMetricsInfo,
    requests: &BTreeMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), CalcError> {
    let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (pod, m) in metrics {
        // A metric for a pod without a known request is a stale sample; skip it.
        let Some(r) = requests.get(pod) else { continue };
        used += m.value;
        requested += r;
        n += 1;
    }
    if requested == 0 {
        return Err(CalcError::NoMatchingMetrics);
    }
    let utilization = (used * 100 / requested) as i32;
    Ok((
        f64::from(utilization) / f64::from(target),
        utilization,
        used / n,
    ))
}

/// `GetMetricUsageRatio`: (usage ratio, average usage).
fn usage_ratio(metrics: &PodMetricsInfo, target: i64) -> (f64, i64) {
    let total: i64 = metrics.values().map(|m| m.value).sum();
    let average = total / metrics.len().max(1) as i64;
    (average as f64 / target as f64, average)
}

#[cfg(test)]
#[path = "replica_calc_tests.rs"]
mod tests;
