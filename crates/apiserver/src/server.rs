//! Serving: TLS on a TCP listener, HTTP/1.1 and HTTP/2 with upgrades, authentication, and
//! dispatch of each request to discovery, OpenAPI or the resource handlers.
//!
//! Start sequence ([`ApiServer::start`]): certificates → watch cache (and wait until it has
//! listed) → seed namespaces → bind → accept. Shutdown: the accept loop stops when its task
//! is aborted; connections in flight finish on their own tasks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rkube_store::Store;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::body::{self, Body};
use crate::cache::WatchCache;
use crate::error::ApiError;
use crate::handlers::{self, Api};
use crate::nodeproxy::NodeProxy;
use crate::pki::Pki;
use crate::registry::{self, Subresource};
use crate::route::{self, Query, Route};
use crate::services::{Allocators, ServiceConfig};
use crate::{discovery, openapi};

/// The Kubernetes version the API reports. kubectl's dispatcher picks its client binary
/// from the minor version, so this is also the protocol rkube promises to speak.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";
pub const KUBE_GIT_VERSION: &str = "v1.33.1";

/// The namespaces every cluster has.
pub const SEED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Clone)]
pub struct Config {
    /// Certificates, keys, tokens and the admin kubeconfig live here.
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Extra names and addresses for the serving certificate (the listen address is added).
    pub sans: Vec<String>,
    /// How often history is compacted; upstream compacts every 5 minutes.
    pub compaction_interval: Duration,
    /// The Service CIDR and NodePort range.
    pub services: ServiceConfig,
    /// How often the allocation repair loop runs.
    pub repair_interval: Duration,
    /// The address other components reach the API on, published in the `kubernetes` Service's
    /// endpoints. Defaults to the listen address (127.0.0.1 when listening on all addresses).
    pub advertise_address: Option<std::net::IpAddr>,
    /// The port published with `advertise_address`; defaults to the listen port. `rkube up`
    /// sets the fabric listener's, since pods cannot reach the host's port.
    pub advertise_port: Option<u16>,
    /// Whether cluster DNS is on: then the server creates `kube-system/kube-dns`.
    pub dns: bool,
    /// How many recent events the watch cache keeps for watches that resume from a
    /// resourceVersion; older ones get 410 Gone, as from upstream's cacher.
    pub watch_history: usize,
    /// How `pods/log`, `pods/exec` and `pods/attach` reach a node's streaming port; None
    /// connects directly. `rkube up` dials inside the fabric namespace, where the nodes are.
    pub node_dialer: Option<Arc<dyn Fn(SocketAddr) -> std::io::Result<std::net::TcpStream> + Send + Sync>>,
    /// More sockets to serve the same API on, already bound and listening, such as one that
    /// `rkube up` opened inside the cluster's fabric network namespace. Their addresses are
    /// not added to the certificate: list them in `sans`.
    pub extra_listeners: Vec<Arc<std::net::TcpListener>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("sans", &self.sans)
            .field("services", &self.services)
            .field("advertise_address", &self.advertise_address)
            .field("dns", &self.dns)
            .field("node_dialer", &self.node_dialer.is_some())
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Config {
        Config {
            data_dir,
            listen,
            sans: Vec::new(),
            compaction_interval: Duration::from_secs(300),
            services: ServiceConfig::default(),
            repair_interval: Duration::from_secs(60),
            advertise_address: None,
            advertise_port: None,
            dns: true,
            watch_history: crate::cache::DEFAULT_HISTORY,
            node_dialer: None,
            extra_listeners: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("certificates: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the watch cache did not become ready: the store is not answering")]
    CacheNotReady,
    #[error("store: {0}")]
    Store(#[from] rkube_store::Error),
    #[error("seeding {name}: {source}")]
    Seed { name: String, source: Box<ApiError> },
    #[error("service allocators: {0}")]
    Allocators(Box<ApiError>),
}

/// A running API server.
pub struct ApiServer {
    pub api: Arc<Api>,
    pub local_addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub pki: Arc<Pki>,
    tasks: Vec<JoinHandle<()>>,
}

impl ApiServer {
    pub async fn start(config: Config, store: Arc<dyn Store>) -> Result<ApiServer, StartError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Listen { addr: config.listen, source })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen, source })?;

        let mut sans = config.sans.clone();
        if !local_addr.ip().is_unspecified() {
            sans.push(local_addr.ip().to_string());
        }
        let pki_dir = config.data_dir.join("tls");
        let pki = Arc::new(Pki::ensure(&pki_dir, &sans)?);
        let auth = Arc::new(Authenticator::new(&pki_dir)?);
        let tokens = Arc::new(crate::serviceaccount::Signer::load_or_create(&pki_dir)?);

        let cache = WatchCache::with_history(config.watch_history);
        let mut tasks = vec![tokio::spawn(cache.clone().run(store.clone()))];
        let rev = store.current_revision().await?;
        cache.wait_fresh(rev, Duration::from_secs(30)).await.map_err(|_| StartError::CacheNotReady)?;
        let services = Allocators::new(store.clone(), config.services.clone())
            .await
            .map_err(|e| StartError::Allocators(Box::new(e)))?;
        let api = Arc::new(Api { store: store.clone(), cache, services, tokens });
        let advertise = config.advertise_address.unwrap_or_else(|| {
            if local_addr.ip().is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { local_addr.ip() }
        });
        seed(&api, advertise, config.advertise_port.unwrap_or(local_addr.port()), config.dns).await?;
        tasks.push(tokio::spawn(compactor(store, config.compaction_interval)));
        tasks.push(tokio::spawn(repair_loop(api.clone(), config.repair_interval)));

        let host = if local_addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { local_addr.ip().to_string() };
        let url = format!("https://{}", SocketAddr::new(host.parse().unwrap_or(local_addr.ip()), local_addr.port()));
        let kubeconfig = config.data_dir.join("kubeconfig");
        pki.write_kubeconfig(&kubeconfig, &url, "rkube")?;

        let nodes = Arc::new(NodeProxy::new(&pki, config.node_dialer.clone())?);
        let state = Arc::new(State { api: api.clone(), auth, server_address: local_addr.to_string(), nodes });
        for extra in &config.extra_listeners {
            let extra = adopt_listener(extra)?;
            tasks.push(tokio::spawn(accept_loop(extra, pki.server_config(), state.clone())));
        }
        tasks.push(tokio::spawn(accept_loop(listener, pki.server_config(), state)));
        Ok(ApiServer { api, local_addr, kubeconfig, pki, tasks })
    }

    /// Stops accepting; in-flight requests finish on their own tasks.
    pub fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn seed(api: &Api, advertise: std::net::IpAddr, port: u16, dns: bool) -> Result<(), StartError> {
    let find = |g: &str, r: &str| registry::find(g, "v1", r).ok_or(StartError::CacheNotReady);
    let namespaces = find("", "namespaces")?;
    for name in SEED_NAMESPACES {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        seed_one(api, namespaces, ns, name).await?;
    }
    let cidr = api.services.config.cidr;
    let first = cidr.nth(1).map(|ip| ip.to_string()).unwrap_or_default();
    let kubernetes = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": first, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    });
    seed_one(api, find("", "services")?, kubernetes, "service default/kubernetes").await?;
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": advertise.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    seed_one(api, find("", "endpoints")?, endpoints, "endpoints default/kubernetes").await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if advertise.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [advertise.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    seed_one(api, find("discovery.k8s.io", "endpointslices")?, slice, "endpointslice default/kubernetes").await?;
    if dns {
        let tenth = cidr.nth(10).map(|ip| ip.to_string()).unwrap_or_default();
        let kube_dns = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "KubeDNS"}},
            "spec": {"clusterIP": tenth, "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ]},
        });
        seed_one(api, find("", "services")?, kube_dns, "service kube-system/kube-dns").await?;
    }
    Ok(())
}

async fn seed_one(api: &Api, resource: &registry::Resource, obj: Value, name: &str) -> Result<(), StartError> {
    // Look first: creating a Service that exists would fail on its IP before its name.
    match api.read(resource, crate::meta::namespace(&obj), crate::meta::name(&obj)).await {
        Ok(_) => return Ok(()),
        Err(ApiError::NotFound(_)) => {}
        Err(source) => return Err(StartError::Seed { name: name.to_owned(), source: Box::new(source) }),
    }
    match api.create_object(resource, obj, false, Some("rkube-apiserver")).await {
        Ok(_) | Err(ApiError::AlreadyExists(_)) => Ok(()),
        Err(source) => Err(StartError::Seed { name: name.to_owned(), source: Box::new(source) }),
    }
}

/// Runs the allocation repair pass every `interval`, over the Services in the watch cache.
async fn repair_loop(api: Arc<Api>, interval: Duration) {
    let services = registry::find("", "v1", "services").map(|r| r.prefix()).unwrap_or_default();
    loop {
        tokio::time::sleep(interval).await;
        // The cache must be current, or a just-created Service could look like a leak.
        let Ok(rev) = api.store.current_revision().await else { continue };
        if api.cache.wait_fresh(rev, Duration::from_secs(5)).await.is_err() {
            continue;
        }
        let (_, all) = api.cache.list(&services, &services);
        match api.services.repair(&all).await {
            Ok(r) if r.restored + r.freed > 0 => {
                tracing::info!(restored = r.restored, freed = r.freed, "repaired service allocations")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "service allocation repair failed"),
        }
    }
}

/// Compacts the store's history every `interval`, keeping what was written since the
/// previous pass, as upstream's compactor does.
async fn compactor(store: Arc<dyn Store>, interval: Duration) {
    let mut previous = None;
    loop {
        tokio::time::sleep(interval).await;
        let Ok(rev) = store.current_revision().await else { continue };
        if let Some(prev) = previous
            && let Err(e) = store.compact(prev).await
        {
            tracing::warn!(error = %e, revision = prev, "compaction failed");
        }
        previous = Some(rev);
    }
}

/// Turns a listening socket the caller opened (possibly in another network namespace) into
/// a tokio listener. The descriptor is duplicated, so the caller's copy stays valid.
fn adopt_listener(listener: &std::net::TcpListener) -> Result<TcpListener, StartError> {
    let addr = listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let listen_error = |source| StartError::Listen { addr, source };
    let own = listener.try_clone().map_err(listen_error)?;
    own.set_nonblocking(true).map_err(listen_error)?;
    TcpListener::from_std(own).map_err(listen_error)
}

struct State {
    api: Arc<Api>,
    auth: Arc<Authenticator>,
    server_address: String,
    nodes: Arc<NodeProxy>,
}

async fn accept_loop(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<State>) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let peer_certs: Option<Vec<rustls_pki_types::CertificateDer<'static>>> =
                tls.get_ref().1.peer_certificates().map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let peer_certs = peer_certs.clone();
                async move { Ok::<_, std::convert::Infallible>(serve(&state, peer_certs.as_deref(), req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}

/// Paths anyone may read, as upstream's `system:public-info-viewer` role allows.
fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
}

async fn serve(
    state: &State,
    peer_certs: Option<&[rustls_pki_types::CertificateDer<'static>]>,
    req: Request<Incoming>,
) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let auth_header = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let mut user = state.auth.authenticate(peer_certs, auth_header);
    // Service-account tokens are JWTs checked against live objects, hence async and here.
    if user.is_none()
        && let Some(token) = auth_header.and_then(crate::auth::bearer_token)
        && crate::serviceaccount::looks_like_jwt(token)
    {
        user = crate::serviceaccount::authenticate(&state.api, &state.api.tokens, token).await;
    }
    let resp = if user.is_none() && !is_public(&path) {
        body::error_response(&ApiError::Unauthorized)
    } else {
        match dispatch(state, req).await {
            Ok(resp) => resp,
            Err(e) => body::error_response(&e),
        }
    };
    tracing::debug!(%method, %path, code = resp.status().as_u16(), elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "request");
    resp
}

async fn dispatch(state: &State, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_owned();
    let query = Query::parse(req.uri().query());
    let Some(route) = route::parse(&path) else { return Err(ApiError::NoSuchPath) };
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let get_only =
        |m: &Method| if m == Method::GET || m == Method::HEAD { Ok(()) } else { Err(ApiError::MethodNotAllowed) };
    match route {
        Route::Version => {
            get_only(req.method())?;
            Ok(body::json_response(StatusCode::OK, &version_info()))
        }
        Route::Health(_) => {
            Ok(body::bytes_response(StatusCode::OK, "text/plain; charset=utf-8", Bytes::from_static(b"ok")))
        }
        Route::Metrics => Ok(body::bytes_response(StatusCode::OK, "text/plain; version=0.0.4", metrics(&state.api))),
        Route::CoreVersions | Route::Groups => {
            get_only(req.method())?;
            let core = matches!(route, Route::CoreVersions);
            let negotiated = discovery::negotiate(accept.as_deref());
            if !negotiated.acceptable {
                return Err(ApiError::NotAcceptable);
            }
            let doc = match negotiated.aggregated {
                Some(version) => discovery::aggregated(core, version),
                None if core => discovery::api_versions(&state.server_address),
                None => discovery::api_group_list(),
            };
            let mut resp = body::bytes_response(StatusCode::OK, negotiated.content_type, Bytes::from(doc.to_string()));
            resp.headers_mut().insert(header::VARY, http::HeaderValue::from_static("Accept"));
            Ok(resp)
        }
        Route::Group(g) => {
            get_only(req.method())?;
            let doc = discovery::api_group(&g).ok_or(ApiError::NoSuchPath)?;
            Ok(body::json_response(StatusCode::OK, &doc))
        }
        Route::ResourceList { group, version } => {
            get_only(req.method())?;
            let doc = discovery::api_resource_list(&group, &version).ok_or(ApiError::NoSuchPath)?;
            Ok(body::json_response(StatusCode::OK, &doc))
        }
        Route::OpenApiV3Root => Ok(body::json_response(StatusCode::OK, &openapi::root())),
        Route::OpenApiV3 { group, version } => {
            let doc = openapi::document(&group, &version).ok_or(ApiError::NoSuchPath)?;
            let mut resp = body::bytes_response(StatusCode::OK, body::JSON, doc);
            // Documents are addressed by hash, so a client may keep them for good.
            if query.get("hash").is_some() {
                resp.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("public, immutable"));
            }
            Ok(resp)
        }
        // kubectl 1.27 and 1.28 fetch v2 before validating and give up on a 404; an empty
        // protobuf document makes them fall back to server-side validation.
        Route::OpenApiV2 => match openapi::v2(accept.as_deref()) {
            Some((content_type, doc)) => Ok(body::bytes_response(StatusCode::OK, content_type, doc)),
            None => Err(ApiError::NoSuchPath),
        },
        // Logs, exec and attach are proxied to the pod's node, upgrades and all.
        Route::Resource(route)
            if route.resource.group.is_empty()
                && route.resource.resource == "pods"
                && route.name.is_some()
                && matches!(route.subresource, Some(Subresource::Log | Subresource::Exec | Subresource::Attach)) =>
        {
            state.nodes.serve(&state.api, route, query, req).await
        }
        Route::Resource(route) => {
            let (parts, incoming) = req.into_parts();
            let body = match parts.method {
                Method::GET | Method::HEAD => Bytes::new(),
                _ => read_body(incoming).await?,
            };
            let req = handlers::Request { method: parts.method, route, query, headers: parts.headers, body };
            state.api.handle(req).await
        }
    }
}

async fn read_body(incoming: Incoming) -> Result<Bytes, ApiError> {
    match Limited::new(incoming, body::MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::RequestEntityTooLarge { limit: body::MAX_BODY_BYTES })
        }
        Err(e) => Err(ApiError::bad_request(format!("reading the request body: {e}"))),
    }
}

/// Prometheus text metrics, with upstream's names where upstream has the same figure.
fn metrics(api: &Api) -> Bytes {
    let (ips, ports) = api.services.allocated();
    let cidr = api.services.config.cidr;
    let text = format!(
        "# HELP kube_apiserver_clusterip_allocator_allocated_ips Gauge measuring the number of allocated IPs for Services\n\
         # TYPE kube_apiserver_clusterip_allocator_allocated_ips gauge\n\
         kube_apiserver_clusterip_allocator_allocated_ips{{cidr=\"{cidr}\"}} {ips}\n\
         # HELP kube_apiserver_nodeport_allocator_allocated_ports Gauge measuring the number of allocated NodePorts for Services\n\
         # TYPE kube_apiserver_nodeport_allocator_allocated_ports gauge\n\
         kube_apiserver_nodeport_allocator_allocated_ports {ports}\n\
         # HELP rkube_store_revision The newest revision the watch cache has applied.\n\
         # TYPE rkube_store_revision gauge\n\
         rkube_store_revision {}\n",
        api.cache.revision()
    );
    Bytes::from(text)
}

pub fn version_info() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": KUBE_GIT_VERSION,
        "gitCommit": "rkube",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": concat!("rkube ", env!("CARGO_PKG_VERSION")),
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}
