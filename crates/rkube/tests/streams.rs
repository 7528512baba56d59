//! `kubectl logs`, `exec` and `attach` end to end: the real kubectl → the real `rkube server`
//! → its node proxy → the agent's streaming server (run here, on 127.0.0.1) → real runc
//! containers whose shim is the real `rkube __shim`.
//!
//! The Node object points at the streaming server (InternalIP 127.0.0.1, the kubelet port);
//! pods are bound to it and marked Running by hand, and the test's pod table maps them to
//! the containers it started. The scheduler and node lifecycle controller are off, so
//! nothing moves the pods. Needs root and runc; without runc it says SKIPPED and tests nothing.

mod support;
#[path = "../../agent/tests/support_streams/mod.rs"]
mod support_streams;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Container;
use rkube_agent::runtime::{ContainerRuntime, ShimCommand};
use rkube_agent::stream;
use serde_json::json;
use support::Server;
use support_streams::{Containers, TestContainer, TestPods, runc_available, sh};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const DISPATCHER: &str = "/usr/bin/kubectl";

/// The dispatcher (which picks 1.33 for this server), the pinned 1.31 and 1.32 (WebSocket),
/// and 1.27, which speaks SPDY/3.1 only.
fn kubectls() -> Vec<String> {
    let mut all = vec![DISPATCHER.to_owned()];
    for minor in [27, 31, 32] {
        let path = format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}");
        if Path::new(&path).exists() {
            all.push(path);
        }
    }
    all
}

struct Env {
    server: Server,
    dir: tempfile::TempDir,
    containers: Containers,
    pods: Arc<TestPods>,
    streaming: tokio::task::JoinHandle<()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.streaming.abort();
    }
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(&dir.path().join("server"), &["--disable", "scheduler,nodelifecycle"]);
        let shim = ShimCommand { program: PathBuf::from(env!("CARGO_BIN_EXE_rkube")), args: vec!["__shim".into()] };
        let containers = Containers::new("e2e", shim);
        let pods = Arc::new(TestPods::new(containers.runc.clone()));

        let ca = std::fs::read_to_string(server.data_dir.join("tls/ca.crt")).expect("ca.crt");
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let tls = stream::tls_config(&ca, "stream-node", &[loopback]).expect("tls");
        let listener = tokio::net::TcpListener::bind((loopback, 0)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let runtime: Arc<dyn ContainerRuntime> = containers.runc.clone();
        let table: Arc<dyn stream::PodContainers> = pods.clone();
        let streaming = tokio::spawn(async move {
            let _ = stream::serve(listener, tls, table, runtime).await;
        });

        let node = json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "stream-node"},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "stream-node"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            },
        });
        let (code, created) = server.post("/api/v1/nodes", &node).await;
        assert_eq!(code, 201, "{created}");
        let mut with_status = created.clone();
        with_status["status"] = node["status"].clone();
        let (code, updated) = server.put("/api/v1/nodes/stream-node/status", &with_status).await;
        assert_eq!(code, 200, "{updated}");
        Env { server, dir, containers, pods, streaming }
    }

    /// Creates pod `name` bound to the node (or to none), marks it Running, and when `run`
    /// starts its container for real.
    async fn pod(&self, name: &str, container: Container, bound: bool) -> Option<TestContainer> {
        let mut spec_container = json!({"name": container.name, "image": "busybox"});
        if container.stdin == Some(true) {
            spec_container["stdin"] = json!(true);
            spec_container["stdinOnce"] = json!(container.stdin_once == Some(true));
        }
        if container.tty == Some(true) {
            spec_container["tty"] = json!(true);
        }
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [spec_container]},
        });
        if bound {
            pod["spec"]["nodeName"] = json!("stream-node");
        }
        let (code, created) = self.server.post("/api/v1/namespaces/default/pods", &pod).await;
        assert_eq!(code, 201, "{created}");
        if !bound {
            return None;
        }
        let mut running = created.clone();
        running["status"] = json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": container.name, "ready": true, "restartCount": 0, "image": "busybox",
                                   "imageID": "", "state": {"running": {}}}],
        });
        let (code, updated) =
            self.server.put(&format!("/api/v1/namespaces/default/pods/{name}/status"), &running).await;
        assert_eq!(code, 200, "{updated}");
        let id = self.containers.run(name, &container).await;
        let c = TestContainer {
            name: container.name.clone(),
            log_path: self.containers.log_path(&id),
            id,
            previous_log: None,
            tty: container.tty == Some(true),
            stdin: container.stdin == Some(true),
        };
        self.pods.add("default", name, c.clone());
        Some(c)
    }

    fn command(&self, kubectl: &str, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(kubectl);
        cmd.arg("--kubeconfig")
            .arg(self.server.data_dir.join("kubeconfig"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true);
        cmd
    }

    async fn kubectl(&self, kubectl: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.command(kubectl, args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input.write_all(text.as_bytes()).await.expect("kubectl stdin");
        }
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("kubectl output");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_exec_and_attach_through_the_api_server() {
    if !runc_available() {
        return;
    }
    let env = Env::start().await;
    let web = env.pod("web", sh("web", "echo hello from web; echo second line; exec sleep 1000"), true).await;
    let web = web.expect("bound");
    env.containers.wait_log_lines(&web.id, 2).await;
    env.pod("pending", sh("c", "true"), false).await;

    for k in kubectls() {
        let k = k.as_str();
        let out = env.kubectl(k, &["logs", "web"], None).await;
        assert_eq!((out.code, out.stdout.as_str()), (0, "hello from web\nsecond line\n"), "{k}: {}", out.stderr);
        let out = env.kubectl(k, &["logs", "web", "--tail=1"], None).await;
        assert_eq!(out.stdout, "second line\n", "{k}: {}", out.stderr);
        let out = env.kubectl(k, &["logs", "web", "--timestamps"], None).await;
        let first = out.stdout.lines().next().unwrap_or_default();
        assert!(first.ends_with(" hello from web") && first.starts_with("20"), "{k}: {:?}", out.stdout);

        let out = env.kubectl(k, &["exec", "web", "--", "printenv"], None).await;
        assert_eq!(out.code, 0, "{k}: {}", out.stderr);
        assert!(out.stdout.lines().any(|l| l == "PATH=/bin"), "{k}: {}", out.stdout);
        assert!(out.stdout.lines().any(|l| l == "HOSTNAME=stream-test"), "{k}: {}", out.stdout);

        let out = env.kubectl(k, &["exec", "web", "--", "sh", "-c", "echo to-stderr >&2; exit 3"], None).await;
        assert_eq!(out.code, 3, "{k}: kubectl exits with the command's code: {}", out.stderr);
        assert!(out.stderr.contains("to-stderr"), "{k}: {}", out.stderr);
        assert!(out.stderr.contains("command terminated with exit code 3"), "{k}: {}", out.stderr);

        let out = env.kubectl(k, &["exec", "-i", "web", "--", "cat"], Some("through stdin\n")).await;
        assert_eq!((out.code, out.stdout.as_str()), (0, "through stdin\n"), "{k}: {}", out.stderr);
        // More than one frame or pipe holds goes through whole, both ways.
        let big = "0123456789abcdef".repeat(20_000);
        let out = env.kubectl(k, &["exec", "-i", "web", "--", "cat"], Some(&big)).await;
        assert_eq!(out.code, 0, "{k}: {}", out.stderr);
        assert!(out.stdout == big, "{k}: {} bytes came back of {}", out.stdout.len(), big.len());

        let out = env.kubectl(k, &["exec", "web", "-c", "nope", "--", "true"], None).await;
        assert_ne!(out.code, 0, "{k}");
        assert!(out.stderr.contains("container nope is not valid for pod web"), "{k}: {}", out.stderr);
        let out = env.kubectl(k, &["exec", "pending", "--", "true"], None).await;
        assert_ne!(out.code, 0, "{k}");
        assert!(out.stderr.contains("pod pending does not have a host assigned"), "{k}: {}", out.stderr);
        let out = env.kubectl(k, &["logs", "pending"], None).await;
        assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{k}: no node, no logs: {}", out.stderr);

        // attach to a container that reads stdin once: kubectl's end of input ends it.
        let reader_name = format!("reader-{}", k.rsplit('.').next().unwrap_or("x").replace('/', ""));
        let reader = Container {
            stdin: Some(true),
            stdin_once: Some(true),
            ..sh("reader", "while read l; do echo got:$l; done; echo done reading")
        };
        let reader = env.pod(&reader_name, reader, true).await.expect("bound");
        let out = env.kubectl(k, &["attach", "-i", &reader_name], Some("one\ntwo\n")).await;
        assert_eq!(out.code, 0, "{k}: {}", out.stderr);
        assert!(out.stdout.contains("got:one\ngot:two\n"), "{k}: {:?} {}", out.stdout, out.stderr);
        env.containers.wait_exit(&reader.id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_follow_ends_when_the_container_does() {
    if !runc_available() {
        return;
    }
    let env = Env::start().await;
    let script = "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second";
    let counter = env.pod("counter", sh("counter", script), true).await.expect("bound");
    env.containers.wait_log_lines(&counter.id, 1).await;

    let mut follow = env.command(DISPATCHER, &["logs", "-f", "counter"]);
    let mut child = follow.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("kubectl logs -f");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.expect("in time");
    assert_eq!(first.expect("read").as_deref(), Some("first"));

    let out = env.kubectl(DISPATCHER, &["exec", "counter", "--", "touch", "/tmp/go"], None).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let second = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await.expect("in time");
    assert_eq!(second.expect("read").as_deref(), Some("second"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = tokio::time::timeout_at(deadline.into(), child.wait()).await.expect("kubectl logs -f ended");
    assert!(status.expect("status").success());
}

/// Runs `command` under `script`, so kubectl's stdin and stdout are a terminal, as when a
/// person types. The input is written at once: the terminal buffers it until kubectl reads.
async fn in_terminal(command: String, input: &'static str, until: impl Fn(&str) -> bool) -> (i32, String) {
    let mut child = tokio::process::Command::new("script")
        .args(["-qfec", command.as_str(), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("script (util-linux)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("input");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = vec![0u8; 4096];
    use tokio::io::AsyncReadExt;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stdout.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("{command}: timed out; output so far: {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(until(&text), "{command}: {text:?}");
    // Only now may the input end: an early end of input would reach the shell as ^D.
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exit in time");
    (status.expect("status").code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_with_a_terminal_exec_attach_and_run() {
    if !runc_available() {
        return;
    }
    terminal_sessions(DISPATCHER).await;
}

/// The same over SPDY/3.1: kubectl 1.27 knows no WebSocket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27_with_a_terminal_exec_attach_and_run() {
    let kubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";
    if !runc_available() || !Path::new(kubectl).exists() {
        eprintln!("SKIPPED: needs runc and {kubectl}");
        return;
    }
    terminal_sessions(kubectl).await;
}

/// exec -it, attach -it and run -i --tty --rm with `kubectl_bin`, on a terminal.
async fn terminal_sessions(kubectl_bin: &str) {
    let env = Env::start().await;
    env.pod("web", sh("web", "exec sleep 1000"), true).await.expect("bound");
    let kc = env.server.data_dir.join("kubeconfig");
    let cache = env.dir.path().join("kubectl-cache");
    let kubectl = format!("{kubectl_bin} --kubeconfig {} --cache-dir {}", kc.display(), cache.display());

    // exec -it: a shell on a terminal of its own.
    let (code, out) = in_terminal(format!("{kubectl} exec -it web -- sh"), "tty; echo exec-$((6*7))\nexit\n", |o| {
        o.contains("exec-42")
    })
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/dev/pts/"), "the shell runs on a terminal: {out:?}");

    // attach -it to a container that has a terminal and stdin.
    let shell = Container { tty: Some(true), stdin: Some(true), ..sh("shell", "exec sh") };
    let shell = env.pod("shell", shell, true).await.expect("bound");
    let (code, out) = in_terminal(format!("{kubectl} attach -it shell"), "echo attached-$((6*7))\nexit\n", |o| {
        o.contains("attached-42")
    })
    .await;
    assert_eq!(code, 0, "{out}");
    env.containers.wait_exit(&shell.id).await;

    // run -i --tty --rm: kubectl creates the pod and attaches once it runs. There is no
    // kubelet here, so the test plays it: bind the pod, start its container, report Running.
    let run = format!("{kubectl} run bb -i --tty --rm --image=busybox -- sh");
    let session = tokio::spawn(in_terminal(run, "echo run-$((6*7))\nexit\n", |o| o.contains("run-42")));
    let pod = support::eventually(Duration::from_secs(30), "kubectl run creates the pod", || async {
        let (code, pod) = env.server.get("/api/v1/namespaces/default/pods/bb").await;
        (code == 200).then_some(pod)
    })
    .await;
    let c = &pod["spec"]["containers"][0];
    assert_eq!((c["stdin"].as_bool(), c["tty"].as_bool()), (Some(true), Some(true)), "{pod}");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bb"},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": "stream-node"}});
    let (code, body) = env.server.post("/api/v1/namespaces/default/pods/bb/binding", &binding).await;
    assert_eq!(code, 201, "{body}");
    let container =
        Container { tty: Some(true), stdin: Some(true), stdin_once: c["stdinOnce"].as_bool(), ..sh("bb", "exec sh") };
    let id = env.containers.run("bb", &container).await;
    env.pods.add(
        "default",
        "bb",
        TestContainer {
            name: "bb".into(),
            log_path: env.containers.log_path(&id),
            id: id.clone(),
            previous_log: None,
            tty: true,
            stdin: true,
        },
    );
    let (_, mut running) = env.server.get("/api/v1/namespaces/default/pods/bb").await;
    running["status"] = json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "bb", "ready": true, "restartCount": 0, "image": "busybox",
                               "imageID": "", "state": {"running": {}}}],
    });
    let (code, body) = env.server.put("/api/v1/namespaces/default/pods/bb/status", &running).await;
    assert_eq!(code, 200, "{body}");
    let (code, out) = session.await.expect("session");
    assert_eq!(code, 0, "{out}");
    env.containers.wait_exit(&id).await;
    // --rm deletes the pod; a bound pod stays, marked, until its kubelet confirms.
    support::eventually(Duration::from_secs(30), "--rm deletes the pod", || async {
        let (code, pod) = env.server.get("/api/v1/namespaces/default/pods/bb").await;
        (code == 404 || pod["metadata"]["deletionTimestamp"].is_string()).then_some(())
    })
    .await;
}
