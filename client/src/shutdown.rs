//! A shutdown signal any number of tasks can wait on, cloned freely.

use std::future::Future;

use tokio::sync::watch;

/// A shutdown signal every controller can wait on.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal fired by sending `true` on the returned sender (or dropping it).
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    /// A signal fired when `future` completes. Must be called inside a Tokio runtime.
    pub fn when(future: impl Future<Output = ()> + Send + 'static) -> Shutdown {
        let (tx, stop) = Shutdown::new();
        tokio::spawn(async move {
            future.await;
            let _ = tx.send(true);
        });
        stop
    }

    /// Resolves once shutdown is asked for.
    pub fn signalled(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|v| *v).await;
        }
    }

    /// Whether shutdown has been asked for.
    pub fn is_signalled(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn fires_when_the_sender_drops() {
        let (tx, stop) = Shutdown::new();
        assert!(!stop.is_signalled());
        drop(tx);
        tokio::time::timeout(Duration::from_secs(1), stop.signalled())
            .await
            .expect("a dropped sender ends the wait");
    }
}
