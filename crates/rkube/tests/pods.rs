//! Pods as real containers on an `rkube up` cluster, driven with the real kubectl: the
//! tutorial's first steps, volumes, failures and restarts (issue 6's acceptance). Needs root,
//! runc and the images `images/build.sh` makes.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::cluster::{Cluster, is_ready, text};

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/manifests");

fn manifest(name: &str) -> String {
    format!("{MANIFESTS}/{name}")
}

fn pod_ip(pod: &Value) -> String {
    pod["status"]["podIP"].as_str().expect("podIP").to_owned()
}

fn name(pod: &Value) -> String {
    pod["metadata"]["name"].as_str().expect("name").to_owned()
}

/// Acceptance 1: `kubectl apply -f run-my-nginx.yaml` on two nodes, pod IPs reachable from
/// both nodes, the discovery variables, logs, and `kubectl run -i --tty`.
#[test]
fn tutorial_pods_run_on_two_nodes_and_reach_each_other() {
    let c = Cluster::up(2, &[]);
    c.kubectl_ok(&["apply", "-f", &manifest("run-my-nginx.yaml")]);
    let pods = c.ready_pods("run=my-nginx", 2, Duration::from_secs(60));
    let nodes: Vec<&str> = pods.iter().map(|p| p["spec"]["nodeName"].as_str().unwrap_or("")).collect();
    assert_ne!(nodes[0], nodes[1], "the two replicas share a node");
    let ips: Vec<String> = pods.iter().map(pod_ip).collect();
    assert_ne!(ips[0], ips[1]);
    for node in [c.node(1), c.node(2)] {
        for ip in &ips {
            let out = c.node_exec(&node, &["curl", "-s", "-m", "5", &format!("http://{ip}/")]);
            assert!(text(&out).contains("Welcome to nginx!"), "{node} -> {ip}: {}", text(&out));
        }
    }

    let env = c.kubectl_ok(&["exec", &name(&pods[0]), "--", "printenv"]);
    assert!(env.contains("KUBERNETES_SERVICE_HOST=10.96.0.1"), "{env}");
    assert!(!env.contains("MY_NGINX_SERVICE_HOST"), "{env}");

    // The tutorial: create the Service, then recreate the pods so they see it.
    c.kubectl_ok(&["apply", "-f", &manifest("nginx-svc.yaml")]);
    let cluster_ip = c.kubectl_ok(&["get", "svc", "my-nginx", "-o", "jsonpath={.spec.clusterIP}"]);
    c.kubectl_ok(&["scale", "deployment", "my-nginx", "--replicas=0"]);
    c.eventually(Duration::from_secs(60), "old pods gone", || c.pods("run=my-nginx").is_empty().then_some(()));
    c.kubectl_ok(&["scale", "deployment", "my-nginx", "--replicas=2"]);
    let pods = c.ready_pods("run=my-nginx", 2, Duration::from_secs(60));
    let env = c.kubectl_ok(&["exec", &name(&pods[0]), "--", "printenv"]);
    assert!(env.contains(&format!("MY_NGINX_SERVICE_HOST={cluster_ip}")), "{env}");
    assert!(env.contains("KUBERNETES_SERVICE_PORT=443"), "{env}");

    let logs = c.kubectl_ok(&["logs", &name(&pods[0])]);
    assert!(logs.contains("nginx/"), "{logs}");

    // kubectl attaches to the new pod's terminal and types into it.
    let out = c.kubectl_stdin(
        &["run", "-i", "--tty", "bb", "--image=busybox", "--restart=Never", "--", "sh"],
        "echo answer-$((6*7))\nexit\n",
    );
    assert!(text(&out).contains("answer-42"), "{}", text(&out));
}

/// Acceptance 2: the tutorial's TLS Secret and ConfigMap mounted into nginx.
#[test]
fn tls_secret_and_configmap_volumes() {
    let c = Cluster::up(1, &[]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let (key, crt) = (tmp.path().join("nginx.key"), tmp.path().join("nginx.crt"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "365", "-newkey", "rsa:2048", "-subj", "/CN=my-nginx/O=my-nginx"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", text(&out));
    let (key_s, crt_s) = (key.to_str().expect("path"), crt.to_str().expect("path"));
    c.kubectl_ok(&["create", "secret", "tls", "nginxsecret", "--key", key_s, "--cert", crt_s]);
    c.kubectl_ok(&["create", "configmap", "nginxconfigmap", &format!("--from-file={}", manifest("default.conf"))]);
    c.kubectl_ok(&["apply", "-f", &manifest("nginx-secure-app.yaml")]);
    let pods = c.ready_pods("run=my-nginx", 1, Duration::from_secs(60));
    let pod = name(&pods[0]);

    let mounted = c.kubectl_ok(&["exec", &pod, "--", "cat", "/etc/nginx/ssl/tls.crt"]);
    assert_eq!(mounted, std::fs::read_to_string(&crt).expect("crt"));
    let mounted_key = c.kubectl_ok(&["exec", &pod, "--", "cat", "/etc/nginx/ssl/tls.key"]);
    assert_eq!(mounted_key, std::fs::read_to_string(&key).expect("key"));
    let modes = c.kubectl_ok(&[
        "exec",
        &pod,
        "--",
        "stat",
        "-L",
        "-c",
        "%a %n",
        "/etc/nginx/ssl/tls.crt",
        "/etc/nginx/ssl/tls.key",
    ]);
    assert_eq!(modes, "644 /etc/nginx/ssl/tls.crt\n644 /etc/nginx/ssl/tls.key\n");
    let mounts = c.kubectl_ok(&["exec", &pod, "--", "cat", "/proc/mounts"]);
    assert!(mounts.lines().any(|l| l.contains("/etc/nginx/ssl tmpfs")), "secret not on tmpfs: {mounts}");

    // The ConfigMap replaced nginx's default.conf, so nginx serves HTTPS on 443.
    let ip = pod_ip(&pods[0]);
    let out = c.node_exec(&c.node(1), &["curl", "-sk", "-m", "5", &format!("https://{ip}/")]);
    assert!(text(&out).contains("Welcome to nginx!"), "https: {}", text(&out));

    // An update of the ConfigMap reaches the running pod.
    c.kubectl_ok(&["patch", "configmap", "nginxconfigmap", "--type=merge", "-p", r#"{"data":{"marker":"two"}}"#]);
    c.eventually(Duration::from_secs(40), "the ConfigMap update in the pod", || {
        let out = c.kubectl(&["exec", &pod, "--", "cat", "/etc/nginx/conf.d/marker"]);
        (out.status.success() && String::from_utf8_lossy(&out.stdout) == "two").then_some(())
    });
}

fn container_status(c: &Cluster, pod: &str) -> Value {
    let p = c.get_json(&["pod", pod]);
    p["status"]["containerStatuses"][0].clone()
}

fn events_for(c: &Cluster, pod: &str) -> String {
    c.kubectl_ok(&["get", "events", "--field-selector", &format!("involvedObject.name={pod}")])
}

/// Acceptance 3 and 6: crash loops with growing delays, readiness, an agent killed and
/// restarted, bad pods, and a node that stops.
#[test]
fn failures_restarts_and_a_node_that_stops() {
    let c = Cluster::up(2, &["--crashloop-backoff=1"]);
    c.kubectl_ok(&["apply", "-f", &manifest("run-my-nginx.yaml")]);
    let before = c.ready_pods("run=my-nginx", 2, Duration::from_secs(60));

    let bad = r#"
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers: [{name: c, image: busybox, command: ["sh", "-c", "echo dying; exit 3"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  containers: [{name: c, image: "example.com/nope:1", imagePullPolicy: Never}]
---
apiVersion: v1
kind: Pod
metadata: {name: nocmd}
spec:
  containers: [{name: c, image: busybox, command: ["/no/such/binary"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: nosecret}
spec:
  volumes: [{name: s, secret: {secretName: missing}}]
  containers: [{name: c, image: busybox, command: ["sleep", "1000"], volumeMounts: [{name: s, mountPath: /s}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: badcap}
spec:
  containers: [{name: c, image: busybox, command: ["sleep", "1000"], securityContext: {capabilities: {add: ["NOT_A_CAP"]}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: notready}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sleep", "1000"]
    readinessProbe: {exec: {command: ["false"]}, periodSeconds: 1}
"#;
    let out = c.kubectl_stdin(&["apply", "-f", "-"], bad);
    assert!(out.status.success(), "{}", text(&out));

    // A crashing container restarts with growing delays: 1 s, 2 s, 4 s with this agent.
    let mut seen: Vec<(i64, Instant)> = Vec::new();
    c.eventually(Duration::from_secs(60), "four restarts of the crashing container", || {
        let count = container_status(&c, "crasher")["restartCount"].as_i64().unwrap_or(0);
        if seen.last().is_none_or(|(n, _)| *n != count) {
            seen.push((count, Instant::now()));
        }
        (count >= 4).then_some(())
    });
    let at = |n: i64| seen.iter().find(|(c, _)| *c == n).map(|(_, t)| *t).expect("restart observed");
    let (first, later) = (at(2) - at(1), at(4) - at(3));
    assert!(later > first * 2, "delays do not grow: {first:?} then {later:?} ({seen:?})");
    let status = container_status(&c, "crasher");
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 3, "{status}");
    let reason = c.eventually(Duration::from_secs(10), "CrashLoopBackOff", || {
        let s = container_status(&c, "crasher");
        let r = s["state"]["waiting"]["reason"].as_str().map(str::to_owned);
        r.filter(|r| r == "CrashLoopBackOff")
    });
    assert_eq!(reason, "CrashLoopBackOff");
    assert!(events_for(&c, "crasher").contains("Back-off restarting failed container"));

    // Bad pods get a reason and a message in their status, and events.
    let waiting = |pod: &str, reason: &str| {
        c.eventually(Duration::from_secs(30), &format!("{pod} waiting with {reason}"), || {
            let s = container_status(&c, pod);
            (s["state"]["waiting"]["reason"] == reason).then(|| s["state"]["waiting"]["message"].clone())
        })
    };
    let m = waiting("noimage", "ErrImageNeverPull");
    assert!(m.as_str().is_some_and(|m| m.contains("example.com/nope:1")), "{m}");
    let m = waiting("nosecret", "ContainerCreating");
    assert!(m.as_str().is_some_and(|m| m.contains("secret \"missing\" not found")), "{m}");
    assert!(events_for(&c, "nosecret").contains("FailedMount"));
    let m = waiting("badcap", "CreateContainerConfigError");
    assert!(m.as_str().is_some_and(|m| m.contains("NOT_A_CAP")), "{m}");
    let s = c.eventually(Duration::from_secs(30), "nocmd's start error", || {
        let s = container_status(&c, "nocmd");
        (s["lastState"]["terminated"]["reason"] == "StartError").then_some(s)
    });
    let message = s["lastState"]["terminated"]["message"].as_str().unwrap_or("");
    assert!(message.contains("/no/such/binary"), "{s}");

    // A failing readiness probe: running, never Ready.
    c.eventually(Duration::from_secs(30), "notready running", || {
        let s = container_status(&c, "notready");
        s["state"]["running"].is_object().then_some(())
    });
    let p = c.get_json(&["pod", "notready"]);
    assert!(!is_ready(&p), "{p}");
    assert!(c.eventually(Duration::from_secs(20), "an Unhealthy event", || {
        let e = events_for(&c, "notready");
        e.contains("Readiness probe failed").then_some(true)
    }));

    // The healthy pods kept serving all along.
    for pod in &before {
        let node = pod["spec"]["nodeName"].as_str().expect("node").to_owned();
        let out = c.node_exec(&node, &["curl", "-s", "-m", "5", &format!("http://{}/", pod_ip(pod))]);
        assert!(text(&out).contains("Welcome to nginx!"), "{}", text(&out));
    }

    // SIGKILL the agent of node 1 and start it again: its pods keep running, unchanged.
    let pid: i32 = std::fs::read_to_string(c.data().join("run").join(format!("{}.pid", c.node(1))))
        .expect("agent pid")
        .trim()
        .parse()
        .expect("pid");
    let status = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().expect("kill");
    assert!(status.success());
    let out = c.rkube(&["node", "start", &c.node(1)]).output().expect("node start");
    assert!(out.status.success(), "{}", text(&out));
    let on_node1: Vec<&Value> = before.iter().filter(|p| p["spec"]["nodeName"] == c.node(1).as_str()).collect();
    // Give the restarted agent time to adopt and report: restart counts and ids stay.
    c.eventually(Duration::from_secs(30), "node 1 Ready again", || {
        let n = c.get_json(&["node", &c.node(1)]);
        let ready = n["status"]["conditions"].as_array()?.iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(())
    });
    for pod in &on_node1 {
        let now = c.get_json(&["pod", &name(pod)]);
        assert_eq!(now["metadata"]["uid"], pod["metadata"]["uid"]);
        let (a, b) = (&now["status"]["containerStatuses"][0], &pod["status"]["containerStatuses"][0]);
        assert_eq!(a["restartCount"], b["restartCount"]);
        assert_eq!(a["containerID"], b["containerID"]);
        assert!(is_ready(&now));
        let out = c.node_exec(&c.node(2), &["curl", "-s", "-m", "5", &format!("http://{}/", pod_ip(pod))]);
        assert!(text(&out).contains("Welcome to nginx!"), "{}", text(&out));
    }
    // The adopted containers still answer exec.
    for pod in &on_node1 {
        c.kubectl_ok(&["exec", &name(pod), "--", "true"]);
    }

    // Stop node 2: it goes NotReady and its nginx comes back on node 1.
    let out = c.rkube(&["node", "stop", &c.node(2)]).output().expect("node stop");
    assert!(out.status.success(), "{}", text(&out));
    c.eventually(Duration::from_secs(30), "node 2 NotReady", || {
        let n = c.get_json(&["node", &c.node(2)]);
        let cond = n["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "Ready")?.clone();
        (cond["status"] != "True").then_some(())
    });
    let pods = c.eventually(Duration::from_secs(90), "both replicas on node 1", || {
        let pods: Vec<Value> =
            c.pods("run=my-nginx").into_iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).collect();
        (pods.len() == 2 && pods.iter().all(|p| p["spec"]["nodeName"] == c.node(1).as_str() && is_ready(p)))
            .then_some(pods)
    });
    for pod in &pods {
        let out = c.node_exec(&c.node(1), &["curl", "-s", "-m", "5", &format!("http://{}/", pod_ip(pod))]);
        assert!(text(&out).contains("Welcome to nginx!"), "{}", text(&out));
    }
}
