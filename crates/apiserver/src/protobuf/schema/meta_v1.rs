//! Field tables for the `k8s.io.apimachinery.pkg.apis.meta.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::{Message, field, list, map, omitzero};

pub(crate) static CONDITION: Message = Message::new(
    "Condition",
    &[
        field(1, "type", Str),
        field(2, "status", Str),
        omitzero(3, "observedGeneration", I64),
        field(4, "lastTransitionTime", Time),
        field(5, "reason", Str),
        field(6, "message", Str),
    ],
);

pub(crate) static DELETE_OPTIONS: Message = Message::new(
    "DeleteOptions",
    &[
        field(1, "gracePeriodSeconds", I64),
        field(2, "preconditions", Msg(&PRECONDITIONS)),
        field(3, "orphanDependents", Bool),
        field(4, "propagationPolicy", Str),
        list(5, "dryRun", Str),
        field(6, "ignoreStoreReadErrorWithClusterBreakingPotential", Bool),
    ],
);

pub(crate) static FIELD_SELECTOR_REQUIREMENT: Message = Message::new(
    "FieldSelectorRequirement",
    &[field(1, "key", Str), field(2, "operator", Str), list(3, "values", Str)],
);

pub(crate) static LABEL_SELECTOR: Message = Message::new(
    "LabelSelector",
    &[map(1, "matchLabels", Str), list(2, "matchExpressions", Msg(&LABEL_SELECTOR_REQUIREMENT))],
);

pub(crate) static LABEL_SELECTOR_REQUIREMENT: Message = Message::new(
    "LabelSelectorRequirement",
    &[field(1, "key", Str), field(2, "operator", Str), list(3, "values", Str)],
);

pub(crate) static MANAGED_FIELDS_ENTRY: Message = Message::new(
    "ManagedFieldsEntry",
    &[
        omitzero(1, "manager", Str),
        omitzero(2, "operation", Str),
        omitzero(3, "apiVersion", Str),
        field(4, "time", Time),
        omitzero(6, "fieldsType", Str),
        field(7, "fieldsV1", FieldsV1),
        omitzero(8, "subresource", Str),
    ],
);

pub(crate) static OBJECT_META: Message = Message::new(
    "ObjectMeta",
    &[
        omitzero(1, "name", Str),
        omitzero(2, "generateName", Str),
        omitzero(3, "namespace", Str),
        omitzero(4, "selfLink", Str),
        omitzero(5, "uid", Str),
        omitzero(6, "resourceVersion", Str),
        omitzero(7, "generation", I64),
        field(8, "creationTimestamp", Time),
        field(9, "deletionTimestamp", Time),
        field(10, "deletionGracePeriodSeconds", I64),
        map(11, "labels", Str),
        map(12, "annotations", Str),
        list(13, "ownerReferences", Msg(&OWNER_REFERENCE)),
        list(14, "finalizers", Str),
        list(17, "managedFields", Msg(&MANAGED_FIELDS_ENTRY)),
    ],
);

pub(crate) static OWNER_REFERENCE: Message = Message::new(
    "OwnerReference",
    &[
        field(1, "kind", Str),
        field(3, "name", Str),
        field(4, "uid", Str),
        field(5, "apiVersion", Str),
        field(6, "controller", Bool),
        field(7, "blockOwnerDeletion", Bool),
    ],
);

pub(crate) static PRECONDITIONS: Message =
    Message::new("Preconditions", &[field(1, "uid", Str), field(2, "resourceVersion", Str)]);
