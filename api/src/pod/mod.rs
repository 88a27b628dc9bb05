//! Kubernetes' rules about one pod that several components apply: its QoS class, its
//! effective resource requests and its readiness.

pub mod qos;
pub mod readiness;
pub mod requests;

pub use qos::{QosClass, qos_class};
pub use readiness::{is_available, is_ready, ready_since};
pub use requests::{Resources, pod_non_zero_requests, pod_requests};
