//! `rkube server`: the control plane.
//!
//! Start sequence: open the store, start the API server (certificates, watch cache, seed
//! namespaces, listen), write the admin kubeconfig. Drain sequence, on SIGINT or SIGTERM:
//! stop accepting, then drop the store, which lets the SQLite writer finish its last batch.

use std::sync::Arc;

use anyhow::Context;
use rkube_store::Store;

use crate::cli::ServerArgs;

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let store = open_store(&args).await?;
    let revision = store.current_revision().await.context("reading the store's revision")?;
    tracing::info!(datastore = %describe(&args), revision, "store ready");

    let mut config = rkube_apiserver::server::Config::new(args.data_dir.clone(), args.listen);
    config.sans = args.tls_sans.clone();
    config.services.cidr = rkube_apiserver::services::Cidr::parse(&args.service_cidr)
        .with_context(|| format!("--service-cidr {:?} is not an IPv4 CIDR between /8 and /30", args.service_cidr))?;
    config.services.node_ports = parse_port_range(&args.service_node_port_range)
        .with_context(|| format!("--service-node-port-range {:?} is not LOW-HIGH", args.service_node_port_range))?;
    if !(args.service_repair_interval > 0.0 && args.service_repair_interval.is_finite()) {
        anyhow::bail!("--service-repair-interval must be a positive number of seconds");
    }
    config.repair_interval = std::time::Duration::from_secs_f64(args.service_repair_interval);
    if let (Some(netns), Some(addr)) = (&args.fabric_netns, args.fabric_listen) {
        add_fabric_listener(&mut config, netns, addr)?;
    }
    let api =
        rkube_apiserver::server::ApiServer::start(config, store.clone()).await.context("starting the API server")?;
    tracing::info!(address = %api.local_addr, kubeconfig = %api.kubeconfig.display(), "API server ready");
    let loops = start_control_loops(&args, &api.kubeconfig).await?;
    println!("rkube server is ready at https://{}", api.local_addr);
    println!("  export KUBECONFIG={}", api.kubeconfig.display());

    wait_for_shutdown().await;
    tracing::info!("shutting down");
    for task in loops {
        task.abort();
    }
    api.shutdown();
    drop(api);
    drop(store);
    Ok(())
}

/// Starts the control loops (the scheduler, the controllers) as API clients of this server,
/// with the admin credentials, unless disabled by name.
async fn start_control_loops(
    args: &ServerArgs,
    kubeconfig: &std::path::Path,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let disabled: std::collections::HashSet<&str> = args.disable.iter().map(String::as_str).collect();
    let known: Vec<String> = std::iter::once("scheduler".to_owned())
        .chain(rkube_controllers::all().iter().map(|d| d.name.to_owned()))
        .collect();
    if let Some(unknown) = disabled.iter().find(|d| !known.iter().any(|k| k == *d)) {
        anyhow::bail!("--disable {unknown}: no such control loop; known: {}", known.join(", "));
    }
    let config = kube::config::Kubeconfig::read_from(kubeconfig).context("reading the admin kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
        .await
        .context("loading the admin kubeconfig")?;
    let client = kube::Client::try_from(config).context("building the API client")?;
    let mut tasks = Vec::new();
    if !disabled.contains("scheduler") {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = rkube_scheduler::run(client, rkube_scheduler::SchedulerConfig::default()).await {
                tracing::error!(error = %e, "the scheduler stopped");
            }
        }));
    }
    let controllers = rkube_controllers::ControllersConfig {
        disabled: disabled.iter().filter(|d| **d != "scheduler").map(|d| (*d).to_owned()).collect(),
        service_lb_pool: args.service_lb_pool,
        cluster_cidr: Some(args.cluster_cidr.clone()),
        // The CA the API server's certificates chain to, for every namespace's kube-root-ca.crt.
        root_ca_pem: std::fs::read_to_string(args.data_dir.join("tls").join(rkube_apiserver::pki::CA_CERT)).ok(),
        ..Default::default()
    };
    tasks.push(tokio::spawn(async move {
        if let Err(e) = rkube_controllers::run(client, controllers).await {
            tracing::error!(error = %e, "the controllers stopped");
        }
    }));
    Ok(tasks)
}

/// Serves the API inside the network namespace `netns` too, on a socket opened there: the
/// nodes of `rkube up` live in namespaces that have no route to the host, and reach the API
/// on the fabric bridge's address instead. Pods reach it through the `kubernetes` Service,
/// whose endpoint is therefore the fabric address.
fn add_fabric_listener(
    config: &mut rkube_apiserver::server::Config,
    netns: &str,
    addr: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let ns = rkube_agent::net::Netns::named(netns);
    let listener = rkube_agent::net::netns::tcp_listen_in(&ns, addr)
        .with_context(|| format!("--fabric-listen {addr} in network namespace {netns}"))?;
    config.extra_listeners.push(Arc::new(listener));
    config.sans.push(addr.ip().to_string());
    config.advertise_address = Some(addr.ip());
    config.advertise_port = Some(addr.port());
    // Logs and exec go to the agents' streaming ports, which are on node addresses that
    // exist only inside the fabric: connect from there.
    config.node_dialer = Some(Arc::new(move |node: std::net::SocketAddr| {
        rkube_agent::net::netns::tcp_connect_in(&ns, node, std::time::Duration::from_secs(10))
            .map_err(std::io::Error::other)
    }));
    Ok(())
}

fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = s.split_once('-')?;
    let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
    (lo <= hi && lo > 0).then_some((lo, hi))
}

fn describe(args: &ServerArgs) -> String {
    if args.datastore.is_empty() {
        format!("sqlite:{}", args.data_dir.join("db").display())
    } else {
        args.datastore.clone()
    }
}

/// Opens the store the flags ask for.
pub async fn open_store(args: &ServerArgs) -> anyhow::Result<Arc<dyn Store>> {
    if args.datastore.is_empty() {
        let dir = args.data_dir.join("db");
        let store = rkube_store::sqlite::SqliteStore::open(&dir)
            .with_context(|| format!("opening the embedded store in {}", dir.display()))?;
        return Ok(Arc::new(store));
    }
    let endpoints = rkube_store::etcd::parse_datastore_url(&args.datastore)
        .with_context(|| format!("--datastore {:?}", args.datastore))?;
    let config = rkube_store::etcd::EtcdConfig {
        endpoints,
        ca_file: args.etcd_cafile.clone(),
        cert_file: args.etcd_certfile.clone(),
        key_file: args.etcd_keyfile.clone(),
    };
    let store = rkube_store::etcd::EtcdStore::connect(config)
        .await
        .with_context(|| format!("connecting to {}", args.datastore))?;
    Ok(Arc::new(store))
}

pub(crate) async fn wait_for_shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers we cannot drain cleanly; wait on Ctrl-C alone.
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
