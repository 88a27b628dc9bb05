//! The allocation ledger: one stored object per allocated cluster IP (a
//! networking.k8s.io/v1 `IPAddress`, as kube-apiserver 1.33 keeps them) and per allocated
//! node port. Claiming is the store's create-if-absent, so two requests — in one server or
//! in several servers on one etcd — can never both get an address, and a restart finds
//! every allocation where it left it.

use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::storage::{KeyValue, ListOptions, Revision, Store, StoreError};

/// Where the IPAddress objects live (the served kind's storage prefix).
pub const IP_PREFIX: &str = "/registry/networking.k8s.io/ipaddresses/";
/// Where node port claims live (kube-apiserver keeps its port bitmap under `ranges/`).
pub const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";
/// `ipaddress.kubernetes.io/managed-by` of addresses the Service allocator made.
pub const MANAGED_BY: &str = "ipallocator.k8s.io";

/// The Service an allocation belongs to (`spec.parentRef` of an IPAddress).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
}

impl Owner {
    /// The Service `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Owner {
        Owner {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    fn parent_ref(&self) -> Value {
        json!({"group": "", "resource": "services", "namespace": self.namespace, "name": self.name})
    }

    fn of(value: &[u8]) -> Option<Owner> {
        let v: Value = serde_json::from_slice(value).ok()?;
        let p = v.pointer("/spec/parentRef")?;
        if p.get("resource").and_then(Value::as_str) != Some("services") {
            return None;
        }
        Some(Owner::new(
            p.get("namespace").and_then(Value::as_str).unwrap_or(""),
            p.get("name").and_then(Value::as_str).unwrap_or(""),
        ))
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One allocatable thing: a cluster IP or a node port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// A cluster IP.
    Ip(IpAddr),
    /// A node port (one number serves every protocol of one Service port).
    Port(u16),
}

impl Slot {
    /// The store key of the slot's claim.
    pub fn key(&self) -> String {
        match self {
            Slot::Ip(ip) => format!("{IP_PREFIX}{ip}"),
            Slot::Port(p) => format!("{PORT_PREFIX}{p}"),
        }
    }

    fn record(&self, owner: &Owner) -> Value {
        let now = crate::handlers::object::now();
        let uid = uuid::Uuid::new_v4().to_string();
        match self {
            Slot::Ip(ip) => json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IPAddress",
                "metadata": {
                    "name": ip.to_string(),
                    "uid": uid,
                    "creationTimestamp": now,
                    "labels": {
                        "ipaddress.kubernetes.io/ip-family": super::Family::of(*ip).as_str(),
                        "ipaddress.kubernetes.io/managed-by": MANAGED_BY,
                    },
                },
                "spec": {"parentRef": owner.parent_ref()},
            }),
            Slot::Port(p) => json!({
                "metadata": {"name": p.to_string(), "uid": uid, "creationTimestamp": now},
                "spec": {"parentRef": owner.parent_ref()},
            }),
        }
    }
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// The slot was free and is now the owner's.
    New,
    /// The slot already was the owner's (a reservation made before, or a retried write).
    Already,
}

/// Why a claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another Service (or something that is not a Service) holds the slot.
    #[error("{slot:?} is held by {holder:?}")]
    Taken {
        /// The slot.
        slot: Slot,
        /// Its holder, when the claim names a Service.
        holder: Option<Owner>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One stored claim, as listed by the repair loop.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The slot.
    pub slot: Slot,
    /// Its owner, if the record names a Service.
    pub owner: Option<Owner>,
    /// When the claim was made.
    pub created: Option<jiff::Timestamp>,
    /// The revision of the claim (releases are conditioned on it).
    pub revision: Revision,
}

/// The claims in the store.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<dyn Store>,
}

impl Ledger {
    /// The ledger kept in `store`.
    pub fn new(store: Arc<dyn Store>) -> Ledger {
        Ledger { store }
    }

    /// Claims `slot` for `owner`. With `dry_run` only checks that it could.
    pub async fn claim(
        &self,
        slot: Slot,
        owner: &Owner,
        dry_run: bool,
    ) -> Result<Claimed, ClaimError> {
        let key = slot.key();
        if !dry_run {
            let body = serde_json::to_vec(&slot.record(owner)).expect("JSON values encode");
            match self.store.create(&key, body).await {
                Ok(_) => return Ok(Claimed::New),
                Err(StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match self.store.get(&key).await? {
            None if dry_run => Ok(Claimed::New),
            // Released between the create and the read: the caller may try again.
            None => Err(ClaimError::Taken { slot, holder: None }),
            Some(kv) => match Owner::of(&kv.value) {
                Some(o) if o == *owner => Ok(Claimed::Already),
                holder => Err(ClaimError::Taken { slot, holder }),
            },
        }
    }

    /// Releases `slot` if `owner` holds it. Returns whether a claim was removed.
    pub async fn release(&self, slot: Slot, owner: &Owner) -> Result<bool, StoreError> {
        let key = slot.key();
        let Some(kv) = self.store.get(&key).await? else {
            return Ok(false);
        };
        if Owner::of(&kv.value).as_ref() != Some(owner) {
            return Ok(false);
        }
        self.remove(&kv).await
    }

    /// Removes a listed claim unless it changed since it was read.
    pub async fn release_claim(&self, claim: &Claim) -> Result<bool, StoreError> {
        match self.store.get(&claim.slot.key()).await? {
            Some(kv) if kv.mod_revision == claim.revision => self.remove(&kv).await,
            _ => Ok(false),
        }
    }

    async fn remove(&self, kv: &KeyValue) -> Result<bool, StoreError> {
        match self.store.delete(&kv.key, Some(kv.mod_revision)).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether `slot` is claimed by anyone.
    pub async fn is_claimed(&self, slot: Slot) -> Result<bool, StoreError> {
        Ok(self.store.get(&slot.key()).await?.is_some())
    }

    /// Every claim of cluster IPs and node ports.
    pub async fn list(&self) -> Result<Vec<Claim>, StoreError> {
        let mut out = Vec::new();
        for prefix in [IP_PREFIX, PORT_PREFIX] {
            let items = self.store.list(prefix, ListOptions::default()).await?.items;
            for kv in items {
                let name = &kv.key[prefix.len()..];
                let slot = if prefix == IP_PREFIX {
                    name.parse().ok().map(Slot::Ip)
                } else {
                    name.parse().ok().map(Slot::Port)
                };
                let Some(slot) = slot else { continue };
                let v: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
                out.push(Claim {
                    slot,
                    owner: Owner::of(&kv.value),
                    created: v
                        .pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok()),
                    revision: kv.mod_revision,
                });
            }
        }
        Ok(out)
    }
}
