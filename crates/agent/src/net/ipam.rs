//! Pod IP allocation from a node's podCIDR, persisted so that it survives an agent restart.
//!
//! The first host address of the podCIDR is the pod bridge's gateway; pods get the others, in
//! order, continuing after the last address handed out and wrapping around. Not reusing a
//! just-released address at once gives ARP caches and conntrack entries that still name the
//! old pod time to expire before a new pod answers at that address.
//!
//! State is one small JSON file, rewritten whole on every change: written to a temporary file,
//! synced, and renamed over the old one, so a crash leaves either the old or the new state and
//! never a torn one. One process owns a state directory at a time; the agent serialises calls.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The state file's name inside the directory given to [`Ipam::open`].
pub const STATE_FILE: &str = "ipam.json";

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every pod address of the podCIDR is in use. Retrying helps only after a release.
    #[error("no free pod address left in {cidr}")]
    Full { cidr: Ipv4Net },

    /// The state file was written for another podCIDR. Its allocations cannot be carried over,
    /// and silently discarding them could hand out addresses of running pods.
    #[error("{path} holds allocations for {stored}, not {requested}")]
    CidrMismatch { path: PathBuf, stored: Ipv4Net, requested: Ipv4Net },

    /// The podCIDR is too small to hold a gateway and at least one pod.
    #[error("podCIDR {cidr} is too small: it needs a prefix of /30 or shorter")]
    CidrTooSmall { cidr: Ipv4Net },

    /// The state file could not be parsed.
    #[error("IPAM state {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },

    /// Reading or writing the state failed; the in-memory state was not changed.
    #[error("IPAM state {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    cidr: Option<Ipv4Net>,
    /// The address handed out last, where the next search starts.
    last: Option<Ipv4Addr>,
    /// Pod UID to address.
    allocations: BTreeMap<String, Ipv4Addr>,
}

/// The allocator for one node's podCIDR.
#[derive(Debug)]
pub struct Ipam {
    path: PathBuf,
    cidr: Ipv4Net,
    state: State,
}

impl Ipam {
    /// Opens (or starts) the state in `dir` for `cidr`. The directory must exist.
    pub fn open(dir: &Path, cidr: Ipv4Net) -> Result<Ipam> {
        let cidr = cidr.trunc();
        if cidr.prefix_len() > 30 {
            return Err(Error::CidrTooSmall { cidr });
        }
        let path = dir.join(STATE_FILE);
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<State>(&bytes)
                .map_err(|error| Error::Corrupt { path: path.clone(), detail: error.to_string() })?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => State::default(),
            Err(source) => return Err(Error::Io { path, source }),
        };
        match state.cidr {
            Some(stored) if stored != cidr => Err(Error::CidrMismatch { path, stored, requested: cidr }),
            _ => Ok(Ipam { path, cidr, state: State { cidr: Some(cidr), ..state } }),
        }
    }

    /// The podCIDR.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// The pod bridge's address: the first host address of the podCIDR.
    pub fn gateway(&self) -> Ipv4Addr {
        offset(self.cidr.network(), 1)
    }

    /// The address of `pod_uid`, allocating one if it has none. Asking again for the same UID
    /// returns the same address, so a retried sandbox setup does not leak addresses.
    pub fn allocate(&mut self, pod_uid: &str) -> Result<Ipv4Addr> {
        if let Some(address) = self.state.allocations.get(pod_uid) {
            return Ok(*address);
        }
        let first = u32::from(offset(self.cidr.network(), 2));
        let last = u32::from(self.cidr.broadcast()) - 1;
        let size = last - first + 1;
        let start = match self.state.last.map(u32::from) {
            Some(previous) if (first..=last).contains(&previous) => previous - first + 1,
            _ => 0,
        };
        let in_use: std::collections::BTreeSet<Ipv4Addr> = self.state.allocations.values().copied().collect();
        let address = (0..size)
            .map(|step| Ipv4Addr::from(first + (start + step) % size))
            .find(|candidate| !in_use.contains(candidate))
            .ok_or(Error::Full { cidr: self.cidr })?;
        let mut next = self.state.clone();
        next.allocations.insert(pod_uid.to_owned(), address);
        next.last = Some(address);
        self.commit(next)?;
        Ok(address)
    }

    /// Releases the address of `pod_uid`, returning it; `None` if it had none.
    pub fn release(&mut self, pod_uid: &str) -> Result<Option<Ipv4Addr>> {
        if !self.state.allocations.contains_key(pod_uid) {
            return Ok(None);
        }
        let mut next = self.state.clone();
        let address = next.allocations.remove(pod_uid);
        self.commit(next)?;
        Ok(address)
    }

    /// The address of `pod_uid`, if it has one.
    pub fn get(&self, pod_uid: &str) -> Option<Ipv4Addr> {
        self.state.allocations.get(pod_uid).copied()
    }

    /// Every allocation, by pod UID, for the agent's garbage collection of pods that are gone.
    pub fn allocations(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        self.state.allocations.iter().map(|(uid, address)| (uid.as_str(), *address))
    }

    /// Persists `next` and only then adopts it, so that memory never runs ahead of disk.
    fn commit(&mut self, next: State) -> Result<()> {
        let io_error = |source| Error::Io { path: self.path.clone(), source };
        let bytes = serde_json::to_vec_pretty(&next).map_err(|error| io_error(io::Error::other(error)))?;
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> io::Result<()> {
            let mut file = File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            fs::rename(&temporary, &self.path)?;
            // The rename is durable only once the directory entry is.
            if let Some(dir) = self.path.parent() {
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(io_error)?;
        self.state = next;
        Ok(())
    }
}

fn offset(address: Ipv4Addr, by: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(address) + by)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Ipv4Net {
        text.parse().expect("a CIDR")
    }

    #[test]
    fn allocates_after_the_gateway_and_is_idempotent_per_uid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ipam = Ipam::open(dir.path(), cidr("10.42.3.0/24")).expect("open");
        assert_eq!(ipam.gateway(), Ipv4Addr::new(10, 42, 3, 1));
        assert_eq!(ipam.allocate("a").expect("a"), Ipv4Addr::new(10, 42, 3, 2));
        assert_eq!(ipam.allocate("b").expect("b"), Ipv4Addr::new(10, 42, 3, 3));
        assert_eq!(ipam.allocate("a").expect("a again"), Ipv4Addr::new(10, 42, 3, 2));
    }

    #[test]
    fn survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ipam = Ipam::open(dir.path(), cidr("10.42.3.0/24")).expect("open");
        ipam.allocate("a").expect("a");
        ipam.allocate("b").expect("b");
        ipam.release("a").expect("release");
        drop(ipam);
        let mut reopened = Ipam::open(dir.path(), cidr("10.42.3.0/24")).expect("reopen");
        assert_eq!(reopened.get("a"), None);
        assert_eq!(reopened.get("b"), Some(Ipv4Addr::new(10, 42, 3, 3)));
        // The search continues after the last address handed out, not at the freed one.
        assert_eq!(reopened.allocate("c").expect("c"), Ipv4Addr::new(10, 42, 3, 4));
        assert!(!dir.path().join("ipam.json.tmp").exists());
    }

    #[test]
    fn released_addresses_are_reused_after_wrapping_and_full_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A /29 has hosts .1 to .6: the gateway and five pods.
        let mut ipam = Ipam::open(dir.path(), cidr("10.42.9.0/29")).expect("open");
        for uid in ["a", "b", "c", "d", "e"] {
            ipam.allocate(uid).expect("fits");
        }
        assert!(matches!(ipam.allocate("f"), Err(Error::Full { .. })));
        assert_eq!(ipam.release("b").expect("release"), Some(Ipv4Addr::new(10, 42, 9, 3)));
        assert_eq!(ipam.release("b").expect("release twice"), None);
        assert_eq!(ipam.allocate("f").expect("reuses"), Ipv4Addr::new(10, 42, 9, 3));
    }

    #[test]
    fn another_cidr_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        Ipam::open(dir.path(), cidr("10.42.1.0/24")).expect("open").allocate("a").expect("a");
        let error = Ipam::open(dir.path(), cidr("10.42.2.0/24")).expect_err("mismatch");
        assert!(matches!(error, Error::CidrMismatch { .. }), "{error}");
    }

    #[test]
    fn corrupt_state_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(STATE_FILE), b"{not json").expect("write");
        let error = Ipam::open(dir.path(), cidr("10.42.1.0/24")).expect_err("corrupt");
        assert!(matches!(error, Error::Corrupt { .. }), "{error}");
    }
}
