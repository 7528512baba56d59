//! exec and attach over SPDY/3.1, the transport kubectl used before it spoke WebSocket
//! (kubectl 1.27 and 1.28 know nothing else; 1.29 uses it by default). The framing is SPDY/3 (draft 3.1) as Go's
//! `moby/spdystream` speaks it; the streams on top are those of the kubelet's
//! `cri/streaming/remotecommand` in protocol `v4.channel.k8s.io`.
//!
//! The client upgrades with `Upgrade: SPDY/3.1` and offers protocols in
//! `X-Stream-Protocol-Version`; we answer 101 with the one we speak. The client then opens
//! one SPDY stream per channel (a SYN_STREAM whose `streamtype` header is `error`, `stdin`,
//! `stdout`, `stderr` or `resize`) and waits for our SYN_REPLY to each. Once all the
//! streams the query asked for exist, the process starts: its output goes out as data
//! frames, and each output stream is half-closed (FLAG_FIN) at its end, which is what the
//! client waits for before it reads the error stream. That stream carries the v4 status
//! (`Success`, or `NonZeroExitCode` with an `ExitCode` cause) and a FIN. Stdin arrives as
//! data on the stdin stream, its FIN is end of input; the resize stream carries
//! `{"Width":…,"Height":…}` objects one after another.
//!
//! Header blocks are zlib streams (one per direction for the whole connection, flushed with
//! SYNC_FLUSH after each frame) with the SPDY/3 preset dictionary. spdystream does no flow
//! control, so neither do we: WINDOW_UPDATE and SETTINGS are read and ignored.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::ws::{Options, Outcome, V4, options, session_end, start};
use super::{Body, Query, StreamError, StreamServer};
use crate::runtime::{BoxRead, BoxWrite, TerminalResize};

/// The protocol header of the kubelet's SPDY handshake.
pub const PROTOCOL_HEADER: &str = "x-stream-protocol-version";

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// RST_STREAM status REFUSED_STREAM, for streams we do not know.
const REFUSED_STREAM: u32 = 3;

/// Frame lengths are 24 bits; a decompressed header block larger than this is hostile.
const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// How long the client may take to open the streams it asked for (the kubelet's
/// stream creation timeout).
const STREAM_CREATION: Duration = Duration::from_secs(30);
/// How long to wait for the client to hang up once everything is said.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Header names of the SPDY/3 compression dictionary, each preceded by its 32-bit length.
const DICTIONARY_WORDS: &[&str] = &[
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];
/// The dictionary's tail: status codes and common values, without length prefixes.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

fn dictionary() -> &'static [u8] {
    static DICT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

/// What can go wrong on a SPDY connection; all of them end the session.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("reading the SPDY connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("header block: {0}")]
    Compression(String),
}

/// A frame from the client, as far as this server cares.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    SynStream {
        id: u32,
        headers: Vec<(String, String)>,
        fin: bool,
    },
    Data {
        id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    RstStream {
        id: u32,
    },
    Ping(u32),
    GoAway,
    /// SETTINGS, WINDOW_UPDATE, HEADERS, NOOP and the like.
    Ignored,
}

/// The header-block decompressor: one zlib stream for the connection's whole life.
struct Inflater {
    z: Decompress,
}

impl Inflater {
    fn new() -> Inflater {
        Inflater { z: Decompress::new(true) }
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 256);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(4096);
            }
            let (in_before, out_before) = (self.z.total_in(), out.len());
            let result = self.z.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync);
            pos += (self.z.total_in() - in_before) as usize;
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(dictionary()).map_err(|e| SpdyError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            if out.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::Compression("header block too large".into()));
            }
            let progressed = self.z.total_in() > in_before || out.len() > out_before;
            if pos >= input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progressed {
                return Err(SpdyError::Compression("truncated header block".into()));
            }
        }
    }
}

/// The header-block compressor of our direction.
struct Deflater {
    z: Compress,
}

impl Deflater {
    fn new() -> Deflater {
        let mut z = Compress::new(Compression::default(), true);
        // Without the dictionary the block is still valid zlib (Go's reader takes either),
        // so a failure here only costs a few bytes.
        let _ = z.set_dictionary(dictionary());
        Deflater { z }
    }

    fn deflate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut pos = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.z.total_in();
            if self.z.compress_vec(&input[pos..], &mut out, FlushCompress::Sync).is_err() {
                return out;
            }
            pos += (self.z.total_in() - before) as usize;
            if pos >= input.len() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

/// The uncompressed name/value block: a count, then length-prefixed names and values.
fn encode_headers(headers: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        b.extend_from_slice(&(name.len() as u32).to_be_bytes());
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&(value.len() as u32).to_be_bytes());
        b.extend_from_slice(value.as_bytes());
    }
    b
}

fn decode_headers(block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let bad = || SpdyError::Malformed("header block of a");
    let mut rest = block;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        if rest.len() < n {
            return Err(bad());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let count = u32_at(take(4)?, 0);
    let mut headers = Vec::new();
    for _ in 0..count {
        let n = u32_at(take(4)?, 0) as usize;
        let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
        let n = u32_at(take(4)?, 0) as usize;
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Reads frames off the client's half of the connection.
struct FrameReader<R> {
    io: R,
    inflater: Inflater,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The next frame, or None at end of connection.
    async fn next(&mut self) -> Result<Option<Frame>, SpdyError> {
        let mut head = [0u8; 8];
        match self.io.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let mut body = vec![0u8; len];
        self.io.read_exact(&mut body).await?;
        if head[0] & 0x80 == 0 {
            let id = u32_at(&head, 0) & 0x7fff_ffff;
            return Ok(Some(Frame::Data { id, fin: flags & FLAG_FIN != 0, data: body }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        Ok(Some(match kind {
            SYN_STREAM => {
                if body.len() < 10 {
                    return Err(SpdyError::Malformed("SYN_STREAM"));
                }
                let id = u32_at(&body, 0) & 0x7fff_ffff;
                let block = self.inflater.inflate(&body[10..])?;
                Frame::SynStream { id, headers: decode_headers(&block)?, fin: flags & FLAG_FIN != 0 }
            }
            RST_STREAM => {
                if body.len() < 8 {
                    return Err(SpdyError::Malformed("RST_STREAM"));
                }
                Frame::RstStream { id: u32_at(&body, 0) & 0x7fff_ffff }
            }
            PING => {
                if body.len() < 4 {
                    return Err(SpdyError::Malformed("PING"));
                }
                Frame::Ping(u32_at(&body, 0))
            }
            GOAWAY => Frame::GoAway,
            // HEADERS and SYN_REPLY carry header blocks too: they must pass through the
            // decompressor, or the shared zlib stream would lose its place.
            2 | 8 => {
                if body.len() >= 4 {
                    self.inflater.inflate(&body[4..])?;
                }
                Frame::Ignored
            }
            _ => Frame::Ignored,
        }))
    }
}

/// What the writer task sends; it owns the header compressor, so replies go out in order.
#[derive(Debug)]
enum Out {
    SynReply(u32),
    Data { id: u32, data: Bytes, fin: bool },
    Rst(u32),
    Ping(u32),
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + body.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.push(flags);
    f.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(body);
    f
}

fn data_frame(id: u32, fin: bool, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + data.len());
    f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
    f.push(if fin { FLAG_FIN } else { 0 });
    f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
    f.extend_from_slice(data);
    f
}

impl Out {
    fn encode(&self, deflater: &mut Deflater) -> Vec<u8> {
        match self {
            Out::SynReply(id) => {
                let mut body = id.to_be_bytes().to_vec();
                body.extend_from_slice(&deflater.deflate(&encode_headers(&[])));
                control(SYN_REPLY, 0, &body)
            }
            Out::Data { id, data, fin } => {
                // Our chunks are far below the 24-bit limit; split anyway.
                let mut out = Vec::new();
                let mut chunks = data.chunks(0xff_ffff).peekable();
                if chunks.peek().is_none() {
                    return data_frame(*id, *fin, &[]);
                }
                while let Some(c) = chunks.next() {
                    out.extend_from_slice(&data_frame(*id, *fin && chunks.peek().is_none(), c));
                }
                out
            }
            Out::Rst(id) => {
                let mut body = id.to_be_bytes().to_vec();
                body.extend_from_slice(&REFUSED_STREAM.to_be_bytes());
                control(RST_STREAM, 0, &body)
            }
            Out::Ping(id) => control(PING, 0, &id.to_be_bytes()),
        }
    }
}

/// The protocol to speak: v4, the only SPDY protocol we serve, if the client offers it.
fn negotiate(headers: &HeaderMap) -> Result<&'static str, String> {
    let offered: Vec<String> = headers
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.iter().any(|p| p == V4) {
        return Ok(V4);
    }
    Err(format!("requested protocol(s) are not supported: {offered:?}; supports [{V4:?}] over SPDY"))
}

/// True when the request asks for the SPDY/3.1 upgrade.
pub(super) fn wants_spdy(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("SPDY/3.1"))
}

pub(super) async fn handle(
    server: &StreamServer,
    mut req: Request<Incoming>,
    exec: bool,
    ns: &str,
    pod: &str,
    container: &str,
    query: &Query,
) -> Result<Response<Body>, StreamError> {
    let opts = options(query, exec)?;
    let protocol = match negotiate(req.headers()) {
        Ok(p) => p,
        Err(message) => return Ok(super::text(StatusCode::FORBIDDEN, message)),
    };
    let target = server.containers.find(ns, pod, Some(container), false).await?;
    if !target.running {
        return Err(StreamError::BadRequest(format!("container {container:?} in pod {pod:?} is not running")));
    }
    let runtime = server.runtime.clone();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let id = target.container_id.clone();
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "streaming server: SPDY upgrade failed");
                return;
            }
        };
        if let Err(e) = run(TokioIo::new(upgraded), runtime, id, exec, opts).await {
            tracing::debug!(error = %e, "streaming server: SPDY session ended with an error");
        }
    });
    let mut resp = Response::new(Empty::<Bytes>::new().map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    Ok(resp)
}

/// The ids of the client's streams, by type.
#[derive(Default, Debug)]
struct StreamIds {
    error: Option<u32>,
    stdin: Option<u32>,
    stdout: Option<u32>,
    stderr: Option<u32>,
    resize: Option<u32>,
}

impl StreamIds {
    fn complete(&self, o: &Options) -> bool {
        self.error.is_some()
            && (!o.stdin || self.stdin.is_some())
            && (!o.stdout || self.stdout.is_some())
            && (!o.stderr || self.stderr.is_some())
            && (!o.tty || self.resize.is_some())
    }

    /// Records a new stream; false for a type we do not know.
    fn add(&mut self, id: u32, headers: &[(String, String)]) -> bool {
        let kind = headers.iter().find(|(k, _)| k == "streamtype").map(|(_, v)| v.as_str());
        let slot = match kind {
            Some("error") => &mut self.error,
            Some("stdin") => &mut self.stdin,
            Some("stdout") => &mut self.stdout,
            Some("stderr") => &mut self.stderr,
            Some("resize") => &mut self.resize,
            _ => return false,
        };
        *slot = Some(id);
        true
    }
}

/// Client input that arrived before the process existed.
#[derive(Default)]
struct Early {
    stdin: Vec<u8>,
    stdin_closed: bool,
    resize: Vec<u8>,
}

async fn run<S>(
    io: S,
    runtime: Arc<dyn crate::runtime::ContainerRuntime>,
    id: String,
    exec: bool,
    opts: Options,
) -> Result<(), SpdyError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(io);
    let mut reader = FrameReader { io: rd, inflater: Inflater::new() };
    let (tx, mut rx) = mpsc::channel::<Out>(64);
    let writer = tokio::spawn(async move {
        let mut deflater = Deflater::new();
        while let Some(out) = rx.recv().await {
            if wr.write_all(&out.encode(&mut deflater)).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    // Wait for the streams the request asked for, answering each.
    let mut ids = StreamIds::default();
    let mut early = Early::default();
    let handshake = async {
        while !ids.complete(&opts) {
            let Some(frame) = reader.next().await? else { return Ok(false) };
            match frame {
                Frame::SynStream { id, headers, .. } => {
                    let known = ids.add(id, &headers);
                    let _ = tx.send(if known { Out::SynReply(id) } else { Out::Rst(id) }).await;
                }
                Frame::Ping(p) => {
                    let _ = tx.send(Out::Ping(p)).await;
                }
                Frame::Data { id, fin, data } => {
                    if Some(id) == ids.stdin {
                        early.stdin.extend_from_slice(&data);
                        early.stdin_closed |= fin;
                    } else if Some(id) == ids.resize {
                        early.resize.extend_from_slice(&data);
                    }
                }
                Frame::RstStream { id } if Some(id) == ids.stdin => early.stdin_closed = true,
                Frame::GoAway => return Ok(false),
                _ => {}
            }
        }
        Ok::<bool, SpdyError>(true)
    };
    let ready = match tokio::time::timeout(STREAM_CREATION, handshake).await {
        Ok(r) => r?,
        Err(_) => false,
    };
    if !ready {
        drop(tx);
        let _ = writer.await;
        return Ok(());
    }

    let started = start(&runtime, &id, exec, &opts).await;
    let outcome = match started {
        Err(e) => Outcome::Internal(e.to_string()),
        Ok(streams) => {
            let mut copies = Vec::new();
            if let Some(out) = streams.stdout {
                copies.push(tokio::spawn(copy_out(out, ids.stdout.filter(|_| opts.stdout), tx.clone())));
            }
            if let Some(err) = streams.stderr {
                copies.push(tokio::spawn(copy_out(err, ids.stderr.filter(|_| opts.stderr), tx.clone())));
            }
            let client = Client { stdin: ids.stdin, resize: ids.resize, tx: tx.clone() };
            let mut from_client =
                tokio::spawn(client.read(reader, streams.stdin.filter(|_| opts.stdin), streams.terminal, early));
            let outcome = session_end(streams.exit, &mut copies, &mut from_client).await;
            for c in &copies {
                c.abort();
            }
            if from_client.is_finished() {
                // The client is gone: say nothing more.
                drop(tx);
                let _ = writer.await;
                return Ok(());
            }
            finish(&tx, &ids, &opts.command, outcome).await;
            drop(tx);
            let _ = writer.await;
            // The client hangs up once it has read the status.
            let _ = tokio::time::timeout(CLOSE_WAIT, &mut from_client).await;
            from_client.abort();
            return Ok(());
        }
    };
    finish(&tx, &ids, &opts.command, outcome).await;
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// Half-closes the output streams (the client waits for their end), then writes the status
/// on the error stream and closes it.
async fn finish(tx: &mpsc::Sender<Out>, ids: &StreamIds, command: &[String], outcome: Outcome) {
    for id in [ids.stdout, ids.stderr].into_iter().flatten() {
        let _ = tx.send(Out::Data { id, data: Bytes::new(), fin: true }).await;
    }
    let Some(error) = ids.error else { return };
    let _ = tx.send(Out::Data { id: error, data: Bytes::from(status(command, &outcome)), fin: true }).await;
}

/// The v4 error-stream payload, a `metav1.Status`.
fn status(command: &[String], outcome: &Outcome) -> Vec<u8> {
    let status = match outcome {
        Outcome::Success => json!({"metadata": {}, "status": "Success"}),
        Outcome::ExitCode(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Internal(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }),
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

/// Copies one output to its stream until EOF; without a stream the output is still read,
/// so the process never blocks on a full pipe.
async fn copy_out(mut from: BoxRead, stream: Option<u32>, tx: mpsc::Sender<Out>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Some(id) = stream else { continue };
        if tx.send(Out::Data { id, data: Bytes::copy_from_slice(&buf[..n]), fin: false }).await.is_err() {
            return;
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Size {
    width: u16,
    height: u16,
}

/// Applies every complete size object in `buf` and keeps the incomplete rest.
fn apply_resizes(buf: &mut Vec<u8>, terminal: Option<&Arc<dyn TerminalResize>>) {
    let mut sizes = serde_json::Deserializer::from_slice(buf).into_iter::<Size>();
    let mut used = 0;
    loop {
        match sizes.next() {
            Some(Ok(size)) => {
                used = sizes.byte_offset();
                if let Some(t) = terminal {
                    let _ = t.resize(size.width, size.height);
                }
            }
            Some(Err(e)) if e.is_eof() => break,
            // Garbage: drop what we have rather than stall on it forever.
            Some(Err(_)) => {
                used = buf.len();
                break;
            }
            None => {
                used = buf.len();
                break;
            }
        }
    }
    buf.drain(..used);
}

/// The client's side once the process runs.
struct Client {
    stdin: Option<u32>,
    resize: Option<u32>,
    tx: mpsc::Sender<Out>,
}

impl Client {
    /// Reads frames until the client hangs up: stdin data (its FIN is end of input),
    /// resizes, pings. Dropping the stdin writer gives the process end-of-file.
    async fn read<R: AsyncRead + Unpin>(
        self,
        mut reader: FrameReader<R>,
        mut stdin: Option<BoxWrite>,
        terminal: Option<Arc<dyn TerminalResize>>,
        mut early: Early,
    ) {
        if !early.stdin.is_empty()
            && let Some(w) = stdin.as_mut()
            && (w.write_all(&early.stdin).await.is_err() || w.flush().await.is_err())
        {
            stdin = None;
        }
        if early.stdin_closed
            && let Some(mut w) = stdin.take()
        {
            let _ = w.shutdown().await;
        }
        apply_resizes(&mut early.resize, terminal.as_ref());
        let mut sizes = early.resize;
        let mut extra: HashSet<u32> = HashSet::new();
        while let Ok(Some(frame)) = reader.next().await {
            match frame {
                Frame::Data { id, fin, data } if Some(id) == self.stdin => {
                    if let Some(w) = stdin.as_mut()
                        && (w.write_all(&data).await.is_err() || w.flush().await.is_err())
                    {
                        stdin = None;
                    }
                    if fin && let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                Frame::Data { id, data, .. } if Some(id) == self.resize => {
                    sizes.extend_from_slice(&data);
                    apply_resizes(&mut sizes, terminal.as_ref());
                }
                Frame::RstStream { id } if Some(id) == self.stdin => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                // A stream after the handshake has no meaning in v4: refuse it, once.
                Frame::SynStream { id, .. } if extra.insert(id) => {
                    let _ = self.tx.send(Out::Rst(id)).await;
                }
                Frame::Ping(p) => {
                    let _ = self.tx.send(Out::Ping(p)).await;
                }
                Frame::GoAway => break,
                _ => {}
            }
        }
        if let Some(mut w) = stdin.take() {
            let _ = w.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        // The Adler-32 of the SPDY/3 dictionary, the id zlib streams name it by.
        let (mut a, mut b) = (1u32, 0u32);
        for &x in d {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn header_blocks_round_trip_through_the_shared_zlib_streams() {
        let mut deflater = Deflater::new();
        let mut inflater = Inflater::new();
        for kind in ["error", "stdin", "stdout"] {
            let block = deflater.deflate(&encode_headers(&[("streamtype", kind), ("Port", "80")]));
            let headers = decode_headers(&inflater.inflate(&block).expect("inflate")).expect("decode");
            assert_eq!(headers, vec![("streamtype".into(), kind.into()), ("port".into(), "80".into())]);
        }
    }

    #[tokio::test]
    async fn frames_parse_and_bad_ones_are_errors() {
        let mut deflater = Deflater::new();
        let mut syn = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        syn.extend_from_slice(&deflater.deflate(&encode_headers(&[("streamtype", "stdin")])));
        let mut wire = control(SYN_STREAM, 0, &syn);
        wire.extend_from_slice(&data_frame(1, true, b"hi"));
        wire.extend_from_slice(&control(PING, 0, &7u32.to_be_bytes()));
        wire.extend_from_slice(&control(9, 0, &[0, 0, 0, 1, 0, 0, 1, 0]));
        let mut r = FrameReader { io: wire.as_slice(), inflater: Inflater::new() };
        let headers = vec![("streamtype".to_string(), "stdin".to_string())];
        assert_eq!(r.next().await.expect("syn"), Some(Frame::SynStream { id: 1, headers, fin: false }));
        assert_eq!(r.next().await.expect("data"), Some(Frame::Data { id: 1, fin: true, data: b"hi".to_vec() }));
        assert_eq!(r.next().await.expect("ping"), Some(Frame::Ping(7)));
        assert_eq!(r.next().await.expect("window update"), Some(Frame::Ignored));
        assert_eq!(r.next().await.expect("eof"), None);

        let garbage = control(SYN_STREAM, 0, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3]);
        let mut r = FrameReader { io: garbage.as_slice(), inflater: Inflater::new() };
        assert!(r.next().await.is_err());
        let short = control(SYN_STREAM, 0, &[0, 0]);
        let mut r = FrameReader { io: short.as_slice(), inflater: Inflater::new() };
        assert!(r.next().await.is_err());
        let v2 = [0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1];
        let mut r = FrameReader { io: &v2[..], inflater: Inflater::new() };
        assert!(matches!(r.next().await, Err(SpdyError::Version(2))));
    }

    #[test]
    fn negotiation_wants_v4() {
        let mut h = HeaderMap::new();
        h.append(PROTOCOL_HEADER, HeaderValue::from_static("v4.channel.k8s.io"));
        h.append(PROTOCOL_HEADER, HeaderValue::from_static("v3.channel.k8s.io"));
        assert_eq!(negotiate(&h), Ok(V4));
        let mut old = HeaderMap::new();
        old.append(PROTOCOL_HEADER, HeaderValue::from_static("channel.k8s.io"));
        assert!(negotiate(&old).is_err());
    }

    #[test]
    fn resizes_are_applied_whole() {
        let mut buf = br#"{"Width":80,"Height":24}{"Width":1"#.to_vec();
        apply_resizes(&mut buf, None);
        assert_eq!(buf, br#"{"Width":1"#.to_vec());
    }
}
