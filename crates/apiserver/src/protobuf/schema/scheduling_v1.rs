//! Field tables for the `k8s.io.api.scheduling.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::meta_v1;
use super::{Message, field, omitzero};

pub(crate) static PRIORITY_CLASS: Message = Message::new(
    "PriorityClass",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "value", I32),
        omitzero(3, "globalDefault", Bool),
        omitzero(4, "description", Str),
        field(5, "preemptionPolicy", Str),
    ],
);
