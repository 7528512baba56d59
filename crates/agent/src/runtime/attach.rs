//! Attach: the shim's side (plain threads, a unix socket `attach.sock` in the container's
//! state directory) and the agent's side ([`connect`], async) of one small protocol.
//!
//! Every message, both ways, is a frame: a type byte, a 4-byte big-endian length and the
//! payload. The client starts with [`HELLO`] (one flag byte: whether it will send stdin),
//! then sends [`STDIN`] data, [`RESIZE`] (columns and rows, two big-endian u16) and
//! [`CLOSE_STDIN`]. The shim sends [`STDOUT`] and [`STDERR`] (a terminal's output is
//! `STDOUT`) from the moment the client connects, and closes the connection once the
//! container has exited and its output is drained (after `exit.json` is written).
//!
//! A slow client must not stall the container: each connection has a bounded queue, and a
//! client that lets it fill up is disconnected rather than blocking the log copier.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::log::CriStream;
use super::{AttachStreams, BoxRead, BoxWrite, TerminalResize};

pub(crate) const STDIN: u8 = 0;
pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
pub(crate) const RESIZE: u8 = 3;
pub(crate) const CLOSE_STDIN: u8 = 4;
pub(crate) const HELLO: u8 = 5;

/// The largest payload accepted; larger frames mean a confused peer.
const MAX_FRAME: usize = 1 << 20;
/// Frames queued for one client before it counts as stuck.
const QUEUE: usize = 1024;

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::other(format!("attach frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

// === The shim's side ===

struct Subscriber {
    tx: mpsc::SyncSender<Vec<u8>>,
}

/// What the shim shares between its output copiers and its attach connections.
pub(crate) struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
    stdin: Mutex<Option<File>>,
    terminal: Option<OwnedFd>,
    stdin_once: bool,
    writers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    finished: std::sync::atomic::AtomicBool,
}

impl Hub {
    pub(crate) fn new(stdin: Option<File>, terminal: Option<OwnedFd>, stdin_once: bool) -> Hub {
        Hub {
            subscribers: Mutex::new(Vec::new()),
            stdin: Mutex::new(stdin),
            terminal,
            stdin_once,
            writers: Mutex::new(Vec::new()),
            finished: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn broadcast(&self, stream: CriStream, data: &[u8]) {
        let kind = match stream {
            CriStream::Stdout => STDOUT,
            CriStream::Stderr => STDERR,
        };
        let Ok(mut subs) = self.subscribers.lock() else { return };
        if subs.is_empty() {
            return;
        }
        let message = frame(kind, data);
        // A full queue or a gone client: drop that subscriber, never block the copier.
        subs.retain(|s| s.tx.try_send(message.clone()).is_ok());
    }

    fn write_stdin(&self, data: &[u8]) {
        if let Ok(mut stdin) = self.stdin.lock()
            && let Some(f) = stdin.as_mut()
            && f.write_all(data).is_err()
        {
            *stdin = None;
        }
    }

    fn close_stdin(&self) {
        if let Ok(mut stdin) = self.stdin.lock() {
            *stdin = None;
        }
    }

    fn resize(&self, cols: u16, rows: u16) {
        if let Some(t) = &self.terminal {
            let size = rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
            // The kernel signals SIGWINCH to the terminal's foreground process group.
            let _ = rustix::termios::tcsetwinsize(t, size);
        }
    }

    /// The container is gone and its output copied: end every attach session, giving the
    /// writers up to `limit` to deliver what is queued.
    pub(crate) fn finish(&self, limit: Duration) {
        self.finished.store(true, Ordering::SeqCst);
        if let Ok(mut subs) = self.subscribers.lock() {
            subs.clear();
        }
        let writers = self.writers.lock().map(|mut w| std::mem::take(&mut *w)).unwrap_or_default();
        let deadline = Instant::now() + limit;
        for w in writers {
            while !w.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// A reader that also hands every chunk it reads to the attached clients.
pub(crate) struct Tee<R> {
    pub inner: R,
    pub stream: CriStream,
    pub hub: Arc<Hub>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.hub.broadcast(self.stream, &buf[..n]);
        }
        Ok(n)
    }
}

/// Accepts attach connections on their own thread for as long as the shim lives.
pub(crate) fn serve(listener: UnixListener, hub: Arc<Hub>) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            if hub.finished.load(Ordering::SeqCst) {
                return;
            }
            if let Err(e) = session(conn, &hub) {
                eprintln!("rkube shim: attach session: {e}");
            }
        }
    });
}

fn session(conn: UnixStream, hub: &Arc<Hub>) -> io::Result<()> {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
    let mut out = conn.try_clone()?;
    let writer = std::thread::spawn(move || {
        while let Ok(message) = rx.recv() {
            if out.write_all(&message).is_err() {
                break;
            }
        }
        let _ = out.shutdown(std::net::Shutdown::Both);
    });
    if let Ok(mut subs) = hub.subscribers.lock() {
        subs.push(Subscriber { tx });
    }
    if let Ok(mut w) = hub.writers.lock() {
        w.retain(|h| !h.is_finished());
        w.push(writer);
    }
    let hub = hub.clone();
    std::thread::spawn(move || {
        let mut conn = conn;
        let mut uses_stdin = false;
        loop {
            match read_frame(&mut conn) {
                Ok(Some((HELLO, flags))) => uses_stdin = flags.first().is_some_and(|f| f & 1 != 0),
                Ok(Some((STDIN, data))) => hub.write_stdin(&data),
                Ok(Some((RESIZE, p))) if p.len() == 4 => {
                    hub.resize(u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]))
                }
                Ok(Some((CLOSE_STDIN, _))) => {
                    // Only the container's one reader of stdin may end it for everybody.
                    if hub.stdin_once {
                        hub.close_stdin();
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        // The client may only have half-closed (it sends nothing, and still reads): its
        // subscription ends when a write to it fails.
        if hub.stdin_once && uses_stdin {
            hub.close_stdin();
        }
    });
    Ok(())
}

// === The agent's side ===

/// What an attach session asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachRequest {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// Connects to a shim's attach socket in `dir`. The socket is reached through
/// `/proc/self/fd/N/`, so a long state directory cannot exceed the 108-byte limit of a unix
/// socket path. `tty` says whether the container has a terminal (its output is all stdout).
pub(crate) async fn connect(dir: &Path, tty: bool, request: AttachRequest) -> io::Result<AttachStreams> {
    use rustix::fs::{Mode, OFlags};
    let dir_fd = rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let path = format!("/proc/self/fd/{}/{}", std::os::fd::AsRawFd::as_raw_fd(&dir_fd), super::shim::ATTACH_SOCKET);
    let conn = tokio::net::UnixStream::connect(&path).await?;
    drop(dir_fd);
    let (mut rd, mut wr) = conn.into_split();
    wr.write_all(&frame(HELLO, &[u8::from(request.stdin)])).await?;

    let (out_w, out_r) = tokio::io::duplex(64 * 1024);
    let (err_w, err_r) = tokio::io::duplex(64 * 1024);
    let (mut out_w, mut err_w) = (request.stdout.then_some(out_w), (request.stderr && !tty).then_some(err_w));
    let reads_output = out_w.is_some() || err_w.is_some();
    tokio::spawn(async move {
        let mut head = [0u8; 5];
        let mut payload = Vec::new();
        loop {
            if rd.read_exact(&mut head).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
            if len > MAX_FRAME {
                break;
            }
            payload.resize(len, 0);
            if rd.read_exact(&mut payload).await.is_err() {
                break;
            }
            let target = match head[0] {
                STDOUT => &mut out_w,
                STDERR => &mut err_w,
                _ => continue,
            };
            // A reader that went away only stops that stream; the other keeps flowing.
            if let Some(w) = target.as_mut()
                && w.write_all(&payload).await.is_err()
            {
                *target = None;
                // Nobody reads any more: hang up, so the shim drops this client.
                if reads_output && out_w.is_none() && err_w.is_none() {
                    break;
                }
            }
        }
    });

    let (resize_tx, mut resize_rx) = tokio::sync::mpsc::unbounded_channel::<(u16, u16)>();
    let (stdin_w, mut stdin_r) = tokio::io::duplex(64 * 1024);
    let wants_stdin = request.stdin;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut stdin_open = wants_stdin;
        loop {
            tokio::select! {
                n = stdin_r.read(&mut buf), if stdin_open => {
                    let message = match n {
                        Ok(0) | Err(_) => { stdin_open = false; frame(CLOSE_STDIN, &[]) }
                        Ok(n) => frame(STDIN, &buf[..n]),
                    };
                    if wr.write_all(&message).await.is_err() { break; }
                }
                size = resize_rx.recv() => {
                    let Some((cols, rows)) = size else { if stdin_open { continue } else { break } };
                    let mut p = cols.to_be_bytes().to_vec();
                    p.extend_from_slice(&rows.to_be_bytes());
                    if wr.write_all(&frame(RESIZE, &p)).await.is_err() { break; }
                }
            }
        }
    });
    Ok(AttachStreams {
        stdin: request.stdin.then(|| Box::pin(stdin_w) as BoxWrite),
        stdout: request.stdout.then(|| Box::pin(out_r) as BoxRead),
        stderr: (request.stderr && !tty).then(|| Box::pin(err_r) as BoxRead),
        terminal: tty.then(|| Arc::new(AttachResize(resize_tx)) as Arc<dyn TerminalResize>),
    })
}

struct AttachResize(tokio::sync::mpsc::UnboundedSender<(u16, u16)>);

impl TerminalResize for AttachResize {
    fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        self.0.send((cols, rows)).map_err(|_| io::Error::other("the attach session has ended"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_reject_huge_lengths() {
        let mut bytes = frame(STDIN, b"hello");
        bytes.extend(frame(RESIZE, &[0, 80, 0, 24]));
        let mut r = &bytes[..];
        assert_eq!(read_frame(&mut r).expect("read"), Some((STDIN, b"hello".to_vec())));
        assert_eq!(read_frame(&mut r).expect("read"), Some((RESIZE, vec![0, 80, 0, 24])));
        assert_eq!(read_frame(&mut r).expect("read"), None);
        let mut huge = vec![STDIN];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_frame(&mut &huge[..]).is_err());
    }
}
