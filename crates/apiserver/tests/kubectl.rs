//! The real kubectl against the real API server: the verbs users type, on the versions the
//! dispatcher picks, with default (strict) validation and a fresh HOME per cluster.

mod support;

use std::time::Duration;

use support::{Cluster, DISPATCHER, eventually, pinned};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-nginx
spec:
  selector:
    matchLabels:
      run: my-nginx
  replicas: 2
  template:
    metadata:
      labels:
        run: my-nginx
    spec:
      containers:
      - name: my-nginx
        image: nginx
        ports:
        - containerPort: 80
"#;

/// Every kubectl this suite runs: the dispatcher (which picks 1.33 from our /version) and
/// the pinned oldest and newest.
fn kubectls() -> Vec<String> {
    vec![DISPATCHER.to_owned(), pinned(27), pinned(31), pinned(33)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_get_describe_and_delete() {
    for k in kubectls() {
        let c = Cluster::start().await;
        let k = k.as_str();
        let file = c.write("deploy.yaml", DEPLOYMENT);
        let file = file.to_str().expect("path");

        let out = c.ok(k, &["apply", "-f", file]).await;
        assert!(out.contains("deployment.apps/my-nginx created"), "{k}: {out}");
        // Apply again with a change: a strategic merge patch.
        let changed = c.write(
            "deploy2.yaml",
            &DEPLOYMENT.replace("replicas: 2", "replicas: 3").replace("containerPort: 80", "containerPort: 8080"),
        );
        let out = c.ok(k, &["apply", "-f", changed.to_str().expect("path")]).await;
        assert!(out.contains("deployment.apps/my-nginx configured"), "{k}: {out}");
        let json = c.ok(k, &["get", "deployment", "my-nginx", "-o", "json"]).await;
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["spec"]["replicas"], 3, "{k}");
        let ports = &v["spec"]["template"]["spec"]["containers"][0]["ports"];
        assert_eq!(ports.as_array().map(Vec::len), Some(1), "{k}: the old port is removed: {ports}");
        assert_eq!(ports[0]["containerPort"], 8080, "{k}");
        // An unchanged apply changes nothing.
        let out = c.ok(k, &["apply", "-f", changed.to_str().expect("path")]).await;
        assert!(out.contains("unchanged"), "{k}: {out}");

        let table = c.ok(k, &["get", "deployments"]).await;
        let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
        assert_eq!(header, ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], "{k}: {table}");
        let wide = c.ok(k, &["get", "deployments", "-o", "wide"]).await;
        assert!(wide.lines().next().unwrap_or("").contains("SELECTOR"), "{k}: {wide}");
        assert!(wide.contains("run=my-nginx"), "{k}: {wide}");

        let yaml = c.ok(k, &["get", "deployment", "my-nginx", "-o", "yaml"]).await;
        assert!(yaml.contains("kubectl.kubernetes.io/last-applied-configuration"), "{k}");

        let described = c.ok(k, &["describe", "deployment", "my-nginx"]).await;
        assert!(described.contains("Name:") && described.contains("my-nginx"), "{k}: {described}");
        assert!(described.contains("Selector:") && described.contains("run=my-nginx"), "{k}: {described}");

        let out = c.ok(k, &["delete", "deployment", "my-nginx"]).await;
        assert!(out.contains("deleted"), "{k}: {out}");
        let err = c.fails(k, &["get", "deployment", "my-nginx"]).await;
        assert!(err.contains("NotFound") || err.contains("not found"), "{k}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_secrets_and_configmaps_on_every_version() {
    // kubectl 1.32+ sends these as protobuf; older versions as JSON.
    for k in kubectls() {
        let c = Cluster::start().await;
        let k = k.as_str();
        // A real self-signed pair, made as the tutorial makes it: kubectl parses both.
        let key = c.dir.path().join("tls.key");
        let crt = c.dir.path().join("tls.crt");
        let status = std::process::Command::new("openssl")
            .args(["req", "-x509", "-nodes", "-days", "365", "-newkey", "rsa:2048", "-subj", "/CN=my-nginx/O=my-nginx"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run openssl");
        assert!(status.success(), "openssl req failed");
        let conf = c.write("default.conf", "server { listen 80; }\n");
        let out = c
            .ok(
                k,
                &[
                    "create",
                    "secret",
                    "tls",
                    "nginxsecret",
                    "--key",
                    key.to_str().expect("p"),
                    "--cert",
                    crt.to_str().expect("p"),
                ],
            )
            .await;
        assert!(out.contains("secret/nginxsecret created"), "{k}: {out}");
        let out = c.ok(k, &["create", "configmap", "nginxconfigmap", "--from-file", conf.to_str().expect("p")]).await;
        assert!(out.contains("configmap/nginxconfigmap created"), "{k}: {out}");

        let secrets = c.ok(k, &["get", "secrets"]).await;
        let row = secrets.lines().find(|l| l.starts_with("nginxsecret")).unwrap_or_else(|| panic!("{k}: {secrets}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..3], ["nginxsecret", "kubernetes.io/tls", "2"], "{k}");
        let cm = c.ok(k, &["get", "configmap", "nginxconfigmap", "-o", "jsonpath={.data.default\\.conf}"]).await;
        assert_eq!(cm, "server { listen 80; }\n", "{k}");

        let err =
            c.fails(k, &["create", "configmap", "nginxconfigmap", "--from-file", conf.to_str().expect("p")]).await;
        assert!(err.contains("configmaps \"nginxconfigmap\" already exists"), "{k}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_label_annotate_patch_scale() {
    let c = Cluster::start().await;
    let k = DISPATCHER;
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        c.ok(k, &["create", "configmap", name, "--from-literal", "x=1"]).await;
        c.ok(k, &["label", "configmap", name, &format!("tier={tier}")]).await;
    }
    let web = c.ok(k, &["get", "configmaps", "-l", "tier=web", "-o", "name"]).await;
    assert_eq!(web.lines().collect::<Vec<_>>(), ["configmap/a", "configmap/b"]);
    let not_web = c.ok(k, &["get", "configmaps", "-l", "tier!=web,tier", "-o", "name"]).await;
    assert_eq!(not_web.trim(), "configmap/c");
    let by_name = c.ok(k, &["get", "configmaps", "--field-selector", "metadata.name=b", "-o", "name"]).await;
    assert_eq!(by_name.trim(), "configmap/b");
    let err = c.fails(k, &["get", "configmaps", "--field-selector", "spec.bogus=1"]).await;
    assert!(err.contains("field label not supported"), "{err}");

    c.ok(k, &["annotate", "configmap", "a", "note=hello"]).await;
    let note = c.ok(k, &["get", "configmap", "a", "-o", "jsonpath={.metadata.annotations.note}"]).await;
    assert_eq!(note, "hello");

    // The three patch types.
    c.ok(k, &["patch", "configmap", "a", "--type", "merge", "-p", r#"{"data":{"y":"2"}}"#]).await;
    c.ok(k, &["patch", "configmap", "a", "--type", "json", "-p", r#"[{"op":"remove","path":"/data/x"}]"#]).await;
    c.ok(k, &["patch", "configmap", "a", "-p", r#"{"data":{"z":"3"}}"#]).await;
    let data = c.ok(k, &["get", "configmap", "a", "-o", "jsonpath={.data}"]).await;
    let data: serde_json::Value = serde_json::from_str(&data).expect("json");
    assert_eq!(data, serde_json::json!({"y": "2", "z": "3"}));

    let file = c.write("deploy.yaml", DEPLOYMENT);
    c.ok(k, &["apply", "-f", file.to_str().expect("p")]).await;
    let out = c.ok(k, &["scale", "deployment", "my-nginx", "--replicas=5"]).await;
    assert!(out.contains("scaled"), "{out}");
    let replicas = c.ok(k, &["get", "deployment", "my-nginx", "-o", "jsonpath={.spec.replicas}"]).await;
    assert_eq!(replicas, "5");
    // A strategic merge patch on a keyed list, as `kubectl set image` sends.
    c.ok(k, &["set", "image", "deployment/my-nginx", "my-nginx=nginx:1.27"]).await;
    let image =
        c.ok(k, &["get", "deployment", "my-nginx", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]).await;
    assert_eq!(image, "nginx:1.27");
    let generation = c.ok(k, &["get", "deployment", "my-nginx", "-o", "jsonpath={.metadata.generation}"]).await;
    assert_eq!(generation, "3", "scale and set image each bump the generation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_with_an_editor_script() {
    let c = Cluster::start().await;
    let k = DISPATCHER;
    c.ok(k, &["create", "configmap", "edited", "--from-literal", "colour=red"]).await;
    let script = c.write("editor.sh", "#!/bin/sh\nsed -i 's/colour: red/colour: blue/' \"$1\"\n");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let out = c.run_with(k, &["edit", "configmap", "edited"], &[("EDITOR", script.to_str().expect("p"))], None).await;
    assert!(out.status.success(), "edit failed: {}", String::from_utf8_lossy(&out.stderr));
    let colour = c.ok(k, &["get", "configmap", "edited", "-o", "jsonpath={.data.colour}"]).await;
    assert_eq!(colour, "blue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_changes() {
    let c = Cluster::start().await;
    let k = DISPATCHER;
    // With nothing to list, kubectl prints no header; start from one object.
    c.ok(k, &["create", "configmap", "first", "--from-literal", "a=1"]).await;
    let mut cmd = tokio::process::Command::new(k);
    cmd.args(["get", "configmaps", "-w", "--output-watch-events"])
        .env_clear()
        .env("HOME", c.home.path())
        .env("KUBECONFIG", c.kubeconfig())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn kubectl -w");
    let stdout = child.stdout.take().expect("stdout");
    let lines = std::sync::Arc::new(line_collector::Lines::default());
    let reader = tokio::spawn(line_collector::collect(stdout, lines.clone()));
    // Wait until the watch is established (its header is printed), then change things.
    eventually(Duration::from_secs(20), "the watch to start", || {
        let lines = lines.clone();
        async move { lines.contains("EVENT").then_some(()) }
    })
    .await;
    c.ok(k, &["create", "configmap", "watched", "--from-literal", "a=1"]).await;
    c.ok(k, &["label", "configmap", "watched", "x=y"]).await;
    c.ok(k, &["delete", "configmap", "watched"]).await;
    for event in ["ADDED", "MODIFIED", "DELETED"] {
        eventually(Duration::from_secs(20), event, || {
            let lines = lines.clone();
            async move { lines.any(|l| l.starts_with(event) && l.contains("watched")).then_some(()) }
        })
        .await;
    }
    child.kill().await.expect("kill kubectl -w");
    reader.abort();
}

/// A line collector for a child's stdout.
mod line_collector {
    use std::sync::Mutex;

    use tokio::io::{AsyncBufReadExt, BufReader};

    #[derive(Default)]
    pub struct Lines(Mutex<Vec<String>>);

    impl Lines {
        pub fn contains(&self, s: &str) -> bool {
            self.any(|l| l.contains(s))
        }
        pub fn any(&self, f: impl Fn(&str) -> bool) -> bool {
            self.0.lock().map(|v| v.iter().any(|l| f(l))).unwrap_or(false)
        }
    }

    pub async fn collect(out: tokio::process::ChildStdout, lines: std::sync::Arc<Lines>) {
        let mut reader = BufReader::new(out).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(mut v) = lines.0.lock() {
                v.push(line);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_tracks_owners_and_conflicts() {
    for k in [DISPATCHER.to_owned(), pinned(27)] {
        let c = Cluster::start().await;
        let k = k.as_str();
        let file = c.write("deploy.yaml", DEPLOYMENT);
        let file = file.to_str().expect("path");
        let out = c.ok(k, &["apply", "--server-side", "-f", file]).await;
        assert!(out.contains("deployment.apps/my-nginx serverside-applied"), "{k}: {out}");
        let yaml = c.ok(k, &["get", "deployment", "my-nginx", "-o", "yaml", "--show-managed-fields"]).await;
        assert!(yaml.contains("manager: kubectl") && yaml.contains("operation: Apply"), "{k}: {yaml}");

        // Another writer takes spec.replicas; re-applying a different value now conflicts.
        c.ok(k, &["scale", "deployment", "my-nginx", "--replicas=4"]).await;
        let changed = c.write("deploy3.yaml", &DEPLOYMENT.replace("replicas: 2", "replicas: 3"));
        let changed = changed.to_str().expect("path");
        let err = c.fails(k, &["apply", "--server-side", "-f", changed]).await;
        assert!(err.contains("conflict") && err.contains(".spec.replicas"), "{k}: {err}");
        c.ok(k, &["apply", "--server-side", "--force-conflicts", "-f", changed]).await;
        let replicas = c.ok(k, &["get", "deployment", "my-nginx", "-o", "jsonpath={.spec.replicas}"]).await;
        assert_eq!(replicas, "3", "{k}");

        // Dropping a field from the applied configuration removes it from the object.
        let without_port = c.write(
            "deploy4.yaml",
            &DEPLOYMENT
                .replace("replicas: 2", "replicas: 3")
                .replace("        ports:\n        - containerPort: 80\n", ""),
        );
        c.ok(k, &["apply", "--server-side", "-f", without_port.to_str().expect("path")]).await;
        let ports = c
            .ok(k, &["get", "deployment", "my-nginx", "-o", "jsonpath={.spec.template.spec.containers[0].ports}"])
            .await;
        assert_eq!(ports, "", "{k}: the port the applier dropped is gone");
    }
}
