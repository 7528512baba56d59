//! A recording [`NetOps`] for unit tests of the planning code: it keeps the namespaces and
//! links it was asked to make, so it answers "exists" and "missing" like the kernel, and
//! records every change in order for tests to compare against the expected plan.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use parking_lot::Mutex;

use crate::net::{Error, NetOps, Netns, Result, Route, VethSpec};

/// One recorded change. Reads (`list_netns`) are not recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    CreateNetns(String),
    DeleteNetns(String),
    AddBridge { ns: Netns, name: String },
    AddVeth { ns: Netns, name: String, master: Option<String>, peer_name: String, peer_netns: Netns },
    DeleteLink { ns: Netns, name: String },
    SetLinkUp { ns: Netns, name: String },
    AddAddress { ns: Netns, link: String, address: Ipv4Net },
    AddRoute { ns: Netns, destination: Ipv4Net, gateway: Ipv4Addr, device: String },
    SetSysctl { ns: Netns, key: String, value: String },
}

type FailureRule = Box<dyn Fn(&Op) -> bool + Send + Sync>;

/// The fake. Namespaces and links are modelled just enough for idempotency and conflicts.
#[derive(Default)]
pub struct RecordingNetOps {
    state: Mutex<State>,
    fail_on: Mutex<Option<FailureRule>>,
}

#[derive(Default)]
struct State {
    ops: Vec<Op>,
    netns: BTreeSet<String>,
    links: BTreeSet<(Netns, String)>,
    /// Sysctl keys that do not exist in any namespace; all others do.
    missing_sysctls: BTreeSet<String>,
}

impl RecordingNetOps {
    pub fn new() -> RecordingNetOps {
        RecordingNetOps::default()
    }

    /// The changes made so far, in order.
    pub fn ops(&self) -> Vec<Op> {
        self.state.lock().ops.clone()
    }

    /// Forgets the recorded changes but keeps the modelled namespaces and links.
    pub fn clear_ops(&self) {
        self.state.lock().ops.clear();
    }

    /// Makes every change for which `rule` returns true fail with [`Error::Os`], after it is
    /// recorded, to exercise rollback paths.
    pub fn fail_on(&self, rule: impl Fn(&Op) -> bool + Send + Sync + 'static) {
        *self.fail_on.lock() = Some(Box::new(rule));
    }

    /// Makes `set_sysctl` of `key` fail with [`Error::NotFound`], as it does for the
    /// br_netfilter keys when that module is not loaded.
    pub fn remove_sysctl(&self, key: &str) {
        self.state.lock().missing_sysctls.insert(key.to_owned());
    }

    /// Pretends that a namespace exists, as if left behind by a crashed run.
    pub fn add_existing_netns(&self, name: &str) {
        self.state.lock().netns.insert(name.to_owned());
    }

    /// Records `op`, then applies `change` to the model unless the failure rule matches.
    fn record(&self, op: Op, change: impl FnOnce(&mut State) -> Result<()>) -> Result<()> {
        let mut state = self.state.lock();
        state.ops.push(op.clone());
        if self.fail_on.lock().as_ref().is_some_and(|rule| rule(&op)) {
            return Err(Error::Os {
                ns: "fake".to_owned(),
                op: format!("{op:?}"),
                source: std::io::Error::other("injected failure"),
            });
        }
        change(&mut state)
    }
}

impl State {
    fn require_netns(&self, ns: &Netns) -> Result<()> {
        match ns {
            Netns::Named(name) if !self.netns.contains(name) => {
                Err(Error::NotFound { ns: name.clone(), what: "network namespace".to_owned() })
            }
            _ => Ok(()),
        }
    }

    fn require_link(&self, ns: &Netns, name: &str) -> Result<()> {
        self.require_netns(ns)?;
        // Loopback exists in every namespace without being created.
        if name == "lo" || self.links.contains(&(ns.clone(), name.to_owned())) {
            Ok(())
        } else {
            Err(Error::NotFound { ns: ns.to_string(), what: format!("link {name}") })
        }
    }

    fn insert_link(&mut self, ns: &Netns, name: &str) -> Result<()> {
        self.require_netns(ns)?;
        if !self.links.insert((ns.clone(), name.to_owned())) {
            return Err(Error::AlreadyExists { ns: ns.to_string(), what: format!("link {name}") });
        }
        Ok(())
    }
}

impl NetOps for RecordingNetOps {
    fn create_netns(&self, name: &str) -> Result<()> {
        self.record(Op::CreateNetns(name.to_owned()), |state| {
            if !state.netns.insert(name.to_owned()) {
                return Err(Error::AlreadyExists { ns: name.to_owned(), what: "network namespace".to_owned() });
            }
            Ok(())
        })
    }

    fn delete_netns(&self, name: &str) -> Result<()> {
        self.record(Op::DeleteNetns(name.to_owned()), |state| {
            state.netns.remove(name);
            let ns = Netns::named(name);
            state.links.retain(|(link_ns, _)| *link_ns != ns);
            Ok(())
        })
    }

    fn list_netns(&self) -> Result<Vec<String>> {
        Ok(self.state.lock().netns.iter().cloned().collect())
    }

    fn add_bridge(&self, ns: &Netns, name: &str) -> Result<()> {
        self.record(Op::AddBridge { ns: ns.clone(), name: name.to_owned() }, |state| state.insert_link(ns, name))
    }

    fn add_veth(&self, ns: &Netns, veth: &VethSpec<'_>) -> Result<()> {
        let op = Op::AddVeth {
            ns: ns.clone(),
            name: veth.name.to_owned(),
            master: veth.master.map(str::to_owned),
            peer_name: veth.peer_name.to_owned(),
            peer_netns: veth.peer_netns.clone(),
        };
        self.record(op, |state| {
            if let Some(master) = veth.master {
                state.require_link(ns, master)?;
            }
            state.require_netns(veth.peer_netns)?;
            state.insert_link(ns, veth.name)?;
            state.insert_link(veth.peer_netns, veth.peer_name)
        })
    }

    fn delete_link(&self, ns: &Netns, name: &str) -> Result<()> {
        self.record(Op::DeleteLink { ns: ns.clone(), name: name.to_owned() }, |state| {
            state.links.remove(&(ns.clone(), name.to_owned()));
            Ok(())
        })
    }

    fn set_link_up(&self, ns: &Netns, name: &str) -> Result<()> {
        self.record(Op::SetLinkUp { ns: ns.clone(), name: name.to_owned() }, |state| state.require_link(ns, name))
    }

    fn add_address(&self, ns: &Netns, link: &str, address: Ipv4Net) -> Result<()> {
        self.record(Op::AddAddress { ns: ns.clone(), link: link.to_owned(), address }, |state| {
            state.require_link(ns, link)
        })
    }

    fn add_route(&self, ns: &Netns, route: &Route<'_>) -> Result<()> {
        let op = Op::AddRoute {
            ns: ns.clone(),
            destination: route.destination,
            gateway: route.gateway,
            device: route.device.to_owned(),
        };
        self.record(op, |state| state.require_link(ns, route.device))
    }

    fn set_sysctl(&self, ns: &Netns, key: &str, value: &str) -> Result<()> {
        let op = Op::SetSysctl { ns: ns.clone(), key: key.to_owned(), value: value.to_owned() };
        self.record(op, |state| {
            state.require_netns(ns)?;
            if state.missing_sysctls.contains(key) {
                return Err(Error::NotFound { ns: ns.to_string(), what: format!("sysctl {key}") });
            }
            Ok(())
        })
    }
}
