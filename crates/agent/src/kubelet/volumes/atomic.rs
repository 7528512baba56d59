//! Writes a volume's files so that a reader never sees a half-updated set: kubelet's
//! `AtomicWriter` (`pkg/volume/util/atomic_writer.go`).
//!
//! ```text
//! <volume>/..2026_12_02_10_47_50.123456   the current files, a fresh directory per update
//! <volume>/..data -> ..2026_12_02_10_47_50.123456
//! <volume>/tls.crt -> ..data/tls.crt      one symlink per top-level name
//! ```
//!
//! An update writes a new timestamped directory, then points `..data` at it with a rename of a
//! temporary symlink, which is atomic: a reader resolving `tls.crt` gets either all old or all
//! new files. The old directory is removed afterwards, so a file opened before the update keeps
//! its old contents until closed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path};

pub(crate) const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// One file of a volume's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits, `0o644` by default.
    pub mode: u32,
    /// The owner UID (`items[].user`), root when unset.
    pub user: Option<u32>,
}

/// Checks a payload path as kubelet's `validatePath` does: relative, not empty, at most 4096
/// bytes, no `..` element and no leading `..`.
pub fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("invalid path: must not be empty".to_owned());
    }
    if path.len() > 4096 {
        return Err(format!("invalid path: must be less than or equal to 4096 characters: {path:?}"));
    }
    if Path::new(path).is_absolute() {
        return Err(format!("invalid path: must be relative path: {path}"));
    }
    if path.split('/').any(|element| element == "..") {
        return Err(format!("invalid path: must not contain '..': {path}"));
    }
    if path.starts_with("..") {
        return Err(format!("invalid path: must not start with '..': {path}"));
    }
    Ok(())
}

/// Cleans a payload path like Go's `filepath.Clean` does for relative paths: no `.`
/// elements and no repeated or trailing slashes.
pub fn clean_path(path: &str) -> String {
    let parts: Vec<&str> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    parts.join("/")
}

/// The first element of each payload path: the names visible at the volume's top level.
fn top_level_names(payload: &BTreeMap<String, FileProjection>) -> BTreeSet<String> {
    payload.keys().filter_map(|p| p.split('/').next().map(str::to_owned)).collect()
}

/// The directory `..data` currently points to, if any.
fn current_data_dir(target: &Path) -> Option<String> {
    let link = fs::read_link(target.join(DATA_DIR)).ok()?;
    link.to_str().map(str::to_owned)
}

/// Every regular file under `dir`, by its path relative to `dir`.
fn list_files(dir: &Path, prefix: &str, out: &mut BTreeMap<String, fs::Metadata>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let meta = entry.metadata()?;
        if meta.is_dir() {
            list_files(&entry.path(), &rel, out)?;
        } else {
            out.insert(rel, meta);
        }
    }
    Ok(())
}

/// True when the files under `data_dir` are exactly `payload`: the same paths, bytes, modes
/// and owners. Modes are compared without the bits `fs_group` adds.
fn matches_payload(data_dir: &Path, payload: &BTreeMap<String, FileProjection>, fs_group: Option<u32>) -> bool {
    let mut existing = BTreeMap::new();
    if list_files(data_dir, "", &mut existing).is_err() {
        return false;
    }
    if existing.len() != payload.len() {
        return false;
    }
    for (path, file) in payload {
        let Some(meta) = existing.get(path) else { return false };
        let want_mode = file.mode | if fs_group.is_some() { 0o440 } else { 0 };
        if meta.permissions().mode() & 0o7777 != want_mode & 0o7777 {
            return false;
        }
        if meta.uid() != file.user.unwrap_or(0) || fs_group.is_some_and(|g| meta.gid() != g) {
            return false;
        }
        match fs::read(data_dir.join(path)) {
            Ok(bytes) if bytes == file.data => {}
            _ => return false,
        }
    }
    true
}

/// A fresh `..<timestamp>.<random>` directory name, unique within the volume.
fn new_data_dir_name() -> String {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y_%m_%d_%H_%M_%S");
    format!("..{stamp}.{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Gives the group `fs_group` read access (and the directories setgid), as kubelet's
/// `SetVolumeOwnership` does for read-only volumes. Symlinks only change group.
pub fn apply_fs_group(path: &Path, fs_group: u32, writable: bool) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    std::os::unix::fs::lchown(path, None, Some(fs_group))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mask = if writable { 0o660 } else { 0o440 };
    if meta.is_dir() {
        mask |= 0o2000 | 0o110;
        for entry in fs::read_dir(path)? {
            apply_fs_group(&entry?.path(), fs_group, writable)?;
        }
    }
    fs::set_permissions(path, fs::Permissions::from_mode((meta.permissions().mode() & 0o7777) | mask))
}

/// Makes the files in `target` exactly `payload`, atomically. Returns whether anything
/// changed; an unchanged payload leaves the volume untouched (only missing user-visible
/// symlinks are put back). Files whose bytes did not change keep their modification time.
pub fn write(target: &Path, payload: &BTreeMap<String, FileProjection>, fs_group: Option<u32>) -> io::Result<bool> {
    for path in payload.keys() {
        validate_path(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    }
    let old_dir = current_data_dir(target);
    let unchanged = old_dir.as_ref().is_some_and(|old| matches_payload(&target.join(old), payload, fs_group));
    let names = top_level_names(payload);
    if unchanged {
        create_visible_links(target, &names)?;
        return Ok(false);
    }

    let new_name = new_data_dir_name();
    let new_dir = target.join(&new_name);
    if let Err(err) = write_data_dir(&new_dir, old_dir.as_ref().map(|o| target.join(o)).as_deref(), payload, fs_group) {
        let _ = fs::remove_dir_all(&new_dir);
        return Err(err);
    }

    // The swap: a temporary symlink renamed over `..data` replaces it in one step.
    let tmp_link = target.join(DATA_DIR_TMP);
    match fs::remove_file(&tmp_link) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    std::os::unix::fs::symlink(&new_name, &tmp_link)?;
    if let Some(group) = fs_group {
        std::os::unix::fs::lchown(&tmp_link, None, Some(group))?;
    }
    fs::rename(&tmp_link, target.join(DATA_DIR))?;

    // Names that left the payload disappear; new ones appear.
    let old_names = visible_names(target)?;
    for stale in old_names.difference(&names) {
        let path = target.join(stale);
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&path)?;
        }
    }
    create_visible_links(target, &names)?;

    if let Some(old) = old_dir.filter(|o| *o != new_name && o.starts_with("..") && o != DATA_DIR && !o.contains('/')) {
        fs::remove_dir_all(target.join(old))?;
    }
    Ok(true)
}

/// The user-visible entries of a volume: everything not starting with `..`.
fn visible_names(target: &Path) -> io::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(target)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") {
            out.insert(name);
        }
    }
    Ok(out)
}

fn create_visible_links(target: &Path, names: &BTreeSet<String>) -> io::Result<()> {
    for name in names {
        let path = target.join(name);
        match fs::symlink_metadata(&path) {
            Ok(_) => continue,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        std::os::unix::fs::symlink(format!("{DATA_DIR}/{name}"), &path)?;
    }
    Ok(())
}

/// Writes `payload` into the new directory `dir`, with modes set explicitly so that the
/// process umask cannot change them.
fn write_data_dir(
    dir: &Path,
    old_dir: Option<&Path>,
    payload: &BTreeMap<String, FileProjection>,
    fs_group: Option<u32>,
) -> io::Result<()> {
    fs::create_dir(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent().filter(|p| *p != dir) {
            fs::create_dir_all(parent)?;
            let mut p = parent;
            while p != dir {
                fs::set_permissions(p, fs::Permissions::from_mode(0o755))?;
                p = match p.parent() {
                    Some(up) => up,
                    None => break,
                };
            }
        }
        let mut f = fs::OpenOptions::new().write(true).create_new(true).open(&full)?;
        f.write_all(&file.data)?;
        f.set_permissions(fs::Permissions::from_mode(file.mode & 0o7777))?;
        if let Some(uid) = file.user {
            std::os::unix::fs::fchown(&f, Some(uid), None)?;
        }
        // Keeping the old modification time of an unchanged file lets age-based checks
        // (the token refresh) see how old the contents really are.
        if let Some(old) = old_dir.map(|o| o.join(path))
            && let Ok(old_meta) = fs::metadata(&old)
            && old_meta.len() == file.data.len() as u64
            && fs::read(&old).is_ok_and(|b| b == file.data)
            && let Ok(mtime) = old_meta.modified()
        {
            f.set_times(fs::FileTimes::new().set_modified(mtime))?;
        }
    }
    if let Some(group) = fs_group {
        apply_fs_group(dir, group, false)?;
    }
    Ok(())
}
