//! The node's image store: imported image archives, their unpacked layers, and the overlay
//! root filesystems that containers run in.
//!
//! Layout under the store's root:
//!
//! ```text
//! blobs/sha256/<hex>        content-addressed blobs (manifests, configs, layer tarballs)
//! index.json                reference -> manifest digest, e.g. docker.io/library/nginx:latest
//! layers/<hex>/             each layer unpacked once, named by its blob digest, shared
//!                           read-only by every container of every image that has it
//! containers/<id>/upper     a container's writable layer
//! containers/<id>/work      overlayfs's scratch directory for it
//! tmp/                      staging for imports and unpacks, renamed into place when complete
//! ```
//!
//! Images arrive only through [`ImageStore::import`] (an OCI layout archive or a `docker save`
//! archive); pulling from registries is not implemented, and [`ImageStore::ensure`] turns a
//! missing image into the error the kubelet would report.
//!
//! **Invariant:** everything under `blobs/` and `layers/` is complete and verified, because it
//! only ever appears there by a rename from `tmp/` after its digest was checked. A crash leaves
//! debris in `tmp/` at worst, never a half-written blob or layer.

mod digest;
mod import;
mod layer;
mod oci;
mod reference;
mod rootfs;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use digest::{Digest, DigestError};
pub use reference::{Reference, ReferenceError};
pub use rootfs::{Rootfs, is_mount_point};

use oci::{ConfigFile, Manifest};

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("image \"{0}\" is not in the store")]
    NotFound(String),
    #[error("blob {0} is not in the store")]
    MissingBlob(Digest),
    #[error("{what} has digest {actual}, expected {expected}")]
    DigestMismatch { what: String, expected: Digest, actual: Digest },
    #[error("{what} is {actual} bytes, its descriptor says {expected}")]
    SizeMismatch { what: String, expected: u64, actual: u64 },
    #[error("archive {path}: {reason}")]
    Archive { path: PathBuf, reason: String },
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: unsupported media type {media_type:?}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("layer {digest}: {reason}")]
    Layer { digest: Digest, reason: String },
    #[error("invalid container id {0:?}: want 1-128 characters of [A-Za-z0-9_.-], not starting with a dot")]
    InvalidContainerId(String),
    #[error("{0} is already a mount point")]
    AlreadyMounted(PathBuf),
    #[error("image {0} has no layers to build a root filesystem from")]
    NoLayers(String),
    #[error("overlay mount options for {path} are {len} bytes, more than the kernel's one page")]
    MountOptionsTooLong { path: PathBuf, len: usize },
    #[error("path {0} cannot be used in overlayfs options (it contains ':' or ',')")]
    UnusablePath(PathBuf),
    #[error("mount overlay at {path}: {source}")]
    Mount {
        path: PathBuf,
        #[source]
        source: rustix::io::Errno,
    },
    #[error("unmount {path}: {source}")]
    Unmount {
        path: PathBuf,
        #[source]
        source: rustix::io::Errno,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Attaches the failing action and path to an I/O error, which on its own says neither.
pub(crate) trait IoContext<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T> {
        self.map_err(|source| ImageError::Io { action, path: path.to_path_buf(), source })
    }
}

/// An image found in the store: everything needed to create its containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The normalized reference it was resolved by, e.g. `docker.io/library/nginx:latest`.
    pub reference: String,
    pub manifest_digest: Digest,
    /// The config blob's digest, which Docker calls the image ID and the kubelet reports as
    /// `imageID` in container statuses.
    pub config_digest: Digest,
    pub config: ImageConfig,
    /// The layers, bottom first.
    pub layers: Vec<Layer>,
}

/// The parts of an image's configuration that decide how its containers run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries, in the image's order.
    pub env: Vec<String>,
    /// Empty means `/`.
    pub working_dir: String,
    /// Empty means root; otherwise `user`, `uid`, `user:group` or `uid:gid` as Docker takes it.
    pub user: String,
    /// `port/protocol`, e.g. `80/tcp`, sorted.
    pub exposed_ports: Vec<String>,
    /// The signal that stops the container gracefully, e.g. `SIGQUIT` for nginx.
    pub stop_signal: Option<String>,
}

/// One layer of an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// What one import added: a manifest and the references now pointing at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedImage {
    pub manifest_digest: Digest,
    /// Normalized references; empty for an image the archive gives no name.
    pub references: Vec<String>,
}

/// A container's `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The policy the API server fills in when a pod leaves it out: `Always` for the `latest`
    /// tag (written or implied), `IfNotPresent` otherwise, including for digests.
    pub fn default_for(image: &str) -> PullPolicy {
        match Reference::parse(image) {
            Ok(reference) if reference.tag() == Some("latest") => PullPolicy::Always,
            Ok(_) => PullPolicy::IfNotPresent,
            // The API server applies the same test to the raw string when it cannot parse it.
            Err(_) if image.ends_with(":latest") || !image.contains(':') => PullPolicy::Always,
            Err(_) => PullPolicy::IfNotPresent,
        }
    }

    /// Parses the pod spec's spelling.
    pub fn parse(policy: &str) -> Option<PullPolicy> {
        match policy {
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

/// Why a container's image cannot be had. The messages are the kubelet's, and
/// [`PullError::reason`] gives the matching waiting reason for the container status.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("Failed to apply default image tag \"{image}\": {source}")]
    InvalidImageName {
        image: String,
        #[source]
        source: ReferenceError,
    },
    #[error("Container image \"{image}\" is not present with pull policy of Never")]
    NeverPull { image: String },
    #[error(
        "Failed to pull image \"{image}\": pulling from registries is not supported; \
         import the image with rkube image import"
    )]
    PullUnsupported { image: String },
    #[error("Failed to inspect image \"{image}\": {source}")]
    Inspect {
        image: String,
        #[source]
        source: ImageError,
    },
}

impl PullError {
    /// The container's waiting reason. A repeated `ErrImagePull` is reported by the kubelet as
    /// `ImagePullBackOff` while it waits to retry; that back-off belongs to the caller.
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::InvalidImageName { .. } => "InvalidImageName",
            PullError::NeverPull { .. } => "ErrImageNeverPull",
            PullError::PullUnsupported { .. } => "ErrImagePull",
            PullError::Inspect { .. } => "ImageInspectError",
        }
    }
}

/// The reference index, kept in one small JSON file that is replaced atomically.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct RefIndex {
    images: BTreeMap<String, Digest>,
}

/// The store. It holds only paths, so it is cheap to share; every operation is safe to run
/// from several threads or processes at once (blobs and layers appear by atomic renames, the
/// reference index is updated under an exclusive `flock`).
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens the store at `root`, creating its directories if needed.
    pub fn open(root: &Path) -> Result<ImageStore> {
        let store = ImageStore { root: root.to_path_buf() };
        for dir in [store.blobs_dir(), store.layers_dir(), store.containers_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).at("create", &dir)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports an OCI image layout archive or a `docker save` archive, either possibly
    /// gzip-compressed, verifying every blob's digest, and points the archive's image names
    /// at what it imported. Layers are unpacked later, when a container first needs them.
    pub fn import(&self, archive: &Path) -> Result<Vec<ImportedImage>> {
        let imported = import::import_archive(self, archive)?;
        let mut updates = BTreeMap::new();
        for image in &imported {
            for reference in &image.references {
                updates.insert(reference.clone(), image.manifest_digest.clone());
            }
        }
        if !updates.is_empty() {
            self.update_index(|index| index.images.extend(updates))?;
        }
        Ok(imported)
    }

    /// Finds an image by reference, normalized as Docker does (`nginx` is
    /// `docker.io/library/nginx:latest`). A reference with a digest is found by the digest
    /// alone, whatever name it carries, as long as the store has that manifest.
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        let parsed = Reference::parse(reference)?;
        let manifest_digest = match (parsed.digest(), parsed.tagged_name()) {
            (Some(digest), _) => {
                if !self.blob_path(digest).is_file() {
                    return Err(ImageError::NotFound(parsed.to_string()));
                }
                digest.clone()
            }
            (None, Some(tagged)) => match self.read_index()?.images.get(&tagged) {
                Some(digest) => digest.clone(),
                None => return Err(ImageError::NotFound(tagged)),
            },
            (None, None) => return Err(ImageError::NotFound(parsed.to_string())),
        };
        self.image_from_manifest(parsed.to_string(), manifest_digest)
    }

    /// Returns the image for a container, as the kubelet's image manager would, except that
    /// nothing is ever pulled: a present image is used whatever the policy (for `Always` the
    /// local copy stands in for the registry's), and a missing one is an error that says why.
    pub fn ensure(&self, image: &str, policy: PullPolicy) -> Result<Image, PullError> {
        if let Err(source) = Reference::parse(image) {
            return Err(PullError::InvalidImageName { image: image.to_string(), source });
        }
        match self.resolve(image) {
            Ok(found) => Ok(found),
            Err(ImageError::NotFound(_)) => match policy {
                PullPolicy::Never => Err(PullError::NeverPull { image: image.to_string() }),
                PullPolicy::Always | PullPolicy::IfNotPresent => {
                    Err(PullError::PullUnsupported { image: image.to_string() })
                }
            },
            Err(source) => Err(PullError::Inspect { image: image.to_string(), source }),
        }
    }

    /// Every reference in the store with its manifest digest, sorted by reference.
    pub fn list(&self) -> Result<Vec<(String, Digest)>> {
        Ok(self.read_index()?.images.into_iter().collect())
    }

    /// Points `target` at the image `source` resolves to, as `docker tag` does.
    pub fn tag(&self, source: &str, target: &str) -> Result<Image> {
        let image = self.resolve(source)?;
        let target = Reference::parse(target)?;
        let Some(tagged) = target.tagged_name() else {
            return Err(ImageError::Reference(ReferenceError::InvalidFormat(target.to_string())));
        };
        let digest = image.manifest_digest.clone();
        self.update_index(|index| {
            index.images.insert(tagged, digest);
        })?;
        Ok(image)
    }

    /// Removes a reference. Blobs and unpacked layers stay until a garbage collection, which
    /// is not implemented yet; returns whether the reference existed.
    pub fn untag(&self, reference: &str) -> Result<bool> {
        let parsed = Reference::parse(reference)?;
        let Some(tagged) = parsed.tagged_name() else { return Ok(false) };
        let mut removed = false;
        self.update_index(|index| removed = index.images.remove(&tagged).is_some())?;
        Ok(removed)
    }

    /// Unpacks the image's layers that are not unpacked yet and returns their directories,
    /// bottom first. Each layer is unpacked once and then shared by all containers.
    pub fn unpack(&self, image: &Image) -> Result<Vec<PathBuf>> {
        image.layers.iter().map(|layer| layer::ensure_unpacked(self, layer)).collect()
    }

    /// Mounts an overlayfs at `dest` whose lower layers are the image's unpacked layers and
    /// whose upper layer is new and private to `container_id`. `dest` is created if missing
    /// and must not already be a mount point; leftovers of an earlier container with the same
    /// id (after a crash) are discarded.
    pub fn prepare_rootfs(&self, container_id: &str, image: &Image, dest: &Path) -> Result<Rootfs> {
        rootfs::prepare(self, container_id, image, dest)
    }

    /// Unmounts the container's root filesystem at `dest` and removes its upper and work
    /// directories and `dest` itself if it is left empty. Safe to call again, or for a
    /// container whose rootfs was never (or only half) prepared, so an agent can call it for
    /// every container it finds after a restart.
    pub fn release_rootfs(&self, container_id: &str, dest: &Path) -> Result<()> {
        rootfs::release(self, container_id, dest)
    }

    /// The directory a layer is (or will be) unpacked in.
    pub fn layer_dir(&self, digest: &Digest) -> PathBuf {
        self.layers_dir().join(digest.hex())
    }

    /// Where a blob is stored.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        match fs::read(&path) {
            Ok(bytes) => Ok(bytes),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Err(ImageError::MissingBlob(digest.clone())),
            Err(source) => Err(ImageError::Io { action: "read", path, source }),
        }
    }

    fn read_json_blob<T: serde::de::DeserializeOwned>(&self, digest: &Digest, what: &str) -> Result<T> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json { what: format!("{what} {digest}"), source })
    }

    fn image_from_manifest(&self, reference: String, manifest_digest: Digest) -> Result<Image> {
        let manifest: Manifest = self.read_json_blob(&manifest_digest, "manifest")?;
        let config_file: ConfigFile = self.read_json_blob(&manifest.config.digest, "image config")?;
        let container = config_file.config.unwrap_or_default();
        let config = ImageConfig {
            entrypoint: container.entrypoint.unwrap_or_default(),
            cmd: container.cmd.unwrap_or_default(),
            env: container.env.unwrap_or_default(),
            working_dir: container.working_dir.unwrap_or_default(),
            user: container.user.unwrap_or_default(),
            exposed_ports: container.exposed_ports.unwrap_or_default().into_keys().collect(),
            stop_signal: container.stop_signal.filter(|signal| !signal.is_empty()),
        };
        let layers = manifest
            .layers
            .into_iter()
            .map(|layer| Layer { digest: layer.digest, media_type: layer.media_type, size: layer.size })
            .collect();
        Ok(Image { reference, manifest_digest, config_digest: manifest.config.digest, config, layers })
    }

    fn read_index(&self) -> Result<RefIndex> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| ImageError::Json { what: path.display().to_string(), source }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(RefIndex::default()),
            Err(source) => Err(ImageError::Io { action: "read", path, source }),
        }
    }

    /// Read-modify-write of the reference index under an exclusive lock, so that concurrent
    /// imports from several processes do not lose each other's references. Readers take no
    /// lock: the file is replaced by rename, so they see the old or the new index whole.
    fn update_index(&self, change: impl FnOnce(&mut RefIndex)) -> Result<()> {
        let lock_path = self.root.join("index.lock");
        let lock =
            fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).at("open", &lock_path)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(io::Error::from)
            .at("lock", &lock_path)?;
        let mut index = self.read_index()?;
        change(&mut index);
        let bytes = serde_json::to_vec_pretty(&index)
            .map_err(|source| ImageError::Json { what: "reference index".to_string(), source })?;
        let path = self.index_path();
        let tmp = self.tmp_dir().join(format!("index.json.{}", std::process::id()));
        fs::write(&tmp, bytes).at("write", &tmp)?;
        fs::rename(&tmp, &path).at("replace", &path)?;
        // The lock is released when `lock` is dropped, after the rename.
        drop(lock);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults_follow_the_api_server() {
        assert_eq!(PullPolicy::default_for("nginx"), PullPolicy::Always);
        assert_eq!(PullPolicy::default_for("nginx:latest"), PullPolicy::Always);
        assert_eq!(PullPolicy::default_for("busybox:1.36"), PullPolicy::IfNotPresent);
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(PullPolicy::default_for(&format!("nginx@sha256:{hex}")), PullPolicy::IfNotPresent);
        assert_eq!(PullPolicy::parse("Never"), Some(PullPolicy::Never));
        assert_eq!(PullPolicy::parse("never"), None);
    }

    #[test]
    fn ensure_reports_missing_images_as_the_kubelet_does() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ImageStore::open(dir.path()).expect("open store");

        let never = store.ensure("nginx:1.25", PullPolicy::Never).expect_err("nothing imported");
        assert_eq!(never.reason(), "ErrImageNeverPull");
        assert_eq!(never.to_string(), "Container image \"nginx:1.25\" is not present with pull policy of Never");

        for policy in [PullPolicy::Always, PullPolicy::IfNotPresent] {
            let err = store.ensure("nginx", policy).expect_err("nothing imported");
            assert_eq!(err.reason(), "ErrImagePull");
            assert!(err.to_string().contains("pulling from registries is not supported"), "{err}");
            assert!(err.to_string().contains("rkube image import"), "{err}");
        }

        let invalid = store.ensure("Nginx", PullPolicy::IfNotPresent).expect_err("uppercase is invalid");
        assert_eq!(invalid.reason(), "InvalidImageName");
        assert!(invalid.to_string().starts_with("Failed to apply default image tag \"Nginx\""), "{invalid}");
    }

    #[test]
    fn index_updates_keep_other_references() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ImageStore::open(dir.path()).expect("open store");
        let a = Digest::of_bytes(b"a");
        let b = Digest::of_bytes(b"b");
        store.update_index(|index| drop(index.images.insert("x".to_string(), a.clone()))).expect("update");
        store.update_index(|index| drop(index.images.insert("y".to_string(), b.clone()))).expect("update");
        assert_eq!(store.list().expect("list"), vec![("x".to_string(), a), ("y".to_string(), b)]);
    }
}
