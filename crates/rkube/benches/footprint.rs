//! What rkube costs to run: `rkube up --nodes 3` until every node is Ready and cluster DNS
//! answers, `rkube down`, the resident memory of the server and of each agent (idle, then
//! with the tutorial's workloads), and the binary's size. Needs root, runc and the images.
//!
//! There is no second system to run beside it on this machine, so the baseline measured in
//! the same run is the smallest thing the same code can do: `rkube server` alone until it
//! serves (for `up`), and the server's RSS right after it starts (for memory). The targets
//! and k3s's published figures are printed next to the results.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: usize = 3;

fn rkube() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkube"));
    cmd.env("RKUBE_LOG", "warn");
    cmd
}

/// Resident set size of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn pid_of(dir: &Path, name: &str) -> u32 {
    std::fs::read_to_string(dir.join("run").join(format!("{name}.pid")))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid file for {name}"))
}

fn kubectl(dir: &Path, args: &[&str]) -> String {
    let out =
        Command::new("kubectl").arg("--kubeconfig").arg(dir.join("kubeconfig")).args(args).output().expect("kubectl");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn node_exec(name: &str, dir: &Path, node: &str, args: &[&str]) -> std::process::Output {
    rkube()
        .args(["node", "exec", "--name", name, "--data-dir"])
        .arg(dir)
        .arg(node)
        .arg("--")
        .args(args)
        .output()
        .expect("node exec")
}

fn memory(dir: &Path, name: &str) -> (f64, Vec<f64>) {
    let server = rss_mib(pid_of(dir, "server"));
    let agents = (1..=NODES).map(|i| rss_mib(pid_of(dir, &format!("{name}-node{i}")))).collect();
    (server, agents)
}

fn main() {
    let tmp = tempfile::Builder::new().prefix("rkube-bench-footprint-").tempdir().expect("tempdir");
    let name = format!("rkf{}", std::process::id() % 100_000);
    let dir = tmp.path().join("cluster");

    // Baseline: the server alone, from start until it serves.
    let server_dir = tmp.path().join("server-alone");
    let t = Instant::now();
    let mut server = rkube()
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&server_dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("rkube server");
    while !server_dir.join("kubeconfig").is_file() {
        assert!(t.elapsed() < Duration::from_secs(30), "server did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    let server_alone = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let server_alone_rss = rss_mib(server.id());
    let _ = server.kill();
    let _ = server.wait();

    // An untimed first `up` warms the image store, as a user's second `up` would find it.
    let warm = |n: &str, d: &Path| {
        let out = rkube()
            .args(["up", "--listen", "127.0.0.1:0", "--nodes", &NODES.to_string(), "--name", n, "--data-dir"])
            .arg(d)
            .output()
            .expect("up");
        assert!(out.status.success(), "up: {}", String::from_utf8_lossy(&out.stderr));
    };
    let warm_dir = tmp.path().join("warm");
    warm(&format!("{name}w"), &warm_dir);
    let _ = rkube().args(["down", "--name", &format!("{name}w"), "--data-dir"]).arg(&warm_dir).output();

    let t = Instant::now();
    warm(&name, &dir);
    let up_ready = t.elapsed();
    // Cluster DNS answers on every node.
    for i in 1..=NODES {
        let node = format!("{name}-node{i}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = node_exec(
                &name,
                &dir,
                &node,
                &["dig", "+short", "+time=1", "+tries=1", "@10.96.0.10", "kubernetes.default.svc.cluster.local"],
            );
            if String::from_utf8_lossy(&out.stdout).trim() == "10.96.0.1" {
                break;
            }
            assert!(Instant::now() < deadline, "DNS did not answer on {node}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let up_dns = t.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (idle_server, idle_agents) = memory(&dir, &name);

    // The tutorial's workloads: two nginx replicas, their Service, a curl pod.
    let manifests = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/manifests");
    kubectl(&dir, &["apply", "-f", &format!("{manifests}/run-my-nginx.yaml")]);
    kubectl(&dir, &["expose", "deployment/my-nginx"]);
    kubectl(&dir, &["run", "curl", "--image=curlimages/curl", "--command", "--", "sleep", "3600"]);
    kubectl(&dir, &["wait", "--for=condition=Ready", "pod", "--all", "--timeout=120s"]);
    std::thread::sleep(Duration::from_secs(3));
    let (busy_server, busy_agents) = memory(&dir, &name);

    let t = Instant::now();
    let out = rkube().args(["down", "--name", &name, "--data-dir"]).arg(&dir).output().expect("down");
    let down = t.elapsed();
    assert!(out.status.success(), "down: {}", String::from_utf8_lossy(&out.stderr));

    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_rkube")).map(|m| m.len()).unwrap_or(0) as f64 / 1_048_576.0;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!("rkube footprint, {NODES}-node cluster (release build)");
    println!("  up until every node Ready     {:>8.0} ms   (target <= 2000 ms)", ms(up_ready));
    println!("  up until DNS answers everywhere {:>6.0} ms", ms(up_dns));
    println!(
        "  baseline: rkube server alone  {:>8.0} ms   ratio up/server {:.1}x",
        ms(server_alone),
        ms(up_ready) / ms(server_alone)
    );
    println!("  down                          {:>8.0} ms", ms(down));
    println!(
        "  RSS server idle {idle_server:>6.1} MiB, with the tutorial {busy_server:>6.1} MiB   (target <= 60 MB; k3s server+agent ~1400 MB)"
    );
    println!(
        "  RSS agents idle max {:>6.1} MiB {:?}, with the tutorial max {:>6.1} MiB   (target <= 30 MB; k3s agent ~275 MB)",
        max(&idle_agents),
        idle_agents.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>(),
        max(&busy_agents)
    );
    println!("  baseline: server RSS right after start {server_alone_rss:.1} MiB");
    println!("  binary {binary:.1} MiB   (target <= 40 MB; k3s ~65 MB)");
}
