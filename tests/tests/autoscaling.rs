//! HorizontalPodAutoscalers through the real `skiff server`, from the real kubectl and from
//! `skiff`: `autoscale` creates them, `get hpa` prints Kubernetes' columns, `describe hpa`
//! the conditions the controller set, and bad autoscalers are refused (422, or the
//! AbleToScale condition for a target without a scale subresource), nothing scaled.

use std::time::Duration;

use skiff_e2e::workload::{apply, deployment, json};
use skiff_e2e::{Backend, Cluster, eventually, fails, ok};

const ROLLING: &str = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}";

fn condition(c: &Cluster, hpa: &str, type_: &str) -> Option<(String, String, String)> {
    let h = json(c, &["get", "hpa", hpa]);
    let cond = h["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|x| x["type"] == type_)?
        .clone();
    let s = |k: &str| cond[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

#[test]
fn autoscale_get_and_describe_from_kubectl_and_skiff() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(1, "hpa").unwrap();
    apply(&c, &deployment("web", 1, "1", ROLLING));
    apply(&c, &deployment("api", 1, "1", ROLLING));

    let out = ok(&c.kubectl(&[
        "autoscale",
        "deploy",
        "web",
        "--cpu-percent=50",
        "--min=1",
        "--max=5",
    ]));
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/web autoscaled"),
        "{out}"
    );
    let table = ok(&c.kubectl(&["get", "hpa", "web"]));
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains("Deployment/web") && row.contains("/50%"),
        "{table}"
    );
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((cols[4], cols[5]), ("1", "5"), "{table}");

    // The controller reads the target's scale at once and reports it.
    let (status, reason, _) = eventually(Duration::from_secs(30), || {
        condition(&c, "web", "AbleToScale").filter(|x| x.1 != "")
    })
    .expect("AbleToScale set");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "SucceededGetScale")
    );
    let (_, reason, message) = condition(&c, "web", "ScalingActive").expect("ScalingActive set");
    // Until pod usage is read the metric cannot be computed, in Kubernetes' words.
    if reason == "FailedGetResourceMetric" {
        assert!(
            message.starts_with(
                "the HPA was unable to compute the replica count: failed to get cpu utilization: "
            ),
            "{message}"
        );
        assert!(row.contains("<unknown>/50%"), "{table}");
    }
    let describe = ok(&c.kubectl(&["describe", "hpa", "web"]));
    for want in [
        "Reference:",
        "Deployment/web",
        "Min replicas:",
        "Max replicas:",
        "Conditions:",
        "AbleToScale",
        "SucceededGetScale",
        "ScalingActive",
    ] {
        assert!(describe.contains(want), "{want} missing from:\n{describe}");
    }

    // skiff autoscale: the same object; read back as autoscaling/v1 too.
    let out = ok(&c.skiff(&[
        "autoscale",
        "deploy/api",
        "--min=2",
        "--max=4",
        "--cpu-percent=70",
        "--name=api-hpa",
    ]));
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/api-hpa autoscaled"),
        "{out}"
    );
    let raw = ok(&c.kubectl(&[
        "get",
        "--raw",
        "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/api-hpa",
    ]));
    let v1: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
    assert_eq!(v1["spec"]["minReplicas"], 2);
    assert_eq!(v1["spec"]["scaleTargetRef"]["kind"], "Deployment");
    // minReplicas 2 above the Deployment's 1: raised, as Kubernetes does.
    eventually(Duration::from_secs(30), || {
        (json(&c, &["get", "deploy", "api"])["spec"]["replicas"] == 2).then_some(())
    })
    .expect("api raised to minReplicas");

    // Bad input from both clients; nothing created.
    let err = fails(&c.skiff(&["autoscale", "deploy/web", "--min=5", "--max=2"]));
    assert!(
        err.contains("--max=MAXPODS must be larger or equal to --min=MINPODS, max: 2, min: 5"),
        "{err}"
    );
    let err = fails(&c.skiff(&["autoscale", "deploy/web"]));
    assert!(
        err.contains("--max=MAXPODS is required and must be at least 1"),
        "{err}"
    );
    let bad = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: bad}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 4\n  maxReplicas: 2\n  metrics: [{type: Bogus}]\n";
    let err = fails(&c.kubectl_stdin(&["create", "-f", "-"], Some(bad)));
    assert!(
        err.contains(
            "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"
        ),
        "{err}"
    );
    assert!(
        err.contains("spec.metrics[0].type: Unsupported value: \"Bogus\""),
        "{err}"
    );
    assert!(fails(&c.kubectl(&["get", "hpa", "bad"])).contains("NotFound"));

    // A target without a scale subresource: the condition says so.
    ok(&c.kubectl(&["create", "configmap", "settings"]));
    let cm = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: cm}\nspec:\n  scaleTargetRef: {apiVersion: v1, kind: ConfigMap, name: settings}\n  maxReplicas: 3\n";
    ok(&c.kubectl_stdin(&["create", "-f", "-"], Some(cm)));
    let (status, reason, message) = eventually(Duration::from_secs(30), || {
        condition(&c, "cm", "AbleToScale").filter(|x| x.0 == "False")
    })
    .expect("AbleToScale=False");
    assert_eq!(reason, "FailedGetScale", "{status} {message}");
    assert!(
        message.starts_with("the HPA controller was unable to get the target's current scale: "),
        "{message}"
    );
}
