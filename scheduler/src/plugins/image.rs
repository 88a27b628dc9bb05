//! ImageLocality: prefers nodes that already hold the pod's images, weighted by image size
//! and by how widely the image is spread (so one node does not attract everything).

use crate::cache::{Cache, NodeInfo};
use crate::framework::{CycleState, MAX_NODE_SCORE};
use crate::podinfo::PodInfo;

const MB: i64 = 1024 * 1024;
/// Below this much image data a node gets no locality bonus.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container: at this much image data a node gets the full score.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// Each of the pod's images with the share of nodes holding it.
#[derive(Debug, Default)]
pub struct ScoreState {
    /// (names the image may be listed under, nodes holding it, all nodes).
    images: Vec<(Vec<String>, usize)>,
    total_nodes: usize,
    containers: usize,
}

/// Names a node may list an image under: with `:latest` added when untagged, and with
/// Docker Hub's `docker.io/library/` prefix when the name has no registry.
pub fn image_names(image: &str) -> Vec<String> {
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    let tagged = if image.contains('@') || image[last_slash..].contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    };
    let first = tagged.split('/').next().unwrap_or("");
    let has_registry = tagged.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut names = vec![tagged.clone()];
    if !has_registry {
        if tagged.contains('/') {
            names.push(format!("docker.io/{tagged}"));
        } else {
            names.push(format!("docker.io/library/{tagged}"));
        }
    }
    names
}

/// Looks up how many nodes hold each of the pod's images.
pub fn pre_score(pod: &PodInfo, cache: &Cache) -> ScoreState {
    let spec = pod.pod.spec.as_ref();
    let containers: Vec<&str> = spec
        .into_iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .filter_map(|c| c.image.as_deref())
        .collect();
    let images = containers
        .iter()
        .map(|img| {
            let names = image_names(img);
            let holders = names
                .iter()
                .map(|n| cache.nodes_with_image(n))
                .max()
                .unwrap_or(0);
            (names, holders)
        })
        .collect();
    ScoreState {
        images,
        total_nodes: cache.node_names().len(),
        containers: containers.len(),
    }
}

/// Score: image bytes already on the node, scaled by spread, mapped onto 0–100.
pub fn score(state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
    let s = &state.images;
    if s.total_nodes == 0 || s.containers == 0 {
        return 0;
    }
    let sum: i64 = s
        .images
        .iter()
        .filter_map(|(names, holders)| {
            let size = names.iter().find_map(|n| node.images.get(n))?;
            Some((*size as f64 * (*holders as f64 / s.total_nodes as f64)) as i64)
        })
        .sum();
    let max = MAX_CONTAINER_THRESHOLD * s.containers as i64;
    let clamped = sum.clamp(MIN_THRESHOLD, max);
    MAX_NODE_SCORE * (clamped - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::test_support::pod;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn names_are_normalised_like_node_status() {
        assert_eq!(
            image_names("nginx"),
            vec!["nginx:latest", "docker.io/library/nginx:latest"]
        );
        assert_eq!(
            image_names("org/app:1"),
            vec!["org/app:1", "docker.io/org/app:1"]
        );
        assert_eq!(
            image_names("reg.io:5000/app"),
            vec!["reg.io:5000/app:latest"]
        );
    }

    #[test]
    fn nodes_holding_big_images_score_higher() {
        let mut cache = Cache::new();
        let with = |name: &str, size: i64| {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name}, "status": {
                    "allocatable": {"cpu": "1", "pods": "10"},
                    "images": [{"names": ["docker.io/library/big:1"], "sizeBytes": size}]}}))
                .unwrap(),
            )
        };
        cache.upsert_node(with("a", 800 * MB));
        cache.upsert_node(with("b", 800 * MB));
        cache.upsert_node(Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "c"}, "status": {"allocatable": {"cpu": "1"}}}),
            )
            .unwrap(),
        ));
        let p = pod(json!({"containers": [{"name": "c", "image": "big:1"}]}));
        let state = CycleState {
            images: pre_score(&p, &cache),
            ..CycleState::default()
        };
        let a = score(&state, &p, cache.node("a").unwrap());
        let c = score(&state, &p, cache.node("c").unwrap());
        // 800 MiB × 2/3 spread ≈ 533 MiB → (533-23)/(1000-23) ≈ 52.
        assert_eq!(a, 52);
        assert_eq!(c, 0);
    }
}
