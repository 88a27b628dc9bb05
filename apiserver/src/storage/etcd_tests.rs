//! The conformance suite against a real etcd started on loopback for this test binary run.

use super::StoreConfig;
use super::conformance;
use super::etcd::EtcdStore;
use super::etcd_server::EtcdServer;

async fn start() -> (tempfile::TempDir, EtcdServer, EtcdStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = match EtcdServer::start(dir.path()).await {
        Ok(server) => server,
        Err(e) => panic!("cannot run the etcd tests: {e} (install etcd-server)"),
    };
    let store = EtcdStore::connect(&[server.endpoint().to_string()])
        .await
        .expect("connect to etcd");
    (dir, server, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_conformance() {
    let (_dir, _server, store) = start().await;
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connects_to_etcd_from_config() {
    let (_dir, server, _store) = start().await;
    let config = StoreConfig::Etcd {
        endpoints: vec![server.endpoint().to_string()],
    };
    let store = super::open(&config).await.expect("open etcd store");
    let rev = store
        .create("/registry/open/k", b"v".to_vec())
        .await
        .expect("create");
    assert_eq!(
        store
            .get("/registry/open/k")
            .await
            .expect("get")
            .map(|kv| kv.mod_revision),
        Some(rev)
    );
}

#[tokio::test]
async fn connect_to_nothing_is_a_backend_error() {
    // A port nobody listens on: bound and released at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    match EtcdStore::connect(&[format!("http://127.0.0.1:{port}")]).await {
        Err(super::StoreError::Backend(_)) => {}
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "reference figure for the embedded store; run with --ignored --nocapture"]
async fn measure_etcd_create_throughput() {
    use futures::future::join_all;
    use std::time::Instant;

    use super::Store;

    let (_dir, _server, store) = start().await;
    let sequential = 200;
    let started = Instant::now();
    for i in 0..sequential {
        store
            .create(&format!("/registry/seq/{i}"), vec![b'x'; 512])
            .await
            .expect("create");
    }
    let latency = started.elapsed() / sequential;
    let (tasks, each) = (16u32, 200u32);
    let store = &store;
    let started = Instant::now();
    join_all((0..tasks).map(|t| async move {
        for i in 0..each {
            store
                .create(&format!("/registry/conc/{t}/{i}"), vec![b'x'; 512])
                .await
                .expect("create");
        }
    }))
    .await;
    let rate = f64::from(tasks * each) / started.elapsed().as_secs_f64();
    println!("etcd: sequential create {latency:?}; {tasks} tasks: {rate:.0} creates/s");
}
