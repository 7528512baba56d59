//! Field tables for the `k8s.io.api.authorization.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::meta_v1;
use super::{Message, field, list, omitzero};

pub(crate) static FIELD_SELECTOR_ATTRIBUTES: Message = Message::new(
    "FieldSelectorAttributes",
    &[omitzero(1, "rawSelector", Str), list(2, "requirements", Msg(&meta_v1::FIELD_SELECTOR_REQUIREMENT))],
);

pub(crate) static LABEL_SELECTOR_ATTRIBUTES: Message = Message::new(
    "LabelSelectorAttributes",
    &[omitzero(1, "rawSelector", Str), list(2, "requirements", Msg(&meta_v1::LABEL_SELECTOR_REQUIREMENT))],
);

pub(crate) static NON_RESOURCE_ATTRIBUTES: Message =
    Message::new("NonResourceAttributes", &[omitzero(1, "path", Str), omitzero(2, "verb", Str)]);

pub(crate) static NON_RESOURCE_RULE: Message =
    Message::new("NonResourceRule", &[list(1, "verbs", Str), list(2, "nonResourceURLs", Str)]);

pub(crate) static RESOURCE_ATTRIBUTES: Message = Message::new(
    "ResourceAttributes",
    &[
        omitzero(1, "namespace", Str),
        omitzero(2, "verb", Str),
        omitzero(3, "group", Str),
        omitzero(4, "version", Str),
        omitzero(5, "resource", Str),
        omitzero(6, "subresource", Str),
        omitzero(7, "name", Str),
        field(8, "fieldSelector", Msg(&FIELD_SELECTOR_ATTRIBUTES)),
        field(9, "labelSelector", Msg(&LABEL_SELECTOR_ATTRIBUTES)),
    ],
);

pub(crate) static RESOURCE_RULE: Message = Message::new(
    "ResourceRule",
    &[list(1, "verbs", Str), list(2, "apiGroups", Str), list(3, "resources", Str), list(4, "resourceNames", Str)],
);

pub(crate) static SELF_SUBJECT_ACCESS_REVIEW: Message = Message::new(
    "SelfSubjectAccessReview",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&SELF_SUBJECT_ACCESS_REVIEW_SPEC)),
        field(3, "status", Msg(&SUBJECT_ACCESS_REVIEW_STATUS)),
    ],
);

pub(crate) static SELF_SUBJECT_ACCESS_REVIEW_SPEC: Message = Message::new(
    "SelfSubjectAccessReviewSpec",
    &[
        field(1, "resourceAttributes", Msg(&RESOURCE_ATTRIBUTES)),
        field(2, "nonResourceAttributes", Msg(&NON_RESOURCE_ATTRIBUTES)),
    ],
);

pub(crate) static SELF_SUBJECT_RULES_REVIEW: Message = Message::new(
    "SelfSubjectRulesReview",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&SELF_SUBJECT_RULES_REVIEW_SPEC)),
        field(3, "status", Msg(&SUBJECT_RULES_REVIEW_STATUS)),
    ],
);

pub(crate) static SELF_SUBJECT_RULES_REVIEW_SPEC: Message =
    Message::new("SelfSubjectRulesReviewSpec", &[omitzero(1, "namespace", Str)]);

pub(crate) static SUBJECT_ACCESS_REVIEW_STATUS: Message = Message::new(
    "SubjectAccessReviewStatus",
    &[
        field(1, "allowed", Bool),
        omitzero(2, "reason", Str),
        omitzero(3, "evaluationError", Str),
        omitzero(4, "denied", Bool),
    ],
);

pub(crate) static SUBJECT_RULES_REVIEW_STATUS: Message = Message::new(
    "SubjectRulesReviewStatus",
    &[
        list(1, "resourceRules", Msg(&RESOURCE_RULE)),
        list(2, "nonResourceRules", Msg(&NON_RESOURCE_RULE)),
        field(3, "incomplete", Bool),
        omitzero(4, "evaluationError", Str),
    ],
);
