//! Starting a container: resolve its image per pull policy (with pull back-off), build its
//! runtime config, create and start it, and run its postStart hook.

use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use tokio::time::Instant;

use super::PodWorker;
use super::probe::probes_for;
use crate::events::EventType::{Normal, Warning};
use crate::images::ResolvedImage;
use crate::probes::ProbeKind;
use crate::status::{self};

impl PodWorker {
    /// Resolves the container's image per its pull policy; `None` leaves a waiting reason.
    pub(super) async fn ensure_image(&mut self, c: &Container) -> Option<ResolvedImage> {
        let image = c.image.clone().unwrap_or_default();
        let tag_latest = {
            let last = image.rsplit('/').next().unwrap_or_default();
            !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
        };
        let policy = c
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| if tag_latest { "Always" } else { "IfNotPresent" }.into());
        let present = self.sh.images.resolve(&image);
        let set_waiting = |w: &mut Self, reason: &str, msg: String| {
            if let Some(t) = w.tracks.get_mut(&c.name) {
                t.waiting = Some((reason.into(), msg));
            }
        };
        if policy == "Never" || (policy == "IfNotPresent" && present.is_some()) {
            return match present {
                Some(p) => {
                    self.event(
                        Some(&c.name),
                        Normal,
                        "Pulled",
                        format!("Container image \"{image}\" already present on machine"),
                    );
                    Some(p)
                }
                None => {
                    let msg = format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    );
                    self.event(Some(&c.name), Warning, "ErrImageNeverPull", msg.clone());
                    set_waiting(self, "ErrImageNeverPull", msg);
                    None
                }
            };
        }
        let now = Instant::now();
        let bo = self.image_backoff.entry(image.clone()).or_default();
        if bo.active(now) {
            let msg = format!("Back-off pulling image \"{image}\"");
            self.event(Some(&c.name), Normal, "BackOff", msg.clone());
            set_waiting(self, "ImagePullBackOff", msg);
            return None;
        }
        self.event(
            Some(&c.name),
            Normal,
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let t0 = std::time::Instant::now();
        match self.sh.images.pull(&image).await {
            Ok(img) => {
                self.image_backoff.remove(&image);
                self.event(
                    Some(&c.name),
                    Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {:.3}s",
                        t0.elapsed().as_secs_f64()
                    ),
                );
                Some(img)
            }
            // An offline node still runs a side-loaded image that policy Always would pull.
            Err(_) if present.is_some() => present,
            Err(e) => {
                let (base, max) = (self.sh.timers.backoff_base, self.sh.timers.backoff_max);
                if let Some(bo) = self.image_backoff.get_mut(&image) {
                    bo.advance(base, max, now);
                }
                self.event(Some(&c.name), Warning, "Failed", e.message.clone());
                // Kubernetes records the reason as its own event ("Error: ErrImagePull").
                self.event(
                    Some(&c.name),
                    Warning,
                    "Failed",
                    format!("Error: {}", e.reason),
                );
                set_waiting(self, e.reason, e.message);
                None
            }
        }
    }

    /// Creates and starts a (new instance of a) container; true when it started. The
    /// runtime overlays the image's layers into the container's root and removes it with
    /// the container.
    pub(super) async fn start(&mut self, c: &Container) -> bool {
        let t = self.tracks.entry(c.name.clone()).or_default();
        let restarting = t.current.is_some();
        let Some(image) = self.ensure_image(c).await else {
            return false;
        };
        let (cpu, mem) = self.sh.node_cpu_memory;
        let ctx = crate::podspec::BuildContext {
            client: &self.sh.client,
            pod: &self.pod,
            pod_ip: self.pod_ip(),
            host_ip: self.sh.host_ip.clone(),
            image: &image.config,
            layers: &image.layers,
            volumes: &self.volumes.paths,
            allow_privileged: self.sh.allow_privileged,
            node_cpu_memory: (cpu, mem),
        };
        let config = match crate::podspec::build(&ctx, c).await {
            Ok(cfg) => cfg,
            Err(e) => return self.fail_create(c, "CreateContainerConfigError", e.0),
        };
        let Some(sandbox) = self.sandbox.as_ref().map(|s| s.id.clone()) else {
            return false;
        };
        let id = match self.sh.runtime.create_container(&sandbox, config).await {
            Ok(id) => id,
            Err(e) => return self.fail_create(c, e.reason(), e.to_string()),
        };
        self.event(
            Some(&c.name),
            Normal,
            "Created",
            format!("Created container {}", c.name),
        );
        if let Err(e) = self.sh.runtime.start_container(&id).await {
            let _ = self.sh.runtime.remove_container(&id).await;
            return self.fail_create(c, "RunContainerError", e.to_string());
        }
        self.event(
            Some(&c.name),
            Normal,
            "Started",
            format!("Started container {}", c.name),
        );
        let status = self.sh.runtime.container_status(&id).await.ok();
        // Keep one dead instance (for `logs --previous`); older ones go.
        let t = self.tracks.entry(c.name.clone()).or_default();
        let older = if restarting {
            let prev = t.current.take();
            if let Some(p) = &prev {
                t.last_terminated = Some(status::terminated(p));
            }
            t.restart_count += 1;
            std::mem::replace(&mut t.previous, prev.map(|p| p.id))
        } else {
            None
        };
        t.current = status;
        t.image = Some(image);
        t.waiting = None;
        t.ready = false;
        t.probes = probes_for(c, Instant::now(), false);
        t.started = t.probes.iter().all(|(k, _)| *k != ProbeKind::Startup);
        if let Some(old) = older {
            let _ = self.sh.runtime.remove_container(&old).await;
        }
        self.post_start(c, &id).await;
        true
    }

    pub(super) fn fail_create(&mut self, c: &Container, reason: &str, message: String) -> bool {
        self.event(
            Some(&c.name),
            Warning,
            "Failed",
            format!("Error: {message}"),
        );
        if let Some(t) = self.tracks.get_mut(&c.name) {
            t.waiting = Some((reason.into(), message));
        }
        false
    }

    pub(super) async fn post_start(&mut self, c: &Container, id: &str) {
        let Some(cmd) = c
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
            .and_then(|h| h.exec.as_ref())
            .and_then(|e| e.command.clone())
        else {
            return;
        };
        let out = self
            .sh
            .runtime
            .exec_sync(id, cmd, Duration::from_secs(30))
            .await;
        let failed = match out {
            Ok(o) if o.exit_code == 0 => None,
            Ok(o) => Some(format!("command exited with {}", o.exit_code)),
            Err(e) => Some(e.to_string()),
        };
        if let Some(msg) = failed {
            self.event(
                Some(&c.name),
                Warning,
                "FailedPostStartHook",
                format!("PostStartHook failed: {msg}"),
            );
            let _ = self
                .sh
                .runtime
                .stop_container(id, Duration::from_secs(2))
                .await;
        }
    }
}
