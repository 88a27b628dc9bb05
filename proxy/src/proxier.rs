//! `NftablesProxier`: the Services and EndpointSlices seen so far, which Services changed
//! since the last sync, and the sync that renders only those and sends the difference in
//! one transaction (a full sync, in bounded transactions, only at start or after a
//! refused transaction).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::nft::{Nft, NftError};
use crate::rules::{NodeContext, ServiceRules, skeleton};
use crate::service::{ServiceInfo, ServiceKey, slice_owner};
use crate::transaction::{Change, KernelModel};

/// What the proxier needs to know about its node and table.
#[derive(Debug, Clone)]
pub struct ProxierConfig {
    /// The nftables table (`ip <table>`).
    pub table: String,
    /// This node's name (endpoints on it are local).
    pub node_name: String,
    /// Service CIDRs and load-balancer pools: their unheld addresses are dropped.
    pub drop_ranges: Vec<Ipv4Net>,
    /// Node facts the rules depend on.
    pub node: NodeContext,
    /// Services per transaction in a full sync.
    pub full_sync_batch: usize,
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether it was a full sync.
    pub full: bool,
    /// Services rendered.
    pub services: usize,
    /// Transactions sent.
    pub transactions: usize,
}

/// Turns Services and EndpointSlices into the proxy's nftables table.
pub struct NftablesProxier {
    cfg: ProxierConfig,
    nft: Arc<dyn Nft>,
    services: HashMap<ServiceKey, Service>,
    slices: HashMap<ServiceKey, BTreeMap<String, EndpointSlice>>,
    dirty: BTreeSet<ServiceKey>,
    /// `None` until a full sync succeeded (and again after a refused transaction).
    kernel: Option<KernelModel>,
    /// When the oldest unsynced change arrived.
    pending_since: Option<Instant>,
}

impl NftablesProxier {
    /// A proxier sending its transactions through `nft`.
    pub fn new(cfg: ProxierConfig, nft: Arc<dyn Nft>) -> Self {
        Self {
            cfg,
            nft,
            services: HashMap::new(),
            slices: HashMap::new(),
            dirty: BTreeSet::new(),
            kernel: None,
            pending_since: None,
        }
    }

    /// Creates the table with its skeleton when it does not exist yet (`create table`
    /// fails on an existing one, which then keeps serving until the first full sync), so
    /// unheld service addresses are dropped before the first sync.
    pub async fn install_skeleton(&self) -> Result<bool, NftError> {
        let t = &self.cfg.table;
        let script = format!(
            "create table ip {t}\n{}",
            skeleton(t, &self.cfg.drop_ranges)
        );
        match self.nft.apply(&script).await {
            Ok(()) => Ok(true),
            Err(NftError::Refused { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A Service was added or changed.
    pub fn service_applied(&mut self, svc: Service) {
        if let Some(key) = service_key(&svc) {
            let changed = self.services.get(&key).is_none_or(|old| old != &svc);
            if changed {
                self.services.insert(key.clone(), svc);
                self.mark(key);
            }
        }
    }

    /// A Service was deleted.
    pub fn service_deleted(&mut self, svc: &Service) {
        if let Some(key) = service_key(svc) {
            if self.services.remove(&key).is_some() {
                self.mark(key);
            }
        }
    }

    /// An EndpointSlice was added or changed.
    pub fn slice_applied(&mut self, slice: EndpointSlice) {
        let (Some(key), Some(name)) = (slice_owner(&slice), slice.metadata.name.clone()) else {
            return;
        };
        let slices = self.slices.entry(key.clone()).or_default();
        if slices.get(&name) != Some(&slice) {
            slices.insert(name, slice);
            self.mark(key);
        }
    }

    /// An EndpointSlice was deleted.
    pub fn slice_deleted(&mut self, slice: &EndpointSlice) {
        let (Some(key), Some(name)) = (slice_owner(slice), slice.metadata.name.as_deref()) else {
            return;
        };
        if let Some(slices) = self.slices.get_mut(&key) {
            if slices.remove(name).is_some() {
                if slices.is_empty() {
                    self.slices.remove(&key);
                }
                self.mark(key);
            }
        }
    }

    /// Replaces every Service with `all` (a relist), marking what differs.
    pub fn replace_services(&mut self, all: Vec<Service>) {
        let fresh: HashMap<ServiceKey, Service> = all
            .into_iter()
            .filter_map(|s| Some((service_key(&s)?, s)))
            .collect();
        let gone: Vec<ServiceKey> = self
            .services
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            self.services.remove(&k);
            self.mark(k);
        }
        for s in fresh.into_values() {
            self.service_applied(s);
        }
    }

    /// Replaces every EndpointSlice with `all` (a relist), marking what differs.
    pub fn replace_slices(&mut self, all: Vec<EndpointSlice>) {
        let mut fresh: HashMap<ServiceKey, BTreeMap<String, EndpointSlice>> = HashMap::new();
        for s in all {
            if let (Some(k), Some(n)) = (slice_owner(&s), s.metadata.name.clone()) {
                fresh.entry(k).or_default().insert(n, s);
            }
        }
        let keys: BTreeSet<ServiceKey> = self.slices.keys().chain(fresh.keys()).cloned().collect();
        for k in keys {
            let new = fresh.remove(&k);
            if self.slices.get(&k) != new.as_ref() {
                match new {
                    Some(n) => self.slices.insert(k.clone(), n),
                    None => self.slices.remove(&k),
                };
                self.mark(k);
            }
        }
    }

    fn mark(&mut self, key: ServiceKey) {
        self.dirty.insert(key);
        self.pending_since.get_or_insert_with(Instant::now);
    }

    /// Whether a sync has something to do.
    pub fn needs_sync(&self) -> bool {
        self.kernel.is_none() || !self.dirty.is_empty()
    }

    /// How long the oldest unsynced change has waited.
    pub fn pending_for(&self) -> Option<Duration> {
        self.pending_since.map(|t| t.elapsed())
    }

    /// The rules of Service `key` as they stand now (`None`: nothing to program).
    fn render(&self, key: &ServiceKey) -> Option<ServiceRules> {
        let svc = self.services.get(key)?;
        let slices = self.slices.get(key).into_iter().flat_map(|m| m.values());
        let info = ServiceInfo::from_api(svc, slices, &self.cfg.node_name)?;
        Some(ServiceRules::render(&info, &self.cfg.node))
    }

    /// Brings the table up to date: the changed Services in one transaction, or every
    /// Service (in transactions of `full_sync_batch` Services, the first replacing the
    /// table) when no full sync has succeeded yet. A refused transaction makes the next
    /// sync a full one.
    pub async fn sync(&mut self) -> Result<SyncReport, NftError> {
        let result = match self.kernel.take() {
            Some(kernel) => self.sync_changes(kernel).await,
            None => self.full_sync().await,
        };
        if result.is_err() {
            self.kernel = None;
        } else {
            self.pending_since = None;
        }
        result
    }

    async fn sync_changes(&mut self, mut kernel: KernelModel) -> Result<SyncReport, NftError> {
        let dirty = std::mem::take(&mut self.dirty);
        let changes: Vec<Change> = dirty.iter().map(|k| (k.clone(), self.render(k))).collect();
        let prepared = kernel.prepare(&self.cfg.table, changes);
        let mut report = SyncReport {
            full: false,
            services: dirty.len(),
            transactions: 0,
        };
        if !prepared.is_empty() {
            self.nft.apply(&prepared.script).await?;
            report.transactions = 1;
        }
        kernel.commit(prepared);
        self.kernel = Some(kernel);
        Ok(report)
    }

    async fn full_sync(&mut self) -> Result<SyncReport, NftError> {
        self.dirty.clear();
        let mut keys: Vec<ServiceKey> = self.services.keys().cloned().collect();
        keys.sort();
        let t = &self.cfg.table;
        let mut kernel = KernelModel::default();
        let mut report = SyncReport {
            full: true,
            services: keys.len(),
            transactions: 0,
        };
        let batch = self.cfg.full_sync_batch.max(1);
        let mut chunks = keys.chunks(batch).peekable();
        let mut first = true;
        while first || chunks.peek().is_some() {
            let chunk = chunks.next().unwrap_or(&[]);
            let changes: Vec<Change> = chunk
                .iter()
                .filter_map(|k| Some((k.clone(), Some(self.render(k)?))))
                .collect();
            let prepared = kernel.prepare(t, changes);
            let script = if first {
                format!(
                    "add table ip {t}\ndelete table ip {t}\n{}{}",
                    skeleton(t, &self.cfg.drop_ranges),
                    prepared.script
                )
            } else {
                prepared.script.clone()
            };
            if !script.is_empty() {
                self.nft.apply(&script).await?;
                report.transactions += 1;
            }
            kernel.commit(prepared);
            first = false;
            // Let other work on the node run between the bounded transactions.
            tokio::task::yield_now().await;
        }
        self.kernel = Some(kernel);
        Ok(report)
    }
}

fn service_key(svc: &Service) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        svc.metadata.namespace.as_deref()?,
        svc.metadata.name.as_deref()?,
    ))
}

#[cfg(test)]
#[path = "proxier_tests.rs"]
mod tests;
