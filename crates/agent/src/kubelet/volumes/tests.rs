//! Unit tests of the volume logic that needs no mounts: payloads (paths, modes, optional
//! keys), the atomic writer on a plain directory, hostPath type checks, the mount table
//! parser, container mounts and the token refresh rule.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::json;

use super::atomic::{self, FileProjection};
use super::host_path::{Action, Found, plan};
use super::mount::{MountEntry, mounts_under, parse_mountinfo};
use super::payload::{self, DEFAULT_MODE};
use super::*;
use crate::kubelet::source::MapSource;

fn secret(data: &[(&str, &[u8])]) -> Secret {
    Secret {
        data: Some(data.iter().map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec()))).collect()),
        ..Secret::default()
    }
}

fn items(list: serde_json::Value) -> Vec<KeyToPath> {
    serde_json::from_value(list).expect("valid items")
}

fn file(data: &str, mode: u32) -> FileProjection {
    FileProjection { data: data.as_bytes().to_vec(), mode, user: None }
}

#[test]
fn every_key_becomes_a_file_with_the_default_mode() {
    let s = secret(&[("tls.crt", b"CERT"), ("tls.key", b"KEY")]);
    let files = payload::secret_payload(&s, None, 0o400, None, false).expect("payload");
    assert_eq!(files.keys().collect::<Vec<_>>(), ["tls.crt", "tls.key"]);
    assert!(files.values().all(|f| f.mode == 0o400));
    assert_eq!(files["tls.key"].data, b"KEY");
}

#[test]
fn items_pick_keys_paths_and_modes() {
    let s = secret(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
    let list =
        items(json!([{"key": "a", "path": "dir/first"}, {"key": "b", "path": "second", "mode": 0o600, "user": 1000}]));
    let files = payload::secret_payload(&s, Some(&list), DEFAULT_MODE, None, false).expect("payload");
    assert_eq!(files.len(), 2, "unlisted keys are left out");
    assert_eq!(files["dir/first"], file("1", 0o644));
    assert_eq!(files["second"], FileProjection { data: b"2".to_vec(), mode: 0o600, user: Some(1000) });
}

#[test]
fn a_listed_missing_key_fails_unless_optional() {
    let s = secret(&[("a", b"1")]);
    let list = items(json!([{"key": "a", "path": "a"}, {"key": "zz", "path": "zz"}]));
    let err = payload::secret_payload(&s, Some(&list), DEFAULT_MODE, None, false).expect_err("missing key");
    assert_eq!(err.to_string(), "references non-existent secret key: zz");
    let files = payload::secret_payload(&s, Some(&list), DEFAULT_MODE, None, true).expect("optional");
    assert_eq!(files.keys().collect::<Vec<_>>(), ["a"]);

    let cm = ConfigMap {
        data: Some(BTreeMap::from([("x".to_owned(), "1".to_owned())])),
        binary_data: Some(BTreeMap::from([("bin".to_owned(), ByteString(vec![0, 1, 2]))])),
        ..ConfigMap::default()
    };
    let err = payload::config_map_payload(&cm, Some(&list), DEFAULT_MODE, None, false).expect_err("missing");
    assert_eq!(err.to_string(), "configmap references non-existent config key: a");
    let files = payload::config_map_payload(&cm, None, DEFAULT_MODE, None, false).expect("payload");
    assert_eq!(files["bin"].data, [0, 1, 2], "binaryData is projected too");
}

#[test]
fn modes_from_the_api_keep_only_permission_bits() {
    let s = secret(&[("a", b"1")]);
    let files = payload::secret_payload(&s, None, 0o104_755, None, false).expect("payload");
    assert_eq!(files["a"].mode, 0o755);
    let files = payload::secret_payload(&s, None, -1, None, false).expect("payload");
    assert_eq!(files["a"].mode, 0o644, "a negative mode falls back to the default");
}

#[test]
fn payload_paths_are_validated_like_kubelet() {
    assert!(atomic::validate_path("a/b.txt").is_ok());
    assert!(atomic::validate_path("..a").is_err());
    assert!(atomic::validate_path("a/../b").is_err());
    assert!(atomic::validate_path("/etc/passwd").is_err());
    assert!(atomic::validate_path("").is_err());
    assert_eq!(atomic::clean_path("./a//b/"), "a/b");
}

#[test]
fn atomic_writer_swaps_data_and_keeps_visible_links() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path();
    let mut files = BTreeMap::from([("a".to_owned(), file("one", 0o600)), ("sub/b".to_owned(), file("two", 0o644))]);
    assert!(atomic::write(target, &files, None).expect("first write"));
    let first = fs::read_link(target.join("..data")).expect("..data");
    assert!(first.to_string_lossy().starts_with("..20"), "{first:?}");
    assert_eq!(fs::read_link(target.join("a")).expect("link"), Path::new("..data/a"));
    assert_eq!(fs::read_link(target.join("sub")).expect("link"), Path::new("..data/sub"));
    assert_eq!(fs::read_to_string(target.join("sub/b")).expect("read"), "two");
    assert_eq!(fs::metadata(target.join("a")).expect("meta").permissions().mode() & 0o7777, 0o600);

    assert!(!atomic::write(target, &files, None).expect("same payload"), "an unchanged payload is not rewritten");
    assert_eq!(fs::read_link(target.join("..data")).expect("..data"), first);

    files.remove("sub/b");
    files.insert("a".to_owned(), file("uno", 0o600));
    files.insert("c".to_owned(), file("three", 0o644));
    assert!(atomic::write(target, &files, None).expect("update"));
    assert_eq!(fs::read_to_string(target.join("a")).expect("read"), "uno");
    assert!(fs::symlink_metadata(target.join("sub")).is_err(), "a name that left the payload is gone");
    assert!(!target.join(&first).exists(), "the old data directory is removed");
    let mut entries: Vec<String> = fs::read_dir(target)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert_eq!(&entries[2..], ["a", "c"]);
}

#[test]
fn atomic_writer_puts_back_deleted_links_and_applies_fs_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path();
    let files = BTreeMap::from([("a".to_owned(), file("one", 0o600))]);
    atomic::write(target, &files, Some(4321)).expect("write");
    let meta = fs::metadata(target.join("a")).expect("meta");
    assert_eq!(meta.gid(), 4321);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640, "fsGroup adds group read");
    fs::remove_file(target.join("a")).expect("remove link");
    assert!(!atomic::write(target, &files, Some(4321)).expect("rewrite"));
    assert_eq!(fs::read_to_string(target.join("a")).expect("read"), "one");
}

#[test]
fn atomic_writer_refuses_escaping_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = BTreeMap::from([("../escape".to_owned(), file("x", 0o644))]);
    assert!(atomic::write(dir.path(), &files, None).is_err());
    assert!(!dir.path().parent().expect("parent").join("escape").exists());
}

#[test]
fn host_path_types_are_checked_like_kubelet() {
    assert_eq!(plan("/x", "", Found::Missing), Ok(Action::Nothing));
    assert_eq!(plan("/x", "DirectoryOrCreate", Found::Missing), Ok(Action::CreateDirectory));
    assert_eq!(plan("/x", "DirectoryOrCreate", Found::Directory), Ok(Action::Nothing));
    assert_eq!(
        plan("/x", "DirectoryOrCreate", Found::File),
        Err("hostPath type check failed: /x is not a directory".to_owned())
    );
    assert_eq!(
        plan("/x", "Directory", Found::Missing),
        Err("hostPath type check failed: /x is not a directory".to_owned())
    );
    assert_eq!(plan("/x", "FileOrCreate", Found::Missing), Ok(Action::CreateFile));
    assert_eq!(plan("/x", "File", Found::Directory), Err("hostPath type check failed: /x is not a file".to_owned()));
    assert_eq!(plan("/x", "File", Found::Socket), Err("hostPath type check failed: /x is not a file".to_owned()));
    assert_eq!(plan("/x", "Socket", Found::Socket), Ok(Action::Nothing));
    assert_eq!(
        plan("/x", "Socket", Found::File),
        Err("hostPath type check failed: /x is not a socket file".to_owned())
    );
    assert_eq!(
        plan("/x", "CharDevice", Found::BlockDevice),
        Err("hostPath type check failed: /x is not a character device".to_owned())
    );
    assert_eq!(plan("/x", "BlockDevice", Found::BlockDevice), Ok(Action::Nothing));
    assert_eq!(plan("/x", "Bogus", Found::File), Err("Bogus is an invalid volume type".to_owned()));
}

#[test]
fn host_path_check_creates_what_the_type_asks_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("made/dir");
    host_path::check(d.to_str().expect("utf-8"), "DirectoryOrCreate").expect("creates");
    assert!(d.is_dir());
    assert_eq!(fs::metadata(&d).expect("meta").permissions().mode() & 0o777, 0o755);
    let f = dir.path().join("made/file");
    host_path::check(f.to_str().expect("utf-8"), "FileOrCreate").expect("creates");
    assert!(f.is_file());
    host_path::check(f.to_str().expect("utf-8"), "File").expect("a file");
    assert!(host_path::check(d.to_str().expect("utf-8"), "File").is_err());
    assert!(host_path::check(dir.path().join("nope").to_str().expect("utf-8"), "Directory").is_err());
    assert_eq!(
        host_path::check("relative/dir", "DirectoryOrCreate"),
        Err("hostPath \"relative/dir\" is not an absolute path".to_owned())
    );
    assert!(!Path::new("relative").exists());
}

#[test]
fn mountinfo_lines_are_parsed_and_unescaped() {
    let text = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
45 27 0:40 / /data/pods/u1/volumes/kubernetes.io~secret/a\\040b rw,relatime shared:5 - tmpfs tmpfs rw,size=1024k
46 45 0:41 / /data/pods/u1/volumes/kubernetes.io~secret/a\\040b/inner rw - tmpfs tmpfs rw
47 27 0:42 / /data/pods/u1/volumes/kubernetes.io~empty-dir/gone\\040(deleted) rw - tmpfs tmpfs rw
garbage line
";
    let table = parse_mountinfo(text);
    assert_eq!(table.len(), 4);
    assert_eq!(table[1].mount_point, Path::new("/data/pods/u1/volumes/kubernetes.io~secret/a b"));
    assert_eq!(table[1].fs_type, "tmpfs");
    let under = mounts_under(&table, Path::new("/data/pods/u1/volumes"));
    let points: Vec<&Path> = under.iter().map(|m: &MountEntry| m.mount_point.as_path()).collect();
    assert_eq!(
        points,
        [
            Path::new("/data/pods/u1/volumes/kubernetes.io~secret/a b/inner"),
            Path::new("/data/pods/u1/volumes/kubernetes.io~empty-dir/gone"),
            Path::new("/data/pods/u1/volumes/kubernetes.io~secret/a b"),
        ],
        "deepest first"
    );
    assert!(mounts_under(&table, Path::new("/data/pods/u1/vol")).is_empty(), "whole components only");
}

fn prepared(dir: &Path, kind: VolumeKind) -> PreparedVolumes {
    let mut volumes = PreparedVolumes::default();
    volumes.volumes.insert("v".to_owned(), PreparedVolume { kind, host_path: dir.to_path_buf() });
    volumes
}

fn container(mounts: serde_json::Value) -> Container {
    serde_json::from_value(json!({"name": "c", "volumeMounts": mounts})).expect("valid container")
}

#[test]
fn container_mounts_map_options_and_force_api_data_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = container(json!([{"name": "v", "mountPath": "/data", "mountPropagation": "HostToContainer"}]));
    let mounts = container_mounts(&c, &prepared(dir.path(), VolumeKind::EmptyDir)).expect("mounts");
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].host_path, dir.path());
    assert_eq!(mounts[0].container_path, "/data");
    assert!(!mounts[0].read_only);
    assert_eq!(mounts[0].propagation, Propagation::HostToContainer);
    let mounts = container_mounts(&c, &prepared(dir.path(), VolumeKind::Secret)).expect("mounts");
    assert!(mounts[0].read_only, "secret volumes are always read-only");

    let bad = container(json!([{"name": "v", "mountPath": "/d", "mountPropagation": "Sideways"}]));
    let err = container_mounts(&bad, &prepared(dir.path(), VolumeKind::EmptyDir)).expect_err("bad mode");
    assert_eq!(err.to_string(), "invalid MountPropagation mode: \"Sideways\"");
    let missing = container(json!([{"name": "other", "mountPath": "/d"}]));
    let err = container_mounts(&missing, &prepared(dir.path(), VolumeKind::EmptyDir)).expect_err("no volume");
    assert_eq!(err.to_string(), "cannot find volume \"other\" to mount into container \"c\"");
}

#[test]
fn sub_paths_are_created_inside_the_volume_and_cannot_escape_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("vol");
    fs::create_dir(&root).expect("mkdir");
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).expect("chmod");
    let volumes = prepared(&root, VolumeKind::EmptyDir);

    let c = container(json!([{"name": "v", "mountPath": "/d", "subPath": "logs/app"}]));
    let mounts = container_mounts(&c, &volumes).expect("mounts");
    assert_eq!(mounts[0].host_path, fs::canonicalize(root.join("logs/app")).expect("created"));
    assert_eq!(fs::metadata(root.join("logs/app")).expect("meta").permissions().mode() & 0o777, 0o777);

    let c = container(json!([{"name": "v", "mountPath": "/d", "subPathExpr": "$(POD)/x"}]));
    let mounts = container_mounts_with_env(&c, &volumes, &[("POD".to_owned(), "web-0".to_owned())]).expect("mounts");
    assert!(mounts[0].host_path.ends_with("vol/web-0/x"));

    std::os::unix::fs::symlink("/etc", root.join("sneaky")).expect("symlink");
    let cases = [
        ("../up", "unable to provision SubPath `../up`: must not contain '..'"),
        ("/abs", "error SubPath `/abs` must not be an absolute path"),
        ("sneaky", "subPath `sneaky` of volume \"v\": it resolves to a path outside the volume"),
    ];
    for (sub, message) in cases {
        let c = container(json!([{"name": "v", "mountPath": "/d", "subPath": sub}]));
        assert_eq!(container_mounts(&c, &volumes).expect_err("refused").to_string(), message);
    }
}

#[test]
fn tokens_are_kept_until_eighty_percent_of_their_lifetime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("token");
    let b64 = |v: serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let jwt = format!("{}.{}.sig", b64(json!({"alg": "RS256"})), b64(json!({"iat": 1_000_000, "exp": 1_003_600})));
    fs::write(&path, &jwt).expect("write");
    let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
    assert_eq!(payload::fresh_token(&path, 3600, at(1_002_000)), Some(jwt.clone().into_bytes()));
    assert_eq!(payload::fresh_token(&path, 3600, at(1_002_881)), None, "past 80% of an hour");

    fs::write(&path, "opaque").expect("write");
    assert!(payload::fresh_token(&path, 3600, SystemTime::now()).is_some(), "a new opaque token is fresh");
    assert!(payload::fresh_token(&path, 3600, SystemTime::now() + Duration::from_secs(2900)).is_none());
    assert!(payload::fresh_token(&dir.path().join("missing"), 3600, SystemTime::now()).is_none());
}

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec}))
        .expect("valid pod")
}

#[test]
fn memory_backed_volumes_are_sized_like_kubelet() {
    let allocatable = BTreeMap::from([("memory".to_owned(), Quantity("1Gi".to_owned()))]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ctx_for = |p: &'static Pod| VolumeContext {
        pod: p,
        pod_dir: dir.path(),
        node_name: "n",
        pod_ips: &[],
        host_ips: &[],
        cluster_ca_pem: None,
        node_allocatable: &allocatable,
    };
    let no_limits: &'static Pod = Box::leak(Box::new(pod(json!({"containers": [{"name": "a"}]}))));
    let limited: &'static Pod = Box::leak(Box::new(pod(json!({"containers": [
        {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
        {"name": "b", "resources": {"limits": {"memory": "64Mi"}}}]}))));
    assert_eq!(memory_backed_size(&ctx_for(no_limits), None), Some(1 << 30));
    assert_eq!(memory_backed_size(&ctx_for(limited), None), Some(128 << 20));
    assert_eq!(memory_backed_size(&ctx_for(limited), Some(&Quantity("16Mi".to_owned()))), Some(16 << 20));
    assert_eq!(memory_backed_size(&ctx_for(no_limits), Some(&Quantity("4Gi".to_owned()))), Some(1 << 30));
}

#[tokio::test]
async fn unsupported_volume_types_are_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pod(json!({"containers": [{"name": "a"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]}));
    let allocatable = BTreeMap::new();
    let ctx = VolumeContext {
        pod: &p,
        pod_dir: dir.path(),
        node_name: "n",
        pod_ips: &[],
        host_ips: &[],
        cluster_ca_pem: None,
        node_allocatable: &allocatable,
    };
    let err = prepare(&ctx, &MapSource::default()).await.expect_err("unsupported");
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"data\" : volume type persistentVolumeClaim is not supported on this node"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn config_map_volumes_on_disk_and_the_root_ca_fallback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pod(json!({"containers": [{"name": "a"}], "volumes": [
        {"name": "conf", "configMap": {"name": "nginxconfigmap"}},
        {"name": "ca", "configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"name": "maybe", "configMap": {"name": "absent", "optional": true}},
    ]}));
    let source = MapSource::default();
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("nginxconfigmap".to_owned());
    cm.metadata.namespace = Some("ns".to_owned());
    cm.data = Some(BTreeMap::from([("default.conf".to_owned(), "server {}".to_owned())]));
    source.put_config_map(cm.clone());
    let allocatable = BTreeMap::new();
    let ctx = VolumeContext {
        pod: &p,
        pod_dir: dir.path(),
        node_name: "n",
        pod_ips: &[],
        host_ips: &[],
        cluster_ca_pem: Some("-----BEGIN CERTIFICATE-----\n"),
        node_allocatable: &allocatable,
    };
    let volumes = prepare(&ctx, &source).await.expect("prepared");
    let conf = volumes.host_path("conf").expect("conf");
    assert_eq!(conf, volume_dir(dir.path(), VolumeKind::ConfigMap, "conf"));
    assert_eq!(fs::read_to_string(conf.join("default.conf")).expect("read"), "server {}");
    assert_eq!(fs::metadata(conf).expect("meta").permissions().mode() & 0o7777, 0o777);
    let ca = volumes.host_path("ca").expect("ca");
    assert_eq!(fs::read_to_string(ca.join("ca.crt")).expect("read"), "-----BEGIN CERTIFICATE-----\n");
    let maybe = volumes.host_path("maybe").expect("optional volume exists");
    assert_eq!(fs::read_dir(maybe).expect("list").count(), 2, "only ..data and its directory");

    assert!(!refresh(&ctx, &source).await.expect("refresh"), "nothing changed");
    cm.data = Some(BTreeMap::from([("default.conf".to_owned(), "server { listen 80; }".to_owned())]));
    source.put_config_map(cm);
    assert!(refresh(&ctx, &source).await.expect("refresh"));
    assert_eq!(fs::read_to_string(conf.join("default.conf")).expect("read"), "server { listen 80; }");

    teardown(dir.path()).expect("teardown");
    assert!(!dir.path().join("volumes").exists());
    teardown(dir.path()).expect("a second teardown is a no-op");
}
