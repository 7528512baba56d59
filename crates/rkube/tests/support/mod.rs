//! Runs the real `rkube server` binary as a child process on a loopback port, and talks to
//! it over HTTPS with the admin token, as a client outside the process would.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts `rkube server` on `data_dir` with extra flags and waits until it is ready.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rkube"))
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RKUBE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rkube server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            assert!(Instant::now() < deadline, "rkube server did not become ready");
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("rkube server is ready at ") {
                        break rest.trim().to_owned();
                    }
                }
                _ => panic!("rkube server exited before it was ready"),
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let client = client_for(data_dir);
        Server { child, url, data_dir: data_dir.to_path_buf(), client }
    }

    /// SIGKILL, by PID: no shutdown sequence at all.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(format!("{}{path}", self.url)).send().await.expect("GET");
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self.client.post(format!("{}{path}", self.url)).json(body).send().await.expect("POST");
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self.client.put(format!("{}{path}", self.url)).json(body).send().await.expect("PUT");
        let code = resp.status().as_u16();
        (code, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> u16 {
        self.client.delete(format!("{}{path}", self.url)).send().await.expect("DELETE").status().as_u16()
    }

    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.client.get(format!("{}/metrics", self.url)).send().await.ok()?.text().await.ok()?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find(|l| l.split(['{', ' ']).next() == Some(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An HTTPS client that trusts the cluster CA and presents the admin token.
pub fn client_for(data_dir: &Path) -> reqwest::Client {
    let ca = std::fs::read(data_dir.join("tls/ca.crt")).expect("ca.crt");
    let tokens = std::fs::read_to_string(data_dir.join("tls/tokens.csv")).expect("tokens.csv");
    let token = tokens.lines().find(|l| l.contains(",admin,")).and_then(|l| l.split(',').next()).expect("admin token");
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("CA PEM")).expect("add CA");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
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
