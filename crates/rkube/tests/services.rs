//! Service IP and NodePort allocation through the real server: exhaustion, concurrency,
//! crash recovery, type changes and invalid specs.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, eventually};

const SVCS: &str = "/api/v1/namespaces/default/services";

fn svc(name: &str, ty: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
           "spec": {"type": ty, "selector": {"app": name}, "ports": [{"port": 80}]}})
}

fn reason(v: &Value) -> &str {
    v["reason"].as_str().unwrap_or("")
}

async fn all_services(s: &Server) -> Vec<Value> {
    let (code, list) = s.get("/api/v1/services").await;
    assert_eq!(code, 200);
    list["items"].as_array().cloned().unwrap_or_default()
}

/// Every Service's IP and node ports are unique, and the allocators hold exactly those.
async fn assert_consistent(s: &Server) {
    let services = all_services(s).await;
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for svc in &services {
        if let Some(ip) = svc["spec"]["clusterIP"].as_str().filter(|ip| *ip != "None") {
            assert!(ips.insert(ip.to_owned()), "IP {ip} is used twice");
        }
        for p in svc["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(np) = p["nodePort"].as_u64() {
                assert!(ports.insert(np), "node port {np} is used twice");
            }
        }
    }
    let (want_ips, want_ports) = (ips.len() as f64, ports.len() as f64);
    eventually(Duration::from_secs(20), "the allocators to match the Services", || async {
        let got_ips = s.metric("kube_apiserver_clusterip_allocator_allocated_ips").await?;
        let got_ports = s.metric("kube_apiserver_nodeport_allocator_allocated_ports").await?;
        (got_ips == want_ips && got_ports == want_ports).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhaustion_is_a_clear_422() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A /28 has 14 usable addresses; `kubernetes` and `kube-dns` take two of them.
    let s = Server::start(dir.path(), &["--service-cidr", "10.100.0.0/28"]);
    for i in 0..12 {
        let (code, body) = s.post(SVCS, &svc(&format!("s{i}"), "ClusterIP")).await;
        assert_eq!(code, 201, "{body}");
    }
    let (code, body) = s.post(SVCS, &svc("one-too-many", "ClusterIP")).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(reason(&body), "Invalid");
    let message = body["message"].as_str().unwrap_or("");
    assert!(message.contains("range 10.100.0.0/28 is full"), "{message}");
    // Deleting one frees its address for the next.
    assert_eq!(s.delete(&format!("{SVCS}/s3")).await, 200);
    let (code, body) = s.post(SVCS, &svc("one-too-many", "ClusterIP")).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_share_an_ip_or_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Arc::new(Server::start(dir.path(), &[]));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move { s.post(SVCS, &svc(&format!("c{i}"), "NodePort")).await }));
    }
    for t in tasks {
        let (code, body) = t.await.expect("task");
        assert_eq!(code, 201, "{body}");
    }
    assert_eq!(all_services(&s).await.len(), 64 + 2);
    assert_consistent(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_burst_leaves_no_leak_and_no_double_allocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flags = ["--service-repair-interval", "0.1"];
    let mut s = Server::start(dir.path(), &flags);
    let client = s.client.clone();
    let url = s.url.clone();
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..32 {
        let (client, url, acked) = (client.clone(), url.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let body = svc(&format!("b{w}-{i}"), if i % 2 == 0 { "NodePort" } else { "ClusterIP" });
                match client.post(format!("{url}{SVCS}")).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 => {
                        acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    _ => return,
                }
            }
        }));
    }
    eventually(Duration::from_secs(60), "some creates to be acknowledged", || async {
        (acked.load(std::sync::atomic::Ordering::SeqCst) >= 100).then_some(())
    })
    .await;
    s.kill9();
    for t in tasks {
        let _ = t.await;
    }
    drop(s);
    let s = Server::start(dir.path(), &flags);
    let services = all_services(&s).await;
    assert!(services.len() >= 100 + 2, "acknowledged Services survive: {}", services.len());
    // Allocations made for Services that were never stored are leaks; the repair loop frees
    // them, and the counts then match the Services exactly.
    assert_consistent(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_ips_type_changes_and_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[]);
    let mut body = svc("fixed", "ClusterIP");
    body["spec"]["clusterIP"] = json!("10.96.5.5");
    let (code, created) = s.post(SVCS, &body).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["clusterIP"], "10.96.5.5");
    assert_eq!(created["spec"]["clusterIPs"], json!(["10.96.5.5"]));
    let mut clash = svc("clash", "ClusterIP");
    clash["spec"]["clusterIP"] = json!("10.96.5.5");
    let (code, err) = s.post(SVCS, &clash).await;
    assert_eq!(code, 422);
    assert!(err["message"].as_str().unwrap_or("").contains("provided IP is already allocated"), "{err}");
    let mut outside = svc("outside", "ClusterIP");
    outside["spec"]["clusterIP"] = json!("192.168.0.1");
    let (code, err) = s.post(SVCS, &outside).await;
    assert_eq!(code, 422, "{err}");

    // NodePort → LoadBalancer keeps the node ports; LoadBalancer → ClusterIP releases them.
    let (code, np) = s.post(SVCS, &svc("flip", "NodePort")).await;
    assert_eq!(code, 201);
    let port = np["spec"]["ports"][0]["nodePort"].as_u64().expect("node port");
    let mut lb = np.clone();
    lb["spec"]["type"] = json!("LoadBalancer");
    let (code, lb) = s.put(&format!("{SVCS}/flip"), &lb).await;
    assert_eq!(code, 200, "{lb}");
    assert_eq!(lb["spec"]["ports"][0]["nodePort"].as_u64(), Some(port));
    let mut back = lb.clone();
    back["spec"]["type"] = json!("ClusterIP");
    back["spec"]["ports"][0].as_object_mut().expect("port").remove("nodePort");
    back["spec"].as_object_mut().expect("spec").remove("externalTrafficPolicy");
    back["spec"].as_object_mut().expect("spec").remove("allocateLoadBalancerNodePorts");
    let (code, back) = s.put(&format!("{SVCS}/flip"), &back).await;
    assert_eq!(code, 200, "{back}");
    assert!(back["spec"]["ports"][0]["nodePort"].is_null());
    let mut reuse = svc("reuse", "NodePort");
    reuse["spec"]["ports"][0]["nodePort"] = json!(port);
    let (code, reused) = s.post(SVCS, &reuse).await;
    assert_eq!(code, 201, "the released port can be requested again: {reused}");
    assert_consistent(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_service_specs_get_422_with_causes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(dir.path(), &[]);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "duplicate ports",
            json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}], "selector": {"x": "y"}}),
            "spec.ports[1]",
        ),
        (
            "missing port name",
            json!({"ports": [{"port": 80}, {"port": 81}], "selector": {"x": "y"}}),
            "spec.ports[0].name",
        ),
        (
            "node port outside the range",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}], "selector": {"x": "y"}}),
            "spec.ports[0].nodePort",
        ),
        ("invalid ExternalName", json!({"type": "ExternalName", "externalName": "not a name!"}), "spec.externalName"),
    ];
    for (what, spec, field) in cases {
        let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"}, "spec": spec});
        let (code, err) = s.post(SVCS, &body).await;
        assert_eq!(code, 422, "{what}: {err}");
        assert_eq!(reason(&err), "Invalid", "{what}");
        let fields: Vec<&str> =
            err["details"]["causes"].as_array().into_iter().flatten().filter_map(|c| c["field"].as_str()).collect();
        assert!(fields.contains(&field), "{what}: causes {fields:?} should name {field}");
    }
    // Changing the ClusterIP of an existing Service is refused.
    let (_, created) = s.post(SVCS, &svc("stable", "ClusterIP")).await;
    let mut changed = created.clone();
    changed["spec"]["clusterIP"] = json!("10.96.7.7");
    changed["spec"]["clusterIPs"] = json!(["10.96.7.7"]);
    let (code, err) = s.put(&format!("{SVCS}/stable"), &changed).await;
    assert_eq!(code, 422, "{err}");
    // Nothing was leaked by the refused requests.
    assert_consistent(&s).await;
}
