//! The network of `rkube up`: several nodes on one machine, each in its own namespace, joined
//! by a private bridge that itself lives in a namespace.
//!
//! # Layout
//!
//! For a cluster `c` with N nodes and the default addresses:
//!
//! ```text
//!  c-fabric            br0 192.168.240.1/24  (the API server's address for nodes)
//!    ├─ port node1 ── veth ── c-node1   eth0 192.168.240.11/24   cbr0 10.42.1.1/24 ── pods
//!    ├─ port node2 ── veth ── c-node2   eth0 192.168.240.12/24   cbr0 10.42.2.1/24 ── pods
//!    │   ...
//!    └─ port outside ─ veth ── c-outside eth0 192.168.240.200/24  (an internet client)
//!
//!  c-node<i>: ip_forward=1; for every other node j: 10.42.j.0/24 via 192.168.240.(10+j)
//!  c-fabric:  ip_forward=0; 10.42.i.0/24 via 192.168.240.(10+i), for the API server's replies
//!  pods of node i: namespaces c-node<i>.<pod>, eth0 in 10.42.i.0/24, default via 10.42.i.1
//! ```
//!
//! Pod traffic between nodes is routed by the node namespaces over the fabric with no address
//! translation, so a receiver sees the sender's pod IP.
//!
//! # How nodes reach the API server, and why the host stays unreachable
//!
//! The API server runs in the host namespace and listens on 127.0.0.1 for the host. For the
//! nodes, the rkube process also opens a listening socket *inside the fabric namespace*, bound
//! to 192.168.240.1 on `br0` ([`crate::net::netns::tcp_listen_in`]). A socket belongs to the
//! namespace it was created in, wherever the process that serves it runs, so the API server
//! serves nodes on the fabric without the host namespace having any part in it.
//!
//! The safety argument is that no path exists, rather than that a path is filtered:
//! - `up` adds nothing to the host namespace: no link, no address, no route, no sysctl. There is
//!   no veth between the host and any cluster namespace, so no packet from a node or pod can
//!   reach a host interface whatever the routing tables say, and host firewall settings
//!   and the host's `ip_forward` are irrelevant.
//! - Node namespaces have no default route: only the fabric subnet (connected), their pod
//!   bridge (connected) and the other nodes' podCIDRs. A route lookup for any other address,
//!   the host's included, fails with "network unreachable" before a packet is sent.
//! - The `outside` namespace has only the fabric subnet. The fabric namespace has no
//!   forwarding (`ip_forward=0`); its routes to the podCIDRs only serve the replies of the
//!   API server's socket to pods.
//! - Several clusters can exist at once with the same addresses, since each lives in its own
//!   namespaces; nothing is shared but the kernel.
//!
//! # Naming and teardown
//!
//! Everything `up` makes is a namespace named after the cluster: `<name>-fabric`,
//! `<name>-outside`, `<name>-node<i>` and pod namespaces `<name>-node<i>.<pod>`. Links live
//! inside them and die with them. [`teardown`] therefore needs no record of what was made: it
//! lists `/run/netns` and deletes exactly the names that this scheme produces for the cluster,
//! which also cleans up after a crash. Cluster names are restricted to `[a-z0-9-]` so that no
//! other cluster's names can match (the pod separator `.` can never occur in a cluster name).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::net::{Error, NetOps, Netns, Result, Route, VethSpec};

/// The fabric subnet unless configured otherwise. It exists only inside the cluster's
/// namespaces, so it cannot collide with the host's networks.
pub const DEFAULT_FABRIC_SUBNET: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 240, 0), 24);

/// The range node podCIDRs are cut from: node i gets the i-th /24.
pub const DEFAULT_CLUSTER_CIDR: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 42, 0, 0), 16);

/// The bridge in the fabric namespace; it carries the API server's fabric address.
pub const FABRIC_BRIDGE: &str = "br0";

/// The pod bridge in each node namespace.
pub const POD_BRIDGE: &str = "cbr0";

/// The fabric-facing interface of node and outside namespaces.
pub const UPLINK: &str = "eth0";

/// Host numbers inside the fabric subnet.
const API_HOST: u32 = 1;
const FIRST_NODE_HOST: u32 = 10;
const OUTSIDE_HOST: u32 = 200;

/// Nodes are numbered from 1, so node i is 192.168.240.(10+i) and stays below the outside
/// client at .200.
pub const MAX_NODES: usize = (OUTSIDE_HOST - FIRST_NODE_HOST - 1) as usize;

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FabricConfig {
    /// The cluster name: 1 to 32 characters of `[a-z0-9-]`, starting and ending with a letter
    /// or digit. It prefixes every namespace.
    pub name: String,
    /// How many nodes, from 1 to [`MAX_NODES`].
    pub nodes: usize,
    /// The fabric subnet; a /24 or larger.
    pub fabric_subnet: Ipv4Net,
    /// Where node podCIDRs (/24 each) come from.
    pub cluster_cidr: Ipv4Net,
}

impl FabricConfig {
    /// A configuration with the default addresses.
    pub fn new(name: impl Into<String>, nodes: usize) -> FabricConfig {
        FabricConfig {
            name: name.into(),
            nodes,
            fabric_subnet: DEFAULT_FABRIC_SUBNET,
            cluster_cidr: DEFAULT_CLUSTER_CIDR,
        }
    }
}

/// The fabric as built: every name and address the rest of rkube needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FabricLayout {
    pub name: String,
    /// The namespace holding the fabric bridge; the API server listens in it.
    pub fabric_netns: String,
    /// The fabric bridge's address, where nodes reach the API server.
    pub api_address: Ipv4Net,
    pub outside: OutsideLayout,
    pub nodes: Vec<NodeLayout>,
}

impl FabricLayout {
    pub fn fabric_ns(&self) -> Netns {
        Netns::named(&self.fabric_netns)
    }

    /// The API server's address on the fabric.
    pub fn api_ip(&self) -> Ipv4Addr {
        self.api_address.addr()
    }
}

/// One node's namespace and addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLayout {
    /// 1-based.
    pub index: usize,
    pub netns: String,
    /// The node's InternalIP, with the fabric prefix length.
    pub internal_address: Ipv4Net,
    pub pod_cidr: Ipv4Net,
    /// The pod bridge's address and the pods' default gateway.
    pub pod_gateway: Ipv4Addr,
}

impl NodeLayout {
    pub fn ns(&self) -> Netns {
        Netns::named(&self.netns)
    }

    pub fn internal_ip(&self) -> Ipv4Addr {
        self.internal_address.addr()
    }

    /// The namespace name for a pod of this node, which [`teardown`] recognises. `pod` should
    /// be unique on the node, such as the sandbox or pod UID.
    pub fn pod_netns_name(&self, pod: &str) -> String {
        format!("{}.{pod}", self.netns)
    }
}

/// The namespace standing for an internet client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsideLayout {
    pub netns: String,
    pub address: Ipv4Net,
}

impl OutsideLayout {
    pub fn ns(&self) -> Netns {
        Netns::named(&self.netns)
    }
}

/// Computes the layout of `config` without touching anything.
pub fn plan(config: &FabricConfig) -> Result<FabricLayout> {
    check_cluster_name(&config.name)?;
    if config.nodes == 0 || config.nodes > MAX_NODES {
        return Err(Error::Invalid {
            what: "node count",
            value: config.nodes.to_string(),
            reason: "must be between 1 and 189",
        });
    }
    if config.fabric_subnet.prefix_len() > 24 {
        return Err(Error::Invalid {
            what: "fabric subnet",
            value: config.fabric_subnet.to_string(),
            reason: "must be a /24 or larger",
        });
    }
    let pod_cidrs: Vec<Ipv4Net> = config
        .cluster_cidr
        .subnets(24)
        .map_err(|_| Error::Invalid {
            what: "cluster CIDR",
            value: config.cluster_cidr.to_string(),
            reason: "must be a /24 or larger",
        })?
        .take(config.nodes + 1)
        .collect();
    if pod_cidrs.len() <= config.nodes {
        return Err(Error::Invalid {
            what: "cluster CIDR",
            value: config.cluster_cidr.to_string(),
            reason: "has fewer /24 subnets than nodes",
        });
    }
    let subnet = config.fabric_subnet.trunc();
    let fabric_address =
        |host: u32| Ipv4Net::new_assert(Ipv4Addr::from(u32::from(subnet.network()) + host), subnet.prefix_len());
    let nodes = (1..=config.nodes)
        .map(|index| {
            let pod_cidr = pod_cidrs[index];
            NodeLayout {
                index,
                netns: format!("{}-node{index}", config.name),
                internal_address: fabric_address(FIRST_NODE_HOST + index as u32),
                pod_cidr,
                pod_gateway: Ipv4Addr::from(u32::from(pod_cidr.network()) + 1),
            }
        })
        .collect();
    Ok(FabricLayout {
        name: config.name.clone(),
        fabric_netns: format!("{}-fabric", config.name),
        api_address: fabric_address(API_HOST),
        outside: OutsideLayout { netns: format!("{}-outside", config.name), address: fabric_address(OUTSIDE_HOST) },
        nodes,
    })
}

/// Builds the fabric of `config`, first removing whatever an earlier `up` of the same cluster
/// left, so that calling it twice, or after a crash, works. If building fails part way, what
/// was built is removed again before the error is returned.
pub fn up(ops: &dyn NetOps, config: &FabricConfig) -> Result<FabricLayout> {
    let layout = plan(config)?;
    teardown(ops, &config.name)?;
    if let Err(error) = build(ops, &layout) {
        if let Err(cleanup) = teardown(ops, &config.name) {
            tracing::warn!(cluster = %config.name, %cleanup, "removing a half-built fabric failed");
        }
        return Err(error);
    }
    Ok(layout)
}

fn build(ops: &dyn NetOps, layout: &FabricLayout) -> Result<()> {
    let fabric = layout.fabric_ns();
    ops.create_netns(&layout.fabric_netns)?;
    ops.set_link_up(&fabric, "lo")?;
    // New namespaces copy IPv4 settings from the host's, so forwarding is switched off
    // explicitly rather than assumed off: the fabric only bridges.
    ops.set_sysctl(&fabric, "net.ipv4.ip_forward", "0")?;
    disable_bridge_netfilter(ops, &fabric)?;
    ops.add_bridge(&fabric, FABRIC_BRIDGE)?;
    ops.add_address(&fabric, FABRIC_BRIDGE, layout.api_address)?;

    let outside = layout.outside.ns();
    ops.create_netns(&layout.outside.netns)?;
    ops.set_link_up(&outside, "lo")?;
    ops.set_sysctl(&outside, "net.ipv4.ip_forward", "0")?;
    ops.add_veth(
        &fabric,
        &VethSpec { name: "outside", master: Some(FABRIC_BRIDGE), peer_name: UPLINK, peer_netns: &outside },
    )?;
    ops.add_address(&outside, UPLINK, layout.outside.address)?;

    for node in &layout.nodes {
        let node_ns = node.ns();
        ops.create_netns(&node.netns)?;
        ops.set_link_up(&node_ns, "lo")?;
        ops.set_sysctl(&node_ns, "net.ipv4.ip_forward", "1")?;
        disable_bridge_netfilter(ops, &node_ns)?;
        let port = format!("node{}", node.index);
        ops.add_veth(
            &fabric,
            &VethSpec { name: &port, master: Some(FABRIC_BRIDGE), peer_name: UPLINK, peer_netns: &node_ns },
        )?;
        ops.add_address(&node_ns, UPLINK, node.internal_address)?;
        ops.add_bridge(&node_ns, POD_BRIDGE)?;
        let gateway_address = Ipv4Net::new_assert(node.pod_gateway, node.pod_cidr.prefix_len());
        ops.add_address(&node_ns, POD_BRIDGE, gateway_address)?;
        // The fabric namespace does not forward, but it originates the API server's replies,
        // and pods reach the API server with their own addresses as source.
        ops.add_route(
            &fabric,
            &Route { destination: node.pod_cidr, gateway: node.internal_ip(), device: FABRIC_BRIDGE },
        )?;
        for other in layout.nodes.iter().filter(|other| other.index != node.index) {
            ops.add_route(
                &node_ns,
                &Route { destination: other.pod_cidr, gateway: other.internal_ip(), device: UPLINK },
            )?;
        }
    }
    Ok(())
}

/// With br_netfilter loaded, bridged frames would also traverse the IPv4 netfilter hooks of
/// the namespace. The module is not loaded for rkube; where it is loaded already, its hook is
/// switched off so that bridging stays plain bridging and does not depend on a host module.
///
/// Consequence for the service proxy: a reply from a backend pod to a client pod on the same
/// bridge is bridged, not routed, so it does not pass the node's conntrack and its DNAT is
/// not undone. The proxy must masquerade service traffic whose client and backend share a
/// node (or this must be revisited), as kube-proxy does without br_netfilter.
fn disable_bridge_netfilter(ops: &dyn NetOps, ns: &Netns) -> Result<()> {
    match ops.set_sysctl(ns, "net.bridge.bridge-nf-call-iptables", "0") {
        Err(error) if error.is_not_found() => Ok(()),
        other => other,
    }
}

/// Removes every namespace of cluster `name` (see the module docs for the names), and with
/// them every link inside. Succeeds when there is nothing to remove. Returns the namespaces
/// removed.
pub fn teardown(ops: &dyn NetOps, name: &str) -> Result<Vec<String>> {
    check_cluster_name(name)?;
    let mut doomed: Vec<(NetnsKind, String)> =
        ops.list_netns()?.into_iter().filter_map(|netns| classify(name, &netns).map(|kind| (kind, netns))).collect();
    // Pods first, then nodes, then the fabric and outside namespaces: each pod's veth is
    // removed with its node still there, as in a normal pod teardown.
    doomed.sort_by_key(|(kind, _)| *kind);
    for (_, netns) in &doomed {
        ops.delete_netns(netns)?;
    }
    Ok(doomed.into_iter().map(|(_, netns)| netns).collect())
}

/// Whether `netns` is one of the names cluster `cluster` uses.
pub fn is_cluster_netns(cluster: &str, netns: &str) -> bool {
    classify(cluster, netns).is_some()
}

/// The kinds of namespace a cluster has, in teardown order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum NetnsKind {
    Pod,
    Node,
    Shared,
}

fn classify(cluster: &str, netns: &str) -> Option<NetnsKind> {
    let rest = netns.strip_prefix(cluster)?.strip_prefix('-')?;
    if rest == "fabric" || rest == "outside" {
        return Some(NetnsKind::Shared);
    }
    let node = rest.strip_prefix("node")?;
    let (index, kind) = match node.split_once('.') {
        Some((_, "")) => return None,
        Some((index, _pod)) => (index, NetnsKind::Pod),
        None => (node, NetnsKind::Node),
    };
    (!index.is_empty() && index.bytes().all(|byte| byte.is_ascii_digit())).then_some(kind)
}

fn check_cluster_name(name: &str) -> Result<()> {
    let valid_chars = name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
    let valid_ends = !name.starts_with('-') && !name.ends_with('-');
    if name.is_empty() || name.len() > 32 || !valid_chars || !valid_ends {
        return Err(Error::Invalid {
            what: "cluster name",
            value: name.to_owned(),
            reason: "must be 1 to 32 characters of [a-z0-9-], starting and ending with a letter or digit",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::fake::{Op, RecordingNetOps};

    fn net(text: &str) -> Ipv4Net {
        text.parse().expect("a prefix")
    }

    #[test]
    fn plan_numbers_nodes_from_one() {
        let layout = plan(&FabricConfig::new("c", 2)).expect("plan");
        assert_eq!(layout.fabric_netns, "c-fabric");
        assert_eq!(layout.api_address, net("192.168.240.1/24"));
        assert_eq!(layout.outside.address, net("192.168.240.200/24"));
        let node2 = &layout.nodes[1];
        assert_eq!(node2.netns, "c-node2");
        assert_eq!(node2.internal_address, net("192.168.240.12/24"));
        assert_eq!(node2.pod_cidr, net("10.42.2.0/24"));
        assert_eq!(node2.pod_gateway, Ipv4Addr::new(10, 42, 2, 1));
        assert_eq!(node2.pod_netns_name("uid-1"), "c-node2.uid-1");
    }

    #[test]
    fn plan_rejects_bad_input() {
        for config in [
            FabricConfig::new("C", 1),
            FabricConfig::new("a.b", 1),
            FabricConfig::new("-a", 1),
            FabricConfig::new("c", 0),
            FabricConfig::new("c", MAX_NODES + 1),
            FabricConfig { fabric_subnet: net("10.9.9.0/25"), ..FabricConfig::new("c", 1) },
            FabricConfig { cluster_cidr: net("10.42.0.0/23"), ..FabricConfig::new("c", 2) },
        ] {
            assert!(matches!(plan(&config), Err(Error::Invalid { .. })), "{config:?}");
        }
        assert!(plan(&FabricConfig::new("c", MAX_NODES)).is_ok());
    }

    #[test]
    fn up_builds_fabric_outside_and_nodes_with_cross_routes() {
        let ops = RecordingNetOps::new();
        ops.remove_sysctl("net.bridge.bridge-nf-call-iptables");
        up(&ops, &FabricConfig::new("c", 2)).expect("up");
        let fabric = Netns::named("c-fabric");
        let node1 = Netns::named("c-node1");
        let ops_done = ops.ops();
        for expected in [
            Op::AddBridge { ns: fabric.clone(), name: "br0".into() },
            Op::AddAddress { ns: fabric.clone(), link: "br0".into(), address: net("192.168.240.1/24") },
            Op::SetSysctl { ns: fabric.clone(), key: "net.ipv4.ip_forward".into(), value: "0".into() },
            Op::AddVeth {
                ns: fabric.clone(),
                name: "node1".into(),
                master: Some("br0".into()),
                peer_name: "eth0".into(),
                peer_netns: node1.clone(),
            },
            Op::SetSysctl { ns: node1.clone(), key: "net.ipv4.ip_forward".into(), value: "1".into() },
            Op::AddAddress { ns: node1.clone(), link: "eth0".into(), address: net("192.168.240.11/24") },
            Op::AddAddress { ns: node1.clone(), link: "cbr0".into(), address: net("10.42.1.1/24") },
            Op::AddRoute {
                ns: node1.clone(),
                destination: net("10.42.2.0/24"),
                gateway: Ipv4Addr::new(192, 168, 240, 12),
                device: "eth0".into(),
            },
            Op::AddAddress { ns: Netns::named("c-outside"), link: "eth0".into(), address: net("192.168.240.200/24") },
        ] {
            assert!(ops_done.contains(&expected), "missing {expected:?}");
        }
        // One route per node to the other node's pods, one per node in the fabric namespace
        // for replies to pods, and no default route anywhere.
        let routes: Vec<&Op> = ops_done.iter().filter(|op| matches!(op, Op::AddRoute { .. })).collect();
        assert_eq!(routes.len(), 4, "{routes:?}");
        assert!(
            routes.iter().all(|op| matches!(op, Op::AddRoute { destination, .. } if destination.prefix_len() > 0)),
            "{routes:?}"
        );
        // Nothing happens in the host namespace.
        assert!(ops_done.iter().all(|op| !format!("{op:?}").contains("Current")), "{ops_done:?}");
    }

    #[test]
    fn bridge_netfilter_is_switched_off_where_it_exists() {
        let ops = RecordingNetOps::new();
        up(&ops, &FabricConfig::new("c", 1)).expect("up");
        assert!(ops.ops().contains(&Op::SetSysctl {
            ns: Netns::named("c-node1"),
            key: "net.bridge.bridge-nf-call-iptables".into(),
            value: "0".into(),
        }));
    }

    #[test]
    fn up_twice_replaces_the_first() {
        let ops = RecordingNetOps::new();
        up(&ops, &FabricConfig::new("c", 2)).expect("first up");
        up(&ops, &FabricConfig::new("c", 1)).expect("second up");
        assert_eq!(ops.list_netns().expect("list"), vec!["c-fabric", "c-node1", "c-outside"]);
    }

    #[test]
    fn failed_up_leaves_nothing() {
        let ops = RecordingNetOps::new();
        ops.fail_on(|op| matches!(op, Op::AddRoute { .. }));
        up(&ops, &FabricConfig::new("c", 2)).expect_err("injected");
        assert!(ops.list_netns().expect("list").is_empty());
    }

    #[test]
    fn teardown_removes_exactly_the_cluster_namespaces() {
        let ops = RecordingNetOps::new();
        for netns in [
            "c-fabric",
            "c-outside",
            "c-node1",
            "c-node12",
            "c-node1.pod-a",
            // Other clusters, including ones whose names start with this one's.
            "c-node1-fabric",
            "c-node1-node2.pod",
            "cc-fabric",
            "c-nodex",
            "c-node",
            "c-node1.",
            "c-fabric2",
            "c",
        ] {
            ops.add_existing_netns(netns);
        }
        let removed = teardown(&ops, "c").expect("teardown");
        assert_eq!(removed, vec!["c-node1.pod-a", "c-node1", "c-node12", "c-fabric", "c-outside"]);
        assert_eq!(
            ops.list_netns().expect("list"),
            vec!["c", "c-fabric2", "c-node", "c-node1-fabric", "c-node1-node2.pod", "c-node1.", "c-nodex", "cc-fabric"]
        );
        assert!(teardown(&ops, "c").expect("again").is_empty());
    }
}
