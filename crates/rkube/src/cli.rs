//! The command line. Only definitions live here; behaviour is in the subcommand modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "rkube", version, about = "Kubernetes service networking in one binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the control plane on one machine.
    Server(ServerArgs),
    /// Run a node: pods as runc containers, the service proxy and the cluster DNS.
    Agent(AgentArgs),
    /// Start a cluster on this machine: a server and N nodes, each node in its own network
    /// namespace. Returns once every node is Ready.
    Up(UpArgs),
    /// Remove everything `up` made for a cluster: processes, namespaces, mounts.
    Down(ClusterArgs),
    /// Act on one node of an `up` cluster.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Run a command as the cluster's internet client (its `outside` namespace).
    Outside(OutsideArgs),
    /// Make a self-signed certificate and key (the tutorial's `make keys`, without openssl).
    Cert(CertArgs),
    /// Manage the local image store.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The API server's URL; with `--token` and `--ca-file` instead of `--kubeconfig`.
    #[arg(long, env = "RKUBE_SERVER")]
    pub server: Option<String>,
    /// A bearer token for the API server.
    #[arg(long, env = "RKUBE_TOKEN")]
    pub token: Option<String>,
    /// The cluster CA certificate (PEM), to verify the API server.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// A kubeconfig to reach the API server with, instead of `--server`/`--token`.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The Node's name; defaults to the host name.
    #[arg(long)]
    pub node_name: Option<String>,
    /// Where the agent keeps its state: pods, container state, IPAM, logs.
    #[arg(long, default_value = "/var/lib/rkube/agent")]
    pub data_dir: PathBuf,
    /// The image store; several agents on one machine may share one.
    #[arg(long)]
    pub image_store: Option<PathBuf>,
    /// The node's InternalIP; defaults to the first global IPv4 address of this namespace.
    #[arg(long)]
    pub node_ip: Option<std::net::Ipv4Addr>,
    /// An ExternalIP to report for the node.
    #[arg(long)]
    pub external_ip: Option<std::net::Ipv4Addr>,
    /// The podCIDR to ask for; otherwise the server's allocator assigns one.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// The pod bridge in this namespace; created with the podCIDR's first address if missing.
    #[arg(long, default_value = "cbr0")]
    pub bridge: String,
    /// The link LoadBalancer IPs are announced on (with gratuitous ARP).
    #[arg(long, default_value = "eth0")]
    pub uplink: String,
    /// The cluster DNS Service IP written into pods' resolv.conf.
    #[arg(long, default_value = "10.96.0.10")]
    pub cluster_dns: std::net::Ipv4Addr,
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The Service IP range, for the proxy.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    /// The range all nodes' podCIDRs come from, for the proxy.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Where the agent serves Prometheus metrics (proxy and DNS) over HTTP; port 0 turns it off.
    #[arg(long, default_value_t = 10249)]
    pub metrics_port: u16,
    /// The port of the agent's streaming server (logs, exec, attach).
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// Upstream DNS servers for names outside the cluster; none means no forwarding.
    #[arg(long = "dns-upstream", value_delimiter = ',')]
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// Parts of the agent not to run: `proxy`, `dns`, `servicelb`.
    #[arg(long = "disable", value_delimiter = ',')]
    pub disable: Vec<String>,
    /// How often the node's Lease is renewed, in seconds. The server's node lifecycle
    /// controller marks a node NotReady after 5 s without a renewal.
    #[arg(long, default_value_t = 1.0)]
    pub status_interval: f64,
    /// The first crash-loop back-off in seconds; it doubles at each crash up to 300 s.
    #[arg(long, default_value_t = 10.0)]
    pub crashloop_backoff: f64,
}

#[derive(Args, Debug, Clone)]
pub struct CertArgs {
    /// The subject's common name, also written as a DNS subject alternative name.
    #[arg(long)]
    pub cn: String,
    /// The subject's organisation; defaults to the common name, as in the tutorial.
    #[arg(long = "o")]
    pub org: Option<String>,
    /// Where to write the private key (PEM, mode 0600).
    #[arg(long)]
    pub key: PathBuf,
    /// Where to write the certificate (PEM).
    #[arg(long)]
    pub cert: PathBuf,
    /// How many days the certificate is valid.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// The cluster's name; it prefixes every namespace `up` makes.
    #[arg(long, default_value = "rkube")]
    pub name: String,
    /// Where the cluster keeps its state; defaults to `/var/lib/rkube/<name>`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How many nodes.
    #[arg(long, default_value_t = 2)]
    pub nodes: usize,
    /// Where the API server listens for the host.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: std::net::SocketAddr,
    /// Image archives to preload (default: the archives `images/build.sh` made, when found).
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// Extra arguments for every agent, e.g. `--dns-upstream=127.0.0.1:5353`.
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
    /// Extra arguments for the server.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum NodeCommand {
    /// Run a command on a node (in its network namespace): the tutorial's "ssh into a node".
    Exec(NodeExecArgs),
    /// Take a node down: its agent stops and its pods leave the network.
    Stop(NodeArgs),
    /// Bring a stopped node back.
    Start(NodeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The node's name, e.g. `rkube-node1`.
    pub node: String,
}

#[derive(Args, Debug, Clone)]
pub struct NodeExecArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    pub node: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct OutsideArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ImageCommand {
    /// Import OCI or docker-archive tarballs into the store.
    Import(ImageImportArgs),
    /// List the images in the store.
    List(ImageStoreArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ImageStoreArgs {
    /// The image store.
    #[arg(long, default_value = "/var/lib/rkube/images")]
    pub store: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct ImageImportArgs {
    #[command(flatten)]
    pub store: ImageStoreArgs,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Where the server keeps its state: the embedded database, certificates, kubeconfig.
    #[arg(long, default_value = "/var/lib/rkube/server", env = "RKUBE_DATA_DIR")]
    pub data_dir: PathBuf,

    /// Where the API server listens (HTTPS).
    #[arg(long, default_value = "0.0.0.0:6443", env = "RKUBE_LISTEN")]
    pub listen: std::net::SocketAddr,

    /// Extra names or addresses for the API server's certificate; may be repeated.
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,

    /// The Service IP range.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,

    /// The NodePort range, `LOW-HIGH`.
    #[arg(long, default_value = "30000-32767")]
    pub service_node_port_range: String,

    /// The addresses LoadBalancer Services get ingress IPs from, `START-END`; without it they
    /// stay pending (unless another implementation serves them).
    #[arg(long)]
    pub service_lb_pool: Option<rkube_controllers::servicelb::Pool>,

    /// How often leaked Service IPs and node ports are looked for (seconds).
    #[arg(long, default_value_t = 60.0)]
    pub service_repair_interval: f64,

    /// The range nodes' podCIDRs are allocated from (a /24 each), for nodes that do not ask
    /// for one.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,

    /// Control loops not to run, by name (e.g. `scheduler`); may be repeated or comma-separated.
    #[arg(long = "disable", value_delimiter = ',')]
    pub disable: Vec<String>,

    /// The cluster state store. Empty means the embedded SQLite database in the data
    /// directory; `etcd://host:2379[,host:2379...]` (or `etcds://` for TLS) means etcd.
    #[arg(long, default_value = "", env = "RKUBE_DATASTORE")]
    pub datastore: String,

    /// CA certificate for etcd over TLS.
    #[arg(long)]
    pub etcd_cafile: Option<PathBuf>,
    /// Client certificate for etcd over TLS.
    #[arg(long)]
    pub etcd_certfile: Option<PathBuf>,
    /// Client key for etcd over TLS.
    #[arg(long)]
    pub etcd_keyfile: Option<PathBuf>,

    /// A named network namespace (`/run/netns/NS`) to serve the API in as well, with
    /// `--fabric-listen`; nodes and pods inside it reach the API there, and the server dials
    /// nodes from it. `rkube up` sets this to its fabric namespace.
    #[arg(long, requires = "fabric_listen")]
    pub fabric_netns: Option<String>,
    /// The address to listen on inside `--fabric-netns`; it is added to the certificate.
    #[arg(long, requires = "fabric_netns")]
    pub fabric_listen: Option<std::net::SocketAddr>,
}
