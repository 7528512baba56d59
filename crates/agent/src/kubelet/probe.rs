//! Container probes: startup, readiness and liveness, each a small task per container that
//! runs its checks on the probe's period and publishes the outcome for the pod worker.
//!
//! Semantics follow upstream's prober (`pkg/kubelet/prober`): until the startup probe has
//! succeeded the other two do not run; a probe's result flips only after `successThreshold`
//! successes or `failureThreshold` failures in a row; a container without a readiness probe
//! is ready once started. Checks reach the pod by its IP from the node, which is where the
//! agent runs, so httpGet and tcpSocket need no namespace switching; exec runs through the
//! container runtime.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::runtime::{ContainerRuntime, ExecRequest};

/// What the probes currently say about one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeState {
    /// The startup probe passed, or there is none.
    pub started: bool,
    pub ready: bool,
    /// Set once the liveness (or startup) probe failed `failureThreshold` times: the worker
    /// kills and restarts the container. The message is the probe's last failure.
    pub unhealthy: Option<String>,
    /// The latest readiness failure, for the event.
    pub last_failure: Option<String>,
}

/// The probes of one running container; dropping it stops them.
pub struct Probers {
    pub state: Arc<Mutex<ProbeState>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Probers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Where and how checks run.
#[derive(Clone)]
pub struct Target {
    pub pod_ip: Option<std::net::IpAddr>,
    pub container_id: String,
    pub runtime: Arc<dyn ContainerRuntime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Startup,
    Readiness,
    Liveness,
}

/// Starts the container's probes. `wake` is notified whenever the published state changes.
pub fn start(container: &Container, target: Target, wake: Arc<Notify>) -> Probers {
    let has_startup = container.startup_probe.is_some();
    let initial = ProbeState {
        started: !has_startup,
        ready: !has_startup && container.readiness_probe.is_none(),
        ..Default::default()
    };
    start_from(container, target, wake, initial)
}

/// Starts the probes of a container that was already running (adopted after an agent
/// restart), from the verdicts last reported for it, so that restarting the agent does not
/// flap the pod's readiness while the probes run again.
pub fn resume(container: &Container, target: Target, wake: Arc<Notify>, started: bool, ready: bool) -> Probers {
    // A verdict without a probe behind it could never change again: derive it instead.
    let started = started || container.startup_probe.is_none();
    let ready = if container.readiness_probe.is_none() { started } else { ready && started };
    start_from(container, target, wake, ProbeState { started, ready, ..Default::default() })
}

fn start_from(container: &Container, target: Target, wake: Arc<Notify>, initial: ProbeState) -> Probers {
    let state = Arc::new(Mutex::new(initial));
    let started = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for (kind, probe) in [
        (Kind::Startup, &container.startup_probe),
        (Kind::Readiness, &container.readiness_probe),
        (Kind::Liveness, &container.liveness_probe),
    ] {
        if let Some(probe) = probe.clone() {
            tasks.push(tokio::spawn(run(
                kind,
                probe,
                container.clone(),
                target.clone(),
                state.clone(),
                wake.clone(),
                started.clone(),
            )));
        }
    }
    // Without a startup probe, readiness becomes true as soon as there is no probe saying
    // otherwise; with one, the startup task turns it on when it passes.
    Probers { state, tasks }
}

async fn run(
    kind: Kind,
    probe: Probe,
    container: Container,
    target: Target,
    state: Arc<Mutex<ProbeState>>,
    wake: Arc<Notify>,
    started: Arc<Notify>,
) {
    if kind != Kind::Startup {
        // Wait for the startup probe, if any, to pass.
        loop {
            let notified = started.notified();
            if state.lock().started {
                break;
            }
            notified.await;
        }
    }
    let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    tokio::time::sleep(Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64)).await;
    let (mut successes, mut failures) = (0, 0);
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let outcome = match tokio::time::timeout(timeout, check(&probe, &container, &target)).await {
            Ok(result) => result,
            Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
        };
        match outcome {
            Ok(()) => {
                successes += 1;
                failures = 0;
            }
            Err(_) => {
                failures += 1;
                successes = 0;
            }
        }
        let mut changed = false;
        {
            let mut s = state.lock();
            match (kind, &outcome) {
                (Kind::Startup, Ok(())) if successes >= 1 => {
                    s.started = true;
                    if container.readiness_probe.is_none() {
                        s.ready = true;
                    }
                    changed = true;
                }
                (Kind::Startup | Kind::Liveness, Err(message)) if failures >= failure_threshold => {
                    let what = if kind == Kind::Startup { "Startup" } else { "Liveness" };
                    s.unhealthy = Some(format!("{what} probe failed: {message}"));
                    changed = true;
                }
                (Kind::Readiness, Ok(())) if successes >= success_threshold && !s.ready => {
                    s.ready = true;
                    changed = true;
                }
                (Kind::Readiness, Err(message)) => {
                    s.last_failure = Some(format!("Readiness probe failed: {message}"));
                    if failures >= failure_threshold && s.ready {
                        s.ready = false;
                        changed = true;
                    } else if failures == failure_threshold {
                        // The first time the threshold is reached the worker records an event.
                        changed = true;
                    }
                }
                _ => {}
            }
        }
        if changed {
            wake.notify_one();
            if kind == Kind::Startup {
                started.notify_waiters();
            }
        }
        if kind == Kind::Startup && state.lock().started {
            return;
        }
        if state.lock().unhealthy.is_some() {
            return;
        }
    }
}

fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("port {name:?} not found in the container's ports")),
    }
}

/// Runs one check; `Err` carries the message upstream would show in the event.
async fn check(probe: &Probe, container: &Container, target: &Target) -> Result<(), String> {
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        let process = target
            .runtime
            .exec(&target.container_id, ExecRequest { command, ..Default::default() })
            .await
            .map_err(|e| e.to_string())?;
        let mut output = Vec::new();
        if let Some(mut out) = process.stdout {
            let _ = out.read_to_end(&mut output).await;
        }
        let code = process.exit.await.map_err(|e| e.to_string())?;
        return if code == 0 {
            Ok(())
        } else {
            Err(format!("command exited with {code}: {}", String::from_utf8_lossy(&output).trim()))
        };
    }
    let ip = |host: Option<&String>| -> Result<std::net::IpAddr, String> {
        match host.filter(|h| !h.is_empty()) {
            Some(h) => h.parse().map_err(|_| format!("invalid host {h:?}")),
            None => target.pod_ip.ok_or_else(|| "the pod has no IP".to_owned()),
        }
    };
    if let Some(tcp) = &probe.tcp_socket {
        let addr = std::net::SocketAddr::new(ip(tcp.host.as_ref())?, resolve_port(&tcp.port, container)?);
        tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("dial tcp {addr}: {e}"))?;
        return Ok(());
    }
    if let Some(http) = &probe.http_get {
        let addr = std::net::SocketAddr::new(ip(http.host.as_ref())?, resolve_port(&http.port, container)?);
        if http.scheme.as_deref() == Some("HTTPS") {
            return Err("HTTPS probes are not supported by this agent".to_owned());
        }
        let path = http.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".to_owned());
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for h in http.http_headers.iter().flatten() {
            request.push_str(&format!("{}: {}\r\n", h.name, h.value));
        }
        request.push_str("\r\n");
        let mut stream =
            tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("Get \"http://{addr}{path}\": {e}"))?;
        stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 512];
        let mut n = 0;
        while n < head.len() {
            let read = stream.read(&mut head[n..]).await.map_err(|e| e.to_string())?;
            if read == 0 {
                break;
            }
            n += read;
            if head[..n].windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
        let line = String::from_utf8_lossy(&head[..n]);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("malformed HTTP response from {addr}"))?;
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if probe.grpc.is_some() {
        return Err("gRPC probes are not supported by this agent".to_owned());
    }
    Err("the probe has no handler".to_owned())
}
