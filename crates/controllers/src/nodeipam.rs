//! The node IPAM controller: gives every Node without one a podCIDR, a /24 cut from the
//! cluster CIDR, as upstream's range allocator (`pkg/controller/nodeipam`) does.
//!
//! Occupancy is read from the Nodes themselves: a podCIDR that any Node carries (including
//! one a node asked for at registration, as `rkube up`'s agents do) is taken. The choice is
//! a pure function ([`plan`]) of the cluster CIDR and the Nodes; the write is a merge patch
//! of `spec.podCIDR`/`podCIDRs`, which the API server accepts only while they are unset, so
//! two allocators can never give one node two ranges.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use crate::informer::{Cache, Change};
use crate::queue::WorkQueue;
use crate::{Context, Error, run_workers};

/// The size of each node's range, as upstream's default `--node-cidr-mask-size`.
pub const NODE_PREFIX: u8 = 24;

/// An IPv4 CIDR, parsed without a dependency: the network and the prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let (ip, prefix) = text.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Some(Cidr { network: Ipv4Addr::from(u32::from(ip) & mask), prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The first /24 of `cluster` that no node has, or None when the range is exhausted.
pub fn plan(cluster: Cidr, taken: &BTreeSet<String>) -> Option<String> {
    if cluster.prefix > NODE_PREFIX {
        return None;
    }
    let count = 1u32 << (NODE_PREFIX - cluster.prefix);
    let base = u32::from(cluster.network);
    (0..count)
        .map(|i| format!("{}/{NODE_PREFIX}", Ipv4Addr::from(base + (i << (32 - NODE_PREFIX)))))
        .find(|c| !taken.contains(c))
}

pub struct NodeIpamController {
    client: kube::Client,
    nodes: Cache<Node>,
    cluster: Option<Cidr>,
    queue: WorkQueue<String>,
}

pub fn start(ctx: &Context) -> futures::future::BoxFuture<'static, ()> {
    let cluster = ctx.config.cluster_cidr.as_deref().and_then(Cidr::parse);
    if ctx.config.cluster_cidr.is_some() && cluster.is_none() {
        tracing::error!(cidr = ?ctx.config.cluster_cidr, "node IPAM: the cluster CIDR is not an IPv4 CIDR; not allocating");
    }
    let c = Arc::new(NodeIpamController {
        client: ctx.client.clone(),
        nodes: ctx.informers.cache(),
        cluster,
        queue: WorkQueue::default(),
    });
    let queue = c.queue.clone();
    c.nodes.on_change(move |change| match change {
        Change::Added(n) | Change::Updated { new: n, .. } if pod_cidr(n).is_none() => queue.add(n.name_any()),
        _ => {}
    });
    Box::pin(async move {
        if c.cluster.is_none() {
            return std::future::pending().await;
        }
        c.nodes.wait_synced().await;
        let queue = c.queue.clone();
        // One worker: allocations must see each other's results, which arrive through the
        // cache, so they are made one at a time.
        run_workers("nodeipam", queue, 1, move |name| {
            let c = c.clone();
            async move { c.sync(&name).await }
        })
        .await;
    })
}

fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).filter(|c| !c.is_empty())
}

impl NodeIpamController {
    async fn sync(&self, name: &str) -> Result<Option<std::time::Duration>, Error> {
        let Some(cluster) = self.cluster else { return Ok(None) };
        let Some(node) = self.nodes.get("", name) else { return Ok(None) };
        if pod_cidr(&node).is_some() {
            return Ok(None);
        }
        let taken: BTreeSet<String> =
            self.nodes.list().iter().filter_map(|n| pod_cidr(n).and_then(Cidr::parse)).map(|c| c.to_string()).collect();
        let Some(cidr) = plan(cluster, &taken) else {
            tracing::warn!(node = name, %cluster, "node IPAM: no podCIDR left");
            return Ok(Some(std::time::Duration::from_secs(30)));
        };
        let patch = serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
        Api::<Node>::all(self.client.clone()).patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        tracing::info!(node = name, %cidr, "allocated a podCIDR");
        // The next node waits for this allocation to reach the cache.
        let mut waited = 0;
        while self.nodes.get("", name).is_some_and(|n| pod_cidr(&n).is_none()) && waited < 50 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            waited += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_the_first_free_24() {
        let cluster = Cidr::parse("10.42.0.0/16").expect("cidr");
        let mut taken = BTreeSet::new();
        assert_eq!(plan(cluster, &taken).as_deref(), Some("10.42.0.0/24"));
        taken.insert("10.42.0.0/24".to_owned());
        taken.insert("10.42.2.0/24".to_owned());
        assert_eq!(plan(cluster, &taken).as_deref(), Some("10.42.1.0/24"));
        let tiny = Cidr::parse("10.9.0.0/24").expect("cidr");
        assert_eq!(plan(tiny, &BTreeSet::from(["10.9.0.0/24".to_owned()])), None);
        assert_eq!(plan(Cidr::parse("10.9.0.0/25").expect("cidr"), &BTreeSet::new()), None);
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(Cidr::parse("10.42.7.9/16").map(|c| c.to_string()).as_deref(), Some("10.42.0.0/16"));
        assert_eq!(Cidr::parse("10.42.0.0/33"), None);
        assert_eq!(Cidr::parse("nope"), None);
    }
}
