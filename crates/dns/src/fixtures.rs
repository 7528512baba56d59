//! A small cluster with one object of every kind the DNS specification names, shared by the
//! unit tests, the `dig` conformance test and the benchmark (which also serves it from a
//! zone file through a reference server). Not part of the server.

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use crate::snapshot::{BuildConfig, Snapshot};

pub struct Cluster {
    pub services: Vec<Service>,
    pub slices: Vec<EndpointSlice>,
    pub pods: Vec<Pod>,
}

fn from(v: Value) -> Option<Service> {
    serde_json::from_value(v).ok()
}

pub fn service(ns: &str, name: &str, spec: Value) -> Service {
    from(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec})).unwrap_or_default()
}

/// An EndpointSlice of `service` with `(ip, hostname, ready)` endpoints and named ports.
pub fn slice(
    ns: &str,
    service: &str,
    name: &str,
    endpoints: &[(&str, Option<&str>, bool)],
    ports: Value,
) -> EndpointSlice {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, host, ready)| {
            let mut e = json!({"addresses": [ip], "conditions": {"ready": ready}});
            if let Some(h) = host {
                e["hostname"] = json!(h);
            }
            e
        })
        .collect();
    let family = if endpoints.first().is_some_and(|e| e.0.contains(':')) { "IPv6" } else { "IPv4" };
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
        "addressType": family, "endpoints": eps, "ports": ports,
    }))
    .unwrap_or_else(|_| EndpointSlice { address_type: family.into(), ..Default::default() })
}

pub fn pod(ns: &str, name: &str, ip: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }))
    .unwrap_or_default()
}

/// The test cluster. `big` is a headless Service with `big_endpoints` ready endpoints, for
/// answers that do not fit in a UDP packet.
pub fn cluster(big_endpoints: usize) -> Cluster {
    let http = json!([{"name": "http", "port": 8080, "protocol": "TCP"}]);
    let services = vec![
        service(
            "default",
            "my-nginx",
            json!({"clusterIP": "10.96.0.100", "clusterIPs": ["10.96.0.100"], "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"port": 9000, "protocol": "TCP"},
            ]}),
        ),
        service(
            "default",
            "dual",
            json!({"clusterIP": "10.96.0.200", "clusterIPs": ["10.96.0.200", "fd00:10:96::c8"], "ipFamilies": ["IPv4", "IPv6"],
                   "ports": [{"name": "http", "port": 80}]}),
        ),
        service("default", "headless", json!({"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]})),
        service(
            "default",
            "headless-all",
            json!({"clusterIP": "None", "publishNotReadyAddresses": true, "ports": [{"name": "http", "port": 8080}]}),
        ),
        service("default", "empty-headless", json!({"clusterIP": "None"})),
        service("default", "ext", json!({"type": "ExternalName", "externalName": "example.org"})),
        service(
            "default",
            "alias",
            json!({"type": "ExternalName", "externalName": "my-nginx.default.svc.cluster.local"}),
        ),
        service(
            "kube-system",
            "kube-dns",
            json!({"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
        ),
        service("default", "big", json!({"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]})),
    ];
    let eps = [("10.42.0.5", Some("web-0"), true), ("10.42.1.6", None, true), ("10.42.2.7", None, false)];
    let mut slices = vec![
        slice("default", "headless", "headless-abc", &eps, http.clone()),
        slice("default", "headless-all", "headless-all-abc", &eps, http.clone()),
    ];
    let big: Vec<String> = (0..big_endpoints).map(|i| format!("10.43.{}.{}", i / 250, i % 250 + 1)).collect();
    let big_eps: Vec<(&str, Option<&str>, bool)> = big.iter().map(|ip| (ip.as_str(), None, true)).collect();
    slices.push(slice("default", "big", "big-abc", &big_eps, http));
    let pods = vec![pod("default", "web-0", "10.42.0.5"), pod("default", "web-1", "10.42.1.6")];
    Cluster { services, slices, pods }
}

pub fn build_config() -> BuildConfig {
    BuildConfig {
        cluster_domain: "cluster.local".into(),
        ttl: 30,
        service_cidr: "10.96.0.0/12".parse().ok(),
        forwarding: false,
    }
}

impl Cluster {
    pub fn snapshot(&self, config: &BuildConfig) -> Snapshot {
        Snapshot::build(config, 7, &self.services, &self.slices, &self.pods)
    }
}
