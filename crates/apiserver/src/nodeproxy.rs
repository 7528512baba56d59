//! `pods/log`, `pods/exec` and `pods/attach`: the API server finds the pod's node and
//! proxies the request to the node agent's streaming server (the kubelet's port), as
//! upstream's `LogLocation`/`streamLocation` and its upgrade-aware proxy do.
//!
//! - The pod is read, the container checked (`container X is not valid for pod Y`, or the
//!   choice that must be made when the pod has several), and the node looked up: its
//!   InternalIP (else ExternalIP) and `status.daemonEndpoints.kubeletEndpoint.Port`.
//! - The connection is made with the configured node dialer (`rkube up` dials inside the
//!   cluster's network namespace) or a plain connect, then TLS with the API server's client
//!   certificate for kubelets (CN `kube-apiserver-kubelet-client`, O `system:masters`).
//! - Logs stream back as the agent sends them. For exec and attach, the agent's 101
//!   response (with its `Sec-WebSocket-Accept` and negotiated `Sec-WebSocket-Protocol`) goes
//!   to the client unchanged and both directions are spliced byte for byte: the WebSocket
//!   framing is end to end, between kubectl and the agent.
//! - The agent's error responses (plain text) become `Status` objects with the agent's
//!   message, as upstream's generic response checker does for the kubelet's.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use crate::body::Body;
use crate::error::{ApiError, Target};
use crate::handlers::Api;
use crate::pki::{Pki, PkiError};
use crate::registry::{self, Subresource};
use crate::route::{Query, ResourceRoute};

/// Opens a TCP connection to a node's streaming port. Blocking; run off the async threads.
pub type NodeDialer = Arc<dyn Fn(SocketAddr) -> io::Result<std::net::TcpStream> + Send + Sync>;

/// The kubelet's port when a node does not say.
const DEFAULT_KUBELET_PORT: u16 = 10250;
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an agent's error body becomes the message.
const MAX_ERROR_BODY: usize = 16 * 1024;

/// The query parameters forwarded to the agent for each subresource.
const LOG_PARAMS: &[&str] =
    &["follow", "previous", "sinceSeconds", "sinceTime", "timestamps", "tailLines", "limitBytes"];
const STREAM_PARAMS: &[&str] = &["stdin", "stdout", "stderr", "tty", "command"];
/// Request headers that make a WebSocket or SPDY upgrade, forwarded as they are (SPDY
/// clients, kubectl 1.29 and older, offer their protocols in `X-Stream-Protocol-Version`).
const UPGRADE_HEADERS: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

pub struct NodeProxy {
    tls: tokio_rustls::TlsConnector,
    dialer: Option<NodeDialer>,
}

impl NodeProxy {
    /// Issues the API server's kubelet client certificate (kept in memory) from the cluster CA.
    pub fn new(pki: &Pki, dialer: Option<NodeDialer>) -> Result<NodeProxy, PkiError> {
        use rustls_pki_types::pem::PemObject;
        let (cert_pem, key_pem) =
            pki.issue_client_cert("kube-apiserver-kubelet-client", &["system:masters".to_string()])?;
        let bad = |what: &str, e: &dyn std::fmt::Display| PkiError::Tls(format!("kubelet client {what}: {e}"));
        let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("certificate", &e))?;
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad("key", &e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("TLS versions", &e))?
            .dangerous()
            // The agents' serving certificates are self-signed and nobody distributes them:
            // like upstream's API server without `--kubelet-certificate-authority`, the
            // serving certificate is not verified. The agent does verify us.
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_client_auth_cert(certs, key)
            .map_err(|e| bad("certificate", &e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(NodeProxy { tls: tokio_rustls::TlsConnector::from(Arc::new(config)), dialer })
    }

    /// Serves `GET pods/log` and `GET|POST pods/exec|attach` for the pod in `route`.
    pub async fn serve(
        &self,
        api: &Api,
        route: ResourceRoute,
        query: Query,
        mut req: Request<Incoming>,
    ) -> Result<Response<Body>, ApiError> {
        let sub = route.subresource.ok_or(ApiError::MethodNotAllowed)?;
        let is_log = sub == Subresource::Log;
        match (is_log, req.method()) {
            (true, &Method::GET) | (false, &Method::GET | &Method::POST) => {}
            _ => return Err(ApiError::MethodNotAllowed),
        }
        let ns = route.namespace.as_deref().unwrap_or("default");
        let name = route.name.as_deref().unwrap_or("");
        let (pod, _) = api.read(route.resource, Some(ns), name).await?;
        let container = choose_container(&pod, name, query.get("container").filter(|c| !c.is_empty()), is_log)?;
        let node_name = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
        if node_name.is_empty() {
            if is_log {
                // Upstream streams nothing for a pod that has no node yet.
                return Ok(crate::body::bytes_response(StatusCode::OK, "text/plain", Bytes::new()));
            }
            return Err(ApiError::bad_request(format!("pod {name} does not have a host assigned")));
        }
        let nodes = registry::find("", "v1", "nodes").ok_or_else(|| ApiError::internal("nodes are not served"))?;
        let (node, _) = api.read(nodes, None, node_name).await?;
        let addr = node_address(&node)?;

        let (kind, params) = match sub {
            Subresource::Log => ("containerLogs", LOG_PARAMS),
            Subresource::Exec => ("exec", STREAM_PARAMS),
            _ => ("attach", STREAM_PARAMS),
        };
        let mut target = format!("/{kind}/{}/{}/{}", encode(ns), encode(name), encode(&container));
        let forwarded: Vec<String> =
            params.iter().flat_map(|p| query.all(p).into_iter().map(move |v| format!("{p}={}", encode(v)))).collect();
        if !forwarded.is_empty() {
            target.push('?');
            target.push_str(&forwarded.join("&"));
        }

        let wants_upgrade = req.headers().contains_key(header::UPGRADE);
        let mut out =
            Request::builder().method(req.method().clone()).uri(&target).header(header::HOST, addr.to_string());
        if wants_upgrade {
            for h in UPGRADE_HEADERS {
                for v in req.headers().get_all(*h) {
                    out = out.header(*h, v);
                }
            }
        }
        let out = out
            .body(Empty::<Bytes>::new())
            .map_err(|e| ApiError::internal(format!("building the request to the node: {e}")))?;
        let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));

        let mut sender = self.connect(addr).await?;
        let mut resp = sender
            .send_request(out)
            .await
            .map_err(|e| ApiError::internal(format!("error trying to reach service: {e}")))?;
        let status = resp.status();
        if status == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err(ApiError::internal("the node switched protocols unasked"));
            };
            let node_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                let (client, node) = match tokio::try_join!(client_upgrade, node_upgrade) {
                    Ok(both) => both,
                    Err(e) => {
                        tracing::debug!(error = %e, "proxying a stream: upgrade failed");
                        return;
                    }
                };
                let (mut client, mut node) = (TokioIo::new(client), TokioIo::new(node));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
            });
            let mut answer = Response::new(crate::body::full(Bytes::new()));
            *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            for (k, v) in resp.headers() {
                answer.headers_mut().append(k.clone(), v.clone());
            }
            return Ok(answer);
        }
        if !status.is_success() {
            return Err(node_error(status, resp.into_body(), sub, name).await);
        }
        let content_type = resp_content_type(resp.headers());
        let mut answer = Response::new(stream_body(resp.into_body()));
        answer.headers_mut().insert(header::CONTENT_TYPE, content_type);
        Ok(answer)
    }

    async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, ApiError> {
        let dial_err = |e: &dyn std::fmt::Display| ApiError::internal(format!("error dialing backend: {e}"));
        let tcp = match self.dialer.clone() {
            Some(dial) => {
                let std_tcp = tokio::task::spawn_blocking(move || dial(addr))
                    .await
                    .map_err(|e| dial_err(&e))?
                    .map_err(|e| dial_err(&e))?;
                std_tcp.set_nonblocking(true).map_err(|e| dial_err(&e))?;
                tokio::net::TcpStream::from_std(std_tcp).map_err(|e| dial_err(&e))?
            }
            None => tokio::time::timeout(DIAL_TIMEOUT, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| dial_err(&format!("dial tcp {addr}: i/o timeout")))?
                .map_err(|e| dial_err(&format!("dial tcp {addr}: {e}")))?,
        };
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::IpAddress(addr.ip().into());
        let tls = tokio::time::timeout(DIAL_TIMEOUT, self.tls.connect(server_name, tcp))
            .await
            .map_err(|_| dial_err(&"TLS handshake timeout"))?
            .map_err(|e| dial_err(&e))?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| dial_err(&e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "connection to a node ended with an error");
            }
        });
        Ok(sender)
    }
}

fn resp_content_type(headers: &http::HeaderMap) -> HeaderValue {
    headers.get(header::CONTENT_TYPE).cloned().unwrap_or_else(|| HeaderValue::from_static("text/plain"))
}

/// The node's body as ours: data frames pass through until the node or the client goes.
fn stream_body(mut incoming: Incoming) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        loop {
            // A client that went away while the log is quiet (`logs -f`) must still close
            // the connection to the node, so the agent stops following.
            let frame = tokio::select! {
                frame = incoming.frame() => frame,
                _ = tx.closed() => break,
            };
            let Some(Ok(frame)) = frame else { break };
            if let Ok(data) = frame.into_data()
                && tx.send(data).await.is_err()
            {
                break;
            }
        }
    });
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    StreamBody::new(frames).boxed()
}

/// An agent's error response as a Status: its text is the message.
async fn node_error(status: StatusCode, body: Incoming, sub: Subresource, name: &str) -> ApiError {
    let limited = http_body_util::Limited::new(body, MAX_ERROR_BODY);
    let text = match limited.collect().await {
        Ok(c) => String::from_utf8_lossy(&c.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    match status {
        StatusCode::BAD_REQUEST => ApiError::bad_request(text),
        StatusCode::NOT_FOUND if text.is_empty() => {
            ApiError::NotFound(Target::new("", &format!("pods/{}", sub.name()), name))
        }
        // The node's own message (`container not found ("x")`) says more than a made-up name.
        StatusCode::NOT_FOUND => ApiError::bad_request(text),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ApiError::Forbidden { message: text },
        _ if text.is_empty() => ApiError::internal(format!("the node answered {status}")),
        _ => ApiError::internal(text),
    }
}

/// The container a request is for, checked as upstream's `validateContainer` and
/// `streamLocation` do.
fn choose_container(pod: &Value, name: &str, asked: Option<&str>, is_log: bool) -> Result<String, ApiError> {
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| cs.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    if let Some(c) = asked {
        if containers.iter().chain(&init).chain(&ephemeral).any(|n| n == c) {
            return Ok(c.to_owned());
        }
        return Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}")));
    }
    match containers.len() {
        1 => Ok(containers[0].clone()),
        0 => Err(ApiError::bad_request(format!("a container name must be specified for pod {name}"))),
        _ if is_log => {
            let all: Vec<String> = containers.iter().chain(&init).chain(&ephemeral).cloned().collect();
            Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                all.join(" ")
            )))
        }
        _ => {
            let mut message =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !init.is_empty() {
                message.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// The node's streaming address: InternalIP, else ExternalIP, and the kubelet port.
fn node_address(node: &Value) -> Result<SocketAddr, ApiError> {
    let addresses = node.pointer("/status/addresses").and_then(Value::as_array).cloned().unwrap_or_default();
    let of_type = |t: &str| {
        addresses.iter().find_map(|a| {
            (a.get("type").and_then(Value::as_str) == Some(t))
                .then(|| a.get("address").and_then(Value::as_str).and_then(|s| s.parse::<IpAddr>().ok()))
                .flatten()
        })
    };
    let ip = of_type("InternalIP").or_else(|| of_type("ExternalIP")).ok_or_else(|| {
        ApiError::internal(format!(
            "no preferred addresses found; known addresses: {}",
            Value::Array(addresses.clone())
        ))
    })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_KUBELET_PORT);
    Ok(SocketAddr::new(ip, port))
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Accepts any serving certificate, but still checks that the handshake was signed by its key.
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_are_checked_like_upstream() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(choose_container(&pod, "p", Some("b"), false).expect("b"), "b");
        assert_eq!(choose_container(&pod, "p", Some("i"), true).expect("i"), "i");
        let e = choose_container(&pod, "p", Some("x"), false).expect_err("x");
        assert_eq!(e.to_string(), "container x is not valid for pod p");
        let e = choose_container(&pod, "p", None, false).expect_err("none");
        assert_eq!(
            e.to_string(),
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(choose_container(&one, "p", None, true).expect("only"), "only");
    }

    #[test]
    fn node_address_prefers_internal_ip_and_the_kubelet_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "ExternalIP", "address": "192.0.2.1"},
                          {"type": "InternalIP", "address": "10.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}});
        assert_eq!(node_address(&node).expect("addr"), "10.0.0.1:10251".parse().expect("addr"));
        let bare = json!({"status": {"addresses": [{"type": "ExternalIP", "address": "192.0.2.1"}]}});
        assert_eq!(node_address(&bare).expect("addr"), "192.0.2.1:10250".parse().expect("addr"));
        assert!(node_address(&json!({})).is_err());
    }

    #[tokio::test]
    async fn connections_go_through_the_node_dialer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::ensure(dir.path(), &[]).expect("pki");
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let dialer: NodeDialer = Arc::new(move |addr| {
            record.lock().expect("lock").push(addr);
            Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused by the test dialer"))
        });
        let proxy = NodeProxy::new(&pki, Some(dialer)).expect("proxy");
        let addr: SocketAddr = "10.1.2.3:10250".parse().expect("addr");
        let err = proxy.connect(addr).await.expect_err("the dialer refuses");
        assert_eq!(err.to_string(), "error dialing backend: refused by the test dialer");
        assert_eq!(*seen.lock().expect("lock"), vec![addr]);
    }

    #[test]
    fn encoding() {
        assert_eq!(encode("sh -c 'exit 3'"), "sh%20-c%20%27exit%203%27");
        assert_eq!(encode("a_b.c~d-e"), "a_b.c~d-e");
    }
}
