//! Field tables for the `k8s.io.api.coordination.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::meta_v1;
use super::{Message, field};

pub(crate) static LEASE: Message =
    Message::new("Lease", &[field(1, "metadata", Msg(&meta_v1::OBJECT_META)), field(2, "spec", Msg(&LEASE_SPEC))]);

pub(crate) static LEASE_SPEC: Message = Message::new(
    "LeaseSpec",
    &[
        field(1, "holderIdentity", Str),
        field(2, "leaseDurationSeconds", I32),
        field(3, "acquireTime", MicroTime),
        field(4, "renewTime", MicroTime),
        field(5, "leaseTransitions", I32),
        field(6, "strategy", Str),
        field(7, "preferredHolder", Str),
    ],
);
