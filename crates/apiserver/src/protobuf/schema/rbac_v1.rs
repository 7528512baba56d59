//! Field tables for the `k8s.io.api.rbac.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::meta_v1;
use super::{Message, field, list, omitzero};

pub(crate) static AGGREGATION_RULE: Message =
    Message::new("AggregationRule", &[list(1, "clusterRoleSelectors", Msg(&meta_v1::LABEL_SELECTOR))]);

pub(crate) static CLUSTER_ROLE: Message = Message::new(
    "ClusterRole",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        list(2, "rules", Msg(&POLICY_RULE)),
        field(3, "aggregationRule", Msg(&AGGREGATION_RULE)),
    ],
);

pub(crate) static CLUSTER_ROLE_BINDING: Message = Message::new(
    "ClusterRoleBinding",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        list(2, "subjects", Msg(&SUBJECT)),
        field(3, "roleRef", Msg(&ROLE_REF)),
    ],
);

pub(crate) static POLICY_RULE: Message = Message::new(
    "PolicyRule",
    &[
        list(1, "verbs", Str),
        list(2, "apiGroups", Str),
        list(3, "resources", Str),
        list(4, "resourceNames", Str),
        list(5, "nonResourceURLs", Str),
    ],
);

pub(crate) static ROLE: Message =
    Message::new("Role", &[field(1, "metadata", Msg(&meta_v1::OBJECT_META)), list(2, "rules", Msg(&POLICY_RULE))]);

pub(crate) static ROLE_BINDING: Message = Message::new(
    "RoleBinding",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        list(2, "subjects", Msg(&SUBJECT)),
        field(3, "roleRef", Msg(&ROLE_REF)),
    ],
);

pub(crate) static ROLE_REF: Message =
    Message::new("RoleRef", &[field(1, "apiGroup", Str), field(2, "kind", Str), field(3, "name", Str)]);

pub(crate) static SUBJECT: Message = Message::new(
    "Subject",
    &[field(1, "kind", Str), omitzero(2, "apiGroup", Str), field(3, "name", Str), omitzero(4, "namespace", Str)],
);
