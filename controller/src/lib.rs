//! The skiff controller-manager: one module per controller (arrives with the workload issues).
