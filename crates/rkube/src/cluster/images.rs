//! Preloading image archives into the cluster's shared image store, as k3s preloads its
//! air-gap images: every archive once, and on later `up`s nothing at all, since this is on
//! `up`'s critical path.
//!
//! An archive counts as imported when the store's `preloaded.json` records its path, size
//! and modification time, and every image name it gave is still in the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::Context;
use rkube_agent::image::ImageStore;

const RECORD: &str = "preloaded.json";

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Record {
    archives: BTreeMap<PathBuf, Imported>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Imported {
    size: u64,
    modified_ns: u128,
    references: Vec<String>,
}

/// The archives to preload: those given, else `$RKUBE_IMAGES_DIR/*.tar`, else the
/// `target/images/*.tar` that `images/build.sh` writes, found next to the running binary
/// (`<repo>/target/debug/rkube`).
pub fn default_archives(given: &[PathBuf]) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    let dir = match std::env::var_os("RKUBE_IMAGES_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => std::env::current_exe().ok().and_then(|exe| {
            exe.ancestors().find(|a| a.file_name() == Some("target".as_ref())).map(|t| t.join("images"))
        }),
    };
    let mut archives: Vec<PathBuf> = dir
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "tar"))
        .collect();
    archives.sort();
    archives
}

/// Imports those of `archives` that the store does not have yet, in parallel. Returns the
/// image names the archives provide.
pub fn preload(store_dir: &Path, archives: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let store =
        ImageStore::open(store_dir).with_context(|| format!("opening the image store {}", store_dir.display()))?;
    let record_path = store_dir.join(RECORD);
    let mut record: Record =
        std::fs::read(&record_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let present: Vec<String> = store.list().context("listing the image store")?.into_iter().map(|(r, _)| r).collect();

    let mut names = Vec::new();
    let mut todo = Vec::new();
    for archive in archives {
        let archive = std::fs::canonicalize(archive).with_context(|| format!("image archive {}", archive.display()))?;
        let (size, modified_ns) = file_identity(&archive)?;
        match record.archives.get(&archive) {
            Some(done)
                if done.size == size
                    && done.modified_ns == modified_ns
                    && done.references.iter().all(|r| present.contains(r)) =>
            {
                names.extend(done.references.iter().cloned());
            }
            _ => todo.push((archive, size, modified_ns)),
        }
    }
    if todo.is_empty() {
        return Ok(names);
    }
    let results: Vec<anyhow::Result<(PathBuf, Imported)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = todo
            .into_iter()
            .map(|(archive, size, modified_ns)| {
                let store = store.clone();
                scope.spawn(move || {
                    let images = store.import(&archive).with_context(|| format!("importing {}", archive.display()))?;
                    let references = images.into_iter().flat_map(|i| i.references).collect();
                    Ok((archive, Imported { size, modified_ns, references }))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("an image import panicked"))))
            .collect()
    });
    for result in results {
        let (archive, imported) = result?;
        names.extend(imported.references.iter().cloned());
        record.archives.insert(archive, imported);
    }
    let json = serde_json::to_vec_pretty(&record).context("encoding the preload record")?;
    super::state::write_atomic(&record_path, &json)?;
    Ok(names)
}

fn file_identity(path: &Path) -> anyhow::Result<(u64, u128)> {
    let meta = std::fs::metadata(path).with_context(|| format!("image archive {}", path.display()))?;
    let modified = meta.modified().ok().and_then(|m| m.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    Ok((meta.len(), modified))
}
