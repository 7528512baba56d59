//! Service-link environment variables, computed exactly as kubelet does
//! (upstream `pkg/kubelet/envvars` and kubelet's `getServiceEnvVarMap`).
//!
//! For each Service with a ClusterIP: `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT` (the first
//! port), `<NAME>_SERVICE_PORT_<PORTNAME>` for named ports, and the Docker-links style
//! `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT` and `_ADDR`.

use serde_json::Value;

/// The Services whose variables every pod gets, from the default namespace, even with
/// `enableServiceLinks: false`.
const MASTER_SERVICES: &[&str] = &["kubernetes"];

fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// True when the Service has a usable ClusterIP (not headless, not ExternalName).
fn has_cluster_ip(svc: &Value) -> bool {
    !matches!(svc["spec"]["clusterIP"].as_str(), None | Some("") | Some("None"))
}

fn host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") }
}

/// The variables for `services`, in kubelet's order. Services without a ClusterIP are skipped.
pub fn from_services<'a>(services: impl IntoIterator<Item = &'a Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in services {
        if !has_cluster_ip(svc) {
            continue;
        }
        let ip = svc["spec"]["clusterIP"].as_str().unwrap_or("");
        let prefix = env_name(svc["metadata"]["name"].as_str().unwrap_or(""));
        let ports: &[Value] = svc["spec"]["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_owned()));
        // Validation guarantees a port for every Service with a ClusterIP; if stored data
        // lacks one anyway, the port variables are simply left out rather than guessed.
        let Some(first) = ports.first() else { continue };
        let service_port = format!("{prefix}_SERVICE_PORT");
        out.push((service_port.clone(), first["port"].as_i64().unwrap_or(0).to_string()));
        for p in ports {
            if let Some(name) = p["name"].as_str().filter(|n| !n.is_empty()) {
                out.push((format!("{service_port}_{}", env_name(name)), p["port"].as_i64().unwrap_or(0).to_string()));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let port = p["port"].as_i64().unwrap_or(0);
            let protocol = p["protocol"].as_str().filter(|s| !s.is_empty()).unwrap_or("TCP");
            let lower = protocol.to_lowercase();
            let url = format!("{lower}://{}", host_port(ip, port));
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{port}_{}", protocol.to_uppercase());
            out.push((format!("{port_prefix}_PROTO"), lower.clone()));
            out.push((format!("{port_prefix}_PORT"), port.to_string()));
            out.push((format!("{port_prefix}_ADDR"), ip.to_owned()));
            // Keep upstream's order: the URL variable comes before its three parts.
            let at = out.len() - 3;
            out.insert(at, (port_prefix, url));
        }
    }
    out
}

/// The variables a pod in `namespace` gets, given every Service that exists when it starts:
/// the master Services of the default namespace always, and the Services of its own
/// namespace when `enable_service_links` is true. A Service in the pod's namespace with a
/// master Service's name replaces it, as in kubelet.
pub fn for_pod<'a>(
    namespace: &str,
    enable_service_links: bool,
    services: impl IntoIterator<Item = &'a Value>,
) -> Vec<(String, String)> {
    let mut chosen: std::collections::BTreeMap<String, &Value> = std::collections::BTreeMap::new();
    for svc in services {
        if !has_cluster_ip(svc) {
            continue;
        }
        let name = svc["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or("");
        if ns == "default" && MASTER_SERVICES.contains(&name.as_str()) {
            chosen.entry(name).or_insert(svc);
        } else if ns == namespace && enable_service_links {
            chosen.insert(name, svc);
        }
    }
    from_services(chosen.into_values())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(name: &str, ip: &str, ports: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"clusterIP": ip, "ports": ports}})
    }

    /// The expected variables are upstream kubelet's own output for these Services
    /// (`pkg/kubelet/envvars` TestFromServices), name for name and in the same order.
    #[test]
    fn golden_matches_kubelet() {
        let services = [
            svc("foo-bar", "1.2.3.4", json!([{"port": 8080, "protocol": "TCP"}])),
            svc(
                "abc-123",
                "5.6.7.8",
                json!([{"name": "u-d-p", "port": 8081, "protocol": "UDP"}, {"name": "t-c-p", "port": 8081, "protocol": "TCP"}]),
            ),
            svc(
                "q-u-u-x",
                "9.8.7.6",
                json!([{"port": 8082, "protocol": "TCP"}, {"name": "8083", "port": 8083, "protocol": "TCP"}]),
            ),
            svc("svrc-clusterip-none", "None", json!([{"port": 8082, "protocol": "TCP"}])),
            svc("svrc-clusterip-empty", "", json!([{"port": 8082, "protocol": "TCP"}])),
        ];
        let golden = "\
FOO_BAR_SERVICE_HOST=1.2.3.4
FOO_BAR_SERVICE_PORT=8080
FOO_BAR_PORT=tcp://1.2.3.4:8080
FOO_BAR_PORT_8080_TCP=tcp://1.2.3.4:8080
FOO_BAR_PORT_8080_TCP_PROTO=tcp
FOO_BAR_PORT_8080_TCP_PORT=8080
FOO_BAR_PORT_8080_TCP_ADDR=1.2.3.4
ABC_123_SERVICE_HOST=5.6.7.8
ABC_123_SERVICE_PORT=8081
ABC_123_SERVICE_PORT_U_D_P=8081
ABC_123_SERVICE_PORT_T_C_P=8081
ABC_123_PORT=udp://5.6.7.8:8081
ABC_123_PORT_8081_UDP=udp://5.6.7.8:8081
ABC_123_PORT_8081_UDP_PROTO=udp
ABC_123_PORT_8081_UDP_PORT=8081
ABC_123_PORT_8081_UDP_ADDR=5.6.7.8
ABC_123_PORT_8081_TCP=tcp://5.6.7.8:8081
ABC_123_PORT_8081_TCP_PROTO=tcp
ABC_123_PORT_8081_TCP_PORT=8081
ABC_123_PORT_8081_TCP_ADDR=5.6.7.8
Q_U_U_X_SERVICE_HOST=9.8.7.6
Q_U_U_X_SERVICE_PORT=8082
Q_U_U_X_SERVICE_PORT_8083=8083
Q_U_U_X_PORT=tcp://9.8.7.6:8082
Q_U_U_X_PORT_8082_TCP=tcp://9.8.7.6:8082
Q_U_U_X_PORT_8082_TCP_PROTO=tcp
Q_U_U_X_PORT_8082_TCP_PORT=8082
Q_U_U_X_PORT_8082_TCP_ADDR=9.8.7.6
Q_U_U_X_PORT_8083_TCP=tcp://9.8.7.6:8083
Q_U_U_X_PORT_8083_TCP_PROTO=tcp
Q_U_U_X_PORT_8083_TCP_PORT=8083
Q_U_U_X_PORT_8083_TCP_ADDR=9.8.7.6
";
        let got: String = from_services(&services).iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        assert_eq!(got, golden);
    }

    #[test]
    fn pod_selection_follows_kubelet() {
        let kubernetes = svc("kubernetes", "10.96.0.1", json!([{"name": "https", "port": 443, "protocol": "TCP"}]));
        let mine = json!({"metadata": {"name": "my-nginx", "namespace": "web"},
                          "spec": {"clusterIP": "10.96.0.20", "ports": [{"port": 80, "protocol": "TCP"}]}});
        let other = json!({"metadata": {"name": "other", "namespace": "elsewhere"},
                           "spec": {"clusterIP": "10.96.0.21", "ports": [{"port": 80, "protocol": "TCP"}]}});
        let all = [kubernetes, mine, other];
        let names = |v: Vec<(String, String)>| {
            v.into_iter().map(|(k, _)| k).filter(|k| k.ends_with("_SERVICE_HOST")).collect::<Vec<_>>()
        };
        assert_eq!(names(for_pod("web", true, &all)), ["KUBERNETES_SERVICE_HOST", "MY_NGINX_SERVICE_HOST"]);
        assert_eq!(names(for_pod("web", false, &all)), ["KUBERNETES_SERVICE_HOST"], "enableServiceLinks: false");
        let env = for_pod("web", true, &all);
        assert!(env.contains(&("KUBERNETES_SERVICE_PORT_HTTPS".into(), "443".into())));
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let s = svc("v6", "fd00::1", json!([{"port": 80}]));
        let env = from_services([&s]);
        assert!(env.contains(&("V6_PORT".into(), "tcp://[fd00::1]:80".into())));
    }
}
