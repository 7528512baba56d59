//! `rkube agent`: a node.
//!
//! Start sequence: connect to the API server, open the image store and the container
//! runtime, then run side by side the kubelet (which registers the Node first), the streaming
//! server for logs and exec, the service proxy and the cluster DNS server. Drain sequence, on
//! SIGINT or SIGTERM: stop those tasks and exit. Pods are left running on purpose: a
//! restarted agent adopts them, so upgrading or restarting the agent never restarts a pod.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rkube_agent::kubelet::{Kubelet, KubeletConfig, sandbox::DnsSettings};

use crate::cli::AgentArgs;

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let (client, ca_pem) = connect(&args).await?;
    let node_name = match &args.node_name {
        Some(n) => n.clone(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the host name (or pass --node-name)")?
            .trim()
            .to_owned(),
    };
    let node_ip = match args.node_ip {
        Some(ip) => ip,
        None => first_global_ipv4().context("no global IPv4 address in this namespace; pass --node-ip")?,
    };
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
    let image_root = args.image_store.clone().unwrap_or_else(|| args.data_dir.join("images"));
    let images = rkube_agent::image::ImageStore::open(&image_root)
        .with_context(|| format!("opening the image store {}", image_root.display()))?;
    let runc = rkube_agent::runtime::Runc::new(&args.data_dir).context("setting up the container runtime")?;
    let containers_dir = runc.containers_dir.clone();
    let runtime: Arc<dyn rkube_agent::runtime::ContainerRuntime> = Arc::new(runc);
    let net: Arc<dyn rkube_agent::net::NetOps> =
        Arc::new(rkube_agent::net::netlink::NetlinkOps::new().context("opening netlink")?);
    let pod_cidr = match &args.pod_cidr {
        Some(c) => Some(c.parse().with_context(|| format!("--pod-cidr {c:?} is not an IPv4 CIDR"))?),
        None => None,
    };
    if !(args.status_interval > 0.0 && args.status_interval.is_finite()) {
        anyhow::bail!("--status-interval must be a positive number of seconds");
    }
    let config = KubeletConfig {
        node_name: node_name.clone(),
        data_dir: args.data_dir.clone(),
        node_ip,
        external_ip: args.external_ip,
        pod_cidr,
        bridge: args.bridge.clone(),
        dns: DnsSettings {
            cluster_dns: args.cluster_dns,
            cluster_domain: args.cluster_domain.clone(),
            host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        },
        port: args.port,
        cgroup_parent: format!("rkube-{node_name}"),
        heartbeat: Duration::from_secs_f64(args.status_interval),
        backoff_base: Duration::from_secs_f64(args.crashloop_backoff),
        volume_refresh: Duration::from_secs(10),
        cluster_ca_pem: ca_pem.clone(),
    };
    let kubelet = Kubelet::new(config, client.clone(), runtime.clone(), containers_dir, images, net);

    let mut tasks: Vec<(&'static str, tokio::task::JoinHandle<anyhow::Result<()>>)> = Vec::new();
    let k = kubelet.clone();
    tasks.push(("kubelet", tokio::spawn(async move { k.run().await.map_err(anyhow::Error::from) })));

    if !args.disable.iter().any(|d| d == "stream") {
        let ca = ca_pem.clone().context("the kubeconfig has no cluster CA, which the streaming server needs")?;
        let tls = rkube_agent::stream::tls_config(&ca, &node_name, &[std::net::IpAddr::V4(node_ip)])
            .context("setting up the streaming server's TLS")?;
        let addr = std::net::SocketAddr::from((node_ip, args.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr} for logs and exec"))?;
        let containers: Arc<dyn rkube_agent::stream::PodContainers> = kubelet.clone();
        let runtime = runtime.clone();
        tasks.push((
            "streaming server",
            tokio::spawn(async move {
                rkube_agent::stream::serve(listener, tls, containers, runtime).await.map_err(anyhow::Error::from)
            }),
        ));
    }

    let proxy_metrics = rkube_proxy::Metrics::new();
    if !disabled(&args, "proxy") {
        let mut config = rkube_proxy::ProxyConfig::new(node_name.clone());
        config.service_cidr = args
            .service_cidr
            .parse()
            .with_context(|| format!("--service-cidr {:?} is not an IPv4 CIDR", args.service_cidr))?;
        config.cluster_cidr = Some(
            args.cluster_cidr
                .parse()
                .with_context(|| format!("--cluster-cidr {:?} is not an IPv4 CIDR", args.cluster_cidr))?,
        );
        config.pod_bridge = Some(args.bridge.clone());
        config.node_ips = std::iter::once(node_ip).chain(args.external_ip).collect();
        config.health_bind = Some(std::net::IpAddr::V4(node_ip));
        if !disabled(&args, "dns") {
            config.local_dns = Some(args.cluster_dns);
        }
        let (cidr, bridge) = (config.service_cidr, args.bridge.clone());
        tokio::spawn(async move { service_route(cidr, &bridge).await });
        let (client, metrics) = (client.clone(), proxy_metrics.clone());
        tasks.push((
            "service proxy",
            tokio::spawn(async move { rkube_proxy::run(client, config, metrics).await.map_err(anyhow::Error::from) }),
        ));
    }

    if !disabled(&args, "servicelb") {
        let (client, name) = (client.clone(), node_name.clone());
        let uplink = args.uplink.clone();
        tasks.push((
            "LoadBalancer speaker",
            tokio::spawn(async move {
                rkube_agent::servicelb::run(client, name, uplink).await.map_err(anyhow::Error::from)
            }),
        ));
    }

    let dns_metrics = rkube_dns::Metrics::new();
    if !disabled(&args, "dns") {
        // The kube-dns ClusterIP becomes an address of this node's namespace, so pods' queries
        // to it are delivered to the local server (the DNS crate falls back to `lo` on kernels
        // without the dummy driver).
        rkube_dns::setup_local_address(args.cluster_dns)
            .with_context(|| format!("making {} a local address for the DNS server", args.cluster_dns))?;
        let mut config = rkube_dns::DnsConfig::new(vec![
            std::net::SocketAddr::from((args.cluster_dns, 53)),
            std::net::SocketAddr::from((node_ip, 53)),
        ]);
        config.cluster_domain = args.cluster_domain.clone();
        config.upstream = args.dns_upstream.clone();
        config.service_cidr = args.service_cidr.parse().ok();
        let (c, metrics) = (client.clone(), dns_metrics.clone());
        tasks.push((
            "DNS server",
            tokio::spawn(async move { rkube_dns::run(c, config, metrics).await.map_err(anyhow::Error::from) }),
        ));
        let (c, name) = (client.clone(), node_name.clone());
        tasks.push((
            "DNS endpoint publisher",
            tokio::spawn(async move {
                // The kube-dns Service may not exist yet on a fresh server; retry until it does.
                loop {
                    match rkube_dns::publish_node_endpoint(c.clone(), &name, node_ip).await {
                        Ok(()) => break,
                        Err(e) => tracing::debug!(error = %e, "publishing the DNS endpoint; retrying"),
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                // Done: park, so that select_all below only reacts to real failures.
                std::future::pending::<()>().await;
                Ok(())
            }),
        ));
    }

    if args.metrics_port != 0 {
        let addr = std::net::SocketAddr::from((node_ip, args.metrics_port));
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr} for metrics"))?;
        let (p, d) = (proxy_metrics.clone(), dns_metrics.clone());
        tasks.push((
            "metrics server",
            tokio::spawn(async move {
                serve_metrics(listener, move || format!("{}{}", p.render(), d.render())).await;
                Ok(())
            }),
        ));
    }

    println!("rkube agent {node_name} is running ({node_ip})");
    let failed = tokio::select! {
        _ = crate::server::wait_for_shutdown() => None,
        (result, index, _) = futures::future::select_all(tasks.iter_mut().map(|(_, t)| t)) => Some((index, result)),
    };
    for (_, task) in &tasks {
        task.abort();
    }
    match failed {
        None => {
            tracing::info!("shutting down; pods keep running");
            Ok(())
        }
        Some((index, result)) => {
            let name = tasks[index].0;
            match result {
                Ok(Ok(())) => anyhow::bail!("the {name} stopped"),
                Ok(Err(e)) => Err(e.context(format!("the {name} failed"))),
                Err(e) => anyhow::bail!("the {name} panicked: {e}"),
            }
        }
    }
}

/// A client for the API server, from `--kubeconfig` or `--server`/`--token`/`--ca-file`, and
/// the cluster CA in PEM when known.
async fn connect(args: &AgentArgs) -> anyhow::Result<(kube::Client, Option<String>)> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kubeconfig = match (&args.kubeconfig, &args.server) {
        (_, Some(server)) => {
            let token = args.token.clone().context("--server needs --token")?;
            let ca = args.ca_file.as_ref().context("--server needs --ca-file")?;
            let ca = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            use base64::Engine as _;
            let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca);
            let yaml = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca_b64}\n\
                 users:\n- name: u\n  user:\n    token: {token}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
            );
            Kubeconfig::from_yaml(&yaml).context("building a kubeconfig from --server and --token")?
        }
        (Some(path), None) => Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?,
        (None, None) => anyhow::bail!("pass --kubeconfig, or --server with --token and --ca-file"),
    };
    let ca_pem = kubeconfig
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.clone())
        .and_then(|data| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(data).ok()
        })
        .and_then(|pem| String::from_utf8(pem).ok());
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading the kubeconfig")?;
    let client = kube::Client::try_from(config).context("building the API client")?;
    Ok((client, ca_pem))
}

/// The first global-scope IPv4 address of this network namespace.
fn first_global_ipv4() -> Option<Ipv4Addr> {
    let out = std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        fields.find(|f| *f == "inet")?;
        fields.next()?.split('/').next()?.parse().ok()
    })
}

fn disabled(args: &AgentArgs, part: &str) -> bool {
    args.disable.iter().any(|d| d == part)
}

/// A minimal HTTP/1.1 responder for Prometheus scrapes: every request gets the metrics.
async fn serve_metrics(listener: tokio::net::TcpListener, render: impl Fn() -> String + Send + Sync + 'static) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let render = Arc::new(render);
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            // The request itself does not matter; read its head so the client sees a reply
            // to what it sent rather than a reset.
            let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
            let body = render();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        });
    }
}

/// Routes the Service range onto the pod bridge. Node namespaces have no default route, so
/// without it a connection from the node itself to a ClusterIP fails with "network
/// unreachable" before the proxy's DNAT in the output hook could rewrite it; pods are not
/// affected (their default route is the node). The bridge may not exist yet on a node
/// outside `rkube up`, where the kubelet creates it, so this retries until it does.
async fn service_route(cidr: ipnet::Ipv4Net, bridge: &str) {
    loop {
        let out = tokio::process::Command::new("ip")
            .args(["route", "replace", &cidr.to_string(), "dev", bridge])
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => return,
            Ok(o) => {
                tracing::debug!(stderr = %String::from_utf8_lossy(&o.stderr).trim(), "routing the Service range; retrying")
            }
            Err(e) => tracing::warn!(error = %e, "running ip"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
