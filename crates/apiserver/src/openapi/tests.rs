use super::*;

fn parsed(group: &str, version: &str) -> Value {
    let bytes = document(group, version).unwrap_or_else(|| panic!("no document for {group}/{version}"));
    serde_json::from_slice(&bytes).expect("a document is JSON")
}

/// The PATCH operations carrying `gvk`, as kubectl's `query_param_verifier_v3` finds them.
fn patch_ops<'a>(doc: &'a Value, gvk: &Value) -> Vec<&'a Value> {
    doc["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, path)| path.get("patch"))
        .filter(|op| &op["x-kubernetes-group-version-kind"] == gvk)
        .collect()
}

#[test]
fn root_lists_exactly_the_served_group_versions() {
    let root = root();
    let paths = root["paths"].as_object().expect("paths");
    let mut expected: Vec<String> = RESOURCES.iter().map(|r| path_of(r.group, r.version)).collect();
    expected.sort();
    expected.dedup();
    let mut listed: Vec<&String> = paths.keys().collect();
    listed.sort();
    assert_eq!(listed, expected.iter().collect::<Vec<_>>());
    let core = paths["api/v1"]["serverRelativeURL"].as_str().expect("url");
    let hash = document_hash("", "v1").expect("hash");
    assert_eq!(core, format!("/openapi/v3/api/v1?hash={hash}"));
    assert_eq!(hash.len(), 128);
    assert!(hash.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    assert!(
        paths["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("/openapi/v3/apis/apps/v1?hash="))
    );
}

#[test]
fn hashes_are_stable_and_distinct() {
    let first = document_hash("apps", "v1").expect("apps/v1");
    // A second call serves the cached document, with the same bytes.
    let bytes = document("apps", "v1").expect("apps/v1");
    assert_eq!(hex_upper(ring::digest::digest(&ring::digest::SHA512, &bytes).as_ref()), first);
    assert_ne!(document_hash("", "v1"), document_hash("apps", "v1"));
    assert!(document("apps", "v2").is_none());
    assert!(document("batch", "v1").is_none());
    assert!(document_hash("", "v2").is_none());
}

#[test]
fn documents_are_openapi_3_objects() {
    for (group, version) in group_versions() {
        let doc = parsed(group, version);
        assert_eq!(doc["openapi"], "3.0.0", "{group}/{version}");
        assert!(doc["info"].is_object());
        assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        // Every reference resolves within the document.
        let text = serde_json::to_string(&doc).expect("serializable");
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap_or("");
            assert!(schemas.contains_key(name), "{group}/{version}: dangling $ref {name}");
        }
    }
}

#[test]
fn every_served_resource_has_a_patch_with_field_validation() {
    for r in RESOURCES {
        let doc = parsed(r.group, r.version);
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let ops = patch_ops(&doc, &gvk);
        assert!(!ops.is_empty(), "no PATCH for {}", r.kind);
        // kubectl stops at the first PATCH for the kind that it meets, in no fixed order, so
        // every one of them must have the parameter.
        for op in ops {
            let params: Vec<(&str, &str)> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p["name"].as_str()?, p["in"].as_str()?)))
                .collect();
            for name in ["fieldValidation", "dryRun", "fieldManager"] {
                assert!(params.contains(&(name, "query")), "{}: PATCH lacks {name}", r.kind);
            }
            assert_eq!(op["x-kubernetes-action"], "patch");
            let content = op["requestBody"]["content"].as_object().expect("patch body");
            assert!(content.contains_key("application/merge-patch+json"));
            assert!(!content.contains_key("application/strategic-merge-patch+json"));
        }
    }
    // What a subresource returns is described too.
    let apps = parsed("apps", "v1");
    assert!(!patch_ops(&apps, &json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})).is_empty());
}

#[test]
fn paths_follow_upstream() {
    let core = parsed("", "v1");
    let paths = &core["paths"];
    let pods = &paths["/api/v1/namespaces/{namespace}/pods"];
    assert_eq!(pods["get"]["operationId"], "listCoreV1NamespacedPod");
    assert_eq!(pods["get"]["x-kubernetes-action"], "list");
    assert_eq!(pods["post"]["operationId"], "createCoreV1NamespacedPod");
    assert_eq!(pods["delete"]["x-kubernetes-action"], "deletecollection");
    let pod = &paths["/api/v1/namespaces/{namespace}/pods/{name}"];
    for (method, id) in [
        ("get", "readCoreV1NamespacedPod"),
        ("put", "replaceCoreV1NamespacedPod"),
        ("patch", "patchCoreV1NamespacedPod"),
        ("delete", "deleteCoreV1NamespacedPod"),
    ] {
        assert_eq!(pod[method]["operationId"], id);
        assert_eq!(
            pod[method]["x-kubernetes-group-version-kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(pod[method]["tags"], json!(["core_v1"]));
    }
    assert_eq!(paths["/api/v1/pods"]["get"]["operationId"], "listCoreV1PodForAllNamespaces");
    assert_eq!(paths["/api/v1/nodes/{name}"]["get"]["operationId"], "readCoreV1Node");
    assert!(paths.get("/api/v1/namespaces/{namespace}/nodes").is_none());
    let exec = &paths["/api/v1/namespaces/{namespace}/pods/{name}/exec"];
    assert_eq!(exec["post"]["operationId"], "connectCoreV1PostNamespacedPodExec");
    assert_eq!(exec["get"]["x-kubernetes-group-version-kind"]["kind"], "PodExecOptions");
    let attach = &paths["/api/v1/namespaces/{namespace}/pods/{name}/attach"];
    assert_eq!(attach["get"]["x-kubernetes-group-version-kind"]["kind"], "PodAttachOptions");
    assert_eq!(
        paths["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]["operationId"],
        "readCoreV1NamespacedPodLog"
    );
    assert_eq!(
        paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]["operationId"],
        "createCoreV1NamespacedPodBinding"
    );
    assert_eq!(
        paths["/api/v1/namespaces/{namespace}/pods/{name}/status"]["patch"]["operationId"],
        "patchCoreV1NamespacedPodStatus"
    );

    let apps = parsed("apps", "v1");
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(scale["patch"]["operationId"], "patchAppsV1NamespacedDeploymentScale");
    assert_eq!(
        scale["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/io.k8s.api.autoscaling.v1.Scale"
    );
    let slices = parsed("discovery.k8s.io", "v1");
    let list = &slices["paths"]["/apis/discovery.k8s.io/v1/endpointslices"]["get"];
    assert_eq!(list["operationId"], "listDiscoveryV1EndpointSliceForAllNamespaces");
    assert_eq!(list["tags"], json!(["discovery_v1"]));
}

#[test]
fn schemas_carry_the_group_version_kind() {
    for r in RESOURCES {
        let doc = parsed(r.group, r.version);
        let schemas = &doc["components"]["schemas"];
        for (kind, name) in [
            (r.kind, schema_name(r.group, r.version, r.kind)),
            (r.list_kind, schema_name(r.group, r.version, r.list_kind)),
        ] {
            let schema = &schemas[&name];
            assert!(schema.is_object(), "no schema {name}");
            assert_eq!(
                schema["x-kubernetes-group-version-kind"],
                json!([{"group": r.group, "kind": kind, "version": r.version}])
            );
            assert_eq!(schema["type"], "object");
        }
        // Every kind has its k8s-openapi type, so its schema has real fields.
        let t =
            kind_type_of(r.group, r.version, r.kind).unwrap_or_else(|| panic!("no k8s-openapi type for {}", r.kind));
        assert_eq!(t.kind, r.kind);
        assert!(schemas[schema_name(r.group, r.version, r.kind)]["properties"]["metadata"].is_object(), "{}", r.kind);
    }
}

#[test]
fn schema_names_match_k8s_openapi() {
    for t in KIND_TYPES {
        let mut generator = SchemaSettings::openapi3().into_generator();
        (t.add)(&mut generator);
        let name = schema_name(t.group, t.version, t.kind);
        assert!(generator.definitions().contains_key(&name), "{name} not among {:?}", generator.definitions().keys());
    }
}

#[test]
fn pod_schema_is_explainable() {
    let core = parsed("", "v1");
    let schemas = &core["components"]["schemas"];
    let pod = &schemas["io.k8s.api.core.v1.Pod"];
    assert!(pod.get("required").is_none(), "metadata is not required upstream");
    assert_eq!(pod["properties"]["spec"]["allOf"][0]["$ref"], "#/components/schemas/io.k8s.api.core.v1.PodSpec");
    assert!(pod["properties"]["spec"]["description"].as_str().is_some_and(|d| !d.is_empty()));
    let spec = &schemas["io.k8s.api.core.v1.PodSpec"];
    assert_eq!(spec["required"], json!(["containers"]));
    let containers = &spec["properties"]["containers"];
    assert_eq!(containers["type"], "array");
    assert_eq!(containers["items"]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Container");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    let container = &schemas["io.k8s.api.core.v1.Container"];
    assert_eq!(container["properties"]["ports"]["x-kubernetes-patch-merge-key"], "containerPort");
    assert_eq!(container["properties"]["image"]["type"], "string");
    // Lists upstream replaces carry no strategy.
    assert!(spec["properties"]["tolerations"].get("x-kubernetes-patch-strategy").is_none());
    let meta = &schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
    assert_eq!(meta["properties"]["ownerReferences"]["x-kubernetes-patch-merge-key"], "uid");
    assert_eq!(meta["properties"]["finalizers"]["x-kubernetes-patch-strategy"], "merge");
    let service_spec = &schemas["io.k8s.api.core.v1.ServiceSpec"];
    assert_eq!(service_spec["properties"]["ports"]["x-kubernetes-patch-merge-key"], "port");
    let list = &schemas["io.k8s.api.core.v1.PodList"];
    assert_eq!(list["properties"]["items"]["items"]["$ref"], "#/components/schemas/io.k8s.api.core.v1.Pod");
    assert!(list["properties"]["kind"]["description"].as_str().is_some_and(|d| !d.is_empty()));
}

#[test]
fn v2_is_an_empty_protobuf_document_for_kubectl() {
    let kubectl = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    assert_eq!(v2(Some(kubectl)), Some((V2_PROTOBUF_CONTENT_TYPE, Bytes::new())));
    assert!(v2(Some("application/json")).is_none());
    assert!(v2(None).is_none());
}
