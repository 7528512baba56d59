//! The runtime layer against the real `runc` (as root), with a busybox root filesystem.
//!
//! The shim is this test binary run again: `shim_entry` is a test that turns into
//! `shim_main` when the shim's environment variable is set, and is a no-op otherwise.
//! `agent_entry` likewise plays an agent that a test kills with SIGKILL.
//!
//! Every test owns its containers (ids with this process's pid), its runc `--root`, its
//! cgroups (`/rkube-test-<pid>/pod<test>/…`) and its temp dir, and removes exactly those.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rkube_agent::runtime::spec::{self, EtcFiles, ImageConfig, NamespaceMode, PodNamespaces, SpecInput, UserDb};
use rkube_agent::runtime::{
    ContainerRuntime, ContainerState, CreateRequest, ExecRequest, ExitReason, Runc, RuntimeError, SHIM_DIR_ENV,
    ShimCommand, Status, ns, stop,
};
use tokio::io::AsyncReadExt;

const AGENT_ENV: &str = "RKUBE_TEST_AGENT_SPEC";

#[test]
fn shim_entry() {
    if std::env::var_os(SHIM_DIR_ENV).is_some() {
        rkube_agent::runtime::shim_main();
    }
}

/// A pretend agent: creates and starts the container described by the files next to the
/// spec in `RKUBE_TEST_AGENT_SPEC`, says so, and waits to be killed.
#[test]
fn agent_entry() {
    let Some(spec_path) = std::env::var_os(AGENT_ENV).map(PathBuf::from) else { return };
    let run = || -> Result<(), String> {
        let dir = spec_path.parent().ok_or("no dir")?.to_path_buf();
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).map_err(|e| e.to_string());
        let spec = oci_spec_load(&spec_path)?;
        let (state_dir, id, log) = (PathBuf::from(read("state_dir")?), read("id")?, PathBuf::from(read("log")?));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let runc = runtime_at(&state_dir);
            runc.create(CreateRequest { id: id.clone(), spec, log_path: log }).await.map_err(|e| e.to_string())?;
            runc.start(&id).await.map_err(|e| e.to_string())
        })?;
        println!("AGENT-READY");
        Ok(())
    };
    match run() {
        Ok(()) => loop {
            std::thread::sleep(Duration::from_secs(60));
        },
        Err(e) => {
            println!("AGENT-FAILED {e}");
            std::process::exit(1);
        }
    }
}

fn oci_spec_load(path: &Path) -> Result<oci_spec::runtime::Spec, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// The shim is this binary, running only `shim_entry`.
fn test_shim() -> ShimCommand {
    let program = std::env::current_exe().expect("current_exe");
    let args = ["shim_entry", "--exact", "--nocapture", "--test-threads=1"];
    ShimCommand { program, args: args.iter().map(Into::into).collect() }
}

fn runtime_at(state_dir: &Path) -> Runc {
    let mut runc = Runc::new(state_dir).expect("runtime");
    runc.shim = test_shim();
    runc
}

const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "env", "ls", "id", "hostname", "true", "false", "printf", "head", "tr", "tty",
    "readlink", "stat", "wc", "seq", "stty",
];

/// A temp dir with a busybox rootfs, a runtime rooted in it, and the cleanup of everything
/// the test made.
struct TestEnv {
    name: String,
    dir: tempfile::TempDir,
    rootfs: PathBuf,
    runc: Runc,
    ids: Vec<String>,
    netns: Vec<String>,
    ipc: Vec<PathBuf>,
}

impl TestEnv {
    fn new(name: &str) -> TestEnv {
        assert!(rustix::process::geteuid().is_root(), "the runtime tests run runc and need root");
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "/bin/busybox is missing: run scripts/install-deps.sh (busybox-static)");
        let dir = tempfile::Builder::new().prefix("rkube-rt-").tempdir().expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        for sub in ["bin", "proc", "sys", "dev", "etc", "tmp", "root", "home"] {
            std::fs::create_dir_all(rootfs.join(sub)).expect("mkdir");
        }
        std::fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("symlink");
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home:/bin/sh\n")
            .expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\nextra:x:2000:app\n").expect("group");
        let runc = runtime_at(&dir.path().join("state"));
        TestEnv { name: name.to_string(), dir, rootfs, runc, ids: Vec::new(), netns: Vec::new(), ipc: Vec::new() }
    }

    fn cgroup_parent() -> String {
        format!("rkube-test-{}", std::process::id())
    }

    fn pod_cgroup(&self) -> String {
        format!("/{}/pod{}", Self::cgroup_parent(), self.name)
    }

    fn id(&mut self, suffix: &str) -> String {
        let id = format!("{}-{}-{}", self.name, suffix, std::process::id());
        self.ids.push(id.clone());
        id
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.log"))
    }

    fn spec(
        &self,
        id: &str,
        image: &ImageConfig,
        container: &Container,
        namespaces: &PodNamespaces,
    ) -> oci_spec::runtime::Spec {
        let env = spec::literal_env(container).expect("env");
        let users = UserDb::read(&self.rootfs).expect("users");
        let cgroups_path = spec::cgroups_path(&Self::cgroup_parent(), &self.name, id);
        spec::build(&SpecInput {
            image,
            container,
            pod_security_context: None,
            env: &env,
            users: &users,
            rootfs: &self.rootfs,
            hostname: "pod-a",
            namespaces,
            volumes: &[],
            etc_files: &EtcFiles::default(),
            cgroups_path: &cgroups_path,
            host_devices: &[],
        })
        .expect("spec")
    }

    async fn create(
        &mut self,
        suffix: &str,
        image: &ImageConfig,
        container: &Container,
    ) -> Result<String, RuntimeError> {
        let namespaces = host_net();
        self.create_in(suffix, image, container, &namespaces).await
    }

    async fn create_in(
        &mut self,
        suffix: &str,
        image: &ImageConfig,
        container: &Container,
        namespaces: &PodNamespaces,
    ) -> Result<String, RuntimeError> {
        let id = self.id(suffix);
        let spec = self.spec(&id, image, container, namespaces);
        let log_path = self.log_path(&id);
        self.runc.create(CreateRequest { id: id.clone(), spec, log_path }).await.map(|_| id)
    }

    async fn run(&mut self, suffix: &str, image: &ImageConfig, container: &Container) -> String {
        let id = self.create(suffix, image, container).await.expect("create");
        self.runc.start(&id).await.expect("start");
        id
    }

    fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new(&self.runc.runc)
                .arg("--root")
                .arg(&self.runc.root)
                .args(["delete", "--force", id])
                .output();
        }
        // Shims exit once their container is gone; give them a moment before the dir goes.
        std::thread::sleep(Duration::from_millis(50));
        let _ = ns::remove_cgroup(&self.pod_cgroup());
        let _ = ns::remove_cgroup(&format!("/{}", Self::cgroup_parent()));
        for path in &self.ipc {
            let _ = ns::remove_namespace(path);
        }
        for name in &self.netns {
            let _ = Command::new("ip").args(["netns", "delete", name]).output();
        }
    }
}

fn host_net() -> PodNamespaces {
    PodNamespaces { network: NamespaceMode::Host, ipc: NamespaceMode::New, shm: None }
}

fn busybox_image() -> ImageConfig {
    ImageConfig { cmd: vec!["sh".into()], env: vec!["PATH=/bin".into()], ..Default::default() }
}

fn sh(script: &str) -> Container {
    Container { name: "c".into(), command: Some(vec!["sh".into(), "-c".into(), script.into()]), ..Default::default() }
}

async fn wait_for(runc: &Runc, id: &str, what: &str, pred: impl Fn(&ContainerState) -> bool) -> ContainerState {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = runc.state(id).await.expect("state");
        if pred(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}: {state:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn exec_output(runc: &Runc, id: &str, request: ExecRequest) -> (String, String, i32) {
    let mut p = runc.exec(id, request).await.expect("exec");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (mut so, mut se) = (p.stdout.take(), p.stderr.take());
    let read_out = async {
        if let Some(s) = so.as_mut() {
            let _ = s.read_to_end(&mut out).await;
        }
    };
    let read_err = async {
        if let Some(s) = se.as_mut() {
            let _ = s.read_to_end(&mut err).await;
        }
    };
    tokio::join!(read_out, read_err);
    let code = p.exit.await.expect("exit code");
    (String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned(), code)
}

/// `(stream, tag, content)` of each CRI log line, after checking the timestamp.
fn cri_lines(log: &str) -> Vec<(String, String, String)> {
    log.lines()
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let ts = parts.next().unwrap_or_default();
            assert!(ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "timestamp in {line:?}");
            let stream = parts.next().unwrap_or_default().to_string();
            let tag = parts.next().unwrap_or_default().to_string();
            (stream, tag, parts.next().unwrap_or_default().to_string())
        })
        .collect()
}

fn line(stream: &str, content: &str) -> (String, String, String) {
    (stream.to_string(), "F".to_string(), content.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_and_exit_writes_the_cri_log_and_exit_code() {
    let mut env = TestEnv::new("echo");
    let id = env.run("c", &busybox_image(), &sh("echo hello; echo oops >&2; printf 'no newline'")).await;
    let state = wait_for(&env.runc, &id, "exit", |s| s.exit.is_some()).await;
    assert_eq!(state.status, Status::Stopped);
    let exit = state.exit.expect("exit");
    assert_eq!((exit.code, exit.reason), (0, ExitReason::Completed));
    let mut lines = cri_lines(&env.log(&id));
    lines.sort();
    assert_eq!(lines, vec![line("stderr", "oops"), line("stdout", "hello"), line("stdout", "no newline")]);

    let id2 = env.run("fail", &busybox_image(), &sh("exit 3")).await;
    let exit = wait_for(&env.runc, &id2, "exit", |s| s.exit.is_some()).await.exit.expect("exit");
    assert_eq!((exit.code, exit.reason), (3, ExitReason::Error));

    let request = ExecRequest { command: vec!["true".into()], ..Default::default() };
    assert!(env.runc.exec(&id, request).await.is_err(), "no exec in a stopped container");
    let spec = env.spec(&id, &busybox_image(), &sh("true"), &host_net());
    let again = CreateRequest { id: id.clone(), spec, log_path: env.log_path(&id) };
    assert!(matches!(env.runc.create(again).await, Err(RuntimeError::AlreadyExists(_))));

    env.runc.delete(&id).await.expect("delete");
    assert!(matches!(env.runc.state(&id).await, Err(RuntimeError::NotFound(_))));
    assert!(matches!(env.runc.delete(&id).await, Err(RuntimeError::NotFound(_))));
    assert!(!env.runc.container_dir(&id).exists());
    assert!(env.log_path(&id).exists(), "the log outlives the container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_running_container_exec_and_stop() {
    let mut env = TestEnv::new("long");
    let t0 = Instant::now();
    let id = env.create("sleep", &busybox_image(), &sh("exec sleep 1000")).await.expect("create");
    let t_created = t0.elapsed();
    env.runc.start(&id).await.expect("start");
    let state = wait_for(&env.runc, &id, "running", |s| s.status == Status::Running).await;
    let t_running = t0.elapsed();
    assert!(state.pid.is_some() && state.started_at.is_some() && state.exit.is_none(), "{state:?}");

    let t1 = Instant::now();
    let (out, err, code) =
        exec_output(&env.runc, &id, ExecRequest { command: vec!["echo".into(), "hi".into()], ..Default::default() })
            .await;
    let t_exec = t1.elapsed();
    assert_eq!((out.as_str(), err.as_str(), code), ("hi\n", "", 0));

    let (_, _, code) = exec_output(
        &env.runc,
        &id,
        ExecRequest { command: vec!["sh".into(), "-c".into(), "exit 7".into()], ..Default::default() },
    )
    .await;
    assert_eq!(code, 7);

    // The container's environment and a stdin stream.
    let mut p = env
        .runc
        .exec(
            &id,
            ExecRequest { command: vec!["cat".into()], stdin: true, env: vec!["X=1".into()], ..Default::default() },
        )
        .await
        .expect("exec cat");
    let mut stdin = p.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"through stdin\n").await.expect("write");
    drop(stdin);
    let mut out = String::new();
    p.stdout.take().expect("stdout").read_to_string(&mut out).await.expect("read");
    assert_eq!((out.as_str(), p.exit.await.expect("exit")), ("through stdin\n", 0));

    // A terminal: the process sees a tty, output comes back on stdout.
    let (out, _, code) = exec_output(
        &env.runc,
        &id,
        ExecRequest {
            command: vec!["sh".into(), "-c".into(), "tty; stty size; echo done".into()],
            tty: true,
            tty_size: Some((100, 30)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/dev/pts/") && out.contains("30 100") && out.contains("done"), "{out:?}");

    // Resizing reaches the container's terminal.
    let request = ExecRequest {
        command: vec!["sh".into(), "-c".into(), "read line; stty size".into()],
        tty: true,
        stdin: true,
        ..Default::default()
    };
    let mut p = env.runc.exec(&id, request).await.expect("exec tty");
    p.terminal.as_ref().expect("terminal").resize(132, 43).expect("resize");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut stdin = p.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"go\n").await.expect("write");
    let mut out = String::new();
    p.stdout.take().expect("stdout").read_to_string(&mut out).await.expect("read");
    assert_eq!(p.exit.await.expect("exit"), 0);
    assert!(out.contains("43 132"), "{out:?}");

    // sleep as PID 1 ignores SIGTERM: stop waits out the grace period and kills.
    let t2 = Instant::now();
    let exit = stop(&env.runc, &id, Duration::from_millis(500)).await.expect("stop");
    assert!(t2.elapsed() >= Duration::from_millis(500));
    assert_eq!((exit.code, exit.signal, exit.reason), (137, Some(9), ExitReason::Error));
    assert_eq!(env.runc.state(&id).await.expect("state").status, Status::Stopped);

    // A process that handles SIGTERM exits within the grace period.
    let id2 = env
        .run("trap", &busybox_image(), &sh("trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.05; done"))
        .await;
    wait_for(&env.runc, &id2, "output", |_| env.log(&id2).contains("up")).await;
    let t3 = Instant::now();
    let exit = stop(&env.runc, &id2, Duration::from_secs(20)).await.expect("stop");
    assert!(t3.elapsed() < Duration::from_secs(5));
    assert_eq!((exit.code, exit.reason), (0, ExitReason::Completed));
    assert!(env.log(&id2).contains("stdout F bye"));

    eprintln!("timing: create {:?}, create→running {:?}, exec echo {:?}", t_created, t_running, t_exec);
    for id in [&id, &id2] {
        env.runc.delete(id).await.expect("delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_is_a_clear_create_error() {
    let mut env = TestEnv::new("missing");
    let container = Container { name: "c".into(), command: Some(vec!["/no/such/binary".into()]), ..Default::default() };
    let err = env.create("c", &busybox_image(), &container).await.expect_err("create must fail");
    let message = err.to_string();
    assert!(matches!(err, RuntimeError::Create { .. }), "{err:?}");
    assert!(message.contains("/no/such/binary") && message.contains("no such file or directory"), "{message}");
    let container = Container { name: "c".into(), command: Some(vec!["nope".into()]), ..Default::default() };
    let err = env.create("c2", &busybox_image(), &container).await.expect_err("create must fail");
    assert!(err.to_string().contains("executable file not found in $PATH"), "{err}");
    // Nothing stays behind.
    assert!(env.runc.list().await.expect("list").is_empty());
    assert!(std::fs::read_dir(&env.runc.containers_dir).expect("dir").next().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_and_args_follow_kubernetes() {
    let mut env = TestEnv::new("envargs");
    let image = ImageConfig {
        entrypoint: vec!["echo".into(), "entry".into()],
        cmd: vec!["image-cmd".into()],
        env: vec!["PATH=/bin".into(), "FOO=image".into(), "BAR=image-bar".into()],
        working_dir: Some("/tmp".into()),
        user: None,
    };
    let var = |name: &str, value: &str| EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() };
    let base = Container {
        name: "c".into(),
        env: Some(vec![var("FOO", "pod"), var("GREETING", "hello-$(FOO)")]),
        ..Default::default()
    };

    // Nothing overridden: ENTRYPOINT + CMD.
    let a = env.run("plain", &image, &base).await;
    // args replace CMD, keep ENTRYPOINT; $(VAR) expands from the container's env.
    let b = env
        .run(
            "args",
            &image,
            &Container {
                args: Some(vec!["$(GREETING)".into(), "$(UNDEFINED)".into(), "$$(FOO)".into()]),
                ..base.clone()
            },
        )
        .await;
    // command replaces ENTRYPOINT and drops CMD.
    let c = env
        .run("cmd", &image, &Container { command: Some(vec!["sh".into(), "-c".into(), "echo FOO=$FOO BAR=$BAR GREETING=$GREETING HOSTNAME=$HOSTNAME host=$(hostname) cwd=$(pwd) uid=$(id -u) args=$#".into()]), ..base.clone() })
        .await;
    for id in [&a, &b, &c] {
        wait_for(&env.runc, id, "exit", |s| s.exit.is_some()).await;
    }
    assert_eq!(cri_lines(&env.log(&a)), vec![line("stdout", "entry image-cmd")]);
    assert_eq!(cri_lines(&env.log(&b)), vec![line("stdout", "entry hello-pod $(UNDEFINED) $(FOO)")]);
    assert_eq!(
        cri_lines(&env.log(&c)),
        vec![line(
            "stdout",
            "FOO=pod BAR=image-bar GREETING=hello-pod HOSTNAME=pod-a host=pod-a cwd=/tmp uid=0 args=0"
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_reaches_the_cgroup_and_oom_is_reported() {
    let mut env = TestEnv::new("memory");
    let limits = |mem: &str| {
        Some(ResourceRequirements {
            limits: Some(BTreeMap::from([
                ("memory".to_string(), Quantity(mem.into())),
                ("cpu".to_string(), Quantity("250m".into())),
            ])),
            ..Default::default()
        })
    };
    let container = Container { resources: limits("64Mi"), ..sh("exec sleep 1000") };
    let id = env.run("limit", &busybox_image(), &container).await;
    wait_for(&env.runc, &id, "running", |s| s.status == Status::Running).await;
    let cgroups_path = spec::cgroups_path(&TestEnv::cgroup_parent(), "memory", &id);
    let limit = std::fs::read_to_string(ns::memory_limit_file(&cgroups_path)).expect("memory limit file");
    assert_eq!(limit.trim(), "67108864");
    let quota_file = if ns::cgroup_v2() {
        PathBuf::from(format!("{}{}/cpu.max", ns::CGROUP_ROOT, cgroups_path))
    } else {
        PathBuf::from(format!("{}/cpu{}/cpu.cfs_quota_us", ns::CGROUP_ROOT, cgroups_path))
    };
    let quota = std::fs::read_to_string(quota_file).expect("cpu quota");
    assert!(quota.starts_with("25000"), "{quota}");
    env.runc.delete(&id).await.expect("delete");
    assert!(!ns::memory_limit_file(&cgroups_path).exists(), "runc delete removes the container's cgroup");

    // 64 MiB into a shell variable under a 16 MiB limit.
    let hog =
        Container { resources: limits("16Mi"), ..sh("a=$(head -c 67108864 /dev/zero | tr '\\000' a); echo survived") };
    let id = env.run("oom", &busybox_image(), &hog).await;
    let exit = wait_for(&env.runc, &id, "exit", |s| s.exit.is_some()).await.exit.expect("exit");
    assert_eq!(exit.reason, ExitReason::OOMKilled, "{exit:?} log: {}", env.log(&id));
    env.runc.delete(&id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_survive_agent_death_and_are_readopted() {
    let mut env = TestEnv::new("survive");
    let id = env.id("c");
    let spec = env.spec(
        &id,
        &busybox_image(),
        &sh("trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done"),
        &host_net(),
    );
    let agent_dir = env.dir.path().join("agent");
    std::fs::create_dir_all(&agent_dir).expect("mkdir");
    std::fs::write(agent_dir.join("spec.json"), serde_json::to_vec(&spec).expect("json")).expect("spec");
    std::fs::write(agent_dir.join("state_dir"), env.dir.path().join("state").as_os_str().as_encoded_bytes())
        .expect("w");
    std::fs::write(agent_dir.join("id"), &id).expect("w");
    std::fs::write(agent_dir.join("log"), env.log_path(&id).as_os_str().as_encoded_bytes()).expect("w");

    let mut agent = Command::new(std::env::current_exe().expect("exe"))
        .args(["agent_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(AGENT_ENV, agent_dir.join("spec.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent");
    let mut out = std::io::BufReader::new(agent.stdout.take().expect("stdout"));
    let mut ready = String::new();
    while !ready.contains("AGENT-") {
        let mut l = String::new();
        if std::io::BufRead::read_line(&mut out, &mut l).expect("read") == 0 {
            break;
        }
        ready.push_str(&l);
    }
    assert!(ready.contains("AGENT-READY"), "{ready}");
    agent.kill().expect("SIGKILL the agent");
    agent.wait().expect("reap the agent");

    // A new agent over the same state finds the container running and its shim logging.
    let states = env.runc.list().await.expect("list");
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!((states[0].id.as_str(), states[0].status), (id.as_str(), Status::Running));
    let before = env.log(&id).lines().count();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = env.log(&id).lines().count();
    assert!(after > before, "the log keeps growing after the agent died: {before} → {after}");

    let exit = stop(&env.runc, &id, Duration::from_secs(10)).await.expect("stop");
    assert_eq!((exit.code, exit.reason), (0, ExitReason::Completed), "the orphaned shim still records the exit");
    env.runc.delete(&id).await.expect("delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_namespaces_are_shared_and_tty_containers_log() {
    let mut env = TestEnv::new("pod");
    let netns = format!("rk-test-{}-1", std::process::id());
    let status = Command::new("ip").args(["netns", "add", &netns]).status().expect("ip netns add");
    assert!(status.success());
    env.netns.push(netns.clone());
    let ipc = env.dir.path().join("ipc");
    env.ipc.push(ipc.clone());
    ns::create_ipc_namespace(&ipc).await.expect("ipc namespace");
    let namespaces = PodNamespaces {
        network: NamespaceMode::Join(PathBuf::from(format!("/run/netns/{netns}"))),
        ipc: NamespaceMode::Join(ipc.clone()),
        shm: None,
    };
    let script =
        "echo net=$(readlink /proc/self/ns/net) ipc=$(readlink /proc/self/ns/ipc) pid=$(readlink /proc/self/ns/pid)";
    let mut ids = Vec::new();
    for n in ["a", "b"] {
        let id = env.create_in(n, &busybox_image(), &sh("exec sleep 1000"), &namespaces).await.expect("create");
        env.runc.start(&id).await.expect("start");
        ids.push(id);
    }
    let inode = |path: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).expect("stat"));
    let (net_ino, ipc_ino) = (inode(Path::new(&format!("/run/netns/{netns}"))), inode(&ipc));
    let mut outputs = Vec::new();
    for id in &ids {
        let request = ExecRequest { command: vec!["sh".into(), "-c".into(), script.into()], ..Default::default() };
        let (out, err, code) = exec_output(&env.runc, id, request).await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!("net=net:[{net_ino}]")) && out.contains(&format!("ipc=ipc:[{ipc_ino}]")),
            "{out}"
        );
        outputs.push(out);
    }
    assert_ne!(outputs[0], outputs[1], "each container has its own PID namespace");

    // A tty container: output comes through the terminal, still as CRI lines.
    let tty = Container { tty: Some(true), ..sh("tty; echo on-a-tty") };
    let id = env.create_in("tty", &busybox_image(), &tty, &namespaces).await.expect("create");
    env.runc.start(&id).await.expect("start");
    wait_for(&env.runc, &id, "exit", |s| s.exit.is_some()).await;
    let lines = cri_lines(&env.log(&id));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].2.starts_with("/dev/pts/"), "{lines:?}");
    assert_eq!(lines[1], line("stdout", "on-a-tty"));

    for id in ids.iter().chain([&id]) {
        env.runc.delete(id).await.expect("delete");
    }
    ns::remove_namespace(&ipc).expect("remove ipc namespace");
}
