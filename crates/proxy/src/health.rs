//! healthCheckNodePort servers: for each Service with externalTrafficPolicy Local, an HTTP
//! server on its healthCheckNodePort that answers 200 when the node has local endpoints and
//! 503 when it has none, with kube-proxy's JSON body, so a load balancer sends traffic only
//! to nodes that can serve it without a second hop.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::model::ServiceKey;

type Shared = Arc<Mutex<(ServiceKey, usize)>>;

/// The running health servers, reconciled against the programmed Services.
pub struct HealthServers {
    bind: IpAddr,
    servers: HashMap<u16, (JoinHandle<()>, Shared)>,
}

impl HealthServers {
    pub fn new(bind: Option<IpAddr>) -> Self {
        HealthServers { bind: bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), servers: HashMap::new() }
    }

    /// Starts, updates and stops servers so that exactly the ports in `want` are served.
    pub async fn update(&mut self, want: &BTreeMap<u16, (ServiceKey, usize)>) {
        self.servers.retain(|port, (task, _)| {
            let keep = want.contains_key(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for (port, value) in want {
            if let Some((_, shared)) = self.servers.get(port) {
                *shared.lock() = value.clone();
                continue;
            }
            let addr = SocketAddr::new(self.bind, *port);
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let shared = Arc::new(Mutex::new(value.clone()));
                    let task = tokio::spawn(serve(listener, shared.clone()));
                    self.servers.insert(*port, (task, shared));
                }
                // Retried at the next sync; another process may hold the port for a while.
                Err(e) => tracing::warn!(%addr, error = %e, "healthCheckNodePort server could not bind"),
            }
        }
    }
}

impl Drop for HealthServers {
    fn drop(&mut self) {
        for (task, _) in self.servers.values() {
            task.abort();
        }
    }
}

async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let Ok((conn, _)) = listener.accept().await else { continue };
        let value = shared.clone();
        tokio::spawn(async move {
            let answer = value.lock().clone();
            // A client that sends nothing must not hold a task forever.
            let _ = tokio::time::timeout(Duration::from_secs(5), respond(conn, answer)).await;
        });
    }
}

/// The response kube-proxy's health server gives.
pub fn response(key: &ServiceKey, local: usize) -> String {
    let body = format!(
        "{{\"service\":{{\"namespace\":\"{}\",\"name\":\"{}\"}},\"localEndpoints\":{local},\"serviceProxyHealthy\":true}}\n",
        key.namespace, key.name
    );
    let status = if local > 0 { "200 OK" } else { "503 Service Unavailable" };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nX-Load-Balancing-Endpoint-Weight: {local}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn respond(mut conn: TcpStream, (key, local): (ServiceKey, usize)) {
    let mut buf = vec![0u8; 4096];
    let mut read = 0;
    while read < buf.len() {
        match conn.read(&mut buf[read..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let _ = conn.write_all(response(&key, local).as_bytes()).await;
    let _ = conn.shutdown().await;
}
