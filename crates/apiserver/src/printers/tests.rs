//! Tables for realistic objects, checked cell by cell against what a real cluster's
//! API server returns for the same objects.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::*;

/// 2024-05-01T12:00:00Z, the "now" of every test.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_714_564_800)
}

fn opts() -> TableOptions {
    TableOptions::new(now())
}

/// The cells of the single row of `kind`'s table for `object`.
fn cells(kind: &str, object: Value) -> Value {
    let table = table_for(kind, &[object], &opts());
    table["rows"][0]["cells"].clone()
}

/// The column names of `kind`'s table, with the priority of each.
fn column_names(kind: &str) -> Vec<(&'static str, i32)> {
    column_definitions(kind).iter().map(|c| (c.name, c.priority)).collect()
}

/// Asserts the invariant kubectl relies on: one cell per column, of the column's type.
fn assert_well_formed(kind: &str, table: &Value) {
    let columns = column_definitions(kind);
    let rows = table["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    for row in rows {
        let row_cells = row["cells"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert_eq!(row_cells.len(), columns.len(), "{kind}: {row}");
        for (column, cell) in columns.iter().zip(row_cells) {
            assert!(
                column.column_type.admits(cell),
                "{kind}: column {} has type {:?} but cell {cell}",
                column.name,
                column.column_type
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// One of the tutorial's `run: my-nginx` pods, running on node-1 for two minutes.
fn nginx_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "my-nginx-5b56ccd65f-8x7kp",
            "namespace": "default",
            "uid": "6f1a1c52-5b8e-4c3a-9d0e-3b1f2a4c5d6e",
            "resourceVersion": "1042",
            "creationTimestamp": "2024-05-01T11:58:00Z",
            "labels": {"run": "my-nginx", "pod-template-hash": "5b56ccd65f"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "my-nginx-5b56ccd65f",
                "uid": "0a1b2c3d", "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "my-nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "ContainersReady", "status": "True"},
                {"type": "PodScheduled", "status": "True"}
            ],
            "hostIP": "172.18.0.3",
            "podIP": "10.244.1.5",
            "podIPs": [{"ip": "10.244.1.5"}],
            "startTime": "2024-05-01T11:58:00Z",
            "containerStatuses": [{
                "name": "my-nginx",
                "ready": true,
                "started": true,
                "restartCount": 0,
                "image": "docker.io/library/nginx:latest",
                "imageID": "docker.io/library/nginx@sha256:abc",
                "containerID": "containerd://123",
                "state": {"running": {"startedAt": "2024-05-01T11:58:05Z"}},
                "lastState": {}
            }]
        }
    })
}

fn running_container(name: &str) -> Value {
    json!({
        "name": name, "ready": true, "started": true, "restartCount": 0,
        "state": {"running": {"startedAt": "2024-05-01T09:00:00Z"}}, "lastState": {}
    })
}

fn pod_with(spec: Value, status: Value) -> Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "creationTimestamp": "2024-04-29T09:00:00Z"},
        "spec": spec,
        "status": status
    })
}

fn one_container() -> Value {
    json!({"containers": [{"name": "app", "image": "busybox"}]})
}

/// The `my-nginx` NodePort service of the "Connecting Applications with Services" tutorial.
fn my_nginx_service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "my-nginx", "namespace": "default",
            "labels": {"run": "my-nginx"},
            "creationTimestamp": "2024-05-01T11:55:00Z"
        },
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.0.162.149",
            "clusterIPs": ["10.0.162.149"],
            "ports": [
                {"name": "http", "port": 8080, "targetPort": 80, "protocol": "TCP", "nodePort": 31234},
                {"name": "https", "port": 443, "protocol": "TCP", "nodePort": 32001}
            ],
            "selector": {"run": "my-nginx"}
        },
        "status": {"loadBalancer": {}}
    })
}

fn kube_dns_service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "kube-dns", "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
            "creationTimestamp": "2023-01-01T00:00:00Z"
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}
            ],
            "selector": {"k8s-app": "kube-dns"}
        }
    })
}

fn node(name: &str, labels: Value, ready: &str, unschedulable: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "creationTimestamp": "2024-03-17T12:00:00Z"},
        "spec": {"unschedulable": unschedulable, "podCIDR": "10.244.0.0/24"},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "PIDPressure", "status": "False"},
                {"type": "Ready", "status": ready, "reason": "KubeletReady"}
            ],
            "addresses": [
                {"type": "InternalIP", "address": "172.18.0.2"},
                {"type": "Hostname", "address": name}
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.30.0",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.8.0-31-generic",
                "containerRuntimeVersion": "containerd://1.7.15"
            }
        }
    })
}

// ---------------------------------------------------------------------------------------
// The Table envelope
// ---------------------------------------------------------------------------------------

#[test]
fn table_envelope_carries_list_metadata_and_column_definitions() {
    let options = TableOptions {
        list_resource_version: Some("1234".to_string()),
        continue_token: Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ".to_string()),
        remaining: Some(7),
        ..opts()
    };
    let table = table_for("Namespace", &[], &options);
    assert_eq!(
        table,
        json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {
                "resourceVersion": "1234",
                "continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ",
                "remainingItemCount": 7
            },
            "columnDefinitions": [
                NAME_COLUMN.to_json(),
                {"name": "Status", "type": "string", "format": "",
                 "description": "The status of the namespace", "priority": 0},
                AGE_COLUMN.to_json()
            ],
            "rows": []
        })
    );
    assert_eq!(NAME_COLUMN.to_json()["format"], "name");
    assert_eq!(AGE_COLUMN.to_json()["type"], "string");
}

#[test]
fn empty_list_metadata_is_omitted() {
    let table = table_for("Pod", &[], &opts());
    assert_eq!(table["metadata"], json!({}));
    assert_eq!(table["rows"], json!([]));
}

#[test]
fn rows_carry_partial_object_metadata_by_default() {
    let pod = nginx_pod();
    let table = table_for("Pod", std::slice::from_ref(&pod), &opts());
    assert_eq!(
        table["rows"][0]["object"],
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": pod["metadata"]
        })
    );
    // Running pods have no row conditions.
    assert!(table["rows"][0].get("conditions").is_none());
}

#[test]
fn include_object_controls_the_row_object() {
    let pod = nginx_pod();
    let objects = std::slice::from_ref(&pod);

    let none = table_for("Pod", objects, &TableOptions { include_object: IncludeObject::None, ..opts() });
    assert!(none["rows"][0].get("object").is_none());
    assert_eq!(none["rows"][0]["cells"].as_array().map(Vec::len), Some(9));

    let whole = table_for("Pod", objects, &TableOptions { include_object: IncludeObject::Object, ..opts() });
    assert_eq!(whole["rows"][0]["object"], pod);

    // An object without metadata still gets a well-formed PartialObjectMetadata.
    let bare = table_for("Pod", &[json!({"kind": "Pod"})], &opts());
    assert_eq!(bare["rows"][0]["object"]["metadata"], json!({}));
}

#[test]
fn no_headers_leaves_out_column_definitions_only() {
    let table = table_for("Pod", &[nginx_pod()], &TableOptions { no_headers: true, ..opts() });
    assert_eq!(table["columnDefinitions"], json!([]));
    assert_eq!(table["rows"][0]["cells"][0], "my-nginx-5b56ccd65f-8x7kp");
}

#[test]
fn include_object_parses_like_upstream() {
    assert_eq!(IncludeObject::from_query(None), Ok(IncludeObject::Metadata));
    assert_eq!(IncludeObject::from_query(Some("")), Ok(IncludeObject::Metadata));
    assert_eq!(IncludeObject::from_query(Some("Metadata")), Ok(IncludeObject::Metadata));
    assert_eq!(IncludeObject::from_query(Some("None")), Ok(IncludeObject::None));
    assert_eq!("Object".parse(), Ok(IncludeObject::Object));
    let err = IncludeObject::from_query(Some("object")).err();
    assert_eq!(err, Some(InvalidIncludeObject("object".to_string())));
    assert_eq!(err.map(|e| e.to_string()).as_deref(), Some(r#"unrecognized includeObject value: "object""#));
}

#[test]
fn unknown_kinds_get_name_and_age() {
    assert!(!has_dedicated_table("Widget"));
    assert!(has_dedicated_table("Pod"));
    assert_eq!(column_names("Widget"), [("Name", 0), ("Age", 0)]);
    let widget = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "creationTimestamp": "2024-05-01T11:59:15Z"}
    });
    assert_eq!(cells("Widget", widget), json!(["w1", "45s"]));
    assert_eq!(cells("Widget", json!({})), json!(["", "<unknown>"]));
}

// ---------------------------------------------------------------------------------------
// Robustness: every kind, every shape of object
// ---------------------------------------------------------------------------------------

const KINDS: &[&str] = &[
    "Pod",
    "Node",
    "Namespace",
    "Service",
    "Endpoints",
    "EndpointSlice",
    "Secret",
    "ConfigMap",
    "ServiceAccount",
    "Event",
    "Deployment",
    "ReplicaSet",
    "Lease",
    "SomethingElse",
];

#[test]
fn every_kind_yields_one_cell_of_the_right_type_per_column_whatever_the_object() {
    let odd_objects = [
        json!({}),
        json!(null),
        json!("a string"),
        json!([1, 2, 3]),
        json!({"metadata": 5, "spec": [], "status": "broken"}),
        json!({
            "metadata": {"name": 7, "creationTimestamp": "not a time", "deletionTimestamp": "x",
                         "labels": {"node-role.kubernetes.io/": "", "kubernetes.io/role": 3}},
            "spec": {"containers": [null, 1, {"name": 2}], "initContainers": "x", "ports": [{}],
                     "replicas": "three", "selector": {"matchExpressions": [{"operator": "In"}]},
                     "readinessGates": [{}], "type": "LoadBalancer"},
            "status": {"containerStatuses": [{"state": {"terminated": {}}}, {"state": null}],
                       "initContainerStatuses": [{"state": {"waiting": {}}}],
                       "conditions": [null], "addresses": [{"type": "InternalIP"}],
                       "loadBalancer": {"ingress": [{}]}},
            "subsets": [{"addresses": [{}], "ports": [{}]}],
            "endpoints": [{"addresses": [1]}],
            "ports": [{"port": null, "name": null}],
            "series": {},
            "involvedObject": "pod"
        }),
    ];
    for kind in KINDS {
        let mut objects = odd_objects.to_vec();
        objects.extend([nginx_pod(), my_nginx_service(), kube_dns_service(), node("n", json!({}), "True", false)]);
        let table = table_for(kind, &objects, &opts());
        assert_eq!(table["columnDefinitions"].as_array().map(Vec::len), Some(column_definitions(kind).len()));
        assert_eq!(table["rows"].as_array().map(Vec::len), Some(objects.len()));
        assert_well_formed(kind, &table);
    }
}

#[test]
fn every_table_starts_with_a_name_column_or_is_event() {
    for kind in KINDS {
        let columns = column_definitions(kind);
        let names: Vec<_> = columns.iter().filter(|c| c.format == "name").collect();
        assert_eq!(names.len(), 1, "{kind} has exactly one name column");
        if *kind != "Event" {
            assert_eq!(columns[0], NAME_COLUMN, "{kind}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pod
// ---------------------------------------------------------------------------------------

#[test]
fn pod_columns_match_upstream() {
    assert_eq!(
        column_names("Pod"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1),
        ]
    );
}

#[test]
fn tutorial_nginx_pod() {
    assert_eq!(
        cells("Pod", nginx_pod()),
        json!(["my-nginx-5b56ccd65f-8x7kp", "1/1", "Running", "0", "2m", "10.244.1.5", "node-1", "<none>", "<none>"])
    );
}

#[test]
fn running_pod_with_two_ready_containers() {
    let pod = pod_with(
        json!({"nodeName": "node-2", "containers": [{"name": "web"}, {"name": "sidecar"}]}),
        json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "podIPs": [{"ip": "10.244.2.7"}, {"ip": "fd00::7"}],
            "containerStatuses": [running_container("web"), running_container("sidecar")]
        }),
    );
    assert_eq!(
        cells("Pod", pod),
        json!(["p", "2/2", "Running", "0", "2d3h", "10.244.2.7", "node-2", "<none>", "<none>"])
    );
}

#[test]
fn crash_looping_pod_shows_reason_and_time_of_last_restart() {
    let pod = pod_with(
        json!({"nodeName": "node-1", "containers": [{"name": "app"}]}),
        json!({
            "phase": "Running",
            "podIP": "10.244.1.9",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{
                "name": "app", "ready": false, "started": false, "restartCount": 5,
                "state": {"waiting": {"reason": "CrashLoopBackOff",
                                      "message": "back-off 2m40s restarting failed container"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                             "startedAt": "2024-05-01T11:54:58Z",
                                             "finishedAt": "2024-05-01T11:55:00Z"}}
            }]
        }),
    );
    let c = cells("Pod", pod);
    assert_eq!(c[1], "0/1");
    assert_eq!(c[2], "CrashLoopBackOff");
    assert_eq!(c[3], "5 (5m ago)");
}

#[test]
fn restarts_take_the_latest_finish_across_containers() {
    let restarted = |name: &str, count: i64, finished: &str| {
        json!({
            "name": name, "ready": true, "restartCount": count,
            "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 137, "finishedAt": finished}}
        })
    };
    let pod = pod_with(
        json!({"containers": [{"name": "a"}, {"name": "b"}]}),
        json!({
            "phase": "Running",
            "containerStatuses": [
                restarted("a", 2, "2024-05-01T10:00:00Z"),
                restarted("b", 1, "2024-05-01T11:30:00Z")
            ]
        }),
    );
    let c = cells("Pod", pod);
    assert_eq!(c[1], "2/2");
    assert_eq!(c[3], "3 (30m ago)");

    // Without a finish time the count stands alone.
    let pod = pod_with(
        one_container(),
        json!({"phase": "Running", "containerStatuses": [{
            "name": "app", "ready": true, "restartCount": 4, "state": {"running": {}}
        }]}),
    );
    assert_eq!(cells("Pod", pod)[3], "4");
}

#[test]
fn terminating_pod() {
    let mut pod = nginx_pod();
    pod["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:50Z");
    pod["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    let c = cells("Pod", pod);
    assert_eq!(c[1], "1/1");
    assert_eq!(c[2], "Terminating");
}

#[test]
fn terminating_pod_on_a_lost_node_is_unknown() {
    let mut pod = nginx_pod();
    pod["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:50Z");
    pod["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("Pod", pod)[2], "Unknown");
}

#[test]
fn deleted_pod_that_already_finished_keeps_its_status() {
    let mut pod = pod_with(
        one_container(),
        json!({"phase": "Succeeded", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}
        }]}),
    );
    pod["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:50Z");
    assert_eq!(cells("Pod", pod)[2], "Completed");
}

#[test]
fn completed_pod_has_a_completed_row_condition() {
    let pod = pod_with(
        one_container(),
        json!({"phase": "Succeeded", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                     "finishedAt": "2024-05-01T11:00:00Z"}}
        }]}),
    );
    let table = table_for("Pod", &[pod], &opts());
    assert_eq!(table["rows"][0]["cells"][1], "0/1");
    assert_eq!(table["rows"][0]["cells"][2], "Completed");
    assert_eq!(
        table["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                "message": "The pod has completed successfully."}])
    );

    let failed = pod_with(
        one_container(),
        json!({"phase": "Failed", "containerStatuses": [{
            "name": "app", "restartCount": 0,
            "state": {"terminated": {"exitCode": 2, "reason": "Error"}}
        }]}),
    );
    let table = table_for("Pod", &[failed], &opts());
    assert_eq!(table["rows"][0]["cells"][2], "Error");
    assert_eq!(table["rows"][0]["conditions"][0]["reason"], "Failed");
    assert_eq!(table["rows"][0]["conditions"][0]["message"], "The pod failed.");
}

#[test]
fn completed_container_beside_a_running_one() {
    let statuses = json!([
        {"name": "job", "ready": false, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        running_container("server")
    ]);
    let spec = json!({"containers": [{"name": "job"}, {"name": "server"}]});
    let ready = pod_with(
        spec.clone(),
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": statuses}),
    );
    assert_eq!(cells("Pod", ready)[2], "Running");
    let not_ready = pod_with(
        spec,
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
               "containerStatuses": statuses}),
    );
    let c = cells("Pod", not_ready);
    assert_eq!(c[1], "1/2");
    assert_eq!(c[2], "NotReady");
}

#[test]
fn container_exit_codes_and_signals() {
    let terminated = |t: Value| {
        pod_with(
            one_container(),
            json!({"phase": "Running", "containerStatuses": [{
                "name": "app", "restartCount": 0, "state": {"terminated": t}
            }]}),
        )
    };
    assert_eq!(cells("Pod", terminated(json!({"exitCode": 3})))[2], "ExitCode:3");
    assert_eq!(cells("Pod", terminated(json!({"exitCode": 137, "signal": 9})))[2], "Signal:9");
    assert_eq!(cells("Pod", terminated(json!({"exitCode": 137, "reason": "OOMKilled"})))[2], "OOMKilled");
}

#[test]
fn pending_and_evicted_pods() {
    let pending = pod_with(one_container(), json!({"phase": "Pending"}));
    assert_eq!(
        cells("Pod", pending),
        json!(["p", "0/1", "Pending", "0", "2d3h", "<none>", "<none>", "<none>", "<none>"])
    );

    let pulling = pod_with(
        one_container(),
        json!({"phase": "Pending", "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}
        }]}),
    );
    assert_eq!(cells("Pod", pulling)[2], "ContainerCreating");

    let evicted = pod_with(
        one_container(),
        json!({"phase": "Failed", "reason": "Evicted",
               "message": "The node was low on resource: memory."}),
    );
    assert_eq!(cells("Pod", evicted)[2], "Evicted");

    let gated = pod_with(
        one_container(),
        json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
        ]}),
    );
    assert_eq!(cells("Pod", gated)[2], "SchedulingGated");

    let nominated = pod_with(one_container(), json!({"phase": "Pending", "nominatedNodeName": "node-3"}));
    assert_eq!(cells("Pod", nominated)[7], "node-3");
}

#[test]
fn init_container_statuses() {
    let spec = json!({
        "initContainers": [{"name": "init-myservice"}, {"name": "init-mydb"}],
        "containers": [{"name": "app"}]
    });
    let with_init = |init_statuses: Value| {
        pod_with(
            spec.clone(),
            json!({
                "phase": "Pending",
                "conditions": [{"type": "Initialized", "status": "False"}],
                "initContainerStatuses": init_statuses,
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                                       "state": {"waiting": {"reason": "PodInitializing"}}}]
            }),
        )
    };
    let done = json!({"name": "init-myservice", "restartCount": 0,
                      "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let running = json!({"name": "init-mydb", "restartCount": 0, "state": {"running": {}}});

    // The first init container is still running: 0 of 2 done.
    let first_running = json!([
        {"name": "init-myservice", "restartCount": 0, "state": {"running": {}}},
        {"name": "init-mydb", "restartCount": 0,
         "state": {"waiting": {"reason": "PodInitializing"}}}
    ]);
    let c = cells("Pod", with_init(first_running));
    assert_eq!(c[1], "0/1");
    assert_eq!(c[2], "Init:0/2");

    assert_eq!(cells("Pod", with_init(json!([done, running])))[2], "Init:1/2");

    let pull_error = json!([done, {"name": "init-mydb", "restartCount": 0,
        "state": {"waiting": {"reason": "ImagePullBackOff"}}}]);
    assert_eq!(cells("Pod", with_init(pull_error))[2], "Init:ImagePullBackOff");

    let failed = |t: Value| {
        json!([{"name": "init-myservice", "restartCount": 3,
        "state": {"terminated": t},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:59:00Z"}}}])
    };
    let c = cells("Pod", with_init(failed(json!({"exitCode": 1, "reason": "Error"}))));
    assert_eq!(c[2], "Init:Error");
    // Init container restarts count while the pod is initializing.
    assert_eq!(c[3], "3 (60s ago)");
    assert_eq!(cells("Pod", with_init(failed(json!({"exitCode": 2}))))[2], "Init:ExitCode:2");
    assert_eq!(cells("Pod", with_init(failed(json!({"exitCode": 143, "signal": 15}))))[2], "Init:Signal:15");
    let crash = json!([{"name": "init-myservice", "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]);
    assert_eq!(cells("Pod", with_init(crash))[2], "Init:CrashLoopBackOff");

    // Once every init container is done, the main containers speak.
    let all_done = pod_with(
        spec.clone(),
        json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"},
                           {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [done, {"name": "init-mydb", "restartCount": 1,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:00:00Z"}}}],
            "containerStatuses": [running_container("app")]
        }),
    );
    let c = cells("Pod", all_done);
    assert_eq!(c[1], "1/1");
    assert_eq!(c[2], "Running");
    // Restarts of ordinary init containers no longer count once the pod is initialized.
    assert_eq!(c[3], "0");
}

#[test]
fn sidecar_init_containers_count_toward_ready() {
    let pod = pod_with(
        json!({
            "initContainers": [{"name": "istio-proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}]
        }),
        json!({
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"},
                           {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{
                "name": "istio-proxy", "ready": true, "started": true, "restartCount": 2,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:50:00Z"}}
            }],
            "containerStatuses": [running_container("app")]
        }),
    );
    let c = cells("Pod", pod);
    assert_eq!(c[1], "2/2");
    assert_eq!(c[2], "Running");
    assert_eq!(c[3], "2 (10m ago)");
}

#[test]
fn readiness_gates_count_true_conditions() {
    let pod = pod_with(
        json!({
            "containers": [{"name": "app"}],
            "readinessGates": [
                {"conditionType": "target-health.elbv2.k8s.aws/my-tg"},
                {"conditionType": "www.example.com/feature-1"}
            ]
        }),
        json!({
            "phase": "Running",
            "conditions": [
                {"type": "target-health.elbv2.k8s.aws/my-tg", "status": "True"},
                {"type": "www.example.com/feature-1", "status": "False"}
            ],
            "containerStatuses": [running_container("app")]
        }),
    );
    assert_eq!(cells("Pod", pod)[8], "1/2");
}

#[test]
fn pod_ip_prefers_pod_ip_then_pod_ips() {
    let only_ips = pod_with(one_container(), json!({"phase": "Running", "podIPs": [{"ip": "fd00::5"}]}));
    assert_eq!(cells("Pod", only_ips)[5], "fd00::5");
}

// ---------------------------------------------------------------------------------------
// Node
// ---------------------------------------------------------------------------------------

#[test]
fn node_columns_match_upstream() {
    assert_eq!(
        column_names("Node"),
        [
            ("Name", 0),
            ("Status", 0),
            ("Roles", 0),
            ("Age", 0),
            ("Version", 0),
            ("Internal-IP", 1),
            ("External-IP", 1),
            ("OS-Image", 1),
            ("Kernel-Version", 1),
            ("Container-Runtime", 1),
        ]
    );
}

#[test]
fn ready_control_plane_node() {
    let n = node(
        "kind-control-plane",
        json!({"kubernetes.io/hostname": "kind-control-plane",
               "node-role.kubernetes.io/control-plane": ""}),
        "True",
        false,
    );
    assert_eq!(
        cells("Node", n),
        json!([
            "kind-control-plane",
            "Ready",
            "control-plane",
            "45d",
            "v1.30.0",
            "172.18.0.2",
            "<none>",
            "Debian GNU/Linux 12 (bookworm)",
            "6.8.0-31-generic",
            "containerd://1.7.15"
        ])
    );
}

#[test]
fn cordoned_node_is_ready_scheduling_disabled() {
    let n = node("node-1", json!({}), "True", true);
    let c = cells("Node", n);
    assert_eq!(c[1], "Ready,SchedulingDisabled");
    assert_eq!(c[2], "<none>");
}

#[test]
fn not_ready_and_unknown_nodes() {
    assert_eq!(cells("Node", node("a", json!({}), "False", false))[1], "NotReady");
    // A kubelet that stopped posting status leaves Ready at Unknown: still NotReady.
    assert_eq!(cells("Node", node("b", json!({}), "Unknown", true))[1], "NotReady,SchedulingDisabled");
    let fresh = json!({"kind": "Node", "metadata": {"name": "c"}});
    assert_eq!(
        cells("Node", fresh),
        json!(["c", "Unknown", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"])
    );
}

#[test]
fn node_roles_come_from_both_label_conventions_sorted() {
    let mut n = node(
        "n",
        json!({"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "ingress",
               "node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": ""}),
        "True",
        false,
    );
    n["status"]["addresses"] = json!([
        {"type": "ExternalIP", "address": "203.0.113.10"},
        {"type": "InternalIP", "address": "10.0.0.4"},
        {"type": "InternalIP", "address": "10.0.0.5"}
    ]);
    let c = cells("Node", n);
    assert_eq!(c[2], "control-plane,ingress,worker");
    assert_eq!(c[5], "10.0.0.4");
    assert_eq!(c[6], "203.0.113.10");
}

// ---------------------------------------------------------------------------------------
// Namespace, Secret, ConfigMap, ServiceAccount, Lease
// ---------------------------------------------------------------------------------------

#[test]
fn namespaces() {
    let active = json!({"kind": "Namespace",
        "metadata": {"name": "kube-system", "creationTimestamp": "2024-04-30T12:00:00Z"},
        "status": {"phase": "Active"}});
    assert_eq!(cells("Namespace", active), json!(["kube-system", "Active", "24h"]));
    let terminating = json!({"kind": "Namespace",
        "metadata": {"name": "old", "creationTimestamp": "2022-01-01T00:00:00Z",
                     "deletionTimestamp": "2024-05-01T11:59:00Z"},
        "status": {"phase": "Terminating"}});
    assert_eq!(cells("Namespace", terminating), json!(["old", "Terminating", "2y121d"]));
}

#[test]
fn secrets() {
    let tls = json!({"kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "nginxsecret", "creationTimestamp": "2024-05-01T11:50:00Z"},
        "data": {"tls.crt": "LS0t", "tls.key": "LS0t"}});
    assert_eq!(cells("Secret", tls), json!(["nginxsecret", "kubernetes.io/tls", 2, "10m"]));
    let written_with_string_data = json!({"kind": "Secret",
        "metadata": {"name": "creds", "creationTimestamp": "2024-05-01T11:59:58Z"},
        "data": {"username": "YWRtaW4="}, "stringData": {"username": "admin", "password": "x"}});
    assert_eq!(cells("Secret", written_with_string_data), json!(["creds", "Opaque", 2, "2s"]));
}

#[test]
fn config_maps_count_data_and_binary_data() {
    let root_ca = json!({"kind": "ConfigMap",
        "metadata": {"name": "kube-root-ca.crt", "creationTimestamp": "2024-05-01T11:00:00Z"},
        "data": {"ca.crt": "-----BEGIN CERTIFICATE-----"}});
    assert_eq!(cells("ConfigMap", root_ca), json!(["kube-root-ca.crt", 1, "60m"]));
    let mixed = json!({"kind": "ConfigMap", "metadata": {"name": "m"},
        "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AAE="}});
    assert_eq!(cells("ConfigMap", mixed), json!(["m", 3, "<unknown>"]));
}

#[test]
fn service_accounts_count_secrets() {
    let sa = json!({"kind": "ServiceAccount",
        "metadata": {"name": "default", "creationTimestamp": "2024-05-01T08:30:00Z"}});
    assert_eq!(cells("ServiceAccount", sa), json!(["default", 0, "3h30m"]));
    let with_secret = json!({"kind": "ServiceAccount", "metadata": {"name": "build-robot"},
        "secrets": [{"name": "build-robot-token"}]});
    assert_eq!(cells("ServiceAccount", with_secret)[1], 1);
}

#[test]
fn leases_show_their_holder() {
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "kube-scheduler", "namespace": "kube-system",
                     "creationTimestamp": "2024-04-01T12:00:00Z"},
        "spec": {"holderIdentity": "kind-control-plane_8a3c1f0e", "leaseDurationSeconds": 15}});
    assert_eq!(cells("Lease", lease), json!(["kube-scheduler", "kind-control-plane_8a3c1f0e", "30d"]));
    assert_eq!(cells("Lease", json!({"metadata": {"name": "free"}, "spec": {}})), json!(["free", "", "<unknown>"]));
}

// ---------------------------------------------------------------------------------------
// Service, Endpoints, EndpointSlice
// ---------------------------------------------------------------------------------------

#[test]
fn tutorial_node_port_service() {
    assert_eq!(
        column_names("Service"),
        [("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0), ("Age", 0), ("Selector", 1),]
    );
    assert_eq!(
        cells("Service", my_nginx_service()),
        json!(["my-nginx", "NodePort", "10.0.162.149", "<none>", "8080:31234/TCP,443:32001/TCP", "5m", "run=my-nginx"])
    );
}

#[test]
fn kube_dns_cluster_ip_service() {
    assert_eq!(
        cells("Service", kube_dns_service()),
        json!(["kube-dns", "ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP,9153/TCP", "486d", "k8s-app=kube-dns"])
    );
}

#[test]
fn load_balancer_external_ips() {
    let mut lb = my_nginx_service();
    lb["spec"]["type"] = json!("LoadBalancer");
    assert_eq!(cells("Service", lb.clone())[3], "<pending>");

    lb["status"]["loadBalancer"]["ingress"] = json!([
        {"ip": "203.0.113.20"}, {"hostname": "a1b2.elb.example.com"}, {"ip": "203.0.113.10"}
    ]);
    assert_eq!(cells("Service", lb.clone())[3], "203.0.113.10,203.0.113.20,a1b2.elb.example.com");

    lb["spec"]["externalIPs"] = json!(["198.51.100.7"]);
    assert_eq!(cells("Service", lb.clone())[3], "203.0.113.10,203.0.113.20,a1b2.elb.example.com,198.51.100.7");

    lb["status"] = json!({});
    assert_eq!(cells("Service", lb)[3], "198.51.100.7");

    let mut cluster_ip = kube_dns_service();
    cluster_ip["spec"]["externalIPs"] = json!(["198.51.100.7", "198.51.100.8"]);
    assert_eq!(cells("Service", cluster_ip)[3], "198.51.100.7,198.51.100.8");
}

#[test]
fn external_name_headless_and_portless_services() {
    let external = json!({"kind": "Service",
        "metadata": {"name": "my-database", "creationTimestamp": "2024-05-01T11:59:00Z"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    assert_eq!(
        cells("Service", external),
        json!(["my-database", "ExternalName", "<none>", "db.example.com", "<none>", "60s", "<none>"])
    );

    let headless = json!({"kind": "Service", "metadata": {"name": "nginx"},
        "spec": {"clusterIP": "None", "ports": [{"port": 80, "name": "web"}],
                 "selector": {"app": "nginx"}}});
    assert_eq!(
        cells("Service", headless),
        json!(["nginx", "ClusterIP", "None", "<none>", "80/TCP", "<unknown>", "app=nginx"])
    );

    let dual_stack = json!({"kind": "Service", "metadata": {"name": "d"},
        "spec": {"type": "ClusterIP", "clusterIPs": ["fd00:10:96::1", "10.96.0.1"],
                 "ports": [{"port": 443, "protocol": "TCP"}]}});
    assert_eq!(cells("Service", dual_stack)[2], "fd00:10:96::1");
}

#[test]
fn endpoints_with_two_addresses() {
    let ep = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "my-nginx", "namespace": "default",
                     "creationTimestamp": "2024-05-01T11:55:00Z"},
        "subsets": [{
            "addresses": [
                {"ip": "10.244.1.5", "nodeName": "node-1",
                 "targetRef": {"kind": "Pod", "name": "my-nginx-5b56ccd65f-8x7kp"}},
                {"ip": "10.244.2.6", "nodeName": "node-2",
                 "targetRef": {"kind": "Pod", "name": "my-nginx-5b56ccd65f-q2w9z"}}
            ],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]
        }]
    });
    assert_eq!(cells("Endpoints", ep), json!(["my-nginx", "10.244.1.5:80,10.244.2.6:80", "5m"]));
}

#[test]
fn endpoints_truncate_and_empty() {
    let kube_dns = json!({"kind": "Endpoints", "metadata": {"name": "kube-dns"},
    "subsets": [{
        "addresses": [{"ip": "10.244.0.2"}, {"ip": "10.244.0.3"}],
        "ports": [{"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                  {"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "metrics", "port": 9153, "protocol": "TCP"}]
    }]});
    assert_eq!(cells("Endpoints", kube_dns)[1], "10.244.0.2:53,10.244.0.3:53,10.244.0.2:53 + 3 more...");
    let no_backends = json!({"kind": "Endpoints", "metadata": {"name": "idle"}});
    assert_eq!(cells("Endpoints", no_backends)[1], "<none>");
}

#[test]
fn endpoint_slices() {
    assert_eq!(
        column_names("EndpointSlice"),
        [("Name", 0), ("AddressType", 0), ("Ports", 0), ("Endpoints", 0), ("Age", 0)]
    );
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "my-nginx-7x2bq", "creationTimestamp": "2024-05-01T11:55:00Z",
                     "labels": {"kubernetes.io/service-name": "my-nginx"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.1.5"], "conditions": {"ready": true}},
            {"addresses": ["10.244.2.6"], "conditions": {"ready": true}}
        ],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                  {"name": "https", "port": 443, "protocol": "TCP"}]
    });
    assert_eq!(
        cells("EndpointSlice", slice),
        json!(["my-nginx-7x2bq", "IPv4", "80,443", "10.244.1.5,10.244.2.6", "5m"])
    );

    let many = json!({"kind": "EndpointSlice", "metadata": {"name": "s"}, "addressType": "IPv6",
        "endpoints": [{"addresses": ["fd00::1"]}, {"addresses": ["fd00::2"]},
                      {"addresses": ["fd00::3"]}, {"addresses": ["fd00::4"]}],
        "ports": [{"name": "grpc"}, {}]});
    assert_eq!(
        cells("EndpointSlice", many),
        json!(["s", "IPv6", "grpc,*", "fd00::1,fd00::2,fd00::3 + 1 more...", "<unknown>"])
    );

    let empty = json!({"kind": "EndpointSlice", "metadata": {"name": "e"}, "addressType": "IPv4",
        "endpoints": null, "ports": null});
    assert_eq!(cells("EndpointSlice", empty), json!(["e", "IPv4", "<unset>", "<unset>", "<unknown>"]));
}

// ---------------------------------------------------------------------------------------
// Event
// ---------------------------------------------------------------------------------------

#[test]
fn event_columns_match_upstream() {
    assert_eq!(
        column_names("Event"),
        [
            ("Last Seen", 0),
            ("Type", 0),
            ("Reason", 0),
            ("Object", 0),
            ("Subobject", 1),
            ("Source", 1),
            ("Message", 0),
            ("First Seen", 1),
            ("Count", 1),
            ("Name", 1),
        ]
    );
}

#[test]
fn core_v1_event() {
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "nginx-1.17c2a1b3d4e5f607", "namespace": "default",
                     "creationTimestamp": "2024-05-01T11:50:00Z"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "nginx-1",
                           "fieldPath": "spec.containers{nginx}", "apiVersion": "v1"},
        "reason": "Pulled",
        "message": "Successfully pulled image \"nginx\" in 1.2s\n",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2024-05-01T11:50:00Z",
        "lastTimestamp": "2024-05-01T11:58:00Z",
        "count": 3,
        "type": "Normal"
    });
    assert_eq!(
        cells("Event", event),
        json!([
            "2m",
            "Normal",
            "Pulled",
            "pod/nginx-1",
            "spec.containers{nginx}",
            "kubelet, node-1",
            "Successfully pulled image \"nginx\" in 1.2s",
            "10m",
            3,
            "nginx-1.17c2a1b3d4e5f607"
        ])
    );
}

#[test]
fn event_with_series_and_event_time_only() {
    let event = json!({
        "kind": "Event",
        "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Node", "name": "node-1"},
        "reason": "NodeNotReady",
        "message": "Node node-1 status is now: NodeNotReady",
        "eventTime": "2024-05-01T10:00:00.000000Z",
        "series": {"count": 12, "lastObservedTime": "2024-05-01T11:59:29.500000Z"},
        "reportingController": "node-controller",
        "reportingInstance": "",
        "type": "Warning"
    });
    let c = cells("Event", event);
    assert_eq!(c[0], "30s");
    assert_eq!(c[3], "node/node-1");
    assert_eq!(c[5], "node-controller");
    // Under three hours, durations stay in minutes.
    assert_eq!(c[7], "120m");
    assert_eq!(c[8], 12);

    // A singleton event of the newer API has no count: it happened once.
    let singleton = json!({"kind": "Event", "metadata": {"name": "e2"},
        "involvedObject": {"kind": "ReplicaSet"},
        "eventTime": "2024-05-01T11:59:00.000000Z"});
    let c = cells("Event", singleton);
    assert_eq!(c[0], "60s");
    assert_eq!(c[3], "replicaset");
    assert_eq!(c[8], 1);
}

#[test]
fn events_k8s_io_event() {
    let event = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "web-0.17c2", "namespace": "default"},
        "eventTime": null,
        "reportingController": "kubelet",
        "reportingInstance": "node-2",
        "action": "Started",
        "reason": "Started",
        "regarding": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{web}"},
        "note": "Started container web",
        "type": "Normal",
        "deprecatedSource": {"component": "kubelet", "host": "node-2"},
        "deprecatedFirstTimestamp": "2024-05-01T11:00:00Z",
        "deprecatedLastTimestamp": "2024-05-01T11:40:00Z",
        "deprecatedCount": 2
    });
    assert_eq!(
        cells("Event", event),
        json!([
            "20m",
            "Normal",
            "Started",
            "pod/web-0",
            "spec.containers{web}",
            "kubelet, node-2",
            "Started container web",
            "60m",
            2,
            "web-0.17c2"
        ])
    );
}

// ---------------------------------------------------------------------------------------
// Deployment, ReplicaSet
// ---------------------------------------------------------------------------------------

fn nginx_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "namespace": "default",
                     "creationTimestamp": "2024-05-01T11:57:30Z", "generation": 1},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2",
                                         "ports": [{"containerPort": 80}]}]}
            }
        },
        "status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
                   "readyReplicas": 2, "availableReplicas": 2}
    })
}

#[test]
fn deployment() {
    assert_eq!(
        column_names("Deployment"),
        [
            ("Name", 0),
            ("Ready", 0),
            ("Up-to-date", 0),
            ("Available", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ]
    );
    assert_eq!(
        cells("Deployment", nginx_deployment()),
        json!(["nginx-deployment", "2/2", 2, 2, "2m30s", "nginx", "nginx:1.14.2", "app=nginx"])
    );
}

#[test]
fn deployment_rolling_out_with_two_containers() {
    let mut d = nginx_deployment();
    d["spec"]["replicas"] = json!(3);
    d["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "nginx", "image": "nginx:1.16.1"},
        {"name": "log", "image": "busybox"}
    ]);
    d["spec"]["selector"] = json!({"matchLabels": {"app": "nginx"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "edge"]}]});
    d["status"] = json!({"replicas": 4, "updatedReplicas": 1, "readyReplicas": 3,
                         "availableReplicas": 3});
    assert_eq!(
        cells("Deployment", d),
        json!([
            "nginx-deployment",
            "3/3",
            1,
            3,
            "2m30s",
            "nginx,log",
            "nginx:1.16.1,busybox",
            "app=nginx,tier in (edge,web)"
        ])
    );
}

#[test]
fn deployment_defaults_and_selector_edge_cases() {
    let fresh = json!({"kind": "Deployment", "metadata": {"name": "fresh"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    // No replicas means the default of one; no status means nothing ready yet;
    // no selector prints as an empty cell for Deployments.
    assert_eq!(cells("Deployment", fresh), json!(["fresh", "0/1", 0, 0, "<unknown>", "c", "i", ""]));
    let broken = json!({"kind": "Deployment", "metadata": {"name": "b"},
        "spec": {"replicas": 0, "selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}});
    assert_eq!(cells("Deployment", broken), json!(["b", "0/0", 0, 0, "<unknown>", "", "", "<invalid>"]));
}

#[test]
fn replica_set() {
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "frontend-b2zdv", "namespace": "default",
                     "creationTimestamp": "2024-05-01T06:00:00Z"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"tier": "frontend", "pod-template-hash": "b2zdv"}},
            "template": {"spec": {"containers": [
                {"name": "php-redis", "image": "us-docker.pkg.dev/google-samples/containers/gke/gb-frontend:v5"}
            ]}}
        },
        "status": {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2,
                   "availableReplicas": 2}
    });
    assert_eq!(
        column_names("ReplicaSet"),
        [
            ("Name", 0),
            ("Desired", 0),
            ("Current", 0),
            ("Ready", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1),
        ]
    );
    assert_eq!(
        cells("ReplicaSet", rs),
        json!([
            "frontend-b2zdv",
            3,
            3,
            2,
            "6h",
            "php-redis",
            "us-docker.pkg.dev/google-samples/containers/gke/gb-frontend:v5",
            "pod-template-hash=b2zdv,tier=frontend"
        ])
    );
    // ReplicaSets, unlike Deployments, print a missing selector as <none>.
    let bare = json!({"kind": "ReplicaSet", "metadata": {"name": "r"}});
    assert_eq!(cells("ReplicaSet", bare), json!(["r", 1, 0, 0, "<unknown>", "", "", "<none>"]));
}
