//! Pod and node networking: network namespaces, bridges, veth pairs, addresses, routes and
//! sysctls, plus pod IP allocation and the `rkube up` fabric.
//!
//! Every side effect goes through the [`NetOps`] trait, so that the planning code
//! ([`pod::setup_pod`], [`fabric::up`]) can be unit-tested against [`fake::RecordingNetOps`].
//! Two real implementations exist: [`netlink::NetlinkOps`] talks rtnetlink in-process and is
//! the one to use; [`ipcmd::IpCommandOps`] runs the `ip` command and is kept as the baseline
//! the netlink one is measured against (see `tests/net.rs`, which prints both timings).
//!
//! # Threads and namespaces
//!
//! A network namespace is a property of a thread, and a netlink socket stays bound to the
//! namespace it was opened in. The real implementation therefore enters a namespace only on a
//! short-lived thread of its own ([`netns::run_in`]), opens a socket there and keeps using that
//! socket from any thread afterwards. No caller thread, and in particular no tokio worker, ever
//! changes namespace. [`NetOps`] methods block for at most a few milliseconds; async callers
//! should run them under `spawn_blocking`.
//!
//! # Fabric layout and safety
//!
//! See [`fabric`]: all cluster traffic stays inside namespaces that `rkube up` created. The
//! host namespace gets no link, address or route; the API server is reached from the nodes
//! through a listening socket that the host process opens inside the fabric namespace.

pub mod fabric;
pub mod fake;
pub mod ipam;
pub mod ipcmd;
pub mod netlink;
pub mod netns;
pub mod pod;

mod ops;

use std::io;

pub use ops::{NetOps, Netns, Route, VethSpec};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from network operations. None of them is retried inside this module: the planning
/// code rolls back what it made and hands the error to its caller, whose reconcile loop retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The namespace, link, address or route to be created is already there.
    #[error("{what} already exists in network namespace {ns}")]
    AlreadyExists { ns: String, what: String },

    /// The namespace, link or sysctl named does not exist.
    #[error("{what} not found in network namespace {ns}")]
    NotFound { ns: String, what: String },

    /// The kernel refused an operation for another reason.
    #[error("{op} failed in network namespace {ns}: {source}")]
    Os {
        ns: String,
        op: String,
        #[source]
        source: io::Error,
    },

    /// A command of the `ip` implementation failed for a reason not covered above.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },

    /// A name or configuration value is not acceptable.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid { what: &'static str, value: String, reason: &'static str },
}

impl Error {
    /// Whether the error says that the thing to be created already exists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }

    /// Whether the error says that the thing named does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Classifies an OS error by its errno, so that both implementations report "exists" and
    /// "missing" the same way and the planning code can treat them as idempotency signals.
    pub(crate) fn from_os(ns: &Netns, op: impl Into<String>, what: impl Into<String>, source: io::Error) -> Error {
        match source.raw_os_error() {
            Some(nix::libc::EEXIST) => Error::AlreadyExists { ns: ns.to_string(), what: what.into() },
            Some(nix::libc::ENODEV | nix::libc::ENOENT | nix::libc::ESRCH) => {
                Error::NotFound { ns: ns.to_string(), what: what.into() }
            }
            _ => Error::Os { ns: ns.to_string(), op: op.into(), source },
        }
    }
}
