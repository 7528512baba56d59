//! A real API server on a loopback port, on a fresh SQLite store, and the real kubectl
//! pointed at it with a fresh `HOME`.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_apiserver::server::{ApiServer, Config};
use rkube_store::sqlite::SqliteStore;

/// The kubectl binaries the tests drive: the dispatcher and the pinned versions.
pub const DISPATCHER: &str = "/usr/bin/kubectl";
pub fn pinned(minor: u32) -> String {
    format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}")
}

pub struct Cluster {
    pub server: ApiServer,
    pub dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new().prefix("rkube-api-test-").tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("open store"));
        let mut config = Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
        config.compaction_interval = Duration::from_secs(3600);
        let server = ApiServer::start(config, store).await.expect("start API server");
        let home = tempfile::Builder::new().prefix("rkube-kubectl-home-").tempdir().expect("home");
        Cluster { server, dir, home }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.server.kubeconfig.clone()
    }

    /// Runs `bin args...` with this cluster's kubeconfig and a fresh HOME.
    pub async fn run(&self, bin: &str, args: &[&str]) -> Output {
        self.run_with(bin, args, &[], None).await
    }

    pub async fn run_with(&self, bin: &str, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(bin);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("KUBECONFIG", self.kubeconfig())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        if let Some(mut input) = child.stdin.take() {
            if let Some(data) = stdin {
                input.write_all(data).await.expect("stdin");
            }
            drop(input);
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{bin} {args:?} did not finish within 60 s"))
            .expect("wait")
    }

    /// Runs kubectl and returns stdout, failing the test with stderr if it failed.
    pub async fn ok(&self, bin: &str, args: &[&str]) -> String {
        let out = self.run(bin, args).await;
        assert!(
            out.status.success(),
            "{bin} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub async fn fails(&self, bin: &str, args: &[&str]) -> String {
        let out = self.run(bin, args).await;
        assert!(
            !out.status.success(),
            "{bin} {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write file");
        p
    }
}

/// Polls `f` until it returns `Some`, or panics after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn manifest(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/manifests").join(name)
}
