//! A node as `rkube up` makes one: a network namespace of the test's own. The server binds
//! the kube-dns ClusterIP there after `setup_local_address`, and the real dig, run inside
//! the namespace, gets answers from 10.96.0.10:53 over UDP and TCP. Nothing leaves the
//! namespace; it is deleted by name, even on failure.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use rkube_dns::{DnsServer, LOCAL_LINK, Metrics, SnapshotCell, fixtures, setup_local_address};

const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn dig_in(ns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "dig", "@10.96.0.10", "+short", "+tries=1", "+time=3"])
        .args(args)
        .output()
        .expect("run dig");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn serves_the_cluster_ip_inside_a_node_namespace() {
    let name = format!("rkt-{}-dns", std::process::id());
    let _ = Command::new("ip").args(["netns", "del", &name]).stderr(std::process::Stdio::null()).status();
    ip(&["netns", "add", &name]);
    let ns = Namespace(name.clone());
    ip(&["-n", &name, "link", "set", "lo", "up"]);

    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let path = format!("/var/run/netns/{name}");
    let node = std::thread::spawn(move || {
        // This thread becomes the node: the link, the address and the sockets are made here.
        let f = std::fs::File::open(&path).expect("open netns");
        rustix::thread::move_into_link_name_space(f.as_fd(), Some(rustix::thread::LinkNameSpaceType::Network))
            .expect("enter netns");
        let setup = setup_local_address(CLUSTER_IP).and_then(|()| setup_local_address(CLUSTER_IP));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            if let Err(e) = setup {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
            let cell = SnapshotCell::new(fixtures::cluster(100).snapshot(&fixtures::build_config()));
            let listen = [SocketAddr::from((CLUSTER_IP, 53))];
            match DnsServer::start(&listen, Vec::new(), 30, cell, Metrics::new()) {
                Ok(server) => {
                    let _ = ready_tx.send(Ok(()));
                    let _ = stop_rx.await;
                    drop(server);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
        });
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).expect("node thread").expect("set up and listen in the namespace");

    // On rkube-dns0, or on lo where the kernel has no dummy driver.
    let links = ip(&["-n", &name, "-br", "addr", "show"]);
    let holder = links.lines().find(|l| l.contains("10.96.0.10/32")).unwrap_or_default();
    assert!(holder.starts_with(LOCAL_LINK) || holder.starts_with("lo "), "{links}");
    assert_eq!(dig_in(&name, &["my-nginx.default.svc.cluster.local"]), "10.96.0.100");
    assert_eq!(dig_in(&name, &["+tcp", "kube-dns.kube-system.svc.cluster.local"]), "10.96.0.10");
    assert_eq!(dig_in(&name, &["big.default.svc.cluster.local"]).lines().count(), 100, "TC, then TCP");

    let _ = stop_tx.send(());
    node.join().expect("node thread");
    drop(ns);
    assert!(!ip(&["netns", "list"]).lines().any(|l| l.split_whitespace().next() == Some(name.as_str())));
}
