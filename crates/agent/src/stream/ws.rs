//! exec and attach over WebSocket, the `channel.k8s.io` protocols of
//! `k8s.io/apimachinery/pkg/util/remotecommand` and the kubelet's `wsstream`.
//!
//! Every binary message starts with a channel byte: 0 stdin (client to server), 1 stdout,
//! 2 stderr, 3 error (a `metav1.Status` in v4 and v5, plain text before), 4 resize (client to
//! server, `{"Width":…,"Height":…}`). v5 adds the close signal `[255, channel]`: the client
//! has no more stdin. The session ends with the status on channel 3 and a close frame with
//! code 1000 (client-go reads the error channel until the connection closes, and treats a
//! close without a code as a failure).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::{Body, Query, StreamError, StreamServer, text};
use crate::runtime::{AttachRequest, BoxRead, BoxWrite, ExecRequest, ExitFuture, TerminalResize};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
pub const V1: &str = "channel.k8s.io";

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// How long, after the process exited, its output may take to drain (a background process
/// that inherited the pipes could hold them open forever).
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);
/// How long to wait for the client's reply to our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The protocol to speak: the first of the client's offers that we serve. No header at all
/// means the original `channel.k8s.io`, as upstream's server assumes.
fn negotiate(headers: &HeaderMap) -> Result<Option<&'static str>, String> {
    let offered: Vec<String> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(None);
    }
    for p in &offered {
        for ours in [V5, V4, V1] {
            if p == ours {
                return Ok(Some(ours));
            }
        }
    }
    Err(format!("requested protocol(s) are not supported: {offered:?}; supports {:?}", [V5, V4, V1]))
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

pub(super) struct Options {
    pub(super) stdin: bool,
    pub(super) stdout: bool,
    pub(super) stderr: bool,
    pub(super) tty: bool,
    pub(super) command: Vec<String>,
}

pub(super) fn options(query: &Query, exec: bool) -> Result<Options, StreamError> {
    let flag = |k: &str| query.flag(k).map_err(StreamError::BadRequest);
    let (stdin, stdout, mut stderr, tty) = (flag("stdin")?, flag("stdout")?, flag("stderr")?, flag("tty")?);
    if !stdin && !stdout && !stderr {
        return Err(StreamError::BadRequest("you must specify at least 1 of stdin, stdout, stderr".into()));
    }
    // A terminal has one output stream; the kubelet quietly drops stderr too.
    if tty {
        stderr = false;
    }
    let command = query.all("command");
    if exec && command.is_empty() {
        return Err(StreamError::BadRequest("you must specify at least one command for the container".into()));
    }
    Ok(Options { stdin, stdout, stderr, tty, command })
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
    let headers = req.headers();
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_ws = header_has(headers, header::UPGRADE, "websocket") && header_has(headers, header::CONNECTION, "upgrade");
    let Some(key) = key.filter(|_| is_ws) else {
        return Ok(text(
            StatusCode::BAD_REQUEST,
            "exec and attach need a WebSocket (v5.channel.k8s.io, v4.channel.k8s.io) or SPDY/3.1 upgrade",
        ));
    };
    let protocol = negotiate(headers).map_err(StreamError::BadRequest)?;
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
                tracing::debug!(error = %e, "streaming server: upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let started = start(&runtime, &id, exec, &opts).await;
        let session = Session { protocol, command: opts.command.clone(), stdout: opts.stdout, stderr: opts.stderr };
        session.run(ws, started).await;
    });

    let mut resp = Response::new(Empty::<Bytes>::new().map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    Ok(resp)
}

/// The process an exec or attach session talks to, whichever protocol carries it.
pub(super) struct Streams {
    pub(super) stdin: Option<BoxWrite>,
    pub(super) stdout: Option<BoxRead>,
    pub(super) stderr: Option<BoxRead>,
    pub(super) terminal: Option<Arc<dyn TerminalResize>>,
    /// The exec'd process's exit; None for attach, which ends when the output does.
    pub(super) exit: Option<ExitFuture>,
}

/// Starts the exec'd process, or attaches to the container's own.
pub(super) async fn start(
    runtime: &Arc<dyn crate::runtime::ContainerRuntime>,
    id: &str,
    exec: bool,
    opts: &Options,
) -> Result<Streams, StreamError> {
    if exec {
        let request = ExecRequest {
            command: opts.command.clone(),
            env: Vec::new(),
            tty: opts.tty,
            stdin: opts.stdin,
            tty_size: None,
        };
        let p = runtime.exec(id, request).await?;
        Ok(Streams { stdin: p.stdin, stdout: p.stdout, stderr: p.stderr, terminal: p.terminal, exit: Some(p.exit) })
    } else {
        let request = AttachRequest { stdin: opts.stdin, stdout: opts.stdout, stderr: opts.stderr };
        let a = runtime.attach(id, request).await?;
        Ok(Streams { stdin: a.stdin, stdout: a.stdout, stderr: a.stderr, terminal: a.terminal, exit: None })
    }
}

struct Session {
    protocol: Option<&'static str>,
    command: Vec<String>,
    stdout: bool,
    stderr: bool,
}

/// How a session ended, for the error channel.
pub(super) enum Outcome {
    Success,
    ExitCode(i32),
    Internal(String),
}

/// Waits for an exec or attach session to end, the same way over WebSocket and SPDY: an
/// exec ends with its process (then the output still in flight gets `OUTPUT_DRAIN` to reach
/// the client); an attach ends when the container's output does; either ends when the
/// client goes away. A stdin-only attach lasts as long as the client keeps it.
pub(super) async fn session_end<T>(
    exit: Option<ExitFuture>,
    copies: &mut [tokio::task::JoinHandle<()>],
    client: &mut tokio::task::JoinHandle<T>,
) -> Outcome {
    match exit {
        Some(exit) => {
            tokio::select! {
                code = exit => {
                    let deadline = tokio::time::Instant::now() + OUTPUT_DRAIN;
                    for c in copies.iter_mut() {
                        let _ = tokio::time::timeout_at(deadline, c).await;
                    }
                    match code {
                        Ok(0) => Outcome::Success,
                        Ok(n) => Outcome::ExitCode(n),
                        Err(e) => Outcome::Internal(e.to_string()),
                    }
                }
                _ = &mut *client => Outcome::Success,
            }
        }
        None if copies.is_empty() => {
            let _ = (&mut *client).await;
            Outcome::Success
        }
        None => {
            let outputs = futures::future::join_all(copies.iter_mut());
            tokio::select! {
                _ = outputs => Outcome::Success,
                _ = &mut *client => Outcome::Success,
            }
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Size {
    width: u16,
    height: u16,
}

impl Session {
    async fn run<S>(self, ws: WebSocketStream<S>, started: Result<Streams, StreamError>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, mut source) = ws.split();
        let (tx, mut rx) = mpsc::channel::<Message>(64);
        let writer = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let closing = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() {
                    break;
                }
                if closing {
                    break;
                }
            }
            let _ = sink.flush().await;
        });

        let outcome = match started {
            Err(e) => Outcome::Internal(e.to_string()),
            Ok(streams) => {
                let v5 = self.protocol == Some(V5);
                let mut copies = Vec::new();
                if let Some(out) = streams.stdout {
                    copies.push(tokio::spawn(copy_out(out, STDOUT, self.stdout, tx.clone())));
                }
                if let Some(err) = streams.stderr {
                    copies.push(tokio::spawn(copy_out(err, STDERR, self.stderr, tx.clone())));
                }
                let mut reader = tokio::spawn(read_client(source, streams.stdin, streams.terminal, v5));
                let outcome = session_end(streams.exit, &mut copies, &mut reader).await;
                if reader.is_finished() {
                    // The client is gone: stop copying (which also hangs up a terminal, so
                    // an interactive shell ends) and say nothing more.
                    for c in &copies {
                        c.abort();
                    }
                    drop(tx);
                    let _ = writer.await;
                    return;
                }
                for c in &copies {
                    c.abort();
                }
                self.finish(&tx, outcome).await;
                drop(tx);
                let _ = writer.await;
                // Give the client a moment to answer our close, then hang up.
                let _ = tokio::time::timeout(CLOSE_WAIT, &mut reader).await;
                reader.abort();
                return;
            }
        };
        self.finish(&tx, outcome).await;
        drop(tx);
        let _ = writer.await;
        let _ = tokio::time::timeout(CLOSE_WAIT, async { while source.next().await.is_some() {} }).await;
    }

    /// Writes the status on the error channel and the close frame.
    async fn finish(&self, tx: &mpsc::Sender<Message>, outcome: Outcome) {
        let structured = matches!(self.protocol, Some(V5) | Some(V4));
        let payload = if structured {
            let status = match &outcome {
                Outcome::Success => json!({"metadata": {}, "status": "Success"}),
                Outcome::ExitCode(code) => json!({
                    "metadata": {},
                    "status": "Failure",
                    "message": format!(
                        "command terminated with non-zero exit code: error executing command {:?}, exit code {code}",
                        self.command
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
            Some(serde_json::to_vec(&status).unwrap_or_default())
        } else {
            match &outcome {
                Outcome::Success => None,
                Outcome::ExitCode(code) => Some(format!("command terminated with exit code {code}").into_bytes()),
                Outcome::Internal(message) => Some(message.clone().into_bytes()),
            }
        };
        if let Some(payload) = payload {
            let mut m = vec![ERROR];
            m.extend_from_slice(&payload);
            let _ = tx.send(Message::Binary(Bytes::from(m))).await;
        }
        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
        let _ = tx.send(Message::Close(Some(close))).await;
    }
}

/// Copies one output stream to its channel until EOF. An output the client did not ask for
/// is still read, so the process never blocks on a full pipe.
async fn copy_out(mut from: BoxRead, channel: u8, send: bool, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !send {
            continue;
        }
        let mut m = Vec::with_capacity(n + 1);
        m.push(channel);
        m.extend_from_slice(&buf[..n]);
        if tx.send(Message::Binary(Bytes::from(m))).await.is_err() {
            return;
        }
    }
}

/// Reads the client's messages until it closes: stdin, resizes and (v5) the stdin close
/// signal. Dropping the stdin writer on return gives the process end-of-file.
async fn read_client<S>(
    mut source: futures::stream::SplitStream<WebSocketStream<S>>,
    mut stdin: Option<BoxWrite>,
    terminal: Option<Arc<dyn TerminalResize>>,
    v5: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = source.next().await {
        let data = match message {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Some((&channel, payload)) = data.split_first() else { continue };
        match channel {
            STDIN => {
                if let Some(w) = stdin.as_mut()
                    && (w.write_all(payload).await.is_err() || w.flush().await.is_err())
                {
                    stdin = None;
                }
            }
            RESIZE => {
                if let (Some(t), Ok(size)) = (&terminal, serde_json::from_slice::<Size>(payload)) {
                    let _ = t.resize(size.width, size.height);
                }
            }
            CLOSE if v5 => {
                if payload.first() == Some(&STDIN)
                    && let Some(mut w) = stdin.take()
                {
                    let _ = w.shutdown().await;
                }
            }
            _ => {}
        }
    }
    if let Some(mut w) = stdin.take() {
        let _ = w.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(protocols: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for p in protocols {
            h.append(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_str(p).expect("value"));
        }
        h
    }

    #[test]
    fn negotiation_takes_the_clients_first_supported_protocol() {
        assert_eq!(negotiate(&headers(&["v5.channel.k8s.io, v4.channel.k8s.io"])), Ok(Some(V5)));
        assert_eq!(negotiate(&headers(&["base64.channel.k8s.io", "v4.channel.k8s.io"])), Ok(Some(V4)));
        assert_eq!(negotiate(&headers(&[])), Ok(None));
        assert!(negotiate(&headers(&["v9.channel.k8s.io"])).is_err());
    }

    #[test]
    fn options_need_a_stream_and_a_command() {
        assert!(options(&Query::parse("command=ls"), true).is_err());
        assert!(options(&Query::parse("stdout=true"), true).is_err());
        let o = options(&Query::parse("stdout=1&stderr=1&tty=1&command=sh"), true).expect("ok");
        assert!(o.stdout && !o.stderr && o.tty);
        assert!(options(&Query::parse("stdin=true"), false).is_ok());
    }
}
