//! Tables for Service, Endpoints and EndpointSlice.

use std::collections::BTreeSet;

use serde_json::Value;

use super::fields::{arr_at, creation_timestamp, get, int_at, name, obj_at, opt_str_at, str_at};
use super::selectors::format_labels;
use super::time::{UnixNanos, since};
use super::{AGE_COLUMN, ColumnDefinition, ColumnType, NAME_COLUMN, Row};

/// How many addresses or ports a cell lists before it says "+ N more...".
const MAX_LISTED: usize = 3;

// ---------------------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------------------

pub(super) const SERVICE_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new(
        "Type",
        ColumnType::String,
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are \
         ExternalName, ClusterIP, NodePort, and LoadBalancer.",
    ),
    ColumnDefinition::new(
        "Cluster-IP",
        ColumnType::String,
        "clusterIP is the IP address of the service and is usually assigned randomly.",
    ),
    ColumnDefinition::new(
        "External-IP",
        ColumnType::String,
        "externalIPs is a list of IP addresses for which nodes in the cluster will also \
         accept traffic for this service.",
    ),
    ColumnDefinition::new("Port(s)", ColumnType::String, "The list of ports that are exposed by this service."),
    AGE_COLUMN,
    ColumnDefinition::wide(
        "Selector",
        ColumnType::String,
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];

pub(super) fn service_row(svc: &Value, now: UnixNanos) -> Row {
    // An absent type is what defaulting turns into ClusterIP.
    let svc_type = opt_str_at(svc, &["spec", "type"]).filter(|t| !t.is_empty()).unwrap_or("ClusterIP");

    // `clusterIP` wins over `clusterIPs[0]`, as in upstream's conversion of v1 services.
    let mut cluster_ip = str_at(svc, &["spec", "clusterIP"]);
    if cluster_ip.is_empty() {
        cluster_ip = arr_at(svc, &["spec", "clusterIPs"]).first().and_then(Value::as_str).unwrap_or("");
    }
    let cluster_ip = if cluster_ip.is_empty() { "<none>" } else { cluster_ip };

    let ports = port_string(arr_at(svc, &["spec", "ports"]));
    let ports = if ports.is_empty() { "<none>".to_string() } else { ports };

    Row::new(vec![
        Value::from(name(svc)),
        Value::from(svc_type),
        Value::from(cluster_ip),
        Value::from(external_ip(svc, svc_type)),
        Value::from(ports),
        Value::from(since(creation_timestamp(svc), now)),
        Value::from(format_labels(obj_at(svc, &["spec", "selector"]))),
    ])
}

/// The EXTERNAL-IP cell: the external IPs for ClusterIP and NodePort services, the load
/// balancer's ingress points (or `<pending>` until it has any) for LoadBalancer ones,
/// and the DNS name for ExternalName ones.
fn external_ip(svc: &Value, svc_type: &str) -> String {
    let external_ips: Vec<&str> = arr_at(svc, &["spec", "externalIPs"]).iter().filter_map(Value::as_str).collect();
    match svc_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            // The table is always generated wide on the server, so the list is not
            // clipped to 16 characters as a client-side printer would do.
            let mut ingress: Vec<&str> = load_balancer_ingress(svc).into_iter().collect();
            if ingress.is_empty() && external_ips.is_empty() {
                return "<pending>".to_string();
            }
            ingress.extend(external_ips);
            ingress.join(",")
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// The IPs (or, lacking one, the hostnames) of the load balancer, sorted and deduplicated.
fn load_balancer_ingress(svc: &Value) -> BTreeSet<&str> {
    arr_at(svc, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|ingress| {
            let ip = str_at(ingress, &["ip"]);
            let hostname = str_at(ingress, &["hostname"]);
            if !ip.is_empty() {
                Some(ip)
            } else if !hostname.is_empty() {
                Some(hostname)
            } else {
                None
            }
        })
        .collect()
}

/// `80/TCP`, or `80:30080/TCP` when a node port is allocated, joined by commas.
fn port_string(ports: &[Value]) -> String {
    ports
        .iter()
        .map(|port| {
            let number = int_at(port, &["port"]);
            // An absent protocol is what defaulting turns into TCP.
            let protocol = opt_str_at(port, &["protocol"]).filter(|p| !p.is_empty()).unwrap_or("TCP");
            match int_at(port, &["nodePort"]) {
                node_port if node_port > 0 => format!("{number}:{node_port}/{protocol}"),
                _ => format!("{number}/{protocol}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

pub(super) const ENDPOINTS_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new("Endpoints", ColumnType::String, "The set of all endpoints is the union of all subsets."),
    AGE_COLUMN,
];

pub(super) fn endpoints_row(ep: &Value, now: UnixNanos) -> Row {
    Row::new(vec![
        Value::from(name(ep)),
        Value::from(format_endpoints(ep)),
        Value::from(since(creation_timestamp(ep), now)),
    ])
}

/// The ready addresses of every subset, as `ip:port` for each of the subset's ports
/// (or bare IPs for a subset without ports, as headless services may have), showing
/// three and counting the rest: `10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...`.
/// Not-ready addresses are left out, as upstream does.
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr_at(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    let mut add = |entries: &mut dyn Iterator<Item = String>, len: usize| {
        count += len;
        for entry in entries {
            if list.len() == MAX_LISTED {
                more = true;
                break;
            }
            list.push(entry);
        }
    };
    for subset in subsets {
        let addresses = arr_at(subset, &["addresses"]);
        let ports = arr_at(subset, &["ports"]);
        let ip = |address: &Value| str_at(address, &["ip"]).to_string();
        if ports.is_empty() {
            add(&mut addresses.iter().map(ip), addresses.len());
            continue;
        }
        for port in ports {
            let port = int_at(port, &["port"]);
            add(&mut addresses.iter().map(|a| join_host_port(str_at(a, &["ip"]), port)), addresses.len());
        }
    }
    let joined = list.join(",");
    if more { format!("{joined} + {} more...", count - MAX_LISTED) } else { joined }
}

/// `host:port`, with an IPv6 host in brackets, like Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

// ---------------------------------------------------------------------------------------
// EndpointSlice
// ---------------------------------------------------------------------------------------

pub(super) const ENDPOINT_SLICE_COLUMNS: &[ColumnDefinition] = &[
    NAME_COLUMN,
    ColumnDefinition::new(
        "AddressType",
        ColumnType::String,
        "addressType specifies the type of address carried by this EndpointSlice. All \
         addresses in this slice must be the same type.",
    ),
    ColumnDefinition::new(
        "Ports",
        ColumnType::String,
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    ColumnDefinition::new("Endpoints", ColumnType::String, "endpoints is a list of unique endpoints in this slice."),
    AGE_COLUMN,
];

pub(super) fn endpoint_slice_row(slice: &Value, now: UnixNanos) -> Row {
    // A port is shown by number, else by name, else as "*" (a slice port with neither
    // means "all ports").
    let ports = arr_at(slice, &["ports"]).iter().map(|port| {
        if let Some(number) = get(port, &["port"]).and_then(Value::as_i64) {
            number.to_string()
        } else if let Some(port_name) = opt_str_at(port, &["name"]) {
            port_name.to_string()
        } else {
            "*".to_string()
        }
    });
    let addresses = arr_at(slice, &["endpoints"])
        .iter()
        .flat_map(|endpoint| arr_at(endpoint, &["addresses"]))
        .map(|address| address.as_str().unwrap_or("").to_string());

    Row::new(vec![
        Value::from(name(slice)),
        Value::from(str_at(slice, &["addressType"])),
        Value::from(list_with_more(ports)),
        Value::from(list_with_more(addresses)),
        Value::from(since(creation_timestamp(slice), now)),
    ])
}

/// The first three items joined by commas, then `+ N more...`; `<unset>` for none.
fn list_with_more(items: impl Iterator<Item = String>) -> String {
    let mut list = Vec::with_capacity(MAX_LISTED);
    let mut count = 0usize;
    for item in items {
        if list.len() < MAX_LISTED {
            list.push(item);
        }
        count += 1;
    }
    let joined = list.join(",");
    if count > MAX_LISTED {
        format!("{joined} + {} more...", count - MAX_LISTED)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_truncate_after_three_and_count_the_rest() {
        let ep = json!({"subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
             "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "fd00::1"}]}
        ]});
        assert_eq!(format_endpoints(&ep), "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more...");
        let headless = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}]}]});
        assert_eq!(format_endpoints(&headless), "fd00::1");
        let v6 = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]});
        assert_eq!(format_endpoints(&v6), "[fd00::1]:53");
        assert_eq!(format_endpoints(&json!({})), "<none>");
        // A subset with only not-ready addresses lists nothing, not "<none>".
        let not_ready = json!({"subsets": [{"notReadyAddresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 80}]}]});
        assert_eq!(format_endpoints(&not_ready), "");
    }

    #[test]
    fn list_with_more_matches_upstream() {
        let items = |n: usize| (1..=n).map(|i| i.to_string());
        assert_eq!(list_with_more(items(0)), "<unset>");
        assert_eq!(list_with_more(items(3)), "1,2,3");
        assert_eq!(list_with_more(items(5)), "1,2,3 + 2 more...");
    }

    #[test]
    fn ports_default_to_tcp() {
        let ports = json!([{"port": 53, "protocol": "UDP"}, {"port": 80}, {"port": 8080, "nodePort": 31234}]);
        let ports = ports.as_array().map(Vec::as_slice).unwrap_or_default();
        assert_eq!(port_string(ports), "53/UDP,80/TCP,8080:31234/TCP");
    }
}
