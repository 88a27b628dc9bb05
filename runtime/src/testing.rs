//! The crate's unit-test binary as the container shim (the hook of
//! [`crate::testkit::shim`]), for the pod tests that still run beside the code; their
//! fixtures come from [`crate::testkit`].

pub use crate::testkit::{TestCgroups, busybox_rootfs, skip_unless_root, test_root};

crate::test_shim_hook!();
