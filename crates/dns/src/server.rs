//! The transports: one blocking thread per UDP socket (a tight recv, answer, send loop
//! with one reused buffer), a tokio task per TCP connection, and the upstream forwarder
//! with its cache (positive and negative) on the tokio runtime.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::DnsError;
use crate::answer::{self, Context, Outcome, Transport};
use crate::metrics::Metrics;
use crate::snapshot::{Reader, SnapshotCell};
use crate::wire;

/// How long a UDP thread blocks before it looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
const TCP_IDLE: Duration = Duration::from_secs(10);
const CACHE_ENTRIES: usize = 10_000;
const CACHE_MAX_TTL: u32 = 3600;
/// Negative answers from upstream are kept at most this long (RFC 2308 suggests 1-3 hours
/// as a ceiling; names appear in clusters more often than on the Internet).
const NEGATIVE_MAX_TTL: u32 = 300;

/// What the transports share.
pub(crate) struct Shared {
    pub cell: Arc<SnapshotCell>,
    pub metrics: Arc<Metrics>,
    pub upstream: Vec<SocketAddr>,
    pub ttl: u32,
    cache: Mutex<HashMap<Vec<u8>, CacheEntry>>,
    runtime: tokio::runtime::Handle,
}

struct CacheEntry {
    expires: Instant,
    response: Vec<u8>,
}

/// A running server: its sockets are open and answering until it is dropped.
pub struct DnsServer {
    local: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DnsServer {
    /// Opens UDP and TCP on every address of `listen` (port 0 picks one port for both) and
    /// answers from `cell`. The sockets are created on the calling thread, so a caller that
    /// entered a network namespace gets sockets there. Needs a tokio runtime.
    pub fn start(
        listen: &[SocketAddr],
        upstream: Vec<SocketAddr>,
        ttl: u32,
        cell: Arc<SnapshotCell>,
        metrics: Arc<Metrics>,
    ) -> Result<DnsServer, DnsError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| DnsError::NoRuntime)?;
        let shared = Arc::new(Shared { cell, metrics, upstream, ttl, cache: Mutex::new(HashMap::new()), runtime });
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = DnsServer { local: Vec::new(), stop: stop.clone(), tasks: Vec::new() };
        for addr in listen {
            let (udp, tcp) = bind_pair(*addr)?;
            let local = udp.local_addr()?;
            server.local.push(local);
            let udp = Arc::new(udp);
            let (s, st) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("dns-udp-{local}"))
                .spawn(move || udp_loop(&udp, &s, &st))
                .map_err(DnsError::Io)?;
            tcp.set_nonblocking(true)?;
            let tcp = {
                let _guard = shared.runtime.enter();
                TcpListener::from_std(tcp)?
            };
            server.tasks.push(shared.runtime.spawn(tcp_loop(tcp, shared.clone())));
            tracing::info!(%local, "cluster DNS listening on UDP and TCP");
        }
        Ok(server)
    }

    /// The bound addresses, one per `listen` entry, with the ports chosen.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local
    }
}

/// Binds UDP and TCP on the same address; with port 0, retries until a port is free for both.
fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, StdTcpListener), DnsError> {
    let bind_err = |source| DnsError::Bind { addr, source };
    for _ in 0..20 {
        let udp = udp_socket(addr).map_err(bind_err)?;
        let port = udp.local_addr().map_err(bind_err)?.port();
        match StdTcpListener::bind(SocketAddr::new(addr.ip(), port)) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(bind_err(e)),
        }
    }
    Err(bind_err(io::Error::new(io::ErrorKind::AddrInUse, "no port free for both UDP and TCP")))
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // A large receive buffer absorbs bursts (a node's pods starting at once) instead of
    // dropping them; the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.bind(&addr.into())?;
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(STOP_POLL))?;
    Ok(s)
}

/// How many datagrams one system call receives or sends at most.
const BATCH: usize = 32;

/// The UDP hot path: `recvmmsg` takes whatever is queued (up to `BATCH`, returning as soon
/// as one is there), each query is answered into its own reused buffer, and `sendmmsg`
/// sends all the answers at once. Under load this is two system calls per batch instead
/// of two per query; at low load it behaves like recv/send.
fn udp_loop(sock: &Arc<UdpSocket>, shared: &Arc<Shared>, stop: &AtomicBool) {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
    use std::io::{IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;

    let fd = sock.as_raw_fd();
    let mut reader = Reader::new(shared.cell.clone());
    // One byte more than the largest query we take, so that a longer datagram is seen as
    // too long (and answered FORMERR) rather than silently cut to a valid prefix.
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; wire::MAX_QUERY + 1]).collect();
    let mut outs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1500)).collect();
    let mut rx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut tx = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut received: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
    let mut replies: Vec<usize> = Vec::with_capacity(BATCH);
    let mut dests: Vec<Option<SockaddrStorage>> = Vec::with_capacity(BATCH);
    while !stop.load(Ordering::Relaxed) {
        received.clear();
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
            match recvmmsg(fd, &mut rx, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(results) => received.extend(results.map(|r| (r.bytes, r.address))),
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "dns udp receive failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }
        let started = Instant::now();
        replies.clear();
        dests.clear();
        for (i, (n, from)) in received.iter().enumerate() {
            let Some(src) = from.as_ref().and_then(to_socket_addr) else { continue };
            let msg = &bufs[i][..(*n).min(wire::MAX_QUERY + 1)];
            let ctx = Context { transport: Transport::Udp, client: Some(src.ip()) };
            let out = &mut outs[i];
            match answer::answer_into(msg, reader.get(), ctx, out) {
                Outcome::Reply(a) => {
                    replies.push(i);
                    dests.push(*from);
                    shared.metrics.answered(a, started.elapsed());
                }
                Outcome::Drop => shared.metrics.dropped(),
                Outcome::Forward { qtype } => {
                    if let Some(resp) = shared.cached(msg, ctx) {
                        *out = resp;
                        replies.push(i);
                        dests.push(*from);
                        shared.metrics.answered(answered_from(out, qtype), started.elapsed());
                        continue;
                    }
                    let (msg, s, sock) = (msg.to_vec(), shared.clone(), sock.clone());
                    shared.runtime.spawn(async move {
                        let resp = s.forward(&msg, ctx).await;
                        let _ = sock.send_to(&resp, src);
                        s.metrics.answered(answered_from(&resp, qtype), started.elapsed());
                    });
                }
                Outcome::Autopath { qtype, target } => {
                    let (msg, s, sock, fallback) = (msg.to_vec(), shared.clone(), sock.clone(), out.clone());
                    shared.runtime.spawn(async move {
                        let resp = s.autopath(&msg, qtype, &target, fallback, ctx).await;
                        let _ = sock.send_to(&resp, src);
                        s.metrics.answered(answered_from(&resp, qtype), started.elapsed());
                    });
                }
            }
        }
        if replies.is_empty() {
            continue;
        }
        let slices: Vec<[IoSlice<'_>; 1]> = replies.iter().map(|&i| [IoSlice::new(&outs[i])]).collect();
        let sent = match sendmmsg(fd, &mut tx, slices.iter(), &dests, [], MsgFlags::empty()) {
            Ok(results) => results.count(),
            Err(e) => {
                tracing::debug!(error = %e, "dns udp send failed");
                0
            }
        };
        // sendmmsg stops at the first message it cannot send; the rest go one by one (a
        // failure there loses an answer the client will retry).
        for (&i, dest) in replies.iter().zip(&dests).skip(sent) {
            if let Some(addr) = dest.as_ref().and_then(to_socket_addr) {
                let _ = sock.send_to(&outs[i], addr);
            }
        }
    }
}

fn to_socket_addr(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

async fn tcp_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Bounds the connections a flood can hold open.
    let permits = Arc::new(tokio::sync::Semaphore::new(1024));
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else { continue };
        let s = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp_conn(stream, peer, s).await;
        });
    }
}

async fn tcp_conn(mut stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut reader = Reader::new(shared.cell.clone());
    let mut out = Vec::with_capacity(4096);
    let ctx = Context { transport: Transport::Tcp, client: Some(peer.ip()) };
    loop {
        let Ok(len) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else { return Ok(()) };
        let len = usize::from(len?);
        let mut msg = vec![0u8; len];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg)).await.map_err(|_| io::ErrorKind::TimedOut)??;
        let started = Instant::now();
        let outcome = answer::answer_into(&msg, reader.get(), ctx, &mut out);
        let resp = match outcome {
            Outcome::Reply(a) => {
                shared.metrics.answered(a, started.elapsed());
                std::mem::take(&mut out)
            }
            Outcome::Drop => {
                shared.metrics.dropped();
                return Ok(());
            }
            Outcome::Forward { qtype } => {
                let r = shared.forward(&msg, ctx).await;
                shared.metrics.answered(answered_from(&r, qtype), started.elapsed());
                r
            }
            Outcome::Autopath { qtype, target } => {
                let r = shared.autopath(&msg, qtype, &target, std::mem::take(&mut out), ctx).await;
                shared.metrics.answered(answered_from(&r, qtype), started.elapsed());
                r
            }
        };
        let mut framed = Vec::with_capacity(resp.len() + 2);
        framed.extend_from_slice(&(resp.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
        framed.extend_from_slice(&resp);
        stream.write_all(&framed).await?;
        out = resp;
    }
}

fn answered_from(resp: &[u8], qtype: u16) -> answer::Answered {
    let rcode = resp.get(3).map_or(2, |b| b & 0xf);
    let an = resp.get(6..8).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    answer::Answered { qtype, rcode, nodata: rcode == 0 && an == 0 }
}

/// The cache key of a query: its lower-cased name, type and class.
fn cache_key(msg: &[u8]) -> Option<(Vec<u8>, wire::Query)> {
    let q = wire::parse_query(msg).ok()?;
    let mut key = q.name().to_vec();
    key.extend_from_slice(&q.qtype.to_be_bytes());
    key.extend_from_slice(&q.qclass.to_be_bytes());
    Some((key, q))
}

impl Shared {
    /// A cached upstream answer to `msg`, with the query's ID and question (case kept).
    fn cached(&self, msg: &[u8], ctx: Context) -> Option<Vec<u8>> {
        let (key, q) = cache_key(msg)?;
        let mut resp = {
            let cache = self.cache.lock();
            let e = cache.get(&key)?;
            if e.expires <= Instant::now() {
                return None;
            }
            e.response.clone()
        };
        self.metrics.cache(true);
        resp.get_mut(0..2)?.copy_from_slice(&q.id.to_be_bytes());
        let question = msg.get(wire::HEADER_LEN..q.question_end)?;
        if let Some(dst) = resp.get_mut(wire::HEADER_LEN..q.question_end) {
            dst.copy_from_slice(question);
        }
        answer::fit_upstream(msg, &mut resp, ctx);
        Some(resp)
    }

    fn remember(&self, msg: &[u8], resp: &[u8]) {
        let Some((key, _)) = cache_key(msg) else { return };
        let Some(ttl) = cache_ttl(resp) else { return };
        if ttl == 0 {
            return;
        }
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, e| e.expires > now);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        let expires = Instant::now() + Duration::from_secs(u64::from(ttl));
        cache.insert(key, CacheEntry { expires, response: resp.to_vec() });
    }

    /// Answers `msg` from upstream (or the cache), SERVFAIL when no upstream answers.
    pub async fn forward(&self, msg: &[u8], ctx: Context) -> Vec<u8> {
        if let Some(r) = self.cached(msg, ctx) {
            return r;
        }
        self.metrics.cache(false);
        self.metrics.forwarded();
        match exchange(&self.upstream, msg, ctx.transport).await {
            Some(mut resp) => {
                self.remember(msg, &resp);
                answer::fit_upstream(msg, &mut resp, ctx);
                resp
            }
            None => {
                let mut out = Vec::new();
                answer::servfail(msg, ctx, &mut out);
                out
            }
        }
    }

    /// The outside step of autopath: resolves `target` upstream; when it has records of
    /// the type, answers with a CNAME to it, otherwise with `fallback` (the NXDOMAIN).
    pub async fn autopath(&self, msg: &[u8], qtype: u16, target: &[u8], fallback: Vec<u8>, ctx: Context) -> Vec<u8> {
        let mut query = Vec::with_capacity(target.len() + 16);
        query.extend_from_slice(&[0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        query.extend_from_slice(target);
        query.extend_from_slice(&qtype.to_be_bytes());
        query.extend_from_slice(&wire::CLASS_IN.to_be_bytes());
        let tcp = Context { transport: Transport::Tcp, client: None };
        let resp = self.forward(&query, tcp).await;
        let Some((0, records)) = answer::read_answers(&resp) else { return fallback };
        if !records.iter().any(|r| r.rtype == qtype) {
            return fallback;
        }
        let mut out = Vec::new();
        if answer::autopath_reply(msg, target, &records, self.ttl, ctx, true, &mut out) {
            self.metrics.autopath();
            // An upstream answer too large for the client's UDP limit comes back truncated,
            // which sends the client to TCP; that is still one round trip less.
            out
        } else {
            fallback
        }
    }
}

/// How long an upstream answer may be cached: the smallest TTL of its answers, or for a
/// negative answer the SOA's negative TTL (RFC 2308 §5). None for answers not to cache.
fn cache_ttl(resp: &[u8]) -> Option<u32> {
    let rcode = resp.get(3)? & 0xf;
    if rcode != 0 && rcode != 3 {
        return None;
    }
    let count = |at: usize| resp.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (qd, an, ns) = (count(4)?, count(6)?, count(8)?);
    let mut pos = wire::HEADER_LEN;
    for _ in 0..qd {
        pos = wire::skip_name(resp, pos)? + 4;
    }
    let mut min_ttl: Option<u32> = None;
    let mut negative_ttl = None;
    for i in 0..(an + ns) {
        pos = wire::skip_name(resp, pos)?;
        let head = resp.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([head[0], head[1]]);
        let ttl = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let rdlen = usize::from(u16::from_be_bytes([head[8], head[9]]));
        let rdata = resp.get(pos + 10..pos + 10 + rdlen)?;
        pos += 10 + rdlen;
        if i < an {
            min_ttl = Some(min_ttl.map_or(ttl, |m| m.min(ttl)));
        } else if rtype == wire::TYPE_SOA && rdlen >= 4 {
            let minimum = u32::from_be_bytes([rdata[rdlen - 4], rdata[rdlen - 3], rdata[rdlen - 2], rdata[rdlen - 1]]);
            negative_ttl = Some(ttl.min(minimum));
        }
    }
    if rcode == 0 && an > 0 {
        return min_ttl.map(|t| t.min(CACHE_MAX_TTL));
    }
    negative_ttl.map(|t| t.min(NEGATIVE_MAX_TTL))
}

fn random_id() -> u16 {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() as u16
}

/// Sends `msg` to each upstream in turn, with a fresh random ID, until one answers; falls
/// back to TCP when the UDP answer is truncated and the client came over TCP.
async fn exchange(upstream: &[SocketAddr], msg: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let client_id = wire::message_id(msg)?;
    let mut query = msg.to_vec();
    let id = random_id();
    query.get_mut(0..2)?.copy_from_slice(&id.to_be_bytes());
    for server in upstream {
        let Ok(Some(mut resp)) = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange_udp(*server, &query, id)).await else {
            continue;
        };
        if transport == Transport::Tcp
            && resp.get(2).is_some_and(|b| b & 0x02 != 0)
            && let Ok(Some(r)) = tokio::time::timeout(UPSTREAM_TIMEOUT, exchange_tcp(*server, &query)).await
        {
            resp = r;
        }
        resp.get_mut(0..2)?.copy_from_slice(&client_id.to_be_bytes());
        return Some(resp);
    }
    None
}

async fn exchange_udp(server: SocketAddr, query: &[u8], id: u16) -> Option<Vec<u8>> {
    let local: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
    let question_end = wire::parse_query(query).ok()?.question_end;
    let sock = tokio::net::UdpSocket::bind(local).await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await.ok()?;
        let resp = &buf[..n];
        // Only the answer to our ID and our question; anything else is spoofing or stale.
        if n >= wire::HEADER_LEN
            && wire::message_id(resp) == Some(id)
            && resp[2] & 0x80 != 0
            && resp.get(wire::HEADER_LEN..question_end) == query.get(wire::HEADER_LEN..question_end)
        {
            return Some(resp.to_vec());
        }
    }
}

async fn exchange_tcp(server: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(server).await.ok()?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).await.ok()?;
    let len = usize::from(s.read_u16().await.ok()?);
    let mut resp = vec![0u8; len];
    s.read_exact(&mut resp).await.ok()?;
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_answers_are_cached_for_the_soa_minimum() {
        // NXDOMAIN, one question, one SOA in authority with TTL 900 and minimum 60.
        let mut m = vec![0, 1, 0x81, 0x83, 0, 1, 0, 0, 0, 1, 0, 0];
        m.extend(wire::encode_name("nope.example").expect("name"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        m.extend(wire::encode_name("example").expect("name"));
        let rdata = wire::rdata_soa(&[0], &[0], 1, 60);
        m.extend_from_slice(&[0, 6, 0, 1, 0, 0, 0x03, 0x84]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend(rdata);
        assert_eq!(cache_ttl(&m), Some(60));
        m[3] = 0x82;
        assert_eq!(cache_ttl(&m), None, "SERVFAIL is never cached");
    }
}
