//! Importing image archives: OCI image layouts and `docker save` archives.
//!
//! The archive is read once, front to back, and every member is copied into a staging
//! directory while it is hashed, because tar can only be read sequentially and the two formats
//! name their documents (`index.json`, `manifest.json`) anywhere in the stream. Verified blobs
//! are then hard-linked into the store, which makes each one appear whole or not at all.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::digest::{Digest, HashingWriter, digest_reader, is_sha256_hex};
use super::oci::{
    self, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, ConfigFile, Descriptor, DockerArchiveEntry, Index,
    LayerCompression, Manifest, Probe,
};
use super::{ImageError, ImageStore, ImportedImage, IoContext, Reference, Result};

/// How deep nested indexes may go before the archive is considered malformed.
const MAX_INDEX_DEPTH: usize = 4;
/// How many symlinks a member name may go through.
const MAX_LINK_HOPS: usize = 16;

pub(crate) fn import_archive(store: &ImageStore, archive: &Path) -> Result<Vec<ImportedImage>> {
    let tmp = store.tmp_dir();
    let staging = tempfile::Builder::new().prefix("import-").tempdir_in(&tmp).at("create staging dir in", &tmp)?;
    let staged = stage(archive, staging.path())?;
    let importer = Importer { store, archive, staged: &staged };
    if staged.files.contains_key("index.json") {
        importer.import_oci()
    } else if staged.files.contains_key("manifest.json") {
        importer.import_docker()
    } else {
        Err(importer.error("neither an OCI image layout (no index.json) nor a docker archive (no manifest.json)"))
    }
    // `staging` is removed here; the blobs that were linked into the store stay.
}

/// A member of the archive, copied out and hashed.
struct StagedFile {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

#[derive(Default)]
struct Staged {
    files: HashMap<String, StagedFile>,
    /// Symlinks and hard links among the members, by name, to the member they point at.
    /// `docker save` links a layer shared by two images instead of storing it twice.
    links: HashMap<String, String>,
}

/// Copies every regular member of the archive into `dir`, hashing it on the way.
fn stage(archive: &Path, dir: &Path) -> Result<Staged> {
    let file = File::open(archive).at("open", archive)?;
    let mut reader = BufReader::new(file);
    let gzipped = reader.fill_buf().at("read", archive)?.starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn Read> = if gzipped { Box::new(MultiGzDecoder::new(reader)) } else { Box::new(reader) };
    let mut tar = tar::Archive::new(input);
    let mut staged = Staged::default();
    for (n, entry) in tar.entries().at("read", archive)?.enumerate() {
        let mut entry = entry.at("read", archive)?;
        let Some(name) = member_name(&entry.path_bytes()) else { continue };
        let kind = entry.header().entry_type();
        if kind.is_file() || kind == tar::EntryType::Continuous {
            let path = dir.join(n.to_string());
            let out = File::create(&path).at("create", &path)?;
            let mut writer = HashingWriter::new(BufWriter::new(out));
            io::copy(&mut entry, &mut writer).at("read", archive)?;
            let (mut out, digest, size) = writer.finish();
            out.flush().at("write", &path)?;
            staged.files.insert(name, StagedFile { path, digest, size });
        } else if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name_bytes() else { continue };
            let target = String::from_utf8_lossy(&target).into_owned();
            // A symlink is relative to its own directory; a hard link names a member.
            let joined = match (kind.is_symlink(), name.rsplit_once('/')) {
                (true, Some((parent, _))) if !target.starts_with('/') => format!("{parent}/{target}"),
                _ => target,
            };
            if let Some(target) = member_name(joined.as_bytes()) {
                staged.links.insert(name, target);
            }
        }
    }
    Ok(staged)
}

/// The normalized name of an archive member (`./a/../b` is `b`), or `None` for the archive
/// root and for names that climb out of it.
fn member_name(raw: &[u8]) -> Option<String> {
    let raw = String::from_utf8_lossy(raw);
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(raw.as_ref()).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if parts.is_empty() { None } else { Some(parts.join("/")) }
}

struct Importer<'a> {
    store: &'a ImageStore,
    archive: &'a Path,
    staged: &'a Staged,
}

impl Importer<'_> {
    fn error(&self, reason: impl Into<String>) -> ImageError {
        ImageError::Archive { path: self.archive.to_path_buf(), reason: reason.into() }
    }

    /// The staged member by name, following links.
    fn member(&self, name: &str) -> Result<&StagedFile> {
        let mut current =
            member_name(name.as_bytes()).ok_or_else(|| self.error(format!("bad member name {name:?}")))?;
        for _ in 0..MAX_LINK_HOPS {
            if let Some(file) = self.staged.files.get(&current) {
                return Ok(file);
            }
            match self.staged.links.get(&current) {
                Some(next) => current = next.clone(),
                None => break,
            }
        }
        Err(self.error(format!("has no file {name}")))
    }

    fn read_member_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T> {
        let member = self.member(name)?;
        let bytes = fs::read(&member.path).at("read", &member.path)?;
        serde_json::from_slice(&bytes)
            .map_err(|source| ImageError::Json { what: format!("{} in {}", name, self.archive.display()), source })
    }

    /// Makes a staged file a blob of the store. Content-addressing makes an existing blob with
    /// the same digest as good as this one, and a hard link publishes the complete file in one
    /// step.
    fn commit(&self, file: &StagedFile) -> Result<()> {
        let dest = self.store.blob_path(&file.digest);
        if dest.is_file() {
            return Ok(());
        }
        match fs::hard_link(&file.path, &dest) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(source) => Err(ImageError::Io { action: "link blob", path: dest, source }),
        }
    }

    /// Stores a document the importer wrote itself (a docker archive's manifest).
    fn commit_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of_bytes(bytes);
        let dest = self.store.blob_path(&digest);
        if !dest.is_file() {
            let tmp = tempfile::NamedTempFile::new_in(self.store.tmp_dir()).at("create temp file in", &dest)?;
            fs::write(tmp.path(), bytes).at("write", tmp.path())?;
            tmp.persist(&dest).map_err(|err| ImageError::Io { action: "store blob", path: dest, source: err.error })?;
        }
        Ok(digest)
    }

    // ---- OCI image layout

    fn import_oci(&self) -> Result<Vec<ImportedImage>> {
        if let Ok(layout) = self.read_member_json::<serde_json::Value>("oci-layout") {
            let version = layout.get("imageLayoutVersion").and_then(|v| v.as_str()).unwrap_or_default();
            if !version.starts_with("1.") {
                return Err(self.error(format!("unsupported imageLayoutVersion {version:?}")));
            }
        }
        // Every blob is checked against its name before anything refers to it.
        let mut names: Vec<&String> = self.staged.files.keys().filter(|name| name.starts_with("blobs/")).collect();
        names.sort();
        for name in names {
            let file = &self.staged.files[name];
            let mut parts = name.splitn(3, '/').skip(1);
            let (Some(algorithm), Some(hex)) = (parts.next(), parts.next()) else { continue };
            if algorithm != "sha256" || !is_sha256_hex(hex) {
                return Err(self.error(format!("unsupported blob {name}: only sha256 is supported")));
            }
            let expected = Digest::from_hex(hex).map_err(|err| self.error(err.to_string()))?;
            if file.digest != expected {
                return Err(ImageError::DigestMismatch {
                    what: format!("blob {name}"),
                    expected,
                    actual: file.digest.clone(),
                });
            }
            self.commit(file)?;
        }

        let index: Index = self.read_member_json("index.json")?;
        let mut by_manifest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        let mut order = Vec::new();
        for descriptor in &index.manifests {
            let manifest_digest = self.platform_manifest(descriptor, 0)?;
            let references = self.names_from_annotations(&descriptor.annotations)?;
            let entry = by_manifest.entry(manifest_digest.clone()).or_insert_with(|| {
                order.push(manifest_digest);
                Vec::new()
            });
            for reference in references {
                if !entry.contains(&reference) {
                    entry.push(reference);
                }
            }
        }
        Ok(order
            .into_iter()
            .map(|manifest_digest| {
                let references = by_manifest.remove(&manifest_digest).unwrap_or_default();
                ImportedImage { manifest_digest, references }
            })
            .collect())
    }

    /// The image names an index entry carries. containerd and `docker save` write the full
    /// name in `io.containerd.image.name`; the OCI annotation holds either a full reference
    /// or, by the spec's convention, a bare tag such as `latest`, which names no repository
    /// and so cannot be used.
    fn names_from_annotations(&self, annotations: &BTreeMap<String, String>) -> Result<Vec<String>> {
        let name = match (annotations.get(ANNOTATION_CONTAINERD_NAME), annotations.get(ANNOTATION_REF_NAME)) {
            (Some(name), _) => name,
            (None, Some(name)) if name.contains(['/', ':', '@']) => name,
            _ => return Ok(Vec::new()),
        };
        let reference = Reference::parse(name).map_err(|err| self.error(format!("index.json: {err}")))?;
        Ok(reference.tagged_name().into_iter().collect())
    }

    /// Follows a descriptor through nested indexes to this machine's platform's manifest, and
    /// checks that the manifest's config and layers are all present with the right sizes.
    fn platform_manifest(&self, descriptor: &Descriptor, depth: usize) -> Result<Digest> {
        if depth > MAX_INDEX_DEPTH {
            return Err(self.error("image indexes nested too deeply"));
        }
        let bytes = self.store.read_blob(&descriptor.digest)?;
        check_size(&format!("manifest {}", descriptor.digest), descriptor.size, bytes.len() as u64)?;
        let probe: Probe = serde_json::from_slice(&bytes)
            .map_err(|source| ImageError::Json { what: format!("manifest {}", descriptor.digest), source })?;
        let media_type = probe.media_type.as_deref().unwrap_or(descriptor.media_type.as_str());
        let is_index = matches!(media_type, oci::MEDIA_TYPE_OCI_INDEX | oci::MEDIA_TYPE_DOCKER_LIST)
            || (media_type.is_empty() && probe.manifests.is_some());
        if is_index {
            let index: Index = serde_json::from_slice(&bytes)
                .map_err(|source| ImageError::Json { what: format!("image index {}", descriptor.digest), source })?;
            let arch = oci::host_architecture();
            let chosen = index.manifests.iter().find(|candidate| {
                candidate.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch)
            });
            return match chosen {
                Some(chosen) => self.platform_manifest(chosen, depth + 1),
                None => Err(self.error(format!("image index {} has no linux/{arch} manifest", descriptor.digest))),
            };
        }
        if !matches!(media_type, oci::MEDIA_TYPE_OCI_MANIFEST | oci::MEDIA_TYPE_DOCKER_MANIFEST | "") {
            return Err(ImageError::UnsupportedMediaType {
                what: format!("manifest {}", descriptor.digest),
                media_type: media_type.to_string(),
            });
        }
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|source| ImageError::Json { what: format!("manifest {}", descriptor.digest), source })?;
        self.check_blob(&manifest.config, "config")?;
        for layer in &manifest.layers {
            if oci::layer_compression(&layer.media_type).is_none() {
                return Err(ImageError::UnsupportedMediaType {
                    what: format!("layer {}", layer.digest),
                    media_type: layer.media_type.clone(),
                });
            }
            self.check_blob(layer, "layer")?;
        }
        let config: ConfigFile = self.store.read_json_blob(&manifest.config.digest, "image config")?;
        self.check_platform(&config, &manifest.config.digest.to_string())?;
        if let Some(rootfs) = &config.rootfs
            && rootfs.diff_ids.len() != manifest.layers.len()
        {
            return Err(self.error(format!(
                "image config {} lists {} layers, its manifest {}",
                manifest.config.digest,
                rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        Ok(descriptor.digest.clone())
    }

    /// Refuses an image built for another machine: its binaries could only fail later, at
    /// exec, with a far less helpful "exec format error".
    fn check_platform(&self, config: &ConfigFile, what: &str) -> Result<()> {
        let arch = oci::host_architecture();
        let os_ok = config.os.is_empty() || config.os == "linux";
        let arch_ok = config.architecture.is_empty() || config.architecture == arch;
        if os_ok && arch_ok {
            Ok(())
        } else {
            Err(self.error(format!(
                "image config {what} is for {}/{}, this node is linux/{arch}",
                config.os, config.architecture
            )))
        }
    }

    fn check_blob(&self, descriptor: &Descriptor, what: &str) -> Result<()> {
        let path = self.store.blob_path(&descriptor.digest);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::MissingBlob(descriptor.digest.clone()));
            }
            Err(source) => return Err(ImageError::Io { action: "stat", path, source }),
        };
        check_size(&format!("{what} {}", descriptor.digest), descriptor.size, meta.len())
    }

    // ---- docker save archives

    fn import_docker(&self) -> Result<Vec<ImportedImage>> {
        let entries: Vec<DockerArchiveEntry> = self.read_member_json("manifest.json")?;
        let mut imported = Vec::new();
        for entry in entries {
            imported.push(self.import_docker_image(&entry)?);
        }
        Ok(imported)
    }

    fn import_docker_image(&self, entry: &DockerArchiveEntry) -> Result<ImportedImage> {
        // The config's name is its own digest (`<hex>.json`, or `blobs/sha256/<hex>` in newer
        // archives), which is also the image ID: check it when the name has that shape.
        let config = self.member(&entry.config)?;
        let stem = entry.config.rsplit('/').next().unwrap_or_default().trim_end_matches(".json");
        if is_sha256_hex(stem) && config.digest.hex() != stem {
            return Err(ImageError::DigestMismatch {
                what: format!("config {}", entry.config),
                expected: Digest::from_hex(stem).map_err(|err| self.error(err.to_string()))?,
                actual: config.digest.clone(),
            });
        }
        let config_file: ConfigFile = self.read_member_json(&entry.config)?;
        self.check_platform(&config_file, &entry.config)?;
        let diff_ids = config_file.rootfs.map(|rootfs| rootfs.diff_ids).unwrap_or_default();
        if diff_ids.len() != entry.layers.len() {
            return Err(self.error(format!(
                "config {} lists {} layers, manifest.json {}",
                entry.config,
                diff_ids.len(),
                entry.layers.len()
            )));
        }
        self.commit(config)?;

        let mut layers = Vec::new();
        for (name, diff_id) in entry.layers.iter().zip(&diff_ids) {
            let layer = self.member(name)?;
            // A layer must unpack to what the config says: its uncompressed digest is the
            // diff ID, whether the archive stores it compressed or not.
            let compression = sniff_compression(&layer.path)?;
            let uncompressed = match compression {
                LayerCompression::None => layer.digest.clone(),
                LayerCompression::Gzip => {
                    let file = File::open(&layer.path).at("open", &layer.path)?;
                    digest_reader(MultiGzDecoder::new(BufReader::new(file))).at("decompress", &layer.path)?.0
                }
            };
            if &uncompressed != diff_id {
                return Err(ImageError::DigestMismatch {
                    what: format!("layer {name}"),
                    expected: diff_id.clone(),
                    actual: uncompressed,
                });
            }
            self.commit(layer)?;
            let media_type = match compression {
                LayerCompression::None => oci::MEDIA_TYPE_OCI_LAYER,
                LayerCompression::Gzip => oci::MEDIA_TYPE_OCI_LAYER_GZIP,
            };
            layers.push(Descriptor {
                media_type: media_type.to_string(),
                digest: layer.digest.clone(),
                size: layer.size,
                platform: None,
                annotations: BTreeMap::new(),
            });
        }

        // A docker archive has no manifest; the one written here is what the store resolves.
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: oci::MEDIA_TYPE_OCI_CONFIG.to_string(),
                digest: config.digest.clone(),
                size: config.size,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers,
        };
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|source| ImageError::Json { what: "generated manifest".to_string(), source })?;
        let manifest_digest = self.commit_bytes(&bytes)?;

        let mut references = Vec::new();
        for tag in entry.repo_tags.iter().flatten() {
            let reference = Reference::parse(tag).map_err(|err| self.error(format!("manifest.json: {err}")))?;
            if let Some(tagged) = reference.tagged_name()
                && !references.contains(&tagged)
            {
                references.push(tagged);
            }
        }
        Ok(ImportedImage { manifest_digest, references })
    }
}

fn check_size(what: &str, expected: u64, actual: u64) -> Result<()> {
    if expected == actual { Ok(()) } else { Err(ImageError::SizeMismatch { what: what.to_string(), expected, actual }) }
}

/// Whether a file starts with gzip's magic number.
pub(crate) fn sniff_compression(path: &Path) -> Result<LayerCompression> {
    let mut magic = [0u8; 2];
    let mut file = File::open(path).at("open", path)?;
    let mut filled = 0;
    while filled < magic.len() {
        let n = file.read(&mut magic[filled..]).at("read", path)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(if filled == 2 && magic == [0x1f, 0x8b] { LayerCompression::Gzip } else { LayerCompression::None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_normalized() {
        assert_eq!(member_name(b"./index.json").as_deref(), Some("index.json"));
        assert_eq!(member_name(b"/blobs/sha256/ab").as_deref(), Some("blobs/sha256/ab"));
        assert_eq!(member_name(b"a/../b/./c").as_deref(), Some("b/c"));
        assert_eq!(member_name(b"./"), None);
        assert_eq!(member_name(b"../x"), None);
    }
}
