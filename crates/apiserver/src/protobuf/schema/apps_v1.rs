//! Field tables for the `k8s.io.api.apps.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::core_v1;
use super::meta_v1;
use super::{Message, field, list, omitzero};

pub(crate) static CONTROLLER_REVISION: Message = Message::new(
    "ControllerRevision",
    &[field(1, "metadata", Msg(&meta_v1::OBJECT_META)), field(2, "data", RawExtension), field(3, "revision", I64)],
);

pub(crate) static DAEMON_SET: Message = Message::new(
    "DaemonSet",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&DAEMON_SET_SPEC)),
        field(3, "status", Msg(&DAEMON_SET_STATUS)),
    ],
);

pub(crate) static DAEMON_SET_CONDITION: Message = Message::new(
    "DaemonSetCondition",
    &[
        field(1, "type", Str),
        field(2, "status", Str),
        field(3, "lastTransitionTime", Time),
        omitzero(4, "reason", Str),
        omitzero(5, "message", Str),
    ],
);

pub(crate) static DAEMON_SET_SPEC: Message = Message::new(
    "DaemonSetSpec",
    &[
        field(1, "selector", Msg(&meta_v1::LABEL_SELECTOR)),
        field(2, "template", Msg(&core_v1::POD_TEMPLATE_SPEC)),
        field(3, "updateStrategy", Msg(&DAEMON_SET_UPDATE_STRATEGY)),
        omitzero(4, "minReadySeconds", I32),
        field(6, "revisionHistoryLimit", I32),
    ],
);

pub(crate) static DAEMON_SET_STATUS: Message = Message::new(
    "DaemonSetStatus",
    &[
        field(1, "currentNumberScheduled", I32),
        field(2, "numberMisscheduled", I32),
        field(3, "desiredNumberScheduled", I32),
        field(4, "numberReady", I32),
        omitzero(5, "observedGeneration", I64),
        omitzero(6, "updatedNumberScheduled", I32),
        omitzero(7, "numberAvailable", I32),
        omitzero(8, "numberUnavailable", I32),
        field(9, "collisionCount", I32),
        list(10, "conditions", Msg(&DAEMON_SET_CONDITION)),
    ],
);

pub(crate) static DAEMON_SET_UPDATE_STRATEGY: Message = Message::new(
    "DaemonSetUpdateStrategy",
    &[omitzero(1, "type", Str), field(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DAEMON_SET))],
);

pub(crate) static DEPLOYMENT: Message = Message::new(
    "Deployment",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&DEPLOYMENT_SPEC)),
        field(3, "status", Msg(&DEPLOYMENT_STATUS)),
    ],
);

pub(crate) static DEPLOYMENT_CONDITION: Message = Message::new(
    "DeploymentCondition",
    &[
        field(1, "type", Str),
        field(2, "status", Str),
        omitzero(4, "reason", Str),
        omitzero(5, "message", Str),
        field(6, "lastUpdateTime", Time),
        field(7, "lastTransitionTime", Time),
    ],
);

pub(crate) static DEPLOYMENT_SPEC: Message = Message::new(
    "DeploymentSpec",
    &[
        field(1, "replicas", I32),
        field(2, "selector", Msg(&meta_v1::LABEL_SELECTOR)),
        field(3, "template", Msg(&core_v1::POD_TEMPLATE_SPEC)),
        field(4, "strategy", Msg(&DEPLOYMENT_STRATEGY)),
        omitzero(5, "minReadySeconds", I32),
        field(6, "revisionHistoryLimit", I32),
        omitzero(7, "paused", Bool),
        field(9, "progressDeadlineSeconds", I32),
    ],
);

pub(crate) static DEPLOYMENT_STATUS: Message = Message::new(
    "DeploymentStatus",
    &[
        omitzero(1, "observedGeneration", I64),
        omitzero(2, "replicas", I32),
        omitzero(3, "updatedReplicas", I32),
        omitzero(4, "availableReplicas", I32),
        omitzero(5, "unavailableReplicas", I32),
        list(6, "conditions", Msg(&DEPLOYMENT_CONDITION)),
        omitzero(7, "readyReplicas", I32),
        field(8, "collisionCount", I32),
        field(9, "terminatingReplicas", I32),
    ],
);

pub(crate) static DEPLOYMENT_STRATEGY: Message = Message::new(
    "DeploymentStrategy",
    &[omitzero(1, "type", Str), field(2, "rollingUpdate", Msg(&ROLLING_UPDATE_DEPLOYMENT))],
);

pub(crate) static REPLICA_SET: Message = Message::new(
    "ReplicaSet",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&REPLICA_SET_SPEC)),
        field(3, "status", Msg(&REPLICA_SET_STATUS)),
    ],
);

pub(crate) static REPLICA_SET_CONDITION: Message = Message::new(
    "ReplicaSetCondition",
    &[
        field(1, "type", Str),
        field(2, "status", Str),
        field(3, "lastTransitionTime", Time),
        omitzero(4, "reason", Str),
        omitzero(5, "message", Str),
    ],
);

pub(crate) static REPLICA_SET_SPEC: Message = Message::new(
    "ReplicaSetSpec",
    &[
        field(1, "replicas", I32),
        field(2, "selector", Msg(&meta_v1::LABEL_SELECTOR)),
        field(3, "template", Msg(&core_v1::POD_TEMPLATE_SPEC)),
        omitzero(4, "minReadySeconds", I32),
    ],
);

pub(crate) static REPLICA_SET_STATUS: Message = Message::new(
    "ReplicaSetStatus",
    &[
        field(1, "replicas", I32),
        omitzero(2, "fullyLabeledReplicas", I32),
        omitzero(3, "observedGeneration", I64),
        omitzero(4, "readyReplicas", I32),
        omitzero(5, "availableReplicas", I32),
        list(6, "conditions", Msg(&REPLICA_SET_CONDITION)),
        field(7, "terminatingReplicas", I32),
    ],
);

pub(crate) static ROLLING_UPDATE_DAEMON_SET: Message = Message::new(
    "RollingUpdateDaemonSet",
    &[field(1, "maxUnavailable", IntOrString), field(2, "maxSurge", IntOrString)],
);

pub(crate) static ROLLING_UPDATE_DEPLOYMENT: Message = Message::new(
    "RollingUpdateDeployment",
    &[field(1, "maxUnavailable", IntOrString), field(2, "maxSurge", IntOrString)],
);

pub(crate) static ROLLING_UPDATE_STATEFUL_SET_STRATEGY: Message = Message::new(
    "RollingUpdateStatefulSetStrategy",
    &[field(1, "partition", I32), field(2, "maxUnavailable", IntOrString)],
);

pub(crate) static STATEFUL_SET: Message = Message::new(
    "StatefulSet",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&STATEFUL_SET_SPEC)),
        field(3, "status", Msg(&STATEFUL_SET_STATUS)),
    ],
);

pub(crate) static STATEFUL_SET_CONDITION: Message = Message::new(
    "StatefulSetCondition",
    &[
        field(1, "type", Str),
        field(2, "status", Str),
        field(3, "lastTransitionTime", Time),
        omitzero(4, "reason", Str),
        omitzero(5, "message", Str),
    ],
);

pub(crate) static STATEFUL_SET_ORDINALS: Message = Message::new("StatefulSetOrdinals", &[field(1, "start", I32)]);

pub(crate) static STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY: Message = Message::new(
    "StatefulSetPersistentVolumeClaimRetentionPolicy",
    &[omitzero(1, "whenDeleted", Str), omitzero(2, "whenScaled", Str)],
);

pub(crate) static STATEFUL_SET_SPEC: Message = Message::new(
    "StatefulSetSpec",
    &[
        field(1, "replicas", I32),
        field(2, "selector", Msg(&meta_v1::LABEL_SELECTOR)),
        field(3, "template", Msg(&core_v1::POD_TEMPLATE_SPEC)),
        list(4, "volumeClaimTemplates", Msg(&core_v1::PERSISTENT_VOLUME_CLAIM)),
        field(5, "serviceName", Str),
        omitzero(6, "podManagementPolicy", Str),
        field(7, "updateStrategy", Msg(&STATEFUL_SET_UPDATE_STRATEGY)),
        field(8, "revisionHistoryLimit", I32),
        omitzero(9, "minReadySeconds", I32),
        field(10, "persistentVolumeClaimRetentionPolicy", Msg(&STATEFUL_SET_PERSISTENT_VOLUME_CLAIM_RETENTION_POLICY)),
        field(11, "ordinals", Msg(&STATEFUL_SET_ORDINALS)),
    ],
);

pub(crate) static STATEFUL_SET_STATUS: Message = Message::new(
    "StatefulSetStatus",
    &[
        omitzero(1, "observedGeneration", I64),
        field(2, "replicas", I32),
        omitzero(3, "readyReplicas", I32),
        omitzero(4, "currentReplicas", I32),
        omitzero(5, "updatedReplicas", I32),
        omitzero(6, "currentRevision", Str),
        omitzero(7, "updateRevision", Str),
        field(9, "collisionCount", I32),
        list(10, "conditions", Msg(&STATEFUL_SET_CONDITION)),
        field(11, "availableReplicas", I32),
    ],
);

pub(crate) static STATEFUL_SET_UPDATE_STRATEGY: Message = Message::new(
    "StatefulSetUpdateStrategy",
    &[omitzero(1, "type", Str), field(2, "rollingUpdate", Msg(&ROLLING_UPDATE_STATEFUL_SET_STRATEGY))],
);
