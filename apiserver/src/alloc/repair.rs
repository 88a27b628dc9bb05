//! The repair loop, as kube-apiserver's Service IP and node port repair controllers: at
//! start and then periodically it compares the ledger with the stored Services, claims
//! what a Service holds but nobody claimed (Warning events `ClusterIPNotAllocated`,
//! `PortNotAllocated`), reports addresses outside the ranges or held twice, and releases
//! claims no Service holds once they are older than a grace period (a create in flight
//! claims its addresses a moment before the Service is stored).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use super::ledger::{Claim, ClaimError, Claimed, Owner, Slot};
use super::service::held_slots;
use crate::handlers::{ApiState, create};
use crate::storage::{ListOptions, StoreError};

/// kube-apiserver repairs Service addresses every 3 minutes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(180);
/// How old a claim no Service holds must be before it is released.
pub const DEFAULT_LEAK_GRACE: Duration = Duration::from_secs(60);

/// What one repair pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// Claims made for Services that held an unclaimed address.
    pub claimed: Vec<Slot>,
    /// Leaked claims released.
    pub released: Vec<Slot>,
    /// Addresses a Service holds outside the configured ranges or held by another Service.
    pub conflicts: Vec<Slot>,
}

fn describe(slot: Slot) -> String {
    match slot {
        Slot::Ip(ip) => format!("Cluster IP [{}]:{ip}", super::Family::of(ip).as_str()),
        Slot::Port(p) => format!("Port {p}"),
    }
}

async fn warn(state: &ApiState, svc: &Service, reason: &str, message: String) {
    tracing::warn!(
        service = %format!("{}/{}", svc.metadata.namespace.as_deref().unwrap_or(""), svc.metadata.name.as_deref().unwrap_or("")),
        reason, %message, "service address repair"
    );
    let Some(events) = state.kinds.find("", "v1", "events") else {
        return;
    };
    let ns = svc.metadata.namespace.clone().unwrap_or_default();
    let now = crate::handlers::object::now();
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{}.", svc.metadata.name.as_deref().unwrap_or("service")), "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": ns,
            "name": svc.metadata.name, "uid": svc.metadata.uid, "resourceVersion": svc.metadata.resource_version},
        "reason": reason, "message": message, "type": "Warning",
        "source": {"component": "ipallocator-repair-controller"},
        "reportingComponent": "ipallocator-repair-controller",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    if let Err(e) = create::create(state, events, ev, Some(&ns), false).await {
        tracing::debug!(error = %e, "recording a repair event failed");
    }
}

/// One pass over the Services and the ledger.
pub async fn repair_once(
    state: &ApiState,
    leak_grace: Duration,
) -> Result<RepairReport, StoreError> {
    let alloc = &state.services;
    let net = alloc.network();
    let ledger = alloc.ledger();
    let svc_kind = state
        .kinds
        .find("", "v1", "services")
        .expect("services are served");
    // Claims first: a Service stored after this read claimed its addresses before it was
    // stored, and such a young claim is never taken for a leak.
    let claims = ledger.list().await?;
    let listed = state
        .store
        .list(&svc_kind.info.key_prefix(), ListOptions::default())
        .await?;
    let mut holders: BTreeMap<Slot, Owner> = BTreeMap::new();
    let mut report = RepairReport::default();
    let by_slot: BTreeMap<Slot, &Claim> = claims.iter().map(|c| (c.slot, c)).collect();
    for kv in &listed.items {
        let Ok(svc) = serde_json::from_slice::<Service>(&kv.value) else {
            continue;
        };
        let Some(spec) = &svc.spec else { continue };
        let owner = Owner::new(
            svc.metadata.namespace.as_deref().unwrap_or(""),
            svc.metadata.name.as_deref().unwrap_or(""),
        );
        for slot in held_slots(spec) {
            let in_range = match slot {
                Slot::Ip(ip) => net.cidrs.holding(ip).is_some(),
                Slot::Port(p) => net.node_ports.contains(i32::from(p)),
            };
            if let Some(other) = holders.get(&slot).filter(|o| **o != owner) {
                report.conflicts.push(slot);
                let what = describe(slot);
                warn(state, &svc, already_reason(slot), format!("{what} was assigned to multiple services ({other} and {owner}); please recreate service")).await;
                continue;
            }
            holders.insert(slot, owner.clone());
            if !in_range {
                report.conflicts.push(slot);
                let (reason, msg) = match slot {
                    Slot::Ip(_) => (
                        "ClusterIPOutOfRange",
                        format!(
                            "{} is not within the configured Service CIDR {}; please recreate service",
                            describe(slot),
                            net.cidrs
                        ),
                    ),
                    Slot::Port(_) => (
                        "PortOutOfRange",
                        format!(
                            "{} is not within the port range {}; please recreate service",
                            describe(slot),
                            net.node_ports
                        ),
                    ),
                };
                warn(state, &svc, reason, msg).await;
                continue;
            }
            match by_slot.get(&slot) {
                Some(c) if c.owner.as_ref() == Some(&owner) => {}
                Some(_) => {
                    report.conflicts.push(slot);
                    warn(
                        state,
                        &svc,
                        already_reason(slot),
                        format!(
                            "{} was assigned to multiple services; please recreate service",
                            describe(slot)
                        ),
                    )
                    .await;
                }
                None => match ledger.claim(slot, &owner, false).await {
                    // Claimed since the ledger was read: a create that just finished.
                    Ok(Claimed::Already) => {}
                    Ok(Claimed::New) => {
                        report.claimed.push(slot);
                        let reason = match slot {
                            Slot::Ip(_) => "ClusterIPNotAllocated",
                            Slot::Port(_) => "PortNotAllocated",
                        };
                        warn(
                            state,
                            &svc,
                            reason,
                            format!("{} is not allocated; repairing", describe(slot)),
                        )
                        .await;
                    }
                    Err(ClaimError::Taken { .. }) => report.conflicts.push(slot),
                    Err(ClaimError::Store(e)) => return Err(e),
                },
            }
        }
    }
    let now = jiff::Timestamp::now();
    let grace = jiff::SignedDuration::try_from(leak_grace).unwrap_or(jiff::SignedDuration::MAX);
    for c in &claims {
        let held = holders.get(&c.slot);
        if held.is_some() && held == c.owner.as_ref() {
            continue;
        }
        if held.is_some() && c.owner.is_some() {
            // Claimed by one Service, held by another: reported above, kept.
            continue;
        }
        let old_enough = c.created.is_none_or(|t| now.duration_since(t) >= grace);
        if !old_enough {
            continue;
        }
        // A Service may have been stored (holding this slot) since the list above.
        if let Some(owner) = &c.owner
            && still_holds(state, owner, c.slot).await?
        {
            continue;
        }
        if ledger.release_claim(c).await? {
            tracing::info!(slot = ?c.slot, owner = ?c.owner, "released a leaked service allocation");
            report.released.push(c.slot);
        }
    }
    Ok(report)
}

fn already_reason(slot: Slot) -> &'static str {
    match slot {
        Slot::Ip(_) => "ClusterIPAlreadyAllocated",
        Slot::Port(_) => "PortAlreadyAllocated",
    }
}

async fn still_holds(state: &ApiState, owner: &Owner, slot: Slot) -> Result<bool, StoreError> {
    let svc_kind = state
        .kinds
        .find("", "v1", "services")
        .expect("services are served");
    let key = svc_kind.info.key(Some(&owner.namespace), &owner.name);
    Ok(match state.store.get(&key).await? {
        None => false,
        Some(kv) => serde_json::from_slice::<Service>(&kv.value)
            .ok()
            .and_then(|s| s.spec)
            .is_some_and(|spec| held_slots(&spec).contains(&slot)),
    })
}

/// Repairs at once and then every `interval`, until the task is dropped.
pub async fn run(state: ApiState, interval: Duration, leak_grace: Duration) {
    loop {
        match repair_once(&state, leak_grace).await {
            Ok(r) if r != RepairReport::default() => {
                tracing::info!(
                    claimed = r.claimed.len(),
                    released = r.released.len(),
                    conflicts = r.conflicts.len(),
                    "service address repair"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "service address repair failed"),
        }
        tokio::time::sleep(interval).await;
    }
}
