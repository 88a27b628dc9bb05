//! The skiff API server: generic resource handlers over a `Store`, watch cache, admission
//! (defaulting and validation), authentication, discovery and OpenAPI documents.

pub mod admission;
pub mod alloc;
pub mod auth;
pub mod authz;
pub mod custom;
pub mod discovery;
pub mod error;
pub mod event_ttl;
pub mod handlers;
pub mod managed;
pub mod metrics;
pub mod metrics_api;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod registry;
pub mod server;
pub mod storage;
pub mod strategy;
pub mod system_services;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod watchcache;
