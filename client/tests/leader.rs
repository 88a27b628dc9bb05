//! Two candidates for one Lease against a real API server: one leads at a time, and the
//! lease released on shutdown passes to the other at once rather than after it expires.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use skiff_apiserver::testkit::{TestApiServer, eventually};
use skiff_client::{LeaderElectionConfig, LeaseElector, Shutdown};

fn config(identity: &str) -> LeaderElectionConfig {
    LeaderElectionConfig {
        identity: identity.into(),
        // Long enough that a handover seen within it can only come from the release.
        lease_duration: Duration::from_secs(30),
        renew_deadline: Duration::from_secs(20),
        retry_period: Duration::from_millis(200),
        ..LeaderElectionConfig::new("client-test")
    }
}

/// Runs a candidate until `stop`; `leading` counts the candidates leading at the moment.
fn candidate(
    client: kube::Client,
    identity: &'static str,
    stop: Shutdown,
    leading: Arc<AtomicUsize>,
    terms: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Result<(), std::convert::Infallible>> {
    tokio::spawn(async move {
        let mut elector = LeaseElector::new(client, config(identity));
        let count = leading.clone();
        elector
            .lead(
                &stop,
                move |now| {
                    if now {
                        count.fetch_add(1, Ordering::SeqCst);
                    } else {
                        count.fetch_sub(1, Ordering::SeqCst);
                    }
                },
                |term| {
                    terms.fetch_add(1, Ordering::SeqCst);
                    async move {
                        term.signalled().await;
                        Ok(())
                    }
                },
            )
            .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leads_and_a_released_lease_passes_at_once() {
    let api = TestApiServer::start().await;
    let leading = Arc::new(AtomicUsize::new(0));
    let (a_terms, b_terms) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (stop_a_tx, stop_a) = Shutdown::new();
    let a = candidate(
        api.client.clone(),
        "a",
        stop_a,
        leading.clone(),
        a_terms.clone(),
    );
    eventually(Duration::from_secs(10), "a leads", || async {
        (a_terms.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let (stop_b_tx, stop_b) = Shutdown::new();
    let b = candidate(
        api.client.clone(),
        "b",
        stop_b,
        leading.clone(),
        b_terms.clone(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(leading.load(Ordering::SeqCst), 1, "only the holder leads");
    assert_eq!(b_terms.load(Ordering::SeqCst), 0, "b waits while a renews");

    let _ = stop_a_tx.send(true);
    a.await.unwrap().unwrap();
    eventually(
        Duration::from_secs(5),
        "b leads after a releases",
        || async { (b_terms.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
    assert_eq!(leading.load(Ordering::SeqCst), 1);
    let _ = stop_b_tx.send(true);
    b.await.unwrap().unwrap();
    assert_eq!(leading.load(Ordering::SeqCst), 0);
}
