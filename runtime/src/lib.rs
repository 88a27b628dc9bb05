//! The skiff container runtime: images, overlay root filesystems, namespaces and process
//! start, cgroups v1 and v2, the pod network, and the per-container shim.

pub mod cgroups;
pub mod container;
pub mod image;
pub mod network;
pub mod pod;
pub mod quota;
pub mod rootfs;
pub mod shim;
pub mod syscall;

pub use ipnet;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
