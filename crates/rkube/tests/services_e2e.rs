//! Services through the nftables proxy on a 2-node `rkube up` cluster with real nginx pods
//! (issue 7's acceptance 1), driven with the real kubectl; nginx's access log (the pod's
//! stdout) tells which backend served a request and what client address it saw. Needs root.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cluster::{Cluster, text};

const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/manifests");

/// Requests each pod's access log has recorded, by pod name, and the client addresses seen.
fn served(c: &Cluster, pods: &[Value]) -> HashMap<String, Vec<String>> {
    pods.iter()
        .map(|p| {
            let name = p["metadata"]["name"].as_str().expect("name").to_owned();
            let log = c.kubectl_ok(&["logs", &name]);
            let clients = log
                .lines()
                .filter(|l| l.contains("\"GET /"))
                .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
                .collect();
            (name, clients)
        })
        .collect()
}

fn counts(before: &HashMap<String, Vec<String>>, after: &HashMap<String, Vec<String>>) -> HashMap<String, usize> {
    after.iter().map(|(k, v)| (k.clone(), v.len() - before.get(k).map_or(0, Vec::len))).collect()
}

/// Runs `n` sequential requests from a node with curl, each a new connection.
fn hammer(c: &Cluster, node: &str, url: &str, n: usize) -> usize {
    let script =
        format!("ok=0; for i in $(seq {n}); do curl -s -o /dev/null -m 2 {url} && ok=$((ok+1)); done; echo $ok");
    let out = c.node_exec(node, &["sh", "-c", &script]);
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[test]
fn cluster_ip_node_port_affinity_hairpin_and_local_policy() {
    let c = Cluster::up(2, &[]);
    c.kubectl_ok(&["apply", "-f", &format!("{MANIFESTS}/run-my-nginx.yaml")]);
    let pods = c.ready_pods("run=my-nginx", 2, Duration::from_secs(60));
    c.kubectl_ok(&["expose", "deployment/my-nginx"]);
    let ip = c.kubectl_ok(&["get", "svc", "my-nginx", "-o", "jsonpath={.spec.clusterIP}"]);
    let url = format!("http://{ip}/");
    // Wait for the rules: the first request that succeeds.
    c.eventually(Duration::from_secs(20), "the ClusterIP to answer", || {
        let out = c.node_exec(&c.node(1), &["curl", "-s", "-m", "2", &url]);
        text(&out).contains("Welcome to nginx!").then_some(())
    });

    // 1,000 connections through the ClusterIP reach both pods, roughly evenly.
    let before = served(&c, &pods);
    let ok = hammer(&c, &c.node(1), &url, 500) + hammer(&c, &c.node(2), &url, 500);
    assert_eq!(ok, 1000);
    let got = counts(&before, &served(&c, &pods));
    let spread: Vec<usize> = got.values().copied().collect();
    assert_eq!(spread.iter().sum::<usize>(), 1000, "{got:?}");
    assert!(spread.iter().all(|n| *n >= 350), "uneven balancing: {got:?}");

    // Hairpin: a pod reaches itself through its own Service.
    let first = pods[0]["metadata"]["name"].as_str().expect("name").to_owned();
    let before = served(&c, &pods);
    let out = c.kubectl(&[
        "exec",
        &first,
        "--",
        "sh",
        "-c",
        &format!("for i in $(seq 30); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 80 >/dev/null; done"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let got = counts(&before, &served(&c, &pods));
    assert!(got[&first] > 0, "the pod never reached itself through its Service: {got:?}");

    // ClientIP affinity pins one client to one pod.
    c.kubectl_ok(&["patch", "svc", "my-nginx", "-p", r#"{"spec":{"sessionAffinity":"ClientIP"}}"#]);
    c.eventually(Duration::from_secs(20), "affinity to take effect", || {
        let before = served(&c, &pods);
        hammer(&c, &c.node(1), &url, 20);
        let got = counts(&before, &served(&c, &pods));
        (got.values().filter(|n| **n > 0).count() == 1).then_some(())
    });

    // NodePort on every node's address, from the outside namespace; ETP Local keeps the
    // client's address.
    c.kubectl_ok(&[
        "patch",
        "svc",
        "my-nginx",
        "-p",
        r#"{"spec":{"type":"NodePort","sessionAffinity":"None","externalTrafficPolicy":"Local"}}"#,
    ]);
    let port = c.kubectl_ok(&["get", "svc", "my-nginx", "-o", "jsonpath={.spec.ports[0].nodePort}"]);
    for node in [c.node(1), c.node(2)] {
        let n = c.get_json(&["node", &node]);
        let addr = n["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
            .and_then(|a| a["address"].as_str())
            .expect("InternalIP")
            .to_owned();
        let nurl = format!("http://{addr}:{port}/");
        let before = served(&c, &pods);
        c.eventually(Duration::from_secs(20), &format!("NodePort on {node}"), || {
            let out = c.rkube(&["outside"]).args(["--", "curl", "-s", "-m", "2", &nurl]).output().ok()?;
            text(&out).contains("Welcome to nginx!").then_some(())
        });
        let after = served(&c, &pods);
        // The pod on this node served it and saw the outside client's own address.
        let local = pods.iter().find(|p| p["spec"]["nodeName"] == node.as_str()).expect("a pod on each node");
        let name = local["metadata"]["name"].as_str().expect("name");
        let new: Vec<&String> = after[name].iter().skip(before[name].len()).collect();
        assert!(new.iter().any(|client| client.as_str() == "192.168.240.200"), "{node}: clients {new:?}");
    }

    // A Service without endpoints refuses at once.
    c.kubectl_ok(&["create", "service", "clusterip", "empty", "--tcp=80:80"]);
    let empty = c.kubectl_ok(&["get", "svc", "empty", "-o", "jsonpath={.spec.clusterIP}"]);
    c.eventually(Duration::from_secs(20), "a refused connection", || {
        let t = Instant::now();
        let out = c.node_exec(&c.node(1), &["curl", "-s", "-m", "5", &format!("http://{empty}/")]);
        // curl's exit code 7 is "failed to connect" (refused), 28 a timeout.
        (out.status.code() == Some(7) && t.elapsed() < Duration::from_secs(2)).then_some(())
    });

    // After a pod is deleted, once its EndpointSlice changes, no new connection goes to it.
    c.kubectl_ok(&["patch", "svc", "my-nginx", "-p", r#"{"spec":{"type":"ClusterIP","externalTrafficPolicy":null}}"#]);
    let victim = pods[1]["metadata"]["name"].as_str().expect("name").to_owned();
    let victim_ip = pods[1]["status"]["podIP"].as_str().expect("ip").to_owned();
    c.kubectl_ok(&["delete", "pod", &victim, "--wait=false"]);
    c.eventually(Duration::from_secs(30), "the EndpointSlice without the deleted pod", || {
        let slices = c.get_json(&["endpointslices", "-l", "kubernetes.io/service-name=my-nginx"]);
        let has = slices["items"].as_array()?.iter().any(|s| {
            s["endpoints"].as_array().is_some_and(|eps| {
                eps.iter().any(|e| e["addresses"][0] == victim_ip.as_str() && e["conditions"]["ready"] == true)
            })
        });
        (!has).then_some(())
    });
    let out = c.node_exec(
        &c.node(1),
        &[
            "sh",
            "-c",
            &format!(
                "for i in $(seq 50); do curl -s -o /dev/null -m 2 -w '%{{remote_ip}} %{{http_code}}\\n' {url}; done"
            ),
        ],
    );
    let failures = String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.ends_with(" 200")).count();
    assert_eq!(failures, 0, "connections failed after the endpoint went away: {}", text(&out));
}
