//! The mounts behind the volumes: tmpfs mounts made with the mount syscall, and the mount table
//! (`/proc/self/mountinfo`), which is how teardown finds them again with no memory of its own.

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

/// One line of `/proc/self/mountinfo`, the parts teardown needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u64,
    pub mount_point: PathBuf,
    pub fs_type: String,
}

/// Undoes the kernel's octal escapes (`\040` for a space) in a mountinfo path.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = bytes[i + 1..i + 4].iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            // Three octal digits can exceed a byte (\777); the kernel never writes those.
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        if fields.len() < 5 || sep + 1 >= fields.len() {
            continue;
        }
        let Ok(id) = fields[0].parse() else { continue };
        let mut mount_point = unescape(fields[4]);
        // A mount whose directory was deleted is listed with this suffix; it is still a mount.
        if let Some(stripped) = mount_point.strip_suffix(" (deleted)") {
            mount_point = stripped.to_owned();
        }
        out.push(MountEntry { id, mount_point: PathBuf::from(mount_point), fs_type: fields[sep + 1].to_owned() });
    }
    out
}

/// The current mount table of this process's mount namespace.
pub fn mount_table() -> io::Result<Vec<MountEntry>> {
    Ok(parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// True when `path` is a mount point in `table`.
pub fn is_mount_point(table: &[MountEntry], path: &Path) -> bool {
    table.iter().any(|m| m.mount_point == path)
}

/// Mounts a fresh tmpfs at `dir`, of at most `size_bytes` when given.
pub fn mount_tmpfs(dir: &Path, size_bytes: Option<u64>) -> io::Result<()> {
    let data = size_bytes.map(|s| format!("size={s}"));
    nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, data.as_deref())
        .map_err(io::Error::from)
}

/// The mounts at or below `root`, deepest (and most recently mounted) first, which is the
/// order they can be unmounted in.
pub fn mounts_under(table: &[MountEntry], root: &Path) -> Vec<MountEntry> {
    let mut found: Vec<MountEntry> = table.iter().filter(|m| m.mount_point.starts_with(root)).cloned().collect();
    found.sort_by(|a, b| {
        let depth = |m: &MountEntry| m.mount_point.components().count();
        depth(b).cmp(&depth(a)).then(b.id.cmp(&a.id))
    });
    found
}

/// Unmounts `path`. A mount still in use (a process has a file open on it) is detached
/// instead, so that it disappears from the tree now and is freed when the last user lets go.
pub fn unmount(path: &Path) -> io::Result<()> {
    match nix::mount::umount2(path, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EBUSY) => match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
            Err(err) => Err(err.into()),
        },
        Err(err) => Err(err.into()),
    }
}

/// Unmounts everything at or below `root`, repeating while mounts remain (stacked mounts on
/// one path come off one at a time), up to a bound so that a mount that cannot be removed
/// gives an error instead of a loop.
pub fn unmount_all_under(root: &Path) -> io::Result<()> {
    for _ in 0..16 {
        let found = mounts_under(&mount_table()?, root);
        if found.is_empty() {
            return Ok(());
        }
        for m in found {
            unmount(&m.mount_point)?;
        }
    }
    let left = mounts_under(&mount_table()?, root);
    if left.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!("mounts remain under {}: {:?}", root.display(), left)))
    }
}
