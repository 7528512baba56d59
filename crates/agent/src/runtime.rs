//! The container runtime layer of the node agent: pods' containers as `runc` containers.
//!
//! # Design
//!
//! **Spec.** [`spec::build`] is a pure function from the image config, the Kubernetes
//! container spec and what the agent prepared (rootfs, pod namespaces, volumes, `/etc`
//! files, cgroup path) to an OCI runtime spec. [`spec::to_json`] writes it with a stable key
//! and capability order.
//!
//! **Pod namespaces.** The containers of a pod share the network and IPC namespaces; each has
//! its own mount, PID and UTS namespaces (with the pod's hostname). There is no pause
//! container: the agent keeps the shared namespaces alive as bind-mounted namespace files
//! (`ip netns add` for the network, [`ns::create_ipc_namespace`] for IPC, which runs
//! `unshare --ipc=<file> true`), and each container joins them by path
//! (`linux.namespaces[].path`). A pod-wide `/dev/shm` is a host directory the agent may
//! bind-mount into every container ([`spec::PodNamespaces::shm`]).
//!
//! **Side effects behind a narrow trait.** [`ContainerRuntime`] is the whole interface the
//! agent uses (create, start, state, kill, delete, exec, list); [`Runc`] implements it by
//! running the `runc` binary, [`fake::FakeRuntime`] records calls for unit tests of the
//! code above it. [`stop`] (SIGTERM, grace period, SIGKILL) is written once on top of the
//! trait.
//!
//! **Isolation between agents.** Every agent has its own `runc --root` and its own state
//! directory, so several agents on one machine never see each other's containers.
//!
//! **The shim.** Each container has a small supervisor process, the shim, which is the
//! agent's own binary run again: `rkube __shim` ([`SHIM_ARG`]), whose `main` must call
//! [`shim_main`] before doing anything else. The shim
//! 1. calls `setsid()` and makes itself a child subreaper, so it survives the agent (even
//!    a SIGKILL) and becomes the parent of the container's init process;
//! 2. runs `runc create` with the container's stdout and stderr as pipes it owns (for a
//!    `tty` container, with `--console-socket` and receives the pty master instead);
//! 3. reports `{pid}` or runc's error on its stdout to the agent, then points its stdout at
//!    `/dev/null` so the agent may go away;
//! 4. copies the container's output into the CRI log file, one line at a time
//!    (`2016-10-06T00:17:09.669794202Z stdout F log line`, `P` for lines split at 16 KiB);
//! 5. reaps the init process when it exits, finishes copying, reads the cgroup's OOM kill
//!    counter and writes `exit.json` (exit code, signal, OOM, finish time), then exits.
//!
//! `runc start`, `kill`, `delete`, `state` and `exec` are run by the agent itself; none of
//! them needs the shim. The container stays in runc's `stopped` state after it exits, with
//! its cgroup, until [`ContainerRuntime::delete`].
//!
//! **State on disk**, per container, `<state_dir>/<id>/`: `config.json` (the bundle; the
//! rootfs is wherever the spec's `root.path` says), `meta.json` (log path, creation time),
//! `shim.json` (what the shim needs), `shim.pid`, `init.pid`, `started` (start time),
//! `exit.json`, `shim.log` and `runc.log`. A restarted agent re-adopts its containers by
//! listing this directory ([`ContainerRuntime::list`]): running containers keep running and
//! logging, and ones that exited meanwhile have their `exit.json`.
//!
//! **Exec.** `runc exec` in the foreground, as a child of the agent, with piped stdio, or
//! with a pseudo-terminal whose slave side is `runc`'s stdio (runc copies between it and the
//! container's own terminal, and resizes the latter on SIGWINCH).

mod attach;
pub mod fake;
mod log;
pub mod ns;
pub mod quantity;
mod runc;
mod shim;
pub mod spec;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncWrite};

pub use attach::AttachRequest;
pub use log::{CriStream, format_cri_line};
pub use runc::{Runc, ShimCommand};
pub use shim::{SHIM_ARG, SHIM_DIR_ENV, shim_main};

/// SIGKILL's number, for [`ContainerRuntime::kill`].
pub const SIGKILL: i32 = 9;
/// SIGTERM's number, for [`ContainerRuntime::kill`].
pub const SIGTERM: i32 = 15;

/// Errors of the runtime layer. `Create`/`Start` carry runc's own message (for a missing
/// binary: `exec: "nope": executable file not found in $PATH`), meant for the pod's status.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {0:?} not found")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    AlreadyExists(String),
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    #[error("{0}")]
    Spec(#[from] spec::SpecError),
    #[error("failed to create container {id}: {message}")]
    Create { id: String, message: String },
    #[error("failed to start container {id}: {message}")]
    Start { id: String, message: String },
    #[error("runc {op} {id}: {message}")]
    Runc { op: &'static str, id: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl RuntimeError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> RuntimeError {
        let context = context.into();
        move |source| RuntimeError::Io { context, source }
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// What [`ContainerRuntime::create`] needs.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// Unique among this agent's containers: letters, digits, `_`, `-` and `.`, at most 128.
    pub id: String,
    pub spec: oci_spec::runtime::Spec,
    /// The CRI log file the container's output is appended to; its directory must exist.
    pub log_path: PathBuf,
}

/// runc's view of a container, plus what the shim recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
    /// The state directory exists but runc does not know the container (a create that
    /// did not finish, or runc's state was lost).
    Unknown,
}

/// Why a container's process ended, as the kubelet names it in `terminated.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitReason {
    Completed,
    Error,
    OOMKilled,
    /// The container is gone but nobody saw how it ended (its shim was killed).
    Unknown,
}

impl ExitReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::OOMKilled => "OOMKilled",
            ExitReason::Unknown => "Unknown",
        }
    }

    /// Completed for 0, OOMKilled when the cgroup saw an OOM kill, Error otherwise.
    pub fn classify(code: i32, oom_killed: bool) -> ExitReason {
        if oom_killed {
            ExitReason::OOMKilled
        } else if code == 0 {
            ExitReason::Completed
        } else {
            ExitReason::Error
        }
    }
}

/// How a container's init process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit status, or 128 + the signal number when a signal killed it.
    pub code: i32,
    pub signal: Option<i32>,
    pub reason: ExitReason,
    pub finished_at: Option<SystemTime>,
}

/// One container's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub status: Status,
    /// The init process on the host, while it runs.
    pub pid: Option<u32>,
    pub log_path: PathBuf,
    pub created_at: Option<SystemTime>,
    pub started_at: Option<SystemTime>,
    /// Present once the container has exited and its shim recorded how.
    pub exit: Option<ExitInfo>,
}

/// What to run with [`ContainerRuntime::exec`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// Extra `KEY=value` variables on top of the container's environment.
    pub env: Vec<String>,
    pub tty: bool,
    /// Give the process a writable stdin; without it stdin is `/dev/null`.
    pub stdin: bool,
    /// Initial terminal size (columns, rows) when `tty`.
    pub tty_size: Option<(u16, u16)>,
}

/// Resizes an exec's terminal.
pub trait TerminalResize: Send + Sync {
    fn resize(&self, cols: u16, rows: u16) -> io::Result<()>;
}

pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;
pub type ExitFuture = Pin<Box<dyn Future<Output = Result<i32>> + Send>>;

/// A process started by [`ContainerRuntime::exec`]. With a terminal, `stdout` carries the
/// terminal's output and `stderr` is `None`. `exit` resolves to the exit code (128 +
/// signal when killed by one); dropping it does not kill the process.
pub struct ExecProcess {
    pub stdin: Option<BoxWrite>,
    pub stdout: Option<BoxRead>,
    pub stderr: Option<BoxRead>,
    pub terminal: Option<Arc<dyn TerminalResize>>,
    pub exit: ExitFuture,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("terminal", &self.terminal.is_some())
            .finish_non_exhaustive()
    }
}

/// The OCI annotation that asks the runtime to keep a container's stdin open for attach
/// (`"true"`); [`spec::build`] sets it from the container's `stdin`.
pub const STDIN_ANNOTATION: &str = "io.rkube.stdin";
/// The annotation for `stdinOnce`: stdin closes when the first attach session ends.
pub const STDIN_ONCE_ANNOTATION: &str = "io.rkube.stdin-once";

/// A session attached to a container's main process by [`ContainerRuntime::attach`].
/// `stdin` is present when asked for and the container keeps stdin open; with a terminal,
/// `stdout` carries the terminal's output, `stderr` is `None` and `terminal` resizes it.
/// The output streams end when the container exits; dropping the session detaches.
pub struct AttachStreams {
    pub stdin: Option<BoxWrite>,
    pub stdout: Option<BoxRead>,
    pub stderr: Option<BoxRead>,
    pub terminal: Option<Arc<dyn TerminalResize>>,
}

impl std::fmt::Debug for AttachStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachStreams")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("terminal", &self.terminal.is_some())
            .finish()
    }
}

/// The container runtime as the agent sees it.
#[async_trait::async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Creates the container (its process exists but has not run the entrypoint yet) and
    /// returns its state. A missing command fails here with runc's message.
    async fn create(&self, request: CreateRequest) -> Result<ContainerState>;
    /// Runs the entrypoint of a created container.
    async fn start(&self, id: &str) -> Result<()>;
    async fn state(&self, id: &str) -> Result<ContainerState>;
    /// Sends a signal to the container's init process. Not an error when it already exited.
    async fn kill(&self, id: &str, signal: i32) -> Result<()>;
    /// Kills the container if it still runs and removes everything the runtime keeps of it
    /// (runc state, cgroup, state directory). The log file stays.
    async fn delete(&self, id: &str) -> Result<()>;
    async fn exec(&self, id: &str, request: ExecRequest) -> Result<ExecProcess>;
    /// Every container this runtime knows, including ones that exited.
    async fn list(&self) -> Result<Vec<ContainerState>>;
    /// Attaches to the container's main process: its output from now on, and its stdin
    /// when the container was created with [`STDIN_ANNOTATION`]. The default says the
    /// runtime cannot attach, so that other implementations need not.
    async fn attach(&self, id: &str, request: AttachRequest) -> Result<AttachStreams> {
        let _ = request;
        Err(RuntimeError::Runc { op: "attach", id: id.to_string(), message: "attach is not supported".into() })
    }
}

/// How often [`stop`] looks at the container while waiting.
const STOP_POLL: Duration = Duration::from_millis(20);
/// How long [`stop`] waits after SIGKILL before giving up.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops a container the Kubernetes way: SIGTERM, up to `grace` for it to exit, then SIGKILL.
/// Returns how it ended; a container whose end nobody recorded reports 137 and
/// [`ExitReason::Unknown`].
pub async fn stop(runtime: &dyn ContainerRuntime, id: &str, grace: Duration) -> Result<ExitInfo> {
    let state = runtime.state(id).await?;
    if state.status == Status::Stopped || state.status == Status::Unknown {
        return Ok(exit_or_unknown(runtime, id, state).await);
    }
    if state.status == Status::Created || grace.is_zero() {
        runtime.kill(id, SIGKILL).await?;
    } else {
        runtime.kill(id, SIGTERM).await?;
        if let Some(exit) = wait_exit(runtime, id, grace).await? {
            return Ok(exit);
        }
        runtime.kill(id, SIGKILL).await?;
    }
    match wait_exit(runtime, id, KILL_TIMEOUT).await? {
        Some(exit) => Ok(exit),
        None => {
            let state = runtime.state(id).await?;
            Ok(exit_or_unknown(runtime, id, state).await)
        }
    }
}

async fn wait_exit(runtime: &dyn ContainerRuntime, id: &str, limit: Duration) -> Result<Option<ExitInfo>> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let state = runtime.state(id).await?;
        if let Some(exit) = state.exit {
            return Ok(Some(exit));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(STOP_POLL).await;
    }
}

/// The recorded exit, waiting briefly for a shim that is still writing it.
async fn exit_or_unknown(runtime: &dyn ContainerRuntime, id: &str, state: ContainerState) -> ExitInfo {
    if let Some(exit) = state.exit {
        return exit;
    }
    if let Ok(Some(exit)) = wait_exit(runtime, id, Duration::from_secs(2)).await {
        return exit;
    }
    ExitInfo { code: 128 + SIGKILL, signal: None, reason: ExitReason::Unknown, finished_at: None }
}

/// Checks a container id: non-empty, at most 128 of `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if ok { Ok(()) } else { Err(RuntimeError::InvalidId(id.to_string())) }
}

#[cfg(test)]
mod tests;
