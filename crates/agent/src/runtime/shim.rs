//! The per-container shim: see the design notes in `runtime.rs`. Plain threads, no tokio:
//! it runs in a process of its own, started by [`super::Runc::create`].

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::attach;
use super::log::{CriStream, SharedLog, copy_to_log};
use super::ns;

/// The hidden subcommand of the `rkube` binary that runs a shim: `rkube __shim`.
pub const SHIM_ARG: &str = "__shim";
/// The environment variable that gives the shim its container's state directory.
pub const SHIM_DIR_ENV: &str = "RKUBE_SHIM_DIR";
/// Prefix of the one line the shim writes to its stdout for the agent.
pub(crate) const REPORT_PREFIX: &str = "RKUBE-SHIM ";

pub(crate) const SHIM_CONFIG: &str = "shim.json";
pub(crate) const SHIM_PID: &str = "shim.pid";
pub(crate) const INIT_PID: &str = "init.pid";
pub(crate) const EXIT_FILE: &str = "exit.json";
pub(crate) const RUNC_LOG: &str = "runc.log";
const CONSOLE_SOCKET: &str = "console.sock";
/// The unix socket attach sessions connect to; see [`super::attach`].
pub(crate) const ATTACH_SOCKET: &str = "attach.sock";

/// How long the shim waits for the output copiers once the init process is gone (a
/// process that escaped the container's PID namespace could hold the pipes forever).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the agent tells the shim, in `<dir>/shim.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShimConfig {
    pub id: String,
    pub runc: PathBuf,
    pub root: PathBuf,
    pub log_path: PathBuf,
    pub tty: bool,
    pub cgroups_path: String,
    /// Keep the container's stdin open (a pipe, or the terminal) for attach.
    #[serde(default)]
    pub stdin: bool,
    /// Close stdin once the first attach session that used it ends (`stdinOnce`).
    #[serde(default)]
    pub stdin_once: bool,
}

/// The shim's one report line: the init pid, or why `runc create` failed.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShimReport {
    pub pid: Option<u32>,
    pub error: Option<String>,
}

/// `exit.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ExitRecord {
    pub code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    /// Nanoseconds since the Unix epoch.
    pub finished_at: u64,
}

/// Entry point of the shim process: the `rkube` binary's `main` calls this first thing when
/// its first argument is [`SHIM_ARG`]. The container's state directory comes from the
/// [`SHIM_DIR_ENV`] environment variable. Never returns.
pub fn shim_main() -> ! {
    let code = match std::env::var_os(SHIM_DIR_ENV) {
        Some(dir) => run(Path::new(&dir)),
        None => {
            eprintln!("rkube shim: {SHIM_DIR_ENV} is not set");
            2
        }
    };
    std::process::exit(code)
}

fn run(dir: &Path) -> i32 {
    // A session of its own: no signals from the agent's terminal or process group.
    let _ = rustix::process::setsid();
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        eprintln!("rkube shim: cannot become a child subreaper: {e}");
    }
    // Relative paths from here on: a unix socket path must stay under 108 bytes.
    if let Err(e) = std::env::set_current_dir(dir) {
        report(&ShimReport { pid: None, error: Some(format!("shim: entering {}: {e}", dir.display())) });
        return 1;
    }
    let config = match read_config() {
        Ok(c) => c,
        Err(e) => {
            report(&ShimReport { pid: None, error: Some(format!("shim: reading {SHIM_CONFIG}: {e}")) });
            return 1;
        }
    };
    let _ = std::fs::write(SHIM_PID, rustix::process::getpid().as_raw_nonzero().to_string());
    match create(dir, &config) {
        Err(message) => {
            report(&ShimReport { pid: None, error: Some(message) });
            1
        }
        Ok(created) => {
            report(&ShimReport { pid: Some(created.pid), error: None });
            // The agent may go away now; nothing else is ever written to stdout.
            if let Ok(null) = File::options().write(true).open("/dev/null") {
                let _ = rustix::stdio::dup2_stdout(&null);
            }
            supervise(&config, created)
        }
    }
}

fn read_config() -> io::Result<ShimConfig> {
    let text = std::fs::read(SHIM_CONFIG)?;
    serde_json::from_slice(&text).map_err(io::Error::other)
}

fn report(r: &ShimReport) {
    let json = serde_json::to_string(r).unwrap_or_else(|_| "{}".to_string());
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{REPORT_PREFIX}{json}");
    let _ = out.flush();
}

struct Created {
    pid: u32,
    log: SharedLog,
    outputs: Vec<(OwnedFd, CriStream, bool)>,
    /// Where attach input goes: the write end of the stdin pipe, or a copy of the terminal.
    stdin: Option<File>,
    /// The terminal's master side, for resizes.
    terminal: Option<OwnedFd>,
    attach: std::os::unix::net::UnixListener,
}

/// Runs `runc create`; on success the container's init process is our child (subreaper)
/// and its output streams are ours.
fn create(dir: &Path, config: &ShimConfig) -> Result<Created, String> {
    let log = File::options()
        .create(true)
        .append(true)
        .open(&config.log_path)
        .map_err(|e| format!("opening log file {}: {e}", config.log_path.display()))?;
    let log: SharedLog = Arc::new(Mutex::new(log));
    let console = if config.tty {
        let _ = std::fs::remove_file(CONSOLE_SOCKET);
        Some(std::os::unix::net::UnixListener::bind(CONSOLE_SOCKET).map_err(|e| format!("console socket: {e}"))?)
    } else {
        None
    };
    let (out_r, out_w) = io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = io::pipe().map_err(|e| format!("pipe: {e}"))?;
    // A pipe for the container's stdin only when asked for: otherwise it reads /dev/null, as
    // a Kubernetes container without `stdin: true` does.
    let stdin_pipe =
        if config.stdin && !config.tty { Some(io::pipe().map_err(|e| format!("pipe: {e}"))?) } else { None };
    let _ = std::fs::remove_file(ATTACH_SOCKET);
    let attach = std::os::unix::net::UnixListener::bind(ATTACH_SOCKET).map_err(|e| format!("attach socket: {e}"))?;

    let mut cmd = Command::new(&config.runc);
    cmd.arg("--root")
        .arg(&config.root)
        .arg("--log")
        .arg(dir.join(RUNC_LOG))
        .arg("--log-format")
        .arg("json")
        .arg("create")
        .arg("--bundle")
        .arg(dir)
        .arg("--pid-file")
        .arg(dir.join(INIT_PID));
    if config.tty {
        cmd.arg("--console-socket").arg(CONSOLE_SOCKET);
        cmd.stdout(Stdio::null());
        drop(out_w);
    } else {
        cmd.stdout(out_w);
    }
    cmd.arg(&config.id).stderr(err_w);
    let stdin_writer = match stdin_pipe {
        Some((r, w)) => {
            cmd.stdin(r);
            Some(File::from(OwnedFd::from(w)))
        }
        None => {
            cmd.stdin(Stdio::null());
            None
        }
    };
    let child = cmd.spawn();
    // Our copies of the write ends must go, or the copiers never see EOF.
    drop(cmd);
    let status = child.and_then(|mut c| c.wait()).map_err(|e| format!("running {}: {e}", config.runc.display()))?;
    if !status.success() {
        let _ = rustix::io::ioctl_fionbio(&err_r, true);
        let mut stderr = Vec::new();
        let _ = (&err_r).read_to_end(&mut stderr);
        let message = runc_error(&String::from_utf8_lossy(&stderr), dir);
        return Err(message);
    }
    let pid = std::fs::read_to_string(INIT_PID)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or_else(|| "runc create wrote no init pid".to_string())?;

    let (outputs, stdin, terminal) = match console {
        Some(listener) => {
            let master = receive_console(&listener).map_err(|e| format!("receiving the console: {e}"))?;
            let _ = std::fs::remove_file(CONSOLE_SOCKET);
            let dup = || master.try_clone().map_err(|e| format!("duplicating the console: {e}"));
            let stdin = if config.stdin { Some(File::from(dup()?)) } else { None };
            let terminal = Some(dup()?);
            (vec![(master, CriStream::Stdout, true)], stdin, terminal)
        }
        None => {
            let outputs = vec![
                (OwnedFd::from(out_r), CriStream::Stdout, false),
                (OwnedFd::from(err_r), CriStream::Stderr, false),
            ];
            (outputs, stdin_writer, None)
        }
    };
    Ok(Created { pid, log, outputs, stdin, terminal, attach })
}

/// runc's message for a failed command: its last error in `runc.log`, else its stderr.
pub(crate) fn runc_error(stderr: &str, dir: &Path) -> String {
    let from_log = std::fs::read_to_string(dir.join(RUNC_LOG)).ok().and_then(|text| last_log_error(&text));
    from_log.unwrap_or_else(|| {
        let text = stderr.trim();
        let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("runc failed without a message");
        line.to_string()
    })
}

/// The last `"level":"error"` message of a runc JSON log.
pub(crate) fn last_log_error(text: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if v.get("level")?.as_str()? == "error" { Some(v.get("msg")?.as_str()?.to_string()) } else { None }
    })
}

/// Receives the terminal master runc sends over the console socket.
fn receive_console(listener: &std::os::unix::net::UnixListener) -> io::Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::mem::MaybeUninit;
    let (conn, _) = listener.accept()?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; 4096];
    rustix::net::recvmsg(&conn, &mut [io::IoSliceMut::new(&mut name)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = message
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(io::Error::other("no file descriptor in the console message"))
}

/// Copies output until the init process exits, then records how it ended.
fn supervise(config: &ShimConfig, created: Created) -> i32 {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let n_copiers = created.outputs.len();
    let hub = Arc::new(attach::Hub::new(created.stdin, created.terminal, config.stdin_once));
    attach::serve(created.attach, hub.clone());
    for (fd, stream, strip_cr) in created.outputs {
        let log = created.log.clone();
        let done = done_tx.clone();
        let reader = attach::Tee { inner: File::from(fd), stream, hub: hub.clone() };
        std::thread::spawn(move || {
            if let Err(e) = copy_to_log(reader, stream, &log, strip_cr) {
                eprintln!("rkube shim: copying {}: {e}", stream.as_str());
            }
            let _ = done.send(());
        });
    }
    drop(done_tx);

    let status = wait_init(created.pid);
    let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
    for _ in 0..n_copiers {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            eprintln!("rkube shim: output still open {DRAIN_TIMEOUT:?} after the container exited");
            break;
        }
    }
    let (code, signal) = match status {
        Some(s) => match (s.exit_status(), s.terminating_signal()) {
            (Some(code), _) => (code, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            (None, None) => (255, None),
        },
        None => (255, None),
    };
    let oom_killed = ns::oom_kill_count(&config.cgroups_path).unwrap_or(0) > 0;
    let finished_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let record = ExitRecord { code, signal, oom_killed, finished_at };
    let written = write_atomic(Path::new(EXIT_FILE), &serde_json::to_vec(&record).unwrap_or_default());
    // Attached clients see the end of the output only now, when the exit is on record.
    hub.finish(DRAIN_TIMEOUT);
    if let Err(e) = written {
        eprintln!("rkube shim: writing {EXIT_FILE}: {e}");
        return 1;
    }
    0
}

/// Reaps children until the init process is among them. `None` when it is not our child
/// (the subreaper setting failed) and we can only watch it disappear.
fn wait_init(init: u32) -> Option<rustix::process::WaitStatus> {
    use rustix::process::{Pid, WaitOptions};
    let pid = i32::try_from(init).ok().and_then(Pid::from_raw)?;
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((reaped, status))) if reaped == pid => return Some(status),
            Ok(_) => continue,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    while rustix::process::test_kill_process(pid).is_ok() {
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
