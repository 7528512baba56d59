"""The official Python client's in-cluster configuration against a real `rkube server`.

`load_incluster_config()` reads a token and a CA from the service-account mount and the API
address from the environment. Here the files are written from a TokenRequest made with the
admin credentials (the kubelet makes the same request for a pod's mount), and the loader is
pointed at them, so the test runs without a pod but exercises the client's own code path.
"""

import os
import signal
import subprocess
import tempfile
import time
from urllib.parse import urlparse

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.incluster_config import InClusterConfigLoader

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RKUBE = os.environ.get("RKUBE_BIN", os.path.join(ROOT, "target", "debug", "rkube"))


@pytest.fixture(scope="module")
def server():
    data_dir = tempfile.mkdtemp(prefix="rkube-py-sa-")
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
    yield data_dir, cfg
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def wait_for(what, f, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return f()
        except ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise AssertionError("timed out waiting for " + what) from e
        time.sleep(0.1)


def incluster(data_dir, admin_cfg, token):
    token_file = os.path.join(data_dir, "sa-token")
    with open(token_file, "w") as f:
        f.write(token)
    url = urlparse(admin_cfg.host)
    cfg = client.Configuration()
    InClusterConfigLoader(
        token_filename=token_file,
        cert_filename=os.path.join(data_dir, "tls", "ca.crt"),
        environ={"KUBERNETES_SERVICE_HOST": url.hostname, "KUBERNETES_SERVICE_PORT": str(url.port)},
    ).load_and_set(cfg)
    return client.CoreV1Api(client.ApiClient(cfg))


def test_incluster_config_authenticates_with_a_service_account_token(server):
    data_dir, admin_cfg = server
    admin = client.CoreV1Api(client.ApiClient(admin_cfg))
    # The controllers create both in every namespace.
    wait_for("the default ServiceAccount", lambda: admin.read_namespaced_service_account("default", "default"))
    root_ca = wait_for("kube-root-ca.crt", lambda: admin.read_namespaced_config_map("kube-root-ca.crt", "default"))
    with open(os.path.join(data_dir, "tls", "ca.crt")) as f:
        assert root_ca.data["ca.crt"] == f.read()

    # The client's strict models check the TokenRequest's shape.
    tr = admin.create_namespaced_service_account_token(
        "default", "default", client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    )
    assert tr.status.token.count(".") == 2
    assert tr.status.expiration_timestamp is not None

    api = incluster(data_dir, admin_cfg, tr.status.token)
    pods = api.list_namespaced_pod("default")
    assert pods.kind == "PodList" or pods.items is not None

    forged = tr.status.token[:-4] + ("AAAA" if not tr.status.token.endswith("AAAA") else "BBBB")
    with pytest.raises(ApiException) as err:
        incluster(data_dir, admin_cfg, forged).list_namespaced_pod("default")
    assert err.value.status == 401
