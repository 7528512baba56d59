//! The streaming server's cost over the runtime it drives, against real runc containers
//! (needs root and runc):
//! - exec round trip (`true`): a fresh TLS connection, the WebSocket upgrade, `runc exec`,
//!   the status on channel 3 — against `runc exec` called directly;
//! - exec output throughput (64 MiB of `cat /dev/zero`-like output) over the WebSocket
//!   channel against reading the same exec's stdout directly;
//! - `containerLogs` of a 100,000-line CRI log against reading the file.
//!
//! `RKUBE_BENCH_QUICK=1` makes a short smoke run. The shim is this binary: `main` turns into
//! the shim when the shim's environment variable is set.

#[path = "../tests/support_streams/mod.rs"]
mod support_streams;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rkube_agent::runtime::{ContainerRuntime, ExecRequest, SHIM_DIR_ENV, ShimCommand};
use rkube_agent::stream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use support_streams::{Containers, TestContainer, TestPods, sh};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A CA PEM and a client certificate it signed, for the server's client verification.
fn test_ca() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "bench-ca");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().expect("key");
    let ca_pem = ca_params.self_signed(&ca_key).expect("ca").pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "bench-client");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    (ca_pem, vec![cert.der().clone()], PrivateKeyDer::Pkcs8(key.serialize_der().into()))
}

struct Bench {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl Bench {
    async fn tls_stream(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(self.addr.ip().into());
        tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp).await.expect("TLS")
    }

    /// One exec over WebSocket; returns the stdout byte count and whether it succeeded.
    async fn exec(&self, query: &str) -> (usize, bool) {
        let mut req = format!("wss://{}/exec/default/web/c?{query}", self.addr).into_client_request().expect("req");
        req.headers_mut().insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io".parse().expect("header"));
        let (mut ws, _) = tokio_tungstenite::client_async(req, self.tls_stream().await).await.expect("upgrade");
        let (mut bytes, mut ok) = (0, false);
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Binary(d) if d.first() == Some(&1) => bytes += d.len() - 1,
                Message::Binary(d) if d.first() == Some(&3) => ok = d.windows(9).any(|w| w == b"\"Success\""),
                Message::Close(_) => break,
                _ => {}
            }
        }
        (bytes, ok)
    }

    async fn logs(&self) -> usize {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(self.tls_stream().await)).await.expect("http");
        tokio::spawn(conn);
        let req = http::Request::get("/containerLogs/default/web/c")
            .header(http::header::HOST, self.addr.to_string())
            .body(Empty::<Bytes>::new())
            .expect("request");
        let body = sender.send_request(req).await.expect("response").into_body();
        body.collect().await.expect("body").to_bytes().len()
    }
}

fn stats(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    let (p50, p99) = (at(0.5), at(0.99));
    println!("{name:<44} p50 {:>8.2} ms   p99 {:>8.2} ms", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3);
    p50
}

fn main() {
    if std::env::var_os(SHIM_DIR_ENV).is_some() {
        rkube_agent::runtime::shim_main();
    }
    if !support_streams::runc_available() {
        return;
    }
    let quick = std::env::var_os("RKUBE_BENCH_QUICK").is_some();
    let runs = if quick { 10 } else { 100 };
    let mib: usize = if quick { 8 } else { 64 };
    let log_lines: usize = if quick { 10_000 } else { 100_000 };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let shim = ShimCommand { program: std::env::current_exe().expect("exe"), args: Vec::new() };
        let containers = Containers::new("bench", shim);
        let script = format!("seq {log_lines} | sed 's/^/log line number /'; exec sleep 100000");
        let id = containers.run("web", &sh("c", &script)).await;
        containers.wait_log_lines(&id, log_lines).await;
        let pods = Arc::new(TestPods::new(containers.runc.clone()));
        pods.add(
            "default",
            "web",
            TestContainer {
                name: "c".into(),
                id: id.clone(),
                log_path: containers.log_path(&id),
                previous_log: None,
                tty: false,
                stdin: false,
            },
        );
        let (ca_pem, chain, key) = test_ca();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let server_tls = stream::tls_config(&ca_pem, "bench", &[loopback]).expect("tls");
        let listener = tokio::net::TcpListener::bind((loopback, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let runtime: Arc<dyn ContainerRuntime> = containers.runc.clone();
        let table: Arc<dyn stream::PodContainers> = pods.clone();
        let server = tokio::spawn(stream::serve(listener, server_tls, table, runtime));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_client_auth_cert(chain, key)
            .expect("client cert");
        let bench = Bench { addr, tls: Arc::new(tls) };
        let runc = containers.runc.clone();

        println!("streams: {runs} execs, {mib} MiB of exec output, a {log_lines}-line log");
        let direct_exec = || async {
            let mut p = runc.exec(&id, ExecRequest { command: vec!["true".into()], ..Default::default() }).await;
            let p = p.as_mut().expect("exec");
            let (mut o, mut e) = (p.stdout.take().expect("stdout"), p.stderr.take().expect("stderr"));
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let _ = tokio::join!(o.read_to_end(&mut a), e.read_to_end(&mut b));
            assert_eq!((&mut p.exit).await.expect("exit"), 0);
        };
        let mut base = Vec::new();
        let mut ours = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            direct_exec().await;
            base.push(t.elapsed());
            let t = Instant::now();
            let (_, ok) = bench.exec("command=true&stdout=true&stderr=true").await;
            assert!(ok, "exec over the streaming server failed");
            ours.push(t.elapsed());
        }
        let b = stats("exec `true`: runc exec directly (baseline)", base);
        let o = stats("exec `true`: TLS + WebSocket + runc exec", ours);
        println!("{:<44} {:.2}x", "  ratio", o.as_secs_f64() / b.as_secs_f64());

        let make = ExecRequest {
            command: vec![
                "sh".into(),
                "-c".into(),
                format!("dd if=/dev/zero of=/tmp/big bs=1048576 count={mib} 2>/dev/null"),
            ],
            ..Default::default()
        };
        let mut p = runc.exec(&id, make).await.expect("dd");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut so, mut se) = (p.stdout.take().expect("stdout"), p.stderr.take().expect("stderr"));
        let _ = tokio::join!(so.read_to_end(&mut a), se.read_to_end(&mut b));
        assert_eq!(p.exit.await.expect("exit"), 0, "dd: {}", String::from_utf8_lossy(&b));

        let t = Instant::now();
        let mut p = runc
            .exec(&id, ExecRequest { command: vec!["cat".into(), "/tmp/big".into()], ..Default::default() })
            .await
            .expect("cat");
        let mut out = p.stdout.take().expect("stdout");
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0;
        loop {
            match out.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k,
            }
        }
        let _ = p.exit.await;
        let direct = t.elapsed();
        assert_eq!(n, mib << 20);
        let t = Instant::now();
        let (got, ok) = bench.exec("command=cat&command=/tmp/big&stdout=true").await;
        let over_ws = t.elapsed();
        assert!(ok && got == mib << 20, "got {got} bytes");
        let rate = |d: Duration| mib as f64 / d.as_secs_f64();
        println!("{:<44} {:>8.0} MiB/s", "exec output: runc exec stdout (baseline)", rate(direct));
        println!("{:<44} {:>8.0} MiB/s", "exec output: over the WebSocket channel", rate(over_ws));
        println!("{:<44} {:.2}x", "  ratio (time)", over_ws.as_secs_f64() / direct.as_secs_f64());

        let log_path = containers.log_path(&id);
        let t = Instant::now();
        let raw = tokio::fs::read(&log_path).await.expect("log");
        let read_file = t.elapsed();
        let t = Instant::now();
        let served = bench.logs().await;
        let via_server = t.elapsed();
        assert!(served > 0 && served < raw.len(), "served {served} of {} bytes", raw.len());
        println!("{:<44} {:>8.2} ms", "logs: read the CRI file (baseline)", read_file.as_secs_f64() * 1e3);
        println!("{:<44} {:>8.2} ms", "logs: GET containerLogs (parse, TLS, HTTP)", via_server.as_secs_f64() * 1e3);
        println!("{:<44} {:.1}x", "  ratio", via_server.as_secs_f64() / read_file.as_secs_f64());
        server.abort();
    });
}
