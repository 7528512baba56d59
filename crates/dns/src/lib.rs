//! The cluster DNS server, run inside every node agent: the Kubernetes DNS specification
//! (kubernetes/dns `docs/specification.md`) answered from an in-memory snapshot that watches
//! of Services, EndpointSlices and Pods keep current. See README.md for the design.
//!
//! The layers, each usable alone: `snapshot` (a pure record store built from API objects),
//! `answer` (query bytes and a snapshot in, response bytes out, no I/O), `server` (UDP and
//! TCP transports, upstream forwarding with a cache), `cluster` (the watches, the node's
//! kube-dns endpoint and its local address).

pub mod answer;
mod cluster;
#[doc(hidden)]
pub mod fixtures;
mod metrics;
mod server;
pub mod snapshot;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

pub use answer::{Context, Outcome, Transport, answer, answer_into};
pub use cluster::{LOCAL_LINK, feed, publish_node_endpoint, setup_local_address, withdraw_node_endpoint};
pub use metrics::{Metrics, serve_metrics};
pub use server::DnsServer;
pub use snapshot::{BuildConfig, Snapshot, SnapshotCell};

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("`ip {args}` failed: {stderr}")]
    IpCommand { args: String, stderr: String },
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
    #[error("the service kube-system/kube-dns does not exist")]
    NoKubeDnsService,
    #[error("the DNS server needs a tokio runtime")]
    NoRuntime,
}

/// How a node's DNS server is set up.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// UDP and TCP on each, e.g. 10.96.0.10:53 and the node's IP port 53.
    pub listen: Vec<SocketAddr>,
    /// The cluster zone, "cluster.local".
    pub cluster_domain: String,
    /// The TTL of every record, and (as the SOA minimum) of negative answers.
    pub ttl: u32,
    /// Resolvers for names outside the cluster; empty turns forwarding (and the outside
    /// step of autopath) off, and such names are REFUSED.
    pub upstream: Vec<SocketAddr>,
    /// The Service range, whose reverse zone (rounded out to whole octets) we hold.
    pub service_cidr: Option<ipnet::Ipv4Net>,
}

impl DnsConfig {
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        DnsConfig { listen, cluster_domain: "cluster.local".into(), ttl: 30, upstream: Vec::new(), service_cidr: None }
    }

    pub fn build_config(&self) -> BuildConfig {
        BuildConfig {
            cluster_domain: self.cluster_domain.clone(),
            ttl: self.ttl,
            service_cidr: self.service_cidr,
            forwarding: !self.upstream.is_empty(),
        }
    }
}

/// Runs the node's DNS server until cancelled (dropping the future stops it): waits for
/// the first complete view of the cluster, then answers on every `config.listen` address
/// while the watches keep the records current.
pub async fn run(client: kube::Client, config: DnsConfig, metrics: Arc<Metrics>) -> Result<(), DnsError> {
    let build = config.build_config();
    let cell = SnapshotCell::new(Snapshot::empty(&build));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let feeding = feed(client, build, cell.clone(), Some(ready_tx));
    tokio::pin!(feeding);
    // Until the first snapshot, a cluster name would wrongly be NXDOMAIN (and cached as
    // such by clients), so the sockets open only once the three lists are in.
    tokio::select! {
        r = &mut feeding => return r,
        _ = ready_rx => {}
    }
    let _server = DnsServer::start(&config.listen, config.upstream.clone(), config.ttl, cell, metrics)?;
    feeding.await
}
