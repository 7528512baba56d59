//! Bad input gets the Status code and reason a client can act on, never a 500, and changes
//! nothing: each case compares a list of every ConfigMap (whose resourceVersion is the
//! store's newest revision, so it moves on any write anywhere) before and after.

mod support;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use support::{Cluster, expect_json, expect_status};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// Everything a client can see of the ConfigMaps, and the cluster's revision.
async fn snapshot(cluster: &Cluster) -> Value {
    let resp = cluster.client().get(cluster.url("/api/v1/configmaps")).send().await.expect("list");
    expect_json(resp, 200).await
}

async fn assert_unchanged(cluster: &Cluster, before: &Value, case: &str) {
    let after = snapshot(cluster).await;
    assert_eq!(&after, before, "{case}: the cluster changed");
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]},
            },
        },
    })
}

/// POSTs raw `body` with `content_type` to `path`.
async fn post_raw(
    cluster: &Cluster,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    cluster
        .client()
        .post(cluster.url(path))
        .header(CONTENT_TYPE, HeaderValue::from_str(content_type).expect("content type"))
        .body(body)
        .send()
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_mismatched_bodies_are_bad_requests() {
    let cluster = Cluster::start().await;
    let existing =
        cluster.client().post(cluster.url(CONFIGMAPS)).json(&configmap("existing")).send().await.expect("create");
    expect_json(existing, 201).await;
    let before = snapshot(&cluster).await;

    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("truncated JSON", "application/json", br#"{"apiVersion": "v1", "kind": "ConfigMap", "metad"#.to_vec(), ""),
        ("JSON that is not an object", "application/json", b"[1, 2, 3]".to_vec(), ""),
        (
            "malformed YAML",
            "application/yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: [name: x\n  data: {".to_vec(),
            "",
        ),
        ("YAML that is not UTF-8", "application/yaml", b"apiVersion: v1\nkind: \xff\xfe\n".to_vec(), ""),
        (
            "the wrong apiVersion",
            "application/json",
            serde_json::to_vec(&json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}))
                .expect("json"),
            "does not match the expected API version",
        ),
        (
            "the wrong kind",
            "application/json",
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}))
                .expect("json"),
            "cannot be handled as a ConfigMap",
        ),
        (
            "a namespace other than the URL's",
            "application/json",
            serde_json::to_vec(&json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}
            }))
            .expect("json"),
            "does not match the namespace sent on the request",
        ),
    ];
    for (case, content_type, body, message) in cases {
        let resp = post_raw(&cluster, CONFIGMAPS, content_type, body).await;
        let status = expect_status(resp, 400, "BadRequest").await;
        let got = status["message"].as_str().unwrap_or("");
        assert!(got.contains(message), "{case}: message {got:?} should mention {message:?}");
        assert_unchanged(&cluster, &before, case).await;
    }

    // A malformed update of an existing object leaves it as it was.
    let resp = cluster
        .client()
        .put(cluster.url(&format!("{CONFIGMAPS}/existing")))
        .header(CONTENT_TYPE, "application/json")
        .body(r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "existing"}, "data": {"k": "#)
        .send()
        .await
        .expect("put");
    expect_status(resp, 400, "BadRequest").await;
    assert_unchanged(&cluster, &before, "malformed PUT").await;
}

/// A protobuf varint.
fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited protobuf field.
fn field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
    varint((number << 3) | 2, out);
    varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// A ConfigMap in the Kubernetes protobuf envelope, as kubectl 1.32+ sends it, and the
/// offset at which the object's own bytes (`raw`) start.
fn protobuf_configmap(name: &str) -> (Vec<u8>, usize) {
    let mut meta = Vec::new();
    field(1, name.as_bytes(), &mut meta);
    let mut entry = Vec::new();
    field(1, b"k", &mut entry);
    field(2, b"v", &mut entry);
    let mut raw = Vec::new();
    field(1, &meta, &mut raw);
    field(2, &entry, &mut raw);
    let mut type_meta = Vec::new();
    field(1, b"v1", &mut type_meta);
    field(2, b"ConfigMap", &mut type_meta);
    let mut body = b"k8s\0".to_vec();
    field(1, &type_meta, &mut body);
    let raw_start = body.len();
    field(2, &raw, &mut body);
    (body, raw_start)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_protobuf_is_a_bad_request_never_a_500() {
    let cluster = Cluster::start().await;
    let before = snapshot(&cluster).await;

    for (case, body) in [
        ("garbage", b"\x00\x01\x02garbage\xff\xff".to_vec()),
        ("a bad varint", b"k8s\0\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01".to_vec()),
        ("JSON sent as protobuf", serde_json::to_vec(&configmap("x")).expect("json")),
    ] {
        let resp = post_raw(&cluster, CONFIGMAPS, PROTOBUF, body).await;
        let status = expect_status(resp, 400, "BadRequest").await;
        assert!(status["message"].as_str().unwrap_or("").contains("protobuf"), "{case}: {status}");
        assert_unchanged(&cluster, &before, case).await;
    }

    // Every truncation of a valid envelope is refused with a 4xx: 400 when it cuts through
    // a field, and 422 (a ConfigMap without a name) where it falls exactly between the
    // envelope's fields, which leaves a well-formed message that lacks the object, as
    // upstream's decoder also reads it. Nothing is ever created.
    let (body, raw_start) = protobuf_configmap("from-protobuf");
    let between_fields = [b"k8s\0".len(), raw_start];
    for len in 0..body.len() {
        let resp = post_raw(&cluster, CONFIGMAPS, PROTOBUF, body[..len].to_vec()).await;
        let code = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        if between_fields.contains(&len) {
            assert!(code == 400 || code == 422, "cut at {len} of {}: {code} {text}", body.len());
        } else {
            assert_eq!(code, 400, "cut at {len} of {}: {text}", body.len());
        }
        assert_unchanged(&cluster, &before, &format!("protobuf cut at {len}")).await;
    }

    // The whole envelope is valid: the truncations failed because they were truncated.
    let created = expect_json(post_raw(&cluster, CONFIGMAPS, PROTOBUF, body).await, 201).await;
    assert_eq!(created["metadata"]["name"], "from-protobuf");
    assert_eq!(created["data"], json!({"k": "v"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_fail_under_strict_and_are_dropped_with_a_warning_otherwise() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let mut obj = deployment("web");
    obj["spec"]["foo"] = json!("bar");
    let before = snapshot(&cluster).await;

    let resp = client
        .post(cluster.url(&format!("{DEPLOYMENTS}?fieldValidation=Strict")))
        .json(&obj)
        .send()
        .await
        .expect("post");
    let status = expect_status(resp, 400, "BadRequest").await;
    let message = status["message"].as_str().unwrap_or("");
    assert!(message.contains(r#"unknown field "spec.foo""#), "{message}");
    assert_unchanged(&cluster, &before, "strict create").await;
    let resp = client.get(cluster.url(&format!("{DEPLOYMENTS}/web"))).send().await.expect("get");
    expect_status(resp, 404, "NotFound").await;

    // Without Strict (Warn is the default) the object is created without the field, and
    // the response warns about it, as kubectl prints.
    let resp = client.post(cluster.url(DEPLOYMENTS)).json(&obj).send().await.expect("post");
    let warnings: Vec<String> =
        resp.headers().get_all("Warning").iter().map(|v| v.to_str().unwrap_or("").to_owned()).collect();
    let created = expect_json(resp, 201).await;
    assert!(created["spec"].get("foo").is_none(), "{created}");
    assert!(
        warnings.iter().any(|w| w.starts_with("299 ") && w.contains(r#"unknown field \"spec.foo\""#)),
        "{warnings:?}"
    );
    let stored =
        expect_json(client.get(cluster.url(&format!("{DEPLOYMENTS}/web"))).send().await.expect("get"), 200).await;
    assert!(stored["spec"].get("foo").is_none(), "{stored}");

    // Ignore drops it silently.
    let mut other = deployment("quiet");
    other["spec"]["foo"] = json!("bar");
    let resp = client
        .post(cluster.url(&format!("{DEPLOYMENTS}?fieldValidation=Ignore")))
        .json(&other)
        .send()
        .await
        .expect("post");
    assert!(resp.headers().get("Warning").is_none());
    expect_json(resp, 201).await;

    // An unknown fieldValidation value is itself a bad request.
    let before = snapshot(&cluster).await;
    let resp = client
        .post(cluster.url(&format!("{DEPLOYMENTS}?fieldValidation=Loose")))
        .json(&deployment("loose"))
        .send()
        .await
        .expect("post");
    expect_status(resp, 400, "BadRequest").await;
    assert_unchanged(&cluster, &before, "fieldValidation=Loose").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_and_labels_are_invalid() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let before = snapshot(&cluster).await;

    let resp = client.post(cluster.url(CONFIGMAPS)).json(&configmap("Bad_Name")).send().await.expect("post");
    let status = expect_status(resp, 422, "Invalid").await;
    assert_eq!(status["details"]["name"], "Bad_Name");
    assert_eq!(status["details"]["kind"], "ConfigMap");
    let causes = status["details"]["causes"].as_array().cloned().unwrap_or_default();
    assert!(causes.iter().any(|c| c["field"] == "metadata.name" && c["reason"] == "FieldValueInvalid"), "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or("")
            .starts_with(r#"ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name""#),
        "{status}"
    );
    assert_unchanged(&cluster, &before, "Bad_Name").await;

    for (case, labels, field) in [
        ("a label key with spaces", json!({"bad key!": "v"}), "metadata.labels"),
        ("a label value with spaces", json!({"ok": "bad value!"}), "metadata.labels[ok]"),
        ("a label value of 64 characters", json!({"ok": "a".repeat(64)}), "metadata.labels[ok]"),
    ] {
        let mut obj = configmap("labelled");
        obj["metadata"]["labels"] = labels;
        let resp = client.post(cluster.url(CONFIGMAPS)).json(&obj).send().await.expect("post");
        let status = expect_status(resp, 422, "Invalid").await;
        let causes = status["details"]["causes"].as_array().cloned().unwrap_or_default();
        assert!(causes.iter().any(|c| c["field"] == field), "{case}: {status}");
        assert_unchanged(&cluster, &before, case).await;
    }

    // An update that would make a valid object invalid is refused the same way.
    let created =
        expect_json(client.post(cluster.url(CONFIGMAPS)).json(&configmap("fine")).send().await.expect("post"), 201)
            .await;
    let before = snapshot(&cluster).await;
    let mut bad = created.clone();
    bad["metadata"]["labels"] = json!({"bad key!": "v"});
    let resp = client.put(cluster.url(&format!("{CONFIGMAPS}/fine"))).json(&bad).send().await.expect("put");
    expect_status(resp, 422, "Invalid").await;
    assert_unchanged(&cluster, &before, "invalid update").await;
}

/// An object with neither a name nor a generateName is invalid, as upstream answers
/// (`metadata.name: Required value: name or generateName is required`); it must not be
/// created under a random name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_without_name_or_generate_name_is_invalid() {
    let cluster = Cluster::start().await;
    let before = snapshot(&cluster).await;
    let nameless = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}, "data": {"k": "v"}});
    let resp = cluster.client().post(cluster.url(CONFIGMAPS)).json(&nameless).send().await.expect("post");
    let status = expect_status(resp, 422, "Invalid").await;
    let causes = status["details"]["causes"].as_array().cloned().unwrap_or_default();
    assert!(causes.iter().any(|c| c["field"] == "metadata.name" && c["reason"] == "FieldValueRequired"), "{status}");
    assert_unchanged(&cluster, &before, "nameless create").await;

    // With a generateName the server picks the name.
    let mut generated = nameless.clone();
    generated["metadata"]["generateName"] = json!("gen-");
    let resp = cluster.client().post(cluster.url(CONFIGMAPS)).json(&generated).send().await.expect("post");
    let created = expect_json(resp, 201).await;
    let name = created["metadata"]["name"].as_str().unwrap_or("");
    assert!(name.starts_with("gen-") && name.len() == "gen-".len() + 5, "{created}");
}

/// Request bodies over 3 MiB are refused before they are decoded, as upstream does, so a
/// client cannot make the server buffer and parse arbitrarily large documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_mib_body_is_too_large() {
    let cluster = Cluster::start().await;
    let before = snapshot(&cluster).await;
    let mut obj = configmap("big");
    obj["data"] = json!({"blob": "x".repeat(4 * 1024 * 1024)});
    let resp = cluster.client().post(cluster.url(CONFIGMAPS)).json(&obj).send().await.expect("post");
    expect_status(resp, 413, "RequestEntityTooLarge").await;
    assert_unchanged(&cluster, &before, "4 MiB body").await;
    let resp = cluster.client().get(cluster.url(&format!("{CONFIGMAPS}/big"))).send().await.expect("get");
    expect_status(resp, 404, "NotFound").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_valid_credentials_are_unauthorized() {
    let cluster = Cluster::start().await;
    let before = snapshot(&cluster).await;
    let anonymous = cluster.anonymous_client();

    let resp = anonymous.get(cluster.url(CONFIGMAPS)).send().await.expect("get");
    let status = expect_status(resp, 401, "Unauthorized").await;
    assert_eq!(status["message"], "Unauthorized");
    let resp = anonymous.post(cluster.url(CONFIGMAPS)).json(&configmap("sneaky")).send().await.expect("post");
    expect_status(resp, 401, "Unauthorized").await;
    for token in ["wrong", "", &format!("{}x", cluster.server.pki.admin_token)] {
        let resp = anonymous
            .post(cluster.url(CONFIGMAPS))
            .bearer_auth(token)
            .json(&configmap("sneaky"))
            .send()
            .await
            .expect("post");
        expect_status(resp, 401, "Unauthorized").await;
    }
    let resp = anonymous
        .get(cluster.url("/api/v1/namespaces"))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .expect("get");
    expect_status(resp, 401, "Unauthorized").await;
    assert_unchanged(&cluster, &before, "unauthenticated writes").await;

    // The admin token works on a connection without a client certificate.
    let resp =
        anonymous.get(cluster.url(CONFIGMAPS)).bearer_auth(&cluster.server.pki.admin_token).send().await.expect("get");
    expect_json(resp, 200).await;

    // Health and version are public, as upstream's system:public-info-viewer allows.
    let healthz = anonymous.get(cluster.url("/healthz")).send().await.expect("healthz");
    assert_eq!(healthz.status().as_u16(), 200);
    assert_eq!(healthz.text().await.expect("body"), "ok");
    let version = expect_json(anonymous.get(cluster.url("/version")).send().await.expect("version"), 200).await;
    assert!(version["gitVersion"].as_str().unwrap_or("").starts_with("v1."), "{version}");
    assert!(version["major"].is_string() && version["minor"].is_string(), "{version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_parameters_and_media_types() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let created = client.post(cluster.url(CONFIGMAPS)).json(&configmap("target")).send().await.expect("post");
    let target = expect_json(created, 201).await;
    let before = snapshot(&cluster).await;

    for path in ["/api/v1/namespaces/default/nonsense", "/apis/nonsense.example.com/v1/things", "/nonsense", "/api/v2"]
    {
        let resp = client.get(cluster.url(path)).send().await.expect("get");
        expect_status(resp, 404, "NotFound").await;
    }

    // A PATCH in a media type that is not a patch format.
    let resp = client
        .patch(cluster.url(&format!("{CONFIGMAPS}/target")))
        .header(CONTENT_TYPE, "text/plain")
        .body("data.k=w")
        .send()
        .await
        .expect("patch");
    expect_status(resp, 415, "UnsupportedMediaType").await;
    assert_unchanged(&cluster, &before, "text/plain PATCH").await;

    // A DELETE with a propagation policy that does not exist, in the query or in the body.
    let resp = client
        .delete(cluster.url(&format!("{CONFIGMAPS}/target?propagationPolicy=Sideways")))
        .send()
        .await
        .expect("delete");
    let status = expect_status(resp, 422, "Invalid").await;
    let causes = status["details"]["causes"].as_array().cloned().unwrap_or_default();
    assert!(
        causes.iter().any(|c| c["field"] == "propagationPolicy" && c["reason"] == "FieldValueNotSupported"),
        "{status}"
    );
    let resp = client
        .delete(cluster.url(&format!("{CONFIGMAPS}/target")))
        .json(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Sideways"}))
        .send()
        .await
        .expect("delete");
    expect_status(resp, 422, "Invalid").await;
    assert_unchanged(&cluster, &before, "invalid propagationPolicy").await;
    let still =
        expect_json(client.get(cluster.url(&format!("{CONFIGMAPS}/target"))).send().await.expect("get"), 200).await;
    assert_eq!(still["metadata"]["uid"], target["metadata"]["uid"]);

    // Query parameters a list cannot use; the selectors are refused on a watch as well,
    // before its stream starts.
    let resp = client.get(cluster.url(&format!("{CONFIGMAPS}?limit=abc"))).send().await.expect("list");
    expect_status(resp, 400, "BadRequest").await;
    for (case, query) in [
        ("a label selector that does not parse", "labelSelector=app%20in%20(web"),
        ("a label selector with a bad operator", "labelSelector=app%3D%3D%3Dweb"),
        ("a field selector on an unsupported field", "fieldSelector=data.k%3Dv"),
        ("a field selector that does not parse", "fieldSelector=%3D%3D"),
    ] {
        for watch in ["", "watch=true&"] {
            let resp = client.get(cluster.url(&format!("{CONFIGMAPS}?{watch}{query}"))).send().await.expect("list");
            assert_eq!(resp.status().as_u16(), 400, "{case} ({watch}{query})");
            expect_status(resp, 400, "BadRequest").await;
        }
    }
    let resp = client.get(cluster.url(&format!("{CONFIGMAPS}?fieldSelector=data.k%3Dv"))).send().await.expect("list");
    let status = expect_status(resp, 400, "BadRequest").await;
    assert!(status["message"].as_str().unwrap_or("").contains("data.k"), "{status}");
    assert_unchanged(&cluster, &before, "bad list parameters").await;

    // Creating in a namespace that does not exist.
    let resp = client
        .post(cluster.url("/api/v1/namespaces/x/configmaps"))
        .json(&configmap("orphan"))
        .send()
        .await
        .expect("post");
    let status = expect_status(resp, 404, "NotFound").await;
    assert_eq!(status["message"], r#"namespaces "x" not found"#);
    assert_eq!(status["details"]["name"], "x");
    assert_eq!(status["details"]["kind"], "namespaces");
    assert_unchanged(&cluster, &before, "create in a missing namespace").await;
}
