//! A real API server on a loopback port, on a fresh SQLite store, and the real kubectl
//! pointed at it with a fresh `HOME`; HTTPS clients that talk to it as kubectl does
//! (HTTP/2 over TLS, with the admin certificate, a bearer token or no credentials).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rkube_apiserver::pki::Pki;
use rkube_apiserver::server::{ApiServer, Config};
use rkube_store::sqlite::SqliteStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

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
        Cluster::start_with(|_| {}).await
    }

    /// Starts a cluster after `configure` has adjusted the server's configuration (for
    /// example a small watch cache window).
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new().prefix("rkube-api-test-").tempdir().expect("tempdir");
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("open store"));
        let mut config = Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
        config.compaction_interval = Duration::from_secs(3600);
        configure(&mut config);
        let server = ApiServer::start(config, store).await.expect("start API server");
        let home = tempfile::Builder::new().prefix("rkube-kubectl-home-").tempdir().expect("home");
        Cluster { server, dir, home }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.server.kubeconfig.clone()
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.server.local_addr)
    }

    /// A client authenticated with the admin certificate. Each call opens its own
    /// connection, as each kubectl process does.
    pub fn client(&self) -> reqwest::Client {
        https_client(&self.server.pki, Credentials::AdminCert)
    }

    /// A client that trusts the cluster CA but presents no credentials.
    pub fn anonymous_client(&self) -> reqwest::Client {
        https_client(&self.server.pki, Credentials::None)
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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/manifests").join(name)
}

/// What an HTTPS client presents to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// The admin client certificate from the cluster's kubeconfig.
    AdminCert,
    /// Nothing: no client certificate and no `Authorization` header.
    None,
}

/// TLS as kubectl does it: the cluster CA as the only root, optionally the admin client
/// certificate, and ALPN offering HTTP/2 first. The ring provider is named explicitly so
/// that the configuration does not depend on a process-wide default.
pub fn tls_config(pki: &Pki, credentials: Credentials) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_cert_pem.as_bytes()) {
        roots.add(cert.expect("CA certificate PEM")).expect("CA certificate");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let mut config = match credentials {
        Credentials::AdminCert => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pki.admin_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .expect("admin certificate PEM");
            let key = PrivateKeyDer::from_pem_slice(pki.admin_key_pem.as_bytes()).expect("admin key PEM");
            builder.with_client_auth_cert(chain, key).expect("admin certificate and key")
        }
        Credentials::None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// An HTTPS client with its own connection pool.
pub fn https_client(pki: &Pki, credentials: Credentials) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(pki, credentials))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTPS client")
}

/// Like [`https_client`], without an overall request timeout, for watches that stay open.
pub fn streaming_client(pki: &Pki, credentials: Credentials) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(pki, credentials))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .expect("HTTPS client")
}

/// Reads a response that must be a `Status` with `code` and `reason`, and returns it.
pub async fn expect_status(resp: reqwest::Response, code: u16, reason: &str) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.expect("response body");
    let status: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert_eq!(got, code, "HTTP status; body: {text}");
    assert_eq!(status["kind"], "Status", "{text}");
    assert_eq!(status["apiVersion"], "v1", "{text}");
    assert_eq!(status["status"], "Failure", "{text}");
    assert_eq!(status["code"], code, "{text}");
    assert_eq!(status["reason"], reason, "{text}");
    status
}

/// Reads a successful JSON response, failing with the body if the status is not `code`.
pub async fn expect_json(resp: reqwest::Response, code: u16) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.expect("response body");
    assert_eq!(got, code, "HTTP status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Splits a watch response into its JSON lines as they arrive.
pub struct WatchLines {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl WatchLines {
    pub fn new(resp: reqwest::Response) -> WatchLines {
        WatchLines { resp, buf: Vec::new() }
    }

    /// The next event, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let text = String::from_utf8_lossy(&line);
                return Some(serde_json::from_slice(&line).unwrap_or_else(|e| panic!("bad watch line ({e}): {text}")));
            }
            match self.resp.chunk().await.expect("watch stream") {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => return None,
            }
        }
    }

    /// The next event, waiting at most `timeout`; `None` on timeout or end of stream.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Value> {
        tokio::time::timeout(timeout, self.next()).await.ok().flatten()
    }
}
