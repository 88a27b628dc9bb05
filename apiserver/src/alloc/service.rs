//! The Service write hook: cluster IPs and node ports claimed in the ledger after the
//! Service passed validation, given back when the store write fails, and released when
//! an update gives them up or the Service is deleted — kube-apiserver's Service REST
//! allocation (`pkg/registry/core/service/storage/alloc.go`) over the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use rand::Rng;
use serde_json::{Value, json};
use skiff_api::validation::Cause;

use super::ledger::{ClaimError, Claimed, Ledger, Owner, Slot};
use super::range::{Family, IpRange, PortRange};
use super::{ServiceNetwork, families};
use crate::error::ApiError;
use crate::handlers::hooks::{FinishWrite, WriteHook};

/// Random tries before a dynamic allocation reads which slots are taken.
const RANDOM_TRIES: usize = 16;

/// Allocates Service addresses from the cluster's service network.
#[derive(Clone)]
pub struct ServiceAllocator {
    net: ServiceNetwork,
    ledger: Ledger,
}

/// The claims of one Service write.
struct Allocation {
    ledger: Ledger,
    owner: Owner,
    dry_run: bool,
    /// Claimed by this write: released if it fails.
    claimed: Vec<Slot>,
    /// Held before and given up by this write: released once it is stored.
    given_up: Vec<Slot>,
}

#[async_trait]
impl FinishWrite for Allocation {
    async fn finish(self: Box<Self>, committed: bool) {
        if self.dry_run {
            return;
        }
        let slots = if committed {
            &self.given_up
        } else {
            &self.claimed
        };
        for slot in slots {
            if let Err(e) = self.ledger.release(*slot, &self.owner).await {
                // The repair loop frees what is left behind.
                tracing::warn!(service = %self.owner, ?slot, error = %e, "releasing an allocation failed");
            }
        }
    }
}

impl Allocation {
    async fn revert(self) {
        Box::new(self).finish(false).await;
    }
}

/// Every slot a stored Service holds: its cluster IPs, node ports and health check port.
pub fn held_slots(spec: &ServiceSpec) -> BTreeSet<Slot> {
    let mut out = BTreeSet::new();
    if spec.type_.as_deref() != Some("ExternalName") {
        for ip in cluster_ips(spec) {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                out.insert(Slot::Ip(ip));
            }
        }
    }
    for p in spec.ports.iter().flatten() {
        if let Some(np) = p
            .node_port
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n != 0)
        {
            out.insert(Slot::Port(np));
        }
    }
    if let Some(hc) = spec
        .health_check_node_port
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
    {
        out.insert(Slot::Port(hc));
    }
    out
}

fn cluster_ips(spec: &ServiceSpec) -> Vec<String> {
    match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ips.clone(),
        (_, Some(ip)) if !ip.is_empty() => vec![ip.clone()],
        _ => Vec::new(),
    }
}

/// Whether the Service's ports get node ports.
pub fn wants_node_ports(spec: &ServiceSpec) -> bool {
    match spec.type_.as_deref() {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

/// Whether the Service needs a health check node port.
pub fn wants_health_check_port(spec: &ServiceSpec) -> bool {
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec.external_traffic_policy.as_deref() == Some("Local")
}

fn owner_of(svc: &Service) -> Owner {
    Owner::new(
        svc.metadata.namespace.as_deref().unwrap_or(""),
        svc.metadata.name.as_deref().unwrap_or(""),
    )
}

fn invalid(name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("", "Service", name, &causes)
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("service allocation: {e}"))
}

impl ServiceAllocator {
    /// An allocator over `net` keeping its claims in `ledger`.
    pub fn new(net: ServiceNetwork, ledger: Ledger) -> ServiceAllocator {
        ServiceAllocator { net, ledger }
    }

    /// The service network.
    pub fn network(&self) -> &ServiceNetwork {
        &self.net
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    async fn allocate(
        &self,
        svc: &mut Service,
        old: Option<&Service>,
        dry_run: bool,
    ) -> Result<Allocation, ApiError> {
        let name = svc.metadata.name.clone().unwrap_or_default();
        let owner = owner_of(svc);
        let old_spec = old.and_then(|o| o.spec.clone());
        let spec = svc.spec.get_or_insert_with(Default::default);
        families::init(&self.net.cidrs, spec, old_spec.as_ref()).map_err(|c| invalid(&name, c))?;
        let mut a = Allocation {
            ledger: self.ledger.clone(),
            owner,
            dry_run,
            claimed: Vec::new(),
            given_up: Vec::new(),
        };
        let result = async {
            self.allocate_ips(spec, &name, &mut a).await?;
            self.allocate_node_ports(spec, &name, &mut a).await?;
            self.allocate_health_check_port(spec, &name, &mut a).await
        }
        .await;
        if let Err(e) = result {
            a.revert().await;
            return Err(e);
        }
        if let Some(old) = &old_spec {
            let now = held_slots(spec);
            a.given_up = held_slots(old).difference(&now).copied().collect();
        }
        Ok(a)
    }

    /// Claims `slot` for a new pick: a slot this Service already holds (for another of its
    /// ports or families) counts as taken, so one Service never gets one slot twice.
    async fn claim_fresh(&self, slot: Slot, a: &mut Allocation) -> Result<(), ClaimError> {
        match self.ledger.claim(slot, &a.owner, a.dry_run).await? {
            Claimed::New => {
                a.claimed.push(slot);
                Ok(())
            }
            _ => Err(ClaimError::Taken {
                slot,
                holder: Some(a.owner.clone()),
            }),
        }
    }

    async fn claim(&self, slot: Slot, a: &mut Allocation) -> Result<(), ClaimError> {
        if self.ledger.claim(slot, &a.owner, a.dry_run).await? == Claimed::New {
            a.claimed.push(slot);
        }
        Ok(())
    }

    async fn allocate_ips(
        &self,
        spec: &mut ServiceSpec,
        name: &str,
        a: &mut Allocation,
    ) -> Result<(), ApiError> {
        let is_external = spec.type_.as_deref() == Some("ExternalName");
        let mut ips = cluster_ips(spec);
        if is_external || ips.first().is_some_and(|ip| ip == "None") {
            return Ok(());
        }
        let families: Vec<Family> = spec
            .ip_families
            .iter()
            .flatten()
            .filter_map(|f| Family::parse(f))
            .collect();
        let requested = ips.clone();
        for (i, fam) in families.iter().enumerate() {
            let range = *self
                .net
                .cidrs
                .range(*fam)
                .expect("families were checked against the configured ranges");
            match ips.get(i).filter(|ip| !ip.is_empty()).cloned() {
                Some(ip) => {
                    let parsed: IpAddr = ip.parse().map_err(|_| {
                        ApiError::internal(format!("failed to parse service IP '{ip}'"))
                    })?;
                    let fail = |why: String| {
                        invalid(
                            name,
                            vec![Cause::invalid(
                                "spec.clusterIPs",
                                &json!(requested),
                                format!("failed to allocate IP {ip}: {why}"),
                            )],
                        )
                    };
                    if !range.contains(parsed) {
                        return Err(fail(format!(
                            "provided IP is not in the valid range. The range of valid IPs is {range}"
                        )));
                    }
                    match self.claim(Slot::Ip(parsed), a).await {
                        Ok(()) => {}
                        Err(ClaimError::Taken { .. }) => {
                            return Err(fail("provided IP is already allocated".into()));
                        }
                        Err(ClaimError::Store(e)) => return Err(store_error(e)),
                    }
                }
                None => {
                    let ip = self.next_ip(&range, a).await?.ok_or_else(|| {
                        ApiError::internal("failed to allocate a serviceIP: range is full")
                    })?;
                    let s = ip.to_string();
                    if i < ips.len() {
                        ips[i] = s;
                    } else {
                        ips.push(s);
                    }
                }
            }
        }
        spec.cluster_ip = ips.first().cloned();
        spec.cluster_ips = Some(ips);
        Ok(())
    }

    /// A free address of `range`, claimed: random tries in the upper band first, then
    /// every address not yet claimed, upper band first.
    async fn next_ip(
        &self,
        range: &IpRange,
        a: &mut Allocation,
    ) -> Result<Option<IpAddr>, ApiError> {
        let (size, band) = (range.size(), range.static_band());
        let (lo, hi) = if size > band { (band, size) } else { (0, size) };
        for _ in 0..RANDOM_TRIES {
            let off = rand::rng().random_range(lo..hi);
            let ip = range.nth(off).expect("offset inside the range");
            match self.claim_fresh(Slot::Ip(ip), a).await {
                Ok(()) => return Ok(Some(ip)),
                Err(ClaimError::Taken { .. }) => {}
                Err(ClaimError::Store(e)) => return Err(store_error(e)),
            }
        }
        let taken: BTreeSet<u64> = self
            .ledger
            .list()
            .await
            .map_err(store_error)?
            .into_iter()
            .filter_map(|c| match c.slot {
                Slot::Ip(ip) => range.offset(ip),
                Slot::Port(_) => None,
            })
            .collect();
        let start = rand::rng().random_range(lo..hi);
        let order = (start..hi).chain(lo..start).chain(0..lo);
        for off in order.filter(|o| !taken.contains(o)) {
            let ip = range.nth(off).expect("offset inside the range");
            match self.claim_fresh(Slot::Ip(ip), a).await {
                Ok(()) => return Ok(Some(ip)),
                Err(ClaimError::Taken { .. }) => {}
                Err(ClaimError::Store(e)) => return Err(store_error(e)),
            }
        }
        Ok(None)
    }

    /// A free node port, claimed.
    async fn next_port(&self, a: &mut Allocation) -> Result<Option<u16>, ApiError> {
        let r: PortRange = self.net.node_ports;
        for _ in 0..RANDOM_TRIES {
            let p = rand::rng().random_range(r.lo..=r.hi);
            match self.claim_fresh(Slot::Port(p), a).await {
                Ok(()) => return Ok(Some(p)),
                Err(ClaimError::Taken { .. }) => {}
                Err(ClaimError::Store(e)) => return Err(store_error(e)),
            }
        }
        let taken: BTreeSet<u16> = self
            .ledger
            .list()
            .await
            .map_err(store_error)?
            .into_iter()
            .filter_map(|c| match c.slot {
                Slot::Port(p) => Some(p),
                Slot::Ip(_) => None,
            })
            .collect();
        let start = rand::rng().random_range(r.lo..=r.hi);
        for p in (start..=r.hi)
            .chain(r.lo..start)
            .filter(|p| !taken.contains(p))
        {
            match self.claim_fresh(Slot::Port(p), a).await {
                Ok(()) => return Ok(Some(p)),
                Err(ClaimError::Taken { .. }) => {}
                Err(ClaimError::Store(e)) => return Err(store_error(e)),
            }
        }
        Ok(None)
    }

    /// Claims a requested node port, or says in kube-apiserver's words why not.
    async fn claim_port(
        &self,
        port: i32,
        field: &str,
        name: &str,
        a: &mut Allocation,
    ) -> Result<(), ApiError> {
        let fail = |why: String| invalid(name, vec![Cause::invalid(field, &json!(port), why)]);
        let r = self.net.node_ports;
        let p = match u16::try_from(port) {
            Ok(p) if r.contains(port) => p,
            _ => {
                return Err(fail(format!(
                    "provided port is not in the valid range. The range of valid ports is {r}"
                )));
            }
        };
        match self.claim(Slot::Port(p), a).await {
            Ok(()) => Ok(()),
            Err(ClaimError::Taken { .. }) => Err(fail("provided port is already allocated".into())),
            Err(ClaimError::Store(e)) => Err(store_error(e)),
        }
    }

    async fn allocate_node_ports(
        &self,
        spec: &mut ServiceSpec,
        name: &str,
        a: &mut Allocation,
    ) -> Result<(), ApiError> {
        let wants = wants_node_ports(spec);
        let ports = spec.ports.get_or_insert_with(Vec::new);
        // One Service port number gets one node port, whatever its protocols.
        let mut by_port: BTreeMap<i32, i32> = BTreeMap::new();
        for i in 0..ports.len() {
            let current = ports[i].node_port.unwrap_or(0);
            if current == 0 && !wants {
                continue;
            }
            let field = format!("spec.ports[{i}].nodePort");
            match by_port.get(&ports[i].port).copied() {
                None => {
                    let requested = ports[i..]
                        .iter()
                        .filter(|p| p.port == ports[i].port)
                        .map(|p| p.node_port.unwrap_or(0))
                        .find(|n| *n != 0);
                    let np = match requested {
                        Some(np) => {
                            let at = if current == np {
                                field
                            } else {
                                let j = i + ports[i..]
                                    .iter()
                                    .position(|p| {
                                        p.port == ports[i].port && p.node_port == Some(np)
                                    })
                                    .unwrap_or(0);
                                format!("spec.ports[{j}].nodePort")
                            };
                            self.claim_port(np, &at, name, a).await?;
                            np
                        }
                        None => i32::from(self.next_port(a).await?.ok_or_else(|| {
                            ApiError::internal("failed to allocate a nodePort: range is full")
                        })?),
                    };
                    ports[i].node_port = Some(np);
                    by_port.insert(ports[i].port, np);
                }
                Some(np) if current == 0 => ports[i].node_port = Some(np),
                Some(np) if current == np => {}
                Some(_) => self.claim_port(current, &field, name, a).await?,
            }
        }
        if ports.is_empty() {
            spec.ports = None;
        }
        Ok(())
    }

    async fn allocate_health_check_port(
        &self,
        spec: &mut ServiceSpec,
        name: &str,
        a: &mut Allocation,
    ) -> Result<(), ApiError> {
        if !wants_health_check_port(spec) {
            return Ok(());
        }
        match spec.health_check_node_port.filter(|n| *n != 0) {
            Some(p) => {
                self.claim_port(p, "spec.healthCheckNodePort", name, a)
                    .await
            }
            None => {
                let p = self.next_port(a).await?.ok_or_else(|| {
                    ApiError::internal("failed to allocate a nodePort: range is full")
                })?;
                spec.health_check_node_port = Some(i32::from(p));
                Ok(())
            }
        }
    }

    /// Releases everything a deleted Service held.
    pub async fn release_all(&self, svc: &Service) {
        let owner = owner_of(svc);
        let Some(spec) = &svc.spec else { return };
        for slot in held_slots(spec) {
            if let Err(e) = self.ledger.release(slot, &owner).await {
                tracing::warn!(service = %owner, ?slot, error = %e, "releasing an allocation failed");
            }
        }
    }
}

fn decode(obj: &Value) -> Result<Service, ApiError> {
    serde_json::from_value(obj.clone())
        .map_err(|e| ApiError::internal(format!("decoding a validated service: {e}")))
}

fn write_back(svc: &Service, obj: &mut Value) -> Result<(), ApiError> {
    // Only the spec changes: the rest of the object stays as the handler built it.
    let spec = serde_json::to_value(&svc.spec).map_err(ApiError::internal)?;
    obj["spec"] = spec;
    Ok(())
}

#[async_trait]
impl WriteHook for ServiceAllocator {
    async fn begin_create(
        &self,
        obj: &mut Value,
        dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError> {
        let mut svc = decode(obj)?;
        let a = self.allocate(&mut svc, None, dry_run).await?;
        write_back(&svc, obj)?;
        Ok(Box::new(a))
    }

    async fn begin_update(
        &self,
        new: &mut Value,
        old: &Value,
        dry_run: bool,
    ) -> Result<Box<dyn FinishWrite>, ApiError> {
        let mut svc = decode(new)?;
        let old = decode(old)?;
        let a = self.allocate(&mut svc, Some(&old), dry_run).await?;
        write_back(&svc, new)?;
        Ok(Box::new(a))
    }

    async fn after_delete(&self, obj: &Value) {
        if let Ok(svc) = decode(obj) {
            self.release_all(&svc).await;
        }
    }
}
