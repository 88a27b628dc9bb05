//! `statefulset`: a StatefulSet of N replicas with a volumeClaimTemplate on the built-in
//! `local-path` class, through a real `skiff server` and a real `skiff agent` running
//! busybox containers: the time from create until `status.readyReplicas` is N, with
//! `podManagementPolicy` OrderedReady and Parallel, beside a Deployment of N without
//! volumes in the same run. Each series repeats; the set, its pods, claims and volumes are
//! removed between rounds, and the agent's teardown removes its bridge, cgroups and
//! directories.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::serde::de::DeserializeOwned;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;
use skiff_runtime::testkit::busybox_tarball;

use crate::node::{Agent, agent_host};
use crate::procs::{load_average, start_server};

/// What the benchmark runs.
pub struct StatefulSetOptions {
    /// Replicas of each set and of the Deployment.
    pub replicas: usize,
    /// Rounds of each series.
    pub rounds: usize,
}

/// The series, in the order each round runs them.
#[derive(Clone, Copy)]
enum Series {
    OrderedReady,
    Parallel,
    Deployment,
}

impl Series {
    const ALL: [Series; 3] = [Series::OrderedReady, Series::Parallel, Series::Deployment];

    fn label(self) -> &'static str {
        match self {
            Series::OrderedReady => "StatefulSet, OrderedReady, one 1Mi claim per pod",
            Series::Parallel => "StatefulSet, Parallel, one 1Mi claim per pod",
            Series::Deployment => "Deployment, no volumes (reference)",
        }
    }
}

fn template(name: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": "bench-node", "set": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "c",
                "image": "busybox:1.36",
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
                "volumeMounts": [],
            }],
        },
    })
}

fn stateful_set(name: &str, replicas: usize, policy: &str) -> Result<StatefulSet> {
    let mut tpl = template(name);
    tpl["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": "bench-node", "set": name}},
            "template": tpl,
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "local-path",
                    "resources": {"requests": {"storage": "1Mi"}},
                },
            }],
        },
    }))?)
}

fn deployment(name: &str, replicas: usize) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "bench-node", "set": name}},
            "template": template(name),
        },
    }))?)
}

/// Polls `ready(object)` every 50 ms until it reaches `want` (five minutes at most).
async fn wait_ready<K>(api: &Api<K>, name: &str, want: i32, ready: fn(&K) -> i32) -> Result<()>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        if let Ok(obj) = api.get(name).await
            && ready(&obj) >= want
        {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("{name}: not {want} ready replicas after five minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until `list` is empty (two minutes at most).
async fn wait_gone<K>(api: &Api<K>, what: &str) -> Result<()>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let n = api.list(&ListParams::default()).await?.items.len();
        if n == 0 {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("{n} {what} still present after two minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One round of one series: seconds from the create call to all replicas Ready; then
/// everything it made is deleted and waited out.
async fn one(client: &kube::Client, series: Series, round: usize, n: usize) -> Result<f64> {
    let ns = "default";
    let name = format!("bench-{}-{round}", ["ord", "par", "dep"][series as usize]);
    let pp = PostParams::default();
    let want = i32::try_from(n)?;
    let bg = DeleteParams::background();
    let seconds = match series {
        Series::Deployment => {
            let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let t = Instant::now();
            api.create(&pp, &deployment(&name, n)?).await?;
            wait_ready(&api, &name, want, |d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0)
            })
            .await?;
            let s = t.elapsed().as_secs_f64();
            api.delete(&name, &bg).await?;
            s
        }
        Series::OrderedReady | Series::Parallel => {
            let policy = match series {
                Series::Parallel => "Parallel",
                _ => "OrderedReady",
            };
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
            let t = Instant::now();
            api.create(&pp, &stateful_set(&name, n, policy)?).await?;
            wait_ready(&api, &name, want, |s| {
                s.status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0)
            })
            .await?;
            let s = t.elapsed().as_secs_f64();
            api.delete(&name, &bg).await?;
            s
        }
    };
    wait_gone(&Api::<Pod>::namespaced(client.clone(), ns), "pods").await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    claims
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await?;
    wait_gone(&claims, "claims").await?;
    // The class reclaims with Delete: the provisioner removes each volume's directory.
    wait_gone(&Api::<PersistentVolume>::all(client.clone()), "volumes").await?;
    Ok(seconds)
}

/// Median, minimum and maximum.
fn spread(xs: &[f64]) -> (f64, f64, f64) {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (mid, v[0], v[v.len() - 1])
}

/// Runs the benchmark and returns its Markdown.
pub async fn run(opts: &StatefulSetOptions) -> Result<String> {
    if effective_uid() != 0 {
        bail!("the StatefulSet benchmark needs root");
    }
    let tmp = tempfile::tempdir()?;
    let run = tempfile::tempdir_in("/dev/shm")?;
    let tar = busybox_tarball(tmp.path());
    let (mut server, client) = start_server(
        tmp.path(),
        &[
            "--disable-agent".into(),
            "--cluster-cidr".into(),
            "10.196.0.0/16".into(),
        ],
    )
    .await?;
    let host = agent_host(
        tmp.path().join("agent-root"),
        run.path().join("agent-state"),
    );
    host.import_rootfs(&tar, "busybox:1.36")?;
    let mut agent = Agent::spawn(&server, host, tmp.path(), opts.replicas * 2 + 4)?;
    let result = measure(&client, &mut agent, opts).await;
    agent
        .tear_down(
            &client,
            &mut server,
            Duration::from_secs(60),
            result.is_err(),
        )
        .await;
    let (times, load_before, load_after) = result?;
    let mut out = format!(
        "{} replicas, {} rounds of each series (rounds interleaved: OrderedReady, Parallel, \
         Deployment), one real `skiff server` (embedded store, debug build) and one real \
         `skiff agent` on this machine (2 cores shared with other work), busybox \
         `sleep` containers from an imported image, claims of 1Mi on the built-in \
         `local-path` class (WaitForFirstConsumer: each claim is provisioned after its pod \
         is scheduled). Time from the create call until `status.readyReplicas` is {}, polled \
         every 50 ms. Load average {load_before:.2} before, {load_after:.2} after.\n\n\
         | series | median | min | max | per pod (median) |\n|---|---|---|---|---|\n",
        opts.replicas, opts.rounds, opts.replicas
    );
    for (series, xs) in Series::ALL.iter().zip(&times) {
        let (mid, lo, hi) = spread(xs);
        out.push_str(&format!(
            "| {} | {mid:.2} s | {lo:.2} s | {hi:.2} s | {:.0} ms |\n",
            series.label(),
            mid * 1000.0 / opts.replicas as f64
        ));
    }
    let (ord, par, dep) = (
        spread(&times[0]).0,
        spread(&times[1]).0,
        spread(&times[2]).0,
    );
    out.push_str(&format!(
        "\nVolume cost (Parallel with claims less the Deployment): {:.2} s; ordering cost \
         (OrderedReady less Parallel): {:.2} s.\n",
        par - dep,
        ord - par
    ));
    Ok(out)
}

async fn measure(
    client: &kube::Client,
    agent: &mut Agent,
    opts: &StatefulSetOptions,
) -> Result<(Vec<Vec<f64>>, f64, f64)> {
    agent.wait_ready(client).await?;
    let load_before = load_average();
    let mut times = vec![Vec::new(); Series::ALL.len()];
    for round in 0..opts.rounds {
        for (i, series) in Series::ALL.iter().enumerate() {
            let s = one(client, *series, round, opts.replicas).await?;
            eprintln!("round {round}: {}: {s:.2} s", series.label());
            times[i].push(s);
        }
    }
    Ok((times, load_before, load_average()))
}

fn effective_uid() -> u32 {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(u32::MAX)
}
