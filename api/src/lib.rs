//! Kubernetes API model shared by every skiff component: the resource table, label and field
//! selectors, quantities, object-meta helpers and name validation, and the Kubernetes rules
//! several components apply (pod QoS class, requests and readiness; node selector, affinity
//! and toleration matching; the remote-command protocol). No I/O.

pub mod cron;
pub mod disruption;
pub mod fields;
pub mod indexes;
pub mod labels;
pub mod meta;
pub mod pod;
pub mod quantity;
pub mod remotecommand;
pub mod resources;
pub mod scheduling;
pub mod storage;
pub mod validation;
