//! Benchmark harness; results go to BENCHMARKS.md.
fn main() {}
