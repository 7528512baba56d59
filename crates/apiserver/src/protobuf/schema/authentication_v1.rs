//! Field tables for the `k8s.io.api.authentication.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::meta_v1;
use super::{Message, field, list, map, omitzero};

pub(crate) static BOUND_OBJECT_REFERENCE: Message = Message::new(
    "BoundObjectReference",
    &[omitzero(1, "kind", Str), omitzero(2, "apiVersion", Str), omitzero(3, "name", Str), omitzero(4, "uid", Str)],
);

pub(crate) static SELF_SUBJECT_REVIEW: Message = Message::new(
    "SelfSubjectReview",
    &[field(1, "metadata", Msg(&meta_v1::OBJECT_META)), field(2, "status", Msg(&SELF_SUBJECT_REVIEW_STATUS))],
);

pub(crate) static SELF_SUBJECT_REVIEW_STATUS: Message =
    Message::new("SelfSubjectReviewStatus", &[field(1, "userInfo", Msg(&USER_INFO))]);

pub(crate) static TOKEN_REQUEST: Message = Message::new(
    "TokenRequest",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&TOKEN_REQUEST_SPEC)),
        field(3, "status", Msg(&TOKEN_REQUEST_STATUS)),
    ],
);

pub(crate) static TOKEN_REQUEST_SPEC: Message = Message::new(
    "TokenRequestSpec",
    &[
        list(1, "audiences", Str),
        field(3, "boundObjectRef", Msg(&BOUND_OBJECT_REFERENCE)),
        field(4, "expirationSeconds", I64),
        map(5, "attestations", StrList),
    ],
);

pub(crate) static TOKEN_REQUEST_STATUS: Message =
    Message::new("TokenRequestStatus", &[field(1, "token", Str), field(2, "expirationTimestamp", Time)]);

pub(crate) static USER_INFO: Message = Message::new(
    "UserInfo",
    &[omitzero(1, "username", Str), omitzero(2, "uid", Str), list(3, "groups", Str), map(4, "extra", StrList)],
);
