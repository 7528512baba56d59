//! The LoadBalancer speaker on a real `rkube up` cluster: which node announces, and that
//! addresses go away with their Service. (The fail-over itself is part of the tutorial test
//! and of `./bench servicelb`.) Needs root, runc, arping and the images `images/build.sh`
//! makes.

mod support;

use std::time::Duration;

use support::cluster::{Cluster, text};

/// The nodes whose uplink carries `ip`.
fn announcers(c: &Cluster, ip: &str) -> Vec<String> {
    (1..=3)
        .map(|i| c.node(i))
        .filter(|n| text(&c.node_exec(n, &["ip", "-4", "addr", "show", "dev", "eth0"])).contains(&format!("{ip}/32")))
        .collect()
}

fn lb_ip(c: &Cluster, svc: &str) -> String {
    c.eventually(Duration::from_secs(20), "a LoadBalancer IP", || {
        let ip = c.kubectl_ok(&["get", "svc", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]);
        (!ip.is_empty()).then_some(ip)
    })
}

fn holder(c: &Cluster, ip: &str) -> Option<String> {
    let lease = format!("servicelb-{}", ip.replace('.', "-"));
    let out = c.kubectl(&["get", "lease", "-n", "kube-system", &lease, "-o", "jsonpath={.spec.holderIdentity}"]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn local_policy_announces_from_the_endpoint_node_and_addresses_leave_with_the_service() {
    let c = Cluster::up(3, &[]);
    c.kubectl_ok(&["create", "deployment", "web", "--image=nginx", "--replicas=1"]);
    let pods = c.ready_pods("app=web", 1, Duration::from_secs(60));
    let pod_node = pods[0]["spec"]["nodeName"].as_str().expect("nodeName").to_owned();
    c.kubectl_ok(&["expose", "deployment", "web", "--port=80", "--type=LoadBalancer"]);
    c.kubectl_ok(&["patch", "svc", "web", "-p", r#"{"spec":{"externalTrafficPolicy":"Local"}}"#]);
    let ip = lb_ip(&c, "web");

    // Only the node with the endpoint competes, so it ends up announcing, alone.
    c.eventually(Duration::from_secs(20), "the endpoint's node announcing alone", || {
        (holder(&c, &ip).as_deref() == Some(pod_node.as_str()) && announcers(&c, &ip) == [pod_node.clone()])
            .then_some(())
    });
    // From outside, the page, served locally with the client's own address kept.
    let out = c.rkube(&["outside"]).args(["--", "curl", "-s", "-m", "5", &format!("http://{ip}/")]).output();
    let out = out.expect("rkube outside");
    assert!(text(&out).contains("Welcome to nginx!"), "{}", text(&out));
    let pod = pods[0]["metadata"]["name"].as_str().expect("name");
    c.eventually(Duration::from_secs(10), "the client address in nginx's log", || {
        c.kubectl_ok(&["logs", pod]).contains("192.168.240.200").then_some(())
    });

    // Back to ClusterIP: the address leaves the node and the Lease goes.
    c.kubectl_ok(&["patch", "svc", "web", "-p", r#"{"spec":{"type":"ClusterIP","externalTrafficPolicy":null}}"#]);
    c.eventually(Duration::from_secs(20), "the address withdrawn and the Lease gone", || {
        (announcers(&c, &ip).is_empty() && holder(&c, &ip).is_none()).then_some(())
    });
    let svc = c.get_json(&["svc", "web"]);
    assert!(svc["status"]["loadBalancer"]["ingress"].is_null(), "{}", svc["status"]);

    // A new LoadBalancer gets the freed address; deleting it withdraws the address too.
    c.kubectl_ok(&["expose", "deployment", "web", "--name=web2", "--port=80", "--type=LoadBalancer"]);
    assert_eq!(lb_ip(&c, "web2"), ip, "the freed address is the pool's first");
    c.eventually(Duration::from_secs(20), "one node announcing web2", || {
        (announcers(&c, &ip).len() == 1).then_some(())
    });
    c.kubectl_ok(&["delete", "svc", "web2"]);
    c.eventually(Duration::from_secs(20), "the address withdrawn after the delete", || {
        (announcers(&c, &ip).is_empty() && holder(&c, &ip).is_none()).then_some(())
    });

    // A holder that dies cannot give its Lease up: once the Service is gone, the other nodes
    // remove the expired Lease. With the Local policy they cannot take it over first, since
    // the dead node's endpoint still counts as ready for a few seconds.
    c.kubectl_ok(&["expose", "deployment", "web", "--name=web3", "--port=80", "--type=LoadBalancer"]);
    c.kubectl_ok(&["patch", "svc", "web3", "-p", r#"{"spec":{"externalTrafficPolicy":"Local"}}"#]);
    let ip3 = lb_ip(&c, "web3");
    c.eventually(Duration::from_secs(20), "the endpoint's node holding web3's Lease", || {
        (holder(&c, &ip3).as_deref() == Some(pod_node.as_str())).then_some(())
    });
    let out = c.rkube(&["node", "stop", &pod_node]).output().expect("node stop");
    assert!(out.status.success(), "node stop: {}", text(&out));
    c.kubectl_ok(&["delete", "svc", "web3"]);
    c.eventually(Duration::from_secs(20), "the dead holder's Lease removed", || {
        holder(&c, &ip3).is_none().then_some(())
    });
    assert!(announcers(&c, &ip3).is_empty());
}
