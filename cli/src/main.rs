//! The `skiff` binary.
fn main() {}
