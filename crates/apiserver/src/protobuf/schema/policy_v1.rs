//! Field tables for the `k8s.io.api.policy.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::meta_v1;
use super::{Message, field, list, map, omitzero};

pub(crate) static EVICTION: Message = Message::new(
    "Eviction",
    &[field(1, "metadata", Msg(&meta_v1::OBJECT_META)), field(2, "deleteOptions", Msg(&meta_v1::DELETE_OPTIONS))],
);

pub(crate) static POD_DISRUPTION_BUDGET: Message = Message::new(
    "PodDisruptionBudget",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&POD_DISRUPTION_BUDGET_SPEC)),
        field(3, "status", Msg(&POD_DISRUPTION_BUDGET_STATUS)),
    ],
);

pub(crate) static POD_DISRUPTION_BUDGET_SPEC: Message = Message::new(
    "PodDisruptionBudgetSpec",
    &[
        field(1, "minAvailable", IntOrString),
        field(2, "selector", Msg(&meta_v1::LABEL_SELECTOR)),
        field(3, "maxUnavailable", IntOrString),
        field(4, "unhealthyPodEvictionPolicy", Str),
    ],
);

pub(crate) static POD_DISRUPTION_BUDGET_STATUS: Message = Message::new(
    "PodDisruptionBudgetStatus",
    &[
        omitzero(1, "observedGeneration", I64),
        map(2, "disruptedPods", Time),
        field(3, "disruptionsAllowed", I32),
        field(4, "currentHealthy", I32),
        field(5, "desiredHealthy", I32),
        field(6, "expectedPods", I32),
        list(7, "conditions", Msg(&meta_v1::CONDITION)),
    ],
);
