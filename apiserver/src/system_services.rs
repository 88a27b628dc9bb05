//! The Services every cluster has: `kubernetes` in `default` (the API at the first address
//! of the service range, port `https` 443) with an Endpoints object and an EndpointSlice
//! listing every live API server, and `kube-dns` in `kube-system` at the tenth address.
//!
//! Each server keeps a Lease in `kube-system` naming its advertise address, renewed every
//! few seconds, as kube-apiserver's `--endpoint-reconciler-type=lease` keeps its master
//! leases; the reconciler writes the addresses of the servers whose lease is live. Both
//! Services are re-created when deleted, as kube-apiserver's bootstrap controller does.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::alloc::{Owner, Slot};
use crate::error::ApiError;
use crate::handlers::object::{ObjectRef, read};
use crate::handlers::update::{UpdateScope, update};
use crate::handlers::{ApiState, create};

/// How often a server renews its Lease and reconciles the built-in objects.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a Lease stays live without renewal.
pub const LEASE_SECONDS: i64 = 15;
/// Label of the API server endpoint Leases.
pub const ENDPOINT_LEASE_LABEL: &str = "skiff.io/apiserver-endpoint";
/// Annotation carrying the advertised address of a server's Lease.
pub const ADDRESS_ANNOTATION: &str = "skiff.io/advertise-address";
/// Annotation carrying the secure port of a server's Lease.
pub const PORT_ANNOTATION: &str = "skiff.io/secure-port";

/// Who this server is, for the `kubernetes` Service's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiEndpoint {
    /// `--advertise-address`.
    pub address: IpAddr,
    /// The secure port.
    pub port: u16,
}

impl ApiEndpoint {
    /// The name of this server's Lease.
    pub fn lease_name(&self) -> String {
        let hex: String = match self.address {
            IpAddr::V4(a) => a.octets().iter().map(|b| format!("{b:02x}")).collect(),
            IpAddr::V6(a) => a.octets().iter().map(|b| format!("{b:02x}")).collect(),
        };
        format!("apiserver-{hex}-{}", self.port)
    }
}

fn kubernetes_service(state: &ApiState, port: u16) -> Value {
    let ip = state.services.network().api_service_ip().to_string();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
            "sessionAffinity": "None",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    })
}

fn dns_service(state: &ApiState) -> Value {
    let ip = state.services.network().dns_service_ip().to_string();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                "kubernetes.io/cluster-service": "true"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
            "selector": {"k8s-app": "kube-dns"},
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153},
            ]},
    })
}

/// Claims the built-in Services' fixed addresses, so that no other Service can take them
/// first. Called before the server serves.
pub async fn reserve(state: &ApiState) -> Result<(), ApiError> {
    let net = state.services.network();
    let ledger = state.services.ledger();
    for (ip, owner) in [
        (net.api_service_ip(), Owner::new("default", "kubernetes")),
        (net.dns_service_ip(), Owner::new("kube-system", "kube-dns")),
    ] {
        match ledger.claim(Slot::Ip(ip), &owner, false).await {
            Ok(_) => {}
            Err(crate::alloc::ledger::ClaimError::Taken { holder, .. }) => {
                // Left as it is: the repair loop reports the Service holding it.
                tracing::warn!(%ip, service = %owner, holder = ?holder, "the address of a built-in service is held by another");
            }
            Err(crate::alloc::ledger::ClaimError::Store(e)) => return Err(ApiError::internal(e)),
        }
    }
    Ok(())
}

async fn create_if_absent(state: &ApiState, ns: &str, obj: Value) -> Result<(), ApiError> {
    let svc = state
        .kinds
        .find("", "v1", "services")
        .expect("services are served");
    match create::create(state, svc, obj, Some(ns), false).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the built-in Services that do not exist.
pub async fn ensure_services(state: &ApiState, me: ApiEndpoint) -> Result<(), ApiError> {
    create_if_absent(state, "default", kubernetes_service(state, me.port)).await?;
    create_if_absent(state, "kube-system", dns_service(state)).await
}

/// Writes `obj` as the object `name` of `kind` in `ns` unless it already says that.
async fn put(
    state: &ApiState,
    group: &str,
    version: &str,
    plural: &str,
    ns: &str,
    name: &str,
    obj: Value,
    differs: impl Fn(&Value) -> bool,
) -> Result<(), ApiError> {
    let kind = state
        .kinds
        .find(group, version, plural)
        .expect("built-in kinds are served");
    let at = ObjectRef::new(&state.kinds, kind, Some(ns), name);
    match read(state, &at).await {
        Err(e) if e.code == 404 => match create::create(state, kind, obj, Some(ns), false).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
        Ok((current, rev)) if differs(&current) => {
            let mut obj = obj;
            obj["metadata"]["resourceVersion"] = json!(rev.to_string());
            match update(
                state,
                &at,
                obj,
                UpdateScope::Main,
                false,
                Some((current, rev)),
                None,
            )
            .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code == 409 => Ok(()),
                Err(e) => Err(e),
            }
        }
        Ok(_) => Ok(()),
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Renews this server's Lease.
pub async fn renew_lease(state: &ApiState, me: ApiEndpoint) -> Result<(), ApiError> {
    let name = me.lease_name();
    let renew = now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-system",
            "labels": {ENDPOINT_LEASE_LABEL: "kube-apiserver"},
            "annotations": {ADDRESS_ANNOTATION: me.address.to_string(), PORT_ANNOTATION: me.port.to_string()}},
        "spec": {"holderIdentity": me.address.to_string(), "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": renew},
    });
    put(
        state,
        "coordination.k8s.io",
        "v1",
        "leases",
        "kube-system",
        &name,
        lease,
        |_| true,
    )
    .await
}

/// The API servers whose Leases are live, sorted.
pub async fn live_servers(state: &ApiState) -> Result<Vec<ApiEndpoint>, ApiError> {
    let kind = state
        .kinds
        .find("coordination.k8s.io", "v1", "leases")
        .expect("leases are served");
    let list = state
        .store
        .list(
            &kind.info.namespace_prefix("kube-system"),
            Default::default(),
        )
        .await
        .map_err(ApiError::internal)?;
    let now = now();
    let mut out = Vec::new();
    for kv in list.items {
        let Ok(v) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if v.pointer(&format!(
            "/metadata/labels/{}",
            ENDPOINT_LEASE_LABEL.replace('/', "~1")
        ))
        .is_none()
        {
            continue;
        }
        let ann = |k: &str| {
            v.pointer(&format!("/metadata/annotations/{}", k.replace('/', "~1")))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let (Some(Ok(address)), Some(Ok(port))) = (
            ann(ADDRESS_ANNOTATION).map(|a| a.parse::<IpAddr>()),
            ann(PORT_ANNOTATION).map(|p| p.parse::<u16>()),
        ) else {
            continue;
        };
        let renewed = v
            .pointer("/spec/renewTime")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        let secs = v
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(LEASE_SECONDS);
        if renewed.is_some_and(|t| t + jiff::SignedDuration::from_secs(secs) > now) {
            out.push(ApiEndpoint { address, port });
        }
    }
    out.sort_by_key(|e| (e.address, e.port));
    out.dedup();
    Ok(out)
}

/// Writes the `kubernetes` Endpoints and EndpointSlice from the live servers, as
/// kube-apiserver's endpoint reconciler does (one port, `https`; the slice labelled with
/// the service name only, so the endpoint slice controller leaves it alone).
pub async fn reconcile_endpoints(
    state: &ApiState,
    servers: &[ApiEndpoint],
) -> Result<(), ApiError> {
    // Every server of one cluster serves on one port; the first one's is used.
    let Some(port) = servers.first().map(|s| s.port) else {
        return Ok(());
    };
    // A server on a loopback address is out of reach of every pod, and Kubernetes refuses
    // loopback endpoints: it is left out (the Service then has no endpoints at all).
    let addrs: Vec<String> = servers
        .iter()
        .filter(|s| !s.address.is_loopback())
        .map(|s| s.address.to_string())
        .collect();
    let subsets = if addrs.is_empty() {
        json!([])
    } else {
        json!([{
            "addresses": addrs.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }])
    };
    let empty = json!([]);
    let ep = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": subsets,
    });
    let want = subsets.clone();
    put(
        state,
        "",
        "v1",
        "endpoints",
        "default",
        "kubernetes",
        ep,
        move |cur| {
            cur.get("subsets")
                .filter(|v| !v.is_null())
                .unwrap_or(&empty)
                != &want
        },
    )
    .await?;
    let v6 = servers.iter().all(|s| s.address.is_ipv6());
    let endpoints: Vec<Value> = addrs
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    let ports = json!([{"name": "https", "port": port, "protocol": "TCP"}]);
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if v6 { "IPv6" } else { "IPv4" },
        "endpoints": endpoints,
        "ports": ports,
    });
    let (we, wp) = (slice["endpoints"].clone(), slice["ports"].clone());
    put(
        state,
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "default",
        "kubernetes",
        slice,
        move |cur| {
            let none = json!([]);
            cur.get("endpoints")
                .filter(|v| !v.is_null())
                .unwrap_or(&none)
                != &we
                || cur.get("ports") != Some(&wp)
        },
    )
    .await
}

/// One round: this server's Lease, the built-in Services, the `kubernetes` endpoints.
pub async fn reconcile_once(state: &ApiState, me: ApiEndpoint) -> Result<(), ApiError> {
    renew_lease(state, me).await?;
    ensure_services(state, me).await?;
    let servers = live_servers(state).await?;
    reconcile_endpoints(state, &servers).await
}

/// Reconciles every [`RECONCILE_INTERVAL`] until dropped.
pub async fn run(state: ApiState, me: ApiEndpoint) {
    loop {
        if let Err(e) = reconcile_once(&state, me).await {
            tracing::warn!(error = %e, "reconciling the built-in services failed");
        }
        tokio::time::sleep(RECONCILE_INTERVAL).await;
    }
}

/// Removes this server's Lease (a clean shutdown takes it out of the endpoints at once).
pub async fn drop_lease(state: &ApiState, me: ApiEndpoint) {
    let kind = state
        .kinds
        .find("coordination.k8s.io", "v1", "leases")
        .expect("leases are served");
    let key = kind.info.key(Some("kube-system"), &me.lease_name());
    let _ = state.store.delete(&key, None).await;
    if let Ok(servers) = live_servers(state).await {
        let others: Vec<ApiEndpoint> = servers.into_iter().filter(|s| *s != me).collect();
        let _ = reconcile_endpoints(state, &others).await;
    }
}
