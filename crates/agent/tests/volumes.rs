//! Pod volumes against the real kernel: tmpfs mounts made with the mount syscall, the atomic
//! writer seen through paths opened before an update, sized memory emptyDirs, and teardown
//! from the mount table alone.
//!
//! These tests need root. Every test works in its own temporary directory named
//! `rkt-vol-<pid>-...`, and a guard unmounts everything below it when the test ends, also when
//! it fails half way.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_agent::kubelet::source::MapSource;
use rkube_agent::kubelet::volumes::{self, VolumeContext, VolumeKind, mount};
use serde_json::json;

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n";

/// A pod directory that is unmounted and removed when the test ends, whatever happened.
struct PodDir {
    dir: tempfile::TempDir,
}

impl PodDir {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rkt-vol-{}-", std::process::id()))
            .tempdir()
            .expect("a temporary directory");
        PodDir { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PodDir {
    fn drop(&mut self) {
        let _ = volumes::teardown(self.dir.path());
        // Whatever teardown missed is unmounted here, before the directory is deleted, so
        // that a failing test never leaves a mount behind.
        if let Ok(canonical) = fs::canonicalize(self.dir.path()) {
            let _ = mount::unmount_all_under(&canonical);
        }
    }
}

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "my-nginx-1", "namespace": "default", "uid": "0d3c-uid", "labels": {"run": "my-nginx"}},
        "spec": {"containers": [{"name": "nginx"}], "volumes": volumes, "nodeName": "node-a"},
    }))
    .expect("a valid pod")
}

fn tls_secret(cert: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some("nginxsecret".to_owned());
    s.metadata.namespace = Some("default".to_owned());
    s.type_ = Some("kubernetes.io/tls".to_owned());
    s.data = Some(BTreeMap::from([
        ("tls.crt".to_owned(), ByteString(cert.as_bytes().to_vec())),
        ("tls.key".to_owned(), ByteString(KEY.as_bytes().to_vec())),
    ]));
    s
}

struct Ctx {
    allocatable: BTreeMap<String, Quantity>,
    pod_ips: Vec<String>,
    host_ips: Vec<String>,
}

impl Ctx {
    fn new() -> Self {
        Ctx {
            allocatable: BTreeMap::from([("memory".to_owned(), Quantity("1Gi".to_owned()))]),
            pod_ips: vec!["10.42.0.7".to_owned()],
            host_ips: vec!["172.30.0.2".to_owned()],
        }
    }

    fn volume_ctx<'a>(&'a self, pod: &'a Pod, pod_dir: &'a Path) -> VolumeContext<'a> {
        VolumeContext {
            pod,
            pod_dir,
            node_name: "node-a",
            pod_ips: &self.pod_ips,
            host_ips: &self.host_ips,
            cluster_ca_pem: Some(CERT),
            node_allocatable: &self.allocatable,
        }
    }
}

/// The mounts at or below `dir`, by their resolved paths.
fn mounts_below(dir: &Path) -> Vec<mount::MountEntry> {
    let canonical = fs::canonicalize(dir).expect("the directory resolves");
    mount::mounts_under(&mount::mount_table().expect("mountinfo"), &canonical)
}

fn mount_at(path: &Path) -> Option<mount::MountEntry> {
    let canonical = fs::canonicalize(path).ok()?;
    mount::mount_table().expect("mountinfo").into_iter().find(|m| m.mount_point == canonical)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

#[tokio::test]
async fn tls_secret_volume_is_a_tmpfs_with_kubelets_layout_and_modes() {
    let dir = PodDir::new();
    let ctx = Ctx::new();
    let p = pod(json!([
        {"name": "secret-volume", "secret": {"secretName": "nginxsecret"}},
        {"name": "picked", "secret": {"secretName": "nginxsecret", "defaultMode": 0o440,
            "items": [{"key": "tls.key", "path": "private/key.pem", "mode": 0o400}, {"key": "tls.crt", "path": "cert.pem"}]}},
    ]));
    let source = MapSource::default();
    source.put_secret(tls_secret(CERT));
    let prepared = volumes::prepare(&ctx.volume_ctx(&p, dir.path()), &source).await.expect("volumes ready");

    let vol = prepared.host_path("secret-volume").expect("the volume");
    assert_eq!(vol, volumes::volume_dir(dir.path(), VolumeKind::Secret, "secret-volume"));
    assert!(vol.ends_with("volumes/kubernetes.io~secret/secret-volume"));
    assert_eq!(mount_at(vol).expect("a mount").fs_type, "tmpfs", "secrets never touch the disk");
    assert_eq!(mode(vol), 0o1777, "like kubelet's memory-backed volume");
    assert_eq!(fs::read_to_string(vol.join("tls.crt")).expect("tls.crt"), CERT);
    assert_eq!(fs::read_to_string(vol.join("tls.key")).expect("tls.key"), KEY);
    assert_eq!(mode(&vol.join("tls.crt")), 0o644);
    assert_eq!(mode(&vol.join("tls.key")), 0o644);
    assert_eq!(fs::read_link(vol.join("tls.key")).expect("a symlink"), Path::new("..data/tls.key"));
    let data = fs::read_link(vol.join("..data")).expect("..data");
    assert!(data.to_string_lossy().starts_with("..2"), "{data:?}");

    let picked = prepared.host_path("picked").expect("the volume");
    assert_eq!(fs::read_to_string(picked.join("private/key.pem")).expect("key"), KEY);
    assert_eq!(mode(&picked.join("private/key.pem")), 0o400);
    assert_eq!(mode(&picked.join("cert.pem")), 0o440, "defaultMode applies to items without a mode");
    assert!(fs::symlink_metadata(picked.join("tls.crt")).is_err(), "only the listed keys");
}

#[tokio::test]
async fn an_update_reaches_paths_opened_before_it_atomically() {
    let dir = PodDir::new();
    let ctx = Ctx::new();
    let p = pod(json!([{"name": "secret-volume", "secret": {"secretName": "nginxsecret"}}]));
    let source = MapSource::default();
    source.put_secret(tls_secret(CERT));
    let vctx = ctx.volume_ctx(&p, dir.path());
    let prepared = volumes::prepare(&vctx, &source).await.expect("volumes ready");
    let vol = prepared.host_path("secret-volume").expect("the volume").to_path_buf();

    // A container sees the volume through its directory, opened before the update, and a
    // reader may be in the middle of the old certificate when the update lands.
    let volume_handle = fs::File::open(&vol).expect("open the volume directory");
    // The runtime gives a container the volume as a read-only bind mount of its directory.
    let container_view = dir.path().join("container-view");
    fs::create_dir(&container_view).expect("mkdir");
    nix::mount::mount(Some(&vol), &container_view, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
        .expect("bind mount");
    nix::mount::mount(
        None::<&str>,
        &container_view,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .expect("make the bind mount read-only");
    let mut old_reader = fs::File::open(vol.join("tls.crt")).expect("open the old certificate");
    let mut first_bytes = [0u8; 5];
    old_reader.read_exact(&mut first_bytes).expect("read");

    assert!(!volumes::refresh(&vctx, &source).await.expect("refresh"), "nothing changed yet");
    let new_cert = CERT.replace("fake", "renewed");
    source.put_secret(tls_secret(&new_cert));
    assert!(volumes::refresh(&vctx, &source).await.expect("refresh"), "the change is written");

    let through_handle = PathBuf::from(format!("/proc/self/fd/{}/tls.crt", volume_handle.as_raw_fd()));
    assert_eq!(fs::read_to_string(&through_handle).expect("read through the old handle"), new_cert);
    assert_eq!(fs::read_to_string(container_view.join("tls.crt")).expect("read in the container's view"), new_cert);
    assert_eq!(
        fs::write(container_view.join("tls.crt"), "x").map_err(|e| e.raw_os_error()),
        Err(Some(30)),
        "EROFS: the container cannot write"
    );
    assert_eq!(fs::read_to_string(vol.join("tls.key")).expect("tls.key"), KEY, "unchanged keys stay");
    let mut rest = String::new();
    old_reader.read_to_string(&mut rest).expect("read the rest");
    assert_eq!(format!("{}{rest}", String::from_utf8_lossy(&first_bytes)), CERT, "an open file stays whole");
    let data_dirs = fs::read_dir(&vol)
        .expect("list")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with("..2")))
        .count();
    assert_eq!(data_dirs, 1, "the old data directory is gone");
    assert_eq!(mounts_below(&volumes::volumes_root(dir.path())).len(), 1, "refresh mounts nothing");
}

#[tokio::test]
async fn memory_empty_dir_is_a_tmpfs_of_the_size_limit() {
    let dir = PodDir::new();
    let ctx = Ctx::new();
    let p = pod(json!([
        {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        {"name": "disk", "emptyDir": {}},
    ]));
    let vctx = ctx.volume_ctx(&p, dir.path());
    let prepared = volumes::prepare(&vctx, &MapSource::default()).await.expect("volumes ready");
    let scratch = prepared.host_path("scratch").expect("the volume");
    assert_eq!(mount_at(scratch).expect("a mount").fs_type, "tmpfs");
    assert_eq!(mode(scratch), 0o1777);
    let stat = rustix::fs::statvfs(scratch).expect("statvfs");
    assert_eq!(stat.f_blocks * stat.f_frsize, 1 << 20);
    let mut f = fs::File::create(scratch.join("big")).expect("create");
    let err = f.write_all(&vec![7u8; 2 << 20]).expect_err("more than the limit does not fit");
    assert_eq!(err.raw_os_error(), Some(28), "ENOSPC: {err}");

    let disk = prepared.host_path("disk").expect("the volume");
    assert!(mount_at(disk).is_none(), "a disk emptyDir is a plain directory");
    assert_eq!(mode(disk), 0o777);

    // Preparing again mounts nothing new and keeps the data.
    fs::write(disk.join("kept"), "x").expect("write");
    volumes::prepare(&vctx, &MapSource::default()).await.expect("again");
    assert_eq!(mounts_below(dir.path()).len(), 1, "no stacked mounts");
    assert_eq!(fs::read_to_string(disk.join("kept")).expect("read"), "x");
}

#[tokio::test]
async fn teardown_after_a_restart_finds_every_mount_from_the_mount_table() {
    let dir = PodDir::new();
    let ctx = Ctx::new();
    let p = pod(json!([
        {"name": "secret-volume", "secret": {"secretName": "nginxsecret"}},
        {"name": "configmap-volume", "configMap": {"name": "nginxconfigmap", "optional": true}},
        {"name": "scratch", "emptyDir": {"medium": "Memory"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "kube-api-access-x1", "projected": {"sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}},
    ]));
    let source = MapSource::default();
    source.put_secret(tls_secret(CERT));
    {
        let prepared = volumes::prepare(&ctx.volume_ctx(&p, dir.path()), &source).await.expect("volumes ready");
        assert_eq!(prepared.len(), 5);
    }
    assert_eq!(mounts_below(dir.path()).len(), 4, "secret, memory emptyDir, downwardAPI and projected");
    // A process still holding a file open does not keep teardown from finishing.
    let scratch = volumes::volume_dir(dir.path(), VolumeKind::EmptyDirMemory, "scratch");
    let _busy = fs::File::create(scratch.join("open")).expect("create");

    // The "restarted agent" knows only the pod directory.
    volumes::teardown(dir.path()).expect("teardown");
    assert!(mounts_below(dir.path()).is_empty(), "no mount is left");
    assert!(!dir.path().join("volumes").exists());
    assert!(dir.path().exists(), "the pod directory itself belongs to the caller");
    volumes::teardown(dir.path()).expect("a second teardown is a no-op");
}

#[tokio::test]
async fn kube_api_access_gets_a_token_the_ca_and_the_namespace_and_keeps_a_fresh_token() {
    let dir = PodDir::new();
    let ctx = Ctx::new();
    let p = pod(json!([
        {"name": "kube-api-access-x1", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}},
    ]));
    let source = MapSource::default();
    let vctx = ctx.volume_ctx(&p, dir.path());
    let prepared = volumes::prepare(&vctx, &source).await.expect("volumes ready");
    let vol = prepared.host_path("kube-api-access-x1").expect("the volume");
    assert_eq!(mount_at(vol).expect("a mount").fs_type, "tmpfs");
    assert_eq!(fs::read_to_string(vol.join("token")).expect("token"), "token-default-0");
    assert_eq!(fs::read_to_string(vol.join("ca.crt")).expect("ca.crt"), CERT);
    assert_eq!(fs::read_to_string(vol.join("namespace")).expect("namespace"), "default");
    assert_eq!(mode(&vol.join("token")), 0o644);
    let grants = source.token_grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(
        (grants[0].service_account.as_str(), grants[0].expiration_seconds, grants[0].pod_name.as_str()),
        ("default", 3607, "my-nginx-1")
    );
    assert_eq!(grants[0].pod_uid, "0d3c-uid", "the token is bound to the pod");

    assert!(!volumes::refresh(&vctx, &source).await.expect("refresh"));
    volumes::prepare(&vctx, &source).await.expect("again");
    assert_eq!(source.token_grants().len(), 1, "a fresh token is not requested again");
}

#[tokio::test]
async fn a_missing_secret_fails_like_kubelet_unless_optional() {
    let dir = PodDir::new();
    let ctx = Ctx::new();
    let source = MapSource::default();
    let p = pod(json!([{"name": "secret-volume", "secret": {"secretName": "nginxsecret"}}]));
    let err = volumes::prepare(&ctx.volume_ctx(&p, dir.path()), &source).await.expect_err("no such secret");
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found"
    );
    assert!(err.is_transient(), "the secret may still be created");
    assert!(mounts_below(dir.path()).is_empty(), "a failed volume leaves no mount");

    let p = pod(json!([{"name": "secret-volume", "secret": {"secretName": "nginxsecret", "optional": true}}]));
    let vctx = ctx.volume_ctx(&p, dir.path());
    let prepared = volumes::prepare(&vctx, &source).await.expect("an optional secret may be missing");
    let vol = prepared.host_path("secret-volume").expect("the volume");
    assert_eq!(mount_at(vol).expect("a mount").fs_type, "tmpfs");
    let visible: Vec<_> = fs::read_dir(vol)
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".."))
        .collect();
    assert!(visible.is_empty(), "the volume is empty");

    // When the secret appears, a refresh fills the volume.
    source.put_secret(tls_secret(CERT));
    assert!(volumes::refresh(&vctx, &source).await.expect("refresh"));
    assert_eq!(fs::read_to_string(vol.join("tls.crt")).expect("tls.crt"), CERT);
}

#[tokio::test]
async fn downward_api_files_follow_label_changes_and_fs_group_owns_the_files() {
    let dir = PodDir::new();
    let ctx = Ctx::new();
    let mut p: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u", "labels": {"a": "1"}},
        "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}],
                 "securityContext": {"fsGroup": 2000},
                 "volumes": [{"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}}]},
    }))
    .expect("a valid pod");
    let source = MapSource::default();
    let prepared = volumes::prepare(&ctx.volume_ctx(&p, dir.path()), &source).await.expect("ready");
    let vol = prepared.host_path("info").expect("the volume").to_path_buf();
    assert_eq!(fs::read_to_string(vol.join("labels")).expect("labels"), "a=\"1\"");
    assert_eq!(fs::read_to_string(vol.join("mem")).expect("mem"), "64");
    let meta = fs::metadata(vol.join("labels")).expect("stat");
    assert_eq!((meta.gid(), meta.permissions().mode() & 0o777), (2000, 0o644));
    let stat = rustix::fs::statvfs(&vol).expect("statvfs");
    assert_eq!(stat.f_blocks * stat.f_frsize, 64 << 20, "sized by the pod's memory limit");

    p.metadata.labels = Some(BTreeMap::from([("a".to_owned(), "2".to_owned()), ("b".to_owned(), "x".to_owned())]));
    assert!(volumes::refresh(&ctx.volume_ctx(&p, dir.path()), &source).await.expect("refresh"));
    assert_eq!(fs::read_to_string(vol.join("labels")).expect("labels"), "a=\"2\"\nb=\"x\"");
}

#[tokio::test]
async fn host_path_volumes_are_checked_and_used_in_place() {
    let dir = PodDir::new();
    let ctx = Ctx::new();
    let host = dir.path().join("host");
    let made = host.join("made");
    let p = pod(json!([
        {"name": "made", "hostPath": {"path": made.to_str().expect("utf-8"), "type": "DirectoryOrCreate"}},
    ]));
    let prepared = volumes::prepare(&ctx.volume_ctx(&p, dir.path()), &MapSource::default()).await.expect("ready");
    assert_eq!(prepared.host_path("made"), Some(made.as_path()));
    assert!(made.is_dir());

    let file = host.join("afile");
    fs::write(&file, "x").expect("write");
    let p = pod(json!([{"name": "wrong", "hostPath": {"path": file.to_str().expect("utf-8"), "type": "Directory"}}]));
    let err = volumes::prepare(&ctx.volume_ctx(&p, dir.path()), &MapSource::default()).await.expect_err("a file");
    assert_eq!(
        err.to_string(),
        format!(
            "MountVolume.SetUp failed for volume \"wrong\" : hostPath type check failed: {} is not a directory",
            file.display()
        )
    );
    assert_eq!(fs::read_to_string(&file).map_err(|e| e.kind()), Ok("x".to_owned()), "the host file is untouched");
    assert!(fs::metadata(dir.path().join("nothing")).is_err_and(|e| e.kind() == ErrorKind::NotFound));
}

/// An API server of our own on loopback, with a client holding its admin credentials.
struct ApiFixture {
    _server: rkube_apiserver::server::ApiServer,
    client: kube::Client,
    _dir: tempfile::TempDir,
}

impl ApiFixture {
    async fn start() -> ApiFixture {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix(&format!("rkt-vol-api-{}-", std::process::id()))
            .tempdir()
            .expect("a temporary directory");
        let store = std::sync::Arc::new(rkube_store::sqlite::SqliteStore::open(&dir.path().join("db")).expect("store"));
        let config =
            rkube_apiserver::server::Config::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().expect("addr"));
        let server = rkube_apiserver::server::ApiServer::start(config, store).await.expect("API server");
        let kubeconfig = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
        let options = kube::config::KubeConfigOptions::default();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.expect("client config");
        let client = kube::Client::try_from(config).expect("client");
        ApiFixture { _server: server, client, _dir: dir }
    }
}

#[tokio::test]
async fn api_source_reads_through_the_api_server_and_refresh_follows_updates() {
    use kube::api::{Api, PostParams};
    use rkube_agent::kubelet::env::{self, EnvContext};
    use rkube_agent::kubelet::source::{ApiSource, ObjectSource};

    let api = ApiFixture::start().await;
    let secrets: Api<Secret> = Api::namespaced(api.client.clone(), "default");
    let mut secret = tls_secret(CERT);
    secrets.create(&PostParams::default(), &secret).await.expect("create the secret");
    let source = ApiSource::new(api.client.clone());
    assert!(source.secret("default", "nginxsecret").await.expect("read").is_some());
    assert!(source.secret("default", "nope").await.expect("a missing secret is an answer").is_none());
    assert!(source.config_map("default", "nope").await.expect("a missing configmap is an answer").is_none());

    let dir = PodDir::new();
    let ctx = Ctx::new();
    let p = pod(json!([{"name": "secret-volume", "secret": {"secretName": "nginxsecret"}}]));
    let vctx = ctx.volume_ctx(&p, dir.path());
    let prepared = volumes::prepare(&vctx, &source).await.expect("volumes ready");
    let vol = prepared.host_path("secret-volume").expect("the volume").to_path_buf();
    assert_eq!(fs::read_to_string(vol.join("tls.crt")).expect("tls.crt"), CERT);

    let container: k8s_openapi::api::core::v1::Container = serde_json::from_value(json!({"name": "nginx", "env": [
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "nginxsecret", "key": "tls.key"}}},
        {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nginxsecret", "key": "nope", "optional": true}}}]}))
    .expect("a valid container");
    let env_ctx = EnvContext {
        pod: &p,
        node_name: "node-a",
        pod_ips: &ctx.pod_ips,
        host_ips: &ctx.host_ips,
        services: &[],
        node_allocatable: &ctx.allocatable,
    };
    let vars = env::resolve(&env_ctx, &container, &source).await.expect("environment");
    assert_eq!(vars, [("KEY".to_owned(), KEY.to_owned())]);

    let new_cert = CERT.replace("fake", "rotated");
    secret = secrets.get("nginxsecret").await.expect("get");
    secret.data.get_or_insert_default().insert("tls.crt".to_owned(), ByteString(new_cert.as_bytes().to_vec()));
    secrets.replace("nginxsecret", &PostParams::default(), &secret).await.expect("update the secret");
    assert!(volumes::refresh(&vctx, &source).await.expect("refresh"));
    assert_eq!(fs::read_to_string(vol.join("tls.crt")).expect("tls.crt"), new_cert);
}

#[tokio::test]
async fn container_mounts_of_a_secret_key_sub_path_and_the_whole_volume() {
    let dir = PodDir::new();
    let ctx = Ctx::new();
    let p = pod(json!([{"name": "secret-volume", "secret": {"secretName": "nginxsecret"}}]));
    let source = MapSource::default();
    source.put_secret(tls_secret(CERT));
    let prepared = volumes::prepare(&ctx.volume_ctx(&p, dir.path()), &source).await.expect("volumes ready");
    let container: k8s_openapi::api::core::v1::Container =
        serde_json::from_value(json!({"name": "nginx", "volumeMounts": [
        {"name": "secret-volume", "mountPath": "/etc/nginx/ssl"},
        {"name": "secret-volume", "mountPath": "/etc/ssl/cert.pem", "subPath": "tls.crt"}]}))
        .expect("a valid container");
    let mounts = volumes::container_mounts(&container, &prepared).expect("mounts");
    assert_eq!(mounts.len(), 2);
    assert_eq!(mounts[0].host_path, prepared.host_path("secret-volume").expect("volume"));
    assert!(mounts.iter().all(|m| m.read_only), "secret volumes are read-only in containers");
    // A key mounted alone is the file itself, inside the current data directory.
    let file = &mounts[1].host_path;
    assert!(file.is_file() && !fs::symlink_metadata(file).expect("stat").file_type().is_symlink());
    assert!(file.parent().expect("parent").file_name().expect("name").to_string_lossy().starts_with("..2"));
    assert_eq!(fs::read_to_string(file).expect("read"), CERT);
}

#[tokio::test]
async fn an_admitted_pods_kube_api_access_volume_gets_a_bound_token_from_the_api_server() {
    use base64::Engine;
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Api, PostParams};
    use rkube_agent::kubelet::source::ApiSource;

    let api = ApiFixture::start().await;
    // No controllers run here, so the default ServiceAccount the admission needs is made by hand.
    let accounts: Api<ServiceAccount> = Api::namespaced(api.client.clone(), "default");
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some("default".to_owned());
    if let Err(e) = accounts.create(&PostParams::default(), &sa).await {
        assert!(matches!(&e, kube::Error::Api(s) if s.code == 409), "create the ServiceAccount: {e}");
    }
    let pods: Api<Pod> = Api::namespaced(api.client.clone(), "default");
    let new_pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "curl"}, "spec": {"containers": [{"name": "curl", "image": "curlimages/curl"}]}}))
    .expect("a valid pod");
    let admitted = pods.create(&PostParams::default(), &new_pod).await.expect("create the pod");
    let volume = admitted
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|v| v.iter().find(|v| v.name.starts_with("kube-api-access-")))
        .expect("admission adds the kube-api-access volume")
        .name
        .clone();

    let dir = PodDir::new();
    let ctx = Ctx::new();
    let source = ApiSource::new(api.client.clone());
    let prepared = volumes::prepare(&ctx.volume_ctx(&admitted, dir.path()), &source).await.expect("volumes ready");
    let vol = prepared.host_path(&volume).expect("the volume");
    assert_eq!(fs::read_to_string(vol.join("namespace")).expect("namespace"), "default");
    assert_eq!(fs::read_to_string(vol.join("ca.crt")).expect("ca.crt"), CERT, "the stand-in CA without the publisher");
    let token = fs::read_to_string(vol.join("token")).expect("token");
    let claims = token.split('.').nth(1).expect("a JWT");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).expect("base64url");
    let claims: serde_json::Value = serde_json::from_slice(&claims).expect("JSON claims");
    assert_eq!(claims["kubernetes.io"]["pod"]["name"], "curl");
    assert_eq!(claims["kubernetes.io"]["pod"]["uid"], json!(admitted.metadata.uid));
    assert_eq!(claims["sub"], "system:serviceaccount:default:default");

    // The token is kept on a second pass, since it is far from expiring.
    volumes::prepare(&ctx.volume_ctx(&admitted, dir.path()), &source).await.expect("again");
    assert_eq!(fs::read_to_string(vol.join("token")).expect("token"), token);
}
