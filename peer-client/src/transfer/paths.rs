//! Received paths are untrusted: the rules a manifest path must follow, and
//! where it may land under the output directory.
//!
//! A path is relative, `/`-separated, of normal components only: no leading
//! `/`, no `.` or `..`, no empty component, no `\`, NUL or other control
//! character, no Windows drive prefix (`C:`), at most [`MAX_PATH_BYTES`] bytes
//! and [`MAX_COMPONENT_BYTES`] per component. Resolving it under the output
//! directory also refuses any existing symbolic link on the way, so a link
//! planted in the output directory cannot lead a write outside it.

use std::path::{Path, PathBuf};

/// Longest manifest path, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path component, in bytes (the usual file-system limit).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Suffix of a file while it is being received.
pub const PART_SUFFIX: &str = ".part";

/// Why a received path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused the path {path:?} offered by the sender: {reason}")]
pub struct PathError {
    /// The path as offered (control characters escaped by `Debug`).
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn refuse(path: &str, reason: &'static str) -> PathError {
    let mut shown: String = path.chars().take(200).collect();
    if shown.len() < path.len() {
        shown.push('…');
    }
    PathError {
        path: shown,
        reason,
    }
}

/// Checks the syntax of a manifest path (see the module documentation).
pub fn check_relative(path: &str) -> Result<(), PathError> {
    if path.is_empty() {
        return Err(refuse(path, "it is empty"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(refuse(path, "it is longer than 4096 bytes"));
    }
    if path.starts_with('/') {
        return Err(refuse(path, "it is absolute"));
    }
    if path.contains('\\') {
        return Err(refuse(path, "it contains a backslash"));
    }
    if path.chars().any(char::is_control) {
        return Err(refuse(path, "it contains NUL or control characters"));
    }
    let first = path.split('/').next().unwrap_or_default();
    let bytes = first.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(refuse(path, "it starts with a Windows drive prefix"));
    }
    for component in path.split('/') {
        match component {
            "" => return Err(refuse(path, "it has an empty component")),
            "." | ".." => return Err(refuse(path, "it contains . or ..")),
            _ if component.len() > MAX_COMPONENT_BYTES => {
                return Err(refuse(path, "a component is longer than 255 bytes"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Where `path` lands under `out`: checks the syntax, then refuses any
/// existing symbolic link between `out` and the target (the target itself and
/// its `.part` file included).
pub fn resolve(out: &Path, path: &str) -> Result<PathBuf, PathError> {
    check_relative(path)?;
    let mut target = out.to_path_buf();
    for component in path.split('/') {
        target.push(component);
        if is_symlink(&target) {
            return Err(refuse(path, "it leads through a symbolic link"));
        }
    }
    if is_symlink(&part_path(&target)) {
        return Err(refuse(path, "its .part file is a symbolic link"));
    }
    if !target.starts_with(out) {
        return Err(refuse(path, "it lands outside the output directory"));
    }
    Ok(target)
}

/// The `.part` file next to `target`.
pub fn part_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(PART_SUFFIX);
    PathBuf::from(name)
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_symlink())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_relative_paths_pass() {
        for ok in [
            "a",
            "a.txt",
            "dir/sub/file.bin",
            "ünïcödé/名前.txt",
            "..hidden",
            "a..b",
            "notes:v2",
        ] {
            check_relative(ok).unwrap_or_else(|err| panic!("{ok}: {err}"));
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        let long_component = "x".repeat(256);
        let long_path = vec!["d"; 2100].join("/");
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("//server/share/x", "absolute"),
            ("..", ". or .."),
            ("../evil", ". or .."),
            ("a/../../evil", ". or .."),
            ("a/./b", ". or .."),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("a\\..\\evil", "backslash"),
            ("C:\\Windows\\evil", "backslash"),
            ("C:/Windows/evil", "drive prefix"),
            ("c:evil", "drive prefix"),
            ("a\0b", "control"),
            ("a/b\nc", "control"),
            ("a/\u{1b}[2J", "control"),
            (&long_component, "255 bytes"),
            (&long_path, "4096 bytes"),
        ];
        for (path, reason) in cases {
            let err = check_relative(path).expect_err(path);
            assert!(
                err.reason.contains(reason),
                "{path:?}: {} (wanted {reason})",
                err.reason
            );
            assert!(err.to_string().starts_with("refused the path"));
        }
    }

    #[test]
    fn resolve_stays_under_out_and_refuses_symlinks() {
        let dir = std::env::temp_dir().join(format!("paths-test-{}", std::process::id()));
        let out = dir.join("out");
        let outside = dir.join("outside");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        assert_eq!(resolve(&out, "a/b").unwrap(), out.join("a").join("b"));
        assert!(resolve(&out, "../outside/x").is_err());

        std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
        let err = resolve(&out, "link/x").unwrap_err();
        assert!(err.reason.contains("symbolic link"), "{err}");
        std::os::unix::fs::symlink(outside.join("f"), out.join("file")).unwrap();
        assert!(resolve(&out, "file").is_err());
        std::os::unix::fs::symlink(outside.join("g"), out.join("g.part")).unwrap();
        let err = resolve(&out, "g").unwrap_err();
        assert!(err.reason.contains(".part"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
