//! The skiff container runtime: images, overlay root filesystems, namespaces, cgroups, pod network and the shim.
