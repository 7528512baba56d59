//! Unpacking layers into directories that overlayfs can stack.
//!
//! Each layer is unpacked on its own, into `layers/<hex>/`, and used as one overlay lower
//! directory. Image whiteouts therefore become overlayfs whiteouts instead of being applied:
//! `.wh.NAME` turns into a 0:0 character device named NAME, and `.wh..wh..opq` marks its
//! directory opaque with the `trusted.overlay.opaque` attribute. Overlayfs then hides what
//! lower layers have there, exactly as the image format means.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use rustix::fs::{CWD, FileType, Mode, XattrFlags, makedev, mknodat};

use super::oci::{self, LayerCompression};
use super::{ImageError, ImageStore, IoContext, Layer, Result};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Returns the layer's directory, unpacking it first unless an earlier call already did.
///
/// Unpacking happens in a private staging directory that is renamed into place when complete,
/// so a layer directory, once it exists, is whole. When two callers race, both unpack, one
/// rename wins and the loser's copy is thrown away.
pub(crate) fn ensure_unpacked(store: &ImageStore, layer: &Layer) -> Result<PathBuf> {
    let dest = store.layer_dir(&layer.digest);
    if dest.is_dir() {
        return Ok(dest);
    }
    let compression = oci::layer_compression(&layer.media_type).ok_or_else(|| ImageError::UnsupportedMediaType {
        what: format!("layer {}", layer.digest),
        media_type: layer.media_type.clone(),
    })?;
    let blob = store.blob_path(&layer.digest);
    let file = match File::open(&blob) {
        Ok(file) => BufReader::new(file),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(ImageError::MissingBlob(layer.digest.clone())),
        Err(source) => return Err(ImageError::Io { action: "open", path: blob, source }),
    };
    let reader: Box<dyn Read> = match compression {
        LayerCompression::None => Box::new(file),
        LayerCompression::Gzip => Box::new(MultiGzDecoder::new(file)),
    };

    let tmp = store.tmp_dir();
    let prefix = format!("layer-{}-", &layer.digest.hex()[..12]);
    let staging = tempfile::Builder::new().prefix(&prefix).tempdir_in(&tmp).at("create staging dir in", &tmp)?;
    // The temporary directory is created 0700; a layer's root is an ordinary 0755 directory.
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755)).at("chmod", staging.path())?;
    unpack(reader, staging.path(), layer)?;
    match fs::rename(staging.path(), &dest) {
        Ok(()) => {
            // The directory now lives at `dest`; keeping the handle stops its drop from
            // trying to delete the old, now empty, name.
            let _ = staging.keep();
            Ok(dest)
        }
        Err(_) if dest.is_dir() => Ok(dest),
        Err(source) => Err(ImageError::Io { action: "rename layer into", path: dest, source }),
    }
}

fn unpack(reader: impl Read, root: &Path, layer: &Layer) -> Result<()> {
    let layer_error = |reason: String| ImageError::Layer { digest: layer.digest.clone(), reason };
    let root = fs::canonicalize(root).at("resolve", root)?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let entries = archive.entries().map_err(|err| layer_error(err.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|err| layer_error(err.to_string()))?;
        let raw_path = entry.path().map_err(|err| layer_error(err.to_string()))?.into_owned();
        // Names that climb out of the layer are skipped, as the tar crate's own unpacking does.
        let Some(relative) = clean_relative(&raw_path) else { continue };
        let file_name = relative.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();

        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = relative.parent().unwrap_or_else(|| Path::new(""));
            let dir = ensure_dir_inside(&root, parent).map_err(layer_error)?;
            if file_name == OPAQUE_WHITEOUT {
                rustix::fs::setxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(io::Error::from)
                    .at("mark opaque", &dir)?;
            } else if !hidden.starts_with(WHITEOUT_PREFIX) {
                whiteout(&dir.join(hidden))?;
            }
            // Other `.wh..wh.*` names are aufs bookkeeping with no meaning for overlayfs.
            continue;
        }

        let kind = entry.header().entry_type();
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            // The tar crate would write these as regular files.
            let parent = relative.parent().unwrap_or_else(|| Path::new(""));
            let dir = ensure_dir_inside(&root, parent).map_err(layer_error)?;
            let path = dir.join(relative.file_name().unwrap_or_default());
            let header = entry.header();
            let file_type = if kind.is_character_special() {
                FileType::CharacterDevice
            } else if kind.is_block_special() {
                FileType::BlockDevice
            } else {
                FileType::Fifo
            };
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            let mode = header.mode().map_err(|err| layer_error(err.to_string()))? & 0o7777;
            remove_existing(&path)?;
            mknodat(CWD, &path, file_type, Mode::from_bits_truncate(mode), makedev(major, minor))
                .map_err(io::Error::from)
                .at("mknod", &path)?;
            let uid = header.uid().map_err(|err| layer_error(err.to_string()))?;
            let gid = header.gid().map_err(|err| layer_error(err.to_string()))?;
            let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
                return Err(layer_error(format!("{} has an out-of-range owner", relative.display())));
            };
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).at("chown", &path)?;
            continue;
        }

        entry
            .unpack_in(&root)
            .map_err(|err| layer_error(format!("unpacking {}: {}", relative.display(), chain(&err))))?;
    }
    Ok(())
}

/// The error with its causes, since the tar crate's errors say what failed in the outer
/// message and why only in the source.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Creates the overlayfs whiteout for `path`: a character device with number 0:0.
fn whiteout(path: &Path) -> Result<()> {
    remove_existing(path)?;
    mknodat(CWD, path, FileType::CharacterDevice, Mode::empty(), makedev(0, 0))
        .map_err(io::Error::from)
        .at("create whiteout", path)
}

fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).at("remove", path),
        Ok(_) => fs::remove_file(path).at("remove", path),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ImageError::Io { action: "stat", path: path.to_path_buf(), source }),
    }
}

/// The entry's path relative to the layer root, without `.` and leading `/`, or `None` when it
/// is the root itself or contains `..`.
fn clean_relative(path: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => return None,
        }
    }
    if relative.as_os_str().is_empty() { None } else { Some(relative) }
}

/// Makes sure the directory `relative` exists under `root` and returns its real path,
/// refusing to follow a symlink that leads outside `root`: the layer is untrusted input and
/// must not make the agent create or change files elsewhere.
fn ensure_dir_inside(root: &Path, relative: &Path) -> Result<PathBuf, String> {
    let mut current = root.to_path_buf();
    for component in relative.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                let resolved = fs::canonicalize(&current).map_err(|err| format!("{}: {err}", current.display()))?;
                if !resolved.starts_with(root) || !resolved.is_dir() {
                    return Err(format!("{} leads outside the layer", relative.display()));
                }
                current = resolved;
            }
            Ok(_) => return Err(format!("{} is not a directory", current.display())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&current).map_err(|err| format!("creating {}: {err}", current.display()))?;
            }
            Err(err) => return Err(format!("{}: {err}", current.display())),
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_relative_drops_roots_and_refuses_parents() {
        assert_eq!(clean_relative(Path::new("./etc/passwd")), Some(PathBuf::from("etc/passwd")));
        assert_eq!(clean_relative(Path::new("/etc/")), Some(PathBuf::from("etc")));
        assert_eq!(clean_relative(Path::new("./")), None);
        assert_eq!(clean_relative(Path::new("etc/../../x")), None);
    }

    #[test]
    fn directories_are_not_created_through_escaping_symlinks() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outside = tempfile::tempdir().expect("temp dir");
        let root = fs::canonicalize(dir.path()).expect("canonical root");
        std::os::unix::fs::symlink(outside.path(), root.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("inner", root.join("alias")).expect("symlink");
        fs::create_dir(root.join("inner")).expect("mkdir");

        assert!(ensure_dir_inside(&root, Path::new("escape/sub")).is_err());
        assert!(!outside.path().join("sub").exists());
        assert_eq!(ensure_dir_inside(&root, Path::new("alias/sub")), Ok(root.join("inner/sub")));
        assert_eq!(ensure_dir_inside(&root, Path::new("a/b")), Ok(root.join("a/b")));
    }
}
