//! The official Python client (PyPI `kubernetes`, in the virtualenv the test command
//! creates) creates, lists, watches, patches, scales and deletes against skiff.

use std::process::Command;

use skiff_e2e::{Backend, Cluster, ok, repo_root};

#[test]
fn python_client_round_trip() {
    let python = std::env::var("SKIFF_PYTHON")
        .unwrap_or_else(|_| repo_root().join(".venv/bin/python").display().to_string());
    assert!(
        std::path::Path::new(&python).exists(),
        "{python} missing: run scripts/test.sh, which creates the virtualenv"
    );
    let c = Cluster::start(Backend::Embedded).unwrap();
    let script = repo_root().join("tests/python/client_smoke.py");
    let out = Command::new(&python)
        .arg(script)
        .arg(&c.kubeconfig)
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("python client ok"), "{stdout}");
}
