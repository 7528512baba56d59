//! The streaming server: container logs, exec and attach over HTTPS, as the kubelet serves
//! them on its port (10250) for the API server to proxy to. See `stream/README.md`.
//!
//! Endpoints (the kubelet's paths and query parameters):
//! - `GET /containerLogs/{namespace}/{pod}/{container}?follow&previous&tailLines&sinceSeconds&sinceTime&timestamps&limitBytes`
//! - `GET /exec/{namespace}/{pod}/{container}?command=…&command=…&stdin&stdout&stderr&tty`
//! - `GET /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty`
//!
//! exec and attach are WebSocket upgrades speaking the `channel.k8s.io` protocols (v5, v4
//! and the original), or SPDY/3.1 upgrades speaking v4 (`stream/spdy.rs`, for kubectl
//! 1.29 and older).

mod logs;
mod query;
mod spdy;
mod ws;

use std::convert::Infallible;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::runtime::{ContainerRuntime, RuntimeError};

pub use logs::{LogEntry, LogOptions, parse_cri_line};
pub use query::Query;

/// The container a request is about, as the kubelet resolves it from its pod table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerTarget {
    /// The runtime id for [`ContainerRuntime::exec`] and [`ContainerRuntime::attach`].
    pub container_id: String,
    /// The CRI log file (for `previous=true`: the previous instance's file).
    pub log_path: PathBuf,
    pub running: bool,
    pub tty: bool,
    pub stdin: bool,
}

/// How the streaming server finds containers: implemented by the kubelet over its pods.
#[async_trait::async_trait]
pub trait PodContainers: Send + Sync {
    /// `container` None means the pod's default container (the annotation
    /// `kubectl.kubernetes.io/default-container`, else the only/first one).
    async fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<ContainerTarget, StreamError>;
}

/// Failures of the streaming server. [`PodContainers::find`] returns `NotFound` or
/// `BadRequest` with the kubelet's message (e.g. `container "web" in pod "p" is waiting to
/// start: ContainerCreating`); the message is the HTTP response body the user eventually sees.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl StreamError {
    fn status(&self) -> StatusCode {
        match self {
            StreamError::NotFound(_) | StreamError::Runtime(RuntimeError::NotFound(_)) => StatusCode::NOT_FOUND,
            StreamError::BadRequest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StreamError {
        let context = context.into();
        move |source| StreamError::Io { context, source }
    }
}

pub(crate) type Body = BoxBody<Bytes, Infallible>;

fn text(code: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut message = message.into();
    if !message.ends_with('\n') {
        message.push('\n');
    }
    let mut resp = Response::new(Full::new(Bytes::from(message)).boxed());
    *resp.status_mut() = code;
    resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

fn error_response(e: &StreamError) -> Response<Body> {
    text(e.status(), e.to_string())
}

/// The streaming server's shared state; [`serve`] builds it.
pub struct StreamServer {
    containers: Arc<dyn PodContainers>,
    runtime: Arc<dyn ContainerRuntime>,
}

/// Serves the streaming endpoints on `listener` with `tls` (see [`tls_config`]) until the
/// task is dropped. Each connection runs on its own task; a bad one never stops the loop.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    containers: Arc<dyn PodContainers>,
    runtime: Arc<dyn ContainerRuntime>,
) -> Result<(), StreamError> {
    let server = Arc::new(StreamServer { containers, runtime });
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "streaming server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "streaming server: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(server.handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service);
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(%peer, error = %e, "streaming server: connection ended with an error");
            }
        });
    }
}

/// `/{kind}/{namespace}/{pod}/{container}`, percent-decoded.
fn split_path(path: &str) -> Option<(&str, [String; 3])> {
    let mut parts = path.trim_start_matches('/').split('/');
    let kind = parts.next()?;
    let ns = query::decode(parts.next()?);
    let pod = query::decode(parts.next()?);
    let container = query::decode(parts.next()?);
    if parts.next().is_some() || ns.is_empty() || pod.is_empty() || container.is_empty() {
        return None;
    }
    Some((kind, [ns, pod, container]))
}

impl StreamServer {
    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let query = Query::parse(req.uri().query().unwrap_or(""));
        let Some((kind, [ns, pod, container])) = split_path(&path) else {
            return text(StatusCode::NOT_FOUND, "404 page not found");
        };
        let result = match (kind, req.method()) {
            ("containerLogs", &Method::GET) => self.logs(&ns, &pod, &container, &query).await,
            ("exec" | "attach", &Method::GET | &Method::POST) if spdy::wants_spdy(req.headers()) => {
                spdy::handle(self, req, kind == "exec", &ns, &pod, &container, &query).await
            }
            ("exec" | "attach", &Method::GET | &Method::POST) => {
                ws::handle(self, req, kind == "exec", &ns, &pod, &container, &query).await
            }
            ("containerLogs" | "exec" | "attach", _) => {
                Ok(text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed"))
            }
            _ => Ok(text(StatusCode::NOT_FOUND, "404 page not found")),
        };
        result.unwrap_or_else(|e| error_response(&e))
    }

    async fn logs(&self, ns: &str, pod: &str, container: &str, query: &Query) -> Result<Response<Body>, StreamError> {
        let options = LogOptions::from_query(query)?;
        let target = self.containers.find(ns, pod, Some(container), options.previous).await?;
        let body = logs::stream(target, options, self.runtime.clone()).await?;
        let mut resp = Response::new(body);
        resp.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
        Ok(resp)
    }
}

/// A TLS configuration for the streaming server: a fresh self-signed serving certificate
/// for `node_name` and `node_ips` (the API server does not verify it, as upstream's does not
/// when no kubelet CA is configured), and client certificates required and verified against
/// the cluster CA, so only the API server (or another holder of a cluster certificate)
/// can exec into pods.
pub fn tls_config(
    cluster_ca_pem: &str,
    node_name: &str,
    node_ips: &[IpAddr],
) -> Result<Arc<rustls::ServerConfig>, StreamError> {
    use rustls_pki_types::pem::PemObject;
    let tls_err = |e: &dyn std::fmt::Display| StreamError::Tls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(cluster_ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| tls_err(&e))?).map_err(|e| tls_err(&e))?;
    }
    if roots.is_empty() {
        return Err(StreamError::Tls("the cluster CA bundle holds no certificate".into()));
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| tls_err(&e))?;

    let mut params = rcgen::CertificateParams::new(vec![node_name.to_string()]).map_err(|e| tls_err(&e))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("{node_name}@rkube-agent"));
    for ip in node_ips {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(*ip));
    }
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(|e| tls_err(&e))?;
    let cert = params.self_signed(&key).map_err(|e| tls_err(&e))?;
    let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());

    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![cert.der().clone()], key_der)
        .map_err(|e| tls_err(&e))?;
    // WebSocket and SPDY upgrades are HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let (kind, [ns, pod, c]) = split_path("/exec/default/my%20pod/web").expect("split");
        assert_eq!((kind, ns.as_str(), pod.as_str(), c.as_str()), ("exec", "default", "my pod", "web"));
        assert!(split_path("/exec/default/pod").is_none());
        assert!(split_path("/exec/default/pod/c/extra").is_none());
        assert!(split_path("/exec//pod/c").is_none());
    }

    #[test]
    fn tls_config_needs_a_ca() {
        assert!(matches!(tls_config("", "node", &[]), Err(StreamError::Tls(_))));
    }
}
