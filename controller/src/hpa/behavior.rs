//! From a metric recommendation to the replica count the HPA sets (horizontal.go's
//! normalization): the stabilization window over the recommendation history, min/max
//! replicas, and the scaling rate, either Kubernetes' fixed rule (no `behavior`) or the
//! `behavior` policies over the recent scale events. Pure: history and clock passed in.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

/// One recommendation the metrics gave, at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recommendation {
    replicas: i32,
    at: Timestamp,
}

/// One rescale the controller made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ScaleEvent {
    change: i32,
    at: Timestamp,
    outdated: bool,
}

/// What the controller remembers of one HPA between syncs.
#[derive(Debug, Clone, Default)]
pub struct History {
    recommendations: Vec<Recommendation>,
    scale_up: Vec<ScaleEvent>,
    scale_down: Vec<ScaleEvent>,
}

/// A condition outcome: reason and message.
pub type Outcome = (&'static str, &'static str);

/// The normalized replica count with the conditions it sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The replica count to scale to.
    pub replicas: i32,
    /// AbleToScale=True with this reason and message.
    pub able_to_scale: Outcome,
    /// ScalingLimited with this status, reason and message.
    pub limited: (bool, Outcome),
}

const WITHIN_RANGE: Outcome = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);
const READY_FOR_NEW_SCALE: Outcome = ("ReadyForNewScale", "recommended size matches current size");
const SCALE_UP_LIMIT: Outcome = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
const TOO_MANY: Outcome = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
const SCALE_DOWN_LIMIT: Outcome = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
const TOO_FEW: Outcome = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
const SCALE_UP_STABILIZED: Outcome = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
const SCALE_DOWN_STABILIZED: Outcome = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);

/// The replica bounds and counts one normalization works on.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// `spec.minReplicas`.
    pub min: i32,
    /// `spec.maxReplicas`.
    pub max: i32,
    /// The target's current `spec.replicas`.
    pub current: i32,
    /// What the metrics recommend.
    pub desired: i32,
}

impl History {
    /// `normalizeDesiredReplicas`: no `behavior`, so the recommendation is stabilized over
    /// `downscale_window` and the scale-up is capped at max(2 × current, 4).
    pub fn normalize(
        &mut self,
        b: Bounds,
        downscale_window: SignedDuration,
        now: Timestamp,
    ) -> Normalized {
        let stabilized = self.stabilize(b.desired, downscale_window, now);
        let able_to_scale = if stabilized != b.desired {
            SCALE_DOWN_STABILIZED
        } else {
            READY_FOR_NEW_SCALE
        };
        let (replicas, outcome) = convert_with_rules(b.current, stabilized, b.min, b.max);
        Normalized {
            replicas,
            able_to_scale,
            limited: (replicas != stabilized, outcome),
        }
    }

    /// `normalizeDesiredReplicasWithBehaviors`: both stabilization windows, then the
    /// scale-up and scale-down policies over the recent scale events. `behavior` has its
    /// defaults filled (see [`with_defaults`]).
    pub fn normalize_with_behavior(
        &mut self,
        b: Bounds,
        behavior: &HorizontalPodAutoscalerBehavior,
        now: Timestamp,
    ) -> Normalized {
        let up = behavior.scale_up.clone().unwrap_or_default();
        let down = behavior.scale_down.clone().unwrap_or_default();
        let (stabilized, stabilized_why) = self.stabilize_with_windows(b, &up, &down, now);
        let able_to_scale = if stabilized != b.desired {
            stabilized_why
        } else {
            READY_FOR_NEW_SCALE
        };
        let args = Bounds {
            desired: stabilized,
            ..b
        };
        let (replicas, outcome) = self.convert_with_rate(args, &up, &down, now);
        Normalized {
            replicas,
            able_to_scale,
            limited: (replicas != stabilized, outcome),
        }
    }

    /// `stabilizeRecommendation`: the highest recommendation within the window.
    fn stabilize(&mut self, desired: i32, window: SignedDuration, now: Timestamp) -> i32 {
        let cutoff = now - window;
        let mut highest = desired;
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if r.at < cutoff {
                old = Some(i);
            } else if r.replicas > highest {
                highest = r.replicas;
            }
        }
        self.record(old, desired, now);
        highest
    }

    fn record(&mut self, old: Option<usize>, replicas: i32, at: Timestamp) {
        let rec = Recommendation { replicas, at };
        match old {
            Some(i) => self.recommendations[i] = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// `stabilizeRecommendationWithBehaviors`.
    fn stabilize_with_windows(
        &mut self,
        b: Bounds,
        up: &HPAScalingRules,
        down: &HPAScalingRules,
        now: Timestamp,
    ) -> (i32, Outcome) {
        let up_cutoff = now - seconds(up.stabilization_window_seconds.unwrap_or(0));
        let down_cutoff = now - seconds(down.stabilization_window_seconds.unwrap_or(0));
        let (mut up_rec, mut down_rec) = (b.desired, b.desired);
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if r.at > up_cutoff {
                up_rec = up_rec.min(r.replicas);
            }
            if r.at > down_cutoff {
                down_rec = down_rec.max(r.replicas);
            }
            if r.at < up_cutoff && r.at < down_cutoff {
                old = Some(i);
            }
        }
        let recommendation = b.current.max(up_rec).min(down_rec);
        self.record(old, b.desired, now);
        let why = if b.desired >= b.current {
            SCALE_UP_STABILIZED
        } else {
            SCALE_DOWN_STABILIZED
        };
        (recommendation, why)
    }

    /// `convertDesiredReplicasWithBehaviorRate`.
    fn convert_with_rate(
        &self,
        b: Bounds,
        up: &HPAScalingRules,
        down: &HPAScalingRules,
        now: Timestamp,
    ) -> (i32, Outcome) {
        if b.desired > b.current {
            let limit = scale_up_limit(b.current, &self.scale_up, up, now).max(b.current);
            let (allowed, why) = if b.max > limit {
                (limit, SCALE_UP_LIMIT)
            } else {
                (b.max, TOO_MANY)
            };
            if b.desired > allowed {
                return (allowed, why);
            }
        } else if b.desired < b.current {
            let limit = scale_down_limit(b.current, &self.scale_down, down, now).min(b.current);
            let (allowed, why) = if b.min < limit {
                (limit, SCALE_DOWN_LIMIT)
            } else {
                (b.min, TOO_FEW)
            };
            if b.desired < allowed {
                return (allowed, why);
            }
        }
        (b.desired, WITHIN_RANGE)
    }

    /// `storeScaleEvent`: remembers a rescale for the `behavior` policies (nothing without
    /// a `behavior`), reusing the slot of an event older than the longest policy period.
    pub fn store_scale_event(
        &mut self,
        behavior: Option<&HorizontalPodAutoscalerBehavior>,
        previous: i32,
        new: i32,
        now: Timestamp,
    ) {
        let Some(behavior) = behavior else { return };
        let (events, rules, change) = if new > previous {
            (
                &mut self.scale_up,
                behavior.scale_up.as_ref(),
                new - previous,
            )
        } else {
            (
                &mut self.scale_down,
                behavior.scale_down.as_ref(),
                previous - new,
            )
        };
        let longest = rules
            .and_then(|r| r.policies.as_ref())
            .and_then(|p| p.iter().map(|p| p.period_seconds).max())
            .unwrap_or(0);
        let cutoff = now - seconds(longest);
        for e in events.iter_mut() {
            if e.at < cutoff {
                e.outdated = true;
            }
        }
        let event = ScaleEvent {
            change,
            at: now,
            outdated: false,
        };
        match events.iter().position(|e| e.outdated) {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

fn seconds(s: i32) -> SignedDuration {
    SignedDuration::from_secs(i64::from(s))
}

/// `convertDesiredReplicasWithRules`: min/max and the fixed scale-up rate.
fn convert_with_rules(current: i32, desired: i32, min: i32, max: i32) -> (i32, Outcome) {
    let scale_up_limit = (2 * current).max(4);
    let (maximum, why) = if min > scale_up_limit {
        (min, SCALE_UP_LIMIT)
    } else if max > scale_up_limit {
        (scale_up_limit, SCALE_UP_LIMIT)
    } else {
        (max, TOO_MANY)
    };
    if desired < min {
        return (min, TOO_FEW);
    }
    if desired > maximum {
        return (maximum, why);
    }
    (desired, WITHIN_RANGE)
}

/// `getReplicasChangePerPeriod`: replicas changed by the events inside the period.
fn change_in_period(period_seconds: i32, events: &[ScaleEvent], now: Timestamp) -> i32 {
    let cutoff = now - seconds(period_seconds);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .sum()
}

/// `calculateScaleUpLimitWithScalingRules`.
fn scale_up_limit(
    current: i32,
    events: &[ScaleEvent],
    rules: &HPAScalingRules,
    now: Timestamp,
) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let proposals = rules.policies.iter().flatten().map(|p| {
        let start = current - change_in_period(p.period_seconds, events, now);
        if p.type_ == "Pods" {
            start + p.value
        } else {
            (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
        }
    });
    if select == "Min" {
        proposals.fold(i32::MAX, i32::min)
    } else {
        proposals.fold(i32::MIN, i32::max)
    }
}

/// `calculateScaleDownLimitWithBehaviors`.
fn scale_down_limit(
    current: i32,
    events: &[ScaleEvent],
    rules: &HPAScalingRules,
    now: Timestamp,
) -> i32 {
    let select = rules.select_policy.as_deref().unwrap_or("Max");
    if select == "Disabled" {
        return current;
    }
    let proposals = rules.policies.iter().flatten().map(|p| {
        let start = current + change_in_period(p.period_seconds, events, now);
        if p.type_ == "Pods" {
            start - p.value
        } else {
            (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32
        }
    });
    if select == "Min" {
        proposals.fold(i32::MIN, i32::max)
    } else {
        proposals.fold(i32::MAX, i32::min)
    }
}

/// A `behavior` with Kubernetes' defaults where fields are unset (scale-up: no window,
/// max(4 pods, 100 %) per 15 s; scale-down: the controller's downscale window, 100 % per
/// 15 s), as `GenerateHPAScaleUpRules`/`GenerateHPAScaleDownRules` and
/// `maybeInitScaleDownStabilizationWindow` fill them.
pub fn with_defaults(
    behavior: &HorizontalPodAutoscalerBehavior,
    downscale_window: SignedDuration,
) -> HorizontalPodAutoscalerBehavior {
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;
    let policy = |type_: &str, value| HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: 15,
    };
    let fill = |r: Option<&HPAScalingRules>, window: i32, policies: Vec<HPAScalingPolicy>| {
        let mut r = r.cloned().unwrap_or_default();
        r.stabilization_window_seconds.get_or_insert(window);
        r.select_policy.get_or_insert_with(|| "Max".into());
        if r.policies.as_ref().is_none_or(Vec::is_empty) {
            r.policies = Some(policies);
        }
        r
    };
    let down_window = i32::try_from(downscale_window.as_secs()).unwrap_or(i32::MAX);
    HorizontalPodAutoscalerBehavior {
        scale_up: Some(fill(
            behavior.scale_up.as_ref(),
            0,
            vec![policy("Pods", 4), policy("Percent", 100)],
        )),
        scale_down: Some(fill(
            behavior.scale_down.as_ref(),
            down_window,
            vec![policy("Percent", 100)],
        )),
    }
}

#[cfg(test)]
#[path = "behavior_tests.rs"]
mod tests;
