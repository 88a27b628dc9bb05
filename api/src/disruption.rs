//! The PodDisruptionBudget rules both the eviction subresource and the disruption
//! controller apply: the `DisruptionAllowed` condition and its reasons
//! (`pdbhelper.UpdateDisruptionAllowedCondition`).

use jiff::Timestamp;
use k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The status condition type a budget's status carries.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// Reason: at least one disruption is allowed.
pub const SUFFICIENT_PODS: &str = "SufficientPods";
/// Reason: no disruption is allowed.
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
/// Reason: the budget could not be computed.
pub const SYNC_FAILED: &str = "SyncFailed";

/// `meta.SetStatusCondition` for the DisruptionAllowed condition: the transition time moves
/// only when the value does.
pub fn set_condition(
    status: &mut PodDisruptionBudgetStatus,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let generation = status.observed_generation;
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let fresh = Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    };
    match conditions
        .iter_mut()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    {
        Some(c) => {
            let moved = c.status != value;
            let since = c.last_transition_time.clone();
            *c = fresh;
            if !moved {
                c.last_transition_time = since;
            }
        }
        None => conditions.push(fresh),
    }
}

/// The condition for the budget's current `disruptionsAllowed`.
pub fn update_disruption_allowed(status: &mut PodDisruptionBudgetStatus, now: Timestamp) {
    if status.disruptions_allowed > 0 {
        set_condition(status, "True", SUFFICIENT_PODS, "", now);
    } else {
        set_condition(status, "False", INSUFFICIENT_PODS, "", now);
    }
}
