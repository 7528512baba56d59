//! Where a cluster keeps its files, and what `up` records about it for the other commands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rkube_agent::net::fabric;

use crate::cli::ClusterArgs;

/// The cluster's data directory and the paths inside it.
///
/// ```text
/// DIR/kubeconfig          admin kubeconfig (a copy of server/kubeconfig) for the user
/// DIR/node-kubeconfig     the same credentials, pointing at the fabric address
/// DIR/server/             the server's data directory (database, certificates)
/// DIR/nodes/<node>/       each agent's data directory (runc root, container state)
/// DIR/images/             the image store all agents share
/// DIR/logs/               server.log and <node>.log
/// DIR/run/                cluster.json, server.pid, <node>.pid, <node>.stopped
/// ```
#[derive(Clone, Debug)]
pub struct ClusterDirs {
    pub name: String,
    pub root: PathBuf,
}

impl ClusterDirs {
    /// The directories of the cluster `args` names, after checking the name. The directory
    /// is made absolute, because it is matched against the command lines of the cluster's
    /// processes and handed to them.
    pub fn new(args: &ClusterArgs) -> anyhow::Result<ClusterDirs> {
        check_name(&args.name)?;
        let root = match &args.data_dir {
            Some(dir) => dir.clone(),
            None => Path::new("/var/lib/rkube").join(&args.name),
        };
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir().context("reading the current directory")?.join(root)
        };
        Ok(ClusterDirs { name: args.name.clone(), root })
    }

    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    pub fn node_kubeconfig(&self) -> PathBuf {
        self.root.join("node-kubeconfig")
    }
    pub fn server_dir(&self) -> PathBuf {
        self.root.join("server")
    }
    /// The kubeconfig the server writes once it serves.
    pub fn server_kubeconfig(&self) -> PathBuf {
        self.server_dir().join("kubeconfig")
    }
    pub fn nodes_dir(&self) -> PathBuf {
        self.root.join("nodes")
    }
    pub fn node_dir(&self, node: &str) -> PathBuf {
        self.nodes_dir().join(node)
    }
    pub fn images(&self) -> PathBuf {
        self.root.join("images")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn server_log(&self) -> PathBuf {
        self.logs().join("server.log")
    }
    pub fn node_log(&self, node: &str) -> PathBuf {
        self.logs().join(format!("{node}.log"))
    }
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }
    pub fn state_file(&self) -> PathBuf {
        self.run().join("cluster.json")
    }
    pub fn server_pid(&self) -> PathBuf {
        self.run().join("server.pid")
    }
    pub fn node_pid(&self, node: &str) -> PathBuf {
        self.run().join(format!("{node}.pid"))
    }
    pub fn node_stopped(&self, node: &str) -> PathBuf {
        self.run().join(format!("{node}.stopped"))
    }

    /// The node names `up` gives: `<name>-node<i>`.
    pub fn node_name(&self, index: usize) -> String {
        format!("{}-node{index}", self.name)
    }

    /// The node names that may have left something behind: those of the recorded state, the
    /// agents' directories and the node namespaces that exist.
    pub fn known_nodes(&self, state: Option<&ClusterState>) -> Vec<String> {
        let mut nodes: Vec<String> = Vec::new();
        if let Some(state) = state {
            nodes.extend((1..=state.nodes).map(|i| self.node_name(i)));
        }
        if let Ok(entries) = std::fs::read_dir(self.nodes_dir()) {
            nodes.extend(entries.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)));
        }
        if let Ok(namespaces) = rkube_agent::net::netns::list() {
            nodes.extend(namespaces.into_iter().filter(|ns| self.parse_node(ns).is_some()));
        }
        nodes.retain(|node| self.parse_node(node).is_some());
        nodes.sort_by_key(|node| self.parse_node(node));
        nodes.dedup();
        nodes
    }

    /// The index of a node named `<name>-node<i>` or `node<i>`.
    pub fn parse_node(&self, node: &str) -> Option<usize> {
        let rest = node.strip_prefix(&self.name).and_then(|r| r.strip_prefix('-')).unwrap_or(node);
        let digits = rest.strip_prefix("node")?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
            return None;
        }
        digits.parse().ok().filter(|i| (1..=fabric::MAX_NODES).contains(i))
    }
}

/// What `up` was asked for, so that `node start` can start an agent with the same flags and
/// `up` can tell whether a running cluster is the one asked for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterState {
    pub name: String,
    pub nodes: usize,
    pub listen: SocketAddr,
    pub agent_args: Vec<String>,
    pub server_args: Vec<String>,
}

impl ClusterState {
    /// The state `up` recorded, if any. A file that cannot be parsed counts as none: `down`
    /// must work whatever state a crash left.
    pub fn read(dirs: &ClusterDirs) -> Option<ClusterState> {
        let bytes = std::fs::read(dirs.state_file()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write(&self, dirs: &ClusterDirs) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self).context("encoding the cluster state")?;
        write_atomic(&dirs.state_file(), &json)
    }
}

/// Writes a file by renaming a complete temporary file over it, so a reader never sees half.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Cluster names follow the fabric's rule: they prefix namespace, node and cgroup names.
fn check_name(name: &str) -> anyhow::Result<()> {
    fabric::plan(&fabric::FabricConfig::new(name, 1)).map(|_| ()).with_context(|| format!("--name {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(name: &str) -> ClusterDirs {
        ClusterDirs::new(&ClusterArgs { name: name.into(), data_dir: Some("/tmp/x".into()) }).expect("dirs")
    }

    #[test]
    fn node_names_parse_long_and_short() {
        let d = dirs("c");
        assert_eq!(d.parse_node("c-node2"), Some(2));
        assert_eq!(d.parse_node("node12"), Some(12));
        for bad in ["c-node0", "c-node", "node", "c-node01", "c-nodex", "d-node1", "c-node1.pod", "c-node999", ""] {
            assert_eq!(d.parse_node(bad), None, "{bad}");
        }
        assert_eq!(d.node_name(3), "c-node3");
    }

    #[test]
    fn bad_names_and_relative_dirs() {
        assert!(ClusterDirs::new(&ClusterArgs { name: "Bad_Name".into(), data_dir: None }).is_err());
        assert!(ClusterDirs::new(&ClusterArgs { name: "a/../b".into(), data_dir: None }).is_err());
        let d = ClusterDirs::new(&ClusterArgs { name: "ok".into(), data_dir: None }).expect("default");
        assert_eq!(d.root, Path::new("/var/lib/rkube/ok"));
        let d = ClusterDirs::new(&ClusterArgs { name: "ok".into(), data_dir: Some("rel".into()) }).expect("relative");
        assert!(d.root.is_absolute() && d.root.ends_with("rel"));
    }
}
