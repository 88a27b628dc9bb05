//! Leader election through a coordination.k8s.io/v1 Lease, as client-go's leaderelection
//! does it: acquire when the lease is free or its record has not changed for a lease
//! duration (measured on the local clock, so clock skew between holders does not matter),
//! renew every retry period, give up after the renew deadline, release on shutdown.

use std::future::Future;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

use crate::Shutdown;

/// Leader election settings.
#[derive(Debug, Clone)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This candidate's identity (unique per process).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// A leader that cannot renew for this long steps down.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// client-go's defaults (15 s lease, 10 s renew deadline, 2 s retry) for the Lease
    /// `kube-system/<name>` with a `<hostname>_<uuid>` identity.
    pub fn new(name: &str) -> LeaderElectionConfig {
        LeaderElectionConfig {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: crate::default_identity(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Whether `identity` may take a lease held by `holder` whose record this candidate has
/// seen unchanged for `unchanged_for`: when it is free, already ours, or has not been
/// renewed for `lease_duration` by the local clock.
pub fn may_acquire(
    holder: &str,
    identity: &str,
    unchanged_for: Duration,
    lease_duration: Duration,
) -> bool {
    holder.is_empty() || holder == identity || unchanged_for >= lease_duration
}

/// One candidate for the lease.
pub struct LeaseElector {
    api: Api<Lease>,
    cfg: LeaderElectionConfig,
    /// The last (holder, renewTime) seen and when it was first seen locally.
    observed: Option<((String, Option<Timestamp>), Instant)>,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl LeaseElector {
    /// A candidate for the configured lease.
    pub fn new(client: kube::Client, cfg: LeaderElectionConfig) -> LeaseElector {
        LeaseElector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaderElectionConfig {
        &self.cfg
    }

    fn duration_secs(&self) -> i32 {
        self.cfg.lease_duration.as_secs().max(1) as i32
    }

    /// Takes or renews the lease once; true when this candidate holds it afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(self.duration_secs()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if is_conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let record = (holder.clone(), spec.renew_time.as_ref().map(|t| t.0));
        let seen_at = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record, at));
                at
            }
        };
        let held_for = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        if !may_acquire(&holder, &self.cfg.identity, seen_at.elapsed(), held_for) {
            return Ok(false);
        }
        if holder != self.cfg.identity {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.cfg.identity.clone());
        spec.lease_duration_seconds = Some(self.duration_secs());
        spec.renew_time = Some(MicroTime(now));
        // replace carries the resourceVersion: of two candidates racing, one gets a conflict.
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "acquired lease");
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(lease = %self.cfg.name, error = %e, "cannot acquire lease")
                }
            }
            tokio::time::sleep(self.cfg.retry_period).await;
        }
    }

    /// Renews the lease until a renewal has failed for the renew deadline; returns then.
    pub async fn hold(&mut self) {
        let mut last_renew = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renew = Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %self.cfg.name, "lease taken by another holder");
                    return;
                }
                Err(e) => tracing::warn!(lease = %self.cfg.name, error = %e, "cannot renew lease"),
            }
            if last_renew.elapsed() >= self.cfg.renew_deadline {
                tracing::warn!(lease = %self.cfg.name, "renew deadline passed; stepping down");
                return;
            }
        }
    }

    /// Gives the lease up (clears the holder) so another candidate can take it at once.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.cfg.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.cfg.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conflict(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Campaigns for the lease and runs `work` while holding it, until `shutdown`.
    ///
    /// On shutdown the term's `work` (handed the same signal) is awaited so it can finish
    /// gracefully; when the lease is lost it is dropped at once, since another holder may
    /// already act, and the candidate campaigns again (the component starts over with fresh
    /// caches). `leading` is told when a term starts and ends. The lease is released when
    /// `work` ends or shutdown comes.
    pub async fn lead<W, Fut, E>(
        &mut self,
        shutdown: &Shutdown,
        leading: impl Fn(bool),
        mut work: W,
    ) -> Result<(), E>
    where
        W: FnMut(Shutdown) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        loop {
            tokio::select! {
                _ = self.acquire() => {}
                _ = shutdown.signalled() => return Ok(()),
            }
            leading(true);
            let term = work(shutdown.clone());
            tokio::pin!(term);
            let ended = tokio::select! {
                r = &mut term => Some(r),
                _ = self.hold() => None,
                _ = shutdown.signalled() => Some((&mut term).await),
            };
            leading(false);
            let Some(result) = ended else {
                tracing::warn!(lease = %self.cfg.name, identity = %self.cfg.identity, "lost lease; stopping and campaigning again");
                continue;
            };
            if let Err(e) = self.release().await {
                tracing::warn!(lease = %self.cfg.name, error = %e, "cannot release lease");
            }
            return result;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_only_when_free_ours_or_expired() {
        let lease = Duration::from_secs(15);
        assert!(may_acquire("", "me", Duration::ZERO, lease));
        assert!(may_acquire("me", "me", Duration::from_secs(1), lease));
        assert!(!may_acquire("other", "me", Duration::from_secs(10), lease));
        assert!(may_acquire("other", "me", Duration::from_secs(20), lease));
    }
}
