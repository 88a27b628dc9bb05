//! The node lifecycle flags of `skiff server`, named and defaulted as
//! kube-controller-manager's.

use std::time::Duration;

use skiff_controller::node_lifecycle::NodeLifecycleOptions;
use skiff_controller::node_lifecycle::zones::EvictionRates;

fn duration(text: &str) -> Result<Duration, String> {
    match crate::client::rollout::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be greater than 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if t >= 0.0 && t.is_finite() => Ok(t),
        _ => Err(format!(
            "must be a number greater than or equal to 0, got {text:?}"
        )),
    }
}

fn fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(format!("must be a number between 0 and 1, got {text:?}")),
    }
}

/// `--node-monitor-*`, `--node-eviction-rate` and the zone disruption settings.
#[derive(clap::Args, Debug, Clone)]
pub struct NodeLifecycleFlags {
    /// How long a node may go without renewing its Lease before it is marked Unknown.
    #[arg(long = "node-monitor-grace-period", default_value = "40s", value_parser = duration)]
    grace_period: Duration,
    /// How often the node lifecycle controller looks at every node.
    #[arg(long = "node-monitor-period", default_value = "5s", value_parser = duration)]
    monitor_period: Duration,
    /// Nodes per second given a NoExecute taint in a healthy zone.
    #[arg(long = "node-eviction-rate", default_value = "0.1", value_parser = non_negative)]
    eviction_rate: f64,
    /// Nodes per second given a NoExecute taint in an unhealthy zone of a large cluster.
    #[arg(long = "secondary-node-eviction-rate", default_value = "0.01", value_parser = non_negative)]
    secondary_eviction_rate: f64,
    /// Share of not-Ready nodes (more than two) that makes a zone unhealthy.
    #[arg(long = "unhealthy-zone-threshold", default_value = "0.55", value_parser = fraction)]
    unhealthy_zone_threshold: f64,
    /// Zones of at most this many nodes stop tainting when unhealthy.
    #[arg(long = "large-cluster-size-threshold", default_value_t = 50)]
    large_cluster_threshold: usize,
}

impl NodeLifecycleFlags {
    /// The controller's options.
    pub fn options(&self) -> NodeLifecycleOptions {
        NodeLifecycleOptions {
            grace_period: self.grace_period,
            monitor_period: self.monitor_period,
            rates: EvictionRates {
                rate: self.eviction_rate,
                secondary_rate: self.secondary_eviction_rate,
                unhealthy_zone_threshold: self.unhealthy_zone_threshold,
                large_cluster_threshold: self.large_cluster_threshold,
            },
        }
    }
}
