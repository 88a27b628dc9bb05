//! CustomResourceDefinitions with the real kubectl against a real `skiff server`: the CronTab
//! CRD of the Kubernetes documentation (apply, Established, create, get with printer columns,
//! explain, patch, watch, scale, delete), schema validation, pruning and defaults, bad
//! definitions refused with Kubernetes' messages, deleting a CRD, and a CRD served by every
//! server on one etcd.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use skiff_e2e::{Backend, Cluster, eventually, fails, ok};

const CRONTAB_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                cronSpec:
                  type: string
                  pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
                image:
                  type: string
                replicas:
                  type: integer
                  minimum: 0
                  maximum: 10
                  default: 1
                mode:
                  type: string
                  enum: ["Allow", "Forbid"]
                  default: Allow
            status:
              type: object
              properties:
                replicas:
                  type: integer
                labelSelector:
                  type: string
      subresources:
        status: {}
        scale:
          specReplicasPath: .spec.replicas
          statusReplicasPath: .status.replicas
          labelSelectorPath: .status.labelSelector
      additionalPrinterColumns:
        - name: Spec
          type: string
          description: The cron spec defining the interval a CronJob is run
          jsonPath: .spec.cronSpec
        - name: Replicas
          type: integer
          description: The number of jobs launched by the CronJob
          jsonPath: .spec.replicas
        - name: Age
          type: date
          jsonPath: .metadata.creationTimestamp
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames:
    - ct
    categories:
    - all
"#;

const MY_CRONTAB: &str = r#"
apiVersion: "stable.example.com/v1"
kind: CronTab
metadata:
  name: my-new-cron-object
spec:
  cronSpec: "* * * * */5"
  image: my-awesome-cron-image
"#;

fn json_of(c: &Cluster, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&ok(&c.kubectl(&a))).expect("kubectl -o json")
}

fn install_crontab(c: &Cluster) {
    let out = ok(&c.kubectl_stdin(&["apply", "-f", "-"], Some(CRONTAB_CRD)));
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created"
        ),
        "{out}"
    );
    ok(&c.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/crontabs.stable.example.com",
    ]));
}

#[test]
fn crontab_from_the_kubernetes_documentation() {
    let c = Cluster::start(Backend::Embedded).expect("cluster");
    install_crontab(&c);
    let crd = json_of(&c, &["get", "crd", "crontabs.stable.example.com"]);
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    for t in ["NamesAccepted", "Established"] {
        assert!(
            conditions
                .iter()
                .any(|x| x["type"] == t && x["status"] == "True"),
            "{crd}"
        );
    }
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "CronTab");
    assert_eq!(crd["status"]["storedVersions"], serde_json::json!(["v1"]));
    let out = ok(&c.kubectl(&["get", "crd"]));
    assert!(
        out.starts_with("NAME") && out.contains("CREATED AT"),
        "{out}"
    );
    assert!(out.contains("crontabs.stable.example.com"), "{out}");

    // Discovery: api-resources names it with its short name and category.
    let out = ok(&c.kubectl(&["api-resources", "--api-group=stable.example.com"]));
    assert!(
        out.contains("crontabs") && out.contains("ct") && out.contains("CronTab"),
        "{out}"
    );

    // A watch started before the object exists sees it arrive.
    let mut watch = Command::new("kubectl")
        .arg("--cache-dir")
        .arg(&c.kube_cache)
        .args(["get", "crontabs", "--watch", "-o", "name"])
        .env("KUBECONFIG", &c.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl watch");
    let out = ok(&c.kubectl_stdin(&["apply", "-f", "-"], Some(MY_CRONTAB)));
    assert!(
        out.contains("crontab.stable.example.com/my-new-cron-object created"),
        "{out}"
    );
    let mut line = String::new();
    BufReader::new(watch.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("watch line");
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(line.trim(), "crontab.stable.example.com/my-new-cron-object");

    // Defaults filled from the schema; printer columns.
    let obj = json_of(&c, &["get", "ct", "my-new-cron-object"]);
    assert_eq!(obj["spec"]["replicas"], 1);
    assert_eq!(obj["spec"]["mode"], "Allow");
    assert_eq!(obj["metadata"]["generation"], 1);
    let out = ok(&c.kubectl(&["get", "crontab"]));
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SPEC", "REPLICAS", "AGE"], "{out}");
    assert!(
        out.contains("my-new-cron-object   * * * * */5   1"),
        "{out}"
    );
    let out = ok(&c.kubectl(&["get", "all"]));
    assert!(
        out.contains("crontab.stable.example.com/my-new-cron-object"),
        "{out}"
    );

    // explain reads the published schema.
    let out = ok(&c.kubectl(&["explain", "crontab.spec"]));
    assert!(
        out.contains("cronSpec") && out.contains("replicas"),
        "{out}"
    );

    // Patches: merge and JSON; strategic merge is refused as Kubernetes does.
    ok(&c.kubectl(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"image":"v2"}}"#,
    ]));
    ok(&c.kubectl(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--type",
        "json",
        "-p",
        r#"[{"op":"replace","path":"/spec/cronSpec","value":"*/2 * * * *"}]"#,
    ]));
    let obj = json_of(&c, &["get", "ct", "my-new-cron-object"]);
    assert_eq!(obj["spec"]["image"], "v2");
    assert_eq!(obj["spec"]["cronSpec"], "*/2 * * * *");
    assert_eq!(obj["metadata"]["generation"], 3);
    let err = fails(&c.kubectl(&[
        "patch",
        "ct",
        "my-new-cron-object",
        "--type",
        "strategic",
        "-p",
        r#"{"spec":{"image":"v3"}}"#,
    ]));
    assert!(
        err.contains("UnsupportedMediaType") || err.contains("unknown format"),
        "{err}"
    );

    // Scale through the scale subresource.
    let out = ok(&c.kubectl(&["scale", "crontab/my-new-cron-object", "--replicas=5"]));
    assert!(out.contains("scaled"), "{out}");
    let obj = json_of(&c, &["get", "ct", "my-new-cron-object"]);
    assert_eq!(obj["spec"]["replicas"], 5);
    let scale: Value = serde_json::from_str(&ok(&c.kubectl(&[
        "get",
        "--raw",
        "/apis/stable.example.com/v1/namespaces/default/crontabs/my-new-cron-object/scale",
    ])))
    .unwrap();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 5);

    // Schema validation, with Kubernetes' wording.
    let bad = MY_CRONTAB.replace("my-new-cron-object", "bad").replace(
        "image: my-awesome-cron-image",
        "image: x\n  replicas: \"two\"",
    );
    let err = fails(&c.kubectl_stdin(&["apply", "-f", "-"], Some(&bad)));
    assert!(
        err.contains(r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#),
        "{err}"
    );
    let bad = MY_CRONTAB.replace("my-new-cron-object", "bad").replace(
        "image: my-awesome-cron-image",
        "image: x\n  replicas: 20\n  mode: Sometimes",
    );
    let err = fails(&c.kubectl_stdin(&["apply", "-f", "-"], Some(&bad)));
    assert!(
        err.contains("spec.replicas: Invalid value: 20: spec.replicas in body should be less than or equal to 10"),
        "{err}"
    );
    assert!(
        err.contains(
            r#"spec.mode: Unsupported value: "Sometimes": supported values: "Allow", "Forbid""#
        ),
        "{err}"
    );

    // Unknown fields: pruned without strict validation, refused with it.
    let extra = MY_CRONTAB.replace("my-new-cron-object", "extra").replace(
        "image: my-awesome-cron-image",
        "image: x\n  someRandomField: 42",
    );
    let err = fails(&c.kubectl_stdin(&["apply", "--validate=strict", "-f", "-"], Some(&extra)));
    assert!(
        err.contains(r#"unknown field "spec.someRandomField""#),
        "{err}"
    );
    ok(&c.kubectl_stdin(&["apply", "--validate=false", "-f", "-"], Some(&extra)));
    let obj = json_of(&c, &["get", "ct", "extra"]);
    assert!(obj["spec"].get("someRandomField").is_none(), "{obj}");

    // Field selectors on metadata.name.
    let out = ok(&c.kubectl(&[
        "get",
        "ct",
        "--field-selector",
        "metadata.name=extra",
        "-o",
        "name",
    ]));
    assert_eq!(out.trim(), "crontab.stable.example.com/extra");

    // Delete one object, then the CRD, which takes its objects and endpoints with it.
    ok(&c.kubectl(&["delete", "ct", "extra"]));
    ok(&c.kubectl(&[
        "delete",
        "crd",
        "crontabs.stable.example.com",
        "--timeout=30s",
    ]));
    let err = fails(&c.kubectl(&["get", "crontabs"]));
    // (kubectl's discovery cache may still name the kind: then the server's 404 shows.)
    assert!(
        err.contains("the server doesn't have a resource type \"crontabs\"")
            || err.contains("the server could not find the requested resource"),
        "{err}"
    );
    // Re-created, it starts empty.
    install_crontab(&c);
    let out = eventually(Duration::from_secs(10), || {
        let o = c.kubectl(&["get", "crontabs", "-o", "name"]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    })
    .expect("crontabs served again");
    assert!(out.trim().is_empty(), "{out}");
}

#[test]
fn bad_definitions_are_refused_with_kubernetes_messages() {
    let c = Cluster::start(Backend::Embedded).expect("cluster");
    let no_schema = CRONTAB_CRD.replace(
        "      schema:\n        openAPIV3Schema:\n",
        "      unused:\n        openAPIV3Schema:\n",
    );
    let err = fails(&c.kubectl_stdin(&["create", "--validate=false", "-f", "-"], Some(&no_schema)));
    assert!(
        err.contains(r#"The CustomResourceDefinition "crontabs.stable.example.com" is invalid"#),
        "{err}"
    );
    assert!(
        err.contains(
            "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"
        ),
        "{err}"
    );
    let not_structural = CRONTAB_CRD.replace(
        "                image:\n                  type: string\n",
        "                image:\n                  description: any\n",
    );
    let err = fails(&c.kubectl_stdin(&["create", "-f", "-"], Some(&not_structural)));
    assert!(
        err.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[image].type: Required value: must not be empty for specified object fields"),
        "{err}"
    );
    let two_storage = CRONTAB_CRD.replace(
        "  versions:\n",
        "  versions:\n    - name: v1beta1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n",
    );
    let err = fails(&c.kubectl_stdin(&["create", "-f", "-"], Some(&two_storage)));
    assert!(
        err.contains("must have exactly one version marked as storage version"),
        "{err}"
    );
    let wrong_name = CRONTAB_CRD.replace(
        "name: crontabs.stable.example.com",
        "name: crontab.stable.example.com",
    );
    let err = fails(&c.kubectl_stdin(&["create", "-f", "-"], Some(&wrong_name)));
    assert!(
        err.contains(r#"metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group"#),
        "{err}"
    );
    let webhook = CRONTAB_CRD.replace(
        "  scope: Namespaced\n",
        "  scope: Namespaced\n  conversion:\n    strategy: Webhook\n",
    );
    let err = fails(&c.kubectl_stdin(&["create", "-f", "-"], Some(&webhook)));
    assert!(err.contains("webhook conversion is not supported"), "{err}");
    // Nothing was stored.
    let out = ok(&c.kubectl(&["get", "crd", "-o", "name"]));
    assert!(out.trim().is_empty(), "{out}");
}

#[test]
fn every_server_on_one_etcd_serves_a_new_crd() {
    let a = Cluster::start(Backend::Etcd).expect("cluster");
    let b = a.start_peer().expect("peer");
    install_crontab(&a);
    ok(&a.kubectl_stdin(&["apply", "-f", "-"], Some(MY_CRONTAB)));
    let found = eventually(Duration::from_secs(10), || {
        let o = b.kubectl(&["get", "crontabs", "-o", "name"]);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        (o.status.success() && out.contains("my-new-cron-object")).then_some(out)
    });
    assert!(found.is_some(), "the peer server never served crontabs");
}
