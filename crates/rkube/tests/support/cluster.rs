//! A whole `rkube up` cluster for one test: real server, real agents in their own network
//! namespaces, real runc containers, and the real kubectl. Needs root.
//!
//! Every cluster has a name of its own (`rkp<pid>x<n>`), a temporary data directory and a
//! host-side port chosen by the kernel, and `rkube down` runs from Drop, so a failing test
//! leaves nothing behind. Traffic goes only between namespaces the cluster made.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub struct Cluster {
    pub name: String,
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

impl Cluster {
    /// `rkube up --nodes N` with extra agent arguments; panics with the logs if it fails.
    pub fn up(nodes: usize, agent_args: &[&str]) -> Cluster {
        let name = format!("rkp{}x{}", std::process::id() % 100_000, NEXT.fetch_add(1, Ordering::Relaxed));
        let tmp = tempfile::Builder::new().prefix("rkube-e2e-").tempdir().expect("tempdir");
        let dir = tmp.path().join("data");
        let cluster = Cluster { name, dir, _tmp: tmp };
        let mut cmd = cluster.rkube(&["up", "--listen", "127.0.0.1:0", "--nodes", &nodes.to_string()]);
        for arg in agent_args {
            cmd.arg(format!("--agent-arg={arg}"));
        }
        let out = cmd.output().expect("run rkube up");
        assert!(out.status.success(), "rkube up failed: {}\n{}", text(&out), cluster.logs());
        cluster
    }

    /// An `rkube` subcommand for this cluster (`--name` and `--data-dir` appended).
    pub fn rkube(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rkube"));
        cmd.env("RKUBE_LOG", "warn").args(args).arg("--name").arg(&self.name).arg("--data-dir").arg(&self.dir);
        cmd
    }

    pub fn node(&self, index: usize) -> String {
        format!("{}-node{index}", self.name)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl").arg("--kubeconfig").arg(self.kubeconfig()).args(args).output().expect("run kubectl")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(out.status.success(), "kubectl {args:?} failed: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl with `stdin` fed to it.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("kubectl output")
    }

    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&all)).expect("kubectl JSON")
    }

    /// `rkube node exec NODE -- args...`.
    pub fn node_exec(&self, node: &str, args: &[&str]) -> Output {
        self.rkube(&["node", "exec", node]).arg("--").args(args).output().expect("run rkube node exec")
    }

    /// The tail of every log of the cluster, for failure messages.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for entry in std::fs::read_dir(self.dir.join("logs")).into_iter().flatten().flatten() {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            all.push_str(&format!("--- {}\n{}\n", entry.path().display(), tail.join("\n")));
        }
        all
    }

    /// Polls `f` every 100 ms until it returns Some, or panics after `limit` with `what`
    /// and the cluster's logs.
    pub fn eventually<T>(&self, limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out after {limit:?} waiting for {what}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The pods matching a label selector, as JSON items.
    pub fn pods(&self, selector: &str) -> Vec<Value> {
        let list = self.get_json(&["pods", "-l", selector]);
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until exactly `n` pods match `selector` and every one is Ready; returns them.
    pub fn ready_pods(&self, selector: &str, n: usize, limit: Duration) -> Vec<Value> {
        self.eventually(limit, &format!("{n} ready pods {selector}"), || {
            let pods: Vec<Value> =
                self.pods(selector).into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect();
            (pods.len() == n && pods.iter().all(is_ready)).then_some(pods)
        })
    }

    pub fn data(&self) -> &Path {
        &self.dir
    }
}

pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(out) = self.rkube(&["down"]).output()
            && !out.status.success()
        {
            eprintln!("cleanup: rkube down failed: {}", text(&out));
        }
    }
}
