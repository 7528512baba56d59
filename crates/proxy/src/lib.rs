//! The nftables service proxy: watches Services, EndpointSlices and its own Node, and
//! programs the node's kernel so that Service IPs and NodePorts reach the Service's pods.
//!
//! The parts, from pure to effectful: [`model`] (the cluster as the rules see it),
//! [`rules`] (fragments and nft scripts, no I/O), [`proxier`] (the level-triggered sync that
//! sends only what changed), [`backend`] (the `nft` binary, or a recording fake), and
//! [`run`] (the watches and the sync loop). See the README for the table's design.

pub mod backend;
pub mod health;
pub mod metrics;
pub mod model;
pub mod proxier;
pub mod rules;
mod watch;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

pub use metrics::Metrics;
pub use watch::run;

/// How the proxy is set up on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    pub node_name: String,
    /// The nftables table (family `ip`) the proxy owns entirely.
    pub table: String,
    /// The Service CIDR: addresses in it that no Service has are dropped.
    pub service_cidr: ipnet::Ipv4Net,
    /// The cluster's pod CIDR: traffic to a ClusterIP from outside it is masqueraded.
    pub cluster_cidr: Option<ipnet::Ipv4Net>,
    /// The pod bridge: connections DNATed from a local pod back onto it are masqueraded.
    pub pod_bridge: Option<String>,
    /// Where NodePorts answer; empty means the Node's InternalIP and ExternalIP addresses.
    pub node_ips: Vec<Ipv4Addr>,
    /// The node-local DNS server's address (the kube-dns ClusterIP): port 53 to it is
    /// neither DNATed nor tracked.
    pub local_dns: Option<Ipv4Addr>,
    /// How often the whole table is rewritten, repairing any drift.
    pub resync_interval: Duration,
    /// Where healthCheckNodePort servers listen; unset means all addresses.
    pub health_bind: Option<IpAddr>,
}

impl ProxyConfig {
    pub fn new(node_name: impl Into<String>) -> Self {
        ProxyConfig {
            node_name: node_name.into(),
            table: "rkube".into(),
            service_cidr: ipnet::Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or_default(),
            cluster_cidr: None,
            pod_bridge: None,
            node_ips: Vec::new(),
            local_dns: None,
            resync_interval: Duration::from_secs(60),
            health_bind: None,
        }
    }
}

/// Why the proxy failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("could not run {command}: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("nft rejected the script: {0}")]
    Nft(String),
    #[error("sync task failed: {0}")]
    Task(String),
}

/// Deletes the proxy's table in the current network namespace; a missing table is fine.
pub fn cleanup(table: &str) -> Result<(), ProxyError> {
    use backend::Backend as _;
    let mut nft = backend::NftCli;
    if nft.list(table)?.is_some() {
        nft.apply(&format!("delete table ip {table}\n"))?;
    }
    Ok(())
}
