//! Tests of the embedded store: the conformance suite, restart persistence, `kill -9`
//! durability, the background compactor, slow watchers, and a rough throughput figure.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::conformance;
use super::embedded::{EmbeddedOptions, EmbeddedStore};
use super::{ListOptions, Store, StoreError};

fn store_in(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(&dir.join("state/store.db")).expect("open embedded store")
}

macro_rules! conformance_test {
    ($name:ident, $check:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = store_in(dir.path());
            $check(&store as &dyn Store, "/registry/test/").await;
        }
    };
}

conformance_test!(crud, conformance::check_crud);
conformance_test!(already_exists, conformance::check_already_exists);
conformance_test!(not_found, conformance::check_not_found);
conformance_test!(conflict, conformance::check_conflict);
conformance_test!(prefix_isolation, conformance::check_prefix_isolation);
conformance_test!(count, conformance::check_count);
conformance_test!(list_at_revision, conformance::check_list_at_revision);
conformance_test!(paging, conformance::check_paging);
conformance_test!(future_revision, conformance::check_future_revision);
conformance_test!(watch_replay_and_live, conformance::check_watch);
conformance_test!(watch_from_now, conformance::check_watch_from_now);
conformance_test!(compaction, conformance::check_compaction);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store_in(dir.path());
    conformance::check_concurrent_writers(&store, "/registry/test/", 16, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_whole_suite_on_one_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    conformance::run_all(&store_in(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_rereads_the_log_after_lagging() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        watch_buffer: 2,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(&dir.path().join("s.db"), options).expect("open");
    conformance::check_slow_watcher(&store, "/registry/slow/", 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compactor_bounds_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = EmbeddedOptions {
        retain_revisions: 10,
        retain_for: Duration::ZERO,
        compact_every: Duration::from_millis(20),
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open_with(&dir.path().join("s.db"), options).expect("open");
    let mut last = 0;
    for i in 0..40 {
        last = store
            .create(&format!("/registry/c/{i}"), b"x".to_vec())
            .await
            .expect("create");
    }
    let old = ListOptions {
        revision: Some(1),
        ..ListOptions::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.list("/registry/c/", old.clone()).await {
            Err(StoreError::Compacted { oldest, .. }) => {
                assert!(oldest <= last - 10, "keeps the last 10 revisions: {oldest}");
                break;
            }
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => panic!("history was not compacted: {other:?}"),
        }
    }
    let recent = ListOptions {
        revision: Some(last - 5),
        ..ListOptions::default()
    };
    let list = store
        .list("/registry/c/", recent)
        .await
        .expect("recent list");
    assert_eq!(list.items.len(), 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_keeps_data_history_and_revision() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = ("/registry/r/a", "/registry/r/b");
    let (r1, r3, current) = {
        let store = store_in(dir.path());
        let r1 = store.create(a, b"a1".to_vec()).await.expect("create");
        store.create(b, b"b1".to_vec()).await.expect("create");
        let r3 = store.update(a, b"a2".to_vec(), r1).await.expect("update");
        store.delete(b, None).await.expect("delete");
        (r1, r3, store.current_revision().await.expect("current"))
    };
    let store = store_in(dir.path());
    assert_eq!(store.current_revision().await.expect("current"), current);
    let got = store.get(a).await.expect("get").expect("a survives");
    assert_eq!(
        (got.value, got.create_revision, got.mod_revision),
        (b"a2".to_vec(), r1, r3)
    );
    assert_eq!(store.get(b).await.expect("get"), None);
    let old = store
        .list(
            "/registry/r/",
            ListOptions {
                revision: Some(r1 + 1),
                ..ListOptions::default()
            },
        )
        .await
        .expect("old list");
    assert_eq!(old.items.len(), 2, "history survives a restart");
    let mut watch = store.watch("/registry/r/", r1).await.expect("watch");
    assert_eq!(conformance::next_event(&mut watch).await.revision(), r1 + 1);
    let next = store.create(b, b"b2".to_vec()).await.expect("create");
    assert_eq!(next, current + 1, "the counter continues");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_from_config_gives_an_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = super::StoreConfig::Embedded {
        path: dir.path().join("nested/dir/store.db"),
    };
    let store = super::open(&config).await.expect("open");
    let rev = store
        .create("/registry/k", b"v".to_vec())
        .await
        .expect("create");
    assert_eq!(store.current_revision().await.expect("current"), rev);
    drop(store);
    let store = super::open(&config).await.expect("reopen");
    assert_eq!(
        store
            .get("/registry/k")
            .await
            .expect("get")
            .map(|kv| kv.value),
        Some(b"v".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_path_holds_the_database_inside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path()).expect("open in a directory");
    store
        .create("/registry/k", b"v".to_vec())
        .await
        .expect("create");
    assert!(dir.path().join("store.sqlite").is_file());
}

/// Env var telling the re-executed test binary to act as the writer that gets killed.
const KILL9_DB: &str = "SKIFF_TEST_KILL9_DB";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of embedded_writes_survive_kill_9"]
async fn kill9_writer_child() {
    let Ok(path) = std::env::var(KILL9_DB) else {
        return;
    };
    let store = EmbeddedStore::open(Path::new(&path)).expect("open");
    let store = &store;
    // Bounded: the parent kills it long before this ends.
    join_all((0..8).map(|t| async move {
        for i in 0..20_000 {
            let key = format!("/registry/kill9/{t}/{i}");
            store
                .create(&key, key.clone().into_bytes())
                .await
                .expect("create");
            let mut out = std::io::stdout().lock();
            writeln!(out, "ACK {key}").expect("stdout");
            out.flush().expect("flush");
        }
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kill9.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "storage::embedded_tests::kill9_writer_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL9_DB, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer child");
    let stdout = child.stdout.take().expect("child stdout");
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(key) = line.strip_prefix("ACK ") {
                let _ = lines_tx.send(key.to_string());
            }
        }
    });
    let mut acked = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 1000 {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(key) => {
                acked.insert(key);
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child acknowledged only {} writes: {e}", acked.len());
            }
        }
    }
    // SIGKILL mid-stream, then collect the acks already written to the pipe.
    child.kill().expect("kill -9 the child");
    child.wait().expect("reap the child");
    reader.join().expect("reader thread");
    acked.extend(lines.try_iter());

    let store = EmbeddedStore::open(&db).expect("reopen after kill -9");
    let stored: HashSet<String> = store
        .list("/registry/kill9/", ListOptions::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(stored.len() >= acked.len());
}

/// Sequential create latency and creates/s from `tasks` concurrent writers.
async fn throughput(store: &EmbeddedStore, tag: &str, tasks: u32, each: u32) -> (Duration, f64) {
    let sequential = 200;
    let started = Instant::now();
    for i in 0..sequential {
        store
            .create(&format!("/registry/{tag}/seq/{i}"), vec![b'x'; 512])
            .await
            .expect("create");
    }
    let per_write = started.elapsed() / sequential;
    let started = Instant::now();
    join_all((0..tasks).map(|t| async move {
        for i in 0..each {
            store
                .create(&format!("/registry/{tag}/conc/{t}/{i}"), vec![b'x'; 512])
                .await
                .expect("create");
        }
    }))
    .await;
    let rate = f64::from(tasks * each) / started.elapsed().as_secs_f64();
    (per_write, rate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput figure; run with --ignored --nocapture"]
async fn measure_create_throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grouped = store_in(dir.path());
    let (latency, rate) = throughput(&grouped, "grouped", 16, 200).await;
    println!(
        "embedded, group commit: sequential create {latency:?}; 16 tasks: {rate:.0} creates/s"
    );
    let single = EmbeddedStore::open_with(
        &dir.path().join("single.db"),
        EmbeddedOptions {
            max_batch: 1,
            ..EmbeddedOptions::default()
        },
    )
    .expect("open");
    let (latency, rate) = throughput(&single, "single", 16, 50).await;
    println!(
        "embedded, one write per commit: sequential create {latency:?}; 16 tasks: {rate:.0} creates/s"
    );
}
