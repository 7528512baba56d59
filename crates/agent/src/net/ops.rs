//! The [`NetOps`] trait: the narrow set of side effects the networking layer needs.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::net::Result;

/// Which network namespace an operation applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Netns {
    /// The namespace the process was in when the [`NetOps`] value was created. For an agent
    /// started inside a node namespace this is the node namespace.
    Current,
    /// A namespace bind-mounted at `/run/netns/<name>`, as `ip netns` manages them.
    Named(String),
}

impl Netns {
    pub fn named(name: impl Into<String>) -> Netns {
        Netns::Named(name.into())
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netns::Current => f.write_str("(current)"),
            Netns::Named(name) => f.write_str(name),
        }
    }
}

/// A veth pair to create: `name` in the namespace the operation is given, optionally attached
/// to the bridge `master` there, and `peer_name` created directly in `peer_netns`.
/// Both ends come up administratively up, because nothing in rkube wants a veth that is down.
#[derive(Clone, Copy, Debug)]
pub struct VethSpec<'a> {
    pub name: &'a str,
    pub master: Option<&'a str>,
    pub peer_name: &'a str,
    pub peer_netns: &'a Netns,
}

/// A unicast IPv4 route in the main table: `destination` via `gateway` out of `device`.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    pub destination: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub device: &'a str,
}

/// Network side effects, one kernel operation per method.
///
/// Creating methods fail with [`crate::net::Error::AlreadyExists`] when the object is there
/// already, and deleting methods succeed when it is already gone, so that the planning code
/// can tell a conflict from a leftover and make teardown idempotent.
///
/// Methods block for the duration of the kernel operation (microseconds to a few
/// milliseconds); call them from a blocking context, not directly from an async task.
pub trait NetOps: Send + Sync {
    /// Creates an empty network namespace at `/run/netns/<name>`.
    fn create_netns(&self, name: &str) -> Result<()>;

    /// Deletes the namespace `/run/netns/<name>`; succeeds if it does not exist.
    fn delete_netns(&self, name: &str) -> Result<()>;

    /// Names of the namespaces under `/run/netns`, sorted.
    fn list_netns(&self) -> Result<Vec<String>>;

    /// Creates a bridge, administratively up, with a fixed MAC address derived from its
    /// namespace and name. A fixed address keeps the bridge's MAC from following its ports,
    /// which would otherwise change whenever a lower-numbered port joins and leave every pod
    /// with a stale ARP entry for its gateway.
    fn add_bridge(&self, ns: &Netns, name: &str) -> Result<()>;

    /// Creates a veth pair as described by `veth`.
    fn add_veth(&self, ns: &Netns, veth: &VethSpec<'_>) -> Result<()>;

    /// Deletes a link (for a veth, both ends); succeeds if it or its namespace does not exist.
    fn delete_link(&self, ns: &Netns, name: &str) -> Result<()>;

    /// Brings a link administratively up.
    fn set_link_up(&self, ns: &Netns, name: &str) -> Result<()>;

    /// Adds an IPv4 address with its prefix length to a link.
    fn add_address(&self, ns: &Netns, link: &str, address: Ipv4Net) -> Result<()>;

    /// Adds a route to the main table.
    fn add_route(&self, ns: &Netns, route: &Route<'_>) -> Result<()>;

    /// Writes a sysctl under `/proc/sys`, named with dots (`net.ipv4.ip_forward`), as seen
    /// from inside `ns`. Fails with [`crate::net::Error::NotFound`] if the key does not exist,
    /// which for `net.bridge.*` means that the br_netfilter module is not loaded.
    fn set_sysctl(&self, ns: &Netns, key: &str, value: &str) -> Result<()>;
}

/// A locally administered unicast MAC address derived from a namespace and link name, so that
/// both implementations give a bridge the same address and a recreated bridge keeps it.
pub(crate) fn stable_mac(ns: &Netns, link: &str) -> [u8; 6] {
    let hash = fnv1a64(format!("{ns}/{link}").as_bytes()).to_be_bytes();
    // 0x02 sets the locally administered bit and clears the multicast bit.
    [0x02, hash[0], hash[1], hash[2], hash[3], hash[4]]
}

/// FNV-1a, 64 bits: stable across releases and platforms, unlike `std`'s hasher, which matters
/// because names derived from it must be found again by a restarted agent.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Checks that `name` can be an interface name: 1 to 15 bytes, no `/`, no whitespace.
pub(crate) fn check_link_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > 15 {
        "an interface name must be 1 to 15 bytes"
    } else if name.contains('/') || name.contains(char::is_whitespace) || name == "." || name == ".." {
        "an interface name may not contain '/' or whitespace"
    } else {
        return Ok(());
    };
    Err(crate::net::Error::Invalid { what: "interface name", value: name.to_owned(), reason })
}

/// Formats a MAC address the way `ip` expects it.
pub(crate) fn format_mac(mac: [u8; 6]) -> String {
    mac.iter().map(|byte| format!("{byte:02x}")).collect::<Vec<_>>().join(":")
}
