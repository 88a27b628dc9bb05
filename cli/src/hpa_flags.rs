//! The horizontal pod autoscaler flags of `skiff server`, named and defaulted as
//! kube-controller-manager's.

use std::time::Duration;

use skiff_controller::hpa::HpaOptions;

fn duration(text: &str) -> Result<Duration, String> {
    crate::client::rollout::parse_duration(text).map_err(|e| e.to_string())
}

fn tolerance(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if t >= 0.0 && t.is_finite() => Ok(t),
        _ => Err(format!(
            "must be a number greater than or equal to 0, got {text:?}"
        )),
    }
}

/// `--horizontal-pod-autoscaler-*`.
#[derive(clap::Args, Debug, Clone)]
pub struct HpaFlags {
    /// How often each HorizontalPodAutoscaler is synced.
    #[arg(long = "horizontal-pod-autoscaler-sync-period", default_value = "15s", value_parser = duration)]
    sync_period: Duration,
    /// How long a scale-down waits for the highest recent recommendation to fall.
    #[arg(long = "horizontal-pod-autoscaler-downscale-stabilization", default_value = "5m", value_parser = duration)]
    downscale_stabilization: Duration,
    /// The minimum change in the usage ratio (from 1.0) that leads to a rescale.
    #[arg(long = "horizontal-pod-autoscaler-tolerance", default_value = "0.1", value_parser = tolerance)]
    tolerance: f64,
    /// How long after a pod starts its CPU samples may be skipped while it is not ready.
    #[arg(long = "horizontal-pod-autoscaler-cpu-initialization-period", default_value = "5m", value_parser = duration)]
    cpu_initialization_period: Duration,
    /// How long after a pod starts a readiness change still counts as its first.
    #[arg(long = "horizontal-pod-autoscaler-initial-readiness-delay", default_value = "30s", value_parser = duration)]
    initial_readiness_delay: Duration,
}

impl HpaFlags {
    /// The controller's options (usage from the resource metrics API).
    pub fn options(&self) -> HpaOptions {
        HpaOptions {
            sync_period: self.sync_period,
            downscale_stabilization: self.downscale_stabilization,
            tolerance: self.tolerance,
            cpu_initialization_period: self.cpu_initialization_period,
            initial_readiness_delay: self.initial_readiness_delay,
            metrics: None,
        }
    }
}
