//! The JSON documents of OCI image layouts and docker archives, limited to the fields the
//! store reads. Unknown fields are ignored so that documents written by newer tools still load.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;

pub(crate) const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub(crate) const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The annotation containerd and `docker save` put the full image name in.
pub(crate) const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI layout's name annotation: a full reference or, by the spec's convention, a tag.
pub(crate) const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// How a layer blob is stored, which decides how it is read when unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LayerCompression {
    None,
    Gzip,
}

/// The compression of a layer media type, or `None` for media types that are not layers the
/// store can unpack (zstd, foreign layers).
pub(crate) fn layer_compression(media_type: &str) -> Option<LayerCompression> {
    match media_type {
        MEDIA_TYPE_OCI_LAYER | MEDIA_TYPE_DOCKER_LAYER => Some(LayerCompression::None),
        MEDIA_TYPE_OCI_LAYER_GZIP | MEDIA_TYPE_DOCKER_LAYER_GZIP => Some(LayerCompression::Gzip),
        _ => None,
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Platform {
    pub(crate) architecture: String,
    pub(crate) os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
}

/// An image index (`index.json`, or a multi-platform manifest list).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Index {
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

/// An image manifest: one config and the layers, bottom first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub(crate) schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    pub(crate) config: Descriptor,
    pub(crate) layers: Vec<Descriptor>,
}

/// Just enough of a manifest or index to tell which one a blob is, since an OCI index may
/// omit the media type on its descriptors.
#[derive(Debug, Deserialize)]
pub(crate) struct Probe {
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: Option<String>,
    #[serde(default)]
    pub(crate) manifests: Option<serde_json::Value>,
}

/// The image configuration blob (`application/vnd.oci.image.config.v1+json`, which docker's
/// config is a superset of).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) os: String,
    #[serde(default)]
    pub(crate) config: Option<ContainerConfig>,
    #[serde(default)]
    pub(crate) rootfs: Option<RootFs>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ContainerConfig {
    #[serde(default)]
    pub(crate) entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) cmd: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) env: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) working_dir: Option<String>,
    #[serde(default)]
    pub(crate) user: Option<String>,
    #[serde(default)]
    pub(crate) exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub(crate) stop_signal: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub(crate) diff_ids: Vec<Digest>,
}

/// One image of a docker archive's `manifest.json`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerArchiveEntry {
    pub(crate) config: String,
    #[serde(default)]
    pub(crate) repo_tags: Option<Vec<String>>,
    pub(crate) layers: Vec<String>,
}

/// The Go name of this machine's architecture, as image platforms spell it.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
