//! Field tables for the `k8s.io.api.core.v1` protobuf package (see the parent module).

use super::Ty::*;
use super::meta_v1;
use super::{Message, field, inline, list, map, omitzero};

pub(crate) static AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE: Message = Message::new(
    "AWSElasticBlockStoreVolumeSource",
    &[
        field(1, "volumeID", Str),
        omitzero(2, "fsType", Str),
        omitzero(3, "partition", I32),
        omitzero(4, "readOnly", Bool),
    ],
);

pub(crate) static AFFINITY: Message = Message::new(
    "Affinity",
    &[
        field(1, "nodeAffinity", Msg(&NODE_AFFINITY)),
        field(2, "podAffinity", Msg(&POD_AFFINITY)),
        field(3, "podAntiAffinity", Msg(&POD_ANTI_AFFINITY)),
    ],
);

pub(crate) static APP_ARMOR_PROFILE: Message =
    Message::new("AppArmorProfile", &[field(1, "type", Str), field(2, "localhostProfile", Str)]);

pub(crate) static AZURE_DISK_VOLUME_SOURCE: Message = Message::new(
    "AzureDiskVolumeSource",
    &[
        field(1, "diskName", Str),
        field(2, "diskURI", Str),
        field(3, "cachingMode", Str),
        field(4, "fsType", Str),
        field(5, "readOnly", Bool),
        field(6, "kind", Str),
    ],
);

pub(crate) static AZURE_FILE_VOLUME_SOURCE: Message = Message::new(
    "AzureFileVolumeSource",
    &[field(1, "secretName", Str), field(2, "shareName", Str), omitzero(3, "readOnly", Bool)],
);

pub(crate) static CSI_VOLUME_SOURCE: Message = Message::new(
    "CSIVolumeSource",
    &[
        field(1, "driver", Str),
        field(2, "readOnly", Bool),
        field(3, "fsType", Str),
        map(4, "volumeAttributes", Str),
        field(5, "nodePublishSecretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
);

pub(crate) static CAPABILITIES: Message = Message::new("Capabilities", &[list(1, "add", Str), list(2, "drop", Str)]);

pub(crate) static CEPH_FS_VOLUME_SOURCE: Message = Message::new(
    "CephFSVolumeSource",
    &[
        list(1, "monitors", Str),
        omitzero(2, "path", Str),
        omitzero(3, "user", Str),
        omitzero(4, "secretFile", Str),
        field(5, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        omitzero(6, "readOnly", Bool),
    ],
);

pub(crate) static CINDER_VOLUME_SOURCE: Message = Message::new(
    "CinderVolumeSource",
    &[
        field(1, "volumeID", Str),
        omitzero(2, "fsType", Str),
        omitzero(3, "readOnly", Bool),
        field(4, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
);

pub(crate) static CLIENT_IP_CONFIG: Message = Message::new("ClientIPConfig", &[field(1, "timeoutSeconds", I32)]);

pub(crate) static CLUSTER_TRUST_BUNDLE_PROJECTION: Message = Message::new(
    "ClusterTrustBundleProjection",
    &[
        field(1, "name", Str),
        field(2, "signerName", Str),
        field(3, "labelSelector", Msg(&meta_v1::LABEL_SELECTOR)),
        field(4, "path", Str),
        field(5, "optional", Bool),
        field(6, "user", I64),
    ],
);

pub(crate) static CONFIG_MAP: Message = Message::new(
    "ConfigMap",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        map(2, "data", Str),
        map(3, "binaryData", Bytes),
        field(4, "immutable", Bool),
    ],
);

pub(crate) static CONFIG_MAP_ENV_SOURCE: Message =
    Message::new("ConfigMapEnvSource", &[inline(1, Msg(&LOCAL_OBJECT_REFERENCE)), field(2, "optional", Bool)]);

pub(crate) static CONFIG_MAP_KEY_SELECTOR: Message = Message::new(
    "ConfigMapKeySelector",
    &[inline(1, Msg(&LOCAL_OBJECT_REFERENCE)), field(2, "key", Str), field(3, "optional", Bool)],
);

pub(crate) static CONFIG_MAP_PROJECTION: Message = Message::new(
    "ConfigMapProjection",
    &[inline(1, Msg(&LOCAL_OBJECT_REFERENCE)), list(2, "items", Msg(&KEY_TO_PATH)), field(4, "optional", Bool)],
);

pub(crate) static CONFIG_MAP_VOLUME_SOURCE: Message = Message::new(
    "ConfigMapVolumeSource",
    &[
        inline(1, Msg(&LOCAL_OBJECT_REFERENCE)),
        list(2, "items", Msg(&KEY_TO_PATH)),
        field(3, "defaultMode", I32),
        field(4, "optional", Bool),
        field(5, "defaultUser", I64),
    ],
);

pub(crate) static CONTAINER: Message = Message::new(
    "Container",
    &[
        field(1, "name", Str),
        omitzero(2, "image", Str),
        list(3, "command", Str),
        list(4, "args", Str),
        omitzero(5, "workingDir", Str),
        list(6, "ports", Msg(&CONTAINER_PORT)),
        list(7, "env", Msg(&ENV_VAR)),
        field(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        list(9, "volumeMounts", Msg(&VOLUME_MOUNT)),
        field(10, "livenessProbe", Msg(&PROBE)),
        field(11, "readinessProbe", Msg(&PROBE)),
        field(12, "lifecycle", Msg(&LIFECYCLE)),
        omitzero(13, "terminationMessagePath", Str),
        omitzero(14, "imagePullPolicy", Str),
        field(15, "securityContext", Msg(&SECURITY_CONTEXT)),
        omitzero(16, "stdin", Bool),
        omitzero(17, "stdinOnce", Bool),
        omitzero(18, "tty", Bool),
        list(19, "envFrom", Msg(&ENV_FROM_SOURCE)),
        omitzero(20, "terminationMessagePolicy", Str),
        list(21, "volumeDevices", Msg(&VOLUME_DEVICE)),
        field(22, "startupProbe", Msg(&PROBE)),
        list(23, "resizePolicy", Msg(&CONTAINER_RESIZE_POLICY)),
        field(24, "restartPolicy", Str),
        list(25, "restartPolicyRules", Msg(&CONTAINER_RESTART_RULE)),
    ],
);

pub(crate) static CONTAINER_EXTENDED_RESOURCE_REQUEST: Message = Message::new(
    "ContainerExtendedResourceRequest",
    &[field(1, "containerName", Str), field(2, "resourceName", Str), field(3, "requestName", Str)],
);

pub(crate) static CONTAINER_PORT: Message = Message::new(
    "ContainerPort",
    &[
        omitzero(1, "name", Str),
        omitzero(2, "hostPort", I32),
        field(3, "containerPort", I32),
        omitzero(4, "protocol", Str),
        omitzero(5, "hostIP", Str),
    ],
);

pub(crate) static CONTAINER_RESIZE_POLICY: Message =
    Message::new("ContainerResizePolicy", &[field(1, "resourceName", Str), field(2, "restartPolicy", Str)]);

pub(crate) static CONTAINER_RESTART_RULE: Message = Message::new(
    "ContainerRestartRule",
    &[omitzero(1, "action", Str), field(2, "exitCodes", Msg(&CONTAINER_RESTART_RULE_ON_EXIT_CODES))],
);

pub(crate) static CONTAINER_RESTART_RULE_ON_EXIT_CODES: Message =
    Message::new("ContainerRestartRuleOnExitCodes", &[omitzero(1, "operator", Str), list(2, "values", I32)]);

pub(crate) static CONTAINER_STATE: Message = Message::new(
    "ContainerState",
    &[
        field(1, "waiting", Msg(&CONTAINER_STATE_WAITING)),
        field(2, "running", Msg(&CONTAINER_STATE_RUNNING)),
        field(3, "terminated", Msg(&CONTAINER_STATE_TERMINATED)),
    ],
);

pub(crate) static CONTAINER_STATE_RUNNING: Message =
    Message::new("ContainerStateRunning", &[field(1, "startedAt", Time)]);

pub(crate) static CONTAINER_STATE_TERMINATED: Message = Message::new(
    "ContainerStateTerminated",
    &[
        field(1, "exitCode", I32),
        omitzero(2, "signal", I32),
        omitzero(3, "reason", Str),
        omitzero(4, "message", Str),
        field(5, "startedAt", Time),
        field(6, "finishedAt", Time),
        omitzero(7, "containerID", Str),
    ],
);

pub(crate) static CONTAINER_STATE_WAITING: Message =
    Message::new("ContainerStateWaiting", &[omitzero(1, "reason", Str), omitzero(2, "message", Str)]);

pub(crate) static CONTAINER_STATUS: Message = Message::new(
    "ContainerStatus",
    &[
        field(1, "name", Str),
        field(2, "state", Msg(&CONTAINER_STATE)),
        field(3, "lastState", Msg(&CONTAINER_STATE)),
        field(4, "ready", Bool),
        field(5, "restartCount", I32),
        field(6, "image", Str),
        field(7, "imageID", Str),
        omitzero(8, "containerID", Str),
        field(9, "started", Bool),
        map(10, "allocatedResources", Quantity),
        field(11, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        list(12, "volumeMounts", Msg(&VOLUME_MOUNT_STATUS)),
        field(13, "user", Msg(&CONTAINER_USER)),
        list(14, "allocatedResourcesStatus", Msg(&RESOURCE_STATUS)),
        field(15, "stopSignal", Str),
    ],
);

pub(crate) static CONTAINER_USER: Message =
    Message::new("ContainerUser", &[field(1, "linux", Msg(&LINUX_CONTAINER_USER))]);

pub(crate) static DOWNWARD_API_PROJECTION: Message =
    Message::new("DownwardAPIProjection", &[list(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE))]);

pub(crate) static DOWNWARD_API_VOLUME_FILE: Message = Message::new(
    "DownwardAPIVolumeFile",
    &[
        field(1, "path", Str),
        field(2, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR)),
        field(3, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR)),
        field(4, "mode", I32),
        field(5, "user", I64),
    ],
);

pub(crate) static DOWNWARD_API_VOLUME_SOURCE: Message = Message::new(
    "DownwardAPIVolumeSource",
    &[list(1, "items", Msg(&DOWNWARD_API_VOLUME_FILE)), field(2, "defaultMode", I32), field(3, "defaultUser", I64)],
);

pub(crate) static EMPTY_DIR_VOLUME_SOURCE: Message = Message::new(
    "EmptyDirVolumeSource",
    &[omitzero(1, "medium", Str), field(2, "sizeLimit", Quantity), field(3, "mode", I32)],
);

pub(crate) static ENV_FROM_SOURCE: Message = Message::new(
    "EnvFromSource",
    &[
        omitzero(1, "prefix", Str),
        field(2, "configMapRef", Msg(&CONFIG_MAP_ENV_SOURCE)),
        field(3, "secretRef", Msg(&SECRET_ENV_SOURCE)),
    ],
);

pub(crate) static ENV_VAR: Message = Message::new(
    "EnvVar",
    &[field(1, "name", Str), omitzero(2, "value", Str), field(3, "valueFrom", Msg(&ENV_VAR_SOURCE))],
);

pub(crate) static ENV_VAR_SOURCE: Message = Message::new(
    "EnvVarSource",
    &[
        field(1, "fieldRef", Msg(&OBJECT_FIELD_SELECTOR)),
        field(2, "resourceFieldRef", Msg(&RESOURCE_FIELD_SELECTOR)),
        field(3, "configMapKeyRef", Msg(&CONFIG_MAP_KEY_SELECTOR)),
        field(4, "secretKeyRef", Msg(&SECRET_KEY_SELECTOR)),
        field(5, "fileKeyRef", Msg(&FILE_KEY_SELECTOR)),
    ],
);

pub(crate) static EPHEMERAL_CONTAINER: Message = Message::new(
    "EphemeralContainer",
    &[inline(1, Msg(&EPHEMERAL_CONTAINER_COMMON)), omitzero(2, "targetContainerName", Str)],
);

pub(crate) static EPHEMERAL_CONTAINER_COMMON: Message = Message::new(
    "EphemeralContainerCommon",
    &[
        field(1, "name", Str),
        omitzero(2, "image", Str),
        list(3, "command", Str),
        list(4, "args", Str),
        omitzero(5, "workingDir", Str),
        list(6, "ports", Msg(&CONTAINER_PORT)),
        list(7, "env", Msg(&ENV_VAR)),
        field(8, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        list(9, "volumeMounts", Msg(&VOLUME_MOUNT)),
        field(10, "livenessProbe", Msg(&PROBE)),
        field(11, "readinessProbe", Msg(&PROBE)),
        field(12, "lifecycle", Msg(&LIFECYCLE)),
        omitzero(13, "terminationMessagePath", Str),
        omitzero(14, "imagePullPolicy", Str),
        field(15, "securityContext", Msg(&SECURITY_CONTEXT)),
        omitzero(16, "stdin", Bool),
        omitzero(17, "stdinOnce", Bool),
        omitzero(18, "tty", Bool),
        list(19, "envFrom", Msg(&ENV_FROM_SOURCE)),
        omitzero(20, "terminationMessagePolicy", Str),
        list(21, "volumeDevices", Msg(&VOLUME_DEVICE)),
        field(22, "startupProbe", Msg(&PROBE)),
        list(23, "resizePolicy", Msg(&CONTAINER_RESIZE_POLICY)),
        field(24, "restartPolicy", Str),
        list(25, "restartPolicyRules", Msg(&CONTAINER_RESTART_RULE)),
    ],
);

pub(crate) static EPHEMERAL_VOLUME_SOURCE: Message =
    Message::new("EphemeralVolumeSource", &[field(1, "volumeClaimTemplate", Msg(&PERSISTENT_VOLUME_CLAIM_TEMPLATE))]);

pub(crate) static EVICTION_RESPONDER: Message =
    Message::new("EvictionResponder", &[field(1, "name", Str), field(2, "priority", I32)]);

pub(crate) static EXEC_ACTION: Message = Message::new("ExecAction", &[list(1, "command", Str)]);

pub(crate) static FC_VOLUME_SOURCE: Message = Message::new(
    "FCVolumeSource",
    &[
        list(1, "targetWWNs", Str),
        field(2, "lun", I32),
        omitzero(3, "fsType", Str),
        omitzero(4, "readOnly", Bool),
        list(5, "wwids", Str),
    ],
);

pub(crate) static FILE_KEY_SELECTOR: Message = Message::new(
    "FileKeySelector",
    &[field(1, "volumeName", Str), field(2, "path", Str), field(3, "key", Str), field(4, "optional", Bool)],
);

pub(crate) static FLEX_VOLUME_SOURCE: Message = Message::new(
    "FlexVolumeSource",
    &[
        field(1, "driver", Str),
        omitzero(2, "fsType", Str),
        field(3, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        omitzero(4, "readOnly", Bool),
        map(5, "options", Str),
    ],
);

pub(crate) static FLOCKER_VOLUME_SOURCE: Message =
    Message::new("FlockerVolumeSource", &[omitzero(1, "datasetName", Str), omitzero(2, "datasetUUID", Str)]);

pub(crate) static GCE_PERSISTENT_DISK_VOLUME_SOURCE: Message = Message::new(
    "GCEPersistentDiskVolumeSource",
    &[
        field(1, "pdName", Str),
        omitzero(2, "fsType", Str),
        omitzero(3, "partition", I32),
        omitzero(4, "readOnly", Bool),
    ],
);

pub(crate) static GRPC_ACTION: Message =
    Message::new("GRPCAction", &[field(1, "port", I32), field(2, "service", Str), field(3, "mode", Str)]);

pub(crate) static GIT_REPO_VOLUME_SOURCE: Message = Message::new(
    "GitRepoVolumeSource",
    &[field(1, "repository", Str), omitzero(2, "revision", Str), omitzero(3, "directory", Str)],
);

pub(crate) static GLUSTERFS_VOLUME_SOURCE: Message = Message::new(
    "GlusterfsVolumeSource",
    &[field(1, "endpoints", Str), field(2, "path", Str), omitzero(3, "readOnly", Bool)],
);

pub(crate) static HTTP_GET_ACTION: Message = Message::new(
    "HTTPGetAction",
    &[
        omitzero(1, "path", Str),
        field(2, "port", IntOrString),
        omitzero(3, "host", Str),
        omitzero(4, "scheme", Str),
        list(5, "httpHeaders", Msg(&HTTP_HEADER)),
        field(6, "protocol", Str),
    ],
);

pub(crate) static HTTP_HEADER: Message = Message::new("HTTPHeader", &[field(1, "name", Str), field(2, "value", Str)]);

pub(crate) static HOST_ALIAS: Message = Message::new("HostAlias", &[field(1, "ip", Str), list(2, "hostnames", Str)]);

pub(crate) static HOST_IP: Message = Message::new("HostIP", &[field(1, "ip", Str)]);

pub(crate) static HOST_PATH_VOLUME_SOURCE: Message =
    Message::new("HostPathVolumeSource", &[field(1, "path", Str), field(2, "type", Str)]);

pub(crate) static ISCSI_VOLUME_SOURCE: Message = Message::new(
    "ISCSIVolumeSource",
    &[
        field(1, "targetPortal", Str),
        field(2, "iqn", Str),
        field(3, "lun", I32),
        omitzero(4, "iscsiInterface", Str),
        omitzero(5, "fsType", Str),
        omitzero(6, "readOnly", Bool),
        list(7, "portals", Str),
        omitzero(8, "chapAuthDiscovery", Bool),
        field(10, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        omitzero(11, "chapAuthSession", Bool),
        field(12, "initiatorName", Str),
    ],
);

pub(crate) static IMAGE_VOLUME_SOURCE: Message =
    Message::new("ImageVolumeSource", &[omitzero(1, "reference", Str), omitzero(2, "pullPolicy", Str)]);

pub(crate) static IMAGE_VOLUME_STATUS: Message = Message::new("ImageVolumeStatus", &[omitzero(1, "imageRef", Str)]);

pub(crate) static KEY_TO_PATH: Message = Message::new(
    "KeyToPath",
    &[field(1, "key", Str), field(2, "path", Str), field(3, "mode", I32), field(4, "user", I64)],
);

pub(crate) static LIFECYCLE: Message = Message::new(
    "Lifecycle",
    &[
        field(1, "postStart", Msg(&LIFECYCLE_HANDLER)),
        field(2, "preStop", Msg(&LIFECYCLE_HANDLER)),
        field(3, "stopSignal", Str),
    ],
);

pub(crate) static LIFECYCLE_HANDLER: Message = Message::new(
    "LifecycleHandler",
    &[
        field(1, "exec", Msg(&EXEC_ACTION)),
        field(2, "httpGet", Msg(&HTTP_GET_ACTION)),
        field(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION)),
        field(4, "sleep", Msg(&SLEEP_ACTION)),
    ],
);

pub(crate) static LINUX_CONTAINER_USER: Message = Message::new(
    "LinuxContainerUser",
    &[field(1, "uid", I64), field(2, "gid", I64), list(3, "supplementalGroups", I64)],
);

pub(crate) static LOAD_BALANCER_INGRESS: Message = Message::new(
    "LoadBalancerIngress",
    &[
        omitzero(1, "ip", Str),
        omitzero(2, "hostname", Str),
        field(3, "ipMode", Str),
        list(4, "ports", Msg(&PORT_STATUS)),
    ],
);

pub(crate) static LOAD_BALANCER_STATUS: Message =
    Message::new("LoadBalancerStatus", &[list(1, "ingress", Msg(&LOAD_BALANCER_INGRESS))]);

pub(crate) static LOCAL_OBJECT_REFERENCE: Message = Message::new("LocalObjectReference", &[omitzero(1, "name", Str)]);

pub(crate) static MODIFY_VOLUME_STATUS: Message =
    Message::new("ModifyVolumeStatus", &[omitzero(1, "targetVolumeAttributesClassName", Str), field(2, "status", Str)]);

pub(crate) static NFS_VOLUME_SOURCE: Message =
    Message::new("NFSVolumeSource", &[field(1, "server", Str), field(2, "path", Str), omitzero(3, "readOnly", Bool)]);

pub(crate) static NAMESPACE: Message = Message::new(
    "Namespace",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&NAMESPACE_SPEC)),
        field(3, "status", Msg(&NAMESPACE_STATUS)),
    ],
);

pub(crate) static NAMESPACE_CONDITION: Message = Message::new(
    "NamespaceCondition",
    &[
        field(1, "type", Str),
        field(2, "status", Str),
        field(4, "lastTransitionTime", Time),
        omitzero(5, "reason", Str),
        omitzero(6, "message", Str),
    ],
);

pub(crate) static NAMESPACE_SPEC: Message = Message::new("NamespaceSpec", &[list(1, "finalizers", Str)]);

pub(crate) static NAMESPACE_STATUS: Message =
    Message::new("NamespaceStatus", &[omitzero(1, "phase", Str), list(2, "conditions", Msg(&NAMESPACE_CONDITION))]);

pub(crate) static NODE_AFFINITY: Message = Message::new(
    "NodeAffinity",
    &[
        field(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(&NODE_SELECTOR)),
        list(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(&PREFERRED_SCHEDULING_TERM)),
    ],
);

pub(crate) static NODE_ALLOCATABLE_MAPPED_RESOURCES: Message =
    Message::new("NodeAllocatableMappedResources", &[field(1, "name", Str), field(2, "quantity", Quantity)]);

pub(crate) static NODE_ALLOCATABLE_OVERHEAD_RESOURCES: Message = Message::new(
    "NodeAllocatableOverheadResources",
    &[field(1, "name", Str), field(2, "perPod", Quantity), field(3, "perContainer", Quantity)],
);

pub(crate) static NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS: Message = Message::new(
    "NodeAllocatableResourceClaimStatus",
    &[
        field(1, "resourceClaimName", Str),
        list(2, "containers", Str),
        list(4, "mapping", Msg(&NODE_ALLOCATABLE_MAPPED_RESOURCES)),
        list(5, "overhead", Msg(&NODE_ALLOCATABLE_OVERHEAD_RESOURCES)),
    ],
);

pub(crate) static NODE_SELECTOR: Message =
    Message::new("NodeSelector", &[list(1, "nodeSelectorTerms", Msg(&NODE_SELECTOR_TERM))]);

pub(crate) static NODE_SELECTOR_REQUIREMENT: Message =
    Message::new("NodeSelectorRequirement", &[field(1, "key", Str), field(2, "operator", Str), list(3, "values", Str)]);

pub(crate) static NODE_SELECTOR_TERM: Message = Message::new(
    "NodeSelectorTerm",
    &[
        list(1, "matchExpressions", Msg(&NODE_SELECTOR_REQUIREMENT)),
        list(2, "matchFields", Msg(&NODE_SELECTOR_REQUIREMENT)),
    ],
);

pub(crate) static OBJECT_FIELD_SELECTOR: Message =
    Message::new("ObjectFieldSelector", &[omitzero(1, "apiVersion", Str), field(2, "fieldPath", Str)]);

pub(crate) static OBJECT_REFERENCE: Message = Message::new(
    "ObjectReference",
    &[
        omitzero(1, "kind", Str),
        omitzero(2, "namespace", Str),
        omitzero(3, "name", Str),
        omitzero(4, "uid", Str),
        omitzero(5, "apiVersion", Str),
        omitzero(6, "resourceVersion", Str),
        omitzero(7, "fieldPath", Str),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM: Message = Message::new(
    "PersistentVolumeClaim",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&PERSISTENT_VOLUME_CLAIM_SPEC)),
        field(3, "status", Msg(&PERSISTENT_VOLUME_CLAIM_STATUS)),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_CONDITION: Message = Message::new(
    "PersistentVolumeClaimCondition",
    &[
        field(1, "type", Str),
        field(2, "status", Str),
        field(3, "lastProbeTime", Time),
        field(4, "lastTransitionTime", Time),
        omitzero(5, "reason", Str),
        omitzero(6, "message", Str),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_SPEC: Message = Message::new(
    "PersistentVolumeClaimSpec",
    &[
        list(1, "accessModes", Str),
        field(2, "resources", Msg(&VOLUME_RESOURCE_REQUIREMENTS)),
        omitzero(3, "volumeName", Str),
        field(4, "selector", Msg(&meta_v1::LABEL_SELECTOR)),
        field(5, "storageClassName", Str),
        field(6, "volumeMode", Str),
        field(7, "dataSource", Msg(&TYPED_LOCAL_OBJECT_REFERENCE)),
        field(8, "dataSourceRef", Msg(&TYPED_OBJECT_REFERENCE)),
        field(9, "volumeAttributesClassName", Str),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_STATUS: Message = Message::new(
    "PersistentVolumeClaimStatus",
    &[
        omitzero(1, "phase", Str),
        list(2, "accessModes", Str),
        map(3, "capacity", Quantity),
        list(4, "conditions", Msg(&PERSISTENT_VOLUME_CLAIM_CONDITION)),
        map(5, "allocatedResources", Quantity),
        map(7, "allocatedResourceStatuses", Str),
        field(8, "currentVolumeAttributesClassName", Str),
        field(9, "modifyVolumeStatus", Msg(&MODIFY_VOLUME_STATUS)),
        field(10, "healthStatus", Msg(&VOLUME_HEALTH_STATUS)),
    ],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_TEMPLATE: Message = Message::new(
    "PersistentVolumeClaimTemplate",
    &[field(1, "metadata", Msg(&meta_v1::OBJECT_META)), field(2, "spec", Msg(&PERSISTENT_VOLUME_CLAIM_SPEC))],
);

pub(crate) static PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE: Message =
    Message::new("PersistentVolumeClaimVolumeSource", &[field(1, "claimName", Str), omitzero(2, "readOnly", Bool)]);

pub(crate) static PHOTON_PERSISTENT_DISK_VOLUME_SOURCE: Message =
    Message::new("PhotonPersistentDiskVolumeSource", &[field(1, "pdID", Str), omitzero(2, "fsType", Str)]);

pub(crate) static POD: Message = Message::new(
    "Pod",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&POD_SPEC)),
        field(3, "status", Msg(&POD_STATUS)),
    ],
);

pub(crate) static POD_AFFINITY: Message = Message::new(
    "PodAffinity",
    &[
        list(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(&POD_AFFINITY_TERM)),
        list(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
);

pub(crate) static POD_AFFINITY_TERM: Message = Message::new(
    "PodAffinityTerm",
    &[
        field(1, "labelSelector", Msg(&meta_v1::LABEL_SELECTOR)),
        list(2, "namespaces", Str),
        field(3, "topologyKey", Str),
        field(4, "namespaceSelector", Msg(&meta_v1::LABEL_SELECTOR)),
        list(5, "matchLabelKeys", Str),
        list(6, "mismatchLabelKeys", Str),
    ],
);

pub(crate) static POD_ANTI_AFFINITY: Message = Message::new(
    "PodAntiAffinity",
    &[
        list(1, "requiredDuringSchedulingIgnoredDuringExecution", Msg(&POD_AFFINITY_TERM)),
        list(2, "preferredDuringSchedulingIgnoredDuringExecution", Msg(&WEIGHTED_POD_AFFINITY_TERM)),
    ],
);

pub(crate) static POD_CERTIFICATE_PROJECTION: Message = Message::new(
    "PodCertificateProjection",
    &[
        omitzero(1, "signerName", Str),
        omitzero(2, "keyType", Str),
        field(3, "maxExpirationSeconds", I32),
        omitzero(4, "credentialBundlePath", Str),
        omitzero(5, "keyPath", Str),
        omitzero(6, "certificateChainPath", Str),
        map(7, "userAnnotations", Str),
        field(8, "user", I64),
    ],
);

pub(crate) static POD_CONDITION: Message = Message::new(
    "PodCondition",
    &[
        field(1, "type", Str),
        field(2, "status", Str),
        field(3, "lastProbeTime", Time),
        field(4, "lastTransitionTime", Time),
        omitzero(5, "reason", Str),
        omitzero(6, "message", Str),
        omitzero(7, "observedGeneration", I64),
    ],
);

pub(crate) static POD_DNS_CONFIG: Message = Message::new(
    "PodDNSConfig",
    &[list(1, "nameservers", Str), list(2, "searches", Str), list(3, "options", Msg(&POD_DNS_CONFIG_OPTION))],
);

pub(crate) static POD_DNS_CONFIG_OPTION: Message =
    Message::new("PodDNSConfigOption", &[omitzero(1, "name", Str), field(2, "value", Str)]);

pub(crate) static POD_EXTENDED_RESOURCE_CLAIM_STATUS: Message = Message::new(
    "PodExtendedResourceClaimStatus",
    &[list(1, "requestMappings", Msg(&CONTAINER_EXTENDED_RESOURCE_REQUEST)), field(2, "resourceClaimName", Str)],
);

pub(crate) static POD_IP: Message = Message::new("PodIP", &[field(1, "ip", Str)]);

pub(crate) static POD_OS: Message = Message::new("PodOS", &[field(1, "name", Str)]);

pub(crate) static POD_READINESS_GATE: Message = Message::new("PodReadinessGate", &[field(1, "conditionType", Str)]);

pub(crate) static POD_RESOURCE_CLAIM: Message = Message::new(
    "PodResourceClaim",
    &[field(1, "name", Str), field(3, "resourceClaimName", Str), field(4, "resourceClaimTemplateName", Str)],
);

pub(crate) static POD_RESOURCE_CLAIM_STATUS: Message =
    Message::new("PodResourceClaimStatus", &[field(1, "name", Str), field(2, "resourceClaimName", Str)]);

pub(crate) static POD_SCHEDULING_GATE: Message = Message::new("PodSchedulingGate", &[field(1, "name", Str)]);

pub(crate) static POD_SCHEDULING_GROUP: Message = Message::new("PodSchedulingGroup", &[field(1, "podGroupName", Str)]);

pub(crate) static POD_SECURITY_CONTEXT: Message = Message::new(
    "PodSecurityContext",
    &[
        field(1, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS)),
        field(2, "runAsUser", I64),
        field(3, "runAsNonRoot", Bool),
        list(4, "supplementalGroups", I64),
        field(5, "fsGroup", I64),
        field(6, "runAsGroup", I64),
        list(7, "sysctls", Msg(&SYSCTL)),
        field(8, "windowsOptions", Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        field(9, "fsGroupChangePolicy", Str),
        field(10, "seccompProfile", Msg(&SECCOMP_PROFILE)),
        field(11, "appArmorProfile", Msg(&APP_ARMOR_PROFILE)),
        field(12, "supplementalGroupsPolicy", Str),
        field(13, "seLinuxChangePolicy", Str),
    ],
);

pub(crate) static POD_SPEC: Message = Message::new(
    "PodSpec",
    &[
        list(1, "volumes", Msg(&VOLUME)),
        list(2, "containers", Msg(&CONTAINER)),
        omitzero(3, "restartPolicy", Str),
        field(4, "terminationGracePeriodSeconds", I64),
        field(5, "activeDeadlineSeconds", I64),
        omitzero(6, "dnsPolicy", Str),
        map(7, "nodeSelector", Str),
        omitzero(8, "serviceAccountName", Str),
        omitzero(9, "serviceAccount", Str),
        omitzero(10, "nodeName", Str),
        omitzero(11, "hostNetwork", Bool),
        omitzero(12, "hostPID", Bool),
        omitzero(13, "hostIPC", Bool),
        field(14, "securityContext", Msg(&POD_SECURITY_CONTEXT)),
        list(15, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        omitzero(16, "hostname", Str),
        omitzero(17, "subdomain", Str),
        field(18, "affinity", Msg(&AFFINITY)),
        omitzero(19, "schedulerName", Str),
        list(20, "initContainers", Msg(&CONTAINER)),
        field(21, "automountServiceAccountToken", Bool),
        list(22, "tolerations", Msg(&TOLERATION)),
        list(23, "hostAliases", Msg(&HOST_ALIAS)),
        omitzero(24, "priorityClassName", Str),
        field(25, "priority", I32),
        field(26, "dnsConfig", Msg(&POD_DNS_CONFIG)),
        field(27, "shareProcessNamespace", Bool),
        list(28, "readinessGates", Msg(&POD_READINESS_GATE)),
        field(29, "runtimeClassName", Str),
        field(30, "enableServiceLinks", Bool),
        field(31, "preemptionPolicy", Str),
        map(32, "overhead", Quantity),
        list(33, "topologySpreadConstraints", Msg(&TOPOLOGY_SPREAD_CONSTRAINT)),
        list(34, "ephemeralContainers", Msg(&EPHEMERAL_CONTAINER)),
        field(35, "setHostnameAsFQDN", Bool),
        field(36, "os", Msg(&POD_OS)),
        field(37, "hostUsers", Bool),
        list(38, "schedulingGates", Msg(&POD_SCHEDULING_GATE)),
        list(39, "resourceClaims", Msg(&POD_RESOURCE_CLAIM)),
        field(40, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        field(41, "hostnameOverride", Str),
        field(43, "schedulingGroup", Msg(&POD_SCHEDULING_GROUP)),
        list(44, "evictionResponders", Msg(&EVICTION_RESPONDER)),
    ],
);

pub(crate) static POD_STATUS: Message = Message::new(
    "PodStatus",
    &[
        omitzero(1, "phase", Str),
        list(2, "conditions", Msg(&POD_CONDITION)),
        omitzero(3, "message", Str),
        omitzero(4, "reason", Str),
        omitzero(5, "hostIP", Str),
        omitzero(6, "podIP", Str),
        field(7, "startTime", Time),
        list(8, "containerStatuses", Msg(&CONTAINER_STATUS)),
        omitzero(9, "qosClass", Str),
        list(10, "initContainerStatuses", Msg(&CONTAINER_STATUS)),
        omitzero(11, "nominatedNodeName", Str),
        list(12, "podIPs", Msg(&POD_IP)),
        list(13, "ephemeralContainerStatuses", Msg(&CONTAINER_STATUS)),
        omitzero(14, "resize", Str),
        list(15, "resourceClaimStatuses", Msg(&POD_RESOURCE_CLAIM_STATUS)),
        list(16, "hostIPs", Msg(&HOST_IP)),
        omitzero(17, "observedGeneration", I64),
        field(18, "extendedResourceClaimStatus", Msg(&POD_EXTENDED_RESOURCE_CLAIM_STATUS)),
        map(19, "allocatedResources", Quantity),
        field(20, "resources", Msg(&RESOURCE_REQUIREMENTS)),
        list(21, "nodeAllocatableResourceClaimStatuses", Msg(&NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS)),
        list(22, "volumeHealth", Msg(&POD_VOLUME_HEALTH)),
    ],
);

pub(crate) static POD_TEMPLATE_SPEC: Message = Message::new(
    "PodTemplateSpec",
    &[field(1, "metadata", Msg(&meta_v1::OBJECT_META)), field(2, "spec", Msg(&POD_SPEC))],
);

pub(crate) static POD_VOLUME_HEALTH: Message = Message::new(
    "PodVolumeHealth",
    &[
        field(1, "name", Str),
        list(2, "healthConditions", Msg(&VOLUME_HEALTH_CONDITION)),
        field(3, "lastTransitionTime", Time),
    ],
);

pub(crate) static PORT_STATUS: Message =
    Message::new("PortStatus", &[field(1, "port", I32), field(2, "protocol", Str), field(3, "error", Str)]);

pub(crate) static PORTWORX_VOLUME_SOURCE: Message = Message::new(
    "PortworxVolumeSource",
    &[field(1, "volumeID", Str), omitzero(2, "fsType", Str), omitzero(3, "readOnly", Bool)],
);

pub(crate) static PREFERRED_SCHEDULING_TERM: Message = Message::new(
    "PreferredSchedulingTerm",
    &[field(1, "weight", I32), field(2, "preference", Msg(&NODE_SELECTOR_TERM))],
);

pub(crate) static PROBE: Message = Message::new(
    "Probe",
    &[
        inline(1, Msg(&PROBE_HANDLER)),
        omitzero(2, "initialDelaySeconds", I32),
        omitzero(3, "timeoutSeconds", I32),
        omitzero(4, "periodSeconds", I32),
        omitzero(5, "successThreshold", I32),
        omitzero(6, "failureThreshold", I32),
        field(7, "terminationGracePeriodSeconds", I64),
    ],
);

pub(crate) static PROBE_HANDLER: Message = Message::new(
    "ProbeHandler",
    &[
        field(1, "exec", Msg(&EXEC_ACTION)),
        field(2, "httpGet", Msg(&HTTP_GET_ACTION)),
        field(3, "tcpSocket", Msg(&TCP_SOCKET_ACTION)),
        field(4, "grpc", Msg(&GRPC_ACTION)),
    ],
);

pub(crate) static PROJECTED_VOLUME_SOURCE: Message = Message::new(
    "ProjectedVolumeSource",
    &[list(1, "sources", Msg(&VOLUME_PROJECTION)), field(2, "defaultMode", I32), field(3, "defaultUser", I64)],
);

pub(crate) static QUOBYTE_VOLUME_SOURCE: Message = Message::new(
    "QuobyteVolumeSource",
    &[
        field(1, "registry", Str),
        field(2, "volume", Str),
        omitzero(3, "readOnly", Bool),
        omitzero(4, "user", Str),
        omitzero(5, "group", Str),
        omitzero(6, "tenant", Str),
    ],
);

pub(crate) static RBD_VOLUME_SOURCE: Message = Message::new(
    "RBDVolumeSource",
    &[
        list(1, "monitors", Str),
        field(2, "image", Str),
        omitzero(3, "fsType", Str),
        omitzero(4, "pool", Str),
        omitzero(5, "user", Str),
        omitzero(6, "keyring", Str),
        field(7, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        omitzero(8, "readOnly", Bool),
    ],
);

pub(crate) static RESOURCE_CLAIM: Message =
    Message::new("ResourceClaim", &[field(1, "name", Str), omitzero(2, "request", Str)]);

pub(crate) static RESOURCE_FIELD_SELECTOR: Message = Message::new(
    "ResourceFieldSelector",
    &[omitzero(1, "containerName", Str), field(2, "resource", Str), field(3, "divisor", Quantity)],
);

pub(crate) static RESOURCE_HEALTH: Message = Message::new(
    "ResourceHealth",
    &[field(1, "resourceID", Str), omitzero(2, "health", Str), field(6, "message", Str)],
);

pub(crate) static RESOURCE_QUOTA: Message = Message::new(
    "ResourceQuota",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&RESOURCE_QUOTA_SPEC)),
        field(3, "status", Msg(&RESOURCE_QUOTA_STATUS)),
    ],
);

pub(crate) static RESOURCE_QUOTA_SPEC: Message = Message::new(
    "ResourceQuotaSpec",
    &[map(1, "hard", Quantity), list(2, "scopes", Str), field(3, "scopeSelector", Msg(&SCOPE_SELECTOR))],
);

pub(crate) static RESOURCE_QUOTA_STATUS: Message =
    Message::new("ResourceQuotaStatus", &[map(1, "hard", Quantity), map(2, "used", Quantity)]);

pub(crate) static RESOURCE_REQUIREMENTS: Message = Message::new(
    "ResourceRequirements",
    &[map(1, "limits", Quantity), map(2, "requests", Quantity), list(3, "claims", Msg(&RESOURCE_CLAIM))],
);

pub(crate) static RESOURCE_STATUS: Message =
    Message::new("ResourceStatus", &[field(1, "name", Str), list(2, "resources", Msg(&RESOURCE_HEALTH))]);

pub(crate) static SE_LINUX_OPTIONS: Message = Message::new(
    "SELinuxOptions",
    &[omitzero(1, "user", Str), omitzero(2, "role", Str), omitzero(3, "type", Str), omitzero(4, "level", Str)],
);

pub(crate) static SCALE_IO_VOLUME_SOURCE: Message = Message::new(
    "ScaleIOVolumeSource",
    &[
        field(1, "gateway", Str),
        field(2, "system", Str),
        field(3, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
        omitzero(4, "sslEnabled", Bool),
        omitzero(5, "protectionDomain", Str),
        omitzero(6, "storagePool", Str),
        omitzero(7, "storageMode", Str),
        omitzero(8, "volumeName", Str),
        omitzero(9, "fsType", Str),
        omitzero(10, "readOnly", Bool),
    ],
);

pub(crate) static SCOPE_SELECTOR: Message =
    Message::new("ScopeSelector", &[list(1, "matchExpressions", Msg(&SCOPED_RESOURCE_SELECTOR_REQUIREMENT))]);

pub(crate) static SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Message = Message::new(
    "ScopedResourceSelectorRequirement",
    &[field(1, "scopeName", Str), field(2, "operator", Str), list(3, "values", Str)],
);

pub(crate) static SECCOMP_PROFILE: Message =
    Message::new("SeccompProfile", &[field(1, "type", Str), field(2, "localhostProfile", Str)]);

pub(crate) static SECRET: Message = Message::new(
    "Secret",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        map(2, "data", Bytes),
        omitzero(3, "type", Str),
        map(4, "stringData", Str),
        field(5, "immutable", Bool),
    ],
);

pub(crate) static SECRET_ENV_SOURCE: Message =
    Message::new("SecretEnvSource", &[inline(1, Msg(&LOCAL_OBJECT_REFERENCE)), field(2, "optional", Bool)]);

pub(crate) static SECRET_KEY_SELECTOR: Message = Message::new(
    "SecretKeySelector",
    &[inline(1, Msg(&LOCAL_OBJECT_REFERENCE)), field(2, "key", Str), field(3, "optional", Bool)],
);

pub(crate) static SECRET_PROJECTION: Message = Message::new(
    "SecretProjection",
    &[inline(1, Msg(&LOCAL_OBJECT_REFERENCE)), list(2, "items", Msg(&KEY_TO_PATH)), field(4, "optional", Bool)],
);

pub(crate) static SECRET_VOLUME_SOURCE: Message = Message::new(
    "SecretVolumeSource",
    &[
        omitzero(1, "secretName", Str),
        list(2, "items", Msg(&KEY_TO_PATH)),
        field(3, "defaultMode", I32),
        field(4, "optional", Bool),
        field(5, "defaultUser", I64),
    ],
);

pub(crate) static SECURITY_CONTEXT: Message = Message::new(
    "SecurityContext",
    &[
        field(1, "capabilities", Msg(&CAPABILITIES)),
        field(2, "privileged", Bool),
        field(3, "seLinuxOptions", Msg(&SE_LINUX_OPTIONS)),
        field(4, "runAsUser", I64),
        field(5, "runAsNonRoot", Bool),
        field(6, "readOnlyRootFilesystem", Bool),
        field(7, "allowPrivilegeEscalation", Bool),
        field(8, "runAsGroup", I64),
        field(9, "procMount", Str),
        field(10, "windowsOptions", Msg(&WINDOWS_SECURITY_CONTEXT_OPTIONS)),
        field(11, "seccompProfile", Msg(&SECCOMP_PROFILE)),
        field(12, "appArmorProfile", Msg(&APP_ARMOR_PROFILE)),
    ],
);

pub(crate) static SERVICE: Message = Message::new(
    "Service",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        field(2, "spec", Msg(&SERVICE_SPEC)),
        field(3, "status", Msg(&SERVICE_STATUS)),
    ],
);

pub(crate) static SERVICE_ACCOUNT: Message = Message::new(
    "ServiceAccount",
    &[
        field(1, "metadata", Msg(&meta_v1::OBJECT_META)),
        list(2, "secrets", Msg(&OBJECT_REFERENCE)),
        list(3, "imagePullSecrets", Msg(&LOCAL_OBJECT_REFERENCE)),
        field(4, "automountServiceAccountToken", Bool),
    ],
);

pub(crate) static SERVICE_ACCOUNT_TOKEN_PROJECTION: Message = Message::new(
    "ServiceAccountTokenProjection",
    &[omitzero(1, "audience", Str), field(2, "expirationSeconds", I64), field(3, "path", Str), field(4, "user", I64)],
);

pub(crate) static SERVICE_PORT: Message = Message::new(
    "ServicePort",
    &[
        omitzero(1, "name", Str),
        omitzero(2, "protocol", Str),
        field(3, "port", I32),
        field(4, "targetPort", IntOrString),
        omitzero(5, "nodePort", I32),
        field(6, "appProtocol", Str),
    ],
);

pub(crate) static SERVICE_SPEC: Message = Message::new(
    "ServiceSpec",
    &[
        list(1, "ports", Msg(&SERVICE_PORT)),
        map(2, "selector", Str),
        omitzero(3, "clusterIP", Str),
        omitzero(4, "type", Str),
        list(5, "externalIPs", Str),
        omitzero(7, "sessionAffinity", Str),
        omitzero(8, "loadBalancerIP", Str),
        list(9, "loadBalancerSourceRanges", Str),
        omitzero(10, "externalName", Str),
        omitzero(11, "externalTrafficPolicy", Str),
        omitzero(12, "healthCheckNodePort", I32),
        omitzero(13, "publishNotReadyAddresses", Bool),
        field(14, "sessionAffinityConfig", Msg(&SESSION_AFFINITY_CONFIG)),
        field(17, "ipFamilyPolicy", Str),
        list(18, "clusterIPs", Str),
        list(19, "ipFamilies", Str),
        field(20, "allocateLoadBalancerNodePorts", Bool),
        field(21, "loadBalancerClass", Str),
        field(22, "internalTrafficPolicy", Str),
        field(23, "trafficDistribution", Str),
    ],
);

pub(crate) static SERVICE_STATUS: Message = Message::new(
    "ServiceStatus",
    &[field(1, "loadBalancer", Msg(&LOAD_BALANCER_STATUS)), list(2, "conditions", Msg(&meta_v1::CONDITION))],
);

pub(crate) static SESSION_AFFINITY_CONFIG: Message =
    Message::new("SessionAffinityConfig", &[field(1, "clientIP", Msg(&CLIENT_IP_CONFIG))]);

pub(crate) static SLEEP_ACTION: Message = Message::new("SleepAction", &[field(1, "seconds", I64)]);

pub(crate) static STORAGE_OS_VOLUME_SOURCE: Message = Message::new(
    "StorageOSVolumeSource",
    &[
        omitzero(1, "volumeName", Str),
        omitzero(2, "volumeNamespace", Str),
        omitzero(3, "fsType", Str),
        omitzero(4, "readOnly", Bool),
        field(5, "secretRef", Msg(&LOCAL_OBJECT_REFERENCE)),
    ],
);

pub(crate) static SYSCTL: Message = Message::new("Sysctl", &[field(1, "name", Str), field(2, "value", Str)]);

pub(crate) static TCP_SOCKET_ACTION: Message =
    Message::new("TCPSocketAction", &[field(1, "port", IntOrString), omitzero(2, "host", Str)]);

pub(crate) static TOLERATION: Message = Message::new(
    "Toleration",
    &[
        omitzero(1, "key", Str),
        omitzero(2, "operator", Str),
        omitzero(3, "value", Str),
        omitzero(4, "effect", Str),
        field(5, "tolerationSeconds", I64),
    ],
);

pub(crate) static TOPOLOGY_SPREAD_CONSTRAINT: Message = Message::new(
    "TopologySpreadConstraint",
    &[
        field(1, "maxSkew", I32),
        field(2, "topologyKey", Str),
        field(3, "whenUnsatisfiable", Str),
        field(4, "labelSelector", Msg(&meta_v1::LABEL_SELECTOR)),
        field(5, "minDomains", I32),
        field(6, "nodeAffinityPolicy", Str),
        field(7, "nodeTaintsPolicy", Str),
        list(8, "matchLabelKeys", Str),
    ],
);

pub(crate) static TYPED_LOCAL_OBJECT_REFERENCE: Message = Message::new(
    "TypedLocalObjectReference",
    &[field(1, "apiGroup", Str), field(2, "kind", Str), field(3, "name", Str)],
);

pub(crate) static TYPED_OBJECT_REFERENCE: Message = Message::new(
    "TypedObjectReference",
    &[field(1, "apiGroup", Str), field(2, "kind", Str), field(3, "name", Str), field(4, "namespace", Str)],
);

pub(crate) static VOLUME: Message = Message::new("Volume", &[field(1, "name", Str), inline(2, Msg(&VOLUME_SOURCE))]);

pub(crate) static VOLUME_DEVICE: Message =
    Message::new("VolumeDevice", &[field(1, "name", Str), field(2, "devicePath", Str)]);

pub(crate) static VOLUME_HEALTH_CONDITION: Message = Message::new(
    "VolumeHealthCondition",
    &[field(1, "status", Str), field(2, "reason", Str), omitzero(3, "message", Str)],
);

pub(crate) static VOLUME_HEALTH_STATUS: Message = Message::new(
    "VolumeHealthStatus",
    &[list(1, "healthConditions", Msg(&VOLUME_HEALTH_CONDITION)), field(2, "lastTransitionTime", Time)],
);

pub(crate) static VOLUME_MOUNT: Message = Message::new(
    "VolumeMount",
    &[
        field(1, "name", Str),
        omitzero(2, "readOnly", Bool),
        field(3, "mountPath", Str),
        omitzero(4, "subPath", Str),
        field(5, "mountPropagation", Str),
        omitzero(6, "subPathExpr", Str),
        field(7, "recursiveReadOnly", Str),
        list(8, "bindMountOptions", Str),
    ],
);

pub(crate) static VOLUME_MOUNT_STATUS: Message = Message::new(
    "VolumeMountStatus",
    &[
        field(1, "name", Str),
        field(2, "mountPath", Str),
        omitzero(3, "readOnly", Bool),
        field(4, "recursiveReadOnly", Str),
        field(5, "volumeStatus", Msg(&VOLUME_STATUS)),
    ],
);

pub(crate) static VOLUME_PROJECTION: Message = Message::new(
    "VolumeProjection",
    &[
        field(1, "secret", Msg(&SECRET_PROJECTION)),
        field(2, "downwardAPI", Msg(&DOWNWARD_API_PROJECTION)),
        field(3, "configMap", Msg(&CONFIG_MAP_PROJECTION)),
        field(4, "serviceAccountToken", Msg(&SERVICE_ACCOUNT_TOKEN_PROJECTION)),
        field(5, "clusterTrustBundle", Msg(&CLUSTER_TRUST_BUNDLE_PROJECTION)),
        field(6, "podCertificate", Msg(&POD_CERTIFICATE_PROJECTION)),
    ],
);

pub(crate) static VOLUME_RESOURCE_REQUIREMENTS: Message =
    Message::new("VolumeResourceRequirements", &[map(1, "limits", Quantity), map(2, "requests", Quantity)]);

pub(crate) static VOLUME_SOURCE: Message = Message::new(
    "VolumeSource",
    &[
        field(1, "hostPath", Msg(&HOST_PATH_VOLUME_SOURCE)),
        field(2, "emptyDir", Msg(&EMPTY_DIR_VOLUME_SOURCE)),
        field(3, "gcePersistentDisk", Msg(&GCE_PERSISTENT_DISK_VOLUME_SOURCE)),
        field(4, "awsElasticBlockStore", Msg(&AWS_ELASTIC_BLOCK_STORE_VOLUME_SOURCE)),
        field(5, "gitRepo", Msg(&GIT_REPO_VOLUME_SOURCE)),
        field(6, "secret", Msg(&SECRET_VOLUME_SOURCE)),
        field(7, "nfs", Msg(&NFS_VOLUME_SOURCE)),
        field(8, "iscsi", Msg(&ISCSI_VOLUME_SOURCE)),
        field(9, "glusterfs", Msg(&GLUSTERFS_VOLUME_SOURCE)),
        field(10, "persistentVolumeClaim", Msg(&PERSISTENT_VOLUME_CLAIM_VOLUME_SOURCE)),
        field(11, "rbd", Msg(&RBD_VOLUME_SOURCE)),
        field(12, "flexVolume", Msg(&FLEX_VOLUME_SOURCE)),
        field(13, "cinder", Msg(&CINDER_VOLUME_SOURCE)),
        field(14, "cephfs", Msg(&CEPH_FS_VOLUME_SOURCE)),
        field(15, "flocker", Msg(&FLOCKER_VOLUME_SOURCE)),
        field(16, "downwardAPI", Msg(&DOWNWARD_API_VOLUME_SOURCE)),
        field(17, "fc", Msg(&FC_VOLUME_SOURCE)),
        field(18, "azureFile", Msg(&AZURE_FILE_VOLUME_SOURCE)),
        field(19, "configMap", Msg(&CONFIG_MAP_VOLUME_SOURCE)),
        field(20, "vsphereVolume", Msg(&VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE)),
        field(21, "quobyte", Msg(&QUOBYTE_VOLUME_SOURCE)),
        field(22, "azureDisk", Msg(&AZURE_DISK_VOLUME_SOURCE)),
        field(23, "photonPersistentDisk", Msg(&PHOTON_PERSISTENT_DISK_VOLUME_SOURCE)),
        field(24, "portworxVolume", Msg(&PORTWORX_VOLUME_SOURCE)),
        field(25, "scaleIO", Msg(&SCALE_IO_VOLUME_SOURCE)),
        field(26, "projected", Msg(&PROJECTED_VOLUME_SOURCE)),
        field(27, "storageos", Msg(&STORAGE_OS_VOLUME_SOURCE)),
        field(28, "csi", Msg(&CSI_VOLUME_SOURCE)),
        field(29, "ephemeral", Msg(&EPHEMERAL_VOLUME_SOURCE)),
        field(30, "image", Msg(&IMAGE_VOLUME_SOURCE)),
    ],
);

pub(crate) static VOLUME_STATUS: Message =
    Message::new("VolumeStatus", &[field(1, "image", Msg(&IMAGE_VOLUME_STATUS))]);

pub(crate) static VSPHERE_VIRTUAL_DISK_VOLUME_SOURCE: Message = Message::new(
    "VsphereVirtualDiskVolumeSource",
    &[
        field(1, "volumePath", Str),
        omitzero(2, "fsType", Str),
        omitzero(3, "storagePolicyName", Str),
        omitzero(4, "storagePolicyID", Str),
    ],
);

pub(crate) static WEIGHTED_POD_AFFINITY_TERM: Message = Message::new(
    "WeightedPodAffinityTerm",
    &[field(1, "weight", I32), field(2, "podAffinityTerm", Msg(&POD_AFFINITY_TERM))],
);

pub(crate) static WINDOWS_SECURITY_CONTEXT_OPTIONS: Message = Message::new(
    "WindowsSecurityContextOptions",
    &[
        field(1, "gmsaCredentialSpecName", Str),
        field(2, "gmsaCredentialSpec", Str),
        field(3, "runAsUserName", Str),
        field(4, "hostProcess", Bool),
    ],
);
