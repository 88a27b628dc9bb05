//! Unit tests for protobuf decoding: hand-encoded messages covering each field kind, the
//! zero-value rules, error answers, the generated table's invariants and random input.

use rand::{Rng, SeedableRng};
use serde_json::json;

use super::schema::MESSAGES;
use super::schema_types::Kind;
use super::{DecodeError, MessageTable};
use crate::error::ApiError;

fn decode(body: &[u8]) -> Result<serde_json::Value, DecodeError> {
    super::decode(body, crate::registry::builtin())
}

fn decode_request(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    super::decode_request(body, crate::registry::builtin())
}

/// `(apiVersion, kind, table)` of every decodable kind: the registry's tables and
/// DeleteOptions.
fn roots() -> Vec<(String, &'static str, MessageTable)> {
    let mut roots = crate::registry::builtin().protobuf_tables();
    roots.push((
        "meta.k8s.io/v1".into(),
        "DeleteOptions",
        super::schema::META_V1_DELETE_OPTIONS,
    ));
    roots
}

/// A minimal protobuf encoder for building test bodies.
#[derive(Default, Clone)]
struct Enc(Vec<u8>);

impl Enc {
    fn key(mut self, field: u32, wire: u8) -> Self {
        push_varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire));
        self
    }
    fn int(self, field: u32, v: i64) -> Self {
        let mut e = self.key(field, 0);
        push_varint(&mut e.0, v as u64);
        e
    }
    fn bytes(self, field: u32, b: &[u8]) -> Self {
        let mut e = self.key(field, 2);
        push_varint(&mut e.0, b.len() as u64);
        e.0.extend_from_slice(b);
        e
    }
    fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u32, m: Enc) -> Self {
        self.bytes(field, &m.0)
    }
    fn entry(self, field: u32, k: &str, v: Enc) -> Self {
        self.msg(field, Enc::default().str(1, k).msg(2, v))
    }
    fn str_entry(self, field: u32, k: &str, v: &str) -> Self {
        self.msg(field, Enc::default().str(1, k).str(2, v))
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn envelope(api_version: &str, kind: &str, raw: &Enc) -> Vec<u8> {
    let unknown = Enc::default()
        .msg(1, Enc::default().str(1, api_version).str(2, kind))
        .bytes(2, &raw.0)
        .str(3, "")
        .str(4, "");
    [b"k8s\0".as_slice(), &unknown.0].concat()
}

/// ObjectMeta as the Go encoder writes it: every non-pointer field present, zero or not.
fn meta(name: &str) -> Enc {
    Enc::default()
        .str(1, name)
        .str(2, "")
        .str(3, "default")
        .str(4, "")
        .str(5, "")
        .str(6, "")
        .int(7, 0)
        .msg(8, Enc::default())
}

#[test]
fn configmap_maps_bytes_and_dropped_zeros() {
    let cm = Enc::default()
        .msg(
            1,
            meta("x")
                .str_entry(11, "app", "web")
                .str_entry(11, "empty", ""),
        )
        .str_entry(2, "a", "b")
        .str_entry(2, "file.txt", "line1\nline2\n")
        .msg(3, Enc::default().str(1, "bin").bytes(2, &[0, 1, 2, 255]));
    let got = decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
    let want = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "default", "labels": {"app": "web", "empty": ""}},
        "data": {"a": "b", "file.txt": "line1\nline2\n"},
        "binaryData": {"bin": "AAEC/w=="},
    });
    assert_eq!(got, want);
}

#[test]
fn pointer_zeros_survive_and_value_zeros_do_not() {
    let spec = Enc::default()
        .int(1, 0) // replicas *int32
        .int(5, 0) // minReadySeconds int32,omitempty
        .int(6, 0) // revisionHistoryLimit *int32
        .int(7, 0) // paused bool,omitempty
        .msg(
            4,
            Enc::default().str(1, "RollingUpdate").msg(
                2,
                Enc::default()
                    .msg(1, Enc::default().int(1, 0).int(2, 0))
                    .msg(2, Enc::default().int(1, 1).str(3, "25%")),
            ),
        );
    let got = decode(&envelope(
        "apps/v1",
        "Deployment",
        &Enc::default()
            .msg(1, meta("d"))
            .msg(2, spec)
            .msg(3, Enc::default()),
    ))
    .unwrap();
    assert_eq!(
        got["spec"],
        json!({
            "replicas": 0, "revisionHistoryLimit": 0,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
        })
    );
    // A present but empty non-pointer struct is `{}` in Go's JSON too.
    assert_eq!(got["status"], json!({}));
    assert!(got["metadata"].get("creationTimestamp").is_none());
    assert!(got["metadata"].get("generation").is_none());
}

#[test]
fn a_job_and_a_cronjob_keep_their_pointer_zeros() {
    // What `kubectl create job` and `create cronjob` send, with the zeros that mean something.
    let job_spec = Enc::default()
        .int(2, 0) // completions *int32
        .int(7, 0) // backoffLimit *int32
        .int(10, 0) // suspend *bool
        .msg(
            11,
            Enc::default().msg(
                1,
                Enc::default()
                    .str(1, "FailJob")
                    .msg(2, Enc::default().str(2, "In").int(3, 42)),
            ),
        );
    let got = decode(&envelope(
        "batch/v1",
        "Job",
        &Enc::default().msg(1, meta("j")).msg(2, job_spec),
    ))
    .unwrap();
    assert_eq!(
        got["spec"],
        json!({"completions": 0, "backoffLimit": 0, "suspend": false,
            "podFailurePolicy": {"rules": [{"action": "FailJob",
                "onExitCodes": {"operator": "In", "values": [42]}}]}})
    );
    let cron_spec = Enc::default()
        .str(1, "*/1 * * * *")
        .int(4, 0) // suspend *bool
        .int(6, 0); // successfulJobsHistoryLimit *int32
    let got = decode(&envelope(
        "batch/v1",
        "CronJob",
        &Enc::default().msg(1, meta("c")).msg(2, cron_spec),
    ))
    .unwrap();
    assert_eq!(
        got["spec"],
        json!({"schedule": "*/1 * * * *", "suspend": false, "successfulJobsHistoryLimit": 0})
    );
}

#[test]
fn inline_structs_merge_into_their_parent() {
    let volume = Enc::default().str(1, "cfg").msg(
        2,
        Enc::default().msg(
            19,
            Enc::default()
                .msg(1, Enc::default().str(1, "cm"))
                .int(3, 420),
        ),
    );
    let probe = Enc::default()
        .msg(
            1,
            Enc::default().msg(
                2,
                Enc::default()
                    .str(1, "/healthz")
                    .msg(2, Enc::default().int(1, 1).str(3, "http")),
            ),
        )
        .int(3, 5);
    let container = Enc::default()
        .str(1, "c")
        .str(2, "busybox:1.36")
        .str(3, "sleep")
        .str(3, "3600")
        .msg(10, probe);
    let pod = Enc::default()
        .msg(1, meta("p"))
        .msg(2, Enc::default().msg(1, volume).msg(2, container));
    let got = decode(&envelope("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        got["spec"]["volumes"],
        json!([{"name": "cfg", "configMap": {"name": "cm", "defaultMode": 420}}])
    );
    assert_eq!(
        got["spec"]["containers"],
        json!([{
            "name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "timeoutSeconds": 5},
        }])
    );
}

#[test]
fn packed_and_unpacked_repeated_ints_and_negative_values() {
    let mut packed = Vec::new();
    for v in [1000i64, -1] {
        push_varint(&mut packed, v as u64);
    }
    let sc = Enc::default()
        .bytes(4, &packed)
        .int(4, 7)
        .int(2, 0)
        .int(6, -5);
    let pod = Enc::default().msg(2, Enc::default().msg(14, sc));
    let got = decode(&envelope("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        got["spec"]["securityContext"],
        json!({"supplementalGroups": [1000, -1, 7], "runAsUser": 0, "runAsGroup": -5})
    );
}

#[test]
fn times_quantities_and_managed_fields() {
    let mf = Enc::default()
        .str(1, "kubectl")
        .str(2, "Update")
        .msg(4, Enc::default().int(1, 1_704_067_200))
        .str(6, "FieldsV1")
        .msg(7, Enc::default().bytes(1, br#"{"f:data":{}}"#));
    let ev = Enc::default()
        .msg(1, meta("e").msg(17, mf))
        .msg(2, Enc::default().int(1, 1_704_067_200).int(2, 123_456_789))
        .msg(13, Enc::default().int(1, 1_704_067_201).int(2, 999))
        .str(7, "Started");
    let got = decode(&envelope("events.k8s.io/v1", "Event", &ev)).unwrap();
    assert_eq!(got["eventTime"], json!("2024-01-01T00:00:00.123456Z"));
    assert_eq!(
        got["deprecatedFirstTimestamp"],
        json!("2024-01-01T00:00:01Z")
    );
    assert_eq!(
        got["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl", "operation": "Update", "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}},
        }])
    );

    let res = Enc::default()
        .entry(1, "cpu", Enc::default().str(1, "500m"))
        .entry(2, "memory", Enc::default().str(1, "64Mi"));
    let pod = Enc::default().msg(
        2,
        Enc::default().msg(2, Enc::default().str(1, "c").msg(8, res)),
    );
    let got = decode(&envelope("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        got["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}})
    );
}

#[test]
fn delete_options_decode_under_any_group_version() {
    let opts = Enc::default()
        .int(1, 0)
        .msg(2, Enc::default().str(1, "uid-1"))
        .str(4, "Foreground");
    for gv in ["meta.k8s.io/v1", "v1", "policy/v1"] {
        let got = decode(&envelope(gv, "DeleteOptions", &opts)).unwrap();
        assert_eq!(
            got,
            json!({"apiVersion": gv, "kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Foreground"})
        );
    }
    let eviction = Enc::default().msg(1, meta("p")).msg(2, opts);
    let got = decode(&envelope("policy/v1", "Eviction", &eviction)).unwrap();
    assert_eq!(got["deleteOptions"]["gracePeriodSeconds"], json!(0));
}

#[test]
fn errors_answer_400_and_415() {
    // CustomResourceDefinition's schema (JSONSchemaProps) has no table yet.
    let unsupported = decode_request(&envelope(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        &Enc::default(),
    ))
    .unwrap_err();
    assert_eq!(unsupported.code, 415);
    assert!(
        unsupported.message.contains("CustomResourceDefinition"),
        "{}",
        unsupported.message
    );

    for bad in [
        b"{\"kind\":\"ConfigMap\"}".to_vec(),
        b"k8s".to_vec(),
        envelope("v1", "", &Enc::default()),
        envelope(
            "v1",
            "ConfigMap",
            &Enc::default().bytes(1, &[0x0a, 9, b'x']),
        ),
        envelope("v1", "ConfigMap", &Enc::default().int(2, 5)),
        envelope(
            "v1",
            "ConfigMap",
            &Enc::default().msg(1, Enc::default().bytes(1, &[0xff, 0xfe])),
        ),
    ] {
        let e = decode_request(&bad).unwrap_err();
        assert_eq!(e.code, 400, "{bad:?}: {}", e.message);
    }
    let gzip = [
        b"k8s\0".as_slice(),
        &Enc::default()
            .msg(1, Enc::default().str(1, "v1").str(2, "Pod"))
            .str(3, "gzip")
            .0,
    ]
    .concat();
    assert!(matches!(
        decode(&gzip),
        Err(DecodeError::UnsupportedEncoding(_))
    ));
}

#[test]
fn unknown_fields_are_skipped() {
    let cm = Enc::default()
        .msg(1, meta("x").str(99, "future"))
        .int(50, 1)
        .str_entry(2, "a", "b");
    let got = decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}, "data": {"a": "b"}})
    );
}

#[test]
fn generated_table_is_consistent() {
    for m in MESSAGES {
        assert!(
            m.fields.windows(2).all(|w| w[0].tag < w[1].tag),
            "{}: tags not strictly sorted",
            m.name
        );
        let mut names: Vec<_> = m
            .fields
            .iter()
            .filter(|f| !f.inline)
            .map(|f| f.json)
            .collect();
        names.sort();
        assert!(
            names.windows(2).all(|w| w[0] != w[1]),
            "{}: duplicate JSON name",
            m.name
        );
        for f in m.fields {
            let target = match f.kind {
                Kind::Message(i) => Some(i),
                Kind::Map(Kind::Message(i)) => Some(*i),
                _ => None,
            };
            assert!(
                target.is_none_or(|i| i < MESSAGES.len()),
                "{}.{}",
                m.name,
                f.json
            );
            assert!(
                !f.inline || matches!(f.kind, Kind::Message(_)),
                "{}.{}",
                m.name,
                f.json
            );
        }
    }
    assert_eq!(roots().len(), 43);
}

#[test]
fn random_and_mutated_input_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b38_7300);
    let samples: Vec<Vec<u8>> = vec![
        envelope(
            "v1",
            "ConfigMap",
            &Enc::default().msg(1, meta("x")).str_entry(2, "a", "b"),
        ),
        envelope(
            "apps/v1",
            "Deployment",
            &Enc::default().msg(1, meta("d")).msg(
                2,
                Enc::default().int(1, 2).msg(
                    3,
                    Enc::default().msg(2, Enc::default().msg(2, Enc::default().str(1, "c"))),
                ),
            ),
        ),
    ];
    let roots = roots();
    for i in 0..20_000 {
        let body: Vec<u8> = if i % 2 == 0 {
            let n = rng.random_range(0..64);
            let mut b: Vec<u8> = (0..n).map(|_| rng.random()).collect();
            if i % 4 == 0 {
                b = [b"k8s\0".as_slice(), &b].concat();
            }
            b
        } else {
            let mut b = samples[i % samples.len()].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(4..b.len());
                match rng.random_range(0..3) {
                    0 => b[at] ^= 1 << rng.random_range(0..8),
                    1 => b.truncate(at),
                    _ => b.insert(at, rng.random()),
                }
                if b.len() <= 4 {
                    break;
                }
            }
            b
        };
        // Every root decoded from the mutated raw bytes too, to reach all messages' tables.
        let _ = decode(&body);
        if body.len() > 8 {
            let (v, k, _) = &roots[i % roots.len()];
            let _ = decode(&envelope(v, k, &Enc(body[8..].to_vec())));
        }
    }
}

#[test]
fn nesting_guard_refuses_runaway_depth() {
    // The schema is acyclic, so real input stays shallow; the guard is what bounds a future
    // self-referencing type.
    let mut out = serde_json::Map::new();
    let err = super::decode::message_into(0, &[], &mut out, 1000).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed(m) if m.contains("nested")));
}

/// Bodies captured from kubectl v1.32 (`create configmap|secret|namespace|deployment|service|
/// serviceaccount`, `autoscale`), each beside the JSON kubectl prints for the same command
/// with `--dry-run=client -o json` (less its `null`s, which Go's JSON writes for unset
/// non-omitempty fields and which mean the same as absent).
#[test]
fn kubectl_captured_bodies_decode_to_kubectls_own_json() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protobuf/testdata");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "pb") {
            continue;
        }
        let got = decode(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let want: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.with_extension("json")).unwrap()).unwrap();
        assert_eq!(got, want, "{}", path.display());
        seen += 1;
    }
    assert_eq!(seen, 8);
}

#[test]
fn certificate_signing_request_with_extra_and_approval() {
    let spec = Enc::default()
        .bytes(1, b"PEM")
        .str(2, "system:bootstrap:node")
        .str(4, "system:bootstrappers")
        .str(5, "server auth")
        .entry(6, "scopes", Enc::default().str(1, "a").str(1, "b"))
        .str(7, "kubernetes.io/kubelet-serving")
        .int(8, 0);
    let cond = Enc::default()
        .str(1, "Approved")
        .str(2, "KubectlApprove")
        .str(6, "True");
    let status = Enc::default().msg(1, cond);
    let raw = Enc::default().msg(1, meta("c")).msg(2, spec).msg(3, status);
    let body = envelope("certificates.k8s.io/v1", "CertificateSigningRequest", &raw);
    let v = decode_request(&body).unwrap();
    assert_eq!(v["kind"], "CertificateSigningRequest");
    assert_eq!(v["spec"]["request"], "UEVN");
    assert_eq!(v["spec"]["groups"], json!(["system:bootstrappers"]));
    assert_eq!(v["spec"]["extra"], json!({"scopes": ["a", "b"]}));
    assert_eq!(v["spec"]["expirationSeconds"], 0);
    assert_eq!(
        v["status"]["conditions"],
        json!([{"type": "Approved", "reason": "KubectlApprove", "status": "True"}])
    );
}

#[test]
fn a_statefulset_keeps_replicas_ordinals_and_partition_zeros() {
    let claim = Enc::default().msg(1, meta("data")).msg(
        2,
        Enc::default()
            .str(1, "ReadWriteOnce")
            .msg(
                2,
                Enc::default().entry(2, "storage", Enc::default().str(1, "1Mi")),
            )
            .str(5, "local-path"),
    );
    let spec = Enc::default()
        .int(1, 0) // replicas *int32
        .msg(2, Enc::default().str_entry(1, "app", "db"))
        .msg(
            3,
            Enc::default()
                .msg(1, meta("").str_entry(11, "app", "db"))
                .msg(2, Enc::default().msg(2, Enc::default().str(1, "c"))),
        )
        .msg(4, claim)
        .str(5, "db")
        .str(6, "OrderedReady")
        .msg(
            7,
            Enc::default()
                .str(1, "RollingUpdate")
                .msg(2, Enc::default().int(1, 0)), // partition *int32
        )
        .int(8, 0) // revisionHistoryLimit *int32
        .int(9, 0) // minReadySeconds int32,omitempty
        .msg(10, Enc::default().str(1, "Retain").str(2, "Delete"))
        .msg(11, Enc::default().int(1, 0)); // ordinals.start: no omitempty
    let status = Enc::default()
        .int(1, 0)
        .int(2, 0) // replicas: no omitempty
        .int(3, 0) // readyReplicas omitempty
        .str(6, "")
        .int(11, 0); // availableReplicas: no omitempty
    let raw = Enc::default()
        .msg(1, meta("db"))
        .msg(2, spec)
        .msg(3, status);
    let got = decode_request(&envelope("apps/v1", "StatefulSet", &raw)).unwrap();
    assert_eq!(
        got["spec"],
        json!({
            "replicas": 0,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"namespace": "default", "labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data", "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Mi"}},
                    "storageClassName": "local-path"}}],
            "serviceName": "db",
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 0,
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"},
            "ordinals": {"start": 0},
        })
    );
    assert_eq!(
        got["status"],
        json!({"replicas": 0, "availableReplicas": 0})
    );
}

#[test]
fn a_controller_revision_keeps_its_raw_data_and_revision() {
    let raw = Enc::default()
        .msg(1, meta("db-7c9d"))
        .msg(
            2,
            Enc::default().bytes(1, br#"{"spec":{"template":{"$patch":"replace"}}}"#),
        )
        .int(3, 0);
    let got = decode(&envelope("apps/v1", "ControllerRevision", &raw)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "db-7c9d", "namespace": "default"},
            "data": {"spec": {"template": {"$patch": "replace"}}},
            "revision": 0,
        })
    );
}

#[test]
fn a_replication_controller_keeps_replicas_zero() {
    let spec = Enc::default()
        .int(1, 0)
        .str_entry(2, "app", "web")
        .int(4, 0);
    let status = Enc::default().int(1, 0).int(2, 0).int(4, 0);
    let raw = Enc::default()
        .msg(1, meta("web"))
        .msg(2, spec)
        .msg(3, status);
    let got = decode(&envelope("v1", "ReplicationController", &raw)).unwrap();
    assert_eq!(
        got["spec"],
        json!({"replicas": 0, "selector": {"app": "web"}})
    );
    assert_eq!(got["status"], json!({"replicas": 0}));
}

#[test]
fn claims_volumes_and_storage_classes_decode() {
    let claim = Enc::default().msg(1, meta("data-db-0")).msg(
        2,
        Enc::default()
            .str(1, "ReadWriteOnce")
            .msg(
                2,
                Enc::default().entry(2, "storage", Enc::default().str(1, "1Gi")),
            )
            .str(3, "pvc-1")
            .str(5, "") // storageClassName "" asks for no class: it must survive
            .str(6, "Filesystem"),
    );
    let got = decode(&envelope("v1", "PersistentVolumeClaim", &claim)).unwrap();
    assert_eq!(
        got["spec"],
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": "pvc-1", "storageClassName": "", "volumeMode": "Filesystem"})
    );

    let claim_ref = Enc::default()
        .str(1, "PersistentVolumeClaim")
        .str(2, "default")
        .str(3, "data-db-0");
    let pv_spec = Enc::default()
        .entry(1, "storage", Enc::default().str(1, "1Gi"))
        .msg(
            2,
            Enc::default().msg(
                20,
                Enc::default().str(1, "/var/lib/skiff/pv/pvc-1").str(2, ""),
            ),
        )
        .str(3, "ReadWriteOnce")
        .msg(4, claim_ref)
        .str(5, "Delete")
        .str(6, "local-path")
        .str(8, "Filesystem");
    let pv_status = Enc::default()
        .str(1, "Bound")
        .msg(4, Enc::default().int(1, 1_704_067_200));
    let pv = Enc::default()
        .msg(1, meta("pvc-1").str(3, ""))
        .msg(2, pv_spec)
        .msg(3, pv_status);
    let got = decode(&envelope("v1", "PersistentVolume", &pv)).unwrap();
    assert_eq!(
        got["spec"],
        json!({
            "capacity": {"storage": "1Gi"},
            "local": {"path": "/var/lib/skiff/pv/pvc-1", "fsType": ""},
            "accessModes": ["ReadWriteOnce"],
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data-db-0"},
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "local-path",
            "volumeMode": "Filesystem",
        })
    );
    assert_eq!(
        got["status"],
        json!({"phase": "Bound", "lastPhaseTransitionTime": "2024-01-01T00:00:00Z"})
    );

    let class = Enc::default()
        .msg(1, meta("local-path").str(3, ""))
        .str(2, "skiff.io/local-path")
        .str(4, "Delete")
        .int(6, 0) // allowVolumeExpansion *bool
        .str(7, "WaitForFirstConsumer");
    let got = decode(&envelope("storage.k8s.io/v1", "StorageClass", &class)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "local-path"},
            "provisioner": "skiff.io/local-path", "reclaimPolicy": "Delete",
            "allowVolumeExpansion": false, "volumeBindingMode": "WaitForFirstConsumer",
        })
    );
}

#[test]
fn a_disruption_budget_and_an_ip_address_decode() {
    let spec = Enc::default()
        .msg(1, Enc::default().int(1, 0).int(2, 0)) // minAvailable: 0
        .msg(2, Enc::default().str_entry(1, "app", "web"));
    let status = Enc::default()
        .int(1, 0)
        .int(3, 0)
        .int(4, 0)
        .int(5, 0)
        .int(6, 0);
    let raw = Enc::default()
        .msg(1, meta("web"))
        .msg(2, spec)
        .msg(3, status);
    let got = decode(&envelope("policy/v1", "PodDisruptionBudget", &raw)).unwrap();
    assert_eq!(
        got["spec"],
        json!({"minAvailable": 0, "selector": {"matchLabels": {"app": "web"}}})
    );
    assert_eq!(
        got["status"],
        json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
    );

    let parent = Enc::default()
        .str(1, "")
        .str(2, "services")
        .str(3, "default")
        .str(4, "web");
    let raw = Enc::default()
        .msg(1, meta("10.96.0.20").str(3, ""))
        .msg(2, Enc::default().msg(1, parent));
    let got = decode(&envelope("networking.k8s.io/v1", "IPAddress", &raw)).unwrap();
    assert_eq!(
        got["spec"],
        json!({"parentRef": {"resource": "services", "namespace": "default", "name": "web"}})
    );
}
