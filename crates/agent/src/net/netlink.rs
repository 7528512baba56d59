//! [`NetOps`] over rtnetlink, in-process: one synchronous netlink socket per namespace.
//!
//! A netlink socket acts on the namespace it was opened in, for its whole life. So the
//! implementation opens one socket per namespace, on a short-lived thread that entered it (or,
//! for a namespace it creates, on the thread that created it), and then uses that socket from
//! whatever thread calls. Sockets are cached by namespace name and checked against the
//! namespace file's inode before each use, so a namespace deleted and recreated behind our back
//! gets a fresh socket instead of a stale one that would act on the dead namespace.
//!
//! The sockets are blocking and each request waits for its acknowledgement, which keeps errors
//! attached to the request that caused them. rtnetlink's async client would add a runtime per
//! namespace for no gain: every request here is a single kernel round trip of a few
//! microseconds, except veth creation, which is bounded by the kernel's RCU grace periods.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use ipnet::Ipv4Net;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use parking_lot::Mutex;

use crate::net::ops::{check_link_name, stable_mac};
use crate::net::{Error, NetOps, Netns, Result, Route, VethSpec, netns};

/// How many namespace sockets to keep open. A node agent touches its own namespace constantly
/// and each pod namespace a handful of times around its setup, so a small cache is enough and
/// keeps pod namespaces from being pinned by rkube's file descriptors long after setup.
const MAX_CACHED_SOCKETS: usize = 64;

/// Large enough for any single reply and for a page of a dump.
const RECV_BUFFER_BYTES: usize = 64 * 1024;

/// The real [`NetOps`]: rtnetlink requests on cached per-namespace sockets.
pub struct NetlinkOps {
    current: Arc<Mutex<NlSocket>>,
    /// The namespace the process was in at construction, for veth peers sent there.
    current_netns: File,
    named: Mutex<HashMap<String, CachedSocket>>,
}

struct CachedSocket {
    /// Device and inode of the namespace file when the socket was opened: a namespace's
    /// identity, since its name can be reused.
    identity: (u64, u64),
    socket: Arc<Mutex<NlSocket>>,
}

impl NetlinkOps {
    /// Opens the socket for the current namespace. Fails only if netlink is unavailable.
    pub fn new() -> Result<NetlinkOps> {
        let os_error = |op: &str, source| Error::Os { ns: Netns::Current.to_string(), op: op.to_owned(), source };
        let current = NlSocket::open().map_err(|source| os_error("open netlink socket", source))?;
        let current_netns =
            File::open("/proc/thread-self/ns/net").map_err(|source| os_error("open own namespace", source))?;
        Ok(NetlinkOps { current: Arc::new(Mutex::new(current)), current_netns, named: Mutex::new(HashMap::new()) })
    }

    /// The socket for `ns`, opened on first use or when the namespace was replaced.
    fn socket(&self, ns: &Netns) -> Result<Arc<Mutex<NlSocket>>> {
        let Netns::Named(name) = ns else {
            return Ok(self.current.clone());
        };
        let identity = namespace_identity(name)?;
        if let Some(cached) = self.named.lock().get(name).filter(|cached| cached.identity == identity) {
            return Ok(cached.socket.clone());
        }
        let socket = netns::run_in(ns, NlSocket::open)?.map_err(|source| Error::Os {
            ns: name.clone(),
            op: "open netlink socket".to_owned(),
            source,
        })?;
        Ok(self.remember(name, identity, socket))
    }

    fn remember(&self, name: &str, identity: (u64, u64), socket: NlSocket) -> Arc<Mutex<NlSocket>> {
        let socket = Arc::new(Mutex::new(socket));
        let mut named = self.named.lock();
        if named.len() >= MAX_CACHED_SOCKETS && !named.contains_key(name) {
            // Which entry goes does not matter for correctness; any of them is reopened on demand.
            if let Some(victim) = named.keys().next().cloned() {
                named.remove(&victim);
            }
        }
        named.insert(name.to_owned(), CachedSocket { identity, socket: socket.clone() });
        socket
    }

    /// Sends one request in `ns` and maps a failure to the module's error kinds.
    fn request(
        &self,
        ns: &Netns,
        op: &str,
        what: &str,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let socket = self.socket(ns)?;
        let mut socket = socket.lock();
        socket.exchange(message, flags).map_err(|source| Error::from_os(ns, op, what, source))
    }

    /// Looks a link's index up by name.
    fn link_index(&self, ns: &Netns, name: &str) -> Result<u32> {
        let message = link_message(name);
        let replies =
            self.request(ns, "get link", &format!("link {name}"), RouteNetlinkMessage::GetLink(message), NLM_F_ACK)?;
        replies
            .into_iter()
            .find_map(|reply| match reply {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })
            .ok_or_else(|| Error::NotFound { ns: ns.to_string(), what: format!("link {name}") })
    }
}

impl NetOps for NetlinkOps {
    fn create_netns(&self, name: &str) -> Result<()> {
        // The new namespace's socket is opened by the thread that creates it, which saves the
        // thread and `setns` that a first use would otherwise cost on the pod setup path.
        let socket = netns::create_with(name, NlSocket::open)?;
        let identity = namespace_identity(name)?;
        self.remember(name, identity, socket);
        Ok(())
    }

    fn delete_netns(&self, name: &str) -> Result<()> {
        // Dropping the cached socket matters: an open socket would keep the namespace alive.
        self.named.lock().remove(name);
        netns::delete(name)
    }

    fn list_netns(&self) -> Result<Vec<String>> {
        netns::list()
    }

    fn add_bridge(&self, ns: &Netns, name: &str) -> Result<()> {
        check_link_name(name)?;
        let mut message = link_message(name);
        set_up(&mut message);
        message.attributes.push(LinkAttribute::Address(stable_mac(ns, name).to_vec()));
        message.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        let what = format!("link {name}");
        self.request(ns, "add bridge", &what, RouteNetlinkMessage::NewLink(message), CREATE_FLAGS)?;
        Ok(())
    }

    fn add_veth(&self, ns: &Netns, veth: &VethSpec<'_>) -> Result<()> {
        check_link_name(veth.name)?;
        check_link_name(veth.peer_name)?;
        let master = veth.master.map(|master| self.link_index(ns, master)).transpose()?;
        let opened_peer_netns;
        let peer_netns = match veth.peer_netns {
            Netns::Current => &self.current_netns,
            Netns::Named(peer_name) => {
                opened_peer_netns = netns::open(peer_name)?;
                &opened_peer_netns
            }
        };

        // The peer cannot be created up: the kernel configures it before the pair is linked,
        // and opening a veth without a peer fails with ENOTCONN. It is set up afterwards.
        let mut peer = link_message(veth.peer_name);
        peer.attributes.push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));

        let mut message = link_message(veth.name);
        set_up(&mut message);
        if let Some(master) = master {
            message.attributes.push(LinkAttribute::Controller(master));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let what = format!("link {}", veth.name);
        self.request(ns, "add veth", &what, RouteNetlinkMessage::NewLink(message), CREATE_FLAGS)?;
        self.set_link_up(veth.peer_netns, veth.peer_name)
    }

    fn delete_link(&self, ns: &Netns, name: &str) -> Result<()> {
        check_link_name(name)?;
        let message = link_message(name);
        match self.request(ns, "delete link", &format!("link {name}"), RouteNetlinkMessage::DelLink(message), NLM_F_ACK)
        {
            // A missing namespace also means the link is gone: it died with the namespace.
            Err(Error::NotFound { .. }) => Ok(()),
            other => other.map(drop),
        }
    }

    fn set_link_up(&self, ns: &Netns, name: &str) -> Result<()> {
        check_link_name(name)?;
        let mut message = link_message(name);
        set_up(&mut message);
        self.request(ns, "set link up", &format!("link {name}"), RouteNetlinkMessage::SetLink(message), NLM_F_ACK)?;
        Ok(())
    }

    fn add_address(&self, ns: &Netns, link: &str, address: Ipv4Net) -> Result<()> {
        let index = self.link_index(ns, link)?;
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = address.prefix_len();
        message.header.index = index;
        // For IPv4 the kernel wants both: IFA_LOCAL is the interface's address and IFA_ADDRESS
        // the peer's, which on a broadcast link is the same; `ip address add` sends both too.
        message.attributes.push(AddressAttribute::Local(IpAddr::V4(address.addr())));
        message.attributes.push(AddressAttribute::Address(IpAddr::V4(address.addr())));
        let what = format!("address {address} on {link}");
        self.request(ns, "add address", &what, RouteNetlinkMessage::NewAddress(message), CREATE_FLAGS)?;
        Ok(())
    }

    fn add_route(&self, ns: &Netns, route: &Route<'_>) -> Result<()> {
        let index = self.link_index(ns, route.device)?;
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.destination_prefix_length = route.destination.prefix_len();
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        // Protocol "boot" is what `ip route add` uses for routes made by an administrator.
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        if route.destination.prefix_len() > 0 {
            message.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(route.destination.network())));
        }
        message.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(route.gateway)));
        message.attributes.push(RouteAttribute::Oif(index));
        let what = format!("route {} via {}", route.destination, route.gateway);
        self.request(ns, "add route", &what, RouteNetlinkMessage::NewRoute(message), CREATE_FLAGS)?;
        Ok(())
    }

    fn set_sysctl(&self, ns: &Netns, key: &str, value: &str) -> Result<()> {
        netns::write_sysctl(ns, key, value)
    }
}

const CREATE_FLAGS: u16 = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;

/// A link message naming its link, with index 0 so that the kernel looks the name up.
fn link_message(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.attributes.push(LinkAttribute::IfName(name.to_owned()));
    message
}

fn set_up(message: &mut LinkMessage) {
    message.header.flags |= LinkFlags::Up;
    message.header.change_mask |= LinkFlags::Up;
}

fn namespace_identity(name: &str) -> Result<(u64, u64)> {
    std::fs::metadata(netns::path(name))
        .map(|metadata| (metadata.dev(), metadata.ino()))
        .map_err(|source| Error::from_os(&Netns::named(name), "stat namespace", "network namespace", source))
}

/// A blocking rtnetlink socket that sends one request at a time.
struct NlSocket {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl NlSocket {
    fn open() -> io::Result<NlSocket> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(NlSocket { socket, sequence: 0, buffer: Vec::with_capacity(RECV_BUFFER_BYTES) })
    }

    /// Sends `message` and collects the replies up to the acknowledgement (or, for a dump, up
    /// to its end). A negative acknowledgement becomes the matching `io::Error`.
    fn exchange(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;

        let mut replies = Vec::new();
        loop {
            self.buffer.clear();
            // A signal delivered to this thread interrupts the wait but not the request.
            while let Err(error) = self.socket.recv(&mut self.buffer, 0) {
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
            let mut offset = 0;
            while offset < self.buffer.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buffer[offset..])
                    .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
                let length = reply.header.length as usize;
                if length == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "zero-length netlink message"));
                }
                // Netlink messages are padded to four bytes.
                offset += (length + 3) & !3;
                if reply.header.sequence_number != self.sequence {
                    // A late reply to an earlier request that failed half way; not ours.
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(replies),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(inner) => {
                        replies.push(inner);
                        if flags & (NLM_F_ACK | NLM_F_DUMP) == 0 {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_request_carries_the_peer_and_its_namespace() {
        // This pins the message shape that makes a pod's eth0 appear directly in its namespace
        // under its final name: one request instead of create, move and rename.
        let mut peer = link_message("eth0");
        peer.attributes.push(LinkAttribute::NetNsFd(7));
        let mut message = link_message("vethabc");
        set_up(&mut message);
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        let mut packet = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(message.clone())),
        );
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes).expect("a valid message");
        assert_eq!(parsed.payload, NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(message)));
    }
}
