//! Controller expectations: what a controller created or deleted and has not yet seen through
//! its watch, so a slow watch never makes it create or delete the same thing twice.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// After this long unseen, an expectation is dropped and the controller trusts its cache again
/// (as kube-controller-manager's ExpectationsTimeout).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
struct Pending {
    /// Names of objects created but not yet seen.
    adds: HashSet<String>,
    /// UIDs of objects deleted and still seen alive.
    dels: HashSet<String>,
    since: Option<Instant>,
}

/// Expectations of every owner, keyed by `namespace/name`.
#[derive(Debug, Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    /// Records that `names` were created for `owner`.
    pub fn expect_creations(&self, owner: &str, names: impl IntoIterator<Item = String>) {
        let mut m = self.inner.lock().expect("expectations lock");
        let p = m.entry(owner.to_string()).or_default();
        p.adds.extend(names);
        p.since = Some(Instant::now());
    }

    /// Records that objects with `uids` were deleted for `owner`.
    pub fn expect_deletions(&self, owner: &str, uids: impl IntoIterator<Item = String>) {
        let mut m = self.inner.lock().expect("expectations lock");
        let p = m.entry(owner.to_string()).or_default();
        p.dels.extend(uids);
        p.since = Some(Instant::now());
    }

    /// Whether the cache shows everything `owner` did: each created name `seen_name` and each
    /// deleted uid gone from `alive_uid`. Satisfied expectations are cleared.
    pub fn satisfied(
        &self,
        owner: &str,
        seen_name: impl Fn(&str) -> bool,
        alive_uid: impl Fn(&str) -> bool,
    ) -> bool {
        let mut m = self.inner.lock().expect("expectations lock");
        let Some(p) = m.get_mut(owner) else {
            return true;
        };
        p.adds.retain(|n| !seen_name(n));
        p.dels.retain(|u| alive_uid(u));
        let expired = p.since.is_some_and(|s| s.elapsed() > EXPECTATIONS_TIMEOUT);
        if (p.adds.is_empty() && p.dels.is_empty()) || expired {
            m.remove(owner);
            return true;
        }
        false
    }

    /// Forgets `owner` (it was deleted).
    pub fn forget(&self, owner: &str) {
        self.inner.lock().expect("expectations lock").remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_creations_and_deletions_to_be_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs", |_| false, |_| true));
        e.expect_creations("ns/rs", ["a".to_string(), "b".to_string()]);
        e.expect_deletions("ns/rs", ["uid-1".to_string()]);
        assert!(!e.satisfied("ns/rs", |n| n == "a", |_| true));
        assert!(
            !e.satisfied("ns/rs", |n| n == "b", |_| true),
            "uid-1 still alive"
        );
        assert!(e.satisfied("ns/rs", |_| false, |_| false));
        assert!(
            e.satisfied("ns/rs", |_| false, |_| true),
            "cleared once satisfied"
        );
    }
}
