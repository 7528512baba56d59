//! The OCI runtime spec (`config.json`) for one container of a pod, built from the image
//! config, the Kubernetes container spec and what the agent prepared (rootfs, namespaces,
//! volumes, `/etc` files, cgroup path).
//!
//! [`build`] is a pure function: everything it needs from the disk (the image's
//! `/etc/passwd` and `/etc/group`, the host's devices for privileged containers) is read by
//! the caller, with [`UserDb::read`] and [`host_devices`], and handed in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecurityContext};
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxMemory, LinuxNamespace,
    LinuxNamespaceType, LinuxResources, Mount, Process, Root, Spec, User,
};

use super::quantity;

/// The OCI runtime spec version written into `config.json` (what runc 1.1 implements).
pub const OCI_VERSION: &str = "1.0.2";

/// `PATH` when the image sets none (containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// CFS period used for CPU limits, in microseconds (the kubelet's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Docker's and containerd's default capability set, in their order.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability a privileged container gets.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETGID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
];

/// Paths masked in unprivileged containers (containerd's list).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in unprivileged containers (containerd's list).
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Why a spec could not be built. Every variant is about the pod's or the image's data, so
/// the agent shows the message as the container's status message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("no command specified: the image has no entrypoint or cmd and the container no command")]
    NoCommand,
    #[error("invalid {resource} quantity {value:?}")]
    Quantity { resource: String, value: String },
    #[error("unknown capability {0:?}")]
    Capability(String),
    #[error("user {0:?} not found in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} not found in the image's /etc/group")]
    UnknownGroup(String),
    #[error("invalid user or group id {0}")]
    InvalidId(i64),
    #[error("environment variable {0:?} uses valueFrom, which the caller must resolve")]
    UnresolvedEnv(String),
    #[error("mount destination {0:?} is not an absolute path")]
    RelativeMount(String),
    #[error("building the spec: {0}")]
    Oci(String),
}

/// The parts of an image's config (`config.config` in the OCI image config) a container uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` strings, in the image's order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `uid`, `uid:gid`, `name`, `name:group`, or empty for root.
    pub user: Option<String>,
}

impl From<&oci_spec::image::Config> for ImageConfig {
    fn from(c: &oci_spec::image::Config) -> Self {
        ImageConfig {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
        }
    }
}

/// How a container gets one of the namespaces its pod shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceMode {
    /// The host's (the agent's) namespace: `hostNetwork` / `hostIPC`.
    Host,
    /// A fresh namespace of its own.
    New,
    /// Join the namespace bind-mounted at this path (`/run/netns/<name>`, or an IPC
    /// namespace made by [`super::ns::create_ipc_namespace`]).
    Join(PathBuf),
}

/// The namespaces the containers of one pod share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNamespaces {
    pub network: NamespaceMode,
    pub ipc: NamespaceMode,
    /// A host directory (a tmpfs the agent mounted for the pod) bind-mounted at `/dev/shm`
    /// so that POSIX shared memory is shared like the IPC namespace. `None` gives each
    /// container its own 64 MiB tmpfs.
    pub shm: Option<PathBuf>,
}

/// Mount propagation of a volume, as `volumeMounts[].mountPropagation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    #[default]
    None,
    HostToContainer,
    Bidirectional,
}

/// A volume prepared by the agent on the host, bind-mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub host_path: PathBuf,
    pub container_path: String,
    pub read_only: bool,
    pub propagation: Propagation,
}

/// Files the agent writes per pod and bind-mounts into every container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcFiles {
    pub hosts: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
}

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The image's users and groups, for resolving `USER name` and supplementary groups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    pub passwd: Vec<PasswdEntry>,
    pub groups: Vec<GroupEntry>,
}

impl UserDb {
    /// Parses `/etc/passwd` and `/etc/group` contents; malformed lines are skipped.
    pub fn parse(passwd: &str, group: &str) -> UserDb {
        let passwd = passwd
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 7 {
                    return None;
                }
                Some(PasswdEntry {
                    name: f[0].to_string(),
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    home: f[5].to_string(),
                })
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 4 {
                    return None;
                }
                Some(GroupEntry {
                    name: f[0].to_string(),
                    gid: f[2].parse().ok()?,
                    members: f[3].split(',').filter(|m| !m.is_empty()).map(str::to_string).collect(),
                })
            })
            .collect();
        UserDb { passwd, groups }
    }

    /// Reads `<rootfs>/etc/passwd` and `<rootfs>/etc/group`; a missing file counts as empty.
    pub fn read(rootfs: &Path) -> std::io::Result<UserDb> {
        let read = |name: &str| match std::fs::read_to_string(rootfs.join("etc").join(name)) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(e),
        };
        Ok(UserDb::parse(&read("passwd")?, &read("group")?))
    }

    fn user_by_name(&self, name: &str) -> Option<&PasswdEntry> {
        self.passwd.iter().find(|p| p.name == name)
    }

    fn user_by_uid(&self, uid: u32) -> Option<&PasswdEntry> {
        self.passwd.iter().find(|p| p.uid == uid)
    }

    fn group_by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// Everything [`build`] needs.
#[derive(Debug, Clone, Copy)]
pub struct SpecInput<'a> {
    pub image: &'a ImageConfig,
    pub container: &'a Container,
    pub pod_security_context: Option<&'a PodSecurityContext>,
    /// The container's environment as the kubelet resolves it (`env` with `valueFrom`
    /// resolved, `envFrom`, service links), in order. [`literal_env`] gives it for a
    /// container whose `env` has literal values only. Also the variables `$(VAR)` in
    /// command and args refer to.
    pub env: &'a [(String, String)],
    pub users: &'a UserDb,
    /// The prepared root filesystem, an absolute host path.
    pub rootfs: &'a Path,
    /// The pod's hostname (its name, or `spec.hostname`).
    pub hostname: &'a str,
    pub namespaces: &'a PodNamespaces,
    pub volumes: &'a [VolumeMount],
    pub etc_files: &'a EtcFiles,
    /// `linux.cgroupsPath`, see [`cgroups_path`].
    pub cgroups_path: &'a str,
    /// Device nodes given to privileged containers, see [`host_devices`].
    pub host_devices: &'a [LinuxDevice],
}

/// The cgroup of one container: `/<parent>/pod<pod_uid>/<container_id>`, e.g.
/// `/rkube/pod1b4e…/3f2a…`. `parent` is per agent (`rkube`, or `rkube-<node>` when several
/// agents share a machine).
pub fn cgroups_path(parent: &str, pod_uid: &str, container_id: &str) -> String {
    format!("/{}/pod{}/{}", parent.trim_matches('/'), pod_uid, container_id)
}

/// The environment of a container whose `env` entries all have literal values, with
/// `$(VAR)` references to earlier entries expanded as the kubelet does.
pub fn literal_env(container: &Container) -> Result<Vec<(String, String)>, SpecError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        if var.value_from.is_some() {
            return Err(SpecError::UnresolvedEnv(var.name.clone()));
        }
        let value = expand(var.value.as_deref().unwrap_or(""), &out);
        set_env(&mut out, &var.name, value);
    }
    Ok(out)
}

fn set_env(env: &mut Vec<(String, String)>, name: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => env.push((name.to_string(), value)),
    }
}

/// Kubernetes' `$(VAR)` expansion: `$(NAME)` becomes the variable's value when it is
/// defined and stays as it is otherwise; `$$` is an escaped `$`.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match env.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The process arguments, with Kubernetes' override rules: `command` replaces the image's
/// ENTRYPOINT (and then its CMD is ignored), `args` replaces CMD.
pub fn process_args(image: &ImageConfig, container: &Container, env: &[(String, String)]) -> Vec<String> {
    let command: Vec<String> = container.command.iter().flatten().map(|c| expand(c, env)).collect();
    let args: Vec<String> = container.args.iter().flatten().map(|a| expand(a, env)).collect();
    let (head, tail) = match (command.is_empty(), args.is_empty()) {
        (true, true) => (image.entrypoint.clone(), image.cmd.clone()),
        (true, false) => (image.entrypoint.clone(), args),
        (false, true) => (command, Vec::new()),
        (false, false) => (command, args),
    };
    head.into_iter().chain(tail).collect()
}

/// The process environment: `PATH` (when the image has none), `HOSTNAME`, the image's
/// variables, then the container's; a later definition replaces an earlier one in place.
pub fn process_env(image: &ImageConfig, hostname: &str, env: &[(String, String)]) -> Vec<String> {
    let mut merged: Vec<(String, String)> = vec![("PATH".to_string(), DEFAULT_PATH.to_string())];
    set_env(&mut merged, "HOSTNAME", hostname.to_string());
    for kv in &image.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        set_env(&mut merged, k, v.to_string());
    }
    for (k, v) in env {
        set_env(&mut merged, k, v.clone());
    }
    merged.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn id(value: i64) -> Result<u32, SpecError> {
    u32::try_from(value).map_err(|_| SpecError::InvalidId(value))
}

/// uid, gid and supplementary groups, from the security contexts and the image's `USER`.
fn resolve_user(input: &SpecInput<'_>) -> Result<User, SpecError> {
    let sc = input.container.security_context.as_ref();
    let psc = input.pod_security_context;
    let run_as_user = sc.and_then(|s| s.run_as_user).or(psc.and_then(|p| p.run_as_user));
    let run_as_group = sc.and_then(|s| s.run_as_group).or(psc.and_then(|p| p.run_as_group));
    let users = input.users;

    let (mut uid, mut gid, mut username) = (0u32, None::<u32>, None::<String>);
    // runAsUser replaces the image's USER entirely, group included (containerd's WithUserID).
    let image_user = input.image.user.as_deref().filter(|u| !u.is_empty() && run_as_user.is_none());
    if let Some(spec) = image_user {
        let (user_part, group_part) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        match user_part.parse::<u32>() {
            Ok(n) => uid = n,
            Err(_) => {
                let entry = users.user_by_name(user_part).ok_or_else(|| SpecError::UnknownUser(user_part.into()))?;
                uid = entry.uid;
                gid = Some(entry.gid);
                username = Some(entry.name.clone());
            }
        }
        if let Some(g) = group_part.filter(|g| !g.is_empty()) {
            gid = Some(match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => users.group_by_name(g).ok_or_else(|| SpecError::UnknownGroup(g.into()))?.gid,
            });
        }
    }
    if let Some(u) = run_as_user {
        uid = id(u)?;
    }
    let entry = users.user_by_uid(uid);
    if username.is_none() {
        username = entry.map(|e| e.name.clone());
    }
    let gid = match run_as_group {
        Some(g) => id(g)?,
        None => gid.or(entry.map(|e| e.gid)).unwrap_or(0),
    };

    let mut additional: BTreeSet<u32> = BTreeSet::new();
    if let Some(name) = &username {
        additional.extend(users.groups.iter().filter(|g| g.members.contains(name)).map(|g| g.gid));
    }
    if let Some(p) = psc {
        for g in p.supplemental_groups.iter().flatten() {
            additional.insert(id(*g)?);
        }
        if let Some(g) = p.fs_group {
            additional.insert(id(g)?);
        }
    }
    additional.remove(&gid);

    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    if !additional.is_empty() {
        user.set_additional_gids(Some(additional.into_iter().collect()));
    }
    Ok(user)
}

fn parse_capability(name: &str) -> Result<Capability, SpecError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    serde_json::from_value::<Capability>(serde_json::Value::String(full))
        .map_err(|_| SpecError::Capability(name.to_string()))
}

/// The capability set: the default set, minus `drop`, plus `add` (`ALL` allowed in both,
/// as containerd does), or every capability when privileged.
pub fn capabilities(sc: Option<&SecurityContext>) -> Result<Vec<String>, SpecError> {
    if sc.and_then(|s| s.privileged).unwrap_or(false) {
        return Ok(ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect());
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let add: Vec<&String> = caps.and_then(|c| c.add.as_ref()).into_iter().flatten().collect();
    let drop: Vec<&String> = caps.and_then(|c| c.drop.as_ref()).into_iter().flatten().collect();
    let is_all = |s: &&String| s.eq_ignore_ascii_case("ALL");

    let mut set: Vec<String> =
        if drop.iter().any(is_all) { Vec::new() } else { DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect() };
    for d in drop.iter().filter(|d| !is_all(d)) {
        let name = serde_json::to_value(parse_capability(d)?).map_err(|e| SpecError::Oci(e.to_string()))?;
        set.retain(|c| Some(c.as_str()) != name.as_str());
    }
    if add.iter().any(is_all) {
        return Ok(ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect());
    }
    for a in add {
        let value = serde_json::to_value(parse_capability(a)?).map_err(|e| SpecError::Oci(e.to_string()))?;
        if let Some(name) = value.as_str()
            && !set.iter().any(|c| c == name)
        {
            set.push(name.to_string());
        }
    }
    Ok(set)
}

/// `linux.resources`: memory limit, CPU shares from the request (the limit when there is
/// no request, as API defaulting does; 2 when neither) and CFS quota from the limit.
pub fn resources(container: &Container, privileged: bool) -> Result<LinuxResources, SpecError> {
    let req = container.resources.as_ref();
    let get = |map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, key: &str| {
        map.and_then(|m| m.get(key)).map(|q| q.0.clone())
    };
    let limits = req.and_then(|r| r.limits.as_ref());
    let requests = req.and_then(|r| r.requests.as_ref());
    let bad = |resource: &str, value: &str| SpecError::Quantity { resource: resource.into(), value: value.into() };

    let cpu_limit = match get(limits, "cpu") {
        Some(q) => Some(quantity::milli_value(&q).map_err(|_| bad("cpu", &q))?),
        None => None,
    };
    let cpu_request = match get(requests, "cpu") {
        Some(q) => Some(quantity::milli_value(&q).map_err(|_| bad("cpu", &q))?),
        None => cpu_limit,
    };
    let memory_limit = match get(limits, "memory") {
        Some(q) => Some(quantity::value(&q).map_err(|_| bad("memory", &q))?),
        None => None,
    };

    let mut cpu = LinuxCpu::default();
    // kubelet's MilliCPUToShares: 1024 shares per CPU, at least 2, at most 262144.
    let shares = cpu_request.map(|m| m.saturating_mul(1024) / 1000).unwrap_or(2).clamp(2, 262_144);
    cpu.set_shares(Some(shares.unsigned_abs()));
    if let Some(milli) = cpu_limit.filter(|m| *m > 0) {
        // kubelet's MilliCPUToQuota: at least 1ms per period.
        let quota = (milli.saturating_mul(CPU_PERIOD_US as i64) / 1000).max(1000);
        cpu.set_quota(Some(quota));
        cpu.set_period(Some(CPU_PERIOD_US));
    }

    let mut res = LinuxResources::default();
    res.set_cpu(Some(cpu));
    if let Some(limit) = memory_limit.filter(|l| *l > 0) {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(limit));
        res.set_memory(Some(memory));
    }
    let mut all_devices = LinuxDeviceCgroup::default();
    all_devices.set_allow(privileged);
    all_devices.set_access(Some("rwm".to_string()));
    res.set_devices(Some(vec![all_devices]));
    Ok(res)
}

fn mount(destination: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

fn bind(destination: &str, source: &Path, read_only: bool, propagation: Propagation) -> Mount {
    let prop = match propagation {
        Propagation::None => "rprivate",
        Propagation::HostToContainer => "rslave",
        Propagation::Bidirectional => "rshared",
    };
    let mut m = mount(destination, "bind", "", &["rbind", prop, if read_only { "ro" } else { "rw" }]);
    m.set_source(Some(source.to_path_buf()));
    m
}

/// The mount list: the standard kernel filesystems, `/dev/shm`, the pod's `/etc` files,
/// then the volumes, parents before children.
pub fn mounts(input: &SpecInput<'_>, privileged: bool) -> Result<Vec<Mount>, SpecError> {
    let sys_mode = if privileged { "rw" } else { "ro" };
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", sys_mode]),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", sys_mode]),
    ];
    let volume_at = |dest: &str| input.volumes.iter().any(|v| v.container_path.trim_end_matches('/') == dest);
    if !volume_at("/dev/shm") {
        out.push(match &input.namespaces.shm {
            Some(path) => bind("/dev/shm", path, false, Propagation::None),
            None => mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        });
    }
    let etc = input.etc_files;
    for (dest, file) in
        [("/etc/hosts", &etc.hosts), ("/etc/resolv.conf", &etc.resolv_conf), ("/etc/hostname", &etc.hostname)]
    {
        if let Some(path) = file
            && !volume_at(dest)
        {
            out.push(bind(dest, path, false, Propagation::None));
        }
    }
    let mut volumes: Vec<&VolumeMount> = input.volumes.iter().collect();
    for v in &volumes {
        if !v.container_path.starts_with('/') {
            return Err(SpecError::RelativeMount(v.container_path.clone()));
        }
    }
    // Stable: volumes at the same depth keep the pod's order.
    volumes.sort_by_key(|v| Path::new(&v.container_path).components().count());
    out.extend(volumes.into_iter().map(|v| bind(&v.container_path, &v.host_path, v.read_only, v.propagation)));
    Ok(out)
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns.set_path(path.map(Path::to_path_buf));
    ns
}

/// Builds the runtime spec. Pure: see the module documentation.
pub fn build(input: &SpecInput<'_>) -> Result<Spec, SpecError> {
    let container = input.container;
    let sc = container.security_context.as_ref();
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    let oci = |e: oci_spec::OciSpecError| SpecError::Oci(e.to_string());

    let args = process_args(input.image, container, input.env);
    if args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let cwd = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| input.image.working_dir.clone())
        .unwrap_or_else(|| "/".to_string());

    let cap_names = capabilities(sc)?;
    let caps: oci_spec::runtime::Capabilities =
        cap_names.iter().map(|c| parse_capability(c)).collect::<Result<_, _>>()?;
    let mut linux_caps = LinuxCapabilities::default();
    linux_caps.set_bounding(Some(caps.clone()));
    linux_caps.set_effective(Some(caps.clone()));
    linux_caps.set_permitted(Some(caps));
    linux_caps.set_inheritable(None);
    linux_caps.set_ambient(None);

    let mut process = Process::default();
    process.set_terminal(Some(container.tty.unwrap_or(false)));
    process.set_user(resolve_user(input)?);
    process.set_args(Some(args));
    process.set_env(Some(process_env(input.image, input.hostname, input.env)));
    process.set_cwd(PathBuf::from(cwd));
    process.set_capabilities(Some(linux_caps));
    process.set_rlimits(None);
    // allowPrivilegeEscalation defaults to true; privileged implies it.
    let no_new_privs = !privileged && sc.and_then(|s| s.allow_privilege_escalation) == Some(false);
    process.set_no_new_privileges(Some(no_new_privs));

    let mut root = Root::default();
    root.set_path(input.rootfs.to_path_buf());
    root.set_readonly(Some(sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false)));

    let mut namespaces = vec![
        namespace(LinuxNamespaceType::Pid, None),
        namespace(LinuxNamespaceType::Mount, None),
        namespace(LinuxNamespaceType::Uts, None),
    ];
    for (typ, mode) in
        [(LinuxNamespaceType::Ipc, &input.namespaces.ipc), (LinuxNamespaceType::Network, &input.namespaces.network)]
    {
        match mode {
            NamespaceMode::Host => {}
            NamespaceMode::New => namespaces.push(namespace(typ, None)),
            NamespaceMode::Join(path) => namespaces.push(namespace(typ, Some(path))),
        }
    }

    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_namespaces(Some(namespaces));
    linux.set_resources(Some(resources(container, privileged)?));
    linux.set_cgroups_path(Some(PathBuf::from(input.cgroups_path)));
    if privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
        linux.set_devices(Some(input.host_devices.to_vec()).filter(|d| !d.is_empty()));
    } else {
        linux.set_masked_paths(Some(MASKED_PATHS.iter().map(|p| p.to_string()).collect()));
        linux.set_readonly_paths(Some(READONLY_PATHS.iter().map(|p| p.to_string()).collect()));
        linux.set_devices(None);
    }
    let sysctls: std::collections::HashMap<String, String> = input
        .pod_security_context
        .and_then(|p| p.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    linux.set_sysctl(Some(sysctls).filter(|s| !s.is_empty()));

    let spec = oci_spec::runtime::SpecBuilder::default()
        .version(OCI_VERSION)
        .root(root)
        .mounts(mounts(input, privileged)?)
        .process(process)
        .hostname(input.hostname)
        .linux(linux)
        .build()
        .map_err(oci)?;
    let mut spec = spec;
    // What the runtime needs beyond OCI: keep stdin open for attach (stdin, stdinOnce).
    let mut annotations = std::collections::HashMap::new();
    if container.stdin == Some(true) {
        annotations.insert(super::STDIN_ANNOTATION.to_string(), "true".to_string());
        if container.stdin_once == Some(true) {
            annotations.insert(super::STDIN_ONCE_ANNOTATION.to_string(), "true".to_string());
        }
    }
    spec.set_annotations((!annotations.is_empty()).then_some(annotations));
    Ok(spec)
}

/// `config.json` text with a stable order: object keys sorted and capability sets (hash
/// sets in `oci_spec`) in alphabetical order, so that the same input gives the same bytes.
pub fn to_json(spec: &Spec) -> Result<String, SpecError> {
    let value = serde_json::to_value(spec).map_err(|e| SpecError::Oci(e.to_string()))?;
    serde_json::to_string_pretty(&canonical(value, false)).map_err(|e| SpecError::Oci(e.to_string()))
}

fn canonical(value: serde_json::Value, sort_arrays: bool) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = serde_json::Map::new();
            for (k, v) in entries {
                let sort = sort_arrays || k == "capabilities";
                out.insert(k, canonical(v, sort));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(|v| canonical(v, sort_arrays)).collect();
            if sort_arrays {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
            Value::Array(items)
        }
        other => other,
    }
}

/// The host's character and block devices under `/dev` (not `/dev/pts`), for privileged
/// containers, as containerd's `WithHostDevices` collects them.
pub fn host_devices() -> std::io::Result<Vec<LinuxDevice>> {
    use oci_spec::runtime::LinuxDeviceType;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            let ft = meta.file_type();
            if ft.is_dir() {
                if !matches!(path.file_name().and_then(|n| n.to_str()), Some("pts" | "shm" | "mqueue" | "fd")) {
                    stack.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            let rdev = meta.rdev();
            let mut dev = LinuxDevice::default();
            dev.set_path(path);
            dev.set_typ(typ);
            dev.set_major(i64::from(rustix::fs::major(rdev)));
            dev.set_minor(i64::from(rustix::fs::minor(rdev)));
            dev.set_file_mode(Some(meta.mode() & 0o777));
            dev.set_uid(Some(meta.uid()));
            dev.set_gid(Some(meta.gid()));
            out.push(dev);
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    Ok(out)
}

#[cfg(test)]
mod tests;
