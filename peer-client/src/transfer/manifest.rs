//! The manifest: what a sender offers (relative paths, kinds, sizes), and
//! how it is collected from local paths.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::TransferError;
use super::paths::{self, PART_SUFFIX};
use super::wire::EntryKind;

/// Most entries in one manifest (bounds what a receiver holds in memory).
pub const MAX_ENTRIES: usize = 100_000;
/// Most bytes of all entry paths together. Without it, [`MAX_ENTRIES`] paths
/// of up to 4096 bytes each would let a sender make a receiver hold 400 MB.
pub const MAX_PATH_BYTES_TOTAL: usize = 16 * 1024 * 1024;

/// The error for a manifest whose paths exceed [`MAX_PATH_BYTES_TOTAL`].
fn too_many_path_bytes() -> TransferError {
    TransferError::Protocol(format!(
        "the manifest's paths take more than {} MiB together",
        MAX_PATH_BYTES_TOTAL / (1024 * 1024)
    ))
}

/// One offered file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative `/`-separated path (checked by [`paths::check_relative`]).
    pub path: String,
    /// File or directory.
    pub kind: EntryKind,
    /// Size in bytes (0 for directories).
    pub size: u64,
}

/// A checked list of entries: safe relative paths, no duplicates, and no
/// file whose `.part` name is another entry's path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    entries: Vec<Entry>,
}

impl Manifest {
    /// Checks `entries` (see the type's documentation).
    pub fn new(entries: Vec<Entry>) -> Result<Self, TransferError> {
        if entries.len() > MAX_ENTRIES {
            return Err(TransferError::Protocol(format!(
                "the manifest has more than {MAX_ENTRIES} entries"
            )));
        }
        if entries.iter().map(|e| e.path.len()).sum::<usize>() > MAX_PATH_BYTES_TOTAL {
            return Err(too_many_path_bytes());
        }
        let mut seen = HashSet::with_capacity(entries.len());
        for entry in &entries {
            paths::check_relative(&entry.path)?;
            if entry.kind == EntryKind::Dir && entry.size != 0 {
                return Err(TransferError::Protocol(format!(
                    "directory {:?} has a size",
                    entry.path
                )));
            }
            if !seen.insert(entry.path.as_str()) {
                return Err(TransferError::Protocol(format!(
                    "{:?} appears twice in the manifest",
                    entry.path
                )));
            }
        }
        for entry in &entries {
            if entry.kind == EntryKind::File
                && seen.contains(format!("{}{PART_SUFFIX}", entry.path).as_str())
            {
                return Err(TransferError::Protocol(format!(
                    "{:?} and its {PART_SUFFIX} name are both offered",
                    entry.path
                )));
            }
        }
        Ok(Self { entries })
    }

    /// The entries, in the order files are sent.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of files.
    pub fn files(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .count()
    }

    /// Number of directories.
    pub fn dirs(&self) -> usize {
        self.entries.len() - self.files()
    }

    /// Sum of the file sizes.
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// A manifest as a receiver reads it, entry by entry: refuses too many
/// entries or path bytes at the first one over, and a total that does not
/// match the sizes at the end.
#[derive(Debug)]
pub(crate) struct ManifestReader {
    expected: usize,
    total: u64,
    entries: Vec<Entry>,
    path_bytes: usize,
}

impl ManifestReader {
    /// An offer of `entries` entries of `total` bytes in all.
    pub fn new(entries: u64, total: u64) -> Result<Self, TransferError> {
        if entries > MAX_ENTRIES as u64 {
            return Err(TransferError::Protocol(format!(
                "the offer has {entries} entries, at most {MAX_ENTRIES} are accepted"
            )));
        }
        Ok(Self {
            expected: entries as usize,
            total,
            entries: Vec::with_capacity(entries as usize),
            path_bytes: 0,
        })
    }

    /// Whether every announced entry has arrived.
    pub fn is_full(&self) -> bool {
        self.entries.len() == self.expected
    }

    /// One more entry.
    pub fn push(&mut self, entry: Entry) -> Result<(), TransferError> {
        if self.is_full() {
            return Err(TransferError::Protocol(
                "more manifest entries than the offer announced".into(),
            ));
        }
        paths::check_relative(&entry.path)?;
        self.path_bytes += entry.path.len();
        if self.path_bytes > MAX_PATH_BYTES_TOTAL {
            return Err(too_many_path_bytes());
        }
        self.entries.push(entry);
        Ok(())
    }

    /// The checked manifest.
    pub fn finish(self) -> Result<Manifest, TransferError> {
        let manifest = Manifest::new(self.entries)?;
        let sum = manifest
            .entries()
            .iter()
            .try_fold(0u64, |sum, e| sum.checked_add(e.size));
        if sum != Some(self.total) {
            return Err(TransferError::Protocol(
                "the offer's total does not match its entries".into(),
            ));
        }
        Ok(manifest)
    }
}

/// A manifest with the local file behind each entry.
#[derive(Debug, Clone)]
pub struct Source {
    /// What is offered.
    pub manifest: Manifest,
    /// Local path of each entry (same order).
    pub local: Vec<PathBuf>,
}

impl Source {
    /// Collects files and directory trees. Each argument becomes a top-level
    /// entry named after its last component; directories are walked
    /// (sorted; symbolic links to files are followed, links to directories
    /// and special files skipped with a warning).
    pub fn collect(paths: &[PathBuf]) -> Result<Self, TransferError> {
        let mut entries = Vec::new();
        let mut local = Vec::new();
        for path in paths {
            let shown = path.display().to_string();
            let meta = std::fs::metadata(path).map_err(|source| TransferError::Read {
                path: shown.clone(),
                source,
            })?;
            let absolute = std::path::absolute(path).map_err(|source| TransferError::Read {
                path: shown.clone(),
                source,
            })?;
            let name = std::fs::canonicalize(&absolute)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_owned()))
                .or_else(|| absolute.file_name().map(|n| n.to_owned()))
                .ok_or_else(|| TransferError::Source {
                    path: shown.clone(),
                    reason: "it has no name to send it under".into(),
                })?;
            let name = utf8(&name, &shown)?;
            if meta.is_dir() {
                walk(path, &name, &mut entries, &mut local)?;
            } else if meta.is_file() {
                entries.push(Entry {
                    path: name,
                    kind: EntryKind::File,
                    size: meta.len(),
                });
                local.push(path.clone());
            } else {
                return Err(TransferError::Source {
                    path: shown,
                    reason: "it is neither a file nor a directory".into(),
                });
            }
            if entries.len() > MAX_ENTRIES {
                return Err(TransferError::Source {
                    path: shown,
                    reason: format!("more than {MAX_ENTRIES} files and directories"),
                });
            }
        }
        let manifest = Manifest::new(entries).map_err(|err| TransferError::Source {
            path: paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
            reason: err.to_string(),
        })?;
        Ok(Self { manifest, local })
    }
}

fn utf8(name: &std::ffi::OsStr, shown: &str) -> Result<String, TransferError> {
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| TransferError::Source {
            path: shown.to_owned(),
            reason: "its name is not valid UTF-8".into(),
        })
}

/// Adds `dir` (as `name`) and everything below it, depth first, sorted.
fn walk(
    dir: &Path,
    name: &str,
    entries: &mut Vec<Entry>,
    local: &mut Vec<PathBuf>,
) -> Result<(), TransferError> {
    let mut pending = vec![(dir.to_path_buf(), name.to_owned())];
    while let Some((dir, name)) = pending.pop() {
        entries.push(Entry {
            path: name.clone(),
            kind: EntryKind::Dir,
            size: 0,
        });
        local.push(dir.clone());
        let shown = dir.display().to_string();
        let read = std::fs::read_dir(&dir).map_err(|source| TransferError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut children = Vec::new();
        for child in read {
            let child = child.map_err(|source| TransferError::Read {
                path: shown.clone(),
                source,
            })?;
            children.push(child.path());
        }
        children.sort();
        let mut subdirs = Vec::new();
        for child in children {
            let child_shown = child.display().to_string();
            let Some(file_name) = child.file_name() else {
                continue;
            };
            let child_name = format!("{name}/{}", utf8(file_name, &child_shown)?);
            let link = std::fs::symlink_metadata(&child)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            let meta = std::fs::metadata(&child).map_err(|source| TransferError::Read {
                path: child_shown.clone(),
                source,
            })?;
            if meta.is_file() {
                entries.push(Entry {
                    path: child_name,
                    kind: EntryKind::File,
                    size: meta.len(),
                });
                local.push(child);
            } else if meta.is_dir() && !link {
                subdirs.push((child, child_name));
            } else {
                tracing::warn!(path = %child_shown, "skipped: a link to a directory or a special file");
            }
            if entries.len() > MAX_ENTRIES {
                return Err(TransferError::Source {
                    path: shown,
                    reason: format!("more than {MAX_ENTRIES} files and directories"),
                });
            }
        }
        // Popped from the end: push in reverse to visit them in order.
        pending.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            size,
        }
    }

    #[test]
    fn manifest_checks_paths_duplicates_and_part_names() {
        let ok = Manifest::new(vec![file("a", 1), file("d/b", 2)]).unwrap();
        assert_eq!((ok.files(), ok.dirs(), ok.total_bytes()), (2, 0, 3));
        assert!(matches!(
            Manifest::new(vec![file("../a", 1)]),
            Err(TransferError::Path(_))
        ));
        assert!(Manifest::new(vec![file("a", 1), file("a", 1)]).is_err());
        assert!(Manifest::new(vec![file("a", 1), file("a.part", 1)]).is_err());
        let dir_with_size = Entry {
            path: "d".into(),
            kind: EntryKind::Dir,
            size: 3,
        };
        assert!(Manifest::new(vec![dir_with_size]).is_err());
    }

    #[test]
    fn collect_walks_a_tree_with_empty_files_and_dirs() {
        let root = std::env::temp_dir().join(format!("manifest-test-{}", std::process::id()));
        let tree = root.join("tree");
        std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(tree.join("empty")).unwrap();
        std::fs::write(tree.join("a.txt"), b"hello").unwrap();
        std::fs::write(tree.join("sub/empty.bin"), b"").unwrap();
        std::fs::write(tree.join("sub/deeper/z"), b"zz").unwrap();
        let source = Source::collect(std::slice::from_ref(&tree)).unwrap();
        let listed: Vec<(&str, EntryKind, u64)> = source
            .manifest
            .entries()
            .iter()
            .map(|e| (e.path.as_str(), e.kind, e.size))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("tree", EntryKind::Dir, 0),
                ("tree/a.txt", EntryKind::File, 5),
                ("tree/empty", EntryKind::Dir, 0),
                ("tree/sub", EntryKind::Dir, 0),
                ("tree/sub/empty.bin", EntryKind::File, 0),
                ("tree/sub/deeper", EntryKind::Dir, 0),
                ("tree/sub/deeper/z", EntryKind::File, 2),
            ]
        );
        assert_eq!(source.local.len(), listed.len());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
