//! [`NetOps`] by running iproute2's `ip` command, one process per operation.
//!
//! This is the baseline that [`crate::net::netlink::NetlinkOps`] is measured against, and a
//! fallback for debugging: every operation here is a command line an operator can paste.
//! It is several times slower on the pod setup path because each operation forks and execs.

use std::process::Command;

use ipnet::Ipv4Net;

use crate::net::ops::{check_link_name, format_mac, stable_mac};
use crate::net::{Error, NetOps, Netns, Result, Route, VethSpec, netns};

/// [`NetOps`] through the `ip` command found on `PATH`.
#[derive(Debug, Default)]
pub struct IpCommandOps;

impl IpCommandOps {
    /// Runs `ip [-n ns] args...` and classifies a failure by iproute2's message, which is the
    /// only error information the command gives.
    fn ip(&self, ns: &Netns, what: &str, args: &[&str]) -> Result<String> {
        let mut command = Command::new("ip");
        if let Netns::Named(name) = ns {
            command.args(["-n", name]);
        }
        command.args(args);
        let command_line = format!("{command:?}");
        let output =
            command.output().map_err(|source| Error::Os { ns: ns.to_string(), op: command_line.clone(), source })?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        let what = what.to_owned();
        Err(if stderr.contains("File exists") {
            Error::AlreadyExists { ns: ns.to_string(), what }
        } else if stderr.contains("Cannot find device")
            || stderr.contains("No such file")
            || stderr.contains("does not exist")
        {
            Error::NotFound { ns: ns.to_string(), what }
        } else {
            Error::Command { command: command_line, status: output.status.to_string(), stderr }
        })
    }
}

impl NetOps for IpCommandOps {
    fn create_netns(&self, name: &str) -> Result<()> {
        netns::check_name(name)?;
        self.ip(&Netns::Current, "network namespace", &["netns", "add", name]).map(drop)
    }

    fn delete_netns(&self, name: &str) -> Result<()> {
        netns::check_name(name)?;
        match self.ip(&Netns::Current, "network namespace", &["netns", "delete", name]) {
            Err(Error::NotFound { .. }) => Ok(()),
            other => other.map(drop),
        }
    }

    fn list_netns(&self) -> Result<Vec<String>> {
        // `ip netns list` prints "name (id: N)" for namespaces with an id; the name is the
        // first word either way.
        let listing = self.ip(&Netns::Current, "network namespaces", &["netns", "list"])?;
        let mut names: Vec<String> =
            listing.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect();
        names.sort();
        Ok(names)
    }

    fn add_bridge(&self, ns: &Netns, name: &str) -> Result<()> {
        check_link_name(name)?;
        let mac = format_mac(stable_mac(ns, name));
        let what = format!("link {name}");
        self.ip(ns, &what, &["link", "add", name, "address", &mac, "type", "bridge"])?;
        self.ip(ns, &what, &["link", "set", name, "up"]).map(drop)
    }

    fn add_veth(&self, ns: &Netns, veth: &VethSpec<'_>) -> Result<()> {
        check_link_name(veth.name)?;
        check_link_name(veth.peer_name)?;
        let what = format!("link {}", veth.name);
        let mut add = vec!["link", "add", veth.name, "type", "veth", "peer", "name", veth.peer_name];
        let peer_netns_path;
        if let Netns::Named(peer_netns) = veth.peer_netns {
            add.extend(["netns", peer_netns.as_str()]);
        } else {
            // `ip` takes a namespace by name or pid; the process's own namespace by path is
            // reached through its pid.
            peer_netns_path = std::process::id().to_string();
            add.extend(["netns", peer_netns_path.as_str()]);
        }
        self.ip(ns, &what, &add)?;
        let mut set = vec!["link", "set", veth.name];
        if let Some(master) = veth.master {
            set.extend(["master", master]);
        }
        set.push("up");
        self.ip(ns, &what, &set)?;
        self.ip(veth.peer_netns, &format!("link {}", veth.peer_name), &["link", "set", veth.peer_name, "up"]).map(drop)
    }

    fn delete_link(&self, ns: &Netns, name: &str) -> Result<()> {
        check_link_name(name)?;
        match self.ip(ns, &format!("link {name}"), &["link", "delete", name]) {
            Err(Error::NotFound { .. }) => Ok(()),
            other => other.map(drop),
        }
    }

    fn set_link_up(&self, ns: &Netns, name: &str) -> Result<()> {
        check_link_name(name)?;
        self.ip(ns, &format!("link {name}"), &["link", "set", name, "up"]).map(drop)
    }

    fn add_address(&self, ns: &Netns, link: &str, address: Ipv4Net) -> Result<()> {
        check_link_name(link)?;
        let what = format!("address {address} on {link}");
        self.ip(ns, &what, &["address", "add", &address.to_string(), "dev", link]).map(drop)
    }

    fn add_route(&self, ns: &Netns, route: &Route<'_>) -> Result<()> {
        check_link_name(route.device)?;
        let destination = route.destination.trunc().to_string();
        let gateway = route.gateway.to_string();
        let what = format!("route {destination} via {gateway}");
        self.ip(ns, &what, &["route", "add", &destination, "via", &gateway, "dev", route.device]).map(drop)
    }

    fn set_sysctl(&self, ns: &Netns, key: &str, value: &str) -> Result<()> {
        // Sysctls are not an `ip` feature; `ip netns exec sysctl` would fork twice to do what
        // one write on a thread inside the namespace does.
        netns::write_sysctl(ns, key, value)
    }
}
