//! Container output in the CRI log format the kubelet reads:
//! `2016-10-06T00:17:09.669794202Z stdout F log line`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Lines longer than this are split into partial (`P`) entries, as containerd does.
pub const MAX_LINE: usize = 16 * 1024;

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriStream {
    Stdout,
    Stderr,
}

impl CriStream {
    pub fn as_str(self) -> &'static str {
        match self {
            CriStream::Stdout => "stdout",
            CriStream::Stderr => "stderr",
        }
    }
}

/// RFC 3339 with nanoseconds in UTC, as Go's `time.RFC3339Nano` (trailing zeros trimmed).
pub fn rfc3339_nano(t: SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => ts.to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_string(),
    }
}

/// One CRI log line, newline included. `partial` marks a line cut at [`MAX_LINE`].
pub fn format_cri_line(time: SystemTime, stream: CriStream, partial: bool, content: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(content.len() + 48);
    line.extend_from_slice(rfc3339_nano(time).as_bytes());
    line.push(b' ');
    line.extend_from_slice(stream.as_str().as_bytes());
    line.extend_from_slice(if partial { b" P " } else { b" F " });
    line.extend_from_slice(content);
    line.push(b'\n');
    line
}

/// The log file, shared by the stdout and stderr copiers; each entry is one `write`.
pub(crate) type SharedLog = Arc<Mutex<File>>;

fn write_entry(log: &SharedLog, stream: CriStream, partial: bool, content: &[u8]) -> io::Result<()> {
    let line = format_cri_line(SystemTime::now(), stream, partial, content);
    let mut file = log.lock().map_err(|_| io::Error::other("log lock poisoned"))?;
    file.write_all(&line)
}

/// Copies `reader` into the log until EOF (or EIO, which is how a terminal's master side
/// ends). `strip_cr` drops the `\r` of terminal line endings.
pub(crate) fn copy_to_log(mut reader: impl Read, stream: CriStream, log: &SharedLog, strip_cr: bool) -> io::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => break,
            Err(e) => return Err(e),
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
            let mut line = &pending[start..start + pos];
            if strip_cr && line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let pieces = split_long(line);
            let n_pieces = pieces.len();
            for (i, chunk) in pieces.into_iter().enumerate() {
                write_entry(log, stream, i + 1 != n_pieces, chunk)?;
            }
            start += pos + 1;
        }
        pending.drain(..start);
        while pending.len() >= MAX_LINE {
            write_entry(log, stream, true, &pending[..MAX_LINE])?;
            pending.drain(..MAX_LINE);
        }
    }
    if !pending.is_empty() {
        write_entry(log, stream, false, &pending)?;
    }
    Ok(())
}

/// A complete line in pieces of at most [`MAX_LINE`]; an empty line is one empty piece.
fn split_long(line: &[u8]) -> Vec<&[u8]> {
    if line.is_empty() { vec![line] } else { line.chunks(MAX_LINE).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn line_format() {
        let t = UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202);
        let line = format_cri_line(t, CriStream::Stdout, false, b"log line");
        assert_eq!(String::from_utf8_lossy(&line), "2016-10-06T00:17:09.669794202Z stdout F log line\n");
        let t = UNIX_EPOCH + Duration::new(1_475_713_029, 500_000_000);
        let line = format_cri_line(t, CriStream::Stderr, true, b"x");
        assert_eq!(String::from_utf8_lossy(&line), "2016-10-06T00:17:09.5Z stderr P x\n");
    }

    fn copy(input: &[u8], strip_cr: bool) -> Vec<(String, String, usize, String)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let log: SharedLog = Arc::new(Mutex::new(File::create(&path).expect("create")));
        copy_to_log(input, CriStream::Stdout, &log, strip_cr).expect("copy");
        let text = std::fs::read_to_string(&path).expect("read");
        text.split_terminator('\n')
            .map(|l| {
                let mut parts = l.splitn(4, ' ');
                let ts = parts.next().unwrap_or_default().to_string();
                let stream = parts.next().unwrap_or_default().to_string();
                let tag = parts.next().unwrap_or_default().to_string();
                let content = parts.next().unwrap_or_default().to_string();
                (stream, tag, ts.len().min(1), if content.len() > 40 { format!("{}…", content.len()) } else { content })
            })
            .collect()
    }

    #[test]
    fn lines_partials_and_tail() {
        let long = "a".repeat(MAX_LINE + 5);
        let input = format!("one\n\ntwo\r\n{long}\nno newline");
        let got = copy(input.as_bytes(), true);
        let want = vec![
            ("stdout".into(), "F".into(), 1, "one".into()),
            ("stdout".into(), "F".into(), 1, "".into()),
            ("stdout".into(), "F".into(), 1, "two".into()),
            ("stdout".into(), "P".into(), 1, format!("{MAX_LINE}…")),
            ("stdout".into(), "F".into(), 1, "aaaaa".into()),
            ("stdout".into(), "F".into(), 1, "no newline".into()),
        ];
        assert_eq!(got, want);
        let got = copy(b"two\r\n", false);
        assert_eq!(got[0].3, "two\r");
    }
}
