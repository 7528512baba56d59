//! Field tables for the `k8s.io.api.batch.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::core_v1;
use super::meta_v1;
use super::{Message, field, list, omitzero};

pub(crate) static CRON_JOB: Message = Message::new(
    "CronJob",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&CRON_JOB_SPEC)),
        field(3, "status", Msg(&CRON_JOB_STATUS)),
    ],
);

pub(crate) static CRON_JOB_SPEC: Message = Message::new(
    "CronJobSpec",
    &[
        field(1, "schedule", Str),
        field(2, "startingDeadlineSeconds", I64),
        omitzero(3, "concurrencyPolicy", Str),
        field(4, "suspend", Bool),
        field(5, "jobTemplate", Msg(&JOB_TEMPLATE_SPEC)),
        field(6, "successfulJobsHistoryLimit", I32),
        field(7, "failedJobsHistoryLimit", I32),
        field(8, "timeZone", Str),
    ],
);

pub(crate) static CRON_JOB_STATUS: Message = Message::new(
    "CronJobStatus",
    &[
        list(1, "active", Msg(&core_v1::OBJECT_REFERENCE)),
        field(4, "lastScheduleTime", Time),
        field(5, "lastSuccessfulTime", Time),
    ],
);

pub(crate) static JOB: Message = Message::new(
    "Job",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&JOB_SPEC)),
        field(3, "status", Msg(&JOB_STATUS)),
    ],
);

pub(crate) static JOB_CONDITION: Message = Message::new(
    "JobCondition",
    &[
        field(1, "type", Str),
        field(2, "status", Str),
        field(3, "lastProbeTime", Time),
        field(4, "lastTransitionTime", Time),
        omitzero(5, "reason", Str),
        omitzero(6, "message", Str),
    ],
);

// Alpha: every field of it is a `scheduling.k8s.io/v1alpha3` type, not
// covered here, so anything inside is reported as an unknown field.
pub(crate) static JOB_SCHEDULING_CONFIGURATION: Message = Message::new("JobSchedulingConfiguration", &[]);

pub(crate) static JOB_SPEC: Message = Message::new(
    "JobSpec",
    &[
        field(1, "parallelism", I32),
        field(2, "completions", I32),
        field(3, "activeDeadlineSeconds", I64),
        field(4, "selector", Msg(&meta_v1::LABEL_SELECTOR)),
        field(5, "manualSelector", Bool),
        field(6, "template", Msg(&core_v1::POD_TEMPLATE_SPEC)),
        field(7, "backoffLimit", I32),
        field(8, "ttlSecondsAfterFinished", I32),
        field(9, "completionMode", Str),
        field(10, "suspend", Bool),
        field(11, "podFailurePolicy", Msg(&POD_FAILURE_POLICY)),
        field(12, "backoffLimitPerIndex", I32),
        field(13, "maxFailedIndexes", I32),
        field(14, "podReplacementPolicy", Str),
        field(15, "managedBy", Str),
        field(16, "successPolicy", Msg(&SUCCESS_POLICY)),
        field(17, "scheduling", Msg(&JOB_SCHEDULING_CONFIGURATION)),
    ],
);

pub(crate) static JOB_STATUS: Message = Message::new(
    "JobStatus",
    &[
        list(1, "conditions", Msg(&JOB_CONDITION)),
        field(2, "startTime", Time),
        field(3, "completionTime", Time),
        omitzero(4, "active", I32),
        omitzero(5, "succeeded", I32),
        omitzero(6, "failed", I32),
        omitzero(7, "completedIndexes", Str),
        field(8, "uncountedTerminatedPods", Msg(&UNCOUNTED_TERMINATED_PODS)),
        field(9, "ready", I32),
        field(10, "failedIndexes", Str),
        field(11, "terminating", I32),
    ],
);

pub(crate) static JOB_TEMPLATE_SPEC: Message = Message::new(
    "JobTemplateSpec",
    &[field(1, "metadata", Msg(&meta_v1::OBJECT_META)), field(2, "spec", Msg(&JOB_SPEC))],
);

pub(crate) static POD_FAILURE_POLICY: Message =
    Message::new("PodFailurePolicy", &[list(1, "rules", Msg(&POD_FAILURE_POLICY_RULE))]);

pub(crate) static POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Message = Message::new(
    "PodFailurePolicyOnExitCodesRequirement",
    &[field(1, "containerName", Str), field(2, "operator", Str), list(3, "values", I32)],
);

pub(crate) static POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Message =
    Message::new("PodFailurePolicyOnPodConditionsPattern", &[field(1, "type", Str), field(2, "status", Str)]);

pub(crate) static POD_FAILURE_POLICY_RULE: Message = Message::new(
    "PodFailurePolicyRule",
    &[
        field(1, "action", Str),
        field(2, "onExitCodes", Msg(&POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT)),
        list(3, "onPodConditions", Msg(&POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN)),
    ],
);

pub(crate) static SUCCESS_POLICY: Message =
    Message::new("SuccessPolicy", &[list(1, "rules", Msg(&SUCCESS_POLICY_RULE))]);

pub(crate) static SUCCESS_POLICY_RULE: Message =
    Message::new("SuccessPolicyRule", &[field(1, "succeededIndexes", Str), field(2, "succeededCount", I32)]);

pub(crate) static UNCOUNTED_TERMINATED_PODS: Message =
    Message::new("UncountedTerminatedPods", &[list(1, "succeeded", Str), list(2, "failed", Str)]);
