//! Event expiry. kube-apiserver writes Events with a TTL (`--event-ttl`, one hour by default)
//! so they do not pile up; neither of skiff's stores puts leases on keys, so this reaper
//! deletes the Events whose last activity is older than the TTL.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use crate::handlers::ApiState;
use crate::storage::StoreError;
use crate::watchcache::object_revision;

/// The last time an Event was seen: the newest of its series, lastTimestamp, eventTime and
/// creation time.
pub fn last_seen(event: &Value) -> Option<Timestamp> {
    [
        "/series/lastObservedTime",
        "/lastTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .filter_map(|p| event.pointer(p)?.as_str()?.parse::<Timestamp>().ok())
    .max()
}

/// Deletes the expired Events once; returns how many went.
pub async fn reap(state: &ApiState, ttl: Duration, now: Timestamp) -> Result<usize, StoreError> {
    let events = skiff_api::resources::find("", "v1", "events").expect("events are served");
    let Some(cache) = state.caches.get(&events.key_prefix()) else {
        return Ok(0);
    };
    let (objects, _) = cache.snapshot().await;
    let mut gone = 0;
    for ev in objects {
        let expired = last_seen(&ev).is_some_and(|t| {
            now.duration_since(t)
                .try_into()
                .is_ok_and(|age: Duration| age > ttl)
        });
        if !expired {
            continue;
        }
        let meta = &ev["metadata"];
        let key = events.key(
            meta["namespace"].as_str(),
            meta["name"].as_str().unwrap_or_default(),
        );
        // Only the version judged expired: an Event updated meanwhile stays.
        match state.store.delete(&key, Some(object_revision(&ev))).await {
            Ok(_) => gone += 1,
            Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(gone)
}

/// Reaps expired Events every `ttl / 10` (at least every second, at most every minute).
pub async fn run(state: ApiState, ttl: Duration) {
    let every = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        match reap(&state, ttl, Timestamp::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "expired events deleted"),
            Err(e) => tracing::warn!(error = %e, "event expiry failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_seen_is_the_newest_time_an_event_carries() {
        let ev = json!({"metadata": {"creationTimestamp": "2024-01-01T00:00:00Z"},
            "lastTimestamp": "2024-01-01T00:10:00Z",
            "series": {"lastObservedTime": "2024-01-01T00:20:00.000000Z"}});
        assert_eq!(
            last_seen(&ev).unwrap(),
            "2024-01-01T00:20:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(last_seen(&json!({"metadata": {}})).is_none());
    }

    #[tokio::test]
    async fn expired_events_are_deleted_and_recent_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn crate::storage::Store> = std::sync::Arc::new(
            crate::storage::embedded::EmbeddedStore::open(&dir.path().join("db.sqlite")).unwrap(),
        );
        let state = ApiState::new(store.clone(), "127.0.0.1:1");
        let events = skiff_api::resources::find("", "v1", "events").unwrap();
        for (name, at) in [
            ("old", "2024-01-01T00:00:00Z"),
            ("new", "2024-01-01T00:59:00Z"),
        ] {
            let ev = json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": "default", "creationTimestamp": at}});
            store
                .create(
                    &events.key(Some("default"), name),
                    serde_json::to_vec(&ev).unwrap(),
                )
                .await
                .unwrap();
        }
        // The cache must have seen both before the reaper looks.
        // (A loaded machine can take well over a second to deliver the two events.)
        let cache = state.caches.get(&events.key_prefix()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while cache.snapshot().await.0.len() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the watch cache never saw both events"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let now: Timestamp = "2024-01-01T01:30:00Z".parse().unwrap();
        let n = reap(&state, Duration::from_secs(3600), now).await.unwrap();
        assert_eq!(n, 1);
        assert!(
            store
                .get(&events.key(Some("default"), "old"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .get(&events.key(Some("default"), "new"))
                .await
                .unwrap()
                .is_some()
        );
    }
}
