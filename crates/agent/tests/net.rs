//! The networking layer against the real kernel: namespaces, a 2-node fabric, pods, routing
//! without NAT, isolation from the host, teardown, and the per-pod setup time.
//!
//! These tests need root. Traffic goes only between namespaces that each test creates, and
//! every name a test creates starts with `rkt<pid>x<n>`, which is also how it cleans up.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rkube_agent::net::fabric::{self, FabricConfig, FabricLayout, NodeLayout, POD_BRIDGE};
use rkube_agent::net::ipam::Ipam;
use rkube_agent::net::ipcmd::IpCommandOps;
use rkube_agent::net::netlink::NetlinkOps;
use rkube_agent::net::pod::{self, PodNet};
use rkube_agent::net::{NetOps, Netns, netns};

/// Tests run one at a time, so that the setup timings are not skewed by a parallel test.
static SERIAL: Mutex<()> = Mutex::new(());

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the benchmark waits before each measured phase. The kernel destroys deleted
/// namespaces later, on a work queue that takes the RTNL lock every setup also needs; without
/// the pause, the cleanup of earlier tests' namespaces shows up as setup time.
const SETTLE: Duration = Duration::from_secs(1);

fn unique_name(n: u32) -> String {
    format!("rkt{}x{n}", std::process::id())
}

/// Tears the cluster down when the test ends, also when it fails half way.
struct ClusterGuard {
    name: String,
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Ok(ops) = NetlinkOps::new() {
            let _ = fabric::teardown(&ops, &self.name);
        }
    }
}

/// Runs `ip` with `args` and returns whether it succeeded and its stdout and stderr.
fn ip(args: &[&str]) -> (bool, String) {
    let output = Command::new("ip").args(args).output().expect("the ip command runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// Asserts that neither `ip netns list` nor `ip link` mentions `prefix`.
fn assert_nothing_left(prefix: &str) {
    let (ok, namespaces) = ip(&["netns", "list"]);
    assert!(ok, "{namespaces}");
    assert!(!namespaces.contains(prefix), "namespaces left behind: {namespaces}");
    let (ok, links) = ip(&["-o", "link", "show"]);
    assert!(ok, "{links}");
    assert!(!links.contains(prefix), "links left behind: {links}");
}

/// A TCP server inside a namespace that answers every connection with the address it sees
/// the client at, then stops when dropped.
struct WhoAmIServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WhoAmIServer {
    fn start(ns: &Netns, address: SocketAddr) -> WhoAmIServer {
        // The listener is created inside `ns` and then served from this process's own thread:
        // a socket stays in the namespace it was created in.
        let listener: TcpListener = netns::tcp_listen_in(ns, address).expect("listen inside the namespace");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, peer)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = writeln!(stream, "{}", peer.ip());
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        WhoAmIServer { address, stop, thread: Some(thread) }
    }
}

impl Drop for WhoAmIServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects from inside `from` to `server` and returns the client address the server saw.
fn seen_by(server: &WhoAmIServer, from: &Netns) -> IpAddr {
    let stream = netns::tcp_connect_in(from, server.address, CONNECT_TIMEOUT)
        .unwrap_or_else(|error| panic!("connect from {from} to {}: {error}", server.address));
    stream.set_read_timeout(Some(CONNECT_TIMEOUT)).expect("timeout");
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).expect("the server answers");
    line.trim().parse().expect("an address")
}

fn v4(address: Ipv4Addr) -> IpAddr {
    IpAddr::V4(address)
}

/// Sets up `count` pods on `node` with addresses from a fresh IPAM.
fn setup_pods(ops: &dyn NetOps, node: &NodeLayout, ipam: &mut Ipam, count: usize) -> Vec<PodNet> {
    (0..count)
        .map(|n| {
            let uid = format!("pod{n}");
            let ip = ipam.allocate(&uid).expect("an address");
            pod::setup_pod(
                ops,
                &node.ns(),
                &node.pod_netns_name(&uid),
                ip,
                node.pod_cidr.prefix_len(),
                ipam.gateway(),
                POD_BRIDGE,
            )
            .expect("pod network")
        })
        .collect()
}

fn route_lookup_fails(ns: &str, args: &[&str]) -> (bool, String) {
    let mut full = vec!["-n", ns, "route", "get"];
    full.extend_from_slice(args);
    let (ok, text) = ip(&full);
    (!ok, text)
}

#[test]
fn two_node_fabric_routes_pod_traffic_without_nat_and_tears_down_cleanly() {
    let _serial = SERIAL.lock();
    let name = unique_name(1);
    let _guard = ClusterGuard { name: name.clone() };
    let ops = NetlinkOps::new().expect("netlink");
    let layout: FabricLayout = fabric::up(&ops, &FabricConfig::new(&name, 2)).expect("fabric up");
    let state = tempfile::tempdir().expect("tempdir");

    // Forwarding is on in nodes only; br_netfilter's hook, where the module is loaded, is off.
    let read_sysctl = |ns: &str, path: &str| {
        let output = Command::new("ip").args(["netns", "exec", ns, "cat", path]).output().expect("ip netns exec");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(read_sysctl(&layout.nodes[0].netns, "/proc/sys/net/ipv4/ip_forward"), "1");
    assert_eq!(read_sysctl(&layout.fabric_netns, "/proc/sys/net/ipv4/ip_forward"), "0");
    if std::path::Path::new("/proc/sys/net/bridge").exists() {
        assert_eq!(read_sysctl(&layout.nodes[0].netns, "/proc/sys/net/bridge/bridge-nf-call-iptables"), "0");
    }

    let mut pods = Vec::new();
    for node in &layout.nodes {
        let dir = state.path().join(&node.netns);
        std::fs::create_dir(&dir).expect("state dir");
        let mut ipam = Ipam::open(&dir, node.pod_cidr).expect("ipam");
        pods.push(setup_pods(&ops, node, &mut ipam, 2));
    }
    let (node1, node2) = (&layout.nodes[0], &layout.nodes[1]);
    let pod_ns = |pod: &PodNet| Netns::named(&pod.netns);
    let pod_ip = |pod: &PodNet| v4(pod.address.addr());

    // One server in every pod; each pod then talks to every other one, across nodes and on
    // the same node, and the receiver must see the sender's own pod IP.
    let servers: Vec<(&PodNet, WhoAmIServer)> = pods
        .iter()
        .flatten()
        .map(|pod| (pod, WhoAmIServer::start(&pod_ns(pod), SocketAddr::new(pod_ip(pod), 7000))))
        .collect();
    for client in pods.iter().flatten() {
        for (server_pod, server) in &servers {
            if server_pod.netns != client.netns {
                assert_eq!(
                    seen_by(server, &pod_ns(client)),
                    pod_ip(client),
                    "{} -> {}",
                    client.netns,
                    server_pod.netns
                );
            }
        }
    }

    // Node to pod: on its own node from the bridge address, across the fabric from its
    // InternalIP.
    let (pod_on_node1, pod_on_node2) = (&servers[0].1, &servers[2].1);
    assert_eq!(seen_by(pod_on_node1, &node1.ns()), v4(node1.pod_gateway));
    assert_eq!(seen_by(pod_on_node2, &node1.ns()), v4(node1.internal_ip()));

    // Pod to node, and the outside client to a node's fabric address.
    let node2_server = WhoAmIServer::start(&node2.ns(), SocketAddr::new(v4(node2.internal_ip()), 7001));
    assert_eq!(seen_by(&node2_server, &pod_ns(&pods[0][0])), pod_ip(&pods[0][0]));
    assert_eq!(seen_by(&node2_server, &layout.outside.ns()), v4(layout.outside.address.addr()));

    // The API server's way in: a listener this process opens inside the fabric namespace,
    // reached by nodes and by pods, with no host-side link at all.
    let api = WhoAmIServer::start(&layout.fabric_ns(), SocketAddr::new(v4(layout.api_ip()), 7002));
    assert_eq!(seen_by(&api, &node1.ns()), v4(node1.internal_ip()));
    assert_eq!(seen_by(&api, &pod_ns(&pods[1][1])), pod_ip(&pods[1][1]));

    // No way out. A pod's own table sends everything to its gateway, so the decision that
    // matters is the node's: neither the node nor a pod's forwarded packet has a route to an
    // address outside the cluster or to any of the host's own addresses. `ip route get`
    // only asks the kernel; it sends nothing.
    let (ok, pod_route) = ip(&["-n", &pods[0][0].netns, "route", "get", "8.8.8.8"]);
    assert!(ok && pod_route.contains(&format!("via {}", node1.pod_gateway)), "{pod_route}");
    let (ok, host_addresses) = ip(&["-4", "-o", "address", "show"]);
    assert!(ok, "{host_addresses}");
    let mut destinations = vec!["8.8.8.8".to_owned()];
    destinations.extend(
        host_addresses
            .lines()
            .filter_map(|line| line.split_whitespace().nth(3))
            .filter_map(|cidr| cidr.split('/').next())
            .filter(|address| !address.starts_with("127."))
            .map(str::to_owned),
    );
    let pod_source = pods[0][0].address.addr().to_string();
    for destination in &destinations {
        for (ns, extra) in [
            (node1.netns.as_str(), vec![]),
            (node1.netns.as_str(), vec!["from", pod_source.as_str(), "iif", POD_BRIDGE]),
            (layout.outside.netns.as_str(), vec![]),
            (layout.fabric_netns.as_str(), vec![]),
        ] {
            let mut args = vec![destination.as_str()];
            args.extend(extra.iter().copied());
            // A host address that happens to lie inside the cluster's own ranges would be
            // routable, and would be a namespace of ours; skip it rather than misreport.
            if destination.starts_with("10.42.") || destination.starts_with("192.168.240.") {
                continue;
            }
            let (unreachable, text) = route_lookup_fails(ns, &args);
            assert!(unreachable, "{ns} has a route to {destination} ({args:?}): {text}");
        }
    }

    drop((servers, node2_server, api));

    // One pod torn down by itself: its node-side veth leaves the bridge at once.
    let victim = &pods[1][0];
    pod::teardown_pod(&ops, &node2.ns(), &victim.netns).expect("teardown pod");
    let (exists, _) = ip(&["-n", &node2.netns, "link", "show", &victim.host_veth]);
    assert!(!exists, "{} is still there", victim.host_veth);
    pod::teardown_pod(&ops, &node2.ns(), &victim.netns).expect("teardown pod again");

    // `up` again over a live cluster replaces it; then teardown removes everything.
    fabric::up(&ops, &FabricConfig::new(&name, 2)).expect("second up");
    let removed = fabric::teardown(&ops, &name).expect("teardown");
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert_nothing_left(&name);
    assert!(fabric::teardown(&ops, &name).expect("teardown again").is_empty());
}

#[test]
fn teardown_after_a_crash_removes_leftovers_by_name() {
    let _serial = SERIAL.lock();
    let name = unique_name(2);
    let _guard = ClusterGuard { name: name.clone() };
    let ops = NetlinkOps::new().expect("netlink");
    let layout = fabric::up(&ops, &FabricConfig::new(&name, 1)).expect("fabric up");
    let node = &layout.nodes[0];
    pod::setup_pod(
        &ops,
        &node.ns(),
        &node.pod_netns_name("orphan"),
        Ipv4Addr::new(10, 42, 1, 9),
        24,
        node.pod_gateway,
        POD_BRIDGE,
    )
    .expect("pod");
    // A new process knows nothing of the old one's state; a fresh `NetOps` stands for it, and
    // `ip` for a namespace the crash left half made.
    drop(ops);
    let (ok, text) = ip(&["netns", "add", &format!("{name}-node7")]);
    assert!(ok, "{text}");
    let fresh = NetlinkOps::new().expect("netlink");
    let removed = fabric::teardown(&fresh, &name).expect("teardown");
    assert_eq!(removed.len(), 5, "{removed:?}");
    assert_nothing_left(&name);
}

#[test]
fn namespaces_are_shared_with_ip_netns_and_sockets_follow_recreation() {
    let _serial = SERIAL.lock();
    let name = unique_name(3);
    let _guard = ClusterGuard { name: name.clone() };
    let ops = NetlinkOps::new().expect("netlink");
    let ours = format!("{name}-node1");
    let theirs = format!("{name}-node2");

    ops.create_netns(&ours).expect("create");
    assert!(ops.create_netns(&ours).expect_err("twice").is_already_exists());
    let (ok, listing) = ip(&["netns", "list"]);
    assert!(ok && listing.contains(&ours), "{listing}");
    IpCommandOps.create_netns(&theirs).expect("ip netns add");
    assert!(ops.list_netns().expect("list").contains(&theirs));

    ops.set_sysctl(&Netns::named(&theirs), "net.ipv4.ip_forward", "1").expect("sysctl");
    let output = Command::new("ip")
        .args(["netns", "exec", &theirs, "cat", "/proc/sys/net/ipv4/ip_forward"])
        .output()
        .expect("ip netns exec");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1");
    let missing = ops.set_sysctl(&Netns::named(&theirs), "net.ipv4.no_such_key", "1").expect_err("missing");
    assert!(missing.is_not_found(), "{missing}");

    // Our socket for `ours` is cached; replacing the namespace behind our back must not make
    // later operations act on the dead one.
    ops.set_link_up(&Netns::named(&ours), "lo").expect("lo up");
    let (ok, text) = ip(&["netns", "delete", &ours]);
    assert!(ok, "{text}");
    let (ok, text) = ip(&["netns", "add", &ours]);
    assert!(ok, "{text}");
    ops.set_link_up(&Netns::named(&ours), "lo").expect("lo up in the new namespace");
    let (_, lo) = ip(&["-n", &ours, "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");

    ops.delete_netns(&ours).expect("delete");
    ops.delete_netns(&ours).expect("delete twice");
    ops.delete_netns(&theirs).expect("delete theirs");
    assert!(ops.set_link_up(&Netns::named(&ours), "lo").expect_err("gone").is_not_found());
    assert_nothing_left(&name);
}

/// Sets up and tears down `count` pods with `ops`, returning the setup and teardown times.
fn time_pods(ops: &dyn NetOps, node: &NodeLayout, label: &str, count: usize) -> (Vec<Duration>, Vec<Duration>) {
    let mut setups = Vec::with_capacity(count);
    let mut teardowns = Vec::with_capacity(count);
    let mut made = Vec::with_capacity(count);
    for n in 0..count {
        let netns = node.pod_netns_name(&format!("{label}{n}"));
        let ip = Ipv4Addr::from(u32::from(node.pod_gateway) + 1 + n as u32);
        let start = Instant::now();
        pod::setup_pod(ops, &node.ns(), &netns, ip, 24, node.pod_gateway, POD_BRIDGE).expect("pod network");
        setups.push(start.elapsed());
        made.push(netns);
    }
    for netns in made {
        let start = Instant::now();
        pod::teardown_pod(ops, &node.ns(), &netns).expect("teardown pod");
        teardowns.push(start.elapsed());
    }
    (setups, teardowns)
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let percentile = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    format!(
        "p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  mean {:>6.2} ms",
        percentile(50).as_secs_f64() * 1e3,
        percentile(90).as_secs_f64() * 1e3,
        percentile(99).as_secs_f64() * 1e3,
        mean.as_secs_f64() * 1e3
    )
}

#[test]
fn pod_setup_time_netlink_versus_ip_command() {
    let _serial = SERIAL.lock();
    let name = unique_name(4);
    let _guard = ClusterGuard { name: name.clone() };
    let netlink = NetlinkOps::new().expect("netlink");
    let layout = fabric::up(&netlink, &FabricConfig::new(&name, 1)).expect("fabric up");
    let node = &layout.nodes[0];
    const PODS: usize = 50;

    // A few pods first, so that neither variant pays for first-use costs in the kernel.
    time_pods(&netlink, node, "warm", 3);
    thread::sleep(SETTLE);
    let (mut netlink_setup, mut netlink_teardown) = time_pods(&netlink, node, "nl", PODS);
    thread::sleep(SETTLE);
    let (mut ip_setup, mut ip_teardown) = time_pods(&IpCommandOps, node, "ip", PODS);
    println!("per-pod network setup over {PODS} pods:");
    println!("  netlink setup     {}", summary(&mut netlink_setup));
    println!("  ip command setup  {}", summary(&mut ip_setup));
    println!("  netlink teardown  {}", summary(&mut netlink_teardown));
    println!("  ip teardown       {}", summary(&mut ip_teardown));

    fabric::teardown(&netlink, &name).expect("teardown");
    assert_nothing_left(&name);
}
