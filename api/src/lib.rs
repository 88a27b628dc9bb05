//! Kubernetes API model shared by every skiff component: the resource table, label and field
//! selectors, quantities, object-meta helpers and name validation. No I/O.

pub mod fields;
pub mod labels;
pub mod meta;
pub mod quantity;
pub mod resources;
pub mod validation;
