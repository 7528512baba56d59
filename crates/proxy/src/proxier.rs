//! The level-triggered sync: the Services the model marks as changed are turned into new
//! fragments, compared with what was applied, and the difference goes to the backend in one
//! transaction. A full sync rewrites the whole table over whatever the kernel holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use crate::backend::{Backend, ConntrackFlush};
use crate::model::{Model, NodeFacts, ServiceKey};
use crate::rules::{self, Change, Fragment, MapName, RulesConfig};
use crate::{ProxyConfig, ProxyError};

/// What one sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub full: bool,
    /// Services whose rules were recomputed.
    pub services: usize,
    /// Bytes of nft script sent (0: nothing had changed).
    pub script_bytes: usize,
    /// Change times of what this sync programmed, for the latency metric.
    pub programmed: Vec<SystemTime>,
    /// Time spent computing the change.
    pub compute: Duration,
    /// Time spent in the backend (nft).
    pub apply: Duration,
}

/// The sync engine: the applied state and the backend that holds it.
pub struct Proxier {
    config: ProxyConfig,
    backend: Box<dyn Backend>,
    applied: BTreeMap<ServiceKey, Fragment>,
    owners: HashMap<(MapName, String), ServiceKey>,
    applied_config: Option<RulesConfig>,
    needs_full: bool,
    /// The shared `pick-N` chains the table has.
    picks: BTreeSet<String>,
    health: BTreeMap<ServiceKey, (u16, usize)>,
}

impl Proxier {
    pub fn new(config: ProxyConfig, backend: Box<dyn Backend>) -> Self {
        Proxier {
            config,
            backend,
            applied: BTreeMap::new(),
            owners: HashMap::new(),
            applied_config: None,
            needs_full: true,
            picks: BTreeSet::new(),
            health: BTreeMap::new(),
        }
    }

    /// The static configuration for the node as the model sees it now.
    pub fn rules_config(&self, node: &NodeFacts) -> RulesConfig {
        let c = &self.config;
        let mut node_ips = if c.node_ips.is_empty() { node.addresses.clone() } else { c.node_ips.clone() };
        node_ips.sort();
        node_ips.dedup();
        RulesConfig {
            table: c.table.clone(),
            node_name: c.node_name.clone(),
            service_cidr: c.service_cidr,
            cluster_cidr: c.cluster_cidr,
            pod_bridge: c.pod_bridge.clone(),
            pod_cidr: node.pod_cidr.or(c.cluster_cidr),
            node_ips,
            local_dns: c.local_dns,
        }
    }

    /// healthCheckNodePort → (Service, local endpoints), as last programmed.
    pub fn health(&self) -> BTreeMap<u16, (ServiceKey, usize)> {
        self.health.iter().map(|(k, (port, n))| (*port, (k.clone(), *n))).collect()
    }

    /// Number of Services with programmed rules.
    pub fn programmed_services(&self) -> usize {
        self.applied.len()
    }

    /// Programs what changed in `model` since the last sync, or everything if `full` (or if
    /// the last sync failed, or the node's facts changed).
    pub fn sync(&mut self, model: &Mutex<Model>, full: bool) -> Result<SyncOutcome, ProxyError> {
        let started = Instant::now();
        let (cfg, full, computed, programmed) = {
            let mut m = model.lock();
            let cfg = self.rules_config(m.node());
            let full = full || self.needs_full || self.applied_config.as_ref() != Some(&cfg);
            if full {
                m.mark_all();
            }
            let (keys, _) = m.take_dirty();
            let computed: Vec<(ServiceKey, Option<Fragment>)> = keys
                .into_iter()
                .map(|k| {
                    let frag = m
                        .service(&k)
                        .map(|svc| rules::service_fragment(&cfg, svc, &|p| m.endpoints(&k, p, &cfg.node_name)));
                    (k, frag)
                })
                .collect();
            let programmed = m.take_pending(&computed.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
            (cfg, full, computed, programmed)
        };
        let mut outcome = SyncOutcome { full, services: computed.len(), programmed, ..Default::default() };
        // A failure from here on leaves the kernel in an unknown state: repair it all next time.
        self.needs_full = true;
        let result =
            if full { self.sync_full(&cfg, computed, &mut outcome) } else { self.sync_delta(computed, &mut outcome) };
        outcome.compute = started.elapsed().saturating_sub(outcome.apply);
        result?;
        self.needs_full = false;
        self.applied_config = Some(cfg);
        Ok(outcome)
    }

    /// Drops elements another Service already owns (two Services claiming one IP and port is
    /// invalid input; the first one keeps it) and records ownership of the rest.
    fn claim(&mut self, key: &ServiceKey, frag: &mut Fragment) {
        frag.elements.retain(|(m, k), _| match self.owners.get(&(*m, k.clone())) {
            Some(owner) if owner != key => {
                tracing::warn!(service = %key, owner = %owner, map = %m.name(), element = %k, "element already owned; skipped");
                false
            }
            _ => true,
        });
        for (m, k) in frag.elements.keys() {
            self.owners.insert((*m, k.clone()), key.clone());
        }
    }

    fn release(&mut self, key: &ServiceKey, frag: &Fragment) {
        for (m, k) in frag.elements.keys() {
            if self.owners.get(&(*m, k.clone())) == Some(key) {
                self.owners.remove(&(*m, k.clone()));
            }
        }
    }

    fn sync_delta(
        &mut self,
        computed: Vec<(ServiceKey, Option<Fragment>)>,
        outcome: &mut SyncOutcome,
    ) -> Result<(), ProxyError> {
        let mut news: Vec<(ServiceKey, Option<Fragment>)> = Vec::with_capacity(computed.len());
        for (key, frag) in computed {
            if let Some(old) = self.applied.get(&key).cloned() {
                self.release(&key, &old);
            }
            let frag = frag.map(|mut f| {
                self.claim(&key, &mut f);
                f
            });
            news.push((key, frag));
        }
        let changes: Vec<Change<'_>> = news
            .iter()
            .filter(|(k, f)| self.applied.get(k) != f.as_ref())
            .map(|(k, f)| Change { key: k, old: self.applied.get(k), new: f.as_ref() })
            .collect();
        let mut picks = self.picks.clone();
        let script = rules::delta_script(&self.config.table, &changes, &mut picks);
        let flushes = conntrack_flushes(&changes);
        if !script.is_empty() {
            let t = Instant::now();
            self.backend.apply(&script)?;
            outcome.apply = t.elapsed();
            outcome.script_bytes = script.len();
            self.backend.flush_conntrack(&flushes);
        }
        self.picks = picks;
        for (key, frag) in news {
            self.set_applied(key, frag);
        }
        Ok(())
    }

    fn set_applied(&mut self, key: ServiceKey, frag: Option<Fragment>) {
        match frag {
            Some(f) => {
                match f.health {
                    Some(h) => self.health.insert(key.clone(), h),
                    None => self.health.remove(&key),
                };
                self.applied.insert(key, f);
            }
            None => {
                self.health.remove(&key);
                self.applied.remove(&key);
            }
        }
    }

    fn sync_full(
        &mut self,
        cfg: &RulesConfig,
        computed: Vec<(ServiceKey, Option<Fragment>)>,
        outcome: &mut SyncOutcome,
    ) -> Result<(), ProxyError> {
        let old = std::mem::take(&mut self.applied);
        self.owners.clear();
        self.health.clear();
        for (key, frag) in computed {
            if let Some(mut f) = frag {
                self.claim(&key, &mut f);
                self.set_applied(key, Some(f));
            }
        }
        let t = Instant::now();
        let listing = self.backend.list(&cfg.table)?;
        let (chains, sets) = rules::expected_names(cfg, self.applied.values());
        let (stale_chains, stale_sets) = match listing {
            Some((have_chains, have_sets)) => (
                have_chains.into_iter().filter(|c| !chains.contains(c)).collect::<Vec<_>>(),
                have_sets.into_iter().filter(|s| !sets.contains(s)).collect::<Vec<_>>(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        let script = rules::full_script(cfg, self.applied.values(), &stale_chains, &stale_sets);
        let result = self.backend.apply(&script).or_else(|e| {
            // The table may be changed in a way a rewrite cannot fix (a base chain with another
            // hook, a set of another type): replace it whole, in one transaction still.
            tracing::warn!(error = %e, "full sync failed; replacing the table");
            let t = &cfg.table;
            let fresh = rules::full_script(cfg, self.applied.values(), &[], &[]);
            self.backend.apply(&format!("add table ip {t}\ndelete table ip {t}\n{fresh}"))
        });
        outcome.apply = t.elapsed();
        outcome.script_bytes = script.len();
        result?;
        self.picks = self.applied.values().flat_map(|f| f.picks.iter().cloned()).collect();
        let changes: Vec<Change<'_>> = old
            .iter()
            .map(|(k, f)| Change { key: k, old: Some(f), new: self.applied.get(k) })
            .chain(self.applied.iter().filter(|(k, _)| !old.contains_key(*k)).map(|(k, f)| Change {
                key: k,
                old: None,
                new: Some(f),
            }))
            .collect();
        let flushes = conntrack_flushes(&changes);
        self.backend.flush_conntrack(&flushes);
        Ok(())
    }
}

/// The UDP conntrack entries a change makes stale: those DNATed to an endpoint that is gone,
/// and those to a Service IP that had no endpoints (and so were never DNATed) and now has.
fn conntrack_flushes(changes: &[Change<'_>]) -> Vec<ConntrackFlush> {
    let mut out = BTreeSet::new();
    for c in changes {
        let old_ports = c.old.map(|f| f.udp.as_slice()).unwrap_or_default();
        let new_ports = c.new.map(|f| f.udp.as_slice()).unwrap_or_default();
        for old in old_ports {
            let new = new_ports.iter().find(|n| n.port == old.port);
            for ep in old.endpoints.iter().filter(|e| new.is_none_or(|n| !n.endpoints.contains(*e))) {
                for ip in &old.ips {
                    out.insert(ConntrackFlush { dst: Some(*ip), port: old.port, nat_to: Some(*ep) });
                }
                if let Some(np) = old.node_port {
                    out.insert(ConntrackFlush { dst: None, port: np, nat_to: Some(*ep) });
                }
            }
        }
        // A Service seen for the first time (a proxy start) has no entries of its own yet;
        // flushing for each would cost a conntrack run per Service.
        if c.old.is_none() {
            continue;
        }
        for new in new_ports.iter().filter(|n| !n.endpoints.is_empty()) {
            let old = old_ports.iter().find(|o| o.port == new.port);
            if old.is_none_or(|o| o.endpoints.is_empty()) {
                for ip in &new.ips {
                    out.insert(ConntrackFlush { dst: Some(*ip), port: new.port, nat_to: None });
                }
            }
        }
    }
    out.into_iter().collect()
}
