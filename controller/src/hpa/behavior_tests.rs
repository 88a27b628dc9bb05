//! Normalization cases after horizontal_test.go: the fixed rule without `behavior`,
//! the default and custom policies, selectPolicy, both stabilization windows, and the
//! scale events that rate-limit later syncs.

use super::*;
use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn ago(secs: i64) -> Timestamp {
    now() - SignedDuration::from_secs(secs)
}

fn bounds(min: i32, max: i32, current: i32, desired: i32) -> Bounds {
    Bounds {
        min,
        max,
        current,
        desired,
    }
}

fn policy(type_: &str, value: i32, period: i32) -> HPAScalingPolicy {
    HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: period,
    }
}

fn rules(
    window: Option<i32>,
    select: Option<&str>,
    policies: Vec<HPAScalingPolicy>,
) -> Option<HPAScalingRules> {
    Some(HPAScalingRules {
        stabilization_window_seconds: window,
        select_policy: select.map(Into::into),
        policies: (!policies.is_empty()).then_some(policies),
        tolerance: None,
    })
}

fn defaults() -> HorizontalPodAutoscalerBehavior {
    with_defaults(
        &HorizontalPodAutoscalerBehavior::default(),
        SignedDuration::from_secs(300),
    )
}

#[test]
fn without_behavior_the_fixed_rate_and_bounds() {
    let w = SignedDuration::from_secs(300);
    let cases = [
        // (min, max, current, desired) → (replicas, limited, reason)
        ((1, 10, 1, 10), (4, true, "ScaleUpLimit")),
        ((1, 10, 3, 10), (6, true, "ScaleUpLimit")),
        ((1, 5, 3, 10), (5, true, "TooManyReplicas")),
        ((2, 10, 3, 1), (2, true, "TooFewReplicas")),
        ((1, 10, 3, 5), (5, false, "DesiredWithinRange")),
        ((8, 10, 1, 9), (8, true, "ScaleUpLimit")),
    ];
    for ((min, max, current, desired), (want, limited, reason)) in cases {
        let mut h = History::default();
        let n = h.normalize(bounds(min, max, current, desired), w, now());
        assert_eq!(
            (n.replicas, n.limited.0, n.limited.1.0),
            (want, limited, reason),
            "{min} {max} {current} {desired}"
        );
        assert_eq!(n.able_to_scale.0, "ReadyForNewScale");
    }
}

#[test]
fn without_behavior_downscale_is_stabilized() {
    let w = SignedDuration::from_secs(300);
    let mut h = History::default();
    h.recommendations.push(Recommendation {
        replicas: 5,
        at: ago(60),
    });
    h.recommendations.push(Recommendation {
        replicas: 9,
        at: ago(400),
    });
    let n = h.normalize(bounds(1, 10, 5, 2), w, now());
    assert_eq!(
        n.replicas, 5,
        "the highest recommendation of the last 5 minutes"
    );
    assert_eq!(n.able_to_scale.0, "ScaleDownStabilized");
    // The old sample's slot was reused for this recommendation.
    assert_eq!(h.recommendations.len(), 2);
    assert!(h.recommendations.contains(&Recommendation {
        replicas: 2,
        at: now()
    }));
    // Six minutes later every sample is old: the scale-down goes through.
    let later = now() + SignedDuration::from_secs(360);
    let n = h.normalize(bounds(1, 10, 5, 2), w, later);
    assert_eq!(n.replicas, 2);
}

#[test]
fn default_behavior_rates() {
    let b = defaults();
    let cases = [
        // scale up: max(4 pods, 100 %) per 15 s
        ((1, 100, 1, 10), (5, "ScaleUpLimit")),
        ((1, 100, 10, 50), (20, "ScaleUpLimit")),
        ((1, 15, 10, 50), (15, "TooManyReplicas")),
        ((1, 100, 10, 12), (12, "DesiredWithinRange")),
        // scale down: 100 % per 15 s, so only minReplicas bounds it
        ((1, 100, 10, 1), (1, "DesiredWithinRange")),
        ((3, 100, 10, 1), (3, "TooFewReplicas")),
    ];
    for ((min, max, current, desired), (want, reason)) in cases {
        let mut h = History::default();
        let n = h.normalize_with_behavior(
            bounds(min, max, current, desired),
            &with_defaults(
                &HorizontalPodAutoscalerBehavior {
                    scale_down: rules(Some(0), None, vec![]),
                    ..Default::default()
                },
                SignedDuration::from_secs(300),
            ),
            now(),
        );
        assert_eq!(
            (n.replicas, n.limited.1.0),
            (want, reason),
            "{min} {max} {current} {desired}"
        );
    }
    assert_eq!(
        b.scale_down.unwrap().stabilization_window_seconds,
        Some(300)
    );
    assert_eq!(b.scale_up.unwrap().stabilization_window_seconds, Some(0));
}

#[test]
fn select_policy_min_max_disabled() {
    let up = |select: &str| HorizontalPodAutoscalerBehavior {
        scale_up: rules(
            Some(0),
            Some(select),
            vec![policy("Pods", 4, 15), policy("Percent", 100, 15)],
        ),
        scale_down: rules(Some(0), None, vec![]),
    };
    let run = |b: HorizontalPodAutoscalerBehavior, current, desired| {
        let b = with_defaults(&b, SignedDuration::from_secs(300));
        History::default()
            .normalize_with_behavior(bounds(1, 100, current, desired), &b, now())
            .replicas
    };
    assert_eq!(run(up("Max"), 10, 100), 20);
    assert_eq!(run(up("Min"), 10, 100), 14);
    assert_eq!(run(up("Disabled"), 10, 100), 10);
    let down = |select: &str| HorizontalPodAutoscalerBehavior {
        scale_down: rules(
            Some(0),
            Some(select),
            vec![policy("Pods", 2, 60), policy("Percent", 50, 60)],
        ),
        ..Default::default()
    };
    // Max lets the most go: 10 − 50 % = 5; Min the least: 10 − 2 = 8.
    assert_eq!(run(down("Max"), 10, 1), 5);
    assert_eq!(run(down("Min"), 10, 1), 8);
    assert_eq!(run(down("Disabled"), 10, 1), 10);
}

#[test]
fn scale_events_limit_later_syncs_within_the_period() {
    let b = with_defaults(
        &HorizontalPodAutoscalerBehavior {
            scale_up: rules(Some(0), None, vec![policy("Pods", 2, 60)]),
            scale_down: rules(Some(0), None, vec![policy("Pods", 1, 60)]),
        },
        SignedDuration::from_secs(300),
    );
    let mut h = History::default();
    let n = h.normalize_with_behavior(bounds(1, 100, 2, 10), &b, ago(30));
    assert_eq!(n.replicas, 4);
    h.store_scale_event(Some(&b), 2, 4, ago(30));
    // 30 s later, still inside the 60 s period: the period started at 2, so 2 + 2 = 4.
    let n = h.normalize_with_behavior(bounds(1, 100, 4, 10), &b, now());
    assert_eq!((n.replicas, n.limited), (4, (true, SCALE_UP_LIMIT)));
    // After the period the next 2 may come.
    let later = now() + SignedDuration::from_secs(31);
    assert_eq!(
        h.normalize_with_behavior(bounds(1, 100, 4, 10), &b, later)
            .replicas,
        6
    );

    // Scale-down events work the same way, the other direction.
    let mut h = History::default();
    h.store_scale_event(Some(&b), 5, 4, ago(10));
    let n = h.normalize_with_behavior(bounds(1, 100, 4, 1), &b, now());
    assert_eq!((n.replicas, n.limited.1), (4, SCALE_DOWN_LIMIT));
    // Events are not stored without a behavior.
    let mut h = History::default();
    h.store_scale_event(None, 5, 4, now());
    assert!(h.scale_down.is_empty());
}

#[test]
fn outdated_scale_events_are_reused() {
    let b = with_defaults(
        &HorizontalPodAutoscalerBehavior {
            scale_up: rules(Some(0), None, vec![policy("Pods", 2, 60)]),
            ..Default::default()
        },
        SignedDuration::from_secs(300),
    );
    let mut h = History::default();
    h.store_scale_event(Some(&b), 1, 3, ago(200));
    // Older than the longest period (60 s): its slot is reused.
    h.store_scale_event(Some(&b), 3, 5, ago(30));
    assert_eq!(h.scale_up.len(), 1);
    // Still inside it: a new slot.
    h.store_scale_event(Some(&b), 5, 7, now());
    assert_eq!(h.scale_up.len(), 2);
    assert_eq!(change_in_period(60, &h.scale_up, now()), 4);
}

#[test]
fn stabilization_windows_with_behavior() {
    let b = with_defaults(
        &HorizontalPodAutoscalerBehavior {
            scale_up: rules(Some(60), None, vec![]),
            scale_down: rules(Some(120), None, vec![]),
        },
        SignedDuration::from_secs(300),
    );
    let mut h = History::default();
    h.recommendations.push(Recommendation {
        replicas: 3,
        at: ago(30),
    });
    // Scale-up held to the lowest recommendation of the last minute.
    let n = h.normalize_with_behavior(bounds(1, 100, 3, 6), &b, now());
    assert_eq!(n.replicas, 3);
    assert_eq!(n.able_to_scale, SCALE_UP_STABILIZED);

    let mut h = History::default();
    h.recommendations.push(Recommendation {
        replicas: 8,
        at: ago(90),
    });
    h.recommendations.push(Recommendation {
        replicas: 9,
        at: ago(150),
    });
    // Scale-down held to the highest recommendation of the last two minutes.
    let n = h.normalize_with_behavior(bounds(1, 100, 10, 2), &b, now());
    assert_eq!(n.replicas, 8);
    assert_eq!(n.able_to_scale, SCALE_DOWN_STABILIZED);
    assert_eq!(n.limited, (false, WITHIN_RANGE));
    // The 150 s sample was older than both windows: its slot now holds this one.
    assert_eq!(h.recommendations.len(), 2);
}

#[test]
fn unset_scale_down_window_takes_the_controller_flag() {
    let b = with_defaults(
        &HorizontalPodAutoscalerBehavior {
            scale_up: rules(None, Some("Min"), vec![policy("Pods", 1, 15)]),
            scale_down: rules(None, None, vec![]),
        },
        SignedDuration::from_secs(42),
    );
    let down = b.scale_down.unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(42));
    assert_eq!(down.policies.unwrap(), vec![policy("Percent", 100, 15)]);
    let up = b.scale_up.unwrap();
    assert_eq!(up.select_policy.as_deref(), Some("Min"));
    assert_eq!(up.policies.unwrap(), vec![policy("Pods", 1, 15)]);
}
