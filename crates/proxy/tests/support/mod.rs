//! A throw-away node for packet tests and the benchmark, built from network namespaces the
//! test owns: a node with a pod bridge (`cbr0`, 10.42.0.1/24) and an `eth0` towards an
//! "outside" client (192.168.240.10 ↔ 192.168.240.200), and pods on the bridge.
//! Everything is deleted by name when the guard drops, even if the test failed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 240, 10);
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 240, 200);
pub const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(10, 42, 0, 1);

/// Runs `ip` with `args`, panicking with its stderr on failure (test set-up only).
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Runs a shell command inside namespace `ns`, returning stdout; panics on failure.
pub fn sh(ns: &str, cmd: &str) -> String {
    let out = Command::new("ip").args(["netns", "exec", ns, "sh", "-c", cmd]).output().expect("run sh");
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a thread that has entered namespace `ns`: sockets it opens and processes it
/// starts live there. The calling thread's namespace is untouched.
pub fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns);
            f()
        })
        .join()
        .expect("namespace thread panicked")
    })
}

fn enter(ns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// A node namespace, an outside namespace and pods, deleted on drop.
pub struct Node {
    pub prefix: String,
    pub node: String,
    pub outside: String,
    pub pods: Vec<String>,
    servers: Vec<Server>,
}

impl Node {
    /// Creates the node and `n_pods` pods (10.42.0.2, .3, ...). `tag` keeps names unique.
    pub fn new(tag: &str, n_pods: usize) -> Node {
        let prefix = format!("rkt-{}-{tag}", std::process::id() % 100_000);
        let node = format!("{prefix}-n");
        let outside = format!("{prefix}-o");
        let mut me = Node {
            prefix: prefix.clone(),
            node: node.clone(),
            outside: outside.clone(),
            pods: vec![],
            servers: vec![],
        };
        ip(&["netns", "add", &node]);
        ip(&["netns", "add", &outside]);
        ip(&["-n", &node, "link", "set", "lo", "up"]);
        ip(&["-n", &outside, "link", "set", "lo", "up"]);
        ip(&["-n", &node, "link", "add", "cbr0", "type", "bridge"]);
        ip(&["-n", &node, "addr", "add", "10.42.0.1/24", "dev", "cbr0"]);
        ip(&["-n", &node, "link", "set", "cbr0", "up"]);
        ip(&["-n", &node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &outside]);
        ip(&["-n", &node, "addr", "add", "192.168.240.10/24", "dev", "eth0"]);
        ip(&["-n", &outside, "addr", "add", "192.168.240.200/24", "dev", "eth0"]);
        ip(&["-n", &node, "link", "set", "eth0", "up"]);
        ip(&["-n", &outside, "link", "set", "eth0", "up"]);
        sh(
            &node,
            "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.cbr0.send_redirects=0",
        );
        for i in 0..n_pods {
            me.add_pod(i);
        }
        me
    }

    fn add_pod(&mut self, i: usize) {
        let pod = format!("{}-p{i}", self.prefix);
        let host_if = format!("vp{i}");
        let addr = format!("10.42.0.{}/24", i + 2);
        ip(&["netns", "add", &pod]);
        self.pods.push(pod.clone());
        ip(&["-n", &pod, "link", "set", "lo", "up"]);
        ip(&["-n", &self.node, "link", "add", &host_if, "type", "veth", "peer", "name", "eth0", "netns", &pod]);
        ip(&["-n", &self.node, "link", "set", &host_if, "master", "cbr0", "up"]);
        ip(&["-n", &pod, "addr", "add", &addr, "dev", "eth0"]);
        ip(&["-n", &pod, "link", "set", "eth0", "up"]);
        ip(&["-n", &pod, "route", "add", "default", "via", "10.42.0.1"]);
    }

    pub fn pod_ip(i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 42, 0, u8::try_from(i + 2).expect("pod index"))
    }

    /// Starts a TCP server in pod `i` on `port`: each connection first gets
    /// "<pod index> <peer address>\n", then every line it sends is echoed.
    pub fn serve(&mut self, i: usize, port: u16) {
        let server = Server::start(&self.pods[i], i, port);
        self.servers.push(server);
    }

    /// Lets the outside namespace reach the service CIDR through the node (a route inside
    /// the test's own namespace).
    pub fn route_services_from_outside(&self) {
        ip(&["-n", &self.outside, "route", "add", "10.96.0.0/12", "via", "192.168.240.10"]);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for s in &mut self.servers {
            s.stop();
        }
        for ns in self.pods.iter().chain([&self.outside, &self.node]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A tiny TCP server in a pod namespace. It blocks in accept (a poll would add its interval
/// to every measured connection); stopping shuts the listening socket down, which wakes it.
struct Server {
    stop: Arc<AtomicBool>,
    fd: std::os::fd::RawFd,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(ns: &str, id: usize, port: u16) -> Server {
        use std::os::fd::AsRawFd as _;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let listener = TcpListener::bind(("0.0.0.0", port)).expect("bind");
            tx.send(listener.as_raw_fd()).expect("ready");
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, peer)) => {
                        std::thread::spawn(move || handle(conn, peer, id));
                    }
                    Err(_) => break,
                }
            }
        });
        let fd = rx.recv().expect("server started");
        Server { stop, fd, thread: Some(thread) }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = nix::sys::socket::shutdown(self.fd, nix::sys::socket::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn handle(conn: TcpStream, peer: SocketAddr, id: usize) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_nodelay(true);
    let mut w = conn.try_clone().expect("clone");
    if writeln!(w, "{id} {}", peer.ip()).is_err() {
        return;
    }
    let mut lines = BufReader::new(conn);
    let mut line = String::new();
    while lines.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
        if w.write_all(line.as_bytes()).is_err() {
            return;
        }
        line.clear();
    }
}

/// Connects to `addr` (from the calling thread's namespace) and returns the greeting:
/// (pod index, the source address the pod saw).
pub fn hello(addr: SocketAddr) -> std::io::Result<(usize, Ipv4Addr)> {
    let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    parse_greeting(&line)
}

pub fn parse_greeting(line: &str) -> std::io::Result<(usize, Ipv4Addr)> {
    let bad = || std::io::Error::other(format!("bad greeting {line:?}"));
    let mut it = line.split_whitespace();
    let id = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let peer = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    Ok((id, peer))
}

/// An open connection through which lines are echoed, to test that it survives.
pub struct Echo {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub greeting: (usize, Ipv4Addr),
}

impl Echo {
    pub fn open(addr: SocketAddr) -> std::io::Result<Echo> {
        let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let writer = conn.try_clone()?;
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        Ok(Echo { reader, writer, greeting: parse_greeting(&line)? })
    }

    pub fn echo(&mut self, text: &str) -> std::io::Result<String> {
        writeln!(self.writer, "{text}")?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        Ok(line.trim_end().to_string())
    }
}

/// Reads whatever the peer sends until it closes (for single-shot checks).
pub fn read_all(mut conn: TcpStream) -> String {
    let mut s = String::new();
    let _ = conn.read_to_string(&mut s);
    s
}
