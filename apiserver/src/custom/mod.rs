//! Custom resources: the kinds CustomResourceDefinitions define at run time. A CRD's versions
//! become registry entries (`definition.rs`) with a structural codec, a strategy built from
//! the version (`strategy.rs`: schema defaults in `defaults.rs`, validation in `validate.rs`
//! and `format.rs`, printer columns and selectable fields through `jsonpath.rs`) and the
//! `None` conversion; `controller.rs` keeps the served set in step with the CRDs in the store
//! and writes their conditions (`names.rs`). The generic handlers serve them like built-ins.

mod controller;
mod defaults;
mod definition;
mod format;
mod intern;
mod jsonpath;
mod names;
mod strategy;
mod validate;

pub use controller::run;
pub use definition::{condition_true, entries};
pub use jsonpath::{JsonPath, JsonPathError};
pub use strategy::CustomResourceStrategy;

/// The finalizer a CRD carries until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The string at a JSON pointer of `v`, empty when absent or not a string.
pub fn str_at<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}
