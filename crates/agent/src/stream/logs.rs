//! `GET /containerLogs/...`: reads a CRI log file (`2016-10-06T00:17:09.669794202Z stdout F
//! text`), joins partial (`P`) entries into whole lines, applies `sinceTime`/`sinceSeconds`,
//! `tailLines`, `timestamps` and `limitBytes`, and with `follow` keeps reading the file as it
//! grows until the container has stopped and the file has stopped growing, or the client
//! has gone away.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::{Body, ContainerTarget, Query, StreamError};
use crate::runtime::{ContainerRuntime, CriStream, Status};

/// How often a followed log is checked for new output. The kubelet waits on inotify; a short
/// poll costs little with one reader per `kubectl logs -f`.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// How often, while a followed log is idle, the container is asked whether it still runs.
const RUNNING_CHECK: Duration = Duration::from_millis(500);

/// `PodLogOptions` as the kubelet receives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<usize>,
    pub since: Option<jiff::Timestamp>,
    pub limit_bytes: Option<u64>,
}

fn invalid(field: &str, value: &str, detail: &str) -> StreamError {
    StreamError::BadRequest(format!("{field}: Invalid value: {value}: {detail}"))
}

impl LogOptions {
    /// Parses and validates the query as upstream's `ValidatePodLogOptions` does.
    pub fn from_query(q: &Query) -> Result<LogOptions, StreamError> {
        let flag = |k: &str| q.flag(k).map_err(StreamError::BadRequest);
        let int = |k: &str| -> Result<Option<i64>, StreamError> {
            match q.get(k) {
                None | Some("") => Ok(None),
                Some(v) => v.parse::<i64>().map(Some).map_err(|_| invalid(k, v, "must be an integer")),
            }
        };
        let tail = int("tailLines")?;
        if let Some(t) = tail
            && t < 0
        {
            return Err(invalid("tailLines", &t.to_string(), "must be greater than or equal to 0"));
        }
        let limit = int("limitBytes")?;
        if let Some(l) = limit
            && l < 1
        {
            return Err(invalid("limitBytes", &l.to_string(), "must be greater than 0"));
        }
        let since_seconds = int("sinceSeconds")?;
        let since_time = q.get("sinceTime").filter(|s| !s.is_empty());
        if since_seconds.is_some() && since_time.is_some() {
            return Err(StreamError::BadRequest(
                "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            ));
        }
        let since = match (since_seconds, since_time) {
            (Some(s), _) if s < 1 => return Err(invalid("sinceSeconds", &s.to_string(), "must be greater than 0")),
            (Some(s), _) => jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_secs(s)).ok(),
            (None, Some(t)) => Some(t.parse::<jiff::Timestamp>().map_err(|e| invalid("sinceTime", t, &e.to_string()))?),
            (None, None) => None,
        };
        Ok(LogOptions {
            follow: flag("follow")?,
            previous: flag("previous")?,
            timestamps: flag("timestamps")?,
            tail_lines: tail.map(|t| t as usize),
            since,
            limit_bytes: limit.map(|l| l as u64),
        })
    }
}

/// One entry of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub timestamp: jiff::Timestamp,
    pub stream: CriStream,
    /// A piece of a line longer than the runtime's limit; the line goes on in the next entry.
    pub partial: bool,
    pub content: Vec<u8>,
}

/// Parses one line of a CRI log file (without its newline); None when it is malformed.
pub fn parse_cri_line(line: &[u8]) -> Option<LogEntry> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?.parse::<jiff::Timestamp>().ok()?;
    let stream = match parts.next()? {
        b"stdout" => CriStream::Stdout,
        b"stderr" => CriStream::Stderr,
        _ => return None,
    };
    // Very old runtimes wrote no tag; a missing tag means a whole line.
    let (partial, content) = match parts.next()? {
        b"P" => (true, parts.next().unwrap_or_default()),
        b"F" => (false, parts.next().unwrap_or_default()),
        other => {
            let mut content = other.to_vec();
            if let Some(rest) = parts.next() {
                content.push(b' ');
                content.extend_from_slice(rest);
            }
            return Some(LogEntry { timestamp, stream, partial: false, content });
        }
    };
    Some(LogEntry { timestamp, stream, partial, content: content.to_vec() })
}

/// [`parse_cri_line`], but the timestamp is only checked for shape and left at the epoch
/// when neither `since` nor `timestamps` needs it: parsing it is most of the cost of a line.
fn parse_for(line: &[u8], opts: &LogOptions) -> Option<LogEntry> {
    if opts.timestamps || opts.since.is_some() {
        return parse_cri_line(line);
    }
    let space = line.iter().position(|b| *b == b' ')?;
    if space < 20 || line[space - 1] != b'Z' || line[10] != b'T' {
        return None;
    }
    let rest = &line[space + 1..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix(b"stdout ") {
        (CriStream::Stdout, r)
    } else if let Some(r) = rest.strip_prefix(b"stderr ") {
        (CriStream::Stderr, r)
    } else {
        return None;
    };
    let (partial, content) = match rest {
        [b'P', b' ', content @ ..] => (true, content),
        [b'F', b' ', content @ ..] => (false, content),
        [b'P'] => (true, &[][..]),
        [b'F'] => (false, &[][..]),
        _ => return parse_cri_line(line),
    };
    Some(LogEntry { timestamp: jiff::Timestamp::UNIX_EPOCH, stream, partial, content: content.to_vec() })
}

/// RFC 3339 with exactly nine fractional digits, the kubelet's `timestamps=true` prefix.
fn format_timestamp(t: jiff::Timestamp) -> String {
    format!("{}.{:09}Z", t.strftime("%Y-%m-%dT%H:%M:%S"), t.subsec_nanosecond())
}

/// Turns CRI entries into output lines: partial entries joined, `since` and `timestamps`
/// applied. Lines are whole (newline included) unless the log ended in a partial entry.
#[derive(Default)]
struct Lines {
    pending: Option<(jiff::Timestamp, Vec<u8>)>,
}

impl Lines {
    fn push(&mut self, entry: LogEntry, opts: &LogOptions) -> Option<Vec<u8>> {
        let (ts, mut content) = match self.pending.take() {
            Some((ts, mut before)) => {
                before.extend_from_slice(&entry.content);
                (ts, before)
            }
            None => (entry.timestamp, entry.content),
        };
        if entry.partial {
            self.pending = Some((ts, content));
            return None;
        }
        if opts.since.is_some_and(|since| ts < since) {
            return None;
        }
        content.push(b'\n');
        if opts.timestamps {
            let mut line = format_timestamp(ts).into_bytes();
            line.push(b' ');
            line.extend_from_slice(&content);
            return Some(line);
        }
        Some(content)
    }
}

/// Splits complete lines (through the last newline) off the front of `buf`.
fn complete_lines(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let Some(last) = buf.iter().rposition(|b| *b == b'\n') else { return Vec::new() };
    let rest = buf.split_off(last + 1);
    let whole = std::mem::replace(buf, rest);
    whole.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

/// Sends output to the client in chunks of up to [`CHUNK`], cutting it at `limitBytes`.
/// `push` and `flush` return false once nothing more may be sent (the limit is reached or
/// the client went away).
struct Sink {
    tx: mpsc::Sender<Bytes>,
    left: Option<u64>,
    pending: Vec<u8>,
}

/// Lines are batched into HTTP chunks of about this size: one chunk per line would cost
/// far more than the line.
const CHUNK: usize = 32 * 1024;

impl Sink {
    async fn push(&mut self, mut data: Vec<u8>) -> bool {
        if let Some(left) = self.left.as_mut() {
            if *left == 0 {
                return false;
            }
            if data.len() as u64 > *left {
                data.truncate(*left as usize);
            }
            *left -= data.len() as u64;
        }
        self.pending.extend_from_slice(&data);
        if self.pending.len() >= CHUNK && !self.flush().await {
            return false;
        }
        self.left != Some(0)
    }

    async fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.pending));
        self.tx.send(chunk).await.is_ok()
    }
}

/// Starts streaming the log; the returned body ends when the log (or the follow) does.
pub(crate) async fn stream(
    target: ContainerTarget,
    opts: LogOptions,
    runtime: std::sync::Arc<dyn ContainerRuntime>,
) -> Result<Body, StreamError> {
    let file = match tokio::fs::File::open(&target.log_path).await {
        Ok(f) => Some(f),
        // A container that has not written a line yet may have no file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(StreamError::io(format!("opening {}", target.log_path.display()))(e)),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        if let Err(e) =
            pump(file, &target, &opts, runtime.as_ref(), Sink { tx, left: opts.limit_bytes, pending: Vec::new() }).await
        {
            tracing::debug!(error = %e, log = %target.log_path.display(), "streaming a log failed");
        }
    });
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    Ok(StreamBody::new(frames).boxed())
}

async fn pump(
    mut file: Option<tokio::fs::File>,
    target: &ContainerTarget,
    opts: &LogOptions,
    runtime: &dyn ContainerRuntime,
    mut sink: Sink,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    if let Some(f) = file.as_mut() {
        f.read_to_end(&mut buf).await?;
    }
    let mut lines = Lines::default();
    let mut first: VecDeque<Vec<u8>> = VecDeque::new();
    for raw in complete_lines(&mut buf) {
        let Some(entry) = parse_for(&raw, opts) else { continue };
        if let Some(line) = lines.push(entry, opts) {
            first.push_back(line);
            if opts.tail_lines.is_some_and(|n| first.len() > n) {
                first.pop_front();
            }
        }
    }
    for line in first {
        if !sink.push(line).await {
            sink.flush().await;
            return Ok(());
        }
    }
    if !sink.flush().await || !opts.follow {
        return Ok(());
    }
    let mut last_check = tokio::time::Instant::now();
    let mut stopped = false;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if file.is_none() {
            file = tokio::fs::File::open(&target.log_path).await.ok();
        }
        let n = match file.as_mut() {
            Some(f) => f.read(&mut chunk).await?,
            None => 0,
        };
        if n > 0 {
            buf.extend_from_slice(&chunk[..n]);
            for raw in complete_lines(&mut buf) {
                let Some(entry) = parse_for(&raw, opts) else { continue };
                if let Some(line) = lines.push(entry, opts)
                    && !sink.push(line).await
                {
                    sink.flush().await;
                    return Ok(());
                }
            }
            if !sink.flush().await {
                return Ok(());
            }
            continue;
        }
        // At the end of the file. After the container stopped, one more pass has read
        // whatever it wrote last; then the follow is over.
        if stopped {
            return Ok(());
        }
        if sink.tx.is_closed() {
            return Ok(());
        }
        if last_check.elapsed() >= RUNNING_CHECK {
            last_check = tokio::time::Instant::now();
            stopped = match runtime.state(&target.container_id).await {
                Ok(state) => !matches!(state.status, Status::Running | Status::Created),
                Err(_) => true,
            };
            if stopped {
                continue;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = sink.tx.closed() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str) -> LogEntry {
        parse_cri_line(line.as_bytes()).expect("parse")
    }

    #[test]
    fn parses_cri_lines() {
        let e = entry("2016-10-06T00:17:09.669794202Z stdout F log line");
        assert_eq!((e.stream, e.partial, e.content.as_slice()), (CriStream::Stdout, false, &b"log line"[..]));
        assert_eq!(format_timestamp(e.timestamp), "2016-10-06T00:17:09.669794202Z");
        let e = entry("2016-10-06T00:17:09.5Z stderr P part");
        assert_eq!((e.stream, e.partial), (CriStream::Stderr, true));
        assert_eq!(format_timestamp(e.timestamp), "2016-10-06T00:17:09.500000000Z");
        assert_eq!(entry("2016-10-06T00:17:09Z stdout F ").content, b"");
        assert!(parse_cri_line(b"garbage").is_none());
        assert!(parse_cri_line(b"2016-10-06T00:17:09Z stdin F x").is_none());
    }

    #[test]
    fn the_fast_parse_agrees_with_the_full_one() {
        let plain = LogOptions::default();
        for line in [
            "2016-10-06T00:17:09.669794202Z stdout F log line",
            "2016-10-06T00:17:09Z stderr P part",
            "2016-10-06T00:17:09Z stdout F",
            "2016-10-06T00:17:09Z stdout F ",
            "2016-10-06T00:17:09Z stdout untagged words",
        ] {
            let (fast, full) = (parse_for(line.as_bytes(), &plain).expect(line), entry(line));
            assert_eq!((fast.stream, fast.partial, fast.content), (full.stream, full.partial, full.content), "{line}");
        }
        for bad in ["garbage", "2016-10-06T00:17:09Z stdin F x", "x 2016 stdout F y", ""] {
            assert!(parse_for(bad.as_bytes(), &plain).is_none(), "{bad}");
        }
    }

    #[test]
    fn joins_partials_and_applies_since_and_timestamps() {
        let mut lines = Lines::default();
        let opts = LogOptions { timestamps: true, ..Default::default() };
        assert_eq!(lines.push(entry("2016-10-06T00:00:01Z stdout P ab"), &opts), None);
        let got = lines.push(entry("2016-10-06T00:00:02Z stdout F cd"), &opts).expect("line");
        assert_eq!(String::from_utf8_lossy(&got), "2016-10-06T00:00:01.000000000Z abcd\n");
        let opts = LogOptions { since: "2016-10-06T00:00:02Z".parse().ok(), ..Default::default() };
        assert_eq!(lines.push(entry("2016-10-06T00:00:01Z stdout F old"), &opts), None);
        assert_eq!(lines.push(entry("2016-10-06T00:00:02Z stdout F new"), &opts), Some(b"new\n".to_vec()));
    }

    #[test]
    fn options_are_validated() {
        let parse = |q: &str| LogOptions::from_query(&Query::parse(q));
        let o = parse("follow=true&tailLines=2&timestamps=1&limitBytes=10").expect("ok");
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(2), Some(10)));
        assert!(parse("tailLines=-1").is_err());
        assert!(parse("limitBytes=0").is_err());
        assert!(parse("sinceSeconds=0").is_err());
        assert!(parse("sinceSeconds=5&sinceTime=2016-10-06T00:00:02Z").is_err());
        assert!(parse("sinceTime=yesterday").is_err());
        assert!(parse("follow=maybe").is_err());
        assert!(parse("sinceSeconds=10").expect("ok").since.is_some());
    }

    #[test]
    fn splits_complete_lines() {
        let mut buf = b"a\nb\nc".to_vec();
        assert_eq!(complete_lines(&mut buf), vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(buf, b"c");
        assert!(complete_lines(&mut buf).is_empty());
    }
}
