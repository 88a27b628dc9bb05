//! Rolling-update arithmetic, as Kubernetes' deployment controller computes it: the surge
//! and unavailability fenceposts, how far the new ReplicaSet may grow and how far the old
//! ones may shrink without breaking them.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The replica counts of one ReplicaSet that the arithmetic needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RsCounts {
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
}

/// An int-or-percent scaled against `total`, rounding percentages up or down
/// (`intstr.GetScaledValueFromIntOrPercent`). Malformed percentages count as 0.
pub fn scaled_value(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return s.parse().unwrap_or(0);
            };
            let prod = p * i64::from(total);
            (if round_up {
                (prod + 99).div_euclid(100)
            } else {
                prod.div_euclid(100)
            }) as i32
        }
    }
}

/// `(maxSurge, maxUnavailable)` as absolute numbers for `desired` replicas: surge rounds up,
/// unavailability down, and both zero becomes one unavailable so a rollout can move.
pub fn fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let surge = scaled_value(max_surge, desired, true);
    let mut unavailable = scaled_value(max_unavailable, desired, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable.min(desired.max(0)))
}

/// The size the new ReplicaSet may take now, given every ReplicaSet's `spec.replicas` sum.
pub fn new_rs_replicas(desired: i32, surge: i32, new: RsCounts, all_replicas: i32) -> i32 {
    let max_total = desired + surge;
    if all_replicas >= max_total {
        return new.replicas;
    }
    let up = (max_total - all_replicas).min(desired - new.replicas);
    new.replicas + up
}

/// New `spec.replicas` for each old ReplicaSet (oldest first), scaling down only as far as
/// keeps `desired - max_unavailable` pods available: first the old pods that are not
/// available anyway, then available ones.
pub fn scale_down_old(
    desired: i32,
    max_unavailable: i32,
    new: RsCounts,
    olds: &[RsCounts],
) -> Vec<i32> {
    let mut out: Vec<i32> = olds.iter().map(|o| o.replicas).collect();
    let old_total: i32 = out.iter().sum();
    if old_total == 0 {
        return out;
    }
    let all = old_total + new.replicas;
    let min_available = desired - max_unavailable;
    let new_unavailable = (new.replicas - new.available).max(0);
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return out;
    }
    // Unhealthy old pods cost no availability.
    let mut cleaned = 0;
    for (i, o) in olds.iter().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (o.replicas - o.available).max(0);
        let n = unhealthy.min(max_scaled_down - cleaned);
        out[i] -= n;
        cleaned += n;
    }
    // Then available ones, as far as availability allows.
    let available: i32 = new.available + olds.iter().map(|o| o.available).sum::<i32>();
    if available <= min_available {
        return out;
    }
    let total_down = (available - min_available).min(max_scaled_down - cleaned);
    let mut done = 0;
    for r in out.iter_mut() {
        if done >= total_down {
            break;
        }
        let n = (*r).min(total_down - done);
        *r -= n;
        done += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn percentages_round_surge_up_and_unavailable_down() {
        assert_eq!(fenceposts(Some(&pct("25%")), Some(&pct("25%")), 10), (3, 2));
        assert_eq!(fenceposts(Some(&pct("25%")), Some(&pct("25%")), 1), (1, 0));
        assert_eq!(
            fenceposts(Some(&IntOrString::Int(0)), Some(&pct("10%")), 5),
            (0, 1)
        );
        assert_eq!(
            fenceposts(Some(&pct("50%")), Some(&IntOrString::Int(5)), 3),
            (2, 3)
        );
    }

    #[test]
    fn new_rs_grows_within_surge() {
        let new = RsCounts {
            replicas: 0,
            available: 0,
        };
        assert_eq!(new_rs_replicas(10, 3, new, 10), 3);
        assert_eq!(
            new_rs_replicas(
                10,
                3,
                RsCounts {
                    replicas: 3,
                    available: 0
                },
                13
            ),
            3
        );
        assert_eq!(
            new_rs_replicas(
                10,
                3,
                RsCounts {
                    replicas: 8,
                    available: 8
                },
                10
            ),
            10
        );
        assert_eq!(
            new_rs_replicas(
                3,
                1,
                RsCounts {
                    replicas: 5,
                    available: 5
                },
                5
            ),
            5,
            "scaling, not rolling, shrinks it"
        );
    }

    #[test]
    fn old_rs_shrinks_only_as_availability_allows() {
        // 10 desired, 2 unavailable allowed, new RS of 3 not yet available, old of 10 all available.
        let new = RsCounts {
            replicas: 3,
            available: 0,
        };
        assert_eq!(
            scale_down_old(
                10,
                2,
                new,
                &[RsCounts {
                    replicas: 10,
                    available: 10
                }]
            ),
            vec![8]
        );
        // Once the new pods are available, old pods go further.
        let new = RsCounts {
            replicas: 3,
            available: 3,
        };
        assert_eq!(
            scale_down_old(
                10,
                2,
                new,
                &[RsCounts {
                    replicas: 8,
                    available: 8
                }]
            ),
            vec![5]
        );
        // Unavailable old pods go first, without touching availability.
        let olds = [
            RsCounts {
                replicas: 4,
                available: 0,
            },
            RsCounts {
                replicas: 6,
                available: 6,
            },
        ];
        assert_eq!(scale_down_old(6, 0, RsCounts::default(), &olds), vec![0, 6]);
        // Nothing may go when availability is at the floor.
        assert_eq!(
            scale_down_old(
                4,
                1,
                RsCounts {
                    replicas: 1,
                    available: 0
                },
                &[RsCounts {
                    replicas: 4,
                    available: 3
                }]
            ),
            vec![3]
        );
    }
}
