//! Links the `skiff` binary at a fixed address (not position-independent): in a PIE every
//! process relocates ~1 MiB of pointers (vtables, the GOT) at load, which turns those
//! pages into private dirty memory — most of what an idle per-container shim costs.
fn main() {
    println!("cargo:rustc-link-arg-bin=skiff=-no-pie");
}
