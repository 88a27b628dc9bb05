//! What upstream clients and manifests expect of the API beyond the happy path: Secret
//! manifests of the Kubernetes documentation whose base64 `data` is a YAML block with line
//! breaks (Go's decoder skips them, so kube-apiserver accepts them), applied with kubectl.

use skiff_e2e::{Backend, Cluster, ok};

/// The dockercfg, ssh-auth and tls Secrets of the Kubernetes documentation ("Secrets",
/// "Types of Secret"), their base64 written as `|` blocks wrapped at 76 columns.
const DOC_SECRETS: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: secret-dockercfg
type: kubernetes.io/dockercfg
data:
  .dockercfg: |
    eyJhdXRocyI6eyJodHRwczovL2V4YW1wbGUvdjEvIjp7ImF1dGgiOiJvcGVuc2VzYW1lIn19fQo=
---
apiVersion: v1
kind: Secret
metadata:
  name: secret-ssh-auth
type: kubernetes.io/ssh-auth
data:
  # the data is abbreviated in this example
  ssh-privatekey: |
    UG91cmluZzYlRW1vdGljb24lU2N1YmE=
---
apiVersion: v1
kind: Secret
metadata:
  name: secret-tls
type: kubernetes.io/tls
data:
  # values are base64 encoded, which obscures them but does NOT secure them
  tls.crt: |
    LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUMyRENDQWNDZ0F3SUJBZ0lCQURBTkJna3Fo
    a2lHOXcwQkFRc0ZBREFlTVJ3d0dnWURWUVFERXhOcmRXSmwKLi4uLi4uLi4uLi4uLi4uLi4uLi4u
    Li4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4uLi4u
    Li4uLi4uCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K
  tls.key: |
    RXhhbXBsZSBkYXRhIGZvciB0aGUgVExTIGNydCBmaWVsZA==
"#;

#[test]
fn secrets_with_line_broken_base64_apply_as_on_kubernetes() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let out = ok(&c.kubectl_stdin(&["apply", "-f", "-"], Some(DOC_SECRETS)));
    for name in ["secret-dockercfg", "secret-ssh-auth", "secret-tls"] {
        assert!(out.contains(&format!("secret/{name} created")), "{out}");
    }
    let get = |name: &str, key: &str| {
        let path = format!("{{.data.{}}}", key.replace('.', "\\."));
        ok(&c.kubectl(&["get", "secret", name, "-o", &format!("jsonpath={path}")]))
    };
    // The value is the block with its line breaks left out.
    let block = DOC_SECRETS.split("tls.crt: |\n").nth(1).unwrap();
    let crt: String = block
        .lines()
        .take_while(|l| !l.trim_start().starts_with("tls.key"))
        .map(str::trim)
        .collect();
    assert!(crt.len() > 76, "{crt}");
    assert_eq!(get("secret-tls", "tls.crt"), crt);
    assert_eq!(
        get("secret-ssh-auth", "ssh-privatekey"),
        "UG91cmluZzYlRW1vdGljb24lU2N1YmE="
    );
    // Applying the same manifests again succeeds and keeps the values.
    ok(&c.kubectl_stdin(&["apply", "-f", "-"], Some(DOC_SECRETS)));
    assert_eq!(
        get("secret-ssh-auth", "ssh-privatekey"),
        "UG91cmluZzYlRW1vdGljb24lU2N1YmE="
    );
}
