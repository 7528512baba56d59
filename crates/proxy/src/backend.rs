//! The side effects, behind one narrow trait: apply an nft script as one transaction, list
//! what the table holds, and flush conntrack entries. [`NftCli`] drives the real `nft` and
//! `conntrack` binaries; [`Recording`] is the fake the unit tests use.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::ProxyError;

/// A conntrack flush: UDP entries whose original destination is `dst` (an IP or, with
/// `dst` unset, any address on `port`) and, if given, that were DNATed to `nat_to`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConntrackFlush {
    pub dst: Option<Ipv4Addr>,
    pub port: u16,
    pub nat_to: Option<Ipv4Addr>,
}

/// What the kernel's table holds: chain names and set/map names. `None` if no table.
pub type Listing = Option<(Vec<String>, Vec<String>)>;

/// The proxy's side effects.
pub trait Backend: Send {
    /// Applies `script` as one atomic transaction (all of it or none of it).
    fn apply(&mut self, script: &str) -> Result<(), ProxyError>;
    /// Lists the chains and sets of `table`.
    fn list(&mut self, table: &str) -> Result<Listing, ProxyError>;
    /// Deletes UDP conntrack entries. Failures are logged, not returned: a stale entry
    /// only delays a client, and the next change retries nothing.
    fn flush_conntrack(&mut self, flushes: &[ConntrackFlush]);
}

/// The real backend: `nft -f -` with the script on stdin, in the current network namespace.
#[derive(Debug, Default)]
pub struct NftCli;

fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<String, ProxyError> {
    let name = format!("{cmd:?}");
    let spawn_err = |e: std::io::Error| ProxyError::Spawn { command: name.clone(), source: e };
    let mut child = cmd
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error means nft exited early; its stderr below says why.
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ProxyError::Nft(String::from_utf8_lossy(&out.stderr).trim().chars().take(4000).collect()))
    }
}

impl Backend for NftCli {
    fn apply(&mut self, script: &str) -> Result<(), ProxyError> {
        run(Command::new("nft").args(["-f", "-"]), Some(script)).map(|_| ())
    }

    fn list(&mut self, table: &str) -> Result<Listing, ProxyError> {
        // `list chains` reads no set elements; listing the table (even with -t) would fetch
        // every element of the endpoints map, seconds at 30,000 Services. Sets are therefore
        // not listed: the only sets a rewrite cannot know are affinity sets of Services deleted
        // while the proxy was down, which are empty-handed leftovers until the table is deleted.
        let text = run(Command::new("nft").args(["list", "chains", "ip"]), None)?;
        Ok(parse_chains(&text, table).map(|chains| (chains, Vec::new())))
    }

    fn flush_conntrack(&mut self, flushes: &[ConntrackFlush]) {
        for f in flushes {
            let mut cmd = Command::new("conntrack");
            cmd.args(["-D", "-p", "udp"]);
            if let Some(dst) = f.dst {
                cmd.args(["--orig-dst", &dst.to_string()]);
            }
            cmd.args(["--orig-port-dst", &f.port.to_string()]);
            if let Some(to) = f.nat_to {
                cmd.args(["--dst-nat", &to.to_string()]);
            }
            // conntrack exits 1 when nothing matched, which is the common case.
            match cmd.stdout(Stdio::null()).stderr(Stdio::null()).status() {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "conntrack could not be run"),
            }
        }
    }
}

/// Reads the chain names of `table` out of `nft list chains ip` output; `None` if the table
/// is not there.
pub fn parse_chains(text: &str, table: &str) -> Option<Vec<String>> {
    let header = format!("table ip {table} {{");
    let mut chains = None;
    let mut inside = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("table ") {
            inside = trimmed == header;
            if inside {
                chains.get_or_insert_with(Vec::new);
            }
        } else if inside && let Some(name) = trimmed.strip_prefix("chain ").and_then(|r| r.strip_suffix(" {")) {
            chains.get_or_insert_with(Vec::new).push(name.trim_matches('"').to_string());
        }
    }
    chains
}

/// Reads chain and set names out of `nft -t list table` output.
pub fn parse_listing(text: &str) -> (Vec<String>, Vec<String>) {
    let mut chains = Vec::new();
    let mut sets = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_suffix(" {") else { continue };
        if let Some(name) = rest.strip_prefix("chain ") {
            chains.push(name.trim_matches('"').to_string());
        } else if let Some(name) = rest.strip_prefix("set ").or_else(|| rest.strip_prefix("map ")) {
            sets.push(name.trim_matches('"').to_string());
        }
    }
    (chains, sets)
}

/// What a [`Recording`] backend saw.
#[derive(Debug, Default)]
pub struct Recorded {
    pub scripts: Vec<String>,
    pub flushes: Vec<ConntrackFlush>,
    /// The listing `list` returns.
    pub listing: Listing,
    /// Makes the next `apply` fail once, to test recovery.
    pub fail_next: bool,
}

/// A fake backend that records every script and flush.
#[derive(Debug, Default, Clone)]
pub struct Recording(pub Arc<Mutex<Recorded>>);

impl Backend for Recording {
    fn apply(&mut self, script: &str) -> Result<(), ProxyError> {
        let mut r = self.0.lock();
        if std::mem::take(&mut r.fail_next) {
            return Err(ProxyError::Nft("injected failure".into()));
        }
        r.scripts.push(script.to_string());
        Ok(())
    }

    fn list(&mut self, _table: &str) -> Result<Listing, ProxyError> {
        Ok(self.0.lock().listing.clone())
    }

    fn flush_conntrack(&mut self, flushes: &[ConntrackFlush]) {
        self.0.lock().flushes.extend_from_slice(flushes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_of_one_table_are_read_from_nft_list_chains() {
        let text = "table ip other {\n\tchain a {\n\t}\n}\ntable ip rkube {\n\tchain nat-output {\n\t\ttype nat hook output priority -100; policy accept;\n\t}\n\tchain pick-2 {\n\t}\n}\n";
        assert_eq!(parse_chains(text, "rkube"), Some(vec!["nat-output".to_string(), "pick-2".to_string()]));
        assert_eq!(parse_chains(text, "missing"), None);
    }
}
