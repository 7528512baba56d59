//! The streaming server against real runc containers (as root), over TLS on 127.0.0.1 with
//! a client certificate from a test CA: exec (exit codes, stdin, a terminal and its resize),
//! logs (tail, since, timestamps, limit, previous, follow) and attach (a terminal with stdin,
//! and a plain stdin pipe with stdinOnce).
//!
//! The shim is this test binary run again: `shim_entry` turns into `shim_main` when the
//! shim's environment variable is set, and is a no-op otherwise.

#[path = "support_streams/mod.rs"]
mod support_streams;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Container;
use rkube_agent::runtime::{ContainerRuntime, ExecRequest, SHIM_DIR_ENV, ShimCommand};
use rkube_agent::stream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::Value;
use support_streams::{Containers, TestContainer, TestPods, runc_available, sh};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[test]
fn shim_entry() {
    if std::env::var_os(SHIM_DIR_ENV).is_some() {
        rkube_agent::runtime::shim_main();
    }
}

fn test_shim() -> ShimCommand {
    let program = std::env::current_exe().expect("current_exe");
    let args = ["shim_entry", "--exact", "--nocapture", "--test-threads=1"];
    ShimCommand { program, args: args.iter().map(Into::into).collect() }
}

/// A CA, a client certificate it signed, and the other way round for the negative test.
struct TestCa {
    ca_pem: String,
    client: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

fn test_ca() -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "stream-test-ca");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate().expect("key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let ca_pem = ca_cert.pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, "kube-apiserver-kubelet-client");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    let key_der = PrivateKeyDer::Pkcs8(key.serialize_der().into());
    TestCa { ca_pem, client: (vec![cert.der().clone()], key_der) }
}

/// The agent's serving certificate is self-signed; like the API server, the test does not
/// verify it.
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

fn client_tls(cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)));
    let config = match cert {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Containers, a pod table over them and the streaming server on a loopback port.
struct Fixture {
    containers: Containers,
    pods: Arc<TestPods>,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Fixture {
    async fn start(name: &str) -> Fixture {
        let containers = Containers::new(name, test_shim());
        let pods = Arc::new(TestPods::new(containers.runc.clone()));
        let ca = test_ca();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let server_tls = stream::tls_config(&ca.ca_pem, "stream-test-node", &[loopback]).expect("tls config");
        let listener = tokio::net::TcpListener::bind((loopback, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let runtime: Arc<dyn ContainerRuntime> = containers.runc.clone();
        let table: Arc<dyn stream::PodContainers> = pods.clone();
        let server = tokio::spawn(async move {
            let _ = stream::serve(listener, server_tls, table, runtime).await;
        });
        Fixture { containers, pods, addr, tls: client_tls(Some(ca.client)), server }
    }

    /// Runs `container` as the only container of pod `default/<pod>`.
    async fn pod(&self, pod: &str, container: Container) -> TestContainer {
        let id = self.containers.run(pod, &container).await;
        let c = TestContainer {
            name: container.name.clone(),
            log_path: self.containers.log_path(&id),
            id,
            previous_log: None,
            tty: container.tty == Some(true),
            stdin: container.stdin == Some(true),
        };
        self.pods.add("default", pod, c.clone());
        c
    }

    async fn tls_stream(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let name = ServerName::IpAddress(self.addr.ip().into());
        tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name, tcp).await.expect("TLS")
    }

    /// A GET whose body is read as it arrives.
    async fn get(&self, path: &str) -> (u16, hyper::body::Incoming) {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(self.tls_stream().await)).await.expect("http handshake");
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, self.addr.to_string())
            .body(Empty::<Bytes>::new())
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        (resp.status().as_u16(), resp.into_body())
    }

    async fn get_text(&self, path: &str) -> (u16, String) {
        let (code, body) = self.get(path).await;
        let bytes = tokio::time::timeout(Duration::from_secs(20), body.collect())
            .await
            .expect("the body ended in time")
            .expect("body")
            .to_bytes();
        (code, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn ws(&self, path: &str, protocol: &str) -> WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>> {
        let mut req = format!("wss://{}{path}", self.addr).into_client_request().expect("request");
        req.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
        let (ws, resp) = tokio_tungstenite::client_async(req, self.tls_stream().await).await.expect("upgrade");
        let negotiated = resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
        assert_eq!(negotiated, protocol.split(',').next().map(str::trim), "the server echoes the protocol");
        ws
    }
}

#[derive(Debug, Default)]
struct Session {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<Value>,
    close_code: Option<u16>,
}

impl Session {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Reads messages into `session` until `done` says so or the server closes.
async fn read_until<S>(ws: &mut WebSocketStream<S>, session: &mut Session, done: impl Fn(&Session) -> bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(session) {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, ws.next()).await.unwrap_or_else(|_| panic!("timed out: {session:?}"));
        match next {
            Some(Ok(Message::Binary(data))) => match data.split_first() {
                Some((1, rest)) => session.stdout.extend_from_slice(rest),
                Some((2, rest)) => session.stderr.extend_from_slice(rest),
                Some((3, rest)) => session.status = Some(serde_json::from_slice(rest).expect("status JSON")),
                _ => {}
            },
            Some(Ok(Message::Close(frame))) => {
                session.close_code = Some(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return,
        }
    }
}

async fn finish<S>(mut ws: WebSocketStream<S>) -> Session
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut session = Session::default();
    read_until(&mut ws, &mut session, |_| false).await;
    session
}

fn bin(channel: u8, data: &[u8]) -> Message {
    let mut m = vec![channel];
    m.extend_from_slice(data);
    Message::Binary(m.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_reports_output_exit_codes_and_takes_stdin() {
    if !runc_available() {
        return;
    }
    let f = Fixture::start("exec").await;
    f.pod("web", sh("c", "exec sleep 1000")).await;

    let path = "/exec/default/web/c?command=sh&command=-c&command=echo+out%3B+echo+err+%3E%262%3B+exit+3&stdout=true&stderr=true";
    let s = finish(f.ws(path, "v5.channel.k8s.io, v4.channel.k8s.io").await).await;
    assert_eq!((s.stdout(), String::from_utf8_lossy(&s.stderr).into_owned()), ("out\n".into(), "err\n".into()));
    let status = s.status.expect("a status on channel 3");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0], serde_json::json!({"reason": "ExitCode", "message": "3"}));
    assert_eq!(s.close_code, Some(1000), "a normal close, or kubectl reports a failure");

    // v4 too, and success.
    let s =
        finish(f.ws("/exec/default/web/c?command=printenv&command=PATH&stdout=true", "v4.channel.k8s.io").await).await;
    assert_eq!(s.stdout(), "/bin\n", "{s:?}");
    assert_eq!(s.status.expect("status")["status"], "Success");

    // stdin, closed with v5's close signal.
    let mut ws = f.ws("/exec/default/web/c?command=cat&stdin=true&stdout=true&stderr=true", "v5.channel.k8s.io").await;
    ws.send(bin(0, b"hello ")).await.expect("send");
    ws.send(bin(0, b"stdin\n")).await.expect("send");
    ws.send(Message::Binary(vec![255, 0].into())).await.expect("close stdin");
    let s = finish(ws).await;
    assert_eq!(s.stdout(), "hello stdin\n");
    assert_eq!(s.status.expect("status")["status"], "Success");

    // A command that does not exist: runc's message on stderr and a non-zero exit.
    let s = finish(f.ws("/exec/default/web/c?command=no-such-cmd&stdout=true&stderr=true", "v5.channel.k8s.io").await)
        .await;
    assert!(String::from_utf8_lossy(&s.stderr).contains("no-such-cmd"), "{s:?}");
    assert_eq!(s.status.expect("status")["reason"], "NonZeroExitCode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_with_a_terminal_follows_resizes() {
    if !runc_available() {
        return;
    }
    let f = Fixture::start("tty").await;
    f.pod("web", sh("c", "exec sleep 1000")).await;
    let path = "/exec/default/web/c?command=sh&command=-c&command=while+read+x%3B+do+stty+size%3B+done&stdin=true&stdout=true&tty=true";
    let mut ws = f.ws(path, "v5.channel.k8s.io").await;
    ws.send(bin(4, br#"{"Width":123,"Height":45}"#)).await.expect("resize");
    // runc passes the size on when it handles SIGWINCH: ask until the shell sees it.
    let mut s = Session::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.stdout().contains("45 123") {
        assert!(Instant::now() < deadline, "the terminal never got the new size: {:?}", s.stdout());
        ws.send(bin(0, b"\n")).await.expect("stdin");
        let seen = s.stdout.len();
        read_until(&mut ws, &mut s, |s| s.stdout.len() > seen && s.stdout().ends_with('\n')).await;
    }
    ws.send(bin(0, b"\x04")).await.expect("ctrl-d");
    read_until(&mut ws, &mut s, |s| s.status.is_some()).await;
    assert_eq!(s.status.expect("status")["status"], "Success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_tail_since_timestamps_limit_and_previous() {
    if !runc_available() {
        return;
    }
    let f = Fixture::start("logs").await;
    let old = f.containers.run("old", &sh("c", "echo from the previous instance")).await;
    f.containers.wait_exit(&old).await;
    let mut web = f.pod("web", sh("c", "echo one; echo two >&2; echo three; exec sleep 1000")).await;
    f.containers.wait_log_lines(&web.id, 3).await;

    let (code, text) = f.get_text("/containerLogs/default/web/c").await;
    assert_eq!(code, 200);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["one", "three", "two"], "stdout and stderr interleave: {text:?}");
    let (_, text) = f.get_text("/containerLogs/default/web/c?tailLines=1").await;
    assert!(text == "three\n" || text == "two\n", "{text:?}");
    let (_, text) = f.get_text("/containerLogs/default/web/c?tailLines=0").await;
    assert_eq!(text, "");
    let (_, text) = f.get_text("/containerLogs/default/web/c?timestamps=true").await;
    for line in text.lines() {
        let (ts, rest) = line.split_once(' ').expect("timestamp and text");
        assert!(ts.len() == 30 && ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "nine fractional digits: {ts}");
        assert!(["one", "two", "three"].contains(&rest), "{line}");
    }
    let (_, text) = f.get_text("/containerLogs/default/web/c?sinceTime=2999-01-01T00:00:00Z").await;
    assert_eq!(text, "");
    let (_, text) = f.get_text("/containerLogs/default/web/c?sinceSeconds=3600").await;
    assert_eq!(text.lines().count(), 3);
    let (_, text) = f.get_text("/containerLogs/default/web/c?limitBytes=5").await;
    assert_eq!(text.len(), 5, "{text:?}");

    let (code, text) = f.get_text("/containerLogs/default/web/c?previous=true").await;
    assert_eq!((code, text.as_str()), (400, "previous terminated container \"c\" in pod \"web\" not found\n"));
    web.previous_log = Some(f.containers.log_path(&old));
    f.pods.add("default", "web2", web.clone());
    let (code, text) = f.get_text("/containerLogs/default/web2/c?previous=true").await;
    assert_eq!((code, text.as_str()), (200, "from the previous instance\n"));

    let (code, text) = f.get_text("/containerLogs/default/web/c?tailLines=-1").await;
    assert_eq!(code, 400, "{text}");
    let (code, _) = f.get_text("/containerLogs/default/nope/c").await;
    assert_eq!(code, 404);
}

async fn next_frame(body: &mut hyper::body::Incoming) -> Option<Result<hyper::body::Frame<Bytes>, hyper::Error>> {
    tokio::time::timeout(Duration::from_secs(20), body.frame()).await.expect("a frame in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_until_the_container_exits() {
    if !runc_available() {
        return;
    }
    let f = Fixture::start("follow").await;
    let web = f.pod("web", sh("c", "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second")).await;
    f.containers.wait_log_lines(&web.id, 1).await;
    let (code, mut body) = f.get("/containerLogs/default/web/c?follow=true").await;
    assert_eq!(code, 200);
    let mut got = String::new();
    while got != "first\n" {
        let frame = next_frame(&mut body).await.expect("more").expect("frame");
        got.push_str(&String::from_utf8_lossy(&frame.into_data().expect("data")));
    }
    let touch = ExecRequest { command: vec!["touch".into(), "/tmp/go".into()], ..Default::default() };
    let mut p = f.containers.runc.exec(&web.id, touch).await.expect("exec");
    if let Some(mut out) = p.stdout.take() {
        let _ = out.read_to_end(&mut Vec::new()).await;
    }
    assert_eq!(p.exit.await.expect("exit"), 0);
    // The body ends by itself once the container has exited.
    while let Some(frame) = next_frame(&mut body).await {
        got.push_str(&String::from_utf8_lossy(&frame.expect("frame").into_data().unwrap_or_default()));
    }
    assert_eq!(got, "first\nsecond\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_a_terminal_and_to_a_stdin_pipe() {
    if !runc_available() {
        return;
    }
    let f = Fixture::start("attach").await;
    let tty = Container { tty: Some(true), stdin: Some(true), ..sh("c", "exec sh") };
    let shell = f.pod("shell", tty).await;
    let mut ws = f.ws("/attach/default/shell/c?stdin=true&stdout=true&tty=true", "v5.channel.k8s.io").await;
    ws.send(bin(4, br#"{"Width":90,"Height":20}"#)).await.expect("resize");
    ws.send(bin(0, b"echo attached-$((40+2))\n")).await.expect("stdin");
    let mut s = Session::default();
    read_until(&mut ws, &mut s, |s| s.stdout().contains("attached-42")).await;
    ws.send(bin(0, b"exit\n")).await.expect("exit");
    read_until(&mut ws, &mut s, |s| s.status.is_some()).await;
    assert_eq!(s.status.as_ref().expect("status")["status"], "Success", "{s:?}");
    f.containers.wait_exit(&shell.id).await;
    let log = std::fs::read_to_string(&shell.log_path).expect("log");
    assert!(log.contains("attached-42"), "the attached session's output is in the log too: {log}");

    // A plain stdin pipe with stdinOnce: the container reads what we send and sees EOF
    // when we detach.
    let piped = Container {
        stdin: Some(true),
        stdin_once: Some(true),
        ..sh("c", "while read l; do echo got:$l; done; echo eof")
    };
    let reader = f.pod("reader", piped).await;
    let mut ws = f.ws("/attach/default/reader/c?stdin=true&stdout=true&stderr=true", "v5.channel.k8s.io").await;
    ws.send(bin(0, b"a\nb\n")).await.expect("stdin");
    let mut s = Session::default();
    read_until(&mut ws, &mut s, |s| s.stdout().contains("got:b")).await;
    ws.send(Message::Binary(vec![255, 0].into())).await.expect("close stdin");
    read_until(&mut ws, &mut s, |s| s.status.is_some()).await;
    assert_eq!(s.stdout(), "got:a\ngot:b\neof\n");
    f.containers.wait_exit(&reader.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_cluster_certificate_or_with_bad_input_fail() {
    if !runc_available() {
        return;
    }
    let f = Fixture::start("reject").await;
    f.pod("web", sh("c", "exec sleep 1000")).await;
    // No client certificate: the TLS handshake (or the first read) fails.
    let tcp = TcpStream::connect(f.addr).await.expect("connect");
    let name = ServerName::IpAddress(f.addr.ip().into());
    let anonymous = tokio_rustls::TlsConnector::from(client_tls(None)).connect(name, tcp).await;
    if let Ok(mut tls) = anonymous {
        use tokio::io::AsyncWriteExt;
        let _ = tls.write_all(b"GET /containerLogs/default/web/c HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await.expect("in time");
        assert!(read.is_err() || buf.is_empty(), "served without a certificate: {:?}", String::from_utf8_lossy(&buf));
    }

    let (code, text) = f.get_text("/exec/default/web/c?command=true").await;
    assert_eq!((code, text.as_str()), (400, "you must specify at least 1 of stdin, stdout, stderr\n"));
    let (code, text) = f.get_text("/exec/default/web/c?stdout=true").await;
    assert_eq!(code, 400, "{text}");
    let (code, text) = f.get_text("/exec/default/web/c?command=true&stdout=true").await;
    assert_eq!(code, 400, "a plain GET is not an upgrade: {text}");
    let (code, _) = f.get_text("/nothing/here").await;
    assert_eq!(code, 404);
    let (code, _) = f.get_text("/containerLogs/default/web/c?follow=sometimes").await;
    assert_eq!(code, 400);
}
