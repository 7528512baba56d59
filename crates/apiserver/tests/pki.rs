//! The cluster PKI and authentication, end to end: files on disk, real TLS handshakes over
//! 127.0.0.1, and (where installed) OpenSSL, Python's `ssl` and the real `kubectl` as clients.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rkube_apiserver::auth::{AUTHENTICATED_GROUP, Authenticator, User};
use rkube_apiserver::pki::{self, Pki, PkiError};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// The DNS names and IP addresses in a certificate's SAN extension.
fn sans_of(pem: &str) -> (Vec<String>, Vec<IpAddr>) {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).expect("pem");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("x509");
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let san = cert.subject_alternative_name().expect("san ext").expect("has san");
    for name in &san.value.general_names {
        match name {
            x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                let ip = match bytes.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("v4")),
                    16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("v6")),
                    n => panic!("IP SAN of {n} bytes"),
                };
                ips.push(ip);
            }
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    (dns, ips)
}

fn client_config(ca_pem: &str, identity: Option<(&str, &str)>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca")).expect("add root");
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// What the server saw of one handshake.
struct Seen {
    peer_certs: Option<Vec<CertificateDer<'static>>>,
    alpn: Option<Vec<u8>>,
}

/// Runs one handshake on 127.0.0.1 and returns what the server side saw, or the server's error.
/// The client is kept open until the server is done, because under TLS 1.3 the server checks the
/// client's certificate after the client already considers itself connected.
async fn handshake(pki: &Pki, client: Arc<ClientConfig>, server_name: &str) -> Result<Seen, String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(pki.server_config());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        Ok::<_, String>(Seen {
            peer_certs: conn.peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect()),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        })
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    let client_result = TlsConnector::from(client).connect(name, tcp).await;
    let _keep_open = match client_result {
        Ok(mut tls) => {
            // The server's read of this byte is what completes its side of the handshake.
            let _ = tls.write_all(b"x").await;
            let _ = tls.flush().await;
            Some(tls)
        }
        Err(e) => {
            server.abort();
            return Err(format!("client: {e}"));
        }
    };
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .map_err(|_| "server timed out".to_string())?
        .map_err(|e| e.to_string())?
}

#[test]
fn ensure_creates_files_once_and_reuses_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("pki");
    let first = Pki::ensure(&pki_dir, &[]).expect("first ensure");
    for file in [pki::CA_KEY, pki::SERVER_KEY, pki::ADMIN_KEY, pki::TOKENS] {
        assert_eq!(mode(&pki_dir.join(file)), 0o600, "{file}");
    }
    for file in [pki::CA_CERT, pki::SERVER_CERT, pki::ADMIN_CERT] {
        assert_eq!(mode(&pki_dir.join(file)), 0o644, "{file}");
    }
    assert_eq!(mode(&pki_dir), 0o700);
    assert_eq!(read(&pki_dir.join(pki::CA_CERT)), first.ca_cert_pem);
    assert_eq!(read(&pki_dir.join(pki::ADMIN_KEY)), first.admin_key_pem);
    assert_eq!(first.admin_token.len(), 64);
    let tokens = read(&pki_dir.join(pki::TOKENS));
    assert_eq!(tokens, format!("{},admin,admin,\"system:masters\"\n", first.admin_token));

    let keys_before: Vec<String> =
        [pki::CA_KEY, pki::SERVER_KEY, pki::ADMIN_KEY].iter().map(|f| read(&pki_dir.join(f))).collect();
    let second = Pki::ensure(&pki_dir, &[]).expect("second ensure");
    assert_eq!(second.ca_cert_pem, first.ca_cert_pem);
    assert_eq!(second.server_cert_pem, first.server_cert_pem, "nothing changed, so nothing is re-issued");
    assert_eq!(second.admin_cert_pem, first.admin_cert_pem);
    assert_eq!(second.admin_token, first.admin_token);
    let keys_after: Vec<String> =
        [pki::CA_KEY, pki::SERVER_KEY, pki::ADMIN_KEY].iter().map(|f| read(&pki_dir.join(f))).collect();
    assert_eq!(keys_after, keys_before);
    assert!(!format!("{second:?}").contains("PRIVATE"), "Debug must not print keys");
}

#[test]
fn serving_cert_covers_requested_names_and_is_reissued_for_new_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Pki::ensure(dir.path(), &names(&["10.1.2.3", "api.example.test", " node-1 "])).expect("ensure");
    let (dns, ips) = sans_of(&first.server_cert_pem);
    for expected in [
        "api.example.test",
        "node-1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        assert!(dns.iter().any(|d| d == expected), "{expected} missing from {dns:?}");
    }
    for expected in ["10.1.2.3", "127.0.0.1", "::1"] {
        assert!(ips.contains(&expected.parse().expect("ip")), "{expected} missing from {ips:?}");
    }
    assert!(!dns.iter().any(|d| d == "10.1.2.3"), "an IP is never a DNS SAN");

    let same = Pki::ensure(dir.path(), &names(&["api.example.test", "10.1.2.3"])).expect("ensure");
    assert_eq!(same.server_cert_pem, first.server_cert_pem, "covered names reuse the certificate");

    let server_key = read(&dir.path().join(pki::SERVER_KEY));
    let grown = Pki::ensure(dir.path(), &names(&["10.1.2.3", "api.example.test", "192.168.7.7"])).expect("ensure");
    assert_ne!(grown.server_cert_pem, first.server_cert_pem, "a new address re-issues");
    assert_eq!(grown.ca_cert_pem, first.ca_cert_pem);
    assert_eq!(read(&dir.path().join(pki::SERVER_KEY)), server_key, "the key is kept");
    let (_, ips) = sans_of(&grown.server_cert_pem);
    assert!(ips.contains(&"192.168.7.7".parse().expect("ip")));
    assert_eq!(read(&dir.path().join(pki::SERVER_CERT)), grown.server_cert_pem);
}

#[test]
fn bad_names_and_half_a_ca_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Pki::ensure(dir.path(), &names(&["not a name"])).expect_err("space in a DNS name");
    assert!(matches!(err, PkiError::InvalidName { .. }), "{err}");

    Pki::ensure(dir.path(), &[]).expect("ensure");
    std::fs::remove_file(dir.path().join(pki::CA_KEY)).expect("remove");
    let err = Pki::ensure(dir.path(), &[]).expect_err("CA without key");
    assert!(matches!(err, PkiError::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains("ca.key"), "{err}");

    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join(pki::CA_CERT), "not pem").expect("write");
    std::fs::write(other.path().join(pki::CA_KEY), "not pem").expect("write");
    let err = Pki::ensure(other.path(), &[]).expect_err("garbage CA");
    assert!(err.to_string().contains("ca.key"), "{err}");
}

#[test]
fn a_foreign_admin_cert_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = Pki::ensure(dir.path(), &[]).expect("ensure");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let theirs = Pki::ensure(elsewhere.path(), &[]).expect("ensure");
    std::fs::write(dir.path().join(pki::ADMIN_CERT), &theirs.admin_cert_pem).expect("write");
    let again = Pki::ensure(dir.path(), &[]).expect("ensure");
    assert_ne!(again.admin_cert_pem, theirs.admin_cert_pem);
    assert_eq!(again.admin_key_pem, ours.admin_key_pem);
}

#[tokio::test]
async fn admin_cert_handshake_authenticates_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::ensure(dir.path(), &[]).expect("ensure");
    let client =
        client_config(&pki.ca_cert_pem, Some((&pki.admin_cert_pem, &pki.admin_key_pem)), &[b"h2", b"http/1.1"]);
    let seen = handshake(&pki, client, "127.0.0.1").await.expect("handshake");
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    let certs = seen.peer_certs.expect("the server sees the client certificate");
    let auth = Authenticator::new(dir.path()).expect("authenticator");
    let user = auth.authenticate(Some(&certs), Some("Bearer wrong")).expect("certificate user");
    assert_eq!(
        user,
        User {
            name: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into(), AUTHENTICATED_GROUP.into()]
        }
    );

    // The serving certificate is valid for the in-cluster name too.
    let client = client_config(&pki.ca_cert_pem, None, &[b"http/1.1"]);
    let seen = handshake(&pki, client, "kubernetes.default.svc").await.expect("handshake");
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn anonymous_handshake_then_tokens_decide() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::ensure(dir.path(), &[]).expect("ensure");
    let seen = handshake(&pki, client_config(&pki.ca_cert_pem, None, &[]), "localhost").await.expect("handshake");
    assert!(seen.peer_certs.is_none());
    assert_eq!(seen.alpn, None);

    let auth = Authenticator::new(dir.path()).expect("authenticator");
    assert_eq!(auth.authenticate(None, None), None);
    let admin = auth.authenticate(None, Some(&format!("Bearer {}", pki.admin_token))).expect("admin token");
    assert_eq!(admin.name, "admin");
    assert_eq!(admin.uid, "admin");
    assert_eq!(admin.groups, vec!["system:masters".to_string(), AUTHENTICATED_GROUP.to_string()]);
    for header in [
        "Bearer nope".to_string(),
        format!("Bearer {}x", pki.admin_token),
        format!("Basic {}", pki.admin_token),
        format!("Bearer{}", pki.admin_token),
        "Bearer".to_string(),
        String::new(),
        "\u{0}\u{ffff}".to_string(),
    ] {
        assert_eq!(auth.authenticate(None, Some(&header)), None, "{header:?}");
    }
    assert_eq!(auth.authenticate(Some(&[]), None), None);
}

#[tokio::test]
async fn minted_tokens_work_on_a_running_authenticator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::ensure(dir.path(), &[]).expect("ensure");
    let auth = Authenticator::new(dir.path()).expect("authenticator");
    let token = pki.mint_token("system:node:n1", &names(&["system:nodes"])).expect("mint");
    let user = auth.authenticate(None, Some(&format!("Bearer {token}"))).expect("minted token");
    assert_eq!(user.name, "system:node:n1");
    assert_eq!(user.groups, vec!["system:nodes".to_string(), AUTHENTICATED_GROUP.to_string()]);
    pki::add_token(dir.path(), "fixed-token", "ci", &[]).expect("add");
    assert_eq!(auth.authenticate_token("fixed-token").map(|u| u.groups), Some(vec![AUTHENTICATED_GROUP.to_string()]));
    assert!(auth.authenticate_token(&pki.admin_token).is_some(), "older tokens stay");

    for (token, user, groups) in
        [("a,b", "u", vec![]), ("t", "u,v", vec![]), ("t", "u", vec!["g\"".to_string()]), ("t t", "u", vec![])]
    {
        let err = pki::add_token(dir.path(), token, user, &groups).expect_err("rejected");
        assert!(matches!(err, PkiError::InvalidName { .. }), "{err}");
    }
}

#[tokio::test]
async fn client_certs_with_several_groups_verify_and_authenticate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::ensure(dir.path(), &[]).expect("ensure");
    let groups = names(&["system:nodes", "extra", "third"]);
    let (cert, key) = pki.issue_client_cert("system:node:n1", &groups).expect("issue");
    let client = client_config(&pki.ca_cert_pem, Some((&cert, &key)), &[b"h2"]);
    let seen = handshake(&pki, client, "127.0.0.1").await.expect("the re-signed certificate verifies");
    let auth = Authenticator::new(dir.path()).expect("authenticator");
    let user = auth.authenticate(seen.peer_certs.as_deref(), None).expect("certificate user");
    assert_eq!(user.name, "system:node:n1");
    assert_eq!(user.groups, names(&["system:nodes", "extra", "third", AUTHENTICATED_GROUP]));

    let (cert, key) = pki.issue_client_cert("plain", &[]).expect("issue");
    let seen = handshake(&pki, client_config(&pki.ca_cert_pem, Some((&cert, &key)), &[]), "localhost")
        .await
        .expect("handshake");
    let user = auth.authenticate(seen.peer_certs.as_deref(), None).expect("certificate user");
    assert_eq!(user.groups, names(&[AUTHENTICATED_GROUP]));

    assert!(pki.issue_client_cert("", &[]).is_err());
}

#[tokio::test]
async fn certs_from_another_ca_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::ensure(dir.path(), &[]).expect("ensure");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let other = Pki::ensure(elsewhere.path(), &[]).expect("ensure");
    let client = client_config(&pki.ca_cert_pem, Some((&other.admin_cert_pem, &other.admin_key_pem)), &[]);
    assert!(handshake(&pki, client, "localhost").await.is_err());
    // And a client that trusts only the other CA refuses our server.
    let client = client_config(&other.ca_cert_pem, None, &[]);
    assert!(handshake(&pki, client, "localhost").await.is_err());
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok() || Command::new(tool).arg("version").output().is_ok()
}

#[test]
fn openssl_accepts_the_certificates_strictly() {
    if !have("openssl") {
        eprintln!("openssl not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::ensure(dir.path(), &names(&["10.9.8.7"])).expect("ensure");
    let (cert, _) = pki.issue_client_cert("system:node:n1", &names(&["system:nodes", "extra"])).expect("issue");
    let node = dir.path().join("node.crt");
    std::fs::write(&node, &cert).expect("write");
    let ca = dir.path().join(pki::CA_CERT);
    for (file, purpose) in [
        (dir.path().join(pki::SERVER_CERT), "sslserver"),
        (dir.path().join(pki::ADMIN_CERT), "sslclient"),
        (node.clone(), "sslclient"),
    ] {
        let out = Command::new("openssl")
            .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
            .arg(&ca)
            .arg(&file)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new("openssl").args(["x509", "-noout", "-subject", "-in"]).arg(&node).output().expect("openssl");
    let subject = String::from_utf8_lossy(&out.stdout);
    assert!(subject.contains("O = system:nodes, O = extra, CN = system:node:n1"), "{subject}");
}

/// Serves one tiny HTTPS endpoint that answers with the authenticated user's name, for clients
/// that are not Rust.
async fn serve_whoami(pki: &Pki, auth: Arc<Authenticator>) -> std::net::SocketAddr {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = TlsAcceptor::from(pki.server_config());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let auth = auth.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let certs: Option<Vec<CertificateDer<'static>>> =
                    tls.get_ref().1.peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let header = req.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                    let user = auth.authenticate(certs.as_deref(), header);
                    let response = match user {
                        Some(user) => hyper::Response::new(Full::new(Bytes::from(
                            serde_json::json!({"user": user.name, "groups": user.groups}).to_string(),
                        ))),
                        None => {
                            let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"{}")));
                            *r.status_mut() = hyper::StatusCode::UNAUTHORIZED;
                            r
                        }
                    };
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn kubectl_accepts_the_kubeconfig() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::ensure(&dir.path().join("pki"), &[]).expect("ensure");
    let auth = Arc::new(Authenticator::new(&pki.dir).expect("authenticator"));
    let addr = serve_whoami(&pki, auth).await;
    let kubeconfig = dir.path().join("kube").join("config");
    pki.write_kubeconfig(&kubeconfig, &format!("https://{addr}"), "rkube").expect("kubeconfig");
    assert_eq!(mode(&kubeconfig), 0o600);

    let run = |kubeconfig: std::path::PathBuf, args: Vec<String>| {
        let cache = dir.path().join("cache");
        async move {
            let out = tokio::process::Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--cache-dir")
                .arg(&cache)
                .args(&args)
                .env_remove("KUBECONFIG")
                .output();
            let out =
                tokio::time::timeout(Duration::from_secs(30), out).await.expect("kubectl timed out").expect("run");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, stdout, stderr) = run(kubeconfig.clone(), names(&["get", "--raw", "/whoami"])).await;
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), r#"{"groups":["system:masters","system:authenticated"],"user":"admin"}"#);

    // Over `localhost` instead of the IP, and with a token instead of the certificate: an empty
    // kubeconfig, so that kubectl has no certificate to present.
    let token = pki.mint_token("ci", &[]).expect("mint");
    let empty = dir.path().join("empty-config");
    std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").expect("write");
    let (ok, stdout, stderr) = run(
        empty,
        vec![
            "--server".into(),
            format!("https://localhost:{}", addr.port()),
            "--certificate-authority".into(),
            pki.dir.join(pki::CA_CERT).display().to_string(),
            "--token".into(),
            token,
            "get".into(),
            "--raw".into(),
            "/whoami".into(),
        ],
    )
    .await;
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), r#"{"groups":["system:authenticated"],"user":"ci"}"#);

    // A wrong token: the handshake succeeds and the request is refused. (With no credentials at
    // all, kubectl would prompt for a user name on stdin instead of sending a request.)
    let (ok, stdout, stderr) = run(
        dir.path().join("empty-config"),
        vec![
            "--server".into(),
            format!("https://{addr}"),
            "--certificate-authority".into(),
            pki.dir.join(pki::CA_CERT).display().to_string(),
            "--token".into(),
            "wrong".into(),
            "get".into(),
            "--raw".into(),
            "/whoami".into(),
        ],
    )
    .await;
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("provide credentials"), "{stderr}");
}

#[tokio::test]
async fn python_ssl_accepts_the_certificates_strictly() {
    if Command::new("python3").arg("-c").arg("import ssl").output().map(|o| !o.status.success()).unwrap_or(true) {
        eprintln!("python3 not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::ensure(dir.path(), &[]).expect("ensure");
    let auth = Arc::new(Authenticator::new(dir.path()).expect("authenticator"));
    let addr = serve_whoami(&pki, auth).await;
    // What urllib3 does for the Python client, plus OpenSSL's strict checks that Python 3.13 adds.
    let script = r#"
import socket, ssl, sys
d, port = sys.argv[1], int(sys.argv[2])
ctx = ssl.create_default_context(cafile=d + "/ca.crt")
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
ctx.load_cert_chain(d + "/admin.crt", d + "/admin.key")
ctx.set_alpn_protocols(["http/1.1"])
with socket.create_connection(("127.0.0.1", port)) as raw:
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
print(data.decode().split("\r\n\r\n", 1)[1])
"#;
    let out = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .arg(addr.port().to_string())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out).await.expect("python timed out").expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(r#""user":"admin""#), "{stdout}");
}
