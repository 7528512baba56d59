"""The official Python client against a real `rkube server`.

Every object the server returns is deserialized by the client's strict (pydantic) models,
so a missing required field fails here. The server is started by the fixture on a loopback
port with a fresh data directory, and stopped by PID.
"""

import os
import signal
import subprocess
import tempfile
import threading
import time

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RKUBE = os.environ.get("RKUBE_BIN", os.path.join(ROOT, "target", "debug", "rkube"))
NS = "default"


@pytest.fixture(scope="module")
def api_client():
    data_dir = tempfile.mkdtemp(prefix="rkube-py-")
    log = open(os.path.join(data_dir, "server.log"), "wb")
    proc = subprocess.Popen(
        [RKUBE, "server", "--data-dir", data_dir, "--listen", "127.0.0.1:0"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    kubeconfig = os.path.join(data_dir, "kubeconfig")
    deadline = time.monotonic() + 30
    while not os.path.exists(kubeconfig):
        assert proc.poll() is None, "rkube server exited early; see " + log.name
        assert time.monotonic() < deadline, "rkube server did not write its kubeconfig"
        time.sleep(0.05)
    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    yield client.ApiClient(cfg)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def labels(name):
    return {"app": "pytest", "case": name}


def pod_template(name):
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels(name)),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
    )


def bodies():
    """One object of every served namespaced kind, with the calls that manage it."""
    core = client.CoreV1Api
    apps = client.AppsV1Api
    disc = client.DiscoveryV1Api
    coord = client.CoordinationV1Api
    return [
        ("configmap", core, "config_map", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm", labels=labels("cm")), data={"a": "1"})),
        ("secret", core, "secret", client.V1Secret(metadata=client.V1ObjectMeta(name="py-secret", labels=labels("secret")), string_data={"k": "v"})),
        ("serviceaccount", core, "service_account", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="py-sa", labels=labels("sa")))),
        ("service", core, "service", client.V1Service(metadata=client.V1ObjectMeta(name="py-svc", labels=labels("svc")), spec=client.V1ServiceSpec(selector={"app": "x"}, ports=[client.V1ServicePort(port=80)]))),
        ("endpoints", core, "endpoints", client.V1Endpoints(metadata=client.V1ObjectMeta(name="py-ep", labels=labels("ep")), subsets=[client.V1EndpointSubset(addresses=[client.V1EndpointAddress(ip="10.0.0.1")], ports=[client.CoreV1EndpointPort(port=80)])])),
        ("pod", core, "pod", client.V1Pod(metadata=client.V1ObjectMeta(name="py-pod", labels=labels("pod")), spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))),
        ("event", core, "event", client.CoreV1Event(metadata=client.V1ObjectMeta(name="py-ev", labels=labels("ev")), involved_object=client.V1ObjectReference(kind="Pod", name="py-pod", namespace=NS), reason="Test", message="hello", type="Normal")),
        ("deployment", apps, "deployment", client.V1Deployment(metadata=client.V1ObjectMeta(name="py-deploy", labels=labels("deploy")), spec=client.V1DeploymentSpec(selector=client.V1LabelSelector(match_labels=labels("deploy")), template=pod_template("deploy")))),
        ("replicaset", apps, "replica_set", client.V1ReplicaSet(metadata=client.V1ObjectMeta(name="py-rs", labels=labels("rs")), spec=client.V1ReplicaSetSpec(selector=client.V1LabelSelector(match_labels=labels("rs")), template=pod_template("rs")))),
        ("endpointslice", disc, "endpoint_slice", client.V1EndpointSlice(metadata=client.V1ObjectMeta(name="py-slice", labels=labels("slice")), address_type="IPv4", endpoints=[client.V1Endpoint(addresses=["10.0.0.2"])])),
        ("lease", coord, "lease", client.V1Lease(metadata=client.V1ObjectMeta(name="py-lease", labels=labels("lease")), spec=client.V1LeaseSpec(holder_identity="me"))),
    ]


@pytest.mark.parametrize("kind,api_cls,suffix,body", bodies(), ids=[b[0] for b in bodies()])
def test_create_list_watch_patch_delete(api_client, kind, api_cls, suffix, body):
    api = api_cls(api_client)
    create = getattr(api, f"create_namespaced_{suffix}")
    read = getattr(api, f"read_namespaced_{suffix}")
    list_ = getattr(api, f"list_namespaced_{suffix}")
    patch = getattr(api, f"patch_namespaced_{suffix}")
    delete = getattr(api, f"delete_namespaced_{suffix}")
    name = body.metadata.name

    created = create(NS, body)
    assert created.metadata.uid
    assert created.metadata.resource_version
    assert read(name, NS).metadata.name == name

    listed = list_(NS, label_selector=f"case={body.metadata.labels['case']}")
    assert [o.metadata.name for o in listed.items] == [name]

    # A watch from the list's resourceVersion sees the patch.
    events = []
    w = watch.Watch()

    def follow():
        for ev in w.stream(list_, NS, resource_version=listed.metadata.resource_version, timeout_seconds=10):
            events.append((ev["type"], ev["object"]))
            if ev["type"] == "MODIFIED":
                w.stop()

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.2)  # Not synchronisation: the watch replays from the list's version anyway.
    patched = patch(name, NS, {"metadata": {"annotations": {"patched": "yes"}}})
    assert patched.metadata.annotations["patched"] == "yes"
    t.join(timeout=15)
    assert any(t == "MODIFIED" and o.metadata.name == name for t, o in events), events

    delete(name, NS)
    with pytest.raises(ApiException) as err:
        read(name, NS)
    assert err.value.status == 404


def test_nodes_and_namespaces(api_client):
    core = client.CoreV1Api(api_client)
    names = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    node = client.V1Node(metadata=client.V1ObjectMeta(name="py-node", labels={"x": "y"}))
    core.create_node(node)
    listed = core.list_node(label_selector="x=y")
    assert [n.metadata.name for n in listed.items] == ["py-node"]
    core.patch_node("py-node", {"spec": {"unschedulable": True}})
    assert core.read_node("py-node").spec.unschedulable is True
    core.delete_node("py-node")


def test_errors_are_status_objects(api_client):
    core = client.CoreV1Api(api_client)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_config_map("does-not-exist", NS)
    assert err.value.status == 404
    assert '"reason":"NotFound"' in err.value.body.replace(" ", "")
    bad = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Bad_Name"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map(NS, bad)
    assert err.value.status == 422
