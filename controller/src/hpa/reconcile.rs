//! One HPA sync (horizontal.go's `reconcileAutoscaler`): read the target's scale, compute
//! the metrics' recommendation, normalize it, rescale through the scale subresource, and
//! write status, conditions and events.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerStatus, MetricStatus,
};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DynamicObject, Patch, PostParams};
use kube::core::GroupVersionKind;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use skiff_api::labels::Selector;

use super::HpaContext;
use super::behavior::{Bounds, with_defaults};
use super::conditions::{ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED, set_condition};
use super::metric_replicas::{MetricInputs, replicas_for_metrics};
use super::replica_calc::{ReplicaCalculator, Tolerances};
use crate::error::{Error, Result};
use crate::replicaset::key_of;

fn signed(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// A client error as the message Kubernetes shows (the Status message for API errors).
fn message_of(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// The status being built during one sync, with what the events need.
struct Sync<'a> {
    hpa: &'a HorizontalPodAutoscaler,
    ctx: &'a HpaContext,
    reference: ObjectReference,
    status: HorizontalPodAutoscalerStatus,
    now: Timestamp,
}

impl Sync<'_> {
    fn condition(&mut self, type_: &str, ok: bool, reason: &str, message: String) {
        let conditions = self.status.conditions.get_or_insert_with(Vec::new);
        set_condition(conditions, type_, ok, reason, message, self.now);
    }

    fn warn(&self, reason: &str, note: String) {
        self.ctx
            .events
            .warning(self.reference.clone(), reason, note);
    }

    /// `updateStatusIfNeeded`: a merge patch of the whole status when it changed.
    async fn write_status(&self) -> Result<()> {
        let old = self.hpa.status.clone().unwrap_or_default();
        if old == self.status {
            return Ok(());
        }
        let mut status = serde_json::to_value(&self.status).unwrap_or(json!({}));
        // A merge patch only removes what it names as null.
        for field in ["currentMetrics", "lastScaleTime", "conditions"] {
            if status.get(field).is_none() {
                status[field] = Value::Null;
            }
        }
        let ns = self.hpa.namespace().unwrap_or_default();
        let api = Api::<HorizontalPodAutoscaler>::namespaced(self.ctx.client.clone(), &ns);
        api.patch_status(
            &self.hpa.name_any(),
            &crate::patch_params(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .map_err(Error::api(key_of(self.hpa)))?;
        Ok(())
    }

    /// `setCurrentReplicasAndMetricsInStatus` / `setStatus`.
    fn set_replicas(
        &mut self,
        current: i32,
        desired: Option<i32>,
        metrics: Option<Vec<MetricStatus>>,
    ) {
        self.status.current_replicas = Some(current);
        if let Some(d) = desired {
            self.status.desired_replicas = d;
        }
        self.status.current_metrics = metrics;
        self.status.observed_generation = self.hpa.metadata.generation;
    }
}

/// The target's scale through its scale subresource, the kind resolved by discovery.
async fn target_scale(
    ctx: &HpaContext,
    hpa: &HorizontalPodAutoscaler,
) -> std::result::Result<(Api<DynamicObject>, Scale), String> {
    let spec = hpa.spec.clone().unwrap_or_default();
    let r = &spec.scale_target_ref;
    let (group, version) = match r.api_version.as_deref().unwrap_or("") {
        "" => ("", ""),
        v => v.split_once('/').unwrap_or(("", v)),
    };
    if version.is_empty() {
        return Err(format!(
            "unexpected GroupVersion string: {:?}",
            r.api_version.as_deref().unwrap_or("")
        ));
    }
    let gvk = GroupVersionKind::gvk(group, version, &r.kind);
    let (resource, _) = kube::discovery::pinned_kind(&ctx.client, &gvk)
        .await
        .map_err(|e| match e {
            kube::Error::Discovery(_) => {
                format!("no matches for kind {:?} in group {:?}", r.kind, group)
            }
            other => message_of(&other),
        })?;
    let ns = hpa.namespace().unwrap_or_default();
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &ns, &resource);
    let scale = api.get_scale(&r.name).await.map_err(|e| message_of(&e))?;
    Ok((api, scale))
}

/// `getTolerances`: the controller's tolerance unless `behavior` sets one per direction.
fn tolerances_of(hpa: &HorizontalPodAutoscaler, default: f64) -> Tolerances {
    let mut t = Tolerances::both(default);
    let behavior = hpa.spec.as_ref().and_then(|s| s.behavior.as_ref());
    let parse = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
        skiff_api::quantity::Quantity::parse(&q.0)
            .ok()
            .map(|q| q.as_f64())
    };
    if let Some(v) = behavior
        .and_then(|b| b.scale_down.as_ref())
        .and_then(|r| r.tolerance.as_ref())
        .and_then(parse)
    {
        t.scale_down = v;
    }
    if let Some(v) = behavior
        .and_then(|b| b.scale_up.as_ref())
        .and_then(|r| r.tolerance.as_ref())
        .and_then(parse)
    {
        t.scale_up = v;
    }
    t
}

fn pods_matching(ctx: &HpaContext, ns: &str, selector: &Selector) -> Vec<Arc<Pod>> {
    ctx.pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns) && selector.matches(p.labels()))
        .collect()
}

/// One sync of `hpa`.
pub async fn sync(hpa: &HorizontalPodAutoscaler, ctx: &HpaContext) -> Result<()> {
    let key = key_of(hpa);
    let ns = hpa.namespace().unwrap_or_default();
    let spec = hpa.spec.clone().unwrap_or_default();
    let mut s = Sync {
        hpa,
        ctx,
        reference: hpa.object_ref(&()),
        status: hpa.status.clone().unwrap_or_default(),
        now: Timestamp::now(),
    };

    let (scale_api, scale) = match target_scale(ctx, hpa).await {
        Ok(found) => found,
        Err(e) => {
            s.warn("FailedGetScale", e.clone());
            s.condition(
                ABLE_TO_SCALE,
                false,
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {e}"),
            );
            let current = s.status.current_replicas.unwrap_or(0);
            s.set_replicas(current, None, None);
            return s.write_status().await;
        }
    };
    s.condition(
        ABLE_TO_SCALE,
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
    );
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;

    let mut metric_statuses = None;
    let mut reason = String::new();
    let desired;
    if current == 0 && min != 0 {
        desired = 0;
        s.condition(
            SCALING_ACTIVE,
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero".into(),
        );
    } else if current > max {
        reason = "Current number of replicas above Spec.MaxReplicas".into();
        desired = max;
    } else if current < min {
        reason = "Current number of replicas below Spec.MinReplicas".into();
        desired = min;
    } else {
        let selector_text = scale
            .status
            .as_ref()
            .and_then(|st| st.selector.clone())
            .unwrap_or_default();
        if selector_text.is_empty() {
            s.warn("SelectorRequired", "selector is required".into());
            s.condition(
                SCALING_ACTIVE,
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector".into(),
            );
            s.set_replicas(current, None, None);
            return s.write_status().await;
        }
        let selector = match Selector::parse(&selector_text) {
            Ok(sel) => sel,
            Err(e) => {
                let msg = format!(
                    "couldn't convert selector into a corresponding internal selector object: {e}"
                );
                s.warn("InvalidSelector", msg.clone());
                s.condition(SCALING_ACTIVE, false, "InvalidSelector", msg);
                s.set_replicas(current, None, None);
                return s.write_status().await;
            }
        };
        let matched = pods_matching(ctx, &ns, &selector);
        let pods: Vec<&Pod> = matched.iter().map(Arc::as_ref).collect();
        let metrics = ctx
            .metrics
            .pod_metrics(&ns, &selector_text)
            .await
            .map_err(|e| e.to_string())
            .and_then(|items| {
                if items.is_empty() {
                    Err(super::metrics_source::MetricsError::Empty.to_string())
                } else {
                    Ok(items)
                }
            });
        let input = MetricInputs {
            calc: ReplicaCalculator {
                cpu_initialization_period: signed(ctx.options.cpu_initialization_period),
                initial_readiness_delay: signed(ctx.options.initial_readiness_delay),
                now: s.now,
            },
            tolerances: tolerances_of(hpa, ctx.options.tolerance),
            current,
            pods: &pods,
            metrics: &metrics,
        };
        let specs = spec.metrics.clone().unwrap_or_default();
        let combined = replicas_for_metrics(&specs, &input);
        if let Some((failure, _)) = &combined.failure {
            // `getUnableComputeReplicaCountCondition` records each failed metric.
            s.warn(failure.reason, failure.error.clone());
        }
        let Some(recommended) = combined.replicas else {
            if let Some((failure, wrapped)) = &combined.failure {
                s.condition(
                    SCALING_ACTIVE,
                    false,
                    failure.reason,
                    format!(
                        "the HPA was unable to compute the replica count: {}",
                        failure.error
                    ),
                );
                s.warn("FailedComputeMetricsReplicas", wrapped.clone());
            }
            s.set_replicas(current, None, Some(combined.statuses));
            tracing::info!(hpa = %key, "no usable metrics; target left as it is");
            return s.write_status().await;
        };
        s.condition(
            SCALING_ACTIVE,
            true,
            "ValidMetricFound",
            format!(
                "the HPA was able to successfully calculate a replica count from {}",
                combined.metric
            ),
        );
        metric_statuses = Some(combined.statuses);
        if recommended > current {
            reason = format!("{} above target", combined.metric);
        } else if recommended < current {
            reason = "All metrics below target".into();
        }
        let bounds = Bounds {
            min,
            max,
            current,
            desired: recommended.max(0),
        };
        let window = signed(ctx.options.downscale_stabilization);
        let normalized = {
            let mut history = ctx.history.lock().unwrap_or_else(|e| e.into_inner());
            let h = history.entry(key.clone()).or_default();
            match &spec.behavior {
                None => h.normalize(bounds, window, s.now),
                Some(b) => h.normalize_with_behavior(bounds, &with_defaults(b, window), s.now),
            }
        };
        let (able_reason, able_msg) = normalized.able_to_scale;
        s.condition(ABLE_TO_SCALE, true, able_reason, able_msg.into());
        let (limited, (lim_reason, lim_msg)) = normalized.limited;
        s.condition(SCALING_LIMITED, limited, lim_reason, lim_msg.into());
        desired = normalized.replicas;
    }

    let rescale = desired != current && !(current == 0 && min != 0);
    if rescale {
        let mut next = scale.clone();
        next.spec.get_or_insert_with(Default::default).replicas = Some(desired);
        let name = spec.scale_target_ref.name.clone();
        match scale_api
            .replace_scale(&name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => {
                s.condition(
                    ABLE_TO_SCALE,
                    true,
                    "SucceededRescale",
                    format!("the HPA controller was able to update the target scale to {desired}"),
                );
                ctx.events.normal(
                    s.reference.clone(),
                    "SuccessfulRescale",
                    format!("New size: {desired}; reason: {reason}"),
                );
                let mut history = ctx.history.lock().unwrap_or_else(|e| e.into_inner());
                history.entry(key.clone()).or_default().store_scale_event(
                    spec.behavior.as_ref(),
                    current,
                    desired,
                    s.now,
                );
                tracing::info!(hpa = %key, from = current, to = desired, reason = %reason, "rescaled");
            }
            Err(e) => {
                let e = message_of(&e);
                s.warn(
                    "FailedRescale",
                    format!("New size: {desired}; reason: {reason}; error: {e}"),
                );
                s.condition(
                    ABLE_TO_SCALE,
                    false,
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e}"),
                );
                s.set_replicas(current, None, metric_statuses);
                return s.write_status().await;
            }
        }
        s.status.last_scale_time = Some(Time(s.now));
    }
    s.set_replicas(current, Some(desired), metric_statuses);
    s.write_status().await
}
