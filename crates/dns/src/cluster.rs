//! The server's link to the cluster: the watches that feed the snapshot, the node's entry
//! in the kube-dns Service's EndpointSlices and Endpoints, and the local address that makes
//! the Service's ClusterIP a local destination on the node.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;
use tokio::sync::Notify;

use crate::DnsError;
use crate::snapshot::{BuildConfig, Snapshot, SnapshotCell};

/// The dummy link that holds the kube-dns ClusterIP on a node.
pub const LOCAL_LINK: &str = "rkube-dns0";
const NAMESPACE: &str = "kube-system";
const SERVICE: &str = "kube-dns";
const MANAGER: &str = "rkube-dns";

/// Keeps `cell` current with the cluster: watches Services, EndpointSlices and Pods, and
/// rebuilds the snapshot after each burst of changes (a change wakes the builder; changes
/// that arrive while it builds are folded into the next build). Sends on `ready` once the
/// first snapshot built from complete lists is published. Returns only on a watch's end.
pub async fn feed(
    client: kube::Client,
    build: BuildConfig,
    cell: Arc<SnapshotCell>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), DnsError> {
    let (services, services_w) = reflector::store::<Service>();
    let (slices, slices_w) = reflector::store::<EndpointSlice>();
    let (pods, pods_w) = reflector::store::<Pod>();
    let notify = Arc::new(Notify::new());
    let cfg = watcher::Config::default();
    let s = reflector(services_w, watcher(Api::<Service>::all(client.clone()), cfg.clone()).default_backoff());
    let e = reflector(slices_w, watcher(Api::<EndpointSlice>::all(client.clone()), cfg.clone()).default_backoff());
    let p = reflector(pods_w, watcher(Api::<Pod>::all(client), cfg).default_backoff());
    let builder = async {
        let _ = services.wait_until_ready().await;
        let _ = slices.wait_until_ready().await;
        let _ = pods.wait_until_ready().await;
        let mut ready = ready;
        let mut serial: u32 = 1;
        loop {
            serial = serial.wrapping_add(1);
            let started = Instant::now();
            let snapshot = Snapshot::build(&build, serial, &services.state(), &slices.state(), &pods.state());
            let names = snapshot.len();
            cell.store(snapshot);
            tracing::debug!(names, serial, took_us = started.elapsed().as_micros() as u64, "dns snapshot published");
            if let Some(tx) = ready.take() {
                let _ = tx.send(());
            }
            notify.notified().await;
        }
    };
    tokio::select! {
        r = drive(s, &notify, "services") => r,
        r = drive(e, &notify, "endpointslices") => r,
        r = drive(p, &notify, "pods") => r,
        () = builder => Ok(()),
    }
}

async fn drive<K, S>(stream: S, notify: &Notify, kind: &'static str) -> Result<(), DnsError>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            // Init and InitApply only fill the store; the list is complete at InitDone.
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Ok(_) => notify.notify_one(),
            // The watcher retries with backoff; the snapshot stays as it was meanwhile.
            Err(e) => tracing::warn!(error = %e, kind, "dns watch error"),
        }
    }
    Err(DnsError::WatchEnded(kind))
}

/// Makes `ip` (the kube-dns ClusterIP) an address of the current network namespace, on a
/// dummy link of its own, so that packets to it are delivered to the local server.
/// Idempotent. A kernel without the dummy driver (some sandboxes lack the module) gets the
/// address on `lo` instead: Linux delivers locally any packet to any local address, on
/// whichever link it arrives, so the effect is the same.
pub fn setup_local_address(ip: Ipv4Addr) -> Result<(), DnsError> {
    let link = match ip_cmd(&["link", "add", LOCAL_LINK, "type", "dummy"]) {
        Ok(()) => LOCAL_LINK,
        Err(DnsError::IpCommand { stderr, .. }) if stderr.contains("File exists") => LOCAL_LINK,
        Err(DnsError::IpCommand { stderr, .. })
            if stderr.contains("Unknown device type") || stderr.contains("not supported") =>
        {
            tracing::info!(%ip, "no dummy link support in this kernel; the DNS address goes on lo");
            "lo"
        }
        Err(e) => return Err(e),
    };
    ip_cmd(&["link", "set", link, "up"])?;
    ip_cmd(&["addr", "replace", &format!("{ip}/32"), "dev", link])
}

fn ip_cmd(args: &[&str]) -> Result<(), DnsError> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        return Ok(());
    }
    Err(DnsError::IpCommand { args: args.join(" "), stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
}

/// Publishes this node's DNS server as an endpoint of `kube-system/kube-dns`: an
/// EndpointSlice of its own (`kube-dns-<node>`, applied server-side, owned by the Service)
/// and its address in the legacy Endpoints, which all nodes share (read, modify, replace,
/// retried on conflict). The Service has no selector, so no controller owns these.
pub async fn publish_node_endpoint(client: kube::Client, node_name: &str, node_ip: Ipv4Addr) -> Result<(), DnsError> {
    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let svc = services.get_opt(SERVICE).await?.ok_or(DnsError::NoKubeDnsService)?;
    let ports: Vec<(Option<String>, i32, String)> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let target = match p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => n,
                _ => p.port,
            };
            (p.name, target, p.protocol.unwrap_or_else(|| "TCP".into()))
        })
        .collect();
    let slice_name = format!("{SERVICE}-{node_name}");
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name,
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": SERVICE,
                "endpointslice.kubernetes.io/managed-by": MANAGER,
            },
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Service", "name": SERVICE,
                "uid": svc.metadata.uid.clone().unwrap_or_default(),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [node_ip.to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": node_name,
        }],
        "ports": ports.iter().map(|(name, port, proto)| json!({"name": name, "port": port, "protocol": proto})).collect::<Vec<_>>(),
    });
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    slices.patch(&slice_name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&slice)).await?;

    let endpoints: Api<Endpoints> = Api::namespaced(client, NAMESPACE);
    let address =
        EndpointAddress { ip: node_ip.to_string(), node_name: Some(node_name.to_owned()), ..Default::default() };
    let endpoint_ports: Vec<EndpointPort> = ports
        .iter()
        .map(|(name, port, proto)| EndpointPort {
            name: name.clone(),
            port: *port,
            protocol: Some(proto.clone()),
            ..Default::default()
        })
        .collect();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = match endpoints.get_opt(SERVICE).await? {
            None => {
                let mut labels = std::collections::BTreeMap::new();
                // Tells the mirroring controller not to make a slice of these: the nodes
                // publish their own slices.
                labels.insert("endpointslice.kubernetes.io/skip-mirror".to_owned(), "true".to_owned());
                labels.insert("k8s-app".to_owned(), SERVICE.to_owned());
                let ep = Endpoints {
                    metadata: ObjectMeta {
                        name: Some(SERVICE.into()),
                        namespace: Some(NAMESPACE.into()),
                        labels: Some(labels),
                        ..Default::default()
                    },
                    subsets: Some(vec![EndpointSubset {
                        addresses: Some(vec![address.clone()]),
                        ports: Some(endpoint_ports.clone()),
                        ..Default::default()
                    }]),
                };
                endpoints.create(&PostParams::default(), &ep).await.map(|_| ())
            }
            Some(mut ep) => {
                let subsets = ep.subsets.get_or_insert_with(Vec::new);
                if subsets.is_empty() {
                    subsets.push(EndpointSubset::default());
                }
                let subset = &mut subsets[0];
                subset.ports = Some(endpoint_ports.clone());
                let addrs = subset.addresses.get_or_insert_with(Vec::new);
                let before = addrs.clone();
                addrs.retain(|a| a.node_name.as_deref() != Some(node_name) && a.ip != address.ip);
                addrs.push(address.clone());
                addrs.sort_by(|a, b| a.ip.cmp(&b.ip));
                if *addrs == before {
                    return Ok(());
                }
                endpoints.replace(SERVICE, &PostParams::default(), &ep).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(kube::Error::Api(s)) if (s.code == 409) && attempts < 20 => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Undoes `publish_node_endpoint` when a node leaves: deletes its EndpointSlice and takes its
/// address out of the shared Endpoints. Idempotent.
pub async fn withdraw_node_endpoint(client: kube::Client, node_name: &str, node_ip: Ipv4Addr) -> Result<(), DnsError> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    match slices.delete(&format!("{SERVICE}-{node_name}"), &Default::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let endpoints: Api<Endpoints> = Api::namespaced(client, NAMESPACE);
    let ip = node_ip.to_string();
    for attempt in 1.. {
        let Some(mut ep) = endpoints.get_opt(SERVICE).await? else { return Ok(()) };
        let mut changed = false;
        for subset in ep.subsets.iter_mut().flatten() {
            if let Some(addrs) = subset.addresses.as_mut() {
                let before = addrs.len();
                addrs.retain(|a| a.node_name.as_deref() != Some(node_name) && a.ip != ip);
                changed |= addrs.len() != before;
            }
        }
        if !changed {
            return Ok(());
        }
        // A subset with no addresses is invalid; an Endpoints with no subsets is not.
        if let Some(subsets) = ep.subsets.as_mut() {
            subsets.retain(|s| s.addresses.as_ref().is_some_and(|a| !a.is_empty()) || s.not_ready_addresses.is_some());
        }
        match endpoints.replace(SERVICE, &PostParams::default(), &ep).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 20 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
