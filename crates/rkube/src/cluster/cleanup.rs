//! What the agents leave on the host besides their processes: runc containers and their
//! shims, mounts under the cluster's directory, and cgroups. Everything is found from the
//! cluster's own directories and names, never by a pattern that could match someone else's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::process;

/// The cgroup parent of a node's pods (`linux.cgroupsPath` is `/<parent>/pod<uid>/<id>`).
pub fn cgroup_parent(node: &str) -> String {
    format!("rkube-{node}")
}

/// Deletes every runc container of the agent whose data directory is `node_dir` (its runc
/// root is `node_dir/runc`), then kills the container shims that are still running. Returns
/// what could not be done, as warnings: cleanup goes on past a failure.
pub fn kill_containers(node_dir: &Path) -> Vec<String> {
    let mut warnings = Vec::new();
    let root = node_dir.join("runc");
    if root.is_dir() {
        match Command::new("runc").arg("--root").arg(&root).args(["list", "-q"]).stderr(Stdio::piped()).output() {
            Ok(out) if out.status.success() => {
                let ids = String::from_utf8_lossy(&out.stdout);
                let deletes: Vec<_> = ids
                    .lines()
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(|id| {
                        let child = Command::new("runc")
                            .arg("--root")
                            .arg(&root)
                            .args(["delete", "--force", id])
                            .stdout(Stdio::null())
                            .stderr(Stdio::piped())
                            .spawn();
                        (id.to_owned(), child)
                    })
                    .collect();
                for (id, child) in deletes {
                    match child.and_then(|c| c.wait_with_output()) {
                        Ok(out) if out.status.success() => {}
                        Ok(out) => warnings
                            .push(format!("runc delete --force {id}: {}", String::from_utf8_lossy(&out.stderr).trim())),
                        Err(e) => warnings.push(format!("runc delete --force {id}: {e}")),
                    }
                }
            }
            Ok(out) => warnings.push(format!(
                "runc --root {} list: {}",
                root.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => warnings.push(format!("running runc: {e}")),
        }
    }
    for dir in container_dirs(node_dir) {
        if let Some(pid) = shim_pid(&dir) {
            process::signal(pid, Signal::SIGKILL);
        }
    }
    warnings
}

/// The shims still running for a node; `down` checks that none is left.
pub fn running_shims(node_dir: &Path) -> Vec<i32> {
    container_dirs(node_dir).iter().filter_map(|dir| shim_pid(dir)).map(Pid::as_raw).collect()
}

fn container_dirs(node_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(node_dir.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect()
}

/// The PID in a container directory's `shim.pid`, if that process is still the shim of this
/// container: `rkube __shim` working in this very directory (a shim makes its container
/// directory its working directory).
fn shim_pid(container_dir: &Path) -> Option<Pid> {
    let pid: i32 = std::fs::read_to_string(container_dir.join("shim.pid")).ok()?.trim().parse().ok()?;
    if pid <= 0 || process::is_zombie(pid) {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_shim = cmdline.split(|b| *b == 0).nth(1) == Some(rkube_agent::runtime::SHIM_ARG.as_bytes());
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let here = std::fs::canonicalize(container_dir).ok()?;
    (is_shim && cwd == here).then(|| Pid::from_raw(pid))
}

/// Every mount point at or under `dir` in this process's mount namespace, in the order to
/// unmount them: deepest first, and of mounts on the same point the most recent first.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut mounts: Vec<(usize, PathBuf)> = mountinfo
        .lines()
        .enumerate()
        .filter_map(|(line_no, line)| Some((line_no, PathBuf::from(unescape(line.split(' ').nth(4)?)))))
        .filter(|(_, point)| point.starts_with(dir))
        .collect();
    mounts.sort_by(|(a_line, a), (b_line, b)| {
        b.components().count().cmp(&a.components().count()).then(b_line.cmp(a_line))
    });
    mounts.into_iter().map(|(_, point)| point).collect()
}

/// Unmounts everything at or under `dir`. Lazy unmounts (`MNT_DETACH`), since a container
/// being killed may still hold a file open. Returns the mount points that could not be
/// unmounted.
pub fn unmount_all_under(dir: &Path) -> Vec<PathBuf> {
    // A stack of mounts on one point needs several rounds; a handful is plenty.
    for _ in 0..8 {
        let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
        let mounts = mounts_under(&mountinfo, dir);
        if mounts.is_empty() {
            return mounts;
        }
        for point in &mounts {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    std::fs::read_to_string("/proc/self/mountinfo").map(|info| mounts_under(&info, dir)).unwrap_or_default()
}

/// Removes a node's cgroup subtree (`rkube-<node>`) from every hierarchy. Processes still in
/// it belong to that node's containers by construction, since the name is the node's; they
/// are killed first. Returns the directories that could not be removed.
pub fn remove_cgroups(node: &str) -> Vec<PathBuf> {
    let parent = format!("/{}", cgroup_parent(node));
    let roots = rkube_agent::runtime::ns::cgroup_dirs(&parent);
    let mut dirs: Vec<PathBuf> = Vec::new();
    for root in roots.iter().filter(|r| r.is_dir()) {
        collect_dirs(root, &mut dirs);
    }
    if dirs.is_empty() {
        return dirs;
    }
    for dir in &dirs {
        for pid in std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines() {
            if let Ok(pid) = pid.trim().parse::<i32>()
                && pid > 0
            {
                process::signal(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
    // Deepest first; a cgroup can be removed once its processes have left it, which takes a
    // moment after SIGKILL.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        dirs.retain(|dir| match std::fs::remove_dir(dir) {
            Ok(()) => false,
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        });
        if dirs.is_empty() || Instant::now() >= deadline {
            return dirs;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), out);
        }
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
            && let Ok(value) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(value);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
100 22 0:50 / /data/c/images/containers/a/rootfs rw shared:2 - overlay overlay rw,lowerdir=x
101 22 0:51 / /data/c/nodes/c-node1/pods/u/volumes/s rw shared:3 - tmpfs tmpfs rw
102 101 0:52 / /data/c/nodes/c-node1/pods/u/volumes/s/sub rw shared:4 - tmpfs tmpfs rw
103 22 0:53 / /data/c rw shared:5 - tmpfs tmpfs rw
104 22 0:54 / /data/cc/x rw shared:6 - tmpfs tmpfs rw
105 22 0:55 / /data/c/with\\040space rw shared:7 - tmpfs tmpfs rw
106 100 0:56 / /data/c/images/containers/a/rootfs rw shared:8 - tmpfs tmpfs rw
";

    #[test]
    fn mounts_under_a_dir_deepest_and_latest_first_and_nothing_else() {
        let mounts = mounts_under(MOUNTINFO, Path::new("/data/c"));
        let mounts: Vec<&str> = mounts.iter().map(|p| p.to_str().expect("utf-8")).collect();
        assert_eq!(
            mounts,
            vec![
                "/data/c/nodes/c-node1/pods/u/volumes/s/sub",
                "/data/c/nodes/c-node1/pods/u/volumes/s",
                "/data/c/images/containers/a/rootfs",
                "/data/c/images/containers/a/rootfs",
                "/data/c/with space",
                "/data/c",
            ]
        );
    }

    #[test]
    fn unescape_leaves_bad_escapes_alone() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\04"), "a\\04");
        assert_eq!(unescape("a\\999"), "a\\999");
        assert_eq!(unescape("\\134"), "\\");
    }
}
