//! The cluster's long-running processes: started detached, tracked by PID files, and only
//! ever signalled after checking that the PID still is the process that was started.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use rkube_agent::net::{Netns, netns};

use super::state::write_atomic;

/// Environment variables of the `rkube` command line that would override what `up` passes a
/// server or an agent, or point it elsewhere, if the user happened to have them set.
const OVERRIDING_ENV: &[&str] =
    &["RKUBE_SERVER", "RKUBE_TOKEN", "KUBECONFIG", "RKUBE_DATA_DIR", "RKUBE_LISTEN", "RKUBE_DATASTORE"];

/// One of the cluster's processes: `rkube <role> ... --data-dir <data_dir> ...`. The role and
/// the data directory on its command line identify it, so a PID that the kernel reused for
/// another process is never taken for it.
#[derive(Clone, Debug)]
pub struct Tracked {
    pub role: &'static str,
    pub data_dir: PathBuf,
    pub pid_file: PathBuf,
}

impl Tracked {
    /// The recorded PID, if it still is this process (alive, not a zombie).
    pub fn running_pid(&self) -> Option<Pid> {
        let pid: i32 = std::fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()?;
        (pid > 0 && is_process(pid, self.role, &self.data_dir)).then(|| Pid::from_raw(pid))
    }

    /// Starts the process detached: a session of its own (so no terminal signal reaches it),
    /// stdin from /dev/null, stdout and stderr appended to `log`, and, for a node, inside the
    /// node's network namespace. Only the network namespace changes: the process shares the
    /// host's mount namespace, so its mounts are the host's to see and to clean up.
    ///
    /// The `setsid` program starts a new session and then execs `rkube`, so the PID is the
    /// process's own. The namespace is entered by forking from a thread that is inside it
    /// ([`netns::run_in`]), which the child inherits.
    pub fn spawn(&self, exe: &Path, args: &[OsString], netns: Option<&str>, log: &Path) -> anyhow::Result<Child> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening the log {}", log.display()))?;
        let err = out.try_clone().with_context(|| format!("opening the log {}", log.display()))?;
        let mut command = Command::new("setsid");
        command.arg(exe).args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        for var in OVERRIDING_ENV {
            command.env_remove(var);
        }
        // The output goes to a log file, where colour codes only get in the way.
        command.env("NO_COLOR", "1");
        let child = match netns {
            Some(name) => netns::run_in(&Netns::named(name), || command.spawn())
                .with_context(|| format!("entering network namespace {name}"))?,
            None => command.spawn(),
        }
        .with_context(|| format!("starting `setsid {} {}`", exe.display(), self.role))?;
        write_atomic(&self.pid_file, child.id().to_string().as_bytes())?;
        Ok(child)
    }

    /// Waits until the started process has become `rkube <role>` (it starts as `setsid`), so
    /// that its PID file is usable at once; `None` if it exited first.
    pub fn confirm_started(&self, child: &mut Child, deadline: Instant) -> bool {
        let Ok(pid) = i32::try_from(child.id()) else { return false };
        loop {
            if is_process(pid, self.role, &self.data_dir) {
                return true;
            }
            if !matches!(child.try_wait(), Ok(None)) || Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Whether `pid` is a live `rkube <role>` whose `--data-dir` is `data_dir`.
pub fn is_process(pid: i32, role: &str, data_dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let data_dir = data_dir.as_os_str().as_encoded_bytes();
    let role_matches = args.get(1) == Some(&role.as_bytes());
    let dir_matches = args.windows(2).any(|pair| pair[0] == b"--data-dir" && pair[1] == data_dir)
        || args.iter().any(|arg| arg.strip_prefix(b"--data-dir=") == Some(data_dir));
    role_matches && dir_matches && !is_zombie(pid)
}

/// A zombie has exited; only its parent's `wait` is missing. It counts as gone.
pub fn is_zombie(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    // The state follows the command name, which is in parentheses and may contain anything.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()).is_none_or(|state| state == 'Z')
}

/// Sends `signal` to `pid`; a process that is already gone is not an error.
pub fn signal(pid: Pid, signal: Signal) {
    let _ = nix::sys::signal::kill(pid, signal);
}

/// Stops processes: SIGTERM to each that still is what was started, then SIGKILL to those
/// still running after `grace`, then waits up to a few seconds for them to go. Returns the
/// ones still running at the end, which only a process stuck in the kernel can be.
pub fn terminate(processes: &[Tracked], grace: Duration) -> Vec<(Tracked, Pid)> {
    let mut running: Vec<(Tracked, Pid)> =
        processes.iter().filter_map(|p| p.running_pid().map(|pid| (p.clone(), pid))).collect();
    for (_, pid) in &running {
        signal(*pid, Signal::SIGTERM);
    }
    wait_gone(&mut running, Instant::now() + grace);
    for (tracked, pid) in &running {
        // Checked again: the process may have exited and its PID been reused meanwhile.
        if is_process(pid.as_raw(), tracked.role, &tracked.data_dir) {
            signal(*pid, Signal::SIGKILL);
        }
    }
    wait_gone(&mut running, Instant::now() + Duration::from_secs(5));
    running
}

/// SIGKILL at once, as when a machine dies, then waits for the process to go.
pub fn kill_now(process: &Tracked) -> bool {
    terminate(std::slice::from_ref(process), Duration::ZERO).is_empty()
}

fn wait_gone(running: &mut Vec<(Tracked, Pid)>, deadline: Instant) {
    loop {
        running.retain(|(tracked, pid)| is_process(pid.as_raw(), tracked.role, &tracked.data_dir));
        if running.is_empty() || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_not_a_cluster_process() {
        let me = std::process::id() as i32;
        assert!(!is_zombie(me));
        assert!(!is_process(me, "server", Path::new("/nonexistent")));
        assert!(!is_process(i32::MAX, "server", Path::new("/nonexistent")));
    }

    #[test]
    fn a_started_process_is_recognised_by_role_and_data_dir_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tracked = Tracked { role: "-c", data_dir: dir.path().join("data"), pid_file: dir.path().join("pid") };
        // `sh -c CMD --data-dir DIR` stands in for `rkube server --data-dir DIR`: the check
        // looks at the first argument and the data directory, not at the program.
        let sh = Path::new("/bin/sh");
        let args: Vec<OsString> =
            vec!["-c".into(), "sleep 5; true".into(), "--data-dir".into(), tracked.data_dir.clone().into()];
        let mut child = tracked.spawn(sh, &args, None, &dir.path().join("log")).expect("spawn");
        assert!(tracked.confirm_started(&mut child, Instant::now() + Duration::from_secs(5)));
        let pid = tracked.running_pid().expect("running");
        assert_eq!(pid.as_raw() as u32, child.id());
        let other = Tracked { data_dir: dir.path().join("other"), ..tracked.clone() };
        assert!(other.running_pid().is_none());
        // `terminate` must see it go even though, as our child, it lingers as a zombie.
        let left = terminate(std::slice::from_ref(&tracked), Duration::from_secs(2));
        assert!(left.is_empty());
        let _ = child.wait();
        assert!(tracked.running_pid().is_none());
    }
}
