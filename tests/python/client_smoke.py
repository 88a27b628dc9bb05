"""The official Kubernetes Python client against skiff: create, list, watch, patch, delete."""
import sys
import threading

from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
apps = client.AppsV1Api()
ns = "default"

seen = []
ready = threading.Event()


def watcher():
    w = watch.Watch()
    for ev in w.stream(v1.list_namespaced_config_map, ns, label_selector="suite=python", timeout_seconds=20):
        ready.set()
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["type"] == "DELETED":
            w.stop()


cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm", labels={"suite": "python"}), data={"k": "v"})
v1.create_namespaced_config_map(ns, cm)
t = threading.Thread(target=watcher)
t.start()
ready.wait(10)

names = [c.metadata.name for c in v1.list_namespaced_config_map(ns, label_selector="suite=python").items]
assert names == ["py-cm"], names

v1.patch_namespaced_config_map("py-cm", ns, {"data": {"k": "v2"}})
assert v1.read_namespaced_config_map("py-cm", ns).data["k"] == "v2"

dep = client.V1Deployment(
    metadata=client.V1ObjectMeta(name="py-dep"),
    spec=client.V1DeploymentSpec(
        replicas=2,
        selector=client.V1LabelSelector(match_labels={"app": "py"}),
        template=client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels={"app": "py"}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")]),
        ),
    ),
)
created = apps.create_namespaced_deployment(ns, dep)
assert created.spec.strategy.type == "RollingUpdate", created.spec.strategy
scale = apps.patch_namespaced_deployment_scale("py-dep", ns, {"spec": {"replicas": 4}})
assert scale.spec.replicas == 4
apps.delete_namespaced_deployment("py-dep", ns)

try:
    v1.read_namespaced_config_map("nope", ns)
    raise SystemExit("expected 404")
except client.exceptions.ApiException as e:
    assert e.status == 404, e.status

v1.delete_namespaced_config_map("py-cm", ns)
t.join(25)
types = [s[0] for s in seen]
assert "ADDED" in types and "MODIFIED" in types and "DELETED" in types, seen
print("python client ok", seen)
