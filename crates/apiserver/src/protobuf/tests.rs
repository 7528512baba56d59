//! Tests, with a tiny protobuf encoder that writes what Go's generated
//! (gogo) marshallers write: every non-pointer field, zero or not, and
//! pointer fields only when set.

use serde_json::{Map, Value, json};

use super::decode::{Decoder, rfc3339};
use super::schema::{self, Message, Shape, Ty, field, list};
use super::{Decoded, MAGIC, MAX_DEPTH, ProtobufError, decode, decode_expecting};

// ---------------------------------------------------------------------------
// The encoder.

#[derive(Default, Clone)]
struct Enc(Vec<u8>);

impl Enc {
    fn new() -> Self {
        Enc::default()
    }

    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, number: u32, wire_type: u8) {
        self.raw_varint((u64::from(number) << 3) | u64::from(wire_type));
    }

    fn varint(mut self, number: u32, v: u64) -> Self {
        self.key(number, 0);
        self.raw_varint(v);
        self
    }

    /// int32 and int64 alike: negative values sign-extend to 10 bytes.
    fn int(self, number: u32, v: i64) -> Self {
        self.varint(number, v as u64)
    }

    fn bool(self, number: u32, v: bool) -> Self {
        self.varint(number, u64::from(v))
    }

    fn bytes(mut self, number: u32, v: &[u8]) -> Self {
        self.key(number, 2);
        self.raw_varint(v.len() as u64);
        self.0.extend_from_slice(v);
        self
    }

    fn str(self, number: u32, v: &str) -> Self {
        self.bytes(number, v.as_bytes())
    }

    fn msg(self, number: u32, m: Enc) -> Self {
        self.bytes(number, &m.0)
    }

    fn fixed64(mut self, number: u32, v: u64) -> Self {
        self.key(number, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn fixed32(mut self, number: u32, v: u32) -> Self {
        self.key(number, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn map_str(self, number: u32, k: &str, v: &str) -> Self {
        self.msg(number, Enc::new().str(1, k).str(2, v))
    }

    fn map_bytes(self, number: u32, k: &str, v: &[u8]) -> Self {
        self.msg(number, Enc::new().str(1, k).bytes(2, v))
    }

    fn map_msg(self, number: u32, k: &str, v: Enc) -> Self {
        self.msg(number, Enc::new().str(1, k).msg(2, v))
    }

    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
}

/// `k8s\0` + `runtime.Unknown`, content encoding and type written empty as
/// Go writes them.
fn envelope(api_version: &str, kind: &str, raw: &Enc) -> Vec<u8> {
    let unknown = Enc::new().msg(1, Enc::new().str(1, api_version).str(2, kind)).bytes(2, &raw.0).str(3, "").str(4, "");
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&unknown.0);
    body
}

/// `ObjectMeta` as Go writes it for an object built by kubectl: every
/// non-pointer field, the zero `creationTimestamp` as an empty message.
fn object_meta(name: &str, labels: &[(&str, &str)]) -> Enc {
    let mut m =
        Enc::new().str(1, name).str(2, "").str(3, "").str(4, "").str(5, "").str(6, "").int(7, 0).msg(8, Enc::new());
    for (k, v) in labels {
        m = m.map_str(11, k, v);
    }
    m
}

/// A `Container` with Go's non-pointer fields.
fn container(name: &str, image: &str, extra: impl FnOnce(Enc) -> Enc) -> Enc {
    let c = Enc::new().str(1, name).str(2, image);
    let c = extra(c);
    c.str(5, "") // workingDir
        .msg(8, Enc::new()) // resources
        .str(13, "") // terminationMessagePath
        .str(14, "") // imagePullPolicy
        .bool(16, false)
        .bool(17, false)
        .bool(18, false)
        .str(20, "") // terminationMessagePolicy
}

/// A `PodSpec` with Go's non-pointer fields around the given containers.
fn pod_spec(containers: Vec<Enc>, restart_policy: &str) -> Enc {
    let mut p = Enc::new();
    for c in containers {
        p = p.msg(2, c);
    }
    p.str(3, restart_policy)
        .str(6, "") // dnsPolicy
        .str(8, "")
        .str(9, "")
        .str(10, "")
        .bool(11, false)
        .bool(12, false)
        .bool(13, false)
        .str(16, "")
        .str(17, "")
        .str(19, "") // schedulerName
        .str(24, "") // priorityClassName
}

fn decoded(body: &[u8]) -> Decoded {
    match decode(body) {
        Ok(d) => d,
        Err(e) => panic!("decode failed: {e}"),
    }
}

fn decode_err(body: &[u8]) -> ProtobufError {
    match decode(body) {
        Ok(d) => panic!("decode succeeded: {}", d.object),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------
// What kubectl sends.

const CERT: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIBdTCCARugAwIBAgIU\n-----END CERTIFICATE-----\n";
const KEY: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n";

#[test]
fn secret_from_kubectl_create_secret_tls() {
    // kubectl create secret tls nginxsecret --key k --cert c
    let secret = Enc::new()
        .msg(1, object_meta("nginxsecret", &[]))
        .map_bytes(2, "tls.crt", CERT)
        .map_bytes(2, "tls.key", KEY)
        .str(3, "kubernetes.io/tls");
    let d = decoded(&envelope("v1", "Secret", &secret));
    assert_eq!(d.api_version, "v1");
    assert_eq!(d.kind, "Secret");
    assert!(d.unknown_fields.is_empty());
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "nginxsecret", "creationTimestamp": null},
            "data": {
                "tls.crt": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkVENDQVJ1Z0F3SUJBZ0lVCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K",
                "tls.key": "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5Ci0tLS0tRU5EIFBSSVZBVEUgS0VZLS0tLS0K"
            },
            "type": "kubernetes.io/tls"
        })
    );
}

#[test]
fn secret_generic_string_data_and_immutable() {
    let secret = Enc::new()
        .msg(1, object_meta("s", &[]))
        .map_bytes(2, "empty", b"")
        .map_bytes(2, "bin", &[0, 255, 1])
        .str(3, "Opaque")
        .map_str(4, "user", "admin")
        .bool(5, false);
    let d = decoded(&envelope("v1", "Secret", &secret));
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "creationTimestamp": null},
            "data": {"empty": "", "bin": "AP8B"},
            "type": "Opaque",
            "stringData": {"user": "admin"},
            // A pointer: present on the wire, so kept although false.
            "immutable": false
        })
    );
}

#[test]
fn configmap_from_kubectl_create_configmap_from_file() {
    // kubectl create configmap nginxconfigmap --from-file=default.conf
    let conf = "server {\n    listen 80;\n    location / {\n        root /usr/share/nginx/html;\n    }\n}\n";
    let cm = Enc::new().msg(1, object_meta("nginxconfigmap", &[])).map_str(2, "default.conf", conf);
    let d = decoded(&envelope("v1", "ConfigMap", &cm));
    assert!(d.unknown_fields.is_empty());
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "nginxconfigmap", "creationTimestamp": null},
            "data": {"default.conf": conf}
        })
    );
}

#[test]
fn configmap_binary_data_and_immutable() {
    let cm = Enc::new().msg(1, object_meta("c", &[])).map_bytes(3, "blob", b"\x01\x02").bool(4, true);
    let d = decoded(&envelope("v1", "ConfigMap", &cm));
    assert_eq!(d.object["binaryData"], json!({"blob": "AQI="}));
    assert_eq!(d.object["immutable"], json!(true));
}

fn nginx_deployment() -> Enc {
    // kubectl create deployment my-nginx --image=nginx --port=80 --replicas=2
    let labels = [("app", "my-nginx")];
    let port = Enc::new().str(1, "").int(2, 0).int(3, 80).str(4, "").str(5, "");
    let template = Enc::new()
        .msg(1, object_meta("", &labels))
        .msg(2, pod_spec(vec![container("nginx", "nginx", |c| c.msg(6, port))], ""));
    let spec = Enc::new()
        .int(1, 2)
        .msg(2, Enc::new().map_str(1, "app", "my-nginx"))
        .msg(3, template)
        .msg(4, Enc::new().str(1, ""))
        .int(5, 0)
        .bool(7, false);
    let status = Enc::new().int(1, 0).int(2, 0).int(3, 0).int(4, 0).int(5, 0).int(7, 0);
    Enc::new().msg(1, object_meta("my-nginx", &labels)).msg(2, spec).msg(3, status)
}

#[test]
fn deployment_from_kubectl_create_deployment() {
    let d = decoded(&envelope("apps/v1", "Deployment", &nginx_deployment()));
    assert!(d.unknown_fields.is_empty(), "{:?}", d.unknown_fields);
    // Exactly `kubectl create deployment ... --dry-run=client -o json`.
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "my-nginx",
                "creationTimestamp": null,
                "labels": {"app": "my-nginx"}
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "my-nginx"}},
                "template": {
                    "metadata": {"creationTimestamp": null, "labels": {"app": "my-nginx"}},
                    "spec": {
                        "containers": [{
                            "name": "nginx",
                            "image": "nginx",
                            "ports": [{"containerPort": 80}],
                            "resources": {}
                        }]
                    }
                },
                "strategy": {}
            },
            "status": {}
        })
    );
}

#[test]
fn deployment_full_spec() {
    let probe = Enc::new()
        .msg(
            1,
            Enc::new().msg(
                2,
                Enc::new()
                    .str(1, "/healthz")
                    .msg(2, Enc::new().int(1, 1).str(3, "http"))
                    .str(4, "HTTP")
                    .msg(5, Enc::new().str(1, "X-Probe").str(2, "1")),
            ),
        )
        .int(2, 5)
        .int(4, 0);
    let c = container("app", "busybox:1.36", |c| {
        c.str(3, "sh")
            .str(3, "-c")
            .str(4, "echo hi; sleep 3600")
            .msg(
                7,
                Enc::new()
                    .str(1, "FROM_SECRET")
                    .str(2, "")
                    .msg(3, Enc::new().msg(4, Enc::new().msg(1, Enc::new().str(1, "creds")).str(2, "password"))),
            )
            .msg(7, Enc::new().str(1, "PLAIN").str(2, "v"))
            .msg(9, Enc::new().str(1, "cfg").bool(2, true).str(3, "/etc/cfg"))
            .msg(10, probe)
    });
    // Replace the empty resources written by `container` with real ones:
    // a later occurrence of a message field merges into the earlier one.
    let c = c.msg(
        8,
        Enc::new()
            .map_msg(1, "cpu", Enc::new().str(1, "500m"))
            .map_msg(1, "memory", Enc::new().str(1, "128Mi"))
            .map_msg(2, "cpu", Enc::new()),
    );
    let volume = Enc::new().str(1, "cfg").msg(
        2,
        Enc::new().msg(
            19,
            Enc::new()
                .msg(1, Enc::new().str(1, "app-config"))
                .msg(2, Enc::new().str(1, "a.conf").str(2, "a.conf"))
                .int(3, 0o644),
        ),
    );
    let pod = pod_spec(vec![c], "Always")
        .msg(1, volume)
        .int(4, 30)
        .map_str(7, "disk", "ssd")
        .msg(14, Enc::new().int(2, 1000).msg(4, Enc::new()).int(4, 3).int(4, 4))
        .msg(14, Enc::new().bytes(4, &[5, 6]));
    let spec = Enc::new()
        .int(1, 0)
        .msg(2, Enc::new().msg(2, Enc::new().str(1, "tier").str(2, "In").str(3, "web").str(3, "api")))
        .msg(3, Enc::new().msg(1, object_meta("", &[("app", "x")])).msg(2, pod))
        .msg(
            4,
            Enc::new()
                .str(1, "RollingUpdate")
                .msg(2, Enc::new().msg(1, Enc::new().int(1, 0).int(2, 1)).msg(2, Enc::new().int(1, 1).str(3, "25%"))),
        )
        .int(5, 10)
        .int(6, 3)
        .bool(7, true)
        .int(9, 600);
    let dep = Enc::new().msg(1, object_meta("x", &[])).msg(2, spec);
    let d = decoded(&envelope("apps/v1", "Deployment", &dep));
    assert!(d.unknown_fields.is_empty(), "{:?}", d.unknown_fields);
    assert_eq!(
        d.object["spec"],
        json!({
            "replicas": 0,
            "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]},
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "x"}},
                "spec": {
                    "volumes": [{
                        "name": "cfg",
                        "configMap": {
                            "name": "app-config",
                            "items": [{"key": "a.conf", "path": "a.conf"}],
                            "defaultMode": 420
                        }
                    }],
                    "containers": [{
                        "name": "app",
                        "image": "busybox:1.36",
                        "command": ["sh", "-c"],
                        "args": ["echo hi; sleep 3600"],
                        "env": [
                            {
                                "name": "FROM_SECRET",
                                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}
                            },
                            {"name": "PLAIN", "value": "v"}
                        ],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "0"}
                        },
                        "volumeMounts": [{"name": "cfg", "readOnly": true, "mountPath": "/etc/cfg"}],
                        "livenessProbe": {
                            "httpGet": {
                                "path": "/healthz",
                                "port": "http",
                                "scheme": "HTTP",
                                "httpHeaders": [{"name": "X-Probe", "value": "1"}]
                            },
                            "initialDelaySeconds": 5
                        }
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "nodeSelector": {"disk": "ssd"},
                    "securityContext": {"runAsUser": 1000, "supplementalGroups": [3, 4, 5, 6]}
                }
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"}
            },
            "minReadySeconds": 10,
            "revisionHistoryLimit": 3,
            "paused": true,
            "progressDeadlineSeconds": 600
        })
    );
}

fn service_port(name: &str, port: i64, target: i64, node_port: i64) -> Enc {
    Enc::new()
        .str(1, name)
        .str(2, "TCP")
        .int(3, port)
        .msg(4, Enc::new().int(1, 0).int(2, target).str(3, ""))
        .int(5, node_port)
}

#[test]
fn service_nodeport_with_two_ports() {
    // kubectl create service nodeport my-ns --tcp=80:8080,443:8443 --node-port=30080
    let spec = Enc::new()
        .msg(1, service_port("80-8080", 80, 8080, 30080))
        .msg(1, service_port("443-8443", 443, 8443, 0))
        .map_str(2, "app", "my-ns")
        .str(3, "")
        .str(4, "NodePort")
        .str(7, "")
        .str(8, "")
        .str(10, "")
        .str(11, "")
        .int(12, 0)
        .bool(13, false);
    let status = Enc::new().msg(1, Enc::new());
    let svc = Enc::new().msg(1, object_meta("my-ns", &[("app", "my-ns")])).msg(2, spec).msg(3, status);
    let d = decoded(&envelope("v1", "Service", &svc));
    assert!(d.unknown_fields.is_empty());
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "my-ns", "creationTimestamp": null, "labels": {"app": "my-ns"}},
            "spec": {
                "ports": [
                    {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080},
                    {"name": "443-8443", "protocol": "TCP", "port": 443, "targetPort": 8443}
                ],
                "selector": {"app": "my-ns"},
                "type": "NodePort"
            },
            "status": {"loadBalancer": {}}
        })
    );
}

#[test]
fn service_spec_remaining_fields() {
    let spec = Enc::new()
        .str(3, "10.0.0.10")
        .str(4, "LoadBalancer")
        .str(5, "1.2.3.4")
        .str(7, "ClientIP")
        .str(8, "5.6.7.8")
        .str(9, "10.0.0.0/8")
        .str(10, "")
        .str(11, "Local")
        .int(12, 31000)
        .bool(13, true)
        .msg(14, Enc::new().msg(1, Enc::new().int(1, 10800)))
        .str(17, "SingleStack")
        .str(18, "10.0.0.10")
        .str(19, "IPv4")
        .bool(20, false)
        .str(21, "example.com/lb")
        .str(22, "Cluster");
    let status = Enc::new().msg(1, Enc::new().msg(1, Enc::new().str(1, "9.9.9.9").str(2, "lb.example.com")));
    let svc = Enc::new().msg(2, spec).msg(3, status);
    let d = decoded(&envelope("v1", "Service", &svc));
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "spec": {
                "clusterIP": "10.0.0.10",
                "type": "LoadBalancer",
                "externalIPs": ["1.2.3.4"],
                "sessionAffinity": "ClientIP",
                "loadBalancerIP": "5.6.7.8",
                "loadBalancerSourceRanges": ["10.0.0.0/8"],
                "externalTrafficPolicy": "Local",
                "healthCheckNodePort": 31000,
                "publishNotReadyAddresses": true,
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                "ipFamilyPolicy": "SingleStack",
                "clusterIPs": ["10.0.0.10"],
                "ipFamilies": ["IPv4"],
                "allocateLoadBalancerNodePorts": false,
                "loadBalancerClass": "example.com/lb",
                "internalTrafficPolicy": "Cluster"
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "9.9.9.9", "hostname": "lb.example.com"}]}}
        })
    );
}

#[test]
fn service_externalname() {
    let spec = Enc::new().str(4, "ExternalName").str(10, "db.example.com");
    let d = decoded(&envelope("v1", "Service", &Enc::new().msg(2, spec)));
    assert_eq!(d.object["spec"], json!({"type": "ExternalName", "externalName": "db.example.com"}));
}

#[test]
fn namespace_and_serviceaccount() {
    let ns = Enc::new()
        .msg(1, object_meta("team-a", &[]))
        .msg(2, Enc::new().str(1, "kubernetes"))
        .msg(3, Enc::new().str(1, ""));
    let d = decoded(&envelope("v1", "Namespace", &ns));
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "creationTimestamp": null},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {}
        })
    );

    let sa = Enc::new()
        .msg(1, object_meta("builder", &[]))
        .msg(2, Enc::new().str(1, "Secret").str(3, "builder-token"))
        .msg(3, Enc::new().str(1, "regcred"))
        .bool(4, false);
    let d = decoded(&envelope("v1", "ServiceAccount", &sa));
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "builder", "creationTimestamp": null},
            "secrets": [{"kind": "Secret", "name": "builder-token"}],
            "imagePullSecrets": [{"name": "regcred"}],
            "automountServiceAccountToken": false
        })
    );
}

#[test]
fn job_from_kubectl_create_job() {
    // kubectl create job my-job --image=busybox -- date
    let template = Enc::new()
        .msg(1, object_meta("", &[]))
        .msg(2, pod_spec(vec![container("my-job", "busybox", |c| c.str(3, "date"))], "Never"));
    let job = Enc::new()
        .msg(1, object_meta("my-job", &[]))
        .msg(2, Enc::new().msg(6, template))
        .msg(3, Enc::new().int(4, 0).int(5, 0).int(6, 0).str(7, ""));
    let d = decoded(&envelope("batch/v1", "Job", &job));
    assert!(d.unknown_fields.is_empty());
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "my-job", "creationTimestamp": null},
            "spec": {
                "template": {
                    "metadata": {"creationTimestamp": null},
                    "spec": {
                        "containers": [{
                            "name": "my-job",
                            "image": "busybox",
                            "command": ["date"],
                            "resources": {}
                        }],
                        "restartPolicy": "Never"
                    }
                }
            },
            "status": {}
        })
    );
}

#[test]
fn token_request_from_kubectl_create_token() {
    // kubectl create token builder --audience=api --duration=1h --bound-object-kind=Pod ...
    let spec = Enc::new()
        .str(1, "api")
        .str(1, "vault")
        .msg(3, Enc::new().str(1, "Pod").str(2, "v1").str(3, "web-0").str(4, "0f2c"))
        .int(4, 3600);
    let status = Enc::new().str(1, "").msg(2, Enc::new());
    let tr = Enc::new().msg(1, object_meta("", &[])).msg(2, spec).msg(3, status);
    let d = decoded(&envelope("authentication.k8s.io/v1", "TokenRequest", &tr));
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"creationTimestamp": null},
            "spec": {
                "audiences": ["api", "vault"],
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": "0f2c"},
                "expirationSeconds": 3600
            },
            "status": {"token": "", "expirationTimestamp": null}
        })
    );
}

#[test]
fn rbac_role_and_priority_class() {
    let rule = Enc::new().str(1, "get").str(1, "list").str(2, "").str(3, "pods");
    let d = decoded(&envelope(
        "rbac.authorization.k8s.io/v1",
        "Role",
        &Enc::new().msg(1, object_meta("reader", &[])).msg(2, rule),
    ));
    assert_eq!(d.object["rules"], json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]));

    let pc = Enc::new().msg(1, object_meta("high", &[])).int(2, 1_000_000).bool(3, false).str(4, "").str(5, "Never");
    let d = decoded(&envelope("scheduling.k8s.io/v1", "PriorityClass", &pc));
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": "high", "creationTimestamp": null},
            "value": 1_000_000,
            "preemptionPolicy": "Never"
        })
    );
}

#[test]
fn negative_int32_and_int64() {
    // int32 -1 arrives sign-extended to 10 bytes.
    let pc = Enc::new().int(2, -1);
    let d = decoded(&envelope("scheduling.k8s.io/v1", "PriorityClass", &pc));
    assert_eq!(d.object["value"], json!(-1));
    let opts = Enc::new().int(1, -5);
    let d = decoded(&envelope("v1", "DeleteOptions", &opts));
    assert_eq!(d.object["gracePeriodSeconds"], json!(-5));
}

// ---------------------------------------------------------------------------
// Semantics.

#[test]
fn presence_and_zero_values() {
    // omitempty non-pointer zero: dropped; pointer zero: kept;
    // non-omitempty zero: kept.
    let port = Enc::new().str(1, "").int(3, 0).int(5, 0);
    let spec = Enc::new().msg(1, port).str(3, "").bool(13, false).bool(20, false);
    let d = decoded(&envelope("v1", "Service", &Enc::new().msg(2, spec)));
    assert_eq!(d.object["spec"], json!({"ports": [{"port": 0}], "allocateLoadBalancerNodePorts": false}));
}

#[test]
fn repeated_message_field_merges_and_scalars_replace() {
    let secret = Enc::new()
        .msg(1, Enc::new().str(1, "first").map_str(11, "a", "1"))
        .msg(1, Enc::new().str(3, "ns").map_str(11, "b", "2").map_str(11, "a", "3"))
        .str(3, "Opaque")
        .str(3, "") // a later zero clears an omitempty field
        .msg(1, Enc::new().str(1, "second"));
    let d = decoded(&envelope("v1", "Secret", &secret));
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "second", "namespace": "ns", "labels": {"a": "3", "b": "2"}}
        })
    );
}

#[test]
fn map_entries_with_missing_parts() {
    let secret = Enc::new()
        .msg(2, Enc::new().str(1, "no-value"))
        .msg(2, Enc::new().bytes(2, b"x"))
        .msg(4, Enc::new().str(2, "v"));
    let d = decoded(&envelope("v1", "Secret", &secret));
    assert_eq!(d.object["data"], json!({"no-value": "", "": "eA=="}));
    assert_eq!(d.object["stringData"], json!({"": "v"}));
}

#[test]
fn packed_and_unpacked_repeated_ints() {
    let mut packed = Enc::new();
    for v in [1u64, 300, 70000] {
        packed.raw_varint(v);
    }
    let sc = Enc::new().int(4, 7).bytes(4, &packed.0).int(4, -2);
    let pod = Enc::new().msg(2, Enc::new().msg(14, sc));
    let d = decoded(&envelope("v1", "Pod", &pod));
    assert_eq!(d.object["spec"]["securityContext"]["supplementalGroups"], json!([7, 1, 300, 70000, -2]));
}

#[test]
fn times_and_micro_times() {
    let meta = Enc::new().msg(8, Enc::new().int(1, 1_704_067_200).int(2, 999)).msg(9, Enc::new().int(1, 1_709_210_096));
    let lease_spec = Enc::new()
        .str(1, "node-1")
        .int(2, 40)
        .msg(3, Enc::new().int(1, 1_784_866_189).int(2, 123_456_789))
        .msg(4, Enc::new())
        .int(5, 3);
    let lease = Enc::new().msg(1, meta).msg(2, lease_spec);
    let d = decoded(&envelope("coordination.k8s.io/v1", "Lease", &lease));
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "creationTimestamp": "2024-01-01T00:00:00Z",
                "deletionTimestamp": "2024-02-29T12:34:56Z"
            },
            "spec": {
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 40,
                "acquireTime": "2026-07-24T04:09:49.123456Z",
                "renewTime": null,
                "leaseTransitions": 3
            }
        })
    );
}

#[test]
fn rfc3339_formatting() {
    assert_eq!(rfc3339(0, None).as_deref(), Some("1970-01-01T00:00:00Z"));
    assert_eq!(rfc3339(-1, None).as_deref(), Some("1969-12-31T23:59:59Z"));
    assert_eq!(rfc3339(-2_203_891_200, None).as_deref(), Some("1900-03-01T00:00:00Z"));
    assert_eq!(rfc3339(951_782_400, Some(7)).as_deref(), Some("2000-02-29T00:00:00.000007Z"));
    assert_eq!(rfc3339(253_402_300_799, None).as_deref(), Some("9999-12-31T23:59:59Z"));
    assert_eq!(rfc3339(-62_167_219_200, None).as_deref(), Some("0000-01-01T00:00:00Z"));
    assert_eq!(rfc3339(253_402_300_800, None), None);
    assert_eq!(rfc3339(i64::MIN, None), None);
}

#[test]
fn time_edge_cases() {
    // Seconds 0 in a non-empty message is the epoch, not the zero time.
    let meta = |t: Enc| Enc::new().msg(1, Enc::new().msg(8, t));
    let d = decoded(&envelope("v1", "Secret", &meta(Enc::new().int(1, 0))));
    assert_eq!(d.object["metadata"]["creationTimestamp"], json!("1970-01-01T00:00:00Z"));
    // Go's zero time is null however it is spelled.
    let d = decoded(&envelope("v1", "Secret", &meta(Enc::new().int(1, -62_135_596_800))));
    assert_eq!(d.object["metadata"]["creationTimestamp"], json!(null));
    // Out of range is an error, not a panic.
    let e = decode_err(&envelope("v1", "Secret", &meta(Enc::new().int(1, i64::MAX))));
    assert!(matches!(&e, ProtobufError::InvalidValue { path, .. } if path == "metadata.creationTimestamp"), "{e:?}");
    let lease = Enc::new().msg(2, Enc::new().msg(3, Enc::new().int(1, i64::MIN).int(2, -1)));
    let e = decode_err(&envelope("coordination.k8s.io/v1", "Lease", &lease));
    assert!(matches!(e, ProtobufError::InvalidValue { .. }), "{e:?}");
}

#[test]
fn int_or_string_and_quantity() {
    let pdb_spec = Enc::new()
        .msg(1, Enc::new().int(1, 1).str(3, "50%"))
        .msg(2, Enc::new().map_str(1, "app", "db"))
        .msg(3, Enc::new().int(2, 2));
    let d = decoded(&envelope("policy/v1", "PodDisruptionBudget", &Enc::new().msg(2, pdb_spec)));
    assert_eq!(
        d.object["spec"],
        json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "db"}}, "maxUnavailable": 2})
    );

    let bad = Enc::new().msg(2, Enc::new().msg(1, Enc::new().int(1, 2)));
    let e = decode_err(&envelope("policy/v1", "PodDisruptionBudget", &bad));
    assert!(matches!(&e, ProtobufError::InvalidValue { path, .. } if path == "spec.minAvailable"), "{e:?}");

    let quota = Enc::new().msg(
        2,
        Enc::new().map_msg(1, "pods", Enc::new().str(1, "10")).map_msg(1, "requests.cpu", Enc::new().str(1, "4")),
    );
    let d = decoded(&envelope("v1", "ResourceQuota", &quota));
    assert_eq!(d.object["spec"], json!({"hard": {"pods": "10", "requests.cpu": "4"}}));
}

#[test]
fn raw_extension_json_and_nested_protobuf() {
    let rev = Enc::new()
        .msg(1, object_meta("rev-1", &[]))
        .msg(2, Enc::new().bytes(1, br#"{"spec":{"template":{"x":1}}}"#))
        .int(3, 1);
    let d = decoded(&envelope("apps/v1", "ControllerRevision", &rev));
    assert_eq!(d.object["data"], json!({"spec": {"template": {"x": 1}}}));
    assert_eq!(d.object["revision"], json!(1));

    let inner = envelope("v1", "ConfigMap", &Enc::new().map_str(2, "k", "v").int(99, 1));
    let rev = Enc::new().msg(2, Enc::new().bytes(1, &inner));
    let d = decoded(&envelope("apps/v1", "ControllerRevision", &rev));
    assert_eq!(d.object["data"], json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}}));
    assert_eq!(d.unknown_fields, vec!["data.#99".to_owned()]);

    let rev = Enc::new().msg(2, Enc::new().bytes(1, b"{not json"));
    let e = decode_err(&envelope("apps/v1", "ControllerRevision", &rev));
    assert!(matches!(&e, ProtobufError::InvalidValue { path, .. } if path == "data"), "{e:?}");
}

#[test]
fn string_lists_in_maps() {
    let spec = Enc::new()
        .bytes(1, b"CSR")
        .str(7, "kubernetes.io/kube-apiserver-client")
        .str(5, "client auth")
        .map_msg(6, "scopes", Enc::new().str(1, "a").str(1, "b"))
        .map_msg(6, "none", Enc::new());
    let d = decoded(&envelope("certificates.k8s.io/v1", "CertificateSigningRequest", &Enc::new().msg(2, spec)));
    assert_eq!(
        d.object["spec"],
        json!({
            "request": "Q1NS",
            "signerName": "kubernetes.io/kube-apiserver-client",
            "usages": ["client auth"],
            "extra": {"scopes": ["a", "b"], "none": null}
        })
    );
}

#[test]
fn decode_expecting_fills_an_empty_type_meta() {
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&Enc::new().msg(1, Enc::new()).msg(2, Enc::new().msg(1, Enc::new().str(1, "n"))).0);
    assert!(matches!(decode(&body), Err(ProtobufError::UnknownKind { .. })));
    let d = decode_expecting(&body, "v1", "ConfigMap").expect("decodes");
    assert_eq!(d.object, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"}}));
    // The envelope wins over the defaults.
    let body = envelope("v1", "Secret", &Enc::new());
    let d = decode_expecting(&body, "v1", "ConfigMap").expect("decodes");
    assert_eq!(d.kind, "Secret");
}

#[test]
fn empty_object() {
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&Enc::new().msg(1, Enc::new().str(1, "v1").str(2, "Namespace")).0);
    let d = decoded(&body);
    assert_eq!(d.object, json!({"apiVersion": "v1", "kind": "Namespace"}));
}

#[test]
fn unknown_fields_are_skipped_and_reported() {
    let meta = object_meta("x", &[("k", "v")]).int(42, 7).msg(11, Enc::new().str(1, "k2").str(2, "v2").int(3, 1));
    let port = Enc::new().int(3, 80).fixed32(77, 5);
    let spec = Enc::new().msg(1, Enc::new().int(3, 443)).msg(1, port).fixed64(1000, 1).str(5000, "future");
    let svc = Enc::new().msg(1, meta).msg(2, spec).msg(9, Enc::new().msg(1, Enc::new().msg(1, Enc::new())));
    let d = decoded(&envelope("v1", "Service", &svc));
    assert_eq!(
        d.unknown_fields,
        vec!["metadata.#42", "metadata.labels.#3", "spec.ports[1].#77", "spec.#1000", "spec.#5000", "#9",]
    );
    assert_eq!(
        d.object,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "x", "creationTimestamp": null, "labels": {"k": "v", "k2": "v2"}},
            "spec": {"ports": [{"port": 443}, {"port": 80}]}
        })
    );
}

#[test]
fn unknown_fields_inside_special_types() {
    let meta = Enc::new().msg(8, Enc::new().int(1, 0).int(3, 1));
    let pdb = Enc::new().msg(1, meta).msg(2, Enc::new().msg(1, Enc::new().int(2, 3).int(4, 1)));
    let d = decoded(&envelope("policy/v1", "PodDisruptionBudget", &pdb));
    assert_eq!(d.unknown_fields, vec!["metadata.creationTimestamp.#3", "spec.minAvailable.#4"]);
}

// ---------------------------------------------------------------------------
// Errors.

#[test]
fn magic_is_required() {
    assert_eq!(decode_err(b""), ProtobufError::MissingMagic);
    assert_eq!(decode_err(b"k8s"), ProtobufError::MissingMagic);
    assert_eq!(decode_err(b"{\"kind\":\"Secret\"}"), ProtobufError::MissingMagic);
    let mut body = envelope("v1", "Secret", &Enc::new());
    body[3] = 1;
    assert_eq!(decode_err(&body), ProtobufError::MissingMagic);
    assert_eq!(ProtobufError::MissingMagic.http_status(), 400);
}

#[test]
fn unknown_kind_is_415() {
    let e = decode_err(&envelope("example.com/v1", "Widget", &Enc::new()));
    assert_eq!(e, ProtobufError::UnknownKind { api_version: "example.com/v1".into(), kind: "Widget".into() });
    assert_eq!(e.http_status(), 415);
    // A known kind in the wrong group is unknown too.
    let e = decode_err(&envelope("apps/v1", "Secret", &Enc::new()));
    assert_eq!(e.http_status(), 415);
}

#[test]
fn truncations() {
    let full = envelope("apps/v1", "Deployment", &nginx_deployment());
    for len in 4..full.len() {
        match decode(&full[..len]) {
            Err(ProtobufError::Truncated { .. }) | Err(ProtobufError::UnknownKind { .. }) => {}
            // A cut between two fields of the envelope leaves a valid
            // message.
            Ok(_) => {}
            Err(e) => panic!("prefix of {len} bytes: unexpected {e:?}"),
        }
    }
    // A length running past the end, inside the object.
    let secret = Enc::new().raw(&[0x0a, 0x05, b'a']);
    let e = decode_err(&envelope("v1", "Secret", &secret));
    assert_eq!(e, ProtobufError::Truncated { path: "<root>".into() });
    // A truncated varint.
    let secret = Enc::new().msg(1, Enc::new().raw(&[0x38, 0x80]));
    let e = decode_err(&envelope("v1", "Secret", &secret));
    assert_eq!(e, ProtobufError::Truncated { path: "metadata".into() });
    // A truncated fixed64.
    let secret = Enc::new().raw(&[0x09, 1, 2, 3]);
    assert!(matches!(decode_err(&envelope("v1", "Secret", &secret)), ProtobufError::Truncated { .. }));
}

#[test]
fn malformed_varints_and_tags() {
    let secret = Enc::new().raw(&[0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(decode_err(&envelope("v1", "Secret", &secret)), ProtobufError::VarintOverflow { path: "<root>".into() });
    // Field number 0.
    let secret = Enc::new().raw(&[0x02, 0x00]);
    assert_eq!(
        decode_err(&envelope("v1", "Secret", &secret)),
        ProtobufError::InvalidTag { path: "<root>".into(), tag: 2 }
    );
    // A field number beyond 2^29 - 1.
    let mut secret = Enc::new();
    secret.raw_varint(1 << 32);
    assert!(matches!(decode_err(&envelope("v1", "Secret", &secret)), ProtobufError::InvalidTag { .. }));
    // Groups.
    for wire_type in [3u8, 4, 6, 7] {
        let secret = Enc::new().raw(&[(5 << 3) | wire_type, 0]);
        assert_eq!(
            decode_err(&envelope("v1", "Secret", &secret)),
            ProtobufError::UnsupportedWireType { path: "<root>".into(), wire_type }
        );
    }
}

#[test]
fn wire_type_mismatches() {
    // A string field sent as a varint.
    let secret = Enc::new().msg(1, Enc::new().varint(1, 5));
    assert_eq!(
        decode_err(&envelope("v1", "Secret", &secret)),
        ProtobufError::WireTypeMismatch { path: "metadata.name".into(), expected: 2, found: 0 }
    );
    // A bool sent as a string.
    let secret = Enc::new().str(5, "true");
    assert_eq!(
        decode_err(&envelope("v1", "Secret", &secret)),
        ProtobufError::WireTypeMismatch { path: "immutable".into(), expected: 0, found: 2 }
    );
    // A message sent as fixed32, inside a list element.
    let svc = Enc::new().msg(2, Enc::new().msg(1, Enc::new().fixed32(4, 1)));
    assert_eq!(
        decode_err(&envelope("v1", "Service", &svc)),
        ProtobufError::WireTypeMismatch { path: "spec.ports[0].targetPort".into(), expected: 2, found: 5 }
    );
    // The envelope's type meta sent as a varint.
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&Enc::new().varint(1, 1).0);
    assert!(matches!(decode_err(&body), ProtobufError::WireTypeMismatch { .. }));
}

#[test]
fn invalid_utf8() {
    let cm = Enc::new().msg(2, Enc::new().str(1, "k").bytes(2, &[0xff, 0xfe]));
    assert_eq!(decode_err(&envelope("v1", "ConfigMap", &cm)), ProtobufError::InvalidUtf8 { path: "data[k]".into() });
    let cm = Enc::new().msg(2, Enc::new().bytes(1, &[b'k', 0xc3]));
    assert_eq!(decode_err(&envelope("v1", "ConfigMap", &cm)), ProtobufError::InvalidUtf8 { path: "data".into() });
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&Enc::new().msg(1, Enc::new().bytes(2, &[0x80])).0);
    assert!(matches!(decode_err(&body), ProtobufError::InvalidUtf8 { .. }));
}

#[test]
fn content_encoding_and_type() {
    let unknown = |encoding: &str, content_type: &str| {
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(
            &Enc::new()
                .msg(1, Enc::new().str(1, "v1").str(2, "Secret"))
                .bytes(2, &[])
                .str(3, encoding)
                .str(4, content_type)
                .0,
        );
        body
    };
    assert_eq!(decode_err(&unknown("gzip", "")), ProtobufError::UnsupportedContentEncoding("gzip".into()));
    assert_eq!(
        decode_err(&unknown("", "application/json")),
        ProtobufError::UnsupportedContentType("application/json".into())
    );
    assert!(decode(&unknown("", "application/vnd.kubernetes.protobuf")).is_ok());
}

// ---------------------------------------------------------------------------
// Depth and garbage.

/// A test-only recursive schema.
static NODE: Message = Message::new("Node", &[field(1, "child", Ty::Msg(&NODE)), list(2, "children", Ty::Msg(&NODE))]);

fn nested(levels: usize, number: u32) -> Vec<u8> {
    let mut m = Enc::new();
    for _ in 0..levels {
        m = Enc::new().msg(number, m);
    }
    m.0
}

#[test]
fn recursion_is_bounded() {
    for number in [1, 2] {
        let mut out = Map::new();
        let ok = Decoder::default().message(&nested(MAX_DEPTH - 1, number), &NODE, &mut out, 1);
        assert!(ok.is_ok(), "{ok:?}");
        let mut out = Map::new();
        let e = Decoder::default().message(&nested(10 * MAX_DEPTH, number), &NODE, &mut out, 1);
        assert!(matches!(&e, Err(ProtobufError::TooDeep { max, .. }) if *max == MAX_DEPTH), "{e:?}");
    }
}

#[test]
fn nested_envelopes_are_bounded() {
    // ControllerRevision.data holding a ControllerRevision, and so on.
    let mut body = envelope("apps/v1", "ControllerRevision", &Enc::new().int(3, 1));
    for _ in 0..20 {
        body = envelope("apps/v1", "ControllerRevision", &Enc::new().msg(2, Enc::new().bytes(1, &body)));
    }
    let d = decoded(&body);
    assert_eq!(d.object["data"]["data"]["kind"], json!("ControllerRevision"));
    for _ in 0..200 {
        body = envelope("apps/v1", "ControllerRevision", &Enc::new().msg(2, Enc::new().bytes(1, &body)));
    }
    assert!(matches!(decode_err(&body), ProtobufError::TooDeep { .. }));
}

#[test]
fn deeply_nested_unknown_fields_cost_no_recursion() {
    let secret = Enc::new().msg(1, object_meta("s", &[])).raw(&nested(10_000, 99));
    let d = decoded(&envelope("v1", "Secret", &secret));
    assert_eq!(d.unknown_fields, vec!["#99"]);
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A message of random but well-formed fields, for reaching deep into
    /// the schemas.
    fn message(&mut self, depth: u32) -> Enc {
        let mut m = Enc::new();
        for _ in 0..self.below(6) {
            let number = 1 + self.below(40) as u32;
            m = match self.below(8) {
                0 | 1 => m.varint(number, self.next() >> self.below(64)),
                2 => m.fixed64(number, self.next()),
                3 => m.fixed32(number, self.next() as u32),
                4 => {
                    let s: String = (0..self.below(8)).map(|_| char::from(b'a' + self.below(26) as u8)).collect();
                    m.str(number, &s)
                }
                5 => m.bytes(number, &self.bytes(12)),
                _ if depth < 12 => m.msg(number, self.message(depth + 1)),
                _ => m.msg(number, Enc::new()),
            };
        }
        m
    }
}

fn check_no_panic(body: &[u8]) {
    if let Ok(d) = decode(body) {
        assert!(d.object.is_object());
        assert!(serde_json::to_string(&d.object).is_ok());
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Random bytes, bare and behind the magic.
    for _ in 0..5_000 {
        let tail = rng.bytes(64);
        check_no_panic(&tail);
        let mut body = MAGIC.to_vec();
        body.extend_from_slice(&tail);
        check_no_panic(&body);
    }
    // Random well-formed messages of every kind.
    for k in schema::KINDS {
        for _ in 0..300 {
            let raw = rng.message(0);
            check_no_panic(&envelope(k.api_version, k.kind, &raw));
        }
    }
    // Every single-bit flip and a few random rewrites of valid bodies.
    let valid = [
        envelope("apps/v1", "Deployment", &nginx_deployment()),
        envelope(
            "v1",
            "Secret",
            &Enc::new()
                .msg(1, object_meta("nginxsecret", &[]))
                .map_bytes(2, "tls.crt", CERT)
                .str(3, "kubernetes.io/tls"),
        ),
    ];
    for body in &valid {
        for i in 0..body.len() {
            for bit in 0..8 {
                let mut flipped = body.clone();
                flipped[i] ^= 1 << bit;
                check_no_panic(&flipped);
            }
        }
        for _ in 0..2_000 {
            let mut mutated = body.clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(mutated.len() as u64) as usize;
                mutated[i] = rng.next() as u8;
            }
            check_no_panic(&mutated);
        }
    }
}

// ---------------------------------------------------------------------------
// The schema itself.

fn each_message(message: &'static Message, seen: &mut Vec<*const Message>, f: &mut impl FnMut(&'static Message)) {
    if seen.contains(&(message as *const Message)) {
        return;
    }
    seen.push(message);
    f(message);
    for field in message.fields {
        if let Ty::Msg(inner) = field.ty {
            each_message(inner, seen, f);
        }
    }
}

#[test]
fn schema_tables_are_consistent() {
    let mut seen = Vec::new();
    let mut count = 0;
    for k in schema::KINDS {
        each_message(k.message, &mut seen, &mut |m| {
            count += 1;
            let mut numbers: Vec<u32> = m.fields.iter().map(|f| f.number).collect();
            numbers.sort_unstable();
            numbers.dedup();
            assert_eq!(numbers.len(), m.fields.len(), "{}: duplicate field numbers", m.name);
            for f in m.fields {
                assert!(f.number > 0 && f.number < 1 << 29, "{}.{}", m.name, f.json);
                match f.shape {
                    Shape::Inline => {
                        assert!(matches!(f.ty, Ty::Msg(_)), "{}: inline non-message", m.name);
                        assert!(f.json.is_empty());
                    }
                    Shape::Single { omit_zero } => {
                        assert!(!f.json.is_empty(), "{}.{}", m.name, f.number);
                        if omit_zero {
                            assert!(
                                matches!(f.ty, Ty::Str | Ty::Bytes | Ty::I32 | Ty::I64 | Ty::Bool),
                                "{}.{}: omitzero on a non-scalar",
                                m.name,
                                f.json
                            );
                        }
                    }
                    Shape::List | Shape::Map => assert!(!f.json.is_empty()),
                }
            }
            let mut names: Vec<&str> = m.fields.iter().filter(|f| f.shape != Shape::Inline).map(|f| f.json).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(
                names.len(),
                m.fields.iter().filter(|f| f.shape != Shape::Inline).count(),
                "{}: duplicate JSON names",
                m.name
            );
        });
    }
    assert!(count > 200, "{count} messages");
}

#[test]
fn supported_kinds_cover_kubectl_create() {
    for (api_version, kind) in [
        ("v1", "Secret"),
        ("v1", "ConfigMap"),
        ("v1", "Namespace"),
        ("v1", "ServiceAccount"),
        ("v1", "Service"),
        ("v1", "Pod"),
        ("v1", "ResourceQuota"),
        ("apps/v1", "Deployment"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("policy/v1", "PodDisruptionBudget"),
        ("policy/v1", "Eviction"),
        ("networking.k8s.io/v1", "Ingress"),
        ("v1", "DeleteOptions"),
        ("policy/v1", "DeleteOptions"),
        ("meta.k8s.io/v1", "DeleteOptions"),
    ] {
        assert!(super::is_supported(api_version, kind), "{api_version} {kind}");
    }
    assert!(!super::is_supported("example.com/v1", "DeleteOptions"));
    assert!(!super::is_supported("v1", "Widget"));
    assert!(super::supported_kinds().any(|k| k == ("batch/v1", "CronJob")));
    // Every kind decodes from an empty object.
    for (api_version, kind) in super::supported_kinds() {
        let d = decoded(&envelope(api_version, kind, &Enc::new()));
        assert_eq!(d.object, json!({"apiVersion": api_version, "kind": kind}));
    }
}

#[test]
fn eviction_with_delete_options() {
    let ev = Enc::new()
        .msg(1, object_meta("web-0", &[]))
        .msg(2, Enc::new().int(1, 0).msg(2, Enc::new().str(1, "uid-1")).str(5, "All"));
    let d = decoded(&envelope("policy/v1", "Eviction", &ev));
    assert_eq!(
        d.object["deleteOptions"],
        json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "uid-1"}, "dryRun": ["All"]})
    );
}

#[test]
fn cronjob_and_ingress() {
    let job_template = Enc::new().msg(1, object_meta("", &[])).msg(
        2,
        Enc::new().msg(
            6,
            Enc::new()
                .msg(1, object_meta("", &[]))
                .msg(2, pod_spec(vec![container("c", "busybox", |c| c)], "OnFailure")),
        ),
    );
    let cj = Enc::new()
        .msg(1, object_meta("nightly", &[]))
        .msg(2, Enc::new().str(1, "0 3 * * *").str(3, "").bool(4, false).msg(5, job_template))
        .msg(3, Enc::new());
    let d = decoded(&envelope("batch/v1", "CronJob", &cj));
    assert!(d.unknown_fields.is_empty());
    assert_eq!(d.object["spec"]["schedule"], json!("0 3 * * *"));
    assert_eq!(d.object["spec"]["suspend"], json!(false));
    assert_eq!(d.object["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"], json!("OnFailure"));

    let backend = Enc::new().msg(4, Enc::new().str(1, "web").msg(2, Enc::new().str(1, "").int(2, 80)));
    let path = Enc::new().str(1, "/").msg(2, backend).str(3, "Prefix");
    let rule = Enc::new().str(1, "example.com").msg(2, Enc::new().msg(1, Enc::new().msg(1, path)));
    let ing = Enc::new()
        .msg(1, object_meta("web", &[]))
        .msg(2, Enc::new().msg(3, rule).str(4, "nginx"))
        .msg(3, Enc::new().msg(1, Enc::new()));
    let d = decoded(&envelope("networking.k8s.io/v1", "Ingress", &ing));
    assert!(d.unknown_fields.is_empty(), "{:?}", d.unknown_fields);
    assert_eq!(
        d.object["spec"],
        json!({
            "rules": [{
                "host": "example.com",
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}
                }]}
            }],
            "ingressClassName": "nginx"
        })
    );
    assert_eq!(d.object["status"], json!({"loadBalancer": {}}));
}

#[test]
fn errors_display_paths() {
    let e = ProtobufError::WireTypeMismatch { path: "spec.ports[0].port".into(), expected: 0, found: 2 };
    assert_eq!(e.to_string(), "spec.ports[0].port: expected protobuf wire type 0, found 2");
    let v: Value = json!(null);
    assert!(v.is_null());
}
