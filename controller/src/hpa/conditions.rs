//! The HPA status conditions (AbleToScale, ScalingActive, ScalingLimited) as
//! horizontal.go's `setCondition` keeps them: one per type, the transition time moved
//! only when the status changes.

use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `AbleToScale`.
pub const ABLE_TO_SCALE: &str = "AbleToScale";
/// `ScalingActive`.
pub const SCALING_ACTIVE: &str = "ScalingActive";
/// `ScalingLimited`.
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// Sets condition `type_` in `conditions`, keeping its transition time unless the status
/// changed.
pub fn set_condition(
    conditions: &mut Vec<HorizontalPodAutoscalerCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) {
    let status = if status { "True" } else { "False" };
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    match existing {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(Time(now));
            }
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message);
        }
        None => conditions.push(HorizontalPodAutoscalerCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let mut c = Vec::new();
        set_condition(&mut c, ABLE_TO_SCALE, true, "A", "a".into(), t0);
        set_condition(&mut c, ABLE_TO_SCALE, true, "B", "b".into(), t1);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].reason.as_deref(), Some("B"));
        assert_eq!(c[0].last_transition_time, Some(Time(t0)));
        set_condition(&mut c, ABLE_TO_SCALE, false, "C", "c".into(), t1);
        assert_eq!(c[0].last_transition_time, Some(Time(t1)));
        assert_eq!(c[0].status, "False");
    }
}
