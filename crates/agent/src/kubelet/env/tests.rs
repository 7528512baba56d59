//! Unit tests of the environment: precedence, expansion and every `valueFrom` kind, with the
//! objects in a `MapSource`.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::json;

use super::*;
use crate::kubelet::source::MapSource;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web-0", "namespace": "shop", "uid": "1234-uid",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "say \"hi\"\n"}
        },
        "spec": spec,
    }))
    .expect("a valid pod")
}

fn container(value: serde_json::Value) -> Container {
    serde_json::from_value(value).expect("a valid container")
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.to_owned());
    s.metadata.namespace = Some("shop".to_owned());
    s.data = Some(data.iter().map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec()))).collect());
    s
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    let mut c = ConfigMap::default();
    c.metadata.name = Some(name.to_owned());
    c.metadata.namespace = Some("shop".to_owned());
    c.data = Some(data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
    c
}

fn services() -> Vec<serde_json::Value> {
    vec![
        json!({"metadata": {"name": "kubernetes", "namespace": "default"},
               "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}),
        json!({"metadata": {"name": "db", "namespace": "shop"},
               "spec": {"clusterIP": "10.43.0.9", "ports": [{"port": 5432, "protocol": "TCP"}]}}),
        json!({"metadata": {"name": "other", "namespace": "elsewhere"},
               "spec": {"clusterIP": "10.43.0.7", "ports": [{"port": 80, "protocol": "TCP"}]}}),
    ]
}

struct Fixture {
    pod: Pod,
    services: Vec<serde_json::Value>,
    allocatable: BTreeMap<String, Quantity>,
    pod_ips: Vec<String>,
    host_ips: Vec<String>,
}

impl Fixture {
    fn new(pod: Pod) -> Self {
        Fixture {
            pod,
            services: services(),
            allocatable: BTreeMap::from([
                ("cpu".to_owned(), Quantity("4".to_owned())),
                ("memory".to_owned(), Quantity("8Gi".to_owned())),
                ("ephemeral-storage".to_owned(), Quantity("100Gi".to_owned())),
            ]),
            pod_ips: vec!["10.42.1.5".to_owned(), "fd00::5".to_owned()],
            host_ips: vec!["172.30.0.2".to_owned()],
        }
    }

    fn ctx(&self) -> EnvContext<'_> {
        EnvContext {
            pod: &self.pod,
            node_name: "node-a",
            pod_ips: &self.pod_ips,
            host_ips: &self.host_ips,
            services: &self.services,
            node_allocatable: &self.allocatable,
        }
    }

    async fn resolve(&self, c: &Container, source: &MapSource) -> Result<Vec<(String, String)>, EnvError> {
        resolve(&self.ctx(), c, source).await
    }
}

fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn names(env: &[(String, String)]) -> Vec<&str> {
    env.iter().map(|(k, _)| k.as_str()).collect()
}

#[tokio::test]
async fn service_links_come_first_and_follow_enable_service_links() {
    let f = Fixture::new(pod(json!({"containers": [{"name": "c"}], "nodeName": "node-a"})));
    let c = container(json!({"name": "c", "env": [{"name": "A", "value": "1"}]}));
    let env = f.resolve(&c, &MapSource::default()).await.expect("resolves");
    assert_eq!(env.first().map(|(k, _)| k.as_str()), Some("DB_SERVICE_HOST"), "services in name order");
    assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
    assert_eq!(get(&env, "DB_SERVICE_HOST"), Some("10.43.0.9"));
    assert_eq!(get(&env, "OTHER_SERVICE_HOST"), None, "another namespace's service is not linked");
    assert_eq!(env.last(), Some(&("A".to_owned(), "1".to_owned())));

    let f = Fixture::new(pod(json!({"containers": [{"name": "c"}], "enableServiceLinks": false})));
    let env = f.resolve(&c, &MapSource::default()).await.expect("resolves");
    assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.43.0.1"), "the master service is always there");
    assert_eq!(get(&env, "DB_SERVICE_HOST"), None);
}

#[tokio::test]
async fn env_overrides_env_from_which_overrides_service_links_without_duplicates() {
    let f = Fixture::new(pod(json!({"containers": [{"name": "c"}]})));
    let source = MapSource::default();
    source.put_config_map(config_map("cfg", &[("MODE", "fast"), ("DB_SERVICE_HOST", "from-cm"), ("X", "cm")]));
    source.put_secret(secret("sec", &[("X", "secret"), ("TOKEN", "s3")]));
    let c = container(json!({"name": "c",
        "envFrom": [{"configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}, "prefix": "S_"},
                    {"secretRef": {"name": "sec"}}],
        "env": [{"name": "MODE", "value": "slow"}]}));
    let env = f.resolve(&c, &source).await.expect("resolves");
    assert_eq!(get(&env, "MODE"), Some("slow"));
    assert_eq!(get(&env, "DB_SERVICE_HOST"), Some("from-cm"));
    assert_eq!(get(&env, "X"), Some("secret"), "a later envFrom source wins");
    assert_eq!(get(&env, "S_TOKEN"), Some("s3"));
    let mut seen = names(&env);
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "every variable appears once: {env:?}");
}

#[tokio::test]
async fn expansion_sees_earlier_values_and_service_links_but_not_later_ones() {
    let f = Fixture::new(pod(json!({"containers": [{"name": "c"}]})));
    let c = container(json!({"name": "c", "env": [
        {"name": "HOST", "value": "db"},
        {"name": "URL", "value": "pg://$(HOST):$(DB_SERVICE_PORT)/$(LATER)"},
        {"name": "LATER", "value": "x"},
        {"name": "ESCAPED", "value": "$$(HOST) $(HOST"},
        {"name": "FROM_FIELD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NOT_EXPANDED", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
    ]}));
    let source = MapSource::default();
    source.put_config_map(config_map("cfg", &[("k", "$(HOST)")]));
    let env = f.resolve(&c, &source).await.expect("resolves");
    assert_eq!(get(&env, "URL"), Some("pg://db:5432/$(LATER)"));
    assert_eq!(get(&env, "ESCAPED"), Some("$(HOST) $(HOST"));
    assert_eq!(get(&env, "FROM_FIELD"), Some("web-0"));
    assert_eq!(get(&env, "NOT_EXPANDED"), Some("$(HOST)"), "valueFrom values are taken literally");
}

#[tokio::test]
async fn missing_objects_and_keys_give_kubelets_messages() {
    let f = Fixture::new(pod(json!({"containers": [{"name": "c"}]})));
    let source = MapSource::default();
    source.put_secret(secret("present", &[("a", "1")]));
    source.put_config_map(config_map("cm", &[("a", "1")]));
    let cases = [
        (json!({"secretKeyRef": {"name": "x", "key": "k"}}), "secret \"x\" not found"),
        (json!({"secretKeyRef": {"name": "present", "key": "k"}}), "couldn't find key k in Secret shop/present"),
        (json!({"configMapKeyRef": {"name": "x", "key": "k"}}), "configmap \"x\" not found"),
        (json!({"configMapKeyRef": {"name": "cm", "key": "k"}}), "couldn't find key k in ConfigMap shop/cm"),
        (json!({"fieldRef": {"fieldPath": "spec.nothing"}}), "field label not supported: spec.nothing"),
        (json!({"fieldRef": {"fieldPath": "metadata.name", "apiVersion": "v2"}}), "unsupported pod version: v2"),
        (json!({"resourceFieldRef": {"resource": "limits.gpu"}}), "unsupported container resource : limits.gpu"),
        (json!({"resourceFieldRef": {"resource": "limits.cpu", "containerName": "nope"}}), "container nope not found"),
    ];
    for (value_from, message) in cases {
        let c = container(json!({"name": "c", "env": [{"name": "V", "valueFrom": value_from}]}));
        let err = f.resolve(&c, &source).await.expect_err("fails");
        assert_eq!(err.to_string(), message);
        assert!(!err.is_transient());
    }
    let c = container(json!({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]}));
    assert_eq!(f.resolve(&c, &source).await.expect_err("fails").to_string(), "secret \"gone\" not found");
    let c = container(json!({"name": "c", "envFrom": [{"configMapRef": {"name": "gone"}}]}));
    assert_eq!(f.resolve(&c, &source).await.expect_err("fails").to_string(), "configmap \"gone\" not found");
}

#[tokio::test]
async fn optional_references_are_skipped_quietly() {
    let f = Fixture::new(pod(json!({"containers": [{"name": "c"}]})));
    let source = MapSource::default();
    source.put_secret(secret("present", &[("a", "1")]));
    let c = container(json!({"name": "c",
    "envFrom": [{"secretRef": {"name": "gone", "optional": true}}, {"configMapRef": {"name": "gone", "optional": true}}],
    "env": [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}},
        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "present", "key": "k", "optional": true}}},
        {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": true}}},
        {"name": "D", "valueFrom": {"secretKeyRef": {"name": "present", "key": "a", "optional": true}}},
    ]}));
    let env = f.resolve(&c, &source).await.expect("resolves");
    assert_eq!(get(&env, "A"), None);
    assert_eq!(get(&env, "B"), None);
    assert_eq!(get(&env, "C"), None);
    assert_eq!(get(&env, "D"), Some("1"));
}

#[tokio::test]
async fn an_unreachable_api_is_a_transient_error() {
    let f = Fixture::new(pod(json!({"containers": [{"name": "c"}]})));
    let source = MapSource::default();
    source.set_unreachable(Some("connection refused"));
    let c = container(
        json!({"name": "c", "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
    );
    let err = f.resolve(&c, &source).await.expect_err("fails");
    assert!(err.is_transient());
    assert_eq!(err.to_string(), "connection refused");
}

#[tokio::test]
async fn field_refs_resolve_every_supported_path() {
    let f =
        Fixture::new(pod(json!({"containers": [{"name": "c"}], "nodeName": "node-a", "serviceAccountName": "robot"})));
    let paths = [
        ("metadata.name", "web-0"),
        ("metadata.namespace", "shop"),
        ("metadata.uid", "1234-uid"),
        ("metadata.labels['app']", "web"),
        ("metadata.labels['missing']", ""),
        ("metadata.annotations['note']", "say \"hi\"\n"),
        ("spec.nodeName", "node-a"),
        ("spec.serviceAccountName", "robot"),
        ("status.hostIP", "172.30.0.2"),
        ("status.hostIPs", "172.30.0.2"),
        ("status.podIP", "10.42.1.5"),
        ("status.podIPs", "10.42.1.5,fd00::5"),
    ];
    let env: Vec<serde_json::Value> = paths
        .iter()
        .enumerate()
        .map(|(i, (p, _))| json!({"name": format!("V{i}"), "valueFrom": {"fieldRef": {"fieldPath": p}}}))
        .collect();
    let c = container(json!({"name": "c", "env": env}));
    let resolved = f.resolve(&c, &MapSource::default()).await.expect("resolves");
    for (i, (path, want)) in paths.iter().enumerate() {
        assert_eq!(get(&resolved, &format!("V{i}")), Some(*want), "{path}");
    }
}

#[test]
fn volume_field_refs_format_whole_maps_like_go() {
    let p = pod(json!({"containers": [{"name": "c"}]}));
    assert_eq!(field_ref_value(&p, "metadata.labels").expect("labels"), "app=\"web\"\ntier=\"front\"");
    assert_eq!(field_ref_value(&p, "metadata.annotations").expect("annotations"), "note=\"say \\\"hi\\\"\\n\"");
    assert_eq!(
        field_ref_value(&p, "spec.nodeName").expect_err("not a volume field").to_string(),
        "unsupported fieldPath: spec.nodeName"
    );
}

#[tokio::test]
async fn resource_field_refs_use_divisors_round_up_and_default_limits_to_allocatable() {
    let f = Fixture::new(pod(json!({"containers": [
        {"name": "c", "resources": {"limits": {"memory": "129Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}}},
        {"name": "side", "resources": {"limits": {"cpu": "1500m"}}}
    ]})));
    let spec = f.pod.spec.as_ref().expect("spec");
    let c = container(json!({"name": "c",
    "resources": spec.containers[0].resources,
    "env": [
        {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "MEM_GI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Gi"}}},
        {"name": "MEM_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}},
        {"name": "EPH", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage", "divisor": "1Gi"}}},
        {"name": "EPH_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.ephemeral-storage"}}},
        {"name": "SIDE_CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "containerName": "side"}}},
    ]}));
    let env = f.resolve(&c, &MapSource::default()).await.expect("resolves");
    assert_eq!(get(&env, "CPU_LIMIT"), Some("4"), "an unset limit is the node's allocatable");
    assert_eq!(get(&env, "CPU_REQ_M"), Some("250"));
    assert_eq!(get(&env, "CPU_REQ"), Some("1"), "250m in whole cores rounds up");
    assert_eq!(get(&env, "MEM_MI"), Some("129"));
    assert_eq!(get(&env, "MEM_GI"), Some("1"));
    assert_eq!(get(&env, "MEM_REQ"), Some("67108864"));
    assert_eq!(get(&env, "EPH"), Some("100"));
    assert_eq!(get(&env, "EPH_REQ"), Some("0"), "an unset request is zero");
    assert_eq!(get(&env, "SIDE_CPU"), Some("2"));
}

#[tokio::test]
async fn env_from_keys_that_cannot_be_names_are_skipped_and_reported() {
    let f = Fixture::new(pod(json!({"containers": [{"name": "c"}]})));
    let source = MapSource::default();
    source.put_config_map(config_map("cfg", &[("good.key-1", "a"), ("bad=key", "b"), ("1st", "c")]));
    let c = container(json!({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]}));
    let resolved = resolve_detailed(&f.ctx(), &c, &source).await.expect("resolves");
    assert_eq!(get(&resolved.vars, "good.key-1"), Some("a"));
    assert_eq!(get(&resolved.vars, "1st"), Some("c"), "relaxed names may start with a digit");
    assert_eq!(get(&resolved.vars, "bad=key"), None);
    assert_eq!(resolved.skipped.len(), 1);
    assert_eq!(
        resolved.skipped[0].message(),
        "Keys [bad=key] from the EnvFrom configMap shop/cfg were skipped since they are considered invalid environment variable names."
    );
}

#[test]
fn go_quote_matches_strconv_quote() {
    assert_eq!(go_quote("plain"), "\"plain\"");
    assert_eq!(go_quote("a\"b\\c\td\u{1}"), "\"a\\\"b\\\\c\\td\\x01\"");
    assert_eq!(go_quote("héllo"), "\"héllo\"");
}
