//! Latency summaries: median and 99th percentile in milliseconds.

use std::time::Duration;

/// p50 and p99 of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
}

impl Summary {
    /// `p50 / p99 ms`.
    pub fn pair(&self) -> String {
        format!("{:.2} / {:.2} ms", self.p50, self.p99)
    }
}

/// Summarises samples (nearest-rank percentiles).
pub fn summarize(samples: &[Duration]) -> Summary {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| -> f64 {
        if ms.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len());
        ms[rank - 1]
    };
    Summary {
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = summarize(&samples);
        assert_eq!((s.p50, s.p99), (50.0, 99.0));
    }
}
