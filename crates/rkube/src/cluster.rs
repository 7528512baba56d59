//! `rkube up`, `down`, `node` and `outside`: a cluster on one machine.
//!
//! `up` builds the network fabric ([`rkube_agent::net::fabric`]), starts `rkube server` and
//! one `rkube agent` per node as detached processes (each agent inside its node's network
//! namespace, all in the host's mount namespace), preloads the image archives into the
//! store the agents share, and returns once every Node is Ready. `down` undoes all of it,
//! finding everything by the cluster's name, its data directory and the recorded PIDs. See
//! `cluster/README.md` for the design and the data directory's layout.

mod cleanup;
mod images;
mod process;
mod state;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context;
use rkube_agent::net::fabric::{self, FabricConfig, FabricLayout, NodeLayout};
use rkube_agent::net::{NetOps, Netns, netlink::NetlinkOps, netns};

use crate::cli::{ClusterArgs, NodeArgs, NodeCommand, NodeExecArgs, OutsideArgs, UpArgs};
use process::Tracked;
use state::{ClusterDirs, ClusterState, write_atomic};

/// The port the API server listens on inside the fabric namespace. Nothing else listens
/// there, so it never conflicts, whatever `--listen` the host side uses.
const FABRIC_API_PORT: u16 = 6443;

/// How long `up` and `node start` wait for the Nodes to be Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `up` waits for the API server to serve.
const SERVER_TIMEOUT: Duration = Duration::from_secs(30);

/// Set to skip waiting for Ready Nodes (only the processes and the network are checked):
/// for testing `up`'s plumbing without a working agent.
const SKIP_READY_ENV: &str = "RKUBE_UP_SKIP_READY";

/// The file that marks a directory as a cluster's data directory. `up` and `down` remove
/// and unmount things under the data directory only when it carries this mark with the
/// cluster's name, so a wrong `--data-dir` (say `/`) can do no harm.
const MARKER: &str = "rkube-cluster";

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dirs = ClusterDirs::new(&args.cluster)?;
    let layout_plan = fabric::plan(&FabricConfig::new(&dirs.name, args.nodes)).context("--nodes")?;
    claim_data_dir(&dirs)?;
    let _lock = lock(&dirs).await?;

    if let Some(state) = ClusterState::read(&dirs) {
        if state.nodes == args.nodes && is_healthy(&dirs, &state).await {
            println!("cluster {} is already up with {} nodes; nothing to do", dirs.name, state.nodes);
            print_summary(&dirs, &layout_plan);
            return Ok(());
        }
        println!("cluster {}: not healthy or not as asked; removing it and starting afresh", dirs.name);
    }
    // Always: this also clears what a crashed cluster of this name left.
    run_teardown(&dirs).await?.into_result(&dirs)?;
    reset_data_dir(&dirs)?;

    match start_cluster(&dirs, &args).await {
        Ok((layout, waited)) => {
            println!(
                "cluster {} is up: {} nodes {} in {:.2} s",
                dirs.name,
                layout.nodes.len(),
                if waited { "Ready" } else { "started (not waiting for Ready)" },
                started.elapsed().as_secs_f64()
            );
            print_summary(&dirs, &layout);
            Ok(())
        }
        Err(error) => {
            // A failed `up` leaves nothing running; the logs stay for the post-mortem.
            if let Err(cleanup) = run_teardown(&dirs).await.and_then(|report| report.into_result(&dirs)) {
                eprintln!("rkube: removing the failed cluster: {cleanup:#}");
            }
            Err(error.context(format!(
                "rkube up {}: the cluster was removed again; the logs are in {}",
                dirs.name,
                dirs.logs().display()
            )))
        }
    }
}

/// The part of `up` after the old cluster is gone: network, server, images, agents, and the
/// wait for Ready. Returns the layout and whether it waited for Ready.
async fn start_cluster(dirs: &ClusterDirs, args: &UpArgs) -> anyhow::Result<(FabricLayout, bool)> {
    let name = dirs.name.clone();
    let nodes = args.nodes;
    let layout = tokio::task::spawn_blocking(move || -> anyhow::Result<FabricLayout> {
        let ops = NetlinkOps::new().context("opening netlink")?;
        Ok(fabric::up(&ops, &FabricConfig::new(name, nodes))?)
    })
    .await?
    .context("building the cluster network")?;
    let state = ClusterState {
        name: dirs.name.clone(),
        nodes: args.nodes,
        listen: args.listen,
        agent_args: args.agent_args.clone(),
        server_args: args.server_args.clone(),
    };
    state.write(dirs)?;
    let exe = std::env::current_exe().context("finding the rkube binary")?;

    let server = server_process(dirs);
    let mut server_child = server.spawn(&exe, &server_args(dirs, &layout, &state), None, &dirs.server_log())?;
    confirm(&server, &mut server_child, &dirs.server_log())?;
    // The images are imported while the server starts; both take some tens of milliseconds.
    let archives = images::default_archives(&args.images);
    let store = dirs.images();
    let preload = tokio::task::spawn_blocking(move || images::preload(&store, &archives));
    wait_for_server(dirs, &mut server_child).await?;
    let preloaded = preload.await?.context("preloading images")?;
    tracing::debug!(images = preloaded.len(), "images preloaded");
    write_kubeconfigs(dirs, &layout)?;

    let mut agents: Vec<(String, Child)> = Vec::new();
    for node in &layout.nodes {
        let child = start_agent(dirs, &state, node, &exe)?;
        agents.push((node.netns.clone(), child));
    }
    let waiting = std::env::var_os(SKIP_READY_ENV).is_none();
    if waiting {
        let names: Vec<String> = layout.nodes.iter().map(|n| n.netns.clone()).collect();
        wait_ready(dirs, &names, &mut agents, None).await?;
    }
    Ok((layout, waiting))
}

async fn run_teardown(dirs: &ClusterDirs) -> anyhow::Result<TeardownReport> {
    let dirs = dirs.clone();
    tokio::task::spawn_blocking(move || teardown(&dirs)).await?
}

/// Serialises the commands that change a cluster (`up`, `down`, `node stop|start`) with an
/// exclusive `flock` on the data directory's marker, so two of them never interleave. Without
/// a marked data directory there is nothing to protect and no lock.
async fn lock(dirs: &ClusterDirs) -> anyhow::Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    if !owns_data_dir(dirs) {
        return Ok(None);
    }
    let marker = dirs.root.join(MARKER);
    let file = std::fs::File::open(&marker).with_context(|| format!("opening {}", marker.display()))?;
    let locked = tokio::task::spawn_blocking(move || {
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, errno)| errno)
    })
    .await?
    .with_context(|| format!("locking {}", marker.display()))?;
    Ok(Some(locked))
}

pub async fn down(args: ClusterArgs) -> anyhow::Result<()> {
    let dirs = ClusterDirs::new(&args)?;
    let _lock = lock(&dirs).await?;
    let report = run_teardown(&dirs).await?;
    let removed = report.namespaces.len();
    report.into_result(&dirs)?;
    println!("cluster {} is down ({removed} network namespaces removed)", dirs.name);
    Ok(())
}

pub async fn node(command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::Exec(args) => node_exec(args),
        NodeCommand::Stop(args) => node_stop(args).await,
        NodeCommand::Start(args) => node_start(args).await,
    }
}

pub async fn outside(args: OutsideArgs) -> anyhow::Result<()> {
    let dirs = ClusterDirs::new(&args.cluster)?;
    exec_in(&format!("{}-outside", dirs.name), &args.command)
}

fn node_exec(args: NodeExecArgs) -> anyhow::Result<()> {
    let dirs = ClusterDirs::new(&args.cluster)?;
    let index = dirs.parse_node(&args.node).with_context(|| bad_node(&dirs, &args.node))?;
    exec_in(&dirs.node_name(index), &args.command)
}

/// Replaces this process with `command` inside the network namespace `netns`, so stdio, the
/// exit code and signals are the command's own. The namespace is entered on this thread
/// only; `exec` then replaces the whole process with this thread.
fn exec_in(netns_name: &str, command: &[String]) -> anyhow::Result<()> {
    let Some((program, rest)) = command.split_first() else {
        anyhow::bail!("no command given");
    };
    let file = netns::open(netns_name).with_context(|| format!("is the cluster up? network namespace {netns_name}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering network namespace {netns_name}"))?;
    drop(file);
    let error = std::process::Command::new(program).args(rest).exec();
    Err(anyhow::anyhow!("running {program}: {error}"))
}

async fn node_stop(args: NodeArgs) -> anyhow::Result<()> {
    let (dirs, state, node) = node_of(&args)?;
    let _lock = lock(&dirs).await?;
    let node_name = node.netns.clone();
    let killed = process::kill_now(&agent_process(&dirs, &node_name));
    if !killed {
        anyhow::bail!("the agent of {node_name} did not die on SIGKILL");
    }
    let node_dir = dirs.node_dir(&node_name);
    let warnings = tokio::task::spawn_blocking(move || cleanup::kill_containers(&node_dir)).await?;
    for warning in warnings {
        eprintln!("rkube: warning: {warning}");
    }
    // Off the network: the fabric side of the node's link goes down, so nothing reaches the
    // node or its pods and nothing leaves them, as when a machine's cable is pulled.
    set_uplink(&state, &node, false).await?;
    // The killed agent may have been announcing LoadBalancer IPs; another node takes them
    // over, so the stopped node must not answer for them when its link comes back up.
    let label = format!("{}:lb", fabric::UPLINK);
    let flushed = tokio::process::Command::new("ip")
        .args(["-n", &node.netns, "addr", "flush", "dev", fabric::UPLINK, "label", &label])
        .output()
        .await;
    if let Err(e) = flushed {
        eprintln!("rkube: warning: removing LoadBalancer addresses from {node_name}: {e}");
    }
    write_atomic(&dirs.node_stopped(&node_name), b"stopped\n")?;
    println!("node {node_name} stopped: agent killed, containers stopped, link down");
    Ok(())
}

async fn node_start(args: NodeArgs) -> anyhow::Result<()> {
    let (dirs, state, node) = node_of(&args)?;
    let _lock = lock(&dirs).await?;
    let node_name = node.netns.clone();
    if agent_process(&dirs, &node_name).running_pid().is_some() {
        anyhow::bail!("node {node_name} is running already");
    }
    set_uplink(&state, &node, true).await?;
    let exe = std::env::current_exe().context("finding the rkube binary")?;
    let started = std::time::SystemTime::now();
    let child = start_agent(&dirs, &state, &node, &exe)?;
    let _ = std::fs::remove_file(dirs.node_stopped(&node_name));
    if std::env::var_os(SKIP_READY_ENV).is_none() {
        wait_ready(&dirs, std::slice::from_ref(&node_name), &mut [(node_name.clone(), child)], Some(started)).await?;
    }
    println!("node {node_name} started");
    Ok(())
}

fn node_of(args: &NodeArgs) -> anyhow::Result<(ClusterDirs, ClusterState, NodeLayout)> {
    let dirs = ClusterDirs::new(&args.cluster)?;
    let state = ClusterState::read(&dirs)
        .with_context(|| format!("cluster {} is not up (no {})", dirs.name, dirs.state_file().display()))?;
    let index =
        dirs.parse_node(&args.node).filter(|i| *i <= state.nodes).with_context(|| bad_node(&dirs, &args.node))?;
    let layout = fabric::plan(&FabricConfig::new(&dirs.name, state.nodes))?;
    let node = layout.nodes.into_iter().nth(index - 1).with_context(|| bad_node(&dirs, &args.node))?;
    Ok((dirs, state, node))
}

fn bad_node(dirs: &ClusterDirs, node: &str) -> String {
    format!("no node {node:?} in cluster {}: nodes are named {}-node<i> (or node<i>)", dirs.name, dirs.name)
}

async fn set_uplink(state: &ClusterState, node: &NodeLayout, up: bool) -> anyhow::Result<()> {
    let fabric_ns = format!("{}-fabric", state.name);
    let port = format!("node{}", node.index);
    if up {
        let ns = Netns::named(&fabric_ns);
        let port_for_task = port.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            Ok(NetlinkOps::new()?.set_link_up(&ns, &port_for_task)?)
        })
        .await?
        .with_context(|| format!("setting {port} up in {fabric_ns}"))
    } else {
        // NetOps has no "link down" (nothing else needs one); iproute2 does it.
        let out = tokio::process::Command::new("ip")
            .args(["-n", &fabric_ns, "link", "set", &port, "down"])
            .output()
            .await
            .context("running ip")?;
        if !out.status.success() {
            anyhow::bail!("ip -n {fabric_ns} link set {port} down: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }
}

fn server_process(dirs: &ClusterDirs) -> Tracked {
    Tracked { role: "server", data_dir: dirs.server_dir(), pid_file: dirs.server_pid() }
}

fn agent_process(dirs: &ClusterDirs, node: &str) -> Tracked {
    Tracked { role: "agent", data_dir: dirs.node_dir(node), pid_file: dirs.node_pid(node) }
}

fn server_args(dirs: &ClusterDirs, layout: &FabricLayout, state: &ClusterState) -> Vec<OsString> {
    let fabric_listen = std::net::SocketAddr::from((layout.api_ip(), FABRIC_API_PORT));
    let mut args: Vec<OsString> = vec![
        "server".into(),
        "--data-dir".into(),
        dirs.server_dir().into(),
        "--listen".into(),
        state.listen.to_string().into(),
        "--fabric-netns".into(),
        layout.fabric_netns.clone().into(),
        "--fabric-listen".into(),
        fabric_listen.to_string().into(),
        "--tls-san".into(),
        layout.api_ip().to_string().into(),
        "--service-lb-pool".into(),
        lb_pool(layout.api_ip()).into(),
    ];
    args.extend(state.server_args.iter().map(OsString::from));
    args
}

fn agent_args(dirs: &ClusterDirs, state: &ClusterState, node: &NodeLayout) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "agent".into(),
        "--kubeconfig".into(),
        dirs.node_kubeconfig().into(),
        "--node-name".into(),
        node.netns.clone().into(),
        "--data-dir".into(),
        dirs.node_dir(&node.netns).into(),
        "--image-store".into(),
        dirs.images().into(),
        "--node-ip".into(),
        node.internal_ip().to_string().into(),
        "--pod-cidr".into(),
        node.pod_cidr.to_string().into(),
        "--bridge".into(),
        fabric::POD_BRIDGE.into(),
    ];
    if let Some(ip) = external_ip(node) {
        args.extend(["--external-ip".into(), ip.to_string().into()]);
    }
    args.extend(state.agent_args.iter().map(OsString::from));
    args
}

/// The LoadBalancer pool on the fabric, given the API server's fabric address (host 1):
/// hosts 201-250, above the nodes' InternalIPs (10+i), their ExternalIPs (110+i) and the
/// `outside` client (200), so that none of them can collide.
fn lb_pool(api_ip: std::net::Ipv4Addr) -> String {
    let base = u32::from(api_ip) - 1;
    format!("{}-{}", std::net::Ipv4Addr::from(base + 201), std::net::Ipv4Addr::from(base + 250))
}

/// The node's ExternalIP on the fabric, host 110+i, for the first 89 nodes (beyond that it
/// would run into the `outside` client's address).
fn external_ip(node: &NodeLayout) -> Option<std::net::Ipv4Addr> {
    let host = 110 + u32::try_from(node.index).ok()?;
    let base = u32::from(node.internal_ip()) - 10 - u32::try_from(node.index).ok()?;
    (host < 200).then(|| std::net::Ipv4Addr::from(base + host))
}

/// Puts the node's ExternalIP on its uplink, beside the InternalIP, as a second address of
/// the machine would be. Done before every agent start, so it is there after `node start`.
fn add_external_ip(node: &NodeLayout) -> anyhow::Result<()> {
    let Some(ip) = external_ip(node) else { return Ok(()) };
    let out = std::process::Command::new("ip")
        .args(["-n", &node.netns, "addr", "replace", &format!("{ip}/32"), "dev", fabric::UPLINK])
        .output()
        .context("running ip")?;
    anyhow::ensure!(
        out.status.success(),
        "adding {ip} to {}: {}",
        node.netns,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn start_agent(dirs: &ClusterDirs, state: &ClusterState, node: &NodeLayout, exe: &Path) -> anyhow::Result<Child> {
    add_external_ip(node)?;
    let tracked = agent_process(dirs, &node.netns);
    std::fs::create_dir_all(&tracked.data_dir).with_context(|| format!("creating {}", tracked.data_dir.display()))?;
    let mut child =
        tracked.spawn(exe, &agent_args(dirs, state, node), Some(&node.netns), &dirs.node_log(&node.netns))?;
    confirm(&tracked, &mut child, &dirs.node_log(&node.netns))?;
    Ok(child)
}

/// Makes sure a process just spawned has become what its PID file says, so that `down`
/// finds it even if this command is interrupted right now.
fn confirm(tracked: &Tracked, child: &mut Child, log: &Path) -> anyhow::Result<()> {
    if tracked.confirm_started(child, Instant::now() + Duration::from_secs(5)) {
        return Ok(());
    }
    anyhow::bail!("rkube {} did not start; see {}", tracked.role, log.display())
}

/// Waits until the server has written its kubeconfig, which it does once it serves (the
/// directory was emptied before it started, so an old one cannot be mistaken for it).
async fn wait_for_server(dirs: &ClusterDirs, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + SERVER_TIMEOUT;
    loop {
        if dirs.server_kubeconfig().is_file() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!("rkube server exited ({status}) before serving; see {}", dirs.server_log().display());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "rkube server did not serve within {} s; see {}",
                SERVER_TIMEOUT.as_secs(),
                dirs.server_log().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `DIR/kubeconfig` for the user, a copy of the server's admin kubeconfig; and
/// `DIR/node-kubeconfig` for the agents: the same credentials, with the server's address on
/// the fabric, since the nodes cannot reach the host's 127.0.0.1.
fn write_kubeconfigs(dirs: &ClusterDirs, layout: &FabricLayout) -> anyhow::Result<()> {
    let admin = dirs.server_kubeconfig();
    let bytes = std::fs::read(&admin).with_context(|| format!("reading {}", admin.display()))?;
    write_atomic(&dirs.admin_kubeconfig(), &bytes)?;
    let mut config =
        kube::config::Kubeconfig::read_from(&admin).with_context(|| format!("reading {}", admin.display()))?;
    let url = format!("https://{}", std::net::SocketAddr::from((layout.api_ip(), FABRIC_API_PORT)));
    for cluster in config.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        cluster.server = Some(url.clone());
    }
    // JSON is YAML, and every kubeconfig reader accepts it.
    let json = serde_json::to_vec_pretty(&config).context("encoding the node kubeconfig")?;
    write_atomic(&dirs.node_kubeconfig(), &json)?;
    set_mode(&dirs.admin_kubeconfig(), 0o600)?;
    set_mode(&dirs.node_kubeconfig(), 0o600)
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))
}

async fn admin_client(dirs: &ClusterDirs) -> anyhow::Result<kube::Client> {
    let path = dirs.admin_kubeconfig();
    let config = kube::config::Kubeconfig::read_from(&path).with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(config, &kube::config::KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading {}", path.display()))?;
    Ok(kube::Client::try_from(config)?)
}

/// The names of the Ready nodes among `nodes`. With `since`, a node also needs a Lease
/// renewed at or after that time: a restarted agent's node still shows the Ready condition
/// its previous run reported, until the lifecycle controller notices the silence.
async fn ready_nodes(
    client: &kube::Client,
    nodes: &[String],
    since: Option<std::time::SystemTime>,
) -> anyhow::Result<Vec<String>> {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Node;
    let mut nodes = nodes.to_vec();
    if let Some(since) = since {
        let since_ms = since.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), "kube-node-lease");
        let renewed: Vec<String> = leases
            .list(&kube::api::ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|l| {
                l.spec.as_ref().and_then(|s| s.renew_time.as_ref()).is_some_and(|t| t.0.as_millisecond() >= since_ms)
            })
            .filter_map(|l| l.metadata.name)
            .collect();
        nodes.retain(|n| renewed.contains(n));
    }
    let api: kube::Api<Node> = kube::Api::all(client.clone());
    let list = api.list(&kube::api::ListParams::default()).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|n| n.metadata.name.as_ref().is_some_and(|name| nodes.contains(name)))
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|conditions| conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| n.metadata.name)
        .collect())
}

/// Polls until every node in `nodes` is Ready, failing early, with the log to read, when one
/// of the agents just started exits.
async fn wait_ready(
    dirs: &ClusterDirs,
    nodes: &[String],
    agents: &mut [(String, Child)],
    since: Option<std::time::SystemTime>,
) -> anyhow::Result<()> {
    let client = admin_client(dirs).await?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let ready = match ready_nodes(&client, nodes, since).await {
            Ok(ready) => ready,
            Err(e) => {
                tracing::debug!(error = %e, "listing nodes");
                Vec::new()
            }
        };
        if nodes.iter().all(|n| ready.contains(n)) {
            return Ok(());
        }
        for (node, child) in agents.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!("the agent of {node} exited ({status}); see {}", dirs.node_log(node).display());
            }
        }
        if Instant::now() >= deadline {
            let waiting: Vec<&String> = nodes.iter().filter(|n| !ready.contains(n)).collect();
            anyhow::bail!(
                "nodes {waiting:?} not Ready after {} s; see the logs in {}",
                READY_TIMEOUT.as_secs(),
                dirs.logs().display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the recorded cluster runs as recorded: the server and every agent alive, no node
/// stopped, and (unless waiting for Ready is switched off) every Node Ready.
async fn is_healthy(dirs: &ClusterDirs, state: &ClusterState) -> bool {
    let nodes: Vec<String> = (1..=state.nodes).map(|i| dirs.node_name(i)).collect();
    let processes_up = server_process(dirs).running_pid().is_some()
        && nodes.iter().all(|n| agent_process(dirs, n).running_pid().is_some() && !dirs.node_stopped(n).exists());
    if !processes_up {
        return false;
    }
    if std::env::var_os(SKIP_READY_ENV).is_some() {
        return true;
    }
    let check = async {
        let client = admin_client(dirs).await?;
        ready_nodes(&client, &nodes, None).await
    };
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Ok(ready)) => ready.len() == nodes.len(),
        _ => false,
    }
}

fn print_summary(dirs: &ClusterDirs, layout: &FabricLayout) {
    for node in &layout.nodes {
        let external = external_ip(node).map(|ip| format!("  ExternalIP {ip}")).unwrap_or_default();
        println!("  {}  InternalIP {}{external}  podCIDR {}", node.netns, node.internal_ip(), node.pod_cidr);
    }
    println!("  LoadBalancer IPs from {}, reachable from `rkube outside`", lb_pool(layout.api_ip()));
    println!("export KUBECONFIG={}", dirs.admin_kubeconfig().display());
}

/// Makes sure the data directory is this cluster's: it carries the marker with the cluster's
/// name, or it is new or empty and gets the marker now.
fn claim_data_dir(dirs: &ClusterDirs) -> anyhow::Result<()> {
    let marker = dirs.root.join(MARKER);
    match std::fs::read_to_string(&marker) {
        Ok(name) if name.trim() == dirs.name => return Ok(()),
        Ok(name) => anyhow::bail!("{} belongs to cluster {:?}, not {:?}", dirs.root.display(), name.trim(), dirs.name),
        Err(_) => {}
    }
    let empty = match std::fs::read_dir(&dirs.root) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    };
    if !empty {
        anyhow::bail!(
            "{} is not empty and is not an rkube cluster's data directory; pick another --data-dir",
            dirs.root.display()
        );
    }
    std::fs::create_dir_all(&dirs.root).with_context(|| format!("creating {}", dirs.root.display()))?;
    write_atomic(&marker, format!("{}\n", dirs.name).as_bytes())
}

fn owns_data_dir(dirs: &ClusterDirs) -> bool {
    std::fs::read_to_string(dirs.root.join(MARKER)).is_ok_and(|name| name.trim() == dirs.name)
}

/// Empties what a fresh cluster must not inherit: the server's database and certificates,
/// the agents' state, PID files and logs. The image store stays, so images are imported
/// once. Runs after [`teardown`] has checked that nothing is mounted under the directory.
fn reset_data_dir(dirs: &ClusterDirs) -> anyhow::Result<()> {
    for dir in [dirs.server_dir(), dirs.nodes_dir(), dirs.run(), dirs.logs()] {
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", dir.display()));
            }
            _ => {}
        }
    }
    for file in [dirs.admin_kubeconfig(), dirs.node_kubeconfig()] {
        let _ = std::fs::remove_file(file);
    }
    for dir in [dirs.run(), dirs.logs(), dirs.nodes_dir()] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// What [`teardown`] did and what it could not undo.
#[derive(Debug, Default)]
struct TeardownReport {
    namespaces: Vec<String>,
    warnings: Vec<String>,
    /// Anything still there afterwards: processes, mounts, cgroups, namespaces.
    leftovers: Vec<String>,
}

impl TeardownReport {
    fn into_result(self, dirs: &ClusterDirs) -> anyhow::Result<()> {
        for warning in &self.warnings {
            eprintln!("rkube: warning: {warning}");
        }
        if self.leftovers.is_empty() {
            return Ok(());
        }
        anyhow::bail!("cluster {}: could not remove: {}", dirs.name, self.leftovers.join("; "))
    }
}

/// Removes everything of the cluster, in an order where nothing is recreated behind the
/// cleanup: agents and server (by PID), containers and shims, cgroups, mounts under the data
/// directory, then the network namespaces. Works with the processes already dead, with
/// nothing there at all, and without the recorded state.
fn teardown(dirs: &ClusterDirs) -> anyhow::Result<TeardownReport> {
    let mut report = TeardownReport::default();
    let owned = owns_data_dir(dirs);
    let state = ClusterState::read(dirs);
    let nodes = dirs.known_nodes(state.as_ref());

    if owned {
        let mut processes: Vec<Tracked> = nodes.iter().map(|n| agent_process(dirs, n)).collect();
        processes.push(server_process(dirs));
        for (tracked, pid) in process::terminate(&processes, Duration::from_secs(5)) {
            report.leftovers.push(format!("process {pid} (rkube {})", tracked.role));
        }
        for node in &nodes {
            let node_dir = dirs.node_dir(node);
            report.warnings.extend(cleanup::kill_containers(&node_dir));
        }
    }
    for node in &nodes {
        for dir in cleanup::remove_cgroups(node) {
            report.leftovers.push(format!("cgroup {}", dir.display()));
        }
    }
    if owned {
        for point in cleanup::unmount_all_under(&dirs.root) {
            report.leftovers.push(format!("mount {}", point.display()));
        }
        for node in &nodes {
            for pid in cleanup::running_shims(&dirs.node_dir(node)) {
                report.leftovers.push(format!("shim process {pid} of {node}"));
            }
        }
    }
    let ops = NetlinkOps::new().context("opening netlink")?;
    report.namespaces = fabric::teardown(&ops, &dirs.name).context("removing the network namespaces")?;
    let remaining: Vec<String> =
        netns::list()?.into_iter().filter(|ns| fabric::is_cluster_netns(&dirs.name, ns)).collect();
    report.leftovers.extend(remaining.into_iter().map(|ns| format!("network namespace {ns}")));
    if owned {
        let _ = std::fs::remove_dir_all(dirs.run());
    }
    Ok(report)
}
