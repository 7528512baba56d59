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

    /// How often leaked Service IPs and node ports are looked for (seconds).
    #[arg(long, default_value_t = 60.0)]
    pub service_repair_interval: f64,

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
}
