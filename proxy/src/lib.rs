//! The skiff service proxy and cluster DNS (arrives with the services issue).

pub mod dns;
