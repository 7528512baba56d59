//! [`Runc`]: the [`ContainerRuntime`] that drives the `runc` binary, with one shim per
//! container (see `shim.rs`).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, ReadBuf};

use super::shim::{self, EXIT_FILE, ExitRecord, REPORT_PREFIX, SHIM_CONFIG, SHIM_PID, ShimConfig, ShimReport};
use super::{
    ContainerRuntime, ContainerState, CreateRequest, ExecProcess, ExecRequest, ExitInfo, ExitReason, Result,
    RuntimeError, Status, TerminalResize, spec, validate_id,
};

const META: &str = "meta.json";
const STARTED: &str = "started";
const CONFIG: &str = "config.json";
const SHIM_LOG: &str = "shim.log";

/// How long `create` waits for the shim's report.
const CREATE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `delete` waits for the shim to record the exit and go.
const SHIM_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to start a shim: a program and its leading arguments; the state directory is passed
/// in [`super::SHIM_DIR_ENV`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl ShimCommand {
    /// The running binary with [`super::SHIM_ARG`]: `rkube __shim`.
    pub fn current_exe() -> io::Result<ShimCommand> {
        Ok(ShimCommand { program: std::env::current_exe()?, args: vec![super::SHIM_ARG.into()] })
    }
}

/// The runc-backed runtime of one agent.
#[derive(Debug, Clone)]
pub struct Runc {
    /// The `runc` binary.
    pub runc: PathBuf,
    /// runc's `--root`: its state, private to this agent.
    pub root: PathBuf,
    /// One directory per container (bundle, shim files, exit record).
    pub containers_dir: PathBuf,
    pub shim: ShimCommand,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Meta {
    log_path: PathBuf,
    /// Nanoseconds since the Unix epoch.
    created_at: u64,
}

#[derive(Debug, serde::Deserialize)]
struct RuncState {
    status: String,
    #[serde(default)]
    pid: u32,
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn from_ns(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

impl Runc {
    /// A runtime keeping everything under `state_dir` (`runc/` for runc's root,
    /// `containers/` for the containers), using `runc` from `PATH` and this binary as the shim.
    pub fn new(state_dir: &Path) -> io::Result<Runc> {
        Ok(Runc {
            runc: PathBuf::from("runc"),
            root: state_dir.join("runc"),
            containers_dir: state_dir.join("containers"),
            shim: ShimCommand::current_exe()?,
        })
    }

    /// The state directory of a container.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir.join(id)
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.runc);
        cmd.arg("--root").arg(&self.root);
        cmd
    }

    /// Runs a runc subcommand to completion; Err carries runc's last stderr line.
    async fn run(&self, op: &'static str, id: &str, args: &[&str]) -> Result<Vec<u8>> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(RuntimeError::io(format!("running {}", self.runc.display())))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(RuntimeError::Runc { op, id: id.to_string(), message: last_line(&stderr) })
        }
    }

    async fn runc_state(&self, id: &str) -> Option<RuncState> {
        let out = self.run("state", id, &["state", id]).await.ok()?;
        serde_json::from_slice(&out).ok()
    }

    fn shim_alive(&self, dir: &Path) -> bool {
        let pid = std::fs::read_to_string(dir.join(SHIM_PID)).ok().and_then(|s| s.trim().parse::<i32>().ok());
        match pid.and_then(rustix::process::Pid::from_raw) {
            Some(pid) => rustix::process::test_kill_process(pid).is_ok(),
            None => false,
        }
    }

    async fn spawn_shim(&self, dir: &Path) -> Result<u32> {
        let shim_log = std::fs::File::create(dir.join(SHIM_LOG)).map_err(RuntimeError::io("creating shim.log"))?;
        let mut child = tokio::process::Command::new(&self.shim.program)
            .args(&self.shim.args)
            .env(super::SHIM_DIR_ENV, dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(shim_log)
            .spawn()
            .map_err(RuntimeError::io(format!("starting the shim {}", self.shim.program.display())))?;
        let stdout = child.stdout.take();
        // The shim outlives this call; reap it whenever it exits.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        let Some(stdout) = stdout else {
            return Err(RuntimeError::io("shim stdout")(io::Error::other("not piped")));
        };
        let read_report = async {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Some(line) = lines.next_line().await? {
                // Anywhere in the line: a wrapper (a test harness) may have printed before it.
                if let Some(pos) = line.find(REPORT_PREFIX) {
                    return Ok(serde_json::from_str::<ShimReport>(&line[pos + REPORT_PREFIX.len()..]).ok());
                }
            }
            Ok::<_, io::Error>(None)
        };
        let report = match tokio::time::timeout(CREATE_TIMEOUT, read_report).await {
            Ok(r) => r.map_err(RuntimeError::io("reading the shim's report"))?,
            Err(_) => None,
        };
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        match report {
            Some(ShimReport { pid: Some(pid), .. }) => Ok(pid),
            Some(ShimReport { error: Some(message), .. }) => Err(RuntimeError::Create { id, message }),
            _ => {
                let log = std::fs::read_to_string(dir.join(SHIM_LOG)).unwrap_or_default();
                Err(RuntimeError::Create { id, message: format!("the shim gave no report: {}", last_line(&log)) })
            }
        }
    }
}

/// Whether the spec carries `key: "true"` among its annotations.
fn annotation(spec: &oci_spec::runtime::Spec, key: &str) -> bool {
    spec.annotations().as_ref().and_then(|a| a.get(key)).is_some_and(|v| v == "true")
}

fn last_line(text: &str) -> String {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_string()
}

fn read_exit(dir: &Path) -> Option<ExitInfo> {
    let bytes = std::fs::read(dir.join(EXIT_FILE)).ok()?;
    let r: ExitRecord = serde_json::from_slice(&bytes).ok()?;
    Some(ExitInfo {
        code: r.code,
        signal: r.signal,
        reason: ExitReason::classify(r.code, r.oom_killed),
        finished_at: Some(from_ns(r.finished_at)),
    })
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or(status.signal().map(|s| 128 + s)).unwrap_or(255)
}

#[async_trait::async_trait]
impl ContainerRuntime for Runc {
    async fn create(&self, request: CreateRequest) -> Result<ContainerState> {
        let id = request.id.as_str();
        validate_id(id)?;
        std::fs::create_dir_all(&self.containers_dir).map_err(RuntimeError::io("creating the containers dir"))?;
        std::fs::create_dir_all(&self.root).map_err(RuntimeError::io("creating runc's root"))?;
        let dir = self.container_dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(RuntimeError::AlreadyExists(id.into())),
            Err(e) => return Err(RuntimeError::io(format!("creating {}", dir.display()))(e)),
        }
        let result = async {
            let config_json = spec::to_json(&request.spec)?;
            std::fs::write(dir.join(CONFIG), config_json).map_err(RuntimeError::io("writing config.json"))?;
            let meta = Meta { log_path: request.log_path.clone(), created_at: now_ns() };
            let meta = serde_json::to_vec(&meta).map_err(|e| RuntimeError::io("meta.json")(io::Error::other(e)))?;
            shim::write_atomic(&dir.join(META), &meta).map_err(RuntimeError::io("writing meta.json"))?;
            let shim_config = ShimConfig {
                id: id.to_string(),
                runc: self.runc.clone(),
                root: self.root.clone(),
                log_path: request.log_path.clone(),
                tty: request.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false),
                stdin: annotation(&request.spec, super::STDIN_ANNOTATION),
                stdin_once: annotation(&request.spec, super::STDIN_ONCE_ANNOTATION),
                cgroups_path: request
                    .spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.cgroups_path().clone())
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let shim_config =
                serde_json::to_vec(&shim_config).map_err(|e| RuntimeError::io("shim.json")(io::Error::other(e)))?;
            std::fs::write(dir.join(SHIM_CONFIG), shim_config).map_err(RuntimeError::io("writing shim.json"))?;
            self.spawn_shim(&dir).await
        }
        .await;
        if let Err(e) = result {
            // Nothing of a failed create stays behind: runc's state (if any) and our directory.
            let _ = self.run("delete", id, &["delete", "--force", id]).await;
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.state(id).await
    }

    async fn start(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        if !dir.exists() {
            return Err(RuntimeError::NotFound(id.into()));
        }
        match self.run("start", id, &["start", id]).await {
            Ok(_) => {
                let _ = std::fs::write(dir.join(STARTED), now_ns().to_string());
                Ok(())
            }
            Err(RuntimeError::Runc { message, .. }) => Err(RuntimeError::Start { id: id.into(), message }),
            Err(e) => Err(e),
        }
    }

    async fn state(&self, id: &str) -> Result<ContainerState> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        let meta: Meta = match std::fs::read(dir.join(META)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| RuntimeError::io(format!("reading {}/{META}", dir.display()))(io::Error::other(e)))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(RuntimeError::NotFound(id.into())),
            Err(e) => return Err(RuntimeError::io(format!("reading {}/{META}", dir.display()))(e)),
        };
        let runc_state = self.runc_state(id).await;
        let mut exit = read_exit(&dir);
        let status = match runc_state.as_ref().map(|s| s.status.as_str()) {
            Some("created") => Status::Created,
            Some("running") => Status::Running,
            Some("paused") | Some("pausing") => Status::Paused,
            Some("stopped") => Status::Stopped,
            _ if exit.is_some() => Status::Stopped,
            _ => Status::Unknown,
        };
        if status == Status::Stopped && exit.is_none() && !self.shim_alive(&dir) {
            // Re-read: the shim may have written it and exited between the two looks.
            exit = read_exit(&dir).or(Some(ExitInfo {
                code: 128 + super::SIGKILL,
                signal: None,
                reason: ExitReason::Unknown,
                finished_at: None,
            }));
        }
        let pid = runc_state.filter(|s| s.pid != 0 && status != Status::Stopped).map(|s| s.pid);
        let started_at =
            std::fs::read_to_string(dir.join(STARTED)).ok().and_then(|s| s.trim().parse::<u64>().ok()).map(from_ns);
        Ok(ContainerState {
            id: id.to_string(),
            status,
            pid,
            log_path: meta.log_path,
            created_at: Some(from_ns(meta.created_at)),
            started_at,
            exit,
        })
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<()> {
        validate_id(id)?;
        let sig = signal.to_string();
        match self.run("kill", id, &["kill", id, &sig]).await {
            Ok(_) => Ok(()),
            Err(e) => match self.state(id).await {
                Ok(s) if s.status == Status::Stopped || s.exit.is_some() => Ok(()),
                Ok(_) => Err(e),
                Err(not_found) => Err(not_found),
            },
        }
    }

    async fn delete(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        let known_to_runc = self.runc_state(id).await.is_some();
        if !dir.exists() && !known_to_runc {
            return Err(RuntimeError::NotFound(id.into()));
        }
        if known_to_runc {
            self.run("delete", id, &["delete", "--force", id]).await?;
        }
        let deadline = tokio::time::Instant::now() + SHIM_EXIT_TIMEOUT;
        while self.shim_alive(&dir) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(RuntimeError::io(format!("removing {}", dir.display()))(e))
            }
            _ => Ok(()),
        }
    }

    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecProcess> {
        validate_id(id)?;
        if request.command.is_empty() {
            return Err(RuntimeError::Runc { op: "exec", id: id.into(), message: "no command given".into() });
        }
        let state = self.state(id).await?;
        if state.status != Status::Running {
            return Err(RuntimeError::Runc { op: "exec", id: id.into(), message: "container is not running".into() });
        }
        let mut cmd = self.command();
        cmd.arg("exec");
        for kv in &request.env {
            cmd.arg("--env").arg(kv);
        }
        if request.tty {
            cmd.arg("--tty");
        }
        cmd.arg(id).args(&request.command);
        if request.tty { exec_tty(cmd, &request) } else { exec_pipes(cmd, &request) }
    }

    async fn attach(&self, id: &str, request: super::AttachRequest) -> Result<super::AttachStreams> {
        validate_id(id)?;
        let dir = self.container_dir(id);
        let config: ShimConfig = match std::fs::read(dir.join(SHIM_CONFIG)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                RuntimeError::io(format!("reading {}/{SHIM_CONFIG}", dir.display()))(io::Error::other(e))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(RuntimeError::NotFound(id.into())),
            Err(e) => return Err(RuntimeError::io(format!("reading {}/{SHIM_CONFIG}", dir.display()))(e)),
        };
        if !self.shim_alive(&dir) {
            return Err(RuntimeError::Runc { op: "attach", id: id.into(), message: "container is not running".into() });
        }
        let request = super::AttachRequest { stdin: request.stdin && config.stdin, ..request };
        super::attach::connect(&dir, config.tty, request).await.map_err(RuntimeError::io(format!("attaching to {id}")))
    }

    async fn list(&self) -> Result<Vec<ContainerState>> {
        let entries = match std::fs::read_dir(&self.containers_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RuntimeError::io("listing containers")(e)),
        };
        let mut ids: Vec<String> =
            entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect();
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.state(&id).await {
                Ok(s) => out.push(s),
                Err(RuntimeError::NotFound(_)) | Err(RuntimeError::InvalidId(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn exec_pipes(mut cmd: tokio::process::Command, request: &ExecRequest) -> Result<ExecProcess> {
    cmd.stdin(if request.stdin { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(RuntimeError::io("running runc exec"))?;
    let stdin = child.stdin.take().map(|s| Box::pin(s) as super::BoxWrite);
    let stdout = child.stdout.take().map(|s| Box::pin(s) as super::BoxRead);
    let stderr = child.stderr.take().map(|s| Box::pin(s) as super::BoxRead);
    let exit = Box::pin(async move {
        let status = child.wait().await.map_err(RuntimeError::io("waiting for runc exec"))?;
        Ok(exit_code(status))
    });
    Ok(ExecProcess { stdin, stdout, stderr, terminal: None, exit })
}

/// `runc exec --tty` in the foreground wants a terminal as its stdio: give it the slave side
/// of a pseudo-terminal of ours and keep the master.
fn exec_tty(mut cmd: tokio::process::Command, request: &ExecRequest) -> Result<ExecProcess> {
    use rustix::fs::{Mode, OFlags};
    use rustix::pty::OpenptFlags;
    let pty_err = RuntimeError::io("allocating a terminal");
    let setup = || -> io::Result<(OwnedFd, OwnedFd)> {
        let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let slave = rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
        let (cols, rows) = request.tty_size.unwrap_or((80, 24));
        rustix::termios::tcsetwinsize(&master, winsize(cols, rows))?;
        Ok((master, slave))
    };
    let (master, slave) = setup().map_err(pty_err)?;
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(RuntimeError::io("allocating a terminal"));
    cmd.stdin(dup(&slave)?).stdout(dup(&slave)?).stderr(slave);
    let mut child = cmd.spawn().map_err(RuntimeError::io("running runc exec"))?;
    drop(cmd);
    let runc_pid = child.id();
    rustix::io::ioctl_fionbio(&master, true).map_err(|e| RuntimeError::io("allocating a terminal")(e.into()))?;
    // `AsyncFd::new` is deprecated because a generic `T` may change or close its fd; an
    // `OwnedFd` held inside the `AsyncFd` cannot, which is what `register`'s contract asks.
    #[allow(deprecated)]
    let master = AsyncFd::new(master);
    let master = Arc::new(master.map_err(RuntimeError::io("registering the terminal"))?);
    let stdin = request.stdin.then(|| Box::pin(PtyMaster(master.clone())) as super::BoxWrite);
    let stdout = Some(Box::pin(PtyMaster(master.clone())) as super::BoxRead);
    let terminal: Arc<dyn TerminalResize> = Arc::new(PtyResize { master, runc_pid });
    let exit = Box::pin(async move {
        let status = child.wait().await.map_err(RuntimeError::io("waiting for runc exec"))?;
        Ok(exit_code(status))
    });
    Ok(ExecProcess { stdin, stdout, stderr: None, terminal: Some(terminal), exit })
}

fn winsize(cols: u16, rows: u16) -> rustix::termios::Winsize {
    rustix::termios::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

/// The master side of an exec's terminal, as a reader and a writer.
struct PtyMaster(Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for PtyMaster {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| rustix::io::read(fd.get_ref().as_fd(), &mut *unfilled).map_err(io::Error::from)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: every slave is closed, which is how a terminal says end of file.
                Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref().as_fd(), data).map_err(io::Error::from)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

struct PtyResize {
    master: Arc<AsyncFd<OwnedFd>>,
    runc_pid: Option<u32>,
}

impl TerminalResize for PtyResize {
    fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        rustix::termios::tcsetwinsize(self.master.get_ref(), winsize(cols, rows))?;
        // runc is not in the terminal's foreground process group; tell it directly, and it
        // copies the size to the container's terminal.
        if let Some(pid) = self.runc_pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
            rustix::process::kill_process(pid, rustix::process::Signal::WINCH)?;
        }
        Ok(())
    }
}
