//! `rkube up --nodes 3` until every Node is Ready, against a baseline measured in the same
//! run: `rkube server` alone, from start until it serves (its kubeconfig appears). The
//! difference is what `up` adds: the fabric, the image preload, three agents registering and
//! reporting Ready. Each sample is a fresh cluster (`up` after `down`), so the image store is
//! warm after the first, untimed, run, as it is for a user. Needs root.
//!
//! `RKUBE_BENCH_QUICK=1` takes fewer samples.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NODES: usize = 3;

fn rkube() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkube"));
    cmd.env("RKUBE_LOG", "warn");
    cmd
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Starts `rkube server` on a fresh data directory and times it until it serves.
fn server_alone(dir: &Path) -> Duration {
    let data = dir.join("server");
    let start = Instant::now();
    let mut child = rkube()
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rkube server");
    let deadline = start + Duration::from_secs(30);
    while !data.join("kubeconfig").is_file() {
        assert!(Instant::now() < deadline, "rkube server did not serve");
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    took
}

fn up(name: &str, dir: &Path) -> Duration {
    let start = Instant::now();
    let out = rkube()
        .args(["up", "--listen", "127.0.0.1:0", "--nodes", &NODES.to_string(), "--name", name, "--data-dir"])
        .arg(dir)
        .output()
        .expect("run rkube up");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "rkube up failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn down(name: &str, dir: &Path) {
    let out = rkube().args(["down", "--name", name, "--data-dir"]).arg(dir).output().expect("run rkube down");
    assert!(out.status.success(), "rkube down failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `rkube down` however the benchmark ends.
struct Down<'a>(&'a str, &'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = rkube().args(["down", "--name", self.0, "--data-dir"]).arg(self.1).output();
    }
}

fn main() {
    let runs = if std::env::var_os("RKUBE_BENCH_QUICK").is_some() { 3 } else { 7 };
    let tmp = tempfile::tempdir().expect("tempdir");
    let name = format!("rkb{}", std::process::id() % 100_000);
    let cluster_dir = tmp.path().join("cluster");
    let _down = Down(&name, &cluster_dir);

    // Untimed: imports the images into the cluster's store once.
    up(&name, &cluster_dir);
    down(&name, &cluster_dir);

    let mut baseline = Vec::new();
    let mut ups = Vec::new();
    for i in 0..runs {
        baseline.push(server_alone(&tmp.path().join(format!("server-{i}"))));
        ups.push(up(&name, &cluster_dir));
        down(&name, &cluster_dir);
    }
    let (server, cluster) = (median(&mut baseline), median(&mut ups));
    println!("up: {runs} runs, medians");
    println!("  rkube server alone, until serving:     {:>8.1} ms", server.as_secs_f64() * 1e3);
    println!("  rkube up --nodes {NODES}, until all Ready: {:>8.1} ms", cluster.as_secs_f64() * 1e3);
    println!("  ratio up / server alone:               {:>8.2}x", cluster.as_secs_f64() / server.as_secs_f64());
    println!("  target: up <= 2000 ms: {}", if cluster <= Duration::from_secs(2) { "met" } else { "NOT met" });
}
