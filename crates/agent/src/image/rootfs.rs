//! Container root filesystems: an overlayfs per container over the image's shared layers.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags, mount, unmount};

use super::{Image, ImageError, ImageStore, IoContext, Result};

/// The kernel copies mount options into one page, so longer options cannot be passed.
const MOUNT_OPTIONS_MAX: usize = 4095;
/// How many mounts stacked on one destination release will take off before giving up.
const MAX_STACKED_MOUNTS: usize = 8;

/// A mounted container root filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rootfs {
    pub container_id: String,
    /// Where the overlay is mounted; a runc bundle's `root.path`.
    pub path: PathBuf,
    /// The container's private writable layer.
    pub upper_dir: PathBuf,
    pub work_dir: PathBuf,
    /// The image's unpacked layers, bottom first, shared with every other container of
    /// images that have them.
    pub lower_dirs: Vec<PathBuf>,
}

pub(crate) fn prepare(store: &ImageStore, container_id: &str, image: &Image, dest: &Path) -> Result<Rootfs> {
    validate_container_id(container_id)?;
    if image.layers.is_empty() {
        return Err(ImageError::NoLayers(image.reference.clone()));
    }
    let bottom_first = store.unpack(image)?;
    // Overlayfs refuses the same directory twice among its layers. An image may list one layer
    // twice; keeping only the topmost copy gives the same merged tree, because that copy
    // provides every file the lower one would.
    let mut seen = HashSet::new();
    let mut top_first: Vec<PathBuf> = Vec::new();
    for dir in bottom_first.iter().rev() {
        if seen.insert(dir.clone()) {
            top_first.push(dir.clone());
        }
    }

    fs::create_dir_all(dest).at("create", dest)?;
    let dest = fs::canonicalize(dest).at("resolve", dest)?;
    if is_mount_point(&dest).at("read mounts for", &dest)? {
        return Err(ImageError::AlreadyMounted(dest));
    }

    let container_dir = store.containers_dir().join(container_id);
    // A directory left by a container of the same id that was never released (the agent
    // crashed) holds a stale writable layer; a new container must start from the image.
    remove_dir_if_exists(&container_dir)?;
    let upper_dir = container_dir.join("upper");
    let work_dir = container_dir.join("work");
    fs::create_dir_all(&upper_dir).at("create", &upper_dir)?;
    fs::create_dir_all(&work_dir).at("create", &work_dir)?;

    let mounted = mount_overlay(&dest, &top_first, &upper_dir, &work_dir);
    if let Err(err) = mounted {
        // Nothing uses the fresh directories; leaving them would only confuse a later prepare.
        let _ = fs::remove_dir_all(&container_dir);
        return Err(err);
    }
    let lower_dirs = top_first.into_iter().rev().collect();
    Ok(Rootfs { container_id: container_id.to_string(), path: dest, upper_dir, work_dir, lower_dirs })
}

fn mount_overlay(dest: &Path, top_first: &[PathBuf], upper_dir: &Path, work_dir: &Path) -> Result<()> {
    for path in top_first.iter().map(PathBuf::as_path).chain([upper_dir, work_dir]) {
        let text = path.to_string_lossy();
        if text.contains([':', ',']) {
            return Err(ImageError::UnusablePath(path.to_path_buf()));
        }
    }
    let lowers: Vec<String> = top_first.iter().map(|dir| dir.to_string_lossy().into_owned()).collect();
    let options =
        format!("lowerdir={},upperdir={},workdir={}", lowers.join(":"), upper_dir.display(), work_dir.display());
    if options.len() > MOUNT_OPTIONS_MAX {
        return Err(ImageError::MountOptionsTooLong { path: dest.to_path_buf(), len: options.len() });
    }
    // Paths cannot contain NUL bytes, so this only fails on a broken invariant.
    let options = CString::new(options).map_err(|err| ImageError::Io {
        action: "build mount options for",
        path: dest.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, err),
    })?;
    mount("overlay", dest, "overlay", MountFlags::empty(), Some(options.as_c_str()))
        .map_err(|source| ImageError::Mount { path: dest.to_path_buf(), source })
}

pub(crate) fn release(store: &ImageStore, container_id: &str, dest: &Path) -> Result<()> {
    validate_container_id(container_id)?;
    match fs::canonicalize(dest) {
        Ok(dest) => {
            for _ in 0..MAX_STACKED_MOUNTS {
                if !is_mount_point(&dest).at("read mounts for", &dest)? {
                    break;
                }
                match unmount(&dest, UnmountFlags::empty()) {
                    Ok(()) => {}
                    // Something still has files open in the rootfs (a straggling exec, say).
                    // Detaching makes the mount disappear from here now and from the kernel
                    // when the last user goes, which is what releasing has to achieve.
                    Err(Errno::BUSY) => unmount(&dest, UnmountFlags::DETACH)
                        .map_err(|source| ImageError::Unmount { path: dest.clone(), source })?,
                    // Someone else unmounted it between the check and now.
                    Err(Errno::INVAL) => break,
                    Err(source) => return Err(ImageError::Unmount { path: dest.clone(), source }),
                }
            }
            match fs::remove_dir(&dest) {
                Ok(()) => {}
                // The caller keeps other things there, or the directory is already gone.
                Err(err) if matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty) => {}
                Err(source) => return Err(ImageError::Io { action: "remove", path: dest, source }),
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(ImageError::Io { action: "resolve", path: dest.to_path_buf(), source }),
    }
    remove_dir_if_exists(&store.containers_dir().join(container_id))
}

fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ImageError::Io { action: "remove", path: path.to_path_buf(), source }),
    }
}

/// Container ids become directory names, so they must not be able to name anything else.
fn validate_container_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok { Ok(()) } else { Err(ImageError::InvalidContainerId(id.to_string())) }
}

/// Whether `path` is the mount point of some mount in this process's mount namespace,
/// according to `/proc/self/mountinfo`. `path` should be canonical, as mountinfo's paths are.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let wanted = path.as_os_str().as_encoded_bytes();
    Ok(mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| unescape_mountinfo(mount_point) == wanted))
}

/// Mountinfo writes space, tab, newline and backslash in paths as three-digit octal escapes.
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let digit = |j: usize| u32::from(bytes[j] - b'0');
            let value = digit(i + 1) * 64 + digit(i + 2) * 8 + digit(i + 3);
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_must_be_plain_names() {
        for ok in ["abc", "a-b_c.d", "0123456789abcdef"] {
            assert!(validate_container_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(validate_container_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/a\\040b\\134c"), b"/a b\\c".to_vec());
        assert_eq!(unescape_mountinfo("/plain"), b"/plain".to_vec());
        assert_eq!(unescape_mountinfo("/trailing\\04"), b"/trailing\\04".to_vec());
    }

    #[test]
    fn the_root_is_a_mount_point_and_a_fresh_dir_is_not() {
        let dir = tempfile::tempdir().expect("temp dir");
        let canonical = fs::canonicalize(dir.path()).expect("canonical");
        assert_eq!(is_mount_point(Path::new("/")).ok(), Some(true));
        assert_eq!(is_mount_point(&canonical).ok(), Some(false));
    }
}
