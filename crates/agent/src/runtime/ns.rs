//! Pod namespaces kept alive as bind-mounted files, and the cgroup files the runtime reads.

use std::io;
use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Creates a persistent IPC namespace bind-mounted at `path` (the file is created; its
/// directory must exist), with `unshare --ipc=<path> true`. Remove it with
/// [`remove_namespace`].
pub async fn create_ipc_namespace(path: &Path) -> io::Result<()> {
    std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    let mut arg = std::ffi::OsString::from("--ipc=");
    arg.push(path);
    let out = tokio::process::Command::new("unshare").arg(arg).arg("true").output().await?;
    if out.status.success() {
        Ok(())
    } else {
        let _ = std::fs::remove_file(path);
        Err(io::Error::other(format!("unshare --ipc failed: {}", String::from_utf8_lossy(&out.stderr).trim())))
    }
}

/// Unmounts a namespace file made by [`create_ipc_namespace`] and removes it. Missing is fine.
pub fn remove_namespace(path: &Path) -> io::Result<()> {
    match rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// True on a unified (cgroup v2 only) hierarchy.
pub fn cgroup_v2() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// The directories of a cgroup path (`linux.cgroupsPath`) in every hierarchy: one on cgroup
/// v2, one per mounted controller on v1 (and the hybrid layout's `unified`).
pub fn cgroup_dirs(cgroups_path: &str) -> Vec<PathBuf> {
    let rel = cgroups_path.trim_start_matches('/');
    if cgroup_v2() {
        return vec![Path::new(CGROUP_ROOT).join(rel)];
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(CGROUP_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path().join(rel))
        .collect();
    dirs.sort();
    dirs
}

/// The file that holds a cgroup's memory limit: `memory.max` (v2) or
/// `memory/…/memory.limit_in_bytes` (v1).
pub fn memory_limit_file(cgroups_path: &str) -> PathBuf {
    let rel = cgroups_path.trim_start_matches('/');
    if cgroup_v2() {
        Path::new(CGROUP_ROOT).join(rel).join("memory.max")
    } else {
        Path::new(CGROUP_ROOT).join("memory").join(rel).join("memory.limit_in_bytes")
    }
}

/// How many processes the OOM killer killed in the cgroup (`oom_kill` of `memory.events` on
/// v2, of `memory.oom_control` on v1). `None` when the cgroup is gone.
pub fn oom_kill_count(cgroups_path: &str) -> Option<u64> {
    let rel = cgroups_path.trim_start_matches('/');
    let file = if cgroup_v2() {
        Path::new(CGROUP_ROOT).join(rel).join("memory.events")
    } else {
        Path::new(CGROUP_ROOT).join("memory").join(rel).join("memory.oom_control")
    };
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|n| n.trim().parse().ok())
}

/// Removes a cgroup directory (empty of processes and children) from every hierarchy,
/// e.g. a pod's cgroup after its containers were deleted. Missing directories are fine.
pub fn remove_cgroup(cgroups_path: &str) -> io::Result<()> {
    if cgroups_path.trim_matches('/').is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "refusing to remove the root cgroup"));
    }
    for dir in cgroup_dirs(cgroups_path) {
        match std::fs::remove_dir(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}
