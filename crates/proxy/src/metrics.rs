//! The proxy's Prometheus metrics, rendered in the text exposition format. Names follow
//! kube-proxy's (`kubeproxy_sync_proxy_rules_duration_seconds`,
//! `kubeproxy_network_programming_duration_seconds`) so its dashboards apply.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// A cumulative histogram with fixed upper bounds, in seconds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

const SYNC_BOUNDS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const LATENCY_BOUNDS: &[f64] =
    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// The proxy's metrics; shared with whoever serves `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    sync: Mutex<Histogram>,
    full_sync: Mutex<Histogram>,
    programming: Mutex<Histogram>,
    syncs: AtomicU64,
    full_syncs: AtomicU64,
    failures: AtomicU64,
    services_synced: AtomicU64,
    script_bytes: AtomicU64,
    programmed_services: AtomicU64,
    last_sync_unix: AtomicU64,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics {
            sync: Mutex::new(Histogram::new(SYNC_BOUNDS)),
            full_sync: Mutex::new(Histogram::new(SYNC_BOUNDS)),
            programming: Mutex::new(Histogram::new(LATENCY_BOUNDS)),
            syncs: AtomicU64::new(0),
            full_syncs: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            services_synced: AtomicU64::new(0),
            script_bytes: AtomicU64::new(0),
            programmed_services: AtomicU64::new(0),
            last_sync_unix: AtomicU64::new(0),
        })
    }

    /// Records a successful sync.
    pub fn observe_sync(&self, full: bool, took: Duration, services: usize, script_bytes: usize, programmed: usize) {
        let secs = took.as_secs_f64();
        self.sync.lock().observe(secs);
        if full {
            self.full_sync.lock().observe(secs);
            self.full_syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.services_synced.fetch_add(services as u64, Ordering::Relaxed);
        self.script_bytes.fetch_add(script_bytes as u64, Ordering::Relaxed);
        self.programmed_services.store(programmed as u64, Ordering::Relaxed);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        self.last_sync_unix.store(now.as_secs(), Ordering::Relaxed);
    }

    pub fn observe_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the time from an endpoint change to its rules being in the kernel.
    pub fn observe_programming(&self, latency: Duration) {
        self.programming.lock().observe(latency.as_secs_f64());
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.sync.lock().render(
            &mut out,
            "kubeproxy_sync_proxy_rules_duration_seconds",
            "Time a sync of the nftables rules took (compute and commit).",
        );
        self.full_sync.lock().render(
            &mut out,
            "kubeproxy_sync_full_proxy_rules_duration_seconds",
            "Time a full sync (the whole table rewritten) took.",
        );
        self.programming.lock().render(
            &mut out,
            "kubeproxy_network_programming_duration_seconds",
            "Time from an EndpointSlice change (its last-change-trigger-time) to its rules being committed.",
        );
        let counter = |out: &mut String, name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(&mut out, "kubeproxy_sync_proxy_rules_total", "Syncs committed.", "counter", load(&self.syncs));
        counter(
            &mut out,
            "kubeproxy_sync_full_proxy_rules_total",
            "Full syncs committed.",
            "counter",
            load(&self.full_syncs),
        );
        counter(
            &mut out,
            "kubeproxy_sync_proxy_rules_failures_total",
            "Syncs that failed (retried as a full sync).",
            "counter",
            load(&self.failures),
        );
        counter(
            &mut out,
            "kubeproxy_sync_proxy_rules_services_total",
            "Service rule sets recomputed over all syncs.",
            "counter",
            load(&self.services_synced),
        );
        counter(
            &mut out,
            "kubeproxy_sync_proxy_rules_script_bytes_total",
            "Bytes of nft script committed over all syncs.",
            "counter",
            load(&self.script_bytes),
        );
        counter(
            &mut out,
            "kubeproxy_sync_proxy_rules_services",
            "Services with programmed rules.",
            "gauge",
            load(&self.programmed_services),
        );
        counter(
            &mut out,
            "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
            "When the last sync was committed.",
            "gauge",
            load(&self.last_sync_unix),
        );
        out
    }
}
