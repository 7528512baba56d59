//! Field tables for the `k8s.io.api.networking.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::core_v1;
use super::meta_v1;
use super::{Message, field, inline, list, omitzero};

pub(crate) static HTTP_INGRESS_PATH: Message = Message::new(
    "HTTPIngressPath",
    &[omitzero(1, "path", Str), field(2, "backend", Msg(&INGRESS_BACKEND)), field(3, "pathType", Str)],
);

pub(crate) static HTTP_INGRESS_RULE_VALUE: Message =
    Message::new("HTTPIngressRuleValue", &[list(1, "paths", Msg(&HTTP_INGRESS_PATH))]);

pub(crate) static INGRESS: Message = Message::new(
    "Ingress",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&INGRESS_SPEC)),
        field(3, "status", Msg(&INGRESS_STATUS)),
    ],
);

pub(crate) static INGRESS_BACKEND: Message = Message::new(
    "IngressBackend",
    &[
        field(3, "resource", Msg(&core_v1::TYPED_LOCAL_OBJECT_REFERENCE)),
        field(4, "service", Msg(&INGRESS_SERVICE_BACKEND)),
    ],
);

pub(crate) static INGRESS_LOAD_BALANCER_INGRESS: Message = Message::new(
    "IngressLoadBalancerIngress",
    &[omitzero(1, "ip", Str), omitzero(2, "hostname", Str), list(4, "ports", Msg(&INGRESS_PORT_STATUS))],
);

pub(crate) static INGRESS_LOAD_BALANCER_STATUS: Message =
    Message::new("IngressLoadBalancerStatus", &[list(1, "ingress", Msg(&INGRESS_LOAD_BALANCER_INGRESS))]);

pub(crate) static INGRESS_PORT_STATUS: Message =
    Message::new("IngressPortStatus", &[field(1, "port", I32), field(2, "protocol", Str), field(3, "error", Str)]);

pub(crate) static INGRESS_RULE: Message =
    Message::new("IngressRule", &[omitzero(1, "host", Str), inline(2, Msg(&INGRESS_RULE_VALUE))]);

pub(crate) static INGRESS_RULE_VALUE: Message =
    Message::new("IngressRuleValue", &[field(1, "http", Msg(&HTTP_INGRESS_RULE_VALUE))]);

pub(crate) static INGRESS_SERVICE_BACKEND: Message =
    Message::new("IngressServiceBackend", &[field(1, "name", Str), field(2, "port", Msg(&SERVICE_BACKEND_PORT))]);

pub(crate) static INGRESS_SPEC: Message = Message::new(
    "IngressSpec",
    &[
        field(1, "defaultBackend", Msg(&INGRESS_BACKEND)),
        list(2, "tls", Msg(&INGRESS_TLS)),
        list(3, "rules", Msg(&INGRESS_RULE)),
        field(4, "ingressClassName", Str),
    ],
);

pub(crate) static INGRESS_STATUS: Message =
    Message::new("IngressStatus", &[field(1, "loadBalancer", Msg(&INGRESS_LOAD_BALANCER_STATUS))]);

pub(crate) static INGRESS_TLS: Message =
    Message::new("IngressTLS", &[list(1, "hosts", Str), omitzero(2, "secretName", Str)]);

pub(crate) static SERVICE_BACKEND_PORT: Message =
    Message::new("ServiceBackendPort", &[omitzero(1, "name", Str), omitzero(2, "number", I32)]);
