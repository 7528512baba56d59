//! Shared by the agent's streaming tests and rkube's end-to-end stream tests: real runc
//! containers with a busybox root filesystem, and a [`PodContainers`] over them.
//!
//! Every harness owns its temp dir, its runc `--root`, its containers (ids carry this
//! process's pid) and its cgroups (`/rkube-stream-<pid>-<name>/…`), and removes exactly those.

#![allow(dead_code)] // Each test binary uses a different part of the harness.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Container;
use rkube_agent::runtime::spec::{self, EtcFiles, ImageConfig, NamespaceMode, PodNamespaces, SpecInput, UserDb};
use rkube_agent::runtime::{ContainerRuntime, CreateRequest, Runc, ShimCommand, Status, ns};
use rkube_agent::stream::{ContainerTarget, PodContainers, StreamError};

const APPLETS: &[&str] =
    &["sh", "echo", "sleep", "cat", "env", "ls", "true", "false", "printf", "stty", "touch", "test", "[", "seq", "tty"];

/// Debian's busybox has no `printenv` applet (the real images carry coreutils' binary); a
/// small script stands in for it here, with printenv's output and exit status.
const PRINTENV: &str = r#"#!/bin/sh
if [ $# -eq 0 ]; then exec env; fi
rc=0
for n in "$@"; do
  if eval "[ -n \"\${$n+x}\" ]"; then eval "printf '%s\\n' \"\$$n\""; else rc=1; fi
done
exit $rc
"#;

/// Whether the real runtime can run here. The tests skip, loudly, only when runc is missing.
pub fn runc_available() -> bool {
    let found = Command::new("runc").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: runc is not installed (scripts/install-deps.sh installs it); nothing was tested");
    }
    found
}

/// A busybox root filesystem and a runc runtime rooted in a temp dir.
pub struct Containers {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub runc: Arc<Runc>,
    ids: Mutex<Vec<String>>,
}

impl Containers {
    pub fn new(name: &str, shim: ShimCommand) -> Containers {
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "/bin/busybox is missing: run scripts/install-deps.sh (busybox-static)");
        let dir = tempfile::Builder::new().prefix("rkube-st-").tempdir().expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        for sub in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(sub)).expect("mkdir");
        }
        std::fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("symlink");
        }
        std::fs::write(rootfs.join("bin/printenv"), PRINTENV).expect("printenv");
        std::fs::set_permissions(rootfs.join("bin/printenv"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").expect("group");
        let mut runc = Runc::new(&dir.path().join("state")).expect("runtime");
        runc.shim = shim;
        Containers { name: name.to_string(), dir, rootfs, runc: Arc::new(runc), ids: Mutex::new(Vec::new()) }
    }

    fn cgroup_parent(&self) -> String {
        format!("rkube-stream-{}-{}", std::process::id(), self.name)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.log"))
    }

    /// Creates and starts a container running `container` in the busybox image; returns its id.
    pub async fn run(&self, suffix: &str, container: &Container) -> String {
        let id = format!("{}-{}-{}", self.name, suffix, std::process::id());
        self.ids.lock().expect("ids").push(id.clone());
        let image = ImageConfig { cmd: vec!["sh".into()], env: vec!["PATH=/bin".into()], ..Default::default() };
        let env = spec::literal_env(container).expect("env");
        let users = UserDb::read(&self.rootfs).expect("users");
        let cgroups_path = spec::cgroups_path(&self.cgroup_parent(), "pod", &id);
        let namespaces = PodNamespaces { network: NamespaceMode::Host, ipc: NamespaceMode::New, shm: None };
        let spec = spec::build(&SpecInput {
            image: &image,
            container,
            pod_security_context: None,
            env: &env,
            users: &users,
            rootfs: &self.rootfs,
            hostname: "stream-test",
            namespaces: &namespaces,
            volumes: &[],
            etc_files: &EtcFiles::default(),
            cgroups_path: &cgroups_path,
            host_devices: &[],
        })
        .expect("spec");
        let log_path = self.log_path(&id);
        self.runc.create(CreateRequest { id: id.clone(), spec, log_path }).await.expect("create");
        self.runc.start(&id).await.expect("start");
        id
    }

    /// Waits until the container's log holds `n` lines.
    pub async fn wait_log_lines(&self, id: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(self.log_path(id)).unwrap_or_default();
            if text.lines().count() >= n {
                return;
            }
            assert!(Instant::now() < deadline, "the log of {id} never reached {n} lines: {text:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_exit(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.runc.state(id).await.expect("state");
            if state.exit.is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "{id} did not exit: {state:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        let ids = self.ids.lock().map(|i| i.clone()).unwrap_or_default();
        for id in &ids {
            let _ = Command::new(&self.runc.runc)
                .arg("--root")
                .arg(&self.runc.root)
                .args(["delete", "--force", id])
                .output();
        }
        // A shim exits once its container is gone; wait for that before removing cgroups.
        let deadline = Instant::now() + Duration::from_secs(5);
        for id in &ids {
            let pid = std::fs::read_to_string(self.runc.container_dir(id).join("shim.pid")).unwrap_or_default();
            while !pid.trim().is_empty() && Path::new(&format!("/proc/{}", pid.trim())).exists() {
                if Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = ns::remove_cgroup(&spec::cgroups_path(&self.cgroup_parent(), "pod", id));
        }
        let _ = ns::remove_cgroup(&format!("/{}/podpod", self.cgroup_parent()));
        let _ = ns::remove_cgroup(&format!("/{}", self.cgroup_parent()));
    }
}

/// One container of a test pod.
#[derive(Clone, Debug)]
pub struct TestContainer {
    pub name: String,
    pub id: String,
    pub log_path: PathBuf,
    pub previous_log: Option<PathBuf>,
    pub tty: bool,
    pub stdin: bool,
}

/// A pod table for the streaming server: `(namespace, pod)` to containers, first is default.
pub struct TestPods {
    pub runtime: Arc<Runc>,
    pods: Mutex<BTreeMap<(String, String), Vec<TestContainer>>>,
}

impl TestPods {
    pub fn new(runtime: Arc<Runc>) -> TestPods {
        TestPods { runtime, pods: Mutex::new(BTreeMap::new()) }
    }

    pub fn add(&self, namespace: &str, pod: &str, container: TestContainer) {
        self.pods.lock().expect("pods").entry((namespace.into(), pod.into())).or_default().push(container);
    }
}

#[async_trait::async_trait]
impl PodContainers for TestPods {
    async fn find(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Result<ContainerTarget, StreamError> {
        let found = {
            let pods = self.pods.lock().expect("pods");
            let containers = pods
                .get(&(namespace.to_string(), pod.to_string()))
                .ok_or_else(|| StreamError::NotFound(format!("pod {namespace}/{pod} is not on this node")))?;
            match container {
                Some(name) => containers.iter().find(|c| c.name == name).cloned(),
                None => containers.first().cloned(),
            }
            .ok_or_else(|| {
                StreamError::BadRequest(format!("container {:?} in pod {pod:?} not found", container.unwrap_or("")))
            })?
        };
        let log_path = if previous {
            found.previous_log.clone().ok_or_else(|| {
                StreamError::BadRequest(format!(
                    "previous terminated container {:?} in pod {pod:?} not found",
                    found.name
                ))
            })?
        } else {
            found.log_path.clone()
        };
        let running = matches!(self.runtime.state(&found.id).await.map(|s| s.status), Ok(Status::Running));
        Ok(ContainerTarget { container_id: found.id, log_path, running, tty: found.tty, stdin: found.stdin })
    }
}

pub fn sh(name: &str, script: &str) -> Container {
    Container { name: name.into(), command: Some(vec!["sh".into(), "-c".into(), script.into()]), ..Default::default() }
}
