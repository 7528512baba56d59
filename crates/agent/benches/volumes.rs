//! How long a pod's volumes take on the node: `prepare`, an unchanged and a changed `refresh`,
//! and `teardown`, for the tutorial's nginx pod (a TLS secret on tmpfs, the nginx ConfigMap
//! and a `kube-api-access` projected volume), `BENCH_PODS` pods (200 by default), objects
//! served from memory so that only the node's work is timed.
//!
//! The baseline in the same run is the floor of that kernel work done by hand: the same two
//! tmpfs mounts, the same files written plainly, then unmounted and removed. Needs root.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_agent::kubelet::source::MapSource;
use rkube_agent::kubelet::volumes::{self, VolumeContext, mount};
use serde_json::json;

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBbench\n-----END CERTIFICATE-----\n";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn summary(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    println!(
        "{name:<28} p50 {:>8.3} ms   p99 {:>8.3} ms",
        p50.as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3
    );
    p50
}

fn tutorial_pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("my-nginx-{i}"), "namespace": "default", "uid": format!("uid-{i}")},
        "spec": {"containers": [{"name": "nginx"}], "volumes": [
            {"name": "secret-volume", "secret": {"secretName": "nginxsecret"}},
            {"name": "configmap-volume", "configMap": {"name": "nginxconfigmap"}},
            {"name": "kube-api-access-x1", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}}]},
    }))
    .expect("a valid pod")
}

fn secret(cert: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some("nginxsecret".to_owned());
    s.metadata.namespace = Some("default".to_owned());
    s.data = Some(BTreeMap::from([
        ("tls.crt".to_owned(), ByteString(cert.as_bytes().to_vec())),
        ("tls.key".to_owned(), ByteString(vec![b'k'; 1700])),
    ]));
    s
}

/// The same mounts and files as the tutorial pod's volumes, without the atomic writer, the
/// payload logic or the mount table: the floor of the work.
fn baseline(pod_dir: &Path) -> (Duration, Duration) {
    let start = Instant::now();
    let secret_dir = pod_dir.join("s");
    let projected_dir = pod_dir.join("p");
    let cm_dir = pod_dir.join("c");
    for d in [&secret_dir, &projected_dir, &cm_dir] {
        fs::create_dir_all(d).expect("mkdir");
    }
    mount::mount_tmpfs(&secret_dir, None).expect("mount");
    mount::mount_tmpfs(&projected_dir, None).expect("mount");
    fs::write(secret_dir.join("tls.crt"), CERT).expect("write");
    fs::write(secret_dir.join("tls.key"), vec![b'k'; 1700]).expect("write");
    fs::write(cm_dir.join("default.conf"), "server { listen 80; }\n").expect("write");
    fs::write(projected_dir.join("token"), "token-default-0").expect("write");
    fs::write(projected_dir.join("ca.crt"), CERT).expect("write");
    fs::write(projected_dir.join("namespace"), "default").expect("write");
    let set_up = start.elapsed();
    let start = Instant::now();
    mount::unmount(&secret_dir).expect("umount");
    mount::unmount(&projected_dir).expect("umount");
    fs::remove_dir_all(pod_dir).expect("remove");
    (set_up, start.elapsed())
}

/// Unmounts whatever is left below the bench's directory when it ends, also on a panic.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Ok(canonical) = fs::canonicalize(self.0) {
            let _ = mount::unmount_all_under(&canonical);
        }
    }
}

fn main() {
    let pods: usize = std::env::var("BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let root = tempfile::Builder::new()
        .prefix(&format!("rkt-volbench-{}-", std::process::id()))
        .tempdir()
        .expect("a temporary directory");
    let _cleanup = Cleanup(root.path());
    let source = MapSource::default();
    source.put_secret(secret(CERT));
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("nginxconfigmap".to_owned());
    cm.metadata.namespace = Some("default".to_owned());
    cm.data = Some(BTreeMap::from([("default.conf".to_owned(), "server { listen 80; }\n".to_owned())]));
    source.put_config_map(cm);
    let allocatable = BTreeMap::from([("memory".to_owned(), Quantity("1Gi".to_owned()))]);

    let (mut prepare, mut unchanged, mut changed, mut teardown) = (vec![], vec![], vec![], vec![]);
    let (mut base_set_up, mut base_teardown) = (vec![], vec![]);
    for i in 0..pods {
        let pod = tutorial_pod(i);
        let pod_dir = root.path().join(format!("pod-{i}"));
        let ctx = VolumeContext {
            pod: &pod,
            pod_dir: &pod_dir,
            node_name: "node-a",
            pod_ips: &[],
            host_ips: &[],
            cluster_ca_pem: Some(CERT),
            node_allocatable: &allocatable,
        };
        let start = Instant::now();
        runtime.block_on(volumes::prepare(&ctx, &source)).expect("prepare");
        prepare.push(start.elapsed());

        let start = Instant::now();
        let any = runtime.block_on(volumes::refresh(&ctx, &source)).expect("refresh");
        unchanged.push(start.elapsed());
        assert!(!any, "nothing changed");

        source.put_secret(secret(&CERT.replace("bench", &format!("bench{i}"))));
        let start = Instant::now();
        let any = runtime.block_on(volumes::refresh(&ctx, &source)).expect("refresh");
        changed.push(start.elapsed());
        assert!(any, "the secret changed");

        let start = Instant::now();
        volumes::teardown(&pod_dir).expect("teardown");
        teardown.push(start.elapsed());

        let (s, t) = baseline(&root.path().join(format!("base-{i}")));
        base_set_up.push(s);
        base_teardown.push(t);
    }

    println!("volumes of the tutorial's nginx pod, {pods} pods (secret tmpfs, configMap, kube-api-access)");
    let p = summary("prepare", prepare);
    summary("refresh, nothing changed", unchanged);
    summary("refresh, secret changed", changed);
    let t = summary("teardown", teardown);
    let bp = summary("baseline: mount + write", base_set_up);
    let bt = summary("baseline: umount + remove", base_teardown);
    println!(
        "ratio prepare / baseline {:.2}x, teardown / baseline {:.2}x",
        p.as_secs_f64() / bp.as_secs_f64().max(1e-9),
        t.as_secs_f64() / bt.as_secs_f64().max(1e-9)
    );
}
