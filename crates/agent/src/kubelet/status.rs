//! The pod's status as the kubelet reports it: a pure function of the pod spec and what the
//! worker observed of each container. Upstream: `pkg/kubelet/kubelet_pods.go`
//! (`generateAPIPodStatus`, `getPhase`) and `pkg/kubelet/status/generate.go`.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, HostIP,
    Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What the worker knows of one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerView {
    pub name: String,
    /// The image as the pod spec names it.
    pub image: String,
    /// `docker.io/library/nginx@sha256:…`, once the image was found.
    pub image_id: String,
    /// `rkube://<runtime id>` of the current instance, once created.
    pub container_id: Option<String>,
    pub restart_count: i32,
    pub state: State,
    /// How the previous instance ended.
    pub last_terminated: Option<Terminated>,
    pub ready: bool,
    /// The startup probe passed (or there is none) and the container runs.
    pub started: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: jiff::Timestamp },
    Terminated(Terminated),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<jiff::Timestamp>,
    pub finished_at: Option<jiff::Timestamp>,
    pub container_id: Option<String>,
}

/// Everything the status is computed from, besides the pod itself.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    pub init_containers: Vec<ContainerView>,
    pub containers: Vec<ContainerView>,
    pub pod_ips: Vec<String>,
    pub host_ips: Vec<String>,
    pub start_time: Option<jiff::Timestamp>,
    /// Why the pod cannot start its containers yet (a sandbox or volume failure), if so.
    pub pending_reason: Option<(String, String)>,
}

fn time(t: jiff::Timestamp) -> Time {
    // The API's timestamps have second precision; rounding here keeps a status computed twice
    // from the same facts identical, so that no-op updates are recognised.
    Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.map(time),
        finished_at: t.finished_at.map(time),
        container_id: t.container_id.clone(),
    }
}

fn container_status(view: &ContainerView) -> ContainerStatus {
    let state = match &view.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning { started_at: Some(time(*started_at)) }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState { terminated: Some(terminated(t)), ..Default::default() },
    };
    let last_state = view
        .last_terminated
        .as_ref()
        .map(|t| ContainerState { terminated: Some(terminated(t)), ..Default::default() })
        .unwrap_or_default();
    ContainerStatus {
        name: view.name.clone(),
        image: view.image.clone(),
        image_id: view.image_id.clone(),
        container_id: view.container_id.clone(),
        restart_count: view.restart_count,
        ready: view.ready,
        started: Some(view.started),
        state: Some(state),
        last_state: Some(last_state),
        ..Default::default()
    }
}

/// Upstream's `getPhase`.
pub fn phase(pod: &Pod, observed: &Observed) -> &'static str {
    let spec = pod.spec.as_ref();
    let restart_policy = spec.and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let init_total = spec.and_then(|s| s.init_containers.as_ref()).map_or(0, Vec::len);
    // An init container that failed for good fails the pod; one still to run keeps it Pending.
    let mut init_done = 0;
    for view in &observed.init_containers {
        match &view.state {
            State::Terminated(t) if t.exit_code == 0 => init_done += 1,
            State::Terminated(_) if restart_policy == "Never" => return "Failed",
            _ => {}
        }
    }
    if init_done < init_total {
        return "Pending";
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for view in &observed.containers {
        match &view.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if view.last_terminated.is_some() => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    let total = spec.map_or(0, |s| s.containers.len());
    if observed.containers.len() < total || waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if restart_policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if restart_policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

/// Keeps a condition's `lastTransitionTime` when its status did not change.
fn condition(previous: Option<&PodStatus>, type_: &str, status: bool, reason: Option<&str>, now: Time) -> PodCondition {
    let status = if status { "True" } else { "False" };
    let earlier = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time.clone());
    PodCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.map(str::to_owned),
        last_transition_time: Some(earlier.unwrap_or(now)),
        ..Default::default()
    }
}

/// The whole status the kubelet reports for `pod`.
pub fn pod_status(pod: &Pod, observed: &Observed, now: jiff::Timestamp) -> PodStatus {
    let previous = pod.status.as_ref();
    let now_time = time(now);
    let phase = phase(pod, observed);
    let init_total = pod.spec.as_ref().and_then(|s| s.init_containers.as_ref()).map_or(0, Vec::len);
    let initialized = observed
        .init_containers
        .iter()
        .filter(|v| matches!(&v.state, State::Terminated(t) if t.exit_code == 0))
        .count()
        >= init_total;
    let total = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let all_ready = observed.containers.len() == total && observed.containers.iter().all(|v| v.ready);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let containers_ready = all_ready && !terminal;
    let not_ready_reason = if terminal { Some("PodCompleted") } else { Some("ContainersNotReady") };
    let ready_reason = if containers_ready { None } else { not_ready_reason };
    let mut conditions = vec![
        condition(
            previous,
            "PodReadyToStartContainers",
            !observed.pod_ips.is_empty() || terminal,
            None,
            now_time.clone(),
        ),
        condition(
            previous,
            "Initialized",
            initialized,
            if initialized { None } else { Some("ContainersNotInitialized") },
            now_time.clone(),
        ),
        // Readiness gates are not evaluated: a pod that has them is never Ready, as upstream
        // when no controller sets the gate's condition.
        condition(
            previous,
            "Ready",
            containers_ready && !has_readiness_gates(pod),
            if containers_ready && has_readiness_gates(pod) { Some("ReadinessGatesNotReady") } else { ready_reason },
            now_time.clone(),
        ),
        condition(previous, "ContainersReady", containers_ready, ready_reason, now_time.clone()),
    ];
    // PodScheduled belongs to the scheduler; it is carried over unchanged.
    if let Some(scheduled) = previous
        .and_then(|p| p.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled").cloned())
    {
        conditions.push(scheduled);
    } else {
        conditions.push(condition(None, "PodScheduled", true, None, now_time.clone()));
    }
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: observed.host_ips.first().cloned(),
        host_ips: (!observed.host_ips.is_empty())
            .then(|| observed.host_ips.iter().map(|ip| HostIP { ip: ip.clone() }).collect()),
        pod_ip: observed.pod_ips.first().cloned(),
        pod_ips: (!observed.pod_ips.is_empty())
            .then(|| observed.pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        start_time: observed.start_time.map(time),
        init_container_statuses: (init_total > 0)
            .then(|| observed.init_containers.iter().map(container_status).collect()),
        container_statuses: Some(observed.containers.iter().map(container_status).collect()),
        qos_class: previous.and_then(|p| p.qos_class.clone()).or_else(|| Some(qos_class(pod).to_owned())),
        message: observed.pending_reason.as_ref().map(|(_, m)| m.clone()),
        reason: observed.pending_reason.as_ref().map(|(r, _)| r.clone()),
        ..Default::default()
    }
}

fn has_readiness_gates(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.readiness_gates.as_ref()).is_some_and(|g| !g.is_empty())
}

/// Upstream's QoS class: Guaranteed when every container has equal requests and limits for
/// cpu and memory, BestEffort when none has any, Burstable otherwise.
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else { return "BestEffort" };
    let all = spec.containers.iter().chain(spec.init_containers.iter().flatten());
    let (mut any, mut guaranteed) = (false, true);
    for c in all {
        let r = c.resources.as_ref();
        let requests = r.and_then(|r| r.requests.as_ref());
        let limits = r.and_then(|r| r.limits.as_ref());
        for res in ["cpu", "memory"] {
            let req = requests.and_then(|m| m.get(res));
            let lim = limits.and_then(|m| m.get(res));
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (req, lim) {
                (_, None) => guaranteed = false,
                (Some(q), Some(l)) if q != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn pod(policy: &str, containers: &[&str]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                restart_policy: Some(policy.to_owned()),
                containers: containers
                    .iter()
                    .map(|n| Container { name: (*n).to_owned(), image: Some("nginx".into()), ..Default::default() })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn view(name: &str, state: State, last: Option<Terminated>, ready: bool) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "nginx".into(),
            image_id: String::new(),
            container_id: None,
            restart_count: 0,
            state,
            last_terminated: last,
            ready,
            started: ready,
        }
    }

    fn exited(code: i32) -> Terminated {
        Terminated {
            exit_code: code,
            signal: None,
            reason: if code == 0 { "Completed".into() } else { "Error".into() },
            message: None,
            started_at: None,
            finished_at: None,
            container_id: None,
        }
    }

    fn running() -> State {
        State::Running { started_at: jiff::Timestamp::UNIX_EPOCH }
    }

    fn waiting(reason: &str) -> State {
        State::Waiting { reason: reason.into(), message: None }
    }

    fn observed(containers: Vec<ContainerView>) -> Observed {
        Observed { containers, pod_ips: vec!["10.42.1.5".into()], ..Default::default() }
    }

    #[test]
    fn phases_follow_upstream_get_phase() {
        let p = pod("Always", &["a", "b"]);
        assert_eq!(phase(&p, &observed(vec![view("a", waiting("ContainerCreating"), None, false)])), "Pending");
        assert_eq!(
            phase(&p, &observed(vec![view("a", running(), None, true), view("b", waiting("X"), None, false)])),
            "Pending"
        );
        assert_eq!(
            phase(&p, &observed(vec![view("a", running(), None, true), view("b", running(), None, true)])),
            "Running"
        );
        // A container in back-off after a crash counts as stopped, not waiting.
        let backoff = view("b", waiting("CrashLoopBackOff"), Some(exited(1)), false);
        assert_eq!(phase(&p, &observed(vec![view("a", running(), None, true), backoff.clone()])), "Running");
        let never = pod("Never", &["a"]);
        assert_eq!(phase(&never, &observed(vec![view("a", State::Terminated(exited(0)), None, false)])), "Succeeded");
        assert_eq!(phase(&never, &observed(vec![view("a", State::Terminated(exited(2)), None, false)])), "Failed");
        let on_failure = pod("OnFailure", &["a"]);
        assert_eq!(
            phase(&on_failure, &observed(vec![view("a", State::Terminated(exited(2)), None, false)])),
            "Running"
        );
        assert_eq!(
            phase(&on_failure, &observed(vec![view("a", State::Terminated(exited(0)), None, false)])),
            "Succeeded"
        );
    }

    fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a PodCondition {
        s.conditions.as_ref().and_then(|cs| cs.iter().find(|c| c.type_ == t)).expect("condition")
    }

    #[test]
    fn ready_needs_every_container_ready_and_keeps_transition_times() {
        let mut p = pod("Always", &["a", "b"]);
        let t0 = jiff::Timestamp::from_second(1_000).expect("time");
        let t1 = jiff::Timestamp::from_second(2_000).expect("time");
        let half = observed(vec![view("a", running(), None, true), view("b", running(), None, false)]);
        let s = pod_status(&p, &half, t0);
        assert_eq!(cond(&s, "Ready").status, "False");
        assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(s.phase.as_deref(), Some("Running"));
        p.status = Some(s.clone());
        // Same facts later: identical status, so nothing would be written.
        assert_eq!(pod_status(&p, &half, t1), s);
        let all = observed(vec![view("a", running(), None, true), view("b", running(), None, true)]);
        let s2 = pod_status(&p, &all, t1);
        assert_eq!(cond(&s2, "Ready").status, "True");
        assert_eq!(cond(&s2, "Ready").last_transition_time, Some(time(t1)));
        assert_eq!(cond(&s2, "Initialized").last_transition_time, Some(time(t0)));
        assert_eq!(s2.pod_ip.as_deref(), Some("10.42.1.5"));
    }

    #[test]
    fn qos_classes() {
        let mut p = pod("Always", &["a"]);
        assert_eq!(qos_class(&p), "BestEffort");
        let q = |s: &str| k8s_openapi::apimachinery::pkg::api::resource::Quantity(s.into());
        let both = [("cpu".to_owned(), q("1")), ("memory".to_owned(), q("1Gi"))].into_iter().collect();
        if let Some(spec) = p.spec.as_mut() {
            spec.containers[0].resources =
                Some(k8s_openapi::api::core::v1::ResourceRequirements { limits: Some(both), ..Default::default() });
        }
        // Requests default to limits upstream; without that defaulting here, limits alone
        // still count as Guaranteed because a missing request equals the limit.
        assert_eq!(qos_class(&p), "Guaranteed");
    }
}
