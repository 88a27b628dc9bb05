//! `/metrics/resource`: the kubelet's resource metrics in the Prometheus text format, with
//! the names, help texts and labels Kubernetes' kubelet uses (what metrics-server reads).

use std::fmt::Write;

use super::Summary;

/// Escapes a label value for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders one collection; `scrape_error` is 1 when the runtime could not be read.
pub fn render(s: Option<&Summary>) -> String {
    let mut out = String::new();
    let Some(s) = s else {
        let _ = writeln!(
            out,
            "# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 1"
        );
        return out;
    };
    let ms = s.time.as_millisecond();
    let secs = |ns: u64| ns as f64 / 1e9;
    let containers = || {
        s.pods
            .iter()
            .flat_map(|p| p.containers.iter().map(move |c| (p, c)))
    };
    let c_labels = |p: &super::PodStats, c: &super::ContainerStats| {
        format!(
            "container=\"{}\",namespace=\"{}\",pod=\"{}\"",
            label(&c.name),
            label(&p.namespace),
            label(&p.name)
        )
    };
    let p_labels = |p: &super::PodStats| {
        format!(
            "namespace=\"{}\",pod=\"{}\"",
            label(&p.namespace),
            label(&p.name)
        )
    };
    header(
        &mut out,
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
        "counter",
    );
    for (p, c) in containers() {
        let _ = writeln!(
            out,
            "container_cpu_usage_seconds_total{{{}}} {} {ms}",
            c_labels(p, c),
            secs(c.figures.cpu_ns)
        );
    }
    header(
        &mut out,
        "container_memory_working_set_bytes",
        "Current working set of the container in bytes",
        "gauge",
    );
    for (p, c) in containers() {
        let _ = writeln!(
            out,
            "container_memory_working_set_bytes{{{}}} {} {ms}",
            c_labels(p, c),
            c.figures.working_set
        );
    }
    header(
        &mut out,
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds",
        "gauge",
    );
    for (p, c) in containers() {
        if let Some(t) = c.start_time {
            let _ = writeln!(
                out,
                "container_start_time_seconds{{{}}} {} {ms}",
                c_labels(p, c),
                t.as_second()
            );
        }
    }
    if let Some(n) = &s.node {
        header(
            &mut out,
            "node_cpu_usage_seconds_total",
            "Cumulative cpu time consumed by the node in core-seconds",
            "counter",
        );
        let _ = writeln!(
            out,
            "node_cpu_usage_seconds_total {} {ms}",
            secs(n.figures.cpu_ns)
        );
        header(
            &mut out,
            "node_memory_working_set_bytes",
            "Current working set of the node in bytes",
            "gauge",
        );
        let _ = writeln!(
            out,
            "node_memory_working_set_bytes {} {ms}",
            n.figures.working_set
        );
    }
    header(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
    );
    for p in &s.pods {
        let _ = writeln!(
            out,
            "pod_cpu_usage_seconds_total{{{}}} {} {ms}",
            p_labels(p),
            secs(p.figures.cpu_ns)
        );
    }
    header(
        &mut out,
        "pod_memory_working_set_bytes",
        "Current working set of the pod in bytes",
        "gauge",
    );
    for p in &s.pods {
        let _ = writeln!(
            out,
            "pod_memory_working_set_bytes{{{}}} {} {ms}",
            p_labels(p),
            p.figures.working_set
        );
    }
    out.push_str("# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise\n# TYPE scrape_error gauge\nscrape_error 0\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::{ContainerStats, Figures, NodeStats, PodStats};
    use super::*;

    #[test]
    fn renders_kubelet_names_and_labels() {
        let time: jiff::Timestamp = "2026-12-02T05:00:00Z".parse().unwrap();
        let f = |cpu_ns, ws| Figures {
            cpu_ns,
            working_set: ws,
            ..Figures::default()
        };
        let s = Summary {
            time,
            node: Some(NodeStats {
                figures: f(3_000_000_000, 1 << 30),
                available: 1 << 30,
            }),
            pods: vec![PodStats {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u".into(),
                start_time: time,
                containers: vec![ContainerStats {
                    name: "app".into(),
                    start_time: Some(time),
                    figures: f(1_500_000_000, 4096),
                }],
                figures: f(1_500_000_000, 4096),
            }],
        };
        let text = render(Some(&s));
        let ms = time.as_millisecond();
        for line in [
            "# TYPE container_cpu_usage_seconds_total counter".to_string(),
            format!(
                "container_cpu_usage_seconds_total{{container=\"app\",namespace=\"default\",pod=\"web\"}} 1.5 {ms}"
            ),
            format!(
                "container_memory_working_set_bytes{{container=\"app\",namespace=\"default\",pod=\"web\"}} 4096 {ms}"
            ),
            format!("node_cpu_usage_seconds_total 3 {ms}"),
            format!("node_memory_working_set_bytes 1073741824 {ms}"),
            format!("pod_cpu_usage_seconds_total{{namespace=\"default\",pod=\"web\"}} 1.5 {ms}"),
            format!("pod_memory_working_set_bytes{{namespace=\"default\",pod=\"web\"}} 4096 {ms}"),
            "scrape_error 0".to_string(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(render(None).contains("scrape_error 1"));
    }
}
