//! Leader election through a coordination.k8s.io Lease, so that of several
//! controller-managers sharing one API server only the holder acts.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use crate::error::{Error, Result, conflict, not_found};

/// Namespace of the Lease.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// Name of the Lease.
pub const LEASE_NAME: &str = "skiff-controller-manager";
/// How long a holder's claim lasts without renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (and candidates retry).
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// One candidate for the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    identity: String,
}

/// Whether a Lease with this spec may be taken by `identity` at `now`.
pub fn can_take(spec: &LeaseSpec, identity: &str, now: Timestamp) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() || holder == identity {
        return true;
    }
    let renewed = spec
        .renew_time
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let secs = i64::from(
        spec.lease_duration_seconds
            .unwrap_or(LEASE_DURATION.as_secs() as i32),
    );
    renewed + SignedDuration::from_secs(secs) < now
}

impl LeaderElector {
    /// A candidate named `identity`.
    pub fn new(client: Client, identity: String) -> Self {
        LeaderElector {
            api: Api::namespaced(client, LEASE_NAMESPACE),
            identity,
        }
    }

    /// Takes or renews the Lease; `Ok(true)` when we hold it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let now = Timestamp::now();
        let key = format!("{LEASE_NAMESPACE}/{LEASE_NAME}");
        let fresh = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: acquired.or(Some(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        };
        let current = match self.api.get(LEASE_NAME).await {
            Ok(l) => l,
            Err(e) if not_found(&e) => {
                let mut lease = Lease {
                    spec: Some(fresh(0, None)),
                    ..Default::default()
                };
                lease.metadata.name = Some(LEASE_NAME.into());
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(e) if conflict(&e) => Ok(false),
                    Err(e) => Err(Error::api(key)(e)),
                };
            }
            Err(e) => return Err(Error::api(key)(e)),
        };
        let spec = current.spec.clone().unwrap_or_default();
        if !can_take(&spec, &self.identity, now) {
            return Ok(false);
        }
        let ours = spec.holder_identity.as_deref() == Some(&self.identity);
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let mut lease = current.clone();
        lease.spec = Some(fresh(
            transitions,
            if ours {
                spec.acquire_time.clone()
            } else {
                None
            },
        ));
        // replace carries the resourceVersion: of two candidates racing, one gets a conflict.
        match self
            .api
            .replace(&current.name_any(), &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(Error::api(key)(e)),
        }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(identity = %self.identity, "acquired controller-manager lease");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    /// Renews the Lease every retry period; returns once it could not be renewed within the
    /// lease duration (leadership lost).
    pub async fn hold(&self) {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RETRY_PERIOD).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
            }
            // Give up before another candidate may take over.
            if last_ok.elapsed() > LEASE_DURATION - RETRY_PERIOD * 2 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_only_when_free_ours_or_expired() {
        let now = Timestamp::from_second(1_000).unwrap();
        let spec = |holder: &str, renewed: i64| LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            ..Default::default()
        };
        assert!(can_take(&LeaseSpec::default(), "me", now));
        assert!(can_take(&spec("me", 999), "me", now));
        assert!(!can_take(&spec("other", 990), "me", now));
        assert!(can_take(&spec("other", 980), "me", now));
    }
}
