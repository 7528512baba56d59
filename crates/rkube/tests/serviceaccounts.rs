//! Service accounts against the real `rkube server` binary: the controllers give every new
//! namespace its `default` ServiceAccount and `kube-root-ca.crt`, pod admission adds the
//! `kube-api-access-*` volume, and TokenRequest tokens authenticate the real kubectl, while
//! forged, expired and orphaned ones get 401.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rkube_apiserver::serviceaccount::{Claims, ISSUER, KubernetesClaim, ObjectClaim, Signer, TOKEN_MOUNT_PATH};
use serde_json::{Value, json};
use support::{Server, eventually};

const WAIT: Duration = Duration::from_secs(30);

/// Runs the real kubectl against the server with only a bearer token: an empty kubeconfig, so
/// that nothing else can authenticate it.
fn kubectl_with_token(server: &Server, token: &str, args: &[&str]) -> (bool, String) {
    let empty = server.data_dir.join("empty-kubeconfig");
    std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").expect("write kubeconfig");
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&empty)
        .arg("--cache-dir")
        .arg(server.data_dir.join("kubectl-cache"))
        .arg("--server")
        .arg(&server.url)
        .arg("--certificate-authority")
        .arg(server.data_dir.join("tls/ca.crt"))
        .arg(format!("--token={token}"))
        .args(["--request-timeout", "20s"])
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kubectl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The HTTP status of `GET path` with `token` and nothing else.
async fn status_with_token(server: &Server, path: &str, token: &str) -> u16 {
    use rustls_pki_types::pem::PemObject as _;
    let ca = std::fs::read(server.data_dir.join("tls/ca.crt")).expect("ca.crt");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let client =
        reqwest::Client::builder().use_preconfigured_tls(tls).timeout(Duration::from_secs(20)).build().expect("client");
    let resp = client.get(format!("{}{path}", server.url)).bearer_auth(token).send().await.expect("GET");
    resp.status().as_u16()
}

async fn request_token(server: &Server, ns: &str, sa: &str, spec: Value) -> (u16, Value) {
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    server.post(&format!("/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token"), &body).await
}

fn signer(data_dir: &Path) -> Signer {
    Signer::load_or_create(&data_dir.join("tls")).expect("the server's signing key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_get_service_accounts_and_pods_get_working_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &[]);
    let ns = format!("rkt-sa-{}", std::process::id());
    let (code, _) = server
        .post("/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .await;
    assert_eq!(code, 201);

    // The controllers fill the new namespace in.
    let sa = eventually(WAIT, "the default ServiceAccount", || async {
        let (code, sa) = server.get(&format!("/api/v1/namespaces/{ns}/serviceaccounts/default")).await;
        (code == 200).then_some(sa)
    })
    .await;
    let ca_pem = std::fs::read_to_string(dir.path().join("tls/ca.crt")).expect("ca.crt");
    let cm = eventually(WAIT, "kube-root-ca.crt", || async {
        let (code, cm) = server.get(&format!("/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt")).await;
        (code == 200).then_some(cm)
    })
    .await;
    assert_eq!(cm["data"]["ca.crt"].as_str(), Some(ca_pem.as_str()));
    assert!(cm["metadata"]["annotations"]["kubernetes.io/description"].is_string(), "{cm}");
    // The seeded namespaces get them too.
    for seeded in ["default", "kube-system"] {
        eventually(WAIT, "the seeded namespaces' ServiceAccounts", || async {
            let (code, _) = server.get(&format!("/api/v1/namespaces/{seeded}/serviceaccounts/default")).await;
            (code == 200).then_some(())
        })
        .await;
    }

    // Pod admission: the token volume and a read-only mount in every container.
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": ns},
        "spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]},
    });
    let (code, pod) = server.post(&format!("/api/v1/namespaces/{ns}/pods"), &pod).await;
    assert_eq!(code, 201, "{pod}");
    assert_eq!(pod["spec"]["serviceAccountName"], "default");
    let volume = &pod["spec"]["volumes"][0];
    let volume_name = volume["name"].as_str().expect("a volume");
    assert!(volume_name.starts_with("kube-api-access-") && volume_name.len() == "kube-api-access-".len() + 5);
    let sources = &volume["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"], json!({"expirationSeconds": 3607, "path": "token"}));
    assert_eq!(sources[1]["configMap"]["items"], json!([{"key": "ca.crt", "path": "ca.crt"}]));
    assert_eq!(sources[2]["downwardAPI"]["items"][0]["path"], "namespace");
    assert_eq!(volume["projected"]["defaultMode"], 420);
    for c in pod["spec"]["containers"].as_array().expect("containers") {
        assert_eq!(c["volumeMounts"], json!([{"name": volume_name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH}]));
    }
    let opted_out = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "no-token", "namespace": ns},
        "spec": {"automountServiceAccountToken": false, "containers": [{"name": "a", "image": "busybox"}]},
    });
    let (code, opted_out) = server.post(&format!("/api/v1/namespaces/{ns}/pods"), &opted_out).await;
    assert_eq!(code, 201);
    assert!(opted_out["spec"]["volumes"].is_null(), "{opted_out}");

    // A TokenRequest bound to the pod, as the kubelet sends it.
    let pod_uid = pod["metadata"]["uid"].as_str().expect("uid");
    let (code, tr) = request_token(
        &server,
        &ns,
        "default",
        json!({"expirationSeconds": 3607, "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "client", "uid": pod_uid}}),
    )
    .await;
    assert_eq!(code, 201, "{tr}");
    assert_eq!(tr["kind"], "TokenRequest");
    assert!(tr["status"]["expirationTimestamp"].is_string(), "{tr}");
    let token = tr["status"]["token"].as_str().expect("a token").to_owned();
    let claims = signer(dir.path()).verify(&token, now()).expect("the server's own token verifies");
    assert_eq!(claims.sub, format!("system:serviceaccount:{ns}:default"));
    assert_eq!(claims.kubernetes.serviceaccount.uid, sa["metadata"]["uid"].as_str().expect("uid"));
    assert_eq!(claims.kubernetes.pod.as_ref().map(|p| p.uid.as_str()), Some(pod_uid));
    assert_eq!(claims.exp - claims.iat, 3607);

    // The real kubectl, authenticated by nothing but the token.
    let (ok, out) = kubectl_with_token(&server, &token, &["get", "pods", "-n", &ns, "-o", "name"]);
    assert!(ok, "{out}");
    assert!(out.contains("pod/client") && out.contains("pod/no-token"), "{out}");
    let (ok, out) = kubectl_with_token(&server, &token, &["create", "token", "default", "-n", &ns]);
    assert!(ok, "kubectl create token: {out}");
    let (ok, listed) = kubectl_with_token(&server, out.trim(), &["get", "configmaps", "-n", &ns, "-o", "name"]);
    assert!(ok && listed.contains("configmap/kube-root-ca.crt"), "{listed}");

    // Bad requests.
    let (code, _) = request_token(&server, &ns, "default", json!({"expirationSeconds": 60})).await;
    assert_eq!(code, 422, "shorter than ten minutes");
    let (code, _) = request_token(&server, &ns, "nobody", json!({})).await;
    assert_eq!(code, 404);
    for odd in [json!("x"), json!({"boundObjectRef": 3}), json!({"audiences": "x", "expirationSeconds": "1h"})] {
        let (code, body) = request_token(&server, &ns, "default", odd.clone()).await;
        assert!(code == 400 || code == 422, "{odd}: {code} {body}");
    }
    let (code, _) = request_token(
        &server,
        &ns,
        "default",
        json!({"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "client", "uid": "not-the-uid"}}),
    )
    .await;
    assert_eq!(code, 409);

    // Forged: the claims say another account, under the original signature.
    let pods_path = format!("/api/v1/namespaces/{ns}/pods");
    assert_eq!(status_with_token(&server, &pods_path, &token).await, 200);
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged_claims = claims.clone();
    forged_claims.kubernetes.serviceaccount.name = "admin".into();
    let forged = format!("{}.{}.{}", parts[0], b64(&serde_json::to_vec(&forged_claims).expect("json")), parts[2]);
    assert_eq!(status_with_token(&server, &pods_path, &forged).await, 401);
    let (ok, out) = kubectl_with_token(&server, &forged, &["get", "pods", "-n", &ns]);
    assert!(!ok && (out.contains("Unauthorized") || out.contains("must be logged in")), "{out}");
    // Signed by a key that is not the server's.
    std::fs::create_dir(dir.path().join("stranger")).expect("mkdir");
    let stranger = Signer::load_or_create(&dir.path().join("stranger")).expect("another key");
    assert_eq!(status_with_token(&server, &pods_path, &stranger.sign(&claims).expect("sign")).await, 401);
    // Expired, though signed with the server's key.
    let key = signer(dir.path());
    let expired = Claims { exp: now() - 5, iat: now() - 4000, nbf: now() - 4000, ..claims.clone() };
    assert_eq!(status_with_token(&server, &pods_path, &key.sign(&expired).expect("sign")).await, 401);
    let (ok, out) = kubectl_with_token(&server, &key.sign(&expired).expect("sign"), &["get", "pods", "-n", &ns]);
    assert!(!ok, "{out}");
    // A ServiceAccount uid that is not the live one (deleted and recreated).
    let stale = Claims {
        kubernetes: KubernetesClaim {
            serviceaccount: ObjectClaim { name: "default".into(), uid: "an-old-uid".into() },
            ..claims.kubernetes.clone()
        },
        ..claims.clone()
    };
    assert_eq!(status_with_token(&server, &pods_path, &key.sign(&stale).expect("sign")).await, 401);
    // Another audience.
    let foreign = Claims { aud: vec!["https://vault.example".into()], ..claims.clone() };
    assert_eq!(status_with_token(&server, &pods_path, &key.sign(&foreign).expect("sign")).await, 401);
    assert_eq!(claims.iss, ISSUER);

    // Deleting the bound pod revokes its token; an unbound token lives on.
    let (code, unbound) = request_token(&server, &ns, "default", json!({})).await;
    assert_eq!(code, 201);
    let unbound = unbound["status"]["token"].as_str().expect("token").to_owned();
    assert_eq!(server.delete(&format!("/api/v1/namespaces/{ns}/pods/client?gracePeriodSeconds=0")).await, 200);
    eventually(WAIT, "the pod-bound token to stop working", || async {
        (status_with_token(&server, &pods_path, &token).await == 401).then_some(())
    })
    .await;
    assert_eq!(status_with_token(&server, &pods_path, &unbound).await, 200);

    // Deleting the ServiceAccount revokes every token; the controller recreates it under a
    // new uid, which old tokens do not name.
    assert_eq!(server.delete(&format!("/api/v1/namespaces/{ns}/serviceaccounts/default")).await, 200);
    let recreated = eventually(WAIT, "the default ServiceAccount to come back", || async {
        let (code, sa2) = server.get(&format!("/api/v1/namespaces/{ns}/serviceaccounts/default")).await;
        (code == 200 && sa2["metadata"]["uid"] != sa["metadata"]["uid"]).then_some(sa2)
    })
    .await;
    assert!(recreated["metadata"]["uid"].is_string());
    assert_eq!(status_with_token(&server, &pods_path, &unbound).await, 401);

    // The signing key survives a restart, and so do the tokens it signed.
    let (code, fresh) = request_token(&server, &ns, "default", json!({})).await;
    assert_eq!(code, 201);
    let fresh = fresh["status"]["token"].as_str().expect("token").to_owned();
    drop(server);
    let server = Server::start(dir.path(), &[]);
    assert_eq!(status_with_token(&server, &pods_path, &fresh).await, 200);
}

fn now() -> i64 {
    rkube_apiserver::serviceaccount::now_unix()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// End to end on `rkube up`: the kubelet mounts the token volume the admission added, and a
/// process in the pod reaches the API through the `kubernetes` Service with nothing but what
/// is mounted, as in-cluster clients (`load_incluster_config()`) do. Needs root, runc and the
/// images `images/build.sh` makes.
#[test]
fn pods_reach_the_api_with_their_mounted_token() {
    use support::cluster::{Cluster, is_ready, text};
    let c = Cluster::up(1, &[]);
    let ns = format!("rkt-sae-{}", std::process::id());
    c.kubectl_ok(&["create", "namespace", &ns]);
    c.kubectl_ok(&["run", "sa-probe", "-n", &ns, "--image=radial/busyboxplus:curl", "--", "sleep", "3600"]);
    c.eventually(Duration::from_secs(90), "the probe pod to be ready", || {
        let pod = c.get_json(&["pod", "sa-probe", "-n", &ns]);
        is_ready(&pod).then_some(())
    });
    let mounted =
        |file: &str| c.kubectl_ok(&["exec", "-n", &ns, "sa-probe", "--", "cat", &format!("{TOKEN_MOUNT_PATH}/{file}")]);
    assert_eq!(mounted("namespace"), ns);
    let ca = std::fs::read_to_string(c.data().join("server/tls/ca.crt")).expect("ca.crt");
    assert_eq!(mounted("ca.crt"), ca);
    let token = mounted("token");
    assert!(token.starts_with("eyJ") && token.split('.').count() == 3, "{token}");

    // From inside the pod, as an in-cluster client: the Service name, the mounted CA and token.
    let script = format!(
        "curl -sS --max-time 20 --cacert {TOKEN_MOUNT_PATH}/ca.crt -H \"Authorization: Bearer $(cat {TOKEN_MOUNT_PATH}/token)\" \
         https://kubernetes.default.svc/api/v1/namespaces/$(cat {TOKEN_MOUNT_PATH}/namespace)/pods/sa-probe"
    );
    let out = c.kubectl(&["exec", "-n", &ns, "sa-probe", "--", "sh", "-c", &script]);
    let body: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("not JSON: {}\n{}", text(&out), c.logs()));
    assert_eq!(body["metadata"]["name"], "sa-probe", "{body}");
    let unauthenticated = format!(
        "curl -s -o /dev/null -w '%{{http_code}}' --max-time 20 --cacert {TOKEN_MOUNT_PATH}/ca.crt \
         -H 'Authorization: Bearer {token}x' https://kubernetes.default.svc/api/v1/namespaces/{ns}/pods"
    );
    let out = c.kubectl_ok(&["exec", "-n", &ns, "sa-probe", "--", "sh", "-c", &unauthenticated]);
    assert_eq!(out.trim(), "401", "a tampered token");
}
