//! The conformance suite every `Store` backend passes. Each `check_*` works under its own
//! key prefix, so checks may share one store; each panics (with the failing detail) on a
//! deviation. `run_all` runs them in an order that keeps the compaction check last.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;

use super::{KeyValue, ListOptions, Revision, Store, StoreError, WatchEvent, WatchStream};

/// How long a watch may take to deliver an expected event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs every check under a fresh prefix below `/registry/conformance-<random>/`.
pub async fn run_all(store: &dyn Store) {
    let base = format!("/registry/conformance-{}", uuid::Uuid::new_v4().simple());
    let p = |name: &str| format!("{base}/{name}/");
    check_crud(store, &p("crud")).await;
    check_already_exists(store, &p("exists")).await;
    check_not_found(store, &p("notfound")).await;
    check_conflict(store, &p("conflict")).await;
    check_prefix_isolation(store, &p("isolation")).await;
    check_count(store, &p("count")).await;
    check_list_at_revision(store, &p("listrev")).await;
    check_paging(store, &p("paging")).await;
    check_future_revision(store, &p("future")).await;
    check_watch(store, &p("watch")).await;
    check_watch_from_now(store, &p("watchnow")).await;
    check_slow_watcher(store, &p("slow"), 300).await;
    check_concurrent_writers(store, &p("concurrent"), 16, 50).await;
    check_compaction(store, &p("compaction")).await;
}

fn v(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// The next event of `stream`, panicking on an error, the end or a timeout.
pub async fn next_event(stream: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended early"),
        Err(_) => panic!("no watch event within {EVENT_TIMEOUT:?}"),
    }
}

/// Create, get, update, delete and re-create one key.
pub async fn check_crud(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}k");
    let r1 = store.create(&key, v("one")).await.expect("create");
    assert!(r1 > 0, "create revision {r1} must be positive");
    let got = store.get(&key).await.expect("get").expect("created key");
    assert_eq!(
        got,
        KeyValue {
            key: key.clone(),
            value: v("one"),
            create_revision: r1,
            mod_revision: r1
        }
    );
    assert!(store.current_revision().await.expect("current") >= r1);

    let r2 = store.update(&key, v("two"), r1).await.expect("update");
    assert!(r2 > r1, "update revision {r2} must follow {r1}");
    let got = store.get(&key).await.expect("get").expect("updated key");
    assert_eq!(
        (got.value, got.create_revision, got.mod_revision),
        (v("two"), r1, r2)
    );

    let (r3, prev) = store.delete(&key, Some(r2)).await.expect("delete");
    assert!(r3 > r2, "delete revision {r3} must follow {r2}");
    assert_eq!((prev.value, prev.mod_revision), (v("two"), r2));
    assert_eq!(store.get(&key).await.expect("get"), None);

    let r4 = store.create(&key, v("again")).await.expect("re-create");
    let got = store.get(&key).await.expect("get").expect("re-created key");
    assert_eq!((got.create_revision, got.mod_revision), (r4, r4));
    let (r5, prev) = store
        .delete(&key, None)
        .await
        .expect("unconditional delete");
    assert!(r5 > r4);
    assert_eq!(prev.value, v("again"));
}

/// A second create of one key fails with `AlreadyExists` and changes nothing.
pub async fn check_already_exists(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}k");
    let r1 = store.create(&key, v("first")).await.expect("create");
    match store.create(&key, v("second")).await {
        Err(StoreError::AlreadyExists { key: k }) => assert_eq!(k, key),
        other => panic!("second create answered {other:?}"),
    }
    let got = store.get(&key).await.expect("get").expect("key");
    assert_eq!((got.value, got.mod_revision), (v("first"), r1));
}

/// Updates and deletes of a missing key fail with `NotFound` and create nothing.
pub async fn check_not_found(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}missing");
    for expected in [0, 1, 12345] {
        match store.update(&key, v("x"), expected).await {
            Err(StoreError::NotFound { key: k }) => assert_eq!(k, key),
            other => panic!("update of a missing key (expected {expected}) answered {other:?}"),
        }
    }
    for expected in [None, Some(7)] {
        match store.delete(&key, expected).await {
            Err(StoreError::NotFound { key: k }) => assert_eq!(k, key),
            other => panic!("delete of a missing key answered {other:?}"),
        }
    }
    assert_eq!(store.get(&key).await.expect("get"), None);
}

/// Stale conditional writes fail with `Conflict` carrying what is stored.
pub async fn check_conflict(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}k");
    let r1 = store.create(&key, v("one")).await.expect("create");
    let r2 = store.update(&key, v("two"), r1).await.expect("update");
    match store.update(&key, v("stale"), r1).await {
        Err(StoreError::Conflict {
            key: k,
            expected,
            current,
        }) => {
            assert_eq!((k.as_str(), expected), (key.as_str(), r1));
            assert_eq!(
                (current.value.clone(), current.mod_revision),
                (v("two"), r2)
            );
            assert_eq!(current.create_revision, r1);
        }
        other => panic!("stale update answered {other:?}"),
    }
    match store.delete(&key, Some(r1)).await {
        Err(StoreError::Conflict { current, .. }) => assert_eq!(current.mod_revision, r2),
        other => panic!("stale delete answered {other:?}"),
    }
    let got = store.get(&key).await.expect("get").expect("key");
    assert_eq!((got.value, got.mod_revision), (v("two"), r2));
}

/// A list under `a/` sees neither `ab/` nor the key `a` itself, in key order.
pub async fn check_prefix_isolation(store: &dyn Store, prefix: &str) {
    for key in ["a/2", "a/1", "ab/1", "a", "b/1", "a/1/x"] {
        store
            .create(&format!("{prefix}{key}"), v(key))
            .await
            .expect("create");
    }
    let list = store
        .list(&format!("{prefix}a/"), ListOptions::default())
        .await
        .expect("list");
    let keys: Vec<_> = list.items.iter().map(|kv| kv.key.clone()).collect();
    let want: Vec<_> = ["a/1", "a/1/x", "a/2"]
        .iter()
        .map(|k| format!("{prefix}{k}"))
        .collect();
    assert_eq!(keys, want);
    assert!(!list.more);
    assert_eq!(list.items[0].value, v("a/1"));
    let all = store
        .list(prefix, ListOptions::default())
        .await
        .expect("list all");
    assert_eq!(all.items.len(), 6);
}

/// `count` counts live keys under a prefix only.
pub async fn check_count(store: &dyn Store, prefix: &str) {
    assert_eq!(store.count(prefix).await.expect("count"), 0);
    for i in 0..5 {
        store
            .create(&format!("{prefix}x/{i}"), v("x"))
            .await
            .expect("create");
    }
    store
        .create(&format!("{prefix}xy/0"), v("x"))
        .await
        .expect("create");
    let (_, _) = store
        .delete(&format!("{prefix}x/0"), None)
        .await
        .expect("delete");
    assert_eq!(store.count(&format!("{prefix}x/")).await.expect("count"), 4);
    assert_eq!(store.count(prefix).await.expect("count"), 5);
}

/// A list at an older revision shows the keys and values as they were.
pub async fn check_list_at_revision(store: &dyn Store, prefix: &str) {
    let (k1, k2, k3) = (
        format!("{prefix}1"),
        format!("{prefix}2"),
        format!("{prefix}3"),
    );
    let r1 = store.create(&k1, v("1a")).await.expect("create");
    let r2 = store.create(&k2, v("2a")).await.expect("create");
    let r3 = store.update(&k1, v("1b"), r1).await.expect("update");
    let (r4, _) = store.delete(&k2, Some(r2)).await.expect("delete");
    let r5 = store.create(&k3, v("3a")).await.expect("create");

    let at = |rev| ListOptions {
        revision: Some(rev),
        ..ListOptions::default()
    };
    let summary = |items: &[KeyValue]| {
        items
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone(), kv.mod_revision))
            .collect::<Vec<_>>()
    };
    let old = store.list(prefix, at(r2)).await.expect("list at r2");
    assert_eq!(old.revision, r2);
    assert_eq!(
        summary(&old.items),
        vec![(k1.clone(), v("1a"), r1), (k2.clone(), v("2a"), r2)]
    );
    let mid = store.list(prefix, at(r4)).await.expect("list at r4");
    assert_eq!(summary(&mid.items), vec![(k1.clone(), v("1b"), r3)]);
    assert_eq!(mid.items[0].create_revision, r1);
    let latest = store
        .list(prefix, ListOptions::default())
        .await
        .expect("list");
    assert!(latest.revision >= r5);
    assert_eq!(
        summary(&latest.items),
        vec![(k1, v("1b"), r3), (k3, v("3a"), r5)]
    );
}

/// Paging with `limit` and `start_after` at a fixed revision is consistent even while the
/// keys change, and `more` tells whether a page is the last. A limit of 0 means no limit.
pub async fn check_paging(store: &dyn Store, prefix: &str) {
    let mut revs = Vec::new();
    for i in 0..7 {
        revs.push(
            store
                .create(&format!("{prefix}{i}"), v(&format!("v{i}")))
                .await
                .expect("create"),
        );
    }
    let first = store
        .list(
            prefix,
            ListOptions {
                limit: Some(3),
                ..ListOptions::default()
            },
        )
        .await
        .expect("first page");
    assert_eq!(first.items.len(), 3);
    assert!(first.more, "a cut page says more");
    let at = first.revision;

    // Changes after the first page must not show in the later pages.
    store
        .create(&format!("{prefix}3a"), v("new"))
        .await
        .expect("create");
    store
        .update(&format!("{prefix}5"), v("changed"), revs[5])
        .await
        .expect("update");
    store
        .delete(&format!("{prefix}6"), None)
        .await
        .expect("delete");

    let mut seen = first.items.clone();
    let mut pages = 1;
    let mut more = first.more;
    while more {
        let page = store
            .list(
                prefix,
                ListOptions {
                    revision: Some(at),
                    limit: Some(3),
                    start_after: seen.last().map(|kv| kv.key.clone()),
                },
            )
            .await
            .expect("next page");
        assert_eq!(page.revision, at);
        assert!(!page.items.is_empty(), "a page after `more` is not empty");
        more = page.more;
        seen.extend(page.items);
        pages += 1;
        assert!(pages <= 3, "7 keys in pages of 3 take 3 pages");
    }
    assert_eq!(pages, 3);
    let got: Vec<_> = seen
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    let want: Vec<_> = (0..7)
        .map(|i| (format!("{prefix}{i}"), v(&format!("v{i}"))))
        .collect();
    assert_eq!(got, want);

    // A limit that exactly fits says no more; no limit never says more.
    let exact = store
        .list(
            prefix,
            ListOptions {
                limit: Some(7),
                ..ListOptions::default()
            },
        )
        .await
        .expect("list");
    assert_eq!((exact.items.len(), exact.more), (7, false));
    let all = store
        .list(prefix, ListOptions::default())
        .await
        .expect("list");
    assert_eq!((all.items.len(), all.more), (7, false));
    let zero = store
        .list(
            prefix,
            ListOptions {
                limit: Some(0),
                ..ListOptions::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(
        (zero.items.len(), zero.more),
        (7, false),
        "limit 0 means no limit"
    );
}

/// Reads beyond the current revision fail with `FutureRevision`.
pub async fn check_future_revision(store: &dyn Store, prefix: &str) {
    store
        .create(&format!("{prefix}k"), v("x"))
        .await
        .expect("create");
    let current = store.current_revision().await.expect("current");
    let future = current + 1000;
    match store
        .list(
            prefix,
            ListOptions {
                revision: Some(future),
                ..ListOptions::default()
            },
        )
        .await
    {
        Err(StoreError::FutureRevision { requested, .. }) => assert_eq!(requested, future),
        other => panic!("list at a future revision answered {other:?}"),
    }
    match store.compact(future).await {
        Err(StoreError::FutureRevision { .. }) => {}
        other => panic!("compaction to a future revision answered {other:?}"),
    }
}

/// A watch from a revision replays history and then follows live changes, with previous
/// values, in revision order, under its prefix only.
pub async fn check_watch(store: &dyn Store, prefix: &str) {
    let (a, b) = (format!("{prefix}w/a"), format!("{prefix}w/b"));
    let r1 = store.create(&a, v("a1")).await.expect("create");
    let r2 = store.update(&a, v("a2"), r1).await.expect("update");
    let r3 = store.create(&b, v("b1")).await.expect("create");
    store
        .create(&format!("{prefix}wx/other"), v("no"))
        .await
        .expect("create outside");
    let (r4, _) = store.delete(&a, Some(r2)).await.expect("delete");

    let mut stream = store
        .watch(&format!("{prefix}w/"), r1)
        .await
        .expect("watch");
    match next_event(&mut stream).await {
        WatchEvent::Put { kv, prev } => {
            assert_eq!(
                (kv.key.as_str(), kv.value.clone(), kv.mod_revision),
                (a.as_str(), v("a2"), r2)
            );
            assert_eq!(kv.create_revision, r1);
            let prev = prev.expect("update has prev");
            assert_eq!((prev.value, prev.mod_revision), (v("a1"), r1));
        }
        other => panic!("expected the update of a, got {other:?}"),
    }
    match next_event(&mut stream).await {
        WatchEvent::Put { kv, prev } => {
            assert_eq!((kv.key.as_str(), kv.mod_revision), (b.as_str(), r3));
            assert_eq!(prev, None, "a create has no prev");
        }
        other => panic!("expected the create of b, got {other:?}"),
    }
    match next_event(&mut stream).await {
        WatchEvent::Delete { prev, revision } => {
            assert_eq!(revision, r4);
            assert_eq!(
                (prev.key.as_str(), prev.value, prev.mod_revision),
                (a.as_str(), v("a2"), r2)
            );
        }
        other => panic!("expected the delete of a, got {other:?}"),
    }
    // Live: these happen after the replay was read.
    store
        .create(&format!("{prefix}wx/other2"), v("no"))
        .await
        .expect("create outside");
    let r5 = store.update(&b, v("b2"), r3).await.expect("update");
    let (r6, _) = store.delete(&b, None).await.expect("delete");
    let r7 = store.create(&a, v("a3")).await.expect("create");
    let got: Vec<_> = [
        next_event(&mut stream).await,
        next_event(&mut stream).await,
        next_event(&mut stream).await,
    ]
    .iter()
    .map(|e| (e.key().to_string(), e.revision()))
    .collect();
    assert_eq!(got, vec![(b.clone(), r5), (b, r6), (a, r7)]);
}

/// A watch from now (`after = 0`) sees only later changes.
pub async fn check_watch_from_now(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}k");
    let r1 = store.create(&key, v("before")).await.expect("create");
    let mut stream = store.watch(prefix, 0).await.expect("watch");
    let r2 = store.update(&key, v("after"), r1).await.expect("update");
    let event = next_event(&mut stream).await;
    assert_eq!(
        event.revision(),
        r2,
        "first event is the first later change"
    );
}

/// A watcher that does not read while `writes` changes happen still gets every one of them,
/// in order (or an error), never a gap.
pub async fn check_slow_watcher(store: &dyn Store, prefix: &str, writes: usize) {
    let start = store.current_revision().await.expect("current");
    let mut stream = store.watch(prefix, start).await.expect("watch");
    let tasks = 8;
    let written: Vec<Vec<Revision>> = join_all((0..tasks).map(|t| async move {
        let mut revs = Vec::new();
        for i in 0..writes.div_ceil(tasks) {
            let key = format!("{prefix}{t}/{i}");
            revs.push(store.create(&key, v("x")).await.expect("create"));
        }
        revs
    }))
    .await;
    let mut want: Vec<Revision> = written.into_iter().flatten().collect();
    want.sort_unstable();
    let mut got = Vec::with_capacity(want.len());
    while got.len() < want.len() {
        got.push(next_event(&mut stream).await.revision());
    }
    assert_eq!(got, want, "every change once, in revision order");
}

/// Many concurrent writers: every acknowledged write is stored, revisions are unique and
/// increase per writer, and a watch sees all of them in order.
pub async fn check_concurrent_writers(
    store: &dyn Store,
    prefix: &str,
    writers: usize,
    writes: usize,
) {
    let start = store.current_revision().await.expect("current");
    let mut stream = store.watch(prefix, start).await.expect("watch");
    let results: Vec<(String, Vec<Revision>)> = join_all((0..writers).map(|t| async move {
        let key = format!("{prefix}{t:03}");
        let mut revs = vec![store.create(&key, v("0")).await.expect("create")];
        for i in 1..writes {
            let last = *revs.last().expect("one revision");
            revs.push(
                store
                    .update(&key, v(&i.to_string()), last)
                    .await
                    .expect("update"),
            );
        }
        (key, revs)
    }))
    .await;

    let mut all = HashSet::new();
    for (key, revs) in &results {
        assert!(
            revs.windows(2).all(|w| w[0] < w[1]),
            "{key}: revisions increase"
        );
        for rev in revs {
            assert!(*rev > start);
            assert!(all.insert(*rev), "revision {rev} was given twice");
        }
    }
    let list = store
        .list(prefix, ListOptions::default())
        .await
        .expect("list");
    assert_eq!(list.items.len(), writers);
    for (kv, (key, revs)) in list.items.iter().zip(&results) {
        assert_eq!(&kv.key, key);
        assert_eq!(kv.mod_revision, *revs.last().expect("revisions"));
        assert_eq!(kv.value, v(&(writes - 1).to_string()));
        assert_eq!(kv.create_revision, revs[0]);
    }
    let mut want: Vec<_> = all.into_iter().collect();
    want.sort_unstable();
    let mut got = Vec::with_capacity(want.len());
    while got.len() < want.len() {
        got.push(next_event(&mut stream).await.revision());
    }
    assert_eq!(got, want, "the watch sees every write once, in order");
}

/// After compaction, reads and watches before the compaction point answer `Compacted`
/// (for a watch, as its first and last item); later ones still work.
pub async fn check_compaction(store: &dyn Store, prefix: &str) {
    let key = format!("{prefix}k");
    let r1 = store.create(&key, v("0")).await.expect("create");
    let mut last = r1;
    for i in 1..5 {
        last = store
            .update(&key, v(&i.to_string()), last)
            .await
            .expect("update");
    }
    let other = format!("{prefix}gone");
    let r_other = store.create(&other, v("x")).await.expect("create");
    let (r_del, _) = store.delete(&other, None).await.expect("delete");
    let point = store.current_revision().await.expect("current");
    assert!(point >= r_del);
    store.compact(point).await.expect("compact");
    // Compacting to the same point again is harmless.
    store.compact(point).await.expect("compact again");

    let at = |rev| ListOptions {
        revision: Some(rev),
        ..ListOptions::default()
    };
    match store.list(prefix, at(r1)).await {
        Err(StoreError::Compacted { requested, oldest }) => {
            assert_eq!(requested, r1);
            assert!(oldest > r1, "oldest {oldest} is after the request");
        }
        other => panic!("list before the compaction point answered {other:?}"),
    }

    let mut old = store.watch(prefix, r1).await.expect("watch");
    match tokio::time::timeout(EVENT_TIMEOUT, old.next()).await {
        Ok(Some(Err(StoreError::Compacted { requested, oldest }))) => {
            assert_eq!(requested, r1);
            assert!(oldest > r1);
        }
        other => panic!("watch before the compaction point gave {other:?}"),
    }
    match tokio::time::timeout(EVENT_TIMEOUT, old.next()).await {
        Ok(None) => {}
        other => panic!("a compacted watch must end after the error, gave {other:?}"),
    }

    let mut fresh = store.watch(prefix, point).await.expect("watch at point");
    let next = store.update(&key, v("5"), last).await.expect("update");
    match next_event(&mut fresh).await {
        WatchEvent::Put { kv, prev } => {
            assert_eq!(kv.mod_revision, next);
            assert_eq!(
                prev.map(|p| p.value),
                Some(v("4")),
                "prev survives compaction"
            );
        }
        other => panic!("expected the update, got {other:?}"),
    }
    let got = store.get(&key).await.expect("get").expect("key");
    assert_eq!((got.value, got.create_revision), (v("5"), r1));

    // The state at the compaction point is still readable from history.
    let kept = store.list(prefix, at(point)).await.expect("list at point");
    assert_eq!(
        kept.items.len(),
        1,
        "the deleted key stays deleted: {kept:?}"
    );
    assert_eq!(
        (kept.items[0].value.clone(), kept.items[0].mod_revision),
        (v("4"), last)
    );
    assert!(r_other < point);
}
