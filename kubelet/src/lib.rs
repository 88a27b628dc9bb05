//! The skiff node agent (kubelet): registration, pod workers, probes, volumes (arrives with the node-agent issue).

pub mod server;
