//! Real etcd clusters for tests: Debian's `etcd` binary, on loopback only, in a temporary
//! directory that disappears with the cluster.
//!
//! Every member is a child process of the test. The cluster is stopped by SIGKILL of those
//! processes by PID (never by name), so parallel tests and other etcds on the machine are safe.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

/// How long a cluster may take to elect a leader and answer reads on every member.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// How often startup is checked; short, because a single member is usually up in well under a second.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Ports are picked by binding port 0 and releasing it, so another process can take one before
/// etcd binds it. That is rare; starting again with new ports handles it.
const START_ATTEMPTS: usize = 3;

/// Numbers the clusters of one test process, so that their names never collide.
static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

/// The etcd binary: `RKUBE_TEST_ETCD` if set, else `etcd` from `PATH`.
fn etcd_binary() -> PathBuf {
    std::env::var_os("RKUBE_TEST_ETCD").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    log: PathBuf,
    /// `None` once the member has been killed.
    process: Option<Child>,
}

/// A running etcd cluster of one or more members.
pub struct EtcdCluster {
    members: Vec<Member>,
    /// Removed when the cluster is dropped, after `Drop::drop` has killed the processes using it.
    dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// Starts `members` etcd processes as one cluster and waits until every member serves
    /// linearizable reads. Panics if etcd is not installed or the cluster does not come up.
    pub fn start(members: usize) -> EtcdCluster {
        assert!(members > 0, "a cluster needs at least one member");
        let binary = etcd_binary();
        if let Err(e) = Command::new(&binary).arg("--version").output() {
            panic!(
                "cannot run {}: {e}. The etcd tests need etcd 3.4 or later \
                 (Debian: apt-get install etcd-server), or RKUBE_TEST_ETCD set to its path",
                binary.display()
            );
        }
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&binary, members) {
                Ok(cluster) => return cluster,
                Err(failure) => failures.push(failure),
            }
        }
        panic!("etcd did not start:\n{}", failures.join("\n---\n"));
    }

    fn try_start(binary: &Path, members: usize) -> Result<EtcdCluster, String> {
        let id = format!("rk{}-{}", std::process::id(), CLUSTERS.fetch_add(1, Ordering::Relaxed));
        let dir = tempfile::Builder::new()
            .prefix(&format!("etcd-{id}-"))
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let ports = free_ports(2 * members)?;
        let mut cluster = EtcdCluster { members: Vec::new(), dir };
        for i in 0..members {
            let name = format!("{id}-m{i}");
            let log = cluster.dir.path().join(format!("{name}.log"));
            cluster.members.push(Member {
                name,
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                log,
                process: None,
            });
        }
        let initial_cluster = cluster
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        for i in 0..members {
            let child = cluster.spawn_member(binary, i, &id, &initial_cluster)?;
            cluster.members[i].process = Some(child);
        }
        // On failure `cluster` is dropped here, which kills whatever was started.
        cluster.wait_until_healthy()?;
        Ok(cluster)
    }

    fn spawn_member(&self, binary: &Path, index: usize, token: &str, initial_cluster: &str) -> Result<Child, String> {
        let m = &self.members[index];
        let client_url = format!("http://127.0.0.1:{}", m.client_port);
        let peer_url = format!("http://127.0.0.1:{}", m.peer_port);
        let log = File::create(&m.log).map_err(|e| format!("creating {}: {e}", m.log.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("opening the log twice: {e}"))?;
        Command::new(binary)
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.dir.path().join(&m.name))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(initial_cluster)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(token)
            .arg("--logger")
            .arg("zap")
            .arg("--log-outputs")
            .arg("stderr")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))
    }

    /// Polls until every member answers a linearizable read, which needs an elected leader and
    /// the member caught up with it.
    fn wait_until_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            for (i, m) in self.members.iter_mut().enumerate() {
                if let Some(process) = &mut m.process
                    && let Ok(Some(status)) = process.try_wait()
                {
                    m.process = None;
                    return Err(format!(
                        "etcd member {i} exited during startup ({status}); its log ends with:\n{}",
                        log_tail(&m.log)
                    ));
                }
            }
            let endpoints = self.endpoints();
            if all_healthy(&endpoints) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> =
                    self.members.iter().map(|m| format!("{}:\n{}", m.name, log_tail(&m.log))).collect();
                return Err(format!(
                    "etcd cluster {endpoints:?} not healthy within {START_DEADLINE:?}; logs:\n{}",
                    logs.join("\n")
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The client URLs of every member, killed ones included, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The client URL of one member.
    pub fn endpoint(&self, member: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[member].client_port)
    }

    /// The client URLs of the members that have not been killed.
    pub fn live_endpoints(&self) -> Vec<String> {
        (0..self.members.len()).filter(|&i| self.members[i].process.is_some()).map(|i| self.endpoint(i)).collect()
    }

    /// The number of members the cluster was started with.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Where a member writes its log.
    pub fn log_path(&self, member: usize) -> &Path {
        &self.members[member].log
    }

    /// Kills one member with SIGKILL, by PID, and waits for it to exit. Killing a member twice
    /// does nothing.
    pub fn kill(&mut self, member: usize) {
        if let Some(mut process) = self.members[member].process.take() {
            // `Child::kill` sends SIGKILL on Unix. It fails only if the process was already
            // reaped, which cannot happen while we hold it.
            let _ = process.kill();
            let _ = process.wait();
        }
    }

    /// How many watchers a member serves, from its metrics; `None` if it does not answer.
    /// Tests use it to find the member that serves a watch, to kill that one.
    pub fn watchers(&self, member: usize) -> Option<u64> {
        const METRIC: &str = "etcd_debugging_mvcc_watcher_total ";
        let metrics = http_get(self.members[member].client_port, "/metrics")?;
        let line = metrics.lines().find(|l| l.starts_with(METRIC))?;
        line[METRIC.len()..].trim().parse::<f64>().ok().map(|v| v as u64)
    }

    /// The index of the member that is the Raft leader, as the live members report it.
    pub async fn leader(&self) -> Option<usize> {
        let options =
            ConnectOptions::new().with_timeout(Duration::from_secs(2)).with_connect_timeout(Duration::from_secs(1));
        let mut ids = vec![None; self.members.len()];
        let mut leader = None;
        for (i, id) in ids.iter_mut().enumerate() {
            if self.members[i].process.is_none() {
                continue;
            }
            let Ok(mut client) = Client::connect([self.endpoint(i)], Some(options.clone())).await else {
                continue;
            };
            if let Ok(status) = client.status().await {
                *id = status.header().map(|h| h.member_id());
                if status.leader() != 0 {
                    leader = Some(status.leader());
                }
            }
        }
        let leader = leader?;
        ids.iter().position(|id| *id == Some(leader))
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        // A failing test is easier to understand with etcd's side of the story. The test harness
        // shows stderr only for failed tests.
        if std::thread::panicking() {
            for m in &self.members {
                eprintln!("--- log of etcd member {} ---\n{}", m.name, log_tail(&m.log));
            }
        }
    }
}

/// `n` distinct free TCP ports on 127.0.0.1. All are held until all are found, so that they differ.
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("finding a free port: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("finding a free port: {e}"))
}

/// Whether every endpoint answers a linearizable read. The check runs on a small runtime of its
/// own, in a thread, so that it works whether or not the caller is inside a tokio runtime.
fn all_healthy(endpoints: &[String]) -> bool {
    let endpoints = endpoints.to_vec();
    let check = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return false;
        };
        runtime.block_on(async move {
            let options = ConnectOptions::new()
                .with_timeout(Duration::from_secs(1))
                .with_connect_timeout(Duration::from_millis(500));
            for endpoint in endpoints {
                let Ok(mut client) = Client::connect([endpoint], Some(options.clone())).await else {
                    return false;
                };
                if client.get("health", None).await.is_err() {
                    return false;
                }
            }
            true
        })
    });
    check.join().unwrap_or(false)
}

/// The body of a plain HTTP GET on loopback; etcd serves `/metrics` and `/health` on its client
/// port next to gRPC.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let timeout = Some(Duration::from_secs(2));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(timeout).ok()?;
    stream.set_write_timeout(timeout).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let ok = head.split_whitespace().nth(1) == Some("200");
    ok.then(|| body.to_owned())
}

/// The last lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    const LINES: usize = 40;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LINES)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
