//! Field tables for the `k8s.io.api.certificates.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::meta_v1;
use super::{Message, field, list, map, omitzero};

pub(crate) static CERTIFICATE_SIGNING_REQUEST: Message = Message::new(
    "CertificateSigningRequest",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&CERTIFICATE_SIGNING_REQUEST_SPEC)),
        field(3, "status", Msg(&CERTIFICATE_SIGNING_REQUEST_STATUS)),
    ],
);

pub(crate) static CERTIFICATE_SIGNING_REQUEST_CONDITION: Message = Message::new(
    "CertificateSigningRequestCondition",
    &[
        field(1, "type", Str),
        omitzero(2, "reason", Str),
        omitzero(3, "message", Str),
        field(4, "lastUpdateTime", Time),
        field(5, "lastTransitionTime", Time),
        field(6, "status", Str),
    ],
);

pub(crate) static CERTIFICATE_SIGNING_REQUEST_SPEC: Message = Message::new(
    "CertificateSigningRequestSpec",
    &[
        field(1, "request", Bytes),
        omitzero(2, "username", Str),
        omitzero(3, "uid", Str),
        list(4, "groups", Str),
        list(5, "usages", Str),
        map(6, "extra", StrList),
        field(7, "signerName", Str),
        field(8, "expirationSeconds", I32),
    ],
);

pub(crate) static CERTIFICATE_SIGNING_REQUEST_STATUS: Message = Message::new(
    "CertificateSigningRequestStatus",
    &[list(1, "conditions", Msg(&CERTIFICATE_SIGNING_REQUEST_CONDITION)), omitzero(2, "certificate", Bytes)],
);
