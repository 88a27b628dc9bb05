//! The Endpoints controller (`endpoint`): the legacy core/v1 Endpoints of every Service with
//! a selector — one address per selected pod (ready ones in `addresses`, the others in
//! `notReadyAddresses`), subsets repacked by port set as `RepackSubsets` does, the
//! `last-change-trigger-time` annotation, and at most 1000 addresses (the rest truncated,
//! marked `endpoints.kubernetes.io/over-capacity: truncated`). The Endpoints of a deleted
//! Service are deleted, and leftovers found at start. Pod rules are shared with the
//! EndpointSlice controller (`endpointslice::rules`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use skiff_client::controller::drive;
use skiff_client::{ReadyGate, watched_store};

use crate::Shutdown;
use crate::endpointslice::rules::{self, HEADLESS_LABEL, LAST_CHANGE_TRIGGER_TIME};
use crate::endpointslice::trigger_time::{self, TriggerTimeTracker};
use crate::endpointslice::{selected_pods, services_for_pod};
use crate::error::{Error, Result, not_found};
use crate::metrics::timed;
use crate::replicaset::key_of;

/// Most addresses one Endpoints object carries (`maxCapacity`).
pub const MAX_CAPACITY: usize = 1000;
/// `endpoints.kubernetes.io/over-capacity`.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Endpoints holding a leader-election record, which no Service owns.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// What the Endpoints reconciler shares between calls.
pub struct EndpointsContext {
    client: Client,
    pods: Store<Pod>,
    pods_ready: ReadyGate,
    triggers: TriggerTimeTracker,
}

/// `podToEndpointAddressForService`: the pod's address of the Service's first family.
fn pod_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let family = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .map(|f| {
            if f == "IPv6" {
                rules::Family::V6
            } else {
                rules::Family::V4
            }
        })
        .unwrap_or_else(|| {
            let ip = svc
                .spec
                .as_ref()
                .and_then(|s| s.cluster_ip.clone())
                .filter(|ip| !ip.is_empty() && ip != "None")
                .or_else(|| pod.status.as_ref().and_then(|s| s.pod_ip.clone()))
                .unwrap_or_default();
            if ip.contains(':') {
                rules::Family::V6
            } else {
                rules::Family::V4
            }
        });
    let ip = rules::pod_addresses(pod, family).into_iter().next()?;
    Some(EndpointAddress {
        ip,
        hostname: rules::hostname_for(pod, svc),
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(rules::target_ref(pod)),
    })
}

/// One address with its port, before repacking.
struct Entry {
    address: EndpointAddress,
    ready: bool,
    port: Option<EndpointPort>,
}

/// The subsets the Service's pods make, repacked.
pub fn desired_subsets(svc: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let publish = rules::publish_not_ready(svc);
    let spec = svc.spec.clone().unwrap_or_default();
    let no_ports = spec.ports.as_deref().unwrap_or_default().is_empty();
    let mut entries = Vec::new();
    for pod in pods {
        if !rules::should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(address) = pod_address(svc, pod) else {
            continue;
        };
        let ready = publish || rules::is_pod_ready(pod);
        if no_ports {
            if rules::is_headless(svc) {
                entries.push(Entry {
                    address,
                    ready,
                    port: None,
                });
            }
            continue;
        }
        for p in rules::resolve_ports(svc, pod) {
            entries.push(Entry {
                address: address.clone(),
                ready,
                port: Some(EndpointPort {
                    name: Some(p.name).filter(|n| !n.is_empty()),
                    port: p.port,
                    protocol: Some(p.protocol),
                    app_protocol: p.app_protocol,
                }),
            });
        }
    }
    repack(entries)
}

type PortKey = Option<(String, i32, String, Option<String>)>;
type AddrKey = (String, String);

fn port_key(p: &Option<EndpointPort>) -> PortKey {
    p.as_ref().map(|p| {
        (
            p.name.clone().unwrap_or_default(),
            p.port,
            p.protocol.clone().unwrap_or_default(),
            p.app_protocol.clone(),
        )
    })
}

fn addr_key(a: &EndpointAddress) -> AddrKey {
    let uid = a
        .target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .unwrap_or_default();
    (a.ip.clone(), uid)
}

/// `RepackSubsets`: addresses that share the same set of ports (with the same readiness)
/// go into one subset; ready wins over not ready for the same address and port. Sorted.
fn repack(entries: Vec<Entry>) -> Vec<EndpointSubset> {
    let mut addrs: BTreeMap<AddrKey, EndpointAddress> = BTreeMap::new();
    let mut ports: BTreeMap<PortKey, (Option<EndpointPort>, BTreeMap<AddrKey, bool>)> =
        BTreeMap::new();
    for e in entries {
        let ak = addr_key(&e.address);
        addrs.entry(ak.clone()).or_insert(e.address);
        let slot = ports
            .entry(port_key(&e.port))
            .or_insert_with(|| (e.port.clone(), BTreeMap::new()));
        let ready = slot.1.entry(ak).or_insert(e.ready);
        *ready |= e.ready;
    }
    // Group ports by the exact (address, readiness) set they map to.
    let mut groups: BTreeMap<Vec<(AddrKey, bool)>, Vec<EndpointPort>> = BTreeMap::new();
    for (_, (port, set)) in ports {
        let key: Vec<(AddrKey, bool)> = set.into_iter().collect();
        let group = groups.entry(key).or_default();
        group.extend(port);
    }
    groups
        .into_iter()
        .map(|(set, mut ports)| {
            ports.sort_by_key(|p| port_key(&Some(p.clone())));
            let (ready, not_ready): (Vec<_>, Vec<_>) = set.into_iter().partition(|(_, r)| *r);
            let pick = |v: Vec<(AddrKey, bool)>| {
                let out: Vec<EndpointAddress> =
                    v.into_iter().map(|(k, _)| addrs[&k].clone()).collect();
                (!out.is_empty()).then_some(out)
            };
            EndpointSubset {
                addresses: pick(ready),
                not_ready_addresses: pick(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// `truncateEndpoints`: keeps at most 1000 addresses, ready ones first, each subset its
/// proportional share (rounded up). Whether anything was cut.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let (ready, not_ready) = count(subsets);
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, ready)
    } else {
        (MAX_CAPACITY - ready, not_ready)
    };
    let mut can_add = max;
    for s in subsets.iter_mut() {
        let list = if truncate_ready {
            &mut s.addresses
        } else {
            &mut s.not_ready_addresses
        };
        let n = list.as_ref().map_or(0, Vec::len);
        let share = ((n as f64 / total as f64) * max as f64).ceil() as usize;
        let keep = share.min(can_add);
        if let Some(l) = list.as_mut() {
            l.truncate(keep);
            can_add -= l.len();
        }
        if truncate_ready {
            s.not_ready_addresses = None;
        }
    }
    true
}

/// The labels Endpoints carry: the Service's, plus the headless marker without a cluster IP.
fn endpoints_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if rules::is_service_ip_set(svc) {
        labels.remove(HEADLESS_LABEL);
    } else {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels
}

/// Brings one Service's Endpoints up to date.
async fn reconcile(svc: Arc<Service>, ctx: Arc<EndpointsContext>) -> Result<Action> {
    if ctx.pods_ready.wait().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if !rules::selects_pods(&svc) {
        return Ok(Action::await_change());
    }
    let key = key_of(svc.as_ref());
    let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
    let api = Api::<Endpoints>::namespaced(ctx.client.clone(), &ns);
    let matched = selected_pods(&svc, &ctx.pods);
    let pods: Vec<&Pod> = matched.iter().map(Arc::as_ref).collect();
    let trigger = ctx.triggers.compute(&svc, &pods);
    let mut subsets = desired_subsets(&svc, &pods);
    let current = api.get_opt(&name).await.map_err(Error::api(key.clone()))?;
    if let Some(cur) = &current {
        let mut cur_labels = cur.labels().clone();
        cur_labels.remove(HEADLESS_LABEL);
        let mut svc_labels = svc.labels().clone();
        svc_labels.remove(HEADLESS_LABEL);
        // The stored subsets are truncated already, so compare with what would be stored.
        let mut want = subsets.clone();
        let truncated = truncate(&mut want);
        let marked = cur.annotations().contains_key(OVER_CAPACITY);
        if cur.subsets.clone().unwrap_or_default() == want
            && cur_labels == svc_labels
            && truncated == marked
        {
            return Ok(Action::await_change());
        }
    }
    let mut annotations = current
        .as_ref()
        .map(|c| c.annotations().clone())
        .unwrap_or_default();
    match trigger {
        Some(t) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), trigger_time::format(t));
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
    if truncate(&mut subsets) {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    } else {
        annotations.remove(OVER_CAPACITY);
    }
    let next = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(endpoints_labels(&svc)),
            annotations: Some(annotations),
            ..current
                .as_ref()
                .map(|c| c.metadata.clone())
                .unwrap_or_default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    };
    match current {
        Some(_) => api.replace(&name, &PostParams::default(), &next).await,
        None => api.create(&PostParams::default(), &next).await,
    }
    .map_err(Error::api(key.clone()))?;
    tracing::debug!(service = %key, "endpoints updated");
    Ok(Action::await_change())
}

fn error_policy(svc: Arc<Service>, err: &Error, _ctx: Arc<EndpointsContext>) -> Action {
    tracing::warn!(service = %key_of(svc.as_ref()), error = %err, "endpoints sync failed");
    Action::requeue(Duration::from_millis(500))
}

/// Deletes the Endpoints of `ns/name` unless they hold a leader-election record.
async fn delete_endpoints(client: &Client, ns: &str, name: &str) {
    let api = Api::<Endpoints>::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(ep)) if !ep.annotations().contains_key(LEADER_ANNOTATION) => {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::debug!(endpoints = %format!("{ns}/{name}"), "endpoints of a deleted service removed")
                }
                Err(e) if not_found(&e) => {}
                Err(e) => {
                    tracing::warn!(endpoints = %format!("{ns}/{name}"), error = %e, "deleting endpoints failed")
                }
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(endpoints = %format!("{ns}/{name}"), error = %e, "reading endpoints failed")
        }
    }
}

/// Removes Endpoints whose Service is gone: every leftover once the Services are listed,
/// then each Service's as it is deleted.
async fn clean_up(client: Client, shutdown: Shutdown) {
    let mut events = std::pin::pin!(watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default()
    ));
    let mut listed: BTreeSet<(String, String)> = BTreeSet::new();
    loop {
        let ev = tokio::select! {
            _ = shutdown.signalled() => return,
            ev = events.next() => ev,
        };
        match ev {
            None => return,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "service watch for endpoints clean-up failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Some(Ok(watcher::Event::Init)) => listed.clear(),
            Some(Ok(watcher::Event::InitApply(s))) => {
                listed.insert((s.namespace().unwrap_or_default(), s.name_any()));
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let all = Api::<Endpoints>::all(client.clone());
                if let Ok(list) = all.list(&Default::default()).await {
                    for ep in list.items {
                        let k = (ep.namespace().unwrap_or_default(), ep.name_any());
                        if !listed.contains(&k) {
                            delete_endpoints(&client, &k.0, &k.1).await;
                        }
                    }
                }
            }
            Some(Ok(watcher::Event::Apply(_))) => {}
            Some(Ok(watcher::Event::Delete(s))) => {
                delete_endpoints(&client, &s.namespace().unwrap_or_default(), &s.name_any()).await;
            }
        }
    }
}

/// Runs the Endpoints controller until `shutdown`.
pub async fn run(client: Client, shutdown: Shutdown) -> anyhow::Result<()> {
    let (pods, pods_ready, pod_events) = watched_store::<Pod>(&client);
    let controller = Controller::new(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    );
    let services = controller.store();
    let ctx = Arc::new(EndpointsContext {
        client: client.clone(),
        pods,
        pods_ready,
        triggers: TriggerTimeTracker::default(),
    });
    let controller = controller
        .watches(
            Api::<Endpoints>::all(client.clone()),
            watcher::Config::default(),
            |ep: Endpoints| {
                Some(
                    kube::runtime::reflector::ObjectRef::<Service>::new(&ep.name_any())
                        .within(&ep.namespace().unwrap_or_default()),
                )
            },
        )
        .watches_stream(pod_events, move |pod: Pod| {
            services_for_pod(&pod, &services)
        });
    let cleaner = tokio::spawn(clean_up(client, shutdown.clone()));
    let timed_reconcile = |obj, ctx| timed("endpoint", reconcile(obj, ctx));
    drive(controller, &shutdown, timed_reconcile, error_policy, ctx).await;
    cleaner.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(i: usize, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("p{i}"), "namespace": "d", "uid": format!("u{i}"), "labels": {"app": "a"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                "ports": [{"name": "http", "containerPort": if i % 2 == 0 { 8080 } else { 9090 }}]}]},
            "status": {"phase": "Running", "podIP": format!("10.1.{}.{}", i / 200, i % 200 + 1),
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn svc(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "d"}, "spec": spec}))
            .unwrap()
    }

    #[test]
    fn subsets_group_addresses_by_port_and_readiness() {
        let s = svc(json!({"selector": {"app": "a"}, "ipFamilies": ["IPv4"],
            "ports": [{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}]}));
        let pods = [pod(0, true), pod(1, true), pod(2, false), pod(4, true)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let subsets = desired_subsets(&s, &refs);
        assert_eq!(subsets.len(), 2, "{subsets:?}");
        let by_port: BTreeMap<i32, &EndpointSubset> = subsets
            .iter()
            .map(|ss| (ss.ports.as_ref().unwrap()[0].port, ss))
            .collect();
        let ips = |v: &Option<Vec<EndpointAddress>>| -> Vec<String> {
            v.iter().flatten().map(|a| a.ip.clone()).collect()
        };
        assert_eq!(ips(&by_port[&8080].addresses), ["10.1.0.1", "10.1.0.5"]);
        assert_eq!(ips(&by_port[&8080].not_ready_addresses), ["10.1.0.3"]);
        assert_eq!(ips(&by_port[&9090].addresses), ["10.1.0.2"]);
        assert_eq!(
            by_port[&8080].ports.as_ref().unwrap()[0].name.as_deref(),
            Some("web")
        );
    }

    #[test]
    fn more_than_a_thousand_addresses_are_truncated() {
        let s = svc(
            json!({"selector": {"app": "a"}, "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}),
        );
        let pods: Vec<Pod> = (0..1100).map(|i| pod(i, i < 1050)).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let mut subsets = desired_subsets(&s, &refs);
        assert!(truncate(&mut subsets));
        assert_eq!(count(&subsets), (1000, 0));
        let small: Vec<&Pod> = refs[..10].to_vec();
        let mut subsets = desired_subsets(&s, &small);
        assert!(!truncate(&mut subsets));
    }
}
