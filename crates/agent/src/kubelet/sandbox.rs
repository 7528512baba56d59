//! The pod sandbox: what all containers of a pod share. Its network namespace and address
//! (through `net::pod` and the node's IPAM), its IPC namespace, and the `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname` files bind-mounted into every container.
//!
//! The file contents are pure functions of the pod and the node's settings, written as
//! kubelet writes them (`pkg/kubelet/kubelet_pods.go` `ensureHostsFile`,
//! `pkg/kubelet/network/dns/dns.go`).

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Pod;

/// The node's DNS settings, from the agent's flags.
#[derive(Clone, Debug)]
pub struct DnsSettings {
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    /// The node's own resolv.conf contents, for `dnsPolicy: Default` and host-network pods.
    pub host_resolv_conf: String,
}

/// The hostname a pod's containers see: `spec.hostname`, else the pod's name, cut to 63
/// characters as upstream does.
pub fn hostname(pod: &Pod) -> String {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with('-') || h.ends_with('.') {
        h.pop();
    }
    h
}

/// `/etc/hosts` for a pod on the pod network.
pub fn hosts_file(pod: &Pod, pod_ip: &str, cluster_domain: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let spec = pod.spec.as_ref();
    let host = hostname(pod);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    match spec.and_then(|s| s.subdomain.as_deref()).filter(|s| !s.is_empty()) {
        Some(sub) => out.push_str(&format!("{pod_ip}\t{host}.{sub}.{namespace}.svc.{cluster_domain}\t{host}\n")),
        None => out.push_str(&format!("{pod_ip}\t{host}\n")),
    }
    if let Some(aliases) = spec.and_then(|s| s.host_aliases.as_ref()) {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    out
}

/// `/etc/resolv.conf` for the pod, honouring `dnsPolicy` and `dnsConfig`.
pub fn resolv_conf(pod: &Pod, dns: &DnsSettings) -> String {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (mut servers, mut searches, mut options): (Vec<String>, Vec<String>, Vec<String>) = match policy {
        "None" => (vec![], vec![], vec![]),
        "Default" => parse_host_resolv(&dns.host_resolv_conf),
        "ClusterFirst" if host_network => parse_host_resolv(&dns.host_resolv_conf),
        _ => {
            let d = &dns.cluster_domain;
            let (_, host_search, _) = parse_host_resolv(&dns.host_resolv_conf);
            let mut search = vec![format!("{namespace}.svc.{d}"), format!("svc.{d}"), d.clone()];
            search.extend(host_search);
            (vec![dns.cluster_dns.to_string()], search, vec!["ndots:5".to_owned()])
        }
    };
    if let Some(config) = spec.and_then(|s| s.dns_config.as_ref()) {
        for server in config.nameservers.iter().flatten() {
            if !servers.contains(server) {
                servers.push(server.clone());
            }
        }
        for search in config.searches.iter().flatten() {
            if !searches.contains(search) {
                searches.push(search.clone());
            }
        }
        for option in config.options.iter().flatten() {
            let rendered = match &option.value {
                Some(v) => format!("{}:{v}", option.name.as_deref().unwrap_or_default()),
                None => option.name.clone().unwrap_or_default(),
            };
            let key = rendered.split(':').next().unwrap_or_default().to_owned();
            options.retain(|o| o.split(':').next() != Some(key.as_str()));
            options.push(rendered);
        }
    }
    // Upstream's limits: 3 nameservers, 32 search domains.
    servers.truncate(3);
    searches.truncate(32);
    let mut out = String::new();
    for s in &servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// Nameservers, search domains and options of a resolv.conf.
fn parse_host_resolv(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut servers, mut searches, mut options) = (vec![], vec![], vec![]);
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => servers.extend(fields.next().map(str::to_owned)),
            Some("search" | "domain") => searches = fields.map(str::to_owned).collect(),
            Some("options") => options.extend(fields.map(str::to_owned)),
            _ => {}
        }
    }
    (servers, searches, options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};

    fn pod(name: &str, ns: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some(ns.into());
        p.spec = Some(PodSpec::default());
        p
    }

    fn dns() -> DnsSettings {
        DnsSettings {
            cluster_dns: Ipv4Addr::new(10, 96, 0, 10),
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: "nameserver 192.0.2.53\n".into(),
        }
    }

    #[test]
    fn cluster_first_resolv_conf_is_the_tutorials() {
        assert_eq!(
            resolv_conf(&pod("a", "default"), &dns()),
            "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
    }

    #[test]
    fn dns_policy_none_and_dns_config() {
        let mut p = pod("a", "web");
        if let Some(s) = p.spec.as_mut() {
            s.dns_policy = Some("None".into());
            s.dns_config = Some(PodDNSConfig {
                nameservers: Some(vec!["1.2.3.4".into()]),
                searches: Some(vec!["example.test".into()]),
                options: Some(vec![PodDNSConfigOption { name: Some("ndots".into()), value: Some("2".into()) }]),
            });
        }
        assert_eq!(resolv_conf(&p, &dns()), "nameserver 1.2.3.4\nsearch example.test\noptions ndots:2\n");
        if let Some(s) = p.spec.as_mut() {
            s.dns_policy = Some("Default".into());
        }
        assert!(resolv_conf(&p, &dns()).starts_with("nameserver 192.0.2.53\nnameserver 1.2.3.4\n"));
    }

    #[test]
    fn hosts_file_names_the_pod() {
        let text = hosts_file(&pod("my-nginx-abc", "default"), "10.42.1.7", "cluster.local");
        assert!(text.contains("127.0.0.1\tlocalhost\n"));
        assert!(text.ends_with("10.42.1.7\tmy-nginx-abc\n"));
        let mut p = pod("web-0", "default");
        if let Some(s) = p.spec.as_mut() {
            s.subdomain = Some("web".into());
        }
        assert!(
            hosts_file(&p, "10.42.1.8", "cluster.local")
                .contains("10.42.1.8\tweb-0.web.default.svc.cluster.local\tweb-0\n")
        );
    }
}
