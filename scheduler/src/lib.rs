//! The skiff scheduler: an informer-fed scheduling queue, filter and score plugins in
//! kube-scheduler's shape, an assume cache, binding through `pods/binding`, and leader
//! election through a Lease. It reaches the cluster only through the Kubernetes API.

pub mod cache;
pub mod framework;
pub mod metrics;
pub mod plugins;
pub mod podinfo;
pub mod queue;
pub mod resources;
