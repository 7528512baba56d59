//! A pod's volumes on the host: secret, configMap, emptyDir, projected, downwardAPI and
//! hostPath, made ready before the containers start and bind-mounted into them by the runtime.
//!
//! Everything lives under `<pod dir>/volumes/kubernetes.io~<plugin>/<volume name>`, as in
//! kubelet. Secrets, projected and downwardAPI volumes and `medium: Memory` emptyDirs are tmpfs
//! mounts, so their contents never reach a disk. API data is written by the atomic writer
//! (`atomic.rs`) so that [`refresh`] can update running pods without a reader ever seeing a
//! half-written set. [`teardown`] finds the mounts again in `/proc/self/mountinfo`, so it needs
//! no memory of what [`prepare`] did. See `volumes/README.md` for the design.

pub mod atomic;
pub mod host_path;
pub mod mount;
pub mod payload;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Volume};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::env::EnvError;
use super::source::{ObjectSource, SourceError};
use crate::runtime::quantity;
use crate::runtime::spec::{Propagation, VolumeMount, expand};
use mount::MountEntry;
use payload::DEFAULT_MODE;

/// What a pod's volumes are made from.
pub struct VolumeContext<'a> {
    pub pod: &'a Pod,
    /// `<agent data>/pods/<uid>`; the volumes go under its `volumes/` directory.
    pub pod_dir: &'a Path,
    pub node_name: &'a str,
    pub pod_ips: &'a [String],
    pub host_ips: &'a [String],
    /// The cluster CA, served as `ca.crt` of `kube-root-ca.crt` while that ConfigMap does not
    /// exist, so that `kube-api-access-*` volumes work.
    pub cluster_ca_pem: Option<&'a str>,
    /// The node's allocatable resources: the default for a downward-API `resourceFieldRef` to
    /// an unset limit, and the size of memory-backed volumes without a limit.
    pub node_allocatable: &'a BTreeMap<String, Quantity>,
}

/// Why one volume could not be set up. The messages are kubelet's.
#[derive(Debug, thiserror::Error)]
pub enum SetUpError {
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("references non-existent secret key: {0}")]
    MissingSecretKey(String),
    #[error("configmap references non-existent config key: {0}")]
    MissingConfigKey(String),
    /// The API could not be read; worth retrying.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A downward-API item that cannot be resolved.
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("{0}")]
    HostPath(String),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0} is not supported on this node")]
    Unsupported(&'static str),
    #[error("volume type {0} is not supported on this node")]
    UnsupportedType(String),
    /// Several sources of one projected volume failed; printed like Go's error aggregate.
    #[error("[{}]", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))]
    Multiple(Vec<SetUpError>),
}

impl SetUpError {
    /// One error as itself, several as an aggregate, none as `None`.
    fn aggregate(mut errors: Vec<SetUpError>) -> Option<SetUpError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(SetUpError::Multiple(errors)),
        }
    }

    fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> SetUpError {
        let what = what.into();
        move |source| SetUpError::Io { what, source }
    }
}

/// A volume failure, as the pod's events and container status show it.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {source}")]
    SetUp { volume: String, source: SetUpError },
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    NoSuchVolume { volume: String, container: String },
    #[error("error SubPath `{0}` must not be an absolute path")]
    SubPathAbsolute(String),
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    SubPathBacksteps(String),
    #[error("subPath `{sub_path}` of volume \"{volume}\": {reason}")]
    SubPath { volume: String, sub_path: String, reason: String },
    #[error("invalid MountPropagation mode: \"{0}\"")]
    Propagation(String),
    #[error("failed to read the mount table: {0}")]
    MountTable(io::Error),
    #[error("UnmountVolume.TearDown failed for {path}: {source}")]
    TearDown { path: PathBuf, source: io::Error },
}

impl VolumeError {
    /// True when retrying may help without the pod changing: an unreachable API, or an
    /// object (or key) the pod refers to that may still appear.
    pub fn is_transient(&self) -> bool {
        match self {
            VolumeError::SetUp { source, .. } => {
                !matches!(source, SetUpError::Unsupported(_) | SetUpError::UnsupportedType(_) | SetUpError::HostPath(_))
            }
            VolumeError::MountTable(_) | VolumeError::TearDown { .. } => true,
            _ => false,
        }
    }
}

/// The kinds of volume this node supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    Secret,
    ConfigMap,
    EmptyDir,
    /// `emptyDir` with `medium: Memory`: a tmpfs.
    EmptyDirMemory,
    Projected,
    DownwardApi,
    HostPath,
}

impl VolumeKind {
    /// Kubelet's plugin directory name for the kind.
    fn plugin_dir(self) -> &'static str {
        match self {
            VolumeKind::Secret => "kubernetes.io~secret",
            VolumeKind::ConfigMap => "kubernetes.io~configmap",
            VolumeKind::EmptyDir | VolumeKind::EmptyDirMemory => "kubernetes.io~empty-dir",
            VolumeKind::Projected => "kubernetes.io~projected",
            VolumeKind::DownwardApi => "kubernetes.io~downward-api",
            VolumeKind::HostPath => "kubernetes.io~host-path",
        }
    }

    /// Volumes of API data, which containers always get read-only, as kubelet mounts them.
    pub fn is_api_data(self) -> bool {
        matches!(self, VolumeKind::Secret | VolumeKind::ConfigMap | VolumeKind::Projected | VolumeKind::DownwardApi)
    }

    /// The kind of `volume`, or the name of its unsupported type.
    pub fn of(volume: &Volume) -> Result<VolumeKind, String> {
        if volume.secret.is_some() {
            Ok(VolumeKind::Secret)
        } else if volume.config_map.is_some() {
            Ok(VolumeKind::ConfigMap)
        } else if let Some(empty_dir) = &volume.empty_dir {
            match empty_dir.medium.as_deref().unwrap_or("") {
                "" => Ok(VolumeKind::EmptyDir),
                "Memory" => Ok(VolumeKind::EmptyDirMemory),
                other => Err(format!("emptyDir with medium {other}")),
            }
        } else if volume.projected.is_some() {
            Ok(VolumeKind::Projected)
        } else if volume.downward_api.is_some() {
            Ok(VolumeKind::DownwardApi)
        } else if volume.host_path.is_some() {
            Ok(VolumeKind::HostPath)
        } else {
            // The set field's JSON name says which type this is, without a list of them all.
            let json = serde_json::to_value(volume).unwrap_or_default();
            let kind = json.as_object().and_then(|o| o.keys().find(|k| *k != "name").cloned());
            Err(kind.unwrap_or_else(|| "(none)".to_owned()))
        }
    }
}

/// One volume ready on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedVolume {
    pub kind: VolumeKind,
    /// What containers bind-mount.
    pub host_path: PathBuf,
}

/// The volumes of a pod, ready on the host, by volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedVolumes {
    volumes: BTreeMap<String, PreparedVolume>,
}

impl PreparedVolumes {
    pub fn get(&self, name: &str) -> Option<&PreparedVolume> {
        self.volumes.get(name)
    }

    /// The host path of a volume.
    pub fn host_path(&self, name: &str) -> Option<&Path> {
        self.volumes.get(name).map(|v| v.host_path.as_path())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &PreparedVolume)> {
        self.volumes.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.volumes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.volumes.is_empty()
    }
}

/// The directory below `pod_dir` that holds all of a pod's volumes.
pub fn volumes_root(pod_dir: &Path) -> PathBuf {
    pod_dir.join("volumes")
}

/// Where a volume of `kind` named `name` lives (hostPath volumes live where they point).
pub fn volume_dir(pod_dir: &Path, kind: VolumeKind, name: &str) -> PathBuf {
    volumes_root(pod_dir).join(kind.plugin_dir()).join(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Make the volume, mount included, and write its contents.
    Prepare,
    /// Rewrite the contents of a volume made earlier; leave the others alone.
    Refresh,
}

/// Makes every volume of the pod ready on the host. Idempotent: on a prepared pod it mounts
/// nothing new and only refreshes contents. Stops at the first volume that fails; the ones
/// before it stay ready and are reused by the next call.
pub async fn prepare(ctx: &VolumeContext<'_>, source: &dyn ObjectSource) -> Result<PreparedVolumes, VolumeError> {
    let table = mount::mount_table().map_err(VolumeError::MountTable)?;
    let mut out = PreparedVolumes::default();
    for volume in ctx.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        match set_up(ctx, source, volume, Pass::Prepare, &table).await {
            Ok(Some((prepared, _))) => {
                out.volumes.insert(volume.name.clone(), prepared);
            }
            Ok(None) => {}
            Err(source) => return Err(VolumeError::SetUp { volume: volume.name.clone(), source }),
        }
    }
    Ok(out)
}

/// Re-reads the Secrets, ConfigMaps, downward-API fields and tokens behind the pod's volumes
/// and swaps changed contents in atomically; running containers see them at once. Volumes not
/// prepared yet are skipped. Every volume is tried; the first failure is returned after the
/// others were refreshed, and a failing volume keeps its previous contents.
pub async fn refresh(ctx: &VolumeContext<'_>, source: &dyn ObjectSource) -> Result<bool, VolumeError> {
    let table = mount::mount_table().map_err(VolumeError::MountTable)?;
    let mut changed = false;
    let mut first_error = None;
    for volume in ctx.pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        match set_up(ctx, source, volume, Pass::Refresh, &table).await {
            Ok(Some((_, c))) => changed |= c,
            Ok(None) => {}
            Err(source) => {
                first_error.get_or_insert(VolumeError::SetUp { volume: volume.name.clone(), source });
            }
        }
    }
    first_error.map_or(Ok(changed), Err)
}

/// Unmounts and removes everything [`prepare`] made for the pod: every mount below
/// `<pod_dir>/volumes` (deepest first, found in the mount table, so this works after a restart)
/// and then that directory. Idempotent. Nothing is removed while a mount remains, so the
/// removal can never reach into a mounted filesystem. `pod_dir` itself is left to its owner.
pub fn teardown(pod_dir: &Path) -> Result<(), VolumeError> {
    let root = volumes_root(pod_dir);
    let mut roots = vec![root.clone()];
    // The mount table shows resolved paths; a pod dir reached through a symlink is looked up
    // both ways.
    if let Ok(canonical) = fs::canonicalize(&root)
        && canonical != root
    {
        roots.push(canonical);
    }
    for r in &roots {
        mount::unmount_all_under(r).map_err(|source| VolumeError::TearDown { path: r.clone(), source })?;
    }
    match fs::remove_dir_all(&root) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(VolumeError::TearDown { path: root, source }),
    }
}

/// The bind mounts for one container, as the runtime wants them: `volumeMounts` with
/// `subPath`, `readOnly` and `mountPropagation`. `subPathExpr` is expanded against an empty
/// environment; use [`container_mounts_with_env`] to expand it against the container's.
pub fn container_mounts(container: &Container, volumes: &PreparedVolumes) -> Result<Vec<VolumeMount>, VolumeError> {
    container_mounts_with_env(container, volumes, &[])
}

/// [`container_mounts`], with `subPathExpr` expanded against `env` (the container's resolved
/// environment), as kubelet does.
pub fn container_mounts_with_env(
    container: &Container,
    volumes: &PreparedVolumes,
    env: &[(String, String)],
) -> Result<Vec<VolumeMount>, VolumeError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let volume = volumes
            .get(&m.name)
            .ok_or_else(|| VolumeError::NoSuchVolume { volume: m.name.clone(), container: container.name.clone() })?;
        let sub_path = match (m.sub_path.as_deref(), m.sub_path_expr.as_deref()) {
            (Some(p), _) if !p.is_empty() => Some(p.to_owned()),
            (_, Some(expr)) if !expr.is_empty() => Some(expand(expr, env)),
            _ => None,
        };
        let host_path = match sub_path {
            None => volume.host_path.clone(),
            Some(sub) => sub_path_on_host(&m.name, &volume.host_path, &sub)?,
        };
        let propagation = match m.mount_propagation.as_deref().unwrap_or("") {
            "" | "None" => Propagation::None,
            "HostToContainer" => Propagation::HostToContainer,
            "Bidirectional" => Propagation::Bidirectional,
            other => return Err(VolumeError::Propagation(other.to_owned())),
        };
        out.push(VolumeMount {
            host_path,
            container_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false) || volume.kind.is_api_data(),
            propagation,
        });
    }
    Ok(out)
}

/// Checks that `sub` is a relative path without `..` whose resolved location (symlinks
/// followed) stays inside the volume; a missing sub-path is created as a directory with the
/// volume's own permissions, as kubelet does.
fn sub_path_on_host(volume: &str, root: &Path, sub: &str) -> Result<PathBuf, VolumeError> {
    if Path::new(sub).is_absolute() {
        return Err(VolumeError::SubPathAbsolute(sub.to_owned()));
    }
    if Path::new(sub).components().any(|c| c == Component::ParentDir) {
        return Err(VolumeError::SubPathBacksteps(sub.to_owned()));
    }
    let err = |reason: String| VolumeError::SubPath { volume: volume.to_owned(), sub_path: sub.to_owned(), reason };
    let joined = root.join(sub);
    if fs::symlink_metadata(&joined).is_err() {
        let mode = fs::metadata(root).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o755);
        fs::create_dir_all(&joined).map_err(|e| err(format!("cannot create it: {e}")))?;
        // Only the new directories get the volume's mode; existing ones are the user's.
        let _ = fs::set_permissions(&joined, fs::Permissions::from_mode(mode));
    }
    let canonical_root = fs::canonicalize(root).map_err(|e| err(format!("cannot resolve the volume: {e}")))?;
    let resolved = fs::canonicalize(&joined).map_err(|e| err(format!("cannot resolve it: {e}")))?;
    if !resolved.starts_with(&canonical_root) {
        return Err(err("it resolves to a path outside the volume".to_owned()));
    }
    Ok(resolved)
}

/// A volume name that is safe as a directory name; the API only allows DNS labels, and this
/// guards against a stored object that escaped validation.
fn check_name(name: &str) -> Result<(), SetUpError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(SetUpError::UnsupportedType(format!("with the invalid name {name:?}")));
    }
    Ok(())
}

fn fs_group(pod: &Pod) -> Option<u32> {
    let group = pod.spec.as_ref()?.security_context.as_ref()?.fs_group?;
    u32::try_from(group).ok()
}

/// The size of a memory-backed volume, as kubelet's `calculateEmptyDirMemorySize`: the pod's
/// memory limit when every container has one, else the node's allocatable memory, capped by
/// the volume's `sizeLimit`.
fn memory_backed_size(ctx: &VolumeContext<'_>, size_limit: Option<&Quantity>) -> Option<u64> {
    let containers = ctx.pod.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    let limits: Option<Vec<i64>> = containers
        .iter()
        .map(|c| {
            let q = c.resources.as_ref()?.limits.as_ref()?.get("memory")?;
            quantity::value(&q.0).ok()
        })
        .collect();
    let pod_limit = limits.filter(|l| !l.is_empty()).map(|l| l.iter().sum::<i64>());
    let base = pod_limit.or_else(|| ctx.node_allocatable.get("memory").and_then(|q| quantity::value(&q.0).ok()));
    let limit = size_limit.and_then(|q| quantity::value(&q.0).ok()).filter(|v| *v > 0);
    let size = match (base, limit) {
        (Some(b), Some(l)) => Some(b.min(l)),
        (b, l) => b.or(l),
    };
    size.and_then(|s| u64::try_from(s).ok()).filter(|s| *s > 0)
}

/// Creates `dir` (and its parents) if missing; returns whether it was created now.
fn ensure_dir(dir: &Path) -> Result<bool, SetUpError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(false),
        Ok(_) => Err(SetUpError::Io {
            what: format!("{} exists and is not a directory", dir.display()),
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(SetUpError::io(format!("cannot create {}", dir.display())))?;
            Ok(true)
        }
        Err(err) => Err(SetUpError::Io { what: format!("cannot read {}", dir.display()), source: err }),
    }
}

/// Makes the directory of a volume of `kind`, and for memory-backed kinds mounts a tmpfs on it
/// unless one is there already. Returns whether the volume was fresh (to set its mode once).
fn make_volume_dir(
    dir: &Path,
    memory_backed: bool,
    size: Option<u64>,
    table: &[MountEntry],
) -> Result<bool, SetUpError> {
    let created = ensure_dir(dir)?;
    if !memory_backed {
        return Ok(created);
    }
    let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if mount::is_mount_point(table, &canonical) {
        return Ok(false);
    }
    mount::mount_tmpfs(dir, size).map_err(SetUpError::io(format!("cannot mount a tmpfs at {}", dir.display())))?;
    Ok(true)
}

/// True when the volume at `dir` was prepared before (it has contents written by the atomic
/// writer, or is a mount); refresh leaves volumes that were never prepared to `prepare`.
fn was_prepared(dir: &Path, table: &[MountEntry]) -> bool {
    if fs::symlink_metadata(dir.join(atomic::DATA_DIR)).is_ok() {
        return true;
    }
    let canonical = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    mount::is_mount_point(table, &canonical)
}

/// Writes an API-data volume: makes its directory (and tmpfs) on `Prepare`, then swaps the
/// payload in.
fn write_api_volume(
    dir: &Path,
    memory_backed: bool,
    size: Option<u64>,
    payload: &BTreeMap<String, atomic::FileProjection>,
    fs_group: Option<u32>,
    pass: Pass,
    table: &[MountEntry],
) -> Result<bool, SetUpError> {
    if pass == Pass::Prepare {
        let fresh = make_volume_dir(dir, memory_backed, size, table)?;
        // On disk, the volume's directory is world-writable like the emptyDir kubelet wraps
        // these volumes in; a fresh tmpfs already is (1777).
        if fresh && !memory_backed {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
                .map_err(SetUpError::io(format!("cannot set the mode of {}", dir.display())))?;
        }
        if fresh && let Some(group) = fs_group {
            std::os::unix::fs::chown(dir, None, Some(group))
                .map_err(SetUpError::io(format!("cannot set the group of {}", dir.display())))?;
        }
    }
    atomic::write(dir, payload, fs_group)
        .map_err(SetUpError::io(format!("cannot write the files of {}", dir.display())))
}

async fn set_up(
    ctx: &VolumeContext<'_>,
    source: &dyn ObjectSource,
    volume: &Volume,
    pass: Pass,
    table: &[MountEntry],
) -> Result<Option<(PreparedVolume, bool)>, SetUpError> {
    check_name(&volume.name)?;
    let kind = VolumeKind::of(volume).map_err(SetUpError::UnsupportedType)?;
    let namespace = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let dir = volume_dir(ctx.pod_dir, kind, &volume.name);
    let group = fs_group(ctx.pod);
    if pass == Pass::Refresh && (!kind.is_api_data() || !was_prepared(&dir, table)) {
        return Ok(None);
    }
    let prepared = |changed| Ok(Some((PreparedVolume { kind, host_path: dir.clone() }, changed)));
    match kind {
        VolumeKind::Secret => {
            let Some(spec) = &volume.secret else { return Ok(None) };
            let name = spec.secret_name.clone().unwrap_or_default();
            let optional = spec.optional.unwrap_or(false);
            // The object is read before anything is mounted, so a missing Secret leaves
            // nothing behind.
            let secret = match source.secret(namespace, &name).await? {
                Some(secret) => secret,
                None if optional => Secret::default(),
                None => return Err(SetUpError::SecretNotFound(name)),
            };
            let files = payload::secret_payload(
                &secret,
                spec.items.as_deref(),
                spec.default_mode.unwrap_or(DEFAULT_MODE),
                spec.default_user,
                optional,
            )?;
            let changed = write_api_volume(&dir, true, memory_backed_size(ctx, None), &files, group, pass, table)?;
            prepared(changed)
        }
        VolumeKind::ConfigMap => {
            let Some(spec) = &volume.config_map else { return Ok(None) };
            let optional = spec.optional.unwrap_or(false);
            let cm = match payload::get_config_map(ctx, source, namespace, &spec.name).await? {
                Some(cm) => cm,
                None if optional => ConfigMap::default(),
                None => return Err(SetUpError::ConfigMapNotFound(spec.name.clone())),
            };
            let files = payload::config_map_payload(
                &cm,
                spec.items.as_deref(),
                spec.default_mode.unwrap_or(DEFAULT_MODE),
                spec.default_user,
                optional,
            )?;
            let changed = write_api_volume(&dir, false, None, &files, group, pass, table)?;
            prepared(changed)
        }
        VolumeKind::DownwardApi => {
            let Some(spec) = &volume.downward_api else { return Ok(None) };
            let files = payload::downward_payload(
                ctx.pod,
                spec.items.as_deref().unwrap_or_default(),
                spec.default_mode.unwrap_or(DEFAULT_MODE),
                spec.default_user,
                ctx.node_allocatable,
            )?;
            let changed = write_api_volume(&dir, true, memory_backed_size(ctx, None), &files, group, pass, table)?;
            prepared(changed)
        }
        VolumeKind::Projected => {
            let Some(spec) = &volume.projected else { return Ok(None) };
            let current = dir.join(atomic::DATA_DIR);
            let current = fs::symlink_metadata(&current).is_ok().then_some(current);
            let files = payload::projected_payload(ctx, source, spec, current.as_deref()).await?;
            let changed = write_api_volume(&dir, true, memory_backed_size(ctx, None), &files, group, pass, table)?;
            prepared(changed)
        }
        VolumeKind::EmptyDir | VolumeKind::EmptyDirMemory => {
            let Some(spec) = &volume.empty_dir else { return Ok(None) };
            let memory = kind == VolumeKind::EmptyDirMemory;
            let size = if memory { memory_backed_size(ctx, spec.size_limit.as_ref()) } else { None };
            let fresh = make_volume_dir(&dir, memory, size, table)?;
            if fresh {
                // A fresh tmpfs is 1777 already, which kubelet keeps; a directory on disk
                // gets 0777. The alpha `mode` field overrides both.
                let mode = spec.mode.and_then(|m| u32::try_from(m).ok()).map(|m| m & 0o1777);
                let mode = mode.or(if memory { None } else { Some(0o777) });
                if let Some(mode) = mode {
                    fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                        .map_err(SetUpError::io(format!("cannot set the mode of {}", dir.display())))?;
                }
                if let Some(group) = group {
                    atomic::apply_fs_group(&dir, group, true)
                        .map_err(SetUpError::io(format!("cannot set the group of {}", dir.display())))?;
                }
            }
            prepared(fresh)
        }
        VolumeKind::HostPath => {
            let Some(spec) = &volume.host_path else { return Ok(None) };
            host_path::check(&spec.path, spec.type_.as_deref().unwrap_or("")).map_err(SetUpError::HostPath)?;
            Ok(Some((PreparedVolume { kind, host_path: PathBuf::from(&spec.path) }, false)))
        }
    }
}

#[cfg(test)]
mod tests;
