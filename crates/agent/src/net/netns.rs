//! Named network namespaces, compatible with `ip netns`, and running code inside one.
//!
//! A named namespace is a bind mount of a namespace file onto `/run/netns/<name>`, exactly as
//! iproute2 makes them, so `ip netns list` and `ip netns exec` see what rkube creates and
//! rkube sees what they create. Code runs inside a namespace only on a thread spawned for it
//! and discarded afterwards: a thread that has changed namespace is never handed back to a
//! pool, so no caller thread (in particular no tokio worker) ends up in the wrong namespace.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::net::{Error, Netns, Result};

/// Where iproute2 keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Set once `/run/netns` is known to be a shared mount point, so that creating a namespace
/// costs one mount and not three.
static RUN_DIR_READY: AtomicBool = AtomicBool::new(false);

/// The path of a named namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Creates the namespace `name`. Fails with [`Error::AlreadyExists`] if it exists.
pub fn create(name: &str) -> Result<()> {
    create_with(name, || Ok(()))
}

/// Creates the namespace `name` and runs `inside` in it before any other thread can see it,
/// on the thread that created it. [`crate::net::netlink::NetlinkOps`] uses this to open its
/// netlink socket for a new pod namespace without a second thread and `setns`.
pub fn create_with<T: Send>(name: &str, inside: impl FnOnce() -> io::Result<T> + Send) -> Result<T> {
    check_name(name)?;
    let ns = Netns::named(name);
    ensure_run_dir().map_err(|source| Error::from_os(&ns, "prepare /run/netns", NETNS_RUN_DIR, source))?;
    let target = path(name);
    // The mount point is created exclusively, which is what makes creation race-free between
    // two callers picking the same name.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&target)
        .map_err(|source| Error::from_os(&ns, "create namespace file", "network namespace", source))?;
    let result = thread::scope(|scope| {
        scope
            .spawn(|| -> io::Result<T> {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
                nix::mount::mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )?;
                inside()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    });
    result.map_err(|source| {
        unmount(&target);
        let _ = fs::remove_file(&target);
        Error::Os { ns: name.to_owned(), op: "create network namespace".to_owned(), source }
    })
}

/// Deletes the namespace `name`; succeeds if it does not exist. The namespace itself lives on
/// until its last process and socket are gone, as with `ip netns delete`.
pub fn delete(name: &str) -> Result<()> {
    check_name(name)?;
    unmount(&path(name));
    match fs::remove_file(path(name)) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => {
            Err(Error::Os { ns: name.to_owned(), op: "remove namespace file".to_owned(), source })
        }
        _ => Ok(()),
    }
}

/// The names of all namespaces under `/run/netns`, sorted.
pub fn list() -> Result<Vec<String>> {
    let entries = match fs::read_dir(NETNS_RUN_DIR) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Os { ns: NETNS_RUN_DIR.to_owned(), op: "list".to_owned(), source }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|source| Error::Os { ns: NETNS_RUN_DIR.to_owned(), op: "list".to_owned(), source })?;
        if let Some(name) = entry.file_name().to_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Opens the namespace file of `name`, as a handle for `setns` or `IFLA_NET_NS_FD`.
pub fn open(name: &str) -> Result<File> {
    check_name(name)?;
    File::open(path(name))
        .map_err(|source| Error::from_os(&Netns::named(name), "open network namespace", "network namespace", source))
}

/// Runs `f` inside `ns` on a thread of its own and returns its result. For
/// [`Netns::Current`], `f` runs on the calling thread.
///
/// Sockets that `f` opens stay in `ns` for their whole life, wherever they are used later;
/// that is how a process in one namespace serves or connects in another.
pub fn run_in<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> Result<T> {
    let Netns::Named(name) = ns else {
        return Ok(f());
    };
    let file = open(name)?;
    thread::scope(|scope| {
        scope
            .spawn(|| -> io::Result<T> {
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
    .map_err(|source| Error::Os { ns: name.clone(), op: "enter network namespace".to_owned(), source })
}

/// Binds a TCP listener inside `ns`. The API server uses this to listen on the fabric address
/// without the host namespace having that address or any route to the fabric.
pub fn tcp_listen_in(ns: &Netns, addr: SocketAddr) -> Result<TcpListener> {
    run_in(ns, || TcpListener::bind(addr))?.map_err(|source| Error::Os {
        ns: ns.to_string(),
        op: format!("listen on {addr}"),
        source,
    })
}

/// Connects a TCP stream from inside `ns`, so that its source address and route are the ones
/// of that namespace.
pub fn tcp_connect_in(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    run_in(ns, || TcpStream::connect_timeout(&addr, timeout))?.map_err(|source| Error::Os {
        ns: ns.to_string(),
        op: format!("connect to {addr}"),
        source,
    })
}

/// Writes a sysctl as seen from inside `ns`. The files under `/proc/sys/net` belong to the
/// namespace of the thread that opens them, which is why this opens them on a thread in `ns`.
pub fn write_sysctl(ns: &Netns, key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.contains('/') || key.split('.').any(|part| part.is_empty() || part == "..") {
        return Err(Error::Invalid { what: "sysctl", value: key.to_owned(), reason: "expected a dotted name" });
    }
    let file_path = Path::new("/proc/sys").join(key.replace('.', "/"));
    run_in(ns, || {
        OpenOptions::new().write(true).open(&file_path).and_then(|mut file| file.write_all(value.as_bytes()))
    })?
    .map_err(|source| Error::from_os(ns, format!("set sysctl {key}={value}"), format!("sysctl {key}"), source))
}

/// Checks that `name` can be a file name under `/run/netns`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name.contains('/') || name == "." || name == ".." {
        return Err(Error::Invalid {
            what: "network namespace name",
            value: name.to_owned(),
            reason: "must be a file name of 1 to 255 bytes",
        });
    }
    Ok(())
}

/// Makes `/run/netns` a shared mount point, as `ip netns add` does, so that namespace mounts
/// made by rkube propagate into mount namespaces created later (containers, `ip netns exec`)
/// and can be unmounted from all of them at once.
fn ensure_run_dir() -> io::Result<()> {
    if RUN_DIR_READY.load(Ordering::Acquire) {
        return Ok(());
    }
    fs::create_dir_all(NETNS_RUN_DIR)?;
    let shared = || {
        nix::mount::mount(None::<&str>, NETNS_RUN_DIR, Some("none"), MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>)
    };
    match shared() {
        Ok(()) => {}
        // EINVAL means the directory is not a mount point yet: make it one, then share it.
        Err(nix::errno::Errno::EINVAL) => {
            nix::mount::mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            shared()?;
        }
        Err(errno) => return Err(errno.into()),
    }
    RUN_DIR_READY.store(true, Ordering::Release);
    Ok(())
}

/// Detaches the bind mount at `target`, if there is one.
fn unmount(target: &Path) {
    // EINVAL (not a mount point) and ENOENT (no file) both mean there is nothing to undo.
    let _ = nix::mount::umount2(target, MntFlags::MNT_DETACH);
}
