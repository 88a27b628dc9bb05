//! The components of a node agent, started side by side over the node's shared pieces and
//! stopped together: the kubelet today, the service proxy next.

use std::future::Future;

use skiff_client::Shutdown;
use skiff_kubelet::Kubelet;
use tokio::task::JoinSet;

/// A long-running part of the node agent. The agent starts every component at once and
/// stops them all when it shuts down or when one of them ends.
#[async_trait::async_trait]
pub trait AgentComponent: Send {
    /// A short name for logs and errors (`kubelet`).
    fn name(&self) -> &'static str;
    /// Runs until `shutdown` completes (or the component fails).
    async fn run(self: Box<Self>, shutdown: Shutdown) -> anyhow::Result<()>;
}

#[async_trait::async_trait]
impl AgentComponent for Kubelet {
    fn name(&self) -> &'static str {
        "kubelet"
    }

    async fn run(self: Box<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
        Kubelet::run(*self, shutdown.signalled()).await
    }
}

#[async_trait::async_trait]
impl AgentComponent for skiff_proxy::ServiceProxy {
    fn name(&self) -> &'static str {
        "service-proxy"
    }

    async fn run(self: Box<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
        skiff_proxy::ServiceProxy::run(*self, shutdown.signalled()).await
    }
}

#[async_trait::async_trait]
impl AgentComponent for skiff_kubelet::local_path::LocalPathProvisioner {
    fn name(&self) -> &'static str {
        "local-path-provisioner"
    }

    async fn run(self: Box<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
        skiff_kubelet::local_path::LocalPathProvisioner::run(*self, shutdown).await
    }
}

/// Runs `components` side by side until `shutdown` or until one of them ends; then stops
/// the rest and waits for them. The first error (by completion) is the result.
pub async fn run_side_by_side(
    components: Vec<Box<dyn AgentComponent>>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (stop_tx, stop) = Shutdown::new();
    let mut running = JoinSet::new();
    for component in components {
        let name = component.name();
        let stopped = stop.clone();
        tracing::info!(component = name, "starting agent component");
        running.spawn(async move { (name, component.run(stopped).await) });
    }
    tokio::pin!(shutdown);
    let mut result = Ok(());
    tokio::select! {
        _ = &mut shutdown => {}
        Some(done) = running.join_next() => result = outcome(done),
    }
    let _ = stop_tx.send(true);
    while let Some(done) = running.join_next().await {
        let r = outcome(done);
        if result.is_ok() {
            result = r;
        }
    }
    result
}

fn outcome(
    done: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> anyhow::Result<()> {
    match done {
        Ok((_, Ok(()))) => Ok(()),
        Ok((name, Err(e))) => Err(e.context(name)),
        Err(e) => Err(anyhow::anyhow!("an agent component panicked: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Waits for shutdown (counting it) or fails at once.
    struct Probe {
        stopped: Arc<AtomicUsize>,
        fail: bool,
    }

    #[async_trait::async_trait]
    impl AgentComponent for Probe {
        fn name(&self) -> &'static str {
            if self.fail { "failing" } else { "waiting" }
        }
        async fn run(self: Box<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
            if self.fail {
                anyhow::bail!("broke");
            }
            shutdown.signalled().await;
            self.stopped.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn probe(stopped: &Arc<AtomicUsize>, fail: bool) -> Box<dyn AgentComponent> {
        Box::new(Probe {
            stopped: stopped.clone(),
            fail,
        })
    }

    #[tokio::test]
    async fn shutdown_stops_every_component() {
        let stopped = Arc::new(AtomicUsize::new(0));
        let all = vec![probe(&stopped, false), probe(&stopped, false)];
        run_side_by_side(all, async {}).await.unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failing_component_stops_the_others_and_is_the_result() {
        let stopped = Arc::new(AtomicUsize::new(0));
        let all = vec![probe(&stopped, false), probe(&stopped, true)];
        let err = run_side_by_side(all, std::future::pending())
            .await
            .unwrap_err();
        assert_eq!(format!("{err:#}"), "failing: broke");
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
    }
}
