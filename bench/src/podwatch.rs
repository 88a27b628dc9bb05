//! A pod watch that records, per pod name, the first instant a condition held (bound to a
//! node, phase Running), and how often the watch had to start over (a dropped watch
//! re-lists, which the figures must not hide).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, watcher};

/// Whether a pod has been bound to a node.
pub fn is_bound(p: &Pod) -> bool {
    p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some()
}

/// Whether a pod is in phase Running.
pub fn is_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// A running watch; stops when dropped.
pub struct PodWatch {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    lists: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl PodWatch {
    /// Watches the pods of `api` and notes when each first satisfies `cond`.
    pub fn spawn(api: Api<Pod>, cond: fn(&Pod) -> bool) -> Self {
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let lists = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let (s, l, e) = (seen.clone(), lists.clone(), errors.clone());
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(ev) = stream.next().await {
                let now = Instant::now();
                match ev {
                    Ok(watcher::Event::Init) => {
                        l.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) if cond(&p) => {
                        let name = p.metadata.name.unwrap_or_default();
                        s.lock().unwrap().entry(name).or_insert(now);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        Self {
            seen,
            lists,
            errors,
            task,
        }
    }

    /// How many pods have satisfied the condition.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// When `name` first satisfied the condition.
    pub fn at(&self, name: &str) -> Option<Instant> {
        self.seen.lock().unwrap().get(name).copied()
    }

    /// Every pod's first instant.
    pub fn snapshot(&self) -> HashMap<String, Instant> {
        self.seen.lock().unwrap().clone()
    }

    /// (initial lists including re-lists after a dropped watch, stream errors).
    pub fn restarts(&self) -> (usize, usize) {
        (
            self.lists.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }

    /// Waits until `n` pods satisfied the condition, printing progress every tenth.
    pub async fn wait_count(&self, n: usize, timeout: Duration, what: &str) -> Result<()> {
        let start = Instant::now();
        let mut last_print = 0;
        loop {
            let c = self.count();
            if c >= n {
                return Ok(());
            }
            if c >= last_print + n.div_ceil(10) {
                eprintln!("  {c}/{n} {what} after {:.1?}", start.elapsed());
                last_print = c;
            }
            if start.elapsed() > timeout {
                bail!("only {c} of {n} pods {what} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PodWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
