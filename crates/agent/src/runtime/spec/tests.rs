//! Spec builder tests. `nginx.json` is the golden spec of a typical nginx container;
//! `UPDATE_GOLDEN=1 cargo test -p rkube-agent` rewrites it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector, PodSecurityContext,
    ResourceRequirements, SecurityContext, Sysctl,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use oci_spec::runtime::{LinuxDevice, LinuxNamespaceType, Spec};
use serde_json::{Value, json};

use super::*;

fn nginx_image() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/docker-entrypoint.sh".into()],
        cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "NGINX_VERSION=1.27.3".into(),
            "NJS_VERSION=0.8.7".into(),
            "PKG_RELEASE=1~bookworm".into(),
        ],
        working_dir: None,
        user: None,
    }
}

fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
    Some(pairs.iter().map(|(k, v)| (k.to_string(), Quantity(v.to_string()))).collect())
}

fn nginx_container() -> Container {
    Container {
        name: "nginx".into(),
        image: Some("nginx:1.27".into()),
        ports: Some(vec![ContainerPort { container_port: 80, ..Default::default() }]),
        env: Some(vec![
            EnvVar { name: "NGINX_PORT".into(), value: Some("80".into()), ..Default::default() },
            EnvVar { name: "NGINX_VERSION".into(), value: Some("pinned".into()), ..Default::default() },
        ]),
        resources: Some(ResourceRequirements {
            limits: quantities(&[("cpu", "500m"), ("memory", "128Mi")]),
            requests: quantities(&[("cpu", "250m"), ("memory", "64Mi")]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_dir() -> PathBuf {
    PathBuf::from("/var/lib/rkube/pods/5f0c7a3e-2b7d-4c1e-9a8f-0d6b3e1c2a4f")
}

struct Fixture {
    image: ImageConfig,
    container: Container,
    pod_sc: Option<PodSecurityContext>,
    env: Vec<(String, String)>,
    users: UserDb,
    namespaces: PodNamespaces,
    volumes: Vec<VolumeMount>,
    etc: EtcFiles,
    devices: Vec<LinuxDevice>,
}

impl Fixture {
    fn nginx() -> Fixture {
        let container = nginx_container();
        let env = literal_env(&container).expect("env");
        let pod = pod_dir();
        Fixture {
            image: nginx_image(),
            container,
            pod_sc: None,
            env,
            users: UserDb::parse(
                "root:x:0:0:root:/root:/bin/bash\nnginx:x:101:101:nginx user:/nonexistent:/bin/false\n",
                "root:x:0:\nnginx:x:101:\n",
            ),
            namespaces: PodNamespaces {
                network: NamespaceMode::Join("/run/netns/rkube-5f0c7a3e".into()),
                ipc: NamespaceMode::Join(pod.join("ns/ipc")),
                shm: None,
            },
            volumes: vec![
                VolumeMount {
                    host_path: pod.join("volumes/kubernetes.io~projected/kube-api-access"),
                    container_path: "/var/run/secrets/kubernetes.io/serviceaccount".into(),
                    read_only: true,
                    propagation: Propagation::None,
                },
                VolumeMount {
                    host_path: pod.join("volumes/kubernetes.io~empty-dir/html"),
                    container_path: "/usr/share/nginx/html".into(),
                    read_only: false,
                    propagation: Propagation::None,
                },
            ],
            etc: EtcFiles {
                hosts: Some(pod.join("etc-hosts")),
                resolv_conf: Some(pod.join("resolv.conf")),
                hostname: Some(pod.join("hostname")),
            },
            devices: Vec::new(),
        }
    }

    fn busybox(container: Container) -> Fixture {
        let env = literal_env(&container).expect("env");
        Fixture {
            image: ImageConfig { cmd: vec!["sh".into()], ..Default::default() },
            container,
            pod_sc: None,
            env,
            users: UserDb::parse(
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
                "root:x:0:\napp:x:1000:\nextra:x:2000:app,other\nwheel:x:10:root\n",
            ),
            namespaces: PodNamespaces { network: NamespaceMode::New, ipc: NamespaceMode::New, shm: None },
            volumes: Vec::new(),
            etc: EtcFiles::default(),
            devices: Vec::new(),
        }
    }

    fn build(&self) -> Result<Spec, SpecError> {
        build(&SpecInput {
            image: &self.image,
            container: &self.container,
            pod_security_context: self.pod_sc.as_ref(),
            env: &self.env,
            users: &self.users,
            rootfs: Path::new("/var/lib/rkube/containers/0a1b2c/rootfs"),
            hostname: "web-0",
            namespaces: &self.namespaces,
            volumes: &self.volumes,
            etc_files: &self.etc,
            cgroups_path: &cgroups_path("rkube", "5f0c7a3e-2b7d-4c1e-9a8f-0d6b3e1c2a4f", "0a1b2c"),
            host_devices: &self.devices,
        })
    }

    fn json(&self) -> Value {
        let spec = self.build().expect("spec");
        serde_json::from_str(&to_json(&spec).expect("json")).expect("parse")
    }
}

fn with_sc(sc: SecurityContext) -> Container {
    Container { security_context: Some(sc), ..cmd(&["sh"]) }
}

fn cmd(command: &[&str]) -> Container {
    Container { name: "c".into(), command: Some(command.iter().map(|s| s.to_string()).collect()), ..Default::default() }
}

#[test]
fn golden_nginx() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/runtime/spec/testdata/nginx.json");
    let spec = Fixture::nginx().build().expect("spec");
    let actual = to_json(&spec).expect("json") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).expect("write golden");
    }
    let expected = std::fs::read_to_string(&golden).expect("read golden (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(actual, expected, "spec differs from {}", golden.display());
    // The same input always gives the same bytes, whatever the hash sets' order.
    assert_eq!(to_json(&Fixture::nginx().build().expect("spec")).expect("json") + "\n", actual);
}

#[test]
fn golden_nginx_key_facts() {
    let j = Fixture::nginx().json();
    assert_eq!(j["process"]["args"], json!(["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]));
    assert_eq!(j["linux"]["resources"]["memory"]["limit"], json!(134_217_728));
    assert_eq!(j["linux"]["resources"]["cpu"], json!({"shares": 256, "quota": 50000, "period": 100000}));
    assert_eq!(j["linux"]["cgroupsPath"], json!("/rkube/pod5f0c7a3e-2b7d-4c1e-9a8f-0d6b3e1c2a4f/0a1b2c"));
    assert_eq!(j["hostname"], json!("web-0"));
    let env = j["process"]["env"].as_array().expect("env");
    assert!(env.contains(&json!("NGINX_VERSION=pinned")) && env.contains(&json!("NGINX_PORT=80")));
    let ns: Vec<&Value> = j["linux"]["namespaces"].as_array().expect("ns").iter().collect();
    assert!(ns.contains(&&json!({"type": "network", "path": "/run/netns/rkube-5f0c7a3e"})));
    let dests: Vec<&str> =
        j["mounts"].as_array().expect("mounts").iter().filter_map(|m| m["destination"].as_str()).collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/dev/shm",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/hostname",
            "/usr/share/nginx/html",
            "/var/run/secrets/kubernetes.io/serviceaccount",
        ]
    );
}

#[test]
fn command_and_args_override_like_kubernetes() {
    let image = ImageConfig {
        entrypoint: vec!["/entry".into(), "e1".into()],
        cmd: vec!["c1".into(), "c2".into()],
        ..Default::default()
    };
    let c = |command: Option<&[&str]>, args: Option<&[&str]>| Container {
        command: command.map(|v| v.iter().map(|s| s.to_string()).collect()),
        args: args.map(|v| v.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    let env = vec![("NAME".to_string(), "world".to_string())];
    assert_eq!(process_args(&image, &c(None, None), &env), ["/entry", "e1", "c1", "c2"]);
    assert_eq!(process_args(&image, &c(None, Some(&["a1"])), &env), ["/entry", "e1", "a1"]);
    assert_eq!(process_args(&image, &c(Some(&["/cmd"]), None), &env), ["/cmd"]);
    assert_eq!(process_args(&image, &c(Some(&["/cmd"]), Some(&["a1"])), &env), ["/cmd", "a1"]);
    // Empty lists count as unset, as in Kubernetes.
    assert_eq!(process_args(&image, &c(Some(&[]), Some(&[])), &env), ["/entry", "e1", "c1", "c2"]);
    assert_eq!(
        process_args(&image, &c(Some(&["echo", "hi $(NAME)"]), Some(&["$(NAME)"])), &env),
        ["echo", "hi world", "world"]
    );
    let no_command = Fixture::busybox(Container::default());
    let mut f = no_command;
    f.image = ImageConfig::default();
    assert_eq!(f.build().err(), Some(SpecError::NoCommand));
}

#[test]
fn dollar_expansion() {
    let env = vec![("A".to_string(), "x".to_string()), ("B".to_string(), "$(A)".to_string())];
    for (input, want) in [
        ("$(A)", "x"),
        ("pre-$(A)-post", "pre-x-post"),
        ("$(B)", "$(A)"),
        ("$(C)", "$(C)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$A", "$A"),
        ("$(A", "$(A"),
        ("a$", "a$"),
        ("$(A)$(A)", "xx"),
        ("ünï$(A)cöde", "ünïxcöde"),
    ] {
        assert_eq!(expand(input, &env), want, "{input}");
    }
}

#[test]
fn literal_env_expands_earlier_entries_and_refuses_value_from() {
    let var = |n: &str, v: &str| EnvVar { name: n.into(), value: Some(v.into()), ..Default::default() };
    let c = Container {
        env: Some(vec![var("A", "1"), var("B", "$(A)-$(C)"), var("C", "3"), var("A", "again")]),
        ..Default::default()
    };
    assert_eq!(
        literal_env(&c).expect("env"),
        [("A".to_string(), "again".to_string()), ("B".into(), "1-$(C)".into()), ("C".into(), "3".into())]
    );
    let from = EnvVar {
        name: "POD".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let c = Container { env: Some(vec![from]), ..Default::default() };
    assert_eq!(literal_env(&c), Err(SpecError::UnresolvedEnv("POD".into())));
}

#[test]
fn env_merge_order() {
    let image = ImageConfig { env: vec!["A=image".into(), "B=image".into(), "NOVALUE".into()], ..Default::default() };
    let env = vec![("B".to_string(), "pod".to_string()), ("C".to_string(), "pod".to_string())];
    assert_eq!(
        process_env(&image, "h", &env),
        [
            format!("PATH={DEFAULT_PATH}"),
            "HOSTNAME=h".into(),
            "A=image".into(),
            "B=pod".into(),
            "NOVALUE=".into(),
            "C=pod".into(),
        ]
    );
    let image = ImageConfig { env: vec!["PATH=/bin".into(), "HOSTNAME=img".into()], ..Default::default() };
    let env = vec![("HOSTNAME".to_string(), "mine".to_string())];
    assert_eq!(process_env(&image, "h", &env), ["PATH=/bin", "HOSTNAME=mine"]);
}

#[test]
fn users_and_groups() {
    let user = |f: &Fixture| f.json()["process"]["user"].clone();
    let mut f = Fixture::busybox(cmd(&["sh"]));
    assert_eq!(user(&f), json!({"uid": 0, "gid": 0, "additionalGids": [10]}));
    f.image.user = Some("app".into());
    assert_eq!(user(&f), json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]}));
    f.image.user = Some("app:extra".into());
    assert_eq!(user(&f), json!({"uid": 1000, "gid": 2000}));
    f.image.user = Some("1000".into());
    assert_eq!(user(&f), json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]}));
    f.image.user = Some("4242:7".into());
    assert_eq!(user(&f), json!({"uid": 4242, "gid": 7}));
    f.image.user = Some("ghost".into());
    assert_eq!(f.build().err(), Some(SpecError::UnknownUser("ghost".into())));
    f.image.user = Some("app:ghosts".into());
    assert_eq!(f.build().err(), Some(SpecError::UnknownGroup("ghosts".into())));

    // runAsUser beats the image's USER; runAsGroup beats passwd; the container beats the pod.
    f.image.user = Some("ghost".into());
    f.container = with_sc(SecurityContext { run_as_user: Some(1000), ..Default::default() });
    assert_eq!(user(&f), json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]}));
    f.container = with_sc(SecurityContext { run_as_user: Some(5000), run_as_group: Some(6000), ..Default::default() });
    f.pod_sc = Some(PodSecurityContext {
        run_as_user: Some(1),
        supplemental_groups: Some(vec![300, 301]),
        fs_group: Some(400),
        ..Default::default()
    });
    assert_eq!(user(&f), json!({"uid": 5000, "gid": 6000, "additionalGids": [300, 301, 400]}));
    f.container = cmd(&["sh"]);
    assert_eq!(user(&f)["uid"], json!(1));
    f.container = with_sc(SecurityContext { run_as_user: Some(-1), ..Default::default() });
    assert_eq!(f.build().err(), Some(SpecError::InvalidId(-1)));
}

fn caps(f: &Fixture) -> Vec<String> {
    let j = f.json();
    let bounding: Vec<String> = serde_json::from_value(j["process"]["capabilities"]["bounding"].clone()).expect("caps");
    assert_eq!(j["process"]["capabilities"]["effective"], j["process"]["capabilities"]["bounding"]);
    assert_eq!(j["process"]["capabilities"]["permitted"], j["process"]["capabilities"]["bounding"]);
    bounding
}

#[test]
fn capabilities_add_drop_and_privileged() {
    let mut defaults: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    defaults.sort();
    let mut f = Fixture::busybox(cmd(&["sh"]));
    assert_eq!(caps(&f), defaults);

    let sc = |add: &[&str], drop: &[&str]| SecurityContext {
        capabilities: Some(Capabilities {
            add: Some(add.iter().map(|s| s.to_string()).collect()),
            drop: Some(drop.iter().map(|s| s.to_string()).collect()),
        }),
        ..Default::default()
    };
    f.container = with_sc(sc(&["NET_ADMIN", "CAP_SYS_TIME"], &["CHOWN", "net_raw"]));
    let got = caps(&f);
    assert!(got.contains(&"CAP_NET_ADMIN".into()) && got.contains(&"CAP_SYS_TIME".into()));
    assert!(!got.contains(&"CAP_CHOWN".into()) && !got.contains(&"CAP_NET_RAW".into()));
    assert_eq!(got.len(), 14);

    f.container = with_sc(sc(&["NET_BIND_SERVICE"], &["ALL"]));
    assert_eq!(caps(&f), ["CAP_NET_BIND_SERVICE"]);
    f.container = with_sc(sc(&[], &["ALL"]));
    assert_eq!(f.json()["process"]["capabilities"]["bounding"], json!([]));
    f.container = with_sc(sc(&["ALL"], &[]));
    assert_eq!(caps(&f).len(), ALL_CAPABILITIES.len());
    f.container = with_sc(sc(&["NOT_A_CAP"], &[]));
    assert_eq!(f.build().err(), Some(SpecError::Capability("NOT_A_CAP".into())));

    // Privileged: every capability, nothing masked, every device, writable /sys.
    let mut dev = LinuxDevice::default();
    dev.set_path("/dev/fuse".into());
    dev.set_major(10);
    dev.set_minor(229);
    f.devices = vec![dev];
    f.container = with_sc(SecurityContext {
        privileged: Some(true),
        allow_privilege_escalation: Some(false),
        ..Default::default()
    });
    let j = f.json();
    assert_eq!(caps(&f).len(), ALL_CAPABILITIES.len());
    assert!(j["linux"].get("maskedPaths").is_none() && j["linux"].get("readonlyPaths").is_none());
    assert_eq!(j["linux"]["resources"]["devices"], json!([{"allow": true, "access": "rwm"}]));
    assert_eq!(j["linux"]["devices"][0]["path"], json!("/dev/fuse"));
    let sys = j["mounts"].as_array().expect("mounts").iter().find(|m| m["destination"] == "/sys").cloned();
    assert!(sys.expect("sys")["options"].as_array().expect("options").contains(&json!("rw")));
    assert_eq!(j["process"]["noNewPrivileges"], json!(false));
}

#[test]
fn unprivileged_defaults_and_security_switches() {
    let mut f = Fixture::busybox(cmd(&["sh"]));
    let j = f.json();
    assert_eq!(j["linux"]["maskedPaths"].as_array().map(Vec::len), Some(MASKED_PATHS.len()));
    assert_eq!(j["linux"]["readonlyPaths"].as_array().map(Vec::len), Some(READONLY_PATHS.len()));
    assert_eq!(j["linux"]["resources"]["devices"], json!([{"allow": false, "access": "rwm"}]));
    assert!(j["linux"].get("devices").is_none());
    assert_eq!(j["root"]["readonly"], json!(false));
    assert_eq!(j["process"]["noNewPrivileges"], json!(false));
    assert_eq!(j["process"]["terminal"], json!(false));
    assert_eq!(j["process"]["cwd"], json!("/"));

    f.container = Container {
        tty: Some(true),
        working_dir: Some("/work".into()),
        ..with_sc(SecurityContext {
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        })
    };
    let j = f.json();
    assert_eq!(j["root"]["readonly"], json!(true));
    assert_eq!(j["process"]["noNewPrivileges"], json!(true));
    assert_eq!(j["process"]["terminal"], json!(true));
    assert_eq!(j["process"]["cwd"], json!("/work"));
    f.container = cmd(&["sh"]);
    f.image.working_dir = Some("/srv".into());
    assert_eq!(f.json()["process"]["cwd"], json!("/srv"));

    f.pod_sc = Some(PodSecurityContext {
        sysctls: Some(vec![Sysctl { name: "net.ipv4.ip_unprivileged_port_start".into(), value: "0".into() }]),
        ..Default::default()
    });
    assert_eq!(f.json()["linux"]["sysctl"], json!({"net.ipv4.ip_unprivileged_port_start": "0"}));
}

#[test]
fn cpu_and_memory_resources() {
    let res = |limits: &[(&str, &str)], requests: &[(&str, &str)]| {
        let c = Container {
            resources: Some(ResourceRequirements {
                limits: if limits.is_empty() { None } else { quantities(limits) },
                requests: if requests.is_empty() { None } else { quantities(requests) },
                ..Default::default()
            }),
            ..cmd(&["sh"])
        };
        Fixture::busybox(c).json()["linux"]["resources"].clone()
    };
    // BestEffort: minimum shares, no quota, no memory limit.
    let r = res(&[], &[]);
    assert_eq!(r["cpu"], json!({"shares": 2}));
    assert!(r.get("memory").is_none());
    // A limit alone: the request defaults to it.
    assert_eq!(res(&[("cpu", "2")], &[])["cpu"], json!({"shares": 2048, "quota": 200_000, "period": 100_000}));
    assert_eq!(res(&[], &[("cpu", "100m")])["cpu"], json!({"shares": 102}));
    // Tiny values hit the kubelet's floors.
    assert_eq!(res(&[("cpu", "1m")], &[])["cpu"], json!({"shares": 2, "quota": 1000, "period": 100_000}));
    assert_eq!(res(&[("memory", "1Gi")], &[("memory", "1Mi")])["memory"], json!({"limit": 1_073_741_824}));
    assert_eq!(res(&[("memory", "500M")], &[])["memory"], json!({"limit": 500_000_000}));

    let bad = Container {
        resources: Some(ResourceRequirements { limits: quantities(&[("memory", "lots")]), ..Default::default() }),
        ..cmd(&["sh"])
    };
    assert_eq!(
        Fixture::busybox(bad).build().err(),
        Some(SpecError::Quantity { resource: "memory".into(), value: "lots".into() })
    );
}

#[test]
fn namespaces_by_mode() {
    let types = |f: &Fixture| -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
        let spec = f.build().expect("spec");
        let linux = spec.linux().clone().expect("linux");
        linux.namespaces().clone().expect("ns").iter().map(|n| (n.typ(), n.path().clone())).collect()
    };
    let mut f = Fixture::busybox(cmd(&["sh"]));
    assert_eq!(
        types(&f),
        [
            (LinuxNamespaceType::Pid, None),
            (LinuxNamespaceType::Mount, None),
            (LinuxNamespaceType::Uts, None),
            (LinuxNamespaceType::Ipc, None),
            (LinuxNamespaceType::Network, None),
        ]
    );
    f.namespaces = PodNamespaces { network: NamespaceMode::Host, ipc: NamespaceMode::Join("/x/ipc".into()), shm: None };
    assert_eq!(types(&f)[3..], [(LinuxNamespaceType::Ipc, Some(PathBuf::from("/x/ipc")))]);
}

#[test]
fn mounts_order_overrides_and_options() {
    let mut f = Fixture::nginx();
    f.namespaces.shm = Some("/run/rkube/pod/shm".into());
    f.volumes.push(VolumeMount {
        host_path: "/data/hosts".into(),
        container_path: "/etc/hosts".into(),
        read_only: true,
        propagation: Propagation::HostToContainer,
    });
    f.volumes.push(VolumeMount {
        host_path: "/data/a".into(),
        container_path: "/a".into(),
        read_only: false,
        propagation: Propagation::Bidirectional,
    });
    let j = f.json();
    let mounts = j["mounts"].as_array().expect("mounts");
    let find = |dest: &str| mounts.iter().filter(|m| m["destination"] == dest).cloned().collect::<Vec<_>>();
    assert_eq!(
        find("/dev/shm"),
        [
            json!({"destination": "/dev/shm", "type": "bind", "source": "/run/rkube/pod/shm", "options": ["rbind", "rprivate", "rw"]})
        ]
    );
    assert_eq!(
        find("/etc/hosts"),
        [
            json!({"destination": "/etc/hosts", "type": "bind", "source": "/data/hosts", "options": ["rbind", "rslave", "ro"]})
        ]
    );
    assert_eq!(find("/a")[0]["options"], json!(["rbind", "rshared", "rw"]));
    let dests: Vec<&str> = mounts.iter().filter_map(|m| m["destination"].as_str()).collect();
    let pos = |d: &str| dests.iter().position(|x| *x == d).expect("present");
    assert!(pos("/a") < pos("/etc/hosts") && pos("/etc/hosts") < pos("/usr/share/nginx/html"), "{dests:?}");

    f.volumes.push(VolumeMount {
        host_path: "/data".into(),
        container_path: "relative".into(),
        read_only: false,
        propagation: Propagation::None,
    });
    assert_eq!(f.build().err(), Some(SpecError::RelativeMount("relative".into())));
}

#[test]
fn image_config_from_oci() {
    let oci: oci_spec::image::Config = serde_json::from_value(json!({
        "User": "101:101",
        "Env": ["PATH=/bin"],
        "Entrypoint": ["/e"],
        "Cmd": ["c"],
        "WorkingDir": ""
    }))
    .expect("config");
    let image = ImageConfig::from(&oci);
    assert_eq!(
        image,
        ImageConfig {
            entrypoint: vec!["/e".into()],
            cmd: vec!["c".into()],
            env: vec!["PATH=/bin".into()],
            working_dir: None,
            user: Some("101:101".into()),
        }
    );
}

#[test]
fn user_db_skips_malformed_lines() {
    let db = UserDb::parse("ok:x:1:2::/h:/bin/sh\nshort:x:1\nbad:x:a:b:::\n\n", "g:x:5:a,b\nbroken\n");
    assert_eq!(db.passwd, [PasswdEntry { name: "ok".into(), uid: 1, gid: 2, home: "/h".into() }]);
    assert_eq!(db.groups, [GroupEntry { name: "g".into(), gid: 5, members: vec!["a".into(), "b".into()] }]);
}
