//! `hostPath` type checks, as kubelet's `checkType` (`pkg/volume/hostpath/host_path.go`):
//! the `OrCreate` types make what is missing, the others only look.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

/// What is at a path, following symlinks as `os.Stat` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Missing,
    Directory,
    File,
    Socket,
    CharDevice,
    BlockDevice,
    /// A FIFO, which no type other than the unchecked one accepts.
    Other,
}

/// What to do about a path before it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    CreateDirectory,
    CreateFile,
}

/// Decides, from what is at `path`, whether the `hostPath` type accepts it, and what to create
/// first. The messages are kubelet's.
pub fn plan(path: &str, type_: &str, found: Found) -> Result<Action, String> {
    let not = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match type_ {
        "" => Ok(Action::Nothing),
        "DirectoryOrCreate" if found == Found::Missing => Ok(Action::CreateDirectory),
        "DirectoryOrCreate" | "Directory" => {
            if found == Found::Directory {
                Ok(Action::Nothing)
            } else {
                not("a directory")
            }
        }
        "FileOrCreate" if found == Found::Missing => Ok(Action::CreateFile),
        "FileOrCreate" | "File" => {
            if found == Found::File {
                Ok(Action::Nothing)
            } else {
                not("a file")
            }
        }
        "Socket" => {
            if found == Found::Socket {
                Ok(Action::Nothing)
            } else {
                not("a socket file")
            }
        }
        "CharDevice" => {
            if found == Found::CharDevice {
                Ok(Action::Nothing)
            } else {
                not("a character device")
            }
        }
        "BlockDevice" => {
            if found == Found::BlockDevice {
                Ok(Action::Nothing)
            } else {
                not("a block device")
            }
        }
        other => Err(format!("{other} is an invalid volume type")),
    }
}

/// What is at `path` now.
pub fn inspect(path: &Path) -> io::Result<Found> {
    let meta = match fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(err) => return Err(err),
    };
    let t = meta.file_type();
    Ok(if t.is_dir() {
        Found::Directory
    } else if t.is_file() {
        Found::File
    } else if t.is_socket() {
        Found::Socket
    } else if t.is_char_device() {
        Found::CharDevice
    } else if t.is_block_device() {
        Found::BlockDevice
    } else {
        Found::Other
    })
}

/// Checks (and for the `OrCreate` types, makes) a `hostPath`, returning kubelet's message on
/// a mismatch. Created directories are 0755 and created files 0644, as kubelet makes them.
pub fn check(path: &str, type_: &str) -> Result<(), String> {
    let p = Path::new(path);
    // API validation requires an absolute path; a relative one would be resolved against the
    // agent's working directory, so it is refused rather than guessed at.
    if !p.is_absolute() {
        return Err(format!("hostPath {path:?} is not an absolute path"));
    }
    let found = inspect(p).map_err(|e| format!("hostPath type check failed: {path}: {e}"))?;
    match plan(path, type_, found)? {
        Action::Nothing => Ok(()),
        Action::CreateDirectory => fs::create_dir_all(p)
            .and_then(|()| fs::set_permissions(p, fs::Permissions::from_mode(0o755)))
            .map_err(|e| format!("hostPath type check failed: {path}: {e}")),
        Action::CreateFile => {
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).map_err(|e| format!("hostPath type check failed: {path}: {e}"))?;
            }
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .and_then(|f| f.set_permissions(fs::Permissions::from_mode(0o644)))
                .map_err(|e| format!("hostPath type check failed: {path}: {e}"))
        }
    }
}
