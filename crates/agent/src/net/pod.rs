//! A pod sandbox's network: its namespace, a veth pair to the node's pod bridge, its address
//! and its default route.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::net::ops::fnv1a64;
use crate::net::{Error, NetOps, Netns, Result, Route, VethSpec};

/// The name of the pod's end of its veth pair, inside the pod namespace.
pub const POD_INTERFACE: &str = "eth0";

/// What [`setup_pod`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodNet {
    /// The pod's network namespace, `/run/netns/<netns>`.
    pub netns: String,
    /// The node's end of the veth pair, attached to the pod bridge in the node namespace.
    pub host_veth: String,
    /// The pod's interface, [`POD_INTERFACE`].
    pub interface: &'static str,
    /// The pod's address with the podCIDR's prefix length.
    pub address: Ipv4Net,
    /// The default gateway, the pod bridge's address.
    pub gateway: Ipv4Addr,
}

/// The node-side veth name for a pod namespace: `veth` and 11 hex digits of a stable hash.
///
/// The name is a function of the namespace name so that [`teardown_pod`] finds the link again
/// after an agent restart without any stored state. 44 bits of hash make a collision between
/// the pods of one node negligible, and one would fail loudly at creation, not misroute.
pub fn host_veth_name(pod_netns: &str) -> String {
    let hash = fnv1a64(pod_netns.as_bytes());
    format!("veth{:011x}", hash & 0x0fff_ffff_ffff)
}

/// Creates the network of a pod sandbox: the namespace `pod_netns`, a veth pair whose node end
/// joins `bridge` in `node_ns` and whose pod end is `eth0` with `ip/prefix_len`, a default
/// route via `gateway`, and `lo` up.
///
/// Fails with [`Error::AlreadyExists`] if the namespace exists, since it may belong to a
/// running pod; a caller replacing a sandbox calls [`teardown_pod`] first. On any other
/// failure what was made is removed again, so a retry starts clean.
pub fn setup_pod(
    ops: &dyn NetOps,
    node_ns: &Netns,
    pod_netns: &str,
    ip: Ipv4Addr,
    prefix_len: u8,
    gateway: Ipv4Addr,
    bridge: &str,
) -> Result<PodNet> {
    let address = Ipv4Net::new(ip, prefix_len).map_err(|_| Error::Invalid {
        what: "prefix length",
        value: prefix_len.to_string(),
        reason: "must be at most 32",
    })?;
    if !address.contains(&gateway) || gateway == ip {
        return Err(Error::Invalid {
            what: "gateway",
            value: gateway.to_string(),
            reason: "must be another address in the pod's subnet",
        });
    }
    ops.create_netns(pod_netns)?;
    let pod = PodNet {
        netns: pod_netns.to_owned(),
        host_veth: host_veth_name(pod_netns),
        interface: POD_INTERFACE,
        address,
        gateway,
    };
    match configure(ops, node_ns, &pod, bridge) {
        Ok(()) => Ok(pod),
        Err(error) => {
            // The original error is the one worth reporting; a failed rollback leaves debris
            // that the next teardown of the same name removes.
            if let Err(rollback) = teardown_pod(ops, node_ns, pod_netns) {
                tracing::warn!(pod_netns, %rollback, "rolling back a failed pod network setup failed");
            }
            Err(error)
        }
    }
}

fn configure(ops: &dyn NetOps, node_ns: &Netns, pod: &PodNet, bridge: &str) -> Result<()> {
    let pod_ns = Netns::named(&pod.netns);
    ops.add_veth(
        node_ns,
        &VethSpec { name: &pod.host_veth, master: Some(bridge), peer_name: pod.interface, peer_netns: &pod_ns },
    )?;
    ops.set_link_up(&pod_ns, "lo")?;
    ops.add_address(&pod_ns, pod.interface, pod.address)?;
    ops.add_route(&pod_ns, &Route { destination: Ipv4Net::default(), gateway: pod.gateway, device: pod.interface })
}

/// Removes a pod sandbox's network; succeeds if it is already gone, so it can run after a
/// crash and repeatedly. The veth is deleted explicitly rather than left to die with the
/// namespace, because namespace destruction is asynchronous in the kernel and the node end
/// would otherwise linger on the bridge for an unknown time.
pub fn teardown_pod(ops: &dyn NetOps, node_ns: &Netns, pod_netns: &str) -> Result<()> {
    ops.delete_link(node_ns, &host_veth_name(pod_netns))?;
    ops.delete_netns(pod_netns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::fake::{Op, RecordingNetOps};

    fn node() -> (RecordingNetOps, Netns) {
        let ops = RecordingNetOps::new();
        ops.add_existing_netns("c-node1");
        let node_ns = Netns::named("c-node1");
        ops.add_bridge(&node_ns, "cbr0").expect("bridge");
        ops.clear_ops();
        (ops, node_ns)
    }

    #[test]
    fn setup_makes_namespace_veth_address_and_default_route() {
        let (ops, node_ns) = node();
        let ip = Ipv4Addr::new(10, 42, 1, 5);
        let gateway = Ipv4Addr::new(10, 42, 1, 1);
        let pod = setup_pod(&ops, &node_ns, "c-node1.pod-a", ip, 24, gateway, "cbr0").expect("setup");
        let pod_ns = Netns::named("c-node1.pod-a");
        let veth = host_veth_name("c-node1.pod-a");
        assert_eq!(veth.len(), 15);
        assert_eq!(pod.host_veth, veth);
        assert_eq!(
            ops.ops(),
            vec![
                Op::CreateNetns("c-node1.pod-a".into()),
                Op::AddVeth {
                    ns: node_ns.clone(),
                    name: veth,
                    master: Some("cbr0".into()),
                    peer_name: "eth0".into(),
                    peer_netns: pod_ns.clone(),
                },
                Op::SetLinkUp { ns: pod_ns.clone(), name: "lo".into() },
                Op::AddAddress {
                    ns: pod_ns.clone(),
                    link: "eth0".into(),
                    address: "10.42.1.5/24".parse().expect("net")
                },
                Op::AddRoute {
                    ns: pod_ns,
                    destination: "0.0.0.0/0".parse().expect("net"),
                    gateway,
                    device: "eth0".into(),
                },
            ]
        );
    }

    #[test]
    fn failed_setup_removes_what_it_made() {
        let (ops, node_ns) = node();
        ops.fail_on(|op| matches!(op, Op::AddRoute { .. }));
        let error = setup_pod(
            &ops,
            &node_ns,
            "c-node1.pod-b",
            Ipv4Addr::new(10, 42, 1, 6),
            24,
            Ipv4Addr::new(10, 42, 1, 1),
            "cbr0",
        )
        .expect_err("the route fails");
        assert!(matches!(error, Error::Os { .. }), "{error}");
        let ops_done = ops.ops();
        assert_eq!(
            ops_done[ops_done.len() - 2..],
            [
                Op::DeleteLink { ns: node_ns, name: host_veth_name("c-node1.pod-b") },
                Op::DeleteNetns("c-node1.pod-b".into()),
            ]
        );
        assert!(!ops.list_netns().expect("list").contains(&"c-node1.pod-b".to_owned()));
    }

    #[test]
    fn existing_namespace_is_not_taken_over() {
        let (ops, node_ns) = node();
        ops.add_existing_netns("c-node1.pod-c");
        let error = setup_pod(
            &ops,
            &node_ns,
            "c-node1.pod-c",
            Ipv4Addr::new(10, 42, 1, 7),
            24,
            Ipv4Addr::new(10, 42, 1, 1),
            "cbr0",
        )
        .expect_err("exists");
        assert!(error.is_already_exists());
        // Nothing was rolled back: the namespace belongs to someone else.
        assert_eq!(ops.ops(), vec![Op::CreateNetns("c-node1.pod-c".into())]);
    }

    #[test]
    fn gateway_outside_the_subnet_is_rejected_before_any_change() {
        let (ops, node_ns) = node();
        let error = setup_pod(
            &ops,
            &node_ns,
            "c-node1.pod-d",
            Ipv4Addr::new(10, 42, 1, 8),
            24,
            Ipv4Addr::new(10, 42, 2, 1),
            "cbr0",
        )
        .expect_err("invalid");
        assert!(matches!(error, Error::Invalid { what: "gateway", .. }));
        assert!(ops.ops().is_empty());
    }

    #[test]
    fn teardown_is_idempotent() {
        let (ops, node_ns) = node();
        teardown_pod(&ops, &node_ns, "c-node1.gone").expect("first");
        teardown_pod(&ops, &node_ns, "c-node1.gone").expect("second");
    }

    #[test]
    fn host_veth_names_are_stable() {
        // A restarted agent must compute the same name as the one that made the link, so the
        // exact value is pinned here: changing the hash would orphan every running pod's veth.
        assert_eq!(host_veth_name("c-node1.pod-a"), "veth32d54b47317");
        assert_ne!(host_veth_name("c-node1.pod-a"), host_veth_name("c-node1.pod-b"));
        assert!(host_veth_name("x").starts_with("veth"));
    }
}
