//! `rkube up`, `down`, `node` and `outside` with the real binary, the real kernel (network
//! namespaces, mounts, cgroups), runc and kubectl. Needs root.
//!
//! Every test uses a cluster name of its own (`rkt<pid><n>`) and a temporary data directory,
//! and runs `rkube down` from a Drop guard, so a failing test leaves nothing behind. Traffic
//! goes only between namespaces the test's cluster made.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn rkube() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkube"));
    cmd.env("RKUBE_LOG", "warn");
    cmd
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run a command")
}

/// A cluster for one test; `down` on drop.
struct Cluster {
    name: String,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    /// Environment for `up` and `node start`.
    env: Vec<(String, String)>,
}

impl Cluster {
    fn new(env: &[(&str, &str)]) -> Cluster {
        let name = format!("rkt{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let tmp = tempfile::Builder::new().prefix("rkube-cluster-").tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        Cluster { name, dir, _tmp: tmp, env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() }
    }

    /// A cluster whose `up` does not wait for Ready Nodes and preloads no images: the
    /// processes, files and network of `up`, without depending on the agent working.
    fn plumbing(empty_images: &Path) -> Cluster {
        let images = empty_images.to_str().expect("utf-8 path");
        Cluster::new(&[("RKUBE_UP_SKIP_READY", "1"), ("RKUBE_IMAGES_DIR", images)])
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = rkube();
        cmd.args(args).arg("--name").arg(&self.name).arg("--data-dir").arg(&self.dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn up(&self, nodes: usize) -> Output {
        // Port 0 on the host side: tests run side by side; nodes use the fabric address.
        run(&mut self.cmd(&["up", "--listen", "127.0.0.1:0", "--nodes", &nodes.to_string()]))
    }

    fn up_ok(&self, nodes: usize) -> String {
        let out = self.up(nodes);
        assert!(out.status.success(), "rkube up failed: {}\n{}", text(&out), self.logs());
        text(&out)
    }

    fn down_ok(&self) {
        let out = run(&mut self.cmd(&["down"]));
        assert!(out.status.success(), "rkube down failed: {}", text(&out));
    }

    /// `rkube node exec <node> -- args...` or `rkube outside -- args...`.
    fn exec(&self, node: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = match node {
            Some(node) => self.cmd(&["node", "exec", node]),
            None => self.cmd(&["outside"]),
        };
        run(cmd.arg("--").args(args))
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        run(Command::new("kubectl").arg("--kubeconfig").arg(self.dir.join("kubeconfig")).args(args))
    }

    fn namespaces(&self) -> Vec<String> {
        let out = run(Command::new("ip").args(["netns", "list"]));
        let mut namespaces: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|ns| ns.starts_with(&format!("{}-", self.name)))
            .map(str::to_owned)
            .collect();
        namespaces.sort();
        namespaces
    }

    fn recorded_pids(&self) -> Vec<i32> {
        std::fs::read_dir(self.dir.join("run"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
            .collect()
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.join("logs")).into_iter().flatten().flatten() {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            all.push_str(&format!("--- {}\n{}\n", entry.path().display(), tail.join("\n")));
        }
        all
    }

    /// What `down` must leave nothing of: namespaces, live processes (recorded PIDs and
    /// shims working in the data directory), mounts under the data directory, cgroups.
    fn assert_nothing_left(&self, pids: &[i32]) {
        assert_eq!(self.namespaces(), Vec::<String>::new(), "network namespaces left");
        for pid in pids {
            assert!(!alive(*pid), "process {pid} still running");
        }
        assert_eq!(shims_under(&self.dir), Vec::<i32>::new(), "shims left");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let dir = self.dir.to_str().expect("utf-8");
        let mounts: Vec<&str> = mountinfo.lines().filter(|l| l.contains(dir)).collect();
        assert!(mounts.is_empty(), "mounts left: {mounts:#?}");
        let cgroups = cgroups_of(&self.name);
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = run(&mut self.cmd(&["down"]));
        if !out.status.success() {
            eprintln!("cleanup: rkube down failed: {}", text(&out));
        }
    }
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()))
        .is_some_and(|state| state != 'Z')
}

/// `rkube __shim` processes whose working directory is under `dir`.
fn shims_under(dir: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let is_shim = cmdline.split(|b| *b == 0).nth(1) == Some(b"__shim".as_slice());
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
            is_shim && cwd.starts_with(dir) && alive(*pid)
        })
        .collect()
}

/// The cgroups named after the cluster's nodes, in any hierarchy.
fn cgroups_of(cluster: &str) -> Vec<PathBuf> {
    let prefix = format!("rkube-{cluster}-node");
    let mut found = Vec::new();
    let hierarchies: Vec<PathBuf> = std::iter::once(PathBuf::from("/sys/fs/cgroup"))
        .chain(std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path()))
        .collect();
    for hierarchy in hierarchies {
        for entry in std::fs::read_dir(&hierarchy).into_iter().flatten().flatten() {
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
                found.push(entry.path());
            }
        }
    }
    found
}

/// The host's links (names and addresses) and routes, to check that `up` adds none.
fn host_network() -> (String, String, String) {
    let get = |args: &[&str]| {
        let out = run(Command::new("ip").args(args));
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            // Link lines carry counters and state that change by themselves; keep the name.
            .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
            .collect();
        lines.sort();
        lines.join("\n")
    };
    let routes =
        String::from_utf8_lossy(&run(Command::new("ip").args(["route", "show", "table", "all"])).stdout).into_owned();
    (get(&["-o", "link"]), get(&["-o", "addr"]).to_string() + &get(&["-o", "-6", "addr"]), routes)
}

fn empty_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn up_builds_an_isolated_network_and_down_removes_everything() {
    let images = empty_dir();
    let cluster = Cluster::plumbing(images.path());
    let host_before = host_network();

    let out = cluster.up_ok(2);
    assert!(out.contains(&format!("export KUBECONFIG={}", cluster.dir.join("kubeconfig").display())), "{out}");
    let mut expected: Vec<String> =
        ["fabric", "node1", "node2", "outside"].iter().map(|s| format!("{}-{s}", cluster.name)).collect();
    expected.sort();
    assert_eq!(cluster.namespaces(), expected);

    // The host reaches the API with the admin kubeconfig.
    let readyz = cluster.kubectl(&["get", "--raw", "/readyz"]);
    assert!(readyz.status.success(), "{}", text(&readyz));
    // A node reaches it on the fabric address, with a certificate valid for that address.
    let node_kubeconfig = cluster.dir.join("node-kubeconfig");
    let from_node = cluster.exec(
        Some(&format!("{}-node1", cluster.name)),
        &["kubectl", "--kubeconfig", node_kubeconfig.to_str().expect("utf-8"), "get", "--raw", "/readyz"],
    );
    assert!(from_node.status.success(), "{}", text(&from_node));
    assert_eq!(String::from_utf8_lossy(&from_node.stdout).trim(), "ok");

    // Nodes reach each other; `node<i>` is accepted for `<name>-node<i>`.
    let ping = cluster.exec(Some("node1"), &["busybox", "ping", "-c1", "-W2", "192.168.240.12"]);
    assert!(ping.status.success(), "node1 → node2: {}", text(&ping));
    let addr = cluster.exec(Some("node2"), &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
    assert!(String::from_utf8_lossy(&addr.stdout).contains("192.168.240.12/24"), "{}", text(&addr));
    // The outside client reaches a node.
    let ping = cluster.exec(None, &["busybox", "ping", "-c1", "-W2", "192.168.240.11"]);
    assert!(ping.status.success(), "outside → node1: {}", text(&ping));
    // Nothing beyond the fabric is routable from a node: the lookup fails, nothing is sent.
    let route = cluster.exec(Some("node1"), &["ip", "route", "get", "10.0.2.2"]);
    assert!(!route.status.success(), "a node has a route out: {}", text(&route));
    // The command's exit code and output come through.
    let exit = cluster.exec(Some("node2"), &["sh", "-c", "echo hi; exit 7"]);
    assert_eq!(exit.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&exit.stdout), "hi\n");
    let unknown = cluster.exec(Some("node9"), &["true"]);
    assert!(!unknown.status.success());

    // The host namespace gained nothing.
    assert_eq!(host_network(), host_before, "up changed the host's network");

    let pids = cluster.recorded_pids();
    assert!(!pids.is_empty());
    cluster.down_ok();
    cluster.assert_nothing_left(&pids);
    assert_eq!(host_network(), host_before, "down changed the host's network");
    // Twice in a row.
    cluster.down_ok();
}

#[test]
fn up_twice_then_down_after_everything_was_killed() {
    let images = empty_dir();
    let cluster = Cluster::plumbing(images.path());
    cluster.up_ok(2);
    let server_pid = std::fs::read_to_string(cluster.dir.join("run/server.pid")).expect("server.pid");
    // A second `up` either finds the cluster healthy or replaces it; either way it is up.
    let second = cluster.up_ok(2);
    let server_pid_after = std::fs::read_to_string(cluster.dir.join("run/server.pid")).expect("server.pid");
    if second.contains("already up") {
        assert_eq!(server_pid, server_pid_after);
    } else {
        assert!(second.contains("starting afresh"), "{second}");
        assert!(!alive(server_pid.trim().parse().expect("pid")), "the old server survived a re-up");
    }
    let readyz = cluster.kubectl(&["get", "--raw", "/readyz"]);
    assert!(readyz.status.success(), "{}", text(&readyz));

    // A crash: every process dies at once, namespaces and files stay.
    let pids = cluster.recorded_pids();
    for pid in &pids {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    cluster.down_ok();
    cluster.assert_nothing_left(&pids);
    // And `up` works again after that.
    cluster.up_ok(1);
    let pids = cluster.recorded_pids();
    cluster.down_ok();
    cluster.assert_nothing_left(&pids);
}

#[test]
fn a_failed_up_removes_what_it_made_and_keeps_the_logs() {
    let images = empty_dir();
    let cluster = Cluster::plumbing(images.path());
    // The server cannot listen on a port that is taken, so `up` fails after building the
    // network and starting the server.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = run(&mut cluster.cmd(&["up", "--nodes", "1", "--listen", &format!("127.0.0.1:{port}")]));
    assert!(!out.status.success(), "up succeeded on a taken port: {}", text(&out));
    assert!(text(&out).contains("server.log"), "the error names the log: {}", text(&out));
    assert_eq!(cluster.namespaces(), Vec::<String>::new());
    let log = std::fs::read_to_string(cluster.dir.join("logs/server.log")).expect("server.log");
    assert!(log.contains(&port), "the log says why: {log}");
    cluster.assert_nothing_left(&[]);
}

#[test]
fn down_never_touches_a_directory_that_is_not_the_clusters() {
    let images = empty_dir();
    let cluster = Cluster::plumbing(images.path());
    std::fs::create_dir_all(cluster.dir.join("something")).expect("mkdir");
    let out = cluster.up(1);
    assert!(!out.status.success(), "up took a non-empty foreign directory");
    assert!(text(&out).contains("not an rkube cluster"), "{}", text(&out));
    cluster.down_ok();
    assert!(cluster.dir.join("something").is_dir());
    let bad = run(rkube().args(["up", "--name", "Bad_Name"]));
    assert!(!bad.status.success());
}

/// The real thing: the agent registers, nodes become Ready, a pod runs, and `down` after a
/// crash still removes its containers, shims, mounts and cgroups.
#[test]
fn up_two_ready_nodes_with_a_pod_then_down_after_a_crash() {
    let cluster = Cluster::new(&[]);
    let out = cluster.up_ok(2);
    assert!(out.contains("is up"), "{out}");
    let nodes = cluster.kubectl(&["get", "nodes", "--no-headers"]);
    let nodes_text = String::from_utf8_lossy(&nodes.stdout).into_owned();
    assert_eq!(nodes_text.lines().count(), 2, "{}", text(&nodes));
    assert!(nodes_text.lines().all(|l| l.split_whitespace().nth(1) == Some("Ready")), "{nodes_text}");
    let again = cluster.up_ok(2);
    assert!(again.contains("already up"), "{again}");

    let run_pod = cluster.kubectl(&["run", "sleeper", "--image=busybox", "--restart=Never", "--", "sleep", "3600"]);
    assert!(run_pod.status.success(), "{}", text(&run_pod));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let phase = cluster.kubectl(&["get", "pod", "sleeper", "-o", "jsonpath={.status.phase}"]);
        if String::from_utf8_lossy(&phase.stdout) == "Running" {
            break;
        }
        assert!(Instant::now() < deadline, "pod not Running: {}\n{}", text(&phase), cluster.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    // What `down` will have to remove is really there, so the checks after it mean something.
    assert!(!shims_under(&cluster.dir).is_empty(), "a running pod has a shim");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(mountinfo.contains(cluster.dir.to_str().expect("utf-8")), "a running pod has mounts");
    assert!(!cgroups_of(&cluster.name).is_empty(), "a running pod has cgroups");
    // The pod's IP is reachable from every node, across the fabric without NAT.
    let ip = cluster.kubectl(&["get", "pod", "sleeper", "-o", "jsonpath={.status.podIP}"]);
    let ip = String::from_utf8_lossy(&ip.stdout).into_owned();
    for node in ["node1", "node2"] {
        let ping = cluster.exec(Some(node), &["busybox", "ping", "-c1", "-W2", &ip]);
        assert!(ping.status.success(), "{node} → pod {ip}: {}", text(&ping));
    }

    // node stop takes the node off the fabric; start brings it back Ready.
    let stop = run(&mut cluster.cmd(&["node", "stop", "node2"]));
    assert!(stop.status.success(), "{}", text(&stop));
    let ping = cluster.exec(Some("node1"), &["busybox", "ping", "-c1", "-W1", "192.168.240.12"]);
    assert!(!ping.status.success(), "a stopped node answers");
    // The control plane notices: the node's Lease stops being renewed and it goes NotReady.
    let node2 = format!("{}-node2", cluster.name);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = cluster.kubectl(&[
            "get",
            "node",
            &node2,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        let ready = String::from_utf8_lossy(&ready.stdout).into_owned();
        if ready == "Unknown" || ready == "False" {
            break;
        }
        assert!(Instant::now() < deadline, "a stopped node stays Ready: {ready}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = run(&mut cluster.cmd(&["node", "start", "node2"]));
    assert!(start.status.success(), "{}\n{}", text(&start), cluster.logs());
    let ping = cluster.exec(Some("node1"), &["busybox", "ping", "-c1", "-W2", "192.168.240.12"]);
    assert!(ping.status.success(), "a restarted node is unreachable: {}", text(&ping));

    let pids = cluster.recorded_pids();
    for pid in &pids {
        let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
    cluster.down_ok();
    cluster.assert_nothing_left(&pids);
}
