//! The node's own object: registration, its Lease in `kube-node-lease`, and its status.
//!
//! Registration is create-or-adopt, as upstream's `registerWithAPIServer`: a Node that exists
//! already (an agent restart, or `node start`) is kept, and only its status is refreshed.
//! The Lease is the heartbeat the node lifecycle controller watches; the Ready condition is
//! refreshed less often, as upstream's `nodeStatusReportFrequency`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::KubeletError;

/// What the node reports about itself.
#[derive(Clone, Debug)]
pub struct NodeFacts {
    pub name: String,
    pub internal_ip: Ipv4Addr,
    pub external_ip: Option<Ipv4Addr>,
    pub pod_cidr: Option<String>,
    pub port: u16,
    pub capacity: BTreeMap<String, Quantity>,
    pub info: NodeSystemInfo,
}

impl NodeFacts {
    /// Reads capacity and system information from this machine.
    pub fn gather(
        name: &str,
        internal_ip: Ipv4Addr,
        external_ip: Option<Ipv4Addr>,
        pod_cidr: Option<String>,
        port: u16,
    ) -> NodeFacts {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0);
        let storage = rustix::fs::statvfs("/").map(|s| s.f_blocks * s.f_frsize).unwrap_or(0);
        let capacity: BTreeMap<String, Quantity> = [
            ("cpu", cpus.to_string()),
            ("memory", format!("{memory_kib}Ki")),
            ("pods", "110".to_owned()),
            ("ephemeral-storage", format!("{}Ki", storage / 1024)),
            ("hugepages-2Mi", "0".to_owned()),
            ("hugepages-1Gi", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Quantity(v)))
        .collect();
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_owned()).unwrap_or_default();
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
            })
            .unwrap_or_else(|| "Linux".to_owned());
        let runc_version = std::process::Command::new("runc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(2)).map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        let info = NodeSystemInfo {
            architecture: std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            container_runtime_version: format!("runc://{runc_version}"),
            kernel_version: read("/proc/sys/kernel/osrelease"),
            kube_proxy_version: KUBELET_VERSION.to_owned(),
            kubelet_version: KUBELET_VERSION.to_owned(),
            machine_id: read("/etc/machine-id"),
            operating_system: "linux".to_owned(),
            os_image,
            system_uuid: read("/sys/class/dmi/id/product_uuid"),
            ..Default::default()
        };
        NodeFacts { name: name.to_owned(), internal_ip, external_ip, pod_cidr: pod_cidr.clone(), port, capacity, info }
    }

    fn addresses(&self) -> Vec<NodeAddress> {
        let mut a = vec![NodeAddress { type_: "InternalIP".into(), address: self.internal_ip.to_string() }];
        if let Some(ip) = self.external_ip {
            a.push(NodeAddress { type_: "ExternalIP".into(), address: ip.to_string() });
        }
        a.push(NodeAddress { type_: "Hostname".into(), address: self.name.clone() });
        a
    }

    /// The node's status with every condition healthy and Ready.
    pub fn status(&self, previous: Option<&NodeStatus>, now: jiff::Timestamp) -> NodeStatus {
        let now = Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now));
        let condition = |type_: &str, status: &str, reason: &str, message: &str| {
            let since = previous
                .and_then(|p| p.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
                .filter(|c| c.status == status)
                .and_then(|c| c.last_transition_time.clone());
            NodeCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(since.unwrap_or_else(|| now.clone())),
            }
        };
        NodeStatus {
            addresses: Some(self.addresses()),
            allocatable: Some(self.capacity.clone()),
            capacity: Some(self.capacity.clone()),
            conditions: Some(vec![
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ]),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(self.port) }),
            }),
            node_info: Some(self.info.clone()),
            ..Default::default()
        }
    }
}

/// What this agent says its version is: the Kubernetes API version it serves, marked as rkube.
pub const KUBELET_VERSION: &str = "v1.33.0-rkube";

/// Creates the Node, or adopts an existing one, and returns it with its status written.
pub async fn register(client: &Client, facts: &NodeFacts) -> Result<Node, KubeletError> {
    let api: Api<Node> = Api::all(client.clone());
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", facts.name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", facts.info.architecture.as_str()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", facts.info.architecture.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let node = Node {
        metadata: ObjectMeta { name: Some(facts.name.clone()), labels: Some(labels.clone()), ..Default::default() },
        spec: Some(NodeSpec {
            pod_cidr: facts.pod_cidr.clone(),
            pod_cidrs: facts.pod_cidr.clone().map(|c| vec![c]),
            ..Default::default()
        }),
        status: None,
    };
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Re-registration: keep the object (and its podCIDR, which is immutable), refresh labels.
            let patch = json!({"metadata": {"labels": labels}});
            api.patch(&facts.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        }
        Err(e) => return Err(e.into()),
    }
    let current = api.get(&facts.name).await?;
    let status = facts.status(current.status.as_ref(), jiff::Timestamp::now());
    let patched =
        api.patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(&json!({"status": status}))).await?;
    Ok(patched)
}

/// Renews the node's Lease every `interval` and its status every `status_every` renewals,
/// for ever. Failures are logged and retried at the next tick: a missed heartbeat is exactly
/// what the lifecycle controller is there to notice.
pub async fn heartbeat(
    client: Client,
    facts: NodeFacts,
    node_uid: Option<String>,
    interval: Duration,
    status_every: u32,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let nodes: Api<Node> = Api::all(client);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u32 = 0;
    loop {
        tick.tick().await;
        if let Err(e) = renew_lease(&leases, &facts.name, node_uid.as_deref(), interval).await {
            tracing::warn!(error = %e, "renewing the node lease failed");
        }
        if n.is_multiple_of(status_every.max(1)) {
            let previous = nodes.get_status(&facts.name).await.ok().and_then(|n| n.status);
            let status = facts.status(previous.as_ref(), jiff::Timestamp::now());
            if let Err(e) = nodes
                .patch_status(&facts.name, &PatchParams::default(), &Patch::Merge(&json!({"status": status})))
                .await
            {
                tracing::warn!(error = %e, "updating the node status failed");
            }
        }
        n = n.wrapping_add(1);
    }
}

async fn renew_lease(
    api: &Api<Lease>,
    name: &str,
    node_uid: Option<&str>,
    interval: Duration,
) -> Result<(), kube::Error> {
    let now = MicroTime(jiff::Timestamp::now());
    let duration = (interval.as_secs() as i32 * 4).max(10);
    let patch = json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": now}});
    match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => {
            let owner = node_uid.map(|uid| {
                vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: name.to_owned(),
                    uid: uid.to_owned(),
                    ..Default::default()
                }]
            });
            let lease = Lease {
                metadata: ObjectMeta { name: Some(name.to_owned()), owner_references: owner, ..Default::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(name.to_owned()),
                    lease_duration_seconds: Some(duration),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}
